import { spawnSync } from 'node:child_process'
import { cpSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { ROOT, node } from './helpers.js'

const PROBE = `
  const p = new m.NumaPlanner({ distances: [[10, 21], [21, 10]], cpuToNode: [0, 0, 1, 1], nodeCores: [1, 1] })
  const plan = p.plan({ memoryBytes: 1, vcpus: 2, cores: 0 }, [10, 10])
  console.log(JSON.stringify({ plan, error: typeof m.XenDomainBuildError }))`

describe('the package as Node loads it', () => {
  it('works from require()', () => {
    const run = node(['-e', `const m = require('xen-domain-build');${PROBE}`])
    expect(run.stderr).toBe('')
    expect(JSON.parse(run.stdout)).toEqual({ plan: { nodes: [0], cpus: [0, 1], maxDistance: 10, averageDistance: 10 }, error: 'function' })
  })

  it('works from import', () => {
    const run = node(['--input-type=module', '-e', `import * as m from 'xen-domain-build';${PROBE}`])
    expect(run.stderr).toBe('')
    expect(JSON.parse(run.stdout).plan.nodes).toEqual([0])
  })

  it('says which addon it looked for, and how to build it, when there is none', () => {
    const dir = mkdtempSync(join(tmpdir(), 'xdb-no-addon-'))
    try {
      for (const part of ['package.json', 'dist', 'scripts', 'native/binding.js']) {
        cpSync(join(ROOT, part), join(dir, part), { recursive: true })
      }
      const run = node(['-e', `const m = require('./');
        try { new m.NumaPlanner({ distances: [[10]], cpuToNode: [0], nodeCores: [1] }) }
        catch (e) { console.log(JSON.stringify({ code: e.code, message: e.message })) }`], dir)
      const { code, message } = JSON.parse(run.stdout)
      const report = process.report.getReport() as { header: { glibcVersionRuntime?: string } }
      const abi = report.header.glibcVersionRuntime ? 'gnu' : 'musl'
      const platform = `${process.platform}-${process.arch}-${abi}`
      expect(code).toBe('NATIVE_ADDON_MISSING')
      expect(message).toContain(`${platform} (${process.arch === 'arm64' ? 'aarch64' : 'x86_64'}-unknown-linux-${abi})`)
      expect(message).toContain(`native/xen-domain-build.${platform}.node`)
      expect(message).toContain(`package xen-domain-build-${platform}`)
      expect(message).toContain('npm install')
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })
})

describe('the published package', () => {
  it('ships what building the addon from source needs, and not the test harness', () => {
    const run = spawnSync('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], { cwd: ROOT, encoding: 'utf8' })
    expect(run.status).toBe(0)
    const files = new Set<string>((JSON.parse(run.stdout)[0].files as { path: string }[]).map((f) => f.path))
    // Every crate's manifest, sources and declared benches, or cargo refuses to build.
    for (const path of [
      'Cargo.toml', 'Cargo.lock', 'build.rs', 'src/lib.rs',
      'crates/numa/Cargo.toml', 'crates/numa/src/lib.rs', 'crates/numa/benches/plan.rs',
      'crates/xenctrl/Cargo.toml', 'crates/xenctrl/src/lib.rs', 'crates/xenctrl/src/real/layouts.rs',
      'crates/xen-sim/Cargo.toml', 'crates/xen-sim/src/lib.rs',
      'crates/xenstore/Cargo.toml', 'crates/xenstore/src/lib.rs', 'crates/xenstore/src/real.rs',
      'scripts/install.cjs', 'scripts/platform.cjs', 'native/binding.js', 'native/binding.d.ts',
      'dist/index.js', 'dist/index.mjs', 'dist/index.d.ts', 'dist/cli.js', 'schema/vm-config.schema.json',
    ]) {
      expect(files.has(path), path).toBe(true)
    }
    expect([...files].filter((f) => f.endsWith('.node') || f.startsWith('__test__') || f.includes('test-xen'))).toEqual([])
  })
})
