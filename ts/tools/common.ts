/**
 * What the command line's commands share: exit codes, usage errors, reading
 * input, parsing numbers, and the simulated hosts.
 */
import { readFileSync } from 'node:fs'
import { parseArgs as nodeParseArgs, type ParseArgsConfig } from 'node:util'
import type { LargeHostCandidates } from '../../native/binding.js'
import { simulateHost, simulatorPresets, type Hypervisor } from '../hypervisor.js'

export const EXIT_FAILURE = 1
export const EXIT_USAGE = 2
export const EXIT_XEN_UNAVAILABLE = 3

/** Where a command writes its output, one line at a time. */
export type Out = (line: string) => void

/** A command line that cannot be run: exit code 2. */
export class UsageError extends Error {}

export const presetNames = (): string =>
  simulatorPresets()
    .map((p) => p.name)
    .join(', ')

export function readInput(file: string): string {
  try {
    return readFileSync(file === '-' ? 0 : file, 'utf8')
  } catch (error) {
    throw new UsageError(`cannot read ${file === '-' ? 'standard input' : file}: ${(error as Error).message}`)
  }
}

export function wholeNumber(flag: string, text: string | undefined, fallback?: number): number {
  if (text === undefined) {
    if (fallback === undefined) throw new UsageError(`${flag} is required`)
    return fallback
  }
  const value = Number(text)
  if (!/^\d+$/.test(text) || !Number.isSafeInteger(value)) throw new UsageError(`${flag}: ${text} is not a whole number`)
  return value
}

export function largeHost(value: string | undefined): LargeHostCandidates | undefined {
  if (value === undefined || value === 'single-nodes' || value === 'neighbourhoods') return value
  throw new UsageError(`--large-host-candidates: ${value} is not single-nodes or neighbourhoods`)
}

export function simulated(preset: string): Hypervisor {
  if (!simulatorPresets().some((p) => p.name === preset)) {
    throw new UsageError(`--sim: unknown host ${preset} (one of ${presetNames()})`)
  }
  return simulateHost({ preset }).hypervisor()
}

export const pct = (share: number) => `${(100 * share).toFixed(1)}%`

/**
 * node:util's parseArgs, except that a value that looks like a negative
 * number (`--vms -5`) is the option's value, as a user means it, and then
 * refused by the option's own check with a message about the number; Node
 * would call it an ambiguous argument.
 */
export function parseCommandLine<T extends ParseArgsConfig & { args: string[] }>(config: T): ReturnType<typeof nodeParseArgs<T>> {
  const takesValue = (arg: string) => arg.startsWith('--') && config.options?.[arg.slice(2)]?.type === 'string'
  const args: string[] = []
  for (let i = 0; i < config.args.length; i++) {
    const arg = config.args[i] as string
    const next = config.args[i + 1]
    if (takesValue(arg) && next !== undefined && /^-\d/.test(next)) {
      args.push(`${arg}=${next}`)
      i++
    } else args.push(arg)
  }
  return nodeParseArgs({ ...config, args })
}
