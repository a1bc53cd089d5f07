// @ts-check
// Suspend, restore and a live migration on a real Xen, run in dom0 by
// `npm run test:xen` after xenstored and xenconsoled are up. A PV guest whose
// init prints a counter every second (`xdb-counter` on its command line) is
// built and unpaused; suspendDomain writes it to a file through the builder
// and it is destroyed; restoreDomain brings the image back into a new domain
// placed on the other NUMA node (Xen's own page counts must show it there);
// unpaused, its counter goes on from where it stopped (its memory came back:
// it did not boot again). Then the same guest migrated live between two
// domains (the pause measured), and `xl save` / `xl restore` of the same
// guest as the reference, timed. One JSON line per check; exits non-zero if
// one failed.
import { execFileSync, spawn, spawnSync } from 'node:child_process'
import { constants, open } from 'node:fs/promises'
import { existsSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs'
import {
  BuildHost,
  buildDomain,
  createDomain,
  destroyDomain,
  migrateDomain,
  openHypervisor,
  openXenstore,
  removeVm,
  restoreDomain,
  SpawnedXenguest,
  suspendDomain,
} from 'xen-domain-build'
import { pagesOfDomains } from './xen-pages.mjs'

const BUILDER = process.env.XEN_BUILDER ?? '/mnt/host/xen-domain-builder'
const KERNEL = process.env.GUEST_KERNEL ?? '/tmp/guest/vmlinuz'
const RAMDISK = process.env.GUEST_RAMDISK ?? '/tmp/guest/initrd.gz'
// On the host's share: dom0's /tmp is a tmpfs in its 512 MiB.
const IMAGES = process.env.XDB_IMAGES ?? '/mnt/host/images'
mkdirSync(IMAGES, { recursive: true })
const IMAGE = `${IMAGES}/xdb-counter.img`

/**
 * Writes a save into `file` through a pipe that `cat` copies out of: the
 * share (9p) refuses writes straight from the guest's pages that the saver
 * maps (EFAULT), and dom0's /tmp cannot hold the image. `save` is given the
 * pipe's path.
 */
async function throughPipe(file, save) {
  const fifo = `/tmp/save-${process.pid}.fifo`
  rmSync(fifo, { force: true })
  execFileSync('mkfifo', [fifo])
  const copier = spawn('sh', ['-c', 'cat "$0" > "$1"', fifo, file], { stdio: 'inherit' })
  const copied = new Promise((resolve) => copier.on('close', resolve))
  try {
    return await save(fifo)
  } finally {
    // A pipe the save never opened: open and close it, so that cat ends
    // (without blocking: no reader left, ENXIO, means cat has ended).
    await open(fifo, constants.O_WRONLY | constants.O_NONBLOCK)
      .then((h) => h.close())
      .catch(() => undefined)
    await copied
    rmSync(fifo, { force: true })
  }
}
const GUEST_MIB = 128
const CMDLINE = 'console=hvc0 quiet xdb-counter'

let failed = 0
function check(name, ok, detail) {
  if (!ok) failed++
  console.log(JSON.stringify({ check: name, ok, detail }, (_, v) => (typeof v === 'bigint' ? String(v) : v)))
}
const sleep = (ms) => new Promise((r) => setTimeout(r, ms))
const round = (ms) => Math.round(ms)

const xen = await openHypervisor()
const xenstore = await openXenstore()
const host = await BuildHost.create(xen, { numaPolicy: 'best_effort', xenstore })
const builder = new SpawnedXenguest(BUILDER)
/** The CPUs of a node: a VM given them as hard affinity is placed there. */
const cpusOf = (node) => host.layout.cpuToNode.flatMap((n, cpu) => (n === node ? [cpu] : []))
/**
 * The guest; `node`: pinned there by hard affinity. Before 4.22 a restore's
 * pages follow the domain's node affinity (xc_domain_restore takes no node
 * flags), and Xen keeps node 0's DMA zone for last, so the restores go to
 * node 1, above it; the builds are placed by best_effort (a one-node plan,
 * the builder pinned to it).
 */
const vmOn = (node, type = /** @type {'pv' | 'pvh'} */ ('pv')) => ({
  type,
  staticMaxKib: GUEST_MIB * 1024,
  targetKib: GUEST_MIB * 1024,
  vcpus: 1,
  ...(node === undefined ? {} : { hardAffinity: [cpusOf(node)] }),
})

/** The counter values a guest's console shows, in order. */
function counters(name) {
  const log = `/var/log/xen/console/guest-${name}.log`
  const text = existsSync(log) ? readFileSync(log, 'utf8') : ''
  return {
    starts: (text.match(/guest-counter-start/g) ?? []).length,
    values: [...text.matchAll(/guest-counter: (\d+)/g)].map((m) => Number(m[1])),
  }
}
async function untilCounter(name, above, seconds = 120) {
  for (let s = 0; s < seconds; s++) {
    const seen = counters(name)
    if (seen.values.some((v) => v > above)) return seen
    await sleep(1000)
  }
  return counters(name)
}
/** Xen's count of the domain's pages per node. */
const pagesOf = (domid) => pagesOfDomains().get(domid) ?? []
const onNode = (pages, node) => {
  const total = pages.reduce((a, b) => a + (b ?? 0), 0)
  return { total, onNode: pages[node] ?? 0 }
}

/** A counting guest, placed by best_effort: its pages must all be on its planned node. */
async function startCounter(name, type = /** @type {'pv' | 'pvh'} */ ('pv')) {
  const domid = await createDomain(xen, xenstore, { type, maxVcpus: 1, name })
  const built = await buildDomain(host, domid, vmOn(undefined, type), {
    image: KERNEL,
    // PVH: the ramdisk as a module; Xen under TCG cannot emulate RDTSCP for it.
    ...(type === 'pv' ? { ramdisk: RAMDISK, cmdline: CMDLINE } : { modules: [{ path: RAMDISK }], cmdline: `${CMDLINE} clearcpuid=rdtscp` }),
    xenguest: builder,
    xenguestTimeoutMs: 120_000,
  })
  await xen.unpauseDomain(domid)
  const seen = await untilCounter(name, 2)
  const node = built.placement.plan?.nodes[0] ?? -1
  const placed = onNode(pagesOf(domid), node)
  check(
    `${name}: built on its planned node (Xen's count), booted, counting`,
    placed.total > 0 && placed.onNode >= placed.total * 0.99 && seen.values.length > 0,
    {
      placement: built.placement.reason,
      pages: pagesOf(domid),
      counters: seen.values.slice(-3),
    },
  )
  return domid
}

// 1. Suspend to a file, destroy, restore on the other node, count on.
{
  const source = await startCounter('xdb-counter')
  const before = counters('xdb-counter').values.at(-1) ?? -1
  const uuid = (await xen.domainInfo(source)).handle
  const started = performance.now()
  let suspendMs = 0
  try {
    const suspended = await throughPipe(IMAGE, async (fifo) => {
      const pipe = await open(fifo, 'w')
      try {
        return await suspendDomain(xen, xenstore, source, pipe.fd, { xenguest: builder, vm: vmOn(), xenguestTimeoutMs: 300_000 })
      } finally {
        await pipe.close()
      }
    })
    suspendMs = performance.now() - started
    check('suspendDomain: the guest suspended and its image written', (await xen.domainInfo(source)).shutdownReason === 'suspend', {
      ms: round(suspendMs),
      bytes: statSync(IMAGE).size,
      memoryTotalSourceKib: suspended.memoryTotalSourceKib,
      steps: Object.fromEntries(Object.entries(suspended.timingsMs).map(([k, v]) => [k, round(v)])),
    })
  } catch (error) {
    check('suspendDomain: the guest suspended and its image written', false, { code: error.code, step: error.step, message: error.message })
  }
  const last = counters('xdb-counter').values.at(-1) ?? -1
  await destroyDomain(xen, xenstore, source)
  await removeVm(xenstore, uuid)
  const target = await createDomain(xen, xenstore, { type: 'pv', maxVcpus: 1, name: 'xdb-counter-restored' })
  const restoreStarted = performance.now()
  try {
    const restored = await restoreDomain(host, target, vmOn(1), IMAGE, { xenguest: builder, xenguestTimeoutMs: 300_000 })
    const restoreMs = performance.now() - restoreStarted
    const pages = pagesOf(target)
    const placed = onNode(pages, 1)
    check(
      "restoreDomain: on node 1 (its vCPUs' node), Xen's count of its pages there",
      placed.total > 0 && placed.onNode >= placed.total * 0.99,
      {
        ms: round(restoreMs),
        pages,
        placement: restored.placement.reason,
        steps: Object.fromEntries(Object.entries(restored.timingsMs).map(([k, v]) => [k, round(v)])),
      },
    )
    check('restoreDomain: no claim left', (await xen.domainInfo(target)).outstandingPages === 0)
    await xen.unpauseDomain(target)
    const after = await untilCounter('xdb-counter-restored', last, 60)
    check(
      'the restored guest counts on from where it stopped, without booting again',
      after.starts === 0 && after.values.length > 0 && (after.values[0] ?? -1) >= before && (after.values[0] ?? Infinity) <= last + 2,
      { beforeSuspend: before, lastBeforeSuspend: last, afterRestore: after.values.slice(0, 3), boots: after.starts },
    )
    console.log(
      `xen-test-timing: suspendDomain of a ${GUEST_MIB} MiB PV guest to a file: ${round(suspendMs)} ms; restoreDomain: ${round(restoreMs)} ms`,
    )
  } catch (error) {
    check('restoreDomain: placed on node 1', false, { code: error.code, step: error.step, message: error.message })
  }
  const restoredUuid = (await xen.domainInfo(target).catch(() => ({ handle: null }))).handle
  await destroyDomain(xen, xenstore, target)
  if (restoredUuid) await removeVm(xenstore, restoredUuid)
  rmSync(IMAGE, { force: true })
}

// 2. A live migration between two domains of this host, the pause measured:
// a PVH guest, whose log-dirty mode is HAP's (a PV guest's needs shadow
// paging, which Debian's Xen lacks: suspendDomain refuses that, checked).
{
  const refused = await suspendDomain(xen, xenstore, 1, '/dev/null', { xenguest: builder, vm: vmOn(), live: true }).catch((e) => e)
  const shadow = (await xen.physinfo()).capabilities.includes('shadow')
  check('a live save of a PV guest without shadow paging is refused up front', shadow || refused?.code === 'INVALID_ARGUMENT', {
    shadow,
    code: refused?.code,
    message: refused?.message,
  })
  const source = await startCounter('xdb-migrant', 'pvh')
  const uuid = (await xen.domainInfo(source)).handle
  const target = await createDomain(xen, xenstore, { type: 'pvh', maxVcpus: 1, name: 'xdb-migrated' })
  try {
    const progress = []
    const migrated = await migrateDomain(host, source, target, {
      xenguest: builder,
      vm: vmOn(1, 'pvh'),
      live: true,
      xenguestTimeoutMs: 300_000,
      onEvent: (e) => e.type === 'suspend.progress' && progress.push(e),
    })
    const after = await untilCounter('xdb-migrated', counters('xdb-migrant').values.at(-1) ?? -1, 60)
    check('migrateDomain: live, the guest counts on in the target, the source gone', after.starts === 0 && after.values.length > 0, {
      pausedMs: round(migrated.pausedMs),
      totalMs: round(migrated.totalMs),
      iterations: progress.length,
      afterMigration: after.values.slice(0, 3),
    })
    console.log(
      `xen-test-timing: migrateDomain (live) of a ${GUEST_MIB} MiB PVH guest: ${round(migrated.totalMs)} ms, paused ${round(migrated.pausedMs)} ms`,
    )
  } catch (error) {
    check('migrateDomain: live', false, { code: error.code, step: error.step, message: error.message })
    await destroyDomain(xen, xenstore, source).catch(() => undefined)
  }
  const migratedUuid = (await xen.domainInfo(target).catch(() => ({ handle: null }))).handle
  await destroyDomain(xen, xenstore, target).catch(() => undefined)
  await removeVm(xenstore, uuid)
  if (migratedUuid && migratedUuid !== uuid) await removeVm(xenstore, migratedUuid)
}

// 3. The reference: xl save and xl restore of the same guest, timed.
writeFileSync(
  '/tmp/xl-counter.cfg',
  `name = "xl-counter"\ntype = "pv"\nkernel = "${KERNEL}"\nramdisk = "${RAMDISK}"\nmemory = ${GUEST_MIB}\nvcpus = 1\nextra = "${CMDLINE}"\n`,
)
try {
  execFileSync('xl', ['create', '/tmp/xl-counter.cfg'], { stdio: 'pipe' })
  await untilCounter('xl-counter', 2)
  const last = counters('xl-counter').values.at(-1) ?? -1
  let started = performance.now()
  await throughPipe(`${IMAGES}/xl-counter.img`, async (fifo) => execFileSync('xl', ['save', 'xl-counter', fifo], { stdio: 'pipe' }))
  const saveMs = performance.now() - started
  started = performance.now()
  execFileSync('xl', ['restore', `${IMAGES}/xl-counter.img`], { stdio: 'pipe' })
  const restoreMs = performance.now() - started
  const after = await untilCounter('xl-counter', last, 60)
  check(
    'xl save / xl restore: the reference guest counts on',
    after.values.some((v) => v > last),
    { saveMs: round(saveMs), restoreMs: round(restoreMs) },
  )
  console.log(`xen-test-timing: xl save of a ${GUEST_MIB} MiB PV guest: ${round(saveMs)} ms; xl restore: ${round(restoreMs)} ms`)
} catch (error) {
  check('xl save / xl restore', false, { message: String(error.stderr ?? error.message).slice(0, 400) })
}
spawnSync('xl', ['destroy', 'xl-counter'], { stdio: 'ignore' })
rmSync(`${IMAGES}/xl-counter.img`, { force: true })

host.close()
xen.close()
console.log(JSON.stringify({ summary: true, failed }))
process.exit(failed === 0 ? 0 : 1)
