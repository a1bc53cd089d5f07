/**
 * Fuzz: the public API and the CLI with arbitrary values (null,
 * undefined, NaN, Infinity, negatives, huge numbers, strings with NUL, 200 KB
 * strings, wrong types, nested junk). Seeded (fast-check, seed 42).
 *
 * Properties:
 * - every failure is a XenDomainBuildError (CLI: exit code 0-3, bad input is
 *   exit 2 with one line on stderr, never a stack trace);
 * - bad input to a build (a valid build with one field made bad) is refused
 *   with INVALID_ARGUMENT before any hypercall: the recording proxy of the
 *   simulated hypervisor sees no call but reads (physinfo, numaInfo,
 *   cpuTopology);
 * - the suspend image reader, over random bytes, mutated images and Xenops
 *   records of S-expression junk, from a Buffer and from a file: a record its
 *   own checks take back, or INVALID_SUSPEND_IMAGE at a byte of the input,
 *   and it settles (never hangs); valid records round-trip byte for byte;
 * - restoreDomain over a real image made by suspendDomain, damaged: restored,
 *   or INVALID_SUSPEND_IMAGE, XENGUEST_FAILED or INVALID_ARGUMENT; it settles,
 *   leaves no claim, and the domain can be destroyed.
 *
 * Each property runs over all its inputs and records what went wrong (fast-check
 * is told every input passed), so that the counts cover every input; the
 * assertions at the end list one example per kind of failure.
 */
import { spawnSync } from 'node:child_process'
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import fc from 'fast-check'
import { afterAll, describe, expect, it } from 'vitest'
import { buildDomain, type BuildDomainOptions } from '../../ts/build.js'
import { buildPre, type VmConfig } from '../../ts/build-pre.js'
import { createDomain } from '../../ts/domain.js'
import { XenDomainBuildError } from '../../ts/errors.js'
import { BuildHost } from '../../ts/host.js'
import { NumaPlanner, memoryModel, simulateHost } from '../../ts/index.js'
import { restoreDomain } from '../../ts/restore.js'
import { SimulatedGuest } from '../../ts/sim-guest.js'
import { SimulatedXenguest } from '../../ts/sim-xenguest.js'
import {
  decodeImageEnd,
  decodeImageHeader,
  decodeXenopsRecord,
  encodeImageEnd,
  encodeImageHeader,
  readImageEnd,
  readImageHeader,
  type XenopsRecordInput,
  xenopsRecord,
} from '../../ts/suspend-image.js'
import { suspendDomain } from '../../ts/suspend.js'
import { InMemoryXenstore } from '../../ts/xenstore-memory.js'
import { recording, ROOT } from '../helpers.js'
import { brief, leaks } from './harness.js'

const SEED = 42
const MIB_KIB = 1024
const MAX_ARG_STRLEN = 128 * 1024
const MAX_DOMID = 0x7fef
const BIG = 'x'.repeat(200 * 1024)

// ---------------------------------------------------------------- junk values

const special = fc.constantFrom<unknown>(
  null,
  undefined,
  NaN,
  Infinity,
  -Infinity,
  -1,
  -0,
  0,
  0.5,
  1,
  -(2 ** 31),
  2 ** 31,
  2 ** 32,
  2 ** 53,
  2 ** 64,
  Number.MAX_VALUE,
  Number.MIN_VALUE,
  '',
  ' ',
  '\0',
  'a\0b',
  BIG,
  `${BIG}\0`,
  '-mode',
  '--force',
  '1',
  'NaN',
  'hvm\0',
  'true',
  true,
  false,
  [],
  {},
  [null],
  [[]],
  [NaN],
  [-1],
  { length: 3 },
  Object.create(null),
  new Date(0),
  /x/,
  10n,
  -1n,
  Symbol('junk'),
  () => 1,
  new Proxy({}, {}),
  new Map([[1, 2]]),
  new Uint8Array(4),
  [BIG],
  ['a\0b'],
  { path: null },
  { path: 'a\0b' },
  [{ path: BIG }],
  { nested: { deeper: [undefined, null, NaN] } },
)
const junk: fc.Arbitrary<unknown> = fc.oneof(
  { weight: 4, arbitrary: special },
  {
    weight: 2,
    arbitrary: fc.anything({
      maxDepth: 2,
      withBigInt: true,
      withNullPrototype: true,
      withMap: true,
      withSet: true,
      withTypedArray: true,
      withSparseArray: true,
      withBoxedValues: true,
    }),
  },
  { weight: 1, arbitrary: fc.string({ unit: 'binary', maxLength: 30 }) },
  { weight: 1, arbitrary: fc.oneof(fc.integer(), fc.double()) },
  { weight: 1, arbitrary: fc.array(special, { maxLength: 3 }) },
)

// ------------------------------------------------------------ what is valid

const argString = (v: unknown): v is string => typeof v === 'string' && !v.includes('\0') && Buffer.byteLength(v) < MAX_ARG_STRLEN
const optional = (check: (v: unknown) => boolean) => (v: unknown) => v === undefined || check(v)
// Timeouts: any safe whole number of ms above 0 (long ones are chained past setTimeout's range).
const timeout = (v: unknown) => typeof v === 'number' && Number.isSafeInteger(v) && v > 0
const domidOrDom0 = (v: unknown) => Number.isSafeInteger(v) && (v as number) >= 0 && (v as number) <= MAX_DOMID
const wholeAtLeast = (min: number) => (v: unknown) => Number.isSafeInteger(v) && (v as number) >= min
const plainObject = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === 'object' && !Array.isArray(v)

type Where = 'domid' | 'vm' | 'options'
interface Field {
  where: Where
  /** undefined: the whole value. */
  name?: string
  valid(value: unknown, type: VmConfig['type'], cpuCount: number): boolean
}

