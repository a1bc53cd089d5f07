import diagnostics from 'node:diagnostics_channel'
import { describe, expect, it } from 'vitest'
import { buildDomain, type BuildDomainOptions, type DomainBuildEvent } from '../ts/build.js'
import { buildPre } from '../ts/build-pre.js'
import { BuildHost } from '../ts/host.js'
import { simulateHost, type SimulatedHost } from '../ts/index.js'
import { SimulatedXenguest } from '../ts/sim-xenguest.js'
import { SpawnedXenguest } from '../ts/xenguest.js'
import { createDomain } from '../ts/domain.js'
import { InMemoryXenstore } from '../ts/xenstore-memory.js'
import { alive, FAKE_XENGUEST, recording, rejected, type Call } from './helpers.js'

const GIB_KIB = 1024 * 1024

async function setup(preset = 'two-socket-4-node', simOptions: object = {}) {
  const sim = simulateHost({ preset, ...simOptions })
  const { xen, calls } = recording(sim.hypervisor())
  const xenstore = new InMemoryXenstore()
  const host = await BuildHost.create(xen, { xenstore })
  const create = async (kind: 'hvm' | 'pv' | 'pvh', vcpus: number) => {
    const domid = await createDomain(sim.hypervisor(), xenstore, {
      type: kind,
      maxVcpus: vcpus,
      uuid: '00000000-0000-0000-0000-000000001111',
    })
    calls.length = 0
    return domid
  }
  return { sim, xen, calls, xenstore, host, create }
}

async function noClaimLeft(sim: SimulatedHost) {
  expect((await sim.hypervisor().physinfo()).outstandingPages).toBe(0)
  expect(sim.nodePages().every((n) => n.claimedPages === 0)).toBe(true)
}

