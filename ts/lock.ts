/**
 * A lock for async critical sections, in arrival order, that a caller may
 * leave while it waits (its abort signal). BuildHost's placement lock is one.
 */
import { aborted } from './errors.js'

/**
 * Runs critical sections one at a time, in arrival order. A caller whose
 * signal aborts while it waits is rejected at once; its turn, when it comes,
 * passes straight to the next caller.
 */
export class Lock {
  #tail: Promise<void> = Promise.resolve()

  run<T>(section: () => Promise<T>, signal?: AbortSignal): Promise<T> {
    const previous = this.#tail
    let release!: () => void
    this.#tail = new Promise<void>((resolve) => (release = resolve))
    return new Promise<T>((resolve, reject) => {
      const onAbort = () => reject(aborted('waiting for the placement lock', signal?.reason))
      if (signal?.aborted) onAbort()
      else signal?.addEventListener('abort', onAbort, { once: true })
      void previous.then(async () => {
        signal?.removeEventListener('abort', onAbort)
        try {
          if (signal?.aborted) return onAbort()
          resolve(await section())
        } catch (error) {
          reject(error)
        } finally {
          release()
        }
      })
    })
  }
}
