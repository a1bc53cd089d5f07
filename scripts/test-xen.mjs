#!/usr/bin/env node
// @ts-check
// `npm run test:xen`: the hypercall layer, build_pre, and xenstore (Debian's
// xenstored, started in dom0) against a real Xen, on each release in
// RELEASES: Debian 12's Xen 4.17 and Debian 13's Xen 4.20, one after the
// other, with the same suites (XEN_TEST_RELEASES=4.20 picks some).
// Everything comes from Debian's packages: QEMU on the host, and Xen, a
// dom0 kernel, Xen's tools and libraries and busybox fetched with
// `apt-get download` into .xen-cache/<release>/ (reused when present;
// Debian 13's through a private apt state, scripts/debian-apt.mjs). For
// each release it builds a dom0 initramfs, boots Xen under QEMU (TCG) with
// 2 NUMA nodes of 3 GiB (distance 21) and 4 CPUs, runs the tests inside dom0 from a
// 9p share, and fails unless every test passed. The guest resets itself at
// the end; QEMU is killed on its time limit (XEN_TEST_TIME_LIMIT_MS, per
// release), and a run that did not finish says where it was and why. Run
// it alone: it is slow when the machine is busy.
import { execFileSync, spawn, spawnSync } from 'node:child_process'
import { chmodSync, copyFileSync, cpSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs'
import os from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { download, trixieApt } from './debian-apt.mjs'
import { diagnose, tail } from './xen-test/diagnose.mjs'

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..')
const CACHE = join(ROOT, '.xen-cache')
const TIME_LIMIT_MS = Number(process.env.XEN_TEST_TIME_LIMIT_MS ?? 25 * 60_000)

/** The packages of one Xen release's dom0, by release (`4.N` in the names). */
const xenPackages = (xen) => [
  `xen-hypervisor-${xen}-amd64`,
  `xen-utils-${xen}`,
  'xen-utils-common',
  'xenstore-utils',
  'libxencall1',
  'libxendevicemodel1',
  'libxenevtchn1',
  'libxenforeignmemory1',
  'libxengnttab1',
  'libxenhypfs1',
  `libxenmisc${xen}`,
  'libxenstore4',
  'libxentoolcore1',
  'libxentoollog1',
  'libyajl2',
  'busybox-static',
]
/**
 * The releases booted, in order. `apt`: apt-get's options (the machine's own
 * lists for Debian 12, a private state for Debian 13). `libc`: dom0 needs
 * the distribution's glibc (trixie's tools need 2.38; the host's programs,
 * built on bookworm, run on it), unpacked apart so that the host's ldd is
 * not handed it.
 */
const RELEASES = [
  { xen: '4.17', distribution: 'Debian 12 (bookworm)', apt: () => [], packages: xenPackages('4.17'), libc: false },
  {
    xen: '4.20',
    distribution: 'Debian 13 (trixie)',
    apt: () => trixieApt(join(ROOT, 'target', 'trixie-apt')),
    packages: [...xenPackages('4.20'), 'libc6'],
    libc: true,
  },
]
const SELECTED = (process.env.XEN_TEST_RELEASES ?? RELEASES.map((r) => r.xen).join(',')).split(',')
/** What run.sh runs in dom0, in order; each writes results/<suite>.{txt,status,seconds}. */
const ALL_SUITES = ['rust', 'smoke', 'xenstore', 'builder', 'xl', 'mass', 'suspend', 'build']
// XEN_TEST_SUITES=suspend,build runs some (for working on one; CI runs all).
const SUITES = (process.env.XEN_TEST_SUITES ?? ALL_SUITES.join(',')).split(',')
const unknownSuites = SUITES.filter((s) => !ALL_SUITES.includes(s))
if (unknownSuites.length > 0) throw new Error(`XEN_TEST_SUITES: ${unknownSuites.join(', ')} unknown (known: ${ALL_SUITES.join(', ')})`)
/** dom0's modules, in load order; those a kernel has built in (trixie's virtio) are skipped. */
const MODULES = [
  'xen-privcmd',
  'xenfs',
  'xen-evtchn',
  'xen-gntdev',
  'xen-gntalloc',
  'virtio_ring',
  'virtio',
  'virtio_pci_legacy_dev',
  'virtio_pci_modern_dev',
  'virtio_pci',
  '9pnet',
  'netfs',
  'fscache',
  '9pnet_virtio',
  '9p',
]
/** Modules a kernel may lack altogether: 6.12 folded fscache into netfs. */
const OPTIONAL_MODULES = ['fscache']

/** QEMU's arguments for one boot. */
function qemuArgs(files) {
  // guest_loglvl=all: what an HVM guest writes to port 0xE9 (hvmloader's
  // banner) reaches Xen's console ring, where the builder's test looks.
  return [
    '-machine',
    'q35',
    '-accel',
    'tcg',
    '-cpu',
    'max,-smap',
    '-smp',
    '4',
    '-m',
    '6144',
    '-object',
    'memory-backend-ram,id=m0,size=3G',
    '-object',
    'memory-backend-ram,id=m1,size=3G',
    '-numa',
    'node,nodeid=0,cpus=0-1,memdev=m0',
    '-numa',
    'node,nodeid=1,cpus=2-3,memdev=m1',
    '-numa',
    'dist,src=0,dst=1,val=21',
    '-kernel',
    files.xen,
    '-append',
    'console=com1 com1=115200,8n1 dom0_mem=512M,max:512M dom0_max_vcpus=2 guest_loglvl=all',
    '-initrd',
    `${files.kernel} console=hvc0 earlyprintk=xen loglevel=4,${files.initrd}`,
    '-virtfs',
    `local,path=${files.share},mount_tag=host0,security_model=none`,
    '-display',
    'none',
    '-serial',
    'stdio',
    '-monitor',
    'none',
    '-no-reboot',
  ]
}

const phases = []
async function phase(name, work) {
  const started = Date.now()
  process.stderr.write(`test:xen: ${name}...\n`)
  const result = await work()
  const seconds = (Date.now() - started) / 1000
  phases.push([name, seconds])
  process.stderr.write(`test:xen: ${name} took ${seconds.toFixed(1)} s\n`)
  return result
}

function run(command, args, options = {}) {
  const result = spawnSync(command, args, { stdio: ['ignore', 'inherit', 'inherit'], ...options })
  if (result.status !== 0) throw new Error(`${command} ${args.join(' ')} failed (${result.status ?? result.signal})`)
  return result
}

function output(command, args, options = {}) {
  return execFileSync(command, args, { encoding: 'utf8', ...options }).trim()
}

/**
 * Every library a binary needs, by ldd, as paths. ldd's status is not
 * looked at: for a trixie tool the host's glibc is too old (it says so, and
 * still lists the libraries).
 */
function libraries(binary, env = process.env) {
  const listed = spawnSync('ldd', [binary], { env, encoding: 'utf8' }).stdout ?? ''
  return listed.split('\n').flatMap((line) => {
    const m = /=>\s+(\S+)\s+\(/.exec(line) ?? /^\s*(\/\S+)\s+\(/.exec(line)
    return m ? [m[1]] : []
  })
}

/**
 * The ELF kernel inside a bzImage: its payload is one compressed stream
 * (Debian's is xz; gzip and zstd are looked for too), found by its magic.
 */
function uncompressedKernel(bzImage) {
  const image = readFileSync(bzImage)
  const formats = [
    { magic: Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]), tool: ['xz', '-dc', '--single-stream'] },
    { magic: Buffer.from([0x28, 0xb5, 0x2f, 0xfd]), tool: ['zstd', '-dc'] },
    { magic: Buffer.from([0x1f, 0x8b, 0x08]), tool: ['gzip', '-dc'] },
  ]
  for (const { magic, tool } of formats) {
    for (let at = image.indexOf(magic); at >= 0; at = image.indexOf(magic, at + 1)) {
      const result = spawnSync(tool[0], tool.slice(1), { input: image.subarray(at), maxBuffer: 512 * 2 ** 20 })
      // Trailing bytes after the stream make the tools complain; what matters is an ELF came out.
      if (result.stdout?.length > 0 && result.stdout.subarray(0, 4).equals(Buffer.from([0x7f, 0x45, 0x4c, 0x46]))) return result.stdout
    }
  }
  throw new Error(`no compressed ELF kernel found in ${bzImage}`)
}

function copyInto(root, hostPath) {
  const target = join(root, hostPath)
  mkdirSync(dirname(target), { recursive: true })
  copyFileSync(hostPath, target)
}

/** The kernel package linux-image-amd64 names in `apt`'s lists. */
function kernelPackageOf(apt) {
  const lookup = () => {
    try {
      return output('apt-cache', [...apt, 'depends', 'linux-image-amd64'], { stdio: ['ignore', 'pipe', 'ignore'] })
        .split('\n')
        .map((l) => /Depends: (linux-image-\S+)/.exec(l)?.[1])
        .find(Boolean)
    } catch {
      return undefined
    }
  }
  let kernel = lookup()
  if (!kernel && apt.length === 0) {
    // A machine whose package lists were never fetched.
    run('apt-get', ['update', '-qq'])
    kernel = lookup()
  }
  if (!kernel) throw new Error('no linux-image package behind linux-image-amd64 in the package lists')
  return kernel
}

/** Where an unpacked kernel package keeps its modules: lib/modules (bookworm) or usr/lib/modules (trixie). */
function moduleDirOf(root) {
  for (const dir of [join(root, 'usr', 'lib', 'modules'), join(root, 'lib', 'modules')]) if (existsSync(dir)) return dir
  throw new Error(`no kernel modules in ${root}`)
}

/** The deb files' package versions, as `name version` lines: what a run used. */
function packageVersions(debs) {
  return debs.map((f) => f.replace(/\.deb$/, '').split('_')).map(([name, version]) => `${name} ${decodeURIComponent(version)}`)
}

const cpuCount = os.availableParallelism?.() ?? os.cpus().length
await phase('host packages', () => run('bash', [join(ROOT, 'scripts', 'system-packages.sh'), 'xen']))

/** The executable of one cargo integration test, built without running it. */
function testExecutable(crate, test) {
  const messages = output('cargo', ['test', '-p', crate, '--test', test, '--no-run', '--message-format=json'], {
    cwd: ROOT,
    stdio: ['ignore', 'pipe', 'inherit'],
  })
  const executable = messages
    .split('\n')
    .map((l) => JSON.parse(l))
    .find((m) => m.reason === 'compiler-artifact' && m.executable && m.target?.name === test)?.executable
  if (!executable) throw new Error(`cargo built no ${crate} ${test} test binary`)
  return executable
}

const tests = await phase('build the tests', () => {
  // npm run build also builds the domain builder into native/.
  run('npm', ['run', 'build'], { cwd: ROOT, stdio: ['ignore', 'ignore', 'inherit'] })
  return { xenctrl: testExecutable('xenctrl', 'real_xen'), builder: testExecutable('builder', 'real_xen') }
})

/** Downloads, unpacks, builds dom0 and its share, boots, and reads the results of one release. */
async function testRelease(release) {
  const { xen } = release
  const cache = join(CACHE, xen)
  const DEBS = join(cache, 'debs')
  const UNPACKED = join(cache, 'root')
  const LIBC = join(cache, 'libc')
  const INITRAMFS = join(cache, 'initramfs')
  const SHARE = join(cache, 'share')
  const at = (name) => `${xen}: ${name}`

  const { kernelPackage, debs } = await phase(at('download'), () => {
    const apt = release.apt()
    const kernelPackage = kernelPackageOf(apt)
    const debs = download(apt, DEBS, [...release.packages, kernelPackage])
    return { kernelPackage, debs }
  })
  process.stderr.write(
    `test:xen: ${xen}: ${release.distribution}'s packages:\n${packageVersions(debs)
      .map((l) => `  ${l}\n`)
      .join('')}`,
  )

  const kernelVersion = await phase(at('unpack'), () => {
    const stamp = join(UNPACKED, '.unpacked')
    if (!existsSync(stamp) || readFileSync(stamp, 'utf8') !== debs.join('\n')) {
      rmSync(UNPACKED, { recursive: true, force: true })
      rmSync(LIBC, { recursive: true, force: true })
      mkdirSync(UNPACKED, { recursive: true })
      for (const deb of debs) run('dpkg-deb', ['-x', join(DEBS, deb), deb.startsWith('libc6_') ? LIBC : UNPACKED])
      writeFileSync(stamp, debs.join('\n'))
    }
    const version = readdirSync(moduleDirOf(UNPACKED))[0]
    if (!version || !kernelPackage.includes(version)) throw new Error(`unexpected kernel modules in ${UNPACKED}`)
    return version
  })

  const files = await phase(at('initramfs and share'), () => {
    // dom0's initramfs: busybox, the modules, Xen's libraries, and the host's
    // libraries that the test binary and node need.
    rmSync(INITRAMFS, { recursive: true, force: true })
    for (const dir of ['bin', 'sbin', 'etc', 'lib64', 'usr/lib/x86_64-linux-gnu']) mkdirSync(join(INITRAMFS, dir), { recursive: true })
    // bin/busybox in bookworm's package, usr/bin/busybox in trixie's (merged /usr).
    const busybox = [join(UNPACKED, 'bin', 'busybox'), join(UNPACKED, 'usr', 'bin', 'busybox')].find((p) => existsSync(p))
    copyFileSync(busybox, join(INITRAMFS, 'bin', 'busybox'))
    copyFileSync(join(ROOT, 'scripts', 'xen-test', 'init'), join(INITRAMFS, 'init'))
    chmodSync(join(INITRAMFS, 'init'), 0o755)
    // The modules, uncompressed (busybox's insmod reads plain .ko), listed
    // in load order for init.
    const moduleRoot = join(moduleDirOf(UNPACKED), kernelVersion)
    const allModules = output('find', [moduleRoot, '-name', '*.ko', '-o', '-name', '*.ko.xz']).split('\n')
    const builtin = existsSync(join(moduleRoot, 'modules.builtin')) ? readFileSync(join(moduleRoot, 'modules.builtin'), 'utf8') : ''
    // Each module after what it depends on (modinfo's `depends`): 6.12's
    // 9pnet needs netfs, 6.1's does not.
    const order = []
    const add = (name, wanted = []) => {
      if (wanted.includes(name)) throw new Error(`modules depend on each other in a circle: ${[...wanted, name].join(' -> ')}`)
      // modinfo names modules with _ where their files may have - (xen-privcmd).
      const base = (p) =>
        p
          .split('/')
          .pop()
          .replace(/\.ko(\.xz)?$/, '')
          .replace(/-/g, '_')
      const found = allModules.find((p) => base(p) === name.replace(/-/g, '_'))
      if (!found) {
        if (new RegExp(`/${name}\\.ko$`, 'm').test(builtin) || OPTIONAL_MODULES.includes(name)) return
        throw new Error(`module ${name} not in ${kernelPackage}`)
      }
      const relative = found.slice(moduleRoot.length + 1).replace(/\.xz$/, '')
      if (order.includes(`${kernelVersion}/${relative}`)) return
      const target = join(INITRAMFS, 'lib', 'modules', kernelVersion, relative)
      mkdirSync(dirname(target), { recursive: true })
      if (found.endsWith('.xz')) writeFileSync(target, execFileSync('xz', ['-dc', found], { maxBuffer: 1 << 28 }))
      else copyFileSync(found, target)
      const depends = output('modinfo', ['-F', 'depends', target]).split(',').filter(Boolean)
      for (const dependency of depends) add(dependency, [...wanted, name])
      order.push(`${kernelVersion}/${relative}`)
    }
    for (const name of MODULES) add(name)
    writeFileSync(join(INITRAMFS, 'lib', 'modules', 'load-order'), `${order.join('\n')}\n`)
    cpSync(join(UNPACKED, 'usr', 'lib', 'x86_64-linux-gnu'), join(INITRAMFS, 'usr', 'lib', 'x86_64-linux-gnu'), {
      recursive: true,
      verbatimSymlinks: true,
    })
    // xl and the daemons (the reference `xl create -p`) run off the share, with
    // Xen's libraries from the packages and the host's for the rest. xenstored,
    // xen-init-dom0 and the xenstore-* clients are in the initramfs too: the
    // xenstore suite starts xenstored itself (xenstored.sh). /usr/lib/xen is
    // the release's own directory, under one name for the scripts.
    const xenLib = join(UNPACKED, 'usr', 'lib', `xen-${xen}`)
    const xenTools = ['xl', 'xenstored', 'xenconsoled', 'xen-init-dom0'].map((t) => join(xenLib, 'bin', t))
    mkdirSync(join(INITRAMFS, 'usr', 'lib', 'xen', 'bin'), { recursive: true })
    for (const tool of ['xenstored', 'xen-init-dom0'])
      copyFileSync(join(xenLib, 'bin', tool), join(INITRAMFS, 'usr', 'lib', 'xen', 'bin', tool))
    mkdirSync(join(INITRAMFS, 'usr', 'bin'), { recursive: true })
    for (const name of readdirSync(join(UNPACKED, 'usr', 'bin')).filter((n) => n.startsWith('xenstore'))) {
      cpSync(join(UNPACKED, 'usr', 'bin', name), join(INITRAMFS, 'usr', 'bin', name), { verbatimSymlinks: true })
    }
    const env = { ...process.env, LD_LIBRARY_PATH: join(UNPACKED, 'usr', 'lib', 'x86_64-linux-gnu') }
    const hostLibraries = [
      process.execPath,
      tests.xenctrl,
      tests.builder,
      join(ROOT, 'native', 'xen-domain-builder'),
      ...xenTools,
      join(UNPACKED, 'usr', 'bin', 'xenstore'),
    ]
      .flatMap((binary) => libraries(binary, env))
      .filter((lib) => !lib.startsWith(UNPACKED))
    for (const lib of new Set(hostLibraries)) copyInto(INITRAMFS, lib)
    if (release.libc) {
      // The distribution's glibc over the host's, wherever ldd put the host's,
      // and its dynamic loader: one glibc in dom0.
      const libcDir = join(LIBC, 'usr', 'lib', 'x86_64-linux-gnu')
      for (const lib of readdirSync(libcDir)) {
        const from = join(libcDir, lib)
        if (!statSync(from).isFile()) continue
        for (const dir of ['usr/lib/x86_64-linux-gnu', 'lib/x86_64-linux-gnu']) {
          if (existsSync(join(INITRAMFS, dir))) copyFileSync(from, join(INITRAMFS, dir, lib))
        }
      }
      copyFileSync(join(libcDir, 'ld-linux-x86-64.so.2'), join(INITRAMFS, 'lib64', 'ld-linux-x86-64.so.2'))
    }
    const initrd = join(cache, 'initrd.gz')
    run('sh', ['-c', `cd "${INITRAMFS}" && find . | cpio -o -H newc --quiet | gzip -1 > "${initrd}"`])

    // The share: the tests, node, and the package as an installed dependency.
    rmSync(join(SHARE, 'results'), { recursive: true, force: true })
    rmSync(join(SHARE, 'node_modules'), { recursive: true, force: true })
    rmSync(join(SHARE, 'xen'), { recursive: true, force: true })
    mkdirSync(join(SHARE, 'results'), { recursive: true })
    writeFileSync(join(SHARE, 'suites.txt'), `${SUITES.join('\n')}\n`)
    mkdirSync(join(SHARE, 'node'), { recursive: true })
    const node = join(SHARE, 'node', 'node')
    if (!existsSync(node) || statSync(node).size !== statSync(process.execPath).size) copyFileSync(process.execPath, node)
    copyFileSync(tests.xenctrl, join(SHARE, 'real_xen'))
    copyFileSync(tests.builder, join(SHARE, 'builder_real_xen'))
    copyFileSync(join(ROOT, 'native', 'xen-domain-builder'), join(SHARE, 'xen-domain-builder'))
    cpSync(xenLib, join(SHARE, 'xen'), { recursive: true, verbatimSymlinks: true })
    copyFileSync(join(ROOT, '__test__', 'xen', 'xl-create.sh'), join(SHARE, 'xl-create.sh'))

    // The PV guest both builders build: dom0's kernel, and an initramfs whose
    // init prints a marker and powers off; given `xdb-counter` on its command
    // line, it prints a counter every second instead (the suspend suite's).
    const guest = join(cache, 'guest-initramfs')
    rmSync(guest, { recursive: true, force: true })
    mkdirSync(join(guest, 'bin'), { recursive: true })
    copyFileSync(busybox, join(guest, 'bin', 'busybox'))
    writeFileSync(
      join(guest, 'init'),
      '#!/bin/busybox sh\n/bin/busybox mkdir -p /proc\n/bin/busybox mount -t proc proc /proc\n' +
        'if /bin/busybox grep -q xdb-counter /proc/cmdline; then\n' +
        '  echo guest-counter-start\n  i=0\n  while true; do echo "guest-counter: $i"; i=$((i + 1)); /bin/busybox sleep 1; done\n' +
        'fi\n' +
        'echo "guest-marker: PV guest up, $(/bin/busybox cat /proc/meminfo | /bin/busybox head -n 1)"\n/bin/busybox poweroff -f\n',
    )
    chmodSync(join(guest, 'init'), 0o755)
    mkdirSync(join(SHARE, 'guest'), { recursive: true })
    run('sh', ['-c', `cd "${guest}" && find . | cpio -o -H newc --quiet | gzip -1 > "${join(SHARE, 'guest', 'initrd.gz')}"`])
    copyFileSync(join(UNPACKED, 'boot', `vmlinuz-${kernelVersion}`), join(SHARE, 'guest', 'vmlinuz'))
    // The same kernel uncompressed (its ELF image, with the Xen notes), for the
    // mass start: decompressing a bzImage under TCG takes seconds per build,
    // which would hide everything else a build does.
    writeFileSync(join(SHARE, 'guest', 'vmlinux'), uncompressedKernel(join(UNPACKED, 'boot', `vmlinuz-${kernelVersion}`)))
    copyFileSync(join(ROOT, '__test__', 'xen', 'smoke.mjs'), join(SHARE, 'smoke.mjs'))
    copyFileSync(join(ROOT, '__test__', 'xen', 'xenstore.mjs'), join(SHARE, 'xenstore.mjs'))
    copyFileSync(join(ROOT, '__test__', 'xen', 'build.mjs'), join(SHARE, 'build.mjs'))
    copyFileSync(join(ROOT, '__test__', 'xen', 'mass-start.mjs'), join(SHARE, 'mass-start.mjs'))
    copyFileSync(join(ROOT, '__test__', 'xen', 'suspend.mjs'), join(SHARE, 'suspend.mjs'))
    copyFileSync(join(ROOT, '__test__', 'xen', 'xen-pages.mjs'), join(SHARE, 'xen-pages.mjs'))
    copyFileSync(join(ROOT, '__test__', 'xenstore-conformance.mjs'), join(SHARE, 'xenstore-conformance.mjs'))
    copyFileSync(join(ROOT, 'scripts', 'xen-test', 'xenstored.sh'), join(SHARE, 'xenstored.sh'))
    copyFileSync(join(ROOT, 'scripts', 'xen-test', 'run.sh'), join(SHARE, 'run.sh'))
    const pkg = join(SHARE, 'node_modules', 'xen-domain-build')
    // The package as published (package.json's files), plus the addon this checkout built, in native/.
    for (const part of ['package.json', 'dist', 'esm', 'native', 'scripts/platform.cjs'])
      cpSync(join(ROOT, part), join(pkg, part), { recursive: true })

    const xenElf = join(cache, 'xen.elf')
    run('sh', ['-c', `gunzip -c "${join(UNPACKED, 'boot', `xen-${xen}-amd64.gz`)}" > "${xenElf}"`])
    return { xen: xenElf, initrd, kernel: join(UNPACKED, 'boot', `vmlinuz-${kernelVersion}`), share: SHARE }
  })

  // For the harness's own debugging: everything up to the boot.
  if (process.env.XEN_TEST_PREPARE_ONLY)
    return {
      xen,
      failed: 0,
      finished: false,
      prepared: true,
      lines: [`=== Xen ${xen}: prepared, not booted (XEN_TEST_PREPARE_ONLY)`],
      seconds: 0,
    }
  const boot = await phase(
    at('boot Xen and run the tests in dom0'),
    () =>
      new Promise((resolve, reject) => {
        const started = Date.now()
        const qemu = spawn('qemu-system-x86_64', qemuArgs(files), { stdio: ['ignore', 'pipe', 'inherit'] })
        let log = ''
        let lastOutput = Date.now()
        let killed = false
        qemu.stdout.setEncoding('utf8').on('data', (chunk) => {
          log += chunk
          lastOutput = Date.now()
          for (const line of chunk.split('\n')) if (line.includes('xen-test:')) process.stderr.write(`  dom0 ${xen}: ${line.trim()}\n`)
        })
        const limit = setTimeout(() => {
          killed = true
          process.stderr.write(`test:xen: ${xen}: QEMU ran past ${TIME_LIMIT_MS / 1000} s: killing it\n`)
          qemu.kill('SIGKILL')
        }, TIME_LIMIT_MS)
        qemu.on('error', reject)
        qemu.on('close', (code, signal) => {
          clearTimeout(limit)
          writeFileSync(join(cache, 'serial.log'), log)
          resolve({ log, killed, code, signal, seconds: (Date.now() - started) / 1000, quietSeconds: (Date.now() - lastOutput) / 1000 })
        })
      }),
  )

  let failed = 0
  const lines = [`=== Xen ${xen}, ${release.distribution}`]
  for (const suite of SUITES) {
    const status = join(SHARE, 'results', `${suite}.status`)
    if (!existsSync(status)) {
      failed++
      lines.push(`${suite}: no result`)
      continue
    }
    const code = Number(readFileSync(status, 'utf8').trim())
    const seconds = readFileSync(join(SHARE, 'results', `${suite}.seconds`), 'utf8').trim()
    const text = readFileSync(join(SHARE, 'results', `${suite}.txt`), 'utf8')
    lines.push(`--- ${suite} (exit ${code}, ${seconds} s in dom0)\n${text.trimEnd()}`)
    if (code !== 0) failed++
  }
  const finished = boot.log.includes('xen-test: done') && !lines.some((l) => l.endsWith(': no result'))
  if (!finished) {
    // Why it did not finish: where it was, and whether it was still making progress.
    lines.push(diagnose(boot, TIME_LIMIT_MS / 1000))
    lines.push(`last lines of the console (all of it: ${join(cache, 'serial.log')}):`)
    lines.push(...tail(boot.log, 30).map((l) => `  | ${l}`))
  }
  return { xen, failed, finished, lines, seconds: boot.seconds, packages: packageVersions(debs) }
}

const unknown = SELECTED.filter((x) => !RELEASES.some((r) => r.xen === x))
if (unknown.length > 0)
  throw new Error(`XEN_TEST_RELEASES: ${unknown.join(', ')} unknown (known: ${RELEASES.map((r) => r.xen).join(', ')})`)
const results = []
for (const release of RELEASES.filter((r) => SELECTED.includes(r.xen))) {
  const result = await testRelease(release)
  console.log(result.lines.join('\n'))
  results.push(result)
}
console.log(`\ntest:xen phases: ${phases.map(([n, s]) => `${n} ${s.toFixed(1)} s`).join(', ')} (${cpuCount} CPUs)`)
for (const r of results) {
  if (r.prepared) continue
  console.log(
    `test:xen: Xen ${r.xen}: ${r.failed === 0 && r.finished ? 'every test passed' : `FAILED (${r.failed} suite(s)${r.finished ? '' : ', dom0 did not finish'})`} in ${r.seconds.toFixed(0)} s of QEMU`,
  )
}
const ok = results.every((r) => r.failed === 0 && r.finished)
console.log(ok ? 'test:xen: every test passed' : 'test:xen: FAILED')
process.exitCode = ok ? 0 : 1
