#!/usr/bin/env node
/**
 * The `xen-domain-build` command line. Output for machines is one JSON value
 * per line (`--json`); errors are one line on stderr. Exit codes: 0 success,
 * 1 failure, 2 usage error or invalid input, 3 Xen (or xenstore) unavailable.
 */
import { readFileSync } from 'node:fs'
import { parseArgs } from 'node:util'
import { XenDomainBuildError } from './errors.js'
import { openHypervisor, readHostTopology, simulateHost, simulatorPresets, type Hypervisor } from './hypervisor.js'
import { NumaPlanner } from './numa.js'
import { parseScenario, playScenario, takeMemory } from './scenario.js'
import { writeFileSync } from 'node:fs'
import { buildDomain, type BuiltDomain } from './build.js'
import { BuildHost, type NumaPolicy } from './host.js'
import { LiveView } from './live.js'
import { SimulatedXenguest } from './sim-xenguest.js'
import { parseVmConfig } from './vm-config.js'
import { SpawnedXenguest } from './xenguest.js'
import { createDomain, destroyDomain } from './domain.js'
import { domainPath, InMemoryXenstore, openXenstore, type Xenstore } from './xenstore.js'
import { renderReport } from './report.js'
import { runStorm, type StormReport } from './storm.js'

const EXIT_FAILURE = 1
const EXIT_USAGE = 2
const EXIT_XEN_UNAVAILABLE = 3

type Out = (line: string) => void

class UsageError extends Error {}

const presetNames = (): string => simulatorPresets().map((p) => p.name).join(', ')

const USAGE = `Usage: xen-domain-build <command> [options]

Commands:
  host     the host's CPUs, memory, NUMA nodes and distances (real, or --sim PRESET)
  plan     NUMA placement decisions, as xenopsd makes them
  build    build a domain from a VM config file (real host, or --sim PRESET)
  storm    a mass VM start on a simulated host: many whole builds at once

Run \`xen-domain-build <command> --help\` for a command's options.
Exit codes: 0 success, 1 failure, 2 usage error or invalid input, 3 Xen unavailable.`

const HOST_USAGE = () => `Usage: xen-domain-build host [--sim PRESET] [--json]

Prints physinfo, each node's memory, the distance matrix and the CPU topology:
of this machine's Xen (exit code 3 with the reason when there is none), or of
a simulated host.

Options:
  --sim PRESET   a simulated host: ${presetNames()}
  --json         one JSON object instead of text
  -h, --help     this help`

const PLAN_USAGE = () => `Usage:
  xen-domain-build plan --scenario FILE|-
      Plays a placement scenario (shared/data/README.md format) on one planner
      and prints one JSON line per request: {"nodes": [...], "cpus": [...]}.
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

const STORM_USAGE = () => `Usage: xen-domain-build storm --sim PRESET --vms N [options]

Starts N builds at once on a simulated host (build_pre, a simulated xenguest
that populates memory, build_post) and reports builds completed and failed,
wall time, builds per second, Node's event-loop delay, and the share of VMs
whose memory is entirely on their planned nodes, per node.

Options:
  --sim PRESET          one of: ${presetNames()}
  --vms N               how many VMs
  --concurrency C       builds at once (default: all)
  --accounting MODE     in-flight (ours, default), xenopsd, or both (side by side)
  --node-claims         the host has XenServer's node claims (default: upstream, none)
  --seed S              VM sizes are drawn from a seeded generator (default 1); the
                        arrival order at the planner varies from run to run
  --load L              the share of host memory the VMs fill (default 0.85)
  --builder-ms MS       how long the simulated xenguest takes per VM (default 20, ±50%)
  --report FILE.html    also write a self-contained page with charts
  --live / --no-live    redraw each node's memory while it runs (default: on a terminal)
  --json                one JSON object per run instead of text
  -h, --help            this help`

const BUILD_USAGE = () => `Usage:
  xen-domain-build build --config VM.json [--xenguest PATH] [--json]
      Creates a domain on this machine's Xen (hypervisor and xenstore, as
      xenopsd's Domain.make does) and builds it with xenguest; a failed build
      destroys it.
  xen-domain-build build --domid N --config VM.json [--xenguest PATH] [--json]
      Builds an existing, empty domain on this machine's Xen.
  xen-domain-build build --sim PRESET --config VM.json [--json]
      Creates a domain on a simulated host and builds it (simulated xenguest,
      in-memory xenstore).

The VM config file is one JSON object: type ("hvm", "pv", "pvh"), staticMaxKib,
targetKib, vcpus, and optionally videoMib, shadowMultiplier, pvShim,
hardAffinity (CPU lists per vCPU), image (required), cmdline, ramdisk,
modules ([{ "path", "cmdline" }]), nvidiaVgpu, and for a new domain uuid,
name and platform ({ "timer_mode": "1", ... }).

