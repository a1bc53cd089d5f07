/**
 * Errors a caller can act on. Each has a stable `code`; hypercall errors also
 * carry the errno and the operation that failed; some codes carry fields of
 * their own (`ErrorFieldsByCode`).
 */

/**
 * The errno names the binding gives a failed hypercall or xenstore call
 * (crates/xenlib's `errno::name`; a test checks the two lists agree). An
 * errno it has no name for is `E` and its number (`E133`).
 */
export const ERRNO_NAMES = [
  'EPERM',
  'ENOENT',
  'ESRCH',
  'EINTR',
  'EIO',
  'ENXIO',
  'E2BIG',
  'EBADF',
  'EAGAIN',
  'ENOMEM',
  'EACCES',
  'EFAULT',
  'EBUSY',
  'EEXIST',
  'EXDEV',
  'ENODEV',
  'EINVAL',
  'ENOSPC',
  'EDOM',
  'ERANGE',
  'EDEADLK',
  'ENOSYS',
  'ENODATA',
  'EOVERFLOW',
  'EOPNOTSUPP',
  'ETIMEDOUT',
  'EALREADY',
  'EINPROGRESS',
  'ENOTEMPTY',
  'ESTALE',
  'ENOBUFS',
  'ECANCELED',
  'EPIPE',
  'ECONNRESET',
  'ECONNREFUSED',
  'ENOTCONN',
  'EISDIR',
  'ENOTDIR',
  'EROFS',
  'EILSEQ',
] as const

/** A failed hypercall's or xenstore call's errno name: `ENOMEM`, `ESRCH`, ..., or `E<number>`. */
export type ErrnoCode = (typeof ERRNO_NAMES)[number] | `E${number}`

/**
 * Every `code` a `XenDomainBuildError` can have: a closed set, so a
 * misspelt code (`'ENOMEMM'`) does not compile.
 * - an errno name (`ErrnoCode`): a hypercall or xenstore call failed; `errno` and `operation` say which.
 * - `INVALID_ARGUMENT`: bad input, refused before any hypercall; the message names the field.
 * - `NATIVE_ADDON_MISSING`: the addon for this platform could not be loaded; the message says how to get it.
 * - `XEN_UNAVAILABLE`, `XEN_VERSION_UNSUPPORTED`: not on a Xen host, or one this package cannot drive.
 * - `XENSTORE_UNAVAILABLE`: no xenstored to talk to; `reason` says why.
 * - `NOT_ENOUGH_MEMORY`: the host has not the memory the VM needs; `requiredBytes` and `freeBytes`.
 * - `XENGUEST_FAILED`: the domain builder said it failed; `xenguest` has what it said.
 * - `XENGUEST_PROTOCOL`: the domain builder said something that is not its protocol.
 * - `SUSPEND_NOT_ACKNOWLEDGED`: the guest did not suspend when asked (`control/shutdown`): no acknowledgement in time, or it shut down another way.
 * - `INVALID_SUSPEND_IMAGE`: a suspend image that is not one: a wrong signature, a truncated file, a record this package does not know.
 * - `ABORTED`: the caller's signal aborted it; an `AbortError` whose `cause` is the signal's reason.
 * - `TIMEOUT`, `CLOSED` (a closed hypervisor, xenstore or build host), `INTERNAL` (a bug: please report it).
 */
export type ErrorCode =
  | ErrnoCode
  | 'INVALID_ARGUMENT'
  | 'NATIVE_ADDON_MISSING'
  | 'XEN_UNAVAILABLE'
  | 'XEN_VERSION_UNSUPPORTED'
  | 'XENSTORE_UNAVAILABLE'
  | 'NOT_ENOUGH_MEMORY'
  | 'XENGUEST_FAILED'
  | 'XENGUEST_PROTOCOL'
  | 'SUSPEND_NOT_ACKNOWLEDGED'
  | 'INVALID_SUSPEND_IMAGE'
  | 'ABORTED'
  | 'TIMEOUT'
  | 'CLOSED'
  | 'INTERNAL'

/** What a domain builder said when it failed (`XENGUEST_FAILED`), from its `error:` line. */
export interface XenguestFailure {
  /** The builder's function that failed (`hvm_build`, `xc_dom_allocate`, ...). */
  function: string
  /** The errno it gave, or null when it gave none. */
  code: number | null
  message: string
}

/** Why xenstore is unavailable (`XENSTORE_UNAVAILABLE`). */
export type XenstoreUnavailableReason = 'no-library' | 'no-xenstored' | 'no-privileges'

