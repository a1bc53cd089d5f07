/**
 * The suspend image (ts/suspend-image.ts): round trips through a file and a
 * pipe, the fd left exactly at the libxc stream, every refusal, and the bytes
 * checked against xenopsd's format as its source describes it
 * (ocaml/xenopsd/lib/suspend_image.ml), built here by hand, not by the
 * encoder.
 */
import { execFileSync } from 'node:child_process'
import { closeSync, constants, mkdtempSync, open, openSync, read, readFileSync, readSync, rmSync, writeSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { afterAll, describe, expect, it } from 'vitest'
import { type ErrorCode, XenDomainBuildError } from '../ts/errors.js'
import {
  decodeImageEnd,
  decodeImageHeader,
  decodeXenopsRecord,
  encodeImageEnd,
  encodeImageHeader,
  encodeXenopsRecord,
  LEGACY_SUSPEND_IMAGE_SIGNATURE,
  MAX_XENOPS_RECORD_BYTES,
  RECORD_TYPES,
  readImageEnd,
  readImageHeader,
  SUSPEND_IMAGE_SIGNATURE,
  type SuspendedVm,
  writeImageEnd,
  writeImageHeader,
  type XenopsRecord,
  xenopsRecord,
} from '../ts/suspend-image.js'

const dir = mkdtempSync(join(tmpdir(), 'xdb-suspend-image-'))
afterAll(() => rmSync(dir, { recursive: true, force: true }))
let files = 0
const tempPath = (name = 'image') => join(dir, `${name}-${files++}`)

// ------------------------------------------------ the format, by hand

/** A little-endian 64-bit integer. */
function le64(n: number | bigint): Buffer {
  const b = Buffer.alloc(8)
  b.writeBigUInt64LE(BigInt(n))
  return b
}
/** A record header: type, length. */
const header = (type: number | bigint, length: number | bigint) => Buffer.concat([le64(type), le64(length)])
const SIGNATURE = Buffer.from('XenSavedDomv2-\n', 'latin1')
const XENOPS = 0x000f
const LIBXC = 0x00f0
const END = 0xffff

/** An image's start: the signature, a Xenops record with this body, a Libxc header. */
function imageStart(body: string | Buffer): Buffer {
  const bytes = typeof body === 'string' ? Buffer.from(body, 'latin1') : body
  return Buffer.concat([SIGNATURE, header(XENOPS, bytes.length), bytes, header(LIBXC, 0)])
}

const VM: SuspendedVm = { config: { type: 'pv', staticMaxKib: 262144, targetKib: 262144, vcpus: 2 }, memoryTotalSourceKib: 263168 }
const TIME = '20250102T03:04:05Z'
/** VM's vm_str, quoted as sexplib quotes it. */
const VM_STR = String.raw`"{\"format\":\"xen-domain-build/suspended-vm/1\",\"config\":{\"type\":\"pv\",\"staticMaxKib\":262144,\"targetKib\":262144,\"vcpus\":2},\"memoryTotalSourceKib\":263168}"`
/** The body xenopsd's writer (sexplib's Sexp.to_string of the derived sexp) makes of that record. */
const BODY = `((time ${TIME})(word_size 64)(vm_str${VM_STR})(xs_subtree()))`

const record = (extra: Partial<XenopsRecord> = {}): XenopsRecord => xenopsRecord({ time: TIME, vm: VM, ...extra })

// ------------------------------------------------------- error helpers

function caught(work: () => unknown): XenDomainBuildError {
  try {
    work()
  } catch (error) {
    expect(error).toBeInstanceOf(XenDomainBuildError)
    return error as XenDomainBuildError
  }
  throw new Error('expected a refusal, but it was accepted')
}

async function rejected(work: Promise<unknown>): Promise<XenDomainBuildError> {
  try {
    await work
  } catch (error) {
    expect(error).toBeInstanceOf(XenDomainBuildError)
    return error as XenDomainBuildError
  }
  throw new Error('expected a refusal, but it was accepted')
}

/** The refusal has this code and its message says each of these. */
function says(error: XenDomainBuildError, code: ErrorCode, ...parts: (string | RegExp)[]): void {
  expect(error.code).toBe(code)
  for (const part of parts) expect(error.message).toMatch(part)
}

const badImage = (bytes: Buffer, ...parts: (string | RegExp)[]) =>
  says(
    caught(() => decodeImageHeader(bytes)),
    'INVALID_SUSPEND_IMAGE',
    ...parts,
  )
const badEnd = (bytes: Buffer, ...parts: (string | RegExp)[]) =>
  says(
    caught(() => decodeImageEnd(bytes)),
    'INVALID_SUSPEND_IMAGE',
    ...parts,
  )

// ------------------------------------------------------- fd helpers

const openAsync = promisify(open)
const readAsync = promisify(read)

/** Reads exactly `n` bytes (fewer at the end) without blocking the event loop: what a child would read next. */
async function readBytes(fd: number, n: number): Promise<Buffer> {
  const buffer = Buffer.alloc(n)
  let got = 0
  while (got < n) {
    const { bytesRead } = await readAsync(fd, buffer, got, n - got, null)
    if (bytesRead === 0) break
    got += bytesRead
  }
  return buffer.subarray(0, got)
}

/** A FIFO's two ends, opened blocking (each open waits for the other, on libuv's pool). */
async function fifo(): Promise<{ readFd: number; writeFd: number; close(): void }> {
  const path = tempPath('fifo')
  execFileSync('mkfifo', [path])
  const [readFd, writeFd] = await Promise.all([openAsync(path, 'r'), openAsync(path, 'w')])
  const open = new Set([readFd, writeFd])
  return {
    readFd,
    writeFd,
    close() {
      for (const fd of open) closeSync(fd)
      open.clear()
    },
  }
}

// ================================================================ tests

describe('the bytes, as xenopsd lays them out', () => {
  it('the constants are xenopsd’s', () => {
    expect(SUSPEND_IMAGE_SIGNATURE).toBe('XenSavedDomv2-\n')
    expect(LEGACY_SUSPEND_IMAGE_SIGNATURE).toBe('XenSavedDomain\n')
    expect(RECORD_TYPES).toEqual({
      Xenops: 0x000f,
      Libxc: 0x00f0,
      Libxl: 0x00f1,
      Libxc_legacy: 0x00f2,
      Qemu_trad: 0x0f00,
      Qemu_xen: 0x0f01,
      Demu: 0x0f10,
      Varstored: 0x0f11,
      Swtpm0: 0x0f12,
      Swtpm: 0x0f13,
      End_of_image: 0xffff,
    })
    expect(MAX_XENOPS_RECORD_BYTES).toBe(16 * 1024 * 1024)
  })

  it('writes the signature, the Xenops record in sexplib’s machine form, and a Libxc header of length 0', () => {
    expect(encodeXenopsRecord(record()).toString('latin1')).toBe(BODY)
    expect(encodeImageHeader(record())).toEqual(imageStart(BODY))
    expect(encodeImageEnd()).toEqual(header(END, 0))
  })

  it('quotes and escapes atoms as sexplib does: a space only between two bare atoms', () => {
    const subtree: [string, string][] = [
      ['vm', '/vm/uuid'],
      ['name', 'a b'],
      ['tab', 'x\ty\n\r\b'],
      ['utf8', 'é'],
      ['comment', '#|x'],
      ['empty', ''],
      ['quote', 'say "hi" \\o/'],
      ['bar', 'a|b#c'],
      ['ctrl', '\x01\x7f'],
      ['ours', '#;c'],
    ]
    const expected = String.raw`(xs_subtree((vm /vm/uuid)(name"a b")(tab"x\ty\n\r\b")(utf8"\195\169")(comment"#|x")(empty"")(quote"say \"hi\" \\o/")(bar a|b#c)(ctrl"\001\127")(ours"#;c")))`
    const body = encodeXenopsRecord(record({ xenstoreSubtree: subtree })).toString('latin1')
    expect(body).toBe(`((time ${TIME})(word_size 64)(vm_str${VM_STR})${expected})`)
    expect(decodeXenopsRecord(Buffer.from(body, 'latin1')).xenstoreSubtree).toEqual(subtree)
  })

  it('reads the image built by hand', () => {
    const bytes = Buffer.concat([imageStart(BODY), Buffer.from('LIBXC')])
    const { record: read, libxcOffset } = decodeImageHeader(bytes)
    expect(read).toEqual({ time: TIME, wordSize: 64, vm: VM, xenstoreSubtree: [] })
    expect(libxcOffset).toBe(15 + 16 + BODY.length + 16)
    expect(bytes.subarray(libxcOffset).toString()).toBe('LIBXC')
    decodeImageEnd(header(END, 0))
  })

  it('reads what sexplib reads: the human form, fields in any order, comments, escapes, no xs_subtree', () => {
    const body = [
      '; written by hand',
      '( (vm_str',
      `   ${VM_STR.replace('format', 'for\\\n      mat').replace('pv', '\\x70\\118')} )`,
      ` (word_size 64) (time "${TIME}")`,
      ')',
      '',
    ].join('\n')
    const read = decodeXenopsRecord(Buffer.from(body, 'latin1'))
    expect(read).toEqual({ time: TIME, wordSize: 64, vm: VM, xenstoreSubtree: [] })
  })

  it('keeps what the VM metadata must have, and no more', () => {
    const vm = { config: { ...VM.config, hardAffinity: [[0, 1]], extra: 'dropped' }, memoryTotalSourceKib: 1, other: 2 }
    const r = xenopsRecord({ time: TIME, vm: vm as SuspendedVm })
    expect(r.vm).toEqual({ config: { ...VM.config, hardAffinity: [[0, 1]] }, memoryTotalSourceKib: 1 })
    expect(decodeXenopsRecord(encodeXenopsRecord(r))).toEqual(r)
  })

  it('times: a Date becomes xenopsd’s UTC form; none is now', () => {
    expect(xenopsRecord({ time: new Date(Date.UTC(2025, 0, 2, 3, 4, 5)), vm: VM }).time).toBe(TIME)
    expect(xenopsRecord({ time: '20250102T03:04:05+01:00', vm: VM }).time).toBe('20250102T03:04:05+01:00')
    const before = new Date()
    const now = xenopsRecord({ vm: VM }).time
    expect(now).toMatch(/^\d{8}T\d{2}:\d{2}:\d{2}Z$/)
    expect(now.slice(0, 8)).toBe(before.toISOString().slice(0, 10).replaceAll('-', ''))
  })
})

describe('round trips through an fd', () => {
  it('a file: the fd is left exactly where the libxc stream starts, and after the End record', async () => {
    const path = tempPath()
    const subtree: [string, string][] = [['device/vbd/768/state', '4']]
    const w = openSync(path, 'w')
    writeSync(w, 'PREFIX')
    await writeImageHeader(w, record({ xenstoreSubtree: subtree }))
    writeSync(w, 'LIBXC-STREAM')
    await writeImageEnd(w)
    writeSync(w, 'AFTER')
    closeSync(w)

    const r = openSync(path, 'r')
    try {
      expect(readSync(r, Buffer.alloc(6), 0, 6, null)).toBe(6)
      const { record: read, libxcOffset } = await readImageHeader(r)
      expect(read).toEqual({ time: TIME, wordSize: 64, vm: VM, xenstoreSubtree: subtree })
      expect(libxcOffset).toBe(encodeImageHeader(record({ xenstoreSubtree: subtree })).length)
      expect((await readBytes(r, 12)).toString()).toBe('LIBXC-STREAM')
      await readImageEnd(r)
      expect((await readBytes(r, 100)).toString()).toBe('AFTER')
    } finally {
      closeSync(r)
    }
    const whole = readFileSync(path)
    expect(whole.subarray(6, 6 + 15).toString('latin1')).toBe('XenSavedDomv2-\n')
  })

  it('a pipe: a record bigger than the pipe, written and read at once, and nothing read ahead', async () => {
    const pipe = await fifo()
    try {
      const big: [string, string][] = [['big', 'x'.repeat(300_000)]]
      const writing = (async () => {
        await writeImageHeader(pipe.writeFd, record({ xenstoreSubtree: big }))
        writeSync(pipe.writeFd, 'LIBXC-STREAM')
        await writeImageEnd(pipe.writeFd)
        writeSync(pipe.writeFd, 'AFTER')
        closeSync(pipe.writeFd)
      })()
      const reading = (async () => {
        const { record: read } = await readImageHeader(pipe.readFd)
        expect(read.xenstoreSubtree).toEqual(big)
        expect((await readBytes(pipe.readFd, 12)).toString()).toBe('LIBXC-STREAM')
        await readImageEnd(pipe.readFd)
        expect((await readBytes(pipe.readFd, 100)).toString()).toBe('AFTER')
      })()
      await Promise.all([writing, reading])
    } finally {
      closeSync(pipe.readFd)
    }
  })

  it('a non-blocking pipe: the reader waits for bytes (EAGAIN), without blocking the event loop', async () => {
    const path = tempPath('fifo')
    execFileSync('mkfifo', [path])
    const r = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK)
    const w = openSync(path, 'w')
    try {
      const reading = readImageHeader(r)
      let ticks = 0
      const ticking = setInterval(() => ticks++, 1)
      await new Promise((resolve) => setTimeout(resolve, 30))
      await writeImageHeader(w, record())
      const { record: read } = await reading
      clearInterval(ticking)
      expect(read.vm).toEqual(VM)
      expect(ticks).toBeGreaterThan(0)
    } finally {
      closeSync(w)
      closeSync(r)
    }
  })

  it('a pipe that closes early: truncated', async () => {
    const pipe = await fifo()
    try {
      writeSync(pipe.writeFd, imageStart(BODY).subarray(0, 40))
      closeSync(pipe.writeFd)
      says(await rejected(readImageHeader(pipe.readFd)), 'INVALID_SUSPEND_IMAGE', 'truncated', 'byte 40', "the Xenops record's body")
    } finally {
      closeSync(pipe.readFd)
    }
  })

  it('refusals read from a file, and a huge length is refused before anything is allocated or read', async () => {
    const path = tempPath()
    const w = openSync(path, 'w')
    writeSync(w, Buffer.concat([SIGNATURE, header(XENOPS, 2n ** 62n), Buffer.from('rest')]))
    closeSync(w)
    const r = openSync(path, 'r')
    try {
      says(await rejected(readImageHeader(r)), 'INVALID_SUSPEND_IMAGE', 'byte 15', String(2n ** 62n), String(MAX_XENOPS_RECORD_BYTES))
      // It read the header and no further.
      expect((await readBytes(r, 10)).toString()).toBe('rest')
    } finally {
      closeSync(r)
    }
  })

  it('a bad fd or record is INVALID_ARGUMENT, as a rejection', async () => {
    says(await rejected(readImageHeader(-1)), 'INVALID_ARGUMENT', 'fd')
    says(await rejected(readImageEnd(1.5)), 'INVALID_ARGUMENT', 'fd')
    says(await rejected(writeImageEnd(Number.NaN)), 'INVALID_ARGUMENT', 'fd')
    says(await rejected(writeImageHeader(1, { vm: null } as never)), 'INVALID_ARGUMENT', 'record.vm')
    const w = openSync(tempPath(), 'w')
    try {
      says(await rejected(readImageHeader(w)), 'INVALID_ARGUMENT', 'not open for reading', 'EBADF')
    } finally {
      closeSync(w)
    }
    const r = openSync(tempPath(), 'w+')
    closeSync(r)
    says(await rejected(writeImageEnd(r)), 'INVALID_ARGUMENT', 'EBADF')
  })

  it('a failed write is its errno’s code', async () => {
    const full = openSync('/dev/full', 'w')
    try {
      const error = await rejected(writeImageEnd(full))
      says(error, 'ENOSPC', 'write')
      expect(error.errno).toBe(28)
      expect(error.operation).toBe('write')
    } finally {
      closeSync(full)
    }
  })
})

