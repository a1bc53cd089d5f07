/**
 * The one way this package waits for time to pass: a timer that a signal
 * can cut short, with its listener removed either way.
 */
import { aborted } from './errors.js'

/**
 * Resolves after `ms`. When `signal` aborts first (or has already), rejects
 * at once with `ABORTED` naming `what`, and the timer is cleared.
 */
export function delay(ms: number, signal?: AbortSignal, what = 'a wait'): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    if (signal?.aborted) return reject(aborted(what, signal.reason))
    const onAbort = () => {
      clearTimeout(timer)
      reject(aborted(what, signal?.reason))
    }
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort)
      resolve()
    }, ms)
    signal?.addEventListener('abort', onAbort, { once: true })
  })
}
