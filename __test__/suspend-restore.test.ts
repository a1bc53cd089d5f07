// Suspend, restore and migration on the simulated host: the guest's side
// (SimulatedGuest), the builder's (SimulatedXenguest's save, restore and
// resume) and the toolstack's (suspendDomain, restoreDomain, migrateDomain),
// with what each failure leaves behind.
import { mkdtempSync, readFileSync, rmSync, truncateSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import {
  BuildHost,
  buildDomain,
  createDomain,
  migrateDomain,
  restoreDomain,
  SimulatedGuest,
  SimulatedXenguest,
  simulateHost,
  suspendDomain,
  type SuspendEvent,
  type VmConfig,
  type XenguestRunner,
  XenDomainBuildError,
} from '../ts/index.js'
import { rejected } from './helpers.js'

const MIB_KIB = 1024
const vm = (node?: number): VmConfig => ({
  type: 'pv',
  staticMaxKib: 256 * MIB_KIB,
  targetKib: 256 * MIB_KIB,
  vcpus: 1,
  // qemu-2-node: CPUs 0-1 on node 0, 2-3 on node 1.
  ...(node === undefined ? {} : { hardAffinity: [node === 0 ? [0, 1] : [2, 3]] }),
})

const dirs: string[] = []
const guests: SimulatedGuest[] = []
afterEach(async () => {
  for (const guest of guests.splice(0)) await guest.stop()
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true })
})
function imagePath(): string {
  const dir = mkdtempSync(join(tmpdir(), 'xdb-suspend-'))
  dirs.push(dir)
  return join(dir, 'image')
}

async function setup(guest: ConstructorParameters<typeof SimulatedGuest>[3] = {}) {
  // With shadow paging, which a PV guest's live save needs (the preset, like Debian's Xen, has none).
  const sim = simulateHost({ preset: 'qemu-2-node', shadowPaging: true })
  const xen = sim.hypervisor()
  const host = await BuildHost.create(xen)
  const xenguest = new SimulatedXenguest(sim, { builderMs: 20 })
  const domid = await createDomain(xen, host.xenstore, { type: 'pv', maxVcpus: 1, name: 'counter' })
  const built = await buildDomain(host, domid, vm(0), { image: 'vmlinuz', xenguest })
  await xen.unpauseDomain(domid)
  const running = new SimulatedGuest(sim, host.xenstore, domid, guest)
  guests.push(running)
  return { sim, xen, host, xenguest, domid, built, guest: running }
}

const total = (pages: number[]) => pages.reduce((a, b) => a + b, 0)

