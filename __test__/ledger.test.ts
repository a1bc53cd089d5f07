import { describe, expect, it } from 'vitest'
import { Lock } from '../ts/lock.js'
import { InFlightLedger, xenSpread } from '../ts/ledger.js'
import { rejected } from './helpers.js'

const MIB = 2 ** 20

describe('the in-flight ledger', () => {
  it('counts promises and pools to come, by accounting', () => {
    const ledger = new InFlightLedger(4)
    const a = ledger.open(1)
    a.promise([100, 0, 0, 0], true)
    const b = ledger.open(2)
    b.promise([0, 50, 50, 0], false)
    const c = ledger.open(3)
    c.expectPool(8)
    // Pools spread evenly over every node, as Xen grows a pool page by page.
    expect(ledger.promisedBytesByNode('in-flight')).toEqual([102, 52, 52, 2])
    expect(ledger.promisedBytesByNode('xenopsd')).toEqual([100, 0, 0, 0])
    expect(ledger.buildsInFlight).toBe(2)
    c.poolAllocated()
    expect(ledger.promisedBytesByNode('in-flight')).toEqual([100, 50, 50, 0])
  })

  it('drops a promise exactly once, whatever order the transitions come in', () => {
    const ledger = new InFlightLedger(2)
    const r = ledger.open(7)
    r.expectPool(4)
    r.promise([10, 0], false)
    r.populated()
    r.populated()
    r.release()
    // Nothing recorded after the end counts.
    r.promise([10, 0], false)
    r.expectPool(4)
    expect(ledger.promisedBytesByNode('in-flight')).toEqual([0, 0])
    expect(ledger.buildsInFlight).toBe(0)
    expect(ledger.openCount).toBe(0)
    expect(r.ended).toBe(true)
  })

  it('names the builds with memory still to populate on some nodes, and only those', () => {
    const ledger = new InFlightLedger(3)
    const onNode0 = ledger.open(1)
    onNode0.promise([5, 0, 0], false)
    const onNode2 = ledger.open(2)
    onNode2.promise([0, 0, 5], false)
    const me = ledger.open(3)
    me.promise([1, 1, 1], false)
    expect(ledger.outstandingOn([0], me)).toEqual([onNode0])
    expect(ledger.outstandingOn([1], me)).toEqual([])
    expect(ledger.outstandingOn(null, me)).toEqual([onNode0, onNode2])
    onNode2.populated()
    expect(ledger.outstandingOn(null, me)).toEqual([onNode0])
  })

  it("follows Xen's count of each domain's pages: what is populated no longer counts", async () => {
    const ledger = new InFlightLedger(2)
    const pinned = ledger.open(5)
    pinned.setBaselinePages(10)
    pinned.promise([400 * MIB, 0], false)
    const spread = ledger.open(6)
    spread.promise([100 * MIB, 100 * MIB], false)
    const pagesOf: Record<number, number> = { 5: 10 + (100 * MIB) / 4096, 6: (200 * MIB) / 4096 }
    await ledger.observe(async (domid) => pagesOf[domid] ?? 0)
    // A quarter of the first is populated (beyond its 10 pages from before the
    // build), all of the second: the builder has not exited, but Xen counts it.
    expect(ledger.promisedBytesByNode('in-flight')).toEqual([300 * MIB, 0])
    expect(ledger.outstandingOn(null)).toEqual([pinned])
    expect(ledger.buildsInFlight).toBe(2)
    // A count read late (smaller) changes nothing; a failed read keeps the promise as it is.
    pagesOf[5] = 10
    await ledger.observe(async (domid) => {
      if (domid === 6) throw new Error('ESRCH')
      return pagesOf[domid] ?? 0
    })
    expect(ledger.promisedBytesByNode('in-flight')).toEqual([300 * MIB, 0])
  })

  it('releases a waiter when a promise ends', async () => {
    const ledger = new InFlightLedger(1)
    const r = ledger.open(1)
    r.promise([5], false)
    let settled = false
    const waiting = r.done.then(() => (settled = true))
    await new Promise((resolve) => setTimeout(resolve, 5))
    expect(settled).toBe(false)
    r.release()
    await waiting
    expect(settled).toBe(true)
  })
})

describe('xenSpread: where Xen interleaves a domain over its nodes', () => {
  it('spreads evenly, capped by what each node has free', () => {
    expect(xenSpread(300 * MIB, [0, 1, 2], [1000 * MIB, 1000 * MIB, 1000 * MIB], 4)).toEqual([100 * MIB, 100 * MIB, 100 * MIB, 0])
    // Node 1 has 20 MiB: Xen skips it once full and goes on with the others.
    expect(xenSpread(300 * MIB, [0, 1, 2], [1000 * MIB, 20 * MIB, 1000 * MIB], 3)).toEqual([140 * MIB, 20 * MIB, 140 * MIB])
    // More than the nodes hold: the rest is not on them.
    expect(xenSpread(300 * MIB, [0], [100 * MIB], 2)).toEqual([100 * MIB, 0])
  })
})

describe('the placement lock', () => {
  it('runs sections one at a time, in arrival order', async () => {
    const lock = new Lock()
    const order: string[] = []
    const section = (name: string, ms: number) => () =>
      new Promise<string>((resolve) => {
        order.push(`${name} in`)
        setTimeout(() => {
          order.push(`${name} out`)
          resolve(name)
        }, ms)
      })
    expect(await Promise.all([lock.run(section('a', 20)), lock.run(section('b', 1)), lock.run(section('c', 1))])).toEqual(['a', 'b', 'c'])
    expect(order).toEqual(['a in', 'a out', 'b in', 'b out', 'c in', 'c out'])
  })

  it('rejects a waiting caller as soon as its signal aborts, and lets the next one through', async () => {
    const lock = new Lock()
    let releaseFirst!: () => void
    const first = lock.run(() => new Promise<void>((resolve) => (releaseFirst = resolve)))
    const controller = new AbortController()
    let ran = false
    const second = lock.run(async () => {
      ran = true
    }, controller.signal)
    const third = lock.run(async () => 'third')
    controller.abort()
    // Rejected while the section ahead of it still runs (it is released only below).
    expect((await rejected(second)).code).toBe('ABORTED')
    releaseFirst()
    await first
    expect(await third).toBe('third')
    expect(ran).toBe(false)
  })

  it('a section that throws does not stop the queue', async () => {
    const lock = new Lock()
    const failing = lock.run(async () => {
      throw new Error('boom')
    })
    await expect(failing).rejects.toThrow('boom')
    expect(await lock.run(async () => 1)).toBe(1)
  })
})
