/**
 * The in-memory xenstored: the embedded store of the simulated host and of
 * tests, with xenstored's rules: a tree, permissions checked as xenstored
 * checks them, transactions with conflict detection. `InMemoryXenstore` is
 * the client (`CallsXenstore`) over its calls, so input is checked where it
 * is for the real store (xenstore-input.ts), before any call here.
 */
import { constants } from 'node:os'
import { XenDomainBuildError } from './errors.js'
import { CallsXenstore, domainPath, type Permission, type XenstoreCalls } from './xenstore.js'
import { checkXenstoreDomid } from './xenstore-input.js'

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
      if ((this.nodes.get(path)?.gen ?? MISSING) !== gen)
        throw xsError('EAGAIN', 'xs_transaction_end', `${path} changed since the transaction read it`)
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
    public state: MemoryState,
    public domid: number,
  ) {}

  /** Makes these the calls of domain `domid` on `state` (a view of another store: `asDomain`). */
  actAs(state: MemoryState, domid: number): void {
    this.state = state
    this.domid = domid
  }

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
    const p = this.#absolute(path)
    return this.#look('xs_read', txId, (view) => this.#check('xs_read', view, p, 'read')?.value ?? null)
  }

  async write(txId: number, path: string, value: string): Promise<void> {
    const p = this.#absolute(path)
    this.#in('xs_write', txId, (view, tx) => this.#write(view, tx, p, value))
  }

  async writeAll(txId: number, base: string, keys: string[], values: string[]): Promise<void> {
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
    const p = this.#absolute(path)
    this.#in('xs_mkdir', txId, (view) => {
      if (this.#check('xs_mkdir', view, p, 'write') === undefined) view.create(p, '', this.domid)
    })
  }

  async rm(txId: number, path: string): Promise<void> {
    const p = this.#absolute(path)
    if (p === '/') throw xsError('EINVAL', 'xs_rm', 'the root cannot be removed')
    this.#in('xs_rm', txId, (view) => {
      if (this.#check('xs_rm', view, p, 'write') !== undefined) view.remove(p)
      // xenstored: removing a missing node is fine when its parent exists.
      else if (view.get(parentOf(p)) === undefined) throw xsError('ENOENT', 'xs_rm', p)
    })
  }

  async directory(txId: number, path: string): Promise<string[]> {
    const p = this.#absolute(path)
    return this.#look('xs_directory', txId, (view) => {
      const entry = this.#check('xs_directory', view, p, 'read')
      if (entry === undefined) throw xsError('ENOENT', 'xs_directory', p)
      return [...entry.children]
    })
  }

  async getPermissions(txId: number, path: string): Promise<Permission[]> {
    const p = this.#absolute(path)
    return this.#look('xs_get_permissions', txId, (view) => {
      const entry = this.#check('xs_get_permissions', view, p, 'read')
      if (entry === undefined) throw xsError('ENOENT', 'xs_get_permissions', p)
      return entry.perms.map((perm) => ({ ...perm }))
    })
  }

  async setPermissions(txId: number, path: string, permissions: Permission[]): Promise<void> {
    const p = this.#absolute(path)
    this.#in('xs_set_permissions', txId, (view) => {
      const entry = this.#check('xs_set_permissions', view, p, 'owner')
      if (entry === undefined) throw xsError('ENOENT', 'xs_set_permissions', p)
      // A domain other than dom0 may not give its node away.
      if (this.domid !== 0 && permissions[0]?.domid !== entry.perms[0]?.domid)
        throw xsError('EPERM', 'xs_set_permissions', `${p}: only dom0 changes an owner`)
      // xenstored accounts a node to its owner, which must exist (other entries naming missing domains are kept, and match nobody).
      const owner = permissions[0]?.domid ?? 0
      if (owner !== 0 && !this.state.domainExists(owner))
        throw xsError('ENOENT', 'xs_set_permissions', `the owner, domain ${owner}, does not exist`)
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
  readonly #memory: MemoryCalls

  constructor(options: InMemoryXenstoreOptions = {}) {
    const calls = new MemoryCalls(new MemoryState(options.writesKept ?? 1000, options.domainExists ?? (() => true)), 0)
    super(calls)
    this.#memory = calls
  }

  get #state(): MemoryState {
    return this.#memory.state
  }

  /** The domain this view acts as (0: dom0). */
  get domid(): number {
    return this.#memory.domid
  }

  /** The same store, seen by domain `domid`: its access is checked as xenstored checks it. */
  asDomain(domid: number): InMemoryXenstore {
    checkXenstoreDomid('asDomain: domid', domid)
    // A store made as any other, then pointed at this one's tree as `domid`.
    const view = new InMemoryXenstore()
    view.#memory.actAs(this.#state, domid)
    return view
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
