/**
 * Xenstore, as domain build uses it. `openXenstore()` connects to the host's
 * xenstored through libxenstore (every call on the libuv pool);
 * `InMemoryXenstore` is the embedded store of the simulated host and tests,
 * with xenstored's rules: a tree, permissions, transactions with conflict
 * detection, the same input limits. A toolstack may plug in its own client.
 */
import { constants } from 'node:os'
import type { NativeXenstore, XenstoreOpenOptions } from '../native/binding.js'

export type { NativeXenstore, XenstoreOpenOptions }
import { delay } from './timers.js'
import { invalidArgument, XenDomainBuildError } from './errors.js'
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

/** How `transaction` retries. */
export interface TransactionOptions {
  /** Runs of `fn` before EAGAIN reaches the caller; 64. */
  attempts?: number
}

/**
 * A xenstore: the host's xenstored (`openXenstore()`) or the in-memory one
 * (`new InMemoryXenstore()`), with transactions and domain introduction.
 */
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

/** Toolstack-private: `/xenops/domain/DOMID`. */
export function xenopsPath(domid: number): string {
  return `/xenops/domain/${domid}`
}

/** libxl's: `/libxl/DOMID`. */
export function libxlPath(domid: number): string {
  return `/libxl/${domid}`
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

/**
 * xenopsd retries a conflicting transaction until it commits; 64 runs, with
 * the pauses below, come to tens of seconds of conflicts before EAGAIN
 * reaches the caller.
 */
const DEFAULT_ATTEMPTS = 64

/**
 * After a conflict: a random pause, longer with each attempt, up to 500 ms,
 * so that writers spread out. The cap must exceed a transaction's own time:
 * under load (Debian's xenstored under QEMU, four writers creating and
 * destroying domains) one took hundreds of ms, and pauses capped at 50 ms
 * had 16 runs of one conflict with others every time.
 */
function backOff(attempt: number): Promise<void> {
  return delay(Math.random() * Math.min(2 ** attempt, 500))
}

/** A `Xenstore` over a set of calls; counts the requests it makes. */
export class CallsXenstore implements Xenstore {
  readonly #calls: XenstoreCalls
  /** Requests sent to the store (one per path of a writeMany), for measurement. */
  roundTrips = 0
  /** The last transaction queued: the next one starts when it settles. */
  #transactions: Promise<void> = Promise.resolve()

  constructor(calls: XenstoreCalls) {
    this.#calls = calls
  }

  /** The calls behind the store (to wrap them, e.g. to inject faults in tests). */
  get calls(): XenstoreCalls {
    return this.#calls
  }

  #view(tx: number): XenstoreOperations {
    const calls = this.#calls
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

  #directView: XenstoreOperations | undefined
  get #direct(): XenstoreOperations {
    this.#directView ??= this.#view(0)
    return this.#directView
  }

  read(path: string): Promise<string | null> {
    return this.#direct.read(path)
  }
  write(path: string, value: string): Promise<void> {
    return this.#direct.write(path, value)
  }
  mkdir(path: string): Promise<void> {
    return this.#direct.mkdir(path)
  }
  rm(path: string): Promise<void> {
    return this.#direct.rm(path)
  }
  directory(path: string): Promise<string[]> {
    return this.#direct.directory(path)
  }
  getPermissions(path: string): Promise<Permission[]> {
    return this.#direct.getPermissions(path)
  }
  setPermissions(path: string, permissions: readonly Permission[]): Promise<void> {
    return this.#direct.setPermissions(path, permissions)
  }

  /** All or nothing: one transaction, retried on conflict. */
  writeMany(base: string, entries: Readonly<Record<string, string>>): Promise<void> {
    return this.transaction((tx) => tx.writeMany(base, entries))
  }

  /**
   * This client's transactions run one after another: xenstored serves its
   * requests one at a time anyway, and transactions of one toolstack started
   * together (a mass start's `createDomain`s: each adds a child to
   * `/local/domain` and `/vm`) conflict with one another, each conflict
   * costing a whole transaction and a pause. On the real Xen, 16 at once took
   * 21 s to commit that way. Conflicts with other clients are still retried.
   */
  transaction<T>(fn: (tx: XenstoreOperations) => Promise<T>, options: TransactionOptions = {}): Promise<T> {
    const attempts = options.attempts ?? DEFAULT_ATTEMPTS
    if (!Number.isInteger(attempts) || attempts < 1) return Promise.reject(invalidArgument('transaction: attempts', 'not a whole number ≥ 1'))
    const run = this.#transactions.then(() => this.#transact(fn, attempts))
    this.#transactions = run.then(
      () => undefined,
      () => undefined,
    )
    return run
  }

  async #transact<T>(fn: (tx: XenstoreOperations) => Promise<T>, attempts: number): Promise<T> {
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
  readonly #native: NativeXenstore

  constructor(native: NativeXenstore) {
    // Its methods' errors are XenDomainBuildErrors already (see native.ts).
    super(native as unknown as XenstoreCalls)
    this.libraryName = native.libraryName
    this.#native = native
  }

  /** Lets go of the connection once the calls in flight end; later calls fail with CLOSED. */
  close(): void {
    this.#native.close()
  }

  /** `await using xs = await openXenstore()`: closes it. */
  async [Symbol.asyncDispose](): Promise<void> {
    this.close()
  }
}

