import { describe, expect, it } from 'vitest'
import { memoryModel } from '../ts/memory.js'

// Each expected value is worked out by hand from the formulas in
// docs/ARCHITECTURE.md#memory-model.
describe('the memory model', () => {
  it('HVM: 4 GiB static max, 2 GiB target, 8 MiB video, 2 vCPUs', () => {
    // shadow = max(1, ceil((256·2 + 2·4096) / 256) · 1) = ceil(8704/256) = 34
    // overhead = 1 + 1 + 34 + ceil(76/256) = 37; required = 2048 + 37
    expect(memoryModel({ type: 'hvm', staticMaxKib: 4 * 1024 * 1024, targetKib: 2 * 1024 * 1024, videoMib: 8, vcpus: 2 })).toEqual({
      staticMaxMib: 4096,
      targetMib: 2048,
      buildMaxMib: 4088,
      buildStartMib: 2040,
      xenMaxMib: 4097,
      shadowMib: 34,
      overheadMib: 37,
      requiredHostFreeMib: 2085,
      buildClaimPages: 2040 * 256,
    })
  })

  it('PV (Linux): no video, no extra internal; KiB round up to MiB', () => {
    // static max 1000001 KiB → 977 MiB; target 500000 KiB → 489 MiB
    // shadow = ceil((256 + 1954) / 256) = ceil(8.63) = 9; overhead = 0 + 1 + 9 + ceil(38/256) = 11
    expect(memoryModel({ type: 'pv', staticMaxKib: 1_000_001, targetKib: 500_000, vcpus: 1 })).toEqual({
      staticMaxMib: 977,
      targetMib: 489,
      buildMaxMib: 977,
      buildStartMib: 489,
      xenMaxMib: 977,
      shadowMib: 9,
      overheadMib: 11,
      requiredHostFreeMib: 500,
      buildClaimPages: 489 * 256,
    })
  })

  it('PVH without a shim uses the HVM model; the multiplier truncates', () => {
    // shadow = trunc(ceil((256·4 + 2·2048) / 256) · 1.5) = trunc(20 · 1.5) = 30
    // overhead = 1 + 1 + 30 + ceil(152/256) = 33
    const m = memoryModel({ type: 'pvh', staticMaxKib: 2048 * 1024, targetKib: 2048 * 1024, vcpus: 4, shadowMultiplier: 1.5, videoMib: 4 })
    expect(m).toMatchObject({
      buildMaxMib: 2044,
      buildStartMib: 2044,
      xenMaxMib: 2049,
      shadowMib: 30,
      overheadMib: 33,
      requiredHostFreeMib: 2081,
    })
  })

  it('PV-in-PVH adds the shim: 23 + MiB / 90, integer division', () => {
    // static max 4096: shim 23 + 45 = 68; target 1000: shim 23 + 11 = 34
    // build_max = 4096 - 0 + 68; build_start = 1000 + 34; xen_max = 4096 + 1 + 68
    // shadow = ceil((256 + 8192) / 256) = 33; overhead = 1 + 1 + 33 + 1 + 68 = 104
    const m = memoryModel({ type: 'pvh', pvShim: true, staticMaxKib: 4096 * 1024, targetKib: 1000 * 1024, vcpus: 1 })
    expect(m).toEqual({
      staticMaxMib: 4096,
      targetMib: 1000,
      buildMaxMib: 4164,
      buildStartMib: 1034,
      xenMaxMib: 4165,
      shadowMib: 33,
      overheadMib: 104,
      requiredHostFreeMib: 1104,
      buildClaimPages: 1034 * 256,
    })
  })

  it('a tiny multiplier still gives 1 MiB of shadow', () => {
    expect(memoryModel({ type: 'hvm', staticMaxKib: 1024, targetKib: 1024, vcpus: 1, shadowMultiplier: 0.01 }).shadowMib).toBe(1)
  })

  it('refuses bad settings, naming the field', () => {
    const ok = { type: 'hvm' as const, staticMaxKib: 1 << 20, targetKib: 1 << 20, vcpus: 1 }
    const bad: [object, RegExp][] = [
      [{ ...ok, vcpus: 0 }, /vm.vcpus/],
      [{ ...ok, vcpus: -1 }, /vm.vcpus/],
      [{ ...ok, targetKib: (1 << 20) + 1 }, /vm.targetKib: .* is above staticMaxKib/],
      [{ ...ok, staticMaxKib: 2 ** 53 }, /vm.staticMaxKib/],
      [{ ...ok, staticMaxKib: 1.5 }, /vm.staticMaxKib/],
      [{ ...ok, type: 'pv', videoMib: 4 }, /vm.videoMib: must be 0/],
      [{ ...ok, videoMib: 1024 }, /vm.videoMib/],
      [{ ...ok, type: 'kvm' }, /vm.type/],
      [{ ...ok, shadowMultiplier: 0 }, /vm.shadowMultiplier/],
      [{ ...ok, pvShim: true }, /vm.pvShim/],
    ]
    for (const [vm, message] of bad) {
      expect(() => memoryModel(vm as never), JSON.stringify(vm)).toThrow(
        expect.objectContaining({ code: 'INVALID_ARGUMENT', message: expect.stringMatching(message) }),
      )
    }
  })

  it('PV ignores the shadow multiplier (1.0), as xenopsd does; HVM uses it', () => {
    const base = { staticMaxKib: 1024 * 1024, targetKib: 1024 * 1024, vcpus: 1, shadowMultiplier: 3 }
    // ceil((256 + 2048) / 256) = 9 MiB at 1.0; 27 MiB at 3.0
    expect(memoryModel({ ...base, type: 'pv' }).shadowMib).toBe(9)
    expect(memoryModel({ ...base, type: 'hvm' }).shadowMib).toBe(27)
  })
})
