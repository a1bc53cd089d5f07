//! `Hypervisor`: one object for the real host's libxenctrl and for a
//! simulated host. Every operation runs on the libuv pool and returns a
//! Promise: its arguments are checked there too, so a failure, whatever it
//! is, is a rejection (never a synchronous throw); panics are caught there.

use crate::convert::{to_u32, to_u64};
use crate::error::{invalid_argument, Failure, Result};
use crate::task::PoolTask;
use napi::bindgen_prelude::{AsyncTask, ToNapiValue, TypeName};
use napi_derive::napi;
use std::sync::{Arc, RwLock};
use xenctrl::{DomainConfig, Hypervisor as Backend};

fn same<T>(value: T) -> T {
    value
}

fn nothing(_: ()) {}

fn pages(value: u64) -> f64 {
    value as f64
}

/// The running Xen's version.
#[napi(object, js_name = "XenVersion")]
pub struct XenVersionJs {
    pub major: u32,
    pub minor: u32,
}

/// The host's CPUs and memory, as `xc_physinfo` reports them; memory in 4 KiB pages.
#[napi(object, js_name = "PhysInfo")]
pub struct PhysInfoJs {
    pub threads_per_core: u32,
    pub cores_per_socket: u32,
    pub nr_cpus: u32,
    pub max_cpu_id: u32,
    pub nr_nodes: u32,
    pub max_node_id: u32,
    pub cpu_khz: u32,
    pub capabilities: Vec<String>,
    pub total_pages: f64,
    pub free_pages: f64,
    pub scrub_pages: f64,
    pub outstanding_pages: f64,
    pub max_mfn: f64,
}

/// One NUMA node's memory.
#[napi(object, js_name = "NodeMemory")]
pub struct NodeMemoryJs {
    pub size_bytes: f64,
    pub free_bytes: f64,
}

/// The host's NUMA nodes and their distances, as `xc_numainfo` reports them.
#[napi(object, js_name = "NumaInfo")]
pub struct NumaInfoJs {
    /// Null for a node Xen reports invalid.
    pub nodes: Vec<Option<NodeMemoryJs>>,
    /// 0xFFFFFFFF: unreachable.
    pub distances: Vec<Vec<u32>>,
}

/// Where a CPU is: its core, socket and NUMA node.
#[napi(object, js_name = "CpuLocation")]
pub struct CpuLocationJs {
    pub core: u32,
    pub socket: u32,
    pub node: u32,
}

/// Each CPU's location, by CPU id (`xc_cputopoinfo`).
#[napi(object, js_name = "CpuTopology")]
pub struct CpuTopologyJs {
    /// Null for a CPU that is not online.
    pub cpus: Vec<Option<CpuLocationJs>>,
}

/// One domain's state, as `xc_domain_getinfolist` reports it.
#[napi(object, js_name = "DomainInfo")]
pub struct DomainInfoJs {
    pub domid: u32,
    /// The toolstack's name for the domain, as a UUID (xenopsd: the VM's).
    pub handle: String,
    pub ssidref: u32,
    /// An HVM or PVH domain (false: PV).
    pub hvm: bool,
    /// Hardware-assisted paging; an HVM domain without it is shadowed.
    pub hap: bool,
    pub dying: bool,
    /// Paused by the toolstack: created domains are, until unpaused.
    pub paused: bool,
    /// Why it shut down, once it has (Xen's `XEN_DOMINF_shutdown`: every vCPU
    /// stopped; it stays so, its memory kept, until destroyed or resumed);
    /// absent while it has not, and while it is still shutting down. A code
    /// Xen has no name for (it keeps any a guest gives) is `'unknown'`, its
    /// number in `shutdownCode`.
    #[napi(ts_type = "ShutdownReason | 'unknown'")]
    pub shutdown_reason: Option<String>,
    /// Xen's number for `shutdownReason` (`SHUTDOWN_*`; 0 to 5 have names), present with it.
    pub shutdown_code: Option<u32>,
    /// The memory it holds, in 4 KiB pages.
    pub tot_pages: f64,
    /// Its maximum memory, in 4 KiB pages.
    pub max_pages: f64,
    /// What its claim still holds, in 4 KiB pages.
    pub outstanding_pages: f64,
    /// The highest vCPU id in use; absent before `setMaxVcpus`.
    pub max_vcpu_id: Option<u32>,
    pub online_vcpus: u32,
    pub cpupool: u32,
    /// The vCPUs it was created with, when this host's handle created it (Xen
    /// does not say): `setMaxVcpus` takes only that count.
    pub created_vcpus: Option<u32>,
}

