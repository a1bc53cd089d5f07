//! Plain values of the hypervisor interface, in the units their names carry.

/// A Xen domain id.
pub type DomId = u32;

/// Xen's page size.
pub const PAGE_SIZE_BYTES: u64 = 4096;

/// The HVM parameter that holds the timer mode.
pub const HVM_PARAM_TIMER_MODE: u32 = 10;

/// A Xen release (major.minor).
pub use xenlib::XenVersion;

/// What the host can run (`XEN_SYSCTL_PHYSCAP_*`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Capabilities {
    pub hvm: bool,
    pub pv: bool,
    pub hap: bool,
    pub shadow: bool,
    /// A domain may be given a virtual PMU (`XEN_DOMCTL_CDF_vpmu`): Xen's `vpmu` boot option.
    pub vpmu: bool,
    /// Grant table version 2 allowed (Xen's `gnttab=max-ver:2`, its default).
    pub gnttab_v2: bool,
}

impl Capabilities {
    pub fn from_bits(bits: u32) -> Self {
        Capabilities {
            hvm: bits & 1 != 0,
            pv: bits & 2 != 0,
            hap: bits & 8 != 0,
            shadow: bits & 16 != 0,
            vpmu: bits & (1 << 7) != 0,
            gnttab_v2: bits & (1 << 9) != 0,
        }
    }

    pub fn bits(self) -> u32 {
        u32::from(self.hvm)
            | u32::from(self.pv) << 1
            | u32::from(self.hap) << 3
            | u32::from(self.shadow) << 4
            | u32::from(self.vpmu) << 7
            | u32::from(self.gnttab_v2) << 9
    }
}

/// `xc_physinfo`: the host's CPUs and memory.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PhysInfo {
    pub threads_per_core: u32,
    pub cores_per_socket: u32,
    pub nr_cpus: u32,
    pub max_cpu_id: u32,
    pub nr_nodes: u32,
    pub max_node_id: u32,
    pub cpu_khz: u32,
    pub capabilities: Capabilities,
    pub total_pages: u64,
    pub free_pages: u64,
    /// Pages waiting to be scrubbed: always 0 on upstream Xen.
    pub scrub_pages: u64,
    /// Pages claimed by all domains and not yet allocated.
    pub outstanding_pages: u64,
    pub max_mfn: u64,
}

/// One node's memory; `None` in [`NumaInfo::nodes`] for a node Xen reports invalid.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NodeMemory {
    pub size_bytes: u64,
    pub free_bytes: u64,
}

/// `xc_numainfo`: memory per node and the distance matrix (0xFFFFFFFF: unreachable).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NumaInfo {
    pub nodes: Vec<Option<NodeMemory>>,
    pub distances: Vec<Vec<u32>>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CpuLocation {
    pub core: u32,
    pub socket: u32,
    pub node: u32,
}

/// `xc_cputopoinfo`: where each CPU is; `None` for a CPU that is not online.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CpuTopology {
    pub cpus: Vec<Option<CpuLocation>>,
}

/// `xc_domain_getinfolist` for one domain.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DomainInfo {
    pub domid: DomId,
    /// The toolstack's name for the domain (xenopsd: the VM's UUID), as 16 bytes.
    pub handle: [u8; 16],
    pub ssidref: u32,
    pub hvm: bool,
    /// Hardware-assisted paging (`XEN_DOMINF_hap`); an HVM domain without it is shadowed.
    pub hap: bool,
    pub dying: bool,
    /// Paused by the toolstack: created domains are, until unpaused.
    pub paused: bool,
    /// Why the domain shut down, once it has (`XEN_DOMINF_shutdown`: all its
    /// vCPUs stopped for it; it stays so, its memory kept, until destroyed
    /// or resumed). `None` while it has not, including while it is still
    /// shutting down: Xen's flags carry the code from the start of the
    /// shutdown, but also when the guest only set it for later
    /// (`SCHEDOP_shutdown_code`), so the code alone says nothing.
    pub shutdown: Option<ShutdownReason>,
    pub tot_pages: u64,
    pub max_pages: u64,
    pub outstanding_pages: u64,
    /// The highest vCPU id in use; `None` before the domain has vCPUs.
    pub max_vcpu_id: Option<u32>,
    pub online_vcpus: u32,
    pub cpupool: u32,
    /// The vCPUs the domain was created with, when this hypervisor handle
    /// created it (Xen's domain info does not say; `max_vcpus` must give it).
    pub created_vcpus: Option<u32>,
}

/// Why a domain shut down: the code its guest gave `SCHEDOP_shutdown` (or
/// the toolstack `SCHEDOP_remote_shutdown`), Xen's `SHUTDOWN_*` of
/// `public/sched.h`, 0 to 5 in every supported release. Xen keeps whatever
/// 8-bit code it is given, unchecked: one it has no name for is `Other`.
/// [`ShutdownReason::from_code`] gives each code one value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ShutdownReason {
    /// `SHUTDOWN_poweroff` (0): the guest exited normally.
    Poweroff,
    /// `SHUTDOWN_reboot` (1): to be started again.
    Reboot,
    /// `SHUTDOWN_suspend` (2): its state is to be saved; it can be resumed.
    Suspend,
    /// `SHUTDOWN_crash` (3): the guest crashed.
    Crash,
    /// `SHUTDOWN_watchdog` (4): its watchdog expired.
    Watchdog,
    /// `SHUTDOWN_soft_reset` (5): to be reset to how it was created, its
    /// memory and vCPU contexts kept.
    SoftReset,
    /// A code above `SHUTDOWN_MAX` (5), which no release names.
    Other(u8),
}

