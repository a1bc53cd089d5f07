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
  optionalArguments,
  optionalBoolean,
  optionalCString,
  optionalDomid,
  optionalFunction,
  optionalMilliseconds,
  optionalSignal,
  optionsObject,
  xenguestRunner,
} from './checks.js'
import { describe, inStep, invalidArgument } from './errors.js'
import type { BuildHost } from './host.js'
import { PV_IN_PVH_SHIM_MIB, type MemoryModel } from './memory.js'
import type { Placement } from './placement.js'
import { isolated } from './listener.js'
import { StepRunner } from './step.js'
import { protocolError, xenguestArgs, type XenguestLog, type XenguestResult, type XenguestRunner } from './xenguest-protocol.js'
import { domainPath } from './xenstore.js'
import { isRelativeKey, XENSTORE_PAYLOAD_MAX_BYTES } from './xenstore-input.js'

/** Every build event, as `onEvent` gets them. */
export const buildChannel = channel('xen-domain-build')

/**
 * Each build as a traced operation (`start`, `end`, `asyncStart`,
 * `asyncEnd`, `error`), with `{ domid, vm }` as its context: for APM tools.
 */
export const buildTracingChannel = tracingChannel<unknown, BuildTraceContext>('xen-domain-build:build')

/** The context of a traced build on `buildTracingChannel`. */
export interface BuildTraceContext {
  domid: number
  vm: VmConfig
}

/**
 * What `onEvent` (and the `xen-domain-build` diagnostics channel) gets during
 * a build, by `type`: build_pre's (`BuildEvent`), xenguest's log lines and its
 * process id, and the end of the build, done or failed.
 */
export type DomainBuildEvent =
  | BuildEvent
  | ({ domid: number } & XenguestLog)
  | { type: 'xenguest.spawn'; domid: number; pid: number; args: string[] }
  | { type: 'build.done'; domid: number; ms: number }
  | { type: 'build.failed'; domid: number; ms: number; code: string; step?: string }
  | { type: 'restore.done'; domid: number; ms: number }
  | { type: 'restore.failed'; domid: number; ms: number; code: string; step?: string }

/** What a domain boots: its kernel or firmware, and what goes with it. */
export interface DomainImage {
  /** The kernel (PV, PVH) or firmware (HVM) image: a readable file (checked before any hypercall). */
  image: string
  /** The kernel command line (PV, PVH); a PV one is at most 1023 bytes. */
  cmdline?: string
  /** PV: the initial ramdisk, a readable file. */
  ramdisk?: string
  /** PVH: boot modules, each a readable file with its own command line. */
  modules?: readonly { path: string; cmdline?: string }[]
  /** HVM: the builder's NVIDIA vGPU mode (xenguest's `-vgpu`). */
  nvidiaVgpu?: boolean
}

/** xenopsd's defaults for a PV-in-PVH guest's shim: its image, and its command line before `shim_mem=`. */
export const DEFAULT_SHIM_IMAGE = '/usr/libexec/xen/boot/xen-shim'
export const DEFAULT_SHIM_CMDLINE = 'pv-shim console=xen'

/**
 * What a build and a restore share: the builder that does the work, how to
 * follow or stop it, and what build_post writes.
 */
