// @ts-check
// The mass start on a real Xen, run in dom0 by `npm run test:xen` after
// xenstored and xenconsoled are up: many PV (and a few PVH) guests built at
// once through one BuildHost with the real builder and the real xenstore,
// then the same start with xenopsd's accounting, then `xl create -p` run in
// parallel (libxl's own placement and claims) as the reference. For every
// guest, its plan and Xen's own count of its pages per node (the `u` debug
// key). Prints one JSON line per check, the side-by-side table, and exits
// non-zero if a check failed. Then a soak: builds started and destroyed in a
// loop, some failing and some cancelled on purpose, with the host's state at
// checkpoints.
import { execFileSync, spawn } from 'node:child_process'
import { randomUUID } from 'node:crypto'
import { existsSync, readdirSync, writeFileSync } from 'node:fs'
import { pagesOfDomains } from './xen-pages.mjs'
import {
  BuildHost,
  buildDomain,
  createDomain,
  destroyDomain,
  openHypervisor,
  openXenstore,
  removeVm,
  SpawnedXenguest,
} from 'xen-domain-build'

const BUILDER = process.env.XEN_BUILDER ?? '/mnt/host/xen-domain-builder'
const KERNEL = process.env.GUEST_KERNEL ?? '/tmp/guest/vmlinuz'
const RAMDISK = process.env.GUEST_RAMDISK ?? '/tmp/guest/initrd.gz'
const SOAK_BUILDS = Number(process.env.SOAK_BUILDS ?? 120)
const MIB = 2 ** 20
/** The pages beyond its RAM that Xen counts for a PVH guest here (libxenguest's special pages: xenstore, console, ...). */
const SPECIAL_PAGES = 9

let failed = 0
function check(name, ok, detail) {
  if (!ok) failed++
  console.log(JSON.stringify({ check: name, ok, detail }, (_, v) => (typeof v === 'bigint' ? String(v) : v)))
}
const sleep = (ms) => new Promise((r) => setTimeout(r, ms))
const alive = (pid) => {
  try {
    process.kill(pid, 0)
    return true
  } catch {
    return false
  }
}

const xen = await openHypervisor()
const xenstore = await openXenstore()
const builder = new SpawnedXenguest(BUILDER)
const nodeFree = async () => (await xen.numaInfo()).nodes.map((n) => n?.freeBytes ?? 0)
const mib = (bytes) => Math.round(bytes / MIB)

/** Waits until every node has at least what it had (less 16 MiB of slack), while Xen scrubs: at most 120 s. */
async function freeBack(before) {
  let now = await nodeFree()
  for (let s = 0; s < 240 && now.some((b, i) => b < (before[i] ?? 0) - 16 * MIB); s++) {
    await sleep(500)
    now = await nodeFree()
  }
  return now
}

/** Keys left for a domain: its trees under /local/domain, /libxl and /xenops. */
/** What xenstored still has of these guests: `{ domid, uuid }` each. */
async function keysLeft(guests) {
  const left = []
  for (const { domid, uuid } of guests) {
    for (const path of [`/local/domain/${domid}`, `/libxl/${domid}`, `/xenops/domain/${domid}`, `/vm/${uuid}`]) {
      if ((await xenstore.read(path).catch(() => null)) !== null) left.push(path)
    }
  }
  return left
}

const startFree = await nodeFree()
const freeTotal = startFree.reduce((a, b) => a + b, 0)
console.log(`xen-test-mass: free memory per node at the start: ${startFree.map(mib).join(', ')} MiB`)