/** The fields of a build, each with what counts as valid on its own. */
const FIELDS: Field[] = [
  { where: 'domid', valid: (v) => Number.isSafeInteger(v) && (v as number) >= 1 && (v as number) <= MAX_DOMID },
  { where: 'vm', valid: () => false },
  { where: 'vm', name: 'type', valid: (v, type) => v === type || v === 'hvm' || v === 'pv' || v === 'pvh' },
  { where: 'vm', name: 'staticMaxKib', valid: wholeAtLeast(1) },
  { where: 'vm', name: 'targetKib', valid: wholeAtLeast(1) },
  { where: 'vm', name: 'vcpus', valid: wholeAtLeast(1) },
  { where: 'vm', name: 'videoMib', valid: optional(wholeAtLeast(0)) },
  { where: 'vm', name: 'shadowMultiplier', valid: optional((v) => typeof v === 'number' && Number.isFinite(v) && v > 0) },
  { where: 'vm', name: 'pvShim', valid: optional((v) => typeof v === 'boolean') },
  {
    where: 'vm',
    name: 'hardAffinity',
    // CPU ids are whole numbers; those the host lacks are dropped (xenopsd), but the first vCPU's
    // mask must keep one of the host's 16 CPUs (the build's one vCPU).
    valid: optional(
      (v) =>
        Array.isArray(v) &&
        v.length > 0 &&
        v.every((m) => Array.isArray(m) && m.length > 0 && m.every((c) => Number.isSafeInteger(c))) &&
        (v[0] as number[]).some((c) => c >= 0 && c < 16),
    ),
  },
  // The whole options object: never valid for buildDomain (it needs a builder
  // and an image); for buildPre, an object or nothing is (see below).
  { where: 'options', valid: () => false },
  { where: 'options', name: 'xenguest', valid: (v) => plainObject(v) || v instanceof SimulatedXenguest },
  { where: 'options', name: 'image', valid: (v) => argString(v) && v !== '' },
  { where: 'options', name: 'cmdline', valid: optional(argString) },
  { where: 'options', name: 'ramdisk', valid: optional(argString) },
  {
    where: 'options',
    name: 'modules',
    valid: optional(
      (v) => Array.isArray(v) && v.every((m) => plainObject(m) && argString(m.path) && m.path !== '' && optional(argString)(m.cmdline)),
    ),
  },
  { where: 'options', name: 'extraArgs', valid: optional((v) => Array.isArray(v) && v.every(argString)) },
  { where: 'options', name: 'xenguestTimeoutMs', valid: optional(timeout) },
  { where: 'options', name: 'memoryTimeoutMs', valid: optional(timeout) },
  { where: 'options', name: 'force', valid: optional((v) => typeof v === 'boolean') },
  { where: 'options', name: 'nvidiaVgpu', valid: optional((v) => typeof v === 'boolean') },
  { where: 'options', name: 'storeDomid', valid: optional(domidOrDom0) },
  { where: 'options', name: 'consoleDomid', valid: optional(domidOrDom0) },
  { where: 'options', name: 'timeoffset', valid: optional((v) => typeof v === 'string' && !v.includes('\0')) },
  {
    where: 'options',
    name: 'extraKeys',
    valid: optional(
      (v) =>
        plainObject(v) && Object.entries(v).every(([k, x]) => k !== '' && !k.includes('\0') && typeof x === 'string' && !x.includes('\0')),
    ),
  },
  { where: 'options', name: 'signal', valid: optional((v) => v instanceof AbortSignal) },
  { where: 'options', name: 'onEvent', valid: optional((v) => typeof v === 'function') },
]
const fieldName = (f: Field) => (f.name === undefined ? f.where : `${f.where}.${f.name}`)

// ------------------------------------------------------------- bookkeeping

interface Tally {
  tried: number
  /** Exceptions that are not XenDomainBuildError. */
  foreign: number
  problems: Map<string, string>
}
const tallies = new Map<string, Tally>()
function tally(name: string): Tally {
  let t = tallies.get(name)
  if (t === undefined) {
    t = { tried: 0, foreign: 0, problems: new Map() }
    tallies.set(name, t)
  }
  return t
}
/** Records a problem, once per kind (the first, i.e. one example each). */
function problem(t: Tally, kind: string, example: string) {
  const key = kind.slice(0, 200)
  if (t.problems.size >= 60 && !t.problems.has(key)) return
  if (!t.problems.has(key)) t.problems.set(key, example.slice(0, 600))
}
function report(t: Tally): string[] {
  return [...t.problems].map(([kind, example]) => `${kind} — e.g. ${example}`)
}

/** A value as the report shows it: short, NULs and 200 KB strings visible. */
function show(value: unknown): string {
  if (typeof value === 'string')
    return value.length > 40
      ? `"${value.slice(0, 12).replaceAll('\0', '\\0')}…" (${value.length} chars${value.includes('\0') ? ', with NUL' : ''})`
      : JSON.stringify(value)
  if (typeof value === 'symbol' || typeof value === 'function' || typeof value === 'bigint') return String(value)
  if (typeof value === 'number') return String(value)
  if (value === undefined) return 'undefined'
  try {
    const text = JSON.stringify(value, (_k, v: unknown) =>
      typeof v === 'bigint' ? `${v}n` : typeof v === 'string' && v.length > 40 ? show(v) : v,
    )
    return text === undefined ? String(value) : text.length > 120 ? `${text.slice(0, 120)}…` : text
  } catch {
    return Object.prototype.toString.call(value)
  }
}

/** What kind of failure an error is, for grouping. */
function kindOf(error: unknown): string {
  if (error instanceof XenDomainBuildError) return `XenDomainBuildError ${error.code}`
  if (error instanceof Error) return `${error.constructor.name}: ${error.message.replace(/\d+/g, 'N').slice(0, 80)}`
  return `thrown ${typeof error}`
}

/** Settles `promise`, or says it hung. */
async function settle<T>(promise: Promise<T>, ms = 5000): Promise<{ ok: true; value: T } | { ok: false; error: unknown } | { hung: true }> {
  let timer: NodeJS.Timeout | undefined
  const hang = new Promise<{ hung: true }>((resolve) => (timer = setTimeout(() => resolve({ hung: true }), ms)))
  try {
    return await Promise.race([
      promise.then(
        (value) => ({ ok: true as const, value }),
        (error: unknown) => ({ ok: false as const, error }),
      ),
      hang,
    ])
  } finally {
    clearTimeout(timer)
  }
}

afterAll(() => {
  for (const [name, t] of tallies)
    console.log(
      `fuzz ${name}: ${t.tried} inputs tried, ${t.foreign} non-XenDomainBuildError exceptions, ${t.problems.size} kinds of problem`,
    )
  const total = [...tallies.values()].reduce((a, t) => ({ tried: a.tried + t.tried, foreign: a.foreign + t.foreign }), {
    tried: 0,
    foreign: 0,
  })
  console.log(`fuzz total: ${total.tried} inputs tried, ${total.foreign} non-XenDomainBuildError exceptions`)
})

// --------------------------------------------------------------- a build

