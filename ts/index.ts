export { XenDomainBuildError, type ErrorCode } from './errors.js'
export {
  NumaPlanner,
  type HostTopology,
  type NumaCandidate,
  type NumaPlan,
  type NumaRequest,
  type PlannerOptions,
} from './numa.js'
export { PRESETS, findPreset, type HostPreset } from './presets.js'
export { parseScenario, playScenario, type PlacementScenario, type ScenarioResult } from './scenario.js'
