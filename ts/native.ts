/**
 * Loads the addon through `native/binding.js` (which looks where
 * NAPI_RS_NATIVE_LIBRARY_PATH says, beside itself, then in the per-platform
 * package), and turns a failure into an error that says what was looked for
 * and the one step that builds the addon from source.
 */
import { createRequire } from 'node:module'
import type * as Binding from '../native/binding.js'
import { fromNative, XenDomainBuildError } from './errors.js'

// Both ts/ and dist/ sit one level below the package root.
const require = createRequire(import.meta.url)

interface Platform {
  platformArchAbi(): string
  rustTriple(): string
  addonFileName(): string
  addonPackageName(): string
}

/** Where the sources are; the README's "Install" says the same. */
const REPOSITORY = 'https://github.com/xen-domain-build/xen-domain-build'

let loaded: typeof Binding | undefined

const PREPARED = Symbol.for('xen-domain-build.prepared')

/** Errors mapped on every native method, and `Symbol.asyncDispose` on Hypervisor. */
function prepare(native: typeof Binding): void {
  const hypervisorSync = new Set(['close'])
  mapErrorsOf(native.Hypervisor.prototype, (name) => !hypervisorSync.has(name))
  mapErrorsOf(native.SimulatedHost.prototype, (name) => name === 'populate')
  mapErrorsOf(native.NativeXenstore.prototype, (name) => name !== 'close')
  // NativePlanner is left as it is: its one user, NumaPlanner, maps its
  // errors with the same fromNative, and the plan call stays one hop.
  // `await using hypervisor = ...`: the native class gets its dispose here.
  Object.defineProperty(native.Hypervisor.prototype, Symbol.asyncDispose, {
    value: async function (this: Binding.Hypervisor) {
      this.close()
    },
  })
  Object.defineProperty(native.Hypervisor.prototype, PREPARED, { value: true })
}

export function binding(): typeof Binding {
  if (loaded === undefined) {
    try {
      loaded = require('../native/binding.js') as typeof Binding
      // The binding is one CommonJS module, shared by every copy of this
      // loader in the process: prepare its classes once.
      if (!Object.hasOwn(loaded.Hypervisor.prototype, PREPARED)) prepare(loaded)
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

/**
 * Every method of a native class, once, at load: what it throws, or its
 * Promise rejects with, becomes a `XenDomainBuildError` (`fromNative`); a
 * method that returns a Promise never throws, even when napi-rs refuses an
 * argument before the call. No per-object wrapper: instances stay the native
 * objects they are.
 */
function mapErrorsOf(prototype: object, returnsPromise: (name: string) => boolean): void {
  for (const name of Object.getOwnPropertyNames(prototype)) {
    const descriptor = Object.getOwnPropertyDescriptor(prototype, name)
    const method: unknown = descriptor?.value
    if (name === 'constructor' || typeof method !== 'function') continue
    const promised = returnsPromise(name)
    Object.defineProperty(prototype, name, {
      ...descriptor,
      value: function (this: unknown, ...args: unknown[]) {
        let result: unknown
        try {
          result = method.apply(this, args)
        } catch (error) {
          if (promised) return Promise.reject(fromNative(error))
          throw fromNative(error)
        }
        return result instanceof Promise
          ? result.catch((error: unknown) => {
              throw fromNative(error)
            })
          : result
      },
    })
  }
}