async function simulated(type: VmConfig['type']) {
  const sim = simulateHost({ preset: 'two-socket-4-node' })
  const { xen, calls } = recording(sim.hypervisor())
  const xenstore = new InMemoryXenstore()
  const host = await BuildHost.create(xen, { xenstore })
  const domid = await sim.hypervisor().createDomain({ kind: type, maxVcpus: 1 })
  await xenstore.write(`/local/domain/${domid}/vm`, `/vm/vm-of-${domid}`)
  calls.length = 0
  const vm: Record<string, unknown> = { type, staticMaxKib: 256 * MIB_KIB, targetKib: 256 * MIB_KIB, vcpus: 1 }
  const options: Record<string, unknown> = { xenguest: new SimulatedXenguest(sim, { builderMs: 0 }), image: 'kernel' }
  return { sim, host, calls, domid, vm, options }
}

const types = fc.constantFrom<VmConfig['type']>('hvm', 'pv', 'pvh')

describe('fuzz: bad input to a build is refused before any hypercall', () => {
  for (const entry of ['buildDomain', 'buildPre'] as const) {
    const fields =
      entry === 'buildDomain'
        ? FIELDS
        : FIELDS.filter(
            (f) => f.where !== 'options' || ['signal', 'memoryTimeoutMs', 'onEvent'].includes(f.name ?? '') || f.name === undefined,
          )
    it(`${entry}: one field of a valid build made bad → INVALID_ARGUMENT, no hypercall`, { timeout: 60_000 }, async () => {
      const t = tally(`${entry} (one bad field)`)
      const cases = fc
        .tuple(types, fc.constantFrom(...fields), junk)
        .filter(([type, field, value]) => !field.valid(value, type, 16))
        // buildPre's options are all optional: an empty object or none is valid.
        .filter(
          ([, field, value]) =>
            !(entry === 'buildPre' && field.where === 'options' && field.name === undefined && (value === undefined || plainObject(value))),
        )
      await fc.assert(
        fc.asyncProperty(cases, async ([type, field, value]) => {
          t.tried++
          const s = await simulated(type)
          let domid: unknown = s.domid
          let vm: unknown = s.vm
          let options: unknown = s.options
          if (field.where === 'domid') domid = value
          else if (field.where === 'vm') vm = field.name === undefined ? value : { ...s.vm, [field.name]: value }
          else options = field.name === undefined ? value : { ...s.options, [field.name]: value }
          const input = `${type} build, ${fieldName(field)} = ${show(value)}`
          let run: Promise<unknown>
          try {
            run =
              entry === 'buildDomain'
                ? buildDomain(s.host, domid as number, vm as VmConfig, options as BuildDomainOptions)
                : buildPre(s.host, domid as number, vm as VmConfig, options as object)
          } catch (error) {
            // A synchronous throw from a Promise-returning function is itself a problem.
            run = Promise.reject(error)
            problem(t, `${fieldName(field)}: threw synchronously (${kindOf(error)})`, input)
          }
          const outcome = await settle(run)
          if ('hung' in outcome) problem(t, `${fieldName(field)}: did not settle within 5 s`, input)
          else if (outcome.ok) {
            problem(t, `${fieldName(field)}: bad value accepted, the build went on`, `${input} → built`)
            if (entry === 'buildPre') await (outcome.value as { release(): Promise<void> }).release()
          } else {
            const error = outcome.error
            if (!(error instanceof XenDomainBuildError)) {
              t.foreign++
              problem(t, `${fieldName(field)}: ${kindOf(error)}`, `${input} → ${brief(error)}`)
            } else if (error.code !== 'INVALID_ARGUMENT') {
              problem(t, `${fieldName(field)}: refused as ${error.code}, not INVALID_ARGUMENT`, `${input} → ${brief(error)}`)
            }
          }
          if (s.calls.length > 0) {
            problem(t, `${fieldName(field)}: hypercalls before the refusal`, `${input} → ${s.calls.map((c) => c[0]).join(', ')}`)
          }
          const left = await leaks(s.sim, s.host, [s.domid])
          if (left.length > 0) problem(t, `${fieldName(field)}: leaked`, `${input} → ${left.join('; ')}`)
          return true
        }),
        { seed: SEED, numRuns: 600 },
      )
      expect(report(t)).toEqual([])
    })
  }

  it('buildDomain: many fields junk at once → only XenDomainBuildErrors, and no hang', { timeout: 60_000 }, async () => {
    const t = tally('buildDomain (junk everywhere)')
    const optionalJunk = fc.option(junk, { nil: undefined, freq: 2 })
    const vmJunk = fc.record({
      type: fc.oneof(types, junk),
      staticMaxKib: fc.oneof(fc.constant(256 * MIB_KIB), junk),
      targetKib: fc.oneof(fc.constant(256 * MIB_KIB), junk),
      vcpus: fc.oneof(fc.constant(1), junk),
      videoMib: optionalJunk,
      shadowMultiplier: optionalJunk,
      hardAffinity: optionalJunk,
    })
    const optionsJunk = fc.record({
      image: fc.oneof(fc.constant('kernel'), junk),
      cmdline: optionalJunk,
      ramdisk: optionalJunk,
      modules: optionalJunk,
      extraArgs: optionalJunk,
      xenguestTimeoutMs: optionalJunk,
      memoryTimeoutMs: optionalJunk,
      storeDomid: optionalJunk,
      consoleDomid: optionalJunk,
      timeoffset: optionalJunk,
      extraKeys: optionalJunk,
      force: optionalJunk,
    })
    await fc.assert(
      fc.asyncProperty(types, fc.oneof(fc.constant<unknown>('valid'), junk), vmJunk, optionsJunk, async (type, domidJunk, vm, options) => {
        t.tried++
        const s = await simulated(type)
        const domid = domidJunk === 'valid' ? s.domid : domidJunk
        const input = `domid ${show(domid)}, vm ${show(vm)}, options ${show(options)}`
        let run: Promise<unknown>
        try {
          run = buildDomain(s.host, domid as number, vm as VmConfig, { ...s.options, ...options } as BuildDomainOptions)
        } catch (error) {
          run = Promise.reject(error)
          problem(t, `threw synchronously (${kindOf(error)})`, input)
        }
        const outcome = await settle(run)
        if ('hung' in outcome) problem(t, 'did not settle within 5 s', input)
        else if (!outcome.ok && !(outcome.error instanceof XenDomainBuildError)) {
          t.foreign++
          problem(t, kindOf(outcome.error), `${input} → ${brief(outcome.error)}`)
        }
        const left = await leaks(s.sim, s.host, [s.domid])
        if (left.length > 0) problem(t, 'leaked', `${input} → ${left.join('; ')}`)
        return true
      }),
      { seed: SEED, numRuns: 500 },
    )
    expect(report(t)).toEqual([])
  })
})

