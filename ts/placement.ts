/**
 * NUMA placement with claims, as xenopsd's `numa_placement` and the claim
 * fallbacks of its `build_pre` do it. Reading node memory, planning, claiming
 * and setting affinity is one critical section per host: two builds never
 * plan against the same free memory.
 */
import { aborted, XenDomainBuildError } from './errors.js'
import type { BuildHost, NumaPolicy } from './host.js'
import { xenSpread, type Reservation } from './ledger.js'
import type { NumaPlan } from './numa.js'
import { bytesOfPages } from './units.js'

export interface PlacementRequest {
  vcpus: number
  claimPages: number
  /**
   * The CPUs of the VM's hard affinity masks, or null. A VM with hard
   * affinity gets no NUMA placement and no claim (xenopsd).
   */
  hardAffinityCpus: readonly number[] | null
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
  /** The node xenguest allocates from (`-mem_pnode`): only after a node claim. */
  node: number | null
  claim: ClaimKind
  /** Why the placement is what it is, for logs. */
  reason: string
  /** Memory promised to this build, by node, until it is populated: where Xen will put it. */
  promisedBytesByNode: number[]
  /** When planned: each node's free memory as Xen reported it... */
  nodeFreeBytes?: number[]
  /** ...and what builds in flight had been promised there, whatever the accounting. */
  inFlightBytesByNode?: number[]
  /** How long the build waited for builds in flight whose memory it would have displaced. */
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
      if (delayMs !== undefined) await new Promise((r) => setTimeout(r, delayMs))
    }
  }
  onEvent?.({ type: 'claim.release.failed', domid, attempts: RELEASE_RETRY_MS.length + 1, error })
  return false
}

function isCode(error: unknown, code: string): boolean {
  return error instanceof XenDomainBuildError && error.code === code
}

/** Rejects as soon as `signal` aborts; otherwise settles as `promise` does. */
function abortable<T>(promise: Promise<T>, signal: AbortSignal | undefined, what: string): Promise<T> {
  if (signal === undefined) return promise
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(aborted(what, signal.reason))
    if (signal.aborted) return onAbort()
    signal.addEventListener('abort', onAbort, { once: true })
    promise.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort))
  })
}

/**
 * Places a domain and claims its memory, recording in `reservation` where
 * its memory will land. On ENOMEM from a host-wide claim it throws (the
 * build cannot go on); any claim it made is then released.
 */
export function placeDomain(
  host: BuildHost,
  reservation: Reservation,
  request: PlacementRequest,
  signal?: AbortSignal,
  onEvent?: (event: ClaimReleaseFailed) => void,
): Promise<Placement> {
  // A build queued for the lock is rejected as soon as it is aborted. The
  // build inside the section finishes its hypercall in flight first, so that
  // when it rejects, what it claimed is already released.
  return host.placementLock.run(async () => {
    const claim = { made: false }
    try {
      return await placeLocked(host, reservation, request, claim, signal)
    } catch (error) {
      // Whatever failed after a claim: release it, forget the promise.
      reservation.release()
      if (claim.made) await releaseClaim(host.hypervisor, reservation.domid, onEvent)
      throw error
    }
  }, signal)
}

