/**
 * xenopsd's suspend image (https://github.com/xen-domain-build/xen-domain-build/blob/main/docs/ARCHITECTURE.md#suspend-image):
 * the signature, the Xenops record (the VM's metadata, an S-expression), the
 * header of the Libxc record that the libxc migration stream follows, and the
 * End_of_image record after that stream.
 *
 * The image travels over a file descriptor the domain builder shares: the
 * builder writes or reads the libxc stream on the same fd, between this
 * module's records. So the reader reads exactly the bytes of each header and
 * body, never one more, and both sides work at the fd's current offset
 * (`position` null), which the child shares. The reads and writes are
 * asynchronous: the event loop is never blocked, on a file or a pipe.
 */
import { read, write } from 'node:fs'
import type { VmConfig } from './build-pre.js'
import { cString, fileDescriptor } from './checks.js'
import { describe, ERRNO_NAMES, type ErrnoCode, invalidArgument, isXenDomainBuildError, XenDomainBuildError } from './errors.js'
import { checkVmMemory } from './memory.js'
import { delay } from './timers.js'
import { MIB } from './units.js'

/** The signature an image starts with (xenopsd's `save_signature`, Xen 4.5 on). */
export const SUSPEND_IMAGE_SIGNATURE = 'XenSavedDomv2-\n'
/** The signature of the images from before Xen 4.5 (xenopsd's `legacy_save_signature`): they need converting before a restore. */
export const LEGACY_SUSPEND_IMAGE_SIGNATURE = 'XenSavedDomain\n'
/** A record's header: its type, then its body's length in bytes, each a little-endian 64-bit integer. */
export const RECORD_HEADER_BYTES = 16
/** The longest Xenops record a reader takes (16 MiB): a longer length is corruption, not memory to allocate. */
export const MAX_XENOPS_RECORD_BYTES = 16 * MIB

/**
 * The record types xenopsd knows (its `header_type`), by its names. This
 * package writes and reads `Xenops`, `Libxc` and `End_of_image`; every other
 * type is refused by name, and a type not here by its number.
 */
export const RECORD_TYPES = {
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
} as const

/** A record type's name, as xenopsd names it. */
export type RecordName = keyof typeof RECORD_TYPES

/** What each record holds, for the messages. */
const HOLDS: Record<RecordName, string> = {
  Xenops: "the VM's metadata",
  Libxc: 'the memory image',
  Libxl: "libxl's save record",
  Libxc_legacy: 'a pre-Xen-4.5 libxc stream with a QEMU record',
  Qemu_trad: "qemu-trad's device state",
  Qemu_xen: "upstream QEMU's device state",
  Demu: 'vGPU state',
  Varstored: 'UEFI variables',
  Swtpm0: 'vTPM state',
  Swtpm: 'vTPM state',
  End_of_image: 'the end of the image',
}
const NAMES = new Map<bigint, RecordName>(Object.entries(RECORD_TYPES).map(([name, type]) => [BigInt(type), name as RecordName]))

/** What the VM string of our Xenops record holds, as JSON (xenopsd keeps its own VM record there). */
const VM_FORMAT = 'xen-domain-build/suspended-vm/1'

/** The VM a suspend image is of: what a restore needs to build its new domain. */
export interface SuspendedVm {
  /** The VM as it was built (PV or PVH): its memory, vCPUs and affinity. */
  readonly config: VmConfig
  /**
   * The memory the domain held when it was suspended, KiB (its total pages
   * × 4): a restore, on this host or another, sizes its claim with it.
   */
  readonly memoryTotalSourceKib: number
}

/**
 * The Xenops record: xenopsd's `Xenops_record.t`, with our VM metadata where
 * xenopsd keeps its own VM record (`vm_str`). Make one with `xenopsRecord`.
 */
export interface XenopsRecord {
  /** When it was made, in xenopsd's form: UTC, `20250102T03:04:05Z`. */
  readonly time: string
  /** The writer's word size in bits (xenopsd's `Sys.word_size`): 64. */
  readonly wordSize: 32 | 64
  /** The VM (`vm_str`, as JSON). */
  readonly vm: SuspendedVm
  /**
   * xenstore keys and values (`xs_subtree`). xenopsd writes none (CA-248130)
   * and its restore ignores them; kept for the format's sake.
   */
  readonly xenstoreSubtree: readonly (readonly [key: string, value: string])[]
}

/** What `xenopsRecord` makes a record of: a `XenopsRecord`, with defaults for all but the VM. */
export interface XenopsRecordInput {
  /** A Date, or a string in xenopsd's form (`20250102T03:04:05Z`); now when absent. */
  time?: Date | string
  /** 32 or 64; 64 when absent. */
  wordSize?: number
  /** The VM the image is of. */
  vm: SuspendedVm
  /** None when absent. */
  xenstoreSubtree?: readonly (readonly [key: string, value: string])[]
}

/** What `readImageHeader` found before the libxc stream. */
export interface SuspendImageHeader {
  /** The Xenops record, checked as `xenopsRecord` checks one. */
  record: XenopsRecord
  /**
   * Where the libxc stream starts: the bytes from the image's first byte to
   * the end of the Libxc record's header, which is all the reader read.
   */
  libxcOffset: number
}

