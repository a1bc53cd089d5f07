/**
 * The fault matrix: every hypervisor call site of a build × errnos ×
 * kinds of VM, on the simulated host with the simulated xenguest.
 *
 * The call sites are found, not listed: one clean build per kind runs through
 * a recording proxy; each call (method, how-many-th call of it) is a site, and
 * the step it belongs to is the step whose `step` event follows it. A cell
 * then fails exactly that call: the proxy injects a `once` fault on its
 * libxenctrl operation just before the call reaches the simulator.
 *
 * Each cell: the build succeeds (only where the errno is tolerated at that
 * site) or rejects with a XenDomainBuildError whose code is the errno's name
 * (XENGUEST_FAILED for the builder's own populate) and whose step is the
 * site's step; afterwards no claim anywhere, an empty ledger, and the next
 * build on the same host succeeds.
 *
 * Release-failure cells: after the claim is made, every xc_domain_claim_pages
 * fails ('always'), and a later site fails too: the build must say that its
 * claim could not be released (`claim.release.failed` event).
 *
 * Restore is a kind too: restoreDomain from a suspend image (made by
 * suspendDomain on the simulator), its sites found the same way; each cell
 * as a build's, and the failed domain destroyable. Suspend cells are below
 * (their own section says what they expect).
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { buildDomain, type DomainBuildEvent } from '../../ts/build.js'
import { createDomain } from '../../ts/domain.js'
import { restoreDomain } from '../../ts/restore.js'
import { SimulatedGuest } from '../../ts/sim-guest.js'
import { type SuspendEvent, suspendDomain } from '../../ts/suspend.js'
import { xenguestResumeArgs } from '../../ts/xenguest-protocol.js'
import { XenDomainBuildError } from '../../ts/errors.js'
import { BuildHost, type NumaPolicy } from '../../ts/host.js'
import { simulateHost, type SimulatedHost } from '../../ts/index.js'
import type { VmConfig } from '../../ts/build-pre.js'
import { SimulatedXenguest } from '../../ts/sim-xenguest.js'
import { InMemoryXenstore } from '../../ts/xenstore-memory.js'
import { brief, instrument, leaks, OPERATION, type Recorded, type Trap } from './harness.js'

const GIB_KIB = 1024 * 1024
const ERRNOS = ['EINVAL', 'ENOMEM', 'ESRCH', 'EAGAIN', 'EIO', 'EACCES', 'ENOSYS'] as const
type Errno = (typeof ERRNOS)[number]

interface Kind {
  name: string
  domain: 'hvm' | 'pv' | 'pvh'
  vm: VmConfig
  policy?: NumaPolicy
  /** PVH: the simulated builder lowers the shadow pool, so shadow_correction sets it back (one more site). */
  lowerShadowToMib?: number
  modules?: { path: string; cmdline?: string }[]
}

const KINDS: Kind[] = [
  { name: 'HVM', domain: 'hvm', vm: { type: 'hvm', staticMaxKib: GIB_KIB, targetKib: GIB_KIB, videoMib: 8, vcpus: 2 } },
  { name: 'PV', domain: 'pv', vm: { type: 'pv', staticMaxKib: GIB_KIB, targetKib: GIB_KIB, vcpus: 1 } },
  {
    name: 'PVH',
    domain: 'pvh',
    vm: { type: 'pvh', staticMaxKib: GIB_KIB, targetKib: GIB_KIB, vcpus: 1 },
    lowerShadowToMib: 1,
    modules: [{ path: '/boot/initrd', cmdline: 'quiet' }],
  },
  {
    name: 'HVM hard affinity',
    domain: 'hvm',
    vm: { type: 'hvm', staticMaxKib: GIB_KIB, targetKib: GIB_KIB, videoMib: 8, vcpus: 2, hardAffinity: [[4, 5]] },
  },
  {
    name: 'HVM policy any',
    domain: 'hvm',
    vm: { type: 'hvm', staticMaxKib: GIB_KIB, targetKib: GIB_KIB, videoMib: 8, vcpus: 2 },
    policy: 'any',
  },
]
const CONFIGS = KINDS.flatMap((kind) =>
  [true, false].map((nodeClaims) => ({ kind, nodeClaims, label: `${kind.name}, node claims ${nodeClaims ? 'on' : 'off'}` })),
)
type Config = (typeof CONFIGS)[number]

interface Site {
  method: string
  nth: number
  step: string
  /** The events that came before the call, in the clean run. */
  after: string[]
  /** Who made the call, where the fixture tells (the builder's, in a suspend). */
  by?: string
}

