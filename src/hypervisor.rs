//! `Hypervisor`: one object for the real host's libxenctrl and for a
//! simulated host. Every operation runs on the libuv pool and returns a
//! Promise; panics are caught there.

use crate::convert::{to_u32, to_u64};
use crate::error::{internal, invalid_argument, reject, Result};
use napi::bindgen_prelude::{AsyncTask, Env, Task, ToNapiValue, TypeName};
use napi_derive::napi;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use xenctrl::{DomainConfig, DomainKind, Hypervisor as Backend, XenError};

type Operation<T> = Box<dyn FnOnce(&dyn Backend) -> xenctrl::Result<T> + Send>;

/// One hypervisor operation on the libuv pool.
pub struct HypervisorTask<T: Send + 'static, J> {
    backend: Arc<dyn Backend>,
    operation: Option<Operation<T>>,
    to_js: fn(T) -> J,
}

impl<T: Send + 'static, J: ToNapiValue + TypeName> Task for HypervisorTask<T, J> {
    type Output = std::result::Result<T, XenError>;
    type JsValue = J;

    fn compute(&mut self) -> napi::Result<Self::Output> {
        let operation = self.operation.take().expect("a task computes once");
        let backend = self.backend.clone();
        std::panic::catch_unwind(AssertUnwindSafe(|| operation(&*backend))).map_err(internal)
    }

    fn resolve(&mut self, env: Env, output: Self::Output) -> napi::Result<J> {
        output.map(self.to_js).map_err(|e| reject(&env, &e))
    }
}

pub(crate) fn task<T: Send + 'static, J: ToNapiValue + TypeName>(
    backend: &Arc<dyn Backend>,
    to_js: fn(T) -> J,
    operation: impl FnOnce(&dyn Backend) -> xenctrl::Result<T> + Send + 'static,
) -> AsyncTask<HypervisorTask<T, J>> {
    AsyncTask::new(HypervisorTask {
        backend: backend.clone(),
        operation: Some(Box::new(operation)),
        to_js,
    })
}

fn same<T>(value: T) -> T {
    value
}

fn nothing(_: ()) {}

fn pages(value: u64) -> f64 {
    value as f64
}

#[napi(object)]
pub struct XenVersionJs {
    pub major: u32,
    pub minor: u32,
}

#[napi(object)]
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

#[napi(object)]
pub struct NodeMemoryJs {
    pub size_bytes: f64,
    pub free_bytes: f64,
}

#[napi(object)]
pub struct NumaInfoJs {
    /// Null for a node Xen reports invalid.
    pub nodes: Vec<Option<NodeMemoryJs>>,
    /// 0xFFFFFFFF: unreachable.
    pub distances: Vec<Vec<u32>>,
}

#[napi(object)]
pub struct CpuLocationJs {
    pub core: u32,
    pub socket: u32,
    pub node: u32,
}

#[napi(object)]
pub struct CpuTopologyJs {
    /// Null for a CPU that is not online.
    pub cpus: Vec<Option<CpuLocationJs>>,
}

#[napi(object)]
pub struct DomainInfoJs {
    pub domid: u32,
    pub hvm: bool,
    pub dying: bool,
    pub tot_pages: f64,
    pub max_pages: f64,
    pub outstanding_pages: f64,
    pub max_vcpu_id: Option<u32>,
    pub online_vcpus: u32,
    pub cpupool: u32,
}

#[napi(object)]
pub struct VcpuAffinityJs {
    pub hard: Vec<u32>,
    pub soft: Vec<u32>,
}

#[napi(object)]
pub struct AffinityInput {
    pub hard: Option<Vec<f64>>,
    pub soft: Option<Vec<f64>>,
}

#[napi(object)]
pub struct DomainConfigInput {
    /// "pv", "hvm" or "pvh".
    pub kind: String,
    pub max_vcpus: f64,
    pub max_evtchn_port: Option<f64>,
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
        hvm: d.hvm,
        dying: d.dying,
        tot_pages: pages(d.tot_pages),
        max_pages: pages(d.max_pages),
        outstanding_pages: pages(d.outstanding_pages),
        max_vcpu_id: d.max_vcpu_id,
        online_vcpus: d.online_vcpus,
        cpupool: d.cpupool,
    }
}