impl ShutdownReason {
    /// The reasons Xen names, by code.
    pub const NAMED: [ShutdownReason; 6] = [
        ShutdownReason::Poweroff,
        ShutdownReason::Reboot,
        ShutdownReason::Suspend,
        ShutdownReason::Crash,
        ShutdownReason::Watchdog,
        ShutdownReason::SoftReset,
    ];

    pub fn from_code(code: u8) -> ShutdownReason {
        Self::NAMED
            .get(usize::from(code))
            .copied()
            .unwrap_or(ShutdownReason::Other(code))
    }

    /// Xen's number for it.
    pub fn code(self) -> u8 {
        match self {
            ShutdownReason::Poweroff => 0,
            ShutdownReason::Reboot => 1,
            ShutdownReason::Suspend => 2,
            ShutdownReason::Crash => 3,
            ShutdownReason::Watchdog => 4,
            ShutdownReason::SoftReset => 5,
            ShutdownReason::Other(code) => code,
        }
    }

    /// Xen's name without `SHUTDOWN_` (`soft_reset`); `None` for `Other`.
    pub fn name(self) -> Option<&'static str> {
        match Self::from_code(self.code()) {
            ShutdownReason::Poweroff => Some("poweroff"),
            ShutdownReason::Reboot => Some("reboot"),
            ShutdownReason::Suspend => Some("suspend"),
            ShutdownReason::Crash => Some("crash"),
            ShutdownReason::Watchdog => Some("watchdog"),
            ShutdownReason::SoftReset => Some("soft_reset"),
            ShutdownReason::Other(_) => None,
        }
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum DomainKind {
    #[default]
    Pv,
    Hvm,
    Pvh,
}

/// What `xc_domain_create` is given.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DomainConfig {
    pub kind: DomainKind,
    /// The toolstack's name for the domain (xenopsd: the VM's UUID).
    pub handle: [u8; 16],
    /// The XSM security label; 0 without XSM.
    pub ssidref: u32,
    /// Hardware-assisted paging (HVM and PVH only); without it, shadow paging.
    pub hap: bool,
    /// Nested virtualisation (HVM with HAP only).
    pub nested_virt: bool,
    /// A virtual PMU: only where Xen was booted with `vpmu`.
    pub vpmu: bool,
    /// x86: reads of MSRs Xen does not know give 0 instead of a fault (`XEN_X86_MSR_RELAXED`).
    pub msr_relaxed: bool,
    pub max_vcpus: u32,
    /// The highest event channel port; [`NO_EVTCHN_PORT_LIMIT`]: the guest's ABI's own limit.
    pub max_evtchn_port: u32,
    /// Grant table frames; `None`: the hypervisor's default (64). Xen takes 1
    /// to its `gnttab_max_frames`.
    pub max_grant_frames: Option<u32>,
    /// Maptrack frames (for mapping other domains' grants: backends);
    /// `None`: the hypervisor's default (1024), its most.
    pub max_maptrack_frames: Option<u32>,
    /// The highest grant table version the guest may use (1 or 2).
    pub max_grant_version: u32,
}

/// What xenopsd passes as `max_evtchn_port` (-1): no limit but the ABI's.
pub const NO_EVTCHN_PORT_LIMIT: u32 = u32::MAX;

/// Xen's defaults for `gnttab_max_frames` and `gnttab_max_maptrack_frames`:
/// the most a domain may be given.
pub const XEN_MAX_GRANT_FRAMES: u32 = 64;
pub const XEN_MAX_MAPTRACK_FRAMES: u32 = 1024;

impl Default for DomainConfig {
    fn default() -> Self {
        DomainConfig {
            kind: DomainKind::Pv,
            handle: [0; 16],
            ssidref: 0,
            hap: false,
            nested_virt: false,
            vpmu: false,
            msr_relaxed: false,
            max_vcpus: 1,
            max_evtchn_port: NO_EVTCHN_PORT_LIMIT,
            max_grant_frames: None,
            max_maptrack_frames: None,
            max_grant_version: 1,
        }
    }
}

/// A vCPU's effective affinity, as Xen reports it back: hard is the mask
/// ∩ the pool's online CPUs; soft is soft ∩ hard ∩ online.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VcpuAffinity {
    pub hard: Vec<u32>,
    pub soft: Vec<u32>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_shutdown_code_has_one_reason() {
        for code in 0..=u8::MAX {
            let reason = ShutdownReason::from_code(code);
            assert_eq!(reason.code(), code);
            assert_eq!(reason.name().is_some(), code <= 5, "{code}");
        }
        assert_eq!(ShutdownReason::from_code(5).name(), Some("soft_reset"));
        // An `Other` made by hand with a named code is that reason.
        assert_eq!(ShutdownReason::Other(2).name(), Some("suspend"));
    }
}
