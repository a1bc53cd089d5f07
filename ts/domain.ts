/**
 * Making and removing a domain as xenopsd's `Domain.make` and
 * `Domain.destroy` do, for what domain build needs: the hypervisor's
 * domain, then its xenstore tree (the domain's home with xenopsd's
 * permissions, the VM's `/vm/UUID`, the `vm` key build_post reads,
 * `platform/*` build_pre reads), all in one transaction.
 */
import { randomUUID } from 'node:crypto'
import type { Hypervisor } from '../native/binding.js'
import { guestDomid } from './checks.js'
import { describe, invalidArgument } from './errors.js'
import type { DomainType } from './memory.js'
import { parseOcamlInt } from './build-pre.js'
import { domainPath, libxlPath, xenopsPath, type Permission, type Xenstore, type XenstoreOperations } from './xenstore.js'
import { checkPath, checkWrite, XENSTORE_MAX_DOMID } from './xenstore-input.js'

/** A domain for `createDomain` to make: its type, vCPUs, and what xenopsd writes for it. */
export interface CreateDomainConfig {
  type: DomainType
  /** Its vCPUs; the VM built in it must have as many (`VmConfig.vcpus`). */
  maxVcpus: number
  /** vCPUs online at boot (`cpu/N/availability`, `platform/vcpu/current`); all of `maxVcpus` when absent. */
  vcpus?: number
  /** PVH only: a PV guest in a PVH shim (`domain-type` `pv-in-pvh`, every vCPU online, as xenopsd). */
  pvShim?: boolean
  /** The VM's UUID (its `/vm/UUID`, and the domain's Xen handle); a new one when absent. */
  uuid?: string
  /** The VM's name; `Domain-DOMID` when absent. */
  name?: string
  /** `platform/*` entries (`timer_mode`, `viridian`, `hap`, `nested-virt`, `vpmu`, `msr-relaxed`, ...). */
  platform?: Readonly<Record<string, string>>
  /** The credit scheduler's weight and cap: `platform/vcpu/weight` and `platform/vcpu/cap`. */
  schedulerPriority?: { weight: number; cap: number }
  /** `platform/generation-id` (the VM generation ID), replacing any in `platform`. */
  generationId?: string
  /** `memory/initial-target`, in KiB: the target the build will start at (xenopsd's, from its reservation). */
  initialTargetKib?: number
  /** The XSM label (`ssidref`); 0 when absent. */
  ssidref?: number
  /** `bios-strings/*` entries. */
  biosStrings?: Readonly<Record<string, string>>
  /** Entries below the domain's home; only `vm-data/...` and `FIST/...` pass, as in xenopsd. */
  xsdata?: Readonly<Record<string, string>>
  /** UEFI firmware: `hvmloader/bios` is `ovmf`. */
  uefi?: boolean
  hasVendorDevice?: boolean
  /** The highest event channel port; no limit by default (xenopsd's). */
  maxEvtchnPort?: number
  /** Default `platform/max_grant_frames`, else 64: xenopsd's figure for a VM with no VIFs or VBDs yet. */
  maxGrantFrames?: number
  /** Default `platform/max_maptrack_frames`, else 0: only driver domains map other domains' grants (xenopsd). */
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
] as const

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i
const XSDATA_PREFIXES = ['vm-data/', 'FIST/']

/**
 * The handle xenopsd gives a dying domain before destroying it, so that
 * nothing looking a VM's domains up by UUID finds it any more.
 */
export function dyingDomainHandle(domid: number): string {
  return `deadbeef-dead-beef-dead-beef0000${domid.toString(16).padStart(4, '0')}`
}

/** xenopsd's `Platform.is_valid`: absent, or a boolean it reads (`true`, `1`, `false`, `0`, any case). */
function platformFlagValid(platform: Readonly<Record<string, string>>, key: string): boolean {
  const value = platform[key]
  return value === undefined || ['true', '1', 'false', '0'].includes(value.toLowerCase())
}

/** xenopsd's `Platform.is_true`: the flag, or `fallback` when absent or unreadable. */
function platformFlag(platform: Readonly<Record<string, string>>, key: string, fallback: boolean): boolean {
  const value = platform[key]?.toLowerCase()
  if (value === 'true' || value === '1') return true
  if (value === 'false' || value === '0') return false
  return fallback
}

/** xenopsd's `int_of_string` of a platform key, for the grant limits: anything else is absent. */
function platformCount(platform: Readonly<Record<string, string>>, key: string): number | undefined {
  const count = parseOcamlInt(platform[key] ?? null)
  return count !== null && count >= 0 ? count : undefined
}

