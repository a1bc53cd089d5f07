/**
 * Loads the addon through `native/binding.js` (which looks where
 * NAPI_RS_NATIVE_LIBRARY_PATH says, beside itself, then in the per-platform
 * package), and turns a failure into an error that says what was looked for
 * and the one step that builds the addon from source.
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

/** Where the sources are; the README's "Building the addon from source" says the same. */
const REPOSITORY = 'https://github.com/xen-domain-build/xen-domain-build'

let loaded: typeof Binding | undefined

export function binding(): typeof Binding {
  if (loaded === undefined) {
    try {
      loaded = require('../native/binding.js') as typeof Binding
    } catch (cause) {
      const platform = require('../scripts/platform.cjs') as Platform
      const looked = cause instanceof Error ? cause.message : String(cause)
      throw new XenDomainBuildError(
        'NATIVE_ADDON_MISSING',
        `xen-domain-build: the native addon for ${platform.platformArchAbi()} (${platform.rustTriple()}) ` +
          `could not be loaded (${looked}). It comes with the optional dependency ` +
          `${platform.addonPackageName()}: install without --omit=optional. To build it from source ` +
          `(needs Rust): in a clone of ${REPOSITORY}, run \`npm ci --ignore-scripts && npm run build:native\`, ` +
          `then set NAPI_RS_NATIVE_LIBRARY_PATH=<clone>/native/${platform.addonFileName()}.`,
        { cause },
      )
    }
  }
  return loaded
}
