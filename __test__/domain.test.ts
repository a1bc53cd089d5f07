import { describe, expect, it } from 'vitest'
import { buildPre } from '../ts/build-pre.js'
import { createDomain, destroyDomain, removeVm } from '../ts/domain.js'
import type { Hypervisor } from '../ts/hypervisor.js'
import { BuildHost } from '../ts/host.js'
import { simulateHost } from '../ts/index.js'
import { XenDomainBuildError } from '../ts/errors.js'
import { CallsXenstore } from '../ts/xenstore.js'
import { InMemoryXenstore } from '../ts/xenstore-memory.js'
import { rejected } from './helpers.js'
import { domainTreeProblems, permString } from './xenstore-conformance.mjs'

const UUID = '5d1e6a2c-0b3f-4c8e-9a71-2f4d6b8c0e13'

function setup() {
  const sim = simulateHost({ preset: 'qemu-2-node' })
  const xen = sim.hypervisor()
  const xenstore = new InMemoryXenstore()
  return { sim, xen, xenstore }
}

/** Every node under these roots. */
function nodesUnder(store: InMemoryXenstore, ...roots: string[]): string[] {
  return [...store.entries.keys()].filter((path) => roots.some((root) => path === root || path.startsWith(`${root}/`)))
}

describe("createDomain: xenopsd's Domain.make", () => {
  it("creates the domain and writes xenopsd's tree, with its permissions", async () => {
    const t = setup()
    const domid = await createDomain(t.xen, t.xenstore, {
      type: 'hvm',
      maxVcpus: 2,
      uuid: UUID,
      name: 'web',
      platform: { timer_mode: '1', viridian: 'true' },
    })
    expect((await t.xen.domainInfo(domid)).hvm).toBe(true)
    expect(await domainTreeProblems(t.xenstore, domid, { uuid: UUID, name: 'web' })).toEqual([])
    expect(await t.xenstore.read(`/local/domain/${domid}/platform/viridian`)).toBe('true')
    expect(permString(await t.xenstore.getPermissions(`/local/domain/${domid}/platform/timer_mode`))).toBe(`n0,r${domid}`)
  })

  it('opens to the guest only what xenopsd opens: it reads its home, writes its device and data subtrees', async () => {
    const t = setup()
    const domid = await createDomain(t.xen, t.xenstore, { type: 'pv', maxVcpus: 1, uuid: UUID })
    const guest = t.xenstore.asDomain(domid)
    const home = `/local/domain/${domid}`
    expect(await guest.read(`${home}/name`)).toBe(`Domain-${domid}`)
    expect(await guest.read(`/vm/${UUID}/uuid`)).toBe(UUID)
    await guest.write(`${home}/data/updated`, '1')
    await guest.write(`${home}/device/vif/0/state`, '1')
    await guest.write('control/feature-balloon', '1')
    for (const path of [`${home}/name`, `${home}/memory/target`, `${home}/platform/x`, `/vm/${UUID}/name`, `/libxl/${domid}/type`]) {
      expect((await rejected(guest.write(path, 'x'))).code).toBe('EACCES')
    }
    expect((await rejected(guest.read(`/xenops/domain/${domid}/device`))).code).toBe('EACCES')
    expect((await rejected(t.xenstore.asDomain(domid + 1).read(`${home}/name`))).code).toBe('EACCES')
  })

  it('gives build_pre its platform keys: timer_mode reaches the hypervisor', async () => {
    const t = setup()
    const calls: unknown[][] = []
    const domid = await createDomain(t.xen, t.xenstore, { type: 'hvm', maxVcpus: 1, platform: { timer_mode: '2' } })
    const recording = new Proxy(t.xen, {
      get: (target, name) => {
        const value = Reflect.get(target, name)
        return typeof value === 'function'
          ? (...args: unknown[]) => {
              calls.push([name, ...args])
              return value.apply(target, args)
            }
          : value
      },
    })
    const pre = await buildPre(await BuildHost.create(recording, { xenstore: t.xenstore }), domid, {
      type: 'hvm',
      staticMaxKib: 1 << 20,
      targetKib: 1 << 20,
      videoMib: 8,
      vcpus: 1,
    })
    expect(calls).toContainEqual(['setHvmParam', domid, 10, 2])
    await pre.release()
  })

  it("passes xenopsd's grant limits to the hypervisor, and refuses what Xen refuses", async () => {
    const t = setup()
    expect((await rejected(createDomain(t.xen, t.xenstore, { type: 'pv', maxVcpus: 1, maxGrantFrames: 65 }))).code).toBe('EINVAL')
    expect(t.xenstore.entries.size).toBe(0)
  })

  it('refuses bad input before any hypercall', async () => {
    const t = setup()
    for (const config of [
      { type: 'xen', maxVcpus: 1 },
      { type: 'pv', maxVcpus: 0 },
      { type: 'pv', maxVcpus: 1, uuid: 'not-a-uuid' },
      { type: 'pv', maxVcpus: 1, platform: { 'timer mode': '1' } },
      { type: 'pv', maxVcpus: 1, platform: { acpi: 1 } },
      { type: 'pv', maxVcpus: 1, name: 'n'.repeat(4096) },
    ]) {
      const error = await rejected(createDomain(t.xen, t.xenstore, config as never))
      expect(error.code).toBe('INVALID_ARGUMENT')
    }
    expect(t.sim.domains()).toEqual([0])
    expect(t.xenstore.entries.size).toBe(0)
  })

  it('leaves nothing when the hypervisor refuses the domain', async () => {
    const t = setup()
    t.sim.injectFault({ operation: 'xc_domain_create', errno: 'ENOMEM', mode: 'once' })
    const error = await rejected(createDomain(t.xen, t.xenstore, { type: 'pv', maxVcpus: 1 }))
    expect(error).toMatchObject({ code: 'ENOMEM', operation: 'xc_domain_create' })
    expect(t.sim.domains()).toEqual([0])
    expect(t.xenstore.entries.size).toBe(0)
  })

  it('leaves neither a domain nor a tree when the store fails half-way', async () => {
    const t = setup()
    // A store whose xenstored fails the writes below /vm (EIO), half-way through the tree.
    const memory = new InMemoryXenstore()
    const calls = memory.calls
    const failing = new CallsXenstore(
      new Proxy(calls, {
        get: (target, name) => {
          const call = (Reflect.get(target, name) as (...args: unknown[]) => Promise<unknown>).bind(target)
          if (name !== 'write' && name !== 'writeAll') return call
          return async (...args: unknown[]) => {
            if (String(args[1]).startsWith('/vm/'))
              throw new XenDomainBuildError('EIO', 'xs_write failed: EIO', { errno: 5, operation: 'xs_write' })
            return call(...args)
          }
        },
      }),
    )
    const error = await rejected(createDomain(t.xen, failing, { type: 'pv', maxVcpus: 1 }))
    expect(error.code).toBe('EIO')
    expect(t.sim.domains()).toEqual([0])
    expect(memory.entries.size).toBe(0)
  })
})

