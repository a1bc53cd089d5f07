// A tour of xen-domain-build on a simulated host: it runs as it is, off Xen.
// On a Xen host (dom0, as root), use the lines marked "real host:" instead.
import {
  BuildHost,
  buildDomain,
  createDomain,
  isXenDomainBuildError,
  NumaPlanner,
  readHostTopology,
  simulateHost,
  SimulatedXenguest,
} from 'xen-domain-build'
// real host: import { openHypervisor, openXenstore, SpawnedXenguest } from 'xen-domain-build'

// A hypervisor: a simulated host, with Xen's semantics behind the same interface.
const sim = simulateHost({ preset: 'amd-opteron-6272' })
await using xen = sim.hypervisor()
// real host: await using xen = await openHypervisor()  (XEN_UNAVAILABLE off Xen)

// NUMA placement alone: xenopsd's decisions, in microseconds.
const planner = new NumaPlanner(await readHostTopology(xen))
const nodeFreeBytes = (await xen.numaInfo()).nodes.map((node) => node?.freeBytes ?? 0)
const plan = planner.plan({ memoryBytes: 4 * 2 ** 30, vcpus: 2, cores: 2 }, nodeFreeBytes)
console.log(plan === null ? 'no node fits' : `plan: nodes ${plan.nodes.join(', ')}, CPUs ${plan.cpus.join(', ')}`)

// A whole build. One BuildHost per host, shared by every build on it; an
// in-memory xenstore unless given one.
await using host = await BuildHost.create(xen, { numaPolicy: 'best_effort' })
// real host: await using xs = await openXenstore()
//            await using host = await BuildHost.create(xen, { numaPolicy: 'best_effort', xenstore: xs })
const domid = await createDomain(xen, host.xenstore, { type: 'hvm', maxVcpus: 2 })
const controller = new AbortController() // controller.abort(): kills xenguest, releases the claim
try {
  const built = await buildDomain(host, domid, { type: 'hvm', staticMaxKib: 4 << 20, targetKib: 4 << 20, videoMib: 8, vcpus: 2 }, {
    image: '/usr/lib/xen/boot/hvmloader',
    xenguest: new SimulatedXenguest(sim), // real host: new SpawnedXenguest()
    signal: controller.signal,
    onEvent: (event) => {
      if (event.type === 'numa.placement') console.log(`placement: ${event.placement.reason}`)
    },
  })
  console.log(`built domain ${built.domid}: store port ${built.storePort}, console port ${built.consolePort}, ${built.placement.claim} claim`)
  // real host: await xen.unpauseDomain(domid), once the toolstack has added its devices
} catch (error) {
  if (isXenDomainBuildError(error, 'NOT_ENOUGH_MEMORY')) console.error(`${error.requiredBytes - error.freeBytes} bytes short`)
  else if (isXenDomainBuildError(error)) console.error(`${error.code} at ${error.step}: ${error.message}`)
  throw error
}
// Here `await using` closes the host (its memory watcher stops), then the hypervisor.
