// The one abort-listener lifecycle (ts/abort.ts), and the waits built on it:
// refused at once when already aborted, one listener while running, none after.
import { getEventListeners } from 'node:events'
import { describe, expect, it } from 'vitest'
import { abortable } from '../ts/abort.js'
import type { XenDomainBuildError } from '../ts/errors.js'
import { delay } from '../ts/timers.js'

const listeners = (signal: AbortSignal) => getEventListeners(signal, 'abort').length

describe('abortable', () => {
  it('refuses an aborted signal at once, without starting', async () => {
    const controller = new AbortController()
    controller.abort('gone')
    let started = false
    const result = abortable(controller.signal, 'the thing', () => {
      started = true
      return () => undefined
    })
    await expect(result).rejects.toMatchObject({ code: 'ABORTED', name: 'AbortError', message: 'the thing was cancelled', cause: 'gone' })
    expect(started).toBe(false)
    expect(listeners(controller.signal)).toBe(0)
  })

  it('hands an abort to the operation, which settles; then no listener is left', async () => {
    const controller = new AbortController()
    const seen: XenDomainBuildError[] = []
    const result = abortable<number>(controller.signal, 'the thing', (_resolve, reject) => (error) => {
      seen.push(error)
      setTimeout(() => reject(error), 5)
    })
    expect(listeners(controller.signal)).toBe(1)
    controller.abort('stop')
    await expect(result).rejects.toMatchObject({ code: 'ABORTED', cause: 'stop' })
    expect(seen).toHaveLength(1)
    expect(listeners(controller.signal)).toBe(0)
  })

  it('removes its listener when the operation ends first, or settles at once', async () => {
    const controller = new AbortController()
    const ignore = () => undefined
    const later = abortable<number>(controller.signal, 'x', (resolve) => {
      setTimeout(() => resolve(7), 1)
      return ignore
    })
    await expect(later).resolves.toBe(7)
    const now = abortable<number>(controller.signal, 'x', (resolve) => {
      resolve(8)
      return ignore
    })
    await expect(now).resolves.toBe(8)
    const refused = abortable(controller.signal, 'x', (_resolve, reject) => {
      reject(new Error('no'))
      return ignore
    })
    await expect(refused).rejects.toThrow('no')
    expect(listeners(controller.signal)).toBe(0)
    const unsignalled = abortable<number>(undefined, 'x', (resolve) => {
      resolve(9)
      return ignore
    })
    await expect(unsignalled).resolves.toBe(9)
  })

  it('hands over an abort that came while the operation started', async () => {
    const controller = new AbortController()
    const result = abortable<number>(controller.signal, 'the thing', (_resolve, reject) => {
      controller.abort('at once')
      return reject
    })
    await expect(result).rejects.toMatchObject({ code: 'ABORTED', cause: 'at once' })
    expect(listeners(controller.signal)).toBe(0)
  })

  it('delay: cut short by an abort, its timer cleared and its listener gone', async () => {
    const controller = new AbortController()
    const started = performance.now()
    const waiting = delay(10_000, controller.signal, 'a long wait')
    setTimeout(() => controller.abort(), 5)
    await expect(waiting).rejects.toMatchObject({ code: 'ABORTED', message: 'a long wait was cancelled' })
    expect(performance.now() - started).toBeLessThan(5000)
    expect(listeners(controller.signal)).toBe(0)
    const other = new AbortController()
    await delay(1, other.signal)
    expect(listeners(other.signal)).toBe(0)
  })
})
