/**
 * The in-flight ledger: memory promised to builds that Xen does not count yet.
 *
 * Between NUMA placement and the domain builder populating its memory, a
 * build's memory is free in Xen's eyes: a second build planned in that window
 * would see it as free too. The ledger records, per build, where its memory
 * will land (by node) and the shadow pool it has still to allocate, so the
 * planner can subtract them. One `Reservation` per build, held by the build's
 * steps; each of its transitions is idempotent, and `release()` ends it
 * whatever state it is in, so "every promise is dropped exactly once" holds
 * by construction.
 */

/**
 * What the planner subtracts from each node's free memory.
 * - `in-flight`: all memory promised to builds not yet populated (ours).
 * - `xenopsd`: node claims only; memory behind a host-wide claim is invisible
 *   per node, so parallel builds see the same free memory (xenopsd's race).
 */
export type Accounting = 'in-flight' | 'xenopsd'
export const ACCOUNTING_MODES: readonly Accounting[] = ['in-flight', 'xenopsd']

interface Promised {
  bytesByNode: readonly number[]
  totalBytes: number
  /** A node claim: Xen itself holds this memory for the build. */
  nodeClaim: boolean
}

/** How a reservation reads Xen's count of its domain's pages (`domainInfo(domid).totPages`). */
export type PageCounter = (domid: number) => Promise<number>

export class Reservation {
  readonly domid: number
  readonly #ledger: InFlightLedger
  #promised: Promised | undefined
  #poolBytes = 0
  /** The domain's pages before the build: what Xen counted before the builder ran. */
  #baselinePages = 0
  /** Of the promise, what Xen counted as populated when last asked. */
  #populatedBytes = 0
  #ended = false
  readonly #done: Promise<void>
  #resolveDone!: () => void

  /** @internal Made by `InFlightLedger.open`. */
  constructor(ledger: InFlightLedger, domid: number) {
    this.#ledger = ledger
    this.domid = domid
    this.#done = new Promise((resolve) => (this.#resolveDone = resolve))
  }

  /** Resolves when the build's memory is populated or the build has ended. */
  get done(): Promise<void> {
    return this.#done
  }

  get ended(): boolean {
    return this.#ended
  }

  /** @internal */
  get promised(): Promised | undefined {
    return this.#promised
  }

  /** @internal */
  get poolBytes(): number {
    return this.#poolBytes
  }

