/** `xen-domain-build storm`: a mass VM start on a simulated host. */
import { closeSync, openSync, writeFileSync } from 'node:fs'
import { EXIT_FAILURE, parseCommandLine, pct, presetNames, simulated, UsageError, wholeNumber, type Out } from '../common.js'
import { simulateHost } from '../../hypervisor.js'
import { LiveView } from '../live.js'
import { renderReport } from '../report.js'
import { runStorm, type StormReport } from '../storm.js'

const USAGE = () => `Usage: xen-domain-build storm --sim PRESET --vms N [options]

Starts N builds at once on a simulated host (build_pre, a simulated xenguest
that populates memory, build_post) and reports builds completed and failed,
wall time, builds per second, Node's event-loop delay, and the share of VMs
whose memory is entirely on their planned nodes, per node.

Options:
  --sim PRESET          one of: ${presetNames()}
  --vms N               how many VMs
  --concurrency C       builds at once (default: all)
  --accounting MODE     in-flight (ours, default), xenopsd, or both (side by side)
  --node-claims / --no-node-claims
                        the host has XenServer's node claims, or not, as upstream
                        Xen (default: as the preset, as everywhere else)
  --seed S              VM sizes are drawn from a seeded generator (default 1); the
                        arrival order at the planner varies from run to run
  --load L              the share of host memory the VMs fill (default 0.85)
  --builder-ms MS       how long the simulated xenguest takes per VM (default 20, ±50%)
  --report FILE.html    also write a self-contained page with charts (checked
                        to be writable before the storm starts)
  --live / --no-live    redraw each node's memory while it runs (default: on a terminal)
  --json                one JSON object per run instead of text
  -h, --help            this help

Over-promised placements: builds placed on a node where the memory
promised to builds in flight and not yet populated, this one's included,
came to more than Xen reported free there, so that some of it must land
elsewhere. xenopsd's accounting cannot see those promises, so parallel
builds plan on the same memory; in-flight accounting waits or plans
elsewhere.`

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
    outcomes: r.outcomes,
    whollyShare: +r.whollyShare.toFixed(4),
    overpromised: r.overpromised,
    perNode: r.perNode,
  }
}

/** Whether the storm's host has node claims: as asked, else as the preset has it. */
function nodeClaimsOf(preset: string, asked: boolean | undefined): boolean {
  return asked ?? simulateHost({ preset }).nodeClaims
}

export async function storm(args: string[], out: Out): Promise<number> {
  const { values } = parseCommandLine({
    args,
    options: {
      sim: { type: 'string' },
      vms: { type: 'string' },
      concurrency: { type: 'string' },
      accounting: { type: 'string', default: 'in-flight' },
      'node-claims': { type: 'boolean' },
      'no-node-claims': { type: 'boolean' },
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
    out(USAGE())
    return 0
  }
  // Only on a terminal: a redraw written to a file or a pipe is noise.
  const live = !values.json && !values['no-live'] && process.stdout.isTTY === true && (values.live ?? true)
  if (values.sim === undefined) throw new UsageError('storm needs --sim PRESET (see --help)')
  simulated(values.sim)
  const vms = wholeNumber('--vms', values.vms)
  const concurrency = values.concurrency === undefined ? undefined : wholeNumber('--concurrency', values.concurrency)
  if (concurrency === 0) throw new UsageError('--concurrency: at least 1')
  if (vms < 1) throw new UsageError('--vms: at least 1')
  const modes = values.accounting === 'both' ? (['in-flight', 'xenopsd'] as const) : [values.accounting]
  for (const mode of modes) {
    if (mode !== 'in-flight' && mode !== 'xenopsd') throw new UsageError(`--accounting: ${mode} is not in-flight, xenopsd or both`)
  }
  if (values['node-claims'] && values['no-node-claims']) throw new UsageError('--node-claims and --no-node-claims exclude each other')
  // Undefined: the preset's own, as simulateHost and build --sim have it.
  const nodeClaims = values['node-claims'] ? true : values['no-node-claims'] ? false : undefined
  // A report that cannot be written fails now, not after the whole storm.
  if (values.report !== undefined) {
    try {
      closeSync(openSync(values.report, 'a'))
    } catch (error) {
      throw new UsageError(`--report: cannot write ${values.report}: ${(error as Error).message}`)
    }
  }
  let failed = 0
  const reports: StormReport[] = []
  const builderMs = wholeNumber('--builder-ms', values['builder-ms'], 20)
  const load = values.load === undefined ? undefined : Number(values.load)
  if (load !== undefined && !(load > 0 && load <= 1)) throw new UsageError(`--load: ${values.load} is not a share from 0 to 1`)
  for (const accounting of modes as ('in-flight' | 'xenopsd')[]) {
    const title = `storm: ${vms} VMs on ${values.sim} (${nodeClaimsOf(values.sim, nodeClaims) ? 'node claims' : 'no node claims'}), ${accounting} accounting`
    const view = live ? new LiveView(process.stdout, title, vms) : undefined
    const report = await runStorm({
      preset: values.sim,
      vms,
      accounting,
      nodeClaims,
      seed: wholeNumber('--seed', values.seed, 1),
      concurrency,
      builderMs,
      load,
      builderJitter: 0.5,
      sampleEveryMs: live ? 100 : values.report !== undefined ? 20 : undefined,
      onSample: view ? (sample) => view.draw(sample) : undefined,
    }).finally(() => view?.close())
    reports.push(report)
    failed += report.failed
    const summary = stormSummary(report)
    if (values.json) {
      out(JSON.stringify(summary))
      continue
    }
    if (!live) out(title)
    out(
      `  builds: ${report.completed} completed, ${report.failed} failed${report.failed ? ` (${(summary.failures as string[]).join(', ')})` : ''}`,
    )
    out(`  wall time ${Math.round(report.wallMs)} ms, ${Math.round(report.buildsPerSecond)} builds/s`)
    out(`  event-loop delay: max ${report.eventLoopDelayMs.max.toFixed(1)} ms, p99 ${report.eventLoopDelayMs.p99.toFixed(1)} ms`)
    const o = report.outcomes
    out(
      `  of ${report.vms.length} VMs: ${o.wholly} wholly on their planned nodes (${pct(report.whollyShare)}), ${o.spread} spread off them, ${o.unplaced} unplaced, ${o.failed} failed`,
    )
    out(`  over-promised placements: ${report.overpromised}`)
    out('  per node, VMs planned there alone / of them local:')
    // Eight to a line: it stays within 80 columns on the largest presets.
    const perNode = report.perNode.map((n) => `${n.node}:${n.planned}/${n.local}`)
    for (let i = 0; i < perNode.length; i += 8) out(`    ${perNode.slice(i, i + 8).join(' ')}`)
  }
  const [ours, theirs] = reports
  if (!values.json && ours !== undefined && theirs !== undefined) {
    out(
      `\nVMs wholly on their planned nodes, of all VMs: in-flight accounting ${pct(ours.whollyShare)}, xenopsd's ${pct(theirs.whollyShare)}`,
    )
    out(`over-promised placements: ${ours.overpromised} against ${theirs.overpromised}`)
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
