// @ts-check
// The JavaScript smoke test against a real Xen, run in dom0 by `npm run
// test:xen` (plain Node: vitest would be far too slow there). It opens the
// real hypervisor through the addon, builds the planner from the real
// topology, runs buildPre with best_effort on a fresh PV domain, and checks
// the soft affinity Xen reports and the claim Xen holds. Prints one JSON line
// per check and exits non-zero if any failed.
import { readFileSync } from 'node:fs'
import { BuildHost, buildPre, InMemoryXenstore, openHypervisor } from 'xen-domain-build'

let failed = 0
function check(name, ok, detail) {
  if (!ok) failed++
  console.log(JSON.stringify({ check: name, ok, detail }))
}

const xen = await openHypervisor()
// The release that runs (test:xen boots several), as sysfs says.
const running = ['major', 'minor'].map((part) => Number(readFileSync(`/sys/hypervisor/version/${part}`, 'utf8').trim()))
check('open', xen.version.major === running[0] && xen.version.minor === running[1] && !xen.simulated, xen.version)
// No xenstored yet (the xenstore suite starts it): a real host refuses to default to an in-memory store.
const refused = await BuildHost.create(xen, { numaPolicy: 'best_effort' }).then(
  () => null,
  (error) => error,
)
check(
  'BuildHost without a store refused on a real host',
  refused?.code === 'INVALID_ARGUMENT' && refused.message.includes('openXenstore()'),
  refused?.message,
)
const host = await BuildHost.create(xen, { numaPolicy: 'best_effort', xenstore: new InMemoryXenstore() })
check('topology', JSON.stringify(host.layout.distances) === '[[10,21],[21,10]]' && host.planner.numaOffReason === null, host.layout)
const candidates = [...host.planner.candidates()]
check('candidates', candidates.map((c) => c.nodes.join(',')).join(' ') === '0 1 0,1', candidates)

const domid = await xen.createDomain({ kind: 'pv', maxVcpus: 2 })
try {
  const vm = { type: /** @type {const} */ ('pv'), staticMaxKib: 128 * 1024, targetKib: 128 * 1024, vcpus: 2 }
  const pre = await buildPre(host, domid, vm)
  const p = pre.placement
  // Upstream Xen has no node claims: the fallback sets affinity without a node, and claims host-wide.
  check('placement', p.plan?.nodes.length === 1 && p.affinity === 'soft' && p.node === null && p.claim === 'host', p)
  const node = p.plan?.nodes[0]
  const nodeCpus = node === 0 ? [0, 1] : [2, 3]
  for (const vcpu of [0, 1]) {
    const a = await xen.vcpuAffinity(domid, vcpu)
    check(`vcpu ${vcpu} soft affinity`, JSON.stringify(a.soft) === JSON.stringify(nodeCpus), a)
  }
  const info = await xen.domainInfo(domid)
  check('claim held', info.outstandingPages === pre.memory.buildClaimPages, {
    outstandingPages: info.outstandingPages,
    claimPages: pre.memory.buildClaimPages,
  })
  check('ports', pre.storePort > 0 && pre.consolePort > pre.storePort, { store: pre.storePort, console: pre.consolePort })
  await pre.release()
  check('claim released', (await xen.domainInfo(domid)).outstandingPages === 0)
} catch (error) {
  check('buildPre', false, { message: error.message, code: error.code, step: error.step })
} finally {
  await xen.destroyDomain(domid)
}
console.log(JSON.stringify({ summary: true, failed }))
process.exitCode = failed === 0 ? 0 : 1
