/**
 * xenguest's interface (https://github.com/xen-domain-build/xen-domain-build/blob/main/docs/ARCHITECTURE.md#xenguest):
 * its command line, its control protocol's lines and what they mean, and the
 * runner a build drives. No process, no file: the simulated builder and the
 * spawned one share it.
 */
import { XenDomainBuildError, type XenguestFailure } from './errors.js'
import type { DomainType, MemoryModel } from './memory.js'

/** What `xenguestArgs` turns into a domain builder's command line. */
export interface XenguestBuild {
  type: DomainType
  domid: number
  /** The kernel (PV, PVH) or firmware (HVM) image. */
  image: string
  cmdline?: string
  /** PV only. */
  ramdisk?: string
  /** PVH only: boot modules, each with its own command line. */
  modules?: readonly { path: string; cmdline?: string }[]
  /** HVM: the VM has an NVIDIA vGPU. */
  nvidiaVgpu?: boolean
  force?: boolean
  storePort: number
  consolePort: number
  /** Domains serving xenstore and the console (0: dom0). */
  storeDomid?: number
  consoleDomid?: number
  memory: MemoryModel
  /** The node claimed for the domain: only after a successful node claim. */
  memoryNode?: number | null
  /** Appended last. */
  extraArgs?: readonly string[]
}

/** The file descriptors, in the child, of the control pipes. */
export const CONTROL_OUT_FD = 3
export const CONTROL_IN_FD = 4
/** The file descriptor, in the child, of a save's or a restore's image (`-fd`). */
export const IMAGE_FD = 5

/** What a save asks of the builder (`xenguestSaveArgs`). */
export interface XenguestSave {
  type: DomainType
  domid: number
  /** Iterative pre-copy while the guest runs, then a last copy once it is suspended. */
  live?: boolean
  debug?: boolean
  /** Appended last. */
  extraArgs?: readonly string[]
}

/** What a restore asks of the builder (`xenguestRestoreArgs`). */
export interface XenguestRestore {
  type: DomainType
  domid: number
  storePort: number
  consolePort: number
  storeDomid?: number
  consoleDomid?: number
  /** The node claimed for the domain: only after a successful node claim. */
  memoryNode?: number | null
  /** Appended last. */
  extraArgs?: readonly string[]
}

const CONTROL_ARGS = ['-controloutfd', String(CONTROL_OUT_FD), '-controlinfd', String(CONTROL_IN_FD)]

/**
 * A save's arguments, as xenopsd gives its save helper: `-mode save` (PV) or
 * `hvm_save` (PVH, HVM), the image on `-fd`, `-live true` for a live save.
 */
export function xenguestSaveArgs(s: XenguestSave): string[] {
  const args = [...CONTROL_ARGS, '-mode', s.type === 'pv' ? 'save' : 'hvm_save', '-domid', String(s.domid), '-fd', String(IMAGE_FD)]
  if (s.live) args.push('-live', 'true')
  if (s.debug) args.push('-debug', 'true')
  args.push(...(s.extraArgs ?? []))
  return args
}

/** A restore's arguments: `-mode restore` (PV) or `hvm_restore` (PVH, HVM), the image on `-fd`, the rings' ports. */
export function xenguestRestoreArgs(r: XenguestRestore): string[] {
  const args = [
    ...CONTROL_ARGS,
    '-mode',
    r.type === 'pv' ? 'restore' : 'hvm_restore',
    '-domid',
    String(r.domid),
    '-fd',
    String(IMAGE_FD),
    '-store_port',
    String(r.storePort),
    '-store_domid',
    String(r.storeDomid ?? 0),
    '-console_port',
    String(r.consolePort),
    '-console_domid',
    String(r.consoleDomid ?? 0),
  ]
  if (r.memoryNode !== undefined && r.memoryNode !== null) args.push('-mem_pnode', String(r.memoryNode))
  args.push(...(r.extraArgs ?? []))
  return args
}

/** A resume's arguments: a guest whose save failed or was cancelled runs on (libxenguest's cooperative resume). */
export function xenguestResumeArgs(domid: number): string[] {
  return [...CONTROL_ARGS, '-mode', 'resume', '-domid', String(domid)]
}