interface Fixture {
  sim: SimulatedHost
  host: BuildHost
  xenstore: InMemoryXenstore
  log: Recorded[]
  counts: Map<string, number>
  trap: { current?: Trap }
  xenguest: SimulatedXenguest
  domain(): Promise<number>
}

async function fixture(config: Config): Promise<Fixture> {
  const sim = simulateHost({ preset: 'two-socket-4-node', nodeClaims: config.nodeClaims })
  const log: Recorded[] = []
  const counts = new Map<string, number>()
  const trap: { current?: Trap } = {}
  const xen = instrument(sim.hypervisor(), log, counts, () => trap.current)
  const xenstore = new InMemoryXenstore()
  const host = await BuildHost.create(xen, { xenstore, numaPolicy: config.kind.policy ?? 'best_effort' })
  const simProxy = instrument(sim, log, counts, () => trap.current)
  const xenguest = new SimulatedXenguest(simProxy, { builderMs: 0, lowerShadowToMib: config.kind.lowerShadowToMib })
  const domain = async () => {
    const domid = await sim.hypervisor().createDomain({ kind: config.kind.domain, maxVcpus: config.kind.vm.vcpus })
    await xenstore.write(`/local/domain/${domid}/vm`, `/vm/vm-of-${domid}`)
    // A timer mode, so that HVM and PVH builds set it (one more site).
    await xenstore.write(`/local/domain/${domid}/platform/timer_mode`, '1')
    return domid
  }
  // BuildHost.create's own reads are not a build's.
  log.length = 0
  counts.clear()
  return { sim, host, xenstore, log, counts, trap, xenguest, domain }
}

function build(f: Fixture, config: Config, domid: number, onEvent?: (e: DomainBuildEvent) => void) {
  return buildDomain(f.host, domid, config.kind.vm, {
    xenguest: f.xenguest,
    image: 'kernel',
    cmdline: 'console=hvc0',
    modules: config.kind.modules,
    onEvent,
  })
}

/** What a cell runs on its fixture's domain: a build, or a restore from a suspend image of the kind's guest. */
interface Operation {
  name: 'build' | 'restore'
  run: (f: Fixture, config: Config, domid: number, onEvent?: (e: DomainBuildEvent) => void) => Promise<unknown>
}
const BUILD: Operation = { name: 'build', run: build }

/**
 * Runs `run` once, clean, and lists the calls `log` records as sites: a call
 * belongs to the step that ends next (`ends` says which step an event ends:
 * a build's and a restore's `step` events; a suspend's own). Each site also
 * says which events had come before it.
 */
async function discoverSites(
  log: Recorded[],
  run: (onEvent: (e: { type: string }) => void) => Promise<unknown>,
  ends: (e: { type: string }) => string | undefined,
): Promise<Site[]> {
  // Calls and step ends, interleaved: a call belongs to the step that ends next.
  const timeline: ({ call: Recorded; after: string[] } | { step: string })[] = []
  const seenEvents: string[] = []
  let seen = 0
  const flush = () => {
    for (; seen < log.length; seen++) timeline.push({ call: log[seen] as Recorded, after: [...seenEvents] })
  }
  await run((e) => {
    flush()
    seenEvents.push(e.type)
    const step = ends(e)
    if (step !== undefined) timeline.push({ step })
  })
  flush()
  const sites: Site[] = []
  let pending: { call: Recorded; after: string[] }[] = []
  for (const entry of timeline) {
    if ('call' in entry) pending.push(entry)
    else {
      for (const { call, after } of pending) sites.push({ method: call.method, nth: call.nth, step: entry.step, after, by: call.by })
      pending = []
    }
  }
  // Calls after the last step (none expected): attributed to no step.
  for (const { call, after } of pending)
    sites.push({ method: call.method, nth: call.nth, step: '(after the last step)', after, by: call.by })
  return sites
}

const stepEnds = (e: { type: string }) => (e.type === 'step' ? (e as { type: string; step?: string }).step : undefined)

/** Runs one clean build (or restore) and lists its call sites, each with its step. */
async function discover(config: Config, op: Operation = BUILD): Promise<Site[]> {
  const f = await fixture(config)
  const domid = await f.domain()
  f.log.length = 0
  f.counts.clear()
  return discoverSites(f.log, (onEvent) => op.run(f, config, domid, onEvent), stepEnds)
}

