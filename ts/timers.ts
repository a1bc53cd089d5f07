/**
 * The one way this package waits for time to pass: a timer that a signal
 * can cut short, with its listener removed either way.
 */
import { abortable } from './abort.js'

/**
 * Resolves after `ms`. When `signal` aborts first (or has already), rejects
 * at once with `ABORTED` naming `what`, and the timer is cleared.
 */
export function delay(ms: number, signal?: AbortSignal, what = 'a wait'): Promise<void> {
  return abortable<void>(signal, what, (resolve, reject) => {
    const timer = setTimeout(resolve, ms)
    return (error) => {
      clearTimeout(timer)
      reject(error)
    }
  })
}