// ------------------------------------------------------- the Xenops record

/** The field names a caller's record is checked under (the image's are xenopsd's: `vm_str`, ...). */
interface FieldNames {
  time: string
  wordSize: string
  vm: string
  subtree: string
}
const CALLER: FieldNames = { time: 'record.time', wordSize: 'record.wordSize', vm: 'record.vm', subtree: 'record.xenstoreSubtree' }

/** xenopsd's time form (its `Date.to_rfc3339`): `YYYYMMDDThh:mm:ss`, then `Z`, an offset or nothing. */
const XENOPSD_TIME = /^\d{8}T\d{2}:\d{2}:\d{2}(Z|[+-]\d{2}:\d{2})?$/

function checkTime(field: string, value: unknown): string {
  if (value === undefined) return xenopsdTime(new Date())
  if (value instanceof Date) {
    if (Number.isNaN(value.getTime()) || value.getUTCFullYear() < 0 || value.getUTCFullYear() > 9999) {
      throw invalidArgument(field, 'is not a date from year 0 to 9999')
    }
    return xenopsdTime(value)
  }
  if (typeof value !== 'string' || !XENOPSD_TIME.test(value)) {
    throw invalidArgument(field, `${describe(value)} is not a Date nor a time in xenopsd's form (20250102T03:04:05Z)`)
  }
  return value
}

function xenopsdTime(date: Date): string {
  const two = (n: number) => String(n).padStart(2, '0')
  const day = `${String(date.getUTCFullYear()).padStart(4, '0')}${two(date.getUTCMonth() + 1)}${two(date.getUTCDate())}`
  return `${day}T${two(date.getUTCHours())}:${two(date.getUTCMinutes())}:${two(date.getUTCSeconds())}Z`
}

function checkWordSize(field: string, value: unknown): 32 | 64 {
  if (value === undefined) return 64
  if (value !== 32 && value !== 64) throw invalidArgument(field, `${describe(value)} is not a word size (32 or 64)`)
  return value
}

/** A VM's config, checked as a build checks it, copied field by field (nothing else rides along). */
function checkConfig(field: string, value: unknown): VmConfig {
  checkVmMemory(value as VmConfig, field)
  const config = value as VmConfig
  if (config.type === 'hvm') {
    throw invalidArgument(
      `${field}.type`,
      'is "hvm": this package suspends and restores PV and PVH domains only, which have no device model',
    )
  }
  const copy: VmConfig = { type: config.type, staticMaxKib: config.staticMaxKib, targetKib: config.targetKib, vcpus: config.vcpus }
  if (config.videoMib !== undefined) copy.videoMib = config.videoMib
  if (config.shadowMultiplier !== undefined) copy.shadowMultiplier = config.shadowMultiplier
  if (config.pvShim !== undefined) copy.pvShim = config.pvShim
  if (config.hardAffinity !== undefined) {
    const masks: unknown = config.hardAffinity
    if (!Array.isArray(masks) || masks.length === 0)
      throw invalidArgument(`${field}.hardAffinity`, 'expected a non-empty array of CPU lists')
    copy.hardAffinity = masks.map((mask: unknown, i) => {
      if (!Array.isArray(mask) || mask.length === 0) throw invalidArgument(`${field}.hardAffinity[${i}]`, 'expected a non-empty CPU list')
      return mask.map((cpu: unknown, j) => {
        if (typeof cpu !== 'number' || !Number.isSafeInteger(cpu)) {
          throw invalidArgument(`${field}.hardAffinity[${i}][${j}]`, `${describe(cpu)} is not a CPU id`)
        }
        return cpu
      })
    })
  }
  return copy
}

function checkVm(field: string, value: unknown): SuspendedVm {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw invalidArgument(field, `expected an object, got ${describe(value)}`)
  }
  const vm = value as Partial<SuspendedVm>
  const config = checkConfig(`${field}.config`, vm.config)
  const kib = vm.memoryTotalSourceKib
  if (typeof kib !== 'number' || !Number.isSafeInteger(kib) || kib < 0) {
    throw invalidArgument(`${field}.memoryTotalSourceKib`, `${describe(kib)} is not a whole number of KiB ≥ 0`)
  }
  return { config, memoryTotalSourceKib: kib }
}

function checkSubtree(field: string, value: unknown): readonly (readonly [string, string])[] {
  if (value === undefined) return []
  if (!Array.isArray(value)) throw invalidArgument(field, `expected an array of [key, value] pairs, got ${describe(value)}`)
  return value.map((pair: unknown, i) => {
    if (!Array.isArray(pair) || pair.length !== 2)
      throw invalidArgument(`${field}[${i}]`, `expected a [key, value] pair, got ${describe(pair)}`)
    const key = unicode(`${field}[${i}][0]`, pair[0])
    if (key === '') throw invalidArgument(`${field}[${i}][0]`, 'is empty')
    return [key, unicode(`${field}[${i}][1]`, pair[1])] as const
  })
}

