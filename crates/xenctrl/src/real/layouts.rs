//! The C structs passed to libxenctrl, written down from the public headers of
//! every supported release. Only `struct xen_domctl_createdomain` differs
//! between them (64 bytes up to 4.18, 68 from 4.19); the others are the same
//! in all. `tests/layout.rs` compares every offset and size listed here with
//! each release's facts (`crates/c-probe/facts/`), measured from its headers.

use xenlib::{CreateDomainLayout, Release};

/// One field of a C struct, as the Rust definition lays it out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldLayout {
    /// The C struct, as `struct NAME` names it.
    pub c_struct: &'static str,
    /// The C field; empty for the size of the whole struct.
    pub field: &'static str,
    pub offset: usize,
    pub size: usize,
}

macro_rules! describe {
    ($list:ident, $c:literal, $t:ty, [$($f:ident),* $(,)?]) => {
        $list.push(FieldLayout { c_struct: $c, field: "", offset: 0, size: std::mem::size_of::<$t>() });
        $(
            $list.push(FieldLayout {
                c_struct: $c,
                field: stringify!($f),
                offset: std::mem::offset_of!($t, $f),
                size: {
                    // The size of the field's type, without an instance.
                    fn size_of_field<T, F>(_: fn(&T) -> &F) -> usize { std::mem::size_of::<F>() }
                    size_of_field::<$t, _>(|s: &$t| &s.$f)
                },
            });
        )*
    };
}

/// `struct xen_sysctl_physinfo`.
#[repr(C)]
#[derive(Clone, Copy, Default)]
pub struct Physinfo {
    pub threads_per_core: u32,
    pub cores_per_socket: u32,
    pub nr_cpus: u32,
    pub max_cpu_id: u32,
    pub nr_nodes: u32,
    pub max_node_id: u32,
    pub cpu_khz: u32,
    pub capabilities: u32,
    pub arch_capabilities: u32,
    pub pad: u32,
    pub total_pages: u64,
    pub free_pages: u64,
    pub scrub_pages: u64,
    pub outstanding_pages: u64,
    pub max_mfn: u64,
    pub hw_cap: [u32; 8],
}

/// `struct xen_sysctl_meminfo`.
#[repr(C)]
#[derive(Clone, Copy, Default)]
pub struct Meminfo {
    pub memsize: u64,
    pub memfree: u64,
}

/// `struct xen_sysctl_cputopo`.
#[repr(C)]
#[derive(Clone, Copy, Default)]
pub struct Cputopo {
    pub core: u32,
    pub socket: u32,
    pub node: u32,
}

/// `struct xen_arch_domainconfig` (x86).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct ArchDomainConfig {
    pub emulation_flags: u32,
    pub misc_flags: u32,
}

/// The bits of `xen_domctl_getdomaininfo.flags` read here (`XEN_DOMINF_*`),
/// and where in them the guest's shutdown code is: Xen's getdomaininfo puts
/// the domain's `shutdown_code` at bit 16 whether or not it has shut down
/// (`SHUTDOWN_CODE_INVALID`, all ones, until it has a code). The same in
/// every supported release.
pub mod dominf {
    pub const DYING: u32 = 1 << 0;
    pub const HVM_GUEST: u32 = 1 << 1;
    /// Fully shut down (Xen's `is_shut_down`), not only shutting down.
    pub const SHUTDOWN: u32 = 1 << 2;
    pub const PAUSED: u32 = 1 << 3;
    pub const HAP: u32 = 1 << 8;
    pub const SHUTDOWN_SHIFT: u32 = 16;
    pub const SHUTDOWN_MASK: u32 = 255;
}

