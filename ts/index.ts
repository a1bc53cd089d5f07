/**
 * xen-domain-build: xenopsd's Domain.build for Node.js Xen toolstacks. Every
 * type a signature below mentions is exported here too (a test checks it),
 * so a caller can name what it is handed.
 */
export {
  ERRNO_NAMES,
  isXenDomainBuildError,
  XenDomainBuildError,
  type ErrnoCode,
  type ErrorCode,
  type ErrorDetails,
  type ErrorFieldsByCode,
  type XenDomainBuildErrorOf,
  type XenguestFailure,
  type XenstoreUnavailableReason,
} from './errors.js'
export {
  openHypervisor,
  simulateHost,
  simulatorPresets,
  type AffinityInput,
  type Clock,
  type CpuLocation,
  type CpuTopology,
  type DomainConfig,
  type DomainInfo,
  type DomainKind,
  type Fault,
  type FaultMode,
  type Hypervisor,
  type LargeHostCandidates,
  type LibxenctrlLog,
  type NodeMemory,
  type NodePages,
  type NumaInfo,
  type OpenOptions,
  type PhysInfo,
  type ScrubReporting,
  type ShutdownReason,
  type SimulatedCpu,
  type SimulatedHost,
  type SimulatedHostDescription,
  type SimulatedHostOptions,
  type SimulatorPreset,
  type VcpuAffinity,
  type XenVersion,
} from './hypervisor.js'
export {
  NumaPlanner,
  readHostTopology,
  type HostLayout,
  type HostTopology,
  type NumaCandidate,
  type NumaPlan,
  type NumaRequest,
  type PlannerOptions,
} from './numa.js'
export {
  buildDomain,
  buildChannel,
  buildTracingChannel,
  type BuildTraceContext,
  type BuildDomainOptions,
  type BuiltDomain,
  type DomainBuilderOptions,
  type DomainBuildEvent,
  type DomainImage,
} from './build.js'
export { restoreDomain, restoreTracingChannel, type RestoreDomainOptions } from './restore.js'
export {
  DEFAULT_ACK_TIMEOUT_MS,
  DEFAULT_SUSPENDED_TIMEOUT_MS,
  suspendDomain,
  type SuspendDomainOptions,
  type SuspendedDomain,
  type SuspendEvent,
} from './suspend.js'
export { migrateDomain, type MigrateDomainOptions, type MigratedDomain } from './migrate.js'
export { buildPost, domainEntries, type BuildPostInput } from './build-post.js'
export {
  createDomain,
  destroyDomain,
  removeVm,
  dyingDomainHandle,
  guestReadOnly,
  guestReadWrite,
  type CreateDomainConfig,
} from './domain.js'
export { SimulatedXenguest, type SimulatedXenguestOptions } from './sim-xenguest.js'
export { SimulatedGuest, type SimulatedGuestOptions } from './sim-guest.js'
export { SpawnedXenguest, type SpawnedXenguestOptions } from './xenguest.js'
export {
  IMAGE_FD,
  parseXenguestError,
  resultCarriesFrames,
  xenguestArgs,
  xenguestRestoreArgs,
  xenguestResumeArgs,
  xenguestSaveArgs,
  type XenguestBuild,
  type XenguestRestore,
  type XenguestSave,
  type XenguestLog,
  type XenguestResult,
  type XenguestRunner,
  type XenguestRunOptions,
} from './xenguest-protocol.js'
export { BUNDLED_BUILDER_PATH, defaultXenguestPath, HOST_XENGUEST_PATH } from './xenguest-discovery.js'
export { BuildHost, type Accounting, type BuildHostOptions, type NumaPolicy } from './host.js'
export { buildPre, type BuildEvent, type BuildPreOptions, type BuildPreResult, type VmConfig } from './build-pre.js'
export type { StepEvent } from './step.js'
export type { WaitProgress } from './wait-memory.js'
export { memoryModel, type DomainType, type MemoryModel, type VmMemory } from './memory.js'
export { InMemoryXenstore, type InMemoryXenstoreOptions, type Introduction } from './xenstore-memory.js'
export {
  RealXenstore,
  domainPath,
  openXenstore,
  type Access,
  type CallsXenstore,
  type Permission,
  type TransactionOptions,
  type NativeXenstore,
  type Xenstore,
  type XenstoreCalls,
  type XenstoreOpenOptions,
  type XenstoreOperations,
} from './xenstore.js'
export type { Placement, ClaimKind, ClaimReleaseFailed, PlacementEvent, PlacementWait } from './placement.js'

// The addon's classes get their dispose at load (ts/native.ts); the
// generated binding.d.ts cannot say so, this does. Here, in the entry, so
// that it is in the published types.
declare module '../native/binding.js' {
  interface Hypervisor {
    /** `await using xen = await openHypervisor()`: closes it (`close()`) at the end of the block. */
    [Symbol.asyncDispose](): Promise<void>
  }
}