// Two mixes: 16 equal guests at 90% of free memory, and 16 of mixed sizes
// at 85% (two of them PVH), interleaved large and small so that large ones
// are planned while others are still in flight; late large ones fit only on
// the node the others left room on, so an accounting that does not see
// memory in flight over-fills a node. No guest is under 128 MiB: the
// kernel's image alone takes 74 MiB of a guest's memory.
const equalMib = Math.floor((0.9 * freeTotal) / MIB / 16 / 4) * 4
const UNITS = [8, 3, 2, 1.5, 6, 3, 2, 1.5, 8, 3, 2, 1.5, 6, 3, 2, 1.5]
const MIN_MIB = 128
const unitMib = ((0.85 * freeTotal) / MIB - UNITS.length * MIN_MIB) / UNITS.reduce((a, b) => a + b, 0)
const mixes = {
  equal: UNITS.map(() => ({ type: 'pv', mib: equalMib })),
  mixed: UNITS.map((u, i) => ({ type: i === 3 || i === 11 ? 'pvh' : 'pv', mib: MIN_MIB + Math.floor((u * unitMib) / 4) * 4 })),
}
for (const [name, mix] of Object.entries(mixes)) {
  console.log(
    `xen-test-mass: ${name} mix: ${mix.map((g) => `${g.mib}${g.type === 'pvh' ? 'h' : ''}`).join(' ')} MiB, ${mix.reduce((a, g) => a + g.mib, 0)} MiB of ${mib(freeTotal)} free`,
  )
}

const imageOf = (type) => ({
  image: KERNEL,
  ramdisk: RAMDISK,
  // Xen under TCG cannot emulate RDTSCP for a PVH guest.
  cmdline: type === 'pvh' ? 'console=hvc0 clearcpuid=rdtscp' : 'console=hvc0 quiet',
})

