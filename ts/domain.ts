/**
 * Making and removing a domain as xenopsd's `Domain.make` and
 * `Domain.destroy` do, for what domain build needs: the hypervisor's
 * domain, then its xenstore tree (the domain's home with xenopsd's
 * permissions, the VM's `/vm/UUID`, the `vm` key build_post reads,
 * `platform/*` build_pre reads), all in one transaction.
 */
import { randomUUID } from 'node:crypto'
import type { Hypervisor } from '../native/binding.js'
import { describe, invalidArgument } from './errors.js'
import type { DomainType } from './memory.js'
import { checkPath, checkWrite, domainPath, type Permission, type Xenstore, type XenstoreOperations } from './xenstore.js'

/** A domain for `createDomain` to make: its type, vCPUs, and what xenopsd writes for it. */
export interface CreateDomainConfig {
  type: DomainType
  /** Its vCPUs; the VM built in it must have as many (`VmConfig.vcpus`). */
  maxVcpus: number
  /** The VM's UUID (its `/vm/UUID`); a new one when absent. */
  uuid?: string
  /** The VM's name; `Domain-DOMID` when absent. */
  name?: string
  /** `platform/*` entries (`timer_mode`, `viridian`, ...). */
  platform?: Readonly<Record<string, string>>
  /** `bios-strings/*` entries. */
  biosStrings?: Readonly<Record<string, string>>
  /** Entries below the domain's home; only `vm-data/...` and `FIST/...` pass, as in xenopsd. */
  xsdata?: Readonly<Record<string, string>>
  /** UEFI firmware: `hvmloader/bios` is `ovmf`. */
  uefi?: boolean
  hasVendorDevice?: boolean
  /** Default 1023 (libxl's). */
  maxEvtchnPort?: number
  /** Default 64: xenopsd's figure for a VM with no VIFs or VBDs yet. */
  maxGrantFrames?: number
  /** Default 0: only driver domains map other domains' grants (xenopsd). */
  maxMaptrackFrames?: number
}

/** Dom0 owns it; the guest may read it and below (xenopsd's `roperm_for_guest`). */
export function guestReadOnly(domid: number): Permission[] {
  return [
    { domid: 0, access: 'none' },
    { domid, access: 'read' },
  ]
}

/** The guest owns it: it may read and write it and below (`rwperm_for_guest`). */
export function guestReadWrite(domid: number): Permission[] {
  return [{ domid, access: 'none' }]
}

/** The subtrees of its home a guest may write: devices, features, its own data. */
export const GUEST_WRITABLE_DIRS = [
  'device', 'device/vbd', 'device/9pfs', 'device/vif',
  'feature', 'error', 'drivers', 'control', 'attr', 'xenserver/attr', 'data', 'messages', 'vm-data', 'hvmloader', 'rrd',
] as const

/** Toolstack-private: `/xenops/domain/DOMID`. */
export function xenopsPath(domid: number): string {
  return `/xenops/domain/${domid}`
}

