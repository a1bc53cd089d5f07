// @ts-check
// What a Xenstore must do, written once and run against every store:
// InMemoryXenstore by vitest (__test__/xenstore.test.ts), and the real
// xenstored in dom0 by `npm run test:xen` (__test__/xen/xenstore.mjs, plain
// node). Each check is an async function taking `{ store, base, guest,
// asDomain }`: `store` acts as dom0, `base` is a fresh path the check may use
// and removes, `guest` a domid that exists (xenstored refuses a node
// owned by a domain that does not: ENOENT), `asDomain(domid)` (when the store
// can act as a guest) a view as that domain.
// A check throws (node:assert) when the store does not conform.
import assert from 'node:assert/strict'

/** The code of a rejection, or 'ok'. */
async function codeOf(promise) {
  try {
    await promise
    return 'ok'
  } catch (error) {
    return error.code ?? `no code: ${error.message}`
  }
}

export async function treeBasics({ store, base }) {
  assert.equal(await store.read(`${base}/missing`), null, 'a missing node reads as null')
  await store.write(`${base}/a/b/c`, 'v')
  assert.equal(await store.read(`${base}/a/b/c`), 'v')
  assert.equal(await store.read(`${base}/a/b`), '', 'a write creates its parents, empty')
  await store.write(`${base}/a/d`, 'w')
  await store.mkdir(`${base}/a/e`)
  await store.mkdir(`${base}/a/e`) // twice is fine
  assert.deepEqual((await store.directory(`${base}/a`)).sort(), ['b', 'd', 'e'])
  assert.deepEqual(await store.directory(`${base}/a/e`), [])
  assert.equal(await codeOf(store.directory(`${base}/nowhere`)), 'ENOENT')
  await store.write(`${base}/a/d`, 'w2')
  assert.equal(await store.read(`${base}/a/d`), 'w2', 'a write replaces the value')
  await store.rm(`${base}/a/b`)
  assert.equal(await store.read(`${base}/a/b/c`), null, 'rm removes the subtree')
  assert.deepEqual((await store.directory(`${base}/a`)).sort(), ['d', 'e'])
  await store.rm(`${base}/a/b`) // gone already, parent there: fine
  assert.equal(await codeOf(store.rm(`${base}/x/y/z`)), 'ENOENT', 'rm below a missing parent')
  await store.writeMany(`${base}/many`, { one: '1', 'two/deep': '2' })
  assert.equal(await store.read(`${base}/many/two/deep`), '2')
  assert.equal(await store.getDomainPath(7), '/local/domain/7')
}

export async function permissions({ store, base, guest, asDomain }) {
  await store.mkdir(`${base}/ro`)
  await store.setPermissions(`${base}/ro`, [
    { domid: 0, access: 'none' },
    { domid: guest, access: 'read' },
  ])
  assert.deepEqual(await store.getPermissions(`${base}/ro`), [
    { domid: 0, access: 'none' },
    { domid: guest, access: 'read' },
  ])
  await store.write(`${base}/ro/child/grandchild`, 'x')
  assert.deepEqual(
    await store.getPermissions(`${base}/ro/child/grandchild`),
    [
      { domid: 0, access: 'none' },
      { domid: guest, access: 'read' },
    ],
    "new nodes inherit the parent's permissions",
  )
  await store.mkdir(`${base}/rw`)
  await store.setPermissions(`${base}/rw`, [{ domid: guest, access: 'none' }])
  assert.deepEqual(await store.getPermissions(`${base}/rw`), [{ domid: guest, access: 'none' }])
  assert.equal(await codeOf(store.getPermissions(`${base}/nothing`)), 'ENOENT')
  // xenstored accounts a node to its owner, which must exist; an entry for a missing domain is kept but ignored.
  assert.equal(
    await codeOf(store.setPermissions(`${base}/ro`, [{ domid: 31999, access: 'none' }])),
    'ENOENT',
    'an owner that does not exist',
  )
  assert.deepEqual(await store.getPermissions(`${base}/ro`), [
    { domid: 0, access: 'none' },
    { domid: guest, access: 'read' },
  ])
  await store.mkdir(`${base}/gone`)
  await store.setPermissions(`${base}/gone`, [
    { domid: 0, access: 'none' },
    { domid: 31999, access: 'read' },
  ])
  if (asDomain === undefined) return
  // What a guest may do, as xenstored checks it.
  const g = asDomain(guest)
  const other = asDomain(guest + 1)
  assert.equal(await g.read(`${base}/ro/child/grandchild`), 'x', 'the guest reads what it may read')
  assert.equal(await codeOf(g.write(`${base}/ro/child/grandchild`, 'y')), 'EACCES', 'but may not write it')
  assert.equal(await codeOf(g.write(`${base}/ro/new`, 'y')), 'EACCES', 'nor create below it')
  assert.equal(await codeOf(other.read(`${base}/ro/child`)), 'EACCES', 'another guest may not read it')
  assert.equal(await codeOf(other.read(`${base}/ro/child/none`)), 'EACCES', 'nor learn what is missing below it')
  await g.write(`${base}/rw/mine`, 'z')
  assert.deepEqual(await store.getPermissions(`${base}/rw/mine`), [{ domid: guest, access: 'none' }], 'the guest owns what it creates')
  assert.equal(await codeOf(other.read(`${base}/rw/mine`)), 'EACCES')
  assert.equal(
    await codeOf(g.setPermissions(`${base}/rw/mine`, [{ domid: 0, access: 'none' }])),
    'EPERM',
    'a guest may not give its node away',
  )
  assert.equal(await codeOf(g.setPermissions(`${base}/ro`, [{ domid: guest, access: 'none' }])), 'EACCES', 'nor take one it does not own')
  assert.equal(await codeOf(g.introduce(guest, 1n, 1)), 'EACCES', 'only dom0 introduces domains')
  assert.equal(await store.read(`${base}/ro/new`), null)
}

