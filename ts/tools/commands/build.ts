/** `xen-domain-build build`: builds a domain from a VM config file. */
import { randomUUID } from 'node:crypto'
import { parseArgs } from 'node:util'
import { buildDomain, type BuiltDomain } from '../../build.js'
import { BuildHost, NUMA_POLICIES, type NumaPolicy } from '../../host.js'
import { openHypervisor, simulateHost, simulatorPresets } from '../../hypervisor.js'
import { SimulatedXenguest } from '../../sim-xenguest.js'
import { SpawnedXenguest } from '../../xenguest.js'
import { domainPath } from '../../xenstore.js'
import { presetNames, readInput, UsageError, wholeNumber, type Out } from '../common.js'
import { parseVmConfig } from '../vm-config.js'

const USAGE = () => `Usage:
  xen-domain-build build --sim PRESET --config VM.json [--json]
      Creates a domain on a simulated host and builds it (simulated xenguest).
  xen-domain-build build --domid N --config VM.json [--xenguest PATH] [--json]
      Builds an existing, empty domain on this machine's Xen, with xenguest.

The VM config file is one JSON object: type ("hvm", "pv", "pvh"), staticMaxKib,
targetKib, vcpus, and optionally videoMib, shadowMultiplier, pvShim,
hardAffinity (CPU lists per vCPU), image (required), cmdline, ramdisk,
modules ([{ "path", "cmdline" }]), nvidiaVgpu.

Xenstore: the command writes the domain's entries into an in-memory store and
prints them; a toolstack passes its own Xenstore client through the API.

Options:
  --sim PRESET            one of: ${presetNames()}
  --domid N               the domain to build (real host)
  --config FILE           the VM config file, or - for standard input
  --xenguest PATH         the domain builder (default /usr/libexec/xen/bin/xenguest)
  --numa-policy POLICY    any, best_effort (default), best_effort_hard, prio_mem_only
  --timeout-ms MS         how long xenguest may take (default 120000)
  --json                  one JSON object instead of text
  -h, --help              this help`


export async function build(args: string[], out: Out): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      sim: { type: 'string' },
      domid: { type: 'string' },
      config: { type: 'string' },
      xenguest: { type: 'string' },
      'numa-policy': { type: 'string' },
      'timeout-ms': { type: 'string' },
      json: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
    strict: true,
  })
  if (values.help) {
    out(USAGE())
    return 0
  }
  if (values.config === undefined) throw new UsageError('build needs --config FILE (see --help)')
  if ((values.sim === undefined) === (values.domid === undefined)) throw new UsageError('build needs exactly one of --sim PRESET and --domid N')
  const numaPolicy = (values['numa-policy'] ?? 'best_effort') as NumaPolicy
  if (!NUMA_POLICIES.includes(numaPolicy)) throw new UsageError(`--numa-policy: ${numaPolicy} is not one of ${NUMA_POLICIES.join(', ')}`)
  const config = parseVmConfig(readInput(values.config), values.config === '-' ? 'stdin' : values.config)
  let built: BuiltDomain
  let host: BuildHost
  if (values.sim !== undefined) {
    if (!simulatorPresets().some((p) => p.name === values.sim)) throw new UsageError(`--sim: unknown host ${values.sim} (one of ${presetNames()})`)
    const sim = simulateHost({ preset: values.sim })
    host = await BuildHost.create(sim.hypervisor(), { numaPolicy })
    const domid = await sim.hypervisor().createDomain({ kind: config.vm.type, maxVcpus: config.vm.vcpus })
    await host.xenstore.write(`${domainPath(domid)}/vm`, `/vm/${randomUUID()}`)
    built = await buildDomain(host, domid, config.vm, { ...config.image, xenguest: new SimulatedXenguest(sim) })
  } else {
    const domid = wholeNumber('--domid', values.domid)
    host = await BuildHost.create(await openHypervisor(), { numaPolicy })
    const xenguest = new SpawnedXenguest(values.xenguest ?? '/usr/libexec/xen/bin/xenguest')
    built = await buildDomain(host, domid, config.vm, {
      ...config.image,
      xenguest,
      xenguestTimeoutMs: wholeNumber('--timeout-ms', values['timeout-ms'], 120_000),
    })
  }
  const xenstore = Object.fromEntries((host.xenstore as { entries?: Map<string, string> }).entries ?? [])
  const summary = {
    domid: built.domid,
    storePort: built.storePort,
    consolePort: built.consolePort,
    storeMfn: String(built.storeMfn),
    consoleMfn: String(built.consoleMfn),
    memory: built.memory,
    placement: { plan: built.placement.plan?.nodes ?? null, node: built.placement.node, claim: built.placement.claim, affinity: built.placement.affinity, reason: built.placement.reason },
    timingsMs: Object.fromEntries(Object.entries(built.timingsMs).map(([k, v]) => [k, +v.toFixed(2)])),
    xenstore,
  }
  if (values.json) {
    out(JSON.stringify(summary))
    return 0
  }
  out(`domain ${built.domid} built: store port ${built.storePort} (mfn ${built.storeMfn}), console port ${built.consolePort} (mfn ${built.consoleMfn})`)
  out(`memory: build ${built.memory.buildStartMib}/${built.memory.buildMaxMib} MiB, xen max ${built.memory.xenMaxMib} MiB, shadow ${built.memory.shadowMib} MiB, claimed ${built.memory.buildClaimPages} pages`)
  out(`NUMA placement: ${built.placement.reason} (claim: ${built.placement.claim}${built.placement.affinity ? `, ${built.placement.affinity} affinity` : ''})`)
  out(`steps: ${Object.entries(built.timingsMs).map(([k, v]) => `${k} ${v.toFixed(1)} ms`).join(', ')}`)
  for (const [path, value] of Object.entries(xenstore)) out(`xenstore ${path} = ${value}`)
  return 0
}
