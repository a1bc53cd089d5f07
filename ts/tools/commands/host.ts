/** `xen-domain-build host`: physinfo, node memory, distances and CPUs of a host. */
import { openHypervisor } from '../../hypervisor.js'
import { bytesOfPages, GIB } from '../../units.js'
import { parseCommandLine, presetNames, simulated, type Out } from '../common.js'

const USAGE = () => `Usage: xen-domain-build host [--sim PRESET] [--json]

Prints physinfo, each node's memory, the distance matrix and the CPU topology:
of this machine's Xen (exit code 3 with the reason when there is none), or of
a simulated host.

Options:
  --sim PRESET   a simulated host: ${presetNames()}
  --json         one JSON object instead of text
  -h, --help     this help`

export async function host(args: string[], out: Out): Promise<void> {
  const { values } = parseCommandLine({
    args,
    options: {
      sim: { type: 'string' },
      json: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
    strict: true,
  })
  if (values.help) return out(USAGE())
  const hypervisor = values.sim === undefined ? await openHypervisor() : simulated(values.sim)
  const [physinfo, numa, topology] = await Promise.all([hypervisor.physinfo(), hypervisor.numaInfo(), hypervisor.cpuTopology()])
  const version = hypervisor.version
  if (values.json) {
    return out(JSON.stringify({ version, simulated: hypervisor.simulated, physinfo, numa, cpus: topology.cpus }))
  }
  const gib = (bytes: number) => `${(bytes / GIB).toFixed(2)} GiB`
  const pages = (n: number) => gib(bytesOfPages(n))
  out(`Xen ${version.major}.${version.minor}${hypervisor.simulated ? ` (simulated: ${values.sim})` : ''}`)
  out(
    `CPUs ${physinfo.nrCpus} (${physinfo.threadsPerCore} threads per core, ${physinfo.coresPerSocket} cores per socket), ` +
      `nodes ${physinfo.nrNodes}, capabilities ${physinfo.capabilities.join(' ')}`,
  )
  out(
    `memory: total ${pages(physinfo.totalPages)}, free ${pages(physinfo.freePages)}, ` +
      `to scrub ${pages(physinfo.scrubPages)}, claimed ${pages(physinfo.outstandingPages)}`,
  )
  numa.nodes.forEach((node, i) => {
    const cpus = topology.cpus.flatMap((cpu, id) => (cpu?.node === i ? [id] : []))
    const memory = node ? `${gib(node.sizeBytes)}, free ${gib(node.freeBytes)}` : 'invalid'
    out(`node ${i}: ${memory}; CPUs ${cpus.join(',') || 'none'}`)
  })
  out('distances:')
  for (const row of numa.distances) out(`  ${row.map((d) => (d > 255 ? '-' : String(d)).padStart(3)).join(' ')}`)
}
