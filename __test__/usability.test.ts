// What a user of the package meets first (issue 22): errors that say what to
// do, listeners that cannot break a build, a simulator that behaves as Xen.
import { describe, expect, it } from 'vitest'
import {
  BuildHost,
  buildDomain,
  createDomain,
  InMemoryXenstore,
  isXenDomainBuildError,
  simulateHost,
  SimulatedXenguest,
  XenDomainBuildError,
  type DomainBuildEvent,
} from '../ts/index.js'
import { LISTENER_WARNING } from '../ts/listener.js'
import { rejected } from './helpers.js'

const GIB_KIB = 1024 * 1024
const vm = { type: 'hvm' as const, staticMaxKib: GIB_KIB, targetKib: GIB_KIB, vcpus: 1 }

async function setup(simOptions: Parameters<typeof simulateHost>[0] = { preset: 'two-socket-4-node' }) {
  const sim = simulateHost(simOptions)
  const xen = sim.hypervisor()
  const host = await BuildHost.create(xen, { xenstore: new InMemoryXenstore() })
  const create = (vcpus = 1) => createDomain(xen, host.xenstore, { type: 'hvm', maxVcpus: vcpus })
  return { sim, xen, host, create }
}

/** The warnings the process emits while `work` runs. */
async function warningsDuring<T>(work: () => Promise<T>): Promise<{ result: T; warnings: Error[] }> {
  const warnings: Error[] = []
  const onWarning = (warning: Error) => warnings.push(warning)
  process.on('warning', onWarning)
  try {
    const result = await work()
    // emitWarning delivers on the next tick.
    await new Promise((r) => setImmediate(r))
    return { result, warnings }
  } finally {
    process.off('warning', onWarning)
  }
}

describe('an onEvent listener that throws', () => {
  it.each(['step', 'numa.placement', 'build.done'])('at %s: is reported as a warning, and the build is the same', async (failAt) => {
    const t = await setup()
    const types: string[] = []
    const { result: built, warnings } = await warningsDuring(async () =>
      buildDomain(t.host, await t.create(), vm, {
        xenguest: new SimulatedXenguest(t.sim),
        image: 'x',
        onEvent: (event: DomainBuildEvent) => {
          types.push(event.type)
          if (event.type === failAt) throw new Error('listener bug')
        },
      }),
    )
    expect(built.placement.claim).toBe('node')
    // The events after the throw still came.
    expect(types.at(-1)).toBe('build.done')
    expect(types).not.toContain('build.failed')
    expect(warnings.length).toBeGreaterThan(0)
    expect(warnings[0]).toMatchObject({ name: LISTENER_WARNING, cause: { message: 'listener bug' } })
    expect(warnings[0]?.message).toContain(`at a ${failAt} event`)
  })

  it('async, rejecting: is reported, not an unhandled rejection', async () => {
    const t = await setup()
    const { warnings } = await warningsDuring(async () =>
      buildDomain(t.host, await t.create(), vm, {
        xenguest: new SimulatedXenguest(t.sim),
        image: 'x',
        onEvent: async (event) => {
          if (event.type === 'build.done') throw new Error('async listener bug')
        },
      }),
    )
    expect(warnings.map((w) => (w.cause as Error).message)).toEqual(['async listener bug'])
  })
})

describe('a cancelled build', () => {
  it("is an AbortError whose cause is the signal's reason, whatever the step", async () => {
    const t = await setup()
    t.sim.injectFault({ operation: 'xc_vcpu_setaffinity', mode: 'never', latencyMs: 100 })
    const controller = new AbortController()
    const reason = new Error('the operator said stop')
    const build = buildDomain(t.host, await t.create(), vm, {
      xenguest: new SimulatedXenguest(t.sim),
      image: 'x',
      signal: controller.signal,
      onEvent: (e) => e.type === 'step' && e.step === 'shadow_allocation' && setTimeout(() => controller.abort(reason), 20),
    })
    const error = await rejected(build)
    expect(error).toMatchObject({ name: 'AbortError', code: 'ABORTED' })
    expect(error.step).toBeDefined()
    expect(error.cause).toBe(reason)
  })
})

