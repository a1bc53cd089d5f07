/**
 * Errors a caller can act on. Each has a stable `code`; hypercall errors also
 * carry the errno and the operation that failed.
 */
export type ErrorCode =
  | 'INVALID_ARGUMENT'
  | 'NATIVE_ADDON_MISSING'
  | 'XEN_UNAVAILABLE'
  | 'NOT_ENOUGH_MEMORY'
  | 'ENOMEM'
  | 'XENGUEST_FAILED'
  | 'ABORTED'
  | 'TIMEOUT'

export class XenDomainBuildError extends Error {
  readonly code: ErrorCode
  readonly errno?: number
  readonly operation?: string

  constructor(code: ErrorCode, message: string, options: { cause?: unknown; errno?: number; operation?: string } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause })
    this.name = 'XenDomainBuildError'
    this.code = code
    if (options.errno !== undefined) this.errno = options.errno
    if (options.operation !== undefined) this.operation = options.operation
  }
}

export function invalidArgument(field: string, problem: string): XenDomainBuildError {
  return new XenDomainBuildError('INVALID_ARGUMENT', `${field}: ${problem}`)
}

/** Describes a value for an error message without dumping it whole. */
export function describe(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}…` : value)
  if (typeof value === 'bigint') return `${value}n`
  if (Array.isArray(value)) return 'an array'
  if (value === null) return 'null'
  return typeof value === 'object' ? 'an object' : String(value)
}

const CODES = new Set<string>([
  'INVALID_ARGUMENT',
  'XEN_UNAVAILABLE',
  'NOT_ENOUGH_MEMORY',
  'ENOMEM',
  'XENGUEST_FAILED',
  'ABORTED',
  'TIMEOUT',
])

/** napi-rs's own statuses for a JS value of the wrong type. */
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
 * The one place where an error thrown by the native binding becomes a
 * `XenDomainBuildError`. The binding already sets our codes; napi-rs's type
 * statuses mean a JS value of the wrong type got through, which is bad input.
 */
export function fromNative(error: unknown): unknown {
  if (!(error instanceof Error)) return error
  const { code, errno, operation } = error as Error & { code?: string; errno?: number; operation?: string }
  const options = { cause: error, errno, operation }
  if (code !== undefined && CODES.has(code)) return new XenDomainBuildError(code as ErrorCode, error.message, options)
  if (code !== undefined && NAPI_TYPE_STATUSES.has(code)) {
    return new XenDomainBuildError('INVALID_ARGUMENT', error.message, options)
  }
  return error
}