export function libxlPath(domid: number): string {
  return `/libxl/${domid}`
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i
const XSDATA_PREFIXES = ['vm-data/', 'FIST/']

function checkEntries(field: string, entries: Readonly<Record<string, string>> | undefined, base: string): void {
  if (entries === undefined) return
  if (entries === null || typeof entries !== 'object') throw invalidArgument(field, `expected an object, got ${describe(entries)}`)
  for (const [key, value] of Object.entries(entries)) {
    if (typeof value !== 'string') throw invalidArgument(`${field}.${key}`, `expected a string, got ${describe(value)}`)
    try {
      checkWrite('xs_write', `${base}/${key}`, value)
    } catch (error) {
      throw invalidArgument(`${field}.${key}`, (error as Error).message)
    }
  }
}

/** Refuses bad input before any hypercall. */
function checkConfig(config: CreateDomainConfig): void {
  if (config === null || typeof config !== 'object') throw invalidArgument('config', `expected an object, got ${describe(config)}`)
  if (!['pv', 'hvm', 'pvh'].includes(config.type)) throw invalidArgument('config.type', `${describe(config.type)} is not "pv", "hvm" or "pvh"`)
  if (!Number.isInteger(config.maxVcpus) || config.maxVcpus < 1) throw invalidArgument('config.maxVcpus', `${describe(config.maxVcpus)} is not a whole number ≥ 1`)
  if (config.uuid !== undefined && (typeof config.uuid !== 'string' || !UUID.test(config.uuid))) throw invalidArgument('config.uuid', `${describe(config.uuid)} is not a UUID`)
  // The longest home a domain can have: every key must fit below it.
  const home = '/local/domain/65535'
  if (config.name !== undefined) checkEntries('config', { name: config.name }, home)
  checkEntries('config.platform', config.platform, `${home}/platform`)
  checkEntries('config.biosStrings', config.biosStrings, `${home}/bios-strings`)
  checkEntries('config.xsdata', config.xsdata, home)
  for (const field of ['maxEvtchnPort', 'maxGrantFrames', 'maxMaptrackFrames'] as const) {
    const value = config[field]
    if (value !== undefined && (!Number.isInteger(value) || value < 0)) throw invalidArgument(`config.${field}`, `${describe(value)} is not a whole number ≥ 0`)
  }
}

/** Creates the node with these permissions (xenopsd's `mkdirperms`). */
async function mkdirWith(t: XenstoreOperations, path: string, permissions: Permission[]): Promise<void> {
  await t.mkdir(path)
  await t.setPermissions(path, permissions)
}

/** Removes a node; one already gone, or whose parent is gone, is fine. */
async function rmQuietly(t: XenstoreOperations, path: string): Promise<void> {
  await t.rm(path).catch((error: { code?: string }) => {
    if (error.code !== 'ENOENT') throw error
  })
}

async function forEachNode(t: XenstoreOperations, path: string, fn: (path: string) => Promise<void>): Promise<void> {
  await fn(path)
  for (const name of await t.directory(path)) if (name !== '') await forEachNode(t, `${path}/${name}`, fn)
}

/** The domain's xenstore tree, as xenopsd's `Domain.make` writes it, in one transaction. */
export async function writeDomainTree(xenstore: Xenstore, domid: number, config: CreateDomainConfig & { uuid: string }): Promise<void> {
  const home = domainPath(domid)
  const vmPath = `/vm/${config.uuid}`
  const name = config.name ?? `Domain-${domid}`
  const ro = guestReadOnly(domid)
  const rw = guestReadWrite(domid)
  const dom0Only = guestReadWrite(0)
  const createTimeNs = process.hrtime.bigint()
  const uniqueId = randomUUID()
  await xenstore.transaction(async (t) => {
    // Whatever an earlier domain with this id left behind goes first.
    for (const path of [home, xenopsPath(domid), libxlPath(domid)]) await rmQuietly(t, path)
    await mkdirWith(t, home, ro)
    await mkdirWith(t, xenopsPath(domid), dom0Only)
    await mkdirWith(t, libxlPath(domid), dom0Only)
    // /vm/UUID outlives a domain (a localhost migration shares it): an existing one is opened to this domain.
    if ((await t.read(vmPath)) !== null) await forEachNode(t, vmPath, (path) => t.setPermissions(path, ro))
    else {
      await mkdirWith(t, vmPath, ro)
      await t.writeMany(vmPath, { uuid: config.uuid, name })
    }
    await t.write(`${vmPath}/domains/${domid}`, home)
    await t.write(`${vmPath}/domains/${domid}/create-time`, String(createTimeNs))
    await t.writeMany(home, { vm: vmPath, name })
    for (const dir of ['cpu', 'memory']) await mkdirWith(t, `${home}/${dir}`, ro)
    for (const dir of GUEST_WRITABLE_DIRS) await mkdirWith(t, `${home}/${dir}`, rw)
    for (const dir of ['device', 'device/vbd', 'device/9pfs', 'device/vif']) await mkdirWith(t, `${xenopsPath(domid)}/${dir}`, dom0Only)
    // xenopsd writes these just after its transaction; here they land with the rest, or not at all.
    const xsdata = Object.fromEntries(Object.entries(config.xsdata ?? {}).filter(([key]) => XSDATA_PREFIXES.some((prefix) => key.startsWith(prefix))))
    if (Object.keys(xsdata).length > 0) await t.writeMany(home, xsdata)
    if (config.platform && Object.keys(config.platform).length > 0) await t.writeMany(`${home}/platform`, config.platform)
    if (config.biosStrings && Object.keys(config.biosStrings).length > 0) await t.writeMany(`${home}/bios-strings`, config.biosStrings)
    await t.writeMany(home, {
      ...(config.uefi ? { 'hvmloader/bios': 'ovmf' } : {}),
      'hvmloader/pci/xen-platform-pci-bar-uc': '0',
      // Until the toolstack says otherwise, a domain found in this state is half made: power it off.
      'action-request': 'poweroff',
      'control/platform-feature-multiprocessor-suspend': '1',
      'control/platform-feature-xs_reset_watches': '1',
      'control/has-vendor-device': config.hasVendorDevice ? '1' : '0',
      'unique-domain-id': uniqueId,
    })
  })
}

/**
 * Creates a domain as xenopsd's `Domain.make` does: the hypervisor's domain
 * (PV, PVH or HVM; vCPUs; event channel and grant limits), then its xenstore
 * tree in one transaction. A failure leaves neither a domain nor a tree.
 * Resolves to the domid.
 */
export async function createDomain(hypervisor: Hypervisor, xenstore: Xenstore, config: CreateDomainConfig): Promise<number> {
  checkConfig(config)
  const domid = await hypervisor.createDomain({
    kind: config.type,
    maxVcpus: config.maxVcpus,
    maxEvtchnPort: config.maxEvtchnPort,
    maxGrantFrames: config.maxGrantFrames ?? 64,
    maxMaptrackFrames: config.maxMaptrackFrames ?? 0,
  })
  try {
    await writeDomainTree(xenstore, domid, { ...config, uuid: config.uuid ?? randomUUID() })
  } catch (error) {
    // The transaction was aborted, or its commit failed: nothing of the tree landed.
    await hypervisor.destroyDomain(domid).catch(() => undefined)
    throw error
  }
  return domid
}

/**
 * Removes a domain as xenopsd's `Domain.destroy` does for what `createDomain`
 * made: destroys it, releases it from xenstored, and removes its trees
 * (`/local/domain/N`, `/xenops/domain/N`, `/libxl/N`, and its entry under
 * `/vm/UUID`, with `/vm/UUID` itself when no other domain of the VM is left).
 * A domain already gone from the hypervisor is fine; so is one never
 * introduced to xenstored.
 */
export async function destroyDomain(hypervisor: Hypervisor, xenstore: Xenstore, domid: number): Promise<void> {
  if (!Number.isInteger(domid) || domid < 1 || domid > 0x7fef) throw invalidArgument('domid', `${describe(domid)} is not a guest's domid`)
  const home = domainPath(domid)
  const vmPath = await xenstore.read(`${home}/vm`).catch(() => null)
  let destroyFailure: unknown
  try {
    await hypervisor.destroyDomain(domid)
  } catch (error) {
    // Gone already: the trees still go. Anything else is reported once they are gone.
    if ((error as { code?: string }).code !== 'ESRCH') destroyFailure = error
  }
  await xenstore.release(domid).catch((error: { code?: string }) => {
    // Never introduced, or xenstored noticed the death first: fine. Anything else is reported once the trees are gone.
    if (error.code !== 'ENOENT') destroyFailure ??= error
  })
  await xenstore.transaction(async (t) => {
    if (vmPath !== null && vmPath.startsWith('/vm/')) {
      checkPath('xs_rm', vmPath)
      await rmQuietly(t, `${vmPath}/domains/${domid}`)
      const others = await t.directory(`${vmPath}/domains`).catch(() => [] as string[])
      if (others.length === 0) await rmQuietly(t, vmPath)
    }
    for (const path of [home, xenopsPath(domid), libxlPath(domid)]) await rmQuietly(t, path)
  })
  if (destroyFailure !== undefined) throw destroyFailure
}
