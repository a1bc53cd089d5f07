// @ts-check
// `npm run bench` (part 2): the storm, and the wait for free memory. Prints:
// - for a 64-VM start on a 4-node host and a 256-VM start on the 8-node AMD
//   host (both without node claims; whole builds with the simulated xenguest,
//   with the CLI's defaults: 20 ms builders jittered by ±50%, 85% load), the
//   share of all VMs whose memory is all on their planned nodes per
//   accounting mode over seeds 1-20, with the VMs spread, unplaced and failed, builds per second and Node's event-loop delay;
// - how late the waiting loop notices freed memory (median and worst), ours
//   (20 ms shared poll) against xenopsd's 1 s poll, on a real-time scrubber.
import { BuildHost, simulateHost } from '../esm/index.mjs'
import { runStorm } from '../dist/tools.js'

const SEEDS = Array.from({ length: 20 }, (_, i) => i + 1)
const pct = (x) => `${(100 * x).toFixed(1)}%`

console.log(
  'Mass start without node claims, simulated host, CLI defaults (builder 20 ms ±50%, 85% load): of all VMs, those wholly on their planned nodes (mean, min over seeds 1-20)',
)
console.log(
  '| start | in-flight accounting | xenopsd accounting | spread / unplaced / failed, in-flight (all seeds) | spread / unplaced / failed, xenopsd | over-promised placements (in-flight / xenopsd) | wall time | builds/s | event-loop delay max / p99 |',
)
console.log('| --- | --- | --- | --- | --- | --- | --- | --- | --- |')
for (const [preset, vms] of /** @type {const} */ ([
  ['two-socket-4-node', 64],
  ['amd-opteron-6272', 256],
])) {
  const stats = {}
  for (const accounting of /** @type {const} */ (['in-flight', 'xenopsd'])) {
    const runs = []
    for (const seed of SEEDS) runs.push(await runStorm({ preset, nodeClaims: false, vms, accounting, seed }))
    stats[accounting] = {
      mean: runs.reduce((a, r) => a + r.whollyShare, 0) / runs.length,
      min: Math.min(...runs.map((r) => r.whollyShare)),
      over: runs.reduce((a, r) => a + r.overpromised, 0),
      lost: ['spread', 'unplaced', 'failed'].map((k) => runs.reduce((a, r) => a + r.outcomes[k], 0)).join(' / '),
      wall: runs.reduce((a, r) => a + r.wallMs, 0) / runs.length,
      rate: runs.reduce((a, r) => a + r.buildsPerSecond, 0) / runs.length,
      delayMax: Math.max(...runs.map((r) => r.eventLoopDelayMs.max)),
      delayP99: Math.max(...runs.map((r) => r.eventLoopDelayMs.p99)),
    }
  }
  const a = stats['in-flight']
  const b = stats.xenopsd
  console.log(
    `| ${vms} VMs, ${preset} | ${pct(a.mean)} (min ${pct(a.min)}) | ${pct(b.mean)} (min ${pct(b.min)}) | ${a.lost} | ${b.lost} | ${a.over} / ${b.over} | ${a.wall.toFixed(0)} ms | ${a.rate.toFixed(0)} | ${a.delayMax.toFixed(1)} / ${a.delayP99.toFixed(1)} ms |`,
  )
}

// The wait: a host whose memory is all waiting to be scrubbed at a known rate,
// so the moment enough is free is known; how long after it does the wait end?
async function lateness(pollMs, trials) {
  const late = []
  for (let t = 0; t < trials; t++) {
    const ratePerNode = 262_144 // pages per second per node: 1 GiB/s
    const sim = simulateHost({
      preset: 'qemu-2-node',
      clock: 'real-time',
      scrubReporting: 'xenserver',
      scrubPagesPerSecondPerNode: ratePerNode,
    })
    const xen = sim.hypervisor()
    const hog = await xen.createDomain({ kind: 'pv', maxVcpus: 1 })
    await xen.setMaxMemoryKib(hog, 2 * 1024 * 1024)
    await sim.populate(hog, 2 * 262_144)
    const host = await BuildHost.create(xen, { memoryPollMs: pollMs })
    const neededKib = Math.round((0.1 + Math.random() * 0.6) * 2 * 1024 * 1024)
    await xen.destroyDomain(hog)
    const destroyed = performance.now()
    // Both nodes scrub at once: enough is free after neededKib / (2 × rate × 4 KiB) seconds.
    const readyAtMs = (neededKib / (2 * ratePerNode * 4)) * 1000
    await /** @type {any} the watcher is internal */ (host).memory.waitForFreeMemory(neededKib)
    late.push(performance.now() - destroyed - readyAtMs)
  }
  late.sort((x, y) => x - y)
  return { median: late[Math.floor(late.length / 2)], worst: late[late.length - 1] }
}

const ours = await lateness(20, 25)
const xenopsd = await lateness(1000, 8)
console.log('\nHow late the wait noticed freed memory, after enough was free (real-time simulated scrubber)')
console.log('| loop | median | worst | trials |')
console.log('| --- | --- | --- | --- |')
console.log(`| ours: one 20 ms physinfo poll per host, shared | ${ours.median.toFixed(1)} ms | ${ours.worst.toFixed(1)} ms | 25 |`)
console.log(`| xenopsd: 1 s poll per build | ${xenopsd.median.toFixed(1)} ms | ${xenopsd.worst.toFixed(1)} ms | 8 |`)
console.log(`ratio of medians: ${(xenopsd.median / Math.max(ours.median, 0.1)).toFixed(0)}x`)
