/** `xen-domain-build build`: builds a domain from a VM config file. */
import { buildDomain, type BuiltDomain } from '../../build.js'
import { BuildHost, NUMA_POLICIES, type NumaPolicy } from '../../host.js'
import { openHypervisor, simulateHost, simulatorPresets } from '../../hypervisor.js'
import { SimulatedXenguest } from '../../sim-xenguest.js'
import { requireDefaultXenguestPath } from '../../xenguest-discovery.js'
import { SpawnedXenguest } from '../../xenguest.js'
import { XenDomainBuildError } from '../../errors.js'
import { createDomain, destroyDomain, removeVm } from '../../domain.js'
import { domainPath, libxlPath, openXenstore, type Xenstore } from '../../xenstore.js'
import { InMemoryXenstore } from '../../xenstore-memory.js'
import { parseCommandLine, presetNames, readInput, UsageError, wholeNumber, type Out } from '../common.js'
import { parseVmConfig } from '../vm-config.js'

const USAGE = () => `Usage:
  xen-domain-build build --config VM.json [--xenguest PATH] [--paused] [--json]
      Creates a domain on this machine's Xen (hypervisor and xenstore, as
      xenopsd's Domain.make does), builds it with xenguest and unpauses it; a
      failed build destroys it.
  xen-domain-build build --domid N --config VM.json [--xenguest PATH] [--paused] [--json]
      Builds an existing, empty domain on this machine's Xen, and unpauses it.
  xen-domain-build build --sim PRESET --config VM.json [--json]
      Creates a domain on a simulated host and builds it (simulated xenguest,
      in-memory xenstore).

The VM config file is one JSON object: type ("hvm", "pv", "pvh"), staticMaxKib,
targetKib, vcpus, and optionally videoMib, shadowMultiplier, pvShim,
hardAffinity (CPU lists per vCPU), image (required), cmdline, ramdisk,
modules ([{ "path", "cmdline" }]), nvidiaVgpu, and for a domain the command
creates uuid, name and platform ({ "timer_mode": "1", ... }).

Xenstore: on a real host, the host's xenstored (through libxenstore); the
command prints the domain's entries.

Options:
  --sim PRESET            one of: ${presetNames()}
  --domid N               the domain to build (real host)
  --config FILE           the VM config file, or - for standard input
  --xenguest PATH         the domain builder (default: the host's /usr/libexec/xen/bin/xenguest,
                          else this package's xen-domain-builder)
  --paused                leave the built domain paused (as xl create -p); default: unpause it
  --numa-policy POLICY    any, best_effort (default), best_effort_hard, prio_mem_only
  --timeout-ms MS         how long xenguest may take (default 120000)
  --json                  one JSON object instead of text
  -h, --help              this help`