/** The fields a code adds to those every `XenDomainBuildError` has. */
export interface ErrorFieldsByCode {
  NOT_ENOUGH_MEMORY: {
    /** The free memory the build needed. */
    readonly requiredBytes: number
    /** The free memory there was, at the last look. */
    readonly freeBytes: number
  }
  XENGUEST_FAILED: { readonly xenguest: XenguestFailure }
  XENSTORE_UNAVAILABLE: { readonly reason: XenstoreUnavailableReason }
  ABORTED: { readonly name: 'AbortError' }
}

/**
 * A `XenDomainBuildError` with one of these codes and the fields they carry.
 * `XenDomainBuildErrorOf<ErrorCode>` is a union a `switch (error.code)`
 * narrows.
 */
export type XenDomainBuildErrorOf<C extends ErrorCode> = C extends ErrorCode
  ? XenDomainBuildError<C> & (C extends keyof ErrorFieldsByCode ? ErrorFieldsByCode[C] : unknown)
  : never

/** What a `XenDomainBuildError` is made with, besides its code and message. */
export interface ErrorDetails {
  cause?: unknown
  /** The errno of a failed hypercall. */
  errno?: number
  /** The libxenctrl function that failed. */
  operation?: string
  /** The build step that failed (`max_vcpus`, `numa_placement`, ...). */
  step?: string
  domid?: number
  /** XENSTORE_UNAVAILABLE: what is missing (`no-library`, `no-xenstored`, `no-privileges`). */
  reason?: string
}

/**
 * Every failure a caller can act on. Test its code with
 * `isXenDomainBuildError(error, 'NOT_ENOUGH_MEMORY')`, which also types the
 * code's own fields:
 *
 * @example
 * ```ts
 * try {
 *   await buildDomain(host, domid, vm, options)
 * } catch (error) {
 *   if (isXenDomainBuildError(error, 'NOT_ENOUGH_MEMORY')) console.error(`${error.requiredBytes - error.freeBytes} bytes short`)
 *   else throw error
 * }
 * ```
 */
export class XenDomainBuildError<C extends ErrorCode = ErrorCode> extends Error {
  /** What failed, stably: test this, not the message. */
  readonly code: C
  /** A failed hypercall's or xenstore call's errno. */
  readonly errno?: number
  /** The libxenctrl or libxenstore function that failed (`xc_domain_claim_pages`, ...). */
  readonly operation?: string
  /** The build step that failed (`max_vcpus`, `numa_placement`, ...). */
  readonly step?: string
  /** The domain whose build step failed. */
  readonly domid?: number
  /** `XENSTORE_UNAVAILABLE`: what is missing. */
  readonly reason?: string
  // The codes' own fields are set by those who make such an error;
  // `declare`, so that no other error has them, even as undefined.
  /** `NOT_ENOUGH_MEMORY`: the free memory the build needed. */
  declare readonly requiredBytes?: number
  /** `NOT_ENOUGH_MEMORY`: the free memory there was. */
  declare readonly freeBytes?: number
  /** `XENGUEST_FAILED`: what the domain builder said. */
  declare readonly xenguest?: XenguestFailure

  constructor(code: C, message: string, details: ErrorDetails = {}) {
    super(message, details.cause === undefined ? undefined : { cause: details.cause })
    // Node's convention for a cancelled operation; `code` stays ABORTED.
    this.name = code === 'ABORTED' ? 'AbortError' : 'XenDomainBuildError'
    this.code = code
    if (details.errno !== undefined) this.errno = details.errno
    if (details.operation !== undefined) this.operation = details.operation
    if (details.step !== undefined) this.step = details.step
    if (details.domid !== undefined) this.domid = details.domid
    if (details.reason !== undefined) this.reason = details.reason
  }
}

/**
 * Whether `error` is a `XenDomainBuildError`, and with `codes`, one with one
 * of those codes: the one way to test a code, typed (a misspelt code does not
 * compile; the code's own fields are typed after it).
 */
export function isXenDomainBuildError(error: unknown): error is XenDomainBuildErrorOf<ErrorCode>
export function isXenDomainBuildError<C extends ErrorCode>(error: unknown, ...codes: [C, ...C[]]): error is XenDomainBuildErrorOf<C>
export function isXenDomainBuildError(error: unknown, ...codes: ErrorCode[]): boolean {
  return error instanceof XenDomainBuildError && (codes.length === 0 || codes.includes(error.code))
}