fn affinity_js(a: xenctrl::VcpuAffinity) -> VcpuAffinityJs {
    VcpuAffinityJs {
        hard: a.hard,
        soft: a.soft,
    }
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

/// A Xen host: the real one (`openHypervisor`) or a simulated one (`SimHost.hypervisor()`).
#[napi]
pub struct Hypervisor {
    backend: Arc<dyn Backend>,
    simulated: bool,
}

impl Hypervisor {
    pub(crate) fn new(backend: Arc<dyn Backend>, simulated: bool) -> Self {
        Hypervisor { backend, simulated }
    }
}

#[napi]
impl Hypervisor {
    /// The hypervisor's version.
    #[napi(getter)]
    pub fn version(&self) -> XenVersionJs {
        let v = self.backend.version();
        XenVersionJs {
            major: v.major,
            minor: v.minor,
        }
    }

    /// Whether this is a simulated host.
    #[napi(getter)]
    pub fn simulated(&self) -> bool {
        self.simulated
    }

    #[napi(ts_return_type = "Promise<PhysInfoJs>")]
    pub fn physinfo(&self) -> AsyncTask<HypervisorTask<xenctrl::PhysInfo, PhysInfoJs>> {
        task(&self.backend, physinfo_js, |h| h.physinfo())
    }

    #[napi(ts_return_type = "Promise<NumaInfoJs>")]
    pub fn numa_info(&self) -> AsyncTask<HypervisorTask<xenctrl::NumaInfo, NumaInfoJs>> {
        task(&self.backend, numa_js, |h| h.numa_info())
    }

    #[napi(ts_return_type = "Promise<CpuTopologyJs>")]
    pub fn cpu_topology(&self) -> AsyncTask<HypervisorTask<xenctrl::CpuTopology, CpuTopologyJs>> {
        task(&self.backend, topology_js, |h| h.cpu_topology())
    }

    #[napi(ts_return_type = "Promise<DomainInfoJs>")]
    pub fn domain_info(
        &self,
        domid: f64,
    ) -> Result<AsyncTask<HypervisorTask<xenctrl::DomainInfo, DomainInfoJs>>> {
        let domid = self::domid(domid)?;
        Ok(task(&self.backend, domain_js, move |h| {
            h.domain_info(domid)
        }))
    }

    #[napi(ts_return_type = "Promise<void>")]
    pub fn set_hvm_param(
        &self,
        domid: f64,
        param: f64,
        value: f64,
    ) -> Result<AsyncTask<HypervisorTask<(), ()>>> {
        let (domid, param, value) = (
            self::domid(domid)?,
            to_u32(param, || "param".into())?,
            to_u64(value, || "value".into())?,
        );
        Ok(task(&self.backend, nothing, move |h| {
            h.set_hvm_param(domid, param, value)
        }))
    }

    #[napi(ts_return_type = "Promise<void>")]
    pub fn set_max_vcpus(
        &self,
        domid: f64,
        max_vcpus: f64,
    ) -> Result<AsyncTask<HypervisorTask<(), ()>>> {
        let (domid, max) = (
            self::domid(domid)?,
            to_u32(max_vcpus, || "maxVcpus".into())?,
        );
        Ok(task(&self.backend, nothing, move |h| {
            h.set_max_vcpus(domid, max)
        }))
    }

    #[napi(ts_return_type = "Promise<void>")]
    pub fn set_memmap_limit(
        &self,
        domid: f64,
        limit_kib: f64,
    ) -> Result<AsyncTask<HypervisorTask<(), ()>>> {
        let (domid, kib) = (
            self::domid(domid)?,
            to_u64(limit_kib, || "limitKib".into())?,
        );
        Ok(task(&self.backend, nothing, move |h| {
            h.set_memmap_limit(domid, kib)
        }))
    }

    #[napi(ts_return_type = "Promise<number>")]
    pub fn shadow_allocation_mib(&self, domid: f64) -> Result<AsyncTask<HypervisorTask<u32, u32>>> {
        let domid = self::domid(domid)?;
        Ok(task(&self.backend, same, move |h| {
            h.shadow_allocation_mib(domid)
        }))
    }

    #[napi(ts_return_type = "Promise<void>")]
    pub fn set_shadow_allocation_mib(
        &self,
        domid: f64,
        mib: f64,
    ) -> Result<AsyncTask<HypervisorTask<(), ()>>> {
        let (domid, mib) = (self::domid(domid)?, to_u32(mib, || "mib".into())?);
        Ok(task(&self.backend, nothing, move |h| {
            h.set_shadow_allocation_mib(domid, mib)
        }))
    }

    /// Sets a vCPU's hard and/or soft affinity; resolves to the effective masks.
    #[napi(ts_return_type = "Promise<VcpuAffinityJs>")]
    pub fn set_vcpu_affinity(
        &self,
        domid: f64,
        vcpu: f64,
        affinity: AffinityInput,
    ) -> Result<AsyncTask<HypervisorTask<xenctrl::VcpuAffinity, VcpuAffinityJs>>> {
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
            return Err(invalid_argument("affinity: give hard, soft or both"));
        }
        Ok(task(&self.backend, affinity_js, move |h| {
            h.set_vcpu_affinity(domid, vcpu, hard.as_deref(), soft.as_deref())
        }))
    }

    #[napi(ts_return_type = "Promise<VcpuAffinityJs>")]
    pub fn vcpu_affinity(
        &self,
        domid: f64,
        vcpu: f64,
    ) -> Result<AsyncTask<HypervisorTask<xenctrl::VcpuAffinity, VcpuAffinityJs>>> {
        let (domid, vcpu) = (self::domid(domid)?, to_u32(vcpu, || "vcpu".into())?);
        Ok(task(&self.backend, affinity_js, move |h| {
            h.vcpu_affinity(domid, vcpu)
        }))
    }

    /// A host-wide claim of `pages` 4 KiB pages in all; 0 releases the claim.
    #[napi(ts_return_type = "Promise<void>")]
    pub fn claim_pages(&self, domid: f64, pages: f64) -> Result<AsyncTask<HypervisorTask<(), ()>>> {
        let (domid, pages) = (self::domid(domid)?, to_u64(pages, || "pages".into())?);
        Ok(task(&self.backend, nothing, move |h| {
            h.claim_pages(domid, pages)
        }))
    }

    /// A claim on one node; rejects with ENOSYS where the hypervisor has none.
    #[napi(ts_return_type = "Promise<void>")]
    pub fn claim_pages_on_node(
        &self,
        domid: f64,
        node: f64,
        pages: f64,
    ) -> Result<AsyncTask<HypervisorTask<(), ()>>> {
        let (domid, node, pages) = (
            self::domid(domid)?,
            to_u32(node, || "node".into())?,
            to_u64(pages, || "pages".into())?,
        );
        Ok(task(&self.backend, nothing, move |h| {
            h.claim_pages_on_node(domid, node, pages)
        }))
    }

    #[napi(ts_return_type = "Promise<number>")]
    pub fn alloc_unbound_evtchn(
        &self,
        domid: f64,
        remote_domid: f64,
    ) -> Result<AsyncTask<HypervisorTask<u32, u32>>> {
        let (domid, remote) = (
            self::domid(domid)?,
            to_u32(remote_domid, || "remoteDomid".into())?,
        );
        Ok(task(&self.backend, same, move |h| {
            h.alloc_unbound_evtchn(domid, remote)
        }))
    }

    #[napi(ts_return_type = "Promise<number>")]
    pub fn create_domain(
        &self,
        config: DomainConfigInput,
    ) -> Result<AsyncTask<HypervisorTask<u32, u32>>> {
        let kind = match config.kind.as_str() {
            "pv" => DomainKind::Pv,
            "hvm" => DomainKind::Hvm,
            "pvh" => DomainKind::Pvh,
            other => {
                return Err(invalid_argument(format!(
                    "config.kind: {other:?} is not \"pv\", \"hvm\" or \"pvh\""
                )))
            }
        };
        let config = DomainConfig {
            kind,
            max_vcpus: to_u32(config.max_vcpus, || "config.maxVcpus".into())?,
            max_evtchn_port: match config.max_evtchn_port {
                Some(p) => to_u32(p, || "config.maxEvtchnPort".into())?,
                None => DomainConfig::default().max_evtchn_port,
            },
            max_grant_frames: config
                .max_grant_frames
                .map(|f| to_u32(f, || "config.maxGrantFrames".into()))
                .transpose()?,
            max_maptrack_frames: config
                .max_maptrack_frames
                .map(|f| to_u32(f, || "config.maxMaptrackFrames".into()))
                .transpose()?,
        };
        Ok(task(&self.backend, same, move |h| h.create_domain(&config)))
    }

    #[napi(ts_return_type = "Promise<void>")]
    pub fn destroy_domain(&self, domid: f64) -> Result<AsyncTask<HypervisorTask<(), ()>>> {
        let domid = self::domid(domid)?;
        Ok(task(&self.backend, nothing, move |h| {
            h.destroy_domain(domid)
        }))
    }

    #[napi(ts_return_type = "Promise<void>")]
    pub fn set_max_memory_kib(
        &self,
        domid: f64,
        max_kib: f64,
    ) -> Result<AsyncTask<HypervisorTask<(), ()>>> {
        let (domid, kib) = (self::domid(domid)?, to_u64(max_kib, || "maxKib".into())?);
        Ok(task(&self.backend, nothing, move |h| {
            h.set_max_memory_kib(domid, kib)
        }))
    }
}