export async function build(args: string[], out: Out): Promise<number> {
  const { values } = parseCommandLine({
    args,
    options: {
      sim: { type: 'string' },
      domid: { type: 'string' },
      config: { type: 'string' },
      xenguest: { type: 'string' },
      paused: { type: 'boolean', default: false },
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
  if (values.sim !== undefined && values.domid !== undefined) throw new UsageError('--sim and --domid exclude each other')
  const numaPolicy = (values['numa-policy'] ?? 'best_effort') as NumaPolicy
  if (!NUMA_POLICIES.includes(numaPolicy)) throw new UsageError(`--numa-policy: ${numaPolicy} is not one of ${NUMA_POLICIES.join(', ')}`)
  const config = parseVmConfig(readInput(values.config), values.config === '-' ? 'stdin' : values.config)
  const domainConfig = {
    type: config.vm.type,
    maxVcpus: config.vm.vcpus,
    pvShim: config.vm.pvShim,
    initialTargetKib: config.vm.targetKib,
    ...config.domain,
  }
  let built: BuiltDomain
  let host: BuildHost
  if (values.sim !== undefined) {
    if (!simulatorPresets().some((p) => p.name === values.sim))
      throw new UsageError(`--sim: unknown host ${values.sim} (one of ${presetNames()})`)
    const sim = simulateHost({ preset: values.sim })
    host = await BuildHost.create(sim.hypervisor(), {
      numaPolicy,
      xenstore: new InMemoryXenstore({ domainExists: (domid) => sim.domains().includes(domid) }),
    })
    const domid = await createDomain(sim.hypervisor(), host.xenstore, domainConfig)
    built = await buildDomain(host, domid, config.vm, { ...config.image, xenguest: new SimulatedXenguest(sim) })
  } else {
    const existing = values.domid === undefined ? undefined : wholeNumber('--domid', values.domid)
    const timeoutMs = wholeNumber('--timeout-ms', values['timeout-ms'], 120_000)
    let builder: string
    try {
      builder = values.xenguest ?? requireDefaultXenguestPath()
    } catch (error) {
      // The library's message says to give its path: here, that is a flag.
      throw new XenDomainBuildError('XEN_UNAVAILABLE', `${(error as Error).message} with --xenguest PATH`)
    }
    const xen = await openHypervisor()
    host = await BuildHost.create(xen, { numaPolicy, xenstore: await openXenstore() })
    const domid = existing ?? (await createDomain(xen, host.xenstore, domainConfig))
    try {
      built = await buildDomain(host, domid, config.vm, {
        ...config.image,
        xenguest: new SpawnedXenguest(builder),
        xenguestTimeoutMs: timeoutMs,
      })
      // Built: let it run, unless asked to leave it paused (as xl create -p).
      if (!values.paused) await xen.unpauseDomain(domid)
    } catch (error) {
      // A domain this command made does not outlive its failed build (xenopsd destroys it too).
      if (existing === undefined) {
        const vmPath = await host.xenstore.read(`${domainPath(domid)}/vm`).catch(() => null)
        await destroyDomain(xen, host.xenstore, domid).catch(() => undefined)
        // The VM was this command's alone: its /vm/UUID goes too (removeVm keeps one another domain still uses).
        if (vmPath?.startsWith('/vm/')) await removeVm(host.xenstore, vmPath.slice(4)).catch(() => undefined)
      }
      throw error
    }
  }
  const xenstore = await dumpDomainTrees(host.xenstore, built.domid)
  const summary = {
    domid: built.domid,
    storePort: built.storePort,
    consolePort: built.consolePort,
    storeMfn: String(built.storeMfn),
    consoleMfn: String(built.consoleMfn),
    memory: built.memory,
    placement: {
      plan: built.placement.plan?.nodes ?? null,
      node: built.placement.node,
      claim: built.placement.claim,
      affinity: built.placement.affinity,
      reason: built.placement.reason,
    },
    timingsMs: Object.fromEntries(Object.entries(built.timingsMs).map(([k, v]) => [k, +v.toFixed(2)])),
    xenstore,
  }
  if (values.json) {
    out(JSON.stringify(summary))
    return 0
  }
  out(
    `domain ${built.domid} built: store port ${built.storePort} (mfn ${built.storeMfn}), console port ${built.consolePort} (mfn ${built.consoleMfn})`,
  )
  out(
    `memory: build ${built.memory.buildStartMib}/${built.memory.buildMaxMib} MiB, xen max ${built.memory.xenMaxMib} MiB, shadow ${built.memory.shadowMib} MiB, claimed ${built.memory.buildClaimPages} pages`,
  )
  out(
    `NUMA placement: ${built.placement.reason} (claim: ${built.placement.claim}${built.placement.affinity ? `, ${built.placement.affinity} affinity` : ''})`,
  )
  out(
    `steps: ${Object.entries(built.timingsMs)
      .map(([k, v]) => `${k} ${v.toFixed(1)} ms`)
      .join(', ')}`,
  )
  for (const [path, value] of Object.entries(xenstore)) if (value !== '') out(`xenstore ${path} = ${value}`)
  return 0
}

/** Every node of the domain's trees (its home, its VM's, libxl's) with its value. */
async function dumpDomainTrees(xenstore: Xenstore, domid: number): Promise<Record<string, string>> {
  const home = domainPath(domid)
  const vmPath = await xenstore.read(`${home}/vm`)
  const dump: Record<string, string> = {}
  const walk = async (path: string): Promise<void> => {
    const value = await xenstore.read(path)
    if (value === null) return
    dump[path] = value
    for (const name of await xenstore.directory(path)) await walk(`${path}/${name}`)
  }
  for (const root of [home, ...(vmPath === null ? [] : [vmPath]), libxlPath(domid)]) await walk(root)
  return dump
}
