import { spawnSync } from 'node:child_process'
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import ts from 'typescript'
import { describe, expect, it } from 'vitest'
import { ROOT, node, readJson } from './helpers.js'

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

  it('gives import and require one module instance: one XenDomainBuildError class, the same exports', () => {
    const run = node([
      '--input-type=module',
      '-e',
      `
      import { createRequire } from 'node:module'
      import * as esm from 'xen-domain-build'
      const cjs = createRequire(import.meta.url)('xen-domain-build')
      let thrown
      try { new esm.NumaPlanner({ distances: [[10]], cpuToNode: [], nodeCores: [] }) } catch (e) { thrown = e }
      console.log(JSON.stringify({
        sameClass: esm.XenDomainBuildError === cjs.XenDomainBuildError,
        instanceOfCjs: thrown instanceof cjs.XenDomainBuildError,
        code: thrown.code,
        esm: Object.keys(esm).sort(),
        cjs: Object.keys(cjs).sort(),
      }))`,
    ])
    expect(run.stderr).toBe('')
    const out = JSON.parse(run.stdout)
    expect(out).toMatchObject({ sameClass: true, instanceOfCjs: true, code: 'INVALID_ARGUMENT' })
    expect(out.esm).toEqual(out.cjs)
  })

  it('says which addon it looked for, and the step that builds it, when there is none', () => {
    const dir = mkdtempSync(join(tmpdir(), 'xdb-no-addon-'))
    try {
      for (const part of ['package.json', 'dist', 'esm', 'scripts/platform.cjs', 'native/binding.js']) {
        cpSync(join(ROOT, part), join(dir, part), { recursive: true })
      }
      const run = node(
        [
          '-e',
          `const m = require('./');
        try { new m.NumaPlanner({ distances: [[10]], cpuToNode: [0], nodeCores: [1] }) }
        catch (e) { console.log(JSON.stringify({ code: e.code, message: e.message })) }`,
        ],
        dir,
      )
      const { code, message } = JSON.parse(run.stdout)
      const report = process.report.getReport() as { header: { glibcVersionRuntime?: string } }
      const abi = report.header.glibcVersionRuntime ? 'gnu' : 'musl'
      const platform = `${process.platform}-${process.arch}-${abi}`
      expect(code).toBe('NATIVE_ADDON_MISSING')
      expect(message).toContain(`${platform} (${process.arch === 'arm64' ? 'aarch64' : 'x86_64'}-unknown-linux-${abi})`)
      expect(message).toContain(`native/xen-domain-build.${platform}.node: not found`)
      expect(message).toContain(`@xen-domain-build/${platform}: not installed`)
      expect(message).toContain('npm ci --ignore-scripts && npm run build:native')
      expect(message).toContain(`NAPI_RS_NATIVE_LIBRARY_PATH=<clone>/native/xen-domain-build.${platform}.node`)
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })
})