/** The same failure, said of a build step of a domain. */
export function inStep(error: unknown, step: string, domid: number): unknown {
  if (!(error instanceof XenDomainBuildError) || error.step !== undefined) return error
  const stepped = new XenDomainBuildError(error.code, `domain ${domid}: ${step}: ${error.message}`, {
    // An AbortError's cause is the signal's reason (Node's convention), not
    // the error it restates; any other error's cause is the one it restates.
    cause: error.code === 'ABORTED' ? error.cause : error,
    errno: error.errno,
    operation: error.operation,
    step,
    domid,
  })
  // Keep extra fields such as NOT_ENOUGH_MEMORY's requiredBytes.
  for (const [key, value] of Object.entries(error)) {
    if (!(key in stepped)) Object.assign(stepped, { [key]: value })
  }
  return stepped
}

/** A cancelled operation: an `AbortError` whose cause is the abort signal's reason. */
export function aborted(what: string, reason?: unknown): XenDomainBuildError {
  return new XenDomainBuildError('ABORTED', `${what} was cancelled`, reason === undefined ? {} : { cause: reason })
}

export function invalidArgument(field: string, problem: string): XenDomainBuildError {
  return new XenDomainBuildError('INVALID_ARGUMENT', `${field}: ${problem}`)
}

/** Parses text that must hold one JSON object; `source` names it in errors. */
export function parseJsonObject(text: string, source: string): Record<string, unknown> {
  let value: unknown
  try {
    value = JSON.parse(text)
  } catch (error) {
    throw invalidArgument(source, `not JSON: ${(error as Error).message}`)
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw invalidArgument(source, `expected a JSON object, got ${describe(value)}`)
  }
  return value as Record<string, unknown>
}

/** Describes a value for an error message without dumping it whole. */
export function describe(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}…` : value)
  if (typeof value === 'bigint') return `${value}n`
  if (Array.isArray(value)) return 'an array'
  if (value === null) return 'null'
  return typeof value === 'object' ? 'an object' : String(value)
}

/**
 * The codes that are not errno names, as a set to check a native error's
 * code against; `satisfies` keeps it the same list as `ErrorCode`'s.
 */
const NAMED_CODES: ReadonlySet<string> = new Set(
  Object.keys({
    INVALID_ARGUMENT: true,
    NATIVE_ADDON_MISSING: true,
    XEN_UNAVAILABLE: true,
    XEN_VERSION_UNSUPPORTED: true,
    XENSTORE_UNAVAILABLE: true,
    NOT_ENOUGH_MEMORY: true,
    XENGUEST_FAILED: true,
    XENGUEST_PROTOCOL: true,
    SUSPEND_NOT_ACKNOWLEDGED: true,
    INVALID_SUSPEND_IMAGE: true,
    ABORTED: true,
    TIMEOUT: true,
    CLOSED: true,
    INTERNAL: true,
  } satisfies Record<Exclude<ErrorCode, ErrnoCode>, true>),
)
const ERRNO_CODES: ReadonlySet<string> = new Set(ERRNO_NAMES)

/** Whether `code` is one of `ErrorCode`'s: a named code, an errno name, or `E<number>`. */
function isErrorCode(code: string): code is ErrorCode {
  return NAMED_CODES.has(code) || ERRNO_CODES.has(code) || /^E[0-9]+$/.test(code)
}

/** napi-rs's own statuses for a JS value of the wrong type: bad input. */
const NAPI_TYPE_STATUSES = new Set([
  'InvalidArg',
  'ObjectExpected',
  'StringExpected',
  'NumberExpected',
  'BooleanExpected',
  'ArrayExpected',
  'BigintExpected',
])

/**
 * An error thrown by the native binding, as a `XenDomainBuildError`; only
 * `ts/native.ts` calls it. The binding decides every code of ours, with the
 * errno and operation (`src/error.rs`): its code is read here, not decided,
 * and one that is not an `ErrorCode` is a bug (`INTERNAL`). What remains are
 * napi-rs's own statuses, which are not ours: a JS value of the wrong type,
 * refused before the call (bad input), and anything else it could not
 * convert (`INTERNAL`).
 */
export function fromNative(error: unknown): unknown {
  if (!(error instanceof Error) || error instanceof XenDomainBuildError) return error
  const { code, errno, operation, reason } = error as Error & { code?: unknown; errno?: number; operation?: string; reason?: string }
  const options = { cause: error, errno, operation, reason }
  const known =
    typeof code !== 'string' ? 'INTERNAL' : isErrorCode(code) ? code : NAPI_TYPE_STATUSES.has(code) ? 'INVALID_ARGUMENT' : 'INTERNAL'
  return new XenDomainBuildError(known, error.message, options)
}