/** The hypervisor, recording each call's name and arguments. */
function recorded(xen: Hypervisor): { xen: Hypervisor; calls: unknown[][] } {
  const calls: unknown[][] = []
  const proxy = new Proxy(xen, {
    get: (target, name) => {
      const value = Reflect.get(target, name)
      return typeof value === 'function'
        ? (...args: unknown[]) => {
            calls.push([name, ...args])
            return value.apply(target, args)
          }
        : value
    },
  })
  return { xen: proxy, calls }
}

describe("createDomain: the hypervisor's domain as xenopsd makes it", () => {
  it("names the domain by its VM's UUID (its Xen handle), with the XSM label", async () => {
    const t = setup()
    const domid = await createDomain(t.xen, t.xenstore, { type: 'pvh', maxVcpus: 1, uuid: UUID, ssidref: 3 })
    expect(await t.xen.domainInfo(domid)).toMatchObject({ handle: UUID, ssidref: 3 })
    // A new UUID when none is given: the handle and /vm/UUID are the same one.
    const other = await createDomain(t.xen, t.xenstore, { type: 'pv', maxVcpus: 1 })
    const { handle } = await t.xen.domainInfo(other)
    expect(await t.xenstore.read(`/local/domain/${other}/vm`)).toBe(`/vm/${handle}`)
  })

  it("sets no event channel limit: a guest gets more than libxl's 1023 ports", async () => {
    const t = setup()
    const domid = await createDomain(t.xen, t.xenstore, { type: 'pv', maxVcpus: 1 })
    let port = 0
    for (let i = 0; i < 1100; i++) port = await t.xen.allocUnboundEvtchn(domid, 0)
    expect(port).toBe(1100)
    const limited = await createDomain(t.xen, t.xenstore, { type: 'pv', maxVcpus: 1, maxEvtchnPort: 1 })
    await t.xen.allocUnboundEvtchn(limited, 0)
    expect((await rejected(t.xen.allocUnboundEvtchn(limited, 0))).code).toBe('ENOSPC')
  })

  it('uses HAP where the host has it, shadow where platform/hap says so or the host has no HAP', async () => {
    const xenserver = simulateHost({ preset: 'two-socket-4-node' })
    const store = new InMemoryXenstore()
    const hap = await createDomain(xenserver.hypervisor(), store, { type: 'hvm', maxVcpus: 1 })
    expect((await xenserver.hypervisor().domainInfo(hap)).hap).toBe(true)
    const off = await createDomain(xenserver.hypervisor(), store, { type: 'hvm', maxVcpus: 1, platform: { hap: 'FALSE' } })
    expect((await xenserver.hypervisor().domainInfo(off)).hap).toBe(false)
    const noHap = simulateHost({ preset: 'two-socket-4-node', hap: false })
    const shadowed = await createDomain(noHap.hypervisor(), store, { type: 'pvh', maxVcpus: 1 })
    expect((await noHap.hypervisor().domainInfo(shadowed)).hap).toBe(false)
    // A PV domain never has HAP; its platform/hap is not read.
    const pv = await createDomain(xenserver.hypervisor(), store, { type: 'pv', maxVcpus: 1, platform: { hap: 'true' } })
    expect((await xenserver.hypervisor().domainInfo(pv)).hap).toBe(false)
  })

  it('refuses a paging mode or guest type the host lacks, and a platform flag it cannot read, before any domain', async () => {
    const t = setup() // Debian's Xen: HAP, no shadow paging
    const refusals = [
      { type: 'hvm', maxVcpus: 1, platform: { hap: '0' } },
      { type: 'hvm', maxVcpus: 1, platform: { hap: 'yes' } },
      { type: 'pv', maxVcpus: 1, platform: { 'nested-virt': 'true' } },
      { type: 'hvm', maxVcpus: 1, platform: { vpmu: 'on' } },
    ] as const
    for (const config of refusals) {
      const error = await rejected(createDomain(t.xen, t.xenstore, config))
      expect(error.code).toBe('INVALID_ARGUMENT')
    }
    const neither = simulateHost({ preset: 'qemu-2-node', hap: false })
    const error = await rejected(createDomain(neither.hypervisor(), t.xenstore, { type: 'hvm', maxVcpus: 1 }))
    expect(error).toMatchObject({ code: 'INVALID_ARGUMENT', message: expect.stringContaining('shadow unavailable') })
    expect([t.sim.domains(), neither.domains()]).toEqual([[0], [0]])
    expect(t.xenstore.entries.size).toBe(0)
  })

  it('passes nested virt, vPMU and relaxed MSRs from platform/*, and Xen refuses what it cannot do', async () => {
    const t = setup()
    const r = recorded(t.xen)
    await createDomain(r.xen, t.xenstore, { type: 'hvm', maxVcpus: 1, platform: { 'nested-virt': 'true', 'msr-relaxed': '1' } })
    expect(r.calls.find(([name]) => name === 'createDomain')?.[1]).toMatchObject({
      hap: true,
      nestedVirt: true,
      vpmu: false,
      msrRelaxed: true,
    })
    // Xen: nested virt needs HAP; vPMU needs Xen booted with `vpmu`.
    const shadowNested = simulateHost({ preset: 'two-socket-4-node' })
    expect(
      (
        await rejected(
          createDomain(shadowNested.hypervisor(), t.xenstore, {
            type: 'hvm',
            maxVcpus: 1,
            platform: { hap: 'false', 'nested-virt': 'true' },
          }),
        )
      ).code,
    ).toBe('EINVAL')
    expect((await rejected(createDomain(t.xen, t.xenstore, { type: 'hvm', maxVcpus: 1, platform: { vpmu: 'true' } }))).code).toBe('EINVAL')
    const vpmu = simulateHost({ preset: 'qemu-2-node', vpmu: true })
    await createDomain(vpmu.hypervisor(), t.xenstore, { type: 'hvm', maxVcpus: 1, platform: { vpmu: 'true' } })
  })

  it('allows grant table v2 where Xen has it, v1 where gnttab=max-ver:1', async () => {
    for (const [gnttabMaxVersion, expected] of [
      [2, 2],
      [1, 1],
    ] as const) {
      const sim = simulateHost({ preset: 'qemu-2-node', gnttabMaxVersion })
      const r = recorded(sim.hypervisor())
      await createDomain(r.xen, new InMemoryXenstore(), { type: 'pv', maxVcpus: 1 })
      expect(r.calls.find(([name]) => name === 'createDomain')?.[1]).toMatchObject({ maxGrantVersion: expected })
    }
  })

  it('takes the grant limits from platform/max_grant_frames and max_maptrack_frames, as xenopsd', async () => {
    const t = setup()
    const r = recorded(t.xen)
    await createDomain(r.xen, t.xenstore, { type: 'pv', maxVcpus: 1, platform: { max_grant_frames: '32', max_maptrack_frames: '0x10' } })
    await createDomain(r.xen, t.xenstore, { type: 'pv', maxVcpus: 1, platform: { max_grant_frames: 'many' } })
    const configs = r.calls.filter(([name]) => name === 'createDomain').map(([, config]) => config)
    expect(configs).toMatchObject([
      { maxGrantFrames: 32, maxMaptrackFrames: 16 },
      { maxGrantFrames: 64, maxMaptrackFrames: 0 },
    ])
  })
})

