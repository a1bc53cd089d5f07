import { describe, expect, it } from 'vitest'
import { BuildHost, type BuildHostOptions } from '../ts/host.js'
import { buildPre, parseTimerMode, type BuildEvent, type VmConfig } from '../ts/build-pre.js'
import { simulateHost, type Hypervisor, type SimulatedHost } from '../ts/index.js'
import { InMemoryXenstore } from '../ts/xenstore-memory.js'
import { XenDomainBuildError } from '../ts/errors.js'
import { recording, type Call, rejected } from './helpers.js'

const MIB_PAGES = 256
const GIB_KIB = 1024 * 1024

interface Setup {
  sim: SimulatedHost
  xen: Hypervisor
  host: BuildHost
  calls: Call[]
  xenstore: InMemoryXenstore
  domain(type: 'hvm' | 'pv' | 'pvh', vcpus: number): Promise<number>
}

async function setup(preset: string, simOptions: object = {}, hostOptions: BuildHostOptions = {}): Promise<Setup> {
  const sim = simulateHost({ preset, ...simOptions })
  const { xen, calls } = recording(sim.hypervisor())
  const xenstore = new InMemoryXenstore()
  const host = await BuildHost.create(xen, { xenstore, ...hostOptions })
  const domain = async (type: 'hvm' | 'pv' | 'pvh', vcpus: number) => {
    const domid = await sim.hypervisor().createDomain({ kind: type, maxVcpus: vcpus })
    calls.length = 0
    return domid
  }
  return { sim, xen, host, calls, xenstore, domain }
}

const hvm = (vcpus: number, gib: number, extra: Partial<VmConfig> = {}): VmConfig => ({
  type: 'hvm',
  staticMaxKib: gib * GIB_KIB,
  targetKib: gib * GIB_KIB,
  videoMib: 8,
  vcpus,
  ...extra,
})

