/**
 * `suspendDomain`: xenopsd's Domain.suspend for PV and PVH guests. The guest
 * is asked to suspend (`control/shutdown`), the builder writes its memory
 * into a suspend image (xenopsd's format, suspend-image.ts) and asks, when
 * libxenguest needs it, for the guest to be suspended; the toolstack answers
 * once Xen reports it so. A guest that does not acknowledge, a builder that
 * fails, or a cancellation leaves the guest running (resumed).
 */
import { open } from 'node:fs/promises'
import type { DomainInfo, Hypervisor } from '../native/binding.js'
import {
  guestDomid,
  optionalBoolean,
  optionalFunction,
  optionalMilliseconds,
  optionalSignal,
  optionalArguments,
  optionsObject,
  pathOrFileDescriptor,
  xenguestRunner,
} from './checks.js'
import { aborted, describe, invalidArgument, XenDomainBuildError } from './errors.js'
import { isolated } from './listener.js'
import { StepRunner } from './step.js'
import { delay } from './timers.js'
import type { VmConfig } from './build-pre.js'
import { writeImageEnd, writeImageHeader } from './suspend-image.js'
import { kibOfPages } from './units.js'
import {
  xenguestResumeArgs,
  xenguestSaveArgs,
  type XenguestLog,
  type XenguestRunner,
  type XenguestRunOptions,
} from './xenguest-protocol.js'
import { domainPath, type Xenstore } from './xenstore.js'

/** How long a guest has to acknowledge the request to suspend: 30 s. */
export const DEFAULT_ACK_TIMEOUT_MS = 30_000
/** How long Xen has to report the guest suspended once it acknowledged: 60 s. */
export const DEFAULT_SUSPENDED_TIMEOUT_MS = 60_000
/** How long the resume after a failure may take (a builder that hangs must not hang the failure): 60 s. */
const RESUME_TIMEOUT_MS = 60_000
/** After a failure, how long a guest that acknowledged has to suspend, to be resumed: 10 s. */
const SUSPEND_AFTER_FAILURE_MS = 10_000

/** What `onEvent` gets during a suspend, by `type`. */
export type SuspendEvent =
  | { type: 'suspend.requested'; domid: number }
  | { type: 'suspend.acknowledged'; domid: number; ms: number }
  | { type: 'suspend.suspended'; domid: number; ms: number }
  | {
      type: 'suspend.progress'
      domid: number
      /** The rounds sent so far; pages are 4 KiB. */
      iteration: number
      sentPages: number
      /** What the coming round sends; -1 when the copy stopped before they were counted. */
      dirtyPages: number
      decision: 'continue' | 'stop_and_copy' | 'abort'
    }
  | ({ domid: number } & XenguestLog)
  | { type: 'xenguest.spawn'; domid: number; pid: number; args: string[] }
  | { type: 'suspend.resumed'; domid: number }
  | { type: 'suspend.done'; domid: number; ms: number }
  | { type: 'suspend.failed'; domid: number; ms: number; code: string; resumed: boolean }

/** How `suspendDomain` suspends. */
export interface SuspendDomainOptions {
  /** The save helper: `new SpawnedXenguest()` (ours: xen-domain-builder), or `new SimulatedXenguest(sim)`. */
  xenguest: XenguestRunner
  /** The VM as it was built: recorded in the image, for the restore. */
  vm: VmConfig
  /** A live save: the memory is copied while the guest runs, then what changed once it is suspended. */
  live?: boolean
  /** How long the guest has to acknowledge (`DEFAULT_ACK_TIMEOUT_MS`), then SUSPEND_NOT_ACKNOWLEDGED. */
  ackTimeoutMs?: number
  /** How long Xen has to report it suspended after that (`DEFAULT_SUSPENDED_TIMEOUT_MS`), then TIMEOUT. */
  suspendedTimeoutMs?: number
  /** Per builder run; none by default for the save, 60 s for the resume after a failure. */
  xenguestTimeoutMs?: number
  /** Cancels the suspend: the builder is killed and the guest resumed; it rejects with ABORTED. */
  signal?: AbortSignal
  /** More arguments for the builder, after ours. */
  extraArgs?: readonly string[]
  /** Each event, as it happens; a listener that throws cannot fail the suspend. */
  onEvent?: (event: SuspendEvent) => void
}

