/**
 * xenopsd's memory model (https://github.com/xen-domain-build/xen-domain-build/blob/main/docs/ARCHITECTURE.md#memory-model): from a VM's
 * static max, target, video memory, vCPUs and shadow multiplier, what to
 * build, what Xen must allow, what the host must have free, and what to
 * claim. All MiB unless named.
 */
import { describe, invalidArgument } from './errors.js'
import { mibOfKibUsed, pagesOfMib } from './units.js'

/** A domain's type: HVM (firmware, QEMU), PV (paravirtualised), PVH (HVM without QEMU). */
export type DomainType = 'hvm' | 'pv' | 'pvh'

/** A VM's memory and vCPUs, in xenopsd's units (KiB, MiB). */
export interface VmMemory {
  type: DomainType
  /** PVH only: boot a PV guest in a PVH shim (PV-in-PVH). */
  pvShim?: boolean
  /** The VM's static maximum memory, KiB. */
  staticMaxKib: number
  /** The memory to build with, KiB (at most `staticMaxKib`). */
  targetKib: number
  /** HVM and PVH video memory, MiB; must be 0 for PV. */
  videoMib?: number
  /** vCPUs: as many as the domain was created with (`createDomain`'s `maxVcpus`). */
  vcpus: number
  /** 1.0 by default; ignored for PV, which always uses 1.0 (as xenopsd). */
  shadowMultiplier?: number
}

/**
 * xenopsd's memory model of a VM: what it is built with, what Xen is told,
 * its shadow pool, and the free memory the host needs (https://github.com/xen-domain-build/xen-domain-build/blob/main/docs/ARCHITECTURE.md#memory-model).
 */
export interface MemoryModel {
  staticMaxMib: number
  targetMib: number
  buildMaxMib: number
  buildStartMib: number
  xenMaxMib: number
  shadowMib: number
  overheadMib: number
  requiredHostFreeMib: number
  /** build_start in 4 KiB pages: what the build claims. */
  buildClaimPages: number
}

/** (extra internal, extra external, shim) per memory model. */
interface ModelData {
  extraInternalMib: number
  extraExternalMib: number
  shimMib(mib: number): number
}

const HVM: ModelData = { extraInternalMib: 1, extraExternalMib: 1, shimMib: () => 0 }
const LINUX: ModelData = { extraInternalMib: 0, extraExternalMib: 1, shimMib: () => 0 }
/** The PVH shim's own memory for a guest of `mib` MiB (xenopsd's `PVinPVH_memory_model_data.shim_mib`). */
export const PV_IN_PVH_SHIM_MIB = (mib: number): number => 23 + Math.floor(mib / 90)
const PV_IN_PVH: ModelData = { extraInternalMib: 1, extraExternalMib: 1, shimMib: PV_IN_PVH_SHIM_MIB }

function model(vm: VmMemory): ModelData {
  if (vm.type === 'pv') return LINUX
  return vm.type === 'pvh' && vm.pvShim ? PV_IN_PVH : HVM
}

function wholeNumber(field: string, value: unknown, min = 0): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < min) {
    throw invalidArgument(field, `${describe(value)} is not a whole number${min > 0 ? ` ≥ ${min}` : ' ≥ 0'}`)
  }
  return value
}

/** Checks a VM's memory settings, naming the field that is wrong. */
export function checkVmMemory(vm: VmMemory, field = 'vm'): void {
  if (vm === null || typeof vm !== 'object') throw invalidArgument(field, `expected an object, got ${describe(vm)}`)
  if (vm.type !== 'hvm' && vm.type !== 'pv' && vm.type !== 'pvh') {
    throw invalidArgument(`${field}.type`, `${describe(vm.type)} is not "hvm", "pv" or "pvh"`)
  }
  wholeNumber(`${field}.staticMaxKib`, vm.staticMaxKib, 1)
  wholeNumber(`${field}.targetKib`, vm.targetKib, 1)
  wholeNumber(`${field}.vcpus`, vm.vcpus, 1)
  const video = vm.videoMib === undefined ? 0 : wholeNumber(`${field}.videoMib`, vm.videoMib)
  if (vm.type === 'pv' && video !== 0) throw invalidArgument(`${field}.videoMib`, 'must be 0 for a PV guest')
  if (vm.targetKib > vm.staticMaxKib) {
    throw invalidArgument(`${field}.targetKib`, `${vm.targetKib} is above staticMaxKib ${vm.staticMaxKib}`)
  }
  if (video >= mibOfKibUsed(vm.targetKib)) {
    throw invalidArgument(`${field}.videoMib`, `${video} leaves no memory of the ${mibOfKibUsed(vm.targetKib)} MiB target`)
  }
  const multiplier = vm.shadowMultiplier === undefined ? 1 : vm.shadowMultiplier
  if (typeof multiplier !== 'number' || !Number.isFinite(multiplier) || multiplier <= 0) {
    throw invalidArgument(`${field}.shadowMultiplier`, `${describe(multiplier)} is not a positive number`)
  }
  if (vm.pvShim !== undefined && (typeof vm.pvShim !== 'boolean' || (vm.pvShim && vm.type !== 'pvh'))) {
    throw invalidArgument(`${field}.pvShim`, 'is a boolean, and only for a PVH guest')
  }
}

/** Every field of the memory model (https://github.com/xen-domain-build/xen-domain-build/blob/main/docs/ARCHITECTURE.md#memory-model). */
export function memoryModel(vm: VmMemory): MemoryModel {
  checkVmMemory(vm)
  const data = model(vm)
  const staticMaxMib = mibOfKibUsed(vm.staticMaxKib)
  const targetMib = mibOfKibUsed(vm.targetKib)
  const videoMib = vm.videoMib ?? 0
  const multiplier = vm.type === 'pv' ? 1 : (vm.shadowMultiplier ?? 1)
  const shadowMib = Math.max(1, Math.trunc(Math.ceil((256 * vm.vcpus + 2 * staticMaxMib) / 256) * multiplier))
  const overheadMib =
    data.extraInternalMib + data.extraExternalMib + shadowMib + Math.ceil((38 * vm.vcpus) / 256) + data.shimMib(staticMaxMib)
  const buildStartMib = targetMib - videoMib + data.shimMib(targetMib)
  // set_shadow_allocation takes a 32-bit MiB count: a multiplier beyond it is no allocation Xen can make.
  if (shadowMib > 0xffff_ffff) {
    throw invalidArgument(
      'vm.shadowMultiplier',
      `${vm.shadowMultiplier} gives a ${shadowMib} MiB shadow allocation, beyond Xen's 2^32 - 1 MiB`,
    )
  }
  return {
    staticMaxMib,
    targetMib,
    buildMaxMib: staticMaxMib - videoMib + data.shimMib(staticMaxMib),
    buildStartMib,
    xenMaxMib: staticMaxMib + data.extraInternalMib + data.shimMib(staticMaxMib),
    shadowMib,
    overheadMib,
    requiredHostFreeMib: targetMib + overheadMib,
    buildClaimPages: pagesOfMib(buildStartMib),
  }
}
