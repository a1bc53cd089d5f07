/**
 * What the command line's commands share: exit codes, usage errors, reading
 * input, parsing numbers, and the simulated hosts.
 */
import { readFileSync } from 'node:fs'
import type { LargeHostCandidates } from '../../native/binding.js'
import { simulateHost, simulatorPresets, type Hypervisor } from '../hypervisor.js'

export const EXIT_FAILURE = 1
export const EXIT_USAGE = 2
export const EXIT_XEN_UNAVAILABLE = 3

/** Where a command writes its output, one line at a time. */
export type Out = (line: string) => void

/** A command line that cannot be run: exit code 2. */
export class UsageError extends Error {}

export const presetNames = (): string => simulatorPresets().map((p) => p.name).join(', ')

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
