/**
 * A VM config file for `xen-domain-build build`: one JSON object with the
 * VM's memory and vCPUs (as `VmConfig`) and its boot image (as `DomainImage`).
 */
import type { VmConfig } from './build-pre.js'
import type { DomainImage } from './build.js'
import { describe, invalidArgument, parseJsonObject } from './errors.js'
import { checkVmMemory } from './memory.js'

const KEYS = [
  'type', 'pvShim', 'staticMaxKib', 'targetKib', 'videoMib', 'vcpus', 'shadowMultiplier', 'hardAffinity',
  'image', 'cmdline', 'ramdisk', 'modules', 'nvidiaVgpu', 'uuid', 'name', 'platform',
] as const

export interface VmConfigFile {
  vm: VmConfig
  image: DomainImage
  /** What `createDomain` writes: the VM's UUID, name, `platform/*`. */
  domain: { uuid?: string; name?: string; platform?: Record<string, string> }
}

export function parseVmConfig(text: string, source: string): VmConfigFile {
  const o = parseJsonObject(text, source)
  const unknown = Object.keys(o).filter((k) => !(KEYS as readonly string[]).includes(k))
  if (unknown.length > 0) throw invalidArgument(source, `unknown keys ${unknown.join(', ')} (known: ${KEYS.join(', ')})`)
  const text_ = (key: string, required = false) => {
    const v = o[key]
    if (v === undefined && !required) return undefined
    if (typeof v !== 'string') throw invalidArgument(`${source}.${key}`, `expected a string, got ${describe(v)}`)
    return v
  }
  const image = text_('image', true) as string
  const modules = o.modules
  if (modules !== undefined && (!Array.isArray(modules) || modules.some((m) => typeof m?.path !== 'string'))) {
    throw invalidArgument(`${source}.modules`, 'expected a list of { "path": ..., "cmdline": ... }')
  }
  const vm = {
    type: o.type,
    pvShim: o.pvShim,
    staticMaxKib: o.staticMaxKib,
    targetKib: o.targetKib,
    videoMib: o.videoMib,
    vcpus: o.vcpus,
    shadowMultiplier: o.shadowMultiplier,
    hardAffinity: o.hardAffinity,
  } as VmConfig
  for (const key of Object.keys(vm) as (keyof VmConfig)[]) if (vm[key] === undefined) delete vm[key]
  try {
    checkVmMemory(vm)
  } catch (error) {
    throw invalidArgument(source, (error as Error).message)
  }
  const platform = o.platform
  if (platform !== undefined && (platform === null || typeof platform !== 'object' || Array.isArray(platform) || Object.values(platform).some((v) => typeof v !== 'string'))) {
    throw invalidArgument(`${source}.platform`, 'expected an object of strings')
  }
  const domain: VmConfigFile['domain'] = {}
  if (o.uuid !== undefined) domain.uuid = text_('uuid')
  if (o.name !== undefined) domain.name = text_('name')
  if (platform !== undefined) domain.platform = platform as Record<string, string>
  return {
    vm,
    domain,
    image: {
      image,
      cmdline: text_('cmdline'),
      ramdisk: text_('ramdisk'),
      modules: modules as DomainImage['modules'],
      nvidiaVgpu: o.nvidiaVgpu === true,
    },
  }
}
