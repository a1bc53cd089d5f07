/**
 * This machine's platform names (napi-rs's `linux-x64-gnu`, the Rust triple)
 * and the per-platform package's (`@xen-domain-build/linux-x64-gnu`, its
 * addon and builder files), for the library.
 *
 * They are written once, in scripts/platform.cjs, which the package ships
 * (package.json's `files`) and tsup leaves out of the bundle (so one copy is
 * loaded). That file stays plain CommonJS rather than becoming a bundled
 * TypeScript module because native/binding.js, the loader that is not
 * bundled, needs the names before any of the library has loaded, and the
 * release scripts need them in a checkout that has not been built. ts/ and
 * dist/ both sit one level below the package root, so the path below holds
 * for the sources and for the bundle.
 */
import { createRequire } from 'node:module'

/** What scripts/platform.cjs exports. */
export interface PlatformNames {
  BINARY_NAME: string
  BUILDER_NAME: string
  PLATFORM_SCOPE: string
  platformArchAbi(): string
  rustTriple(): string
  addonFileName(): string
  addonPackageName(): string
}

/** The names, loaded when first asked for. */
export function platformNames(): PlatformNames {
  return createRequire(import.meta.url)('../scripts/platform.cjs') as PlatformNames
}
