export { XenDomainBuildError, type ErrnoCode, type ErrorCode } from './errors.js'
export {
  openHypervisor,
  readHostTopology,
  simulateHost,
  simulatorPresets,
  type AffinityInput,
  type CpuTopology,
  type DomainConfig,
  type DomainInfo,
  type Fault,
  type HostLayout,
  type Hypervisor,
  type NodePages,
  type NumaInfo,
  type OpenOptions,
  type PhysInfo,
  type SimulatedHost,
  type SimulatedHostOptions,
  type VcpuAffinity,
} from './hypervisor.js'
export {
  NumaPlanner,
  type HostTopology,
  type NumaCandidate,
  type NumaPlan,
  type NumaRequest,
  type PlannerOptions,
} from './numa.js'
export { buildDomain, buildChannel, buildTracingChannel, type BuildTraceContext, type BuildDomainOptions, type BuiltDomain, type DomainBuildEvent, type DomainImage } from './build.js'
export { buildPost, domainEntries, type BuildPostInput } from './build-post.js'
export { createDomain, destroyDomain, removeVm, dyingDomainHandle, guestReadOnly, guestReadWrite, type CreateDomainConfig } from './domain.js'
export { SimulatedXenguest, type SimulatedXenguestOptions } from './sim-xenguest.js'
export {
  BUNDLED_BUILDER_PATH,
  defaultXenguestPath,
  HOST_XENGUEST_PATH,
  SpawnedXenguest,
  parseXenguestError,
  xenguestArgs,
  type XenguestBuild,
  type XenguestResult,
  type XenguestRunner,
  type XenguestRunOptions,
} from './xenguest.js'
export { BuildHost, type Accounting, type BuildHostOptions, type NumaPolicy } from './host.js'
export { buildPre, type BuildEvent, type BuildPreOptions, type BuildPreResult, type VmConfig } from './build-pre.js'
export { memoryModel, type DomainType, type MemoryModel, type VmMemory } from './memory.js'
export {
  InMemoryXenstore,
  RealXenstore,
  domainPath,
  openXenstore,
  type Access,
  type InMemoryXenstoreOptions,
  type Introduction,
  type Permission,
  type TransactionOptions,
  type Xenstore,
  type XenstoreOperations,
} from './xenstore.js'
export type { Placement, ClaimKind } from './placement.js'