export async function limits({ store, base }) {
  const before = await store.directory(base).catch(() => [])
  const refused = [
    store.write(`${base}/a b`, 'x'),
    store.write(`${base}/a\0b`, 'x'),
    store.write(`${base}/a.b`, 'x'),
    store.write(`${base}//a`, 'x'),
    store.write(`${base}/a/`, 'x'),
    store.write(`/${'a'.repeat(3072)}`, 'x'),
    store.write('r'.repeat(2049), 'x'),
    store.write(`${base}/big`, 'v'.repeat(4096)),
    store.read(`${base}/ü`),
    store.mkdir(`${base}/a:b`),
    store.rm(`${base}/a*`),
    store.directory(''),
    store.setPermissions(`${base}/p`, []),
    store.setPermissions(`${base}/p`, [{ domid: 0, access: 'all' }]),
    store.writeMany(`${base}/many`, { good: '1', 'b a d': '2' }),
    store.transaction(async (t) => {
      await t.write(`${base}/tx-good`, '1')
      await t.write(`${base}/tx bad`, '2')
    }),
  ]
  for (const [i, promise] of refused.entries())
    assert.equal(await codeOf(promise), 'INVALID_ARGUMENT', `input ${i} is refused as INVALID_ARGUMENT`)
  // Nothing of it was written, not even the good halves.
  assert.deepEqual(await store.directory(base).catch(() => []), before)
  // At the limits exactly, accepted.
  const fits = 4096 - `${base}/fits`.length - 1
  await store.write(`${base}/fits`, 'v'.repeat(fits))
  assert.equal((await store.read(`${base}/fits`)).length, fits)
}

/**
 * Two writers increment one counter in transactions that overlap: one
 * conflicts, is run again, and both land. Two clients (`other`): one client's
 * own transactions run one after another.
 */
export async function transactionConflict({ store, other = store, base }) {
  const counter = `${base}/counter`
  await store.write(counter, '0')
  let bothRead
  const read = new Promise((resolve) => {
    let waiting = 2
    bothRead = () => {
      if (--waiting === 0) resolve()
    }
  })
  let runs = 0
  const increment = (client) =>
    client.transaction(async (t) => {
      runs++
      const value = Number(await t.read(counter))
      if (runs <= 2) {
        // First runs: both read before either writes, so they conflict.
        bothRead()
        await read
      }
      await t.write(counter, String(value + 1))
      return value
    })
  const seen = await Promise.all([increment(store), increment(other)])
  assert.equal(await store.read(counter), '2', 'both increments landed')
  assert.ok(runs >= 3, `one transaction ran again after EAGAIN (runs: ${runs})`)
  assert.deepEqual(seen.sort(), [0, 1])
}

export async function transactionsAreAllOrNothing({ store, base }) {
  await assert.rejects(
    store.transaction(async (t) => {
      await t.write(`${base}/half/one`, '1')
      assert.equal(await t.read(`${base}/half/one`), '1', 'a transaction sees its own writes')
      throw new Error('changed my mind')
    }),
    /changed my mind/,
  )
  assert.equal(await store.read(`${base}/half/one`), null, 'an aborted transaction leaves nothing')
  // Outside, a transaction's writes are invisible until it ends.
  let inside
  const done = store.transaction(async (t) => {
    await t.write(`${base}/later`, 'x')
    inside = await store.read(`${base}/later`)
  })
  await done
  assert.equal(inside, null)
  assert.equal(await store.read(`${base}/later`), 'x')
  // A transaction that keeps conflicting gives up with EAGAIN after its attempts.
  let attempts = 0
  const code = await codeOf(
    store.transaction(
      async (t) => {
        attempts++
        await t.read(`${base}/later`)
        await store.write(`${base}/later`, String(attempts)) // another writer, every time
        await t.write(`${base}/later`, 'mine')
      },
      { attempts: 3 },
    ),
  )
  assert.equal(code, 'EAGAIN')
  assert.equal(attempts, 3)
  assert.equal(await store.read(`${base}/later`), '3')
}