describe("createDomain: the VM-level keys of xenopsd's VM.create", () => {
  it("writes the vCPU keys xenguest reads, the ACPI defaults, each vCPU's state, the initial target and the domain type", async () => {
    const t = setup()
    const domid = await createDomain(t.xen, t.xenstore, {
      type: 'hvm',
      maxVcpus: 4,
      vcpus: 2,
      uuid: UUID,
      initialTargetKib: 524288,
      schedulerPriority: { weight: 512, cap: 50 },
      generationId: '1:2',
      platform: { acpi_s3: '1', 'vcpu/number': '99' },
    })
    const home = `/local/domain/${domid}`
    const read = async (key: string) => t.xenstore.read(`${home}/${key}`)
    expect(
      Object.fromEntries(
        await Promise.all(
          ['vcpu/number', 'vcpu/current', 'vcpu/weight', 'vcpu/cap', 'acpi_s3', 'acpi_s4', 'generation-id'].map(async (k) => [
            k,
            await read(`platform/${k}`),
          ]),
        ),
      ),
    ).toEqual({
      'vcpu/number': '4',
      'vcpu/current': '2',
      'vcpu/weight': '512',
      'vcpu/cap': '50',
      acpi_s3: '1',
      acpi_s4: '0',
      'generation-id': '1:2',
    })
    expect(await Promise.all([0, 1, 2, 3].map((i) => read(`cpu/${i}/availability`)))).toEqual(['online', 'online', 'offline', 'offline'])
    expect([await read('memory/initial-target'), await read('domain-type')]).toEqual(['524288', 'hvm'])
    // The guest reads them all, and may write none.
    const guest = t.xenstore.asDomain(domid)
    expect(await guest.read(`${home}/cpu/3/availability`)).toBe('offline')
    expect((await rejected(guest.write(`${home}/cpu/3/availability`, 'online'))).code).toBe('EACCES')
    expect(permString(await t.xenstore.getPermissions(`${home}/domain-type`))).toBe(`n0,r${domid}`)
  })

  it('starts a PV-in-PVH guest with every vCPU, as xenopsd, and says so in domain-type', async () => {
    const t = setup()
    const domid = await createDomain(t.xen, t.xenstore, { type: 'pvh', pvShim: true, maxVcpus: 2, vcpus: 1 })
    const home = `/local/domain/${domid}`
    expect(await t.xenstore.read(`${home}/platform/vcpu/current`)).toBe('2')
    expect(await t.xenstore.read(`${home}/cpu/1/availability`)).toBe('online')
    expect(await t.xenstore.read(`${home}/domain-type`)).toBe('pv-in-pvh')
    expect(await t.xenstore.read(`${home}/memory/initial-target`)).toBeNull()
  })

  it('refuses vCPU counts, priorities and labels that make no sense', async () => {
    const t = setup()
    for (const config of [
      { type: 'pv', maxVcpus: 2, vcpus: 3 },
      { type: 'pv', maxVcpus: 2, vcpus: 0 },
      { type: 'hvm', maxVcpus: 1, pvShim: true },
      { type: 'pv', maxVcpus: 1, schedulerPriority: { weight: -1, cap: 0 } },
      { type: 'pv', maxVcpus: 1, initialTargetKib: 1.5 },
      { type: 'pv', maxVcpus: 1, ssidref: 2 ** 32 },
    ]) {
      expect((await rejected(createDomain(t.xen, t.xenstore, config as never))).code).toBe('INVALID_ARGUMENT')
    }
    expect(t.sim.domains()).toEqual([0])
  })
})

