/**
 * Placement scenarios in the format of `__test__/fixtures/xenopsd/README.md`:
 * one planner, a list of requests, and each plan's memory taken from its
 * nodes in ascending id order, from each as much as it has.
 */
import { describe, invalidArgument, parseJsonObject } from '../errors.js'
import { NumaPlanner, type PlannerOptions } from '../numa.js'

export interface PlacementScenario {
  distances: number[][]
  cpu_to_node: (number | null)[]
  node_cores: number[]
  node_free: number[]
  requests: { memory: number; vcpus: number; cores: number }[]
}

/** One output line: the sorted node and CPU ids, or nulls where no plan exists. */
export interface ScenarioResult {
  nodes: number[] | null
  cpus: number[] | null
}

function field(object: Record<string, unknown>, name: string, where: string, isArray = true): unknown {
  const value = object[name]
  if (isArray ? !Array.isArray(value) : typeof value !== 'number') {
    throw invalidArgument(`${where}.${name}`, `expected ${isArray ? 'an array' : 'a number'}, got ${describe(value)}`)
  }
  return value
}

/** Parses a scenario's JSON text, naming the field that is wrong. */
export function parseScenario(text: string, source = 'scenario'): PlacementScenario {
  const o = parseJsonObject(text, source)
  for (const name of ['distances', 'cpu_to_node', 'node_cores', 'node_free']) field(o, name, source)
  const requests = field(o, 'requests', source) as unknown[]
  requests.forEach((r, i) => {
    const where = `${source}.requests[${i}]`
    if (r === null || typeof r !== 'object') throw invalidArgument(where, `expected an object, got ${describe(r)}`)
    for (const name of ['memory', 'vcpus', 'cores']) field(r as Record<string, unknown>, name, where, false)
  })
  return o as unknown as PlacementScenario
}

/**
 * Takes a planned VM's memory from its nodes in ascending id order, from each
 * as much as it has, as the scenario format says.
 */
export function takeMemory(freeBytes: number[], nodes: readonly number[], bytes: number): void {
  let remaining = bytes
  for (const node of nodes) {
    const taken = Math.min(remaining, freeBytes[node] ?? 0)
    freeBytes[node] = (freeBytes[node] ?? 0) - taken
    remaining -= taken
  }
}

/** Plays a scenario on one planner; yields one result per request. */
export function* playScenario(scenario: PlacementScenario, options: PlannerOptions = {}): Generator<ScenarioResult> {
  const planner = new NumaPlanner(
    { distances: scenario.distances, cpuToNode: scenario.cpu_to_node, nodeCores: scenario.node_cores },
    options,
  )
  const free = [...scenario.node_free]
  for (const request of scenario.requests) {
    const plan = planner.plan({ memoryBytes: request.memory, vcpus: request.vcpus, cores: request.cores }, free)
    if (plan === null) {
      yield { nodes: null, cpus: null }
      continue
    }
    takeMemory(free, plan.nodes, request.memory)
    yield { nodes: [...plan.nodes], cpus: [...plan.cpus] }
  }
}
