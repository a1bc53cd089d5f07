import { constants } from 'node:os'
import { describe, expect, it } from 'vitest'
import { fromNative } from '../ts/errors.js'
import {
  ERRNO_NAMES,
  NumaPlanner,
  openHypervisor,
  readHostTopology,
  simulateHost,
  simulatorPresets,
  type ShutdownReason,
  XenDomainBuildError,
} from '../ts/index.js'
import { cli, readJson, sharedData, rejected } from './helpers.js'

const GIB_PAGES = 262_144

describe('the simulated host through the binding', () => {
  it('answers every operation of the hypervisor interface', async () => {
    const sim = simulateHost({ preset: 'two-socket-4-node', clock: 'manual' })
    const xen = sim.hypervisor()
    expect(xen.simulated).toBe(true)
    expect(xen.version).toEqual({ major: 4, minor: 17 })
    const physinfo = await xen.physinfo()
    expect(physinfo).toMatchObject({ nrCpus: 16, nrNodes: 4, totalPages: 64 * GIB_PAGES, scrubPages: 0 })
    expect((await xen.numaInfo()).distances[0]).toEqual([10, 11, 21, 21])
    expect((await xen.cpuTopology()).cpus[4]).toEqual({ core: 2, socket: 0, node: 1 })

    const domid = await xen.createDomain({ kind: 'hvm', maxVcpus: 2 })
    await xen.setMaxVcpus(domid, 2)
    await xen.setMaxMemoryKib(domid, 4 * 1024 * 1024)
    await xen.setHvmParam(domid, 10, 1)
    await xen.setMemmapLimit(domid, 4 * 1024 * 1024)
    await xen.setShadowAllocationMib(domid, 9)
    expect(await xen.shadowAllocationMib(domid)).toBe(9)
    const effective = await xen.setVcpuAffinity(domid, 0, { hard: [0, 1, 2, 3, 4], soft: [4, 5] })
    expect(effective).toEqual({ hard: [0, 1, 2, 3, 4], soft: [4] })
    expect(await xen.vcpuAffinity(domid, 0)).toEqual({ hard: [0, 1, 2, 3, 4], soft: [4, 5] })
    await xen.claimPagesOnNode(domid, 1, GIB_PAGES)
    expect(sim.nodePages()[1]?.claimedPages).toBe(GIB_PAGES)
    expect(await xen.allocUnboundEvtchn(domid, 0)).toBe(1)
    expect(await xen.allocUnboundEvtchn(domid, 0)).toBe(2)
    await sim.populate(domid, GIB_PAGES)
    expect(sim.domainPagesByNode(domid)).toEqual([0, GIB_PAGES, 0, 0])
    expect(await xen.domainInfo(domid)).toMatchObject({ domid, hvm: true, totPages: GIB_PAGES, outstandingPages: 0 })
    await xen.claimPages(domid, 2 * GIB_PAGES)
    await xen.claimPages(domid, 0)
    await xen.destroyDomain(domid)
    expect(sim.domains()).toEqual([0])
    expect((await xen.physinfo()).scrubPages).toBe(GIB_PAGES + 9 * 256)
    sim.advanceClock(2000)
    expect((await xen.physinfo()).freePages).toBe(64 * GIB_PAGES)
  })

  it('reports why a domain shut down until it is resumed, and no reason before', async () => {
    const sim = simulateHost({ preset: 'qemu-2-node' })
    const xen = sim.hypervisor()
    const domid = await xen.createDomain({ kind: 'pv', maxVcpus: 1 })
    const fresh = await xen.domainInfo(domid)
    expect(Object.keys(fresh)).not.toContain('shutdownReason')
    expect(Object.keys(fresh)).not.toContain('shutdownCode')

    await sim.shutdownDomain(domid, 'suspend')
    expect(await xen.domainInfo(domid)).toMatchObject({ shutdownReason: 'suspend', shutdownCode: 2, paused: true })
    // Unpausing does not undo the shutdown; a second shutdown keeps the first reason.
    await xen.unpauseDomain(domid)
    await sim.shutdownDomain(domid, 'poweroff')
    expect(await xen.domainInfo(domid)).toMatchObject({ shutdownReason: 'suspend', shutdownCode: 2, paused: false })

    await sim.resumeDomain(domid)
    const resumed = await xen.domainInfo(domid)
    expect(Object.keys(resumed)).not.toContain('shutdownReason')
    expect(Object.keys(resumed)).not.toContain('shutdownCode')
    expect(resumed.paused).toBe(false)
  })

  it("names each of Xen's shutdown codes, and an unnamed one unknown", async () => {
    const sim = simulateHost({ preset: 'qemu-2-node' })
    const xen = sim.hypervisor()
    const given: (ShutdownReason | number)[] = ['poweroff', 'reboot', 'suspend', 'crash', 'watchdog', 'soft_reset', 3, 200]
    const seen: [unknown, unknown][] = []
    for (const reason of given) {
      const domid = await xen.createDomain({ kind: 'pv', maxVcpus: 1 })
      await sim.shutdownDomain(domid, reason)
      const info = await xen.domainInfo(domid)
      seen.push([info.shutdownReason, info.shutdownCode])
    }
    expect(seen).toEqual([
      ['poweroff', 0],
      ['reboot', 1],
      ['suspend', 2],
      ['crash', 3],
      ['watchdog', 4],
      ['soft_reset', 5],
      ['crash', 3],
      ['unknown', 200],
    ])
  })

  it('rejects a shutdown or resume of a missing domain, of domain 0, or with a reason Xen has no room for', async () => {
    const sim = simulateHost({ preset: 'qemu-2-node' })
    const xen = sim.hypervisor()
    expect(await rejected(sim.shutdownDomain(42, 'suspend'))).toMatchObject({ code: 'ESRCH', operation: 'xc_domain_shutdown' })
    expect(await rejected(sim.resumeDomain(42))).toMatchObject({ code: 'ESRCH', operation: 'xc_domain_resume' })
    expect(await rejected(sim.resumeDomain(0))).toMatchObject({ code: 'EINVAL', operation: 'xc_domain_resume' })
    expect(await rejected(sim.shutdownDomain(0, 'poweroff'))).toMatchObject({ code: 'EINVAL' })
    const domid = await xen.createDomain({ kind: 'pv', maxVcpus: 1 })
    const badName = await rejected(sim.shutdownDomain(domid, 'halt' as never))
    expect(badName).toMatchObject({ code: 'INVALID_ARGUMENT', message: expect.stringContaining('soft_reset') })
    expect(await rejected(sim.shutdownDomain(domid, 256))).toMatchObject({ code: 'INVALID_ARGUMENT' })
    // Refused before Xen: the domain has not shut down.
    expect(Object.keys(await xen.domainInfo(domid))).not.toContain('shutdownReason')
  })

  it('rejects a failed hypercall with the errno name, number and operation', async () => {
    const sim = simulateHost({ preset: 'qemu-2-node', nodeClaims: false })
    const xen = sim.hypervisor()
    const missing = await rejected(xen.domainInfo(42))
    expect(missing).toMatchObject({ code: 'ESRCH', errno: 3, operation: 'xc_domain_getinfolist' })
    const domid = await xen.createDomain({ kind: 'pv', maxVcpus: 1 })
    await xen.setMaxMemoryKib(domid, 1024 * 1024)
    expect(await rejected(xen.claimPagesOnNode(domid, 0, 1000))).toMatchObject({ code: 'ENOSYS', errno: 38 })
    expect(await rejected(xen.claimPages(domid, 2 * GIB_PAGES))).toMatchObject({ code: 'EINVAL', operation: 'xc_domain_claim_pages' })
    expect(await rejected(xen.setHvmParam(domid, 10, 1))).toMatchObject({ code: 'EINVAL', operation: 'xc_hvm_param_set' })
    expect(() => sim.domainPagesByNode(42)).toThrow(expect.objectContaining({ code: 'ESRCH' }))
  })

  it('injects faults by errno name or number', async () => {
    const sim = simulateHost({ preset: 'qemu-2-node' })
    const xen = sim.hypervisor()
    sim.injectFault({ operation: 'xc_physinfo', errno: 'EAGAIN', mode: 'once' })
    expect(await rejected(xen.physinfo())).toMatchObject({ code: 'EAGAIN', errno: 11, operation: 'xc_physinfo' })
    await xen.physinfo()
    sim.injectFault({ operation: 'xc_domain_create', errno: 12, mode: 'always' })
    expect((await rejected(xen.createDomain({ kind: 'pv', maxVcpus: 1 }))).code).toBe('ENOMEM')
    expect(() => sim.injectFault({ operation: 'x', errno: 'EWHAT', mode: 'once' })).toThrow(/not an errno name/)
    expect(() => sim.injectFault({ operation: 'x', mode: 'probability', probability: 2 })).toThrow(/probability/)
  })

  it('runs operations off the event loop', async () => {
    const sim = simulateHost({ preset: 'qemu-2-node' })
    sim.injectFault({ operation: 'xc_physinfo', mode: 'never', latencyMs: 100 })
    const events: string[] = []
    const pending = sim
      .hypervisor()
      .physinfo()
      .then(() => events.push('physinfo'))
    setImmediate(() => events.push('event loop'))
    await pending
    expect(events).toEqual(['event loop', 'physinfo'])
  })

  it('refuses bad values before any hypercall, always as a rejection', async () => {
    const xen = simulateHost({ preset: 'qemu-2-node' }).hypervisor()
    expect(await rejected(xen.claimPages(1, -1))).toMatchObject({ code: 'INVALID_ARGUMENT', message: expect.stringContaining('pages') })
    expect((await rejected(xen.domainInfo(1.5))).message).toMatch(/domid/)
    // napi-rs refuses the enum value before the call: still a rejection, still INVALID_ARGUMENT.
    const badKind = await rejected(xen.createDomain({ kind: 'xen' as never, maxVcpus: 1 }))
    expect(badKind).toMatchObject({ code: 'INVALID_ARGUMENT', message: expect.stringMatching(/kind|xen/) })
    expect((await rejected(xen.setVcpuAffinity(1, 0, {}))).message).toMatch(/hard, soft or both/)
    expect((await rejected(xen.domainInfo('one' as never))).code).toBe('INVALID_ARGUMENT')
    expect(() => simulateHost({ preset: 'nope' })).toThrow(expect.objectContaining({ code: 'INVALID_ARGUMENT' }))
    expect(() => simulateHost({ host: { distances: [[10]], cpus: [{ core: 0, socket: 0, node: 3 }], nodeMemoryBytes: [4096] } })).toThrow(
      /cpus\[0\]: node 3/,
    )
  })

  it('opens every supported Xen release, and refuses the others by name', async () => {
    for (const release of ['4.17', '4.18', '4.19', '4.20', '4.21', '4.22']) {
      const xen = simulateHost({ preset: 'qemu-2-node', xenVersion: release }).hypervisor()
      expect(`${xen.version.major}.${xen.version.minor}`).toBe(release)
      expect((await xen.physinfo()).nrNodes).toBe(2)
    }
    const newer = simulateHost({ preset: 'qemu-2-node', xenVersion: '4.23' })
    expect(() => newer.hypervisor()).toThrow(
      expect.objectContaining({
        code: 'XEN_VERSION_UNSUPPORTED',
        message: expect.stringContaining(
          'Xen 4.23 is newer than the newest release this version of xen-domain-build knows (supported: 4.17 to 4.22)',
        ),
      }),
    )
    const older = simulateHost({ preset: 'qemu-2-node', xenVersion: '4.16' })
    expect(() => older.hypervisor()).toThrow(
      expect.objectContaining({ code: 'XEN_VERSION_UNSUPPORTED', message: expect.stringContaining('4.17 to 4.22') }),
    )
    expect(() => simulateHost({ preset: 'qemu-2-node', xenVersion: 'four' })).toThrow(expect.objectContaining({ code: 'INVALID_ARGUMENT' }))
  })

  it('feeds the planner the same topology as the xenopsd fixture', async () => {
    const amd = readJson<{ distances: number[][]; cpu_to_node: number[]; node_cores: number[] }>(sharedData('numa', 'amd_opteron6272.json'))
    const layout = await readHostTopology(simulateHost({ preset: 'amd-opteron-6272' }).hypervisor())
    expect(layout.distances).toEqual(amd.distances)
    expect(layout.cpuToNode).toEqual(amd.cpu_to_node)
    expect(layout.nodeCores).toEqual(amd.node_cores)
    expect([...new NumaPlanner(layout).candidates()]).toHaveLength(255)
    expect(simulatorPresets().map((p) => p.name)).toContain('qemu-2-node')
  })
})

