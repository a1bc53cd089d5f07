/**
 * NUMA placement: the host's topology as a hypervisor reports it
 * (`readHostTopology`), and xenopsd's decisions on it, made by the Rust
 * engine. The rules:
 * https://github.com/xen-domain-build/xen-domain-build/blob/main/docs/ARCHITECTURE.md#numa-placement.
 */
import type { Hypervisor, LargeHostCandidates, NativePlanner } from '../native/binding.js'
import { optionsObject } from './checks.js'
import { describe, invalidArgument } from './errors.js'
import { binding } from './native.js'

/** A host's NUMA layout, as Xen reports it. */
export interface HostTopology {
  /** Node-to-node distances, n × n (ACPI SLIT, 10 is local); above 255 or below 0 is unreachable. */
  distances: readonly (readonly number[])[]
  /** The node of each CPU; null for a CPU with no node (offline). */
  cpuToNode: readonly (number | null)[]
  /** Physical cores per node. */
  nodeCores: readonly number[]
}

/** A host's NUMA layout (`readHostTopology`), with each node's memory. */
export interface HostLayout extends HostTopology {
  /** Each node's memory, as Xen reports it (null for an invalid node). */
  nodeMemoryBytes: (number | null)[]
}

/**
 * Reads what NUMA placement needs from a hypervisor: distances, the node of
 * each CPU (null when offline), and physical cores per node counted as
 * xenopsd counts them: distinct `core` ids among the node's CPUs. (Core ids
 * repeat across sockets, so a node that spans two sockets counts a shared id
 * once; xenopsd's plans depend on that count, so ours use it too.)
 */
export async function readHostTopology(hypervisor: Hypervisor): Promise<HostLayout> {
  const [numa, topology] = await Promise.all([hypervisor.numaInfo(), hypervisor.cpuTopology()])
  const cores = numa.distances.map(() => new Set<number>())
  for (const cpu of topology.cpus) {
    if (cpu !== null && cpu !== undefined) cores[cpu.node]?.add(cpu.core)
  }
  return {
    distances: numa.distances,
    cpuToNode: topology.cpus.map((cpu) => cpu?.node ?? null),
    nodeCores: cores.map((set) => set.size),
    nodeMemoryBytes: numa.nodes.map((node) => node?.sizeBytes ?? null),
  }
}

/** How the planner chooses candidates. */
export interface PlannerOptions {
  /**
   * Candidates on hosts with more than 16 valid nodes. `single-nodes` is
   * xenopsd's rule (a VM larger than one node is not placed); `neighbourhoods`
   * adds, for each node, the sets grown from it by its nearest nodes.
   */
  largeHostCandidates?: LargeHostCandidates
}

/** What a VM needs of a placement. */
export interface NumaRequest {
  /** Its memory: the plan's nodes must have this much free. */
  memoryBytes: number
  /** Its vCPUs: the plan's nodes must have as many CPUs. */
  vcpus: number
  /** Physical cores wanted; 0 when the policy leaves hyperthreads alone. */
  cores: number
}

/** A placement: all CPUs of the chosen nodes. Shared and frozen: do not mutate. */
export interface NumaPlan {
  readonly nodes: readonly number[]
  readonly cpus: readonly number[]
}

/** A set of nodes the planner may choose, with its distances. */
export interface NumaCandidate extends NumaPlan {
  /** The largest distance between two of its nodes. */
  readonly maxDistance: number
  /** The mean distance between its nodes. */
  readonly averageDistance: number
}

function checkNumberArray(field: string, value: unknown, allowNull = false): void {
  if (!Array.isArray(value)) throw invalidArgument(field, `expected an array, got ${describe(value)}`)
  value.forEach((v, i) => {
    if (typeof v !== 'number' && !(allowNull && v === null)) {
      throw invalidArgument(`${field}[${i}]`, `expected a number${allowNull ? ' or null' : ''}, got ${describe(v)}`)
    }
  })
}

function checkTopology(topology: HostTopology): void {
  if (topology === null || typeof topology !== 'object') {
    throw invalidArgument('topology', `expected an object, got ${describe(topology)}`)
  }
  if (!Array.isArray(topology.distances)) {
    throw invalidArgument('topology.distances', `expected an array of rows, got ${describe(topology.distances)}`)
  }
  for (const [i, row] of topology.distances.entries()) checkNumberArray(`topology.distances[${i}]`, row)
  checkNumberArray('topology.cpuToNode', topology.cpuToNode, true)
  checkNumberArray('topology.nodeCores', topology.nodeCores)
}

