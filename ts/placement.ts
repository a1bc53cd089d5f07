/**
 * NUMA placement with claims (DESIGN §5). Reading node memory, planning,
 * claiming and setting affinity is one critical section per host: two builds
 * never plan against the same free memory.
 */
import { XenDomainBuildError } from './errors.js'
import type { BuildHost, NumaPolicy } from './host.js'
import type { NumaPlan } from './numa.js'
import { PAGE_BYTES } from './wait-memory.js'

export interface PlacementRequest {
  vcpus: number
  claimPages: number
  /** A VM with hard affinity gets no NUMA placement (xenopsd). */
  hasHardAffinity: boolean
}

export type ClaimKind = 'node' | 'host' | 'unsupported'

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
  /** Memory promised to this build, by node, until it is populated. */
  promisedBytesByNode: number[]
  /** When planned: each node's free memory as Xen reported it... */
  nodeFreeBytes?: number[]
  /** ...and what builds in flight had been promised there, whatever the accounting. */
  inFlightBytesByNode?: number[]
}

function isErrno(error: unknown, code: string): boolean {
  return error instanceof XenDomainBuildError && error.code === code
}

/** Spreads memory over nodes as Xen interleaves it: evenly, within what each has. */
export function interleave(bytes: number, nodes: readonly number[], freeBytes: readonly number[], nodeCount: number) {
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

/**
 * Places a domain and claims its memory. On ENOMEM from a host-wide claim it
 * throws (the build cannot go on); any claim it made is then released.
 */
export async function placeDomain(
  host: BuildHost,
  domid: number,
  request: PlacementRequest,
  signal?: AbortSignal,
): Promise<Placement> {
  const xen = host.hypervisor
  const policy = host.numaPolicy
  const bytes = request.claimPages * PAGE_BYTES
  const nodeCount = host.layout.distances.length
  const none = Array<number>(nodeCount).fill(0)

  const claimHost = async (placement: Omit<Placement, 'claim'>): Promise<Placement> => {
    try {
      await xen.claimPages(domid, request.claimPages)
      return { ...placement, claim: 'host' }
    } catch (error) {
      if (isErrno(error, 'ENOMEM')) throw error
      // Any other error: this Xen has no claims; the build goes on without one.
      return { ...placement, claim: 'unsupported', reason: `${placement.reason}; no claims on this host` }
    }
  }

  const skip =
    policy === 'any'
      ? 'policy any'
      : request.hasHardAffinity
        ? 'the VM has hard affinity'
        : host.planner.numaOffReason !== null
          ? `NUMA placement is off: ${host.planner.numaOffReason}`
          : null
  if (skip !== null) {
    return host.placementLock.run(
      () => claimHost({ policy, plan: null, affinity: null, node: null, reason: skip, promisedBytesByNode: none }),
      signal,
    )
  }

  return host.placementLock.run(async () => {
    let claimed = false
    try {
      return await planAndClaim()
    } catch (error) {
      // Whatever failed after a claim: release it, forget the promise.
      host.settle(domid)
      if (claimed) await xen.claimPages(domid, 0).catch(() => undefined)
      throw error
    }

    async function planAndClaim(): Promise<Placement> {
      const numa = await xen.numaInfo()
      const nodeFreeBytes = numa.nodes.map((n) => n?.freeBytes ?? 0)
      const inFlightBytesByNode = host.promisedBytesByNode(true)
      const promised = host.promisedBytesByNode()
      const free = nodeFreeBytes.map((bytes, i) => Math.max(0, bytes - (promised[i] ?? 0)))
      const seen = { nodeFreeBytes, inFlightBytesByNode }
      const cores = policy === 'prio_mem_only' ? 0 : request.vcpus
      const plan = host.planner.plan({ memoryBytes: bytes, vcpus: request.vcpus, cores }, free)
      const affinity = policy === 'best_effort_hard' ? 'hard' : 'soft'
      const setAffinity = async (cpus: readonly number[]) => {
        const mask = { [affinity]: [...cpus] }
        await Promise.all(Array.from({ length: request.vcpus }, (_, vcpu) => xen.setVcpuAffinity(domid, vcpu, mask)))
      }
      const claimHostCounted = async (placement: Omit<Placement, 'claim'>) => {
        const result = await claimHost(placement)
        claimed = result.claim === 'host'
        return result
      }

      if (plan === null) {
        return claimHostCounted({ policy, plan, affinity: null, node: null, reason: 'no node set fits', promisedBytesByNode: none, ...seen })
      }
      const byNode = interleave(bytes, plan.nodes, free, nodeCount)
      const [only] = plan.nodes
      if (plan.nodes.length === 1 && only !== undefined) {
        try {
          await xen.claimPagesOnNode(domid, only, request.claimPages)
          claimed = true
        } catch (error) {
          if (isErrno(error, 'ENOMEM')) {
            // The node cannot hold it after all: no node placement.
            const reason = `node ${only} claim: ENOMEM`
            return claimHostCounted({ policy, plan, affinity: null, node: null, reason, promisedBytesByNode: none, ...seen })
          }
          // Any other error: no node claims here (upstream Xen). Affinity alone, and a host-wide claim.
        }
        if (claimed) {
          await setAffinity(plan.cpus)
          host.promise(domid, byNode, true)
          return { policy, plan, affinity, node: only, claim: 'node', reason: `node ${only} claimed`, promisedBytesByNode: byNode, ...seen }
        }
      }
      await setAffinity(plan.cpus)
      host.promise(domid, byNode, false)
      const reason = plan.nodes.length === 1 ? `node ${only}, without a node claim` : `nodes ${plan.nodes.join(',')}`
      return claimHostCounted({ policy, plan, affinity, node: null, reason, promisedBytesByNode: byNode, ...seen })
    }
  }, signal)
}