describe('buildDomain on the simulated host', () => {
  it('builds an HVM guest: hypercalls, xenguest arguments, xenstore', async () => {
    const t = await setup()
    const xenguest = new SimulatedXenguest(t.sim)
    const domid = await t.create('hvm', 2)
    const treeWrites = t.xenstore.writes.length
    const built = await buildDomain(
      t.host,
      domid,
      { type: 'hvm', staticMaxKib: 2 * GIB_KIB, targetKib: GIB_KIB, videoMib: 8, vcpus: 2 },
      {
        xenguest,
        image: '/usr/lib/xen/boot/hvmloader',
        timeoffset: '3600',
        extraKeys: { 'platform/acpi': '1' },
      },
    )
    expect(built).toMatchObject({
      domid,
      storePort: 1,
      consolePort: 2,
      storeMfn: BigInt(0xfeffc + 2 * domid),
      placement: { node: 0, claim: 'node' },
    })
    expect(Object.keys(built.timingsMs)).toEqual(
      expect.arrayContaining(['wait_for_memory', 'numa_placement', 'xenguest', 'shadow_correction', 'build_post', 'total']),
    )
    expect(t.calls.map((c: Call) => c[0])).toEqual([
      'domainInfo',
      'setMaxVcpus',
      'setMaxMemoryKib',
      'setShadowAllocationMib',
      'claimPagesOnNode',
      'setVcpuAffinity',
      'setVcpuAffinity',
      'allocUnboundEvtchn',
      'allocUnboundEvtchn',
      'claimPages',
      'shadowAllocationMib',
    ])
    // After the builder, what is left of the claim is released.
    expect(t.calls).toContainEqual(['claimPages', domid, 0])
    expect(xenguest.runs).toEqual([
      [
        '-controloutfd',
        '3',
        '-controlinfd',
        '4',
        '-mode',
        'hvm_build',
        '-image',
        '/usr/lib/xen/boot/hvmloader',
        '-domid',
        String(domid),
        '-store_port',
        '1',
        '-store_domid',
        '0',
        '-console_port',
        '2',
        '-console_domid',
        '0',
        '-mem_max_mib',
        '2040',
        '-mem_start_mib',
        '1016',
        '-mem_pnode',
        '0',
      ],
    ])
    // The memory is where it was claimed.
    expect(t.sim.domainPagesByNode(domid)).toEqual([1016 * 256, 0, 0, 0])
    const base = `/local/domain/${domid}`
    expect(Object.fromEntries(t.xenstore.writes.slice(treeWrites))).toEqual({
      [`${base}/memory/static-max`]: String(2048 * 1024),
      [`${base}/memory/target`]: String(1024 * 1024),
      [`${base}/domid`]: String(domid),
      [`${base}/store/port`]: '1',
      [`${base}/store/ring-ref`]: String(0xfeffc + 2 * domid),
      [`${base}/serial/0/limit`]: '65536',
      [`${base}/console/port`]: '2',
      [`${base}/console/ring-ref`]: String(0xfeffd + 2 * domid),
      [`${base}/console/limit`]: '65536',
      [`${base}/platform/acpi`]: '1',
      '/vm/00000000-0000-0000-0000-000000001111/rtc/timeoffset': '3600',
      // After the build, as xenopsd's set_memory_dynamic_range: the target, without a range given.
      [`${base}/memory/dynamic-min`]: String(1024 * 1024),
      [`${base}/memory/dynamic-max`]: String(1024 * 1024),
      [`/libxl/${domid}/type`]: 'HVM',
    })
    expect(t.xenstore.introductions).toEqual([{ domid, storeMfn: BigInt(0xfeffc + 2 * domid), storePort: 1 }])
  })

  it('builds a PV guest: memmap limit, linux_build with command line and ramdisk, no shadow correction', async () => {
    const t = await setup('two-socket-4-node', { nodeClaims: false })
    const xenguest = new SimulatedXenguest(t.sim)
    const domid = await t.create('pv', 1)
    await buildDomain(
      t.host,
      domid,
      { type: 'pv', staticMaxKib: GIB_KIB, targetKib: GIB_KIB, vcpus: 1 },
      {
        xenguest,
        image: '/boot/vmlinuz',
        cmdline: 'root=/dev/xvda1',
        ramdisk: '/boot/initrd.img',
      },
    )
    expect(t.calls).toContainEqual(['setMemmapLimit', domid, 1024 * 1024])
    expect(t.calls.map((c: Call) => c[0])).not.toContain('shadowAllocationMib')
    const args = xenguest.runs[0] ?? []
    expect(args.slice(4, 16)).toEqual([
      '-mode',
      'linux_build',
      '-image',
      '/boot/vmlinuz',
      '-cmdline',
      'root=/dev/xvda1',
      '-ramdisk',
      '/boot/initrd.img',
      '-features',
      '',
      '-flags',
      '0',
    ])
    // Upstream Xen: no node claim; the builder pins the planned node itself (-mem_pnode).
    expect(args).toEqual(expect.arrayContaining(['-mem_pnode', '0']))
    expect(t.sim.domainPagesByNode(domid)).toEqual([1024 * 256, 0, 0, 0])
    expect(t.xenstore.entries.get(`/libxl/${domid}/type`)).toBe('PV')
  })

  it('builds a PVH guest with modules, and puts back a shadow allocation the builder lowered', async () => {
    const t = await setup()
    const xenguest = new SimulatedXenguest(t.sim, { lowerShadowToMib: 1 })
    const domid = await t.create('pvh', 1)
    const events: DomainBuildEvent[] = []
    const built = await buildDomain(
      t.host,
      domid,
      { type: 'pvh', staticMaxKib: GIB_KIB, targetKib: GIB_KIB, vcpus: 1 },
      {
        xenguest,
        image: '/boot/vmlinuz',
        cmdline: 'console=hvc0',
        modules: [{ path: '/boot/initrd', cmdline: 'quiet' }],
        onEvent: (e) => events.push(e),
      },
    )
    expect(xenguest.runs[0]).toEqual(expect.arrayContaining(['pvh_build', '-module', '/boot/initrd', '-cmdline', 'quiet']))
    expect(t.calls.slice(-2)).toEqual([
      ['shadowAllocationMib', domid],
      ['setShadowAllocationMib', domid, built.memory.shadowMib],
    ])
    expect(await t.xen.shadowAllocationMib(domid)).toBe(built.memory.shadowMib)
    expect(events.some((e) => e.type === 'info' && e.message.includes('lowered the shadow allocation to 1 MiB'))).toBe(true)
    expect(t.xenstore.entries.get(`/libxl/${domid}/type`)).toBe('PVH')
  })

  it('boots a PV-in-PVH guest as xenopsd lays it out: the shim, its shim_mem=, the kernel and ramdisk as modules', async () => {
    const t = await setup()
    const xenguest = new SimulatedXenguest(t.sim)
    const vm = { type: 'pvh' as const, pvShim: true, staticMaxKib: 4 * GIB_KIB, targetKib: GIB_KIB, vcpus: 1 }
    const domid = await createDomain(t.sim.hypervisor(), t.xenstore, { type: 'pvh', pvShim: true, maxVcpus: 1 })
    await buildDomain(t.host, domid, vm, { xenguest, image: '/boot/vmlinuz', cmdline: 'root=/dev/xvda1', ramdisk: '/boot/initrd' })
    // 23 + 4096 / 90 MiB: the memory model's shim size for the static max.
    expect(xenguest.runs[0]?.slice(4, 18)).toEqual([
      '-mode',
      'pvh_build',
      '-image',
      '/usr/libexec/xen/boot/xen-shim',
      '-cmdline',
      'pv-shim console=xen shim_mem=68M',
      '-features',
      '',
      '-flags',
      '0',
      '-module',
      '/boot/vmlinuz',
      '-cmdline',
      'root=/dev/xvda1',
    ])
    expect(xenguest.runs[0]?.slice(18, 20)).toEqual(['-module', '/boot/initrd'])
    // The VM's platform keys change the shim's command line and size; one xenopsd cannot read is ignored.
    const events: DomainBuildEvent[] = []
    const other = await createDomain(t.sim.hypervisor(), t.xenstore, {
      type: 'pvh',
      pvShim: true,
      maxVcpus: 1,
      platform: { 'pvinpvh-xen-cmdline': 'pv-shim console=com1', shim_mib: '0x40' },
    })
    await buildDomain(t.host, other, vm, { xenguest, image: '/boot/vmlinuz', shimImage: '/opt/shim', onEvent: (e) => events.push(e) })
    expect(xenguest.runs[1]?.slice(6, 10)).toEqual(['-image', '/opt/shim', '-cmdline', 'pv-shim console=com1 shim_mem=64M'])
    expect(xenguest.runs[1]).not.toContain('/boot/initrd')
    const third = await createDomain(t.sim.hypervisor(), t.xenstore, {
      type: 'pvh',
      pvShim: true,
      maxVcpus: 1,
      platform: { shim_mib: 'lots' },
    })
    await buildDomain(t.host, third, vm, { xenguest, image: '/boot/vmlinuz', onEvent: (e) => events.push(e) })
    expect(xenguest.runs[2]).toContain('pv-shim console=xen shim_mem=68M')
    expect(events).toContainEqual({ type: 'info', domid: third, message: 'ignoring platform/shim_mib=lots, as xenopsd' })
    // Its modules are its kernel and ramdisk: no others.
    const error = await rejected(buildDomain(t.host, third, vm, { xenguest, image: '/boot/vmlinuz', modules: [{ path: '/x' }] }))
    expect(error).toMatchObject({ code: 'INVALID_ARGUMENT', message: expect.stringContaining('options.modules') })
  })

  it('writes the dynamic memory range after the build, the target by default', async () => {
    const t = await setup()
    const domid = await t.create('hvm', 1)
    const vm = { type: 'hvm' as const, staticMaxKib: 2 * GIB_KIB, targetKib: GIB_KIB, vcpus: 1 }
    const built = await buildDomain(t.host, domid, vm, {
      xenguest: new SimulatedXenguest(t.sim),
      image: 'x',
      dynamicMinKib: GIB_KIB / 2,
      dynamicMaxKib: 2 * GIB_KIB,
    })
    expect([
      t.xenstore.entries.get(`/local/domain/${domid}/memory/dynamic-min`),
      t.xenstore.entries.get(`/local/domain/${domid}/memory/dynamic-max`),
    ]).toEqual([String(GIB_KIB / 2), String(2 * GIB_KIB)])
    expect(Object.keys(built.timingsMs)).toContain('memory_dynamic_range')
    const other = await t.create('hvm', 1)
    const error = await rejected(
      buildDomain(t.host, other, vm, { xenguest: new SimulatedXenguest(t.sim), image: 'x', dynamicMinKib: 2, dynamicMaxKib: 1 }),
    )
    expect(error).toMatchObject({ code: 'INVALID_ARGUMENT', message: expect.stringContaining('options.dynamicMinKib') })
  })

  it('publishes its events on the xen-domain-build diagnostics channel', async () => {
    const t = await setup()
    const seen: string[] = []
    const listener = (event: unknown) => seen.push((event as DomainBuildEvent).type)
    diagnostics.subscribe('xen-domain-build', listener)
    try {
      const domid = await t.create('hvm', 1)
      await buildDomain(
        t.host,
        domid,
        { type: 'hvm', staticMaxKib: GIB_KIB, targetKib: GIB_KIB, vcpus: 1 },
        { xenguest: new SimulatedXenguest(t.sim), image: 'x' },
      )
    } finally {
      diagnostics.unsubscribe('xen-domain-build', listener)
    }
    expect(seen).toEqual(expect.arrayContaining(['step', 'numa.placement', 'xenguest.log', 'build.done']))
  })
})