/**
 * Connects to the host's xenstored through its libxenstore (socket or xenbus
 * device, as libxenstore finds). Rejects with XENSTORE_UNAVAILABLE, whose
 * `reason` says what is missing: `no-library`, `no-xenstored`, `no-privileges`.
 */
export async function openXenstore(options?: XenstoreOpenOptions): Promise<RealXenstore> {
  return new RealXenstore(await binding().openXenstore(options))
}

// ---------------------------------------------------------------------------
// The in-memory store.

/** A node: its value, permissions, children's names, and the generation of its last change. */
interface Entry {
  value: string
  perms: Permission[]
  children: Set<string>
  /** Moves when the value, the permissions or the set of children changes. */
  gen: number
}

/** A missing node's generation, in conflict checks. */
const MISSING = -1

/** The errors xenstored answers with (Linux's numbers, as Xen's). */
type XenstoreErrno = 'EPERM' | 'ENOENT' | 'EAGAIN' | 'EACCES' | 'EINVAL'

function xsError(code: XenstoreErrno, operation: string, what: string): XenDomainBuildError {
  return new XenDomainBuildError(code, `${operation} failed: ${code} (${what})`, { errno: constants.errno[code], operation })
}

function parentOf(path: string): string {
  const slash = path.lastIndexOf('/')
  return slash <= 0 ? '/' : path.slice(0, slash)
}

function nameOf(path: string): string {
  return path.slice(path.lastIndexOf('/') + 1)
}

function childPath(path: string, name: string): string {
  return path === '/' ? `/${name}` : `${path}/${name}`
}

/** xenstored's `perm_for_conn`: dom0 may do anything, the owner too, then the ACL, then "others". */
const ALL_ACCESS = Object.freeze({ read: true, write: true, owner: true })

