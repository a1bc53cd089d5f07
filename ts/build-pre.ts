/**
 * build_pre (https://github.com/xen-domain-build/xen-domain-build/blob/main/docs/ARCHITECTURE.md#the-job-and-the-steps-of-a-build): prepares
 * an empty domain for the domain builder, in xenopsd's order. Bad VM settings
 * are refused before any hypercall; a failed step names itself, its errno and
 * the domain; a failure or cancellation after the claim releases it.
 */
import {
  guestDomid,
  optionalBoolean,
  optionalFunction,
  optionalMilliseconds,
  optionalSignal,
  optionalWholeNumber,
  optionsObject,
} from './checks.js'
import { aborted, describe, invalidArgument, XenDomainBuildError } from './errors.js'
import { BuildHost } from './host.js'
import { checkVmMemory, memoryModel, type MemoryModel, type VmMemory } from './memory.js'
import { placeDomain, releaseClaim, type PlacementEvent, type Placement } from './placement.js'
import { isolated } from './listener.js'
import { StepRunner, type StepEvent } from './step.js'
import { kibOfMib, MIB, pagesOfMib } from './units.js'
import type { WaitProgress } from './wait-memory.js'
import { domainPath } from './xenstore.js'

/** A VM to build: its memory and vCPUs (`VmMemory`), and optionally where its vCPUs may run. */
export interface VmConfig extends VmMemory {
  /** Hard affinity per vCPU: CPU ids. The first mask serves vCPUs without one. */
  hardAffinity?: readonly (readonly number[])[]
}

/**
 * build_pre's events, by `type`: a step done (`step`, with its milliseconds),
 * waiting for free memory (`memory.wait`, only while a build waits), the NUMA
 * placement, a note (`info`), and a claim that could not be released.
 */
export type BuildEvent =
  | StepEvent
  | ({ type: 'memory.wait'; domid: number } & WaitProgress)
  | { type: 'numa.placement'; domid: number; placement: Placement }
  | { type: 'info'; domid: number; message: string }
  | PlacementEvent

/** How `buildPre` runs: cancellation, the wait for memory, events. */
export interface BuildPreOptions {
  signal?: AbortSignal
  /** How long to wait for free memory: 64 s, as xenopsd. */
  memoryTimeoutMs?: number
  onEvent?: (event: BuildEvent) => void
  /**
   * The domain builder can allocate every page from one node by itself
   * (`-mem_pnode` without a node claim): placement may then pin a one-node
   * plan's node for it (`placement.node`). `buildDomain` asks the builder.
   */
  builderPinsNode?: boolean
  /**
   * A restore's claim, in 4 KiB pages: the memory the image holds (xenopsd's
   * `memory_total_source`), instead of the memory model's `buildClaimPages`.
   */
  claimPages?: number
}

/** A domain build_pre has prepared for the builder, and what to do after it. */
export interface BuildPreResult {
  domid: number
  memory: MemoryModel
  storePort: number
  consolePort: number
  placement: Placement
  /** Milliseconds per step. */
  timingsMs: Record<string, number>
  /**
   * Tells the host the domain's memory is populated (Xen counts it now):
   * in-flight accounting forgets this build's promise.
   */
  memoryPopulated(): void
  /** Releases the claim and the promise: for a build that fails or is cancelled later. */
  release(): Promise<void>
  /**
   * After the builder: releases what the claim still holds, if anything (a
   * builder need not consume all of it); a failure is an event, not a
   * failed build.
   */
  releaseUnusedClaim(): Promise<void>
}

/**
 * A number as xenopsd reads a platform key, with OCaml's int_of_string
 * (decimal, 0x, 0o, 0b, underscores, no spaces); anything else is ignored (null).
 */
export function parseOcamlInt(value: string | null): number | null {
  const match = /^([+-]?)(\d[\d_]*|0[xX][\da-fA-F][\da-fA-F_]*|0[oO][0-7][0-7_]*|0[bB][01][01_]*)$/.exec(value ?? '')
  if (match === null) return null
  const magnitude = Number((match[2] ?? '').replaceAll('_', ''))
  const mode = match[1] === '-' ? -magnitude : magnitude
  return Number.isSafeInteger(mode) ? mode : null
}

/** The timer mode as xenopsd reads it (`parseOcamlInt`). */
export const parseTimerMode = parseOcamlInt

const HVM_PARAM_TIMER_MODE = 10

