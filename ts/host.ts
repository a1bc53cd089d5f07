/**
 * `BuildHost`: what the builds on one Xen host share. The NUMA planner (its
 * balancing counters live as long as the host object), the lock that makes
 * placement one critical section, the ledger of memory promised to builds in
 * flight, the free-memory watcher, and the host's policies. Create one per
 * host and pass it to every build.
 */
import type { Hypervisor } from '../native/binding.js'
import { readHostTopology, type HostLayout } from './hypervisor.js'
import { NumaPlanner, type PlannerOptions } from './numa.js'
import { MemoryWatcher } from './wait-memory.js'
import { InMemoryXenstore, type Xenstore } from './xenstore.js'
import { aborted } from './wait-memory.js'

/** xenopsd's NUMA placement policies (DESIGN §5). */
export type NumaPolicy = 'any' | 'best_effort' | 'best_effort_hard' | 'prio_mem_only'

/**
 * What the planner subtracts from each node's free memory.
 * - `in-flight`: all memory promised to builds not yet populated (ours).
 * - `xenopsd`: node claims only; memory behind a host-wide claim is invisible
 *   per node, so parallel builds see the same free memory (xenopsd's race).
 */
export type Accounting = 'in-flight' | 'xenopsd'

export interface BuildHostOptions extends PlannerOptions {
  numaPolicy?: NumaPolicy
  accounting?: Accounting
  xenstore?: Xenstore
  /** How often the free-memory watcher polls while builds wait; 20 ms. */
  memoryPollMs?: number
}

/** One build's promise of memory, per node, until it is populated. */
interface Promised {
  bytesByNode: number[]
  /** A node claim: Xen itself keeps that memory for the build. */
  nodeClaim: boolean
}

/** Runs critical sections one at a time, in arrival order. */
export class Lock {
  #tail: Promise<unknown> = Promise.resolve()

  run<T>(section: () => Promise<T>, signal?: AbortSignal): Promise<T> {
    const result = this.#tail.then(() => {
      if (signal?.aborted) throw aborted('waiting for the placement lock', signal.reason)
      return section()
    })
    this.#tail = result.catch(() => undefined)
    return result
  }
}

export class BuildHost {
  readonly hypervisor: Hypervisor
  readonly xenstore: Xenstore
  readonly layout: HostLayout
  readonly planner: NumaPlanner
  readonly numaPolicy: NumaPolicy
  readonly accounting: Accounting
  readonly cpuCount: number
  /** What the hypervisor can do (`hvm`, `pv`, `hap`, `shadow`), from physinfo. */
  readonly capabilities: readonly string[]
  readonly memory: MemoryWatcher
  readonly placementLock = new Lock()
  readonly #promised = new Map<number, Promised>()
  /** Shadow pools of builds that have not allocated theirs yet: bytes by domain. */
  readonly #pendingPools = new Map<number, number>()

  private constructor(hypervisor: Hypervisor, layout: HostLayout, capabilities: string[], options: BuildHostOptions) {
    this.hypervisor = hypervisor
    this.layout = layout
    this.capabilities = capabilities
    this.planner = new NumaPlanner(layout, options)
    this.numaPolicy = options.numaPolicy ?? 'best_effort'
    this.accounting = options.accounting ?? 'in-flight'
    this.xenstore = options.xenstore ?? new InMemoryXenstore()
    this.cpuCount = layout.cpuToNode.length
    this.memory = new MemoryWatcher(hypervisor, { intervalMs: options.memoryPollMs })
  }

  static async create(hypervisor: Hypervisor, options: BuildHostOptions = {}): Promise<BuildHost> {
    const [layout, physinfo] = await Promise.all([readHostTopology(hypervisor), hypervisor.physinfo()])
    return new BuildHost(hypervisor, layout, physinfo.capabilities, options)
  }

  /** Records memory promised to a build, by node. */
  promise(domid: number, bytesByNode: number[], nodeClaim: boolean): void {
    this.#promised.set(domid, { bytesByNode, nodeClaim })
  }

  /** The build's memory is populated (now counted by Xen), or the build ended. */
  settle(domid: number): void {
    this.#promised.delete(domid)
    this.#pendingPools.delete(domid)
  }

  /**
   * A build will allocate a shadow pool of `bytes` before it is placed: with
   * no affinity yet, Xen spreads it over every node, eating into memory
   * promised to builds placed before it. In-flight accounting reserves it.
   */
  expectPool(domid: number, bytes: number): void {
    this.#pendingPools.set(domid, bytes)
  }

  /** The build's shadow pool is allocated (Xen counts it now). */
  poolAllocated(domid: number): void {
    this.#pendingPools.delete(domid)
  }

  /**
   * What the planner subtracts from each node's free memory: by the
   * accounting mode, or (`all`) everything promised to builds in flight.
   */
  promisedBytesByNode(all = false): number[] {
    const nodes = this.layout.distances.length
    const inFlight = all || this.accounting === 'in-flight'
    let pools = 0
    if (inFlight) for (const bytes of this.#pendingPools.values()) pools += bytes
    const totals = this.layout.distances.map(() => Math.ceil(pools / nodes))
    for (const { bytesByNode, nodeClaim } of this.#promised.values()) {
      if (!all && this.accounting === 'xenopsd' && !nodeClaim) continue
      bytesByNode.forEach((bytes, node) => {
        totals[node] = (totals[node] ?? 0) + bytes
      })
    }
    return totals
  }

  /** Builds with memory promised and not yet populated. */
  get buildsInFlight(): number {
    return this.#promised.size
  }
}
