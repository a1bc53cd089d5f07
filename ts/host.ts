/**
 * `BuildHost`: what the builds on one Xen host share. The NUMA planner (its
 * balancing counters live as long as the host object), the lock that makes
 * placement one critical section, the ledger of memory promised to builds in
 * flight, the free-memory watcher, and the host's policies. Create one per
 * host and pass it to every build.
 */
import type { Hypervisor } from '../native/binding.js'
import { ACCOUNTING_MODES, InFlightLedger, type Accounting } from './ledger.js'

export { ACCOUNTING_MODES, type Accounting } from './ledger.js'
import { Lock } from './lock.js'
import { NumaPlanner, readHostTopology, type HostLayout, type PlannerOptions } from './numa.js'
import { optionalBoolean, optionalChoice, optionalMilliseconds, optionsObject } from './checks.js'
import { describe, invalidArgument } from './errors.js'
import { MemoryWatcher } from './wait-memory.js'
import type { Xenstore } from './xenstore.js'
import { InMemoryXenstore } from './xenstore-memory.js'

/**
 * xenopsd's NUMA placement policies: `best_effort` (the default: a plan,
 * soft affinity to its CPUs, cores as vCPUs), `best_effort_hard` (the same,
 * as hard affinity), `prio_mem_only` (soft affinity, no cores asked for),
 * `any` (no placement). See
 * https://github.com/xen-domain-build/xen-domain-build/blob/main/docs/ARCHITECTURE.md#policies-affinity-and-claims.
 */
export type NumaPolicy = 'any' | 'best_effort' | 'best_effort_hard' | 'prio_mem_only'
export const NUMA_POLICIES: readonly NumaPolicy[] = ['any', 'best_effort', 'best_effort_hard', 'prio_mem_only']

/** A build host's policies. */
export interface BuildHostOptions extends PlannerOptions {
  /** xenopsd's NUMA placement policy: `best_effort` by default. */
  numaPolicy?: NumaPolicy
  /** What the planner subtracts from free memory: `in-flight` by default. */
  accounting?: Accounting
  /** The host's store (`openXenstore()`): required on a real host; an in-memory one by default on a simulated host. */
  xenstore?: Xenstore
  /** How often the free-memory watcher polls while builds wait; 20 ms. */
  memoryPollMs?: number
  /**
   * Also make a host-wide claim where xenopsd makes none: with policy `any`,
   * and for a VM with hard affinity. Off by default, as in xenopsd.
   */
  alwaysClaim?: boolean
  /**
   * The longest a build waits, outside the placement lock, for builds in
   * flight to populate before it places as well as it can: 30 s.
   */
  placementWaitMs?: number
}

/**
 * What the builds on one Xen host share: the NUMA planner, the placement
 * lock, the ledger of memory promised to builds in flight, the free-memory
 * watcher, the policies. Create one per host (`BuildHost.create`) and pass
 * it to every build; `close()` it (or `await using`) when done.
 */
export class BuildHost {
  readonly hypervisor: Hypervisor
  readonly xenstore: Xenstore
  readonly layout: HostLayout
  readonly planner: NumaPlanner
  readonly numaPolicy: NumaPolicy
  readonly accounting: Accounting
  readonly alwaysClaim: boolean
  readonly placementWaitMs: number
  readonly cpuCount: number
  /** What the hypervisor can do (`hvm`, `pv`, `hap`, `shadow`), from physinfo. */
  readonly capabilities: readonly string[]
  /** @internal The free-memory watcher every build's wait shares. */
  readonly memory: MemoryWatcher
  /** @internal The lock that makes placement one critical section. */
  readonly placementLock = new Lock()
  /** @internal Memory promised to builds in flight, by node: one reservation per build. */
  readonly ledger: InFlightLedger

