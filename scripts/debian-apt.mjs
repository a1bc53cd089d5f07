// @ts-check
// apt-get with a private state: Debian 13 (trixie)'s package lists, kept
// under a directory of ours, so that its packages can be downloaded (never
// installed) on any Debian or Ubuntu machine without touching the machine's
// own apt configuration. Used for Debian 13's Xen 4.20 (test:xen) and its
// libxen-dev headers (the layout test).
import { spawnSync } from 'node:child_process'
import { existsSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'

const SOURCES = [
  'deb [arch=amd64] http://deb.debian.org/debian trixie main',
  'deb [arch=amd64] http://deb.debian.org/debian trixie-updates main',
  'deb [arch=amd64] http://deb.debian.org/debian-security trixie-security main',
]

function run(command, args, options = {}) {
  const result = spawnSync(command, args, { stdio: ['ignore', 'inherit', 'inherit'], ...options })
  if (result.status !== 0) throw new Error(`${command} ${args.join(' ')} failed (${result.status ?? result.signal})`)
  return result
}

/** apt-get's options for trixie's lists under `dir` (fetched once). */
export function trixieApt(dir) {
  const options = [
    '-o',
    `Dir::Etc::SourceList=${join(dir, 'sources.list')}`,
    '-o',
    `Dir::Etc::SourceParts=${join(dir, 'sources.list.d')}`,
    '-o',
    `Dir::State::Lists=${join(dir, 'lists')}`,
    '-o',
    `Dir::Cache=${join(dir, 'cache')}`,
    '-o',
    'APT::Architectures::=amd64',
    // Packages lists only, and no sandbox user (it cannot write under our directory).
    '-o',
    'Acquire::IndexTargets::deb::DEP-11::DefaultEnabled=false',
    '-o',
    'Acquire::IndexTargets::deb::DEP-11-icons::DefaultEnabled=false',
    '-o',
    'Acquire::IndexTargets::deb::DEP-11-icons-small::DefaultEnabled=false',
    '-o',
    'Acquire::Languages=none',
    '-o',
    'APT::Sandbox::User=root',
  ]
  if (!existsSync(join(dir, '.updated'))) {
    for (const sub of ['sources.list.d', 'lists/partial', 'cache/archives/partial']) mkdirSync(join(dir, sub), { recursive: true })
    writeFileSync(join(dir, 'sources.list'), `${SOURCES.join('\n')}\n`)
    run('apt-get', [...options, 'update', '-qq'])
    writeFileSync(join(dir, '.updated'), '')
  }
  return options
}

/** Downloads the packages `debs` lacks (by name) into it; returns every .deb there. */
export function download(apt, debs, packages) {
  mkdirSync(debs, { recursive: true })
  const have = readdirSync(debs)
  const missing = packages.filter((p) => !have.some((f) => f.startsWith(`${p}_`)))
  if (missing.length > 0) run('apt-get', [...apt, 'download', '-qq', ...missing], { cwd: debs })
  return readdirSync(debs)
    .filter((f) => f.endsWith('.deb'))
    .sort()
}
