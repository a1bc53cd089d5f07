/**
 * A simulated guest's kernel, for the simulated host: what a PV or PVH
 * Linux does with `control/shutdown` (drivers/xen/manage.c). It watches the
 * key (here: reads it every few milliseconds), acknowledges a request by
 * clearing it, and suspends: the domain shuts down for suspend, as the
 * guest's SCHEDOP_shutdown makes Xen report. After a resume it runs on and
 * takes the next request.
 */
import type { SimulatedHost } from './hypervisor.js'
import { delay } from './timers.js'
import { domainPath, type Xenstore } from './xenstore.js'

/** How a simulated guest answers a request to suspend. */
export interface SimulatedGuestOptions {
  /** Whether it acknowledges a request (a guest without PV drivers does not): true. */
  acknowledges?: boolean
  /** Whether, having acknowledged, it suspends (a guest can hang in its freeze): true. */
  suspends?: boolean
  /** How long it takes to act on a request: 5 ms. */
  reactionMs?: number
}

/** A simulated guest kernel on one domain; `stop()` ends it (a destroyed domain ends it too). */
export class SimulatedGuest {
  readonly domid: number
  /** How many requests to suspend it has acknowledged. */
  acknowledged = 0
  readonly #stopping = new AbortController()
  readonly #done: Promise<void>

  constructor(sim: SimulatedHost, xenstore: Xenstore, domid: number, options: SimulatedGuestOptions = {}) {
    this.domid = domid
    const key = `${domainPath(domid)}/control/shutdown`
    const reactionMs = options.reactionMs ?? 5
    const signal = this.#stopping.signal
    this.#done = (async () => {
      while (!signal.aborted) {
        await delay(reactionMs, signal, 'the simulated guest').catch(() => undefined)
        if (signal.aborted) return
        const info = await sim
          .hypervisor()
          .domainInfo(domid)
          .catch(() => null)
        if (info === null || info.dying) return
        // A suspended guest does nothing until it is resumed.
        if (info.shutdownReason !== undefined || options.acknowledges === false) continue
        const request = await xenstore.read(key).catch(() => null)
        if (request !== 'suspend') continue
        // A store or domain gone under it ends the guest, as its domain's destruction would.
        const acted = await xenstore
          .write(key, '')
          .then(() => {
            this.acknowledged++
            return options.suspends === false ? undefined : sim.shutdownDomain(domid, 'suspend')
          })
          .then(
            () => true,
            () => false,
          )
        if (!acted) return
      }
    })()
  }

  /** Stops the guest kernel's loop; resolves once it has. */
  async stop(): Promise<void> {
    this.#stopping.abort()
    await this.#done
  }
}
