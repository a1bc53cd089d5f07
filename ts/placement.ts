/**
 * NUMA placement with claims, as xenopsd's `numa_placement` and the claim
 * fallbacks of its `build_pre` do it. Reading node memory, planning, claiming
 * and setting affinity is one critical section per host: two builds never
 * plan against the same free memory. A build that must wait for builds in
 * flight (no node set fits until they populate, or its spread would take
 * memory promised to them) waits outside that section, and plans again.
 */
import { aborted, XenDomainBuildError } from './errors.js'
import type { BuildHost, NumaPolicy } from './host.js'
import { xenSpread, type Reservation } from './ledger.js'
import type { NumaPlan } from './numa.js'
import { delay } from './timers.js'
import { bytesOfPages } from './units.js'

export interface PlacementRequest {
  vcpus: number
  claimPages: number
  /**
   * The CPUs of the VM's hard affinity masks, or null. A VM with hard
   * affinity gets no NUMA placement and no claim (xenopsd).
   */
  hardAffinityCpus: readonly number[] | null
  /**
   * The domain builder can allocate every page from one node by itself
   * (`-mem_pnode` without a node claim: ours can, `-supports mem_pnode`).
   */
  builderPinsNode?: boolean
}

/** `none`: no claim was made, as xenopsd makes none (policy `any`, hard affinity). */
export type ClaimKind = 'node' | 'host' | 'unsupported' | 'none'

/** Where a build's memory and vCPUs were placed, what it claimed, and why. */
export interface Placement {
  policy: NumaPolicy
  /** The planner's choice; null when there was none (or no placement). */
  plan: NumaPlan | null
  /** Which affinity was set to the plan's CPUs on every vCPU. */
  affinity: 'soft' | 'hard' | null
  /**
   * The node the builder allocates every page from (`-mem_pnode`): after a
   * node claim, or for a one-node plan with in-flight accounting when the
   * builder pins nodes itself and the node holds the VM after every build in
   * flight has its memory.
   */
  node: number | null
  claim: ClaimKind
  /** Why the placement is what it is, for logs. */
  reason: string
  /** Memory promised to this build, by node, until it is populated: where Xen will put it. */
  promisedBytesByNode: number[]
  /** When planned: each node's free memory as Xen reported it... */
  nodeFreeBytes?: number[]
  /** ...and what builds in flight had been promised there and not yet populated, whatever the accounting. */
  inFlightBytesByNode?: number[]
  /** How long the build waited, outside the placement lock, for builds in flight. */
  waitedForInFlightMs?: number
}

/** A claim release that failed even after retries: the claim stays until the domain goes. */
export type ClaimReleaseFailed = { type: 'claim.release.failed'; domid: number; attempts: number; error: unknown }

/** Delays between attempts to release a claim (ms): four tries over about a third of a second. */
const RELEASE_RETRY_MS = [10, 50, 250]

/**
 * Releases a domain's claim (claims 0 pages). A failure is retried; if the
 * last attempt fails too, it is said in an event with its error, never
 * swallowed: a claim left behind makes later builds fail.
 */
export async function releaseClaim(
  xen: BuildHost['hypervisor'],
  domid: number,
  onEvent?: (event: ClaimReleaseFailed) => void,
): Promise<boolean> {
  let error: unknown
  for (let attempt = 0; attempt <= RELEASE_RETRY_MS.length; attempt++) {
    try {
      await xen.claimPages(domid, 0)
      return true
    } catch (failed) {
      error = failed
      const delayMs = RELEASE_RETRY_MS[attempt]
      if (delayMs !== undefined) await delay(delayMs)
    }
  }
  onEvent?.({ type: 'claim.release.failed', domid, attempts: RELEASE_RETRY_MS.length + 1, error })
  return false
}

function isCode(error: unknown, code: string): boolean {
  return error instanceof XenDomainBuildError && error.code === code
}

/**
 * A build waits for builds in flight: no node set fits until they have their
 * memory, or the spread it would get takes memory promised to them.
 */
export type PlacementWait = {
  type: 'placement.wait'
  domid: number
  reason: 'no node set fits' | 'spread onto promised memory'
  /** The builds it waits for, and what they still have to populate, by node. */
  forDomids: number[]
  forBytesByNode: number[]
  /** How long it has waited so far, and the most it waits in all. */
  waitedMs: number
  limitMs: number
}

/** What placement reports as it goes: a wait for builds in flight, a claim it could not release. */
export type PlacementEvent = ClaimReleaseFailed | PlacementWait

/** How often a waiting build looks at Xen's count of the pages of the builds it waits for. */
const WAIT_RECHECK_MS = 250

type Outcome = { placed: Placement } | { wait: { reason: PlacementWait['reason']; blockers: Reservation[] } }

