/** `xen-domain-build plan`: NUMA placement decisions, as xenopsd makes them. */
import { simulatorPresets } from '../../hypervisor.js'
import { readHostTopology } from '../../numa.js'
import { NumaPlanner } from '../../numa.js'
import { bytesOfMib } from '../../units.js'
import { largeHost, parseCommandLine, presetNames, readInput, simulated, UsageError, wholeNumber, type Out } from '../common.js'
import { parseScenario, playScenario, takeMemory } from '../scenario.js'

const USAGE = () => `Usage:
  xen-domain-build plan --scenario FILE|-
      Plays a placement scenario on one planner and prints one JSON line per
      request: {"nodes": [...], "cpus": [...]}. The format is described in the
      repository's __test__/fixtures/xenopsd/README.md.
  xen-domain-build plan --sim PRESET --vcpus N --memory-mib M [--cores C] [--vms K] [--json]
      Plans K identical VMs (default 1) on a simulated host, taking each VM's
      memory from its nodes.

Options:
  --scenario FILE   scenario file, or - for standard input
  --sim PRESET      one of: ${presetNames()}
  --large-host-candidates single-nodes|neighbourhoods
                    candidates on hosts with more than 16 nodes (default: single-nodes, as xenopsd)
  --json            JSON lines instead of text (--scenario always prints JSON)
  -h, --help        this help`

export async function plan(args: string[], out: Out): Promise<void> {
  const { values } = parseCommandLine({
    args,
    options: {
      scenario: { type: 'string' },
      sim: { type: 'string' },
      vcpus: { type: 'string' },
      'memory-mib': { type: 'string' },
      cores: { type: 'string' },
      vms: { type: 'string' },
      'large-host-candidates': { type: 'string' },
      json: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
    strict: true,
  })
  if (values.help) return out(USAGE())
  const options = { largeHostCandidates: largeHost(values['large-host-candidates']) }
  if (values.scenario !== undefined) {
    if (values.sim !== undefined) throw new UsageError('--scenario and --sim exclude each other')
    const source = values.scenario === '-' ? 'stdin' : values.scenario
    const scenario = parseScenario(readInput(values.scenario), source)
    for (const result of playScenario(scenario, options)) out(JSON.stringify(result))
    return
  }
  if (values.sim === undefined) throw new UsageError('plan needs --scenario or --sim (see --help)')
  const vcpus = wholeNumber('--vcpus', values.vcpus)
  const memoryBytes = bytesOfMib(wholeNumber('--memory-mib', values['memory-mib']))
  const cores = wholeNumber('--cores', values.cores, 0)
  const vms = wholeNumber('--vms', values.vms, 1)
  const layout = await readHostTopology(simulated(values.sim))
  const planner = new NumaPlanner(layout, options)
  const free = layout.nodeMemoryBytes.map((bytes) => bytes ?? 0)
  if (!values.json) out(`host ${values.sim}: ${simulatorPresets().find((p) => p.name === values.sim)?.description}`)
  for (let vm = 0; vm < vms; vm++) {
    const placed = planner.plan({ memoryBytes, vcpus, cores }, free)
    takeMemory(free, placed?.nodes ?? [], memoryBytes)
    if (values.json) {
      out(JSON.stringify({ vm, nodes: placed?.nodes ?? null, cpus: placed?.cpus ?? null }))
    } else {
      const where = placed ? `nodes ${placed.nodes.join(',')} cpus ${placed.cpus.join(',')}` : 'no NUMA placement (nothing fits)'
      out(`vm ${String(vm).padStart(3)}: ${where}`)
    }
  }
  if (!values.json) out(`plans per node: ${planner.usage().join(' ')}`)
}