/** Where the build is meant to go on despite the errno. */
function tolerated(site: Site, errno: Errno, config: Config): boolean {
  switch (site.method) {
    // Node claim: ENOMEM → no node placement; anything else → no node claims here. Both go on.
    case 'claimPagesOnNode':
      return true
    // Host-wide claim: anything but ENOMEM means "this Xen has no claims". After
    // the builder, releasing what is left of the claim is retried, and a
    // failure that lasts is an event, not a failed build.
    case 'claimPages':
      return errno !== 'ENOMEM' || site.step === 'claim_release'
    // Node memory unavailable: no placement, a host-wide claim still (not on the hard-affinity path).
    case 'numaInfo':
      return site.step === 'numa_placement' && config.kind.vm.hardAffinity === undefined
    // The memory watcher retries an error that may pass (EAGAIN, ENOMEM, ...).
    case 'physinfo':
      return errno === 'EAGAIN' || errno === 'ENOMEM'
    default:
      return false
  }
}

interface Cell {
  config: string
  site: string
  errno: string
  outcome: string
  problems: string[]
}

const summary = { cells: 0, bad: 0, built: 0, releaseCells: 0, releaseBad: 0, reruns: 0 }
const badCells: Cell[] = []
const badReleaseCells: Cell[] = []

const imageDir = mkdtempSync(join(tmpdir(), 'xdb-fault-matrix-'))

afterAll(() => {
  rmSync(imageDir, { recursive: true, force: true })
  console.log(
    `fault matrix: ${summary.cells} cells tried (${summary.built} built despite the fault, ${summary.cells - summary.built} rejected), ${summary.bad} bad; release-failure cells: ${summary.releaseCells} tried, ${summary.releaseBad} bad; suspend cells run again (their fault taken by the guest): ${summary.reruns}`,
  )
})

/** After a cell: faults off, no claim, empty ledger, and a next build that succeeds. */
async function afterCell(f: Fixture, config: Config, domids: number[], problems: string[], op: Operation = BUILD): Promise<void> {
  f.trap.current = undefined
  f.sim.clearFaults()
  problems.push(...(await leaks(f.sim, f.host, domids)))
  if (op.name === 'restore') {
    // A failed restore leaves a domain that can be destroyed, and its destruction leaves nothing.
    for (const domid of domids) {
      await f.sim
        .hypervisor()
        .destroyDomain(domid)
        .catch((error: unknown) => problems.push(`domain ${domid} cannot be destroyed: ${brief(error)}`))
    }
    problems.push(...(await leaks(f.sim, f.host)).map((p) => `after destroying it: ${p}`))
  }
  const next = await f.domain()
  try {
    await op.run(f, config, next)
  } catch (error) {
    problems.push(`the next ${op.name} failed: ${brief(error)}`)
  }
  problems.push(...(await leaks(f.sim, f.host, [next])).map((p) => `after the next build: ${p}`))
}

async function runCell(config: Config, site: Site, errno: Errno, op: Operation = BUILD): Promise<Cell> {
  const f = await fixture(config)
  const domid = await f.domain()
  f.log.length = 0
  f.counts.clear()
  const operation = OPERATION[site.method]
  const problems: string[] = []
  if (operation === undefined) problems.push(`no libxenctrl operation known for method ${site.method}`)
  f.trap.current = {
    method: site.method,
    nth: site.nth,
    arm: () => f.sim.injectFault({ operation: operation ?? site.method, errno, mode: 'once' }),
  }
  let outcome: string
  try {
    await op.run(f, config, domid)
    outcome = 'built'
    if (!tolerated(site, errno, config)) problems.push(`built, though ${errno} at ${site.method}#${site.nth} is not tolerated there`)
  } catch (error) {
    outcome = brief(error)
    const expectedCode = site.method === 'populate' ? 'XENGUEST_FAILED' : errno
    if (!(error instanceof XenDomainBuildError)) problems.push(`not a XenDomainBuildError: ${outcome}`)
    else {
      if (error.code !== expectedCode) problems.push(`code ${error.code}, expected ${expectedCode}`)
      if (error.step !== site.step) problems.push(`step ${String(error.step)}, expected ${site.step}`)
      if (error.domid !== domid) problems.push(`domid ${String(error.domid)}, expected ${domid}`)
      if (expectedCode === errno && error.operation !== operation)
        problems.push(`operation ${String(error.operation)}, expected ${operation}`)
    }
  }
  await afterCell(f, config, [domid], problems, op)
  return { config: config.label, site: `${site.method}#${site.nth}@${site.step}`, errno, outcome, problems }
}

/**
 * A release-failure cell: once the build has its claim, every
 * xc_domain_claim_pages fails with `releaseErrno`, and `site` fails with `errno`.
 */
