/**
 * A mass VM start on a simulated host: many whole builds at once (build_pre,
 * the simulated xenguest populating memory, build_post), and a report of
 * where every VM's memory really landed, how fast, and what it cost Node's
 * event loop. The workload of the race test, the benchmarks and the demo.
 */
import { randomUUID } from 'node:crypto'
import { monitorEventLoopDelay } from 'node:perf_hooks'
import type { VmConfig } from '../build-pre.js'
import { buildDomain, type DomainBuildEvent } from '../build.js'
import { BuildHost, type Accounting, type NumaPolicy } from '../host.js'
import { simulateHost, type SimulatedHost } from '../hypervisor.js'
import type { Placement } from '../placement.js'
import { SimulatedXenguest } from '../sim-xenguest.js'
import { bytesOfPages, kibOfMib, MIB } from '../units.js'
import { domainPath } from '../xenstore.js'

export interface StormOptions {
  preset: string
  vms: number
  /** Same seed, same VMs. */
  seed?: number
  accounting?: Accounting
  numaPolicy?: NumaPolicy
  /** XenServer's node claims, or none as upstream Xen (default: as the preset). */
  nodeClaims?: boolean
  /** How long the (simulated) domain builder takes per VM: 20 ms. */
  builderMs?: number
  /** Each build's builder time varies by up to this share either way (0.5, as the CLI). */
  builderJitter?: number
  /** Builds running at once (default: all of them). */
  concurrency?: number
  /** Takes a sample of the host every this many ms (none by default). */
  sampleEveryMs?: number
  onSample?: (sample: StormSample) => void
  /** Called as builds finish. */
  onBuild?: (vm: StormVm, done: number) => void
  onEvent?: (event: DomainBuildEvent) => void
  /**
   * VM sizes in MiB, drawn uniformly. Default: a mix of small and large VMs
   * (1, 2, 1 and 12 units) scaled so that the start fills `load` of the
   * host's memory: sizes that balancing by count alone cannot spread.
   */
  sizesMib?: readonly number[]
  /** The share of host memory the default sizes fill (0.85). */
  load?: number
  /** Exact sizes of the VMs, in MiB, one per VM (instead of drawn ones). */
  exactSizesMib?: readonly number[]
  /** vCPUs per VM (default 1 or 2). */
  vcpuChoices?: readonly number[]
}

export type VmOutcome = 'wholly' | 'spread' | 'unplaced' | 'failed'

/** Every VM of a start by outcome: the four add up to all of them. */
export type OutcomeCounts = Record<VmOutcome, number>

/** Counts VMs by outcome. */
export function countOutcomes(vms: readonly { outcome: VmOutcome }[]): OutcomeCounts {
  const counts: OutcomeCounts = { wholly: 0, spread: 0, unplaced: 0, failed: 0 }
  for (const vm of vms) counts[vm.outcome]++
  return counts
}

export interface StormVm {
  domid: number
  sizeMib: number
  vcpus: number
  placement: Placement | null
  pagesByNode: number[]
  /** All its memory is on the nodes it was planned on. */
  local: boolean
  /**
   * `wholly`: planned, and all its memory on the plan's nodes; `spread`:
   * planned, some memory elsewhere; `unplaced`: built without a plan;
   * `failed`: not built.
   */
  outcome: VmOutcome
  error?: string
  code?: string
}

/** The host during a start: for live views and reports. */
export interface StormSample {
  ms: number
  done: number
  failed: number
  /** Builds with memory promised and not yet populated. */
  inFlight: number
  nodes: { totalBytes: number; usedBytes: number; promisedBytes: number }[]
}

export interface NodeLocality {
  node: number
  /** VMs planned on this node alone. */
  planned: number
  /** Of those, VMs whose memory is all on it. */
  local: number
}

export interface StormReport {
  preset: string
  accounting: Accounting
  vms: StormVm[]
  completed: number
  failed: number
  /** Every VM by outcome (wholly on its plan, spread, unplaced, failed). */
  outcomes: OutcomeCounts
  /** Of all VMs, the share whose memory is all on their plan's nodes. */
  whollyShare: number
  /**
   * Placements that promised a build memory on a node where, with what
   * builds in flight had been promised there, it was more than Xen reported
   * free: what the planner's accounting let through. The promises count only
   * what Xen had not yet populated when it was asked.
   */
  overpromised: number
  wallMs: number
  buildsPerSecond: number
  /** Node's event-loop delay during the start (perf_hooks), in ms. */
  eventLoopDelayMs: { max: number; p99: number }
  perNode: NodeLocality[]
  samples: StormSample[]
  sim: SimulatedHost
}

