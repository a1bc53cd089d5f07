#!/usr/bin/env node
/**
 * The `xen-domain-build` command line. Output for machines is one JSON value
 * per line (`--json`); errors are one line on stderr. Exit codes: 0 success,
 * 1 failure, 2 usage error or invalid input, 3 Xen (or xenstore) unavailable.
 */
import { existsSync, readFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { XenDomainBuildError } from '../errors.js'
import { build } from './commands/build.js'
import { host } from './commands/host.js'
import { plan } from './commands/plan.js'
import { storm } from './commands/storm.js'
import { EXIT_USAGE, EXIT_FAILURE, EXIT_XEN_UNAVAILABLE, UsageError, type Out } from './common.js'

const USAGE = `Usage: xen-domain-build <command> [options]

Commands:
  host     the host's CPUs, memory, NUMA nodes and distances (real, or --sim PRESET)
  plan     NUMA placement decisions, as xenopsd makes them
  build    build a domain from a VM config file (real host, or --sim PRESET)
  storm    a mass VM start on a simulated host: many whole builds at once

Run \`xen-domain-build <command> --help\` for a command's options;
\`xen-domain-build --version\` prints the version.
Exit codes: 0 success, 1 failure, 2 usage error or invalid input, 3 Xen unavailable.`

/** This package's version, from the package.json above this file (in dist/ or ts/tools/). */
function packageVersion(): string {
  for (let dir = dirname(fileURLToPath(import.meta.url)); ; dir = dirname(dir)) {
    const file = join(dir, 'package.json')
    if (existsSync(file)) {
      const pkg = JSON.parse(readFileSync(file, 'utf8')) as { name?: string; version?: string }
      if (pkg.name === 'xen-domain-build' && pkg.version !== undefined) return pkg.version
    }
    if (dirname(dir) === dir) return 'unknown'
  }
}

function exitCode(error: unknown): number {
  if (error instanceof UsageError) return EXIT_USAGE
  const code = (error as { code?: string }).code
  if (code === 'INVALID_ARGUMENT' || code?.startsWith('ERR_PARSE_ARGS')) return EXIT_USAGE
  if (code === 'XEN_UNAVAILABLE' || code === 'XENSTORE_UNAVAILABLE') return EXIT_XEN_UNAVAILABLE
  return EXIT_FAILURE
}

export async function main(argv: string[], out: Out = (l) => console.log(l)): Promise<number> {
  const [command, ...rest] = argv
  try {
    switch (command) {
      case undefined:
      case '-h':
      case '--help':
        out(USAGE)
        return command === undefined ? EXIT_USAGE : 0
      case '-V':
      case '--version':
        out(packageVersion())
        return 0
      case 'host':
        await host(rest, out)
        return 0
      case 'plan':
        await plan(rest, out)
        return 0
      case 'storm':
        return await storm(rest, out)
      case 'build':
        return await build(rest, out)
      default:
        throw new UsageError(`unknown command ${JSON.stringify(command.slice(0, 40))} (see xen-domain-build --help)`)
    }
  } catch (error) {
    const prefix = error instanceof XenDomainBuildError ? `${error.code}: ` : ''
    // One line, whatever the message (node's parseArgs writes two).
    console.error(`xen-domain-build: ${prefix}${(error as Error).message.replace(/\s*\n\s*/g, ' ')}`)
    return exitCode(error)
  }
}

main(process.argv.slice(2)).then((code) => {
  process.exitCode = code
})