async function runReleaseCell(config: Config, site: Site, errno: Errno, releaseErrno: Errno): Promise<Cell> {
  const f = await fixture(config)
  const domid = await f.domain()
  f.log.length = 0
  f.counts.clear()
  const operation = OPERATION[site.method] ?? site.method
  const problems: string[] = []
  const events: DomainBuildEvent[] = []
  f.trap.current = { method: site.method, nth: site.nth, arm: () => f.sim.injectFault({ operation, errno, mode: 'once' }) }
  let outcome = 'built'
  let claim: string | undefined
  try {
    await build(f, config, domid, (e) => {
      events.push(e)
      if (e.type === 'numa.placement') {
        claim = e.placement.claim
        // The claim is made: from now on, releasing it fails.
        f.sim.injectFault({ operation: 'xc_domain_claim_pages', errno: releaseErrno, mode: 'always' })
      }
    })
    problems.push('built, though a later site failed')
  } catch (error) {
    outcome = brief(error)
    if (!(error instanceof XenDomainBuildError)) problems.push(`not a XenDomainBuildError: ${outcome}`)
  }
  if (claim !== 'node' && claim !== 'host') problems.push(`no claim was made (${String(claim)}): not a release-failure cell`)
  const event = events.find((e) => (e as { type: string }).type === 'claim.release.failed') as
    | { type: 'claim.release.failed'; domid: number; error: unknown }
    | undefined
  if (event === undefined) {
    problems.push('no claim.release.failed event: the failed release was silent')
  } else {
    if (event.domid !== domid) problems.push(`claim.release.failed domid ${event.domid}, expected ${domid}`)
    const e = event.error as { code?: string } | undefined
    if (!(e instanceof XenDomainBuildError) || e.code !== releaseErrno)
      problems.push(`claim.release.failed error ${brief(e)}, expected code ${releaseErrno}`)
  }
  // The claim may be stuck now (Xen refused to drop it): destroying the domain drops it.
  f.trap.current = undefined
  f.sim.clearFaults()
  await f.sim.hypervisor().destroyDomain(domid)
  await afterCell(f, config, [], problems)
  return { config: config.label, site: `${site.method}#${site.nth}@${site.step} + release ${releaseErrno}`, errno, outcome, problems }
}

const sitesOf = new Map<string, Site[]>()

describe('fault matrix: every call site × errno × kind', () => {
  it('finds the call sites of each kind of build', async () => {
    for (const config of CONFIGS) {
      const sites = await discover(config)
      sitesOf.set(config.label, sites)
      expect(sites.length, config.label).toBeGreaterThan(5)
      for (const site of sites) expect(OPERATION[site.method], `${config.label}: ${site.method}`).toBeDefined()
    }
    // Every kind reaches the hypervisor in the steps it should.
    const steps = (label: string) => new Set(sitesOf.get(label)?.map((s) => s.step))
    expect([...steps('HVM, node claims on')]).toEqual(
      expect.arrayContaining([
        'domain_info',
        'wait_for_memory',
        'timer_mode',
        'max_vcpus',
        'shadow_allocation',
        'numa_placement',
        'event_channels',
        'xenguest',
        'shadow_correction',
      ]),
    )
    expect([...steps('PV, node claims off')]).toEqual(expect.arrayContaining(['memmap_limit', 'numa_placement']))
    expect([...steps('HVM hard affinity, node claims on')]).toContain('hard_affinity')
  })

  for (const config of CONFIGS) {
    it(`${config.label}: each site × ${ERRNOS.join(', ')}`, async () => {
      const sites = sitesOf.get(config.label) ?? (await discover(config))
      const bad: Cell[] = []
      for (const site of sites) {
        for (const errno of ERRNOS) {
          const cell = await runCell(config, site, errno)
          summary.cells++
          if (cell.outcome === 'built') summary.built++
          if (cell.problems.length > 0) {
            summary.bad++
            bad.push(cell)
          }
        }
      }
      badCells.push(...bad)
      expect(bad.map((c) => `${c.site} ${c.errno} → ${c.outcome}: ${c.problems.join('; ')}`)).toEqual([])
    })
  }
})