describe('cores per node, counted as xenopsd counts them', () => {
  // Node 0 spans two sockets whose core ids repeat (0, 1 on each): xenopsd
  // counts distinct core ids, 2; counting (socket, core) pairs would say 4.
  const host = {
    distances: [
      [10, 20],
      [20, 10],
    ],
    cpus: [
      { socket: 0, core: 0, node: 0 },
      { socket: 0, core: 1, node: 0 },
      { socket: 1, core: 0, node: 0 },
      { socket: 1, core: 1, node: 0 },
      { socket: 2, core: 0, node: 1 },
      { socket: 2, core: 1, node: 1 },
      { socket: 2, core: 2, node: 1 },
      { socket: 2, core: 3, node: 1 },
    ],
    nodeMemoryBytes: [8 * 2 ** 30, 8 * 2 ** 30],
  }

  it("counts distinct core ids per node, so the plans are xenopsd's", async () => {
    const layout = await readHostTopology(simulateHost({ host }).hypervisor())
    expect(layout.nodeCores).toEqual([2, 4])
    // 3 vCPUs wanting 3 cores: node 0 has 2 by xenopsd's count, so node 1.
    const planner = new NumaPlanner(layout)
    expect(planner.plan({ memoryBytes: 2 ** 30, vcpus: 3, cores: 3 }, [8 * 2 ** 30, 8 * 2 ** 30])?.nodes).toEqual([1])
  })
})

