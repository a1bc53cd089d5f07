// @ts-check
// `npm run bench:soak`: a soak of whole builds on the simulated host.
// N builds (--builds, 20,000 by default) in rounds: a stretch of builds one
// after another, then a stretch of builds at once (--concurrency, 32). Each
// build creates a domain, builds it with the simulated xenguest and destroys
// it; a few fail on purpose (an injected EIO on event channels, seeded) and a
// few are cancelled, so that the failure and abort paths are soaked too.
// At checkpoints (--checkpoints, 10) it prints builds done, RSS, heap used
// after a full GC (run with --expose-gc) and open file descriptors, then the
// growth from the first checkpoint to the last. What the soak itself keeps
// (the xenstore) is dropped with each domain, so growth is the library's.
//
//   node --expose-gc bench/soak.mjs [--builds N] [--concurrency C] [--checkpoints K] [--preset NAME]
//                                   [--spawned-every K] [--json]
import { readdirSync } from 'node:fs'
import { parseArgs } from 'node:util'
import { fileURLToPath } from 'node:url'
import { BuildHost, SimulatedXenguest, SpawnedXenguest, buildDomain, simulateHost } from '../esm/index.mjs'

const { values } = parseArgs({
  options: {
    builds: { type: 'string', default: '20000' },
    concurrency: { type: 'string', default: '32' },
    checkpoints: { type: 'string', default: '10' },
    preset: { type: 'string', default: 'two-socket-4-node' },
    'spawned-every': { type: 'string', default: '100' },
    json: { type: 'boolean', default: false },
  },
})
const whole = (name, text, min) => {
  const n = Number(text)
  if (!/^\d+$/.test(text) || !Number.isSafeInteger(n) || n < min) {
    console.error(`soak: --${name}: ${text} is not a whole number ≥ ${min}`)
    process.exit(2)
  }
  return n
}
const builds = whole('builds', values.builds, 1)
const concurrency = whole('concurrency', values.concurrency, 1)
const checkpoints = Math.min(builds, whole('checkpoints', values.checkpoints, 2))
const spawnedEvery = whole('spawned-every', values['spawned-every'], 0)

/** A xenstore that forgets a domain when it is destroyed, as xenstored does. */
class ForgetfulXenstore {
  entries = new Map()
  async read(path) {
    return this.entries.get(path) ?? null
  }
  async write(path, value) {
    this.entries.set(path, value)
  }
  async writeMany(base, entries) {
    for (const [key, value] of Object.entries(entries)) this.entries.set(`${base}/${key}`, value)
  }
  async introduce() {}
  forget(domid) {
    for (const prefix of [`/local/domain/${domid}/`, `/vm/vm-of-${domid}/`, `/libxl/${domid}/`]) {
      for (const path of this.entries.keys()) if (path.startsWith(prefix)) this.entries.delete(path)
    }
  }
}

let state = 42
const random = () => {
  state = (state + 0x6d2b79f5) >>> 0
  let t = state
  t = Math.imul(t ^ (t >>> 15), t | 1)
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296
}

const sim = simulateHost({ preset: values.preset })
const xen = sim.hypervisor()
/** @type {any} A Xenstore in what the builds call. */
const xenstore = new ForgetfulXenstore()
const host = await BuildHost.create(xen, { xenstore })
const xenguest = new SimulatedXenguest(sim, { builderMs: () => Math.floor(random() * 3) })
// Every so many builds (--spawned-every, 100; 0: none) run the real runner on
// the test suite's fake xenguest: child processes and pipes, for the fd count.
const FAKE = fileURLToPath(new URL('../__test__/fixtures/fake-xenguest.mjs', import.meta.url))
const spawned = new SpawnedXenguest(FAKE, { exitGraceMs: 1000 })
// About one build in fifty fails at its event channels (the claim must be released).
sim.seedFaults(42)
sim.injectFault({ operation: 'xc_evtchn_alloc_unbound', errno: 'EIO', mode: 'probability', probability: 0.01 })

const KINDS = /** @type {const} */ (['hvm', 'pv', 'pvh'])
const counts = { done: 0, built: 0, failed: 0, aborted: 0, other: 0, spawned: 0 }
const otherErrors = new Map()

async function one(i) {
  const kind = KINDS[i % KINDS.length]
  const vcpus = 1 + (i % 2)
  const mib = 128 * (1 + Math.floor(random() * 4))
  const domid = await xen.createDomain({ kind, maxVcpus: vcpus })
  await xenstore.write(`/local/domain/${domid}/vm`, `/vm/vm-of-${domid}`)
  const controller = new AbortController()
  // About one build in a hundred is cancelled part-way.
  const abort = random() < 0.01 ? setTimeout(() => controller.abort(), Math.floor(random() * 3)) : undefined
  const real = spawnedEvery > 0 && i % spawnedEvery === spawnedEvery - 1
  if (real) counts.spawned++
  try {
    await buildDomain(
      host,
      domid,
      { type: kind, staticMaxKib: mib * 1024, targetKib: mib * 1024, vcpus, ...(kind === 'pv' ? {} : { videoMib: 4 }) },
      {
        xenguest: real ? spawned : xenguest,
        image: real ? FAKE : 'kernel',
        cmdline: 'console=hvc0',
        signal: controller.signal,
      },
    )
    counts.built++
  } catch (error) {
    if (error?.code === 'ABORTED') counts.aborted++
    else if (error?.code === 'EIO') counts.failed++
    else {
      counts.other++
      const key = `${error?.code}: ${String(error?.message).replace(/\d+/g, 'N').slice(0, 120)}`
      otherErrors.set(key, (otherErrors.get(key) ?? 0) + 1)
    }
  } finally {
    clearTimeout(abort)
    await xen.destroyDomain(domid)
    xenstore.forget(domid)
    counts.done++
  }
}

