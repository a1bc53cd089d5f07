// @ts-check
'use strict'
// Names of this machine's platform, as napi-rs names its binaries, and of the
// package that carries its prebuilt addon and builder. Shared by the loader
// (native/binding.js), the library (ts/platform.ts, ts/native.ts) and the
// release scripts.

function isMusl() {
  if (process.platform !== 'linux') return false
  const report = /** @type {any} */ (process.report?.getReport())
  return !report?.header?.glibcVersionRuntime
}

/** napi-rs's platform-arch-abi, e.g. `linux-x64-gnu`. */
function platformArchAbi() {
  const abi = process.platform === 'linux' ? (isMusl() ? '-musl' : '-gnu') : ''
  return `${process.platform}-${process.arch}${abi}`
}

const RUST_ARCH = { x64: 'x86_64', arm64: 'aarch64' }

/** The Rust target triple, e.g. `x86_64-unknown-linux-gnu`. */
function rustTriple() {
  const arch = RUST_ARCH[process.arch] || process.arch
  if (process.platform === 'linux') return `${arch}-unknown-linux-${isMusl() ? 'musl' : 'gnu'}`
  return `${arch}-${process.platform}`
}

const BINARY_NAME = 'xen-domain-build'
/** The domain builder (crates/builder): in native/ in a checkout, beside the addon in the platform package. */
const BUILDER_NAME = 'xen-domain-builder'
/** The npm scope of the per-platform packages: `@xen-domain-build/linux-x64-gnu`. */
const PLATFORM_SCOPE = '@xen-domain-build'

module.exports = {
  BINARY_NAME,
  BUILDER_NAME,
  PLATFORM_SCOPE,
  platformArchAbi,
  rustTriple,
  /** The addon file the loader looks for beside it, in native/. */
  addonFileName: () => `${BINARY_NAME}.${platformArchAbi()}.node`,
  /** The per-platform npm package that carries a prebuilt addon. */
  addonPackageName: () => `${PLATFORM_SCOPE}/${platformArchAbi()}`,
}
