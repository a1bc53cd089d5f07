/**
 * xenguest, the external domain builder (https://github.com/xen-domain-build/xen-domain-build/blob/main/docs/ARCHITECTURE.md#xenguest): its
 * arguments, its control protocol, and a runner that spawns the real program.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { accessSync, constants } from 'node:fs'
import { createRequire } from 'node:module'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { Readable, Writable } from 'node:stream'
import { optionalMilliseconds } from './checks.js'
import { aborted, XenDomainBuildError, type XenguestFailure } from './errors.js'
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

/** xenguest's arguments, in xenopsd's order (control pipes first; https://github.com/xen-domain-build/xen-domain-build/blob/main/docs/ARCHITECTURE.md#xenguest). */
export function xenguestArgs(b: XenguestBuild): string[] {
  const mode = { hvm: 'hvm_build', pv: 'linux_build', pvh: 'pvh_build' }[b.type]
  const args = ['-controloutfd', String(CONTROL_OUT_FD), '-controlinfd', String(CONTROL_IN_FD), '-mode', mode, '-image', b.image]
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
    '-domid', String(b.domid),
    '-store_port', String(b.storePort),
    '-store_domid', String(b.storeDomid ?? 0),
    '-console_port', String(b.consolePort),
    '-console_domid', String(b.consoleDomid ?? 0),
    '-mem_max_mib', String(b.memory.buildMaxMib),
    '-mem_start_mib', String(b.memory.buildStartMib),
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

/** How a domain builder runs: cancellation, a time limit, its events. */
export interface XenguestRunOptions {
  signal?: AbortSignal
  timeoutMs?: number
  onEvent?: (event: XenguestLog | { type: 'xenguest.spawn'; pid: number; args: string[] }) => void
}

/** Runs a domain builder. The real one spawns xenguest; the simulator has its own. */
export interface XenguestRunner {
  /**
   * Whether the builder reads the kernel, ramdisk and modules from this
   * host's files (true when absent): then `buildDomain` checks that they are
   * readable before any hypercall, as xenopsd does.
   */
  readonly readsHostFiles?: boolean
  run(args: readonly string[], options?: XenguestRunOptions): Promise<XenguestResult>
  /** Whether the builder supports a feature (`xenguest -supports FEATURE`). */
  supports(feature: string): Promise<boolean>
}

function protocolError(message: string): XenDomainBuildError {
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
  return Object.assign(
    new XenDomainBuildError('XENGUEST_FAILED', `xenguest failed in ${parsed.function}${code}: ${parsed.message}`),
    { xenguest: parsed },
  )
}

/** An MFN: decimal or 0x hex, within 64 bits. */
const MFN = /^(0x[\da-fA-F]{1,16}|\d{1,20})$/
const MAX_MFN = 2n ** 64n - 1n

/** A `result:` payload: `<store_mfn> <console_mfn>[ <protocol>]`. */
export function parseXenguestResult(payload: string): XenguestResult {
  const [store, consoleMfn, protocol, ...rest] = payload.trim().split(/\s+/)
  if (store === undefined || consoleMfn === undefined || !MFN.test(store) || !MFN.test(consoleMfn) || rest.length > 0 || BigInt(store) > MAX_MFN || BigInt(consoleMfn) > MAX_MFN) {
    throw protocolError(`malformed result: ${JSON.stringify(payload.slice(0, 200))}`)
  }
  return { storeMfn: BigInt(store), consoleMfn: BigInt(consoleMfn), ...(protocol === undefined ? {} : { protocol }) }
}

/** Control lines longer than this many characters (64 Ki) are a protocol failure, not memory to fill. */
export const MAX_CONTROL_LINE = 64 * 1024

/**
 * What one control line means: a log, the end (a result or a failure), or
 * nothing more to wait for.
 */
export function interpretControlLine(line: string): { log: XenguestLog } | { result: XenguestResult } | { error: XenDomainBuildError } {
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
      try {
        return { result: parseXenguestResult(payload) }
      } catch (error) {
        return { error: error as XenDomainBuildError }
      }
    case 'suspend':
      return { error: protocolError(`unexpected suspend request during a build: ${JSON.stringify(payload)}`) }
    default:
      return { error: protocolError(`unknown control line prefix ${JSON.stringify(prefix.slice(0, 40))}`) }
  }
}

/**
 * Splits a stream into lines, refusing a line longer than `maxLine` however
 * many reads it arrives in; a last line without a newline still counts when
 * the stream ends.
 */
function eachLine(stream: Readable, maxLine: number, onLine: (line: string) => void, onTooLong: () => void): void {
  let buffered = ''
  let refused = false
  const take = (line: string) => {
    if (refused) return
    if (line.length > maxLine) {
      refused = true
      onTooLong()
    } else onLine(line)
  }
  stream.setEncoding('utf8')
  stream.on('data', (chunk: string) => {
    buffered += chunk
    let newline: number
    while ((newline = buffered.indexOf('\n')) >= 0) {
      take(buffered.slice(0, newline))
      buffered = buffered.slice(newline + 1)
    }
    if (buffered.length > maxLine) {
      buffered = ''
      take('x'.repeat(maxLine + 1))
    }
  })
  stream.on('end', () => {
    if (buffered !== '') take(buffered)
    buffered = ''
  })
}

