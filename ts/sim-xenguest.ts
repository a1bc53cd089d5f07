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
import { readUpTo, writeAll } from './suspend-image.js'
import { protocolError, xenguestFailed, type XenguestResult, type XenguestRunner, type XenguestRunOptions } from './xenguest-protocol.js'

/**
 * The simulated builder's stream, in place of libxc's: a signature, then the
 * length of a JSON body (64-bit little-endian), then the body: the domain's
 * pages. Self-delimiting, as libxc's is: a restore reads it and no further.
 */
const STREAM_SIGNATURE = Buffer.from('xdb-sim-stream1\n', 'latin1')
interface SimulatedStream {
  pages: number
  hvm: boolean
}
/** A simulated stream's body is small; a larger length is a damaged stream. */
const MAX_STREAM_BODY_BYTES = 4096

async function writeSimulatedStream(fd: number, stream: SimulatedStream): Promise<void> {
  const body = Buffer.from(JSON.stringify(stream), 'utf8')
  const length = Buffer.alloc(8)
  length.writeBigUInt64LE(BigInt(body.length))
  await writeAll(fd, Buffer.concat([STREAM_SIGNATURE, length, body]))
}

async function readSimulatedStream(fd: number): Promise<SimulatedStream> {
  const head = await readUpTo(fd, STREAM_SIGNATURE.length + 8)
  if (head.length < STREAM_SIGNATURE.length + 8) throw new Error('a stream cut short')
  if (!head.subarray(0, STREAM_SIGNATURE.length).equals(STREAM_SIGNATURE)) throw new Error('not a simulated stream')
  const length = head.readBigUInt64LE(STREAM_SIGNATURE.length)
  if (length > BigInt(MAX_STREAM_BODY_BYTES)) throw new Error(`a stream body of ${length} bytes`)
  const bytes = await readUpTo(fd, Number(length))
  if (bytes.length < Number(length)) throw new Error('a stream cut short')
  const body = JSON.parse(bytes.toString('utf8')) as Partial<SimulatedStream>
  if (!Number.isSafeInteger(body.pages) || (body.pages ?? -1) < 0 || typeof body.hvm !== 'boolean')
    throw new Error('a malformed stream body')
  return body as SimulatedStream
}

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

