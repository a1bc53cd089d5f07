// The mass start's hard cases on the simulated host, each named by what Xen
// does: the builder populates early and runs on (so Xen counts a build's
// memory before the builder exits), a node pinned with -mem_pnode runs out
// half-way, and a build that finds no room waits outside the placement lock.
import { describe, expect, it } from 'vitest'
import { buildDomain, type DomainBuildEvent } from '../ts/build.js'
import { BuildHost, type Accounting } from '../ts/host.js'
import { simulateHost } from '../ts/index.js'
import { SimulatedXenguest } from '../ts/sim-xenguest.js'
import { rejected } from './helpers.js'

const MIB_KIB = 1024
const MIB_PAGES = 256

/** The real-Xen test machine (2 nodes of 1 GiB, no node claims), with node 1 mostly taken. */
async function twoNodes(accounting: Accounting = 'in-flight', node1TakenMib = 800) {
  const sim = simulateHost({ preset: 'qemu-2-node' })
  const xen = sim.hypervisor()
  const hog = await xen.createDomain({ kind: 'pv', maxVcpus: 1 })
  await xen.setMaxMemoryKib(hog, 1024 * MIB_KIB)
  await sim.populate(hog, node1TakenMib * MIB_PAGES, 1)
  const host = await BuildHost.create(xen, { accounting })
  const events: DomainBuildEvent[] = []
  const build = async (sizeMib: number, xenguest: SimulatedXenguest, signal?: AbortSignal) => {
    const domid = await xen.createDomain({ kind: 'pv', maxVcpus: 1 })
    const vm = { type: 'pv' as const, staticMaxKib: sizeMib * MIB_KIB, targetKib: sizeMib * MIB_KIB, vcpus: 1 }
    const built = buildDomain(host, domid, vm, { xenguest, image: 'vmlinuz', signal, onEvent: (e) => events.push(e) })
    return { domid, built }
  }
  return { sim, xen, host, events, build }
}

describe('a build whose memory Xen already counts', () => {
  it('promises nothing more once populated, though its builder still runs', async () => {
    const t = await twoNodes()
    // A populates 500 MiB on node 0 at 20% of a 2 s run, then runs on.
    const slow = new SimulatedXenguest(t.sim, { builderMs: 2000, populateAtShare: 0.2 })
    const a = await t.build(500, slow)
    let aDone = false
    void a.built.then(() => (aDone = true))
    while (t.sim.domainPagesByNode(a.domid)[0] === 0) await new Promise((r) => setTimeout(r, 10))
    // Node 0 now has about 520 MiB free and node 1 about 220 MiB. Counting
    // A's 500 MiB again would leave node 0 no room for B.
    const b = await t.build(400, new SimulatedXenguest(t.sim, { builderMs: 1 }))
    const builtB = await b.built
    expect(aDone).toBe(false)
    expect(builtB.placement).toMatchObject({ plan: { nodes: [0] }, node: 0 })
    expect(builtB.placement.waitedForInFlightMs).toBeUndefined()
    expect(t.sim.domainPagesByNode(b.domid)[1]).toBe(0)
    await a.built
    expect(t.sim.domainPagesByNode(a.domid)[1]).toBe(0)
    expect(t.host.ledger.openCount).toBe(0)
  })
})

describe('-mem_pnode is given only for a node that holds the VM after every build in flight', () => {
  it("with xenopsd's accounting, builds planned on the same node are not pinned, and do not fail half-way", async () => {
    const t = await twoNodes('xenopsd', 800)
    const slow = new SimulatedXenguest(t.sim, { builderMs: 400, populateAtShare: 0.5 })
    // xenopsd's accounting sees no promise: both plan on node 0 (1 GiB free),
    // which holds one. Pinned, the one that populates second would fail
    // half-way; soft affinity alone lets it spill instead (xenopsd's race, kept).
    const first = await t.build(600, slow)
    const second = await t.build(600, slow)
    const [a, b] = await Promise.all([first.built, second.built])
    for (const built of [a, b]) {
      expect(built.placement).toMatchObject({ plan: { nodes: [0] }, node: null })
      expect(built.placement.reason).toMatch(/not pinned/)
    }
    const pages = [first, second].map((g) => t.sim.domainPagesByNode(g.domid))
    expect(pages.map((p) => p.reduce((x, y) => x + y, 0))).toEqual([600 * MIB_PAGES, 600 * MIB_PAGES])
    expect(pages.some((p) => (p[1] ?? 0) > 0)).toBe(true)
  })

  it('with in-flight accounting, the second is planned elsewhere, and both are pinned', async () => {
    const t = await twoNodes('in-flight', 400)
    const slow = new SimulatedXenguest(t.sim, { builderMs: 400, populateAtShare: 0.5 })
    const first = await t.build(600, slow)
    const second = await t.build(600, slow)
    const [a, b] = await Promise.all([first.built, second.built])
    expect(a.placement).toMatchObject({ plan: { nodes: [0] }, node: 0 })
    expect(b.placement).toMatchObject({ plan: { nodes: [1] }, node: 1 })
  })

  it('a builder pinned to a node that runs out fails half-way (what the rule prevents)', async () => {
    const sim = simulateHost({ preset: 'qemu-2-node' })
    const xen = sim.hypervisor()
    const d = await xen.createDomain({ kind: 'pv', maxVcpus: 1 })
    await xen.setMaxMemoryKib(d, 2048 * MIB_KIB)
    const failed = await rejected(sim.populate(d, 1500 * MIB_PAGES, 0))
    expect(failed.code).toBe('ENOMEM')
    // What it took before the node ran out stays with the domain.
    expect(sim.domainPagesByNode(d)).toEqual([1024 * MIB_PAGES, 0])
  })
})

