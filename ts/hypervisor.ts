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
  ShutdownReason,
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