/** A string without NUL bytes that UTF-8 can hold as it is: no lone surrogate, which would come back as U+FFFD. */
function unicode(field: string, value: unknown): string {
  const text = cString(field, value, MAX_XENOPS_RECORD_BYTES)
  if (/\p{Cs}/u.test(text)) throw invalidArgument(field, 'has a lone surrogate (not Unicode that UTF-8 can hold)')
  return text
}

/**
 * A Xenops record from its parts, checked: a time in xenopsd's form (or a
 * Date), a word size of 32 or 64, a PV or PVH VM config as a build takes it,
 * a whole `memoryTotalSourceKib` ≥ 0, and xenstore pairs of strings without
 * NUL bytes or lone surrogates (keys not empty). Anything else is refused with INVALID_ARGUMENT
 * naming the field. A record passed back in is checked again and comes out
 * equal. (Its size is checked when it is encoded: at most
 * `MAX_XENOPS_RECORD_BYTES`.)
 */
export function xenopsRecord(input: XenopsRecordInput): XenopsRecord {
  if (input === null || typeof input !== 'object' || Array.isArray(input)) {
    throw invalidArgument('record', `expected an object, got ${describe(input)}`)
  }
  return {
    time: checkTime(CALLER.time, input.time),
    wordSize: checkWordSize(CALLER.wordSize, input.wordSize),
    vm: checkVm(CALLER.vm, input.vm),
    xenstoreSubtree: checkSubtree(CALLER.subtree, input.xenstoreSubtree),
  }
}

/** The VM string: our metadata as JSON, the format named first. */
function vmString(vm: SuspendedVm): string {
  return JSON.stringify({ format: VM_FORMAT, config: vm.config, memoryTotalSourceKib: vm.memoryTotalSourceKib })
}

/**
 * The Xenops record's body, as xenopsd writes it (sexplib's machine form of
 * its derived S-expression): `((time T)(word_size 64)(vm_str"…")(xs_subtree(…)))`.
 * Checks the record (`xenopsRecord`) and its size.
 */
export function encodeXenopsRecord(record: XenopsRecordInput): Buffer {
  const r = xenopsRecord(record)
  const body = encodeSexp([
    ['time', r.time],
    ['word_size', String(r.wordSize)],
    ['vm_str', vmString(r.vm)],
    ['xs_subtree', r.xenstoreSubtree.map(([key, value]) => [key, value])],
  ])
  if (body.length > MAX_XENOPS_RECORD_BYTES) {
    throw invalidArgument('record', `its Xenops record is ${body.length} bytes, more than the ${MAX_XENOPS_RECORD_BYTES} a reader takes`)
  }
  return body
}

/** Says where a problem in a record body is: `at` is the byte within the body. */
type Fail = (at: number, problem: string) => XenDomainBuildError

/**
 * A Xenops record from its body, as xenopsd parses it (sexplib's
 * `Sexp.of_string`, then the derived `t_of_sexp`: fields in any order, none
 * twice, none unknown, `time` and `word_size` required), and then as this
 * package needs it: `vm_str` must be our VM metadata, checked as
 * `xenopsRecord` checks it. Anything else is INVALID_SUSPEND_IMAGE, saying at
 * which byte of the body.
 */
export function decodeXenopsRecord(body: Uint8Array): XenopsRecord {
  return decodeBody(
    bytesOf('body', body),
    (at, problem) => new XenDomainBuildError('INVALID_SUSPEND_IMAGE', `Xenops record, byte ${at}: ${problem}`),
  )
}

const FIELDS = ['time', 'word_size', 'vm_str', 'xs_subtree'] as const
type FieldName = (typeof FIELDS)[number]

function decodeBody(body: Buffer, fail: Fail): XenopsRecord {
  const top = parseSexp(body, fail)
  if (!('list' in top)) throw fail(top.at, 'the record is an atom, not a list of (name value) fields')
  const fields = new Map<FieldName, SexpNode>()
  for (const field of top.list) {
    const [name, value, ...rest] = 'list' in field ? field.list : []
    if (name === undefined || value === undefined || rest.length > 0 || !('atom' in name)) {
      throw fail(field.at, 'a field that is not a (name value) pair')
    }
    const text = name.atom.toString('latin1')
    if (!(FIELDS as readonly string[]).includes(text)) {
      throw fail(field.at, `an unknown field ${describe(text)} (a Xenops record has ${FIELDS.join(', ')})`)
    }
    if (fields.has(text as FieldName)) throw fail(field.at, `the field ${text} twice`)
    fields.set(text as FieldName, value)
  }
  const required = (name: FieldName): SexpNode => {
    const node = fields.get(name)
    if (node === undefined) {
      throw fail(top.at, name === 'vm_str' ? 'no vm_str field: the record has no VM metadata' : `no ${name} field`)
    }
    return node
  }
  // Each field's checks are the caller's, their refusals said of the image.
  const image = <T>(node: SexpNode, check: () => T): T => {
    try {
      return check()
    } catch (error) {
      if (isXenDomainBuildError(error, 'INVALID_ARGUMENT')) throw fail(node.at, error.message)
      throw error
    }
  }
  const timeNode = required('time')
  const time = image(timeNode, () => checkTime('time', text(timeNode, 'time', fail)))
  const wordNode = required('word_size')
  const wordText = text(wordNode, 'word_size', fail)
  if (!/^\d{1,4}$/.test(wordText)) throw fail(wordNode.at, `word_size ${describe(wordText)} is not a whole number`)
  const wordSize = image(wordNode, () => checkWordSize('word_size', Number(wordText)))
  const vmNode = required('vm_str')
  const vm = image(vmNode, () => checkVm('vm_str', vmMetadata(text(vmNode, 'vm_str', fail), vmNode.at, fail)))
  const subtreeNode = fields.get('xs_subtree')
  const xenstoreSubtree = subtreeNode === undefined ? [] : image(subtreeNode, () => checkSubtree('xs_subtree', subtree(subtreeNode, fail)))
  return { time, wordSize, vm, xenstoreSubtree }
}

