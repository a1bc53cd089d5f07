/**
 * Errors a caller can act on. Each has a stable `code`; hypercall errors also
 * carry the errno and the operation that failed.
 */
/** A failed hypercall's errno name: `ENOMEM`, `ESRCH`, `ENOSYS`, ... */
export type ErrnoCode = `E${string}`

export type ErrorCode =
  | ErrnoCode
  | 'INVALID_ARGUMENT'
  | 'NATIVE_ADDON_MISSING'
  | 'XEN_UNAVAILABLE'
  | 'XEN_VERSION_UNSUPPORTED'
  | 'XENSTORE_UNAVAILABLE'
  | 'NOT_ENOUGH_MEMORY'
  | 'ENOMEM'
  | 'XENGUEST_FAILED'
  | 'XENGUEST_PROTOCOL'
  | 'ABORTED'
  | 'TIMEOUT'
  | 'CLOSED'
  | 'INTERNAL'

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

export class XenDomainBuildError extends Error {
  readonly code: ErrorCode
  readonly errno?: number
  readonly operation?: string
  readonly step?: string
  readonly domid?: number
  readonly reason?: string

  constructor(code: ErrorCode, message: string, details: ErrorDetails = {}) {
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

/** The same failure, said of a build step of a domain. */
export function inStep(error: unknown, step: string, domid: number): unknown {
  if (!(error instanceof XenDomainBuildError) || error.step !== undefined) return error
  const stepped = new XenDomainBuildError(error.code, `domain ${domid}: ${step}: ${error.message}`, {
    cause: error,
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
 * An error thrown by the native binding, as a `XenDomainBuildError`. The
 * binding gives every failure its code, errno and operation (`src/error.rs`);
 * only napi-rs's own statuses remain, for a JS value of the wrong type (bad
 * input) and anything else it could not convert (`INTERNAL`).
 */
export function fromNative(error: unknown): unknown {
  if (!(error instanceof Error) || error instanceof XenDomainBuildError) return error
  const { code, errno, operation, reason } = error as Error & { code?: string; errno?: number; operation?: string; reason?: string }
  const options = { cause: error, errno, operation, reason }
  if (code === undefined || NAPI_TYPE_STATUSES.has(code)) {
    return new XenDomainBuildError(code === undefined ? 'INTERNAL' : 'INVALID_ARGUMENT', error.message, options)
  }
  return new XenDomainBuildError(/^[A-Z][A-Z0-9_]*$/.test(code) ? (code as ErrorCode) : 'INTERNAL', error.message, options)
}