describe('what buildDomain checks and writes as xenopsd does', () => {
  const vm = { type: 'pv' as const, staticMaxKib: GIB_KIB, targetKib: GIB_KIB, vcpus: 1 }

  it.each([
    ['image', { image: '/nonexistent/vmlinuz' }],
    ['ramdisk', { image: FAKE_XENGUEST, ramdisk: '/nonexistent/initrd' }],
    ['modules[1].path', { image: FAKE_XENGUEST, modules: [{ path: FAKE_XENGUEST }, { path: '/nonexistent/module' }] }],
  ])('refuses an unreadable %s before any hypercall', async (field, image) => {
    const t = await setup()
    const domid = await t.create('pv', 1)
    const error = await rejected(buildDomain(t.host, domid, vm, { xenguest: new SpawnedXenguest(FAKE_XENGUEST), ...image }))
    expect(error).toMatchObject({ code: 'INVALID_ARGUMENT', step: 'check_files', domid })
    expect(error.message).toContain(`${field}: /nonexistent/`)
    expect(error.message).toContain('is not readable (ENOENT)')
    expect(t.calls).toEqual([])
  })

  it('writes an empty rtc/timeoffset by default for HVM and PVH, as xenopsd', async () => {
    for (const type of ['hvm', 'pvh'] as const) {
      const t = await setup()
      const domid = await t.create(type, 1)
      await buildDomain(t.host, domid, { ...vm, type }, { xenguest: new SimulatedXenguest(t.sim), image: 'kernel' })
      const vmPath = await t.xenstore.read(`/local/domain/${domid}/vm`)
      expect(t.xenstore.entries.get(`${vmPath}/rtc/timeoffset`), type).toBe('')
    }
  })

  it('fails in build_post, releasing its claim, when the domain has no vm key (xenopsd raises too)', async () => {
    const t = await setup()
    const domid = await t.create('hvm', 1)
    await t.xenstore.rm(`/local/domain/${domid}/vm`)
    const error = await rejected(buildDomain(t.host, domid, { ...vm, type: 'hvm' }, { xenguest: new SimulatedXenguest(t.sim), image: 'x' }))
    expect(error).toMatchObject({ code: 'ENOENT', step: 'build_post', domid })
    expect(error.message).toContain(`/local/domain/${domid}/vm is missing`)
    await noClaimLeft(t.sim)
    expect(t.xenstore.introductions).toEqual([])
  })
})