// ----------------------------------------------- the rest of the public API

/** Runs `work` on one input: a thrown or rejected value must be a XenDomainBuildError. */
async function only(t: Tally, what: string, input: string, work: () => unknown, expectInvalid: boolean): Promise<unknown> {
  t.tried++
  let outcome: Awaited<ReturnType<typeof settle>>
  try {
    const value = work()
    outcome = value instanceof Promise ? await settle(value) : { ok: true, value }
  } catch (error) {
    outcome = { ok: false, error }
  }
  if ('hung' in outcome) {
    problem(t, `${what}: did not settle within 5 s`, input)
    return undefined
  }
  if (!outcome.ok) {
    if (!(outcome.error instanceof XenDomainBuildError)) {
      t.foreign++
      problem(t, `${what}: ${kindOf(outcome.error)}`, `${input} → ${brief(outcome.error)}`)
    } else if (expectInvalid && outcome.error.code !== 'INVALID_ARGUMENT') {
      problem(t, `${what}: bad input refused as ${outcome.error.code}, not INVALID_ARGUMENT`, `${input} → ${brief(outcome.error)}`)
    }
    return undefined
  }
  if (expectInvalid) problem(t, `${what}: bad input accepted`, input)
  return outcome.value
}

describe('fuzz: the rest of the public API', () => {
  it('BuildHost.create: any hypervisor, any options', { timeout: 60_000 }, async () => {
    const t = tally('BuildHost.create')
    const sim = simulateHost({ preset: 'qemu-2-node' })
    const valid: Record<string, (v: unknown) => boolean> = {
      numaPolicy: optional((v) => ['any', 'best_effort', 'best_effort_hard', 'prio_mem_only'].includes(v as string)),
      accounting: optional((v) => v === 'in-flight' || v === 'xenopsd'),
      memoryPollMs: optional((v) => typeof v === 'number' && Number.isFinite(v) && v > 0 && v <= 2 ** 31 - 1),
      alwaysClaim: optional((v) => typeof v === 'boolean'),
      largeHostCandidates: optional((v) => v === 'single-nodes' || v === 'neighbourhoods'),
      xenstore: optional((v) => v instanceof InMemoryXenstore),
    }
    await fc.assert(
      fc.asyncProperty(
        fc.boolean(),
        junk,
        fc.constantFrom(...Object.keys(valid)),
        junk,
        async (realHypervisor, hypervisor, field, value) => {
          const options = { [field]: value }
          const bad = !realHypervisor || !(valid[field] as (v: unknown) => boolean)(value)
          const host = await only(
            t,
            realHypervisor ? `options.${field}` : 'hypervisor',
            `BuildHost.create(${realHypervisor ? 'a hypervisor' : show(hypervisor)}, ${show(options)})`,
            () => BuildHost.create((realHypervisor ? sim.hypervisor() : hypervisor) as never, options as never),
            bad,
          )
          if (host instanceof BuildHost) host.close()
          return true
        },
      ),
      { seed: SEED, numRuns: 300 },
    )
    expect(report(t)).toEqual([])
  })

  it('NumaPlanner: constructor and plan with any topology, request and free memory', { timeout: 60_000 }, async () => {
    const t = tally('NumaPlanner')
    const goodTopology = {
      distances: [
        [10, 20],
        [20, 10],
      ],
      cpuToNode: [0, 0, 1, 1],
      nodeCores: [2, 2],
    }
    // Topologies: junk, or well-formed ones of up to 24 nodes with junk here and there.
    const topology = fc.oneof(
      junk,
      fc.integer({ min: 1, max: 24 }).chain((n) =>
        fc.record({
          distances: fc.array(
            fc.array(fc.oneof({ weight: 5, arbitrary: fc.integer({ min: 10, max: 40 }) }, junk), { minLength: n, maxLength: n }),
            { minLength: n, maxLength: n },
          ),
          cpuToNode: fc.array(fc.oneof({ weight: 5, arbitrary: fc.integer({ min: 0, max: n - 1 }) }, junk), {
            minLength: 1,
            maxLength: 4 * n,
          }),
          nodeCores: fc.array(fc.oneof({ weight: 5, arbitrary: fc.integer({ min: 0, max: 8 }) }, junk), { minLength: n, maxLength: n }),
        }),
      ),
    )
    await fc.assert(
      fc.asyncProperty(topology, fc.oneof(fc.constant(undefined), junk, fc.record({ largeHostCandidates: junk })), async (top, options) => {
        await only(
          t,
          'new NumaPlanner',
          `new NumaPlanner(${show(top)}, ${show(options)})`,
          () => new NumaPlanner(top as never, options as never),
          false,
        )
        return true
      }),
      { seed: SEED, numRuns: 300 },
    )
    const planner = new NumaPlanner(goodTopology)
    const finiteCount = (v: unknown) => typeof v === 'number' && Number.isFinite(v) && v >= 0
    await fc.assert(
      fc.asyncProperty(
        fc.oneof(
          junk,
          fc.record({
            memoryBytes: fc.oneof(fc.constant(2 ** 30), junk),
            vcpus: fc.oneof(fc.constant(2), junk),
            cores: fc.oneof(fc.constant(0), junk),
          }),
        ),
        fc.oneof(junk, fc.array(fc.oneof({ weight: 3, arbitrary: fc.constant(2 ** 33) }, junk), { minLength: 0, maxLength: 3 })),
        async (request, free) => {
          const r = request as Record<string, unknown> | null
          const bad =
            !plainObject(r) ||
            !finiteCount(r.memoryBytes) ||
            !finiteCount(r.vcpus) ||
            !finiteCount(r.cores) ||
            !Array.isArray(free) ||
            free.length !== 2 ||
            !free.every(finiteCount)
          const plan = await only(
            t,
            'plan',
            `plan(${show(request)}, ${show(free)})`,
            () => planner.plan(request as never, free as never),
            bad,
          )
          if (plan !== undefined && plan !== null && !Array.isArray((plan as { nodes?: unknown }).nodes))
            problem(t, 'plan: returned something that is not a plan', show(plan))
          return true
        },
      ),
      { seed: SEED, numRuns: 400 },
    )
    expect(report(t)).toEqual([])
  })

  it('simulateHost and memoryModel with anything', { timeout: 60_000 }, async () => {
    const t = tally('simulateHost, memoryModel')
    await fc.assert(
      fc.asyncProperty(
        fc.oneof(
          junk,
          fc.record(
            {
              preset: fc.oneof(fc.constantFrom('amd-opteron-6272', 'qemu-2-node'), junk),
              nodeClaims: fc.option(junk, { nil: undefined }),
              scrubReporting: fc.option(junk, { nil: undefined }),
              clock: fc.option(junk, { nil: undefined }),
              scrubPagesPerSecondPerNode: fc.option(junk, { nil: undefined }),
            },
            { requiredKeys: ['preset'] },
          ),
          fc.record({ host: junk }),
        ),
        async (options) => {
          await only(t, 'simulateHost', `simulateHost(${show(options)})`, () => simulateHost(options as never), false)
          return true
        },
      ),
      { seed: SEED, numRuns: 300 },
    )
    await fc.assert(
      fc.asyncProperty(
        fc.oneof(
          junk,
          fc.record({
            type: fc.oneof(types, junk),
            staticMaxKib: fc.oneof(fc.integer({ min: 1, max: 2 ** 30 }), junk),
            targetKib: fc.oneof(fc.integer({ min: 1, max: 2 ** 30 }), junk),
            vcpus: fc.oneof(fc.integer({ min: 1, max: 512 }), junk),
            videoMib: fc.option(junk, { nil: undefined }),
            shadowMultiplier: fc.option(junk, { nil: undefined }),
            pvShim: fc.option(junk, { nil: undefined }),
          }),
        ),
        async (vm) => {
          const model = await only(t, 'memoryModel', `memoryModel(${show(vm)})`, () => memoryModel(vm as never), false)
          if (model !== undefined) {
            const bad = Object.entries(model as object).filter(([, v]) => typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0)
            if (bad.length > 0)
              problem(
                t,
                `memoryModel: a field that is not a whole number ≥ 0 (${bad.map(([k]) => k).join(', ')})`,
                `memoryModel(${show(vm)}) → ${show(model)}`,
              )
          }
          return true
        },
      ),
      { seed: SEED, numRuns: 400 },
    )
    expect(report(t)).toEqual([])
  })
})

