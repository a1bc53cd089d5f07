import { closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, readSync, rmSync, writeFileSync, writeSync } from 'node:fs'
import { createRequire } from 'node:module'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { XenDomainBuildError } from '../ts/errors.js'
import { memoryModel } from '../ts/memory.js'
import { SpawnedXenguest } from '../ts/xenguest.js'
import {
  BUNDLED_BUILDER_PATH,
  defaultXenguestCandidates,
  defaultXenguestPath,
  HOST_XENGUEST_PATH,
  platformBuilderPath,
  requireDefaultXenguestPath,
} from '../ts/xenguest-discovery.js'
import { parseXenguestError, xenguestArgs, xenguestRestoreArgs, xenguestResumeArgs, xenguestSaveArgs } from '../ts/xenguest-protocol.js'
import { alive, FAKE_XENGUEST, rejected, ROOT } from './helpers.js'

const memory = memoryModel({ type: 'hvm', staticMaxKib: 2 << 20, targetKib: 1 << 20, videoMib: 8, vcpus: 2 })
const base = { domid: 7, image: '/boot/hvmloader', storePort: 1, consolePort: 2, memory }

async function run(mode: string, options: { timeoutMs?: number; signal?: AbortSignal } = {}) {
  const events: { type: string; [k: string]: unknown }[] = []
  const runner = new SpawnedXenguest(FAKE_XENGUEST, { exitGraceMs: 200 })
  const args = xenguestArgs({ ...base, type: 'hvm', extraArgs: ['-fake-mode', mode] })
  try {
    const result = await runner.run(args, { ...options, onEvent: (e) => events.push(e) })
    return { result, events, error: undefined }
  } catch (error) {
    expect(error).toBeInstanceOf(XenDomainBuildError)
    return { result: undefined, events, error: error as XenDomainBuildError & { xenguest?: unknown } }
  } finally {
    const spawned = events.find((e) => e.type === 'xenguest.spawn')
    if (spawned) expect(alive(spawned.pid as number), 'no xenguest left running').toBe(false)
  }
}

describe('xenguest arguments', () => {
  it('HVM: control pipes first, then the mode, image, -vgpu (where xenopsd puts it) and the base arguments', () => {
    expect(xenguestArgs({ ...base, type: 'hvm', nvidiaVgpu: true, force: true, memoryNode: 1, extraArgs: ['-x'] })).toEqual([
      '-controloutfd',
      '3',
      '-controlinfd',
      '4',
      '-mode',
      'hvm_build',
      '-image',
      '/boot/hvmloader',
      '-vgpu',
      '-domid',
      '7',
      '-store_port',
      '1',
      '-store_domid',
      '0',
      '-console_port',
      '2',
      '-console_domid',
      '0',
      '-mem_max_mib',
      '2040',
      '-mem_start_mib',
      '1016',
      '-mem_pnode',
      '1',
      '--force',
      '-x',
    ])
  })

  it('PV: command line, ramdisk, features and flags; no -mem_pnode without a node claim', () => {
    const pv = memoryModel({ type: 'pv', staticMaxKib: 1 << 20, targetKib: 1 << 20, vcpus: 1 })
    expect(
      xenguestArgs({ ...base, memory: pv, type: 'pv', cmdline: 'root=/dev/xvda1', ramdisk: '/boot/initrd', memoryNode: null }),
    ).toEqual([
      '-controloutfd',
      '3',
      '-controlinfd',
      '4',
      '-mode',
      'linux_build',
      '-image',
      '/boot/hvmloader',
      '-cmdline',
      'root=/dev/xvda1',
      '-ramdisk',
      '/boot/initrd',
      '-features',
      '',
      '-flags',
      '0',
      '-domid',
      '7',
      '-store_port',
      '1',
      '-store_domid',
      '0',
      '-console_port',
      '2',
      '-console_domid',
      '0',
      '-mem_max_mib',
      '1024',
      '-mem_start_mib',
      '1024',
    ])
  })

  it('PVH: modules each with their own command line; no -vgpu outside HVM', () => {
    const args = xenguestArgs({
      ...base,
      type: 'pvh',
      cmdline: 'console=hvc0',
      nvidiaVgpu: true,
      modules: [{ path: '/boot/initrd', cmdline: 'quiet' }, { path: '/boot/ucode' }],
    })
    expect(args.slice(4, 18)).toEqual([
      '-mode',
      'pvh_build',
      '-image',
      '/boot/hvmloader',
      '-cmdline',
      'console=hvc0',
      '-features',
      '',
      '-flags',
      '0',
      '-module',
      '/boot/initrd',
      '-cmdline',
      'quiet',
    ])
    expect(args.slice(18, 20)).toEqual(['-module', '/boot/ucode'])
    expect(args).not.toContain('-vgpu')
  })
})