/** The VM metadata a `vm_str` holds, before its checks. */
function vmMetadata(vmStr: string, at: number, fail: Fail): unknown {
  if (vmStr.startsWith('(')) {
    throw fail(at, "vm_str holds xenopsd's own VM record (an S-expression), not this package's VM metadata: an image xenopsd wrote")
  }
  let value: unknown
  try {
    value = JSON.parse(vmStr)
  } catch (error) {
    throw fail(at, `vm_str is not JSON: ${(error as Error).message}`)
  }
  const object = value as { format?: unknown; config?: unknown; memoryTotalSourceKib?: unknown } | null
  if (object === null || typeof object !== 'object' || Array.isArray(object) || object.format !== VM_FORMAT) {
    throw fail(at, `vm_str is not this package's VM metadata (a JSON object whose format is ${JSON.stringify(VM_FORMAT)})`)
  }
  return { config: object.config, memoryTotalSourceKib: object.memoryTotalSourceKib }
}

const UTF8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true })

/** An atom's text; a list or bytes that are not UTF-8 are refused. */
function text(node: SexpNode, field: string, fail: Fail): string {
  if (!('atom' in node)) throw fail(node.at, `${field} is a list, not an atom`)
  try {
    return UTF8.decode(node.atom)
  } catch {
    throw fail(node.at, `${field} is not UTF-8`)
  }
}

function subtree(node: SexpNode, fail: Fail): [string, string][] {
  if (!('list' in node)) throw fail(node.at, 'xs_subtree is an atom, not a list of (key value) pairs')
  return node.list.map((pair) => {
    const [key, value, ...rest] = 'list' in pair ? pair.list : []
    if (key === undefined || value === undefined || rest.length > 0)
      throw fail(pair.at, 'an xs_subtree entry that is not a (key value) pair')
    return [text(key, 'an xs_subtree key', fail), text(value, 'an xs_subtree value', fail)]
  })
}

// --------------------------------------------------------- S-expressions

/** An S-expression to write: an atom (a string, written as UTF-8) or a list. */
type Sexp = string | readonly Sexp[]

/** An S-expression read: an atom's bytes or a list, with the byte it starts at. */
type SexpNode = { readonly at: number; readonly atom: Buffer } | { readonly at: number; readonly list: SexpNode[] }

const SPACE = 0x20
const TAB = 0x09
const NEWLINE = 0x0a
const RETURN = 0x0d
const FORM_FEED = 0x0c
const QUOTE = 0x22
const HASH = 0x23
const OPEN = 0x28
const CLOSE = 0x29
const SEMICOLON = 0x3b
const BACKSLASH = 0x5c
const PIPE = 0x7c

const isSpace = (c: number | undefined) => c === SPACE || c === TAB || c === NEWLINE || c === RETURN || c === FORM_FEED
const isDelimiter = (c: number | undefined) => isSpace(c) || c === OPEN || c === CLOSE || c === QUOTE || c === SEMICOLON

/**
 * Whether an atom must be quoted: sexplib's `must_escape` (empty; a quote,
 * parenthesis, semicolon or backslash; a byte that is not printable ASCII or
 * is a space; `#|` or `|#`), and one rule of ours: an atom that starts with
 * `#;`, which a reader would take for an S-expression comment (sexplib writes
 * it bare).
 */
function mustQuote(atom: Buffer): boolean {
  if (atom.length === 0 || (atom[0] === HASH && atom[1] === SEMICOLON)) return true
  for (let i = 0; i < atom.length; i++) {
    const c = atom[i] as number
    if (c === QUOTE || c === OPEN || c === CLOSE || c === SEMICOLON || c === BACKSLASH || c <= SPACE || c >= 0x7f) return true
    if (i > 0 && ((c === PIPE && atom[i - 1] === HASH) || (c === HASH && atom[i - 1] === PIPE))) return true
  }
  return false
}

/** A quoted atom as sexplib escapes it (OCaml's `String.escaped`): `\"`, `\\`, `\n`, `\t`, `\r`, `\b`, other bytes outside printable ASCII as `\DDD`. */
function quote(atom: Buffer): Buffer {
  const out = Buffer.allocUnsafe(atom.length * 4 + 2)
  let n = 0
  out[n++] = QUOTE
  for (const c of atom) {
    const short = c === QUOTE || c === BACKSLASH ? c : c === NEWLINE ? 0x6e : c === TAB ? 0x74 : c === RETURN ? 0x72 : c === 0x08 ? 0x62 : 0
    if (short !== 0) {
      out[n++] = BACKSLASH
      out[n++] = short
    } else if (c >= SPACE && c <= 0x7e) {
      out[n++] = c
    } else {
      out[n++] = BACKSLASH
      n += out.write(String(c).padStart(3, '0'), n, 'latin1')
    }
  }
  out[n++] = QUOTE
  return out.subarray(0, n)
}