// ------------------------------------------------------- the suspend image

/** Bytes as the report shows them: their length and first 48 bytes, in hex. */
function showBytes(bytes: Uint8Array): string {
  return `${bytes.length} bytes: ${Buffer.from(bytes.subarray(0, 48)).toString('hex')}${bytes.length > 48 ? '…' : ''}`
}

/**
 * Runs a reader on bad bytes: it may succeed or refuse with
 * INVALID_SUSPEND_IMAGE, whose message says a byte within the input; nothing
 * else.
 */
function imageRefusal(t: Tally, what: string, input: string, length: number, error: unknown): void {
  if (!(error instanceof XenDomainBuildError)) {
    t.foreign++
    problem(t, `${what}: ${kindOf(error)}`, `${input} → ${brief(error)}`)
  } else if (error.code !== 'INVALID_SUSPEND_IMAGE') {
    problem(t, `${what}: refused as ${error.code}, not INVALID_SUSPEND_IMAGE`, `${input} → ${brief(error)}`)
  } else {
    const at = /^(?:suspend image|Xenops record), byte (\d+)/.exec(error.message)
    if (at === null) problem(t, `${what}: a refusal that says no byte offset`, `${input} → ${error.message}`)
    else if (Number(at[1]) > length) problem(t, `${what}: a refusal at a byte past the input`, `${input} → ${error.message}`)
  }
}

/** A read image must hold a record its checks take as it is. */
function checkRead(t: Tally, what: string, input: string, record: XenopsRecordInput): void {
  try {
    expect(xenopsRecord(record)).toEqual(record)
  } catch (error) {
    problem(t, `${what}: read a record its own checks do not take back`, `${input} → ${brief(error)}`)
  }
}

