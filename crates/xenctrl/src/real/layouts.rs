//! The C structs passed to libxenctrl, per Xen release, written down from that
//! release's public headers. `tests/layout.rs` compiles a C program against
//! the installed headers and compares every offset and size listed here.

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

/// Xen 4.17 (XEN_SYSCTL_INTERFACE_VERSION and XEN_DOMCTL_INTERFACE_VERSION 0x15).
pub mod v4_17 {
    use super::FieldLayout;

    /// `struct xen_sysctl_physinfo` (4.17 added `max_mfn`'s neighbours
    /// `arch_capabilities` and `pad`).
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
    #[derive(Clone, Copy, Default)]
    pub struct ArchDomainConfig {
        pub emulation_flags: u32,
        pub misc_flags: u32,
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

    /// `struct xen_domctl_createdomain`.
    #[repr(C)]
    #[derive(Clone, Copy, Default)]
    pub struct Createdomain {
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

    pub fn fields() -> Vec<FieldLayout> {
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
        describe!(
            list,
            "xen_domctl_createdomain",
            Createdomain,
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
        list
    }
}