describe('the real hypervisor on a machine without Xen', () => {
  it('rejects with XEN_UNAVAILABLE and the reason', async () => {
    const error = await rejected(openHypervisor({ privcmdPath: '/nonexistent/privcmd' }))
    expect(error.code).toBe('XEN_UNAVAILABLE')
    expect(error.message).toMatch(/no libxenctrl could be loaded|\/nonexistent\/privcmd does not exist/)
    const noLibrary = await rejected(openHypervisor({ libraryPath: '/nonexistent/libxenctrl.so' }))
    expect(noLibrary.message).toContain('tried /nonexistent/libxenctrl.so')
    const badLog = await rejected(openHypervisor({ libxenctrlLog: 'loud' as never }))
    expect(badLog).toMatchObject({ code: 'INVALID_ARGUMENT', message: expect.stringMatching(/libxenctrlLog|loud/) })
  })
})

describe('xen-domain-build host', () => {
  it('prints a simulated host as JSON', () => {
    const run = cli(['host', '--sim', 'qemu-2-node', '--json'])
    expect(run.status).toBe(0)
    const host = JSON.parse(run.stdout)
    expect(host).toMatchObject({ version: { major: 4, minor: 17 }, simulated: true })
    expect(host.numa.distances).toEqual([
      [10, 21],
      [21, 10],
    ])
    expect(host.cpus.map((c: { node: number }) => c.node)).toEqual([0, 0, 1, 1])
  })

  it('exits 3 with the reason where there is no Xen', () => {
    const run = cli(['host'])
    expect(run.status).toBe(3)
    expect(run.stderr).toMatch(/^xen-domain-build: XEN_UNAVAILABLE: Xen is unavailable: /)
  })

  it('refuses an unknown preset with exit code 2', () => {
    const run = cli(['host', '--sim', 'nope'])
    expect(run.status).toBe(2)
    expect(run.stderr).toContain('unknown host nope')
  })
})

