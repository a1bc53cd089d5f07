'use strict'
// `npm install` runs this. A prebuilt addon that loads (from the per-platform
// package, or one built before) is used as it is; otherwise the addon is built
// from source here: with the napi-rs CLI in a checkout of the repository, with
// cargo alone in an installed package (which ships the Rust sources).
const { spawnSync } = require('node:child_process')
const fs = require('node:fs')
const path = require('node:path')
const platform = require('./platform.cjs')

const root = path.join(__dirname, '..')
const native = path.join(root, 'native')

function loads() {
  try {
    require(path.join(native, 'binding.js'))
    return true
  } catch {
    return false
  }
}

function run(command, args) {
  console.error(`xen-domain-build: ${command} ${args.join(' ')}`)
  const result = spawnSync(command, args, { cwd: root, stdio: 'inherit' })
  if (result.error) throw result.error
  if (result.status !== 0) throw new Error(`${command} exited with ${result.status ?? result.signal}`)
}

function fail(reason) {
  console.error(
    `xen-domain-build: no prebuilt addon for ${platform.platformArchAbi()} (${platform.rustTriple()}), ` +
      `and it cannot be built from source here: ${reason}\n` +
      `Install Rust (https://rustup.rs) and run \`npm install\` again, or \`npm run build:native\` in ${root}.`,
  )
  process.exit(1)
}

let napiCli = null
try {
  napiCli = require.resolve('@napi-rs/cli/package.json', { paths: [root] })
} catch {}
const hasCargo = () => spawnSync('cargo', ['--version'], { stdio: 'ignore' }).status === 0

// In a checkout, the domain builder too (`npm run build` makes it; the tests run it).
if (napiCli && !fs.existsSync(path.join(native, 'xen-domain-builder')) && hasCargo()) {
  try {
    run(process.platform === 'win32' ? 'npm.cmd' : 'npm', ['run', 'build:builder'])
  } catch (error) {
    console.error(`xen-domain-build: the domain builder was not built: ${error.message || error}`)
  }
}

if (loads()) process.exit(0)

if (!hasCargo()) fail('cargo is not on PATH')

try {
  if (napiCli) {
    run(process.platform === 'win32' ? 'npm.cmd' : 'npm', ['run', 'build:native'])
  } else {
    run('cargo', ['build', '--release', '--locked', '--lib'])
    const built = path.join(root, 'target', 'release', 'libxen_domain_build.so')
    fs.copyFileSync(built, path.join(native, platform.addonFileName()))
  }
} catch (error) {
  fail(String(error.message || error))
}
if (!loads()) fail('the addon was built but does not load')