describe('fault matrix: the claim release fails too', () => {
  const withClaims = CONFIGS.filter((c) => c.kind.policy !== 'any' && c.kind.vm.hardAffinity === undefined)
  for (const config of withClaims) {
    it(`${config.label}: a later site fails and so does every release of the claim`, async () => {
      const sites = sitesOf.get(config.label) ?? (await discover(config))
      const placed = sites.findIndex((s) => s.step === 'numa_placement')
      const later = sites.slice(placed).filter((s) => s.step !== 'numa_placement' && s.method !== 'claimPages')
      expect(later.length).toBeGreaterThan(0)
      // Each cell has a host of its own, and most of its time is the release's
      // retry delays: the cells run at once.
      const cells = await Promise.all(
        later.flatMap((site) => ERRNOS.map((errno, i) => runReleaseCell(config, site, errno, ERRNOS[(i + 1) % ERRNOS.length] as Errno))),
      )
      const bad = cells.filter((cell) => cell.problems.length > 0)
      summary.releaseCells += cells.length
      summary.releaseBad += bad.length
      badReleaseCells.push(...bad)
      expect(bad.map((c) => `${c.site} ${c.errno} → ${c.outcome}: ${c.problems.join('; ')}`)).toEqual([])
    })
  }
})

describe('fault matrix: a fault that does not go away', () => {
  for (const errno of ['EAGAIN', 'EIO'] as const) {
    it(`physinfo fails with ${errno} on every call: the wait for memory ends (no endless retry) and nothing leaks`, async () => {
      const config = CONFIGS[0] as Config
      const f = await fixture(config)
      const domid = await f.domain()
      f.sim.injectFault({ operation: 'xc_physinfo', errno, mode: 'always' })
      const started = performance.now()
      let outcome: unknown
      try {
        await buildDomain(f.host, domid, config.kind.vm, { xenguest: f.xenguest, image: 'kernel', memoryTimeoutMs: 500 })
        outcome = 'built'
      } catch (error) {
        outcome = error
      }
      const ms = performance.now() - started
      expect(outcome, brief(outcome)).toBeInstanceOf(XenDomainBuildError)
      expect(outcome).toMatchObject({ step: 'wait_for_memory', domid })
      expect(['EAGAIN', 'EIO', 'TIMEOUT', 'NOT_ENOUGH_MEMORY']).toContain((outcome as XenDomainBuildError).code)
      // A generous "did not hang" bound: the memory timeout is 500 ms.
      expect(ms).toBeLessThan(10_000)
      const problems: string[] = []
      await afterCell(f, config, [domid], problems)
      expect(problems).toEqual([])
    })
  }
})

// ------------------------------------------------------------------ restore

/**
 * A suspend image of a running guest of `type`, made by suspendDomain on a
 * host of its own: what the restore cells restore.
 */
async function makeImage(type: 'pv' | 'pvh', vm: VmConfig): Promise<string> {
  const sim = simulateHost({ preset: 'two-socket-4-node' })
  const xen = sim.hypervisor()
  const host = await BuildHost.create(xen)
  const xenguest = new SimulatedXenguest(sim, { builderMs: 0 })
  const domid = await createDomain(xen, host.xenstore, { type, maxVcpus: vm.vcpus, name: `image-${type}` })
  await buildDomain(host, domid, vm, { xenguest, image: 'kernel' })
  await xen.unpauseDomain(domid)
  const guest = new SimulatedGuest(sim, host.xenstore, domid, { reactionMs: 1 })
  const path = join(imageDir, `${type}.img`)
  try {
    await suspendDomain(xen, host.xenstore, domid, path, { xenguest, vm })
  } finally {
    await guest.stop()
  }
  return path
}

const images = new Map<string, Promise<string>>()
function imageOf(kind: Kind): Promise<string> {
  const type = kind.domain === 'pv' ? 'pv' : 'pvh'
  let image = images.get(type)
  if (image === undefined) {
    image = makeImage(type, kind.vm)
    images.set(type, image)
  }
  return image
}

const RESTORE: Operation = {
  name: 'restore',
  run: async (f, config, domid, onEvent) =>
    restoreDomain(f.host, domid, config.kind.vm, await imageOf(config.kind), { xenguest: f.xenguest, onEvent }),
}
/** The kinds a restore restores: PV and PVH (an HVM guest's device model is the toolstack's). */
const RESTORE_CONFIGS = CONFIGS.filter((c) => c.kind.name === 'PV' || c.kind.name === 'PVH')
const restoreSitesOf = new Map<string, Site[]>()

