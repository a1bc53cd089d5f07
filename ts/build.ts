/**
 * `buildDomain`: xenopsd's Domain.build. build_pre, xenguest, the shadow
 * allocation put back where the builder lowered it, build_post. A failure
 * or cancellation anywhere releases the claim and kills xenguest.
 *
 * Events: `onEvent` gets each one, and the `xen-domain-build` diagnostics
 * channel publishes them (node:diagnostics_channel), for tracing.
 */
import { channel, tracingChannel } from 'node:diagnostics_channel'
import { access, constants } from 'node:fs/promises'
import { buildPre, parseOcamlInt, type BuildEvent, type BuildPreResult, type VmConfig } from './build-pre.js'
import { buildPost } from './build-post.js'
import {
  cString,
  MAX_PV_CMDLINE_BYTES,
  MAX_XENSTORE_VALUE_BYTES,
  optionalBoolean,
  optionalCString,
  optionalDomid,
  optionalFunction,
  optionalMilliseconds,
  optionalSignal,
  optionsObject,
} from './checks.js'
import { describe, inStep, invalidArgument } from './errors.js'
import type { BuildHost } from './host.js'
import { PV_IN_PVH_SHIM_MIB, type MemoryModel } from './memory.js'
import type { Placement } from './placement.js'
import { StepRunner } from './step.js'
import { xenguestArgs, type XenguestLog, type XenguestRunner } from './xenguest.js'
import { domainPath } from './xenstore.js'

/** Every build event, as `onEvent` gets them. */
export const buildChannel = channel('xen-domain-build')

/**
 * Each build as a traced operation (`start`, `end`, `asyncStart`,
 * `asyncEnd`, `error`), with `{ domid, vm }` as its context: for APM tools.
 */
export const buildTracingChannel = tracingChannel<unknown, BuildTraceContext>('xen-domain-build:build')

export interface BuildTraceContext {
  domid: number
  vm: VmConfig
}

export type DomainBuildEvent =
  | BuildEvent
  | ({ domid: number } & XenguestLog)
  | { type: 'xenguest.spawn'; domid: number; pid: number; args: string[] }
  | { type: 'build.done'; domid: number; ms: number }
  | { type: 'build.failed'; domid: number; ms: number; code: string; step?: string }

export interface DomainImage {
  /** The kernel (PV, PVH) or firmware (HVM) image. */
  image: string
  cmdline?: string
  ramdisk?: string
  modules?: readonly { path: string; cmdline?: string }[]
  nvidiaVgpu?: boolean
}

/** xenopsd's defaults for a PV-in-PVH guest's shim: its image, and its command line before `shim_mem=`. */
export const DEFAULT_SHIM_IMAGE = '/usr/libexec/xen/boot/xen-shim'
export const DEFAULT_SHIM_CMDLINE = 'pv-shim console=xen'

export interface BuildDomainOptions extends DomainImage {
  /**
   * PV-in-PVH (`vm.pvShim`): the shim Xen the domain boots, `DEFAULT_SHIM_IMAGE`
   * by default. `image`, `cmdline` and `ramdisk` are then the PV guest's: they
   * become the shim's modules, as xenopsd lays them out.
   */
  shimImage?: string
  xenguest: XenguestRunner
  signal?: AbortSignal
  /** Per xenguest run; none by default. */
  xenguestTimeoutMs?: number
  memoryTimeoutMs?: number
  force?: boolean
  extraArgs?: readonly string[]
  storeDomid?: number
  consoleDomid?: number
  /** HVM and PVH: the RTC offset written to the VM's rtc/timeoffset ("" by default, as xenopsd). */
  timeoffset?: string
  extraKeys?: Readonly<Record<string, string>>
  /**
   * The VM's dynamic memory range (the balloon driver's bounds), written to
   * `memory/dynamic-min` and `memory/dynamic-max` after the build as xenopsd's
   * VM.build does; both `vm.targetKib` when absent.
   */
  dynamicMinKib?: number
  dynamicMaxKib?: number
  onEvent?: (event: DomainBuildEvent) => void
}

