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
import { buildPre, type BuildEvent, type BuildPreResult, type VmConfig } from './build-pre.js'
import { buildPost } from './build-post.js'
import { describe, inStep, invalidArgument } from './errors.js'
import type { BuildHost } from './host.js'
import type { MemoryModel } from './memory.js'
import type { Placement } from './placement.js'
import { StepRunner } from './step.js'
import { xenguestArgs, type XenguestLog, type XenguestRunner } from './xenguest.js'

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

export interface BuildDomainOptions extends DomainImage {
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
  const files: [string, unknown][] = [
    ['image', image.image],
    ['ramdisk', image.ramdisk],
    ...(image.modules ?? []).map((m, i): [string, unknown] => [`modules[${i}].path`, m?.path]),
  ]
  for (const [field, path] of files) {
    if (path === undefined || (field === 'ramdisk' && path === '')) continue
    if (typeof path !== 'string' || path === '') throw invalidArgument(field, `expected a file path, got ${describe(path)}`)
    try {
      await access(path, constants.R_OK)
    } catch (error) {
      throw invalidArgument(field, `${path} is not readable (${(error as NodeJS.ErrnoException).code ?? 'unknown'})`)
    }
  }
}

export function buildDomain(host: BuildHost, domid: number, vm: VmConfig, options: BuildDomainOptions): Promise<BuiltDomain> {
  return buildTracingChannel.tracePromise(() => build(host, domid, vm, options), { domid, vm })
}

async function build(host: BuildHost, domid: number, vm: VmConfig, options: BuildDomainOptions): Promise<BuiltDomain> {
  const started = performance.now()
  const emit = (event: DomainBuildEvent) => {
    options.onEvent?.(event)
    if (buildChannel.hasSubscribers) buildChannel.publish(event)
  }
  const { signal } = options
  let pre: BuildPreResult | undefined
  try {
    if (options.xenguest.readsHostFiles !== false) await checkReadable(options).catch((error: unknown) => {
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
      image: options.image,
      cmdline: options.cmdline,
      ramdisk: options.ramdisk,
      modules: options.modules,
      nvidiaVgpu: options.nvidiaVgpu,
      force: options.force,
      storePort: built.storePort,
      consolePort: built.consolePort,
      storeDomid: options.storeDomid,
      consoleDomid: options.consoleDomid,
      memory: built.memory,
      memoryNode: built.placement.node,
      extraArgs: options.extraArgs,
    })
    const result = await timed('xenguest', () =>
      options.xenguest.run(args, {
        signal,
        timeoutMs: options.xenguestTimeoutMs,
        onEvent: (event) => emit({ ...event, domid }),
      }),
    )
    // xenguest populated the memory: Xen counts it now.
    built.memoryPopulated()
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