/** One start through the package: every guest built at once. Returns a row of the table. */
async function ourStart(label, mix, accounting) {
  const host = await BuildHost.create(xen, { numaPolicy: 'best_effort', accounting, xenstore })
  const guests = []
  const spawned = []
  const waits = []
  const started = performance.now()
  await Promise.all(
    mix.map(async (g, i) => {
      const createStarted = performance.now()
      const uuid = randomUUID()
      const domid = await createDomain(xen, xenstore, { type: g.type, maxVcpus: 1, name: `xdb-${label.replace('/', '-')}-${i}`, uuid })
      const createMs = performance.now() - createStarted
      const vm = { type: g.type, staticMaxKib: g.mib * 1024, targetKib: g.mib * 1024, vcpus: 1 }
      const guest = { ...g, domid, uuid, createMs }
      guests.push(guest)
      try {
        guest.built = await buildDomain(host, domid, vm, {
          ...imageOf(g.type),
          xenguest: builder,
          xenguestTimeoutMs: 600_000,
          onEvent: (e) => {
            if (e.type === 'xenguest.spawn') {
              spawned.push(e.pid)
              guest.spawnedAtMs = performance.now() - started
            }
            if (e.type === 'placement.wait') waits.push(e)
          },
        })
      } catch (error) {
        guest.error = error
        guest.pagesAtFailure = (await xen.domainInfo(domid).catch(() => ({ totPages: -1 }))).totPages
      }
      guest.doneMs = performance.now() - started
    }),
  )
  const wallMs = performance.now() - started
  const pages = pagesOfDomains({ clear: true })
  const outcome = { wholly: 0, spread: 0, unplaced: 0, failed: 0 }
  for (const g of guests) {
    if (g.error) {
      outcome.failed++
      continue
    }
    const byNode = pages.get(g.domid) ?? []
    const planned = new Set(g.built.placement.plan?.nodes ?? [])
    g.pages = byNode
    const total = byNode.reduce((a, b) => a + (b ?? 0), 0)
    const offPlan = byNode.reduce((sum, p, n) => sum + (planned.has(n) ? 0 : (p ?? 0)), 0)
    // libxenguest allocates an HVM or PVH guest's special pages (xenstore,
    // console, ioreq, ...) without a node, after its RAM: they follow the
    // domain's node affinity, but Xen's allocator takes a node's DMA zone
    // (below 4 GiB here: two thirds of node 0) only once every node's
    // memory above it is gone, so when the planned node has only DMA-zone
    // memory left they land on another node. The RAM, pinned with
    // XENMEMF_exact_node, may use the DMA zone. Those few pages are counted
    // apart, not as a spread guest.
    g.specialPagesOff = g.type !== 'pv' && g.built.placement.node !== null && offPlan > 0 && offPlan <= SPECIAL_PAGES ? offPlan : 0
    g.wholly = g.built.placement.plan !== null && total > 0 && offPlan === g.specialPagesOff
    if (g.built.placement.plan === null) outcome.unplaced++
    else if (g.wholly) outcome.wholly++
    else outcome.spread++
  }
  for (const g of guests) {
    console.log(
      `xen-test-mass: ${label} domain ${g.domid} ${g.type} ${g.mib} MiB: ` +
        (g.error
          ? `failed ${g.error.code} in ${g.error.step} (${g.error.message.slice(0, 120)})`
          : `plan ${JSON.stringify(g.built.placement.plan?.nodes ?? null)} pinned ${g.built.placement.node} (${g.built.placement.reason}), pages by node ${JSON.stringify(g.pages)}${g.specialPagesOff ? ` (${g.specialPagesOff} special pages off the node: its DMA zone)` : ''}, done at ${Math.round(g.doneMs)} ms`),
    )
  }
  const steps = {}
  for (const g of guests.filter((x) => x.built))
    for (const [k, v] of Object.entries(g.built.timingsMs)) steps[k] = (steps[k] ?? 0) + v / guests.length
  console.log(
    `xen-test-mass: ${label} mean step times: ${Object.entries(steps)
      .map(([k, v]) => `${k} ${Math.round(v)} ms`)
      .join(', ')}; ${waits.length} placement waits`,
  )
  const spawns = guests
    .map((g) => g.spawnedAtMs)
    .filter((t) => t !== undefined)
    .sort((a, b) => a - b)
  const creates = guests.map((g) => g.createMs)
  console.log(
    `xen-test-mass: ${label} createDomain ${Math.round(Math.min(...creates))}-${Math.round(Math.max(...creates))} ms; builders started from ${Math.round(spawns[0] ?? 0)} to ${Math.round(spawns[spawns.length - 1] ?? 0)} ms after the start`,
  )

  const strict = accounting === 'in-flight'
  for (const g of guests) {
    if (g.error) {
      // A full host: refused before any page was populated, never in the builder.
      check(
        `${label}: domain ${g.domid} failed only for a full host, before any page`,
        ['ENOMEM', 'NOT_ENOUGH_MEMORY'].includes(g.error.code) && g.error.step !== 'xenguest' && g.pagesAtFailure === 0,
        { code: g.error.code, step: g.error.step, pages: g.pagesAtFailure },
      )
    } else if (strict) {
      check(`${label}: domain ${g.domid} wholly on its planned node(s) (Xen's count)`, g.wholly, {
        plan: g.built.placement.plan?.nodes,
        pages: g.pages,
      })
    }
  }
  check(
    `${label}: no build failed in the builder`,
    guests.every((g) => g.error?.step !== 'xenguest'),
    guests.filter((g) => g.error).map((g) => g.error.code),
  )
  if (strict) check(`${label}: every guest placed (${mix.length} fit the host)`, outcome.wholly === mix.length, outcome)
  check(`${label}: no claim left`, (await xen.physinfo()).outstandingPages === 0)
  check(
    `${label}: no builder left`,
    spawned.every((pid) => !alive(pid)),
    spawned.filter(alive),
  )
  await Promise.all(guests.map((g) => destroyDomain(xen, xenstore, g.domid)))
  // createDomain's /vm/UUID outlives the domain, as xenopsd's does, until the VM is removed.
  await Promise.all(guests.map((g) => removeVm(xenstore, g.uuid)))
  const back = await freeBack(startFree)
  check(
    `${label}: destroyed, Xen's free memory per node back where it started`,
    back.every((b, i) => b >= (startFree[i] ?? 0) - 16 * MIB),
    { before: startFree.map(mib), after: back.map(mib) },
  )
  check(`${label}: destroyed, no key left in xenstore`, (await keysLeft(guests)).length === 0, await keysLeft(guests))
  host.close()
  return { label, accounting, outcome, wallMs, vms: mix.length }
}

