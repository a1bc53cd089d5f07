/**
 * The simulated host's domain builder: it reads xenguest's arguments,
 * populates the domain's memory as the domain builder does (the simulator
 * allocates from the `-mem_pnode` node only, else the claimed node, else the
 * affine nodes, else anywhere), takes a configurable time on a timer, and
 * answers like xenguest. Like a real builder it populates early in its run
 * (xc_dom_boot_mem_init comes before the kernel is loaded and the guest set
 * up), so Xen counts the memory for the rest of the run before the builder
 * exits.
 */
import type { XenDomainBuildError } from './errors.js'
import { delay } from './timers.js'
import { pagesOfMib } from './units.js'
import type { SimulatedHost } from './hypervisor.js'
import { xenguestFailed, type XenguestResult, type XenguestRunner, type XenguestRunOptions } from './xenguest-protocol.js'

/** How the simulated builder behaves. */
export interface SimulatedXenguestOptions {
  /** How long a build takes (20 ms), or a function that says, per build. */
  builderMs?: number | (() => number)
  /** Like some HVM builders: leave the shadow pool at this size (MiB). */
  lowerShadowToMib?: number
  /** The share of its time the builder spends before it populates memory: 0.2. */
  populateAtShare?: number
  /** Whether it allocates from one node by itself given `-mem_pnode` (ours does): true. */
  pinsNode?: boolean
}

/** How many populate calls a simulated build makes: Xen counts its memory as it grows. */
const POPULATE_BATCHES = 8

function argument(args: readonly string[], name: string): string | undefined {
  const i = args.indexOf(name)
  return i >= 0 ? args[i + 1] : undefined
}

/**
 * The simulated host's domain builder: it populates the domain's memory as
 * the real builder does (claimed node, else affine nodes, else anywhere),
 * takes `builderMs`, and answers as xenguest.
 */
export class SimulatedXenguest implements XenguestRunner {
  /** Its images are names: the simulated host has no files. */
  readonly readsHostFiles = false
  readonly #sim: SimulatedHost
  readonly #options: SimulatedXenguestOptions
  /** The arguments of the latest runs (at most KEPT_RUNS), oldest first. */
  readonly runs: string[][] = []
  /** How many runs `runs` keeps: a long-lived host must not grow with every build. */
  static readonly KEPT_RUNS = 100

  constructor(sim: SimulatedHost, options: SimulatedXenguestOptions = {}) {
    this.#sim = sim
    this.#options = options
  }

  async run(args: readonly string[], options: XenguestRunOptions = {}): Promise<XenguestResult | null> {
    this.runs.push([...args])
    if (this.runs.length > SimulatedXenguest.KEPT_RUNS) this.runs.shift()
    const domid = Number(argument(args, '-domid'))
    const startMib = Number(argument(args, '-mem_start_mib'))
    const mode = argument(args, '-mode') ?? ''
    if (!Number.isSafeInteger(domid) || !Number.isSafeInteger(startMib)) {
      throw xenguestFailed(`${mode} 22 missing -domid or -mem_start_mib`)
    }
    const totalMs = typeof this.#options.builderMs === 'function' ? this.#options.builderMs() : (this.#options.builderMs ?? 20)
    const share = Math.min(1, Math.max(0, this.#options.populateAtShare ?? 0.2))
    const pinned = argument(args, '-mem_pnode')
    await delay(totalMs * share, options.signal, 'xenguest (killed)')
    options.onEvent?.({
      type: 'xenguest.log',
      stream: 'info',
      line: `populating ${startMib} MiB of domain ${domid}${pinned === undefined ? '' : ` on node ${pinned}`}`,
    })
    try {
      // In batches, as a builder's populate_physmap calls go: Xen's count of
      // the domain's pages grows while it runs, and a node that runs out
      // leaves the batches before it populated.
      const pages = pagesOfMib(startMib)
      const batch = Math.ceil(pages / POPULATE_BATCHES / 512) * 512
      for (let done = 0; done < pages; done += batch) {
        await this.#sim.populate(domid, Math.min(batch, pages - done), pinned === undefined ? undefined : Number(pinned))
      }
    } catch (error) {
      const e = error as XenDomainBuildError
      throw xenguestFailed(`${mode}_mem ${e.errno ?? 12} ${e.message}`)
    }
    await delay(totalMs * (1 - share), options.signal, 'xenguest (killed)')
    const lower = this.#options.lowerShadowToMib
    if (lower !== undefined && mode !== 'linux_build') await this.#sim.hypervisor().setShadowAllocationMib(domid, lower)
    // Store and console pages at the top of a (simulated) guest physmap.
    return { storeMfn: BigInt(0xfeffc + 2 * domid), consoleMfn: BigInt(0xfeffd + 2 * domid) }
  }

  async supports(feature: string): Promise<boolean> {
    return feature === 'mem_pnode' && this.#options.pinsNode !== false
  }
}
