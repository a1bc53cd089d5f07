/**
 * The part of JSON Schema (2020-12) that the VM config's schema uses, to check
 * a config against the schema file the package ships: types, `enum`,
 * `required`, `properties` with `additionalProperties: false`, `items`,
 * `minItems`, `minLength`, `minimum`, `exclusiveMinimum`. The first problem
 * found is returned, with the path of the value at fault.
 */

export interface Schema {
  type?: 'object' | 'array' | 'string' | 'integer' | 'number' | 'boolean'
  enum?: readonly unknown[]
  required?: readonly string[]
  properties?: Readonly<Record<string, Schema>>
  additionalProperties?: boolean
  items?: Schema
  minItems?: number
  minLength?: number
  minimum?: number
  exclusiveMinimum?: number
}

function typeOf(value: unknown): string {
  if (value === null) return 'null'
  if (Array.isArray(value)) return 'array'
  if (typeof value === 'number') return Number.isInteger(value) ? 'integer' : 'number'
  return typeof value
}

function hasType(value: unknown, type: NonNullable<Schema['type']>): boolean {
  const actual = typeOf(value)
  return actual === type || (type === 'number' && actual === 'integer')
}

/** The first way `value` breaks `schema`, as `path: problem`; null when it conforms. */
export function schemaProblem(schema: Schema, value: unknown, path: string): string | null {
  if (schema.enum !== undefined && !schema.enum.includes(value)) {
    return `${path}: ${JSON.stringify(value)} is not one of ${schema.enum.map((v) => JSON.stringify(v)).join(', ')}`
  }
  if (schema.type !== undefined && !hasType(value, schema.type))
    return `${path}: expected ${schema.type === 'integer' ? 'a whole number' : `a${schema.type === 'object' || schema.type === 'array' ? 'n' : ''} ${schema.type}`}, got ${typeOf(value)}`
  if (typeof value === 'number') {
    if (schema.minimum !== undefined && value < schema.minimum) return `${path}: ${value} is below ${schema.minimum}`
    if (schema.exclusiveMinimum !== undefined && value <= schema.exclusiveMinimum)
      return `${path}: ${value} is not above ${schema.exclusiveMinimum}`
  }
  if (typeof value === 'string' && schema.minLength !== undefined && value.length < schema.minLength)
    return `${path}: is shorter than ${schema.minLength}`
  if (Array.isArray(value)) {
    if (schema.minItems !== undefined && value.length < schema.minItems)
      return `${path}: needs at least ${schema.minItems} item${schema.minItems === 1 ? '' : 's'}`
    if (schema.items !== undefined) {
      for (const [i, item] of value.entries()) {
        const problem = schemaProblem(schema.items, item, `${path}[${i}]`)
        if (problem !== null) return problem
      }
    }
  }
  if (typeOf(value) === 'object') {
    const object = value as Record<string, unknown>
    for (const key of schema.required ?? []) if (!(key in object)) return `${path}.${key}: is required`
    for (const [key, item] of Object.entries(object)) {
      const property = schema.properties?.[key]
      if (property === undefined) {
        if (schema.additionalProperties === false) {
          return `${path}: unknown key ${JSON.stringify(key)} (known: ${Object.keys(schema.properties ?? {}).join(', ')})`
        }
        continue
      }
      const problem = schemaProblem(property, item, `${path}.${key}`)
      if (problem !== null) return problem
    }
  }
  return null
}