/// A vCPU's effective affinity: the CPUs it may run on (hard), and prefers (soft).
#[napi(object, js_name = "VcpuAffinity")]
pub struct VcpuAffinityJs {
    pub hard: Vec<u32>,
    pub soft: Vec<u32>,
}

/// A vCPU affinity to set: hard, soft or both, as CPU ids.
#[napi(object)]
pub struct AffinityInput {
    pub hard: Option<Vec<f64>>,
    pub soft: Option<Vec<f64>>,
}

/// The kind of a domain.
#[napi(string_enum = "lowercase")]
pub enum DomainKind {
    Pv,
    Hvm,
    Pvh,
}

impl From<DomainKind> for xenctrl::DomainKind {
    fn from(kind: DomainKind) -> Self {
        match kind {
            DomainKind::Pv => xenctrl::DomainKind::Pv,
            DomainKind::Hvm => xenctrl::DomainKind::Hvm,
            DomainKind::Pvh => xenctrl::DomainKind::Pvh,
        }
    }
}

/// Why a domain shut down: Xen's `SHUTDOWN_*` codes 0 to 5, by name.
// The names cross as strings, from and to `xenctrl::ShutdownReason::name`;
// this enum gives TypeScript their type.
#[napi(string_enum = "snake_case")]
pub enum ShutdownReason {
    /// 0: the guest exited normally.
    Poweroff,
    /// 1: to be started again.
    Reboot,
    /// 2: its state is to be saved; it can be resumed.
    Suspend,
    /// 3: the guest crashed.
    Crash,
    /// 4: its watchdog expired.
    Watchdog,
    /// 5: to be reset to how it was created, its memory kept.
    SoftReset,
}

/// A domain for `Hypervisor.createDomain`: its kind, vCPUs and limits.
#[napi(object, js_name = "DomainConfig")]
pub struct DomainConfigInput {
    pub kind: DomainKind,
    pub max_vcpus: f64,
    /// The domain's handle, a UUID (xenopsd: the VM's); all zero when absent.
    pub handle: Option<String>,
    /// The XSM label; 0 when absent.
    pub ssidref: Option<f64>,
    /// HVM and PVH: hardware-assisted paging (on when absent); off: shadow paging.
    pub hap: Option<bool>,
    pub nested_virt: Option<bool>,
    pub vpmu: Option<bool>,
    pub msr_relaxed: Option<bool>,
    /// The highest event channel port; no limit but the guest ABI's when absent (xenopsd's -1).
    pub max_evtchn_port: Option<f64>,
    /// The highest grant table version (1 or 2); 1 when absent.
    pub max_grant_version: Option<f64>,
    /// Grant table frames (1 to 64); the hypervisor's default (64) when absent.
    pub max_grant_frames: Option<f64>,
    /// Maptrack frames (0 to 1024); the hypervisor's default (1024) when absent.
    pub max_maptrack_frames: Option<f64>,
}

fn physinfo_js(p: xenctrl::PhysInfo) -> PhysInfoJs {
    let c = p.capabilities;
    let capabilities = [
        ("hvm", c.hvm),
        ("pv", c.pv),
        ("hap", c.hap),
        ("shadow", c.shadow),
        ("vpmu", c.vpmu),
        ("gnttab_v2", c.gnttab_v2),
    ]
    .iter()
    .filter(|(_, on)| *on)
    .map(|(name, _)| name.to_string())
    .collect();
    PhysInfoJs {
        threads_per_core: p.threads_per_core,
        cores_per_socket: p.cores_per_socket,
        nr_cpus: p.nr_cpus,
        max_cpu_id: p.max_cpu_id,
        nr_nodes: p.nr_nodes,
        max_node_id: p.max_node_id,
        cpu_khz: p.cpu_khz,
        capabilities,
        total_pages: pages(p.total_pages),
        free_pages: pages(p.free_pages),
        scrub_pages: pages(p.scrub_pages),
        outstanding_pages: pages(p.outstanding_pages),
        max_mfn: pages(p.max_mfn),
    }
}