#[napi(object)]
pub struct OpenOptionsInput {
    /// A libxenctrl to load instead of the running Xen's versioned soname.
    pub library_path: Option<String>,
    /// Default: /dev/xen/privcmd.
    pub privcmd_path: Option<String>,
    /// "quiet" (the default: failures reach JS as errors) or "stderr"
    /// (libxenctrl's own `xc: error: ...` messages too).
    pub libxenctrl_log: Option<String>,
}

pub struct OpenTask(xenctrl::OpenOptions);

impl Task for OpenTask {
    type Output = std::result::Result<xenctrl::XenCtrl, XenError>;
    type JsValue = Hypervisor;

    fn compute(&mut self) -> napi::Result<Self::Output> {
        std::panic::catch_unwind(AssertUnwindSafe(|| xenctrl::XenCtrl::open(&self.0)))
            .map_err(internal)
    }

    fn resolve(&mut self, env: Env, output: Self::Output) -> napi::Result<Hypervisor> {
        match output {
            Ok(xen) => Ok(Hypervisor::new(Arc::new(xen), false)),
            Err(e) => Err(reject(&env, &e)),
        }
    }
}

/// Opens the real host's hypervisor through its libxenctrl.
#[napi(ts_return_type = "Promise<Hypervisor>")]
pub fn open_hypervisor(options: Option<OpenOptionsInput>) -> Result<AsyncTask<OpenTask>> {
    let mut open = xenctrl::OpenOptions::default();
    if let Some(options) = options {
        open.library_path = options.library_path.map(Into::into);
        if let Some(path) = options.privcmd_path {
            open.privcmd_path = path.into();
        }
        open.library_log = match options.libxenctrl_log.as_deref() {
            None | Some("quiet") => xenctrl::LibraryLog::Quiet,
            Some("stderr") => xenctrl::LibraryLog::Stderr,
            Some(other) => {
                let message =
                    format!("options.libxenctrlLog: {other:?} is not \"quiet\" or \"stderr\"");
                return Err(invalid_argument(message));
            }
        };
    }
    Ok(AsyncTask::new(OpenTask(open)))
}