/// The constants of Xen's interface the crate relies on, by their C names
/// (the layout test checks them against each release's headers).
pub fn constants() -> Vec<(&'static str, i64)> {
    use crate::ShutdownReason as R;
    let mut list = vec![
        ("XEN_DOMINF_dying", dominf::DYING),
        ("XEN_DOMINF_hvm_guest", dominf::HVM_GUEST),
        ("XEN_DOMINF_shutdown", dominf::SHUTDOWN),
        ("XEN_DOMINF_paused", dominf::PAUSED),
        ("XEN_DOMINF_hap", dominf::HAP),
        ("XEN_DOMINF_shutdownshift", dominf::SHUTDOWN_SHIFT),
        ("XEN_DOMINF_shutdownmask", dominf::SHUTDOWN_MASK),
    ]
    .into_iter()
    .map(|(name, value)| (name, i64::from(value)))
    .collect::<Vec<_>>();
    let codes = [
        ("SHUTDOWN_poweroff", R::Poweroff),
        ("SHUTDOWN_reboot", R::Reboot),
        ("SHUTDOWN_suspend", R::Suspend),
        ("SHUTDOWN_crash", R::Crash),
        ("SHUTDOWN_watchdog", R::Watchdog),
        ("SHUTDOWN_soft_reset", R::SoftReset),
    ];
    list.extend(codes.map(|(name, r)| (name, i64::from(r.code()))));
    // The highest code with a name: a release that names another fails here.
    let last = R::NAMED[R::NAMED.len() - 1];
    list.push(("SHUTDOWN_MAX", i64::from(last.code())));
    list
}

/// `struct xen_domctl_getdomaininfo` (`xc_domaininfo_t`).
#[repr(C)]
#[derive(Clone, Copy, Default)]
pub struct Domaininfo {
    pub domain: u16,
    pub pad1: u16,
    pub flags: u32,
    pub tot_pages: u64,
    pub max_pages: u64,
    pub outstanding_pages: u64,
    pub shr_pages: u64,
    pub paged_pages: u64,
    pub shared_info_frame: u64,
    pub cpu_time: u64,
    pub nr_online_vcpus: u32,
    pub max_vcpu_id: u32,
    pub ssidref: u32,
    pub handle: [u8; 16],
    pub cpupool: u32,
    pub gpaddr_bits: u8,
    pub pad2: [u8; 7],
    pub arch_config: ArchDomainConfig,
}

/// `struct xen_domctl_createdomain` up to 4.18 (64 bytes).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct Createdomain64 {
    pub ssidref: u32,
    pub handle: [u8; 16],
    pub flags: u32,
    pub iommu_opts: u32,
    pub max_vcpus: u32,
    pub max_evtchn_port: u32,
    pub max_grant_frames: i32,
    pub max_maptrack_frames: i32,
    pub grant_opts: u32,
    pub vmtrace_size: u32,
    pub cpupool_id: u32,
    pub arch: ArchDomainConfig,
}

/// `struct xen_domctl_createdomain` from 4.19 (68 bytes): altp2m's 4 bytes
/// (`altp2m_opts` in 4.19 and 4.20, two 16-bit fields from 4.21) after
/// `grant_opts`. Left 0: no altp2m, as libxl gives a guest by default.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct Createdomain68 {
    pub ssidref: u32,
    pub handle: [u8; 16],
    pub flags: u32,
    pub iommu_opts: u32,
    pub max_vcpus: u32,
    pub max_evtchn_port: u32,
    pub max_grant_frames: i32,
    pub max_maptrack_frames: i32,
    pub grant_opts: u32,
    pub altp2m: u32,
    pub vmtrace_size: u32,
    pub cpupool_id: u32,
    pub arch: ArchDomainConfig,
}

/// What createdomain takes, in the layout of the release that runs.
#[derive(Clone, Copy, Debug)]
pub enum Createdomain {
    Bytes64(Createdomain64),
    Bytes68(Createdomain68),
}

/// The fields this project sets; the others stay 0.
#[derive(Clone, Copy, Debug, Default)]
pub struct CreatedomainFields {
    pub ssidref: u32,
    /// The domain's handle: xenopsd sets the VM's UUID.
    pub handle: [u8; 16],
    pub flags: u32,
    pub max_vcpus: u32,
    pub max_evtchn_port: u32,
    pub max_grant_frames: i32,
    pub max_maptrack_frames: i32,
    pub grant_opts: u32,
    pub arch: ArchDomainConfig,
}