/** The reference: `xl create -p` of the same guests, all at once. */
async function xlStart(label, mix) {
  const names = mix.map((_, i) => `xl-${label.replace('/', '-')}-${i}`)
  mix.forEach((g, i) => {
    const { cmdline } = imageOf(g.type)
    writeFileSync(
      `/tmp/${names[i]}.cfg`,
      `name = "${names[i]}"\ntype = "${g.type}"\nkernel = "${KERNEL}"\nramdisk = "${RAMDISK}"\nmemory = ${g.mib}\nvcpus = 1\nextra = "${cmdline}"\n`,
    )
  })
  const started = performance.now()
  const exits = await Promise.all(
    names.map(
      (name) =>
        new Promise((resolve) => {
          const child = spawn('xl', ['create', '-p', `/tmp/${name}.cfg`], { stdio: ['ignore', 'ignore', 'pipe'] })
          let err = ''
          child.stderr.on('data', (d) => (err += d))
          child.on('close', (code) => resolve({ name, code, err }))
        }),
    ),
  )
  const wallMs = performance.now() - started
  // xl serializes its free-memory step with this lock only when it balloons dom0 (autoballoon).
  console.log(`xen-test-mass: ${label}: /var/lock/xl ${existsSync('/var/lock/xl') ? 'exists' : 'never appeared'}`)
  const domids = new Map()
  for (const name of names) {
    try {
      domids.set(name, Number(execFileSync('xl', ['domid', name], { encoding: 'utf8' }).trim()))
    } catch {
      // not created
    }
  }
  const pages = pagesOfDomains({ clear: true })
  const outcome = { wholly: 0, spread: 0, unplaced: 0, failed: 0 }
  for (const e of exits) {
    const domid = domids.get(e.name)
    if (e.code !== 0 || domid === undefined) {
      outcome.failed++
      console.log(`xen-test-mass: ${label} ${e.name} failed: ${e.err.trim().split('\n').pop()}`)
      continue
    }
    const byNode = pages.get(domid) ?? []
    const onNodes = byNode.filter((p) => p > 0).length
    if (onNodes === 1) outcome.wholly++
    else outcome.spread++
    console.log(`xen-test-mass: ${label} ${e.name} (domain ${domid}): pages by node ${JSON.stringify(byNode)}`)
  }
  for (const domid of domids.values()) execFileSync('xl', ['destroy', String(domid)])
  await freeBack(startFree)
  return { label, accounting: 'xl create -p (libxl)', outcome, wallMs, vms: mix.length }
}

const rows = []
for (const [name, mix] of Object.entries(mixes)) {
  rows.push(await ourStart(`${name}/in-flight`, mix, 'in-flight'))
  rows.push(await ourStart(`${name}/xenopsd`, mix, 'xenopsd'))
  rows.push(await xlStart(`${name}/xl`, mix))
}
console.log('\nxen-test-mass: the mass start on this Xen (2 nodes under QEMU TCG), 16 guests at once, of all VMs:')
console.log('| mix | placement | wholly on one planned node | spread | unplaced | failed | wall time, first build to last |')
console.log('| --- | --- | --- | --- | --- | --- | --- |')
for (const r of rows) {
  const o = r.outcome
  console.log(
    `| ${r.label.split('/')[0]} | ${r.accounting} | ${o.wholly} of ${r.vms} | ${o.spread} | ${o.unplaced} | ${o.failed} | ${(r.wallMs / 1000).toFixed(1)} s |`,
  )
}
for (const name of Object.keys(mixes)) {
  const ours = rows.find((r) => r.label === `${name}/in-flight`)
  const xl = rows.find((r) => r.label === `${name}/xl`)
  if (ours && xl) console.log(`xen-test-mass: ${name} mix: xl's wall time / ours = ${(xl.wallMs / ours.wallMs).toFixed(2)}x`)
}