const MIB = 1024 * 1024
const rows = []
const started = performance.now()
function checkpoint() {
  globalThis.gc?.()
  const memory = process.memoryUsage()
  const row = {
    builds: counts.done,
    seconds: (performance.now() - started) / 1000,
    rssMib: memory.rss / MIB,
    heapUsedMib: memory.heapUsed / MIB,
    externalMib: memory.external / MIB,
    fds: readdirSync('/proc/self/fd').length,
    ledgerOpen: /** @type {any} the ledger is internal */ (host).ledger.openCount,
    xenstoreEntries: xenstore.entries.size,
  }
  rows.push(row)
  if (values.json) console.log(JSON.stringify(row))
  else {
    console.log(
      `${String(row.builds).padStart(7)} builds  ${row.seconds.toFixed(1).padStart(6)} s  RSS ${row.rssMib.toFixed(1).padStart(7)} MiB  ` +
        `heap used ${row.heapUsedMib.toFixed(2).padStart(7)} MiB  external ${row.externalMib.toFixed(2).padStart(6)} MiB  fds ${String(row.fds).padStart(4)}  ` +
        `ledger open ${row.ledgerOpen}  xenstore entries ${row.xenstoreEntries}`,
    )
  }
}

if (globalThis.gc === undefined) console.error('soak: run with node --expose-gc for heap figures after a full GC')
if (!values.json)
  console.log(
    `soak: ${builds} builds on ${values.preset}, rounds of ${concurrency} one after another then ${concurrency} at once, ${checkpoints} checkpoints, every ${spawnedEvery || 'no'}th through a spawned xenguest`,
  )
const every = Math.floor(builds / checkpoints)
let next = every
let i = 0
let sequential = true
while (i < builds) {
  const stretch = Math.min(concurrency, builds - i)
  if (sequential) {
    for (let k = 0; k < stretch; k++) await one(i++)
  } else {
    const batch = []
    for (let k = 0; k < stretch; k++) batch.push(one(i++))
    await Promise.all(batch)
  }
  sequential = !sequential
  // Destroyed domains' memory goes to the scrubber: let it run.
  sim.advanceClock(60_000)
  while (counts.done >= next && rows.length < checkpoints) {
    checkpoint()
    next += every
  }
}
if (rows.length < checkpoints || rows[rows.length - 1].builds !== counts.done) checkpoint()

const first = rows[0]
const last = rows[rows.length - 1]
const ratio = (key) => (first[key] > 0 ? last[key] / first[key] : NaN)
const physinfo = await xen.physinfo()
const claimed = sim.nodePages().reduce((a, n) => a + n.claimedPages, 0)
const summary = {
  builds: counts.done,
  built: counts.built,
  failedOnPurpose: counts.failed,
  aborted: counts.aborted,
  otherFailures: counts.other,
  spawnedXenguest: counts.spawned,
  buildsPerSecond: counts.done / last.seconds,
  growth: { rss: ratio('rssMib'), heapUsed: ratio('heapUsedMib'), fds: ratio('fds') },
  firstCheckpoint: first.builds,
  lastCheckpoint: last.builds,
  outstandingPages: physinfo.outstandingPages,
  nodeClaimedPages: claimed,
  ledgerOpen: /** @type {any} the ledger is internal */ (host).ledger.openCount,
  buildsInFlight: host.buildsInFlight,
}
if (values.json) console.log(JSON.stringify({ summary, otherErrors: Object.fromEntries(otherErrors) }))
else {
  console.log(
    `done: ${summary.builds} builds (${summary.built} built, ${summary.failedOnPurpose} failed on purpose, ${summary.aborted} aborted, ${summary.otherFailures} other failures; ${summary.spawnedXenguest} through the spawned fake xenguest), ` +
      `${summary.buildsPerSecond.toFixed(0)} builds/s`,
  )
  console.log(
    `growth from the first checkpoint (${first.builds} builds) to the last (${last.builds}): RSS ×${summary.growth.rss.toFixed(3)}, ` +
      `heap used ×${summary.growth.heapUsed.toFixed(3)}, fds ×${summary.growth.fds.toFixed(3)}`,
  )
  console.log(
    `left behind: outstanding pages ${summary.outstandingPages}, node-claimed pages ${summary.nodeClaimedPages}, ledger open ${summary.ledgerOpen}, builds in flight ${summary.buildsInFlight}`,
  )
  for (const [key, n] of otherErrors) console.log(`  other failure ×${n}: ${key}`)
}
host.close()
xen.close()
