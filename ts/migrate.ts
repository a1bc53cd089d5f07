/**
 * `migrateDomain`: a live migration between two domains of one host, made of
 * the two calls a migration between hosts is made of: `suspendDomain` on the
 * source writes its image into a pipe while `restoreDomain` on the target
 * reads it. The guest runs during the pre-copy; it is paused from the moment
 * Xen reports the source suspended until the target is unpaused.
 */
import { execFile } from 'node:child_process'
import { mkdtemp, open, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import type { VmConfig } from './build-pre.js'
import type { BuiltDomain, DomainBuildEvent } from './build.js'
import { guestDomid, optionsObject } from './checks.js'
import { invalidArgument, XenDomainBuildError } from './errors.js'
import type { BuildHost } from './host.js'
import { restoreDomain, type RestoreDomainOptions } from './restore.js'
import { resumeGuest, suspendDomain, type SuspendDomainOptions, type SuspendEvent, type SuspendedDomain } from './suspend.js'
import { destroyDomain } from './domain.js'

/** How `migrateDomain` migrates: the suspend's options (live by default) and the restore's. */
export interface MigrateDomainOptions extends Omit<SuspendDomainOptions, 'onEvent'> {
  /** The target's restore: build_post's keys, time limits (the builder and the signal are the migration's). */
  restore?: Omit<RestoreDomainOptions, 'xenguest' | 'signal' | 'onEvent'>
  /** Each event of both sides: the source's suspend events and the target's restore events. */
  onEvent?: (event: SuspendEvent | DomainBuildEvent) => void
}

/** A migrated domain: the source is destroyed, the target runs. */
export interface MigratedDomain {
  source: SuspendedDomain
  target: BuiltDomain
  /** How long the guest was paused: from Xen's report of the source suspended to the target unpaused. */
  pausedMs: number
  /** The whole migration. */
  totalMs: number
}

/**
 * Migrates a PV or PVH guest from `sourceDomid` into `targetDomid`, an empty
 * domain made for it (`createDomain`), on this host: a live save (unless
 * `live: false`) into a pipe that the restore reads as it is written. On
 * success the target is unpaused and the source destroyed. If the source
 * cannot be suspended it runs on and the target's restore fails (its claim
 * released); if the target's restore fails after the source was suspended,
 * the source is resumed. Either way the target stays for the caller to
 * destroy.
 */
export async function migrateDomain(
  host: BuildHost,
  sourceDomid: number,
  targetDomid: number,
  given: MigrateDomainOptions,
): Promise<MigratedDomain> {
  const started = performance.now()
  guestDomid('sourceDomid', sourceDomid)
  guestDomid('targetDomid', targetDomid)
  if (sourceDomid === targetDomid) throw invalidArgument('targetDomid', `is the source, ${sourceDomid}`)
  const options = optionsObject('options', given) as MigrateDomainOptions
  const vm: VmConfig = options.vm
  const dir = await mkdtemp(join(tmpdir(), 'xen-domain-build-migrate-'))
  const fifo = join(dir, 'stream')
  try {
    await promisify(execFile)('mkfifo', ['-m', '600', fifo])
    // Opening a pipe waits for its other end: both at once.
    const [writer, reader] = await Promise.all([open(fifo, 'w'), open(fifo, 'r')])
    let source: SuspendedDomain | undefined
    const suspending = suspendDomain(host.hypervisor, host.xenstore, sourceDomid, writer.fd, {
      ...options,
      live: options.live ?? true,
      onEvent: options.onEvent,
    })
      .then((suspended) => {
        source = suspended
        return suspended
      })
      // The restore reads to the end of the image, or sees it cut short.
      .finally(() => writer.close())
    const restoring = restoreDomain(host, targetDomid, vm, reader.fd, {
      ...options.restore,
      xenguest: options.xenguest,
      signal: options.signal,
      onEvent: options.onEvent,
    }).finally(() => reader.close())
    const [suspendOutcome, restoreOutcome] = await Promise.allSettled([suspending, restoring])
    if (suspendOutcome.status === 'rejected') throw suspendOutcome.reason
    if (restoreOutcome.status === 'rejected') {
      // The source suspended for nothing: it runs on.
      await resumeGuest(options.xenguest, sourceDomid, options.xenguestTimeoutMs)
      throw restoreOutcome.reason
    }
    const target = restoreOutcome.value
    await host.hypervisor.unpauseDomain(targetDomid)
    const unpausedAt = performance.now()
    await destroyDomain(host.hypervisor, host.xenstore, sourceDomid)
    const suspended = source as SuspendedDomain
    return { source: suspended, target, pausedMs: unpausedAt - suspended.suspendedAt, totalMs: performance.now() - started }
  } catch (error) {
    if (error instanceof XenDomainBuildError) throw error
    throw new XenDomainBuildError('INTERNAL', `migrating domain ${sourceDomid}: ${(error as Error).message}`, { cause: error })
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
}