describe('the published package', () => {
  const pkg = readJson<Record<string, unknown>>(join(ROOT, 'package.json'))

  it('ships what loading needs, and no Rust sources, source maps, addon or test harness', () => {
    const run = spawnSync('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], { cwd: ROOT, encoding: 'utf8' })
    expect(run.status).toBe(0)
    const files = (JSON.parse(run.stdout)[0].files as { path: string }[]).map((f) => f.path).sort()
    for (const path of [
      'LICENSE',
      'README.md',
      'package.json',
      'native/binding.js',
      'native/binding.d.ts',
      'scripts/platform.cjs',
      'dist/index.js',
      'dist/index.d.ts',
      'dist/cli.js',
      'esm/index.mjs',
      'esm/index.d.mts',
      'schema/vm-config.schema.json',
    ]) {
      expect(files, path).toContain(path)
    }
    const unwanted = files.filter(
      (f) =>
        !/^(LICENSE|README\.md|package\.json|native\/binding\.(js|d\.ts)|scripts\/platform\.cjs|esm\/index\.(mjs|d\.mts)|dist\/(index|cli|chunk-\w+)\.js|dist\/index\.d\.ts|schema\/vm-config\.schema\.json)$/.test(
          f,
        ),
    )
    expect(unwanted).toEqual([])
  })

  it('builds nothing at install, and says where it comes from', () => {
    const scripts = pkg.scripts as Record<string, string>
    for (const hook of ['preinstall', 'install', 'postinstall']) expect(scripts[hook], hook).toBeUndefined()
    expect(pkg.license).toBe('MIT')
    expect(pkg.repository).toEqual({ type: 'git', url: 'git+https://github.com/xen-domain-build/xen-domain-build.git' })
    expect(pkg.homepage).toBe('https://github.com/xen-domain-build/xen-domain-build#readme')
    expect(pkg.bugs).toEqual({ url: 'https://github.com/xen-domain-build/xen-domain-build/issues' })
    const license = readFileSync(join(ROOT, 'LICENSE'), 'utf8')
    expect(license).toMatch(/^MIT License\n\nCopyright \(c\) \d{4} the xen-domain-build authors\n/)
  })

  it("asks Yarn Plug'n'Play to unplug it: the builder it ships must be a file a process can spawn", () => {
    expect(pkg.preferUnplugged).toBe(true)
  })

  it('keeps the committed loader types what napi build generates', () => {
    // npm test's pretest has just run napi build, which rewrote native/binding.d.ts.
    const diff = spawnSync('git', ['diff', '--exit-code', '--stat', '--', 'native/binding.d.ts'], { cwd: ROOT, encoding: 'utf8' })
    expect(diff.stdout).toBe('')
    expect(diff.status).toBe(0)
  })
})

describe('the declaration files', () => {
  it('export every type they declare or import: whatever a signature names can be named', () => {
    const file = join(ROOT, 'dist', 'index.d.ts')
    const source = ts.createSourceFile(file, readFileSync(file, 'utf8'), ts.ScriptTarget.Latest, true)
    const named = new Set<string>()
    const exported = new Set<string>()
    for (const statement of source.statements) {
      if (ts.isImportDeclaration(statement)) {
        const bindings = statement.importClause?.namedBindings
        if (bindings !== undefined && ts.isNamedImports(bindings)) for (const e of bindings.elements) named.add(e.name.text)
      } else if (ts.isExportDeclaration(statement)) {
        const clause = statement.exportClause
        if (clause !== undefined && ts.isNamedExports(clause)) for (const e of clause.elements) exported.add(e.name.text)
      } else if (ts.isVariableStatement(statement)) {
        for (const d of statement.declarationList.declarations) if (ts.isIdentifier(d.name)) named.add(d.name.text)
      } else if ('name' in statement && statement.name !== undefined && ts.isIdentifier(statement.name as ts.Node)) {
        named.add((statement.name as ts.Identifier).text)
      }
    }
    expect(named.size).toBeGreaterThan(50)
    expect([...named].filter((name) => !exported.has(name))).toEqual([])
    // The addon's names as the Rust side has them stay out of sight.
    expect([...exported].filter((name) => /Js$|Input$/.test(name) && name !== 'AffinityInput' && name !== 'BuildPostInput')).toEqual([])
  })

  it('compile for a CommonJS consumer without esModuleInterop, libraries checked too', () => {
    const project = mkdtempSync(join(tmpdir(), 'xdb-cjs-types-'))
    try {
      writeFileSync(
        join(project, 'consumer.ts'),
        [
          `import { BuildHost, buildDomain, XenDomainBuildError, type BuiltDomain } from '${join(ROOT, 'dist', 'index')}'`,
          'export async function f(host: BuildHost): Promise<BuiltDomain | XenDomainBuildError> {',
          "  return buildDomain(host, 1, { type: 'pv', staticMaxKib: 1024, targetKib: 1024, vcpus: 1 }, { image: 'k', xenguest: { run: async () => ({ storeMfn: 1n, consoleMfn: 2n }), supports: async () => false } })",
          '}',
          '',
        ].join('\n'),
      )
      const tsc = join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc')
      const run = spawnSync(
        process.execPath,
        [
          tsc,
          '--noEmit',
          '--strict',
          '--module',
          'commonjs',
          '--moduleResolution',
          'node10',
          '--target',
          'es2022',
          '--esModuleInterop',
          'false',
          '--skipLibCheck',
          'false',
          '--lib',
          'es2022,esnext.disposable',
          '--typeRoots',
          join(ROOT, 'node_modules', '@types'),
          '--types',
          'node',
          join(project, 'consumer.ts'),
        ],
        { encoding: 'utf8' },
      )
      expect(run.stdout + run.stderr).toBe('')
      expect(run.status).toBe(0)
    } finally {
      rmSync(project, { recursive: true, force: true })
    }
  })
})