/** The longest timeout Node's timers take in one go (2^31 - 1 ms). */
const MAX_TIMER_MS = 2 ** 31 - 1

/** setTimeout for any safe number of milliseconds: longer ones are chained. */
export function setLongTimeout(ms: number, fire: () => void): { clear(): void } {
  let timer: NodeJS.Timeout
  const arm = (left: number) => {
    timer = setTimeout(() => (left > MAX_TIMER_MS ? arm(left - MAX_TIMER_MS) : fire()), Math.min(left, MAX_TIMER_MS))
  }
  arm(ms)
  return { clear: () => clearTimeout(timer) }
}

/** How a spawned domain builder is handled. */
export interface SpawnedXenguestOptions {
  /**
   * How long xenguest may linger after its result before it is killed, and
   * how long the build waits for the control pipe's last lines once
   * xenguest has exited: 5 s.
   */
  exitGraceMs?: number
}

/**
 * The real domain builder: the `xenguest` program (or this package's
 * xen-domain-builder, which speaks its protocol). It runs in a process
 * group of its own, and a timeout, an abort or a lingering builder ends the
 * whole group: a helper it started, or a shell wrapper's child, cannot keep
 * the build pending by holding its pipes.
 */
export class SpawnedXenguest implements XenguestRunner {
  readonly readsHostFiles = true
  readonly path: string
  readonly #exitGraceMs: number

  /**
   * @param path - The builder to run; by default `defaultXenguestPath()`'s
   * (the host's xenguest, else this package's xen-domain-builder), and
   * XEN_UNAVAILABLE when there is neither.
   */
  constructor(path: string = requireDefaultXenguestPath(), options: SpawnedXenguestOptions = {}) {
    this.path = path
    optionalMilliseconds('exitGraceMs', options.exitGraceMs)
    this.#exitGraceMs = options.exitGraceMs ?? 5000
  }

