/**
 * Xenstore, as domain build uses it. `openXenstore()` connects to the host's
 * xenstored through libxenstore (every call on the libuv pool);
 * `InMemoryXenstore` is the embedded store of the simulated host and tests,
 * with xenstored's rules: a tree, permissions, transactions with conflict
 * detection, the same input limits. A toolstack may plug in its own client.
 */
import type { NativeXenstore, XenstoreOpenOptions } from '../native/binding.js'
import { fromNative, invalidArgument, mapNativeErrors, XenDomainBuildError } from './errors.js'
import { binding } from './native.js'

/** What a domain may do to a node. */
export type Access = 'none' | 'read' | 'write' | 'both'

/**
 * One entry of a node's permissions. As in `xs_permissions`, the first entry
 * names the owner (who may do anything) and what every domain not listed
 * gets; each later entry grants one domain its access.
 */
export interface Permission {
  domid: number
  access: Access
}

/** The operations of a store, inside a transaction or not. */
export interface XenstoreOperations {
  /** The value at `path`, or null when there is no such node. */
  read(path: string): Promise<string | null>
  /** Writes a value, creating missing parents. */
  write(path: string, value: string): Promise<void>
  /** Writes every entry below `base`; on a store, in one transaction. */
  writeMany(base: string, entries: Readonly<Record<string, string>>): Promise<void>
  /** Creates the node (and its parents) if it is missing. */
  mkdir(path: string): Promise<void>
  /** Removes the node and everything below it; a missing node is fine if its parent exists. */
  rm(path: string): Promise<void>
  /** The names of the node's children. */
  directory(path: string): Promise<string[]>
  getPermissions(path: string): Promise<Permission[]>
  setPermissions(path: string, permissions: readonly Permission[]): Promise<void>
}

export interface TransactionOptions {
  /** Runs of `fn` before EAGAIN reaches the caller; 16. */
  attempts?: number
}

export interface Xenstore extends XenstoreOperations {
  /**
   * Starts a transaction, runs `fn` with a view bound to it, and commits.
   * When the commit conflicts with another writer (EAGAIN), nothing of it was
   * applied: `fn` runs again, up to `attempts` times. A throw from `fn`
   * aborts the transaction.
   */
  transaction<T>(fn: (tx: XenstoreOperations) => Promise<T>, options?: TransactionOptions): Promise<T>
  /** Tells xenstored about a new domain's store page and event channel. */
  introduce(domid: number, storeMfn: bigint, storePort: number): Promise<void>
  /** Makes xenstored forget a domain (its connection, watches, quota). */
  release(domid: number): Promise<void>
  /** `/local/domain/DOMID`, as xenstored names it. */
  getDomainPath(domid: number): Promise<string>
}

/** `/local/domain/DOMID`. */
export function domainPath(domid: number): string {
  return `/local/domain/${domid}`
}

/** xenstore's limits (`xs_wire.h`). */
export const XENSTORE_PAYLOAD_MAX_BYTES = 4096
export const XENSTORE_ABS_PATH_MAX_BYTES = 3072
export const XENSTORE_REL_PATH_MAX_BYTES = 2048

const VALID_PATH = /^[0-9a-zA-Z\-/_@]+$/

function shown(path: string): string {
  return JSON.stringify(path.length > 60 ? `${path.slice(0, 60)}…` : path)
}

/** A path as xenstored takes it; the same rules as the native client's. */
export function checkPath(operation: string, path: string): void {
  if (typeof path !== 'string' || path.length === 0) throw invalidArgument(`${operation}: path`, 'empty or not a string')
  if (!VALID_PATH.test(path)) {
    const bad = [...path].find((c) => !/[0-9a-zA-Z\-/_@]/.test(c)) ?? ''
    const what = bad === '\0' ? 'a NUL byte' : JSON.stringify(bad)
    throw invalidArgument(`${operation}: path ${shown(path)}`, `${what} is not allowed (xenstored takes 0-9 a-z A-Z - / _ @)`)
  }
  if (path.includes('//') || (path.length > 1 && path.endsWith('/'))) {
    throw invalidArgument(`${operation}: path ${shown(path)}`, 'an empty component')
  }
  const absolute = path.startsWith('/')
  const limit = absolute ? XENSTORE_ABS_PATH_MAX_BYTES : XENSTORE_REL_PATH_MAX_BYTES
  if (path.length > limit) {
    throw invalidArgument(`${operation}: path ${shown(path)}`, `${path.length} bytes, over xenstore's ${limit} for an ${absolute ? 'absolute' : 'relative'} path`)
  }
}

