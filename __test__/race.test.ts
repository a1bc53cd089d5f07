import { describe, expect, it } from 'vitest'
import { runStorm, type StormOptions } from '../ts/tools/storm.js'

// 64 builds at once on a 4-node host (16 GiB a node) without node claims
// (upstream Xen), each followed by populating its memory as the domain
// builder would. Five VMs of 10 GiB and 59 of 128 MiB: about 58 GiB of 64.
//
// xenopsd's accounting cannot see memory behind a host-wide claim, so every
// build plans against the same free memory and the usage counters alone
// spread them: the i-th VM to reach the planner goes to node i mod 4, and two
// of the five large VMs share a node, whatever the order. In-flight
// accounting sees what is promised, and gives the fifth a multi-node plan.
//
// The domain builder is slow here (600 ms), so that every build is planned
// before any memory is populated: the race at its widest, the same in every run.
const workload: StormOptions = {
  preset: 'two-socket-4-node',
  nodeClaims: false,
  vms: 64,
  builderMs: 600,
  builderJitter: 0,
  vcpuChoices: [1],
  exactSizesMib: Array.from({ length: 64 }, (_, i) => (i % 13 === 0 ? 10_240 : 128)),
}

describe('a mass start of 64 VMs on a 4-node host without node claims', () => {
  it('with in-flight accounting: no node over-promised, every VM on its planned nodes', async () => {
    const report = await runStorm({ ...workload, accounting: 'in-flight' })
    expect(report.failed).toBe(0)
    expect(report.overpromised).toBe(0)
    for (const vm of report.vms) {
      expect(vm.placement?.plan, `domain ${vm.domid}`).not.toBeNull()
      expect(vm.local, `domain ${vm.domid}: planned ${vm.placement?.plan?.nodes}, memory ${vm.pagesByNode}`).toBe(true)
    }
    // Every VM that fits in a node when it is planned lands in one node: all
    // but the last large VM, for which no node has 10 GiB left.
    const single = report.vms.filter((v) => v.placement?.plan?.nodes.length === 1)
    expect(single.length).toBeGreaterThanOrEqual(63)
  })

  it("with xenopsd's accounting, the same start over-promises a node and spills", async () => {
    const report = await runStorm({ ...workload, accounting: 'xenopsd' })
    expect(report.failed).toBe(0)
    expect(report.overpromised).toBeGreaterThan(0)
    expect(report.whollyShare).toBeLessThan(1)
    expect(report.outcomes.spread).toBeGreaterThan(0)
    const large = report.vms.filter((v) => v.sizeMib === 10_240)
    const nodes = large.map((v) => v.placement?.plan?.nodes.join(','))
    expect(new Set(nodes).size).toBeLessThan(large.length)
  })
})

describe("a mass start at the CLI's default load, with builder jitter", () => {
  // 256 VMs on the 8-node AMD host, 85% full, builders taking 10-30 ms.
  // Seed 4 fills the host: two builds fail with ENOMEM, in both modes.
  it.each([3, 4, 7])('seed %i: in-flight accounting puts every placed VM on its planned nodes', async (seed) => {
    const report = await runStorm({ preset: 'amd-opteron-6272', nodeClaims: false, vms: 256, seed, accounting: 'in-flight' })
    for (const vm of report.vms) {
      if (vm.error !== undefined) {
        // A failed build fails before any of its memory is populated.
        expect(vm.code, `domain ${vm.domid}`).toBe('ENOMEM')
        expect(
          report.sim.domainPagesByNode(vm.domid).every((p) => p === 0),
          `domain ${vm.domid}`,
        ).toBe(true)
        continue
      }
      if (vm.placement?.plan) {
        expect(vm.local, `domain ${vm.domid}: planned ${vm.placement.plan.nodes}, memory ${vm.pagesByNode}`).toBe(true)
      }
    }
    expect(report.outcomes.spread).toBe(0)
    expect(report.completed).toBeGreaterThanOrEqual(254)
    // Of all VMs, the figures add up: wholly, spread, unplaced and failed.
    const o = report.outcomes
    expect(o.wholly + o.spread + o.unplaced + o.failed).toBe(256)
  })
})