Xenstore: on a real host, the host's xenstored (through libxenstore); the
command prints the domain's entries.

Options:
  --sim PRESET            one of: ${presetNames()}
  --domid N               the domain to build (real host)
  --config FILE           the VM config file, or - for standard input
  --xenguest PATH         the domain builder (default /usr/libexec/xen/bin/xenguest)
  --numa-policy POLICY    any, best_effort (default), best_effort_hard, prio_mem_only
  --timeout-ms MS         how long xenguest may take (default 120000)
  --json                  one JSON object instead of text
  -h, --help              this help`

function readInput(file: string): string {
  try {
    return readFileSync(file === '-' ? 0 : file, 'utf8')
  } catch (error) {
    throw new UsageError(`cannot read ${file === '-' ? 'standard input' : file}: ${(error as Error).message}`)
  }
}

function wholeNumber(flag: string, text: string | undefined, fallback?: number): number {
  if (text === undefined) {
    if (fallback === undefined) throw new UsageError(`${flag} is required`)
    return fallback
  }
  const value = Number(text)
  if (!/^\d+$/.test(text) || !Number.isSafeInteger(value)) throw new UsageError(`${flag}: ${text} is not a whole number`)
  return value
}

function largeHost(value: string | undefined): 'single-nodes' | 'neighbourhoods' | undefined {
  if (value === undefined || value === 'single-nodes' || value === 'neighbourhoods') return value
  throw new UsageError(`--large-host-candidates: ${value} is not single-nodes or neighbourhoods`)
}

function simulated(preset: string): Hypervisor {
  if (!simulatorPresets().some((p) => p.name === preset)) {
    throw new UsageError(`--sim: unknown host ${preset} (one of ${presetNames()})`)
  }
  return simulateHost({ preset }).hypervisor()
}

const GIB = 1024 ** 3
const pct = (share: number) => `${(100 * share).toFixed(1)}%`

async function host(args: string[], out: Out): Promise<void> {
  const { values } = parseArgs({
    args,
    options: {
      sim: { type: 'string' },
      json: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
    strict: true,
  })
  if (values.help) return out(HOST_USAGE())
  const hypervisor = values.sim === undefined ? await openHypervisor() : simulated(values.sim)
  const [physinfo, numa, topology] = await Promise.all([
    hypervisor.physinfo(),
    hypervisor.numaInfo(),
    hypervisor.cpuTopology(),
  ])
  const version = hypervisor.version
  if (values.json) {
    return out(JSON.stringify({ version, simulated: hypervisor.simulated, physinfo, numa, cpus: topology.cpus }))
  }
  const gib = (bytes: number) => `${(bytes / GIB).toFixed(2)} GiB`
  const pages = (n: number) => gib(n * 4096)
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

async function plan(args: string[], out: Out): Promise<void> {
  const { values } = parseArgs({
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
  if (values.help) return out(PLAN_USAGE())
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
  const memoryBytes = wholeNumber('--memory-mib', values['memory-mib']) * 1024 * 1024
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

const NUMA_POLICIES: readonly NumaPolicy[] = ['any', 'best_effort', 'best_effort_hard', 'prio_mem_only']

async function build(args: string[], out: Out): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      sim: { type: 'string' },
      domid: { type: 'string' },
      config: { type: 'string' },
      xenguest: { type: 'string' },
      'numa-policy': { type: 'string' },
      'timeout-ms': { type: 'string' },
      json: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
    strict: true,
  })
  if (values.help) {
    out(BUILD_USAGE())
    return 0
  }
  if (values.config === undefined) throw new UsageError('build needs --config FILE (see --help)')
  if (values.sim !== undefined && values.domid !== undefined) throw new UsageError('--sim and --domid exclude each other')
  const numaPolicy = (values['numa-policy'] ?? 'best_effort') as NumaPolicy
  if (!NUMA_POLICIES.includes(numaPolicy)) throw new UsageError(`--numa-policy: ${numaPolicy} is not one of ${NUMA_POLICIES.join(', ')}`)
  const config = parseVmConfig(readInput(values.config), values.config === '-' ? 'stdin' : values.config)
  const domainConfig = { type: config.vm.type, maxVcpus: config.vm.vcpus, ...config.domain }
  let built: BuiltDomain
  let host: BuildHost
  if (values.sim !== undefined) {
    if (!simulatorPresets().some((p) => p.name === values.sim)) throw new UsageError(`--sim: unknown host ${values.sim} (one of ${presetNames()})`)
    const sim = simulateHost({ preset: values.sim })
    host = await BuildHost.create(sim.hypervisor(), { numaPolicy, xenstore: new InMemoryXenstore({ domainExists: (domid) => sim.domains().includes(domid) }) })
    const domid = await createDomain(sim.hypervisor(), host.xenstore, domainConfig)
    built = await buildDomain(host, domid, config.vm, { ...config.image, xenguest: new SimulatedXenguest(sim) })
  } else {
    const existing = values.domid === undefined ? undefined : wholeNumber('--domid', values.domid)
    const timeoutMs = wholeNumber('--timeout-ms', values['timeout-ms'], 120_000)
    const xen = await openHypervisor()
    host = await BuildHost.create(xen, { numaPolicy, xenstore: await openXenstore() })
    const domid = existing ?? (await createDomain(xen, host.xenstore, domainConfig))
    try {
      built = await buildDomain(host, domid, config.vm, {
        ...config.image,
        xenguest: new SpawnedXenguest(values.xenguest ?? '/usr/libexec/xen/bin/xenguest'),
        xenguestTimeoutMs: timeoutMs,
      })
    } catch (error) {
      // A domain this command made does not outlive its failed build (xenopsd destroys it too).
      if (existing === undefined) await destroyDomain(xen, host.xenstore, domid).catch(() => undefined)
      throw error
    }
  }
  const xenstore = await dumpDomainTrees(host.xenstore, built.domid)
  const summary = {
    domid: built.domid,
    storePort: built.storePort,
    consolePort: built.consolePort,
    storeMfn: String(built.storeMfn),
    consoleMfn: String(built.consoleMfn),
    memory: built.memory,
    placement: { plan: built.placement.plan?.nodes ?? null, node: built.placement.node, claim: built.placement.claim, affinity: built.placement.affinity, reason: built.placement.reason },
    timingsMs: Object.fromEntries(Object.entries(built.timingsMs).map(([k, v]) => [k, +v.toFixed(2)])),
    xenstore,
  }
  if (values.json) {
    out(JSON.stringify(summary))
    return 0
  }
  out(`domain ${built.domid} built: store port ${built.storePort} (mfn ${built.storeMfn}), console port ${built.consolePort} (mfn ${built.consoleMfn})`)
  out(`memory: build ${built.memory.buildStartMib}/${built.memory.buildMaxMib} MiB, xen max ${built.memory.xenMaxMib} MiB, shadow ${built.memory.shadowMib} MiB, claimed ${built.memory.buildClaimPages} pages`)
  out(`NUMA placement: ${built.placement.reason} (claim: ${built.placement.claim}${built.placement.affinity ? `, ${built.placement.affinity} affinity` : ''})`)
  out(`steps: ${Object.entries(built.timingsMs).map(([k, v]) => `${k} ${v.toFixed(1)} ms`).join(', ')}`)
  for (const [path, value] of Object.entries(xenstore)) if (value !== '') out(`xenstore ${path} = ${value}`)
  return 0
}

/** Every node of the domain's trees (its home, its VM's, libxl's) with its value. */
async function dumpDomainTrees(xenstore: Xenstore, domid: number): Promise<Record<string, string>> {
  const home = domainPath(domid)
  const vmPath = await xenstore.read(`${home}/vm`)
  const dump: Record<string, string> = {}
  const walk = async (path: string): Promise<void> => {
    const value = await xenstore.read(path)
    if (value === null) return
    dump[path] = value
    for (const name of await xenstore.directory(path)) await walk(`${path}/${name}`)
  }
  for (const root of [home, ...(vmPath === null ? [] : [vmPath]), `/libxl/${domid}`]) await walk(root)
  return dump
}

function stormSummary(r: StormReport): Record<string, unknown> {
  return {
    preset: r.preset,
    accounting: r.accounting,
    vms: r.vms.length,
    completed: r.completed,
    failed: r.failed,
    failures: [...new Set(r.vms.flatMap((v) => (v.code ? [v.code] : [])))],
    wallMs: Math.round(r.wallMs),
    buildsPerSecond: Math.round(r.buildsPerSecond),
    eventLoopDelayMs: { max: +r.eventLoopDelayMs.max.toFixed(2), p99: +r.eventLoopDelayMs.p99.toFixed(2) },
    localShare: +r.localShare.toFixed(4),
    overpromised: r.overpromised,
    perNode: r.perNode,
  }
}

async function storm(args: string[], out: Out): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      sim: { type: 'string' },
      vms: { type: 'string' },
      concurrency: { type: 'string' },
      accounting: { type: 'string', default: 'in-flight' },
      'node-claims': { type: 'boolean', default: false },
      seed: { type: 'string' },
      'builder-ms': { type: 'string' },
      load: { type: 'string' },
      report: { type: 'string' },
      live: { type: 'boolean' },
      'no-live': { type: 'boolean' },
      json: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
    strict: true,
  })
  if (values.help) {
    out(STORM_USAGE())
    return 0
  }
  const live = !values.json && !values['no-live'] && (values.live ?? process.stdout.isTTY === true)
  if (values.sim === undefined) throw new UsageError('storm needs --sim PRESET (see --help)')
  simulated(values.sim)
  const vms = wholeNumber('--vms', values.vms)
  if (vms < 1) throw new UsageError('--vms: at least 1')
  const modes = values.accounting === 'both' ? (['in-flight', 'xenopsd'] as const) : [values.accounting]
  for (const mode of modes) {
    if (mode !== 'in-flight' && mode !== 'xenopsd') throw new UsageError(`--accounting: ${mode} is not in-flight, xenopsd or both`)
  }
  let failed = 0
  const reports: StormReport[] = []
  const builderMs = wholeNumber('--builder-ms', values['builder-ms'], 20)
  const load = values.load === undefined ? undefined : Number(values.load)
  if (load !== undefined && !(load > 0 && load <= 1)) throw new UsageError(`--load: ${values.load} is not a share from 0 to 1`)
  for (const accounting of modes as ('in-flight' | 'xenopsd')[]) {
    const title = `storm: ${vms} VMs on ${values.sim} (${values['node-claims'] ? 'node claims' : 'no node claims'}), ${accounting} accounting`
    const view = live ? new LiveView(process.stdout, title, vms) : undefined
    const report = await runStorm({
      preset: values.sim,
      vms,
      accounting,
      nodeClaims: values['node-claims'],
      seed: wholeNumber('--seed', values.seed, 1),
      concurrency: values.concurrency === undefined ? undefined : wholeNumber('--concurrency', values.concurrency),
      populateLatencyMs: builderMs,
      load,
      builderJitter: 0.5,
      sampleEveryMs: live ? 100 : values.report !== undefined ? 20 : undefined,
      onSample: view ? (sample) => view.draw(sample) : undefined,
    })
    reports.push(report)
    failed += report.failed
    const summary = stormSummary(report)
    if (values.json) {
      out(JSON.stringify(summary))
      continue
    }
    if (!live) out(title)
    out(`  builds: ${report.completed} completed, ${report.failed} failed${report.failed ? ` (${(summary.failures as string[]).join(', ')})` : ''}`)
    out(`  wall time ${Math.round(report.wallMs)} ms, ${Math.round(report.buildsPerSecond)} builds/s`)
    out(`  event-loop delay: max ${report.eventLoopDelayMs.max.toFixed(1)} ms, p99 ${report.eventLoopDelayMs.p99.toFixed(1)} ms`)
    out(`  memory entirely on the planned nodes: ${pct(report.localShare)} of placed VMs; over-promised placements: ${report.overpromised}`)
    out(`  per node (VMs planned there alone / of them local): ${report.perNode.map((n) => `${n.node}:${n.planned}/${n.local}`).join(' ')}`)
  }
  const [ours, theirs] = reports
  if (!values.json && ours !== undefined && theirs !== undefined) {
    out(
      `\nin-flight accounting put ${pct(ours.localShare)} of VMs entirely on their planned nodes; ` +
        `xenopsd's, ${pct(theirs.localShare)} (over-promised placements: ${ours.overpromised} against ${theirs.overpromised})`,
    )
  }
  if (values.report !== undefined) {
    try {
      writeFileSync(values.report, renderReport(reports, `xen-domain-build storm: ${vms} VMs on ${values.sim}`))
    } catch (error) {
      throw new UsageError(`--report: cannot write ${values.report}: ${(error as Error).message}`)
    }
    if (!values.json) out(`report: ${values.report}`)
  }
  return failed > 0 ? EXIT_FAILURE : 0
}

