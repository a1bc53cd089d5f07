/**
 * A lock for async critical sections, in arrival order, that a caller may
 * leave while it waits (its abort signal). BuildHost's placement lock is one.
 */
import { abortable } from './abort.js'

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
    // The signal counts only while the caller waits for its turn.
    const turn = abortable<void>(signal, 'waiting for the placement lock', (resolve, reject) => {
      void previous.then(resolve)
      return reject
    })
    const result = turn.then(() => section())
    // The next turn comes after this section, or, for a caller that left, after the one before.
    void Promise.allSettled([previous, result]).then(() => release())
    return result
  }
}
