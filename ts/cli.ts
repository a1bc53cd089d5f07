#!/usr/bin/env node
/**
 * The `xen-domain-build` command line. Output for machines is one JSON value
 * per line; errors are one line on stderr. Exit codes: 0 success, 1 failure,
 * 2 usage error or invalid input.
 */
import { readFileSync } from 'node:fs'
import { parseArgs } from 'node:util'
import { XenDomainBuildError } from './errors.js'
import { NumaPlanner } from './numa.js'
import { PRESETS, findPreset } from './presets.js'
import { parseScenario, playScenario } from './scenario.js'

const EXIT_FAILURE = 1
const EXIT_USAGE = 2

class UsageError extends Error {}

const USAGE = `Usage: xen-domain-build <command> [options]

Commands:
  plan     NUMA placement decisions, as xenopsd makes them

Run \`xen-domain-build <command> --help\` for a command's options.`

const PLAN_USAGE = `Usage:
  xen-domain-build plan --scenario FILE|-
      Plays a placement scenario (shared/data/README.md format) on one planner
      and prints one JSON line per request: {"nodes": [...], "cpus": [...]}.
  xen-domain-build plan --preset NAME --vcpus N --memory-mib M [--cores C] [--vms K] [--json]
      Plans K identical VMs (default 1) on a preset host, taking each VM's
      memory from its nodes.

Options:
  --scenario FILE   scenario file, or - for standard input
  --preset NAME     one of: ${PRESETS.map((p) => p.name).join(', ')}
  --large-host-candidates single-nodes|neighbourhoods
                    candidates on hosts with more than 16 nodes (default: single-nodes, as xenopsd)
  --json            JSON lines instead of a table (--scenario always prints JSON)
  -h, --help        this help`

function readInput(file: string): string {
  try {
    return readFileSync(file === '-' ? 0 : file, 'utf8')
  } catch (error) {
    throw new UsageError(`cannot read ${file === '-' ? 'standard input' : file}: ${(error as Error).message}`)
  }
}

function wholeNumber(flag: string, text: string | undefined, fallback?: number): number {
  if (text === undefined) {
    if (fallback === undefined) throw new UsageError(`${flag} is required`)
    return fallback
  }
  const value = Number(text)
  if (!/^\d+$/.test(text) || !Number.isSafeInteger(value)) throw new UsageError(`${flag}: ${text} is not a whole number`)
  return value
}

function largeHost(value: string | undefined): 'single-nodes' | 'neighbourhoods' | undefined {
  if (value === undefined || value === 'single-nodes' || value === 'neighbourhoods') return value
  throw new UsageError(`--large-host-candidates: ${value} is not single-nodes or neighbourhoods`)
}

function plan(args: string[], out: (line: string) => void): void {
  const { values } = parseArgs({
    args,
    options: {
      scenario: { type: 'string' },
      preset: { type: 'string' },
      vcpus: { type: 'string' },
      'memory-mib': { type: 'string' },
      cores: { type: 'string' },
      vms: { type: 'string' },
      'large-host-candidates': { type: 'string' },
      json: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
    strict: true,
  })
  if (values.help) return out(PLAN_USAGE)
  const options = { largeHostCandidates: largeHost(values['large-host-candidates']) }
  if (values.scenario !== undefined) {
    if (values.preset !== undefined) throw new UsageError('--scenario and --preset exclude each other')
    const source = values.scenario === '-' ? 'stdin' : values.scenario
    const scenario = parseScenario(readInput(values.scenario), source)
    for (const result of playScenario(scenario, options)) out(JSON.stringify(result))
    return
  }
  if (values.preset === undefined) throw new UsageError('plan needs --scenario or --preset (see --help)')
  const preset = findPreset(values.preset)
  if (preset === undefined) {
    throw new UsageError(`--preset: unknown host ${values.preset} (one of ${PRESETS.map((p) => p.name).join(', ')})`)
  }
  const vcpus = wholeNumber('--vcpus', values.vcpus)
  const memoryBytes = wholeNumber('--memory-mib', values['memory-mib']) * 1024 * 1024
  const cores = wholeNumber('--cores', values.cores, 0)
  const vms = wholeNumber('--vms', values.vms, 1)
  const planner = new NumaPlanner(preset, options)
  const free = [...preset.nodeMemoryBytes]
  if (!values.json) out(`host ${preset.name}: ${preset.source}`)
  for (let vm = 0; vm < vms; vm++) {
    const placed = planner.plan({ memoryBytes, vcpus, cores }, free)
    let remaining = memoryBytes
    for (const node of placed?.nodes ?? []) {
      const taken = Math.min(remaining, free[node] ?? 0)
      free[node] = (free[node] ?? 0) - taken
      remaining -= taken
    }
    if (values.json) {
      out(JSON.stringify({ vm, nodes: placed?.nodes ?? null, cpus: placed?.cpus ?? null }))
    } else {
      out(`vm ${String(vm).padStart(3)}: ${placed ? `nodes ${placed.nodes.join(',')} cpus ${placed.cpus.join(',')}` : 'no NUMA placement (nothing fits)'}`)
    }
  }
  if (!values.json) out(`plans per node: ${planner.usage().join(' ')}`)
}

export function main(argv: string[], out: (line: string) => void = (l) => console.log(l)): number {
  const [command, ...rest] = argv
  try {
    switch (command) {
      case undefined:
      case '-h':
      case '--help':
        out(USAGE)
        return command === undefined ? EXIT_USAGE : 0
      case 'plan':
        plan(rest, out)
        return 0
      default:
        throw new UsageError(`unknown command ${command}\n${USAGE}`)
    }
  } catch (error) {
    const usage =
      error instanceof UsageError ||
      (error instanceof XenDomainBuildError && error.code === 'INVALID_ARGUMENT') ||
      (error as { code?: string }).code?.startsWith('ERR_PARSE_ARGS')
    console.error(`xen-domain-build: ${(error as Error).message}`)
    return usage ? EXIT_USAGE : EXIT_FAILURE
  }
}

process.exitCode = main(process.argv.slice(2))