  private constructor(hypervisor: Hypervisor, layout: HostLayout, capabilities: string[], options: BuildHostOptions) {
    this.hypervisor = hypervisor
    this.layout = layout
    this.capabilities = capabilities
    this.planner = new NumaPlanner(layout, options)
    this.numaPolicy = options.numaPolicy ?? 'best_effort'
    this.accounting = options.accounting ?? 'in-flight'
    this.alwaysClaim = options.alwaysClaim ?? false
    this.placementWaitMs = options.placementWaitMs ?? 30_000
    this.xenstore = options.xenstore ?? new InMemoryXenstore()
    this.cpuCount = layout.cpuToNode.length
    this.memory = new MemoryWatcher(hypervisor, { intervalMs: options.memoryPollMs })
    this.ledger = new InFlightLedger(layout.distances.length)
  }

  #closed = false

  /** Whether `close()` was called: new builds are then refused with CLOSED. */
  get closed(): boolean {
    return this.#closed
  }

  /**
   * Lets go of what the host holds: the free-memory watcher stops (waiting
   * builds reject with CLOSED) and new builds are refused. The hypervisor is
   * the caller's: close it too when done with it.
   */
  close(): void {
    this.#closed = true
    this.memory.close()
  }

  /** `await using host = await BuildHost.create(...)`: `close()` at the end of the block. */
  async [Symbol.asyncDispose](): Promise<void> {
    this.close()
  }

  /**
   * The build host of a hypervisor: reads its topology and capabilities
   * once. `INVALID_ARGUMENT` for bad options, before any hypercall.
   */
  static async create(hypervisor: Hypervisor, given?: BuildHostOptions): Promise<BuildHost> {
    const xen = hypervisor as Partial<Hypervisor> | null
    if (
      xen === null ||
      typeof xen !== 'object' ||
      ['physinfo', 'numaInfo', 'cpuTopology'].some((m) => typeof xen[m as keyof Hypervisor] !== 'function')
    ) {
      throw invalidArgument(
        'hypervisor',
        `expected a Hypervisor (openHypervisor(), simulateHost(...).hypervisor()), got ${describe(hypervisor)}`,
      )
    }
    const options = optionsObject('options', given)
    optionalChoice('options.numaPolicy', options.numaPolicy, NUMA_POLICIES)
    optionalChoice('options.accounting', options.accounting, ACCOUNTING_MODES)
    optionalChoice('options.largeHostCandidates', options.largeHostCandidates, ['single-nodes', 'neighbourhoods'])
    optionalMilliseconds('options.memoryPollMs', options.memoryPollMs)
    optionalMilliseconds('options.placementWaitMs', options.placementWaitMs)
    // The watcher's poll is one setTimeout: within its range.
    if ((options.memoryPollMs ?? 0) > 2 ** 31 - 1)
      throw invalidArgument('options.memoryPollMs', `${options.memoryPollMs} ms is more than a poll interval can be (2^31 - 1 ms)`)
    optionalBoolean('options.alwaysClaim', options.alwaysClaim)
    const xenstore = options.xenstore as Partial<Xenstore> | undefined
    if (xenstore !== undefined && (xenstore === null || typeof xenstore.read !== 'function' || typeof xenstore.writeMany !== 'function')) {
      throw invalidArgument('options.xenstore', `expected a Xenstore, got ${describe(xenstore)}`)
    }
    // An in-memory store on a real host would take every write and never reach xenstored.
    if (xenstore === undefined && hypervisor.simulated !== true) {
      throw invalidArgument(
        'options.xenstore',
        'a real Xen host needs its xenstored: pass openXenstore() (an in-memory store is only for a simulated host)',
      )
    }
    const [layout, physinfo] = await Promise.all([readHostTopology(hypervisor), hypervisor.physinfo()])
    return new BuildHost(hypervisor, layout, physinfo.capabilities, options)
  }

  /**
   * @internal Memory promised to builds in flight and not yet populated, by
   * node, as `accounting` counts it (the host's own by default).
   */
  promisedBytesByNode(accounting: Accounting = this.accounting): number[] {
    return this.ledger.promisedBytesByNode(accounting)
  }

  /** Builds with memory promised and not yet populated. */
  get buildsInFlight(): number {
    return this.ledger.buildsInFlight
  }
}
