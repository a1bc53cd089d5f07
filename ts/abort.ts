/**
 * The one way this package listens for a caller's abort signal: an
 * operation as a Promise, refused at once if the signal has already
 * aborted, with one listener while it runs, removed when it settles.
 */
import { aborted, type XenDomainBuildError } from './errors.js'

/**
 * Runs an operation that `signal` can cancel.
 * - If the signal has already aborted, the Promise rejects at once with
 *   `aborted(what, reason)`, and `start` is not called.
 * - Otherwise `start` begins the operation and returns what to do if the
 *   signal aborts before it settles: stop it and settle the Promise, given
 *   that same error (most reject with it at once; one that must wait for
 *   the operation to stop settles later).
 * - The listener is added once and removed when the Promise settles, either way;
 *   a signal that aborts while `start` runs is handed over as it returns.
 */
export function abortable<T>(
  signal: AbortSignal | undefined,
  what: string,
  start: (resolve: (value: T) => void, reject: (error: unknown) => void) => (error: XenDomainBuildError) => void,
): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    if (signal === undefined) {
      start(resolve, reject)
      return
    }
    if (signal.aborted) return reject(aborted(what, signal.reason))
    let settled = false
    const listener = () => onAbort(aborted(what, signal.reason))
    const done = () => {
      settled = true
      signal.removeEventListener('abort', listener)
    }
    const onAbort = start(
      (value) => {
        done()
        resolve(value)
      },
      (error) => {
        done()
        reject(error)
      },
    )
    // An operation that settled at once needs no listener; one whose start
    // aborted the signal (a caller's callback can) is stopped now.
    if (settled) return
    if (signal.aborted) listener()
    else signal.addEventListener('abort', listener, { once: true })
  })
}