/**
 * sexplib's machine form (`Sexp.to_string`): no space but between two bare
 * atoms, `()` for an empty list.
 */
function encodeSexp(sexp: Sexp): Buffer {
  const out: Buffer[] = []
  const OPEN_BYTES = Buffer.from('(')
  const CLOSE_BYTES = Buffer.from(')')
  const SPACE_BYTES = Buffer.from(' ')
  // Returns whether a bare atom came last (the next bare atom needs a space).
  const emit = (s: Sexp, mayNeedSpace: boolean): boolean => {
    if (typeof s === 'string') {
      const atom = Buffer.from(s, 'utf8')
      if (mustQuote(atom)) {
        out.push(quote(atom))
        return false
      }
      if (mayNeedSpace) out.push(SPACE_BYTES)
      out.push(atom)
      return true
    }
    out.push(OPEN_BYTES)
    let bare = false
    for (const item of s) bare = emit(item, bare)
    out.push(CLOSE_BYTES)
    return false
  }
  emit(sexp, false)
  return Buffer.concat(out)
}

/** Lists nested deeper than this are refused (the record needs 4). */
const MAX_SEXP_DEPTH = 64

/**
 * One S-expression, as sexplib reads one: blanks and `;` comments between
 * atoms; bare atoms; quoted ones with OCaml's escapes (`\n \t \b \r \\ \"
 * \' \space`, `\DDD` decimal, `\xHH`, a backslash-newline skipping the next
 * line's leading blanks, any other backslash kept as it is). Block and
 * S-expression comments (`#| |#`, `#;`), which sexplib never writes, are
 * refused, as is anything after the expression. No recursion: a deep nest
 * is a refusal, not a stack overflow.
 */
function parseSexp(b: Buffer, fail: Fail): SexpNode {
  const open: { at: number; list: SexpNode[] }[] = []
  let result: SexpNode | undefined
  const done = (node: SexpNode) => {
    const parent = open.at(-1)
    if (parent !== undefined) parent.list.push(node)
    else if (result !== undefined) throw fail(node.at, 'more after the S-expression')
    else result = node
  }
  let i = 0
  while (i < b.length) {
    const c = b[i]
    if (isSpace(c)) {
      i++
    } else if (c === SEMICOLON) {
      while (i < b.length && b[i] !== NEWLINE) i++
    } else if (c === OPEN) {
      if (open.length >= MAX_SEXP_DEPTH) throw fail(i, `lists nested deeper than ${MAX_SEXP_DEPTH}`)
      open.push({ at: i, list: [] })
      i++
    } else if (c === CLOSE) {
      const list = open.pop()
      if (list === undefined) throw fail(i, 'a ")" that closes no list')
      i++
      done(list)
    } else if (c === QUOTE) {
      const at = i
      const [atom, next] = quotedAtom(b, i, fail)
      i = next
      done({ at, atom })
    } else {
      const at = i
      if (c === HASH && b[i + 1] === SEMICOLON) throw fail(i, 'an S-expression comment ("#;"), which this reader does not take')
      while (i < b.length && !isDelimiter(b[i])) {
        if (b[i] === HASH && b[i + 1] === PIPE) throw fail(i, 'a block comment ("#|"), which this reader does not take')
        if (b[i] === PIPE && b[i + 1] === HASH) throw fail(i, 'a "|#" that ends no block comment')
        i++
      }
      done({ at, atom: b.subarray(at, i) })
    }
  }
  const unclosed = open.at(-1)
  if (unclosed !== undefined) throw fail(unclosed.at, 'a "(" that is never closed')
  if (result === undefined) throw fail(0, 'no S-expression: the record is empty')
  return result
}

const isDigit = (c: number | undefined) => c !== undefined && c >= 0x30 && c <= 0x39
const hexValue = (c: number | undefined): number => {
  if (c === undefined) return -1
  if (c >= 0x30 && c <= 0x39) return c - 0x30
  const lower = c | 0x20
  return lower >= 0x61 && lower <= 0x66 ? lower - 0x61 + 10 : -1
}

/** The one-letter escapes of a quoted atom (`\n`, ...) and the byte each stands for. */
const ESCAPES = new Map([
  [0x6e, NEWLINE],
  [0x74, TAB],
  [0x62, 0x08],
  [0x72, RETURN],
  [BACKSLASH, BACKSLASH],
  [QUOTE, QUOTE],
  [0x27, 0x27],
  [SPACE, SPACE],
])

