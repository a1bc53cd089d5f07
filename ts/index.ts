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
export { parseScenario, playScenario, type PlacementScenario, type ScenarioResult } from './scenario.js'