async function placeLocked(
  host: BuildHost,
  reservation: Reservation,
  request: PlacementRequest,
  claim: { made: boolean },
  signal: AbortSignal | undefined,
): Promise<Placement> {
  const xen = host.hypervisor
  const domid = reservation.domid
  const policy = host.numaPolicy
  const bytes = bytesOfPages(request.claimPages)
  const nodeCount = host.layout.distances.length
  const none = Array<number>(nodeCount).fill(0)
  const inFlight = host.accounting === 'in-flight'
  type Unclaimed = Omit<Placement, 'claim'>

  const claimHost = async (placement: Unclaimed): Promise<Placement> => {
    try {
      await xen.claimPages(domid, request.claimPages)
      claim.made = true
      return { ...placement, claim: 'host' }
    } catch (error) {
      if (isCode(error, 'ENOMEM')) throw error
      // Any other error: this Xen has no claims; the build goes on without one.
      return { ...placement, claim: 'unsupported', reason: `${placement.reason}; no claims on this host` }
    }
  }

  /**
   * Where Xen will put the memory of a domain whose node affinity is
   * `nodes`: spread evenly over them. Where that would take memory promised
   * to builds in flight (in-flight accounting), waits until those builds have
   * populated theirs, so that neither lands off its plan.
   */
  let nodeFreeBytes: number[] = []
  let waitedForInFlightMs = 0
  const spreadOver = async (nodes: readonly number[]): Promise<number[]> => {
    for (;;) {
      const spread = xenSpread(bytes, nodes, nodeFreeBytes, nodeCount)
      if (!inFlight) return spread
      const promised = host.ledger.promisedBytesByNode('in-flight')
      const displaced = nodes.filter((n) => (spread[n] ?? 0) > Math.max(0, (nodeFreeBytes[n] ?? 0) - (promised[n] ?? 0)))
      if (displaced.length === 0 || !host.ledger.hasPromisesOn(displaced, reservation)) return spread
      const started = performance.now()
      await abortable(host.ledger.settledOn(displaced, reservation), signal, `placement of domain ${domid}`)
      waitedForInFlightMs += performance.now() - started
      nodeFreeBytes = (await xen.numaInfo()).nodes.map((n) => n?.freeBytes ?? 0)
    }
  }
  const validNodes = host.layout.nodeMemoryBytes.flatMap((size, node) => (size === null ? [] : [node]))

  // xenopsd skips placement, and makes no claim, for policy `any` and for a
  // VM with hard affinity.
  if (policy === 'any' || request.hardAffinityCpus !== null) {
    const reason = policy === 'any' ? 'policy any' : 'the VM has hard affinity'
    let promisedBytesByNode = none
    if (request.hardAffinityCpus !== null && policy !== 'any') {
      // Its memory goes where its hard affinity is: count it, so builds placed
      // meanwhile do not plan on it.
      const nodes = [...new Set(request.hardAffinityCpus.map((cpu) => host.layout.cpuToNode[cpu]))]
      const affine = nodes.filter((n): n is number => n !== null && n !== undefined)
      nodeFreeBytes = (await xen.numaInfo()).nodes.map((n) => n?.freeBytes ?? 0)
      promisedBytesByNode = await spreadOver(affine)
      reservation.promise(promisedBytesByNode, false)
    }
    const placement: Unclaimed = { policy, plan: null, affinity: null, node: null, reason, promisedBytesByNode }
    return host.alwaysClaim ? claimHost(placement) : { ...placement, claim: 'none' }
  }
  if (host.planner.numaOffReason !== null) {
    const reason = `NUMA placement is off: ${host.planner.numaOffReason}`
    return claimHost({ policy, plan: null, affinity: null, node: null, reason, promisedBytesByNode: none })
  }

  try {
    nodeFreeBytes = (await xen.numaInfo()).nodes.map((n) => n?.freeBytes ?? 0)
  } catch (error) {
    if (isCode(error, 'ABORTED')) throw error
    // xenopsd: no node memory, no placement; a host-wide claim still.
    const code = (error as { code?: string }).code ?? 'unknown error'
    const reason = `node memory unavailable (${code})`
    return claimHost({ policy, plan: null, affinity: null, node: null, reason, promisedBytesByNode: none })
  }
  const inFlightBytesByNode = host.promisedBytesByNode(true)
  const promised = host.promisedBytesByNode()
  const free = nodeFreeBytes.map((b, i) => Math.max(0, b - (promised[i] ?? 0)))
  const cores = policy === 'prio_mem_only' ? 0 : request.vcpus
  const plan = host.planner.plan({ memoryBytes: bytes, vcpus: request.vcpus, cores }, free)
  const affinity = policy === 'best_effort_hard' ? 'hard' : 'soft'
  const setAffinity = async (cpus: readonly number[]) => {
    const mask = { [affinity]: [...cpus] }
    await Promise.all(Array.from({ length: request.vcpus }, (_, vcpu) => xen.setVcpuAffinity(domid, vcpu, mask)))
  }
  const seen = () => ({ nodeFreeBytes, inFlightBytesByNode, ...(waitedForInFlightMs > 0 ? { waitedForInFlightMs } : {}) })
  /** No node placement: Xen spreads the memory over every node. */
  const unplaced = async (reason: string): Promise<Placement> => {
    const promisedBytesByNode = await spreadOver(validNodes)
    reservation.promise(promisedBytesByNode, false)
    return claimHost({ policy, plan, affinity: null, node: null, reason, promisedBytesByNode, ...seen() })
  }

  if (plan === null) return unplaced('no node set fits')
  const [only] = plan.nodes
  if (plan.nodes.length === 1 && only !== undefined) {
    try {
      await xen.claimPagesOnNode(domid, only, request.claimPages)
      claim.made = true
    } catch (error) {
      // The node cannot hold it after all: no node placement.
      if (isCode(error, 'ENOMEM')) return unplaced(`node ${only} claim: ENOMEM`)
      // Any other error: no node claims here (upstream Xen). Affinity alone, and a host-wide claim.
    }
    const promisedBytesByNode = xenSpread(bytes, [only], free, nodeCount)
    await setAffinity(plan.cpus)
    reservation.promise(promisedBytesByNode, claim.made)
    if (claim.made) {
      return { policy, plan, affinity, node: only, claim: 'node', reason: `node ${only} claimed`, promisedBytesByNode, ...seen() }
    }
    return claimHost({ policy, plan, affinity, node: null, reason: `node ${only}, without a node claim`, promisedBytesByNode, ...seen() })
  }
  const promisedBytesByNode = await spreadOver(plan.nodes)
  await setAffinity(plan.cpus)
  reservation.promise(promisedBytesByNode, false)
  return claimHost({ policy, plan, affinity, node: null, reason: `nodes ${plan.nodes.join(',')}`, promisedBytesByNode, ...seen() })
}