function checkConfig(host: BuildHost, domid: number, vm: VmConfig): void {
  if (!(host instanceof BuildHost)) throw invalidArgument('host', `expected a BuildHost, got ${describe(host)}`)
  guestDomid('domid', domid)
  // More vCPUs than host CPUs is a valid VM (Xen and xenopsd allow it).
  checkVmMemory(vm)
  if (vm.hardAffinity !== undefined) {
    if (!Array.isArray(vm.hardAffinity) || vm.hardAffinity.length === 0) {
      throw invalidArgument('vm.hardAffinity', 'expected a non-empty array of CPU lists')
    }
    vm.hardAffinity.forEach((mask, i) => {
      if (!Array.isArray(mask) || mask.length === 0) throw invalidArgument(`vm.hardAffinity[${i}]`, 'expected a non-empty CPU list')
      mask.forEach((cpu, j) => {
        if (!Number.isSafeInteger(cpu)) throw invalidArgument(`vm.hardAffinity[${i}][${j}]`, `${describe(cpu)} is not a CPU id`)
      })
      // xenopsd would pass Xen an empty mask, which it refuses: the build would fail there.
      if (i < vm.vcpus && !mask.some((cpu) => hostCpu(host, cpu))) {
        throw invalidArgument(`vm.hardAffinity[${i}]`, `${JSON.stringify(mask)} has no CPU of this host (0 to ${host.cpuCount - 1})`)
      }
    })
  }
}

function hostCpu(host: BuildHost, cpu: number): boolean {
  return cpu >= 0 && cpu < host.cpuCount
}

/**
 * The hard affinity xenopsd applies: one mask per vCPU (masks beyond the
 * vCPUs dropped), CPUs the host does not have dropped from each.
 */
function effectiveHardAffinity(host: BuildHost, vm: VmConfig): { masks: number[][]; dropped: string[] } | undefined {
  if (vm.hardAffinity === undefined) return undefined
  const dropped: string[] = []
  if (vm.hardAffinity.length > vm.vcpus) dropped.push(`${vm.hardAffinity.length - vm.vcpus} mask(s) beyond the ${vm.vcpus} vCPU(s)`)
  const masks = vm.hardAffinity.slice(0, vm.vcpus).map((mask, i) => {
    const outside = mask.filter((cpu) => !hostCpu(host, cpu))
    if (outside.length > 0) dropped.push(`CPU(s) ${outside.join(', ')} from mask ${i} (not on this host)`)
    return mask.filter((cpu) => hostCpu(host, cpu))
  })
  return { masks, dropped }
}

/**
 * xenopsd's `build_pre` alone, for a toolstack that runs the domain builder
 * itself (`buildDomain` runs it, the builder and build_post). Bad VM settings
 * are refused before any hypercall; a failed step names itself, its errno and
 * the domain; a failure or cancellation after the claim releases it.
 */
