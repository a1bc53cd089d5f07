/**
 * Where the domain builder is installed: the host's xenguest, the checkout's
 * xen-domain-builder, or the one in the per-platform package.
 */
import { accessSync, constants } from 'node:fs'
import { createRequire } from 'node:module'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { XenDomainBuildError } from './errors.js'
import { platformNames } from './platform.js'

/** Where XenServer and XCP-ng install their xenguest. */
export const HOST_XENGUEST_PATH = '/usr/libexec/xen/bin/xenguest'

/**
 * xen-domain-builder, ours: xenguest's command line and control protocol over
 * the host's libxenguest, for upstream Xen. `npm run build` puts it in native/
 * of a checkout (ts/ and dist/ both sit one level below the package root); an
 * installed package has none there, its builder is in the platform package
 * (platformBuilderPath()).
 */
export const BUNDLED_BUILDER_PATH = fileURLToPath(new URL('../native/xen-domain-builder', import.meta.url))

/**
 * The builder in the installed per-platform package (@xen-domain-build/<platform>,
 * which carries it beside its package.json), resolved as Node resolves a
 * dependency from `from` (this module, by default: the package's dist/).
 * null when no platform package is installed (a checkout, or --omit=optional).
 */
export function platformBuilderPath(from: string = fileURLToPath(import.meta.url)): string | null {
  // The loader's own platform names, so the builder comes from the package the addon comes from.
  const platform = platformNames()
  try {
    return join(dirname(createRequire(from).resolve(`${platform.addonPackageName()}/package.json`)), platform.BUILDER_NAME)
  } catch {
    return null
  }
}

/**
 * Where defaultXenguestPath() looks, in order: the host's own xenguest
 * (XenServer, XCP-ng), the checkout's native/xen-domain-builder, then the
 * installed platform package's.
 */
export function defaultXenguestCandidates(): string[] {
  const installed = platformBuilderPath()
  return [HOST_XENGUEST_PATH, BUNDLED_BUILDER_PATH, ...(installed === null ? [] : [installed])]
}

/**
 * The domain builder to run by default: the first executable of `candidates`
 * (defaultXenguestCandidates()). null when there is none.
 */
export function defaultXenguestPath(candidates: readonly string[] = defaultXenguestCandidates()): string | null {
  for (const path of candidates) {
    try {
      accessSync(path, constants.X_OK)
      return path
    } catch {
      // Not there, or not executable: the next one.
    }
  }
  return null
}

/**
 * `defaultXenguestPath()`, or XEN_UNAVAILABLE saying where it looked: for a
 * caller that cannot go on without a builder.
 */
export function requireDefaultXenguestPath(candidates: readonly string[] = defaultXenguestCandidates()): string {
  const path = defaultXenguestPath(candidates)
  if (path !== null) return path
  throw new XenDomainBuildError(
    'XEN_UNAVAILABLE',
    `no domain builder: none of ${candidates.join(', ')} is an executable (the host's xenguest, or this package's xen-domain-builder from its platform package); give its path`,
  )
}
