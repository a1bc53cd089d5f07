/**
 * The hypervisor interface: the real host's libxenctrl, or a simulated host
 * with Xen's semantics. Both are the same `Hypervisor`: every operation runs
 * off the event loop and returns a Promise; failures are
 * `XenDomainBuildError`s whose `code` is the errno's name (`ENOMEM`, ...) with
 * `errno` and `operation`, or `XEN_UNAVAILABLE`, `XEN_VERSION_UNSUPPORTED`,
 * `INVALID_ARGUMENT`.
 */
import type { Hypervisor, OpenOptions, SimulatedHost, SimulatedHostOptions, SimulatorPreset } from '../native/binding.js'
import { binding } from './native.js'
import type { HostTopology } from './numa.js'

export type {
  AffinityInput,
  Clock,
  CpuLocation,
  CpuTopology,
  DomainConfig,
  DomainInfo,
  DomainKind,
  Fault,
  FaultMode,
  Hypervisor,
  LargeHostCandidates,
  LibxenctrlLog,
  NodeMemory,
  NodePages,
  NumaInfo,
  OpenOptions,
  PhysInfo,
  ScrubReporting,
  SimulatedCpu,
  SimulatedHost,
  SimulatedHostDescription,
  SimulatedHostOptions,
  SimulatorPreset,
  VcpuAffinity,
  XenVersion,
} from '../native/binding.js'

/** Opens the real host's hypervisor (libxenctrl of the running Xen). */
export async function openHypervisor(options?: OpenOptions): Promise<Hypervisor> {
  return binding().openHypervisor(options)
}

/** A simulated Xen host, from a preset or a host description. */
export function simulateHost(options: SimulatedHostOptions): SimulatedHost {
  return new (binding().SimulatedHost)(options)
}

/** The simulator's preset hosts. */
export function simulatorPresets(): SimulatorPreset[] {
  return binding().SimulatedHost.presets()
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