/** A suspended domain: its image is written; the domain stays, shut down for suspend, for the caller to destroy. */
export interface SuspendedDomain {
  domid: number
  /** The memory the domain held (xenopsd's memory_total_source), as the image records it. */
  memoryTotalSourceKib: number
  /** When Xen reported it suspended (`performance.now()`): a migration's pause starts here. */
  suspendedAt: number
  /** Milliseconds per step, and `total`. */
  timingsMs: Record<string, number>
}

/** The save helper's progress line, one per round of a live save (docs/ARCHITECTURE.md, xenguest). */
const PROGRESS = /^precopy iteration=(\d+) sent_pages=(\d+) dirty_pages=(-?\d+) decision=(continue|stop_and_copy|abort)$/

/** Polls `check` until it gives a value, with a pause that grows to 100 ms; TIMEOUT (or `onTimeout`) after `timeoutMs`. */
async function poll<T>(
  check: () => Promise<T | undefined>,
  timeoutMs: number,
  signal: AbortSignal | undefined,
  what: string,
  onTimeout: () => XenDomainBuildError,
): Promise<T> {
  const deadline = performance.now() + timeoutMs
  for (let pauseMs = 1; ; pauseMs = Math.min(100, pauseMs * 2)) {
    const found = await check()
    if (found !== undefined) return found
    if (performance.now() >= deadline) throw onTimeout()
    await delay(Math.min(pauseMs, Math.max(1, deadline - performance.now())), signal, what)
  }
}

/**
 * Lets a suspended guest run on (libxenguest's cooperative resume, through
 * the builder), within `timeoutMs` (60 s when absent): whether it did.
 */
export function resumeGuest(
  xenguest: XenguestRunner,
  domid: number,
  timeoutMs: number | undefined,
  onEvent?: XenguestRunOptions['onEvent'],
): Promise<boolean> {
  return xenguest.run(xenguestResumeArgs(domid), { timeoutMs: timeoutMs ?? RESUME_TIMEOUT_MS, onEvent }).then(
    () => true,
    () => false,
  )
}

/** Until Xen reports the domain shut down for suspend; TIMEOUT after `timeoutMs`, INTERNAL if it shut down otherwise. */
function waitSuspended(xen: Hypervisor, domid: number, timeoutMs: number, signal: AbortSignal | undefined): Promise<true> {
  return poll(
    async () => {
      const now: DomainInfo = await xen.domainInfo(domid)
      if (now.shutdownReason === 'suspend') return true
      if (now.shutdownReason !== undefined || now.dying) {
        throw new XenDomainBuildError(
          'SUSPEND_NOT_ACKNOWLEDGED',
          `domain ${domid} shut down (${now.shutdownReason ?? 'dying'}) instead of suspending`,
          { domid },
        )
      }
      return undefined
    },
    timeoutMs,
    signal,
    `waiting for domain ${domid} to suspend`,
    () =>
      new XenDomainBuildError('TIMEOUT', `domain ${domid} acknowledged but Xen did not report it suspended within ${timeoutMs} ms`, {
        domid,
      }),
  )
}

function checkOptions(domid: number, output: unknown, given: SuspendDomainOptions): SuspendDomainOptions {
  guestDomid('domid', domid)
  pathOrFileDescriptor('output', output)
  const options = optionsObject('options', given)
  xenguestRunner('options.xenguest', options.xenguest)
  const vm = optionsObject('options.vm', options.vm)
  if (vm.type !== 'pv' && vm.type !== 'pvh' && vm.type !== 'hvm')
    throw invalidArgument('options.vm.type', `${describe(vm.type)} is not pv, pvh or hvm`)
  optionalBoolean('options.live', options.live)
  optionalMilliseconds('options.ackTimeoutMs', options.ackTimeoutMs)
  optionalMilliseconds('options.suspendedTimeoutMs', options.suspendedTimeoutMs)
  optionalMilliseconds('options.xenguestTimeoutMs', options.xenguestTimeoutMs)
  optionalSignal('options.signal', options.signal)
  optionalFunction('options.onEvent', options.onEvent)
  optionalArguments('options.extraArgs', options.extraArgs)
  return options as SuspendDomainOptions
}

