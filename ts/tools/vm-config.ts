/**
 * A VM config file for `xen-domain-build build`: one JSON object with the
 * VM's memory and vCPUs (as `VmConfig`) and its boot image (as `DomainImage`).
 */
import type { VmConfig } from '../build-pre.js'
import type { DomainImage } from '../build.js'
import { invalidArgument, parseJsonObject } from '../errors.js'
import { checkVmMemory } from '../memory.js'
import vmConfigSchema from '../../schema/vm-config.schema.json' with { type: 'json' }
import { schemaProblem, type Schema } from './json-schema.js'

export interface VmConfigFile {
  vm: VmConfig
  image: DomainImage
  /** What `createDomain` writes for a domain the command creates: the VM's UUID, name, `platform/*`. */
  domain: { uuid?: string; name?: string; platform?: Record<string, string> }
}

/**
 * Reads a VM config: the schema the package ships
 * (`schema/vm-config.schema.json`) first, then what a schema cannot say
 * (target within static max, video memory below the target, ...).
 */
export function parseVmConfig(text: string, source: string): VmConfigFile {
  const o = parseJsonObject(text, source)
  const problem = schemaProblem(vmConfigSchema as Schema, o, source)
  if (problem !== null) {
    const at = problem.indexOf(': ')
    throw invalidArgument(problem.slice(0, at), problem.slice(at + 2))
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
  const domain: VmConfigFile['domain'] = {}
  if (o.uuid !== undefined) domain.uuid = o.uuid as string
  if (o.name !== undefined) domain.name = o.name as string
  if (o.platform !== undefined) domain.platform = o.platform as Record<string, string>
  return {
    vm,
    domain,
    image: {
      image: o.image as string,
      cmdline: o.cmdline as string | undefined,
      ramdisk: o.ramdisk as string | undefined,
      modules: o.modules as DomainImage['modules'],
      nvidiaVgpu: o.nvidiaVgpu === true,
    },
  }
}