fn numa_js(n: xenctrl::NumaInfo) -> NumaInfoJs {
    NumaInfoJs {
        nodes: n
            .nodes
            .into_iter()
            .map(|m| {
                m.map(|m| NodeMemoryJs {
                    size_bytes: m.size_bytes as f64,
                    free_bytes: m.free_bytes as f64,
                })
            })
            .collect(),
        distances: n.distances,
    }
}

fn topology_js(t: xenctrl::CpuTopology) -> CpuTopologyJs {
    CpuTopologyJs {
        cpus: t
            .cpus
            .into_iter()
            .map(|c| {
                c.map(|c| CpuLocationJs {
                    core: c.core,
                    socket: c.socket,
                    node: c.node,
                })
            })
            .collect(),
    }
}

fn domain_js(d: xenctrl::DomainInfo) -> DomainInfoJs {
    DomainInfoJs {
        domid: d.domid,
        handle: uuid_of_handle(&d.handle),
        ssidref: d.ssidref,
        hvm: d.hvm,
        hap: d.hap,
        dying: d.dying,
        paused: d.paused,
        shutdown_reason: d
            .shutdown
            .map(|r| r.name().unwrap_or("unknown").to_string()),
        shutdown_code: d.shutdown.map(|r| u32::from(r.code())),
        tot_pages: pages(d.tot_pages),
        max_pages: pages(d.max_pages),
        outstanding_pages: pages(d.outstanding_pages),
        max_vcpu_id: d.max_vcpu_id,
        online_vcpus: d.online_vcpus,
        cpupool: d.cpupool,
        created_vcpus: d.created_vcpus,
    }
}

fn affinity_js(a: xenctrl::VcpuAffinity) -> VcpuAffinityJs {
    VcpuAffinityJs {
        hard: a.hard,
        soft: a.soft,
    }
}

/// A domain handle as xenopsd and `xl list -v` write it: the 16 bytes in
/// order, as a UUID.
fn uuid_of_handle(handle: &[u8; 16]) -> String {
    let hex: String = handle.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// A UUID (8-4-4-4-12 hex digits) as the 16 bytes of a domain handle.
fn handle_of_uuid(field: &str, uuid: &str) -> Result<[u8; 16]> {
    let groups: Vec<&str> = uuid.split('-').collect();
    let shaped = groups.iter().map(|g| g.len()).eq([8, 4, 4, 4, 12])
        && groups
            .iter()
            .all(|g| g.bytes().all(|b| b.is_ascii_hexdigit()));
    if !shaped {
        return Err(invalid_argument(format!("{field}: {uuid:?} is not a UUID")));
    }
    let hex = groups.concat();
    let mut handle = [0u8; 16];
    for (i, byte) in handle.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).expect("checked hex digits");
    }
    Ok(handle)
}

fn domid(value: f64) -> Result<u32> {
    to_u32(value, || "domid".into())
}

fn cpu_list(field: &str, cpus: &[f64]) -> Result<Vec<u32>> {
    cpus.iter()
        .enumerate()
        .map(|(i, &c)| to_u32(c, || format!("{field}[{i}]")))
        .collect()
}

/// A Xen host: the real one (`openHypervisor`) or a simulated one (`SimulatedHost.hypervisor()`).
#[napi]
pub struct Hypervisor {
    /// `None` once closed. Operations in flight hold their own reference, so
    /// the library is let go when the last of them ends.
    backend: RwLock<Option<Arc<dyn Backend>>>,
    version: xenctrl::XenVersion,
    simulated: bool,
}

impl Hypervisor {
    pub(crate) fn new(backend: Arc<dyn Backend>, simulated: bool) -> Self {
        Hypervisor {
            version: backend.version(),
            backend: RwLock::new(Some(backend)),
            simulated,
        }
    }

    /// An operation on this hypervisor, run on the libuv pool.
    fn run<T: Send + 'static, J: ToNapiValue + TypeName>(
        &self,
        to_js: fn(T) -> J,
        operation: impl FnOnce(&(dyn Backend + 'static)) -> Result<T> + Send + 'static,
    ) -> AsyncTask<PoolTask<T, J>> {
        let backend = self
            .backend
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone();
        PoolTask::on(backend, "hypervisor", to_js, operation)
    }
}

#[napi]
impl Hypervisor {
    /// The hypervisor's version.
    #[napi(getter)]
    pub fn version(&self) -> XenVersionJs {
        XenVersionJs {
            major: self.version.major,
            minor: self.version.minor,
        }
    }

