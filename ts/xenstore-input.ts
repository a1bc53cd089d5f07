/**
 * xenstored's input rules, once for TypeScript: path syntax and length, a
 * write's payload, permission lists, and the domid a store acts as. Each
 * refuses with INVALID_ARGUMENT naming the operation and the field, with the
 * same words as the Rust crate's (crates/xenstore/src/input.rs).
 *
 * Who checks: the TypeScript client (`CallsXenstore`) checks every request
 * before it reaches any backend, so the in-memory store, a toolstack's own
 * calls and the real store all refuse bad input alike, and a `writeMany` or
 * a transaction is refused whole before its first write. The in-memory store
 * is reached only through that client and does not check again. The Rust
 * crate keeps its own checks as the boundary of its public API: it turns
 * paths into C strings for libxenstore, and is also called from Rust (its
 * tests, the real-Xen tests) with no TypeScript in front. So a request to the
 * real store is checked once on each side of N-API, never twice on one.
 */
import { invalidArgument } from './errors.js'

/** xenstore's limits (`xs_wire.h`). */
export const XENSTORE_PAYLOAD_MAX_BYTES = 4096
export const XENSTORE_ABS_PATH_MAX_BYTES = 3072
export const XENSTORE_REL_PATH_MAX_BYTES = 2048

/** The characters xenstored takes in a path. */
const PATH_CHAR = /[0-9a-zA-Z\-/_@]/
const VALID_PATH = /^[0-9a-zA-Z\-/_@]+$/

function shown(path: string): string {
  return JSON.stringify(path.length > 60 ? `${path.slice(0, 60)}…` : path)
}

/** A path as xenstored takes it; the same rules as the native client's. */
export function checkPath(operation: string, path: string): void {
  if (typeof path !== 'string' || path.length === 0) throw invalidArgument(`${operation}: path`, 'empty or not a string')
  if (!VALID_PATH.test(path)) {
    const bad = [...path].find((c) => !PATH_CHAR.test(c)) ?? ''
    const what = bad === '\0' ? 'a NUL byte' : JSON.stringify(bad)
    throw invalidArgument(`${operation}: path ${shown(path)}`, `${what} is not allowed (xenstored takes 0-9 a-z A-Z - / _ @)`)
  }
  if (path.includes('//') || (path.length > 1 && path.endsWith('/'))) {
    throw invalidArgument(`${operation}: path ${shown(path)}`, 'an empty component')
  }
  const absolute = path.startsWith('/')
  const limit = absolute ? XENSTORE_ABS_PATH_MAX_BYTES : XENSTORE_REL_PATH_MAX_BYTES
  if (path.length > limit) {
    throw invalidArgument(
      `${operation}: path ${shown(path)}`,
      `${path.length} bytes, over xenstore's ${limit} for an ${absolute ? 'absolute' : 'relative'} path`,
    )
  }
}

/**
 * Whether `key` names a node below a base path: xenstored's characters, not
 * starting with `/`, no empty component between two slashes.
 */
export function isRelativeKey(key: string): boolean {
  return VALID_PATH.test(key) && !key.startsWith('/') && !key.includes('//')
}

/** A write's path and value: path, NUL and value must fit the payload. */
export function checkWrite(operation: string, path: string, value: string): void {
  checkPath(operation, path)
  if (typeof value !== 'string') throw invalidArgument(`${operation}: value`, 'not a string')
  const valueBytes = Buffer.byteLength(value)
  const payload = path.length + 1 + valueBytes
  if (payload > XENSTORE_PAYLOAD_MAX_BYTES) {
    throw invalidArgument(
      `${operation}: value`,
      `${valueBytes} bytes, and with the path ${payload} bytes, over xenstore's ${XENSTORE_PAYLOAD_MAX_BYTES}-byte payload`,
    )
  }
}

/** The largest domid xenstored keeps (16 bits; Xen's reserved ids included). */
export const XENSTORE_MAX_DOMID = 0xffff

/** A domid as xenstored keeps one. */
export function isXenstoreDomid(domid: unknown): domid is number {
  return Number.isInteger(domid) && (domid as number) >= 0 && (domid as number) <= XENSTORE_MAX_DOMID
}

/** A domid a store acts as, or one a permission names. */
export function checkXenstoreDomid(field: string, domid: unknown): void {
  if (!isXenstoreDomid(domid)) throw invalidArgument(field, 'not a domid (0 to 65535)')
}

const ACCESSES: readonly string[] = ['none', 'read', 'write', 'both']

/** A permission list: the owner's entry first, each entry a domid and one of xenstore's accesses. */
export function checkPermissions(operation: string, permissions: readonly { domid: number; access: string }[]): void {
  if (!Array.isArray(permissions) || permissions.length === 0)
    throw invalidArgument(`${operation}: permissions`, "at least the owner's entry")
  permissions.forEach((p, i) => {
    checkXenstoreDomid(`${operation}: permissions[${i}].domid`, p?.domid)
    if (!ACCESSES.includes(p.access))
      throw invalidArgument(`${operation}: permissions[${i}].access`, 'not "none", "read", "write" or "both"')
  })
}
