/**
 * `restoreDomain`: xenopsd's Domain.restore for PV and PVH guests. The same
 * build_pre as a build (the wait for memory, NUMA placement and claims,
 * event channels: `runBuilder` in build.ts), with the claim sized from the
 * memory the image holds; the builder restores the image's memory; the same
 * shadow fix-up and build_post with the restored rings' frames.
 */
import { open } from 'node:fs/promises'
import { tracingChannel } from 'node:diagnostics_channel'
import type { VmConfig } from './build-pre.js'
import { type BuiltDomain, buildEvents, checkBuilderOptions, type DomainBuilderOptions, runBuilder, runXenguest } from './build.js'
import { guestDomid, pathOrFileDescriptor } from './checks.js'
import { inStep, invalidArgument } from './errors.js'
import type { BuildHost } from './host.js'
import { readImageEnd, readImageHeader, type SuspendedVm } from './suspend-image.js'
import { KIB_PER_PAGE } from './units.js'
import { xenguestRestoreArgs } from './xenguest-protocol.js'

/** How `restoreDomain` restores: the builder that does it, and how to follow or stop it (as a build's). */
export interface RestoreDomainOptions extends DomainBuilderOptions {}

/** Each restore as a traced operation, with `{ domid, vm }` as its context, as builds are on `buildTracingChannel`. */
export const restoreTracingChannel = tracingChannel<unknown, { domid: number; vm: VmConfig }>('xen-domain-build:restore')

/**
 * xenopsd's `Domain.restore`: turns an empty, paused domain (`createDomain`)
 * into the guest a suspend image holds, ready to unpause. `image` is a path
 * or an open file descriptor (read from its offset: a file, a pipe, a
 * socket). The memory model is a build's without video memory, as xenopsd's;
 * the claim is the memory the domain held when it was suspended (the image
 * records it: xenopsd's `memory_total_source`), placed as a build's. Bad
 * input is refused before any hypercall; an image that is not one is
 * INVALID_SUSPEND_IMAGE, before the claim; a failure or cancellation
 * anywhere releases the claim and kills the builder. The domain stays paused.
 *
 * @example
 * ```ts
 * const domid = await createDomain(xen, host.xenstore, { type: 'pv', maxVcpus: 1 })
 * const restored = await restoreDomain(host, domid, vm, '/var/lib/xen/save/vm.img', { xenguest: new SpawnedXenguest() })
 * await xen.unpauseDomain(restored.domid)
 * ```
 */
export function restoreDomain(
  host: BuildHost,
  domid: number,
  vm: VmConfig,
  image: string | number,
  options: RestoreDomainOptions,
): Promise<BuiltDomain> {
  return restoreTracingChannel.tracePromise(() => restore(host, domid, vm, image, options), { domid, vm })
}

async function restore(
  host: BuildHost,
  domid: number,
  vm: VmConfig,
  image: string | number,
  given: RestoreDomainOptions,
): Promise<BuiltDomain> {
  guestDomid('domid', domid)
  pathOrFileDescriptor('image', image)
  const options = checkBuilderOptions(given)
  const emit = buildEvents(options.onEvent)
  // xenopsd's restore: the build's memory model, without video memory.
  const restored: VmConfig = vm?.type === 'hvm' ? { ...vm, videoMib: 0 } : vm
  let file: Awaited<ReturnType<typeof open>> | undefined
  let fd = typeof image === 'number' ? image : -1
  /** The image's header, up to the libxc stream: the claim is the memory it records. */
  const readHeader = async () => {
    if (typeof image === 'string') {
      file = await open(image, 'r').catch((error: NodeJS.ErrnoException) => {
        throw invalidArgument('image', `${image} cannot be opened (${error.code ?? 'unknown'})`)
      })
      fd = file.fd
    }
    const suspended: SuspendedVm = (await readImageHeader(fd)).record.vm
    if (suspended.config.type !== vm.type) {
      throw invalidArgument('vm.type', `${vm.type}, but the image holds a ${suspended.config.type} guest`)
    }
    return { claimPages: Math.ceil(suspended.memoryTotalSourceKib / KIB_PER_PAGE) }
  }
  try {
    return await runBuilder(host, domid, restored, options, emit, {
      operation: 'restore',
      // Before build_pre, as a build's file checks: its failures are the image_header step's.
      prepare: () =>
        readHeader().catch((error: unknown) => {
          throw inStep(error, 'image_header', domid)
        }),
      run: (built, steps) =>
        runXenguest(
          steps,
          domid,
          options,
          emit,
          xenguestRestoreArgs({
            type: vm.type,
            domid,
            storePort: built.storePort,
            consolePort: built.consolePort,
            storeDomid: options.storeDomid,
            consoleDomid: options.consoleDomid,
            memoryNode: built.placement.node,
            extraArgs: options.extraArgs,
          }),
          fd,
        ),
      afterRun: (steps) => steps.run('image_end', () => readImageEnd(fd)),
    })
  } finally {
    await file?.close().catch(() => undefined)
  }
}