/**
 * Whether a run's `result:` carries the rings' frames (a build, a restore)
 * or nothing this package reads (a save, a resume: the runner resolves null).
 */
export function resultCarriesFrames(args: readonly string[]): boolean {
  const mode = args[args.indexOf('-mode') + 1]
  return !(mode === 'save' || mode === 'hvm_save' || mode === 'resume')
}

/** xenguest's arguments, in xenopsd's order (control pipes first; https://github.com/xen-domain-build/xen-domain-build/blob/main/docs/ARCHITECTURE.md#xenguest). */
export function xenguestArgs(b: XenguestBuild): string[] {
  const mode = { hvm: 'hvm_build', pv: 'linux_build', pvh: 'pvh_build' }[b.type]
  const args = [...CONTROL_ARGS, '-mode', mode, '-image', b.image]
  // Where xenopsd's xenguest_args_hvm puts it: straight after the image.
  if (b.type === 'hvm' && b.nvidiaVgpu) args.push('-vgpu')
  if (b.type === 'pv') {
    args.push('-cmdline', b.cmdline ?? '', '-ramdisk', b.ramdisk ?? '', '-features', '', '-flags', '0')
  } else if (b.type === 'pvh') {
    args.push('-cmdline', b.cmdline ?? '', '-features', '', '-flags', '0')
    for (const m of b.modules ?? []) {
      args.push('-module', m.path)
      if (m.cmdline !== undefined) args.push('-cmdline', m.cmdline)
    }
  }
  args.push(
    '-domid',
    String(b.domid),
    '-store_port',
    String(b.storePort),
    '-store_domid',
    String(b.storeDomid ?? 0),
    '-console_port',
    String(b.consolePort),
    '-console_domid',
    String(b.consoleDomid ?? 0),
    '-mem_max_mib',
    String(b.memory.buildMaxMib),
    '-mem_start_mib',
    String(b.memory.buildStartMib),
  )
  if (b.memoryNode !== undefined && b.memoryNode !== null) args.push('-mem_pnode', String(b.memoryNode))
  if (b.force) args.push('--force')
  args.push(...(b.extraArgs ?? []))
  return args
}

/** What a domain builder reports when it has built a domain: its rings' frames. */
export interface XenguestResult {
  storeMfn: bigint
  consoleMfn: bigint
  /** The guest's ring protocol, when xenguest says (`x86_32-abi`, ...). */
  protocol?: string
}

/** A line the domain builder wrote (its stdout, stderr, or an `info:` on the control pipe). */
export type XenguestLog = { type: 'xenguest.log'; stream: 'stdout' | 'stderr' | 'info'; line: string }

/** How a domain builder runs: cancellation, a time limit, its events, and a save's or a restore's image. */
export interface XenguestRunOptions {
  signal?: AbortSignal
  timeoutMs?: number
  onEvent?: (event: XenguestLog | { type: 'xenguest.spawn'; pid: number; args: string[] }) => void
  /** A save's or a restore's image: a file descriptor, which a spawned builder inherits as `IMAGE_FD`. */
  imageFd?: number
  /**
   * A save: the builder asks for the guest to be suspended (`suspend:`); it
   * is answered `done` once this resolves. A rejection ends the run with
   * that error, the builder killed. Without it, `suspend:` is a protocol error.
   */
  onSuspend?: () => Promise<void>
}

/**
 * Runs a domain builder. The real one spawns xenguest; the simulator has its
 * own. A build or a restore resolves with the rings' frames; a save or a
 * resume (`resultCarriesFrames`) with null.
 */
export interface XenguestRunner {
  /**
   * Whether the builder reads the kernel, ramdisk and modules from this
   * host's files (true when absent): then `buildDomain` checks that they are
   * readable before any hypercall, as xenopsd does.
   */
  readonly readsHostFiles?: boolean
  run(args: readonly string[], options?: XenguestRunOptions): Promise<XenguestResult | null>
  /** Whether the builder supports a feature (`xenguest -supports FEATURE`). */
  supports(feature: string): Promise<boolean>
}

