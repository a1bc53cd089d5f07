import { describe, expect, it } from 'vitest'
import { openXenstore } from '../ts/index.js'
import { CallsXenstore } from '../ts/xenstore.js'
import { InMemoryXenstore } from '../ts/xenstore-memory.js'
import { checks, runCheck } from './xenstore-conformance.mjs'
import { rejected, systemPackage } from './helpers.js'

describe('InMemoryXenstore conforms to xenstored (the suite the real xenstored runs in test:xen)', () => {
  for (const name of Object.keys(checks)) {
    it(name, async () => {
      const store = new InMemoryXenstore({ domainExists: (domid) => domid === 42 || domid === 43 })
      await runCheck(name, { store, other: store.asDomain(0), guest: 42, asDomain: (domid) => store.asDomain(domid) })
    })
  }
})

describe('the conformance suite', () => {
  it('catches a store whose transactions are neither isolated nor checked for conflicts', async () => {
    // Every call goes straight to the tree (transaction id 0); ending a transaction does nothing.
    const memory = new InMemoryXenstore()
    const calls = memory.calls
    const naiveCalls = new Proxy(calls, {
      get: (target, name) => {
        if (name === 'transactionStart') return async () => 1
        if (name === 'transactionEnd') return async () => undefined
        const call = Reflect.get(target, name) as (...args: unknown[]) => Promise<unknown>
        const takesTx = ['read', 'write', 'writeAll', 'mkdir', 'rm', 'directory', 'getPermissions', 'setPermissions'].includes(String(name))
        return (...args: unknown[]) => call.apply(target, takesTx ? [0, ...args.slice(1)] : args)
      },
    })
    const naive = new CallsXenstore(naiveCalls)
    await expect(runCheck('transactionConflict', { store: naive, other: new CallsXenstore(naiveCalls), guest: 42 })).rejects.toThrow(
      /both increments landed/,
    )
    await expect(runCheck('transactionsAreAllOrNothing', { store: naive, guest: 42 })).rejects.toThrow(/aborted transaction leaves nothing/)
  })
})

describe('InMemoryXenstore', () => {
  it('keeps only the newest writes in its log', async () => {
    const store = new InMemoryXenstore({ writesKept: 10 })
    for (let i = 0; i < 100; i++) await store.write(`/log/${i}`, String(i))
    expect(store.writes.length).toBeLessThanOrEqual(20)
    expect(store.writes.at(-1)).toEqual(['/log/99', '99'])
    expect(store.entries.size).toBe(101) // the tree keeps every node
  })

  it("resolves a relative path below the caller's home", async () => {
    const store = new InMemoryXenstore()
    await store.mkdir('/local/domain/5')
    await store.setPermissions('/local/domain/5', [{ domid: 5, access: 'none' }])
    await store.asDomain(5).write('data/x', '1')
    expect(await store.read('/local/domain/5/data/x')).toBe('1')
  })

  it('counts its round trips: a writeMany is a transaction of one request per key', async () => {
    const store = new InMemoryXenstore()
    await store.writeMany('/a', { x: '1', y: '2', z: '3' })
    expect(store.roundTrips).toBe(5)
  })

  it('introduces and releases domains as xenstored does', async () => {
    const store = new InMemoryXenstore()
    await store.introduce(3, 0xfeffcn, 1)
    expect(store.introduced.get(3)).toEqual({ domid: 3, storeMfn: 0xfeffcn, storePort: 1 })
    await store.release(3)
    expect(store.introduced.has(3)).toBe(false)
    expect((await rejected(store.release(3))).code).toBe('ENOENT')
    expect((await rejected(store.release(0))).code).toBe('EINVAL')
  })
})

describe('openXenstore on a machine without xenstored', () => {
  it.runIf(systemPackage({ file: '/usr/lib/x86_64-linux-gnu/libxenstore.so.4' }, 'libxen-dev'))(
    'rejects XENSTORE_UNAVAILABLE saying xenstored is missing',
    async () => {
      const error = await rejected(openXenstore({ probeTimeoutMs: 500 }))
      expect(error).toMatchObject({ name: 'XenDomainBuildError', code: 'XENSTORE_UNAVAILABLE', reason: 'no-xenstored' })
      expect(error.message).toMatch(/^xenstore is unavailable: no xenstored: /)
    },
  )

  it('rejects XENSTORE_UNAVAILABLE saying the library is missing', async () => {
    const error = await rejected(openXenstore({ libraryPath: '/nonexistent/libxenstore.so.4' }))
    expect(error).toMatchObject({ code: 'XENSTORE_UNAVAILABLE', reason: 'no-library' })
    expect(error.message).toContain('/nonexistent/libxenstore.so.4')
  })

  it('refuses bad options as INVALID_ARGUMENT', async () => {
    expect((await rejected(openXenstore({ probeTimeoutMs: 1.5 }))).code).toBe('INVALID_ARGUMENT')
    expect((await rejected(openXenstore({ probeTimeoutMs: -1 }))).code).toBe('INVALID_ARGUMENT')
  })
})