/** What `xc_domain_create` is given, decided as xenopsd's `Domain.make` decides it. */
export interface DomainCreateFlags {
  hap: boolean
  nestedVirt: boolean
  vpmu: boolean
  msrRelaxed: boolean
  maxGrantVersion: 1 | 2
}

/**
 * The paging mode and platform flags, from `platform/*` and the host's
 * capabilities, with xenopsd's checks (`INVALID_ARGUMENT` where it raises
 * `invalid_arg`): the guest type must be available; HVM and PVH use HAP where
 * the host has it unless `platform/hap` says otherwise, and then the chosen
 * mode must be available (a host without HAP falls back to shadow);
 * nested virt needs HVM; grant table v2 where Xen allows it.
 */
export function domainCreateFlags(
  type: DomainType,
  platform: Readonly<Record<string, string>>,
  capabilities: readonly string[],
): DomainCreateFlags {
  const hvm = type !== 'pv'
  const unavailable = (field: string, what: string) =>
    invalidArgument(field, `${what} unavailable on this host (capabilities: ${capabilities.join(' ') || 'none'})`)
  if (!capabilities.includes(hvm ? 'hvm' : 'pv')) throw unavailable('config.type', `guest type ${hvm ? 'HVM' : 'PV'}`)
  const flag = (key: string, fallback: boolean): boolean => {
    if (!platformFlagValid(platform, key))
      throw invalidArgument(`config.platform.${key}`, `${JSON.stringify(platform[key])} is not true, false, 1 or 0`)
    return platformFlag(platform, key, fallback)
  }
  let hap = false
  if (hvm) {
    hap = flag('hap', capabilities.includes('hap'))
    if (!capabilities.includes(hap ? 'hap' : 'shadow'))
      throw unavailable('config.platform.hap', `guest paging mode ${hap ? 'HAP' : 'shadow'}`)
  }
  const nestedVirt = flag('nested-virt', false)
  if (nestedVirt && !hvm) throw invalidArgument('config.platform.nested-virt', 'needs an HVM or PVH guest')
  return {
    hap,
    nestedVirt,
    // Not checked against the host, as in xenopsd: Xen refuses it (EINVAL) where `vpmu` is off.
    vpmu: flag('vpmu', false),
    // Read without the validity check, as xenopsd's domain_config_of_vm does.
    msrRelaxed: platformFlag(platform, 'msr-relaxed', false),
    maxGrantVersion: capabilities.includes('gnttab_v2') ? 2 : 1,
  }
}

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
  if (!['pv', 'hvm', 'pvh'].includes(config.type))
    throw invalidArgument('config.type', `${describe(config.type)} is not "pv", "hvm" or "pvh"`)
  if (!Number.isInteger(config.maxVcpus) || config.maxVcpus < 1)
    throw invalidArgument('config.maxVcpus', `${describe(config.maxVcpus)} is not a whole number ≥ 1`)
  if (config.vcpus !== undefined && (!Number.isInteger(config.vcpus) || config.vcpus < 1 || config.vcpus > config.maxVcpus)) {
    throw invalidArgument('config.vcpus', `${describe(config.vcpus)} is not a whole number from 1 to maxVcpus (${config.maxVcpus})`)
  }
  if (config.pvShim !== undefined && typeof config.pvShim !== 'boolean')
    throw invalidArgument('config.pvShim', `expected a boolean, got ${describe(config.pvShim)}`)
  if (config.pvShim === true && config.type !== 'pvh')
    throw invalidArgument('config.pvShim', `a PV shim runs in a PVH domain, not ${config.type}`)
  const priority = config.schedulerPriority
  if (priority !== undefined) {
    if (priority === null || typeof priority !== 'object')
      throw invalidArgument('config.schedulerPriority', `expected { weight, cap }, got ${describe(priority)}`)
    for (const field of ['weight', 'cap'] as const) {
      if (!Number.isSafeInteger(priority[field]) || priority[field] < 0)
        throw invalidArgument(`config.schedulerPriority.${field}`, `${describe(priority[field])} is not a whole number ≥ 0`)
    }
  }
  // The longest home a domain can have: every key must fit below it.
  const home = domainPath(XENSTORE_MAX_DOMID)
  if (config.generationId !== undefined) checkEntries('config', { generationId: config.generationId }, `${home}/platform`)
  if (config.initialTargetKib !== undefined && (!Number.isSafeInteger(config.initialTargetKib) || config.initialTargetKib < 0)) {
    throw invalidArgument('config.initialTargetKib', `${describe(config.initialTargetKib)} is not a whole number of KiB ≥ 0`)
  }
  if (config.ssidref !== undefined && (!Number.isInteger(config.ssidref) || config.ssidref < 0 || config.ssidref > 0xffffffff)) {
    throw invalidArgument('config.ssidref', `${describe(config.ssidref)} is not a 32-bit label`)
  }
  if (config.uuid !== undefined && (typeof config.uuid !== 'string' || !UUID.test(config.uuid)))
    throw invalidArgument('config.uuid', `${describe(config.uuid)} is not a UUID`)
  if (config.name !== undefined) checkEntries('config', { name: config.name }, home)
  checkEntries('config.platform', config.platform, `${home}/platform`)
  checkEntries('config.biosStrings', config.biosStrings, `${home}/bios-strings`)
  checkEntries('config.xsdata', config.xsdata, home)
  for (const field of ['maxEvtchnPort', 'maxGrantFrames', 'maxMaptrackFrames'] as const) {
    const value = config[field]
    if (value !== undefined && (!Number.isInteger(value) || value < 0))
      throw invalidArgument(`config.${field}`, `${describe(value)} is not a whole number ≥ 0`)
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

/**
 * The VM-level `platform/*` entries xenopsd's VM.create adds to the VM's
 * (`generate_create_info`): the vCPU counts and scheduler priority, which
 * XenServer's xenguest reads, and `acpi_s3`/`acpi_s4` off unless given.
 */
export function vmPlatformEntries(config: CreateDomainConfig): Record<string, string> {
  const platform: Record<string, string> = { acpi_s3: '0', acpi_s4: '0', ...config.platform }
  platform['vcpu/number'] = String(config.maxVcpus)
  platform['vcpu/current'] = String(onlineVcpus(config))
  if (config.schedulerPriority !== undefined) {
    platform['vcpu/weight'] = String(config.schedulerPriority.weight)
    platform['vcpu/cap'] = String(config.schedulerPriority.cap)
  }
  if (config.generationId !== undefined) platform['generation-id'] = config.generationId
  return platform
}

/** The vCPUs online at boot; as xenopsd, a PV-in-PVH guest starts with all of them (the shim hotplugs none). */
function onlineVcpus(config: CreateDomainConfig): number {
  return config.pvShim === true ? config.maxVcpus : (config.vcpus ?? config.maxVcpus)
}

/** xenopsd's `domain-type` key: what the domain is to the toolstack. */
function domainTypeKey(config: CreateDomainConfig): string {
  return config.type === 'pvh' && config.pvShim === true ? 'pv-in-pvh' : config.type
}

/**
 * The domain's xenstore tree, as xenopsd's `Domain.make` writes it, then
 * what its VM.create writes next (`memory/initial-target`,
 * `cpu/N/availability`, `domain-type`), all in one transaction.
 */
export async function writeDomainTree(xenstore: Xenstore, domid: number, config: CreateDomainConfig & { uuid: string }): Promise<void> {
  const home = domainPath(domid)
  const vmPath = `/vm/${config.uuid}`
  const name = config.name ?? `Domain-${domid}`
  const ro = guestReadOnly(domid)
  const rw = guestReadWrite(domid)
  const dom0Only = guestReadWrite(0)
  const createTimeNs = process.hrtime.bigint()
  const uniqueId = randomUUID()
  const platform = vmPlatformEntries(config)
  const online = onlineVcpus(config)
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
    const xsdata = Object.fromEntries(
      Object.entries(config.xsdata ?? {}).filter(([key]) => XSDATA_PREFIXES.some((prefix) => key.startsWith(prefix))),
    )
    if (Object.keys(xsdata).length > 0) await t.writeMany(home, xsdata)
    await t.writeMany(`${home}/platform`, platform)
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
    // VM.create's keys after Domain.make: its initial target, each vCPU's state, the domain type.
    await t.writeMany(home, {
      ...(config.initialTargetKib === undefined ? {} : { 'memory/initial-target': String(config.initialTargetKib) }),
      ...Object.fromEntries(
        Array.from({ length: config.maxVcpus }, (_, i) => [`cpu/${i}/availability`, i < online ? 'online' : 'offline']),
      ),
      'domain-type': domainTypeKey(config),
    })
  })
}

