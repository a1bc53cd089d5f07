/**
 * build_post: the domain's xenstore entries, then the introduction of the
 * domain to xenstored (xenopsd's `build_post`).
 */
import { constants } from 'node:os'
import { XenDomainBuildError } from './errors.js'
import type { DomainType } from './memory.js'
import { kibOfMib } from './units.js'
import { domainPath, libxlPath, type Xenstore } from './xenstore.js'

/** What build_post writes: the domain's memory, its rings and their ports, and extra entries. */
export interface BuildPostInput {
  domid: number
  type: DomainType
  staticMaxMib: number
  targetMib: number
  storeMfn: bigint
  storePort: number
  consoleMfn: bigint
  consolePort: number
  /** More entries below the domain's path. */
  extraKeys?: Readonly<Record<string, string>>
  /** Entries below the VM's path (read from the domain's `vm` key); HVM and PVH get rtc/timeoffset. */
  vmKeys?: Readonly<Record<string, string>>
}

/** The entries written below `/local/domain/DOMID`, in xenopsd's order. */
export function domainEntries(b: BuildPostInput): Record<string, string> {
  return {
    'memory/static-max': String(kibOfMib(b.staticMaxMib)),
    'memory/target': String(kibOfMib(b.targetMib)),
    domid: String(b.domid),
    'store/port': String(b.storePort),
    'store/ring-ref': String(b.storeMfn),
    'serial/0/limit': '65536',
    'console/port': String(b.consolePort),
    'console/ring-ref': String(b.consoleMfn),
    'console/limit': '65536',
    ...b.extraKeys,
  }
}

const LIBXL_TYPE: Record<DomainType, string> = { pv: 'PV', hvm: 'HVM', pvh: 'PVH' }

/**
 * xenopsd's `build_post`: the domain's xenstore entries (`domainEntries`),
 * its VM's, libxl's type, then its introduction to xenstored. `buildDomain`
 * runs it; for a toolstack that runs the builder itself.
 */
export async function buildPost(xenstore: Xenstore, b: BuildPostInput): Promise<void> {
  const path = domainPath(b.domid)
  await xenstore.writeMany(path, domainEntries(b))
  if (b.vmKeys !== undefined && Object.keys(b.vmKeys).length > 0) {
    const vmPath = await xenstore.read(`${path}/vm`)
    // xenopsd reads it and fails the build without it: the toolstack that
    // made the domain did not give it a VM path.
    if (vmPath === null) {
      throw new XenDomainBuildError(
        'ENOENT',
        `${path}/vm is missing: the domain has no VM path to write ${Object.keys(b.vmKeys).join(', ')} under`,
        { errno: constants.errno.ENOENT, operation: 'xenstore read' },
      )
    }
    await xenstore.writeMany(vmPath, b.vmKeys)
  }
  await xenstore.write(`${libxlPath(b.domid)}/type`, LIBXL_TYPE[b.type])
  await xenstore.introduce(b.domid, b.storeMfn, b.storePort)
}