describe('save, restore and resume arguments', () => {
  it("as xenopsd's save helper: the mode by guest type, the image on fd 5, -live only when live", () => {
    expect(xenguestSaveArgs({ type: 'pv', domid: 9 })).toEqual([
      '-controloutfd',
      '3',
      '-controlinfd',
      '4',
      '-mode',
      'save',
      '-domid',
      '9',
      '-fd',
      '5',
    ])
    expect(xenguestSaveArgs({ type: 'pvh', domid: 9, live: true, debug: true, extraArgs: ['-x'] }).slice(4)).toEqual([
      '-mode',
      'hvm_save',
      '-domid',
      '9',
      '-fd',
      '5',
      '-live',
      'true',
      '-debug',
      'true',
      '-x',
    ])
  })

  it('a restore: the rings as a build has them, -mem_pnode only after a node claim; a resume: the domain', () => {
    const restore = { type: 'pv' as const, domid: 4, storePort: 1, consolePort: 2 }
    expect(xenguestRestoreArgs(restore).slice(4)).toEqual([
      '-mode',
      'restore',
      '-domid',
      '4',
      '-fd',
      '5',
      '-store_port',
      '1',
      '-store_domid',
      '0',
      '-console_port',
      '2',
      '-console_domid',
      '0',
    ])
    expect(xenguestRestoreArgs({ ...restore, type: 'pvh', memoryNode: 1 }).slice(4, 6)).toEqual(['-mode', 'hvm_restore'])
    expect(xenguestRestoreArgs({ ...restore, memoryNode: 1 }).slice(-2)).toEqual(['-mem_pnode', '1'])
    expect(xenguestRestoreArgs({ ...restore, memoryNode: null })).not.toContain('-mem_pnode')
    expect(xenguestResumeArgs(4).slice(4)).toEqual(['-mode', 'resume', '-domid', '4'])
  })
})

describe('error lines', () => {
  it("parse xenopsd's and XCP-ng's forms", () => {
    expect(parseXenguestError('hvm_build 12 Cannot allocate memory')).toEqual({
      function: 'hvm_build',
      code: 12,
      message: 'Cannot allocate memory',
    })
    expect(parseXenguestError('xenguest: xc_dom_linux_build: [22] Invalid kernel')).toEqual({
      function: 'xc_dom_linux_build',
      code: 22,
      message: 'Invalid kernel',
    })
    expect(parseXenguestError('xc_dom_allocate could not allocate')).toEqual({
      function: 'xc_dom_allocate',
      code: null,
      message: 'could not allocate',
    })
    expect(parseXenguestError('hvm_build_mem')).toEqual({ function: 'hvm_build_mem', code: null, message: '' })
  })
})