function exitCode(error: unknown): number {
  if (error instanceof UsageError) return EXIT_USAGE
  const code = (error as { code?: string }).code
  if (code === 'INVALID_ARGUMENT' || code?.startsWith('ERR_PARSE_ARGS')) return EXIT_USAGE
  if (code === 'XEN_UNAVAILABLE' || code === 'XENSTORE_UNAVAILABLE') return EXIT_XEN_UNAVAILABLE
  return EXIT_FAILURE
}

export async function main(argv: string[], out: Out = (l) => console.log(l)): Promise<number> {
  const [command, ...rest] = argv
  try {
    switch (command) {
      case undefined:
      case '-h':
      case '--help':
        out(USAGE)
        return command === undefined ? EXIT_USAGE : 0
      case 'host':
        await host(rest, out)
        return 0
      case 'plan':
        await plan(rest, out)
        return 0
      case 'storm':
        return await storm(rest, out)
      case 'build':
        return await build(rest, out)
      default:
        throw new UsageError(`unknown command ${command}\n${USAGE}`)
    }
  } catch (error) {
    const prefix = error instanceof XenDomainBuildError ? `${error.code}: ` : ''
    console.error(`xen-domain-build: ${prefix}${(error as Error).message}`)
    return exitCode(error)
  }
}

main(process.argv.slice(2)).then((code) => {
  process.exitCode = code
})