/** A quoted atom starting at `start` (its `"`): its bytes and the index after its closing `"`. */
function quotedAtom(b: Buffer, start: number, fail: Fail): [Buffer, number] {
  const out = Buffer.allocUnsafe(b.length - start)
  let n = 0
  let i = start + 1
  for (;;) {
    const c = b[i]
    if (c === undefined) throw fail(start, 'a quoted atom that is never closed')
    if (c === QUOTE) return [Buffer.from(out.subarray(0, n)), i + 1]
    if (c !== BACKSLASH) {
      out[n++] = c
      i++
      continue
    }
    const e = b[i + 1]
    const simple = e === undefined ? undefined : ESCAPES.get(e)
    if (e === undefined) {
      throw fail(start, 'a quoted atom that is never closed')
    } else if (simple !== undefined) {
      out[n++] = simple
      i += 2
    } else if (e === NEWLINE || (e === RETURN && b[i + 2] === NEWLINE)) {
      i += e === NEWLINE ? 2 : 3
      while (b[i] === SPACE || b[i] === TAB) i++
    } else if (isDigit(e)) {
      if (!isDigit(b[i + 2]) || !isDigit(b[i + 3])) throw fail(i, 'a "\\" and a digit that are not a three-digit escape')
      const value = Number(b.toString('latin1', i + 1, i + 4))
      if (value > 255) throw fail(i, `an escape "\\${value}" above 255`)
      out[n++] = value
      i += 4
    } else if (e === 0x78) {
      const high = hexValue(b[i + 2])
      const low = hexValue(b[i + 3])
      if (high < 0 || low < 0) throw fail(i, 'a "\\x" that is not followed by two hex digits')
      out[n++] = high * 16 + low
      i += 4
    } else {
      // sexplib keeps an escape it does not know as it is.
      out[n++] = BACKSLASH
      out[n++] = e
      i += 2
    }
  }
}

// ------------------------------------------------------------- the image

/** A record's header, read. */
interface Header {
  name: RecordName
  length: bigint
  /** Its first byte. */
  at: number
}

/** Where a parser is, and how its messages say so. */
interface Place {
  offset: number
  /** What the offset is from: '' (the image's first byte) or ' after the libxc stream'. */
  readonly from: string
}

function refusal(place: Place, at: number, problem: string): XenDomainBuildError {
  return new XenDomainBuildError('INVALID_SUSPEND_IMAGE', `suspend image, byte ${at}${place.from}: ${problem}`)
}

/**
 * A parser of part of an image: it yields how many bytes it needs next and
 * is handed them, fewer only where the input ended. The same parser runs over
 * a Buffer (`decode*`) and over an fd (`read*`).
 */
type Parser<T> = Generator<number, T, Buffer>

function* take(place: Place, bytes: number, what: string): Parser<Buffer> {
  const got = yield bytes
  if (got.length < bytes) {
    const into = got.length === 0 ? `before ${what}` : `${got.length} bytes into ${what}`
    throw refusal(place, place.offset + got.length, `truncated: the input ends ${into}, which is ${bytes} bytes`)
  }
  place.offset += bytes
  return got
}

function hex(type: bigint): string {
  return `0x${type.toString(16).padStart(4, '0')}`
}

function* recordHeader(place: Place, what: string): Parser<Header> {
  const at = place.offset
  const bytes = yield* take(place, RECORD_HEADER_BYTES, what)
  const type = bytes.readBigUInt64LE(0)
  const length = bytes.readBigUInt64LE(8)
  const name = NAMES.get(type)
  if (name === undefined)
    throw refusal(place, at, `a record of a type xenopsd does not know, ${hex(type)} (length ${length}), where ${what} should be`)
  return { name, length, at }
}

const DEVICE_STATE: readonly RecordName[] = ['Qemu_trad', 'Qemu_xen', 'Demu', 'Varstored', 'Swtpm0', 'Swtpm']

/** A record where another should be: what it is, and why that is refused. */
function misplaced(place: Place, found: Header, expected: 'Xenops' | 'Libxc' | 'End_of_image'): XenDomainBuildError {
  const where = `where the ${expected} record should be`
  const what = `a ${found.name} record (${HOLDS[found.name]}, type ${hex(BigInt(RECORD_TYPES[found.name]))}, length ${found.length})`
  let problem: string
  if (DEVICE_STATE.includes(found.name)) {
    problem = `${what} ${where}: this package restores PV and PVH domains only, which have no device model, vGPU, UEFI variables or vTPM`
  } else if (found.name === 'Libxc_legacy') {
    problem = `${what} ${where}: a libxc stream from before Xen 4.5, which needs converting before a restore`
  } else if (found.name === 'Libxl') {
    problem = `${what} ${where}: xenopsd's images have none (its restore refuses them too)`
  } else if (found.name === 'End_of_image') {
    problem = `the End_of_image record comes ${where}: the image has no ${expected} record (${HOLDS[expected]})`
  } else if (expected === 'Xenops') {
    problem = `${what} comes first, ${where}: the image has no VM metadata before its memory image`
  } else {
    problem = `a second ${found.name} record, ${where}`
  }
  return refusal(place, found.at, problem)
}