/** The rings' frames a simulated build or restore answers: store and console pages at the top of a simulated guest physmap. */
function ringFrames(domid: number): XenguestResult {
  return { storeMfn: BigInt(0xfeffc + 2 * domid), consoleMfn: BigInt(0xfeffd + 2 * domid) }
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
    const mode = argument(args, '-mode') ?? ''
    if (!Number.isSafeInteger(domid)) throw xenguestFailed(`${mode} 22 missing -domid`)
    if (mode === 'save' || mode === 'hvm_save') return this.#save(domid, args, options)
    if (mode === 'restore' || mode === 'hvm_restore') return this.#restore(domid, args, options)
    if (mode === 'resume') {
      await this.#sim.resumeDomain(domid).catch((error: XenDomainBuildError) => {
        throw xenguestFailed(`xc_domain_resume ${error.errno ?? 22} ${error.message}`)
      })
      return null
    }
    const startMib = Number(argument(args, '-mem_start_mib'))
    if (!Number.isSafeInteger(startMib)) throw xenguestFailed(`${mode} 22 missing -mem_start_mib`)
    const totalMs = this.#builderMs()
    const share = Math.min(1, Math.max(0, this.#options.populateAtShare ?? 0.2))
    const pinned = argument(args, '-mem_pnode')
    await delay(totalMs * share, options.signal, 'xenguest (killed)')
    options.onEvent?.({
      type: 'xenguest.log',
      stream: 'info',
      line: `populating ${startMib} MiB of domain ${domid}${pinned === undefined ? '' : ` on node ${pinned}`}`,
    })
    await this.#populate(domid, pagesOfMib(startMib), pinned, `${mode}_mem`)
    await delay(totalMs * (1 - share), options.signal, 'xenguest (killed)')
    const lower = this.#options.lowerShadowToMib
    if (lower !== undefined && mode !== 'linux_build') await this.#sim.hypervisor().setShadowAllocationMib(domid, lower)
    return ringFrames(domid)
  }

  /** Populates `pages` of the domain in batches, as a builder's populate_physmap calls go, from `-mem_pnode`'s node if given. */
  async #populate(domid: number, pages: number, pinned: string | undefined, failing: string): Promise<void> {
    try {
      // Xen's count of the domain's pages grows while it runs, and a node
      // that runs out leaves the batches before it populated.
      const batch = Math.ceil(pages / POPULATE_BATCHES / 512) * 512
      for (let done = 0; done < pages; done += batch) {
        await this.#sim.populate(domid, Math.min(batch, pages - done), pinned === undefined ? undefined : Number(pinned))
      }
    } catch (error) {
      const e = error as XenDomainBuildError
      throw xenguestFailed(`${failing} ${e.errno ?? 12} ${e.message}`)
    }
  }

  #builderMs(): number {
    return typeof this.#options.builderMs === 'function' ? this.#options.builderMs() : (this.#options.builderMs ?? 20)
  }

  /**
   * A save, as libxenguest's: a live one copies while the guest runs (three
   * rounds, each with fewer dirty pages), then asks for the guest to be
   * suspended and checks Xen says so; the stream records the domain's pages.
   */
  async #save(domid: number, args: readonly string[], options: XenguestRunOptions): Promise<null> {
    const { imageFd, onSuspend, signal } = options
    if (imageFd === undefined) throw xenguestFailed('xc_domain_save 9 no -fd to write to')
    const info = await this.#sim
      .hypervisor()
      .domainInfo(domid)
      .catch((error: XenDomainBuildError) => {
        throw xenguestFailed(`xc_domain_save ${error.errno ?? 3} ${error.message}`)
      })
    const totalMs = this.#builderMs()
    if (argument(args, '-live') === 'true') {
      for (let iteration = 0, dirty = info.totPages; iteration < 3; iteration++, dirty = Math.floor(dirty / 8)) {
        const decision = iteration === 2 ? 'stop_and_copy' : 'continue'
        options.onEvent?.({
          type: 'xenguest.log',
          stream: 'info',
          line: `precopy iteration=${iteration} sent_pages=${info.totPages - dirty} dirty_pages=${dirty} decision=${decision}`,
        })
        await delay(totalMs / 4, signal, 'xenguest (killed)')
      }
    }
    if (onSuspend === undefined) throw protocolError('unexpected suspend request during a build: ""')
    await onSuspend()
    // The builder's own check, as libxenguest's: a failure is the builder's (XENGUEST_FAILED), as its first check's is.
    const now = await this.#sim
      .hypervisor()
      .domainInfo(domid)
      .catch((error: XenDomainBuildError) => {
        throw xenguestFailed(`xc_domain_save ${error.errno ?? 3} ${error.message}`)
      })
    if (now.shutdownReason !== 'suspend') throw xenguestFailed(`xc_domain_save 22 domain ${domid} did not suspend`)
    await delay(totalMs / 4, signal, 'xenguest (killed)')
    await writeSimulatedStream(imageFd, { pages: now.totPages, hvm: now.hvm })
    return null
  }

  /** A restore: reads the stream the save wrote (no further), populates its pages as a build does, answers the rings' frames. */
  async #restore(domid: number, args: readonly string[], options: XenguestRunOptions): Promise<XenguestResult> {
    const { imageFd, signal } = options
    if (imageFd === undefined) throw xenguestFailed('xc_domain_restore 9 no -fd to read from')
    const stream = await readSimulatedStream(imageFd).catch((error: Error) => {
      throw xenguestFailed(`xc_domain_restore 22 ${error.message}`)
    })
    const totalMs = this.#builderMs()
    await delay(totalMs / 2, signal, 'xenguest (killed)')
    await this.#populate(domid, stream.pages, argument(args, '-mem_pnode'), 'xc_domain_restore')
    await delay(totalMs / 2, signal, 'xenguest (killed)')
    return ringFrames(domid)
  }

  async supports(feature: string): Promise<boolean> {
    return feature === 'mem_pnode' && this.#options.pinsNode !== false
  }
}
