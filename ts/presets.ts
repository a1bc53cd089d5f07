/**
 * Real NUMA hosts from xenopsd's tests and documentation (`shared/data/numa`),
 * with the memory per node their tests use: the default hosts of the CLI and,
 * later, the simulator.
 */
import type { HostTopology } from './numa.js'

export interface HostPreset extends HostTopology {
  readonly name: string
  readonly source: string
  readonly nodeMemoryBytes: readonly number[]
}

const GIB = 1024 ** 3

function byNode(nodes: number, cpusPerNode: number): number[] {
  return Array.from({ length: nodes * cpusPerNode }, (_, cpu) => Math.floor(cpu / cpusPerNode))
}

export const PRESETS: readonly HostPreset[] = [
  {
    name: 'amd-opteron-6272',
    source: "xenopsd test_topology.ml: AMD Opteron 6272, 8 nodes, 4 CPUs and 2 cores per node",
    distances: [
      [10, 16, 16, 22, 16, 22, 16, 22],
      [16, 10, 22, 16, 16, 22, 22, 16],
      [16, 22, 10, 16, 16, 16, 16, 16],
      [22, 16, 16, 10, 16, 16, 22, 22],
      [16, 16, 16, 16, 10, 16, 16, 22],
      [22, 22, 16, 16, 16, 10, 22, 16],
      [16, 22, 16, 22, 16, 22, 10, 16],
      [22, 16, 16, 22, 22, 16, 16, 10],
    ],
    cpuToNode: byNode(8, 4),
    nodeCores: Array(8).fill(2),
    nodeMemoryBytes: Array(8).fill(16 * GIB),
  },
  {
    name: 'two-socket-4-node',
    source: 'xenopsd NUMA documentation: two sockets of two sub-NUMA clusters (11 within a socket, 21 across)',
    distances: [
      [10, 11, 21, 21],
      [11, 10, 21, 21],
      [21, 21, 10, 11],
      [21, 21, 11, 10],
    ],
    cpuToNode: byNode(4, 4),
    nodeCores: Array(4).fill(2),
    nodeMemoryBytes: Array(4).fill(16 * GIB),
  },
]

export function findPreset(name: string): HostPreset | undefined {
  return PRESETS.find((p) => p.name === name)
}