/** A write's path and value: path, NUL and value must fit the payload. */
export function checkWrite(operation: string, path: string, value: string): void {
  checkPath(operation, path)
  if (typeof value !== 'string') throw invalidArgument(`${operation}: value`, 'not a string')
  const valueBytes = Buffer.byteLength(value)
  const payload = path.length + 1 + valueBytes
  if (payload > XENSTORE_PAYLOAD_MAX_BYTES) {
    throw invalidArgument(`${operation}: value`, `${valueBytes} bytes, and with the path ${payload} bytes, over xenstore's ${XENSTORE_PAYLOAD_MAX_BYTES}-byte payload`)
  }
}

const ACCESSES: readonly Access[] = ['none', 'read', 'write', 'both']

function checkPermissions(operation: string, permissions: readonly Permission[]): void {
  if (!Array.isArray(permissions) || permissions.length === 0) throw invalidArgument(`${operation}: permissions`, "at least the owner's entry")
  permissions.forEach((p, i) => {
    if (!Number.isInteger(p?.domid) || p.domid < 0 || p.domid > 0xffff) throw invalidArgument(`${operation}: permissions[${i}].domid`, 'not a domid (0 to 65535)')
    if (!ACCESSES.includes(p.access)) throw invalidArgument(`${operation}: permissions[${i}].access`, 'not "none", "read", "write" or "both"')
  })
}

/**
 * The calls a store is made of: a transaction id (0: none) and the
 * libxenstore operation. `NativeXenstore` is one; the in-memory store is
 * another.
 */
export interface XenstoreCalls {
  read(tx: number, path: string): Promise<string | null>
  write(tx: number, path: string, value: string): Promise<void>
  writeAll(tx: number, base: string, keys: string[], values: string[]): Promise<void>
  mkdir(tx: number, path: string): Promise<void>
  rm(tx: number, path: string): Promise<void>
  directory(tx: number, path: string): Promise<string[]>
  getPermissions(tx: number, path: string): Promise<Permission[]>
  setPermissions(tx: number, path: string, permissions: Permission[]): Promise<void>
  transactionStart(): Promise<number>
  transactionEnd(tx: number, abort: boolean): Promise<void>
  introduceDomain(domid: number, storeMfn: bigint, storePort: number): Promise<void>
  releaseDomain(domid: number): Promise<void>
  getDomainPath(domid: number): Promise<string>
}

const DEFAULT_ATTEMPTS = 16

/** After a conflict: a random pause, longer with each attempt (at most 50 ms), so that writers spread out. */
function backOff(attempt: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, Math.random() * Math.min(2 ** attempt, 50)))
}

/** A `Xenstore` over a set of calls; counts the requests it makes. */
export class CallsXenstore implements Xenstore {
  readonly #calls: XenstoreCalls
  /** Requests sent to the store (one per path of a writeMany), for measurement. */
  roundTrips = 0

  constructor(calls: XenstoreCalls) {
    this.#calls = calls
  }

  /** The calls behind the store (to wrap them, e.g. to inject faults in tests). */
  get calls(): XenstoreCalls {
    return this.#calls
  }