describe('suspendDomain and restoreDomain on the simulated host', () => {
  it('suspends to a file and restores into a new domain on the other node, its pages and rings as a build', async () => {
    const { sim, xen, host, xenguest, domid, guest } = await setup()
    const path = imagePath()
    const events: SuspendEvent[] = []
    const suspended = await suspendDomain(xen, host.xenstore, domid, path, { xenguest, vm: vm(0), onEvent: (e) => events.push(e) })
    expect(guest.acknowledged).toBe(1)
    expect((await xen.domainInfo(domid)).shutdownReason).toBe('suspend')
    expect(suspended.memoryTotalSourceKib).toBe((await xen.domainInfo(domid)).totPages * 4)
    expect(events.map((e) => e.type).filter((t) => t.startsWith('suspend.'))).toEqual([
      'suspend.requested',
      'suspend.acknowledged',
      'suspend.suspended',
      'suspend.done',
    ])
    expect(readFileSync(path).subarray(0, 15).toString('latin1')).toBe('XenSavedDomv2-\n')
    const sourcePages = total(sim.domainPagesByNode(domid))
    await xen.destroyDomain(domid)

    const target = await createDomain(xen, host.xenstore, { type: 'pv', maxVcpus: 1, name: 'counter-restored' })
    const restored = await restoreDomain(host, target, vm(1), path, { xenguest })
    // Hard affinity: xenopsd's placement is skipped, and the memory follows the vCPUs' node.
    expect(restored.placement.reason).toBe('the VM has hard affinity')
    const pages = sim.domainPagesByNode(target)
    expect(pages[1]).toBe(total(pages))
    expect(total(pages)).toBe(sourcePages)
    expect((await xen.domainInfo(target)).outstandingPages).toBe(0)
    expect(await host.xenstore.read(`/local/domain/${target}/store/ring-ref`)).toBe(String(restored.storeMfn))
    // The builder was told where the image is and which node holds the claim.
    const args = xenguest.runs.at(-1) ?? []
    expect(args.slice(args.indexOf('-mode'), args.indexOf('-mode') + 2)).toEqual(['-mode', 'restore'])
    expect(args).toContain('-fd')
  })

  it('a live save copies while the guest runs, and says how each round went', async () => {
    const { xen, host, xenguest, domid } = await setup()
    const progress: SuspendEvent[] = []
    await suspendDomain(xen, host.xenstore, domid, imagePath(), {
      xenguest,
      vm: vm(0),
      live: true,
      onEvent: (e) => e.type === 'suspend.progress' && progress.push(e),
    })
    expect(progress.length).toBeGreaterThan(1)
    expect(progress.at(-1)).toMatchObject({ type: 'suspend.progress', decision: 'stop_and_copy' })
  })

  it("a live save of a PV guest on a Xen without shadow paging (Debian's): refused before the guest is asked", async () => {
    const sim = simulateHost({ preset: 'qemu-2-node', shadowPaging: false })
    const xen = sim.hypervisor()
    const host = await BuildHost.create(xen)
    const xenguest = new SimulatedXenguest(sim)
    const domid = await createDomain(xen, host.xenstore, { type: 'pv', maxVcpus: 1, name: 'no-shadow' })
    await buildDomain(host, domid, vm(), { image: 'vmlinuz', xenguest })
    const error = await rejected(suspendDomain(xen, host.xenstore, domid, imagePath(), { xenguest, vm: vm(), live: true }))
    expect(error).toMatchObject({ code: 'INVALID_ARGUMENT', message: expect.stringMatching(/shadow paging/) })
    expect(await host.xenstore.read(`/local/domain/${domid}/control/shutdown`)).toBeNull()
  })

  it('a guest that does not acknowledge: SUSPEND_NOT_ACKNOWLEDGED, the request withdrawn, the guest running, no save run', async () => {
    const { xen, host, xenguest, domid } = await setup({ acknowledges: false })
    const runs = xenguest.runs.length
    const error = await rejected(suspendDomain(xen, host.xenstore, domid, imagePath(), { xenguest, vm: vm(0), ackTimeoutMs: 100 }))
    expect(error).toMatchObject({ code: 'SUSPEND_NOT_ACKNOWLEDGED', step: 'acknowledge' })
    expect(await host.xenstore.read(`/local/domain/${domid}/control/shutdown`)).toBe('')
    expect((await xen.domainInfo(domid)).shutdownReason).toBeUndefined()
    expect(xenguest.runs.length).toBe(runs)
  })

  it('a guest that acknowledges but never suspends: TIMEOUT, and it runs on', async () => {
    const { xen, host, xenguest, domid } = await setup({ suspends: false })
    const error = await rejected(suspendDomain(xen, host.xenstore, domid, imagePath(), { xenguest, vm: vm(0), suspendedTimeoutMs: 100 }))
    expect(error.code).toBe('TIMEOUT')
    expect((await xen.domainInfo(domid)).shutdownReason).toBeUndefined()
  })

  it('a builder that fails after the guest suspended: its error, and the guest resumed', async () => {
    const { xen, host, xenguest, domid } = await setup()
    const failing: XenguestRunner = {
      supports: (feature) => xenguest.supports(feature),
      run: async (args, options) => {
        const result = await xenguest.run(args, options)
        if (args.includes('save')) throw new XenDomainBuildError('ENOSPC', 'write failed: disk full', { errno: 28, operation: 'write' })
        return result
      },
    }
    const events: SuspendEvent[] = []
    const error = await rejected(
      suspendDomain(xen, host.xenstore, domid, imagePath(), { xenguest: failing, vm: vm(0), onEvent: (e) => events.push(e) }),
    )
    expect(error.code).toBe('ENOSPC')
    expect((await xen.domainInfo(domid)).shutdownReason).toBeUndefined()
    expect(events.at(-1)).toMatchObject({ type: 'suspend.failed', code: 'ENOSPC', resumed: true })
    expect(xenguest.runs.at(-1)).toContain('resume')
  })

  it('a cancelled suspend: ABORTED, the guest running', async () => {
    const { xen, host, domid, sim } = await setup()
    const slow = new SimulatedXenguest(sim, { builderMs: 2000 })
    const controller = new AbortController()
    const suspending = suspendDomain(xen, host.xenstore, domid, imagePath(), {
      xenguest: slow,
      vm: vm(0),
      signal: controller.signal,
      onEvent: (e) => e.type === 'suspend.suspended' && controller.abort(new Error('operator')),
    })
    expect((await rejected(suspending)).code).toBe('ABORTED')
    expect((await xen.domainInfo(domid)).shutdownReason).toBeUndefined()
  })

  it('a cancellation just after the guest took the request, unseen: the guest suspends by itself, and is resumed', async () => {
    const { sim, xen, host, xenguest, domid, guest } = await setup({ acknowledges: false })
    await guest.stop()
    const key = `/local/domain/${domid}/control/shutdown`
    const controller = new AbortController()
    let taken = false
    // The toolstack's look sees the request still there; the guest then takes it and the caller cancels, before the next look.
    const xenstore = new Proxy(host.xenstore, {
      get(store, property) {
        if (property !== 'read') {
          const value = Reflect.get(store, property, store)
          return typeof value === 'function' ? value.bind(store) : value
        }
        return async (path: string) => {
          const value = await store.read(path)
          if (path === key && value === 'suspend' && !taken) {
            taken = true
            await store.write(key, '')
            controller.abort(new Error('operator'))
            await sim.shutdownDomain(domid, 'suspend')
          }
          return value
        }
      },
    })
    const events: SuspendEvent[] = []
    const error = await rejected(
      suspendDomain(xen, xenstore, domid, imagePath(), { xenguest, vm: vm(0), signal: controller.signal, onEvent: (e) => events.push(e) }),
    )
    expect(taken).toBe(true)
    expect(error.code).toBe('ABORTED')
    expect(events.at(-1)).toMatchObject({ type: 'suspend.failed', resumed: true })
    expect((await xen.domainInfo(domid)).shutdownReason).toBeUndefined()
  })

  it('refuses bad input before it asks the guest anything', async () => {
    const { xen, host, xenguest, domid } = await setup()
    for (const [output, options] of [
      [-1, { xenguest, vm: vm(0) }],
      ['', { xenguest, vm: vm(0) }],
      [imagePath(), { xenguest: {} as XenguestRunner, vm: vm(0) }],
      [imagePath(), { xenguest, vm: { ...vm(0), type: 'hvm' as const } }],
    ] as const) {
      expect((await rejected(suspendDomain(xen, host.xenstore, domid, output, options))).code).toBe('INVALID_ARGUMENT')
    }
    expect(await host.xenstore.read(`/local/domain/${domid}/control/shutdown`)).toBeNull()
  })

  it('a restore from an image that is not one fails before the claim, and one cut short releases it', async () => {
    const { sim, xen, host, xenguest, domid } = await setup()
    const path = imagePath()
    await suspendDomain(xen, host.xenstore, domid, path, { xenguest, vm: vm(0) })
    await xen.destroyDomain(domid)

    const junk = imagePath()
    writeFileSync(junk, 'not an image at all')
    const first = await createDomain(xen, host.xenstore, { type: 'pv', maxVcpus: 1, name: 'junk' })
    expect(await rejected(restoreDomain(host, first, vm(), junk, { xenguest }))).toMatchObject({
      code: 'INVALID_SUSPEND_IMAGE',
      step: 'image_header',
    })
    expect(sim.domainPagesByNode(first).every((p) => p === 0)).toBe(true)

    // Cut inside the stream: the builder fails, the claim goes.
    truncateSync(path, readFileSync(path).length - 24)
    const second = await createDomain(xen, host.xenstore, { type: 'pv', maxVcpus: 1, name: 'cut' })
    expect((await rejected(restoreDomain(host, second, vm(), path, { xenguest }))).code).toBe('XENGUEST_FAILED')
    expect((await xen.domainInfo(second)).outstandingPages).toBe(0)
    expect((await xen.physinfo()).outstandingPages).toBe(0)
    await xen.destroyDomain(second)
    expect(await rejected(restoreDomain(host, first, { ...vm(), type: 'pvh' }, path, { xenguest }))).toMatchObject({
      code: 'INVALID_ARGUMENT',
    })
  })
})