export interface BuiltDomain {
  domid: number
  storePort: number
  consolePort: number
  storeMfn: bigint
  consoleMfn: bigint
  protocol?: string
  memory: MemoryModel
  placement: Placement
  /** Milliseconds per step, and `total`. */
  timingsMs: Record<string, number>
}

/**
 * xenopsd's `assert_file_is_readable`, before any hypercall: a kernel,
 * ramdisk or module that cannot be read is found before the claim, not in
 * the builder after it. (xenopsd checks the kernel and a PV ramdisk; we check
 * PVH modules too.)
 */
async function checkReadable(image: DomainImage): Promise<void> {
  // Their types were checked with the other options: what is left is the file.
  const files: [string, string | undefined][] = [
    ['image', image.image],
    ['ramdisk', image.ramdisk],
    ...(image.modules ?? []).map((m, i): [string, string] => [`modules[${i}].path`, m.path]),
  ]
  for (const [field, path] of files) {
    if (path === undefined || (field === 'ramdisk' && path === '')) continue
    if (path === '') throw invalidArgument(field, 'expected a file path, got an empty string')
    try {
      await access(path, constants.R_OK)
    } catch (error) {
      throw invalidArgument(field, `${path} is not readable (${(error as NodeJS.ErrnoException).code ?? 'unknown'})`)
    }
  }
}

/**
 * What xenguest boots. For PV-in-PVH, as xenopsd's VM.build lays it out: the
 * shim as the image, its command line `platform/pvinpvh-xen-cmdline` (else
 * `DEFAULT_SHIM_CMDLINE`) and `shim_mem=NM` (N: `platform/shim_mib`, else
 * the memory model's shim size for the static max), the PV kernel with its
 * command line as the first module, the ramdisk as the second. The platform
 * keys are read from the domain's xenstore home, where `createDomain` wrote
 * the VM's; one that cannot be read counts as absent.
 */
async function xenguestImage(host: BuildHost, domid: number, vm: VmConfig, options: BuildDomainOptions, emit: (event: DomainBuildEvent) => void): Promise<DomainImage> {
  // A bad VM is buildPre's to refuse, before any hypercall.
  const candidate = vm as Partial<VmConfig> | null
  if (candidate?.type !== 'pvh' || candidate.pvShim !== true) return options
  const platform = (key: string) => host.xenstore.read(`${domainPath(domid)}/platform/${key}`).catch(() => null)
  const staticMaxMib = Math.floor(vm.staticMaxKib / 1024)
  const given = await platform('shim_mib')
  let shimMib = parseOcamlInt(given)
  if (given !== null && shimMib === null) emit({ type: 'info', domid, message: `ignoring platform/shim_mib=${given}, as xenopsd` })
  shimMib ??= PV_IN_PVH_SHIM_MIB(staticMaxMib)
  const base = (await platform('pvinpvh-xen-cmdline')) ?? DEFAULT_SHIM_CMDLINE
  return {
    image: options.shimImage ?? DEFAULT_SHIM_IMAGE,
    cmdline: `${base} shim_mem=${shimMib}M`,
    modules: [
      { path: options.image, cmdline: options.cmdline ?? '' },
      ...(options.ramdisk === undefined || options.ramdisk === '' ? [] : [{ path: options.ramdisk }]),
    ],
  }
}

export function buildDomain(host: BuildHost, domid: number, vm: VmConfig, options: BuildDomainOptions): Promise<BuiltDomain> {
  return buildTracingChannel.tracePromise(() => build(host, domid, vm, options), { domid, vm })
}

/**
 * The node the builder allocates every page from (`-mem_pnode`). xenopsd
 * gives it only after a node claim, which only XenServer's Xen has. On a
 * Xen without node claims, a one-node plan still gets it when the builder
 * can place memory on a node by itself (ours does, through one vNUMA node
 * and XENMEMF_exact_node: `-supports mem_pnode`): the ledger promised that
 * node's memory to this build, so the memory lands where it was planned
 * instead of wherever soft affinity lets Xen put it.
 */
async function memoryNode(placement: Placement, xenguest: XenguestRunner): Promise<number | null> {
  if (placement.node !== null) return placement.node
  const [only, ...others] = placement.plan?.nodes ?? []
  // A node claim that met ENOMEM leaves no affinity: that node is full.
  const withoutNodeClaims = placement.affinity !== null && only !== undefined && others.length === 0
  return withoutNodeClaims && (await xenguest.supports('mem_pnode')) ? only : null
}

