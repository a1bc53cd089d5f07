/**
 * The real domain builder: spawns xenguest (or this package's
 * xen-domain-builder) in a process group of its own and reads its control
 * pipe. Its arguments and protocol are in xenguest-protocol.ts, where it is
 * installed in xenguest-discovery.ts.
 */
import { spawn, type ChildProcess, type StdioOptions } from 'node:child_process'
import type { Readable, Writable } from 'node:stream'
import { abortable } from './abort.js'
import { fileDescriptor, optionalMilliseconds } from './checks.js'
import { aborted, XenDomainBuildError } from './errors.js'
import { requireDefaultXenguestPath } from './xenguest-discovery.js'
import {
  CONTROL_IN_FD,
  CONTROL_OUT_FD,
  IMAGE_FD,
  interpretControlLine,
  MAX_CONTROL_LINE,
  protocolError,
  resultCarriesFrames,
  type XenguestResult,
  type XenguestRunner,
  type XenguestRunOptions,
} from './xenguest-protocol.js'

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
    for (let newline = buffered.indexOf('\n'); newline >= 0; newline = buffered.indexOf('\n')) {
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

  run(args: readonly string[], options: XenguestRunOptions = {}): Promise<XenguestResult | null> {
    const { signal, timeoutMs, onEvent, imageFd, onSuspend } = options
    const framesExpected = resultCarriesFrames(args)
    // A bad time limit or image descriptor is refused before an aborted signal is.
    try {
      optionalMilliseconds('timeoutMs', timeoutMs)
      if (imageFd !== undefined) fileDescriptor('imageFd', imageFd)
    } catch (error) {
      return Promise.reject(error)
    }
    return abortable<XenguestResult | null>(signal, 'xenguest, before it started,', (resolve, reject) => {
      // No shell; stdin closed; stdout and stderr become log events; fds 3 and
      // 4 are the control pipes (out of xenguest, into xenguest); fd 5 a save's
      // or a restore's image, shared with us (its offset too). `detached`: a
      // new process group, so that the whole of it can be ended.
      const stdio: StdioOptions = ['ignore', 'pipe', 'pipe', 'pipe', 'pipe']
      if (imageFd !== undefined) stdio[IMAGE_FD] = imageFd
      const child: ChildProcess = spawn(this.path, [...args], { stdio, detached: true })
      let outcome: { result: XenguestResult | null } | { error: XenDomainBuildError } | undefined
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
      if (timeoutMs !== undefined) {
        later(timeoutMs, () =>
          finish({ error: new XenDomainBuildError('TIMEOUT', `xenguest took more than ${timeoutMs} ms and was killed`) }, true),
        )
      }

      child.on('error', (error) => {
        finish(
          { error: new XenDomainBuildError('XENGUEST_PROTOCOL', `xenguest could not be started: ${error.message}`, { cause: error }) },
          true,
        )
        settle()
      })
      if (child.pid !== undefined) onEvent?.({ type: 'xenguest.spawn', pid: child.pid, args: [...args] })
      const control = child.stdio[CONTROL_OUT_FD] as Readable
      // Only a save's answer (`done`) is sent to xenguest; the pipe stays open for it.
      const answers = child.stdio[CONTROL_IN_FD] as Writable
      answers.on('error', () => undefined)
      const suspend = (payload: string) => {
        if (onSuspend === undefined) {
          finish({ error: protocolError(`unexpected suspend request during a build: ${JSON.stringify(payload.slice(0, 200))}`) }, true)
          return
        }
        onSuspend().then(
          () => {
            if (outcome === undefined) answers.write('done\n')
          },
          (error: unknown) => finish({ error: error as XenDomainBuildError }, true),
        )
      }
      eachLine(
        control,
        MAX_CONTROL_LINE,
        (line) => {
          if (outcome !== undefined) return
          const meaning = interpretControlLine(line, framesExpected)
          if ('log' in meaning) onEvent?.(meaning.log)
          else if ('suspend' in meaning) suspend(meaning.suspend)
          else if ('result' in meaning) finish(meaning, false)
          else finish(meaning, true)
        },
        () => finish({ error: protocolError(`a control line longer than ${MAX_CONTROL_LINE} characters`) }, true),
      )
      for (const stream of ['stdout', 'stderr'] as const) {
        eachLine(
          child[stream] as Readable,
          MAX_CONTROL_LINE,
          (line) => onEvent?.({ type: 'xenguest.log', stream, line }),
          () => undefined,
        )
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
      // Its own message: the builder is killed (the one before it started is abortable's).
      return () => finish({ error: aborted('xenguest (killed)', signal?.reason) }, true)
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