function* imageHeaderParser(): Parser<SuspendImageHeader> {
  const place: Place = { offset: 0, from: '' }
  const signature = (yield* take(place, SUSPEND_IMAGE_SIGNATURE.length, 'the signature')).toString('latin1')
  if (signature === LEGACY_SUSPEND_IMAGE_SIGNATURE) {
    throw refusal(
      place,
      0,
      `the legacy signature ${JSON.stringify(signature)}: an image from before Xen 4.5, which needs converting to the structured format (${JSON.stringify(SUSPEND_IMAGE_SIGNATURE)}) before a restore`,
    )
  }
  if (signature !== SUSPEND_IMAGE_SIGNATURE) {
    throw refusal(
      place,
      0,
      `not a suspend image: the signature is ${JSON.stringify(signature)}, not ${JSON.stringify(SUSPEND_IMAGE_SIGNATURE)}`,
    )
  }
  const xenops = yield* recordHeader(place, "the Xenops record's header")
  if (xenops.name !== 'Xenops') throw misplaced(place, xenops, 'Xenops')
  if (xenops.length > BigInt(MAX_XENOPS_RECORD_BYTES)) {
    throw refusal(
      place,
      xenops.at,
      `the Xenops record's length is ${xenops.length} bytes, more than the ${MAX_XENOPS_RECORD_BYTES} a reader takes`,
    )
  }
  const bodyAt = place.offset
  const body = yield* take(place, Number(xenops.length), "the Xenops record's body")
  const record = decodeBody(body, (at, problem) => refusal(place, bodyAt + at, `the Xenops record (its byte ${at}): ${problem}`))
  const libxc = yield* recordHeader(place, "the Libxc record's header")
  if (libxc.name !== 'Libxc') throw misplaced(place, libxc, 'Libxc')
  if (libxc.length !== 0n) {
    throw refusal(
      place,
      libxc.at,
      `the Libxc record's length is ${libxc.length}, not 0: the libxc stream follows its header and delimits itself`,
    )
  }
  return { record, libxcOffset: place.offset }
}

function* imageEndParser(): Parser<void> {
  const place: Place = { offset: 0, from: ' after the libxc stream' }
  const end = yield* recordHeader(place, "the End_of_image record's header")
  if (end.name !== 'End_of_image') throw misplaced(place, end, 'End_of_image')
  if (end.length !== 0n) throw refusal(place, end.at, `the End_of_image record's length is ${end.length}, not 0`)
}

function header(type: number, length: number): Buffer {
  const bytes = Buffer.alloc(RECORD_HEADER_BYTES)
  bytes.writeBigUInt64LE(BigInt(type), 0)
  bytes.writeBigUInt64LE(BigInt(length), 8)
  return bytes
}

/**
 * The bytes before the libxc stream: the signature, the Xenops record's
 * header and body (`encodeXenopsRecord`), and the Libxc record's header,
 * whose length is 0. Checks the record (`xenopsRecord`).
 */
export function encodeImageHeader(record: XenopsRecordInput): Buffer {
  const body = encodeXenopsRecord(record)
  return Buffer.concat([
    Buffer.from(SUSPEND_IMAGE_SIGNATURE, 'latin1'),
    header(RECORD_TYPES.Xenops, body.length),
    body,
    header(RECORD_TYPES.Libxc, 0),
  ])
}

/** The End_of_image record that follows the libxc stream: a header of length 0. */
export function encodeImageEnd(): Buffer {
  return header(RECORD_TYPES.End_of_image, 0)
}

function bytesOf(field: string, value: unknown): Buffer {
  if (!(value instanceof Uint8Array)) throw invalidArgument(field, `expected a Buffer or Uint8Array, got ${describe(value)}`)
  return Buffer.from(value.buffer, value.byteOffset, value.byteLength)
}

function parseBytes<T>(parser: Parser<T>, bytes: Buffer): T {
  let position = 0
  let step = parser.next()
  while (!step.done) {
    const n = Math.min(step.value, bytes.length - position)
    const chunk = bytes.subarray(position, position + n)
    position += n
    step = parser.next(chunk)
  }
  return step.value
}

/**
 * `readImageHeader` over a Buffer that starts with an image: its Xenops
 * record, and where the libxc stream starts (the bytes from there on are not
 * looked at). Refuses what `readImageHeader` refuses.
 */
export function decodeImageHeader(bytes: Uint8Array): SuspendImageHeader {
  return parseBytes(imageHeaderParser(), bytesOf('bytes', bytes))
}

/**
 * `readImageEnd` over a Buffer that starts where the libxc stream ended: it
 * must start with the End_of_image record (what follows is not looked at).
 */
export function decodeImageEnd(bytes: Uint8Array): void {
  parseBytes(imageEndParser(), bytesOf('bytes', bytes))
}

// ----------------------------------------------------------- the fd side

/** A read or write the fd is not ready for (a non-blocking fd), or one a signal cut short: tried again. */
function tryAgain(error: unknown): boolean {
  const code = (error as NodeJS.ErrnoException | null)?.code
  return code === 'EAGAIN' || code === 'EWOULDBLOCK' || code === 'EINTR'
}

/** Retries of a non-blocking fd wait 1 ms, then twice as long each time, up to this. */
const MAX_RETRY_MS = 50