describe('a build that finds no node set', () => {
  it('waits outside the placement lock, and is planned again when a promise in its way drops', async () => {
    const t = await twoNodes('in-flight', 800)
    // A: 700 MiB promised on node 0, its builder slow to populate.
    const slow = new SimulatedXenguest(t.sim, { builderMs: 4000, populateAtShare: 0.9 })
    const cancelA = new AbortController()
    const a = await t.build(700, slow, cancelA.signal)
    const aFailed = a.built.catch((e: unknown) => e)
    while (t.host.ledger.buildsInFlight === 0) await new Promise((r) => setTimeout(r, 5))
    // B (600 MiB) fits no node while A's promise stands: it waits for A.
    const b = await t.build(600, new SimulatedXenguest(t.sim, { builderMs: 1 }))
    while (!t.events.some((e) => e.type === 'placement.wait')) await new Promise((r) => setTimeout(r, 5))
    const wait = t.events.find((e) => e.type === 'placement.wait')
    expect(wait).toMatchObject({ domid: b.domid, reason: 'no node set fits', forDomids: [a.domid] })
    // Meanwhile C (100 MiB) is placed: the lock is not held by B's wait.
    const c = await t.build(100, new SimulatedXenguest(t.sim, { builderMs: 1 }))
    expect((await c.built).placement.plan?.nodes).toEqual([1])
    // A is cancelled: its promise drops, B is planned again and gets node 0.
    cancelA.abort()
    expect(await aFailed).toMatchObject({ code: 'ABORTED' })
    const builtB = await b.built
    expect(builtB.placement).toMatchObject({ plan: { nodes: [0] }, node: 0 })
    expect(builtB.placement.waitedForInFlightMs).toBeGreaterThan(0)
    expect(t.sim.domainPagesByNode(b.domid)[1]).toBe(0)
  })

  it('waits no longer than the limit; the host then is full, and the build fails before any page', async () => {
    const sim = simulateHost({ preset: 'qemu-2-node' })
    const xen = sim.hypervisor()
    const host = await BuildHost.create(xen, { placementWaitMs: 50 })
    const events: DomainBuildEvent[] = []
    const make = async (sizeMib: number, xenguest: SimulatedXenguest) => {
      const domid = await xen.createDomain({ kind: 'pv', maxVcpus: 1 })
      const vm = { type: 'pv' as const, staticMaxKib: sizeMib * MIB_KIB, targetKib: sizeMib * MIB_KIB, vcpus: 1 }
      return { domid, built: buildDomain(host, domid, vm, { xenguest, image: 'k', onEvent: (e) => events.push(e) }) }
    }
    // Two 700 MiB builds take both nodes, populating late in a 3 s run.
    const late = new SimulatedXenguest(sim, { builderMs: 3000, populateAtShare: 0.99 })
    const first = await make(700, late)
    const second = await make(700, late)
    while (host.ledger.buildsInFlight < 2) await new Promise((r) => setTimeout(r, 5))
    // A third of 700 MiB fits no node set while their promises stand: it
    // waits its 50 ms, then the host is full (ENOMEM, before any page).
    const third = await make(700, new SimulatedXenguest(sim, { builderMs: 1 }))
    expect(await rejected(third.built)).toMatchObject({ code: 'ENOMEM', step: 'numa_placement' })
    expect(events.filter((e) => e.type === 'placement.wait' && e.domid === third.domid).length).toBeGreaterThan(0)
    expect(sim.domainPagesByNode(third.domid)).toEqual([0, 0])
    await Promise.all([first.built, second.built])
  })
})