describe('the real runner, against a fake xenguest', () => {
  it('passes the control pipes and reads the result', async () => {
    const { result, events } = await run('success')
    expect(result).toEqual({ storeMfn: 1044480n, consoleMfn: 1044479n })
    const argv = events.find((e) => e.type === 'xenguest.log' && String(e.line).startsWith('argv '))
    expect(JSON.parse(String(argv?.line).slice(5)).slice(0, 6)).toEqual(['-controloutfd', '3', '-controlinfd', '4', '-mode', 'hvm_build'])
  })

  it('turns control and output lines into log events, and keeps the protocol', async () => {
    const { result, events } = await run('logs')
    expect(result).toEqual({ storeMfn: 16n, consoleMfn: 17n, protocol: 'x86_64-abi' })
    const logs = events.filter((e) => e.type === 'xenguest.log').map((e) => `${e.stream}:${e.line}`)
    expect(logs).toEqual(
      expect.arrayContaining(['stdout:building', 'stderr:a warning', 'info:almost done', 'stdout:plain stdout', 'stderr:plain stderr']),
    )
  })

  it.each([
    ['error-xenopsd', { function: 'hvm_build', code: 12, message: 'Cannot allocate memory' }],
    ['error-xcpng', { function: 'xc_dom_linux_build', code: 22, message: 'Invalid kernel image' }],
    ['error-bare', { function: 'xc_dom_allocate', code: null, message: 'could not allocate' }],
  ])('%s: XENGUEST_FAILED with function, code and message', async (mode, xenguest) => {
    const { error } = await run(mode)
    expect(error).toMatchObject({ code: 'XENGUEST_FAILED', xenguest })
  })

  it.each([
    ['crash', /was killed by SIGSEGV without a result/],
    ['exit-no-result', /exited with code 3 without a result/],
    ['garbage', /a control line without a prefix: "this line has no prefix"/],
    ['huge', /a control line longer than 65536 characters/],
    ['suspend', /unexpected suspend request/],
    ['malformed-result', /malformed result: "not-a-number 5"/],
  ])('%s: a protocol error that says what happened', async (mode, message) => {
    const { error } = await run(mode)
    expect(error?.code).toBe('XENGUEST_PROTOCOL')
    expect(error?.message).toMatch(message)
  })

  it("a save: the image on fd 5, the guest suspended when the builder asks, 'done' sent back, a result that carries nothing", async () => {
    const dir = mkdtempSync(join(tmpdir(), 'xdb-save-'))
    try {
      const path = join(dir, 'image')
      const fd = openSync(path, 'w')
      writeSync(fd, 'HEADER;')
      const asked: string[] = []
      const events: { type: string; line?: unknown }[] = []
      const runner = new SpawnedXenguest(FAKE_XENGUEST, { exitGraceMs: 200 })
      const saved = await runner.run(xenguestSaveArgs({ type: 'pv', domid: 7, extraArgs: ['-fake-mode', 'save'] }), {
        imageFd: fd,
        onSuspend: async () => {
          asked.push('suspend')
        },
        onEvent: (e) => events.push(e),
      })
      expect(saved).toBeNull()
      expect(asked).toEqual(['suspend'])
      expect(events.some((e) => e.line === 'progress iteration=0 sent_pages=100 dirty_pages=7')).toBe(true)
      // The builder wrote where the toolstack's header ended: the offset is shared.
      writeSync(fd, 'END;')
      closeSync(fd)
      expect(readFileSync(path, 'latin1')).toBe('HEADER;LIBXC-STREAM;END;')

      // The restore reads from the same kind of shared offset, no further.
      const input = openSync(path, 'r')
      const header = Buffer.alloc(7)
      expect(readSync(input, header, 0, 7, null)).toBe(7)
      const restored = await runner.run(
        xenguestRestoreArgs({ type: 'pv', domid: 8, storePort: 1, consolePort: 2, extraArgs: ['-fake-mode', 'restore'] }),
        { imageFd: input },
      )
      expect(restored).toEqual({ storeMfn: 4096n, consoleMfn: 4097n })
      const rest = Buffer.alloc(8)
      expect(rest.toString('latin1', 0, readSync(input, rest, 0, 8, null))).toBe('END;')
      closeSync(input)
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })

  it('a suspend that fails ends the save with its error, and kills the builder', async () => {
    const fd = openSync('/dev/null', 'w')
    try {
      const refused = new XenDomainBuildError('SUSPEND_NOT_ACKNOWLEDGED', 'the guest did not answer')
      const events: { type: string; pid?: number }[] = []
      const runner = new SpawnedXenguest(FAKE_XENGUEST, { exitGraceMs: 200 })
      const run = runner.run(xenguestSaveArgs({ type: 'pv', domid: 7, extraArgs: ['-fake-mode', 'save'] }), {
        imageFd: fd,
        onSuspend: () => Promise.reject(refused),
        onEvent: (e) => events.push(e),
      })
      await expect(run).rejects.toBe(refused)
      const spawned = events.find((e) => e.type === 'xenguest.spawn')
      expect(alive(spawned?.pid as number)).toBe(false)
      await expect(runner.run(xenguestSaveArgs({ type: 'pv', domid: 7 }), { imageFd: -1 })).rejects.toMatchObject({
        code: 'INVALID_ARGUMENT',
      })
    } finally {
      closeSync(fd)
    }
  })

  it('a hung xenguest times out and is killed', async () => {
    const { error } = await run('hang', { timeoutMs: 300 })
    expect(error).toMatchObject({ code: 'TIMEOUT' })
  })

  it('cancelling kills xenguest; the run fails as ABORTED', async () => {
    const controller = new AbortController()
    setTimeout(() => controller.abort(), 200)
    const { error } = await run('hang', { signal: controller.signal })
    expect(error).toMatchObject({ code: 'ABORTED' })
  })

  it('a xenguest that lingers after its result is killed after the grace time', async () => {
    const { result } = await run('result-then-linger')
    expect(result).toEqual({ storeMfn: 7n, consoleMfn: 8n })
  })

  it.each([['orphan-holds-pipes', 'TIMEOUT']])('%s: the timeout ends the build and the whole process group (%s)', async (mode, code) => {
    const { error } = await run(mode, { timeoutMs: 300 })
    expect(error?.code).toBe(code)
  })

  it('a result is taken from a builder that exits, even if a helper it left holds the pipes', async () => {
    const { result } = await run('orphan-after-result')
    expect(result).toEqual({ storeMfn: 5n, consoleMfn: 6n })
  })

  it('an abort ends a builder whose helper holds its pipes', async () => {
    const controller = new AbortController()
    setTimeout(() => controller.abort(), 200)
    const { error } = await run('orphan-holds-pipes', { signal: controller.signal })
    expect(error).toMatchObject({ code: 'ABORTED', name: 'AbortError' })
  })

  it('keeps the protocol at its limits', async () => {
    // A final result without a newline still counts.
    expect((await run('result-no-newline')).result).toEqual({ storeMfn: 9n, consoleMfn: 10n })
    // A result followed by a failing exit is not a success.
    expect((await run('result-then-fail')).error).toMatchObject({
      code: 'XENGUEST_PROTOCOL',
      message: expect.stringContaining('exited with code 1 after its result'),
    })
    // A line over the limit is refused however many reads it comes in.
    expect((await run('split-long-line')).error).toMatchObject({
      code: 'XENGUEST_PROTOCOL',
      message: expect.stringContaining('longer than'),
    })
    // An MFN beyond 64 bits is no MFN.
    expect((await run('huge-mfn')).error).toMatchObject({ code: 'XENGUEST_PROTOCOL', message: expect.stringContaining('malformed result') })
  })

  it('refuses what is not a timeout, and takes long ones', async () => {
    const runner = new SpawnedXenguest(FAKE_XENGUEST)
    for (const timeoutMs of [Infinity, NaN, -1, 0, 1.5]) {
      await expect(runner.run(['-fake-mode', 'success'], { timeoutMs })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' })
    }
    // Beyond setTimeout's 2^31 - 1 ms: no immediate kill.
    const args = xenguestArgs({ ...base, type: 'hvm', extraArgs: ['-fake-mode', 'slow'] })
    expect(await runner.run(args, { timeoutMs: 2 ** 33 })).toEqual({ storeMfn: 1n, consoleMfn: 2n })
  })

  it('a program that cannot be started is a protocol error', async () => {
    const runner = new SpawnedXenguest('/nonexistent/xenguest')
    await expect(runner.run(['-mode', 'hvm_build'])).rejects.toMatchObject({
      code: 'XENGUEST_PROTOCOL',
      message: expect.stringContaining('could not be started'),
    })
  })

  it('asks -supports FEATURE', async () => {
    const runner = new SpawnedXenguest(FAKE_XENGUEST)
    expect(await runner.supports('known-feature')).toBe(true)
    expect(await runner.supports('other')).toBe(false)
    expect(await new SpawnedXenguest('/nonexistent/xenguest').supports('x')).toBe(false)
  })
})

describe('the default domain builder', () => {
  it('is the host xenguest when there is one, else ours, else none', () => {
    const dir = mkdtempSync(join(tmpdir(), 'xdb-builder-'))
    try {
      const host = join(dir, 'xenguest')
      const ours = join(dir, 'xen-domain-builder')
      const notExecutable = join(dir, 'plain')
      writeFileSync(notExecutable, '')
      writeFileSync(ours, '#!/bin/sh\n', { mode: 0o755 })
      expect(defaultXenguestPath([host, ours])).toBe(ours)
      expect(defaultXenguestPath([notExecutable, ours])).toBe(ours)
      writeFileSync(host, '#!/bin/sh\n', { mode: 0o755 })
      expect(defaultXenguestPath([host, ours])).toBe(host)
      expect(defaultXenguestPath([join(dir, 'none')])).toBeNull()
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })

  it("is, in order, the host xenguest, the checkout's native/ builder, the installed platform package's", () => {
    const dir = mkdtempSync(join(tmpdir(), 'xdb-builder-'))
    try {
      const host = join(dir, 'host')
      const checkout = join(dir, 'checkout')
      const installed = join(dir, 'installed')
      const order = [host, checkout, installed]
      const program = (path: string) => writeFileSync(path, '#!/bin/sh\n', { mode: 0o755 })
      expect(defaultXenguestPath(order)).toBeNull()
      program(installed)
      expect(defaultXenguestPath(order)).toBe(installed)
      program(checkout)
      expect(defaultXenguestPath(order)).toBe(checkout)
      program(host)
      expect(defaultXenguestPath(order)).toBe(host)
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })

  it("finds the platform package's builder as an installed package resolves its dependency", () => {
    const platform = createRequire(import.meta.url)('../scripts/platform.cjs') as { addonPackageName(): string; BUILDER_NAME: string }
    const project = mkdtempSync(join(tmpdir(), 'xdb-project-'))
    try {
      // node_modules/xen-domain-build/dist/index.js resolving node_modules/@xen-domain-build/<platform>.
      const from = join(project, 'node_modules', 'xen-domain-build', 'dist', 'index.js')
      expect(platformBuilderPath(from)).toBeNull()
      const pkg = join(project, 'node_modules', ...platform.addonPackageName().split('/'))
      mkdirSync(pkg, { recursive: true })
      writeFileSync(join(pkg, 'package.json'), JSON.stringify({ name: platform.addonPackageName(), version: '0.1.0' }))
      expect(platformBuilderPath(from)).toBe(join(pkg, 'xen-domain-builder'))
      expect(platform.BUILDER_NAME).toBe('xen-domain-builder')
    } finally {
      rmSync(project, { recursive: true, force: true })
    }
  })

  it('defaults to the host path, then the builder npm run build puts in native/; a checkout has no platform package', () => {
    // Where XenServer and XCP-ng install xenguest, as the docs tell users.
    expect(readFileSync(join(ROOT, 'docs', 'DESIGN.md'), 'utf8')).toContain(`\`${HOST_XENGUEST_PATH}\``)
    expect(BUNDLED_BUILDER_PATH).toBe(join(ROOT, 'native', 'xen-domain-builder'))
    expect(platformBuilderPath()).toBeNull()
    expect(defaultXenguestCandidates()).toEqual([HOST_XENGUEST_PATH, BUNDLED_BUILDER_PATH])
    expect(defaultXenguestPath()).toBe(existsSync(HOST_XENGUEST_PATH) ? HOST_XENGUEST_PATH : BUNDLED_BUILDER_PATH)
  })

  it('is what a SpawnedXenguest given no path runs; with none at all, XEN_UNAVAILABLE says where it looked', () => {
    expect(new SpawnedXenguest().path).toBe(defaultXenguestPath())
    expect(requireDefaultXenguestPath([FAKE_XENGUEST])).toBe(FAKE_XENGUEST)
    let thrown: unknown
    try {
      requireDefaultXenguestPath(['/nonexistent/xenguest', '/nonexistent/xen-domain-builder'])
    } catch (error) {
      thrown = error
    }
    expect(thrown).toBeInstanceOf(XenDomainBuildError)
    expect(thrown).toMatchObject({ code: 'XEN_UNAVAILABLE' })
    expect((thrown as Error).message).toContain('none of /nonexistent/xenguest, /nonexistent/xen-domain-builder is an executable')
  })

  it('ours speaks the protocol SpawnedXenguest expects: -supports, and a clean error off Xen', async () => {
    const builder = new SpawnedXenguest(BUNDLED_BUILDER_PATH)
    expect(await builder.supports('mem_pnode')).toBe(true)
    expect(await builder.supports('vgpu')).toBe(false)
    const pv = memoryModel({ type: 'pv', staticMaxKib: 256 << 10, targetKib: 256 << 10, vcpus: 1 })
    const events: { type: string; line?: string }[] = []
    const error = await rejected(
      builder.run(xenguestArgs({ ...base, type: 'pv', image: '/boot/vmlinuz', memory: pv }), { onEvent: (e) => events.push(e) }),
    )
    // This machine runs no Xen: the builder fails opening it, and says so on the control pipe.
    expect(error.code).toBe('XENGUEST_FAILED')
    const failed = (error as XenDomainBuildError & { xenguest: { function: string; code: number } }).xenguest
    expect(['dlopen', 'xc_interface_open']).toContain(failed.function)
    expect(failed.code).toBeGreaterThan(0)
    expect(events.some((e) => e.line?.startsWith('xen-domain-builder ') === true)).toBe(true)
  })
})
