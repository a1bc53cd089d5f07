/**
 * Checks of what a caller passes, each refusing with INVALID_ARGUMENT naming
 * the field, so that bad input is found before the first hypercall.
 */
import { describe, invalidArgument } from './errors.js'

/** Linux's limit on one argument of a program (MAX_ARG_STRLEN, NUL included). */
export const MAX_ARGUMENT_BYTES = 131_072
/** Xen's room for a PV kernel's command line (MAX_GUEST_CMDLINE, NUL included). */
export const MAX_PV_CMDLINE_BYTES = 1024
/** The largest domain id a guest can have (DOMID_FIRST_RESERVED - 1). */
export const MAX_DOMID = 0x7fef

/** An options object: absent is fine (`{}`), anything but a plain object is not. */
export function optionsObject<T extends object>(field: string, value: T | undefined | null): Partial<T> {
  if (value === undefined) return {}
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw invalidArgument(field, `expected an object, got ${describe(value)}`)
  }
  return value
}

/** A string without NUL bytes (it becomes a C string), of at most `maxBytes` in UTF-8. */
export function cString(field: string, value: unknown, maxBytes = MAX_ARGUMENT_BYTES - 1): string {
  if (typeof value !== 'string') throw invalidArgument(field, `expected a string, got ${describe(value)}`)
  if (value.includes('\0')) throw invalidArgument(field, 'contains a NUL byte')
  const bytes = Buffer.byteLength(value)
  if (bytes > maxBytes) throw invalidArgument(field, `is ${bytes} bytes, more than ${maxBytes}`)
  return value
}

export function optionalCString(field: string, value: unknown, maxBytes?: number): string | undefined {
  return value === undefined ? undefined : cString(field, value, maxBytes)
}

export function optionalBoolean(field: string, value: unknown): void {
  if (value !== undefined && typeof value !== 'boolean') throw invalidArgument(field, `expected a boolean, got ${describe(value)}`)
}

export function optionalFunction(field: string, value: unknown): void {
  if (value !== undefined && typeof value !== 'function') throw invalidArgument(field, `expected a function, got ${describe(value)}`)
}

export function optionalSignal(field: string, value: unknown): void {
  if (value !== undefined && !(value instanceof AbortSignal))
    throw invalidArgument(field, `expected an AbortSignal, got ${describe(value)}`)
}

/** A guest's domain id: 1 to MAX_DOMID (0 is dom0, above are Xen's reserved ids). */
export function guestDomid(field: string, value: unknown): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 1 || value > MAX_DOMID) {
    throw invalidArgument(field, `${describe(value)} is not a guest's domain id (1 to ${MAX_DOMID})`)
  }
  return value
}

export function optionalDomid(field: string, value: unknown): void {
  if (value !== undefined && (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0 || value > MAX_DOMID)) {
    throw invalidArgument(field, `${describe(value)} is not a domain id from 0 to ${MAX_DOMID}`)
  }
}

/** One of `choices`, or absent. */
export function optionalChoice<T extends string>(field: string, value: unknown, choices: readonly T[]): T | undefined {
  if (value === undefined) return undefined
  if (typeof value !== 'string' || !(choices as readonly string[]).includes(value)) {
    throw invalidArgument(field, `${describe(value)} is not one of ${choices.map((c) => JSON.stringify(c)).join(', ')}`)
  }
  return value as T
}

/** A whole number ≥ 0 of some unit (`KiB`, `pages`), or absent. */
export function optionalWholeNumber(field: string, value: unknown, unit: string): void {
  if (value !== undefined && (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0)) {
    throw invalidArgument(field, `${describe(value)} is not a whole number of ${unit} ≥ 0`)
  }
}

/** A positive, finite, whole number of milliseconds, or absent. */
export function optionalMilliseconds(field: string, value: unknown): void {
  if (value !== undefined && (typeof value !== 'number' || !Number.isSafeInteger(value) || value <= 0)) {
    throw invalidArgument(field, `${describe(value)} is not a whole number of milliseconds above 0`)
  }
}

/** A domain builder (`SpawnedXenguest`, `SimulatedXenguest`, or any object with a `run` method). */
export function xenguestRunner(field: string, value: unknown): void {
  const runner = value as { run?: unknown } | null | undefined
  if (runner === null || typeof runner !== 'object' || typeof runner.run !== 'function') {
    throw invalidArgument(field, `expected a domain builder (SpawnedXenguest, SimulatedXenguest, ...), got ${describe(value)}`)
  }
}

/** More arguments for a program: an array of C strings, or absent. */
export function optionalArguments(field: string, value: unknown): void {
  if (value === undefined) return
  if (!Array.isArray(value)) throw invalidArgument(field, `expected an array, got ${describe(value)}`)
  for (const [i, arg] of value.entries()) cString(`${field}[${i}]`, arg)
}

/** A file, by its path (a non-empty C string) or by an open descriptor. */
export function pathOrFileDescriptor(field: string, value: unknown): void {
  if (typeof value === 'number') {
    fileDescriptor(field, value)
    return
  }
  cString(field, value)
  if (value === '') throw invalidArgument(field, 'is empty')
}

/** An open file descriptor's number: a whole number from 0 to 2^31 − 1. */
export function fileDescriptor(field: string, value: unknown): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0 || value > 0x7fff_ffff) {
    throw invalidArgument(field, `${describe(value)} is not a file descriptor (a whole number from 0 to 2^31 - 1)`)
  }
  return value
}