/**
 * Creates a domain as xenopsd's `Domain.make` does: the hypervisor's domain
 * (PV, PVH or HVM; its handle the VM's UUID; HAP or shadow, nested virt,
 * vPMU and relaxed MSRs from `platform/*` against the host's capabilities;
 * vCPUs; no event channel limit; xenopsd's grant limits, grant table v2
 * where Xen allows it), then its xenstore tree in one transaction. A
 * failure leaves neither a domain nor a tree. Resolves to the domid.
 */
export async function createDomain(hypervisor: Hypervisor, xenstore: Xenstore, config: CreateDomainConfig): Promise<number> {
  checkConfig(config)
  const platform = config.platform ?? {}
  const flags = domainCreateFlags(config.type, platform, (await hypervisor.physinfo()).capabilities)
  const uuid = config.uuid ?? randomUUID()
  const domid = await hypervisor.createDomain({
    kind: config.type,
    handle: uuid,
    ssidref: config.ssidref ?? 0,
    maxVcpus: config.maxVcpus,
    maxEvtchnPort: config.maxEvtchnPort,
    maxGrantFrames: config.maxGrantFrames ?? platformCount(platform, 'max_grant_frames') ?? 64,
    maxMaptrackFrames: config.maxMaptrackFrames ?? platformCount(platform, 'max_maptrack_frames') ?? 0,
    ...flags,
  })
  try {
    await writeDomainTree(xenstore, domid, { ...config, uuid })
  } catch (error) {
    // The transaction was aborted, or its commit failed: nothing of the tree landed.
    await hypervisor.destroyDomain(domid).catch(() => undefined)
    throw error
  }
  return domid
}