// The soak: builds started and destroyed in a loop, four at a time, some
// failing (an unreadable kernel, a file that is not a kernel) and some
// cancelled once their builder runs. At checkpoints: Xen's free memory per
// node (after scrubbing), xenstored's node count, this process's open fds
// and its resident memory.
{
  writeFileSync('/tmp/guest/not-a-kernel', 'this is not a kernel\n'.repeat(100))
  const host = await BuildHost.create(xen, { numaPolicy: 'best_effort', xenstore })
  const xenstoredNodes = () => execFileSync('xenstore-ls', ['-f', '/'], { encoding: 'utf8' }).split('\n').length
  const checkpoint = async () => ({
    freeMib: (await freeBack(startFree)).map(mib),
    xenstoredNodes: xenstoredNodes(),
    fds: readdirSync('/proc/self/fd').length,
    rssMib: Math.round(process.memoryUsage().rss / MIB),
  })
  const codes = {}
  const spawned = []
  const one = async (i) => {
    const kind = i % 10 === 3 ? 'unreadable' : i % 10 === 6 ? 'not-a-kernel' : i % 10 === 8 ? 'cancelled' : 'ok'
    const uuid = randomUUID()
    const domid = await createDomain(xen, xenstore, { type: 'pv', maxVcpus: 1, name: `xdb-soak-${i}`, uuid })
    const controller = new AbortController()
    const image = kind === 'unreadable' ? '/tmp/guest/no-such-kernel' : kind === 'not-a-kernel' ? '/tmp/guest/not-a-kernel' : KERNEL
    try {
      await buildDomain(
        host,
        domid,
        { type: 'pv', staticMaxKib: 128 * 1024, targetKib: 128 * 1024, vcpus: 1 },
        {
          image,
          ramdisk: RAMDISK,
          xenguest: builder,
          signal: controller.signal,
          onEvent: (e) => {
            if (e.type !== 'xenguest.spawn') return
            spawned.push(e.pid)
            if (kind === 'cancelled') setTimeout(() => controller.abort(), 200)
          },
        },
      )
      codes.built = (codes.built ?? 0) + 1
    } catch (error) {
      codes[error.code] = (codes[error.code] ?? 0) + 1
    }
    await destroyDomain(xen, xenstore, domid)
    await removeVm(xenstore, uuid)
  }
  const points = [await checkpoint()]
  const started = performance.now()
  const rounds = Math.max(1, Math.ceil(SOAK_BUILDS / 40))
  let next = 0
  for (let round = 0; round < rounds; round++) {
    const end = Math.min(SOAK_BUILDS, next + 40)
    const worker = async () => {
      while (next < end) await one(next++)
    }
    await Promise.all([worker(), worker(), worker(), worker()])
    points.push(await checkpoint())
  }
  const [first, last] = [points[0], points[points.length - 1]]
  console.log(
    `xen-test-mass: soak of ${SOAK_BUILDS} builds in ${Math.round((performance.now() - started) / 1000)} s: ${JSON.stringify(codes)}`,
  )
  for (const [i, p] of points.entries()) console.log(`xen-test-mass: soak checkpoint ${i}: ${JSON.stringify(p)}`)
  check(
    'soak: every build built or failed with the code its case gives',
    (codes.built ?? 0) > 0 && Object.keys(codes).every((c) => ['built', 'INVALID_ARGUMENT', 'XENGUEST_FAILED', 'ABORTED'].includes(c)),
    codes,
  )
  check(
    "soak: Xen's free memory per node flat",
    last.freeMib.every((m, i) => m >= (first.freeMib[i] ?? 0) - 16),
    { first: first.freeMib, last: last.freeMib },
  )
  check("soak: xenstored's node count flat", last.xenstoredNodes <= first.xenstoredNodes, {
    first: first.xenstoredNodes,
    last: last.xenstoredNodes,
  })
  check('soak: open fds flat', last.fds <= first.fds, { first: first.fds, last: last.fds })
  // The first round warms V8 and the addon up: growth after it, within 32 MiB.
  const warm = points[1] ?? first
  check(
    'soak: resident memory flat after the first round',
    last.rssMib <= warm.rssMib + 32,
    points.map((p) => p.rssMib),
  )
  check('soak: no claim left, no builder left', (await xen.physinfo()).outstandingPages === 0 && spawned.every((pid) => !alive(pid)))
  host.close()
}

xen.close()
console.log(JSON.stringify({ summary: true, failed }))
process.exit(failed === 0 ? 0 : 1)