describe("destroyDomain: xenopsd's Domain.destroy", () => {
  it('renames the domain first, destroys it, releases it, and leaves only /vm/UUID behind', async () => {
    const t = setup()
    const domid = await createDomain(t.xen, t.xenstore, { type: 'pv', maxVcpus: 1, uuid: UUID })
    await t.xenstore.write(`/libxl/${domid}/type`, 'PV')
    await t.xenstore.write(`/vm/${UUID}/rtc/timeoffset`, '3600')
    await t.xenstore.introduce(domid, 0x1234n, 1)
    const r = recorded(t.xen)
    await destroyDomain(r.xen, t.xenstore, domid)
    // Out of the way of lookups by UUID before it goes: xenopsd's marker.
    expect(r.calls).toEqual([
      ['setDomainHandle', domid, `deadbeef-dead-beef-dead-beef0000000${domid}`],
      ['destroyDomain', domid],
    ])
    expect(t.sim.domains()).toEqual([0])
    expect(t.xenstore.introduced.has(domid)).toBe(false)
    expect(
      nodesUnder(t.xenstore, `/local/domain/${domid}`, `/libxl/${domid}`, `/xenops/domain/${domid}`, `/vm/${UUID}/domains/${domid}`),
    ).toEqual([])
    // The VM's state outlives its domain (a reboot keeps its clock offset).
    expect(await t.xenstore.read(`/vm/${UUID}/rtc/timeoffset`)).toBe('3600')
    // Twice: everything is gone already, which is fine.
    await destroyDomain(t.xen, t.xenstore, domid)
    await removeVm(t.xenstore, UUID)
    expect(nodesUnder(t.xenstore, '/vm')).toEqual(['/vm'])
  })

  it("removes the backends' entries for the domain, and only its", async () => {
    const t = setup()
    const domid = await createDomain(t.xen, t.xenstore, { type: 'pv', maxVcpus: 1 })
    for (const path of [
      `/local/domain/0/backend/vbd/${domid}/51712/state`,
      `/local/domain/0/backend/vif/${domid}/0/state`,
      `/local/domain/0/xenserver/backend/vbd3/${domid}/768/state`,
      `/local/domain/0/backend/vbd/${domid + 1}/51712/state`,
    ]) {
      await t.xenstore.write(path, '4')
    }
    await destroyDomain(t.xen, t.xenstore, domid)
    expect(
      nodesUnder(t.xenstore, '/local/domain/0/backend', '/local/domain/0/xenserver/backend').filter((p) => p.endsWith('/state')),
    ).toEqual([`/local/domain/0/backend/vbd/${domid + 1}/51712/state`])
  })

  it('keeps /vm/UUID while another domain of the VM has it (a localhost migration), and after', async () => {
    const t = setup()
    const first = await createDomain(t.xen, t.xenstore, { type: 'pv', maxVcpus: 1, uuid: UUID })
    const second = await createDomain(t.xen, t.xenstore, { type: 'pv', maxVcpus: 1, uuid: UUID })
    // The shared /vm/UUID is opened to the second domain.
    expect(permString(await t.xenstore.getPermissions(`/vm/${UUID}/name`))).toBe(`n0,r${second}`)
    await destroyDomain(t.xen, t.xenstore, first)
    expect(await t.xenstore.directory(`/vm/${UUID}/domains`)).toEqual([String(second)])
    // The VM still has a domain: its tree stays.
    expect((await rejected(removeVm(t.xenstore, UUID))).code).toBe('INVALID_ARGUMENT')
    await destroyDomain(t.xen, t.xenstore, second)
    expect(await t.xenstore.read(`/vm/${UUID}/uuid`)).toBe(UUID)
    await removeVm(t.xenstore, UUID)
    expect(nodesUnder(t.xenstore, '/vm', '/local/domain')).toEqual(['/local/domain', '/vm'])
  })
})
