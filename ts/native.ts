/**
 * Loads the generated native loader (`native/binding.js`, made by `napi
 * build`), and turns a failure into an error that says what was looked for and
 * how to build the addon from source.
 */
import { createRequire } from 'node:module'
import type * as Binding from '../native/binding.js'
import { XenDomainBuildError } from './errors.js'

// Both ts/ and dist/ sit one level below the package root.
const require = createRequire(import.meta.url)

interface Platform {
  platformArchAbi(): string
  rustTriple(): string
  addonFileName(): string
  addonPackageName(): string
}

let loaded: typeof Binding | undefined

export function binding(): typeof Binding {
  if (loaded === undefined) {
    try {
      loaded = require('../native/binding.js') as typeof Binding
    } catch (cause) {
      const platform = require('../scripts/platform.cjs') as Platform
      throw new XenDomainBuildError(
        'NATIVE_ADDON_MISSING',
        `xen-domain-build: the native addon for ${platform.platformArchAbi()} (${platform.rustTriple()}) ` +
          `could not be loaded. Looked for native/${platform.addonFileName()} in the package and for the ` +
          `package ${platform.addonPackageName()}. To build it from source, install Rust (cargo) and run ` +
          '`npm install` (or `npm run build:native` in a checkout).',
        { cause },
      )
    }
  }
  return loaded
}