describe('fuzz: the suspend image reader', () => {
  const TIME = '20250102T03:04:05Z'
  const vm = fc.record({
    config: fc.oneof(
      fc.record({
        type: fc.constantFrom<'pv' | 'pvh'>('pv', 'pvh'),
        staticMaxKib: fc.constant(2 ** 20),
        targetKib: fc.integer({ min: 1, max: 2 ** 20 }),
        vcpus: fc.integer({ min: 1, max: 64 }),
      }),
      fc.constant<VmConfig>({
        type: 'pvh',
        staticMaxKib: 2 ** 19,
        targetKib: 2 ** 19,
        vcpus: 2,
        videoMib: 4,
        pvShim: true,
        hardAffinity: [[0, 1], [2]],
      }),
    ),
    memoryTotalSourceKib: fc.oneof(fc.integer({ min: 0, max: 2 ** 30 }), fc.constant(2 ** 53 - 1)),
  })
  const noNul = (s: string) => !s.includes('\0')
  const text = fc
    .oneof(
      fc.string({ unit: 'binary', maxLength: 20 }),
      fc.string({ unit: fc.constantFrom('(', ')', '"', '\\', ';', '#', '|', ' ', '\n', 'a'), maxLength: 10 }),
    )
    .filter(noNul)
  const records = fc.record({
    time: fc.oneof(fc.constant(TIME), fc.date({ min: new Date(0), max: new Date(Date.UTC(9999, 11, 31)), noInvalidDate: true })),
    wordSize: fc.constantFrom(32, 64),
    vm,
    xenstoreSubtree: fc.array(
      fc.tuple(
        text.filter((k) => k !== ''),
        text,
      ),
      { maxLength: 4 },
    ),
  })
  /** A whole image: its start, a libxc stream of junk, its end. */
  const images = fc
    .tuple(records, fc.uint8Array({ maxLength: 16 }))
    .map(([r, libxc]) => Buffer.concat([encodeImageHeader(r), libxc, encodeImageEnd()]))
  const mutations = fc.array(
    fc.oneof(
      fc.record({ kind: fc.constant('set' as const), at: fc.nat(), byte: fc.integer({ min: 0, max: 255 }) }),
      fc.record({ kind: fc.constant('truncate' as const), at: fc.nat() }),
      fc.record({ kind: fc.constant('insert' as const), at: fc.nat(), bytes: fc.uint8Array({ minLength: 1, maxLength: 8 }) }),
      fc.record({ kind: fc.constant('delete' as const), at: fc.nat(), count: fc.integer({ min: 1, max: 8 }) }),
      // A header's type or length: those of the Xenops and the Libxc records.
      fc.record({
        kind: fc.constant('u64' as const),
        field: fc.constantFrom(0, 1, 2, 3),
        value: fc.oneof(
          fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }),
          fc.constantFrom(0n, 0xfn, 0xf0n, 0xffffn, 0x0f00n, 2n ** 24n, 2n ** 63n),
        ),
      }),
    ),
    { minLength: 1, maxLength: 4 },
  )
  type Mutation = typeof mutations extends fc.Arbitrary<(infer M)[]> ? M : never
  function mutate(image: Buffer, changes: Mutation[]): Buffer {
    let bytes = Buffer.from(image)
    const bodyLength = Number(image.readBigUInt64LE(23))
    const fields = [15, 23, 31 + bodyLength, 39 + bodyLength]
    for (const m of changes) {
      const at = bytes.length === 0 || !('at' in m) ? 0 : m.at % bytes.length
      if (m.kind === 'set' && bytes.length > 0) bytes[at] = m.byte
      else if (m.kind === 'truncate') bytes = bytes.subarray(0, at)
      else if (m.kind === 'insert') bytes = Buffer.concat([bytes.subarray(0, at), m.bytes, bytes.subarray(at)])
      else if (m.kind === 'delete') bytes = Buffer.concat([bytes.subarray(0, at), bytes.subarray(at + m.count)])
      else if (m.kind === 'u64') {
        const offset = fields[m.field] as number
        if (offset + 8 <= bytes.length) bytes.writeBigUInt64LE(m.value, offset)
      }
    }
    return bytes
  }
  /** Xenops bodies of S-expression junk, in a well-formed envelope: the parser's own fuzz. */
  const token = fc.constantFrom(
    '(',
    ')',
    '(',
    ')',
    ' ',
    '\n',
    '"',
    '\\',
    '\\n',
    '\\255',
    '\\256',
    '\\x4',
    '\\x41',
    '\\\n  ',
    ';',
    '#|',
    '|#',
    '#;',
    'time',
    'word_size',
    'vm_str',
    'xs_subtree',
    TIME,
    '64',
    '32',
    '-1',
    '"{}"',
    JSON.stringify(
      JSON.stringify({
        format: 'xen-domain-build/suspended-vm/1',
        config: { type: 'pv', staticMaxKib: 1024, targetKib: 1024, vcpus: 1 },
        memoryTotalSourceKib: 1,
      }),
    ),
    'a',
    '""',
    '\u00e9',
    '\0',
  )
  const junkBodies = fc.array(token, { maxLength: 40 }).map((tokens) => Buffer.from(tokens.join(''), 'utf8'))
  const withBody = (body: Buffer) =>
    Buffer.concat([Buffer.from('XenSavedDomv2-\n', 'latin1'), header(0xf, body.length), body, header(0xf0, 0)])
  function header(type: number, length: number): Buffer {
    const bytes = Buffer.alloc(16)
    bytes.writeBigUInt64LE(BigInt(type), 0)
    bytes.writeBigUInt64LE(BigInt(length), 8)
    return bytes
  }
  const inputs = fc.oneof(
    { weight: 1, arbitrary: fc.uint8Array({ maxLength: 200 }).map((b) => Buffer.from(b)) },
    { weight: 1, arbitrary: fc.uint8Array({ maxLength: 100 }).map((b) => Buffer.concat([Buffer.from('XenSavedDomv2-\n'), b])) },
    { weight: 4, arbitrary: fc.tuple(images, mutations).map(([image, changes]) => mutate(image, changes)) },
    { weight: 3, arbitrary: junkBodies.map(withBody) },
  )

  /** Runs the readers over a Buffer: the header, and the end after the libxc stream's bytes. */
  function decodeAll(t: Tally, bytes: Buffer): void {
    const input = showBytes(bytes)
    t.tried++
    let read: ReturnType<typeof decodeImageHeader> | undefined
    try {
      read = decodeImageHeader(bytes)
    } catch (error) {
      imageRefusal(t, 'decodeImageHeader', input, bytes.length, error)
    }
    if (read !== undefined) {
      checkRead(t, 'decodeImageHeader', input, read.record)
      if (read.libxcOffset > bytes.length) problem(t, 'decodeImageHeader: the libxc stream starts past the input', input)
    }
    for (const from of [read?.libxcOffset ?? 0, Math.max(0, bytes.length - 16)]) {
      try {
        decodeImageEnd(bytes.subarray(from))
      } catch (error) {
        imageRefusal(t, 'decodeImageEnd', input, bytes.length - from, error)
      }
    }
    if (bytes.length > 31) {
      try {
        checkRead(t, 'decodeXenopsRecord', input, decodeXenopsRecord(bytes.subarray(31)))
      } catch (error) {
        imageRefusal(t, 'decodeXenopsRecord', input, bytes.length - 31, error)
      }
    }
  }

  it('valid records round-trip, byte for byte', { timeout: 60_000 }, () => {
    const t = tally('suspend image (round trip)')
    fc.assert(
      fc.property(records, fc.uint8Array({ maxLength: 16 }), (r, libxc) => {
        t.tried++
        const input = JSON.stringify(r).slice(0, 200)
        const start = encodeImageHeader(r)
        const bytes = Buffer.concat([start, libxc, encodeImageEnd()])
        const read = decodeImageHeader(bytes)
        if (read.libxcOffset !== start.length) problem(t, 'the libxc stream is not where the header ends', input)
        try {
          expect(read.record).toEqual(xenopsRecord(r))
          expect(encodeImageHeader(read.record)).toEqual(start)
        } catch (error) {
          problem(t, 'a record that does not come back as written', `${input} → ${brief(error)}`)
        }
        decodeImageEnd(bytes.subarray(read.libxcOffset + libxc.length))
        return true
      }),
      { seed: SEED, numRuns: 500 },
    )
    expect(report(t)).toEqual([])
  })

  it('random, mutated and junk-bodied images → a record or INVALID_SUSPEND_IMAGE at a byte of the input', { timeout: 60_000 }, () => {
    const t = tally('suspend image (decode)')
    fc.assert(
      fc.property(inputs, (bytes) => {
        decodeAll(t, bytes)
        return true
      }),
      { seed: SEED, numRuns: 3000 },
    )
    expect(report(t)).toEqual([])
  })

  it('the same through a file: readImageHeader and readImageEnd settle, never hang', { timeout: 120_000 }, async () => {
    const t = tally('suspend image (fd)')
    const dir = mkdtempSync(join(tmpdir(), 'xdb-image-fuzz-'))
    try {
      let n = 0
      await fc.assert(
        fc.asyncProperty(inputs, async (bytes) => {
          t.tried++
          const input = showBytes(bytes)
          const path = join(dir, `image-${n++}`)
          writeFileSync(path, bytes)
          const fd = openSync(path, 'r')
          try {
            const header = await settle(readImageHeader(fd))
            if ('hung' in header) problem(t, 'readImageHeader: did not settle within 5 s', input)
            else if (!header.ok) imageRefusal(t, 'readImageHeader', input, bytes.length, header.error)
            else checkRead(t, 'readImageHeader', input, header.value.record)
            // Whatever it read, the end is read from where it stopped.
            const end = await settle(readImageEnd(fd))
            if ('hung' in end) problem(t, 'readImageEnd: did not settle within 5 s', input)
            else if (!end.ok) imageRefusal(t, 'readImageEnd', input, bytes.length, end.error)
          } finally {
            closeSync(fd)
          }
          return true
        }),
        { seed: SEED, numRuns: 300 },
      )
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
    expect(report(t)).toEqual([])
  })

  it('xenopsRecord with junk → a record or INVALID_ARGUMENT', { timeout: 60_000 }, async () => {
    const t = tally('xenopsRecord')
    const inputs = fc.oneof(
      junk,
      fc.record({
        time: fc.option(junk, { nil: undefined }),
        wordSize: fc.option(junk, { nil: undefined }),
        vm: junk,
        xenstoreSubtree: fc.option(junk, { nil: undefined }),
      }),
      fc.record({
        vm: fc.record({
          config: fc.oneof(
            junk,
            vm.map((v) => v.config),
          ),
          memoryTotalSourceKib: junk,
        }),
      }),
      fc.record({ vm, xenstoreSubtree: fc.oneof(junk, fc.array(fc.oneof(junk, fc.tuple(junk, junk)), { maxLength: 3 })) }),
    )
    await fc.assert(
      fc.asyncProperty(inputs, async (value) => {
        const made = await only(t, 'xenopsRecord', `xenopsRecord(${show(value)})`, () => xenopsRecord(value as never), false)
        if (made !== undefined) {
          await only(
            t,
            'encodeImageHeader',
            `a record from ${show(value)}`,
            () => decodeImageHeader(encodeImageHeader(made as never)),
            false,
          )
        }
        return true
      }),
      { seed: SEED, numRuns: 500 },
    )
    expect(report(t)).toEqual([])
  })
})

