/**
 * Waiting until Xen has enough free memory, with xenopsd's rules
 * (https://github.com/xen-domain-build/xen-domain-build/blob/main/docs/ARCHITECTURE.md#waiting-for-free-memory): enough free memory, go;
 * not enough and nothing being scrubbed, fail at once; past the time limit
 * (64 s), fail. Unlike xenopsd's 1 s poll, one
 * watcher per host polls physinfo every 20 ms while anyone waits, and every
 * waiter is checked against the same reading: freed memory is noticed within
 * a tick, and a thousand waiting builds cost one hypercall per tick. A poll
 * that fails with an error that may pass (EAGAIN, EBUSY, ...) is retried with
 * backoff within each wait's time limit; any other error ends every wait.
 */
import type { Hypervisor, PhysInfo } from '../native/binding.js'
import { abortable } from './abort.js'
import { XenDomainBuildError } from './errors.js'
import { bytesOfKib, kibOfPages } from './units.js'

/** Errors of a physinfo poll that may pass: retried within the wait's time limit. */
const TRANSIENT_CODES = new Set(['EAGAIN', 'EINTR', 'EBUSY', 'ETIMEDOUT', 'ENOMEM', 'ENOBUFS'])

export interface WaitProgress {
  requiredKib: number
  freeKib: number
  scrubKib: number
  waitedMs: number
}

export interface WaitOptions {
  signal?: AbortSignal
  /** xenopsd: 64 s. */
  timeoutMs?: number
  onProgress?: (progress: WaitProgress) => void
}

export interface WaitResult {
  waitedMs: number
  freeKib: number
  /** Polls of physinfo this wait saw. */
  polls: number
}

interface Waiter {
  requiredKib: number
  started: number
  deadline: number
  polls: number
  lastFreeKib: number
  options: WaitOptions
  resolve(result: WaitResult): void
  reject(error: unknown): void
}

export function notEnoughMemory(requiredKib: number, freeKib: number, why: string): XenDomainBuildError {
  const error = new XenDomainBuildError(
    'NOT_ENOUGH_MEMORY',
    `not enough free memory: ${requiredKib} KiB required, ${freeKib} KiB free (${why})`,
  )
  return Object.assign(error, { requiredBytes: bytesOfKib(requiredKib), freeBytes: bytesOfKib(freeKib) })
}

export class MemoryWatcher {
  readonly #hypervisor: Hypervisor
  readonly #intervalMs: number
  readonly #waiters = new Set<Waiter>()
  #timer: NodeJS.Timeout | undefined
  #polling = false
  #closed = false
  /** Failed polls in a row: the retry backs off with them. */
  #failedPolls = 0

  constructor(hypervisor: Hypervisor, options: { intervalMs?: number } = {}) {
    this.#hypervisor = hypervisor
    this.#intervalMs = options.intervalMs ?? 20
  }

  /** Stops polling; every wait, now and later, rejects with CLOSED. */
  close(): void {
    this.#closed = true
    for (const waiter of [...this.#waiters]) {
      this.#remove(waiter)
      waiter.reject(new XenDomainBuildError('CLOSED', 'waiting for free memory: the build host was closed'))
    }
  }

  /** Resolves once free memory reaches `requiredKib`; see the module comment for the rules. */
  waitForFreeMemory(requiredKib: number, options: WaitOptions = {}): Promise<WaitResult> {
    return abortable<WaitResult>(options.signal, 'waiting for free memory', (resolve, reject) => {
      if (this.#closed) {
        reject(new XenDomainBuildError('CLOSED', 'waiting for free memory: the build host was closed'))
        return reject
      }
      const started = performance.now()
      const waiter: Waiter = {
        requiredKib,
        started,
        deadline: started + (options.timeoutMs ?? 64_000),
        polls: 0,
        lastFreeKib: -1,
        options,
        resolve,
        reject,
      }
      this.#waiters.add(waiter)
      // A new waiter is checked at once: with memory to spare, builds do not wait a tick.
      if (!this.#polling) {
        clearTimeout(this.#timer)
        void this.#poll()
      }
      return (error) => {
        this.#remove(waiter)
        reject(error)
      }
    })
  }

  #remove(waiter: Waiter): void {
    this.#waiters.delete(waiter)
    if (this.#waiters.size === 0 && this.#timer !== undefined) {
      clearTimeout(this.#timer)
      this.#timer = undefined
    }
  }

  async #poll(): Promise<void> {
    this.#timer = undefined
    this.#polling = true
    let info: PhysInfo
    try {
      info = await this.#hypervisor.physinfo()
    } catch (error) {
      this.#polling = false
      this.#failedPolls++
      const now = performance.now()
      const transient = TRANSIENT_CODES.has((error as { code?: string }).code ?? '')
      for (const waiter of [...this.#waiters]) {
        // A transient failure is retried within the wait's time limit; one
        // that will not pass ends every wait at once.
        if (transient && now < waiter.deadline) continue
        this.#remove(waiter)
        waiter.reject(error)
      }
      // Backing off: 2, 4, 8... polls' time, at most a second.
      const backoffMs = Math.min(1000, this.#intervalMs * 2 ** Math.min(10, this.#failedPolls))
      if (this.#waiters.size > 0) this.#timer = setTimeout(() => void this.#poll(), backoffMs)
      return
    }
    this.#polling = false
    this.#failedPolls = 0
    const now = performance.now()
    const freeKib = kibOfPages(info.freePages)
    const scrubKib = kibOfPages(info.scrubPages)
    for (const waiter of [...this.#waiters]) {
      waiter.polls++
      const waitedMs = now - waiter.started
      if (freeKib >= waiter.requiredKib) {
        this.#remove(waiter)
        waiter.resolve({ waitedMs, freeKib, polls: waiter.polls })
      } else if (scrubKib === 0) {
        this.#remove(waiter)
        waiter.reject(notEnoughMemory(waiter.requiredKib, freeKib, 'and nothing is being scrubbed'))
      } else if (now >= waiter.deadline) {
        this.#remove(waiter)
        waiter.reject(notEnoughMemory(waiter.requiredKib, freeKib, `still, after ${Math.round(waitedMs)} ms`))
      } else if (freeKib !== waiter.lastFreeKib) {
        // Progress only of a wait that goes on: a build with the memory it
        // needs, or one refused at once, has not waited.
        waiter.lastFreeKib = freeKib
        waiter.options.onProgress?.({ requiredKib: waiter.requiredKib, freeKib, scrubKib, waitedMs })
      }
    }
    if (this.#waiters.size > 0) this.#timer = setTimeout(() => void this.#poll(), this.#intervalMs)
  }
}
