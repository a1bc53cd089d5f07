// Suspend, restore and a live migration on a simulated host: it runs as it is, off Xen.
// On a Xen host, use the lines marked "real host:" instead. PVH and PV guests (a PV guest's
// live save needs shadow paging, which Debian's Xen lacks).
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import {
  BuildHost,
  buildDomain,
  createDomain,
  destroyDomain,
  migrateDomain,
  restoreDomain,
  SimulatedGuest,
  SimulatedXenguest,
  simulateHost,
  suspendDomain,
  type VmConfig,
} from 'xen-domain-build'

const sim = simulateHost({ preset: 'qemu-2-node' })
const xen = sim.hypervisor() // real host: await openHypervisor()
const host = await BuildHost.create(xen) // real host: with { xenstore: await openXenstore() }
const xenguest = new SimulatedXenguest(sim) // real host: new SpawnedXenguest()
const vm: VmConfig = { type: 'pvh', staticMaxKib: 512 << 10, targetKib: 512 << 10, vcpus: 1 }
const dir = mkdtempSync(join(tmpdir(), 'xdb-tour-'))
const guests: SimulatedGuest[] = [] // real host: the guests' own kernels answer control/shutdown
try {
  const domid = await createDomain(xen, host.xenstore, { type: 'pvh', maxVcpus: 1, name: 'web' })
  await buildDomain(host, domid, vm, { image: 'vmlinuz', xenguest })
  await xen.unpauseDomain(domid)
  guests.push(new SimulatedGuest(sim, host.xenstore, domid))

  // Suspend to a file in xenopsd's format; the domain stays, suspended, until destroyed.
  const image = join(dir, 'web.img')
  const suspended = await suspendDomain(xen, host.xenstore, domid, image, { xenguest, vm })
  console.log(`suspended domain ${domid}: ${(await xen.domainInfo(domid)).shutdownReason}, ${suspended.memoryTotalSourceKib} KiB saved`)
  await destroyDomain(xen, host.xenstore, domid)

  // Restore into a new domain: a build's own steps, the claim sized from the image.
  const restoredDomid = await createDomain(xen, host.xenstore, { type: 'pvh', maxVcpus: 1, name: 'web' })
  const restored = await restoreDomain(host, restoredDomid, vm, image, { xenguest })
  await xen.unpauseDomain(restoredDomid)
  guests.push(new SimulatedGuest(sim, host.xenstore, restoredDomid))
  console.log(`restored as domain ${restored.domid}: ${restored.placement.reason}`)

  // A live migration into another domain of this host, over a pipe: the source goes.
  const target = await createDomain(xen, host.xenstore, { type: 'pvh', maxVcpus: 1, name: 'web' })
  const migrated = await migrateDomain(host, restoredDomid, target, { xenguest, vm })
  const source = await xen.domainInfo(restoredDomid).then(
    () => 'still there',
    (error: { code?: string }) => error.code,
  )
  // migrated.pausedMs: how long the guest stood still, from suspended to the target unpaused.
  console.log(`migrated to domain ${migrated.target.domid}; the source: ${source}`)
} finally {
  for (const guest of guests) await guest.stop()
  rmSync(dir, { recursive: true, force: true })
  host.close()
  xen.close()
}