describe('refusals of an image', () => {
  it('a wrong signature, and the legacy one as needing conversion', () => {
    badImage(Buffer.from('XenSavedDomv3-\n........'), 'byte 0', 'not a suspend image', 'XenSavedDomv3-\\n')
    badImage(Buffer.concat([Buffer.from('XenSavedDomain\n'), header(XENOPS, 0)]), 'byte 0', 'legacy', 'before Xen 4.5', 'needs converting')
  })

  it('truncated: in the signature, a header, the body, the Libxc header', () => {
    const full = imageStart(BODY)
    badImage(Buffer.alloc(0), 'byte 0', 'truncated', 'before the signature')
    badImage(full.subarray(0, 7), 'byte 7', 'truncated', '7 bytes into the signature')
    badImage(full.subarray(0, 15), 'byte 15', 'truncated', "before the Xenops record's header")
    badImage(full.subarray(0, 20), 'byte 20', 'truncated', "5 bytes into the Xenops record's header")
    badImage(full.subarray(0, 31 + 10), 'byte 41', 'truncated', "10 bytes into the Xenops record's body", `${BODY.length} bytes`)
    badImage(full.subarray(0, full.length - 1), `byte ${full.length - 1}`, 'truncated', "15 bytes into the Libxc record's header")
    badEnd(Buffer.alloc(0), 'byte 0 after the libxc stream', 'truncated', "before the End_of_image record's header")
    badEnd(header(END, 0).subarray(0, 9), 'byte 9 after the libxc stream', 'truncated')
  })

  it('a record type xenopsd does not know, in hex', () => {
    badImage(Buffer.concat([SIGNATURE, header(0x1234, 0)]), 'byte 15', 'a type xenopsd does not know', '0x1234')
    badImage(Buffer.concat([SIGNATURE, header(0xdeadbeefcafef00dn, 0)]), '0xdeadbeefcafef00d')
    badImage(Buffer.concat([imageStart(BODY).subarray(0, -16), header(0x0007, 3)]), '0x0007', "the Libxc record's header")
    badEnd(header(0xfffe, 0), 'byte 0 after the libxc stream', '0xfffe')
  })

  it('a Libxc record with a length, and an End_of_image record with one', () => {
    badImage(
      Buffer.concat([imageStart(BODY).subarray(0, -16), header(LIBXC, 5)]),
      `byte ${31 + BODY.length}`,
      'Libxc',
      'length is 5, not 0',
    )
    badEnd(header(END, 1), 'End_of_image', 'length is 1, not 0')
  })

  it('a Xenops record longer than the limit', () => {
    badImage(
      Buffer.concat([SIGNATURE, header(XENOPS, MAX_XENOPS_RECORD_BYTES + 1)]),
      'byte 15',
      String(MAX_XENOPS_RECORD_BYTES + 1),
      'more than',
    )
    badImage(Buffer.concat([SIGNATURE, header(XENOPS, 2n ** 64n - 1n)]), String(2n ** 64n - 1n))
    // At the limit, it is the truncation that is refused: the length itself is fine.
    badImage(Buffer.concat([SIGNATURE, header(XENOPS, MAX_XENOPS_RECORD_BYTES)]), 'truncated')
  })

  it('records out of place, each named; device state refused as this package restores PV and PVH only', () => {
    const afterSignature = (type: number, length = 8) => Buffer.concat([SIGNATURE, header(type, length), Buffer.alloc(length)])
    const afterXenops = (type: number, length = 8) => Buffer.concat([imageStart(BODY).subarray(0, -16), header(type, length)])
    for (const [name, type] of [
      ['Qemu_trad', 0x0f00],
      ['Qemu_xen', 0x0f01],
      ['Demu', 0x0f10],
      ['Varstored', 0x0f11],
      ['Swtpm0', 0x0f12],
      ['Swtpm', 0x0f13],
    ] as const) {
      badImage(afterSignature(type), 'byte 15', `a ${name} record`, 'PV and PVH domains only')
      badImage(afterXenops(type), `byte ${31 + BODY.length}`, `a ${name} record`, 'where the Libxc record should be', 'PV and PVH')
      badEnd(
        header(type, 100),
        'byte 0 after the libxc stream',
        `a ${name} record`,
        'length 100',
        'where the End_of_image record should be',
      )
    }
    badImage(afterSignature(0x00f2), 'Libxc_legacy', 'needs converting')
    badImage(afterSignature(0x00f1), 'Libxl')
    badImage(afterSignature(LIBXC, 0), 'a Libxc record', 'no VM metadata')
    badImage(afterSignature(END, 0), 'End_of_image record comes where the Xenops record should be')
    badImage(afterXenops(END, 0), 'End_of_image record comes where the Libxc record should be', 'no Libxc record (the memory image)')
    badImage(afterXenops(XENOPS, 0), 'a second Xenops record')
    badEnd(header(XENOPS, 10), 'a second Xenops record', 'End_of_image')
    badEnd(header(LIBXC, 0), 'a second Libxc record')
  })

  it('a malformed Xenops record, saying where in the image and in the record', () => {
    const bad = (body: string, ...parts: (string | RegExp)[]) => badImage(imageStart(body), 'the Xenops record', ...parts)
    bad('', 'byte 31', 'empty')
    bad('   ; nothing', 'empty')
    bad('((time', 'byte 32', 'its byte 1', 'never closed')
    bad('((time x)))', 'byte 41', 'its byte 10', 'closes no list')
    bad(`${BODY} ()`, 'more after the S-expression')
    bad('atom', 'an atom, not a list')
    bad('((time))', 'not a (name value) pair')
    bad('((time a b))', 'not a (name value) pair')
    bad('(((time) a))', 'not a (name value) pair')
    bad(`((time ${TIME})(word_size 64)(vm_str${VM_STR})(colour blue))`, 'unknown field "colour"')
    bad(`((time ${TIME})(time ${TIME})(word_size 64)(vm_str${VM_STR}))`, 'the field time twice')
    bad(`((word_size 64)(vm_str${VM_STR}))`, 'no time field')
    bad(`((time ${TIME})(vm_str${VM_STR}))`, 'no word_size field')
    bad(`((time ${TIME})(word_size 64))`, 'no vm_str field', 'no VM metadata')
    bad(`((time yesterday)(word_size 64)(vm_str${VM_STR}))`, 'time', '"yesterday"', "xenopsd's form")
    bad(`((time (a))(word_size 64)(vm_str${VM_STR}))`, 'time is a list')
    bad(`((time ${TIME})(word_size 63)(vm_str${VM_STR}))`, 'word_size', '63', '32 or 64')
    bad(`((time ${TIME})(word_size 64.0)(vm_str${VM_STR}))`, 'word_size', 'not a whole number')
    bad(`((time ${TIME})(word_size 0x40)(vm_str${VM_STR}))`, 'word_size', 'not a whole number')
    bad(`((time ${TIME})(word_size 64)(vm_str"\\255"))`, 'vm_str is not UTF-8')
    bad(`((time ${TIME})(word_size 64)(vm_str"{"))`, 'vm_str is not JSON')
    bad(`((time ${TIME})(word_size 64)(vm_str"[]"))`, "not this package's VM metadata")
    bad(`((time ${TIME})(word_size 64)(vm_str"((id 1)(name vm))"))`, "xenopsd's own VM record")
    const vmStr = (vm: unknown) => JSON.stringify(JSON.stringify({ format: 'xen-domain-build/suspended-vm/1', ...(vm as object) }))
    const withVm = (vm: unknown) => `((time ${TIME})(word_size 64)(vm_str${vmStr(vm)}))`
    bad(withVm({ config: VM.config, memoryTotalSourceKib: -1 }), 'vm_str.memoryTotalSourceKib', '-1')
    bad(withVm({ config: VM.config }), 'vm_str.memoryTotalSourceKib')
    bad(withVm({ config: { ...VM.config, type: 'hvm' }, memoryTotalSourceKib: 1 }), 'vm_str.config.type', 'PV and PVH')
    bad(withVm({ config: { ...VM.config, targetKib: 0 }, memoryTotalSourceKib: 1 }), 'vm_str.config.targetKib')
    bad(withVm({ config: { ...VM.config, hardAffinity: [['a']] }, memoryTotalSourceKib: 1 }), 'vm_str.config.hardAffinity[0][0]')
    const withSubtree = (subtree: string) => `((time ${TIME})(word_size 64)(vm_str${VM_STR})(xs_subtree${subtree}))`
    bad(withSubtree(' a'), 'xs_subtree is an atom')
    bad(withSubtree('((a))'), 'not a (key value) pair')
    bad(withSubtree('((a (b)))'), 'an xs_subtree value is a list')
    bad(withSubtree('((a"b\\000c"))'), 'xs_subtree[0][1]', 'NUL')
    bad(withSubtree('((""b))'), 'xs_subtree[0][0]', 'empty')
  })

  it('S-expression syntax sexplib refuses, or this reader does not take', () => {
    const bad = (body: string, ...parts: (string | RegExp)[]) =>
      says(
        caught(() => decodeXenopsRecord(Buffer.from(body, 'latin1'))),
        'INVALID_SUSPEND_IMAGE',
        ...parts,
      )
    bad('((time "abc', 'byte 7', 'never closed')
    bad('((time "abc\\', 'never closed')
    bad('((time "\\256"))', 'byte 8', 'above 255')
    bad('((time "\\12"))', 'three-digit')
    bad('((time "\\xg0"))', '\\x')
    bad('((time #|c|#))', 'block comment')
    bad('((time a|#))', '"|#"')
    bad('(#;(a b) (time x))', 'S-expression comment')
    bad(`${'('.repeat(65)}${')'.repeat(65)}`, 'nested deeper than 64')
    bad(`${'('.repeat(100_000)}`, 'nested deeper than 64')
  })
})