describe('fault matrix: restore, every call site × errno × kind', () => {
  it('finds the call sites of each kind of restore', async () => {
    for (const config of RESTORE_CONFIGS) {
      // The image is read before anything else: made outside the recording.
      await imageOf(config.kind)
      const sites = await discover(config, RESTORE)
      restoreSitesOf.set(config.label, sites)
      for (const site of sites) expect(OPERATION[site.method], `${config.label}: ${site.method}`).toBeDefined()
      // A restore reaches the hypervisor in a build's steps, its builder populating as a build's.
      expect([...new Set(sites.map((s) => s.step))], config.label).toEqual(
        expect.arrayContaining(['domain_info', 'wait_for_memory', 'max_vcpus', 'numa_placement', 'event_channels', 'xenguest']),
      )
      expect(sites.some((s) => s.method === 'populate' && s.step === 'xenguest')).toBe(true)
    }
  })

  for (const config of RESTORE_CONFIGS) {
    it(`${config.label}: each site × ${ERRNOS.join(', ')}: its code, the claim released, the domain destroyable`, async () => {
      await imageOf(config.kind)
      const sites = restoreSitesOf.get(config.label) ?? (await discover(config, RESTORE))
      const bad: Cell[] = []
      for (const site of sites) {
        for (const errno of ERRNOS) {
          const cell = await runCell(config, site, errno, RESTORE)
          summary.cells++
          if (cell.outcome === 'built') summary.built++
          if (cell.problems.length > 0) {
            summary.bad++
            bad.push(cell)
          }
        }
      }
      badCells.push(...bad)
      expect(bad.map((c) => `${c.site} ${c.errno} → ${c.outcome}: ${c.problems.join('; ')}`)).toEqual([])
    })
  }
})

// ------------------------------------------------------------------ suspend

/**
 * Suspend cells: a running guest (SimulatedGuest) is suspended, and one call
 * of the clean run's fails. The builder's own calls (its domainInfo checks,
 * its resume) go through the recording proxy too, marked as its: they are
 * sites as a build's populate is, and fail as XENGUEST_FAILED. A suspend has
 * no `step` events: `suspend.requested` ends the `domain_info` step (the
 * image header and the request make no hypercalls) and `suspend.done` the
 * `save` step (the end of the image makes none).
 *
 * Each cell: the suspend rejects with the call's code and step, the request
 * is not left in the store, and the guest ends running
 * (`shutdownReason` undefined): resumed (`suspend.failed` says `resumed`)
 * if it had acknowledged, never suspended otherwise; then the next suspend of
 * the same guest succeeds and the domain can be destroyed.
 *
 * Resume-failure cells: a site of the save fails and so does every
 * xc_domain_resume. The guest is then left suspended, and the suite expects
 * it so: Xen refused the only way back, a guest that shut down for suspend
 * cannot run on by itself, and destroying it would lose it. What the suite
 * asks is that the caller is told (`suspend.failed` with `resumed: false`,
 * the first error, not the resume's, rejected), and that a later resume (the
 * builder's `-mode resume`, faults gone) brings it back, after which it
 * suspends again.
 *
 * The guest's own polling of domainInfo is not the toolstack's and is not
 * recorded; a `once` fault it happens to take is retried by it (a real
 * guest kernel makes no such call), and the cell is run again.
 */
interface SuspendConfig {
  label: string
  type: 'pv' | 'pvh'
  live: boolean
}
const SUSPEND_CONFIGS: SuspendConfig[] = (['pv', 'pvh'] as const).flatMap((type) =>
  [false, true].map((live) => ({ label: `${type.toUpperCase()}, ${live ? 'live' : 'not live'}`, type, live })),
)
const suspendVm = (type: 'pv' | 'pvh'): VmConfig => ({ type, staticMaxKib: 256 * 1024, targetKib: 256 * 1024, vcpus: 1 })

interface SuspendFixture {
  sim: SimulatedHost
  xen: ReturnType<SimulatedHost['hypervisor']>
  xenstore: InMemoryXenstore
  log: Recorded[]
  counts: Map<string, number>
  trap: { current?: Trap }
  xenguest: SimulatedXenguest
  domid: number
  /** Whether a fault is armed for the call under test (the guest's polls wait). */
  armed: { value: boolean }
  stop(): Promise<void>
}

