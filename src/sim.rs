//! `SimulatedHost`: a simulated Xen host, its hypervisor, and the simulator's own
//! controls (clock, scrubber, faults, where each domain's memory is).

use crate::convert::{to_u32, to_u64};
use crate::error::{invalid_argument, sync, Result};
use crate::hypervisor::Hypervisor;
use crate::task::PoolTask;
use napi::bindgen_prelude::{AsyncTask, Env};
use napi_derive::napi;
use std::sync::Arc;
use xen_sim::{Fault, HostSpec};
use xenctrl::CpuLocation;

/// A CPU of a described host: its core, socket and node.
#[napi(object, js_name = "SimulatedCpu")]
pub struct SimCpuInput {
    pub core: f64,
    pub socket: f64,
    pub node: f64,
}

/// A host to simulate, described: distances, CPUs and each node's memory.
#[napi(object, js_name = "SimulatedHostDescription")]
pub struct SimulatedHostInput {
    pub distances: Vec<Vec<f64>>,
    pub cpus: Vec<SimCpuInput>,
    pub node_memory_bytes: Vec<f64>,
}

/// What `simulateHost` simulates: a preset or a described host, and how its Xen behaves.
#[napi(object)]
pub struct SimulatedHostOptions {
    /// A preset host (see `SimulatedHost.presets()`); or give `host`.
    pub preset: Option<String>,
    pub host: Option<SimulatedHostInput>,
    /// XenServer's Xen has node claims (the default); upstream's answers ENOSYS.
    pub node_claims: Option<bool>,
    /// Shadow paging built in (the default, as XenServer's Xen); Debian's Xen has none.
    pub shadow_paging: Option<bool>,
    /// Hardware-assisted paging (the default); without it HVM domains are shadowed.
    pub hap: Option<bool>,
    /// Xen booted with `vpmu` (off by default, as Xen's).
    pub vpmu: Option<bool>,
    /// Xen's `gnttab=max-ver:N`: 1 or 2 (the default).
    pub gnttab_max_version: Option<f64>,
    pub scrub_reporting: Option<ScrubReporting>,
    pub scrub_pages_per_second_per_node: Option<f64>,
    /// Real time by default; `manual` for tests that step the scrubber.
    pub clock: Option<Clock>,
    /// The Xen release the host reports, as "4.20" (default "4.17"): one
    /// outside the supported ones is refused when its hypervisor is opened,
    /// as on a real host.
    pub xen_version: Option<String>,
}

/// How physinfo reports memory waiting to be scrubbed.
#[napi(string_enum = "lowercase")]
pub enum ScrubReporting {
    /// XenServer's Xen counts it in `scrub_pages` (the default).
    XenServer,
    /// Upstream Xen: always 0.
    Upstream,
}

/// Where the simulated host's time comes from.
#[napi(string_enum = "kebab-case")]
pub enum Clock {
    /// Moves only with `advanceClock`: for tests that step the scrubber.
    Manual,
    /// Real time, as a real host's (the default).
    RealTime,
}

/// When an injected fault fires.
#[napi(string_enum = "lowercase")]
pub enum FaultMode {
    Once,
    Always,
    /// Latency only.
    Never,
    /// With the fault's `probability`, from a seeded generator.
    Probability,
}

/// A fault to inject into one operation of the simulator.
#[napi(object, js_name = "Fault")]
pub struct FaultInput {
    /// The operation, by its libxenctrl name (`xc_domain_claim_pages`, ...).
    pub operation: String,
    /// The errno to fail with, as a number or a name (`ENOMEM`).
    pub errno: Option<napi::Either<f64, String>>,
    pub mode: FaultMode,
    pub probability: Option<f64>,
    pub latency_ms: Option<f64>,
}

/// One node's memory on the simulated host, in 4 KiB pages.
#[napi(object, js_name = "NodePages")]
pub struct NodePagesJs {
    pub total_pages: f64,
    pub free_pages: f64,
    pub scrub_pages: f64,
    pub claimed_pages: f64,
}

/// A preset host of the simulator.
#[napi(object, js_name = "SimulatorPreset")]
pub struct PresetJs {
    pub name: String,
    pub description: String,
}