/**
 * Every option a caller gives, checked before the first hypercall: types,
 * NUL bytes (they become C strings), and the limits of argv, of a PV
 * command line and of xenstore values.
 */
function checkOptions(vm: VmConfig, given: BuildDomainOptions): BuildDomainOptions {
  const options = optionsObject('options', given)
  const runner = options.xenguest as Partial<XenguestRunner> | undefined
  if (runner === null || typeof runner !== 'object' || typeof runner.run !== 'function') {
    throw invalidArgument('options.xenguest', `expected a domain builder (SpawnedXenguest, SimulatedXenguest, ...), got ${describe(runner)}`)
  }
  cString('options.image', options.image)
  if (options.image === '') throw invalidArgument('options.image', 'is empty')
  const pv = (vm as Partial<VmConfig> | null)?.type === 'pv'
  optionalCString('options.cmdline', options.cmdline, pv ? MAX_PV_CMDLINE_BYTES - 1 : undefined)
  optionalCString('options.ramdisk', options.ramdisk)
  optionalCString('options.shimImage', options.shimImage)
  if ((vm as Partial<VmConfig> | null)?.pvShim === true && (options.modules?.length ?? 0) > 0) {
    throw invalidArgument('options.modules', 'a PV-in-PVH guest\'s modules are its kernel and ramdisk (image, ramdisk): no others')
  }
  if (options.modules !== undefined) {
    if (!Array.isArray(options.modules)) throw invalidArgument('options.modules', `expected an array, got ${describe(options.modules)}`)
    options.modules.forEach((m: unknown, i) => {
      const module = optionsObject(`options.modules[${i}]`, m as { path?: unknown; cmdline?: unknown } | undefined)
      cString(`options.modules[${i}].path`, module.path)
      optionalCString(`options.modules[${i}].cmdline`, module.cmdline)
    })
  }
  if (options.extraArgs !== undefined) {
    if (!Array.isArray(options.extraArgs)) throw invalidArgument('options.extraArgs', `expected an array, got ${describe(options.extraArgs)}`)
    options.extraArgs.forEach((arg: unknown, i) => cString(`options.extraArgs[${i}]`, arg))
  }
  optionalSignal('options.signal', options.signal)
  optionalMilliseconds('options.xenguestTimeoutMs', options.xenguestTimeoutMs)
  optionalMilliseconds('options.memoryTimeoutMs', options.memoryTimeoutMs)
  optionalBoolean('options.force', options.force)
  optionalBoolean('options.nvidiaVgpu', options.nvidiaVgpu)
  optionalDomid('options.storeDomid', options.storeDomid)
  optionalDomid('options.consoleDomid', options.consoleDomid)
  optionalCString('options.timeoffset', options.timeoffset, MAX_XENSTORE_VALUE_BYTES)
  optionalFunction('options.onEvent', options.onEvent)
  for (const field of ['dynamicMinKib', 'dynamicMaxKib'] as const) {
    const kib = options[field]
    if (kib !== undefined && (!Number.isSafeInteger(kib) || kib < 0)) throw invalidArgument(`options.${field}`, `${describe(kib)} is not a whole number of KiB ≥ 0`)
  }
  if ((options.dynamicMinKib ?? 0) > (options.dynamicMaxKib ?? Infinity)) {
    throw invalidArgument('options.dynamicMinKib', `${options.dynamicMinKib} KiB is above dynamicMaxKib (${options.dynamicMaxKib} KiB)`)
  }
  const keys = optionsObject('options.extraKeys', options.extraKeys)
  for (const [key, value] of Object.entries(keys)) {
    if (!/^[A-Za-z0-9_@-][A-Za-z0-9/_@-]*$/.test(key) || key.includes('//')) {
      throw invalidArgument(`options.extraKeys[${JSON.stringify(key.slice(0, 40))}]`, 'is not a relative xenstore path')
    }
    cString(`options.extraKeys.${key}`, value, MAX_XENSTORE_VALUE_BYTES)
  }
  return options as BuildDomainOptions
}

