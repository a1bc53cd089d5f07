// @ts-check
// The whole Domain.build on a real Xen, run in dom0 by `npm run test:xen`
// (plain Node: vitest is far too slow there), after xenstored and xenconsoled
// are up. Through the package's API only: createDomain (Domain.make) into the
// real xenstore, buildDomain with the real builder (xen-domain-builder) and
// best_effort placement, build_post into xenstored, unpause; the guest must
// print its marker on its console (through xenconsoled) and power off, every
// page of it on its planned node (Xen's own count, the `u` debug key), and
// no claim left. Then the builder's failures, each with its code, its claim
// released, no process left and the domain destroyed cleanly. Prints one
// JSON line per check and the timings; exits non-zero if a check failed.
import { execFileSync } from 'node:child_process'
import { existsSync, readFileSync, truncateSync, writeFileSync } from 'node:fs'
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
import { pagesOfDomains } from './xen-pages.mjs'

const BUILDER = process.env.XEN_BUILDER ?? '/mnt/host/xen-domain-builder'
const KERNEL = process.env.GUEST_KERNEL ?? '/tmp/guest/vmlinuz'
const RAMDISK = process.env.GUEST_RAMDISK ?? '/tmp/guest/initrd.gz'
const GUEST_MIB = 256
const vm = { type: /** @type {const} */ ('pv'), staticMaxKib: GUEST_MIB * 1024, targetKib: GUEST_MIB * 1024, vcpus: 1 }

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
const host = await BuildHost.create(xen, { numaPolicy: 'best_effort', xenstore })
const builder = new SpawnedXenguest(BUILDER)
check('builder places memory on a node by itself', await builder.supports('mem_pnode'))

/** Creates and builds a guest; returns what it saw. */
async function buildGuest(name, image = {}) {
  const domid = await createDomain(xen, xenstore, { type: 'pv', maxVcpus: 1, name })
  const spawned = []
  const started = performance.now()
  try {
    const built = await buildDomain(host, domid, vm, {
      image: KERNEL,
      ramdisk: RAMDISK,
      cmdline: 'console=hvc0 quiet',
      ...image,
      xenguest: builder,
      xenguestTimeoutMs: 120_000,
      onEvent: (e) => e.type === 'xenguest.spawn' && spawned.push(e),
    })
    await xen.unpauseDomain(domid)
    return { domid, built, spawned, ms: performance.now() - started }
  } catch (error) {
    return { domid, error, spawned, ms: performance.now() - started }
  }
}

// Three guests, one at a time: best_effort's balancing puts them on node 0, node 1, node 0.
const timings = []
for (const [i, node] of [
  [1, 0],
  [2, 1],
  [3, 0],
]) {
  const name = `xdb-guest-${i}`
  const { domid, built, error, spawned, ms } = await buildGuest(name)
  if (error) {
    check(`${name}: built`, false, { code: error.code, step: error.step, message: error.message })
    continue
  }
  timings.push(ms)
  console.log(
    `xen-test-timing: buildDomain to unpaused, 256 MiB PV guest: ${Math.round(ms)} ms (steps ${JSON.stringify(Object.fromEntries(Object.entries(built.timingsMs).map(([k, v]) => [k, Math.round(v)])))})`,
  )
  check(
    `${name}: planned on node ${node}`,
    JSON.stringify(built.placement.plan?.nodes) === JSON.stringify([node]) && built.placement.affinity === 'soft',
    built.placement,
  )
  check(`${name}: the builder was told -mem_pnode ${node}`, spawned[0]?.args.join(' ').includes(`-mem_pnode ${node}`), spawned[0]?.args)
  const pages = pagesOfDomains().get(domid) ?? null
  const total = (pages ?? []).reduce((a, b) => a + (b ?? 0), 0)
  check(`${name}: every page on node ${node} (Xen's count)`, pages !== null && total > 0 && (pages[node] ?? 0) === total, pages)
  check(`${name}: no claim left`, (await xen.domainInfo(domid)).outstandingPages === 0 && (await xen.physinfo()).outstandingPages === 0)
  check(
    `${name}: introduced, its keys in xenstore`,
    (await xenstore.read(`/local/domain/${domid}/store/ring-ref`)) === String(built.storeMfn),
  )
  const vmPath = await xenstore.read(`/local/domain/${domid}/vm`)
  const { handle } = await xen.domainInfo(domid)
  const listed = execFileSync('xl', ['list', '-v', String(domid)], { encoding: 'utf8' })
  check(`${name}: its Xen handle is its VM's UUID, as xl list -v shows it`, vmPath === `/vm/${handle}` && listed.includes(handle), {
    vmPath,
    handle,
    listed: listed.trim().split('\n'),
  })
  const range = [
    await xenstore.read(`/local/domain/${domid}/memory/dynamic-min`),
    await xenstore.read(`/local/domain/${domid}/memory/dynamic-max`),
  ]
  check(
    `${name}: memory/dynamic-min and dynamic-max after the build`,
    range.every((kib) => kib === String(vm.targetKib)),
    range,
  )
  const log = `/var/log/xen/console/guest-${name}.log`
  let console_ = ''
  for (let s = 0; s < 120 && !console_.includes('guest-marker:'); s++) {
    await sleep(1000)
    console_ = existsSync(log) ? readFileSync(log, 'utf8') : ''
  }
  check(
    `${name}: booted and printed its marker on its console`,
    console_.includes('guest-marker:'),
    console_.split('\n').filter((l) => l.includes('guest-marker')),
  )
  await destroyDomain(xen, xenstore, domid)
  check(
    `${name}: destroyed, no key of the domain left, /vm/UUID kept`,
    (await xenstore.read(`/local/domain/${domid}`)) === null && (await xenstore.read(`${vmPath}/uuid`)) === handle,
  )
  await removeVm(xenstore, handle)
}
if (timings.length > 0) {
  const sorted = [...timings].sort((a, b) => a - b)
  console.log(
    `xen-test-timing: buildDomain to unpaused, median of ${sorted.length}: ${Math.round(sorted[Math.floor((sorted.length - 1) / 2)])} ms`,
  )
}