describe('xen-domain-build storm', () => {
  it('reports both accounting modes as JSON', () => {
    const run = cli(['storm', '--sim', 'two-socket-4-node', '--vms', '32', '--accounting', 'both', '--json'])
    expect(run.status).toBe(0)
    const [ours, theirs] = run.stdout
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line))
    expect(ours).toMatchObject({ accounting: 'in-flight', vms: 32, completed: 32, failed: 0, whollyShare: 1, overpromised: 0 })
    expect(ours.outcomes).toEqual({ wholly: 32, spread: 0, unplaced: 0, failed: 0 })
    expect(theirs).toMatchObject({ accounting: 'xenopsd', vms: 32, completed: 32 })
    expect(ours.perNode).toHaveLength(4)
    expect(ours.perNode.reduce((sum: number, n: { planned: number }) => sum + n.planned, 0)).toBe(32)
    expect(ours.eventLoopDelayMs.max).toBeGreaterThanOrEqual(0)
  })

  it('refuses bad options with exit code 2', () => {
    expect(cli(['storm', '--sim', 'qemu-2-node', '--vms', '0']).status).toBe(2)
    expect(cli(['storm', '--sim', 'qemu-2-node', '--vms', '2', '--concurrency', '0']).stderr).toContain('--concurrency: at least 1')
    expect(cli(['storm', '--sim', 'qemu-2-node', '--vms', '2', '--accounting', 'magic']).stderr).toContain('--accounting: magic')
    expect(cli(['storm', '--vms', '2']).stderr).toContain('storm needs --sim')
  })
})