export function protocolError(message: string): XenDomainBuildError {
  return new XenDomainBuildError('XENGUEST_PROTOCOL', `xenguest: ${message}`)
}

/**
 * xenguest's `error:` payload: xenopsd's form (`hvm_build 12 Cannot allocate
 * memory`, `xc_dom_allocate ...`) or XCP-ng's (`xenguest: hvm_build: [12] ...`).
 */
export function parseXenguestError(payload: string): XenguestFailure {
  const xcpng = /^xenguest: ([^:\s]+): \[(-?\d+)\] ?(.*)$/s.exec(payload)
  if (xcpng) return { function: xcpng[1] ?? '', code: Number(xcpng[2]), message: xcpng[3] ?? '' }
  const withCode = /^(\S+) (-?\d+)(?: (.*))?$/s.exec(payload)
  if (withCode) return { function: withCode[1] ?? '', code: Number(withCode[2]), message: withCode[3] ?? '' }
  const bare = /^(\S+)(?: (.*))?$/s.exec(payload)
  return { function: bare?.[1] ?? '', code: null, message: bare?.[2] ?? '' }
}

export function xenguestFailed(payload: string): XenDomainBuildError {
  const parsed = parseXenguestError(payload)
  const code = parsed.code === null ? '' : ` [${parsed.code}]`
  return Object.assign(new XenDomainBuildError('XENGUEST_FAILED', `xenguest failed in ${parsed.function}${code}: ${parsed.message}`), {
    xenguest: parsed,
  })
}

/** An MFN: decimal or 0x hex, within 64 bits. */
const MFN = /^(0x[\da-fA-F]{1,16}|\d{1,20})$/
const MAX_MFN = 2n ** 64n - 1n

/** A `result:` payload: `<store_mfn> <console_mfn>[ <protocol>]`. */
export function parseXenguestResult(payload: string): XenguestResult {
  const [store, consoleMfn, protocol, ...rest] = payload.trim().split(/\s+/)
  if (
    store === undefined ||
    consoleMfn === undefined ||
    !MFN.test(store) ||
    !MFN.test(consoleMfn) ||
    rest.length > 0 ||
    BigInt(store) > MAX_MFN ||
    BigInt(consoleMfn) > MAX_MFN
  ) {
    throw protocolError(`malformed result: ${JSON.stringify(payload.slice(0, 200))}`)
  }
  return { storeMfn: BigInt(store), consoleMfn: BigInt(consoleMfn), ...(protocol === undefined ? {} : { protocol }) }
}

/** Control lines longer than this many characters (64 Ki) are a protocol failure, not memory to fill. */
export const MAX_CONTROL_LINE = 64 * 1024

/**
 * What one control line means: a log, a request to suspend the guest, or the
 * end (a result or a failure). `framesExpected` (`resultCarriesFrames`): a
 * save's or a resume's `result:` carries nothing read here (null).
 */
export function interpretControlLine(
  line: string,
  framesExpected = true,
): { log: XenguestLog } | { suspend: string } | { result: XenguestResult | null } | { error: XenDomainBuildError } {
  const colon = line.indexOf(':')
  if (colon < 0) return { error: protocolError(`a control line without a prefix: ${JSON.stringify(line.slice(0, 200))}`) }
  const prefix = line.slice(0, colon)
  const payload = line.slice(colon + 1)
  switch (prefix) {
    case 'stdout':
    case 'stderr':
    case 'info':
      return { log: { type: 'xenguest.log', stream: prefix, line: payload } }
    case 'error':
      return { error: xenguestFailed(payload) }
    case 'result':
      if (!framesExpected) return { result: null }
      try {
        return { result: parseXenguestResult(payload) }
      } catch (error) {
        return { error: error as XenDomainBuildError }
      }
    case 'suspend':
      return { suspend: payload }
    default:
      return { error: protocolError(`unknown control line prefix ${JSON.stringify(prefix.slice(0, 40))}`) }
  }
}