fn spec_from(options: &SimulatedHostOptions) -> Result<HostSpec> {
    let mut spec = match (&options.preset, &options.host) {
        (Some(name), None) => xen_sim::preset(name).ok_or_else(|| {
            let names: Vec<&str> = xen_sim::PRESETS.iter().map(|p| p.name).collect();
            invalid_argument(format!(
                "preset: unknown host {name:?} (one of {})",
                names.join(", ")
            ))
        })?,
        (None, Some(host)) => HostSpec {
            distances: host
                .distances
                .iter()
                .enumerate()
                .map(|(i, row)| {
                    row.iter()
                        .enumerate()
                        .map(|(j, &d)| to_u32(d, || format!("host.distances[{i}][{j}]")))
                        .collect::<Result<Vec<u32>>>()
                })
                .collect::<Result<_>>()?,
            cpus: host
                .cpus
                .iter()
                .enumerate()
                .map(|(i, c)| {
                    Ok(CpuLocation {
                        core: to_u32(c.core, || format!("host.cpus[{i}].core"))?,
                        socket: to_u32(c.socket, || format!("host.cpus[{i}].socket"))?,
                        node: to_u32(c.node, || format!("host.cpus[{i}].node"))?,
                    })
                })
                .collect::<Result<_>>()?,
            node_memory_bytes: host
                .node_memory_bytes
                .iter()
                .enumerate()
                .map(|(i, &b)| to_u64(b, || format!("host.nodeMemoryBytes[{i}]")))
                .collect::<Result<_>>()?,
            ..HostSpec::default()
        },
        _ => {
            return Err(invalid_argument(
                "options: give exactly one of preset and host",
            ))
        }
    };
    if let Some(on) = options.node_claims {
        spec.node_claims = on;
    }
    if let Some(on) = options.shadow_paging {
        spec.shadow_paging = on;
    }
    if let Some(on) = options.hap {
        spec.hap = on;
    }
    if let Some(on) = options.vpmu {
        spec.vpmu = on;
    }
    if let Some(version) = options.gnttab_max_version {
        spec.gnttab_max_version = to_u32(version, || "gnttabMaxVersion".into())?;
    }
    if let Some(reporting) = &options.scrub_reporting {
        spec.scrub_reporting = match reporting {
            ScrubReporting::XenServer => xen_sim::ScrubReporting::XenServer,
            ScrubReporting::Upstream => xen_sim::ScrubReporting::Upstream,
        };
    }
    if let Some(rate) = options.scrub_pages_per_second_per_node {
        spec.scrub_pages_per_second_per_node =
            to_u64(rate, || "scrubPagesPerSecondPerNode".into())?;
    }
    if let Some(text) = &options.xen_version {
        spec.version = parse_version(text)
            .ok_or_else(|| invalid_argument(format!("xenVersion: {text:?} is not MAJOR.MINOR")))?;
    }
    if let Some(clock) = &options.clock {
        spec.clock = match clock {
            Clock::Manual => xen_sim::Clock::Manual,
            Clock::RealTime => xen_sim::Clock::RealTime,
        };
    }
    Ok(spec)
}

fn parse_version(text: &str) -> Option<xenctrl::XenVersion> {
    let (major, minor) = text.split_once('.')?;
    Some(xenctrl::XenVersion::new(
        major.parse().ok()?,
        minor.parse().ok()?,
    ))
}

fn fault_from(input: FaultInput) -> Result<Fault> {
    let errno = match input.errno {
        None => libc_eio(),
        Some(napi::Either::A(n)) => to_u32(n, || "fault.errno".into())? as i32,
        Some(napi::Either::B(name)) => xenctrl::errno_from_name(&name).ok_or_else(|| {
            invalid_argument(format!("fault.errno: {name:?} is not an errno name"))
        })?,
    };
    let mode = match (input.mode, input.probability) {
        (FaultMode::Once, None) => xen_sim::FaultMode::Once,
        (FaultMode::Always, None) => xen_sim::FaultMode::Always,
        (FaultMode::Never, None) => xen_sim::FaultMode::Never,
        (FaultMode::Probability, Some(p)) if (0.0..=1.0).contains(&p) => {
            xen_sim::FaultMode::Probability(p)
        }
        _ => {
            return Err(invalid_argument(
                "fault.probability: from 0 to 1 with mode \"probability\", and only with it",
            ))
        }
    };
    let latency_ms = match input.latency_ms {
        Some(ms) => to_u64(ms, || "fault.latencyMs".into())?,
        None => 0,
    };
    Ok(Fault {
        operation: input.operation,
        errno,
        mode,
        latency_ms,
    })
}

