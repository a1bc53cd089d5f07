/**
 * The tools' own entry (the CLI's workloads, for the benchmarks): not part of
 * the package's API, which is `ts/index.ts`.
 */
export { runStorm, seededRandom, type StormOptions, type StormReport } from './storm.js'
export { parseScenario, playScenario } from './scenario.js'
