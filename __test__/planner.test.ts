import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { NumaPlanner, XenDomainBuildError, type HostTopology } from '../ts/index.js'
import { readJson, sharedData } from './helpers.js'

const GIB = 1024 ** 3
const twoNodes: HostTopology = {
  distances: [
    [10, 21],
    [21, 10],
  ],
  cpuToNode: [0, 0, 1, 1],
  nodeCores: [1, 1],
}

function refused(f: () => unknown): XenDomainBuildError {
  try {
    f()
  } catch (error) {
    expect(error).toBeInstanceOf(XenDomainBuildError)
    return error as XenDomainBuildError
  }
  throw new Error('expected the call to be refused')
}

function expectInvalid(f: () => unknown, field: string): void {
  const error = refused(f)
  expect(error.code).toBe('INVALID_ARGUMENT')
  expect(error.message).toContain(field)
}

describe('NumaPlanner', () => {
  it('plans, balances across nodes and counts each choice', () => {
    const planner = new NumaPlanner(twoNodes)
    const free = [4 * GIB, 4 * GIB]
    expect(planner.plan({ memoryBytes: GIB, vcpus: 2, cores: 0 }, free)).toMatchObject({ nodes: [0], cpus: [0, 1] })
    expect(planner.plan({ memoryBytes: GIB, vcpus: 2, cores: 0 }, free)).toMatchObject({ nodes: [1], cpus: [2, 3] })
    expect(planner.plan({ memoryBytes: 6 * GIB, vcpus: 1, cores: 0 }, free)).toMatchObject({ nodes: [0, 1] })
    expect(planner.usage()).toEqual([2, 2])
  })

  it('returns null and leaves the counters alone when nothing fits', () => {
    const planner = new NumaPlanner(twoNodes)
    expect(planner.plan({ memoryBytes: 9 * GIB, vcpus: 1, cores: 0 }, [4 * GIB, 4 * GIB])).toBeNull()
    expect(planner.plan({ memoryBytes: 1, vcpus: 5, cores: 0 }, [4 * GIB, 4 * GIB])).toBeNull()
    expect(planner.plan({ memoryBytes: 1, vcpus: 1, cores: 3 }, [4 * GIB, 4 * GIB])).toBeNull()
    expect(planner.usage()).toEqual([0, 0])
  })

  it('accepts a Float64Array of free memory and returns frozen, shared plans', () => {
    const planner = new NumaPlanner(twoNodes)
    const plan = planner.plan({ memoryBytes: 1, vcpus: 1, cores: 0 }, new Float64Array([GIB, GIB]))
    expect(Object.isFrozen(plan)).toBe(true)
    expect(Object.isFrozen(plan?.cpus)).toBe(true)
  })

  it('says why NUMA placement is off, and plans nothing then', () => {
    const selfNot10 = new NumaPlanner({
      distances: [
        [11, 21],
        [21, 10],
      ],
      cpuToNode: [0, 1],
      nodeCores: [1, 1],
    })
    expect(selfNot10.numaOffReason).toMatch(/node 0 is at distance 11 from itself/)
    expect(selfNot10.plan({ memoryBytes: 1, vcpus: 1, cores: 0 }, [GIB, GIB])).toBeNull()
    const below10 = new NumaPlanner({
      distances: [
        [10, 5],
        [21, 10],
      ],
      cpuToNode: [0, 1],
      nodeCores: [1, 1],
    })
    expect(below10.numaOffReason).toMatch(/node 0 to node 1 is 5/)
    const noneReachable = new NumaPlanner({ distances: [[-1]], cpuToNode: [0], nodeCores: [1] })
    expect(noneReachable.numaOffReason).toMatch(/no CPU is on a reachable node/)
    expect(new NumaPlanner(twoNodes).numaOffReason).toBeNull()
  })

  it("gives xenopsd's candidates for its unreachable-node cases", () => {
    const doc = readJson<{ scenarios: (Record<string, unknown> & { name: string; expected_candidates: [number, number[]][] | null })[] }>(
      sharedData('numa', 'unreachable.json'),
    )
    for (const s of doc.scenarios) {
      const planner = new NumaPlanner({
        distances: s.distances as number[][],
        cpuToNode: s.cpu_to_node as number[],
        nodeCores: s.node_cores as number[],
      })
      if (s.expected_candidates === null) {
        expect(planner.numaOffReason, s.name).not.toBeNull()
        expect([...planner.candidates()], s.name).toEqual([])
      } else {
        expect(
          [...planner.candidates()].map((c) => [c.averageDistance, c.nodes]),
          s.name,
        ).toEqual(s.expected_candidates)
      }
    }
  })

  it('refuses a topology that does not hold together, naming the field', () => {
    expectInvalid(() => new NumaPlanner({ ...twoNodes, distances: [[10, 21], [21]] }), 'topology.distances[1]')
    expectInvalid(() => new NumaPlanner({ ...twoNodes, nodeCores: [1] }), 'topology.nodeCores')
    expectInvalid(() => new NumaPlanner({ ...twoNodes, cpuToNode: [0, 2] }), 'topology.cpuToNode[1]')
    expectInvalid(() => new NumaPlanner({ ...twoNodes, cpuToNode: [0, 64] }), 'topology.cpuToNode[1]: node 64 does not exist')
    expectInvalid(() => new NumaPlanner({ ...twoNodes, cpuToNode: [0, -1] }), 'topology.cpuToNode[1]')
    expectInvalid(() => new NumaPlanner({ ...twoNodes, cpuToNode: [0, 0.5] }), 'topology.cpuToNode[1]')
    expectInvalid(() => new NumaPlanner({ ...twoNodes, nodeCores: [1, Number.NaN] }), 'topology.nodeCores[1]')
    expectInvalid(
      () =>
        new NumaPlanner({
          ...twoNodes,
          distances: [
            [10, 2 ** 53],
            [21, 10],
          ],
        }),
      'topology.distances[0][1]',
    )
    expectInvalid(
      () =>
        new NumaPlanner({
          ...twoNodes,
          distances: [
            [10, '21' as unknown as number],
            [21, 10],
          ],
        }),
      'topology.distances[0][1]',
    )
    expectInvalid(() => new NumaPlanner(null as unknown as HostTopology), 'topology')
    expectInvalid(() => new NumaPlanner({ ...twoNodes, cpuToNode: undefined as unknown as number[] }), 'topology.cpuToNode')
    const n = 65
    const big = Array.from({ length: n }, (_, i) => Array.from({ length: n }, (_, j) => (i === j ? 10 : 20)))
    expectInvalid(() => new NumaPlanner({ distances: big, cpuToNode: [0], nodeCores: Array(n).fill(1) }), 'at most 64')
    expectInvalid(() => new NumaPlanner({ ...twoNodes, cpuToNode: Array(16_385).fill(0) }), 'at most 16384')
    expectInvalid(() => new NumaPlanner(twoNodes, { largeHostCandidates: 'all' as 'single-nodes' }), 'largeHostCandidates')
  })

  it('refuses a bad request or free-memory list, naming the field', () => {
    const planner = new NumaPlanner(twoNodes)
    const free = [GIB, GIB]
    expectInvalid(() => planner.plan({ memoryBytes: -1, vcpus: 1, cores: 0 }, free), 'request.memoryBytes')
    expectInvalid(() => planner.plan({ memoryBytes: 2 ** 53, vcpus: 1, cores: 0 }, free), 'request.memoryBytes')
    expectInvalid(() => planner.plan({ memoryBytes: 1.5, vcpus: 1, cores: 0 }, free), 'request.memoryBytes')
    expectInvalid(() => planner.plan({ memoryBytes: 1, vcpus: Number.NaN, cores: 0 }, free), 'request.vcpus')
    expectInvalid(() => planner.plan({ memoryBytes: 1, vcpus: 1, cores: -2 }, free), 'request.cores')
    expectInvalid(() => planner.plan({ memoryBytes: 1, vcpus: 1, cores: Infinity }, free), 'request.cores')
    expectInvalid(() => planner.plan({ memoryBytes: '1' as unknown as number, vcpus: 1, cores: 0 }, free), 'request.memoryBytes')
    expectInvalid(() => planner.plan({ memoryBytes: 1, vcpus: 1, cores: 0 }, [GIB]), 'nodeFreeBytes: 1 entries, expected one per node (2)')
    expectInvalid(() => planner.plan({ memoryBytes: 1, vcpus: 1, cores: 0 }, [GIB, -1]), 'nodeFreeBytes[1]')
    expectInvalid(() => planner.plan({ memoryBytes: 1, vcpus: 1, cores: 0 }, [GIB, 10n as unknown as number]), 'nodeFreeBytes[1]')
    expectInvalid(() => planner.plan(null as unknown as { memoryBytes: number; vcpus: number; cores: number }, free), 'request')
    expect(planner.usage()).toEqual([0, 0])
  })

  it('never crashes on arbitrary input: a plan, null, or INVALID_ARGUMENT', () => {
    const anyNumber = fc.oneof(fc.integer({ min: -5, max: 300 }), fc.double(), fc.constantFrom(2 ** 32 - 1, 2 ** 53, -0))
    fc.assert(
      fc.property(
        fc.array(fc.array(anyNumber, { maxLength: 5 }), { maxLength: 5 }),
        fc.array(fc.option(anyNumber), { maxLength: 10 }),
        fc.array(anyNumber, { maxLength: 5 }),
        fc.array(anyNumber, { maxLength: 5 }),
        fc.tuple(anyNumber, anyNumber, anyNumber),
        (distances, cpuToNode, nodeCores, free, [memoryBytes, vcpus, cores]) => {
          try {
            const planner = new NumaPlanner({ distances, cpuToNode, nodeCores })
            const plan = planner.plan({ memoryBytes, vcpus, cores }, free)
            expect(plan === null || plan.nodes.length > 0).toBe(true)
          } catch (error) {
            expect(error).toBeInstanceOf(XenDomainBuildError)
            expect((error as XenDomainBuildError).code).toBe('INVALID_ARGUMENT')
          }
        },
      ),
      { numRuns: 2000 },
    )
  })
})

describe('candidates on the largest host the engine takes', () => {
  it('are made one at a time: the first of 65,535 on a 16-node host of 16,384 CPUs comes at once', () => {
    const nodes = 16
    const topology = {
      distances: Array.from({ length: nodes }, (_, i) => Array.from({ length: nodes }, (_, j) => (i === j ? 10 : 20))),
      cpuToNode: Array.from({ length: 16_384 }, (_, cpu) => Math.floor(cpu / 1024)),
      nodeCores: Array(nodes).fill(512),
    }
    const planner = new NumaPlanner(topology)
    expect(planner.candidateCount).toBe(65_535)
    const first = planner.candidates().next()
    expect(first.done).toBe(false)
    expect(first.value?.nodes).toEqual([0])
    expect(first.value?.cpus).toHaveLength(1024)
    // Walking them all without keeping them holds one at a time.
    let count = 0
    for (const candidate of planner.candidates()) {
      if (candidate.nodes.length === 1) count++
      if (count === nodes) break
    }
    expect(count).toBe(nodes)
  })
})
