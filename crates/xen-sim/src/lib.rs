//! A simulated Xen host. It implements xenctrl's [`Hypervisor`] with Xen's
//! rules, so that the orchestration above cannot tell it from the real one:
//! claims as `domain_set_outstanding_pages` enforces them, vCPU affinity with
//! Xen's effective masks, the node affinity Xen derives from it, memory
//! populated as the domain builder does, freed memory that comes back
//! through a scrubber, a guest's shutdown and the resume of a suspended
//! domain as `domain_shutdown` and `domain_resume` do them, and faults
//! injected on demand.
//!
//! Each rule names the Xen behaviour it follows; `tests/` has one test each.

#![forbid(unsafe_code)]

mod faults;
mod presets;
mod state;

pub use faults::{Fault, FaultMode};
pub use presets::{preset, Preset, PRESETS};
pub use state::SimHost;
pub use state::OPERATIONS;

use xenctrl::{CpuLocation, XenVersion};

/// How physinfo reports memory that is waiting to be scrubbed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ScrubReporting {
    /// XenServer's Xen: `scrub_pages` counts it.
    #[default]
    XenServer,
    /// Upstream Xen: `scrub_pages` is always 0.
    Upstream,
}

/// Where the simulated host's time comes from.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Clock {
    /// Moves only when told ([`SimHost::advance_clock`]): for tests that
    /// step the scrubber.
    Manual,
    /// Real time, as a real host's (the default): a demo that waits for
    /// memory being scrubbed does not stall.
    #[default]
    RealTime,
}

/// A host to simulate.
#[derive(Clone, Debug)]
pub struct HostSpec {
    /// Node distances (0xFFFFFFFF: unreachable).
    pub distances: Vec<Vec<u32>>,
    /// Every CPU, online, with its core, socket and node.
    pub cpus: Vec<CpuLocation>,
    pub node_memory_bytes: Vec<u64>,
    /// XenServer's Xen has node claims; upstream's answers ENOSYS.
    pub node_claims: bool,
    /// Shadow paging built in (XenServer's Xen). Debian's Xen 4.17 has none:
    /// a PV domain then has no shadow pool, and asking for one is EINVAL.
    pub shadow_paging: bool,
    /// Hardware-assisted paging (EPT/NPT): without it an HVM domain must be shadowed.
    pub hap: bool,
    /// Xen booted with `vpmu`: a domain may have a virtual PMU. Off by default, as Xen's.
    pub vpmu: bool,
    /// The highest grant table version a domain may be given (Xen's
    /// `gnttab=max-ver:N`; 2 by default).
    pub gnttab_max_version: u32,
    pub scrub_reporting: ScrubReporting,
    /// Pages each node's scrubber returns to free memory per second.
    pub scrub_pages_per_second_per_node: u64,
    pub clock: Clock,
    pub version: XenVersion,
}

impl Default for HostSpec {
    fn default() -> Self {
        HostSpec {
            distances: vec![vec![10]],
            cpus: vec![CpuLocation {
                core: 0,
                socket: 0,
                node: 0,
            }],
            node_memory_bytes: vec![1 << 30],
            node_claims: true,
            shadow_paging: true,
            hap: true,
            vpmu: false,
            gnttab_max_version: 2,
            scrub_reporting: ScrubReporting::XenServer,
            // 1 GiB per second per node.
            scrub_pages_per_second_per_node: 262_144,
            clock: Clock::default(),
            version: XenVersion {
                major: 4,
                minor: 17,
            },
        }
    }
}

impl HostSpec {
    /// Refuses a host that does not hold together.
    pub fn validate(&self) -> Result<(), String> {
        let n = self.node_memory_bytes.len();
        if n == 0 || n > 64 {
            return Err(format!("nodeMemoryBytes: {n} nodes, expected 1 to 64"));
        }
        if self.distances.len() != n {
            return Err(format!(
                "distances: {} rows, expected one per node ({n})",
                self.distances.len()
            ));
        }
        if let Some((i, row)) = self
            .distances
            .iter()
            .enumerate()
            .find(|(_, r)| r.len() != n)
        {
            return Err(format!(
                "distances[{i}]: {} entries, expected {n}",
                row.len()
            ));
        }
        if self.cpus.is_empty() || self.cpus.len() > 16_384 {
            return Err(format!(
                "cpus: {} CPUs, expected 1 to 16384",
                self.cpus.len()
            ));
        }
        if let Some((i, cpu)) = self
            .cpus
            .iter()
            .enumerate()
            .find(|(_, c)| c.node as usize >= n)
        {
            return Err(format!("cpus[{i}]: node {} does not exist", cpu.node));
        }
        if let Some((i, _)) = self
            .node_memory_bytes
            .iter()
            .enumerate()
            .find(|(_, &b)| b % 4096 != 0)
        {
            return Err(format!(
                "nodeMemoryBytes[{i}]: not a whole number of 4 KiB pages"
            ));
        }
        Ok(())
    }
}