/// A shutdown reason by name (`soft_reset`) or by Xen's 8-bit code.
fn shutdown_reason(input: napi::Either<String, f64>) -> Result<xenctrl::ShutdownReason> {
    match input {
        napi::Either::A(name) => xenctrl::ShutdownReason::NAMED
            .into_iter()
            .find(|r| r.name() == Some(name.as_str()))
            .ok_or_else(|| {
                let names: Vec<&str> = xenctrl::ShutdownReason::NAMED
                    .iter()
                    .filter_map(|r| r.name())
                    .collect();
                invalid_argument(format!(
                    "reason: {name:?} is not a shutdown reason (one of {}, or a code from 0 to 255)",
                    names.join(", ")
                ))
            }),
        napi::Either::B(code) => {
            let code = to_u32(code, || "reason".into())?;
            let code = u8::try_from(code).map_err(|_| {
                invalid_argument(format!(
                    "reason: {code} is not a shutdown code (Xen keeps 8 bits: 0 to 255)"
                ))
            })?;
            Ok(xenctrl::ShutdownReason::from_code(code))
        }
    }
}

fn libc_eio() -> i32 {
    // EIO on every Linux architecture.
    5
}

fn pages(value: u64) -> f64 {
    value as f64
}

fn nothing(_: ()) {}

/// A simulated Xen host with Xen's semantics.
#[napi]
pub struct SimulatedHost {
    host: Arc<xen_sim::SimHost>,
}

#[napi]
impl SimulatedHost {
    #[napi(constructor)]
    pub fn new(env: &Env, options: SimulatedHostOptions) -> napi::Result<Self> {
        sync(env, || {
            let host = xen_sim::SimHost::new(spec_from(&options)?)
                .map_err(|e| invalid_argument(format!("host.{e}")))?;
            Ok(SimulatedHost {
                host: Arc::new(host),
            })
        })
    }

    /// The preset hosts.
    #[napi]
    pub fn presets() -> Vec<PresetJs> {
        xen_sim::PRESETS
            .iter()
            .map(|p| PresetJs {
                name: p.name.into(),
                description: p.description.into(),
            })
            .collect()
    }

    /// The host's hypervisor interface: the same object as a real host's.
    /// A release outside the supported ones is refused
    /// (`XEN_VERSION_UNSUPPORTED`), as `openHypervisor` refuses it.
    #[napi]
    pub fn hypervisor(&self, env: &Env) -> napi::Result<Hypervisor> {
        sync(env, || {
            let version = self.host.spec().version;
            xenlib::check_supported(version).map_err(|e| {
                crate::error::Failure::from(xenctrl::XenError::VersionUnsupported {
                    version: e.version,
                    supported: e.supported,
                })
            })?;
            Ok(Hypervisor::new(self.host.clone(), true))
        })
    }

    /// Moves the manual clock on; the scrubber runs.
    #[napi]
    pub fn advance_clock(&self, env: &Env, ms: f64) -> napi::Result<()> {
        sync(env, || {
            self.host.advance_clock(to_u64(ms, || "ms".into())?);
            Ok(())
        })
    }

    /// Whether the host has XenServer's node claims (the preset's, unless
    /// `nodeClaims` said otherwise).
    #[napi(getter)]
    pub fn node_claims(&self) -> bool {
        self.host.spec().node_claims
    }

    /// The host's clock, in milliseconds since it was made.
    #[napi(getter)]
    pub fn clock_ms(&self) -> f64 {
        self.host.clock_ms() as f64
    }

    /// Makes an operation fail, or slows it down; an operation the simulator
    /// does not have is refused (INVALID_ARGUMENT).
    #[napi]
    pub fn inject_fault(&self, env: &Env, fault: FaultInput) -> napi::Result<()> {
        sync(env, || {
            self.host
                .inject_fault(fault_from(fault)?)
                .map_err(invalid_argument)
        })
    }

    /// Removes every injected fault.
    #[napi]
    pub fn clear_faults(&self) {
        self.host.clear_faults();
    }

    /// Seeds the generator that `probability` faults draw from: same seed, same failures.
    #[napi]
    pub fn seed_faults(&self, env: &Env, seed: f64) -> napi::Result<()> {
        sync(env, || {
            self.host.seed_faults(to_u64(seed, || "seed".into())?);
            Ok(())
        })
    }

