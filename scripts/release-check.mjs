#!/usr/bin/env node
// @ts-check
// `npm run release:check`: rehearses publishing what `npm run release:pack`
// packed, without publishing anything.
//   1. `npm publish --dry-run` of every tarball (the main package and the four
//      platform packages): npm's own checks of name, version and manifest.
//   2. In an empty project, installs the main tarball and this machine's
//      platform tarball as a user would, but from the files: --offline (the
//      registry is never asked), --ignore-scripts (nothing may need to run at
//      install). Then builds a domain on a simulated host through `require`,
//      through `import`, and through the `xen-domain-build` command, and checks
//      the addon that ran came from the platform package, and that
//      XenDomainBuildError is one class for import and require. The domain
//      builder: defaultXenguestPath() is the platform package's
//      xen-domain-builder (unless this host has its own xenguest), and it
//      answers `-supports mem_pnode` true when SpawnedXenguest asks.
//      The types check for an ESM and a CommonJS TypeScript user (when the
//      checkout's TypeScript is installed).
//   3. Installs the main tarball alone: loading fails with NATIVE_ADDON_MISSING
//      naming the platform package and the build-from-source step, and there
//      is no builder of ours (the main package carries none).
import { spawnSync } from 'node:child_process'
import { existsSync, mkdtempSync, readFileSync, readdirSync, realpathSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { tmpdir } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..')
const TARBALLS = join(ROOT, 'target', 'npm', 'tarballs')
const platform = createRequire(import.meta.url)('./platform.cjs')
// A XenServer or XCP-ng host's own xenguest, which defaultXenguestPath() prefers to ours.
const HOST_XENGUEST = '/usr/libexec/xen/bin/xenguest'

function check(condition, message) {
  if (!condition) {
    console.error(`release-check: FAILED: ${message}`)
    process.exit(1)
  }
}

function run(command, args, cwd, input) {
  const result = spawnSync(command, args, { cwd, input, encoding: 'utf8', maxBuffer: 64 << 20 })
  check(result.status === 0, `${command} ${args.join(' ')} (in ${cwd}): exit ${result.status}\n${result.stdout}\n${result.stderr}`)
  return result
}

const tarballs = readdirSync(TARBALLS).filter((f) => f.endsWith('.tgz'))
const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8'))
const mainTgz = tarballs.find((f) => f === `${pkg.name}-${pkg.version}.tgz`)
const hostTgz = tarballs.find((f) => f === `${platform.PLATFORM_SCOPE.slice(1)}-${platform.platformArchAbi()}-${pkg.version}.tgz`)
check(
  mainTgz && hostTgz && tarballs.length === 1 + pkg.napi.targets.length,
  `tarballs in ${TARBALLS}: ${tarballs.join(', ')} (run npm run release:pack)`,
)

// 1. npm's dry run of each publish.
for (const tgz of tarballs) {
  run('npm', ['publish', '--dry-run', join(TARBALLS, tgz)], ROOT)
  console.log(`release-check: npm publish --dry-run ${tgz}: ok (${(statSync(join(TARBALLS, tgz)).size / 1024).toFixed(1)} KiB)`)
}

// 2. An install from the tarballs, as a user's project.
const VM = { type: 'hvm', staticMaxKib: 2 << 20, targetKib: 1 << 20, videoMib: 8, vcpus: 2 }
const BUILD = `
  const sim = m.simulateHost({ preset: 'qemu-2-node' })
  const xen = sim.hypervisor()
  const host = await m.BuildHost.create(xen, { numaPolicy: 'best_effort', accounting: 'in-flight' })
  const domid = await xen.createDomain({ kind: 'hvm', maxVcpus: 2 })
  await host.xenstore.write(m.domainPath(domid) + '/vm', '/vm/00000000-0000-4000-8000-000000000001')
  const built = await m.buildDomain(host, domid, ${JSON.stringify(VM)}, { image: '/usr/lib/xen/boot/hvmloader', xenguest: new m.SimulatedXenguest(sim) })
  let invalid
  try { new m.NumaPlanner({ distances: [[10]], cpuToNode: [], nodeCores: [] }) } catch (e) { invalid = e }
  const addon = process.report.getReport().sharedObjects.find((s) => s.endsWith('.node'))
  console.log(JSON.stringify({ domid, plan: built.placement.plan.nodes, claim: built.placement.claim, error: invalid instanceof m.XenDomainBuildError && invalid.code, addon }))`

/** What npm put in node_modules: the packages, by name. */
function installed(dir) {
  const lock = JSON.parse(readFileSync(join(dir, 'node_modules', '.package-lock.json'), 'utf8'))
  return Object.keys(lock.packages)
    .map((p) => p.replace(/^node_modules\//, ''))
    .join(', ')
}

const project = mkdtempSync(join(tmpdir(), 'xdb-consumer-'))
try {
  writeFileSync(join(project, 'package.json'), JSON.stringify({ name: 'consumer', version: '1.0.0', private: true }))
  const started = Date.now()
  run(
    'npm',
    ['install', '--offline', '--ignore-scripts', '--no-audit', '--no-fund', join(TARBALLS, mainTgz), join(TARBALLS, hostTgz)],
    project,
  )
  const seconds = (Date.now() - started) / 1000
  console.log(
    `release-check: npm install --offline --ignore-scripts of ${mainTgz} and ${hostTgz}: ${seconds.toFixed(1)} s, ${installed(project)}`,
  )

  const expectAddon = join('node_modules', platform.PLATFORM_SCOPE, platform.platformArchAbi(), platform.addonFileName())
  const results = {
    require: run('node', ['-e', `(async () => { const m = require('xen-domain-build'); ${BUILD} })()`], project).stdout,
    import: run('node', ['--input-type=module', '-e', `import * as m from 'xen-domain-build'; ${BUILD}`], project).stdout,
  }
  for (const [how, stdout] of Object.entries(results)) {
    const out = JSON.parse(stdout)
    check(out.domid === 1 && out.plan?.length > 0 && out.claim, `${how}: build on the simulated host: ${stdout}`)
    check(out.error === 'INVALID_ARGUMENT', `${how}: a bad planner input is a XenDomainBuildError INVALID_ARGUMENT: ${stdout}`)
    check(out.addon?.endsWith(expectAddon), `${how}: the addon came from ${out.addon}, not ${expectAddon}`)
    console.log(`release-check: ${how}: built domain ${out.domid} (plan [${out.plan}], ${out.claim} claim) with ${expectAddon}`)
  }
  const same = run(
    'node',
    [
      '--input-type=module',
      '-e',
      `
    import { createRequire } from 'node:module'
    import * as esm from 'xen-domain-build'
    const cjs = createRequire(import.meta.url)('xen-domain-build')
    let thrown
    try { new esm.NumaPlanner({ distances: [[10]], cpuToNode: [], nodeCores: [] }) } catch (e) { thrown = e }
    console.log(esm.XenDomainBuildError === cjs.XenDomainBuildError && thrown instanceof cjs.XenDomainBuildError)`,
    ],
    project,
  ).stdout.trim()
  check(same === 'true', 'import and require give one XenDomainBuildError class')
  console.log('release-check: import and require share one module instance (instanceof holds across them)')
  const cli = run(
    join(project, 'node_modules', '.bin', 'xen-domain-build'),
    ['build', '--sim', 'qemu-2-node', '--config', '-', '--json'],
    project,
    JSON.stringify({ ...VM, image: '/usr/lib/xen/boot/hvmloader' }),
  )
  check(JSON.parse(cli.stdout).domid === 1, `the xen-domain-build command: ${cli.stdout}`)
  console.log('release-check: the xen-domain-build command builds on the simulated host')

  // The domain builder: found in the platform package, and it runs from there.
  const builder = join(realpathSync(project), 'node_modules', platform.PLATFORM_SCOPE, platform.platformArchAbi(), platform.BUILDER_NAME)
  const asked = JSON.parse(
    run(
      'node',
      [
        '-e',
        `(async () => {
    const m = require('xen-domain-build')
    const ours = new m.SpawnedXenguest(${JSON.stringify(builder)})
    console.log(JSON.stringify({ path: m.defaultXenguestPath(), memPnode: await ours.supports('mem_pnode'), nothing: await ours.supports('nothing') }))
  })()`,
      ],
      project,
    ).stdout,
  )
  const wanted = existsSync(HOST_XENGUEST) ? HOST_XENGUEST : builder
  check(asked.path === wanted, `defaultXenguestPath() is ${asked.path}, expected ${wanted}`)
  check(
    (statSync(builder).mode & 0o111) !== 0 && asked.memPnode === true && asked.nothing === false,
    `${builder}: -supports mem_pnode ${asked.memPnode}, -supports nothing ${asked.nothing}`,
  )
  console.log(
    `release-check: defaultXenguestPath() is ${asked.path}; the installed builder answers -supports mem_pnode true, -supports nothing false`,
  )

  // The types, as a TypeScript user of each module kind resolves them (node16
  // resolution follows the exports' import and require conditions). The
  // lines marked to expect an error fail if the types were `any`.
  const tsc = join(ROOT, 'node_modules', '.bin', 'tsc')
  if (existsSync(tsc)) {
    writeFileSync(
      join(project, 'esm.mts'),
      `import { XenDomainBuildError, NumaPlanner, type NumaPlan } from 'xen-domain-build'
export const plan: NumaPlan | null = new NumaPlanner({ distances: [[10]], cpuToNode: [0], nodeCores: [1] }).plan({ memoryBytes: 1, vcpus: 1, cores: 0 }, [1])
export const code: string = new XenDomainBuildError('INVALID_ARGUMENT', 'x').code
// @ts-expect-error: not an error code
new XenDomainBuildError('NOT_A_CODE', 'x')
`,
    )
    writeFileSync(
      join(project, 'cjs.cts'),
      `import m = require('xen-domain-build')
const plan: m.NumaPlan | null = new m.NumaPlanner({ distances: [[10]], cpuToNode: [0], nodeCores: [1] }).plan({ memoryBytes: 1, vcpus: 1, cores: 0 }, [1])
// @ts-expect-error: not an error code
new m.XenDomainBuildError('NOT_A_CODE', 'x')
export = plan
`,
    )
    run(
      tsc,
      [
        '--noEmit',
        '--strict',
        '--module',
        'node16',
        '--moduleResolution',
        'node16',
        '--target',
        'es2022',
        '--typeRoots',
        join(ROOT, 'node_modules', '@types'),
        '--types',
        'node',
        'esm.mts',
        'cjs.cts',
      ],
      project,
    )
    console.log('release-check: the types resolve and check for import (esm.mts) and require (cjs.cts)')
  }
} finally {
  rmSync(project, { recursive: true, force: true })
}

// 3. The main package without its platform package.
const bare = mkdtempSync(join(tmpdir(), 'xdb-bare-'))
try {
  writeFileSync(join(bare, 'package.json'), JSON.stringify({ name: 'bare', version: '1.0.0', private: true }))
  run('npm', ['install', '--offline', '--ignore-scripts', '--omit=optional', '--no-audit', '--no-fund', join(TARBALLS, mainTgz)], bare)
  const out = run(
    'node',
    [
      '-e',
      `const m = require('xen-domain-build')
    try { new m.NumaPlanner({ distances: [[10]], cpuToNode: [0], nodeCores: [1] }) } catch (e) { console.log(JSON.stringify({ code: e.code, message: e.message, xenguest: m.defaultXenguestPath() })) }`,
    ],
    bare,
  ).stdout
  const { code, message, xenguest } = JSON.parse(out)
  check(
    code === 'NATIVE_ADDON_MISSING' && message.includes(platform.addonPackageName()) && message.includes('npm run build:native'),
    `without the platform package: ${out}`,
  )
  check(
    xenguest === (existsSync(HOST_XENGUEST) ? HOST_XENGUEST : null),
    `without the platform package, defaultXenguestPath() is ${xenguest}`,
  )
  console.log(
    `release-check: without ${platform.addonPackageName()}: NATIVE_ADDON_MISSING, naming it and npm run build:native; defaultXenguestPath() ${xenguest}`,
  )
} finally {
  rmSync(bare, { recursive: true, force: true })
}
