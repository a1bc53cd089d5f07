/**
 * A caller's event listener (`onEvent`), isolated from the build it listens
 * to: what it throws, or the Promise it returns rejects with, is reported as
 * a process warning and goes no further. A listener is told about a build; it
 * cannot fail it, nor change what the build does next.
 */

/** The `name` of the warning a failed listener is reported with (`process.on('warning')`). */
export const LISTENER_WARNING = 'XenDomainBuildListenerWarning'

function report(error: unknown, event: { type: string }): void {
  const message = error instanceof Error ? error.message : String(error)
  const warning = new Error(`an onEvent listener failed at a ${event.type} event (the build goes on): ${message}`, { cause: error })
  warning.name = LISTENER_WARNING
  process.emitWarning(warning)
}

/** `listener`, unable to throw into its caller; undefined stays undefined. */
export function isolated<E extends { type: string }>(listener: ((event: E) => unknown) | undefined): ((event: E) => void) | undefined {
  if (listener === undefined) return undefined
  return (event) => {
    try {
      const result = listener(event)
      // An async listener: its rejection would otherwise be unhandled.
      if (result instanceof Promise) result.catch((error: unknown) => report(error, event))
    } catch (error) {
      report(error, event)
    }
  }
}