export async function buildPre(host: BuildHost, domid: number, vm: VmConfig, given?: BuildPreOptions): Promise<BuildPreResult> {
  const options = optionsObject('options', given)
  optionalSignal('options.signal', options.signal)
  optionalMilliseconds('options.memoryTimeoutMs', options.memoryTimeoutMs)
  optionalFunction('options.onEvent', options.onEvent)
  optionalBoolean('options.builderPinsNode', options.builderPinsNode)
  optionalWholeNumber('options.claimPages', options.claimPages, 'pages')
  checkConfig(host, domid, vm)
  if (host.closed) throw new XenDomainBuildError('CLOSED', `domain ${domid}: the build host was closed`)
  const memory = memoryModel(vm)
  const xen = host.hypervisor
  const { signal } = options
  const onEvent = isolated(options.onEvent)
  const steps = new StepRunner(domid, { signal, onEvent })
  const step = <T>(name: string, work: () => Promise<T>) => steps.run(name, work)
  let placement: Placement | undefined
  const reservation = host.ledger.open(domid)
  let released = false

  /** Releases the claim placement made, if it made one (a node or host-wide claim). */
  const releaseHeldClaim = async (): Promise<void> => {
    if (placement?.claim === 'node' || placement?.claim === 'host') await releaseClaim(xen, domid, onEvent)
  }

  const release = async () => {
    if (released) return
    released = true
    reservation.release()
    await releaseHeldClaim()
  }

  reservation.expectPool(memory.shadowMib * MIB)
  if (vm.type === 'pv' && (vm.shadowMultiplier ?? 1) !== 1) {
    onEvent?.({ type: 'info', domid, message: `shadowMultiplier ${vm.shadowMultiplier} ignored for a PV guest (1.0, as xenopsd)` })
  }
  try {
    const info = await step('domain_info', async () => {
      const found = await xen.domainInfo(domid)
      if (found.hvm !== (vm.type !== 'pv')) {
        throw invalidArgument('vm.type', `${vm.type} does not match domain ${domid}, which is ${found.hvm ? 'HVM' : 'PV'}`)
      }
      // Xen's max_vcpus takes only the count the domain was created with:
      // refused here, before anything is changed, not as EINVAL later.
      if (found.createdVcpus != null && found.createdVcpus !== vm.vcpus) {
        throw invalidArgument(
          'vm.vcpus',
          `${vm.vcpus}, but domain ${domid} was created with ${found.createdVcpus} vCPUs (createDomain's maxVcpus); Xen builds a domain with the vCPUs it was created with`,
        )
      }
      return found
    })
    // What Xen counts beyond this is the builder's work: the ledger follows it.
    reservation.setBaselinePages(info.totPages)
    const requiredKib = kibOfMib(memory.requiredHostFreeMib)
    await step('wait_for_memory', () =>
      host.memory.waitForFreeMemory(requiredKib, {
        signal,
        timeoutMs: options.memoryTimeoutMs,
        onProgress: (progress) => onEvent?.({ type: 'memory.wait', domid, ...progress }),
      }),
    )
    const timerMode = await step('timer_mode', async () => {
      const path = `${domainPath(domid)}/platform/timer_mode`
      // xenopsd ignores any failure to read it (its `try ... with _ -> None`), not only ENOENT.
      const value = await host.xenstore.read(path).catch((error: { code?: string }) => {
        onEvent?.({ type: 'info', domid, message: `${path} unreadable (${error.code ?? 'unknown'}): no timer mode set, as xenopsd` })
        return null
      })
      const mode = parseTimerMode(value)
      // A PV domain has no HVM parameters: xenopsd would try, and fail the build.
      if (mode === null || vm.type === 'pv') return mode
      // xenopsd passes a negative mode to Xen, which refuses it: the build fails there too.
      if (mode < 0) throw invalidArgument(`${domainPath(domid)}/platform/timer_mode`, `${mode} is not a timer mode`)
      await xen.setHvmParam(domid, HVM_PARAM_TIMER_MODE, mode)
      return mode
    })
    if (timerMode !== null && vm.type === 'pv') {
      onEvent?.({ type: 'info', domid, message: `timer_mode ${timerMode} ignored for this pv domain` })
    }
    await step('max_vcpus', () =>
      xen.setMaxVcpus(domid, vm.vcpus).catch((error: unknown) => {
        // A domain made elsewhere, whose vCPU count domain_info could not tell.
        if (!(error instanceof XenDomainBuildError) || error.code !== 'EINVAL') throw error
        throw new XenDomainBuildError(
          'EINVAL',
          `${error.message}: was domain ${domid} created with other than the VM's ${vm.vcpus} vCPUs? Xen takes only the count it was created with`,
          {
            cause: error,
            errno: error.errno,
            operation: error.operation,
          },
        )
      }),
    )
    if (vm.type === 'pv') await step('memmap_limit', () => xen.setMemmapLimit(domid, kibOfMib(memory.xenMaxMib)))
    // A claim may not exceed the domain's maximum: raise it to xen_max where
    // the toolstack left it lower, as libxl's build_pre does.
    if (info.maxPages < pagesOfMib(memory.xenMaxMib)) {
      await step('max_memory', () => xen.setMaxMemoryKib(domid, kibOfMib(memory.xenMaxMib)))
    }
    if (vm.type === 'pv' && !host.capabilities.includes('shadow')) {
      // A Xen without shadow paging (Debian's) has no shadow pool for a PV
      // domain, and refuses one with EINVAL; xenopsd would fail the build.
      onEvent?.({ type: 'info', domid, message: 'no shadow paging on this Xen: a PV domain gets no shadow pool' })
    } else {
      await step('shadow_allocation', () => xen.setShadowAllocationMib(domid, memory.shadowMib))
    }
    reservation.poolAllocated()
    const affinity = effectiveHardAffinity(host, vm)
    for (const what of affinity?.dropped ?? []) onEvent?.({ type: 'info', domid, message: `hard affinity: dropped ${what}, as xenopsd` })
    const masks = affinity?.masks
    if (masks !== undefined) {
      await step('hard_affinity', () =>
        Promise.all(
          Array.from({ length: vm.vcpus }, (_, vcpu) => xen.setVcpuAffinity(domid, vcpu, { hard: [...(masks[vcpu] ?? masks[0] ?? [])] })),
        ),
      )
    }
    placement = await step('numa_placement', () =>
      placeDomain(
        host,
        reservation,
        {
          vcpus: vm.vcpus,
          claimPages: options.claimPages ?? memory.buildClaimPages,
          hardAffinityCpus: masks?.flat() ?? null,
          builderPinsNode: options.builderPinsNode ?? false,
        },
        signal,
        onEvent,
      ),
    )
    onEvent?.({ type: 'numa.placement', domid, placement })
    const [storePort, consolePort] = await step('event_channels', async () => [
      await xen.allocUnboundEvtchn(domid, 0),
      await xen.allocUnboundEvtchn(domid, 0),
    ])
    return {
      domid,
      memory,
      storePort,
      consolePort,
      placement,
      timingsMs: steps.timingsMs,
      memoryPopulated: () => reservation.populated(),
      releaseUnusedClaim: releaseHeldClaim,
      release,
    }
  } catch (error) {
    await release()
    if (error instanceof XenDomainBuildError || !(signal?.aborted ?? false)) throw error
    throw aborted(`build_pre of domain ${domid}`, signal?.reason)
  }
}