describe('bad input to buildDomain is refused before any hypercall', () => {
  const vm = { type: 'pv' as const, staticMaxKib: GIB_KIB, targetKib: GIB_KIB, vcpus: 1 }

  it.each([
    ['options', null],
    ['options.xenguest', { xenguest: undefined, image: 'k' }],
    ['options.image', { image: 'k\0x' }],
    ['options.cmdline', { image: 'k', cmdline: 'x'.repeat(1024) }],
    ['options.cmdline', { image: 'k', cmdline: 'a\0b' }],
    ['options.extraArgs', { image: 'k', extraArgs: '-x' }],
    ['options.extraArgs[1]', { image: 'k', extraArgs: ['-x', 5] }],
    ['options.modules[0].path', { image: 'k', modules: [{ cmdline: 'c' }] }],
    ['options.modules[0]', { image: 'k', modules: [null] }],
    ['options.xenguestTimeoutMs', { image: 'k', xenguestTimeoutMs: Infinity }],
    ['options.xenguestTimeoutMs', { image: 'k', xenguestTimeoutMs: -5 }],
    ['options.memoryTimeoutMs', { image: 'k', memoryTimeoutMs: NaN }],
    ['options.storeDomid', { image: 'k', storeDomid: 70_000 }],
    ['options.extraKeys', { image: 'k', extraKeys: { '/abs': 'x' } }],
    ['options.extraKeys.big', { image: 'k', extraKeys: { big: 'x'.repeat(5000) } }],
    ['options.signal', { image: 'k', signal: {} }],
  ])('%s', async (field, given) => {
    const t = await setup()
    const domid = await t.create('pv', 1)
    const options = given === null ? null : { xenguest: new SimulatedXenguest(t.sim), ...given }
    const error = await rejected(buildDomain(t.host, domid, vm, options as never))
    expect(error.code).toBe('INVALID_ARGUMENT')
    expect(error.message.startsWith(`${field}`), error.message).toBe(true)
    expect(t.calls).toEqual([])
  })

  it('refuses bad host options, and a shadow multiplier no allocation can hold', async () => {
    const xen = simulateHost({ preset: 'qemu-2-node' }).hypervisor()
    for (const [field, options] of [
      ['options.numaPolicy', { numaPolicy: 'fastest' }],
      ['options.accounting', { accounting: 'optimistic' }],
      ['options.memoryPollMs', { memoryPollMs: NaN }],
      ['options', null],
    ] as const) {
      const error = await rejected(BuildHost.create(xen, options as never))
      expect(error.message.startsWith(field), error.message).toBe(true)
    }
    const t = await setup()
    const domid = await t.create('hvm', 1)
    const error = await rejected(
      buildPre(t.host, domid, { type: 'hvm', staticMaxKib: GIB_KIB, targetKib: GIB_KIB, vcpus: 1, shadowMultiplier: 1e308 }),
    )
    expect(error).toMatchObject({ code: 'INVALID_ARGUMENT', message: expect.stringContaining('vm.shadowMultiplier') })
    expect(t.calls).toEqual([])
  })
})

