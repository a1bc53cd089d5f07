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

/** What the planner subtracts: every promise, or only node claims (xenopsd's view). */
export type LedgerView = 'in-flight' | 'node-claims'

interface Promised {
  bytesByNode: readonly number[]
  /** A node claim: Xen itself holds this memory for the build. */
  nodeClaim: boolean
}

export class Reservation {
  readonly domid: number
  readonly #ledger: InFlightLedger
  #promised: Promised | undefined
  #poolBytes = 0
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

  /** Records where the build's memory will land, by node. */
  promise(bytesByNode: readonly number[], nodeClaim: boolean): void {
    if (!this.#ended) this.#promised = { bytesByNode, nodeClaim }
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
   * Bytes promised per node. `in-flight`: every promise and every shadow pool
   * still to come (spread evenly, as Xen spreads a pool page by page over all
   * nodes); `node-claims`: only the memory behind node claims.
   */
  promisedBytesByNode(view: LedgerView): number[] {
    let pools = 0
    if (view === 'in-flight') for (const r of this.#open) pools += r.poolBytes
    const totals = Array<number>(this.nodeCount).fill(Math.ceil(pools / Math.max(1, this.nodeCount)))
    for (const r of this.#open) {
      const promised = r.promised
      if (promised === undefined || (view === 'node-claims' && !promised.nodeClaim)) continue
      promised.bytesByNode.forEach((bytes, node) => {
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

  #promisedOn(nodes: readonly number[], except?: Reservation): Reservation[] {
    return [...this.#open].filter(
      (r) => r !== except && r.promised !== undefined && nodes.some((n) => (r.promised?.bytesByNode[n] ?? 0) > 0),
    )
  }

  /** Whether a build other than `except` has memory promised on one of `nodes`. */
  hasPromisesOn(nodes: readonly number[], except?: Reservation): boolean {
    return this.#promisedOn(nodes, except).length > 0
  }

  /**
   * Resolves once every build (but `except`) that has memory promised on one
   * of `nodes` now has populated it or ended; builds promised later are not
   * waited for.
   */
  async settledOn(nodes: readonly number[], except?: Reservation): Promise<void> {
    await Promise.all(this.#promisedOn(nodes, except).map((r) => r.done))
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