    /// Whether this is a simulated host.
    #[napi(getter)]
    pub fn simulated(&self) -> bool {
        self.simulated
    }

    /// Lets go of the hypervisor (for the real one, libxenctrl's handle and
    /// library once the operations in flight end); later calls fail with
    /// `CLOSED`. Closing twice is fine.
    #[napi]
    pub fn close(&self) {
        self.backend
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .take();
    }

    /// The host's CPUs and memory (`xc_physinfo`): memory in 4 KiB pages.
    #[napi(ts_return_type = "Promise<PhysInfo>")]
    pub fn physinfo(&self) -> AsyncTask<PoolTask<xenctrl::PhysInfo, PhysInfoJs>> {
        self.run(physinfo_js, |h| Ok(h.physinfo()?))
    }

    /// Each NUMA node's memory and the node-to-node distances (`xc_numainfo`).
    #[napi(ts_return_type = "Promise<NumaInfo>")]
    pub fn numa_info(&self) -> AsyncTask<PoolTask<xenctrl::NumaInfo, NumaInfoJs>> {
        self.run(numa_js, |h| Ok(h.numa_info()?))
    }

    /// Each CPU's core, socket and node (`xc_cputopoinfo`).
    #[napi(ts_return_type = "Promise<CpuTopology>")]
    pub fn cpu_topology(&self) -> AsyncTask<PoolTask<xenctrl::CpuTopology, CpuTopologyJs>> {
        self.run(topology_js, |h| Ok(h.cpu_topology()?))
    }

    /// One domain's state and memory (`xc_domain_getinfolist`); ESRCH when there is none.
    #[napi(ts_return_type = "Promise<DomainInfo>")]
    pub fn domain_info(
        &self,
        domid: f64,
    ) -> AsyncTask<PoolTask<xenctrl::DomainInfo, DomainInfoJs>> {
        self.run(domain_js, move |h| Ok(h.domain_info(self::domid(domid)?)?))
    }

    /// Sets an HVM parameter of an HVM or PVH domain (`xc_hvm_param_set`).
    #[napi(ts_return_type = "Promise<void>")]
    pub fn set_hvm_param(&self, domid: f64, param: f64, value: f64) -> AsyncTask<PoolTask<(), ()>> {
        self.run(nothing, move |h| {
            let param = to_u32(param, || "param".into())?;
            let value = to_u64(value, || "value".into())?;
            Ok(h.set_hvm_param(self::domid(domid)?, param, value)?)
        })
    }

    /// Allocates the domain's vCPUs (`xc_domain_max_vcpus`): Xen takes only the
    /// count the domain was created with (`createDomain`'s `maxVcpus`), else EINVAL.
    #[napi(ts_return_type = "Promise<void>")]
    pub fn set_max_vcpus(&self, domid: f64, max_vcpus: f64) -> AsyncTask<PoolTask<(), ()>> {
        self.run(nothing, move |h| {
            let max = to_u32(max_vcpus, || "maxVcpus".into())?;
            Ok(h.set_max_vcpus(self::domid(domid)?, max)?)
        })
    }

    /// A PV domain's memory map limit, KiB (`xc_domain_set_memmap_limit`).
    #[napi(ts_return_type = "Promise<void>")]
    pub fn set_memmap_limit(&self, domid: f64, limit_kib: f64) -> AsyncTask<PoolTask<(), ()>> {
        self.run(nothing, move |h| {
            let kib = to_u64(limit_kib, || "limitKib".into())?;
            Ok(h.set_memmap_limit(self::domid(domid)?, kib)?)
        })
    }

    /// The domain's shadow (or HAP) pool, MiB.
    #[napi(ts_return_type = "Promise<number>")]
    pub fn shadow_allocation_mib(&self, domid: f64) -> AsyncTask<PoolTask<u32, u32>> {
        self.run(same, move |h| {
            Ok(h.shadow_allocation_mib(self::domid(domid)?)?)
        })
    }

    /// Sets the domain's shadow (or HAP) pool, MiB (`xc_shadow_control`).
    #[napi(ts_return_type = "Promise<void>")]
    pub fn set_shadow_allocation_mib(&self, domid: f64, mib: f64) -> AsyncTask<PoolTask<(), ()>> {
        self.run(nothing, move |h| {
            let mib = to_u32(mib, || "mib".into())?;
            Ok(h.set_shadow_allocation_mib(self::domid(domid)?, mib)?)
        })
    }

