// What the published types promise, pinned: each line compiles, or, where
// marked as an expected error, must not. Compiled by __test__/examples.test.ts
// against the package's own entry, as a user's project resolves it.
import { expectTypeOf } from 'vitest'
import {
  BuildHost,
  isXenDomainBuildError,
  openHypervisor,
  openXenstore,
  simulateHost,
  SpawnedXenguest,
  XenDomainBuildError,
  type ErrorCode,
  type Hypervisor,
  type NumaInfo,
  type PhysInfo,
  type SimulatorPreset,
  type XenDomainBuildErrorOf,
  type XenguestFailure,
} from 'xen-domain-build'

// `await using` on what a user opens: the hypervisor, the store, the host.
export async function disposables(): Promise<void> {
  await using xen = await openHypervisor()
  await using xs = await openXenstore()
  await using host = await BuildHost.create(xen, { xenstore: xs })
  await using simulated = simulateHost({ preset: 'qemu-2-node' }).hypervisor()
  expectTypeOf(host.hypervisor).toEqualTypeOf<Hypervisor>()
  expectTypeOf(simulated).toEqualTypeOf<Hypervisor>()
}

// The hypervisor's answers under their public names.
export async function names(xen: Hypervisor): Promise<void> {
  expectTypeOf(await xen.physinfo()).toEqualTypeOf<PhysInfo>()
  expectTypeOf(await xen.numaInfo()).toEqualTypeOf<NumaInfo>()
  expectTypeOf<ReturnType<typeof import('xen-domain-build').simulatorPresets>>().toEqualTypeOf<SimulatorPreset[]>()
}

// A closed set of codes: a misspelt one does not compile.
export const known: ErrorCode = 'ENOMEM'
export const numbered: ErrorCode = 'E133'
// @ts-expect-error a code that does not exist
export const misspelt: ErrorCode = 'ENOMEMM'
// @ts-expect-error not even under the class's own check
export const wrongCheck = (error: unknown) => isXenDomainBuildError(error, 'NOT_ENOUGH_MEMOR')

// Each code's own fields, typed after the one check.
export function fields(error: unknown): void {
  if (isXenDomainBuildError(error, 'NOT_ENOUGH_MEMORY')) {
    expectTypeOf(error.requiredBytes).toEqualTypeOf<number>()
    expectTypeOf(error.freeBytes).toEqualTypeOf<number>()
  }
  if (isXenDomainBuildError(error, 'XENGUEST_FAILED')) expectTypeOf(error.xenguest).toEqualTypeOf<XenguestFailure>()
  if (isXenDomainBuildError(error, 'ABORTED')) expectTypeOf(error.name).toEqualTypeOf<'AbortError'>()
  if (isXenDomainBuildError(error)) {
    // A switch on the code narrows too.
    switch (error.code) {
      case 'NOT_ENOUGH_MEMORY':
        expectTypeOf(error.requiredBytes).toEqualTypeOf<number>()
        break
      case 'XENSTORE_UNAVAILABLE':
        expectTypeOf(error.reason).toEqualTypeOf<'no-library' | 'no-xenstored' | 'no-privileges'>()
        break
    }
  }
  // After instanceof alone, the documented fields are there, maybe undefined.
  if (error instanceof XenDomainBuildError) expectTypeOf(error.requiredBytes).toEqualTypeOf<number | undefined>()
  expectTypeOf<XenDomainBuildErrorOf<'CLOSED'>['code']>().toEqualTypeOf<'CLOSED'>()
}

// A builder without a path: the default one (or XEN_UNAVAILABLE at run time).
export const builder = new SpawnedXenguest()
