import { spawnSync } from 'node:child_process'
import { expect } from 'vitest'
import { XenDomainBuildError } from '../ts/errors.js'
import { existsSync, readFileSync } from 'node:fs'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..')

/**
 * The folder `fixtures/xenopsd` was copied from, beside the repository where the
 * project was written. Absent elsewhere: fixtures.test.ts then skips its check.
 */
export const SHARED_DATA = join(ROOT, '..', 'shared', 'data')

/**
 * xenopsd's topologies and decisions: `fixtures/xenopsd` (see its README.md),
 * or the folder `XDB_SHARED_DATA` names.
 */
export function sharedData(...parts: string[]): string {
  const dir = process.env.XDB_SHARED_DATA ?? join(ROOT, '__test__', 'fixtures', 'xenopsd')
  if (!existsSync(dir)) throw new Error(`xenopsd fixtures not found at ${dir} (set XDB_SHARED_DATA)`)
  return join(dir, ...parts)
}

export function readJson<T = unknown>(path: string): T {
  return JSON.parse(readFileSync(path, 'utf8')) as T
}

export interface Run {
  status: number | null
  stdout: string
  stderr: string
}

/** Runs the built CLI as a user would. */
export function cli(args: string[], input?: string): Run {
  const result = spawnSync(process.execPath, [join(ROOT, 'dist', 'cli.js'), ...args], {
    input,
    encoding: 'utf8',
  })
  return { status: result.status, stdout: result.stdout, stderr: result.stderr }
}

export function node(args: string[], cwd = ROOT): Run {
  const result = spawnSync(process.execPath, args, { cwd, encoding: 'utf8' })
  return { status: result.status, stdout: result.stdout, stderr: result.stderr }
}

export type Call = [string, ...unknown[]]

/** A hypervisor (or any object) with every method call recorded; state reads excepted. */
export function recording<T extends object>(target: T, quiet = ['physinfo', 'numaInfo', 'cpuTopology']): { xen: T; calls: Call[] } {
  const calls: Call[] = []
  const proxy = new Proxy(target, {
    get(object, property) {
      const value = Reflect.get(object, property, object)
      if (typeof value !== 'function') return value
      return (...args: unknown[]) => {
        if (!quiet.includes(String(property))) calls.push([String(property), ...args])
        return value.apply(object, args)
      }
    },
  })
  return { xen: proxy, calls }
}

/** The fake xenguest of the fixtures. */
export const FAKE_XENGUEST = join(ROOT, '__test__', 'fixtures', 'fake-xenguest.mjs')

/** The XenDomainBuildError a promise rejects with; fails the test if it resolves. */
export async function rejected(promise: Promise<unknown>): Promise<XenDomainBuildError> {
  try {
    await promise
  } catch (error) {
    expect(error).toBeInstanceOf(XenDomainBuildError)
    return error as XenDomainBuildError
  }
  throw new Error('expected a rejection')
}

/** Whether a process is still running. */
export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch {
    return false
  }
}

/**
 * Whether a Debian package a test needs is installed: `file` (a path) exists,
 * or `command` is on PATH. Missing, the test is skipped (vitest reports it)
 * with a line naming the package and `npm run setup:system`, so `npm test`
 * runs for a contributor who is not root; with `XDB_REQUIRE_SYSTEM_PACKAGES=1`
 * (CI sets it) a missing package throws instead. The Rust tests' twin is
 * `c_probe::system_package`.
 */
export function systemPackage(need: { file: string } | { command: string }, debianPackage: string): boolean {
  const found = 'file' in need ? existsSync(need.file) : spawnSync('sh', ['-c', 'command -v "$1"', 'sh', need.command]).status === 0
  if (found) return true
  const why = `${'file' in need ? need.file : need.command} is missing: install Debian's ${debianPackage} (npm run setup:system)`
  if (process.env.XDB_REQUIRE_SYSTEM_PACKAGES) throw new Error(why)
  process.stderr.write(`skipped: ${why}\n`)
  return false
}