    /// Populates a domain's memory as the domain builder does (claimed node,
    /// then affine nodes interleaved, then anywhere), or, given `node`, from
    /// that node only, as a builder given `-mem_pnode` does: ENOMEM half-way,
    /// with the pages taken so far kept, when the node runs out.
    #[napi(ts_return_type = "Promise<void>")]
    pub fn populate(
        &self,
        domid: f64,
        pages: f64,
        node: Option<f64>,
    ) -> AsyncTask<PoolTask<(), ()>> {
        let host = self.host.clone();
        PoolTask::new(nothing, move || {
            let domid = to_u32(domid, || "domid".into())?;
            let pages = to_u64(pages, || "pages".into())?;
            match node {
                None => Ok(host.populate(domid, pages)?),
                Some(node) => {
                    let node = to_u32(node, || "node".into())? as usize;
                    Ok(host.populate_on_node(domid, pages, node)?)
                }
            }
        })
    }

    /// The domain shuts itself down, as its kernel does with `SCHEDOP_shutdown`
    /// (Xen's `domain_shutdown`): it stops running and `domainInfo` reports
    /// `shutdownReason`; its memory, claim and event channels stay. Unpausing
    /// it does not make it run again: only `resumeDomain` or destroying it
    /// ends that. A second shutdown keeps the first reason, as Xen does.
    /// `reason` is a name or Xen's number for it (0 to 255: Xen keeps any
    /// code, and one it has no name for reads back as `'unknown'`). Rejects
    /// with ESRCH for a domain that does not exist, and EINVAL for domain 0
    /// (on Xen it would take the host down).
    #[napi(
        ts_args_type = "domid: number, reason: ShutdownReason | number",
        ts_return_type = "Promise<void>"
    )]
    pub fn shutdown_domain(
        &self,
        domid: f64,
        reason: napi::Either<String, f64>,
    ) -> AsyncTask<PoolTask<(), ()>> {
        let host = self.host.clone();
        PoolTask::new(nothing, move || {
            let domid = to_u32(domid, || "domid".into())?;
            let reason = shutdown_reason(reason)?;
            Ok(host.shutdown_domain(domid, reason)?)
        })
    }

    /// Resumes a domain that shut down for a suspend and was not destroyed
    /// (Xen's `XEN_DOMCTL_resumedomain`, which the domain builder's
    /// `xc_domain_resume` makes on a real host): it reports no shutdown and
    /// runs again, unless the toolstack has it paused. As on Xen, resuming a
    /// domain that has not shut down succeeds and changes nothing. Rejects
    /// with ESRCH for a domain that does not exist, and EINVAL for domain 0.
    #[napi(ts_return_type = "Promise<void>")]
    pub fn resume_domain(&self, domid: f64) -> AsyncTask<PoolTask<(), ()>> {
        let host = self.host.clone();
        PoolTask::new(nothing, move || {
            let domid = to_u32(domid, || "domid".into())?;
            Ok(host.resume_domain(domid)?)
        })
    }

    /// Pages of each node the domain holds.
    #[napi]
    pub fn domain_pages_by_node(&self, env: &Env, domid: f64) -> napi::Result<Vec<f64>> {
        sync(env, || {
            let domid = to_u32(domid, || "domid".into())?;
            let by_node = self.host.domain_pages_by_node(domid)?;
            Ok(by_node.into_iter().map(pages).collect())
        })
    }

    /// The nodes Xen derives from the domain's vCPU affinity for its memory.
    #[napi]
    pub fn node_affinity(&self, env: &Env, domid: f64) -> napi::Result<Vec<u32>> {
        sync(env, || {
            let domid = to_u32(domid, || "domid".into())?;
            self.host.node_affinity(domid).map_err(Into::into)
        })
    }

    /// Each node's total, free, to-be-scrubbed and node-claimed pages.
    #[napi]
    pub fn node_pages(&self) -> Vec<NodePagesJs> {
        self.host
            .node_pages()
            .into_iter()
            .map(|(total, free, scrub, claimed)| NodePagesJs {
                total_pages: pages(total),
                free_pages: pages(free),
                scrub_pages: pages(scrub),
                claimed_pages: pages(claimed),
            })
            .collect()
    }

    /// The domains that exist, domain 0 included.
    #[napi]
    pub fn domains(&self) -> Vec<u32> {
        self.host.domains()
    }
}