export interface DomainBuilderOptions {
  /** The domain builder: `new SpawnedXenguest()` on a real host, `new SimulatedXenguest(sim)` on a simulated one. */
  xenguest: XenguestRunner
  /** Cancels it: xenguest is killed, the claim released; it rejects with ABORTED. */
  signal?: AbortSignal
  /** Per xenguest run; none by default. */
  xenguestTimeoutMs?: number
  /** How long to wait for free memory (64 s, as xenopsd), then NOT_ENOUGH_MEMORY. */
  memoryTimeoutMs?: number
  /** More arguments for the builder, after ours. */
  extraArgs?: readonly string[]
  /** The domain that serves the guest's xenstore ring (0, dom0, by default). */
  storeDomid?: number
  /** The domain that serves the guest's console (0 by default). */
  consoleDomid?: number
  /** HVM and PVH: the RTC offset written to the VM's rtc/timeoffset ("" by default, as xenopsd). */
  timeoffset?: string
  /** More xenstore entries below the domain's home, written with build_post's. */
  extraKeys?: Readonly<Record<string, string>>
  /**
   * The VM's dynamic memory range (the balloon driver's bounds), written to
   * `memory/dynamic-min` and `memory/dynamic-max` after the build as xenopsd's
   * VM.build does; both `vm.targetKib` when absent.
   */
  dynamicMinKib?: number
  dynamicMaxKib?: number
  /**
   * Each event, as it happens. A listener that throws (or whose Promise
   * rejects) is reported as a process warning and cannot fail or alter the
   * build or restore.
   */
  onEvent?: (event: DomainBuildEvent) => void
}

/** How `buildDomain` builds: what it boots, the builder that does it, and how to follow or stop it. */
export interface BuildDomainOptions extends DomainImage, DomainBuilderOptions {
  /**
   * PV-in-PVH (`vm.pvShim`): the shim Xen the domain boots, `DEFAULT_SHIM_IMAGE`
   * by default. `image`, `cmdline` and `ramdisk` are then the PV guest's: they
   * become the shim's modules, as xenopsd lays them out.
   */
  shimImage?: string
  /** xenguest's `-force`. */
  force?: boolean
}