describe('the record’s checks (INVALID_ARGUMENT, naming the field)', () => {
  const refused = (input: unknown, ...parts: (string | RegExp)[]) =>
    says(
      caught(() => xenopsRecord(input as never)),
      'INVALID_ARGUMENT',
      ...parts,
    )

  it('refuses bad values', () => {
    refused(null, 'record', 'expected an object')
    refused({ vm: VM, wordSize: 64.5 }, 'record.wordSize', '64.5')
    refused({ vm: VM, wordSize: 16 }, 'record.wordSize', '32 or 64')
    refused({ vm: VM, time: 'now' }, 'record.time')
    refused({ vm: VM, time: new Date(Number.NaN) }, 'record.time')
    refused({ vm: VM, time: 5 }, 'record.time')
    refused({}, 'record.vm', 'expected an object')
    refused({ vm: { ...VM, memoryTotalSourceKib: -1 } }, 'record.vm.memoryTotalSourceKib', '-1')
    refused({ vm: { ...VM, memoryTotalSourceKib: 1.5 } }, 'record.vm.memoryTotalSourceKib')
    refused({ vm: { ...VM, memoryTotalSourceKib: 2 ** 53 } }, 'record.vm.memoryTotalSourceKib')
    refused({ vm: { config: { ...VM.config, type: 'hvm' }, memoryTotalSourceKib: 1 } }, 'record.vm.config.type', 'PV and PVH')
    refused({ vm: { config: { ...VM.config, vcpus: 0 }, memoryTotalSourceKib: 1 } }, 'record.vm.config.vcpus')
    refused({ vm: { config: { ...VM.config, hardAffinity: [] }, memoryTotalSourceKib: 1 } }, 'record.vm.config.hardAffinity')
    refused({ vm: VM, xenstoreSubtree: 'a' }, 'record.xenstoreSubtree')
    refused({ vm: VM, xenstoreSubtree: [['a']] }, 'record.xenstoreSubtree[0]', 'pair')
    refused({ vm: VM, xenstoreSubtree: [['a\0', 'b']] }, 'record.xenstoreSubtree[0][0]', 'NUL')
    refused({ vm: VM, xenstoreSubtree: [['a', 'b\0']] }, 'record.xenstoreSubtree[0][1]', 'NUL')
    refused({ vm: VM, xenstoreSubtree: [['', 'b']] }, 'record.xenstoreSubtree[0][0]', 'empty')
    refused({ vm: VM, xenstoreSubtree: [[1, 'b']] }, 'record.xenstoreSubtree[0][0]', 'string')
    refused({ vm: VM, xenstoreSubtree: [['a', 'b\ud800']] }, 'record.xenstoreSubtree[0][1]', 'lone surrogate')
  })

  it('refuses to encode a record a reader would refuse as too long', () => {
    const huge = xenopsRecord({ vm: VM, xenstoreSubtree: [['k', 'x'.repeat(MAX_XENOPS_RECORD_BYTES - 10)]] })
    says(
      caught(() => encodeXenopsRecord(huge)),
      'INVALID_ARGUMENT',
      'record',
      'more than',
    )
    says(
      caught(() => decodeImageHeader('not bytes' as never)),
      'INVALID_ARGUMENT',
      'bytes',
    )
  })

  it('a record passed back in comes out equal', () => {
    const r = record({ xenstoreSubtree: [['a', 'b']], wordSize: 32 })
    expect(xenopsRecord(r)).toEqual(r)
  })
})
