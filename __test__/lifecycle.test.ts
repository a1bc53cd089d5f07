import { tracingChannel } from 'node:diagnostics_channel'
import { describe, expect, it } from 'vitest'
import { BuildHost, buildDomain, buildPre, simulateHost, SimulatedXenguest, type BuildTraceContext } from '../ts/index.js'
import { rejected } from './helpers.js'

const GIB_KIB = 1024 * 1024
const vm = { type: 'hvm' as const, staticMaxKib: GIB_KIB, targetKib: GIB_KIB, vcpus: 1 }

async function setup() {
  const sim = simulateHost({ preset: 'qemu-2-node', scrubReporting: 'xenserver' })
  const xen = sim.hypervisor()
  const host = await BuildHost.create(xen)
  const domid = await xen.createDomain({ kind: 'hvm', maxVcpus: 1 })
  await host.xenstore.write(`/local/domain/${domid}/vm`, `/vm/${domid}`)
  return { sim, xen, host, domid }
}

describe('letting go: close() and Symbol.asyncDispose', () => {
  it('a closed hypervisor rejects every operation with CLOSED, and closes twice', async () => {
    const { xen } = await setup()
    await xen[Symbol.asyncDispose]()
    xen.close()
    expect(xen.version).toEqual({ major: 4, minor: 17 })
    expect((await rejected(xen.physinfo())).code).toBe('CLOSED')
    expect((await rejected(xen.domainInfo(1))).code).toBe('CLOSED')
  })

  it('closing a build host rejects the builds waiting for memory and refuses new ones', async () => {
    const { sim, xen, host, domid } = await setup()
    // Memory waiting to be scrubbed: the build waits.
    const hog = await xen.createDomain({ kind: 'pv', maxVcpus: 1 })
    await xen.setMaxMemoryKib(hog, 2 * GIB_KIB)
    await sim.populate(hog, 2 * 262_144)
    await xen.destroyDomain(hog)
    const waiting = buildPre(host, domid, vm)
    await new Promise((r) => setTimeout(r, 30))
    await host[Symbol.asyncDispose]()
    expect(await rejected(waiting)).toMatchObject({ code: 'CLOSED', step: 'wait_for_memory' })
    expect((await rejected(buildPre(host, domid, vm))).code).toBe('CLOSED')
    expect((await xen.physinfo()).outstandingPages).toBe(0)
  })
})

describe('Node conventions', () => {
  it('a cancelled build rejects with an AbortError whose cause is the signal reason', async () => {
    const { sim, host, domid } = await setup()
    const controller = new AbortController()
    const reason = new Error('operator said stop')
    const build = buildDomain(host, domid, vm, {
      xenguest: new SimulatedXenguest(sim, { builderMs: 500 }),
      image: 'hvmloader',
      signal: controller.signal,
      onEvent: (e) =>
        e.type === 'xenguest.log' || (e.type === 'step' && e.step === 'event_channels' && setTimeout(() => controller.abort(reason), 10)),
    })
    const error = await rejected(build)
    expect(error).toMatchObject({ name: 'AbortError', code: 'ABORTED', step: 'xenguest' })
    // Node's convention, as for fetch: the cause is the reason itself.
    expect(error.cause).toBe(reason)
  })

  it('traces each build on the xen-domain-build:build tracing channel', async () => {
    const { sim, host, domid } = await setup()
    const seen: string[] = []
    const channels = tracingChannel<unknown, BuildTraceContext>('xen-domain-build:build')
    const handlers = {
      start: (c: BuildTraceContext) => seen.push(`start ${c.domid}`),
      end: () => seen.push('end'),
      asyncStart: () => seen.push('asyncStart'),
      asyncEnd: (c: BuildTraceContext) => seen.push(`asyncEnd ${c.domid}`),
      error: () => seen.push('error'),
    }
    channels.subscribe(handlers)
    try {
      await buildDomain(host, domid, vm, { xenguest: new SimulatedXenguest(sim), image: 'hvmloader' })
      await rejected(buildDomain(host, 999, vm, { xenguest: new SimulatedXenguest(sim), image: 'hvmloader' }))
    } finally {
      channels.unsubscribe(handlers)
    }
    expect(seen).toEqual([
      `start ${domid}`,
      'end',
      'asyncStart',
      `asyncEnd ${domid}`,
      'start 999',
      'end',
      'error',
      'asyncStart',
      'asyncEnd 999',
    ])
  })
})
