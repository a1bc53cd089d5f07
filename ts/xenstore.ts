/**
 * Xenstore, as domain build uses it: the interface, the client over a set of
 * calls (`CallsXenstore`: input checks, transactions and their retries), and
 * `openXenstore()`, which connects it to the host's xenstored through
 * libxenstore (every call on the libuv pool). The in-memory xenstored is in
 * xenstore-memory.ts, the input rules in xenstore-input.ts. A toolstack may
 * plug in its own calls.
 */
import type { NativeXenstore, XenstoreOpenOptions } from '../native/binding.js'

export type { NativeXenstore, XenstoreOpenOptions }
import { delay } from './timers.js'
import { invalidArgument } from './errors.js'
import { binding } from './native.js'
import { checkPath, checkPermissions, checkWrite } from './xenstore-input.js'

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
        for (const [i, key] of keys.entries()) checkWrite('xs_write', `${base}/${key}`, values[i] as string)
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
        return calls.setPermissions(
          tx,
          path,
          permissions.map((p) => ({ domid: p.domid, access: p.access })),
        )
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
    if (!Number.isInteger(attempts) || attempts < 1)
      return Promise.reject(invalidArgument('transaction: attempts', 'not a whole number ≥ 1'))
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