describe('a VM with other than the vCPUs its domain was created with', () => {
  it.each([4, 1])('(%i for 2) is refused before anything is changed, saying so', async (vcpus) => {
    const t = await setup()
    const domid = await t.create(2)
    const error = await rejected(buildDomain(t.host, domid, { ...vm, vcpus }, { xenguest: new SimulatedXenguest(t.sim), image: 'x' }))
    expect(error).toMatchObject({ code: 'INVALID_ARGUMENT', step: 'domain_info', domid })
    expect(error.message).toContain(`vm.vcpus: ${vcpus}, but domain ${domid} was created with 2 vCPUs (createDomain's maxVcpus)`)
    expect((await t.xen.domainInfo(domid)).maxVcpuId).toBeUndefined()
    expect((await t.xen.physinfo()).outstandingPages).toBe(0)
  })
})

describe('memory.wait events', () => {
  it('are not sent for a build that has the memory it needs', async () => {
    const t = await setup()
    const types: string[] = []
    await buildDomain(t.host, await t.create(), vm, {
      xenguest: new SimulatedXenguest(t.sim),
      image: 'x',
      onEvent: (e) => types.push(e.type),
    })
    expect(types).toContain('step')
    expect(types).not.toContain('memory.wait')
  })
})

describe('the simulator, as Xen', () => {
  it('does not hand out a destroyed domain’s id again', async () => {
    const t = await setup()
    const first = await t.xen.createDomain({ kind: 'pv', maxVcpus: 1 })
    await t.xen.destroyDomain(first)
    const second = await t.xen.createDomain({ kind: 'pv', maxVcpus: 1 })
    expect(second).toBe(first + 1)
    expect(t.sim.domains()).toEqual([0, second])
  })

  it('keeps real time by default: memory being scrubbed comes back without anyone moving a clock', async () => {
    const sim = simulateHost({ preset: 'qemu-2-node', scrubReporting: 'xenserver', scrubPagesPerSecondPerNode: 1 << 20 })
    const xen = sim.hypervisor()
    const hog = await xen.createDomain({ kind: 'pv', maxVcpus: 1 })
    await xen.setMaxMemoryKib(hog, 2 * GIB_KIB)
    await sim.populate(hog, 2 * 262_144)
    await xen.destroyDomain(hog)
    const host = await BuildHost.create(xen, { xenstore: new InMemoryXenstore() })
    const domid = await createDomain(xen, host.xenstore, { type: 'hvm', maxVcpus: 1 })
    const built = await buildDomain(host, domid, vm, { xenguest: new SimulatedXenguest(sim), image: 'x', memoryTimeoutMs: 10_000 })
    expect(built.timingsMs.wait_for_memory).toBeGreaterThan(0)
  })

  it('refuses a fault for an operation it does not have, naming those it has', async () => {
    const t = await setup()
    let thrown: unknown
    try {
      t.sim.injectFault({ operation: 'xc_domain_claim_page', errno: 'ENOMEM', mode: 'always' })
    } catch (error) {
      thrown = error
    }
    expect(isXenDomainBuildError(thrown, 'INVALID_ARGUMENT')).toBe(true)
    expect((thrown as Error).message).toMatch(
      /"xc_domain_claim_page" is not an operation of the simulator \(one of .*xc_domain_claim_pages/,
    )
  })
})

describe('isXenDomainBuildError', () => {
  it('tests the class and, when given, the code', () => {
    const error = new XenDomainBuildError('CLOSED', 'closed')
    expect(isXenDomainBuildError(error)).toBe(true)
    expect(isXenDomainBuildError(error, 'CLOSED')).toBe(true)
    expect(isXenDomainBuildError(error, 'TIMEOUT', 'CLOSED')).toBe(true)
    expect(isXenDomainBuildError(error, 'TIMEOUT')).toBe(false)
    expect(isXenDomainBuildError(Object.assign(new Error('x'), { code: 'CLOSED' }), 'CLOSED')).toBe(false)
  })
})