// ------------------------------------------------- restoreDomain over images

describe('fuzz: restoreDomain over mutated suspend images', () => {
  /** What a restore from a damaged image may fail with. */
  const EXPECTED = new Set(['INVALID_SUSPEND_IMAGE', 'XENGUEST_FAILED', 'INVALID_ARGUMENT'])
  const vm: VmConfig = { type: 'pv', staticMaxKib: 256 * MIB_KIB, targetKib: 256 * MIB_KIB, vcpus: 1 }

  it('a real image with bytes changed, inserted or cut: done, or one of the expected codes; never a hang, nothing leaked', {
    timeout: 120_000,
  }, async () => {
    const t = tally('restoreDomain (mutated images)')
    const sim = simulateHost({ preset: 'two-socket-4-node' })
    const xen = sim.hypervisor()
    const host = await BuildHost.create(xen)
    const xenguest = new SimulatedXenguest(sim, { builderMs: 0 })
    const dir = mkdtempSync(join(tmpdir(), 'xdb-restore-fuzz-'))
    try {
      // A real image: a running guest suspended by suspendDomain.
      const source = await createDomain(xen, host.xenstore, { type: 'pv', maxVcpus: 1, name: 'source' })
      await buildDomain(host, source, vm, { xenguest, image: 'vmlinuz' })
      await xen.unpauseDomain(source)
      const guest = new SimulatedGuest(sim, host.xenstore, source, { reactionMs: 1 })
      const original = join(dir, 'original')
      await suspendDomain(xen, host.xenstore, source, original, { xenguest, vm })
      await guest.stop()
      await xen.destroyDomain(source)
      const image = readFileSync(original)
      const change = fc.oneof(
        fc.record({ at: fc.nat(image.length - 1), byte: fc.integer({ min: 0, max: 255 }), how: fc.constant('set' as const) }),
        fc.record({ at: fc.nat(image.length - 1), byte: fc.integer({ min: 0, max: 255 }), how: fc.constant('insert' as const) }),
        fc.record({ at: fc.nat(image.length - 1), byte: fc.constant(0), how: fc.constant('delete' as const) }),
      )
      // The memory the image says the guest held: its digits changed, the record's length kept.
      const memory = /memoryTotalSourceKib\\?":(\d+)/.exec(image.toString('latin1'))
      expect(memory, 'the image records memoryTotalSourceKib').not.toBeNull()
      const memoryAt = (memory?.index ?? 0) + (memory?.[0].length ?? 0) - (memory?.[1]?.length ?? 0)
      const damaged = fc.oneof(
        fc.nat(image.length - 1).map((length) => image.subarray(0, length)),
        fc
          .array(fc.integer({ min: 0x30, max: 0x39 }), { minLength: memory?.[1]?.length ?? 1, maxLength: memory?.[1]?.length ?? 1 })
          .map((digits) => {
            const bytes = Buffer.from(image)
            bytes.set(digits, memoryAt)
            return bytes
          }),
        fc.array(change, { minLength: 1, maxLength: 4 }).map((changes) => {
          let bytes = Buffer.from(image)
          for (const { at, byte, how } of changes) {
            const i = Math.min(at, bytes.length)
            if (how === 'set' && i < bytes.length) bytes[i] = byte
            else if (how === 'insert') bytes = Buffer.concat([bytes.subarray(0, i), Buffer.from([byte]), bytes.subarray(i)])
            else bytes = Buffer.concat([bytes.subarray(0, i), bytes.subarray(i + 1)])
          }
          return bytes
        }),
        fc
          .tuple(fc.nat(image.length - 1), fc.uint8Array({ minLength: 1, maxLength: 64 }))
          .map(([length, tail]) => Buffer.concat([image.subarray(0, length), Buffer.from(tail)])),
      )
      let n = 0
      const counts = { done: 0, refused: new Map<string, number>() }
      await fc.assert(
        fc.asyncProperty(damaged, async (bytes) => {
          t.tried++
          const input = showBytes(bytes)
          const path = join(dir, `image-${n++}`)
          writeFileSync(path, bytes)
          const domid = await createDomain(xen, host.xenstore, { type: 'pv', maxVcpus: 1, name: `restored-${n}` })
          const outcome = await settle(restoreDomain(host, domid, vm, path, { xenguest, memoryTimeoutMs: 500 }))
          if ('hung' in outcome) problem(t, 'restoreDomain: did not settle within 5 s', input)
          else if (outcome.ok) counts.done++
          else {
            const error = outcome.error
            if (!(error instanceof XenDomainBuildError)) {
              t.foreign++
              problem(t, `not a XenDomainBuildError: ${brief(error).slice(0, 60)}`, input)
            } else {
              counts.refused.set(error.code, (counts.refused.get(error.code) ?? 0) + 1)
              if (!EXPECTED.has(error.code)) problem(t, `code ${error.code}`, `${input} → ${brief(error)}`)
              if (error.domid !== domid) problem(t, 'an error without the domid', `${input} → ${brief(error)}`)
            }
          }
          for (const found of await leaks(sim, host, [domid])) problem(t, `leaked: ${found.replace(/\d+/g, 'N')}`, `${input}: ${found}`)
          if (!('hung' in outcome)) {
            await xen
              .destroyDomain(domid)
              .catch((error: unknown) => problem(t, 'the domain cannot be destroyed', `${input} → ${brief(error)}`))
            for (const found of await leaks(sim, host)) problem(t, `leaked after destroying it: ${found.replace(/\d+/g, 'N')}`, input)
          }
          rmSync(path)
          return true
        }),
        { seed: SEED, numRuns: 400 },
      )
      console.log(
        `restoreDomain over ${t.tried} damaged images: ${counts.done} restored, refused ${[...counts.refused].map(([c, k]) => `${c} ×${k}`).join(', ')}`,
      )
      // The fuzzing reached past the header: the builder saw damaged streams too.
      expect(counts.refused.get('INVALID_SUSPEND_IMAGE') ?? 0).toBeGreaterThan(0)
      expect(counts.refused.get('XENGUEST_FAILED') ?? 0).toBeGreaterThan(0)
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
    expect(report(t)).toEqual([])
  })
})

// ---------------------------------------------------------------- the CLI

describe('fuzz: the command line', () => {
  it('random argv: exit 0-3, bad input is exit 2 with one line on stderr, never a stack trace', { timeout: 120_000 }, async () => {
    const t = tally('CLI')
    // A directory of its own: whatever --report FILE the fuzz makes up lands there.
    const cwd = mkdtempSync(join(tmpdir(), 'xdb-cli-fuzz-'))
    const words = fc.constantFrom(
      'host',
      'plan',
      'build',
      'storm',
      'frobnicate',
      '--sim',
      'amd-opteron-6272',
      'two-socket-4-node',
      'qemu-2-node',
      'linear-16-node',
      'nope',
      '--vcpus',
      '--memory-mib',
      '--vms',
      '--concurrency',
      '--accounting',
      'in-flight',
      'xenopsd',
      'both',
      '--json',
      '--config',
      '--domid',
      '--xenguest',
      '--scenario',
      '-',
      '--seed',
      '--builder-ms',
      '--report',
      'report.html',
      '--help',
      '--version',
      '-h',
      '-V',
      '--large-host-candidates',
      'neighbourhoods',
      '--node-claims',
      '--load',
      '--',
      '0',
      '1',
      '2',
      '-1',
      '1.5',
      'NaN',
      'Infinity',
      '1e308',
      '9007199254740993',
      '0x10',
      '',
      ' ',
      '/nonexistent',
      '/dev/null',
      'x'.repeat(100_000),
      '--vms=4',
      '--sim=qemu-2-node',
      'é',
      '\u202e',
    )
    const token = fc.oneof(
      { weight: 6, arbitrary: words },
      { weight: 1, arbitrary: fc.string({ maxLength: 12 }).filter((s) => !s.includes('\0') && !s.startsWith('/') && !s.includes('..')) },
      { weight: 1, arbitrary: fc.integer({ min: -1000, max: 300 }).map(String) },
    )
    try {
      await fc.assert(
        // Mostly a real command first, so that the commands' own option parsing is fuzzed.
        fc.asyncProperty(
          fc.oneof({ weight: 4, arbitrary: fc.constantFrom('host', 'plan', 'build', 'storm') }, { weight: 1, arbitrary: token }),
          fc.array(token, { maxLength: 8 }),
          async (command, rest) => {
            const argv = [command, ...rest]
            t.tried++
            const run = spawnSync(process.execPath, [join(ROOT, 'dist', 'cli.js'), ...argv], {
              cwd,
              encoding: 'utf8',
              timeout: 20_000,
              input: '',
            })
            const input = `xen-domain-build ${argv.map((a) => (a.length > 30 ? show(a) : JSON.stringify(a))).join(' ')}`
            const stderr = run.stderr ?? ''
            const lines = stderr.trimEnd() === '' ? [] : stderr.trimEnd().split('\n')
            // What the first line says, without its variable parts: for grouping.
            const said = (lines[0] ?? '')
              .replace(/^xen-domain-build: /, '')
              .split(/[\s:]+/)
              .slice(0, 2)
              .join(' ')
            if (run.status === null) problem(t, `no exit code (${run.signal ?? run.error?.message ?? 'timeout'})`, input)
            else if (![0, 1, 2, 3].includes(run.status)) problem(t, `exit code ${run.status}`, `${input} → ${lines[0] ?? ''}`)
            if (/\n\s+at .+\(?.*:\d+:\d+\)?/.test(stderr) || /^\s+at /m.test(stderr)) {
              t.foreign++
              problem(t, `a stack trace on stderr (exit ${run.status}): ${said}`, `${input} → ${lines.slice(0, 3).join(' | ')}`)
            } else if (run.status !== 0 && run.status !== null && lines.length !== 1) {
              problem(
                t,
                `exit ${run.status} with ${lines.length === 1 ? 1 : lines.length > 1 ? 'several' : 'no'} lines on stderr: ${said}`,
                `${input} → ${lines.slice(0, 2).join(' | ')}`,
              )
            }
            if (run.status === 2 && lines.length >= 1 && !(lines[0] ?? '').startsWith('xen-domain-build: ')) {
              problem(t, 'exit 2 without the "xen-domain-build: " prefix', `${input} → ${lines[0]}`)
            }
            return true
          },
        ),
        { seed: SEED, numRuns: 60 },
      )
    } finally {
      rmSync(cwd, { recursive: true, force: true })
    }
    expect(report(t)).toEqual([])
  })
})
