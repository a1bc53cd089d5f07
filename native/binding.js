'use strict'
// Finds and loads the addon. Written by hand and committed (napi's generated
// loader knows every platform napi supports and names platform packages
// `<name>-<platform>`; ours are `@xen-domain-build/<platform>`, Linux only).
// `napi build` generates only the types beside it (binding.d.ts).
//
// Where it looks, in order:
//   1. NAPI_RS_NATIVE_LIBRARY_PATH, when set, and nothing else (an addon built
//      elsewhere, or a cross-built one under test: a silent fallback would hide
//      which one ran);
//   2. native/xen-domain-build.<platform>.node beside this file: what `npm run
//      build:native` writes in a checkout;
//   3. the per-platform package @xen-domain-build/<platform>, an optional
//      dependency of the published package, at this package's exact version.
const { join } = require('node:path')
const platform = require('../scripts/platform.cjs')

function load() {
  const override = process.env.NAPI_RS_NATIVE_LIBRARY_PATH
  if (override) return require(override)

  const errors = []
  const local = join(__dirname, platform.addonFileName())
  try {
    return require(local)
  } catch (error) {
    errors.push(`${local}: ${error.code === 'MODULE_NOT_FOUND' ? 'not found' : error.message}`)
  }

  const name = platform.addonPackageName()
  try {
    const wanted = require('../package.json').version
    const found = require(`${name}/package.json`).version
    // A platform package of another version has another ABI between the
    // loader and the addon: refuse it rather than fail in odd ways later.
    if (found !== wanted) throw new Error(`version ${found} is installed, ${wanted} is needed; reinstall`)
    return require(name)
  } catch (error) {
    errors.push(`${name}: ${error.code === 'MODULE_NOT_FOUND' ? 'not installed' : error.message}`)
  }
  throw new Error(errors.join('; '))
}

module.exports = load()