async function build(host: BuildHost, domid: number, vm: VmConfig, given: BuildDomainOptions): Promise<BuiltDomain> {
  const started = performance.now()
  const options = checkOptions(vm, given)
  const emit = (event: DomainBuildEvent) => {
    options.onEvent?.(event)
    if (buildChannel.hasSubscribers) buildChannel.publish(event)
  }
  const { signal } = options
  let pre: BuildPreResult | undefined
  try {
    const image = await xenguestImage(host, domid, vm, options, emit)
    if (options.xenguest.readsHostFiles !== false) await checkReadable(image).catch((error: unknown) => {
      throw inStep(error, 'check_files', domid)
    })
    pre = await buildPre(host, domid, vm, { signal, memoryTimeoutMs: options.memoryTimeoutMs, onEvent: emit })
    const built = pre
    // The steps after build_pre, timed into the same record.
    const steps = new StepRunner(domid, { signal, onEvent: emit, timingsMs: built.timingsMs })
    const timed = <T>(step: string, work: () => Promise<T>) => steps.run(step, work)
    const args = xenguestArgs({
      type: vm.type,
      domid,
      image: image.image,
      cmdline: image.cmdline,
      ramdisk: image.ramdisk,
      modules: image.modules,
      nvidiaVgpu: options.nvidiaVgpu,
      force: options.force,
      storePort: built.storePort,
      consolePort: built.consolePort,
      storeDomid: options.storeDomid,
      consoleDomid: options.consoleDomid,
      memory: built.memory,
      memoryNode: await memoryNode(built.placement, options.xenguest),
      extraArgs: options.extraArgs,
    })
    const result = await timed('xenguest', () =>
      options.xenguest.run(args, {
        signal,
        timeoutMs: options.xenguestTimeoutMs,
        onEvent: (event) => emit({ ...event, domid }),
      }),
    )
    // xenguest populated the memory: Xen counts it now. What it did not take
    // of the claim is released, whatever the builder does about it.
    built.memoryPopulated()
    await timed('claim_release', () => built.releaseUnusedClaim())
    if (vm.type !== 'pv') {
      await timed('shadow_correction', async () => {
        const actual = await host.hypervisor.shadowAllocationMib(domid)
        if (actual < built.memory.shadowMib) {
          emit({ type: 'info', domid, message: `the builder lowered the shadow allocation to ${actual} MiB; setting ${built.memory.shadowMib} MiB back` })
          await host.hypervisor.setShadowAllocationMib(domid, built.memory.shadowMib)
        }
      })
    }
    await timed('build_post', () =>
      buildPost(host.xenstore, {
        domid,
        type: vm.type,
        staticMaxMib: built.memory.staticMaxMib,
        targetMib: built.memory.targetMib,
        storeMfn: result.storeMfn,
        storePort: built.storePort,
        consoleMfn: result.consoleMfn,
        consolePort: built.consolePort,
        extraKeys: options.extraKeys,
        vmKeys: vm.type === 'pv' ? {} : { 'rtc/timeoffset': options.timeoffset ?? '' },
      }),
    )
    // xenopsd's set_memory_dynamic_range, once the domain is built.
    await timed('memory_dynamic_range', () =>
      host.xenstore.writeMany(`${domainPath(domid)}/memory`, {
        'dynamic-min': String(options.dynamicMinKib ?? vm.targetKib),
        'dynamic-max': String(options.dynamicMaxKib ?? vm.targetKib),
      }),
    )
    const ms = performance.now() - started
    built.timingsMs.total = ms
    emit({ type: 'build.done', domid, ms })
    return {
      domid,
      storePort: built.storePort,
      consolePort: built.consolePort,
      storeMfn: result.storeMfn,
      consoleMfn: result.consoleMfn,
      ...(result.protocol === undefined ? {} : { protocol: result.protocol }),
      memory: built.memory,
      placement: built.placement,
      timingsMs: built.timingsMs,
    }
  } catch (error) {
    await pre?.release()
    const e = error as { code?: string; step?: string }
    emit({ type: 'build.failed', domid, ms: performance.now() - started, code: e.code ?? 'UNKNOWN', step: e.step })
    throw error
  }
}