function checkCount(field: string, value: unknown): asserts value is number {
  if (typeof value !== 'number') throw invalidArgument(field, `expected a number, got ${describe(value)}`)
}

/** memoryBytes, vcpus, cores: what precedes each node's free bytes in a plan call. */
const REQUEST_FIELDS = 3

/**
 * One host's planner. Its balancing counters live as long as it does, as in
 * xenopsd: keep one planner per host. Planning is synchronous and takes
 * microseconds; it never blocks the event loop for long.
 */
export class NumaPlanner {
  readonly #native: NativePlanner
  /**
   * The whole plan call, `[memoryBytes, vcpus, cores, nodeFreeBytes...]`,
   * reused between calls: the hot path allocates nothing and crosses N-API
   * with one argument.
   */
  readonly #call: Float64Array
  readonly #plans: (NumaCandidate | undefined)[] = []

  constructor(topology: HostTopology, given?: PlannerOptions) {
    const options = optionsObject('options', given)
    checkTopology(topology)
    this.#native = new (binding().NativePlanner)({
      distances: topology.distances.map((row) => [...row]),
      cpuToNode: [...topology.cpuToNode],
      nodeCores: [...topology.nodeCores],
      largeHostCandidates: options.largeHostCandidates,
    })
    this.#call = new Float64Array(REQUEST_FIELDS + this.#native.nodeCount)
    this.#native.useCallBuffer(this.#call)
  }

  get nodeCount(): number {
    return this.#call.length - REQUEST_FIELDS
  }

  /** Why NUMA placement is off for this host (not an error), or null when it is on. */
  get numaOffReason(): string | null {
    return this.#native.numaOffReason
  }

  /**
   * Chooses the nodes for a VM, given each node's free memory (minus what is
   * claimed there), and counts the choice. Null when nothing fits or NUMA
   * placement is off.
   */
  plan(request: NumaRequest, nodeFreeBytes: ArrayLike<number>): NumaPlan | null {
    if (request === null || typeof request !== 'object') {
      throw invalidArgument('request', `expected an object, got ${describe(request)}`)
    }
    const { memoryBytes, vcpus, cores } = request
    checkCount('request.memoryBytes', memoryBytes)
    checkCount('request.vcpus', vcpus)
    checkCount('request.cores', cores)
    if (nodeFreeBytes === null || typeof nodeFreeBytes !== 'object' || typeof nodeFreeBytes.length !== 'number') {
      throw invalidArgument('nodeFreeBytes', `expected an array, got ${describe(nodeFreeBytes)}`)
    }
    if (nodeFreeBytes.length !== this.nodeCount) {
      throw invalidArgument('nodeFreeBytes', `${nodeFreeBytes.length} entries, expected one per node (${this.nodeCount})`)
    }
    const call = this.#call
    call[0] = memoryBytes
    call[1] = vcpus
    call[2] = cores
    for (let i = 0; i < nodeFreeBytes.length; i++) {
      const bytes = nodeFreeBytes[i]
      if (typeof bytes !== 'number') throw invalidArgument(`nodeFreeBytes[${i}]`, `expected a number, got ${describe(bytes)}`)
      call[REQUEST_FIELDS + i] = bytes
    }
    // Whether each number is a whole number in range is the engine's check, once.
    const index = this.#native.planIndex()
    return index < 0 ? null : this.#candidate(index)
  }

  /** How many plans chose each node. */
  usage(): number[] {
    return this.#native.usage()
  }

  /** How many candidate node sets the host has (0 when NUMA placement is off). */
  get candidateCount(): number {
    return this.#native.candidateCount
  }

  /**
   * Every candidate node set, best first, made one at a time as it is
   * iterated: a 16-node host has 65,535, each with its CPUs, which are not
   * to be built all at once. Empty when NUMA placement is off.
   */
  *candidates(): Generator<NumaCandidate, void, undefined> {
    const count = this.#native.candidateCount
    for (let index = 0; index < count; index++) yield this.#plans[index] ?? this.#read(index)
  }

  /** A chosen plan, kept: the same object each time it is chosen. */
  #candidate(index: number): NumaCandidate {
    let candidate = this.#plans[index]
    if (candidate === undefined) {
      candidate = this.#read(index)
      this.#plans[index] = candidate
    }
    return candidate
  }

  #read(index: number): NumaCandidate {
    const c = this.#native.candidate(index)
    return Object.freeze({
      nodes: Object.freeze(c.nodes),
      cpus: Object.freeze(c.cpus),
      maxDistance: c.maxDistance,
      averageDistance: c.averageDistance,
    })
  }
}