    /// Sets a vCPU's hard and/or soft affinity; resolves to the effective masks.
    #[napi(ts_return_type = "Promise<VcpuAffinity>")]
    pub fn set_vcpu_affinity(
        &self,
        domid: f64,
        vcpu: f64,
        affinity: AffinityInput,
    ) -> AsyncTask<PoolTask<xenctrl::VcpuAffinity, VcpuAffinityJs>> {
        self.run(affinity_js, move |h| {
            let (domid, vcpu) = (self::domid(domid)?, to_u32(vcpu, || "vcpu".into())?);
            let hard = affinity
                .hard
                .as_deref()
                .map(|c| cpu_list("affinity.hard", c))
                .transpose()?;
            let soft = affinity
                .soft
                .as_deref()
                .map(|c| cpu_list("affinity.soft", c))
                .transpose()?;
            if hard.is_none() && soft.is_none() {
                return Err(Failure::InvalidArgument(
                    "affinity: give hard, soft or both".into(),
                ));
            }
            Ok(h.set_vcpu_affinity(domid, vcpu, hard.as_deref(), soft.as_deref())?)
        })
    }

    /// A vCPU's hard and soft affinity (`xc_vcpu_getaffinity`).
    #[napi(ts_return_type = "Promise<VcpuAffinity>")]
    pub fn vcpu_affinity(
        &self,
        domid: f64,
        vcpu: f64,
    ) -> AsyncTask<PoolTask<xenctrl::VcpuAffinity, VcpuAffinityJs>> {
        self.run(affinity_js, move |h| {
            let vcpu = to_u32(vcpu, || "vcpu".into())?;
            Ok(h.vcpu_affinity(self::domid(domid)?, vcpu)?)
        })
    }

    /// A host-wide claim of `pages` 4 KiB pages in all; 0 releases the claim.
    #[napi(ts_return_type = "Promise<void>")]
    pub fn claim_pages(&self, domid: f64, pages: f64) -> AsyncTask<PoolTask<(), ()>> {
        self.run(nothing, move |h| {
            let pages = to_u64(pages, || "pages".into())?;
            Ok(h.claim_pages(self::domid(domid)?, pages)?)
        })
    }

    /// A claim on one node; rejects with ENOSYS where the hypervisor has none.
    #[napi(ts_return_type = "Promise<void>")]
    pub fn claim_pages_on_node(
        &self,
        domid: f64,
        node: f64,
        pages: f64,
    ) -> AsyncTask<PoolTask<(), ()>> {
        self.run(nothing, move |h| {
            let node = to_u32(node, || "node".into())?;
            let pages = to_u64(pages, || "pages".into())?;
            Ok(h.claim_pages_on_node(self::domid(domid)?, node, pages)?)
        })
    }

    /// An unbound event channel of the domain for `remoteDomid` to bind; resolves to its port.
    #[napi(ts_return_type = "Promise<number>")]
    pub fn alloc_unbound_evtchn(
        &self,
        domid: f64,
        remote_domid: f64,
    ) -> AsyncTask<PoolTask<u32, u32>> {
        self.run(same, move |h| {
            let remote = to_u32(remote_domid, || "remoteDomid".into())?;
            Ok(h.alloc_unbound_evtchn(self::domid(domid)?, remote)?)
        })
    }