async function suspendFixture(config: SuspendConfig): Promise<SuspendFixture> {
  // Shadow paging, which a PV guest's live save needs (the preset, as Debian's Xen, has none).
  const sim = simulateHost({ preset: 'qemu-2-node', shadowPaging: true })
  const raw = sim.hypervisor()
  const log: Recorded[] = []
  const counts = new Map<string, number>()
  const trap: { current?: Trap } = {}
  const xen = instrument(raw, log, counts, () => trap.current)
  const xenstore = new InMemoryXenstore()
  const host = await BuildHost.create(xen, { xenstore })
  const builderXen = instrument(raw, log, counts, () => trap.current, 'builder')
  const builderSim = instrument(sim, log, counts, () => trap.current, 'builder')
  const builderHost = new Proxy(builderSim, {
    get: (object, property, receiver) => (property === 'hypervisor' ? () => builderXen : Reflect.get(object, property, receiver)),
  })
  const xenguest = new SimulatedXenguest(builderHost, { builderMs: 0 })
  const vm = suspendVm(config.type)
  const domid = await createDomain(raw, xenstore, { type: config.type, maxVcpus: 1, name: 'suspended' })
  await buildDomain(host, domid, vm, { xenguest, image: 'kernel' })
  await raw.unpauseDomain(domid)
  // The guest's kernel polls too: it holds off while a fault is armed for
  // the call under test, so that the fault goes there (a poll already in
  // flight can still take it: the cell then runs again).
  const armed = { value: false }
  const guestHost = {
    hypervisor: () => ({
      domainInfo: async (id: number) => {
        while (armed.value) await new Promise((r) => setTimeout(r, 1))
        for (let i = 0; ; i++) {
          try {
            return await raw.domainInfo(id)
          } catch (error) {
            if (i >= 3 || !sim.domains().includes(id)) throw error
          }
        }
      },
    }),
    shutdownDomain: (id: number, reason: 'suspend') => sim.shutdownDomain(id, reason),
  } as unknown as SimulatedHost
  // Every 5 ms: a poll in flight when the fault is armed can take it (the cell then runs again).
  const guest = new SimulatedGuest(guestHost, xenstore, domid, { reactionMs: 5 })
  log.length = 0
  counts.clear()
  return { sim, xen, xenstore, log, counts, trap, armed, xenguest, domid, stop: () => guest.stop() }
}

let imageCount = 0
function suspend(f: SuspendFixture, config: SuspendConfig, onEvent?: (e: SuspendEvent) => void) {
  return suspendDomain(f.xen, f.xenstore, f.domid, join(imageDir, `suspend-${imageCount++}.img`), {
    xenguest: f.xenguest,
    vm: suspendVm(config.type),
    live: config.live,
    onEvent,
    ackTimeoutMs: 2000,
    suspendedTimeoutMs: 2000,
  })
}

const suspendEnds = (e: { type: string }) =>
  e.type === 'suspend.requested' ? 'domain_info' : e.type === 'suspend.done' ? 'save' : undefined

async function discoverSuspend(config: SuspendConfig): Promise<Site[]> {
  const f = await suspendFixture(config)
  try {
    return await discoverSites(f.log, (onEvent) => suspend(f, config, onEvent), suspendEnds)
  } finally {
    await f.stop()
  }
}

async function runSuspendCell(config: SuspendConfig, site: Site, errno: Errno, resumeErrno?: Errno): Promise<Cell> {
  const label = `${site.by === undefined ? '' : `${site.by}'s `}${site.method}#${site.nth}@${site.step}${resumeErrno === undefined ? '' : ` + resume ${resumeErrno}`}`
  const operation = OPERATION[site.method] ?? site.method
  let lost = ''
  for (let attempt = 0; attempt < 6; attempt++) {
    const f = await suspendFixture(config)
    const problems: string[] = []
    let failed: boolean | undefined
    f.trap.current = {
      method: site.method,
      nth: site.nth,
      arm: () => {
        f.armed.value = true
        f.sim.injectFault({ operation, errno, mode: 'once' })
      },
      settled: (x) => {
        f.armed.value = false
        failed = x
      },
    }
    if (resumeErrno !== undefined) f.sim.injectFault({ operation: 'xc_domain_resume', errno: resumeErrno, mode: 'always' })
    const events: SuspendEvent[] = []
    let outcome = 'suspended'
    try {
      await suspend(f, config, (e) => events.push(e))
      problems.push(`suspended, though ${errno} at ${site.method}#${site.nth} failed`)
    } catch (error) {
      outcome = brief(error)
      const expectedCode = site.by === 'builder' ? 'XENGUEST_FAILED' : errno
      if (!(error instanceof XenDomainBuildError)) problems.push(`not a XenDomainBuildError: ${outcome}`)
      else {
        if (error.code !== expectedCode) problems.push(`code ${error.code}, expected ${expectedCode}`)
        if (error.step !== site.step) problems.push(`step ${String(error.step)}, expected ${site.step}`)
        if (error.domid !== f.domid) problems.push(`domid ${String(error.domid)}, expected ${f.domid}`)
      }
    }
    f.trap.current = undefined
    f.sim.clearFaults()
    if (failed !== true) {
      // The fault went to the guest's own polling, or the site was not reached: again.
      lost = `the trapped call ${failed === undefined ? 'was not reached' : 'did not take the fault'} (${outcome})`
      summary.reruns++
      await f.stop()
      continue
    }
    const raw = f.sim.hypervisor()
    const acknowledged = site.step === 'save'
    const expectResumed = acknowledged && resumeErrno === undefined
    const failure = events.find((e) => e.type === 'suspend.failed')
    if (failure === undefined) problems.push('no suspend.failed event')
    else if (failure.resumed !== expectResumed) problems.push(`suspend.failed resumed ${failure.resumed}, expected ${expectResumed}`)
    const request = await f.xenstore.read(`/local/domain/${f.domid}/control/shutdown`)
    if (request === 'suspend') problems.push('the request to suspend is left in the store')
    let reason = (await raw.domainInfo(f.domid)).shutdownReason
    if (resumeErrno !== undefined && acknowledged) {
      // Xen refused the resume: the guest is left suspended, and a later resume brings it back.
      if (reason !== 'suspend') problems.push(`shutdownReason ${String(reason)} after a refused resume, expected suspend`)
      await f.xenguest.run(xenguestResumeArgs(f.domid)).catch((error: unknown) => problems.push(`the later resume failed: ${brief(error)}`))
      reason = (await raw.domainInfo(f.domid)).shutdownReason
    }
    if (reason !== undefined) problems.push(`the guest is not running: shutdownReason ${reason}`)
    // The guest runs on, and takes the next request: it suspends.
    try {
      await suspend(f, config)
      const after = (await raw.domainInfo(f.domid)).shutdownReason
      if (after !== 'suspend') problems.push(`after the next suspend, shutdownReason ${String(after)}`)
    } catch (error) {
      problems.push(`the next suspend failed: ${brief(error)}`)
    }
    await raw.destroyDomain(f.domid).catch((error: unknown) => problems.push(`the domain cannot be destroyed: ${brief(error)}`))
    if (f.sim.domains().includes(f.domid)) problems.push('the domain is still there after its destruction')
    await f.stop()
    return { config: config.label, site: label, errno, outcome, problems }
  }
  return { config: config.label, site: label, errno, outcome: 'not run', problems: [`six times: ${lost}`] }
}

