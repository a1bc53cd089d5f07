#!/usr/bin/env node
// `npm run test:xen`: the hypercall layer, build_pre, and xenstore (Debian's
// xenstored, started in dom0) against a real Xen.
// Everything comes from Debian's packages: QEMU on the host, and Xen 4.17, a
// dom0 kernel, Xen's tools and libraries and busybox fetched with
// `apt-get download` into .xen-cache/ (reused when present). It builds a
// dom0 initramfs, boots Xen under QEMU (TCG) with 2 NUMA nodes of 3 GiB
// (distance 21) and 4 CPUs, runs the tests inside dom0 from a 9p share, and fails unless
// every test passed. The guest resets itself at the end; QEMU is killed on
// its time limit. Run it alone: it is slow when the machine is busy.
import { execFileSync, spawn, spawnSync } from 'node:child_process'
import { chmodSync, copyFileSync, cpSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..')
const CACHE = join(ROOT, '.xen-cache')
const DEBS = join(CACHE, 'debs')
const UNPACKED = join(CACHE, 'root')
const INITRAMFS = join(CACHE, 'initramfs')
const SHARE = join(CACHE, 'share')
const TIME_LIMIT_MS = Number(process.env.XEN_TEST_TIME_LIMIT_MS ?? 25 * 60_000)

const XEN_PACKAGES = [
  'xen-hypervisor-4.17-amd64', 'xen-utils-4.17', 'xen-utils-common', 'xenstore-utils',
  'libxencall1', 'libxendevicemodel1', 'libxenevtchn1', 'libxenforeignmemory1', 'libxengnttab1',
  'libxenhypfs1', 'libxenmisc4.17', 'libxenstore4', 'libxentoolcore1', 'libxentoollog1', 'libyajl2',
  'busybox-static',
]
const MODULES = ['xen-privcmd', 'xenfs', 'xen-evtchn', 'xen-gntdev', 'xen-gntalloc', 'virtio_ring', 'virtio',
  'virtio_pci_legacy_dev', 'virtio_pci_modern_dev', 'virtio_pci', '9pnet', 'netfs', 'fscache', '9pnet_virtio', '9p']

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

/** Every library a binary needs, by ldd, as host paths. */
function libraries(binary, env = process.env) {
  return output('ldd', [binary], { env }).split('\n').flatMap((line) => {
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

await phase('host packages', () => run('bash', [join(ROOT, 'scripts', 'system-packages.sh'), 'xen']))

const kernelPackage = await phase('download', () => {
  mkdirSync(DEBS, { recursive: true })
  const kernelPackage = () => {
    try {
      return output('apt-cache', ['depends', 'linux-image-amd64'], { stdio: ['ignore', 'pipe', 'ignore'] }).split('\n')
        .map((l) => /Depends: (linux-image-\S+)/.exec(l)?.[1]).find(Boolean)
    } catch {
      return undefined
    }
  }
  let kernel = kernelPackage()
  if (!kernel) {
    // A machine whose package lists were never fetched.
    run('apt-get', ['update', '-qq'])
    kernel = kernelPackage()
  }
  if (!kernel) throw new Error('no linux-image package behind linux-image-amd64 in the package lists')
  const have = readdirSync(DEBS)
  const missing = [...XEN_PACKAGES, kernel].filter((p) => !have.some((f) => f.startsWith(`${p}_`)))
  if (missing.length > 0) run('apt-get', ['download', ...missing], { cwd: DEBS })
  return kernel
})

const kernelVersion = await phase('unpack', () => {
  const stamp = join(UNPACKED, '.unpacked')
  const debs = readdirSync(DEBS).filter((f) => f.endsWith('.deb')).sort()
  if (!existsSync(stamp) || readFileSync(stamp, 'utf8') !== debs.join('\n')) {
    rmSync(UNPACKED, { recursive: true, force: true })
    mkdirSync(UNPACKED, { recursive: true })
    for (const deb of debs) run('dpkg-deb', ['-x', join(DEBS, deb), UNPACKED])
    writeFileSync(stamp, debs.join('\n'))
  }
  const version = readdirSync(join(UNPACKED, 'lib', 'modules'))[0]
  if (!version || !kernelPackage.includes(version)) throw new Error(`unexpected kernel modules in ${UNPACKED}`)
  return version
})

/** The executable of one cargo integration test, built without running it. */
function testExecutable(crate, test) {
  const messages = output('cargo', ['test', '-p', crate, '--test', test, '--no-run', '--message-format=json'], { cwd: ROOT, stdio: ['ignore', 'pipe', 'inherit'] })
  const executable = messages.split('\n').map((l) => JSON.parse(l)).find((m) => m.reason === 'compiler-artifact' && m.executable && m.target?.name === test)?.executable
  if (!executable) throw new Error(`cargo built no ${crate} ${test} test binary`)
  return executable
}

const tests = await phase('build the tests', () => {
  // npm run build also builds the domain builder into native/.
  run('npm', ['run', 'build'], { cwd: ROOT, stdio: ['ignore', 'ignore', 'inherit'] })
  return { xenctrl: testExecutable('xenctrl', 'real_xen'), builder: testExecutable('builder', 'real_xen') }
})

const files = await phase('initramfs and share', () => {
  // dom0's initramfs: busybox, the modules, Xen's libraries, and the host's
  // libraries that the test binary and node need.
  rmSync(INITRAMFS, { recursive: true, force: true })
  for (const dir of ['bin', 'sbin', 'etc', 'lib64', 'usr/lib/x86_64-linux-gnu']) mkdirSync(join(INITRAMFS, dir), { recursive: true })
  copyFileSync(join(UNPACKED, 'bin', 'busybox'), join(INITRAMFS, 'bin', 'busybox'))
  copyFileSync(join(ROOT, 'scripts', 'xen-test', 'init'), join(INITRAMFS, 'init'))
  chmodSync(join(INITRAMFS, 'init'), 0o755)
  const moduleRoot = join(UNPACKED, 'lib', 'modules', kernelVersion)
  const allModules = output('find', [moduleRoot, '-name', '*.ko']).split('\n')
  for (const name of MODULES) {
    const found = allModules.find((p) => p.endsWith(`/${name}.ko`))
    if (!found) throw new Error(`module ${name} not in ${kernelPackage}`)
    const target = join(INITRAMFS, 'lib', 'modules', kernelVersion, found.slice(moduleRoot.length))
    mkdirSync(dirname(target), { recursive: true })
    copyFileSync(found, target)
  }
  cpSync(join(UNPACKED, 'usr', 'lib', 'x86_64-linux-gnu'), join(INITRAMFS, 'usr', 'lib', 'x86_64-linux-gnu'), { recursive: true, verbatimSymlinks: true })
  // xl and the daemons (the reference `xl create -p`) run off the share, with
  // Xen's libraries from the packages and the host's for the rest. xenstored,
  // xen-init-dom0 and the xenstore-* clients are in the initramfs too: the
  // xenstore suite starts xenstored itself (xenstored.sh).
  const xenBin = join(UNPACKED, 'usr', 'lib', 'xen-4.17', 'bin')
  const xenTools = ['xl', 'xenstored', 'xenconsoled', 'xen-init-dom0'].map((t) => join(xenBin, t))
  for (const tool of ['usr/lib/xen-4.17/bin/xenstored', 'usr/lib/xen-4.17/bin/xen-init-dom0']) {
    mkdirSync(dirname(join(INITRAMFS, tool)), { recursive: true })
    copyFileSync(join(UNPACKED, tool), join(INITRAMFS, tool))
  }
  mkdirSync(join(INITRAMFS, 'usr', 'bin'), { recursive: true })
  for (const name of readdirSync(join(UNPACKED, 'usr', 'bin')).filter((n) => n.startsWith('xenstore'))) {
    cpSync(join(UNPACKED, 'usr', 'bin', name), join(INITRAMFS, 'usr', 'bin', name), { verbatimSymlinks: true })
  }
  const env = { ...process.env, LD_LIBRARY_PATH: join(UNPACKED, 'usr', 'lib', 'x86_64-linux-gnu') }
  const hostLibraries = [process.execPath, tests.xenctrl, tests.builder, join(ROOT, 'native', 'xen-domain-builder'), ...xenTools, join(UNPACKED, 'usr', 'bin', 'xenstore')]
    .flatMap((binary) => libraries(binary, env))
    .filter((lib) => !lib.startsWith(UNPACKED))
  for (const lib of new Set(hostLibraries)) copyInto(INITRAMFS, lib)
  const initrd = join(CACHE, 'initrd.gz')
  run('sh', ['-c', `cd "${INITRAMFS}" && find . | cpio -o -H newc --quiet | gzip -1 > "${initrd}"`])

  // The share: the tests, node, and the package as an installed dependency.
  rmSync(join(SHARE, 'results'), { recursive: true, force: true })
  rmSync(join(SHARE, 'node_modules'), { recursive: true, force: true })
  mkdirSync(join(SHARE, 'results'), { recursive: true })
  mkdirSync(join(SHARE, 'node'), { recursive: true })
  const node = join(SHARE, 'node', 'node')
  if (!existsSync(node) || statSync(node).size !== statSync(process.execPath).size) copyFileSync(process.execPath, node)
  copyFileSync(tests.xenctrl, join(SHARE, 'real_xen'))
  copyFileSync(tests.builder, join(SHARE, 'builder_real_xen'))
  copyFileSync(join(ROOT, 'native', 'xen-domain-builder'), join(SHARE, 'xen-domain-builder'))
  cpSync(join(UNPACKED, 'usr', 'lib', 'xen-4.17'), join(SHARE, 'xen-4.17'), { recursive: true, verbatimSymlinks: true })
  copyFileSync(join(ROOT, '__test__', 'xen', 'xl-create.sh'), join(SHARE, 'xl-create.sh'))

  // The PV guest both builders build: dom0's kernel, and an initramfs whose
  // init prints a marker and powers off.
  const guest = join(CACHE, 'guest-initramfs')
  rmSync(guest, { recursive: true, force: true })
  mkdirSync(join(guest, 'bin'), { recursive: true })
  copyFileSync(join(UNPACKED, 'bin', 'busybox'), join(guest, 'bin', 'busybox'))
  writeFileSync(join(guest, 'init'), '#!/bin/busybox sh\n/bin/busybox mkdir -p /proc\n/bin/busybox mount -t proc proc /proc\n' +
    'echo "guest-marker: PV guest up, $(/bin/busybox cat /proc/meminfo | /bin/busybox head -n 1)"\n/bin/busybox poweroff -f\n')
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
  copyFileSync(join(ROOT, '__test__', 'xenstore-conformance.mjs'), join(SHARE, 'xenstore-conformance.mjs'))
  copyFileSync(join(ROOT, 'scripts', 'xen-test', 'xenstored.sh'), join(SHARE, 'xenstored.sh'))
  copyFileSync(join(ROOT, 'scripts', 'xen-test', 'run.sh'), join(SHARE, 'run.sh'))
  const pkg = join(SHARE, 'node_modules', 'xen-domain-build')
  // The package as published (package.json's files), plus the addon this checkout built, in native/.
  for (const part of ['package.json', 'dist', 'esm', 'native', 'scripts/platform.cjs']) cpSync(join(ROOT, part), join(pkg, part), { recursive: true })

  const xen = join(CACHE, 'xen.elf')
  run('sh', ['-c', `gunzip -c "${join(UNPACKED, 'boot', 'xen-4.17-amd64.gz')}" > "${xen}"`])
  return { xen, initrd, kernel: join(UNPACKED, 'boot', `vmlinuz-${kernelVersion}`) }
})

const serial = await phase('boot Xen and run the tests in dom0', () => new Promise((resolve, reject) => {
  // guest_loglvl=all: what an HVM guest writes to port 0xE9 (hvmloader's
  // banner) reaches Xen's console ring, where the builder's test looks.
  const args = [
    '-machine', 'q35', '-accel', 'tcg', '-cpu', 'max,-smap', '-smp', '4', '-m', '6144',
    '-object', 'memory-backend-ram,id=m0,size=3G', '-object', 'memory-backend-ram,id=m1,size=3G',
    '-numa', 'node,nodeid=0,cpus=0-1,memdev=m0', '-numa', 'node,nodeid=1,cpus=2-3,memdev=m1',
    '-numa', 'dist,src=0,dst=1,val=21',
    '-kernel', files.xen,
    '-append', 'console=com1 com1=115200,8n1 dom0_mem=512M,max:512M dom0_max_vcpus=2 guest_loglvl=all',
    '-initrd', `${files.kernel} console=hvc0 earlyprintk=xen loglevel=4,${files.initrd}`,
    '-virtfs', `local,path=${SHARE},mount_tag=host0,security_model=none`,
    '-display', 'none', '-serial', 'stdio', '-monitor', 'none', '-no-reboot',
  ]
  const qemu = spawn('qemu-system-x86_64', args, { stdio: ['ignore', 'pipe', 'inherit'] })
  let log = ''
  qemu.stdout.setEncoding('utf8').on('data', (chunk) => {
    log += chunk
    for (const line of chunk.split('\n')) if (line.includes('xen-test:')) process.stderr.write(`  dom0: ${line.trim()}\n`)
  })
  const limit = setTimeout(() => {
    process.stderr.write(`test:xen: QEMU ran past ${TIME_LIMIT_MS / 1000} s: killing it\n`)
    qemu.kill('SIGKILL')
  }, TIME_LIMIT_MS)
  qemu.on('error', reject)
  qemu.on('close', () => {
    clearTimeout(limit)
    writeFileSync(join(CACHE, 'serial.log'), log)
    resolve(log)
  })
}))

let failed = 0
for (const suite of ['rust', 'smoke', 'xenstore', 'builder', 'xl', 'mass', 'build']) {
  const status = join(SHARE, 'results', `${suite}.status`)
  if (!existsSync(status)) {
    failed++
    console.log(`${suite}: no result (see .xen-cache/serial.log)`)
    continue
  }
  const code = Number(readFileSync(status, 'utf8').trim())
  const seconds = readFileSync(join(SHARE, 'results', `${suite}.seconds`), 'utf8').trim()
  const text = readFileSync(join(SHARE, 'results', `${suite}.txt`), 'utf8')
  console.log(`--- ${suite} (exit ${code}, ${seconds} s in dom0)\n${text.trimEnd()}`)
  if (code !== 0) failed++
}
if (!serial.includes('xen-test: done')) console.log('dom0 did not finish: see .xen-cache/serial.log')
console.log(`\ntest:xen phases: ${phases.map(([n, s]) => `${n} ${s.toFixed(1)} s`).join(', ')}`)
console.log(failed === 0 && serial.includes('xen-test: done') ? 'test:xen: every test passed' : `test:xen: FAILED (${failed} suite(s))`)
process.exitCode = failed === 0 && serial.includes('xen-test: done') ? 0 : 1