/** A failed read or write of the fd: EBADF is the caller's fd; anything else an errno error, as a hypercall's. */
function ioFailure(error: unknown, operation: 'read' | 'write', fd: number): unknown {
  const e = error as NodeJS.ErrnoException | null
  if (typeof e?.code !== 'string' || typeof e.errno !== 'number') return error
  if (e.code === 'EBADF') return invalidArgument('fd', `${fd} is not open for ${operation === 'read' ? 'reading' : 'writing'} (EBADF)`)
  const errno = Math.abs(e.errno)
  const code: ErrnoCode = (ERRNO_NAMES as readonly string[]).includes(e.code) ? (e.code as ErrnoCode) : `E${errno}`
  return new XenDomainBuildError(code, `suspend image: ${operation} of fd ${fd} failed: ${e.message}`, { cause: error, errno, operation })
}

function readOnce(fd: number, buffer: Buffer, offset: number, length: number): Promise<number> {
  return new Promise((resolve, reject) =>
    read(fd, buffer, offset, length, null, (error, count) => (error ? reject(error) : resolve(count))),
  )
}

function writeOnce(fd: number, buffer: Buffer, offset: number, length: number): Promise<number> {
  return new Promise((resolve, reject) =>
    write(fd, buffer, offset, length, null, (error, count) => (error ? reject(error) : resolve(count))),
  )
}

/** Reads `n` bytes from the fd's current offset, fewer only at its end: never one more. */
export async function readUpTo(fd: number, n: number): Promise<Buffer> {
  const buffer = Buffer.alloc(n)
  let got = 0
  let waitMs = 1
  while (got < n) {
    let count: number
    try {
      count = await readOnce(fd, buffer, got, n - got)
    } catch (error) {
      if (!tryAgain(error)) throw ioFailure(error, 'read', fd)
      await delay(waitMs)
      waitMs = Math.min(2 * waitMs, MAX_RETRY_MS)
      continue
    }
    if (count === 0) break
    got += count
    waitMs = 1
  }
  return got === n ? buffer : buffer.subarray(0, got)
}

/** Writes all of `bytes` at the fd's current offset (the simulated builder's stream uses it too). */
export async function writeAll(fd: number, bytes: Buffer): Promise<void> {
  let written = 0
  let waitMs = 1
  while (written < bytes.length) {
    let count: number
    try {
      count = await writeOnce(fd, bytes, written, bytes.length - written)
    } catch (error) {
      if (!tryAgain(error)) throw ioFailure(error, 'write', fd)
      count = 0
    }
    if (count === 0) {
      await delay(waitMs)
      waitMs = Math.min(2 * waitMs, MAX_RETRY_MS)
      continue
    }
    written += count
    waitMs = 1
  }
}

async function parseFd<T>(parser: Parser<T>, fd: number): Promise<T> {
  let step = parser.next()
  while (!step.done) step = parser.next(await readUpTo(fd, step.value))
  return step.value
}

/**
 * Writes the start of an image at the fd's current offset: the signature,
 * the Xenops record, and the Libxc record's header (`encodeImageHeader`).
 * The fd is left where the libxc stream goes, for the domain builder to
 * write it. A bad record or fd is INVALID_ARGUMENT; a failed write is its
 * errno's code (`ENOSPC`, `EPIPE`, ...).
 */
export async function writeImageHeader(fd: number, record: XenopsRecordInput): Promise<void> {
  fileDescriptor('fd', fd)
  await writeAll(fd, encodeImageHeader(record))
}

/** Writes the End_of_image record at the fd's current offset: after the libxc stream, the image's last bytes. */
export async function writeImageEnd(fd: number): Promise<void> {
  fileDescriptor('fd', fd)
  await writeAll(fd, encodeImageEnd())
}

/**
 * Reads the start of an image from the fd's current offset: checks the
 * signature, reads the Xenops record and the Libxc record's header, and
 * leaves the fd at the libxc stream, for the domain builder to read: it reads
 * exactly those bytes, never ahead, from a file or a pipe. Refused, with
 * INVALID_SUSPEND_IMAGE and the byte offset from where it started:
 * - a wrong signature, and the legacy one (`LEGACY_SUSPEND_IMAGE_SIGNATURE`: the image needs converting);
 * - an input that ends early (in the signature, a header or the body);
 * - a record type xenopsd does not know (its number, in hex);
 * - any record but the Xenops record first and the Libxc record next,
 *   naming it: device state (QEMU, vGPU, UEFI variables, vTPM: this package
 *   restores PV and PVH domains only), libxl's and the legacy libxc records;
 * - a Xenops record longer than `MAX_XENOPS_RECORD_BYTES` (nothing is allocated for it);
 * - a Xenops record that is malformed, or not ours (`decodeXenopsRecord`);
 * - a Libxc record whose length is not 0.
 */
export async function readImageHeader(fd: number): Promise<SuspendImageHeader> {
  fileDescriptor('fd', fd)
  return parseFd(imageHeaderParser(), fd)
}

/**
 * Reads the End_of_image record from the fd's current offset, where the
 * libxc stream ended: 16 bytes, nothing after them. Anything else is
 * INVALID_SUSPEND_IMAGE naming it (a device state record, a record of an
 * unknown type, an end with a length, an input that ends first), its offset
 * counted from the end of the libxc stream.
 */
export async function readImageEnd(fd: number): Promise<void> {
  fileDescriptor('fd', fd)
  await parseFd(imageEndParser(), fd)
}