/**
 * One try at placing a build, inside the placement lock: what Xen and the
 * ledger said, and what was decided. It either places the build (promise,
 * affinity, claim) or says what to wait for, having claimed nothing.
 */
class PlacementAttempt {
  readonly #host: BuildHost
  readonly #reservation: Reservation
  readonly #request: PlacementRequest
  /** False once the build has waited its time: it takes what it gets. */
  readonly #mayWait: boolean
  readonly #bytes: number
  readonly #nodeCount: number
  /** Whether this attempt made a claim (released by the caller if it then fails). */
  claimMade = false
  /** Each node's free memory, as Xen reported it. */
  #nodeFreeBytes: number[] = []
  /** Every build in flight's memory still to be populated, by node. */
  #inFlightBytesByNode: number[] = []
  /** Free memory as the accounting sees it: what the planner plans on. */
  #plannedFreeBytes: number[] = []

  constructor(host: BuildHost, reservation: Reservation, request: PlacementRequest, mayWait: boolean) {
    this.#host = host
    this.#reservation = reservation
    this.#request = request
    this.#mayWait = mayWait && host.accounting === 'in-flight'
    this.#bytes = bytesOfPages(request.claimPages)
    this.#nodeCount = host.layout.distances.length
  }

  get #domid(): number {
    return this.#reservation.domid
  }

  async run(): Promise<Outcome> {
    const host = this.#host
    const policy = host.numaPolicy
    const none = Array<number>(this.#nodeCount).fill(0)
    // xenopsd skips placement, and makes no claim, for policy `any` and for
    // a VM with hard affinity.
    if (policy === 'any' || this.#request.hardAffinityCpus !== null) return this.#withoutPlacement()
    if (host.planner.numaOffReason !== null) {
      const reason = `NUMA placement is off: ${host.planner.numaOffReason}`
      return { placed: await this.#claimHost({ policy, plan: null, affinity: null, node: null, reason, promisedBytesByNode: none }) }
    }
    try {
      await this.#readNodes()
    } catch (error) {
      if (isCode(error, 'ABORTED')) throw error
      // xenopsd: no node memory, no placement; a host-wide claim still.
      const reason = `node memory unavailable (${(error as { code?: string }).code ?? 'unknown error'})`
      return { placed: await this.#claimHost({ policy, plan: null, affinity: null, node: null, reason, promisedBytesByNode: none }) }
    }
    const cores = policy === 'prio_mem_only' ? 0 : this.#request.vcpus
    const plan = host.planner.plan({ memoryBytes: this.#bytes, vcpus: this.#request.vcpus, cores }, this.#plannedFreeBytes)
    if (plan === null) {
      const blockers = this.#mayWait ? host.ledger.outstandingOn(null, this.#reservation) : []
      if (blockers.length > 0) return { wait: { reason: 'no node set fits', blockers } }
      return this.#unplaced(null, 'no node set fits')
    }
    const [only] = plan.nodes
    if (plan.nodes.length === 1 && only !== undefined) return this.#onNode(plan, only)
    return this.#overNodes(plan)
  }

  /** Xen's count of in-flight builds' pages, then each node's free memory (in that order: see `observe`). */
  async #readNodes(): Promise<void> {
    const host = this.#host
    await host.ledger.observe(async (domid) => (await host.hypervisor.domainInfo(domid)).totPages)
    this.#nodeFreeBytes = (await host.hypervisor.numaInfo()).nodes.map((n) => n?.freeBytes ?? 0)
    this.#inFlightBytesByNode = host.ledger.promisedBytesByNode('in-flight')
    const accounted = host.accounting === 'in-flight' ? this.#inFlightBytesByNode : host.ledger.promisedBytesByNode(host.accounting)
    this.#plannedFreeBytes = this.#nodeFreeBytes.map((b, i) => Math.max(0, b - (accounted[i] ?? 0)))
  }

  /** What the placement saw, for logs and reports. */
  #seen(): Pick<Placement, 'nodeFreeBytes' | 'inFlightBytesByNode'> {
    return { nodeFreeBytes: this.#nodeFreeBytes, inFlightBytesByNode: this.#inFlightBytesByNode }
  }

  async #claimHost(placement: Omit<Placement, 'claim'>): Promise<Placement> {
    try {
      await this.#host.hypervisor.claimPages(this.#domid, this.#request.claimPages)
      this.claimMade = true
      return { ...placement, claim: 'host' }
    } catch (error) {
      if (isCode(error, 'ENOMEM')) throw error
      // Any other error: this Xen has no claims; the build goes on without one.
      return { ...placement, claim: 'unsupported', reason: `${placement.reason}; no claims on this host` }
    }
  }

  /**
   * Where Xen will put the memory of a domain whose node affinity is
   * `nodes`: spread evenly over them. Where, with in-flight accounting, that
   * would take memory promised to builds in flight, the builds to wait for
   * instead, so that neither lands off its plan.
   */
  #spreadOver(nodes: readonly number[]): number[] | { blockers: Reservation[] } {
    const spread = xenSpread(this.#bytes, nodes, this.#nodeFreeBytes, this.#nodeCount)
    if (!this.#mayWait) return spread
    const displaced = nodes.filter((n) => (spread[n] ?? 0) > (this.#plannedFreeBytes[n] ?? 0))
    const blockers = displaced.length === 0 ? [] : this.#host.ledger.outstandingOn(displaced, this.#reservation)
    return blockers.length === 0 ? spread : { blockers }
  }

  async #setAffinity(cpus: readonly number[], affinity: 'soft' | 'hard'): Promise<void> {
    const mask = { [affinity]: [...cpus] }
    const xen = this.#host.hypervisor
    await Promise.all(Array.from({ length: this.#request.vcpus }, (_, vcpu) => xen.setVcpuAffinity(this.#domid, vcpu, mask)))
  }

  get #affinity(): 'soft' | 'hard' {
    return this.#host.numaPolicy === 'best_effort_hard' ? 'hard' : 'soft'
  }

  /** Policy `any` or hard affinity: no plan; with hard affinity its memory goes where its CPUs are. */
  async #withoutPlacement(): Promise<Outcome> {
    const host = this.#host
    const policy = host.numaPolicy
    const reason = policy === 'any' ? 'policy any' : 'the VM has hard affinity'
    let promisedBytesByNode = Array<number>(this.#nodeCount).fill(0)
    const cpus = this.#request.hardAffinityCpus
    if (cpus !== null && policy !== 'any') {
      // Count it, so builds placed meanwhile do not plan on it.
      const affine = [...new Set(cpus.map((cpu) => host.layout.cpuToNode[cpu]))].filter((n): n is number => n !== null && n !== undefined)
      await this.#readNodes()
      const spread = this.#spreadOver(affine)
      if (!Array.isArray(spread)) return { wait: { reason: 'spread onto promised memory', blockers: spread.blockers } }
      promisedBytesByNode = spread
      this.#reservation.promise(promisedBytesByNode, false)
    }
    const placement = { policy, plan: null, affinity: null, node: null, reason, promisedBytesByNode }
    return { placed: host.alwaysClaim ? await this.#claimHost(placement) : { ...placement, claim: 'none' } }
  }

  /** No node placement: Xen spreads the memory over every node, under a host-wide claim. */
  async #unplaced(plan: NumaPlan | null, reason: string): Promise<Outcome> {
    const validNodes = this.#host.layout.nodeMemoryBytes.flatMap((size, node) => (size === null ? [] : [node]))
    const spread = this.#spreadOver(validNodes)
    if (!Array.isArray(spread)) return { wait: { reason: 'spread onto promised memory', blockers: spread.blockers } }
    this.#reservation.promise(spread, false)
    const policy = this.#host.numaPolicy
    return {
      placed: await this.#claimHost({ policy, plan, affinity: null, node: null, reason, promisedBytesByNode: spread, ...this.#seen() }),
    }
  }

  /**
   * A one-node plan: a node claim where Xen has them; else affinity, a
   * host-wide claim, and the node pinned for the builder only where that
   * cannot make it fail half-way.
   */
  async #onNode(plan: NumaPlan, node: number): Promise<Outcome> {
    const host = this.#host
    const policy = host.numaPolicy
    const affinity = this.#affinity
    try {
      await host.hypervisor.claimPagesOnNode(this.#domid, node, this.#request.claimPages)
      this.claimMade = true
    } catch (error) {
      // The node cannot hold it after all: no node placement.
      if (isCode(error, 'ENOMEM')) return this.#unplaced(plan, `node ${node} claim: ENOMEM`)
      // Any other error: no node claims here (upstream Xen).
    }
    const promisedBytesByNode = xenSpread(this.#bytes, [node], this.#plannedFreeBytes, this.#nodeCount)
    await this.#setAffinity(plan.cpus, affinity)
    this.#reservation.promise(promisedBytesByNode, this.claimMade)
    if (this.claimMade) {
      return {
        placed: { policy, plan, affinity, node, claim: 'node', reason: `node ${node} claimed`, promisedBytesByNode, ...this.#seen() },
      }
    }
    // Pinned, the builder fails half-way if the node runs out, so only where
    // nothing else will take the node's memory first: with in-flight
    // accounting (later builds plan, and spread, around this promise) and
    // room for it after every build in flight. xenopsd's accounting does not
    // see memory in flight, so there only a node claim protects a node.
    const roomBytes = (this.#nodeFreeBytes[node] ?? 0) - (this.#inFlightBytesByNode[node] ?? 0)
    let pinned: number | null = null
    let reason = `node ${node}, without a node claim`
    if (this.#request.builderPinsNode === true) {
      if (host.accounting !== 'in-flight') reason = `node ${node}, not pinned: xenopsd's accounting leaves it unprotected`
      else if (roomBytes >= this.#bytes) pinned = node
      else reason = `node ${node}, not pinned: after the builds in flight it has ${Math.max(0, roomBytes)} of ${this.#bytes} bytes`
    }
    return { placed: await this.#claimHost({ policy, plan, affinity, node: pinned, reason, promisedBytesByNode, ...this.#seen() }) }
  }

  /** A plan over several nodes: affinity to them all, a host-wide claim; Xen spreads the memory. */
  async #overNodes(plan: NumaPlan): Promise<Outcome> {
    const spread = this.#spreadOver(plan.nodes)
    if (!Array.isArray(spread)) return { wait: { reason: 'spread onto promised memory', blockers: spread.blockers } }
    const affinity = this.#affinity
    await this.#setAffinity(plan.cpus, affinity)
    this.#reservation.promise(spread, false)
    const policy = this.#host.numaPolicy
    const reason = `nodes ${plan.nodes.join(',')}`
    return { placed: await this.#claimHost({ policy, plan, affinity, node: null, reason, promisedBytesByNode: spread, ...this.#seen() }) }
  }
}

/**
 * Waits, outside the placement lock, until one of `blockers` has its memory
 * (Xen counts all of it) or ends, or until `untilMs` (performance.now()).
 */
async function waitForBlockers(
  host: BuildHost,
  blockers: readonly Reservation[],
  untilMs: number,
  signal: AbortSignal | undefined,
): Promise<void> {
  let ended = false
  const anyEnded = Promise.race(blockers.map((r) => r.done)).then(() => (ended = true))
  for (;;) {
    const leftMs = untilMs - performance.now()
    if (ended || leftMs <= 0 || signal?.aborted) return
    // An abort ends the pause; the caller sees the signal.
    await Promise.race([anyEnded, delay(Math.min(WAIT_RECHECK_MS, leftMs), signal).catch(() => undefined)])
    if (ended || signal?.aborted) return
    const waitingFor = blockers.filter((r) => !r.ended)
    await host.ledger.observe(async (domid) => (await host.hypervisor.domainInfo(domid)).totPages)
    if (waitingFor.some((r) => !r.outstanding)) return
  }
}

/**
 * Places a domain and claims its memory, recording in `reservation` where
 * its memory will land. A build that must wait for builds in flight waits
 * outside the lock (each wait an event), at most the host's
 * `placementWaitMs`, then places as well as it can. On ENOMEM from a
 * host-wide claim it throws (the build cannot go on); any claim it made is
 * then released.
 */
export async function placeDomain(
  host: BuildHost,
  reservation: Reservation,
  request: PlacementRequest,
  signal?: AbortSignal,
  onEvent?: (event: PlacementEvent) => void,
): Promise<Placement> {
  const started = performance.now()
  const untilMs = started + host.placementWaitMs
  let waited = false
  for (;;) {
    const mayWait = performance.now() < untilMs
    // A build queued for the lock is rejected as soon as it is aborted. The
    // build inside the section finishes its hypercall in flight first, so
    // that when it rejects, what it claimed is already released.
    const outcome = await host.placementLock.run(async () => {
      const attempt = new PlacementAttempt(host, reservation, request, mayWait)
      try {
        return await attempt.run()
      } catch (error) {
        // Whatever failed after a claim: release it, forget the promise.
        reservation.release()
        if (attempt.claimMade) await releaseClaim(host.hypervisor, reservation.domid, onEvent)
        throw error
      }
    }, signal)
    const waitedMs = performance.now() - started
    if ('placed' in outcome) return waited ? { ...outcome.placed, waitedForInFlightMs: waitedMs } : outcome.placed
    const { reason, blockers } = outcome.wait
    const forBytesByNode = Array<number>(host.layout.distances.length).fill(0)
    for (const r of blockers) {
      r.outstandingBytesByNode().forEach((b, n) => {
        forBytesByNode[n] = (forBytesByNode[n] ?? 0) + b
      })
    }
    onEvent?.({
      type: 'placement.wait',
      domid: reservation.domid,
      reason,
      forDomids: blockers.map((r) => r.domid),
      forBytesByNode,
      waitedMs,
      limitMs: host.placementWaitMs,
    })
    waited = true
    await waitForBlockers(host, blockers, untilMs, signal)
    if (signal?.aborted) {
      reservation.release()
      throw aborted(`placement of domain ${reservation.domid}`, signal.reason)
    }
  }
}
