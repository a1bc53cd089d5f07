import { describe, expect, it } from 'vitest'
import { buildPre } from '../ts/build-pre.js'
import { createDomain, destroyDomain } from '../ts/domain.js'
import { BuildHost } from '../ts/host.js'
import { simulateHost } from '../ts/index.js'
import { XenDomainBuildError } from '../ts/errors.js'
import { CallsXenstore, InMemoryXenstore } from '../ts/xenstore.js'
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

describe('createDomain: xenopsd\'s Domain.make', () => {
  it('creates the domain and writes xenopsd\'s tree, with its permissions', async () => {
    const t = setup()
    const domid = await createDomain(t.xen, t.xenstore, { type: 'hvm', maxVcpus: 2, uuid: UUID, name: 'web', platform: { timer_mode: '1', viridian: 'true' } })
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
        return typeof value === 'function' ? (...args: unknown[]) => (calls.push([name, ...args]), value.apply(target, args)) : value
      },
    })
    const pre = await buildPre(await BuildHost.create(recording, { xenstore: t.xenstore }), domid, { type: 'hvm', staticMaxKib: 1 << 20, targetKib: 1 << 20, videoMib: 8, vcpus: 1 })
    expect(calls).toContainEqual(['setHvmParam', domid, 10, 2])
    await pre.release()
  })

  it('passes xenopsd\'s grant limits to the hypervisor, and refuses what Xen refuses', async () => {
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
            if (String(args[1]).startsWith('/vm/')) throw new XenDomainBuildError('EIO', 'xs_write failed: EIO', { errno: 5, operation: 'xs_write' })
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

describe('destroyDomain: xenopsd\'s Domain.destroy', () => {
  it('destroys the domain, releases it, and leaves no key behind', async () => {
    const t = setup()
    const domid = await createDomain(t.xen, t.xenstore, { type: 'pv', maxVcpus: 1, uuid: UUID })
    await t.xenstore.write(`/libxl/${domid}/type`, 'PV')
    await t.xenstore.introduce(domid, 0x1234n, 1)
    await destroyDomain(t.xen, t.xenstore, domid)
    expect(t.sim.domains()).toEqual([0])
    expect(t.xenstore.introduced.has(domid)).toBe(false)
    expect(nodesUnder(t.xenstore, `/local/domain/${domid}`, `/vm/${UUID}`, `/libxl/${domid}`, `/xenops/domain/${domid}`)).toEqual([])
    // Twice: everything is gone already, which is fine.
    await destroyDomain(t.xen, t.xenstore, domid)
  })

  it('keeps /vm/UUID while another domain of the VM has it (a localhost migration)', async () => {
    const t = setup()
    const first = await createDomain(t.xen, t.xenstore, { type: 'pv', maxVcpus: 1, uuid: UUID })
    const second = await createDomain(t.xen, t.xenstore, { type: 'pv', maxVcpus: 1, uuid: UUID })
    // The shared /vm/UUID is opened to the second domain.
    expect(permString(await t.xenstore.getPermissions(`/vm/${UUID}/name`))).toBe(`n0,r${second}`)
    await destroyDomain(t.xen, t.xenstore, first)
    expect(await t.xenstore.directory(`/vm/${UUID}/domains`)).toEqual([String(second)])
    await destroyDomain(t.xen, t.xenstore, second)
    expect(nodesUnder(t.xenstore, '/vm', '/local/domain')).toEqual(['/local/domain', '/vm'])
  })
})