describe('errors from the binding, whatever the path', () => {
  it('a synchronous call gives the same shape as an operation: code, errno, operation', async () => {
    const sim = simulateHost({ preset: 'qemu-2-node' })
    let thrown: unknown
    try {
      sim.domainPagesByNode(999)
    } catch (error) {
      thrown = error
    }
    expect(thrown).toBeInstanceOf(XenDomainBuildError)
    expect(thrown).toMatchObject({ code: 'ESRCH', errno: 3, operation: 'domain_pages_by_node' })
    const rejection = await rejected(sim.hypervisor().domainInfo(999))
    expect(rejection).toMatchObject({ code: 'ESRCH', errno: 3, operation: 'xc_domain_getinfolist' })
  })

  it('names each errno as ERRNO_NAMES does: the façade checks codes against that list', async () => {
    const sim = simulateHost({ preset: 'qemu-2-node' })
    const named: string[] = []
    for (let errno = 1; errno <= 133; errno++) {
      sim.injectFault({ operation: 'xc_physinfo', errno, mode: 'once' })
      const { code } = await rejected(sim.hypervisor().physinfo())
      if (code === `E${errno}`) continue
      expect(constants.errno[code as keyof typeof constants.errno], code).toBe(errno)
      named.push(code)
    }
    expect(named.sort()).toEqual([...ERRNO_NAMES].sort())
  })

  it('reads the code the binding gives; napi-rs statuses and unknown codes are mapped', () => {
    const native = (code: unknown) => Object.assign(new Error('m'), { code, errno: 5, operation: 'op', reason: 'why' })
    expect(fromNative(native('EIO'))).toMatchObject({ code: 'EIO', message: 'm', errno: 5, operation: 'op', reason: 'why' })
    expect(fromNative(native('E999'))).toMatchObject({ code: 'E999' })
    expect(fromNative(native('XENSTORE_UNAVAILABLE'))).toMatchObject({ code: 'XENSTORE_UNAVAILABLE' })
    expect(fromNative(native('NumberExpected'))).toMatchObject({ code: 'INVALID_ARGUMENT' })
    for (const code of ['NOT_A_CODE', 'GenericFailure', 'ENOTACODE', undefined, 7]) {
      expect(fromNative(native(code)), String(code)).toMatchObject({ code: 'INTERNAL' })
    }
    const ours = new XenDomainBuildError('CLOSED', 'closed')
    expect(fromNative(ours)).toBe(ours)
  })
})