const suspendSitesOf = new Map<string, Site[]>()

describe('fault matrix: suspend, every call site × errno × kind', () => {
  it('finds the call sites of each kind of suspend', async () => {
    for (const config of SUSPEND_CONFIGS) {
      const sites = await discoverSuspend(config)
      suspendSitesOf.set(config.label, sites)
      for (const site of sites) expect(OPERATION[site.method], `${config.label}: ${site.method}`).toBeDefined()
      // The toolstack's check of the domain, its wait for Xen to report it
      // suspended, and the builder's checks before and after.
      const described = sites.map((s) => `${s.by ?? 'toolstack'} ${s.method}@${s.step}`)
      expect(described, config.label).toEqual(
        expect.arrayContaining(['toolstack domainInfo@domain_info', 'toolstack domainInfo@save', 'builder domainInfo@save']),
      )
      expect(
        sites.some((s) => s.by === 'builder' && s.after.includes('suspend.suspended')),
        `${config.label}: a site after the guest suspended`,
      ).toBe(true)
    }
  })

  for (const config of SUSPEND_CONFIGS) {
    it(`${config.label}: each site × ${ERRNOS.join(', ')}: its code, and the guest running`, async () => {
      const sites = suspendSitesOf.get(config.label) ?? (await discoverSuspend(config))
      const bad: Cell[] = []
      for (const site of sites) {
        for (const errno of ERRNOS) {
          const cell = await runSuspendCell(config, site, errno)
          summary.cells++
          if (cell.problems.length > 0) {
            summary.bad++
            bad.push(cell)
          }
        }
      }
      badCells.push(...bad)
      expect(bad.map((c) => `${c.site} ${c.errno} → ${c.outcome}: ${c.problems.join('; ')}`)).toEqual([])
    })

    it(`${config.label}: a site of the save fails and so does every resume: left suspended, the caller told`, async () => {
      const sites = (suspendSitesOf.get(config.label) ?? (await discoverSuspend(config))).filter((s) => s.step === 'save')
      expect(sites.length).toBeGreaterThan(0)
      const cells = await Promise.all(
        sites.flatMap((site) => ERRNOS.map((errno, i) => runSuspendCell(config, site, errno, ERRNOS[(i + 1) % ERRNOS.length] as Errno))),
      )
      const bad = cells.filter((cell) => cell.problems.length > 0)
      summary.releaseCells += cells.length
      summary.releaseBad += bad.length
      badReleaseCells.push(...bad)
      expect(bad.map((c) => `${c.site} ${c.errno} → ${c.outcome}: ${c.problems.join('; ')}`)).toEqual([])
    })
  }
})
