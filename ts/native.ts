/**
 * Loads the addon through `native/binding.js` (which looks where
 * NAPI_RS_NATIVE_LIBRARY_PATH says, beside itself, then in the per-platform
 * package), and turns a failure into an error that says what was looked for
 * and the one step that builds the addon from source. The one place where
 * what the addon throws becomes a `XenDomainBuildError`: every method,
 * constructor and function of the binding is mapped here, at load, so no
 * caller wraps a native call of its own.
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

/**
 * Errors mapped on every native method, and `Symbol.asyncDispose` on
 * Hypervisor. On the prototypes, so that the objects the addon makes itself
 * (`openHypervisor`'s, `SimulatedHost.hypervisor()`'s) are covered too.
 */
function prepare(native: typeof Binding): void {
  mapErrorsOf(native.Hypervisor.prototype, (name) => name !== 'close')
  mapErrorsOf(native.SimulatedHost.prototype, (name) => ['populate', 'shutdownDomain', 'resumeDomain'].includes(name))
  mapErrorsOf(native.NativeXenstore.prototype, (name) => name !== 'close')
  mapErrorsOf(native.NativePlanner.prototype, () => false)
  // `await using hypervisor = ...`: the native class gets its dispose here.
  Object.defineProperty(native.Hypervisor.prototype, Symbol.asyncDispose, {
    value: async function (this: Binding.Hypervisor) {
      this.close()
    },
  })
  Object.defineProperty(native.Hypervisor.prototype, PREPARED, { value: true })
}

/**
 * The binding as this package uses it: its functions and constructors
 * mapped too. A view of its own, so the module other code may require is
 * left as it is (but for the prototypes).
 */
function mapped(native: typeof Binding): typeof Binding {
  return {
    ...native,
    openHypervisor: mapErrors(native.openHypervisor, true),
    openXenstore: mapErrors(native.openXenstore, true),
    SimulatedHost: mapConstructor(native.SimulatedHost),
    NativePlanner: mapConstructor(native.NativePlanner),
  }
}

export function binding(): typeof Binding {
  if (loaded === undefined) {
    try {
      const native = require('../native/binding.js') as typeof Binding
      // The binding is one CommonJS module, shared by every copy of this
      // loader in the process: prepare its classes once.
      if (!Object.hasOwn(native.Hypervisor.prototype, PREPARED)) prepare(native)
      loaded = mapped(native)
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
 * Every method of a native class, once, at load (`mapErrors`). No
 * per-object wrapper: instances stay the native objects they are.
 */
function mapErrorsOf(prototype: object, returnsPromise: (name: string) => boolean): void {
  for (const name of Object.getOwnPropertyNames(prototype)) {
    const descriptor = Object.getOwnPropertyDescriptor(prototype, name)
    const method: unknown = descriptor?.value
    if (name === 'constructor' || typeof method !== 'function') continue
    Object.defineProperty(prototype, name, {
      ...descriptor,
      value: mapErrors(method as (...args: unknown[]) => unknown, returnsPromise(name)),
    })
  }
}

/**
 * A native function or method whose throw, or whose Promise's rejection,
 * becomes a `XenDomainBuildError` (`fromNative`). One that returns a Promise
 * never throws, even when napi-rs refuses an argument before the call.
 */
function mapErrors<F extends (...args: never[]) => unknown>(native: F, returnsPromise: boolean): F {
  return function (this: unknown, ...args: Parameters<F>) {
    let result: unknown
    try {
      result = native.apply(this, args)
    } catch (error) {
      if (returnsPromise) return Promise.reject(fromNative(error))
      throw fromNative(error)
    }
    return result instanceof Promise
      ? result.catch((error: unknown) => {
          throw fromNative(error)
        })
      : result
  } as F
}

/**
 * A native class whose constructor's throw becomes a `XenDomainBuildError`.
 * A Proxy, so `instanceof`, the prototype and static methods stay the class's.
 */
function mapConstructor<C extends abstract new (...args: never[]) => object>(native: C): C {
  return new Proxy(native, {
    construct(target, args, newTarget) {
      try {
        return Reflect.construct(target, args, newTarget) as object
      } catch (error) {
        throw fromNative(error)
      }
    },
  })
}