describe('migrateDomain on the simulated host', () => {
  it('moves a running guest into another domain over a pipe: the target runs, the source is gone, the pause measured', async () => {
    const { sim, xen, host, xenguest, domid } = await setup()
    const sourcePages = total(sim.domainPagesByNode(domid))
    const target = await createDomain(xen, host.xenstore, { type: 'pv', maxVcpus: 1, name: 'migrated' })
    const migrated = await migrateDomain(host, domid, target, { xenguest, vm: vm(1) })
    expect(migrated.pausedMs).toBeGreaterThanOrEqual(0)
    expect(migrated.pausedMs).toBeLessThanOrEqual(migrated.totalMs)
    expect(total(sim.domainPagesByNode(target))).toBe(sourcePages)
    expect(sim.domainPagesByNode(target)[1]).toBe(sourcePages)
    expect((await xen.domainInfo(target)).paused).toBe(false)
    expect((await rejected(xen.domainInfo(domid))).code).toBe('ESRCH')
  })

  it('a source that cannot be suspended runs on, and the target restore fails without a claim', async () => {
    const { xen, host, xenguest, domid } = await setup({ acknowledges: false })
    const target = await createDomain(xen, host.xenstore, { type: 'pv', maxVcpus: 1, name: 'never' })
    const error = await rejected(migrateDomain(host, domid, target, { xenguest, vm: vm(1), ackTimeoutMs: 100 }))
    expect(error.code).toBe('SUSPEND_NOT_ACKNOWLEDGED')
    expect((await xen.domainInfo(domid)).shutdownReason).toBeUndefined()
    expect((await xen.physinfo()).outstandingPages).toBe(0)
  })
})