  /**
   * The build will allocate a shadow pool of `bytes` before it has any
   * affinity: Xen then spreads it over every node, eating into memory
   * promised to builds placed before it.
   */
  expectPool(bytes: number): void {
    if (!this.#ended) this.#poolBytes = bytes
  }

  /** The shadow pool is allocated: Xen counts it now. */
  poolAllocated(): void {
    this.#poolBytes = 0
  }

  /**
   * The domain's page count before its build (`totPages` of domain_info):
   * what Xen counts beyond it later is this build's memory, populated.
   */
  setBaselinePages(pages: number): void {
    this.#baselinePages = pages
  }

  /** Records where the build's memory will land, by node. */
  promise(bytesByNode: readonly number[], nodeClaim: boolean): void {
    if (this.#ended) return
    const totalBytes = bytesByNode.reduce((sum, b) => sum + b, 0)
    this.#promised = { bytesByNode, totalBytes, nodeClaim }
    this.#populatedBytes = 0
  }

  /**
   * Xen's count of the domain's pages now: the memory the builder has
   * populated so far no longer counts as promised (Xen's free memory shows
   * it). Only ever grows: a smaller count read late changes nothing.
   */
  observePages(totPages: number): void {
    const populated = Math.max(0, totPages - this.#baselinePages) * 4096
    if (populated > this.#populatedBytes) this.#populatedBytes = populated
  }

  /** What is promised and not yet populated, by node (Xen fills the nodes of a promise alike). */
  outstandingBytesByNode(): readonly number[] {
    const promised = this.#promised
    if (promised === undefined) return []
    if (this.#populatedBytes === 0 || promised.totalBytes === 0) return promised.bytesByNode
    const left = Math.max(0, 1 - this.#populatedBytes / promised.totalBytes)
    return promised.bytesByNode.map((bytes) => Math.ceil(bytes * left))
  }

  /** Whether any of its promise is still to be populated. */
  get outstanding(): boolean {
    return this.#promised !== undefined && this.#populatedBytes < this.#promised.totalBytes
  }

  /** The build's memory is populated: Xen counts it now. */
  populated(): void {
    this.release()
  }

  /** The build ended (done, failed or cancelled): nothing of it is promised any more. */
  release(): void {
    if (this.#ended) return
    this.#ended = true
    this.#promised = undefined
    this.#poolBytes = 0
    this.#ledger.forget(this)
    this.#resolveDone()
  }
}

export class InFlightLedger {
  readonly nodeCount: number
  readonly #open = new Set<Reservation>()

  constructor(nodeCount: number) {
    this.nodeCount = nodeCount
  }

  /** A reservation for one build. */
  open(domid: number): Reservation {
    const reservation = new Reservation(this, domid)
    this.#open.add(reservation)
    return reservation
  }

  /** @internal Called by `Reservation.release`. */
  forget(reservation: Reservation): void {
    this.#open.delete(reservation)
  }

  /**
   * Asks Xen how much of each promise is populated (one `totPages` read per
   * build with memory outstanding, in parallel). Read before the nodes' free
   * memory: a page populated in between then counts twice, never not at all.
   * A read that fails (the domain is going) leaves that promise as it was.
   */
  async observe(countPages: PageCounter): Promise<void> {
    const promised = [...this.#open].filter((r) => r.outstanding)
    await Promise.all(
      promised.map(async (r) => {
        try {
          r.observePages(await countPages(r.domid))
        } catch {
          // Unknown: the promise keeps counting in full.
        }
      }),
    )
  }

  /**
   * Bytes promised per node and not yet populated, as `accounting` counts
   * them. `in-flight`: every promise and every shadow pool still to come
   * (spread evenly, as Xen spreads a pool page by page over all nodes);
   * `xenopsd`: only the memory behind node claims.
   */
  promisedBytesByNode(accounting: Accounting): number[] {
    let pools = 0
    if (accounting === 'in-flight') for (const r of this.#open) pools += r.poolBytes
    const totals = Array<number>(this.nodeCount).fill(Math.ceil(pools / Math.max(1, this.nodeCount)))
    for (const r of this.#open) {
      const promised = r.promised
      if (promised === undefined || (accounting === 'xenopsd' && !promised.nodeClaim)) continue
      r.outstandingBytesByNode().forEach((bytes, node) => {
        totals[node] = (totals[node] ?? 0) + bytes
      })
    }
    return totals
  }

  /** Builds with memory promised and not yet populated. */
  get buildsInFlight(): number {
    let count = 0
    for (const r of this.#open) if (r.promised !== undefined) count++
    return count
  }

  /** Reservations open now (promised, or with a pool to come). */
  get openCount(): number {
    return this.#open.size
  }

  /**
   * The builds other than `except` with memory still to populate on one of
   * `nodes` (every node when none are given): what a build that finds no
   * room waits for.
   */
  outstandingOn(nodes: readonly number[] | null, except?: Reservation): Reservation[] {
    return [...this.#open].filter((r) => {
      if (r === except || !r.outstanding) return false
      const byNode = r.outstandingBytesByNode()
      return nodes === null ? byNode.some((b) => b > 0) : nodes.some((n) => (byNode[n] ?? 0) > 0)
    })
  }
}

/**
 * Where Xen's allocator puts `bytes` of a domain whose node affinity is
 * `nodes`: it cycles over them one allocation at a time (`get_free_buddy`
 * after `d->last_alloc_node`), skipping a node that has nothing left, so the
 * memory spreads evenly, capped by what each node has free (`freeBytes`).
 * What the nodes cannot hold is left out: Xen would take it from anywhere.
 */
export function xenSpread(bytes: number, nodes: readonly number[], freeBytes: readonly number[], nodeCount: number): number[] {
  const byNode = Array<number>(nodeCount).fill(0)
  let remaining = bytes
  let open = nodes.filter((n) => (freeBytes[n] ?? 0) > 0)
  while (remaining > 0 && open.length > 0) {
    const share = Math.ceil(remaining / open.length)
    for (const n of open) {
      const take = Math.min(share, remaining, (freeBytes[n] ?? 0) - (byNode[n] ?? 0))
      byNode[n] = (byNode[n] ?? 0) + take
      remaining -= take
    }
    open = open.filter((n) => (byNode[n] ?? 0) < (freeBytes[n] ?? 0))
  }
  return byNode
}
