/**
 * A build step: it does not start once the build is cancelled, its error says
 * which step of which domain failed, and its time is recorded and published.
 */
import { aborted, inStep } from './errors.js'

/** A build step done, with how long it took. */
export type StepEvent = { type: 'step'; domid: number; step: string; ms: number }

export class StepRunner {
  readonly domid: number
  /** Milliseconds per step, in the order they ran. */
  readonly timingsMs: Record<string, number>
  readonly #signal: AbortSignal | undefined
  readonly #onEvent: ((event: StepEvent) => void) | undefined
  /** What the steps are of, for a cancellation's message: `build` (a restore's are a build's), `suspend`. */
  readonly #operation: string

  constructor(
    domid: number,
    options: {
      signal?: AbortSignal
      onEvent?: (event: StepEvent) => void
      timingsMs?: Record<string, number>
      operation?: string
    } = {},
  ) {
    this.domid = domid
    this.#signal = options.signal
    this.#onEvent = options.onEvent
    this.timingsMs = options.timingsMs ?? {}
    this.#operation = options.operation ?? 'build'
  }

  async run<T>(step: string, work: () => Promise<T>): Promise<T> {
    const started = performance.now()
    try {
      if (this.#signal?.aborted) throw aborted(`the ${this.#operation} of domain ${this.domid}`, this.#signal.reason)
      return await work()
    } catch (error) {
      throw inStep(error, step, this.domid)
    } finally {
      const ms = performance.now() - started
      this.timingsMs[step] = ms
      this.#onEvent?.({ type: 'step', domid: this.domid, step, ms })
    }
  }
}