impl Createdomain {
    /// `f` in `release`'s layout.
    pub fn new(release: &Release, f: CreatedomainFields) -> Createdomain {
        match release.createdomain {
            CreateDomainLayout::Bytes64 => Createdomain::Bytes64(Createdomain64 {
                ssidref: f.ssidref,
                handle: f.handle,
                flags: f.flags,
                max_vcpus: f.max_vcpus,
                max_evtchn_port: f.max_evtchn_port,
                max_grant_frames: f.max_grant_frames,
                max_maptrack_frames: f.max_maptrack_frames,
                grant_opts: f.grant_opts,
                arch: f.arch,
                ..Default::default()
            }),
            CreateDomainLayout::Bytes68 => Createdomain::Bytes68(Createdomain68 {
                ssidref: f.ssidref,
                handle: f.handle,
                flags: f.flags,
                max_vcpus: f.max_vcpus,
                max_evtchn_port: f.max_evtchn_port,
                max_grant_frames: f.max_grant_frames,
                max_maptrack_frames: f.max_maptrack_frames,
                grant_opts: f.grant_opts,
                arch: f.arch,
                ..Default::default()
            }),
        }
    }

    /// The size libxenctrl copies in and back out.
    pub fn size_bytes(&self) -> usize {
        match self {
            Createdomain::Bytes64(_) => std::mem::size_of::<Createdomain64>(),
            Createdomain::Bytes68(_) => std::mem::size_of::<Createdomain68>(),
        }
    }
}

/// Every field of every struct passed in `release`, with its C names.
pub fn fields(release: &Release) -> Vec<FieldLayout> {
    let mut list = Vec::new();
    describe!(
        list,
        "xen_sysctl_physinfo",
        Physinfo,
        [
            threads_per_core,
            cores_per_socket,
            nr_cpus,
            max_cpu_id,
            nr_nodes,
            max_node_id,
            cpu_khz,
            capabilities,
            arch_capabilities,
            pad,
            total_pages,
            free_pages,
            scrub_pages,
            outstanding_pages,
            max_mfn,
            hw_cap,
        ]
    );
    describe!(list, "xen_sysctl_meminfo", Meminfo, [memsize, memfree]);
    describe!(list, "xen_sysctl_cputopo", Cputopo, [core, socket, node]);
    describe!(
        list,
        "xen_arch_domainconfig",
        ArchDomainConfig,
        [emulation_flags, misc_flags]
    );
    describe!(
        list,
        "xen_domctl_getdomaininfo",
        Domaininfo,
        [
            domain,
            pad1,
            flags,
            tot_pages,
            max_pages,
            outstanding_pages,
            shr_pages,
            paged_pages,
            shared_info_frame,
            cpu_time,
            nr_online_vcpus,
            max_vcpu_id,
            ssidref,
            handle,
            cpupool,
            gpaddr_bits,
            pad2,
            arch_config,
        ]
    );
    match release.createdomain {
        CreateDomainLayout::Bytes64 => {
            describe!(
                list,
                "xen_domctl_createdomain",
                Createdomain64,
                [
                    ssidref,
                    handle,
                    flags,
                    iommu_opts,
                    max_vcpus,
                    max_evtchn_port,
                    max_grant_frames,
                    max_maptrack_frames,
                    grant_opts,
                    vmtrace_size,
                    cpupool_id,
                    arch,
                ]
            );
        }
        CreateDomainLayout::Bytes68 => {
            describe!(
                list,
                "xen_domctl_createdomain",
                Createdomain68,
                [
                    ssidref,
                    handle,
                    flags,
                    iommu_opts,
                    max_vcpus,
                    max_evtchn_port,
                    max_grant_frames,
                    max_maptrack_frames,
                    grant_opts,
                    altp2m,
                    vmtrace_size,
                    cpupool_id,
                    arch,
                ]
            );
            // The release's own C name for altp2m's bytes.
            if let (Some(entry), Some(name)) = (
                list.iter_mut()
                    .find(|f| f.c_struct == "xen_domctl_createdomain" && f.field == "altp2m"),
                release.createdomain_altp2m_field,
            ) {
                entry.field = name;
            }
        }
    }
    list
}
