//! The hypervisor interface of xen-domain-build.
//!
//! [`Hypervisor`] has the operations domain build needs (see
//! `docs/ARCHITECTURE.md#hypervisor-interface`). Two implementations:
//! [`XenCtrl`], the host's real libxenctrl loaded at run time, and the
//! simulated host of the `xen-sim` crate.

mod error;
mod real;
mod types;

pub use error::{errno_from_name, errno_name, Result, Unavailable, XenError};
pub use real::{layouts, LibraryLog, OpenOptions, XenCtrl};
pub use types::*;
pub use xenlib::releases::supported_versions;
pub use xenlib::Release;

/// The operations of a Xen host that domain build needs. CPU sets are
/// sorted lists of CPU ids. Implementations are shared between threads.
pub trait Hypervisor: Send + Sync {
    fn version(&self) -> XenVersion;
    fn physinfo(&self) -> Result<PhysInfo>;
    fn numa_info(&self) -> Result<NumaInfo>;
    fn cpu_topology(&self) -> Result<CpuTopology>;
    fn domain_info(&self, domid: DomId) -> Result<DomainInfo>;
    fn set_hvm_param(&self, domid: DomId, param: u32, value: u64) -> Result<()>;
    /// Must repeat the `max_vcpus` the domain was created with; allocates the vCPUs.
    fn set_max_vcpus(&self, domid: DomId, max_vcpus: u32) -> Result<()>;
    fn set_memmap_limit(&self, domid: DomId, limit_kib: u64) -> Result<()>;
    fn shadow_allocation_mib(&self, domid: DomId) -> Result<u32>;
    fn set_shadow_allocation_mib(&self, domid: DomId, mib: u32) -> Result<()>;
    /// Sets the hard and/or soft affinity of one vCPU; returns the effective masks.
    fn set_vcpu_affinity(
        &self,
        domid: DomId,
        vcpu: u32,
        hard: Option<&[u32]>,
        soft: Option<&[u32]>,
    ) -> Result<VcpuAffinity>;
    fn vcpu_affinity(&self, domid: DomId, vcpu: u32) -> Result<VcpuAffinity>;
    /// A host-wide claim; 0 pages releases the domain's claim.
    fn claim_pages(&self, domid: DomId, pages: u64) -> Result<()>;
    /// A claim on one node; ENOSYS where the hypervisor has no node claims.
    fn claim_pages_on_node(&self, domid: DomId, node: u32, pages: u64) -> Result<()>;
    /// Allocates an unbound event channel of `domid` for `remote`; returns its port.
    fn alloc_unbound_evtchn(&self, domid: DomId, remote: DomId) -> Result<u32>;
    fn create_domain(&self, config: &DomainConfig) -> Result<DomId>;
    fn destroy_domain(&self, domid: DomId) -> Result<()>;
    /// Renames the domain for the toolstack (`xc_domain_sethandle`).
    fn set_domain_handle(&self, domid: DomId, handle: [u8; 16]) -> Result<()>;
    fn set_max_memory_kib(&self, domid: DomId, max_kib: u64) -> Result<()>;
    /// Lets a built domain run (domains are created paused).
    fn unpause_domain(&self, domid: DomId) -> Result<()>;
}