    /// Creates a paused, empty domain (`xc_domain_create`); resolves to its domid.
    /// `createDomain` in the package does this and writes its xenstore tree.
    #[napi(ts_return_type = "Promise<number>")]
    pub fn create_domain(&self, config: DomainConfigInput) -> AsyncTask<PoolTask<u32, u32>> {
        self.run(same, move |h| {
            let kind: xenctrl::DomainKind = config.kind.into();
            let defaults = DomainConfig::default();
            let config = DomainConfig {
                kind,
                handle: match &config.handle {
                    Some(uuid) => handle_of_uuid("config.handle", uuid)?,
                    None => defaults.handle,
                },
                ssidref: match config.ssidref {
                    Some(s) => to_u32(s, || "config.ssidref".into())?,
                    None => defaults.ssidref,
                },
                hap: config.hap.unwrap_or(kind != xenctrl::DomainKind::Pv),
                nested_virt: config.nested_virt.unwrap_or(false),
                vpmu: config.vpmu.unwrap_or(false),
                msr_relaxed: config.msr_relaxed.unwrap_or(false),
                max_vcpus: to_u32(config.max_vcpus, || "config.maxVcpus".into())?,
                max_evtchn_port: match config.max_evtchn_port {
                    Some(p) => to_u32(p, || "config.maxEvtchnPort".into())?,
                    None => defaults.max_evtchn_port,
                },
                max_grant_frames: config
                    .max_grant_frames
                    .map(|f| to_u32(f, || "config.maxGrantFrames".into()))
                    .transpose()?,
                max_maptrack_frames: config
                    .max_maptrack_frames
                    .map(|f| to_u32(f, || "config.maxMaptrackFrames".into()))
                    .transpose()?,
                max_grant_version: match config.max_grant_version {
                    Some(v) => to_u32(v, || "config.maxGrantVersion".into())?,
                    None => defaults.max_grant_version,
                },
            };
            Ok(h.create_domain(&config)?)
        })
    }

    /// Destroys a domain (`xc_domain_destroy`); its memory goes to the scrubber.
    #[napi(ts_return_type = "Promise<void>")]
    pub fn destroy_domain(&self, domid: f64) -> AsyncTask<PoolTask<(), ()>> {
        self.run(nothing, move |h| Ok(h.destroy_domain(self::domid(domid)?)?))
    }

    /// Renames the domain for the toolstack: `handle` is a UUID.
    #[napi(ts_return_type = "Promise<void>")]
    pub fn set_domain_handle(&self, domid: f64, handle: String) -> AsyncTask<PoolTask<(), ()>> {
        self.run(nothing, move |h| {
            let bytes = handle_of_uuid("handle", &handle)?;
            Ok(h.set_domain_handle(self::domid(domid)?, bytes)?)
        })
    }

    /// Lets a built domain run (domains are created paused).
    #[napi(ts_return_type = "Promise<void>")]
    pub fn unpause_domain(&self, domid: f64) -> AsyncTask<PoolTask<(), ()>> {
        self.run(nothing, move |h| Ok(h.unpause_domain(self::domid(domid)?)?))
    }

    /// The domain's maximum memory, KiB (`xc_domain_setmaxmem`).
    #[napi(ts_return_type = "Promise<void>")]
    pub fn set_max_memory_kib(&self, domid: f64, max_kib: f64) -> AsyncTask<PoolTask<(), ()>> {
        self.run(nothing, move |h| {
            let kib = to_u64(max_kib, || "maxKib".into())?;
            Ok(h.set_max_memory_kib(self::domid(domid)?, kib)?)
        })
    }
}

/// What libxenctrl's own logging does.
#[napi(string_enum = "lowercase")]
pub enum LibxenctrlLog {
    /// Nothing: failures reach JS as errors (the default).
    Quiet,
    /// libxenctrl's own `xc: error: ...` messages on stderr too.
    Stderr,
}

/// How `openHypervisor` opens the host's libxenctrl.
#[napi(object, js_name = "OpenOptions")]
pub struct OpenOptionsInput {
    /// A libxenctrl to load instead of the running Xen's versioned soname.
    pub library_path: Option<String>,
    /// Default: /dev/xen/privcmd.
    pub privcmd_path: Option<String>,
    pub libxenctrl_log: Option<LibxenctrlLog>,
}

/// Opens the real host's hypervisor through its libxenctrl.
#[napi(ts_return_type = "Promise<Hypervisor>")]
pub fn open_hypervisor(
    options: Option<OpenOptionsInput>,
) -> AsyncTask<PoolTask<xenctrl::XenCtrl, Hypervisor>> {
    let mut open = xenctrl::OpenOptions::default();
    if let Some(options) = options {
        open.library_path = options.library_path.map(Into::into);
        if let Some(path) = options.privcmd_path {
            open.privcmd_path = path.into();
        }
        open.library_log = match options.libxenctrl_log {
            None | Some(LibxenctrlLog::Quiet) => xenctrl::LibraryLog::Quiet,
            Some(LibxenctrlLog::Stderr) => xenctrl::LibraryLog::Stderr,
        };
    }
    PoolTask::new(
        |xen| Hypervisor::new(Arc::new(xen), false),
        move || Ok(xenctrl::XenCtrl::open(&open)?),
    )
}