  run(args: readonly string[], options: XenguestRunOptions = {}): Promise<XenguestResult> {
    const { signal, timeoutMs, onEvent } = options
    return new Promise((resolve, reject) => {
      optionalMilliseconds('timeoutMs', timeoutMs)
      if (signal?.aborted) return reject(aborted('xenguest, before it started,', signal.reason))
      // No shell; stdin closed; stdout and stderr become log events; fds 3 and
      // 4 are the control pipes (out of xenguest, into xenguest). `detached`:
      // a new process group, so that the whole of it can be ended.
      const child: ChildProcess = spawn(this.path, [...args], { stdio: ['ignore', 'pipe', 'pipe', 'pipe', 'pipe'], detached: true })
      let outcome: { result: XenguestResult } | { error: XenDomainBuildError } | undefined
      let killedByUs = false
      let settled = false
      const timers: { clear(): void }[] = []
      const later = (ms: number, fire: () => void) => timers.push(setLongTimeout(ms, fire))

      const killGroup = () => {
        killedByUs = true
        try {
          if (child.pid !== undefined) process.kill(-child.pid, 'SIGKILL')
        } catch {
          // The group is gone already.
        }
      }
      const settle = () => {
        if (settled) return
        settled = true
        for (const timer of timers) timer.clear()
        signal?.removeEventListener('abort', onAbort)
        for (const stream of child.stdio) stream?.destroy()
        const end = outcome ?? { error: protocolError('ended without a result') }
        if ('result' in end) resolve(end.result)
        else reject(end.error)
      }
      const finish = (end: NonNullable<typeof outcome>, kill: boolean) => {
        if (outcome !== undefined) return
        outcome = end
        if (kill) {
          killGroup()
          // Even if the group will not die (a process stuck in the kernel), the build ends.
          later(this.#exitGraceMs, settle)
        } else later(this.#exitGraceMs, killGroup)
      }
      const onAbort = () => finish({ error: aborted('xenguest (killed)', signal?.reason) }, true)
      signal?.addEventListener('abort', onAbort, { once: true })
      if (timeoutMs !== undefined) {
        later(timeoutMs, () => finish({ error: new XenDomainBuildError('TIMEOUT', `xenguest took more than ${timeoutMs} ms and was killed`) }, true))
      }

      child.on('error', (error) => {
        finish({ error: new XenDomainBuildError('XENGUEST_PROTOCOL', `xenguest could not be started: ${error.message}`, { cause: error }) }, true)
        settle()
      })
      if (child.pid !== undefined) onEvent?.({ type: 'xenguest.spawn', pid: child.pid, args: [...args] })
      const control = child.stdio[CONTROL_OUT_FD] as Readable
      // Nothing is sent to xenguest during a build; the pipe stays open for it.
      void (child.stdio[CONTROL_IN_FD] as Writable)
      eachLine(
        control,
        MAX_CONTROL_LINE,
        (line) => {
          if (outcome !== undefined) return
          const meaning = interpretControlLine(line)
          if ('log' in meaning) onEvent?.(meaning.log)
          else if ('result' in meaning) finish(meaning, false)
          else finish(meaning, true)
        },
        () => finish({ error: protocolError(`a control line longer than ${MAX_CONTROL_LINE} characters`) }, true),
      )
      for (const stream of ['stdout', 'stderr'] as const) {
        eachLine(child[stream] as Readable, MAX_CONTROL_LINE, (line) => onEvent?.({ type: 'xenguest.log', stream, line }), () => undefined)
      }
      child.on('exit', (code, killedBy) => {
        const how = killedBy !== null ? `was killed by ${killedBy}` : `exited with code ${code}`
        // A result is a success only from a builder that then exits cleanly
        // (or that we ended for lingering).
        if (outcome !== undefined && 'result' in outcome && code !== 0 && !killedByUs) {
          outcome = { error: protocolError(`${how} after its result`) }
        }
        // The last control lines may still be in the pipe: wait for them, but
        // not for processes the builder left holding its pipes.
        later(Math.min(this.#exitGraceMs, 500), () => {
          if (outcome === undefined) outcome = { error: protocolError(`${how} without a result`) }
          killGroup()
          settle()
        })
      })
      child.on('close', (code, killedBy) => {
        if (outcome === undefined) {
          const how = killedBy !== null ? `was killed by ${killedBy}` : `exited with code ${code}`
          outcome = { error: protocolError(`${how} without a result`) }
        }
        settle()
      })
    })
  }

  /** Answers per feature, asked once: a build should not spawn a process to ask. */
  readonly #supported = new Map<string, Promise<boolean>>()

  supports(feature: string): Promise<boolean> {
    let answer = this.#supported.get(feature)
    if (answer === undefined) {
      answer = this.#ask(feature)
      this.#supported.set(feature, answer)
    }
    return answer
  }

  #ask(feature: string): Promise<boolean> {
    return new Promise((resolve) => {
      const child = spawn(this.path, ['-supports', feature], { stdio: ['ignore', 'pipe', 'ignore'] })
      let out = ''
      child.stdout?.setEncoding('utf8').on('data', (chunk: string) => (out += chunk))
      child.on('error', () => resolve(false))
      child.on('close', (code) => resolve(code === 0 && out.trim() === 'true'))
    })
  }
}

/** Where XenServer and XCP-ng install their xenguest. */
export const HOST_XENGUEST_PATH = '/usr/libexec/xen/bin/xenguest'

/**
 * xen-domain-builder, ours: xenguest's command line and control protocol over
 * the host's libxenguest, for upstream Xen. `npm run build` puts it in native/
 * of a checkout (ts/ and dist/ both sit one level below the package root); an
 * installed package has none there, its builder is in the platform package
 * (platformBuilderPath()).
 */
export const BUNDLED_BUILDER_PATH = fileURLToPath(new URL('../native/xen-domain-builder', import.meta.url))

interface Platform {
  BUILDER_NAME: string
  addonPackageName(): string
}

/**
 * The builder in the installed per-platform package (@xen-domain-build/<platform>,
 * which carries it beside its package.json), resolved as Node resolves a
 * dependency from `from` (this module, by default: the package's dist/).
 * null when no platform package is installed (a checkout, or --omit=optional).
 */
export function platformBuilderPath(from: string = fileURLToPath(import.meta.url)): string | null {
  // The loader's own platform names (ts/ and dist/ sit beside scripts/), so the
  // builder comes from the package the addon comes from.
  const platform = createRequire(import.meta.url)('../scripts/platform.cjs') as Platform
  try {
    return join(dirname(createRequire(from).resolve(`${platform.addonPackageName()}/package.json`)), platform.BUILDER_NAME)
  } catch {
    return null
  }
}

/**
 * Where defaultXenguestPath() looks, in order: the host's own xenguest
 * (XenServer, XCP-ng), the checkout's native/xen-domain-builder, then the
 * installed platform package's.
 */
export function defaultXenguestCandidates(): string[] {
  const installed = platformBuilderPath()
  return [HOST_XENGUEST_PATH, BUNDLED_BUILDER_PATH, ...(installed === null ? [] : [installed])]
}

/**
 * The domain builder to run by default: the first executable of `candidates`
 * (defaultXenguestCandidates()). null when there is none.
 */
export function defaultXenguestPath(candidates: readonly string[] = defaultXenguestCandidates()): string | null {
  for (const path of candidates) {
    try {
      accessSync(path, constants.X_OK)
      return path
    } catch {
      // Not there, or not executable: the next one.
    }
  }
  return null
}

/**
 * `defaultXenguestPath()`, or XEN_UNAVAILABLE saying where it looked: for a
 * caller that cannot go on without a builder.
 */
export function requireDefaultXenguestPath(candidates: readonly string[] = defaultXenguestCandidates()): string {
  const path = defaultXenguestPath(candidates)
  if (path !== null) return path
  throw new XenDomainBuildError(
    'XEN_UNAVAILABLE',
    `no domain builder: none of ${candidates.join(', ')} is an executable (the host's xenguest, or this package's xen-domain-builder from its platform package); give its path`,
  )
}