/** Where backends keep a frontend's devices, per device type (xenopsd removes them on destroy). */
const BACKEND_ROOTS = ['/local/domain/0/backend', '/local/domain/0/xenserver/backend']

/**
 * Removes a domain as xenopsd's `Domain.destroy` does for what `createDomain`
 * made: first renames it for the toolstack (its handle becomes
 * `dyingDomainHandle(domid)`, so a lookup by the VM's UUID no longer finds
 * it), destroys it, releases it from xenstored, and removes its trees
 * (`/local/domain/N`, `/xenops/domain/N`, `/libxl/N`, its entry under
 * `/vm/UUID/domains`, and its backends' entries). `/vm/UUID` stays: the VM's
 * state there (`rtc/timeoffset`) outlives its domains until `removeVm`.
 * A domain already gone from the hypervisor is fine; so is one never
 * introduced to xenstored.
 */
export async function destroyDomain(hypervisor: Hypervisor, xenstore: Xenstore, domid: number): Promise<void> {
  guestDomid('domid', domid)
  const home = domainPath(domid)
  const vmPath = await xenstore.read(`${home}/vm`).catch(() => null)
  let destroyFailure: unknown
  const gone = (error: unknown) => (error as { code?: string }).code === 'ESRCH'
  try {
    await hypervisor.setDomainHandle(domid, dyingDomainHandle(domid))
    await hypervisor.destroyDomain(domid)
  } catch (error) {
    // Gone already: the trees still go. Anything else is reported once they are gone.
    if (!gone(error)) destroyFailure = error
  }
  await xenstore.release(domid).catch((error: { code?: string }) => {
    // Never introduced, or xenstored noticed the death first: fine. Anything else is reported once the trees are gone.
    if (error.code !== 'ENOENT') destroyFailure ??= error
  })
  await xenstore.transaction(async (t) => {
    if (vmPath?.startsWith('/vm/')) {
      checkPath('xs_rm', `${vmPath}/domains/${domid}`)
      await rmQuietly(t, `${vmPath}/domains/${domid}`)
    }
    for (const path of [home, xenopsPath(domid), libxlPath(domid)]) await rmQuietly(t, path)
    for (const root of BACKEND_ROOTS) {
      const types = await t.directory(root).catch(() => [] as string[])
      for (const type of types) if (type !== '') await rmQuietly(t, `${root}/${type}/${domid}`)
    }
  })
  if (destroyFailure !== undefined) throw destroyFailure
}

/**
 * Removes a VM's `/vm/UUID`, as xenopsd's `VM.remove` does when the
 * toolstack forgets the VM: after its last domain is destroyed. A VM with
 * a domain still listed under `domains` is refused (`INVALID_ARGUMENT`).
 */
export async function removeVm(xenstore: Xenstore, uuid: string): Promise<void> {
  if (typeof uuid !== 'string' || !UUID.test(uuid)) throw invalidArgument('uuid', `${describe(uuid)} is not a UUID`)
  const vmPath = `/vm/${uuid}`
  await xenstore.transaction(async (t) => {
    const domains = await t.directory(`${vmPath}/domains`).catch(() => [] as string[])
    const live = domains.filter((name) => name !== '')
    if (live.length > 0) throw invalidArgument('uuid', `VM ${uuid} still has domain ${live.join(', ')}: destroy it first`)
    await rmQuietly(t, vmPath)
  })
}