/** A failed build: its code, its claim released, no builder left, the domain destroyable. */
async function failure(name, image, expected) {
  const { domid, error, spawned } = await buildGuest(`xdb-${name}`, image)
  const info = await xen.domainInfo(domid)
  check(`${name}: fails with ${expected}`, error?.code === expected, { code: error?.code, step: error?.step, message: error?.message })
  check(`${name}: no claim left`, info.outstandingPages === 0, { outstandingPages: info.outstandingPages })
  check(
    `${name}: no builder left`,
    spawned.every((s) => !alive(s.pid)),
    spawned.map((s) => s.pid),
  )
  await destroyDomain(xen, xenstore, domid)
  let gone = false
  try {
    await xen.domainInfo(domid)
  } catch (e) {
    gone = e.code === 'ESRCH'
  }
  check(`${name}: destroyed cleanly`, gone)
}

await failure('missing-kernel', { image: '/tmp/guest/no-such-kernel' }, 'INVALID_ARGUMENT')
writeFileSync('/tmp/guest/not-a-kernel', 'this is not a kernel\n'.repeat(100))
await failure('not-a-kernel', { image: '/tmp/guest/not-a-kernel' }, 'XENGUEST_FAILED')
// A sparse ramdisk larger than the guest's memory.
writeFileSync('/tmp/guest/huge-ramdisk', '')
truncateSync('/tmp/guest/huge-ramdisk', (GUEST_MIB + 64) * 1024 * 1024)
await failure('ramdisk-too-large', { ramdisk: '/tmp/guest/huge-ramdisk' }, 'XENGUEST_FAILED')

// The builder killed mid-build: aborted once it runs (the kernel's decompression takes seconds here).
{
  const controller = new AbortController()
  const domid = await createDomain(xen, xenstore, { type: 'pv', maxVcpus: 1, name: 'xdb-killed' })
  const spawned = []
  const build = buildDomain(host, domid, vm, {
    image: KERNEL,
    ramdisk: RAMDISK,
    xenguest: builder,
    signal: controller.signal,
    onEvent: (e) => {
      if (e.type !== 'xenguest.spawn') return
      spawned.push(e)
      setTimeout(() => controller.abort(), 300)
    },
  })
  const error = await build.then(
    () => undefined,
    (e) => e,
  )
  check('builder killed mid-build: ABORTED', error?.code === 'ABORTED' && error?.step === 'xenguest', {
    code: error?.code,
    step: error?.step,
  })
  check('builder killed mid-build: no claim left', (await xen.domainInfo(domid)).outstandingPages === 0)
  check('builder killed mid-build: no builder left', spawned.length === 1 && !alive(spawned[0].pid))
  await destroyDomain(xen, xenstore, domid)
  check('builder killed mid-build: destroyed cleanly', (await xenstore.read(`/local/domain/${domid}`)) === null)
}
check('no claim left on the host', (await xen.physinfo()).outstandingPages === 0)

// Last, as it ends xenstored: xenstored gone in the middle of a build (once
// the builder has run). build_post fails with xenstore's error, the claim is
// released, and the domain can still be destroyed through the hypervisor.
{
  const domid = await createDomain(xen, xenstore, { type: 'pv', maxVcpus: 1, name: 'xdb-no-xenstored' })
  const pid = Number(readFileSync('/var/run/xenstored.pid', 'utf8'))
  const build = buildDomain(host, domid, vm, {
    image: KERNEL,
    ramdisk: RAMDISK,
    xenguest: builder,
    onEvent: (e) => {
      if (e.type === 'step' && e.step === 'xenguest') process.kill(pid, 'SIGKILL')
    },
  })
  // A request to a xenstored that died must fail, not hang: 30 s is a hang here.
  const hung = new Promise((resolve) =>
    setTimeout(() => resolve({ code: 'HUNG', step: 'build_post', message: 'no answer in 30 s' }), 30_000).unref(),
  )
  const error = await Promise.race([
    build.then(
      () => undefined,
      (e) => e,
    ),
    hung,
  ])
  check(
    'xenstored gone mid-build: build_post fails with a code',
    error !== undefined && error.step === 'build_post' && error.code !== 'HUNG',
    { code: error?.code, step: error?.step, message: error?.message },
  )
  check('xenstored gone mid-build: no claim left', (await xen.domainInfo(domid)).outstandingPages === 0)
  await xen.destroyDomain(domid)
  check(
    'xenstored gone mid-build: the domain destroyed',
    await xen.domainInfo(domid).then(
      () => false,
      (e) => e.code === 'ESRCH',
    ),
  )
}

host.close()
xen.close()
console.log(JSON.stringify({ summary: true, failed }))
// The store's connection to a dead xenstored may hold the process: end it.
process.exit(failed === 0 ? 0 : 1)