/** One client's transactions run one after another: none sees another's half done, none conflicts. */
export async function transactionsOfOneClientInTurn({ store, base }) {
  const counter = `${base}/counter`
  await store.write(counter, '0')
  let runs = 0
  let open = 0
  let mostOpen = 0
  const increment = () =>
    store.transaction(async (t) => {
      runs++
      mostOpen = Math.max(mostOpen, ++open)
      const value = Number(await t.read(counter))
      await new Promise((resolve) => setTimeout(resolve, 5))
      await t.write(counter, String(value + 1))
      open--
    })
  await Promise.all([increment(), increment(), increment(), increment()])
  assert.equal(await store.read(counter), '4', 'every increment landed')
  assert.equal(mostOpen, 1, 'one transaction open at a time')
  assert.equal(runs, 4, 'none ran again')
}

export async function domainRelease({ store }) {
  assert.equal(await codeOf(store.release(31999)), 'ENOENT', 'releasing a domain never introduced')
}

/** Every check, by name, in the order to run them. */
export const checks = {
  treeBasics,
  permissions,
  limits,
  transactionConflict,
  transactionsOfOneClientInTurn,
  transactionsAreAllOrNothing,
  domainRelease,
}

/** Runs one check on a fresh base path and removes it after; `env.guest` must name an existing domain. */
export async function runCheck(name, env) {
  const base = `/conformance/${name}-${process.pid}-${Math.floor(Math.random() * 1e9)}`
  await env.store.mkdir(base)
  try {
    await checks[name]({ ...env, base })
  } finally {
    await env.store.rm(base).catch(() => undefined)
  }
}

/** xenstore-ls -p's form of permissions: `n0,r5`. */
export function permString(perms) {
  return perms.map((p) => `${{ none: 'n', read: 'r', write: 'w', both: 'b' }[p.access]}${p.domid}`).join(',')
}

/**
 * The tree xenopsd's Domain.make writes for `domid`, as [path, value or
 * undefined (any), permissions], checked against a store. Returns the
 * problems found (empty: conforms).
 */
export async function domainTreeProblems(store, domid, { uuid, name }) {
  const home = `/local/domain/${domid}`
  const ro = `n0,r${domid}`
  const rw = `n${domid}`
  const expected = [
    [home, '', ro],
    [`${home}/vm`, `/vm/${uuid}`, ro],
    [`${home}/name`, name, ro],
    [`${home}/cpu`, '', ro],
    [`${home}/memory`, '', ro],
    ...[
      'device',
      'device/vbd',
      'device/9pfs',
      'device/vif',
      'feature',
      'error',
      'drivers',
      'control',
      'attr',
      'xenserver/attr',
      'data',
      'messages',
      'vm-data',
      'hvmloader',
      'rrd',
    ].map((d) => [`${home}/${d}`, '', rw]),
    [`${home}/hvmloader/pci/xen-platform-pci-bar-uc`, '0', rw],
    [`${home}/action-request`, 'poweroff', ro],
    [`${home}/control/platform-feature-multiprocessor-suspend`, '1', rw],
    [`${home}/control/platform-feature-xs_reset_watches`, '1', rw],
    [`${home}/control/has-vendor-device`, '0', rw],
    [`${home}/unique-domain-id`, undefined, ro],
    [`/vm/${uuid}`, '', ro],
    [`/vm/${uuid}/uuid`, uuid, ro],
    [`/vm/${uuid}/name`, name, ro],
    [`/vm/${uuid}/domains/${domid}`, home, ro],
    [`/vm/${uuid}/domains/${domid}/create-time`, undefined, ro],
    [`/xenops/domain/${domid}`, '', 'n0'],
    ...['device', 'device/vbd', 'device/9pfs', 'device/vif'].map((d) => [`/xenops/domain/${domid}/${d}`, '', 'n0']),
    [`/libxl/${domid}`, '', 'n0'],
  ]
  const problems = []
  for (const [path, value, perms] of expected) {
    const actual = await store.read(path)
    if (actual === null) {
      problems.push(`${path}: missing`)
      continue
    }
    if (value !== undefined && actual !== value) problems.push(`${path}: ${JSON.stringify(actual)}, expected ${JSON.stringify(value)}`)
    const actualPerms = permString(await store.getPermissions(path))
    if (actualPerms !== perms) problems.push(`${path}: permissions ${actualPerms}, expected ${perms}`)
  }
  return problems
}