/** A built domain: what the toolstack needs next (its devices, QEMU, unpausing it). */
export interface BuiltDomain {
  domid: number
  /** The xenstore ring's event channel port. */
  storePort: number
  /** The console's event channel port. */
  consolePort: number
  /** The xenstore ring's machine frame, as xenguest reported it. */
  storeMfn: bigint
  /** The console's machine frame. */
  consoleMfn: bigint
  /** The guest's ABI, when xenguest says (PV: `x86_64-abi`, ...). */
  protocol?: string
  /** The memory it was built with, as xenopsd computes it. */
  memory: MemoryModel
  /** Where its memory and vCPUs were placed, and why. */
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
async function xenguestImage(
  host: BuildHost,
  domid: number,
  vm: VmConfig,
  options: BuildDomainOptions,
  emit: (event: DomainBuildEvent) => void,
): Promise<DomainImage> {
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

/**
 * xenopsd's `Domain.build`: turns an empty, paused domain (`createDomain`)
 * into one ready to run. build_pre (vCPUs, memory limits, shadow pool, NUMA
 * placement, claim, event channels), the domain builder, build_post
 * (xenstore). Bad input is refused before any hypercall; a failure or
 * cancellation anywhere releases the claim and kills xenguest, and rejects
 * with a `XenDomainBuildError` naming the step. The domain stays paused: the
 * toolstack adds its devices, then unpauses it.
 *
 * @example
 * ```ts
 * const domid = await createDomain(xen, host.xenstore, { type: 'hvm', maxVcpus: 2 })
 * const built = await buildDomain(host, domid, { type: 'hvm', staticMaxKib: 4 << 20, targetKib: 4 << 20, videoMib: 8, vcpus: 2 }, {
 *   image: '/usr/lib/xen/boot/hvmloader',
 *   xenguest: new SpawnedXenguest(),
 * })
 * ```
 */
export function buildDomain(host: BuildHost, domid: number, vm: VmConfig, options: BuildDomainOptions): Promise<BuiltDomain> {
  return buildTracingChannel.tracePromise(() => build(host, domid, vm, options), { domid, vm })
}

/**
 * The options a build and a restore share, checked before the first
 * hypercall: types, NUL bytes (they become C strings), and the limits of
 * argv and of xenstore values.
 */
export function checkBuilderOptions<T extends DomainBuilderOptions>(given: T): T {
  const options = optionsObject('options', given)
  xenguestRunner('options.xenguest', options.xenguest)
  optionalArguments('options.extraArgs', options.extraArgs)
  optionalSignal('options.signal', options.signal)
  optionalMilliseconds('options.xenguestTimeoutMs', options.xenguestTimeoutMs)
  optionalMilliseconds('options.memoryTimeoutMs', options.memoryTimeoutMs)
  optionalDomid('options.storeDomid', options.storeDomid)
  optionalDomid('options.consoleDomid', options.consoleDomid)
  optionalCString('options.timeoffset', options.timeoffset, XENSTORE_PAYLOAD_MAX_BYTES)
  optionalFunction('options.onEvent', options.onEvent)
  for (const field of ['dynamicMinKib', 'dynamicMaxKib'] as const) {
    const kib = options[field]
    if (kib !== undefined && (!Number.isSafeInteger(kib) || kib < 0))
      throw invalidArgument(`options.${field}`, `${describe(kib)} is not a whole number of KiB ≥ 0`)
  }
  if ((options.dynamicMinKib ?? 0) > (options.dynamicMaxKib ?? Infinity)) {
    throw invalidArgument('options.dynamicMinKib', `${options.dynamicMinKib} KiB is above dynamicMaxKib (${options.dynamicMaxKib} KiB)`)
  }
  const keys = optionsObject('options.extraKeys', options.extraKeys)
  for (const [key, value] of Object.entries(keys)) {
    if (!isRelativeKey(key)) {
      throw invalidArgument(`options.extraKeys[${JSON.stringify(key.slice(0, 40))}]`, 'is not a relative xenstore path')
    }
    cString(`options.extraKeys.${key}`, value, XENSTORE_PAYLOAD_MAX_BYTES)
  }
  return options as T
}

/** A build's own options, checked with the shared ones. */
function checkOptions(vm: VmConfig, given: BuildDomainOptions): BuildDomainOptions {
  const options = checkBuilderOptions(given)
  cString('options.image', options.image)
  if (options.image === '') throw invalidArgument('options.image', 'is empty')
  const pv = (vm as Partial<VmConfig> | null)?.type === 'pv'
  optionalCString('options.cmdline', options.cmdline, pv ? MAX_PV_CMDLINE_BYTES - 1 : undefined)
  optionalCString('options.ramdisk', options.ramdisk)
  optionalCString('options.shimImage', options.shimImage)
  if ((vm as Partial<VmConfig> | null)?.pvShim === true && (options.modules?.length ?? 0) > 0) {
    throw invalidArgument('options.modules', "a PV-in-PVH guest's modules are its kernel and ramdisk (image, ramdisk): no others")
  }
  if (options.modules !== undefined) {
    if (!Array.isArray(options.modules)) throw invalidArgument('options.modules', `expected an array, got ${describe(options.modules)}`)
    options.modules.forEach((m: unknown, i) => {
      const module = optionsObject(`options.modules[${i}]`, m as { path?: unknown; cmdline?: unknown } | undefined)
      cString(`options.modules[${i}].path`, module.path)
      optionalCString(`options.modules[${i}].cmdline`, module.cmdline)
    })
  }
  optionalBoolean('options.force', options.force)
  optionalBoolean('options.nvidiaVgpu', options.nvidiaVgpu)
  return options
}

/** What a build or a restore does in its own way, around the steps they share. */
export interface BuilderRun {
  operation: 'build' | 'restore'
  /** Before build_pre (a build's file checks, a restore's image header); a restore's claim, in pages. */
  prepare?: () => Promise<{ claimPages?: number } | undefined>
  /** Runs the builder on the domain build_pre prepared: the rings' frames. */
  run: (pre: BuildPreResult, steps: StepRunner) => Promise<XenguestResult>
  /** After the builder, before the claim's rest is released (a restore's end of image). */
  afterRun?: (steps: StepRunner) => Promise<void>
}

/** An event sink for a build or a restore: the caller's listener, isolated, and the diagnostics channel. */
export function buildEvents(onEvent: ((event: DomainBuildEvent) => void) | undefined): (event: DomainBuildEvent) => void {
  const listener = isolated(onEvent)
  return (event) => {
    listener?.(event)
    if (buildChannel.hasSubscribers) buildChannel.publish(event)
  }
}

/**
 * The steps a build and a restore share: build_pre, the builder (`how.run`),
 * the unused claim released, the shadow allocation put back where the builder
 * lowered it, build_post, the dynamic memory range. A failure or cancellation
 * anywhere releases the claim (the builder is the runner's to kill).
 */
export async function runBuilder(
  host: BuildHost,
  domid: number,
  vm: VmConfig,
  options: DomainBuilderOptions,
  emit: (event: DomainBuildEvent) => void,
  how: BuilderRun,
): Promise<BuiltDomain> {
  const started = performance.now()
  const { signal } = options
  let pre: BuildPreResult | undefined
  try {
    const prepared = await how.prepare?.()
    // Ours places memory on a node by itself (one vNUMA node and
    // XENMEMF_exact_node): placement may pin a one-node plan's node for it
    // where xenopsd would need a node claim (placement.ts says when).
    const builderPinsNode = await options.xenguest.supports('mem_pnode')
    pre = await buildPre(host, domid, vm, {
      signal,
      memoryTimeoutMs: options.memoryTimeoutMs,
      onEvent: emit,
      builderPinsNode,
      claimPages: prepared?.claimPages,
    })
    const built = pre
    // The steps after build_pre, timed into the same record.
    const steps = new StepRunner(domid, { signal, onEvent: emit, timingsMs: built.timingsMs })
    const timed = <T>(step: string, work: () => Promise<T>) => steps.run(step, work)
    const result = await how.run(built, steps)
    await how.afterRun?.(steps)
    // xenguest populated the memory: Xen counts it now. What it did not take
    // of the claim is released, whatever the builder does about it.
    built.memoryPopulated()
    await timed('claim_release', () => built.releaseUnusedClaim())
    if (vm.type !== 'pv') {
      await timed('shadow_correction', async () => {
        const actual = await host.hypervisor.shadowAllocationMib(domid)
        if (actual < built.memory.shadowMib) {
          emit({
            type: 'info',
            domid,
            message: `the builder lowered the shadow allocation to ${actual} MiB; setting ${built.memory.shadowMib} MiB back`,
          })
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
    emit({ type: `${how.operation}.done`, domid, ms })
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
    emit({ type: `${how.operation}.failed`, domid, ms: performance.now() - started, code: e.code ?? 'UNKNOWN', step: e.step })
    throw error
  }
}

/** Runs the builder as the xenguest step, with the build's events: the rings' frames, or a protocol error. */
export async function runXenguest(
  steps: StepRunner,
  domid: number,
  options: DomainBuilderOptions,
  emit: (event: DomainBuildEvent) => void,
  args: string[],
  imageFd?: number,
): Promise<XenguestResult> {
  return steps.run('xenguest', async () => {
    const frames = await options.xenguest.run(args, {
      signal: options.signal,
      timeoutMs: options.xenguestTimeoutMs,
      onEvent: (event) => emit({ ...event, domid }),
      ...(imageFd === undefined ? {} : { imageFd }),
    })
    if (frames === null) throw protocolError("a result without the rings' frames")
    return frames
  })
}

async function build(host: BuildHost, domid: number, vm: VmConfig, given: BuildDomainOptions): Promise<BuiltDomain> {
  const options = checkOptions(vm, given)
  const emit = buildEvents(options.onEvent)
  let image: DomainImage = options
  return runBuilder(host, domid, vm, options, emit, {
    operation: 'build',
    prepare: async () => {
      image = await xenguestImage(host, domid, vm, options, emit)
      if (options.xenguest.readsHostFiles !== false)
        await checkReadable(image).catch((error: unknown) => {
          throw inStep(error, 'check_files', domid)
        })
      return undefined
    },
    run: (built, steps) =>
      runXenguest(
        steps,
        domid,
        options,
        emit,
        xenguestArgs({
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
          memoryNode: built.placement.node,
          extraArgs: options.extraArgs,
        }),
      ),
  })
}