/**
 * xenopsd's Domain.suspend, for a PV or PVH guest (an HVM guest's device
 * model state is the toolstack's: this writes none). Writes the suspend
 * image to `output` (a path, created or truncated, or an open file
 * descriptor, written from its offset: a file, a pipe, a socket):
 * 1. asks the guest to suspend (`control/shutdown` = `suspend`) and waits for
 *    it to acknowledge (the guest's kernel clears the key);
 * 2. runs the save helper, which copies the memory (first while the guest
 *    runs, for a live save) and asks for the guest to be suspended: answered
 *    once Xen reports the domain shut down for suspend;
 * 3. ends the image.
 * The domain stays, suspended: destroy it (`destroyDomain`) once the image is
 * safe. A guest that does not acknowledge (SUSPEND_NOT_ACKNOWLEDGED), a
 * builder that fails, a time limit or a cancellation leave the guest
 * running: the request is withdrawn, or a suspended guest resumed.
 */
export async function suspendDomain(
  xen: Hypervisor,
  xenstore: Xenstore,
  domid: number,
  output: string | number,
  given: SuspendDomainOptions,
): Promise<SuspendedDomain> {
  const started = performance.now()
  const options = checkOptions(domid, output, given)
  const { signal, vm } = options
  const onEvent = isolated(options.onEvent)
  const timingsMs: Record<string, number> = {}
  const since = () => performance.now() - started
  const shutdownKey = `${domainPath(domid)}/control/shutdown`
  let requested = false
  let acknowledged = false
  let suspended = false
  let suspendedAt = 0
  let fd: number | undefined
  let file: Awaited<ReturnType<typeof open>> | undefined
  // Each step timed into `timingsMs`, refused once cancelled, and its error naming it.
  const steps = new StepRunner(domid, { signal, timingsMs, operation: 'suspend' })
  const timed = <T>(step: string, work: () => Promise<T>): Promise<T> => steps.run(step, work)
  try {
    const info = await timed('domain_info', async () => {
      // A live save tracks the pages the guest dirties: a PV guest's log-dirty
      // mode is shadow paging's, which some Xens lack (Debian's): libxenguest
      // would fail with EINVAL after the first round.
      if (options.live && vm.type === 'pv' && !(await xen.physinfo()).capabilities.includes('shadow')) {
        throw invalidArgument(
          'options.live',
          'a live save of a PV guest needs shadow paging (log-dirty mode), which this Xen has not: save it suspended (live: false), or make it PVH',
        )
      }
      return xen.domainInfo(domid)
    })
    if (info.dying) throw invalidArgument('domid', `domain ${domid} is dying`)
    if (info.shutdownReason !== undefined) throw invalidArgument('domid', `domain ${domid} has shut down (${info.shutdownReason})`)
    if (info.hvm !== (vm.type !== 'pv'))
      throw invalidArgument('options.vm.type', `${vm.type} does not match domain ${domid}, which is ${info.hvm ? 'HVM' : 'PV'}`)
    const memoryTotalSourceKib = kibOfPages(info.totPages)
    if (typeof output === 'number') fd = output
    else {
      file = await open(output, 'w')
      fd = file.fd
    }
    const imageFd = fd
    await timed('image_header', () => writeImageHeader(imageFd, { vm: { config: vm, memoryTotalSourceKib } }))
    await timed('request', async () => {
      await xenstore.write(shutdownKey, 'suspend')
      requested = true
      onEvent?.({ type: 'suspend.requested', domid })
    })
    // The guest's kernel clears the key once it has taken the request.
    await timed('acknowledge', () =>
      poll(
        async () => {
          const value = await xenstore.read(shutdownKey)
          return value === null || value === '' ? true : undefined
        },
        options.ackTimeoutMs ?? DEFAULT_ACK_TIMEOUT_MS,
        signal,
        `waiting for domain ${domid} to acknowledge the suspend`,
        () =>
          new XenDomainBuildError(
            'SUSPEND_NOT_ACKNOWLEDGED',
            `domain ${domid} did not acknowledge the request to suspend within ${options.ackTimeoutMs ?? DEFAULT_ACK_TIMEOUT_MS} ms (has it a PV kernel with xenbus?)`,
            { domid },
          ),
      ),
    )
    requested = false
    acknowledged = true
    onEvent?.({ type: 'suspend.acknowledged', domid, ms: since() })
    const suspendedTimeoutMs = options.suspendedTimeoutMs ?? DEFAULT_SUSPENDED_TIMEOUT_MS
    const untilSuspended = () => waitSuspended(xen, domid, suspendedTimeoutMs, signal)
    await timed('save', () =>
      options.xenguest.run(xenguestSaveArgs({ type: vm.type, domid, live: options.live, extraArgs: options.extraArgs }), {
        signal,
        timeoutMs: options.xenguestTimeoutMs,
        imageFd,
        onSuspend: async () => {
          await untilSuspended()
          suspended = true
          suspendedAt = performance.now()
          onEvent?.({ type: 'suspend.suspended', domid, ms: since() })
        },
        onEvent: (event) => {
          const progress = event.type === 'xenguest.log' && event.stream === 'info' ? PROGRESS.exec(event.line) : null
          if (progress) {
            onEvent?.({
              type: 'suspend.progress',
              domid,
              iteration: Number(progress[1]),
              sentPages: Number(progress[2]),
              dirtyPages: Number(progress[3]),
              decision: progress[4] as 'continue' | 'stop_and_copy' | 'abort',
            })
          } else onEvent?.({ ...event, domid })
        },
      }),
    )
    if (!suspended)
      throw new XenDomainBuildError(
        'XENGUEST_PROTOCOL',
        `xenguest: the save of domain ${domid} ended without asking for it to be suspended`,
        { domid },
      )
    await timed('image_end', () => writeImageEnd(imageFd))
    if (file !== undefined) await timed('close', () => (file as NonNullable<typeof file>).close())
    file = undefined
    timingsMs.total = since()
    onEvent?.({ type: 'suspend.done', domid, ms: timingsMs.total })
    return { domid, memoryTotalSourceKib, suspendedAt, timingsMs }
  } catch (error) {
    // Whatever happened, the guest runs on: the request withdrawn, or the
    // suspended guest resumed (libxenguest's cooperative resume, through the
    // builder). Neither may hide the first error.
    let resumed = false
    if (requested) {
      // Withdraw the request, unless the guest took it (cleared the key) since
      // the last look: then it suspends, and is resumed below. One
      // transaction, so that it cannot take it between the look and the withdrawal.
      const taken = await xenstore
        .transaction(async (tx) => {
          const value = await tx.read(shutdownKey)
          if (value === null || value === '') return true
          await tx.write(shutdownKey, '')
          return false
        })
        .catch(() =>
          xenstore.write(shutdownKey, '').then(
            () => false,
            () => false,
          ),
        )
      if (taken) acknowledged = true
    }
    // A guest that took the request suspends itself soon after: wait for it, to resume it.
    if (acknowledged && !suspended) {
      suspended = await waitSuspended(
        xen,
        domid,
        Math.min(SUSPEND_AFTER_FAILURE_MS, options.suspendedTimeoutMs ?? Infinity),
        undefined,
      ).then(
        () => true,
        () => false,
      )
    }
    if (suspended) {
      resumed = await resumeGuest(options.xenguest, domid, options.xenguestTimeoutMs, (event) => onEvent?.({ ...event, domid }))
      if (resumed) onEvent?.({ type: 'suspend.resumed', domid })
    }
    await file?.close().catch(() => undefined)
    const e = error as { code?: string }
    onEvent?.({ type: 'suspend.failed', domid, ms: since(), code: e.code ?? 'UNKNOWN', resumed })
    if (error instanceof XenDomainBuildError || !(signal?.aborted ?? false)) throw error
    throw aborted(`the suspend of domain ${domid}`, signal?.reason)
  }
}