  #view(tx: number): XenstoreOperations {
    // Read at call time: views are made before the constructor body runs.
    const calls = new Proxy({} as XenstoreCalls, { get: (_, name) => {
      const method = Reflect.get(this.#calls, name) as (...args: unknown[]) => unknown
      return method.bind(this.#calls)
    } })
    const count = (n = 1) => {
      this.roundTrips += n
    }
    return {
      read: async (path) => {
        checkPath('xs_read', path)
        count()
        return calls.read(tx, path)
      },
      write: async (path, value) => {
        checkWrite('xs_write', path, value)
        count()
        return calls.write(tx, path, value)
      },
      writeMany: async (base, entries) => {
        const keys = Object.keys(entries)
        const values = keys.map((k) => entries[k] as string)
        // Every path and value checked before the first write.
        keys.forEach((key, i) => checkWrite('xs_write', `${base}/${key}`, values[i] as string))
        count(keys.length)
        return calls.writeAll(tx, base, keys, values)
      },
      mkdir: async (path) => {
        checkPath('xs_mkdir', path)
        count()
        return calls.mkdir(tx, path)
      },
      rm: async (path) => {
        checkPath('xs_rm', path)
        count()
        return calls.rm(tx, path)
      },
      directory: async (path) => {
        checkPath('xs_directory', path)
        count()
        return calls.directory(tx, path)
      },
      getPermissions: async (path) => {
        checkPath('xs_get_permissions', path)
        count()
        return (await calls.getPermissions(tx, path)).map((p) => ({ domid: p.domid, access: p.access as Access }))
      },
      setPermissions: async (path, permissions) => {
        checkPath('xs_set_permissions', path)
        checkPermissions('xs_set_permissions', permissions)
        count()
        return calls.setPermissions(tx, path, permissions.map((p) => ({ domid: p.domid, access: p.access })))
      },
    }
  }

  readonly #direct = this.#view(0)
  read = (path: string) => this.#direct.read(path)
  write = (path: string, value: string) => this.#direct.write(path, value)
  mkdir = (path: string) => this.#direct.mkdir(path)
  rm = (path: string) => this.#direct.rm(path)
  directory = (path: string) => this.#direct.directory(path)
  getPermissions = (path: string) => this.#direct.getPermissions(path)
  setPermissions = (path: string, permissions: readonly Permission[]) => this.#direct.setPermissions(path, permissions)

  /** All or nothing: one transaction, retried on conflict. */
  writeMany(base: string, entries: Readonly<Record<string, string>>): Promise<void> {
    return this.transaction((tx) => tx.writeMany(base, entries))
  }

  async transaction<T>(fn: (tx: XenstoreOperations) => Promise<T>, options: TransactionOptions = {}): Promise<T> {
    const attempts = options.attempts ?? DEFAULT_ATTEMPTS
    if (!Number.isInteger(attempts) || attempts < 1) throw invalidArgument('transaction: attempts', 'not a whole number ≥ 1')
    for (let attempt = 1; ; attempt++) {
      this.roundTrips++
      const tx = await this.#calls.transactionStart()
      const conflict = (error: unknown) => (error as { code?: string }).code === 'EAGAIN' && attempt < attempts
      let result: T
      try {
        result = await fn(this.#view(tx))
      } catch (error) {
        this.roundTrips++
        await this.#calls.transactionEnd(tx, true).catch(() => undefined)
        // xenstored may also answer EAGAIN inside a transaction: run it again then too.
        if (!conflict(error)) throw error
        await backOff(attempt)
        continue
      }
      try {
        this.roundTrips++
        await this.#calls.transactionEnd(tx, false)
        return result
      } catch (error) {
        if (!conflict(error)) throw error
        await backOff(attempt)
      }
    }
  }

  async introduce(domid: number, storeMfn: bigint, storePort: number): Promise<void> {
    this.roundTrips++
    return this.#calls.introduceDomain(domid, storeMfn, storePort)
  }

  async release(domid: number): Promise<void> {
    this.roundTrips++
    return this.#calls.releaseDomain(domid)
  }

  async getDomainPath(domid: number): Promise<string> {
    this.roundTrips++
    return this.#calls.getDomainPath(domid)
  }
}

/** The host's xenstored, through libxenstore. */
export class RealXenstore extends CallsXenstore {
  /** The libxenstore that was loaded. */
  readonly libraryName: string

  constructor(native: NativeXenstore) {
    super(mapNativeErrors(native) as unknown as XenstoreCalls)
    this.libraryName = native.libraryName
  }
}

/**
 * Connects to the host's xenstored through its libxenstore (socket or xenbus
 * device, as libxenstore finds). Rejects with XENSTORE_UNAVAILABLE, whose
 * `reason` says what is missing: `no-library`, `no-xenstored`, `no-privileges`.
 */
export async function openXenstore(options?: XenstoreOpenOptions): Promise<RealXenstore> {
  try {
    return new RealXenstore(await binding().openXenstore(options))
  } catch (error) {
    throw fromNative(error)
  }
}

// ---------------------------------------------------------------------------
// The in-memory store.

/** A node of the in-memory tree; nodes are never changed, only replaced. */
interface Node {
  readonly value: string
  readonly perms: readonly Permission[]
  readonly children: ReadonlyMap<string, Node>
  /** The generation of the node's last change (value, permissions, children added or removed). */
  readonly gen: number
}

/** A missing node's generation, in conflict checks. */
const MISSING = -1

const ERRNO = { EPERM: 1, ENOENT: 2, EAGAIN: 11, EACCES: 13, EINVAL: 22 } as const

function xsError(code: keyof typeof ERRNO, operation: string, what: string): XenDomainBuildError {
  return new XenDomainBuildError(code, `${operation} failed: ${code} (${what})`, { errno: ERRNO[code], operation })
}

function split(path: string): string[] {
  return path === '/' ? [] : path.slice(1).split('/')
}

function nodeAt(root: Node, parts: readonly string[]): Node | undefined {
  let node: Node | undefined = root
  for (const part of parts) {
    node = node.children.get(part)
    if (node === undefined) return undefined
  }
  return node
}

/** xenstored's `perm_for_conn`: dom0 may do anything, the owner too, then the ACL, then "others". */
function accessOf(perms: readonly Permission[], domid: number): { read: boolean; write: boolean; owner: boolean } {
  const owner = perms[0]
  if (domid === 0 || owner?.domid === domid) return { read: true, write: true, owner: true }
  const entry = perms.slice(1).find((p) => p.domid === domid) ?? owner
  const access = entry?.access ?? 'none'
  return { read: access === 'read' || access === 'both', write: access === 'write' || access === 'both', owner: false }
}

/** A new node's permissions: its parent's, but a domain other than dom0 owns what it creates. */
function inherited(parent: readonly Permission[], creator: number): Permission[] {
  const perms = parent.map((p) => ({ ...p }))
  if (creator !== 0 && perms[0] !== undefined) perms[0] = { domid: creator, access: perms[0].access }
  return perms
}

/** The parent with `name` set to `child` (or removed); its generation moves when its children change. */
function withChild(parent: Node, name: string, child: Node | undefined, gen: number): Node {
  const children = new Map(parent.children)
  const had = children.has(name)
  if (child === undefined) children.delete(name)
  else children.set(name, child)
  return { ...parent, children, gen: had === (child !== undefined) ? parent.gen : gen }
}

/**
 * The tree with the node at `parts` replaced by `leaf(old, parent)`;
 * missing parents are created (empty, with inherited permissions).
 */
function put(node: Node, parts: readonly string[], i: number, leaf: (old: Node | undefined, parent: Node) => Node | undefined, gen: number, creator: number): Node {
  const name = parts[i] as string
  const child = node.children.get(name)
  let replaced: Node | undefined
  if (i === parts.length - 1) replaced = leaf(child, node)
  else {
    const base = child ?? { value: '', perms: inherited(node.perms, creator), children: new Map(), gen }
    replaced = put(base, parts, i + 1, leaf, gen, creator)
  }
  return withChild(node, name, replaced, gen)
}

function descendants(node: Node, path: string, into: string[]): void {
  for (const [name, child] of node.children) {
    const childPath = path === '/' ? `/${name}` : `${path}/${name}`
    into.push(childPath)
    descendants(child, childPath, into)
  }
}

interface OpenTransaction {
  /** The committed tree when the transaction started. */
  readonly snapshot: Node
  /** The transaction's own view: the snapshot and its changes. */
  root: Node
  /** Every node the transaction read or changed: compared at commit. */
  readonly touched: Set<string>
  /** Its changes, replayed on the committed tree at commit. */
  readonly changes: ((root: Node, gen: number) => Node)[]
  readonly writes: [string, string][]
}

export interface Introduction {
  domid: number
  storeMfn: bigint
  storePort: number
}

/** The shared state of an in-memory store and its per-domain views. */
class MemoryState {
  root: Node = { value: '', perms: [{ domid: 0, access: 'none' }], children: new Map(), gen: 0 }
  generation = 0
  nextTx = 1
  readonly transactions = new Map<number, OpenTransaction>()
  readonly introduced = new Map<number, Introduction>()
  readonly introductions: Introduction[] = []
  readonly writes: [string, string][] = []
  constructor(
    readonly writesKept: number,
    readonly domainExists: (domid: number) => boolean,
  ) {}

  logWrite(path: string, value: string): void {
    this.writes.push([path, value])
    // Keep the newest writes only: a long-lived store must not grow without bound.
    if (this.writes.length > 2 * this.writesKept) this.writes.splice(0, this.writes.length - this.writesKept)
  }
}

/** The calls of the in-memory store, made as one domain. */
class MemoryCalls implements XenstoreCalls {
  constructor(
    readonly state: MemoryState,
    readonly domid: number,
  ) {}

  #absolute(path: string): string {
    if (path.startsWith('/')) return path
    return `${domainPath(this.domid)}/${path}`
  }

  #tx(operation: string, tx: number): OpenTransaction | undefined {
    if (tx === 0) return undefined
    const open = this.state.transactions.get(tx)
    if (open === undefined) throw xsError('ENOENT', operation, `no transaction ${tx}`)
    return open
  }