describe('buildPre', () => {
  it('makes each step, in order, with its arguments (HVM, node claim)', async () => {
    const t = await setup('two-socket-4-node')
    const domid = await t.domain('hvm', 2)
    await t.xenstore.write(`/local/domain/${domid}/platform/timer_mode`, '1')
    const result = await buildPre(t.host, domid, hvm(2, 2))
    const m = result.memory
    expect(m).toMatchObject({ xenMaxMib: 2049, shadowMib: 18, buildStartMib: 2040 })
    const cpus = [0, 1, 2, 3]
    expect(t.calls).toEqual([
      ['domainInfo', domid],
      ['setHvmParam', domid, 10, 1],
      ['setMaxVcpus', domid, 2],
      ['setMaxMemoryKib', domid, 2049 * 1024],
      ['setShadowAllocationMib', domid, 18],
      ['claimPagesOnNode', domid, 0, 2040 * MIB_PAGES],
      ['setVcpuAffinity', domid, 0, { soft: cpus }],
      ['setVcpuAffinity', domid, 1, { soft: cpus }],
      ['allocUnboundEvtchn', domid, 0],
      ['allocUnboundEvtchn', domid, 0],
    ])
    expect(result).toMatchObject({ storePort: 1, consolePort: 2 })
    expect(result.placement).toMatchObject({ claim: 'node', node: 0, affinity: 'soft', plan: { nodes: [0] } })
    expect(t.sim.nodePages()[0]?.claimedPages).toBe(2040 * MIB_PAGES)
    expect(Object.keys(result.timingsMs)).toContain('numa_placement')
  })

  it('sets the PV memmap limit to xen_max and ignores a timer mode', async () => {
    const t = await setup('qemu-2-node', { shadowPaging: true })
    const domid = await t.domain('pv', 1)
    await t.xenstore.write(`/local/domain/${domid}/platform/timer_mode`, '2')
    const events: string[] = []
    await buildPre(
      t.host,
      domid,
      { type: 'pv', staticMaxKib: 512 * 1024, targetKib: 256 * 1024, vcpus: 1 },
      {
        onEvent: (e) => e.type === 'info' && events.push(e.message),
      },
    )
    expect(t.calls.map((c) => c[0])).not.toContain('setHvmParam')
    expect(t.calls).toContainEqual(['setMemmapLimit', domid, 512 * 1024])
    expect(events).toEqual(['timer_mode 2 ignored for this pv domain'])
    // shadow = ceil((256 + 2 × 512) / 256) = 5 MiB
    expect(t.calls).toContainEqual(['setShadowAllocationMib', domid, 5])
  })

  it('gives a PV domain no shadow pool on a Xen without shadow paging (Debian 4.17)', async () => {
    const t = await setup('qemu-2-node')
    const domid = await t.domain('pv', 1)
    const events: string[] = []
    await buildPre(
      t.host,
      domid,
      { type: 'pv', staticMaxKib: 512 * 1024, targetKib: 256 * 1024, vcpus: 1 },
      {
        onEvent: (e) => e.type === 'info' && events.push(e.message),
      },
    )
    expect(t.calls.map((c) => c[0])).not.toContain('setShadowAllocationMib')
    expect(events).toEqual(['no shadow paging on this Xen: a PV domain gets no shadow pool'])
  })

  it('ignores a timer mode that is not an integer, as xenopsd does', async () => {
    expect([parseTimerMode('0x2'), parseTimerMode('1_0'), parseTimerMode(' 1'), parseTimerMode('one'), parseTimerMode(null)]).toEqual([
      2,
      10,
      null,
      null,
      null,
    ])
    const t = await setup('qemu-2-node')
    const domid = await t.domain('hvm', 1)
    await t.xenstore.write(`/local/domain/${domid}/platform/timer_mode`, 'fast')
    await buildPre(t.host, domid, hvm(1, 1))
    expect(t.calls.map((c) => c[0])).not.toContain('setHvmParam')
  })

  it('ignores a timer mode it cannot read, whatever the error, as xenopsd does', async () => {
    const sim = simulateHost({ preset: 'qemu-2-node' })
    const { xen, calls } = recording(sim.hypervisor())
    // A store whose xenstored refuses the read (EACCES), as a stale permission would.
    const xenstore = new (class extends InMemoryXenstore {
      override async read(path: string): Promise<string | null> {
        if (path.endsWith('/platform/timer_mode'))
          throw new XenDomainBuildError('EACCES', 'xs_read failed: EACCES', { errno: 13, operation: 'xs_read' })
        return super.read(path)
      }
    })()
    const host = await BuildHost.create(xen, { xenstore })
    const domid = await sim.hypervisor().createDomain({ kind: 'hvm', maxVcpus: 1 })
    const events: BuildEvent[] = []
    const pre = await buildPre(host, domid, hvm(1, 1), { onEvent: (e) => events.push(e) })
    expect(calls.map((c) => c[0])).not.toContain('setHvmParam')
    expect(events).toContainEqual({
      type: 'info',
      domid,
      message: `/local/domain/${domid}/platform/timer_mode unreadable (EACCES): no timer mode set, as xenopsd`,
    })
    await pre.release()
  })

  it('drops CPUs the host lacks and masks beyond the vCPUs from hard affinity, as xenopsd', async () => {
    const t = await setup('qemu-2-node')
    const domid = await t.domain('hvm', 2)
    const events: BuildEvent[] = []
    const pre = await buildPre(t.host, domid, hvm(2, 1, { hardAffinity: [[1, 9], [-1, 3], [2]] }), { onEvent: (e) => events.push(e) })
    expect(t.calls.filter((c) => c[0] === 'setVcpuAffinity')).toEqual([
      ['setVcpuAffinity', domid, 0, { hard: [1] }],
      ['setVcpuAffinity', domid, 1, { hard: [3] }],
    ])
    expect(events.filter((e) => e.type === 'info').map((e) => (e as { message: string }).message)).toEqual([
      'hard affinity: dropped 1 mask(s) beyond the 2 vCPU(s), as xenopsd',
      'hard affinity: dropped CPU(s) 9 from mask 0 (not on this host), as xenopsd',
      'hard affinity: dropped CPU(s) -1 from mask 1 (not on this host), as xenopsd',
    ])
    await pre.release()
  })

  it('applies hard affinity, the first mask serving vCPUs without one, and skips NUMA placement', async () => {
    const t = await setup('two-socket-4-node')
    const domid = await t.domain('hvm', 3)
    const result = await buildPre(t.host, domid, hvm(3, 1, { hardAffinity: [[4, 5], [6]] }))
    expect(t.calls.filter((c) => c[0] === 'setVcpuAffinity')).toEqual([
      ['setVcpuAffinity', domid, 0, { hard: [4, 5] }],
      ['setVcpuAffinity', domid, 1, { hard: [6] }],
      ['setVcpuAffinity', domid, 2, { hard: [4, 5] }],
    ])
    // xenopsd returns before any claim for a VM with hard affinity.
    expect(result.placement).toMatchObject({ plan: null, claim: 'none', reason: 'the VM has hard affinity' })
    expect(t.calls.map((c) => c[0])).not.toContain('claimPages')
    expect((await t.xen.domainInfo(domid)).outstandingPages).toBe(0)
    // Its memory goes where its hard affinity is (CPUs 4-6 are node 1's): the ledger counts it there.
    expect(result.placement.promisedBytesByNode).toEqual([0, result.memory.buildClaimPages * 4096, 0, 0])
  })

  it('makes a host-wide claim for hard affinity and policy any only when asked (alwaysClaim)', async () => {
    for (const numaPolicy of ['any', 'best_effort'] as const) {
      const t = await setup('two-socket-4-node', {}, { numaPolicy, alwaysClaim: true })
      const domid = await t.domain('hvm', 1)
      const vm = numaPolicy === 'any' ? hvm(1, 1) : hvm(1, 1, { hardAffinity: [[4]] })
      const result = await buildPre(t.host, domid, vm)
      expect(result.placement, numaPolicy).toMatchObject({ plan: null, claim: 'host' })
      expect(t.calls, numaPolicy).toContainEqual(['claimPages', domid, result.memory.buildClaimPages])
    }
  })

  it('builds a VM with more vCPUs than the host has CPUs, as Xen and xenopsd allow', async () => {
    const t = await setup('qemu-2-node')
    const domid = await t.domain('hvm', 6)
    const result = await buildPre(t.host, domid, hvm(6, 1))
    // No node set has 6 CPUs: no placement, a host-wide claim.
    expect(result.placement).toMatchObject({ plan: null, claim: 'host', reason: 'no node set fits' })
    expect(t.calls).toContainEqual(['setMaxVcpus', domid, 6])
  })

  it('falls back to a host-wide claim when node memory cannot be read, as xenopsd does', async () => {
    const t = await setup('two-socket-4-node')
    t.sim.injectFault({ operation: 'xc_numainfo', errno: 'EIO', mode: 'once' })
    const domid = await t.domain('hvm', 1)
    const result = await buildPre(t.host, domid, hvm(1, 1))
    expect(result.placement).toMatchObject({ plan: null, affinity: null, claim: 'host', reason: 'node memory unavailable (EIO)' })
    expect((await t.xen.domainInfo(domid)).outstandingPages).toBe(result.memory.buildClaimPages)
  })

  it('fails on a negative timer mode, as xenopsd (whose Xen refuses it) does', async () => {
    const t = await setup('qemu-2-node')
    const domid = await t.domain('hvm', 1)
    await t.xenstore.write(`/local/domain/${domid}/platform/timer_mode`, '-1')
    const error = await rejected(buildPre(t.host, domid, hvm(1, 1)))
    expect(error).toMatchObject({ code: 'INVALID_ARGUMENT', step: 'timer_mode', domid })
    expect(error.message).toContain('platform/timer_mode: -1 is not a timer mode')
    expect(t.calls.map((c) => c[0])).not.toContain('setHvmParam')
  })

  it('uses a shadow multiplier of 1.0 for PV whatever the VM says, as xenopsd', async () => {
    const t = await setup('qemu-2-node', { shadowPaging: true })
    const domid = await t.domain('pv', 1)
    const events: string[] = []
    const result = await buildPre(
      t.host,
      domid,
      { type: 'pv', staticMaxKib: 512 * 1024, targetKib: 512 * 1024, vcpus: 1, shadowMultiplier: 4 },
      {
        onEvent: (e) => e.type === 'info' && events.push(e.message),
      },
    )
    expect(result.memory.shadowMib).toBe(5)
    expect(t.calls).toContainEqual(['setShadowAllocationMib', domid, 5])
    expect(events).toContain('shadowMultiplier 4 ignored for a PV guest (1.0, as xenopsd)')
  })

  it.each([
    ['any', { plan: null, affinity: null, claim: 'none', node: null }],
    ['best_effort', { plan: { nodes: [0, 1] }, affinity: 'soft', claim: 'host', node: null }],
    ['best_effort_hard', { plan: { nodes: [0, 1] }, affinity: 'hard', claim: 'host', node: null }],
    ['prio_mem_only', { plan: { nodes: [0] }, affinity: 'soft', claim: 'node', node: 0 }],
  ] as const)('policy %s', async (numaPolicy, expected) => {
    // 4 vCPUs on nodes of 4 CPUs and 2 cores: asking for 4 cores needs two nodes.
    const t = await setup('amd-opteron-6272', {}, { numaPolicy })
    const domid = await t.domain('hvm', 4)
    const result = await buildPre(t.host, domid, hvm(4, 1))
    expect(result.placement).toMatchObject(expected)
    const affinities = t.calls.filter((c) => c[0] === 'setVcpuAffinity')
    expect(affinities).toHaveLength(expected.affinity === null ? 0 : 4)
    if (expected.affinity !== null) expect(affinities[0]?.[3]).toEqual({ [expected.affinity]: result.placement.plan?.cpus })
  })

  describe('claims', () => {
    it('a node claim that meets ENOMEM gives up the node placement', async () => {
      const t = await setup('two-socket-4-node')
      t.sim.injectFault({ operation: 'claim_pages_on_node', errno: 'ENOMEM', mode: 'once' })
      const domid = await t.domain('hvm', 1)
      const result = await buildPre(t.host, domid, hvm(1, 1))
      expect(result.placement).toMatchObject({ claim: 'host', node: null, affinity: null, reason: 'node 0 claim: ENOMEM' })
      expect(t.calls.map((c) => c[0])).not.toContain('setVcpuAffinity')
    })

    it('without node claims (ENOSYS): affinity to the node, and a host-wide claim', async () => {
      const t = await setup('two-socket-4-node', { nodeClaims: false })
      const domid = await t.domain('hvm', 1)
      const result = await buildPre(t.host, domid, hvm(1, 1))
      expect(result.placement).toMatchObject({ claim: 'host', node: null, affinity: 'soft', plan: { nodes: [0] } })
      expect(t.calls).toContainEqual(['setVcpuAffinity', domid, 0, { soft: [0, 1, 2, 3] }])
      expect((await t.xen.domainInfo(domid)).outstandingPages).toBe(result.memory.buildClaimPages)
    })

    it('a multi-node plan sets affinity to its CPUs and claims host-wide', async () => {
      const t = await setup('two-socket-4-node')
      const domid = await t.domain('hvm', 2)
      const result = await buildPre(t.host, domid, hvm(2, 20))
      expect(result.placement).toMatchObject({ claim: 'host', plan: { nodes: [0, 1] }, affinity: 'soft' })
      expect(t.calls.map((c) => c[0])).not.toContain('claimPagesOnNode')
    })

    it('a host-wide claim that meets ENOMEM fails the build', async () => {
      const t = await setup('qemu-2-node', {}, { numaPolicy: 'any', alwaysClaim: true })
      t.sim.injectFault({ operation: 'xc_domain_claim_pages', errno: 'ENOMEM', mode: 'once' })
      const domid = await t.domain('hvm', 1)
      const error = await rejected(buildPre(t.host, domid, hvm(1, 1)))
      expect(error).toMatchObject({ code: 'ENOMEM', errno: 12, step: 'numa_placement', domid, operation: 'xc_domain_claim_pages' })
      expect(error.message).toMatch(new RegExp(`^domain ${domid}: numa_placement: `))
    })

    it('any other claim error means claims are unsupported: the build goes on', async () => {
      const t = await setup('qemu-2-node', {}, { numaPolicy: 'any', alwaysClaim: true })
      t.sim.injectFault({ operation: 'xc_domain_claim_pages', errno: 'EOPNOTSUPP', mode: 'always' })
      const domid = await t.domain('hvm', 1)
      const result = await buildPre(t.host, domid, hvm(1, 1))
      expect(result.placement.claim).toBe('unsupported')
    })

    it('a claim is released when a later step fails', async () => {
      const t = await setup('two-socket-4-node')
      t.sim.injectFault({ operation: 'xc_evtchn_alloc_unbound', errno: 'ENOSPC', mode: 'always' })
      const domid = await t.domain('hvm', 1)
      const error = await rejected(buildPre(t.host, domid, hvm(1, 1)))
      expect(error).toMatchObject({ code: 'ENOSPC', step: 'event_channels' })
      expect((await t.xen.physinfo()).outstandingPages).toBe(0)
      expect(t.sim.nodePages().map((n) => n.claimedPages)).toEqual([0, 0, 0, 0])
      expect(t.host.buildsInFlight).toBe(0)
    })

    it('a claim release that fails is retried, and said in an event if it never succeeds', async () => {
      for (const mode of ['once', 'always'] as const) {
        const t = await setup('two-socket-4-node', { nodeClaims: false })
        t.sim.injectFault({ operation: 'xc_evtchn_alloc_unbound', errno: 'ENOSPC', mode: 'always' })
        const domid = await t.domain('hvm', 1)
        const events: BuildEvent[] = []
        const build = buildPre(t.host, domid, hvm(1, 1), {
          onEvent: (e) => {
            events.push(e)
            // The claim is made: from now on releasing it fails.
            if (e.type === 'numa.placement') t.sim.injectFault({ operation: 'xc_domain_claim_pages', errno: 'EIO', mode })
          },
        })
        expect(await rejected(build)).toMatchObject({ code: 'ENOSPC', step: 'event_channels' })
        const failed = events.filter((e) => e.type === 'claim.release.failed')
        if (mode === 'once') {
          // The retry released it.
          expect(failed).toEqual([])
          expect((await t.xen.domainInfo(domid)).outstandingPages).toBe(0)
        } else {
          expect(failed).toEqual([{ type: 'claim.release.failed', domid, attempts: 4, error: expect.objectContaining({ code: 'EIO' }) }])
          expect((await t.xen.domainInfo(domid)).outstandingPages).toBeGreaterThan(0)
        }
      }
    })

    it('a claim is released when the build is cancelled after it', async () => {
      const t = await setup('two-socket-4-node')
      t.sim.injectFault({ operation: 'xc_evtchn_alloc_unbound', mode: 'never', latencyMs: 200 })
      const domid = await t.domain('hvm', 1)
      const controller = new AbortController()
      const build = buildPre(t.host, domid, hvm(1, 1), {
        signal: controller.signal,
        onEvent: (e) => e.type === 'numa.placement' && controller.abort(),
      })
      const error = await rejected(build)
      expect(error).toMatchObject({ code: 'ABORTED', step: 'event_channels', domid })
      expect((await t.xen.physinfo()).outstandingPages).toBe(0)
      expect(t.sim.nodePages()[0]?.claimedPages).toBe(0)
    })
  })

  describe('waiting for free memory', () => {
    /** Fills the host with a domain, then destroys it: its memory goes to the scrubber. */
    async function dirty(t: Setup, pages: number) {
      const xen = t.sim.hypervisor()
      const hog = await xen.createDomain({ kind: 'pv', maxVcpus: 1 })
      await xen.setMaxMemoryKib(hog, pages * 4)
      await t.sim.populate(hog, pages)
      await xen.destroyDomain(hog)
    }

    it('succeeds when the scrubber catches up', async () => {
      const t = await setup('qemu-2-node', { clock: 'manual', scrubPagesPerSecondPerNode: 1024 * MIB_PAGES, scrubReporting: 'xenserver' })
      await dirty(t, 2048 * MIB_PAGES)
      const domid = await t.domain('hvm', 1)
      const progress: number[] = []
      const build = buildPre(t.host, domid, hvm(1, 1), { onEvent: (e) => e.type === 'memory.wait' && progress.push(e.freeKib) })
      await new Promise((r) => setTimeout(r, 50))
      expect(progress).toEqual([0])
      t.sim.advanceClock(1000)
      const result = await build
      expect(result.timingsMs.wait_for_memory).toBeGreaterThan(0)
      // Progress while it waited; the poll that ends the wait is the step's end.
      expect(progress).toEqual([0])
    })

    it('fails at once when nothing is being scrubbed', async () => {
      const t = await setup('qemu-2-node')
      const xen = t.sim.hypervisor()
      const hog = await xen.createDomain({ kind: 'pv', maxVcpus: 1 })
      await xen.setMaxMemoryKib(hog, 2 * GIB_KIB)
      await t.sim.populate(hog, 1800 * MIB_PAGES)
      const domid = await t.domain('hvm', 1)
      // Required: target 1024 + overhead (1 + 1 + shadow 9 + 1) = 1036 MiB.
      const error = await rejected(buildPre(t.host, domid, hvm(1, 1)))
      expect(error).toMatchObject({
        code: 'NOT_ENOUGH_MEMORY',
        step: 'wait_for_memory',
        domid,
        requiredBytes: 1036 * 1024 * 1024,
        freeBytes: 248 * 1024 * 1024,
      })
      expect(error.message).toContain('nothing is being scrubbed')
      expect(t.calls.map((c) => c[0])).toEqual(['domainInfo'])
    })

    it('times out when the scrubber is too slow', async () => {
      const t = await setup('qemu-2-node', { clock: 'manual', scrubReporting: 'xenserver' })
      await dirty(t, 2048 * MIB_PAGES)
      const domid = await t.domain('hvm', 1)
      const error = await rejected(buildPre(t.host, domid, hvm(1, 1), { memoryTimeoutMs: 100 }))
      expect(error).toMatchObject({ code: 'NOT_ENOUGH_MEMORY', step: 'wait_for_memory' })
      expect(error.message).toMatch(/still, after \d+ ms/)
    })

    it('retries a transient physinfo failure instead of failing every waiting build', async () => {
      const t = await setup('qemu-2-node', { clock: 'manual', scrubPagesPerSecondPerNode: 1024 * MIB_PAGES, scrubReporting: 'xenserver' })
      await dirty(t, 2048 * MIB_PAGES)
      const domids = await Promise.all(Array.from({ length: 30 }, () => t.sim.hypervisor().createDomain({ kind: 'hvm', maxVcpus: 1 })))
      const builds = domids.map((domid) => buildPre(t.host, domid, hvm(1, 0.03125)))
      await new Promise((r) => setTimeout(r, 30))
      // One EAGAIN while they all wait: the shared watcher tries again.
      t.sim.injectFault({ operation: 'xc_physinfo', errno: 'EAGAIN', mode: 'once' })
      await new Promise((r) => setTimeout(r, 30))
      t.sim.advanceClock(1000)
      const results = await Promise.all(builds)
      expect(results).toHaveLength(30)
    })

    it('fails every waiting build at once on a physinfo failure that will not pass', async () => {
      const t = await setup('qemu-2-node', { clock: 'manual', scrubReporting: 'xenserver' })
      await dirty(t, 2048 * MIB_PAGES)
      const domid = await t.domain('hvm', 1)
      const build = buildPre(t.host, domid, hvm(1, 1))
      await new Promise((r) => setTimeout(r, 30))
      t.sim.injectFault({ operation: 'xc_physinfo', errno: 'EACCES', mode: 'always' })
      expect(await rejected(build)).toMatchObject({ code: 'EACCES', step: 'wait_for_memory' })
    })

    it('can be cancelled', async () => {
      const t = await setup('qemu-2-node', { clock: 'manual', scrubReporting: 'xenserver' })
      await dirty(t, 2048 * MIB_PAGES)
      const domid = await t.domain('hvm', 1)
      const controller = new AbortController()
      const build = buildPre(t.host, domid, hvm(1, 1), { signal: controller.signal })
      setTimeout(() => controller.abort(), 30)
      expect(await rejected(build)).toMatchObject({ code: 'ABORTED', step: 'wait_for_memory' })
    })
  })

  it('refuses bad VM settings before any hypercall', async () => {
    const t = await setup('qemu-2-node')
    const domid = await t.domain('hvm', 1)
    const bad: [number, VmConfig, string][] = [
      [domid, hvm(0, 1), 'vm.vcpus'],
      [domid, hvm(-1, 1), 'vm.vcpus'],
      [domid, hvm(1, 1, { targetKib: 2 * GIB_KIB }), 'vm.targetKib'],
      [domid, hvm(1, 1, { staticMaxKib: 2 ** 60 }), 'vm.staticMaxKib'],
      [domid, hvm(1, 1, { hardAffinity: [[7, -1]] }), 'vm.hardAffinity[0]'],
      [domid, hvm(1, 1, { hardAffinity: [[0.5]] }), 'vm.hardAffinity[0][0]'],
      [domid, hvm(1, 1, { hardAffinity: [[]] }), 'vm.hardAffinity[0]'],
      [0, hvm(1, 1), 'domid'],
      [1.5, hvm(1, 1), 'domid'],
    ]
    for (const [id, vm, field] of bad) {
      const error = await rejected(buildPre(t.host, id, vm))
      expect(error.code, field).toBe('INVALID_ARGUMENT')
      expect(error.message, field).toContain(field)
    }
    expect(t.calls).toEqual([])
  })

  it('a failing step names itself, its errno, the operation and the domain', async () => {
    const t = await setup('qemu-2-node')
    t.sim.injectFault({ operation: 'xc_domain_max_vcpus', errno: 'EINVAL', mode: 'once' })
    const domid = await t.domain('hvm', 1)
    const error = await rejected(buildPre(t.host, domid, hvm(1, 1)))
    expect(error).toMatchObject({ code: 'EINVAL', errno: 22, step: 'max_vcpus', domid, operation: 'xc_domain_max_vcpus' })
  })

  it('refuses a VM whose type is not the type of its domain', async () => {
    const t = await setup('qemu-2-node')
    const domid = await t.domain('pv', 1)
    expect(await rejected(buildPre(t.host, domid, hvm(1, 1)))).toMatchObject({ code: 'INVALID_ARGUMENT', step: 'domain_info' })
  })
})