describe('BuildHost and its store', () => {
  it('refuses a real host without its xenstored, and gives a simulated one an in-memory store', async () => {
    const sim = simulateHost({ preset: 'qemu-2-node' })
    // A real host, as far as BuildHost can tell: every write would stay in memory, never in xenstored.
    const real = new Proxy(sim.hypervisor(), {
      get: (target, name) => {
        const value = Reflect.get(target, name)
        return name === 'simulated' ? false : typeof value === 'function' ? value.bind(target) : value
      },
    })
    const error = await rejected(BuildHost.create(real))
    expect(error).toMatchObject({ code: 'INVALID_ARGUMENT', message: expect.stringContaining('openXenstore()') })
    await BuildHost.create(real, { xenstore: new InMemoryXenstore() })
    expect((await BuildHost.create(sim.hypervisor())).xenstore).toBeInstanceOf(InMemoryXenstore)
  })
})

describe('buildDomain with the real runner and a fake xenguest', () => {
  const vm = { type: 'hvm' as const, staticMaxKib: GIB_KIB, targetKib: GIB_KIB, vcpus: 1 }
  const real = (mode: string, extra: Partial<BuildDomainOptions> = {}): BuildDomainOptions => ({
    xenguest: new SpawnedXenguest(FAKE_XENGUEST, { exitGraceMs: 200 }),
    // Any readable file: the fake reads none, but buildDomain checks it can be read.
    image: FAKE_XENGUEST,
    extraArgs: ['-fake-mode', mode],
    ...extra,
  })

  it.each([
    ['error-xenopsd', 'XENGUEST_FAILED'],
    ['error-xcpng', 'XENGUEST_FAILED'],
    ['crash', 'XENGUEST_PROTOCOL'],
    ['exit-no-result', 'XENGUEST_PROTOCOL'],
    ['garbage', 'XENGUEST_PROTOCOL'],
    ['suspend', 'XENGUEST_PROTOCOL'],
    ['malformed-result', 'XENGUEST_PROTOCOL'],
  ])('%s: the build fails as %s in step xenguest, and releases its claim', async (mode, code) => {
    const t = await setup()
    const domid = await t.create('hvm', 1)
    const error = await rejected(buildDomain(t.host, domid, vm, real(mode)))
    expect(error).toMatchObject({ code, step: 'xenguest', domid })
    await noClaimLeft(t.sim)
    expect(t.host.buildsInFlight).toBe(0)
    expect(t.xenstore.introductions).toEqual([])
  })

  it('succeeds with the fake, which gets -mem_pnode after the node claim', async () => {
    const t = await setup()
    const domid = await t.create('hvm', 1)
    const logs: string[] = []
    const built = await buildDomain(t.host, domid, vm, real('success', { onEvent: (e) => e.type === 'xenguest.log' && logs.push(e.line) }))
    expect(built).toMatchObject({ storeMfn: 1044480n, consoleMfn: 1044479n })
    const argv = JSON.parse((logs.find((l) => l.startsWith('argv ')) ?? '').slice(5))
    expect(argv).toEqual(expect.arrayContaining(['-mem_pnode', '0', '-fake-mode', 'success']))
    expect(t.xenstore.introductions).toEqual([{ domid, storeMfn: 1044480n, storePort: 1 }])
  })
})