function accessOf(perms: readonly Permission[], domid: number): { read: boolean; write: boolean; owner: boolean } {
  const owner = perms[0]
  if (domid === 0 || owner?.domid === domid) return ALL_ACCESS
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

/**
 * A transaction, as xenstored keeps one: the nodes it changed (its own
 * copies; null: removed), and the generation of every node it read or
 * changed, taken when it first touched it. It commits only if none of those
 * has changed since. A call outside any transaction is one that commits at once.
 */
interface OpenTransaction {
  readonly own: Map<string, Entry | null>
  /** Null for a call outside any transaction: nothing can change under it. */
  readonly seen: Map<string, number> | null
  readonly writes: [string, string][]
  view?: TxView
}

/** A domain introduced to the in-memory xenstored: its store page and event channel. */
export interface Introduction {
  domid: number
  storeMfn: bigint
  storePort: number
}

/** The shared state of an in-memory store and its per-domain views. */
class MemoryState {
  /** The committed tree, by path; changed in place at each commit. */
  readonly nodes = new Map<string, Entry>([['/', { value: '', perms: [{ domid: 0, access: 'none' }], children: new Set(), gen: 0 }]])
  generation = 0
  nextTx = 1
  readonly transactions = new Map<number, OpenTransaction>()
  readonly introduced = new Map<number, Introduction>()
  readonly introductions: Introduction[] = []
  readonly writes: [string, string][] = []
  /** Reads outside any transaction see the committed tree through this. */
  readonly committedView: TxView = new TxView(this, { own: new Map(), seen: null, writes: [] })
  constructor(
    readonly writesKept: number,
    readonly domainExists: (domid: number) => boolean,
  ) {}

  logWrite(path: string, value: string): void {
    this.writes.push([path, value])
    // Keep the newest writes only: a long-lived store must not grow without bound.
    if (this.writes.length > 2 * this.writesKept) this.writes.splice(0, this.writes.length - this.writesKept)
  }

  /** Applies a transaction: EAGAIN if anything it touched changed since it touched it. */
  commit(tx: OpenTransaction): void {
    for (const [path, gen] of tx.seen ?? []) {
      if ((this.nodes.get(path)?.gen ?? MISSING) !== gen) throw xsError('EAGAIN', 'xs_transaction_end', `${path} changed since the transaction read it`)
    }
    if (tx.own.size === 0) return
    const gen = ++this.generation
    for (const [path, entry] of tx.own) {
      if (entry === null) this.nodes.delete(path)
      else this.nodes.set(path, { ...entry, gen })
    }
    for (const write of tx.writes) this.logWrite(...write)
  }
}

/** What a call sees: the committed tree, through a transaction's own changes. */
class TxView {
  constructor(
    readonly state: MemoryState,
    readonly tx: OpenTransaction,
  ) {}

  get(path: string): Entry | undefined {
    const own = this.tx.own.get(path)
    if (own !== undefined) return own ?? undefined
    const entry = this.state.nodes.get(path)
    const seen = this.tx.seen
    if (seen !== null && !seen.has(path)) seen.set(path, entry?.gen ?? MISSING)
    return entry
  }

  /** The transaction's own copy of an existing node, to change. */
  mine(path: string): Entry {
    const own = this.tx.own.get(path)
    if (own) return own
    const entry = this.get(path) as Entry
    const copy = { value: entry.value, perms: entry.perms, children: new Set(entry.children), gen: entry.gen }
    this.tx.own.set(path, copy)
    return copy
  }

  /** Creates the node and its missing parents, which inherit their parent's permissions. */
  create(path: string, value: string, creator: number): Entry {
    const parentPath = parentOf(path)
    const parent = this.get(parentPath) ?? this.create(parentPath, '', creator)
    const entry = { value, perms: inherited(parent.perms, creator), children: new Set<string>(), gen: 0 }
    this.mine(parentPath).children.add(nameOf(path))
    this.get(path) // note it was missing
    this.tx.own.set(path, entry)
    return entry
  }

  /** Removes the node and everything below it. */
  remove(path: string): void {
    const entry = this.get(path)
    if (entry === undefined) return
    for (const name of entry.children) this.remove(childPath(path, name))
    this.tx.own.set(path, null)
    this.mine(parentOf(path)).children.delete(nameOf(path))
  }
}

/** The calls of the in-memory store, made as one domain. */
class MemoryCalls implements XenstoreCalls {
  constructor(
    readonly state: MemoryState,
    readonly domid: number,
  ) {}

  #absolute(path: string): string {
    return path.startsWith('/') ? path : `${domainPath(this.domid)}/${path}`
  }

  /** Runs `op` in the transaction `txId`, or (0) in one of its own that commits at once. */
  #in<T>(operation: string, txId: number, op: (view: TxView, tx: OpenTransaction) => T): T {
    if (txId !== 0) {
      const tx = this.state.transactions.get(txId)
      if (tx === undefined) throw xsError('ENOENT', operation, `no transaction ${txId}`)
      tx.view ??= new TxView(this.state, tx)
      return op(tx.view, tx)
    }
    const tx: OpenTransaction = { own: new Map(), seen: null, writes: [] }
    const result = op(new TxView(this.state, tx), tx)
    this.state.commit(tx)
    return result
  }

  /** A read outside any transaction: the committed tree as it is. */
  #look<T>(operation: string, txId: number, op: (view: TxView) => T): T {
    return txId === 0 ? op(this.state.committedView) : this.#in(operation, txId, op)
  }

  /** Checks the domain's access to an existing node, or to a missing node's nearest ancestor. */
  #check(operation: string, view: TxView, path: string, need: 'read' | 'write' | 'owner'): Entry | undefined {
    const entry = view.get(path)
    if (entry !== undefined) {
      if (!accessOf(entry.perms, this.domid)[need]) throw xsError('EACCES', operation, path)
      return entry
    }
    // Missing: the caller may learn that only if it may read (or write, to create) the nearest ancestor.
    let ancestor = parentOf(path)
    let found = view.get(ancestor)
    while (found === undefined) {
      ancestor = parentOf(ancestor)
      found = view.get(ancestor)
    }
    const access = accessOf(found.perms, this.domid)
    if ((need === 'read' && !access.read) || (need === 'write' && !access.write)) throw xsError('EACCES', operation, path)
    return undefined
  }

  async read(txId: number, path: string): Promise<string | null> {
    checkPath('xs_read', path)
    const p = this.#absolute(path)
    return this.#look('xs_read', txId, (view) => this.#check('xs_read', view, p, 'read')?.value ?? null)
  }

  async write(txId: number, path: string, value: string): Promise<void> {
    checkWrite('xs_write', path, value)
    const p = this.#absolute(path)
    this.#in('xs_write', txId, (view, tx) => this.#write(view, tx, p, value))
  }

  async writeAll(txId: number, base: string, keys: string[], values: string[]): Promise<void> {
    keys.forEach((key, i) => checkWrite('xs_write', `${base}/${key}`, values[i] as string))
    this.#in('xs_write', txId, (view, tx) => {
      for (const [i, key] of keys.entries()) this.#write(view, tx, this.#absolute(`${base}/${key}`), values[i] as string)
    })
  }

  #write(view: TxView, tx: OpenTransaction, p: string, value: string): void {
    if (this.#check('xs_write', view, p, 'write') === undefined) view.create(p, value, this.domid)
    else view.mine(p).value = value
    tx.writes.push([p, value])
  }

  async mkdir(txId: number, path: string): Promise<void> {
    checkPath('xs_mkdir', path)
    const p = this.#absolute(path)
    this.#in('xs_mkdir', txId, (view) => {
      if (this.#check('xs_mkdir', view, p, 'write') === undefined) view.create(p, '', this.domid)
    })
  }

  async rm(txId: number, path: string): Promise<void> {
    checkPath('xs_rm', path)
    const p = this.#absolute(path)
    if (p === '/') throw xsError('EINVAL', 'xs_rm', 'the root cannot be removed')
    this.#in('xs_rm', txId, (view) => {
      if (this.#check('xs_rm', view, p, 'write') !== undefined) view.remove(p)
      // xenstored: removing a missing node is fine when its parent exists.
      else if (view.get(parentOf(p)) === undefined) throw xsError('ENOENT', 'xs_rm', p)
    })
  }

  async directory(txId: number, path: string): Promise<string[]> {
    checkPath('xs_directory', path)
    const p = this.#absolute(path)
    return this.#look('xs_directory', txId, (view) => {
      const entry = this.#check('xs_directory', view, p, 'read')
      if (entry === undefined) throw xsError('ENOENT', 'xs_directory', p)
      return [...entry.children]
    })
  }

  async getPermissions(txId: number, path: string): Promise<Permission[]> {
    checkPath('xs_get_permissions', path)
    const p = this.#absolute(path)
    return this.#look('xs_get_permissions', txId, (view) => {
      const entry = this.#check('xs_get_permissions', view, p, 'read')
      if (entry === undefined) throw xsError('ENOENT', 'xs_get_permissions', p)
      return entry.perms.map((perm) => ({ ...perm }))
    })
  }

  async setPermissions(txId: number, path: string, permissions: Permission[]): Promise<void> {
    checkPath('xs_set_permissions', path)
    checkPermissions('xs_set_permissions', permissions)
    const p = this.#absolute(path)
    this.#in('xs_set_permissions', txId, (view) => {
      const entry = this.#check('xs_set_permissions', view, p, 'owner')
      if (entry === undefined) throw xsError('ENOENT', 'xs_set_permissions', p)
      // A domain other than dom0 may not give its node away.
      if (this.domid !== 0 && permissions[0]?.domid !== entry.perms[0]?.domid) throw xsError('EPERM', 'xs_set_permissions', `${p}: only dom0 changes an owner`)
      // xenstored accounts a node to its owner, which must exist (other entries naming missing domains are kept, and match nobody).
      const owner = permissions[0]?.domid ?? 0
      if (owner !== 0 && !this.state.domainExists(owner)) throw xsError('ENOENT', 'xs_set_permissions', `the owner, domain ${owner}, does not exist`)
      view.mine(p).perms = permissions.map((perm) => ({ ...perm }))
    })
  }

  async transactionStart(): Promise<number> {
    const id = this.state.nextTx++
    this.state.transactions.set(id, { own: new Map(), seen: new Map(), writes: [] })
    return id
  }

  async transactionEnd(txId: number, abort: boolean): Promise<void> {
    const tx = this.state.transactions.get(txId)
    if (tx === undefined) throw xsError('ENOENT', 'xs_transaction_end', `no transaction ${txId}`)
    this.state.transactions.delete(txId)
    if (!abort) this.state.commit(tx)
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

/** How the in-memory store behaves. */
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
    const walk = (path: string) => {
      for (const name of this.#state.nodes.get(path)?.children ?? []) {
        const child = childPath(path, name)
        map.set(child, this.#state.nodes.get(child)?.value ?? '')
        walk(child)
      }
    }
    walk('/')
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
