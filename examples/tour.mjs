// The tour in plain JavaScript, for Node 20, where `await using` is a syntax
// error: try/finally closes what the TypeScript tour disposes.
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

const sim = simulateHost({ preset: 'amd-opteron-6272' })
const xen = sim.hypervisor() // real host: const xen = await openHypervisor()
try {
  const planner = new NumaPlanner(await readHostTopology(xen))
  const nodeFreeBytes = (await xen.numaInfo()).nodes.map((node) => node?.freeBytes ?? 0)
  const plan = planner.plan({ memoryBytes: 4 * 2 ** 30, vcpus: 2, cores: 2 }, nodeFreeBytes)
  console.log(plan === null ? 'no node fits' : `plan: nodes ${plan.nodes.join(', ')}, CPUs ${plan.cpus.join(', ')}`)

  // real host: const xs = await openXenstore(), then { numaPolicy: 'best_effort', xenstore: xs }, and xs.close() at the end
  const host = await BuildHost.create(xen, { numaPolicy: 'best_effort' })
  try {
    const domid = await createDomain(xen, host.xenstore, { type: 'hvm', maxVcpus: 2 })
    const built = await buildDomain(host, domid, { type: 'hvm', staticMaxKib: 4 << 20, targetKib: 4 << 20, videoMib: 8, vcpus: 2 }, {
      image: '/usr/lib/xen/boot/hvmloader',
      xenguest: new SimulatedXenguest(sim), // real host: new SpawnedXenguest()
      onEvent: (event) => {
        if (event.type === 'numa.placement') console.log(`placement: ${event.placement.reason}`)
      },
    })
    console.log(`built domain ${built.domid}: store port ${built.storePort}, console port ${built.consolePort}, ${built.placement.claim} claim`)
  } catch (error) {
    if (isXenDomainBuildError(error, 'NOT_ENOUGH_MEMORY')) console.error(`${error.requiredBytes - error.freeBytes} bytes short`)
    else if (isXenDomainBuildError(error)) console.error(`${error.code} at ${error.step}: ${error.message}`)
    throw error
  } finally {
    host.close()
  }
} finally {
  xen.close()
}