  /** The tree the call sees, and a note of what it touched. */
  #view(tx: OpenTransaction | undefined): Node {
    return tx?.root ?? this.state.root
  }

  /** Checks the domain's access to an existing node, or to a missing node's nearest ancestor. */
  #check(operation: string, root: Node, path: string, need: 'read' | 'write' | 'owner'): Node | undefined {
    const parts = split(path)
    let node: Node = root
    for (const part of parts) {
      const child = node.children.get(part)
      if (child === undefined) {
        // Missing: the caller may learn that only if it may read the parent (xenstored's ENOENT_OK rule).
        if (need === 'read' && !accessOf(node.perms, this.domid).read) throw xsError('EACCES', operation, path)
        if (need === 'write' && !accessOf(node.perms, this.domid).write) throw xsError('EACCES', operation, path)
        return undefined
      }
      node = child
    }
    const access = accessOf(node.perms, this.domid)
    if (!access[need]) throw xsError('EACCES', operation, path)
    return node
  }

  /** Applies a change now (outside a transaction) or in the transaction's view. */
  #change(tx: OpenTransaction | undefined, touched: string[], change: (root: Node, gen: number) => Node, write?: [string, string]): void {
    if (tx === undefined) {
      this.state.generation++
      this.state.root = change(this.state.root, this.state.generation)
      if (write) this.state.logWrite(...write)
      return
    }
    for (const path of touched) tx.touched.add(path)
    tx.root = change(tx.root, this.state.generation + 1)
    tx.changes.push(change)
    if (write) tx.writes.push(write)
  }

  async read(txId: number, path: string): Promise<string | null> {
    const tx = this.#tx('xs_read', txId)
    const p = this.#absolute(path)
    tx?.touched.add(p)
    return this.#check('xs_read', this.#view(tx), p, 'read')?.value ?? null
  }

  async write(txId: number, path: string, value: string): Promise<void> {
    checkWrite('xs_write', path, value)
    const tx = this.#tx('xs_write', txId)
    const p = this.#absolute(path)
    this.#check('xs_write', this.#view(tx), p, 'write')
    const creator = this.domid
    const change = (root: Node, gen: number): Node =>
      p === '/'
        ? { ...root, value, gen }
        : put(root, split(p), 0, (old, parent) => ({ value, perms: old?.perms ?? inherited(parent.perms, creator), children: old?.children ?? new Map(), gen }), gen, creator)
    this.#change(tx, this.#touchedBy(this.#view(tx), p), change, [p, value])
  }

  async writeAll(txId: number, base: string, keys: string[], values: string[]): Promise<void> {
    keys.forEach((key, i) => checkWrite('xs_write', `${base}/${key}`, values[i] as string))
    for (const [i, key] of keys.entries()) await this.write(txId, `${base}/${key}`, values[i] as string)
  }

  async mkdir(txId: number, path: string): Promise<void> {
    checkPath('xs_mkdir', path)
    const tx = this.#tx('xs_mkdir', txId)
    const p = this.#absolute(path)
    if (this.#check('xs_mkdir', this.#view(tx), p, 'write') !== undefined) {
      tx?.touched.add(p)
      return
    }
    const creator = this.domid
    this.#change(tx, this.#touchedBy(this.#view(tx), p), (root, gen) =>
      put(root, split(p), 0, (old, parent) => old ?? { value: '', perms: inherited(parent.perms, creator), children: new Map(), gen }, gen, creator),
    )
  }

  async rm(txId: number, path: string): Promise<void> {
    checkPath('xs_rm', path)
    const tx = this.#tx('xs_rm', txId)
    const p = this.#absolute(path)
    if (p === '/') throw xsError('EINVAL', 'xs_rm', 'the root cannot be removed')
    const root = this.#view(tx)
    const node = this.#check('xs_rm', root, p, 'write')
    const parentPath = p.slice(0, p.lastIndexOf('/')) || '/'
    if (node === undefined) {
      tx?.touched.add(p)
      // xenstored: removing a missing node is fine when its parent exists.
      if (nodeAt(root, split(parentPath)) === undefined) throw xsError('ENOENT', 'xs_rm', p)
      return
    }
    const touched = [p, parentPath]
    descendants(node, p, touched)
    this.#change(tx, touched, (r, gen) => {
      // Replayed on a tree where the node may be gone already: nothing to do then.
      if (nodeAt(r, split(p)) === undefined) return r
      return put(r, split(p), 0, () => undefined, gen, 0)
    })
  }

  async directory(txId: number, path: string): Promise<string[]> {
    const tx = this.#tx('xs_directory', txId)
    const p = this.#absolute(path)
    tx?.touched.add(p)
    const node = this.#check('xs_directory', this.#view(tx), p, 'read')
    if (node === undefined) throw xsError('ENOENT', 'xs_directory', p)
    return [...node.children.keys()]
  }

  async getPermissions(txId: number, path: string): Promise<Permission[]> {
    const tx = this.#tx('xs_get_permissions', txId)
    const p = this.#absolute(path)
    tx?.touched.add(p)
    const node = this.#check('xs_get_permissions', this.#view(tx), p, 'read')
    if (node === undefined) throw xsError('ENOENT', 'xs_get_permissions', p)
    return node.perms.map((perm) => ({ ...perm }))
  }

  async setPermissions(txId: number, path: string, permissions: Permission[]): Promise<void> {
    checkPath('xs_set_permissions', path)
    checkPermissions('xs_set_permissions', permissions)
    const tx = this.#tx('xs_set_permissions', txId)
    const p = this.#absolute(path)
    const node = this.#check('xs_set_permissions', this.#view(tx), p, 'owner')
    if (node === undefined) throw xsError('ENOENT', 'xs_set_permissions', p)
    // A domain other than dom0 may not give its node away.
    if (this.domid !== 0 && permissions[0]?.domid !== node.perms[0]?.domid) throw xsError('EPERM', 'xs_set_permissions', `${p}: only dom0 changes an owner`)
    // xenstored accounts a node to its owner, which must exist (other entries naming missing domains are kept, and match nobody).
    const owner = permissions[0]?.domid ?? 0
    if (owner !== 0 && !this.state.domainExists(owner)) throw xsError('ENOENT', 'xs_set_permissions', `the owner, domain ${owner}, does not exist`)
    const perms = permissions.map((perm) => ({ ...perm }))
    this.#change(tx, [p], (root, gen) =>
      p === '/' ? { ...root, perms, gen } : put(root, split(p), 0, (old) => (old === undefined ? undefined : { ...old, perms, gen }), gen, 0),
    )
  }

  /** What a write to `path` touches: the node, and if it is missing, the
   * missing parents and the nearest existing one (whose children change). */
  #touchedBy(root: Node, path: string): string[] {
    const parts = split(path)
    const list = [path]
    for (let i = parts.length - 1; i >= 0; i--) {
      const ancestor = i === 0 ? '/' : `/${parts.slice(0, i).join('/')}`
      if (nodeAt(root, parts.slice(0, i + 1)) !== undefined) break
      list.push(ancestor)
    }
    return list
  }

  async transactionStart(): Promise<number> {
    const id = this.state.nextTx++
    this.state.transactions.set(id, { snapshot: this.state.root, root: this.state.root, touched: new Set(), changes: [], writes: [] })
    return id
  }

  async transactionEnd(txId: number, abort: boolean): Promise<void> {
    const tx = this.#tx('xs_transaction_end', txId) as OpenTransaction
    this.state.transactions.delete(txId)
    if (abort) return
    const genIn = (root: Node, path: string) => nodeAt(root, split(path))?.gen ?? MISSING
    for (const path of tx.touched) {
      if (genIn(tx.snapshot, path) !== genIn(this.state.root, path)) throw xsError('EAGAIN', 'xs_transaction_end', `${path} changed since the transaction started`)
    }
    if (tx.changes.length === 0) return
    this.state.generation++
    for (const change of tx.changes) this.state.root = change(this.state.root, this.state.generation)
    for (const write of tx.writes) this.state.logWrite(...write)
  }

  async introduceDomain(domid: number, storeMfn: bigint, storePort: number): Promise<void> {
    if (this.domid !== 0) throw xsError('EACCES', 'xs_introduce_domain', 'only dom0 introduces domains')
    const introduction = { domid, storeMfn, storePort }
    this.state.introduced.set(domid, introduction)
    this.state.introductions.push(introduction)
  }

  async releaseDomain(domid: number): Promise<void> {
    if (this.domid !== 0) throw xsError('EACCES', 'xs_release_domain', 'only dom0 releases domains')
    if (domid === 0) throw xsError('EINVAL', 'xs_release_domain', 'dom0 cannot be released')
    if (!this.state.introduced.delete(domid)) throw xsError('ENOENT', 'xs_release_domain', `domain ${domid} was not introduced`)
  }

  async getDomainPath(domid: number): Promise<string> {
    return domainPath(domid)
  }
}