describe('-mem_pnode on a Xen without node claims', () => {
  const vm = { type: 'hvm' as const, staticMaxKib: GIB_KIB, targetKib: GIB_KIB, vcpus: 1 }

  it('is given for a one-node plan when the builder places memory on a node by itself', async () => {
    const t = await setup('two-socket-4-node', { nodeClaims: false })
    const domid = await t.create('hvm', 1)
    const logs: string[] = []
    const built = await buildDomain(t.host, domid, vm, {
      xenguest: new SpawnedXenguest(FAKE_XENGUEST),
      image: FAKE_XENGUEST,
      onEvent: (e) => e.type === 'xenguest.log' && logs.push(e.line),
    })
    expect(built.placement).toMatchObject({ node: 0, claim: 'host', affinity: 'soft', plan: { nodes: [0] } })
    const argv = JSON.parse((logs.find((l) => l.startsWith('argv ')) ?? '').slice(5))
    expect(argv).toEqual(expect.arrayContaining(['-mem_pnode', '0']))
  })

  it('is not given when the builder cannot, nor for a multi-node plan', async () => {
    const t = await setup('two-socket-4-node', { nodeClaims: false })
    const xenguest = new SimulatedXenguest(t.sim, { pinsNode: false })
    const small = await t.create('hvm', 1)
    await buildDomain(t.host, small, vm, { xenguest, image: 'hvmloader' })
    const large = await t.create('hvm', 2)
    const built = await buildDomain(
      t.host,
      large,
      { ...vm, staticMaxKib: 20 * GIB_KIB, targetKib: 20 * GIB_KIB, vcpus: 2 },
      { xenguest, image: 'hvmloader' },
    )
    expect(built.placement.plan?.nodes.length).toBeGreaterThan(1)
    for (const run of xenguest.runs) expect(run).not.toContain('-mem_pnode')
  })
})

