import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import Ajv2020 from 'ajv/dist/2020.js'
import { describe, expect, it } from 'vitest'
import { schemaProblem, type Schema } from '../ts/tools/json-schema.js'
import { parseVmConfig } from '../ts/tools/vm-config.js'
import { ROOT } from './helpers.js'

const schema = JSON.parse(readFileSync(join(ROOT, 'schema', 'vm-config.schema.json'), 'utf8')) as Schema
const vm = { type: 'hvm', staticMaxKib: 2 << 20, targetKib: 1 << 20, videoMib: 8, vcpus: 2, image: '/usr/lib/xen/boot/hvmloader' }

// Configs on both sides of every rule the schema states.
const configs: [string, unknown][] = [
  ['minimal', vm],
  ['pv with ramdisk', { type: 'pv', staticMaxKib: 1024, targetKib: 1024, vcpus: 1, image: 'k', ramdisk: 'r', cmdline: 'c' }],
  ['pvh with modules', { ...vm, type: 'pvh', pvShim: true, modules: [{ path: 'm', cmdline: 'x' }, { path: 'n' }] }],
  ['hard affinity', { ...vm, hardAffinity: [[0, 1], [2]], shadowMultiplier: 1.5, nvidiaVgpu: true }],
  ['unknown key', { ...vm, vcpu: 2 }],
  ['missing image', { ...vm, image: undefined }],
  ['empty image', { ...vm, image: '' }],
  ['bad type', { ...vm, type: 'xen' }],
  ['fractional vcpus', { ...vm, vcpus: 1.5 }],
  ['zero vcpus', { ...vm, vcpus: 0 }],
  ['string memory', { ...vm, staticMaxKib: '2048' }],
  ['zero multiplier', { ...vm, shadowMultiplier: 0 }],
  ['empty affinity', { ...vm, hardAffinity: [] }],
  ['empty mask', { ...vm, hardAffinity: [[]] }],
  ['negative cpu', { ...vm, hardAffinity: [[-1]] }],
  ['module without path', { ...vm, modules: [{ cmdline: 'x' }] }],
  ['module with extra key', { ...vm, modules: [{ path: 'm', size: 1 }] }],
  ['not an object', [vm]],
  ['pvShim not boolean', { ...vm, pvShim: 'yes' }],
  ['$schema for an editor', { $schema: 'xen-domain-build/schema/vm-config.schema.json', ...vm }],
  ['$schema not a string', { ...vm, $schema: 1 }],
]

describe('the VM config schema the package ships', () => {
  it('is a valid JSON Schema 2020-12, and our checker agrees with a full validator on every case', () => {
    const ajv = new Ajv2020({ strict: true, allErrors: false })
    const validate = ajv.compile(schema)
    for (const [name, config] of configs) {
      const value = JSON.parse(JSON.stringify(config)) as unknown
      expect(schemaProblem(schema, value, 'config') === null, name).toBe(validate(value))
    }
  })

  it('is what build --config reads: a schema problem is INVALID_ARGUMENT naming the value', () => {
    expect(parseVmConfig(JSON.stringify(vm), 'vm.json').vm).toMatchObject({ type: 'hvm', vcpus: 2 })
    expect(() => parseVmConfig(JSON.stringify({ ...vm, vcpus: 1.5 }), 'vm.json')).toThrow(
      'vm.json.vcpus: expected a whole number, got number',
    )
    // What the schema cannot say is checked after it.
    expect(() => parseVmConfig(JSON.stringify({ ...vm, targetKib: 3 << 20 }), 'vm.json')).toThrow(/targetKib: .* is above staticMaxKib/)
  })

  it('takes a "$schema" key, the usual way to give an editor the schema, and builds without it', () => {
    const parsed = parseVmConfig(JSON.stringify({ $schema: 'xen-domain-build/schema/vm-config.schema.json', ...vm }), 'vm.json')
    expect(parsed).toEqual(parseVmConfig(JSON.stringify(vm), 'vm.json'))
  })
})