/** How `asDomain` hands a view the shared state. */
const VIEW = Symbol('view')

export interface InMemoryXenstoreOptions {
  /** How many of the newest writes `writes` keeps; 1000. */
  writesKept?: number
  /**
   * Whether a domain exists: xenstored refuses a node owned by one that does
   * not (ENOENT). Every domain exists when absent.
   */
  domainExists?: (domid: number) => boolean
}

/**
 * The embedded store: xenstored's tree, permissions and transactions, in
 * memory. It acts as dom0; `asDomain(domid)` gives a view acting as a guest,
 * whose access is checked as xenstored checks it.
 */
export class InMemoryXenstore extends CallsXenstore {
  readonly #state: MemoryState
  /** The domain this view acts as (0: dom0). */
  readonly domid: number

  constructor(options: InMemoryXenstoreOptions = {}) {
    const view = (options as { [VIEW]?: [MemoryState, number] })[VIEW]
    const state = view?.[0] ?? new MemoryState(options.writesKept ?? 1000, options.domainExists ?? (() => true))
    const domid = view?.[1] ?? 0
    super(new MemoryCalls(state, domid))
    this.#state = state
    this.domid = domid
  }

  /** The same store, seen by domain `domid`: its access is checked as xenstored checks it. */
  asDomain(domid: number): InMemoryXenstore {
    if (!Number.isInteger(domid) || domid < 0 || domid > 0xffff) throw invalidArgument('asDomain: domid', 'not a domid (0 to 65535)')
    return new InMemoryXenstore({ [VIEW]: [this.#state, domid] } as InMemoryXenstoreOptions)
  }

  /** Every node but the root, with its value (empty for a directory). */
  get entries(): Map<string, string> {
    const map = new Map<string, string>()
    const walk = (node: Node, path: string) => {
      for (const [name, child] of node.children) {
        const childPath = path === '/' ? `/${name}` : `${path}/${name}`
        map.set(childPath, child.value)
        walk(child, childPath)
      }
    }
    walk(this.#state.root, '/')
    return map
  }

  /** The newest writes, in order: [path, value] (see `writesKept`). */
  get writes(): readonly [string, string][] {
    return this.#state.writes
  }

  /** Every introduction, in order. */
  get introductions(): readonly Introduction[] {
    return this.#state.introductions
  }

  /** Domains introduced and not released. */
  get introduced(): ReadonlyMap<number, Introduction> {
    return this.#state.introduced
  }
}
