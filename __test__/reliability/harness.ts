/**
 * What the reliability suites share: the map from the Hypervisor's methods to
 * the libxenctrl operations the simulator injects faults on, a proxy that
 * records calls and can fail the k-th call of a method, and the "nothing
 * leaked" checks.
 */
import { expect } from 'vitest'
import type { BuildHost } from '../../ts/host.js'
import type { SimulatedHost } from '../../ts/index.js'

/** Hypervisor (and SimulatedHost) method → the libxenctrl operation name of `enter("...")` in crates/xen-sim. */
export const OPERATION: Readonly<Record<string, string>> = {
  physinfo: 'xc_physinfo',
  numaInfo: 'xc_numainfo',
  cpuTopology: 'xc_cputopoinfo',
  domainInfo: 'xc_domain_getinfolist',
  setHvmParam: 'xc_hvm_param_set',
  setMaxVcpus: 'xc_domain_max_vcpus',
  setMemmapLimit: 'xc_domain_set_memmap_limit',
  setMaxMemoryKib: 'xc_domain_setmaxmem',
  shadowAllocationMib: 'xc_shadow_control',
  setShadowAllocationMib: 'xc_shadow_control',
  setVcpuAffinity: 'xc_vcpu_setaffinity',
  vcpuAffinity: 'xc_vcpu_getaffinity',
  claimPages: 'xc_domain_claim_pages',
  claimPagesOnNode: 'claim_pages_on_node',
  allocUnboundEvtchn: 'xc_evtchn_alloc_unbound',
  createDomain: 'xc_domain_create',
  destroyDomain: 'xc_domain_destroy',
  unpauseDomain: 'xc_domain_unpause',
  populate: 'xc_domain_populate_physmap_exact',
  resumeDomain: 'xc_domain_resume',
  shutdownDomain: 'xc_domain_shutdown',
}

/** Methods that only read host state (allowed before an input refusal). */
export const READS = new Set(['physinfo', 'numaInfo', 'cpuTopology'])

/** Methods of the proxied objects that are not hypervisor calls. */
const NOT_CALLS = new Set([
  'then',
  'constructor',
  'toJSON',
  'clockMs',
  'nodePages',
  'domainPagesByNode',
  'nodeAffinity',
  'domains',
  'hypervisor',
  'injectFault',
  'clearFaults',
  'seedFaults',
  'advanceClock',
])

export interface Recorded {
  method: string
  /** The how-many-th call of this method (0-based), through this proxy. */
  nth: number
  args: unknown[]
  /** Who made it, as `instrument` was told (the builder's calls, where a suite tells them apart). */
  by?: string
}

export interface Trap {
  method: string
  nth: number
  /** Called just before the trapped call reaches the simulator. */
  arm: () => void
  /** Called once the trapped call settles: whether it failed (the fault may have gone to a concurrent caller). */
  settled?: (failed: boolean) => void
}

/**
 * A proxy of `target` that records every call (reads included) into `log`,
 * and runs `trap.arm()` right before the `trap.nth`-th call of `trap.method`.
 */
export function instrument<T extends object>(
  target: T,
  log: Recorded[],
  counts: Map<string, number>,
  trap?: () => Trap | undefined,
  by?: string,
): T {
  return new Proxy(target, {
    get(object, property) {
      const value = Reflect.get(object, property, object)
      if (typeof value !== 'function' || typeof property !== 'string' || NOT_CALLS.has(property)) {
        return typeof value === 'function' ? value.bind(object) : value
      }
      return (...args: unknown[]) => {
        const nth = counts.get(property) ?? 0
        counts.set(property, nth + 1)
        log.push({ method: property, nth, args, ...(by === undefined ? {} : { by }) })
        const t = trap?.()
        const trapped = t !== undefined && t.method === property && t.nth === nth
        if (trapped) t.arm()
        const result = (value as (...a: unknown[]) => unknown).apply(object, args)
        if (trapped && t.settled !== undefined && result instanceof Promise) {
          const settled = t.settled
          result.then(
            () => settled(false),
            () => settled(true),
          )
        }
        return result
      }
    },
  })
}

/** Claims left anywhere, and the host's ledger: all must be empty. */
export async function leaks(sim: SimulatedHost, host: BuildHost, domids: readonly number[] = []): Promise<string[]> {
  const xen = sim.hypervisor()
  const found: string[] = []
  for (const domid of domids) {
    const info = await xen.domainInfo(domid).catch(() => null)
    if (info !== null && info.outstandingPages !== 0) found.push(`domain ${domid} outstandingPages ${info.outstandingPages}`)
  }
  const nodes = sim.nodePages()
  nodes.forEach((n, i) => {
    if (n.claimedPages !== 0) found.push(`node ${i} claimedPages ${n.claimedPages}`)
  })
  const physinfo = await xen.physinfo()
  if (physinfo.outstandingPages !== 0) found.push(`physinfo outstandingPages ${physinfo.outstandingPages}`)
  if (host.buildsInFlight !== 0) found.push(`host.buildsInFlight ${host.buildsInFlight}`)
  const ledger = (host as unknown as { ledger?: { openCount?: number } }).ledger
  if (ledger?.openCount !== undefined && ledger.openCount !== 0) found.push(`host.ledger.openCount ${ledger.openCount}`)
  return found
}

export async function expectNoLeaks(sim: SimulatedHost, host: BuildHost, domids: readonly number[] = []): Promise<void> {
  expect(await leaks(sim, host, domids)).toEqual([])
}

/** A small seeded generator (mulberry32), for the suites that are not fast-check. */
export function seeded(seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

/** A short description of an error for reports. */
export function brief(error: unknown): string {
  if (error === null || typeof error !== 'object') return String(error)
  const e = error as { name?: string; code?: string; step?: string; message?: string }
  return `${e.name ?? '?'}(${e.code ?? '-'}${e.step === undefined ? '' : `@${e.step}`}): ${String(e.message).slice(0, 160)}`
}