describe('cancellation leaves no process and no claim', () => {
  const vm = { type: 'hvm' as const, staticMaxKib: GIB_KIB, targetKib: GIB_KIB, vcpus: 1 }

  it('while waiting for memory', async () => {
    const t = await setup('qemu-2-node', { clock: 'manual', scrubReporting: 'xenserver' })
    const xen = t.sim.hypervisor()
    const hog = await xen.createDomain({ kind: 'pv', maxVcpus: 1 })
    await xen.setMaxMemoryKib(hog, 2 * GIB_KIB)
    await t.sim.populate(hog, 2 * 262_144)
    await xen.destroyDomain(hog)
    const domid = await t.create('hvm', 1)
    const controller = new AbortController()
    const build = buildDomain(t.host, domid, vm, { xenguest: new SimulatedXenguest(t.sim), image: 'x', signal: controller.signal })
    setTimeout(() => controller.abort(), 50)
    expect(await rejected(build)).toMatchObject({ code: 'ABORTED', step: 'wait_for_memory' })
    await noClaimLeft(t.sim)
  })

  it('during placement', async () => {
    const t = await setup()
    t.sim.injectFault({ operation: 'xc_vcpu_setaffinity', mode: 'never', latencyMs: 150 })
    const domid = await t.create('hvm', 1)
    const controller = new AbortController()
    const build = buildDomain(t.host, domid, vm, {
      xenguest: new SimulatedXenguest(t.sim),
      image: 'x',
      signal: controller.signal,
      onEvent: (e) => e.type === 'step' && e.step === 'shadow_allocation' && setTimeout(() => controller.abort(), 50),
    })
    const error = await rejected(build)
    expect(error.code).toBe('ABORTED')
    expect(['numa_placement', 'event_channels']).toContain(error.step)
    await noClaimLeft(t.sim)
  })

  it('while xenguest runs: it is killed', async () => {
    const t = await setup()
    const domid = await t.create('hvm', 1)
    const controller = new AbortController()
    let pid = 0
    const build = buildDomain(t.host, domid, vm, {
      xenguest: new SpawnedXenguest(FAKE_XENGUEST),
      image: FAKE_XENGUEST,
      extraArgs: ['-fake-mode', 'hang'],
      signal: controller.signal,
      onEvent: (e) => {
        if (e.type === 'xenguest.spawn') {
          pid = e.pid
          setTimeout(() => controller.abort(), 100)
        }
      },
    })
    expect(await rejected(build)).toMatchObject({ code: 'ABORTED', step: 'xenguest' })
    expect(pid).toBeGreaterThan(0)
    expect(alive(pid)).toBe(false)
    await noClaimLeft(t.sim)
  })

  it('a xenguest timeout kills it and releases the claim', async () => {
    const t = await setup()
    const domid = await t.create('hvm', 1)
    const build = buildDomain(t.host, domid, vm, {
      xenguest: new SpawnedXenguest(FAKE_XENGUEST),
      image: FAKE_XENGUEST,
      extraArgs: ['-fake-mode', 'hang'],
      xenguestTimeoutMs: 300,
    })
    expect(await rejected(build)).toMatchObject({ code: 'TIMEOUT', step: 'xenguest' })
    await noClaimLeft(t.sim)
  })
})