/** A small seeded generator (mulberry32), so runs repeat. */
export function seededRandom(seed: number): () => number {
  let state = seed >>> 0
  return () => {
    state = (state + 0x6d2b79f5) >>> 0
    let t = state
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

const SIZE_UNITS = [1, 2, 1, 12]

function defaultSizesMib(host: BuildHost, vms: number, load: number): number[] {
  const hostMib = host.layout.nodeMemoryBytes.reduce<number>((sum, bytes) => sum + (bytes ?? 0), 0) / MIB
  const meanUnits = SIZE_UNITS.reduce((a, b) => a + b, 0) / SIZE_UNITS.length
  const unitMib = (load * hostMib) / (vms * meanUnits)
  // Whole multiples of 4 MiB, at least 32 MiB.
  return SIZE_UNITS.map((units) => Math.max(32, Math.round((units * unitMib) / 4) * 4))
}

export async function runStorm(options: StormOptions): Promise<StormReport> {
  const accounting = options.accounting ?? 'in-flight'
  const sim = simulateHost({ preset: options.preset, nodeClaims: options.nodeClaims })
  const xen = sim.hypervisor()
  // The domain builder is a process of its own (xenguest): its time passes on
  // a timer, not on one of libuv's few pool threads.
  const builderMs = options.builderMs ?? 20
  const host = await BuildHost.create(xen, { accounting, numaPolicy: options.numaPolicy ?? 'best_effort' })
  const random = seededRandom(options.seed ?? 1)
  const sizes = options.sizesMib ?? defaultSizesMib(host, options.vms, options.load ?? 0.85)
  const vcpuChoices = options.vcpuChoices ?? [1, 2]
  const pick = <T>(list: readonly T[]): T => list[Math.floor(random() * list.length)] as T
  const specs = Array.from({ length: options.vms }, (_, i) => ({
    sizeMib: options.exactSizesMib?.[i] ?? pick(sizes),
    vcpus: pick(vcpuChoices),
  }))

  const jitter = options.builderJitter ?? 0.5
  const xenguest = new SimulatedXenguest(sim, {
    builderMs: jitter > 0 ? () => builderMs * (1 - jitter + 2 * jitter * random()) : builderMs,
  })
  const build = async ({ sizeMib, vcpus }: (typeof specs)[number]): Promise<StormVm> => {
    const vm: VmConfig = { type: 'hvm', staticMaxKib: kibOfMib(sizeMib), targetKib: kibOfMib(sizeMib), vcpus }
    const domid = await xen.createDomain({ kind: 'hvm', maxVcpus: vcpus })
    // The VM path build_post writes rtc/timeoffset under, as the toolstack that made the domain would.
    await host.xenstore.write(`${domainPath(domid)}/vm`, `/vm/${randomUUID()}`)
    try {
      const built = await buildDomain(host, domid, vm, { xenguest, image: '/usr/lib/xen/boot/hvmloader', onEvent: options.onEvent })
      const pagesByNode = sim.domainPagesByNode(domid)
      const planned = new Set(built.placement.plan?.nodes ?? [])
      const local = built.placement.plan !== null && pagesByNode.every((pages, node) => pages === 0 || planned.has(node))
      const outcome = built.placement.plan === null ? 'unplaced' : local ? 'wholly' : 'spread'
      return { domid, sizeMib, vcpus, placement: built.placement, pagesByNode, local, outcome }
    } catch (error) {
      const e = error as Error & { code?: string }
      return { domid, sizeMib, vcpus, placement: null, pagesByNode: [], local: false, outcome: 'failed', error: e.message, code: e.code }
    }
  }

  const delay = monitorEventLoopDelay({ resolution: 1 })
  delay.enable()
  const started = performance.now()
  const vms: StormVm[] = new Array(specs.length)
  let next = 0
  let done = 0
  let failed = 0
  const samples: StormSample[] = []
  const takeSample = () => {
    const promised = host.promisedBytesByNode('in-flight')
    const sample: StormSample = {
      ms: performance.now() - started,
      done,
      failed,
      inFlight: host.buildsInFlight,
      nodes: sim.nodePages().map((n, i) => ({
        totalBytes: bytesOfPages(n.totalPages),
        usedBytes: bytesOfPages(n.totalPages - n.freePages),
        promisedBytes: promised[i] ?? 0,
      })),
    }
    samples.push(sample)
    options.onSample?.(sample)
  }
  const sampler = options.sampleEveryMs === undefined ? undefined : setInterval(takeSample, options.sampleEveryMs)
  if (sampler !== undefined) takeSample()
  const worker = async () => {
    while (next < specs.length) {
      const index = next++
      const vm = await build(specs[index] as (typeof specs)[number])
      vms[index] = vm
      if (vm.error !== undefined) failed++
      done++
      options.onBuild?.(vm, done)
    }
  }
  await Promise.all(Array.from({ length: Math.max(1, Math.min(options.concurrency ?? specs.length, specs.length)) }, worker))
  const wallMs = performance.now() - started
  delay.disable()
  if (sampler !== undefined) {
    clearInterval(sampler)
    takeSample()
  }
  const outcomes = countOutcomes(vms)
  const overpromised = vms.filter(({ placement: p }) =>
    (p?.nodeFreeBytes ?? []).some(
      (free, node) =>
        (p?.promisedBytesByNode[node] ?? 0) > 0 && (p?.inFlightBytesByNode?.[node] ?? 0) + (p?.promisedBytesByNode[node] ?? 0) > free,
    ),
  ).length
  const perNode = host.layout.distances.map((_, node) => {
    const onNode = vms.filter((v) => v.placement?.plan?.nodes.length === 1 && v.placement.plan.nodes[0] === node)
    return { node, planned: onNode.length, local: onNode.filter((v) => v.local).length }
  })
  return {
    preset: options.preset,
    accounting,
    vms,
    completed: vms.filter((v) => v.error === undefined).length,
    failed: vms.filter((v) => v.error !== undefined).length,
    outcomes,
    whollyShare: vms.length === 0 ? 0 : outcomes.wholly / vms.length,
    overpromised,
    wallMs,
    buildsPerSecond: (vms.length * 1000) / wallMs,
    eventLoopDelayMs: { max: delay.max / 1e6, p99: delay.percentile(99) / 1e6 },
    perNode,
    samples,
    sim,
  }
}
