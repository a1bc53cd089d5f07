//! The host's real libxenctrl, loaded at run time so that the addon loads on
//! machines without Xen. The library must match the running hypervisor (Xen
//! refuses sysctls and domctls from another release's library with EACCES),
//! and struct layouts differ between releases: the version is learnt first,
//! and only versions whose layouts are written down in [`layouts`] are used.

pub mod layouts;

use crate::error::{Result, Unavailable, XenError};
use crate::types::*;
use crate::Hypervisor;
use libloading::Library;
use std::ffi::{c_int, c_uint, c_ulong, c_void};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use layouts::v4_17 as abi;

/// The releases whose layouts are known. Anything else is refused by name.
pub const SUPPORTED_VERSIONS: &[XenVersion] = &[XenVersion {
    major: 4,
    minor: 17,
}];

const XENVER_VERSION: c_int = 0;
const XEN_DOMINF_DYING: u32 = 1 << 0;
const XEN_DOMINF_HVM_GUEST: u32 = 1 << 1;
const XEN_DOMCTL_CDF_HVM: u32 = 1 << 0;
const XEN_DOMCTL_CDF_HAP: u32 = 1 << 1;
const XEN_X86_EMU_LAPIC: u32 = 1 << 0;
/// Everything but vPCI, as libxl gives an HVM guest.
const XEN_X86_EMU_HVM: u32 = 0x3ff;
const XEN_DOMCTL_SHADOW_OP_GET_ALLOCATION: c_uint = 30;
const XEN_DOMCTL_SHADOW_OP_SET_ALLOCATION: c_uint = 31;
const XEN_VCPUAFFINITY_HARD: u32 = 1 << 0;
const XEN_VCPUAFFINITY_SOFT: u32 = 1 << 1;
const XEN_INVALID_ID: u32 = !0;
const XEN_INVALID_MEM_SZ: u64 = 0xFFFF_FFFF;

/// What libxenctrl's own logging does.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LibraryLog {
    /// Nothing: every failure reaches the caller as an error with its errno.
    #[default]
    Quiet,
    /// libxenctrl's default: its messages (`xc: error: ...`) on stderr.
    Stderr,
}

/// Where to find the library and the privcmd device.
#[derive(Clone, Debug)]
pub struct OpenOptions {
    /// A libxenctrl to load instead of the running Xen's versioned soname.
    pub library_path: Option<PathBuf>,
    pub privcmd_path: PathBuf,
    pub library_log: LibraryLog,
}

impl Default for OpenOptions {
    fn default() -> Self {
        OpenOptions {
            library_path: None,
            privcmd_path: PathBuf::from("/dev/xen/privcmd"),
            library_log: LibraryLog::Quiet,
        }
    }
}

/// libxentoollog's `XTL_NUM_LEVELS`: above every level a message can have.
const XTL_NUM_LEVELS: c_int = 11;

/// A xentoollog logger that prints nothing, and the stream it holds.
struct QuietLogger {
    logger: *mut c_void,
    stream: *mut libc::FILE,
    destroy: unsafe extern "C" fn(*mut c_void),
}

impl QuietLogger {
    /// `None` when the logger cannot be made: libxenctrl then logs as it would.
    fn new(library: &Library) -> Option<QuietLogger> {
        // SAFETY: the C signatures of libxentoollog 1.0 (a dependency of
        // libxenctrl, so found through its handle): the logger constructor
        // takes (FILE *, xentoollog_level, unsigned), the destructor a logger.
        let create: unsafe extern "C" fn(*mut libc::FILE, c_int, c_uint) -> *mut c_void =
            *unsafe { library.get(b"xtl_createlogger_stdiostream\0") }.ok()?;
        let destroy: unsafe extern "C" fn(*mut c_void) =
            *unsafe { library.get(b"xtl_logger_destroy\0") }.ok()?;
        // SAFETY: both arguments are valid NUL-terminated strings.
        let stream = unsafe { libc::fopen(c"/dev/null".as_ptr(), c"w".as_ptr()) };
        if stream.is_null() {
            return None;
        }
        // SAFETY: an open stream, a level above every message, no flags.
        let logger = unsafe { create(stream, XTL_NUM_LEVELS, 0) };
        if logger.is_null() {
            // SAFETY: the stream was opened above and is not used elsewhere.
            unsafe { libc::fclose(stream) };
            return None;
        }
        Some(QuietLogger {
            logger,
            stream,
            destroy,
        })
    }
}

// SAFETY: the logger is written only by libxenctrl, during calls made under
// `XenCtrl::handle`'s mutex; it is created before and destroyed after them.
unsafe impl Send for QuietLogger {}
// SAFETY: as for Send: no method of QuietLogger touches it from `&self`.
unsafe impl Sync for QuietLogger {}

impl Drop for QuietLogger {
    fn drop(&mut self) {
        // SAFETY: the logger and stream were made in `new`, and the
        // interface that used them is closed before this runs.
        unsafe {
            (self.destroy)(self.logger);
            libc::fclose(self.stream);
        }
    }
}

type Xch = *mut c_void;

/// The libxenctrl functions used, by their C signatures (the same in every
/// supported release; `xc_shadow_control` is the 4.16+ form).
struct Api {
    interface_open: unsafe extern "C" fn(*mut c_void, *mut c_void, c_uint) -> Xch,
    interface_close: unsafe extern "C" fn(Xch) -> c_int,
    version: unsafe extern "C" fn(Xch, c_int, *mut c_void) -> c_int,
    physinfo: unsafe extern "C" fn(Xch, *mut abi::Physinfo) -> c_int,
    numainfo: unsafe extern "C" fn(Xch, *mut c_uint, *mut abi::Meminfo, *mut u32) -> c_int,
    cputopoinfo: unsafe extern "C" fn(Xch, *mut c_uint, *mut abi::Cputopo) -> c_int,
    domain_getinfolist: unsafe extern "C" fn(Xch, u32, c_uint, *mut abi::Domaininfo) -> c_int,
    hvm_param_set: unsafe extern "C" fn(Xch, u32, u32, u64) -> c_int,
    domain_max_vcpus: unsafe extern "C" fn(Xch, u32, c_uint) -> c_int,
    domain_set_memmap_limit: unsafe extern "C" fn(Xch, u32, c_ulong) -> c_int,
    shadow_control: unsafe extern "C" fn(Xch, u32, c_uint, *mut c_uint, c_uint) -> c_int,
    get_cpumap_size: unsafe extern "C" fn(Xch) -> c_int,
    vcpu_setaffinity: unsafe extern "C" fn(Xch, u32, c_int, *mut u8, *mut u8, u32) -> c_int,
    vcpu_getaffinity: unsafe extern "C" fn(Xch, u32, c_int, *mut u8, *mut u8, u32) -> c_int,
    domain_claim_pages: unsafe extern "C" fn(Xch, u32, c_ulong) -> c_int,
    evtchn_alloc_unbound: unsafe extern "C" fn(Xch, u32, u32) -> c_int,
    domain_create: unsafe extern "C" fn(Xch, *mut u32, *mut abi::Createdomain) -> c_int,
    domain_destroy: unsafe extern "C" fn(Xch, u32) -> c_int,
    domain_setmaxmem: unsafe extern "C" fn(Xch, u32, u64) -> c_int,
}

impl Api {
    fn load(library: &Library) -> std::result::Result<Api, libloading::Error> {
        macro_rules! symbol {
            ($name:literal) => {
                // SAFETY: the field's type is the C signature of this libxenctrl
                // function in every supported release (checked against the headers).
                *unsafe { library.get(concat!($name, "\0").as_bytes()) }?
            };
        }
        Ok(Api {
            interface_open: symbol!("xc_interface_open"),
            interface_close: symbol!("xc_interface_close"),
            version: symbol!("xc_version"),
            physinfo: symbol!("xc_physinfo"),
            numainfo: symbol!("xc_numainfo"),
            cputopoinfo: symbol!("xc_cputopoinfo"),
            domain_getinfolist: symbol!("xc_domain_getinfolist"),
            hvm_param_set: symbol!("xc_hvm_param_set"),
            domain_max_vcpus: symbol!("xc_domain_max_vcpus"),
            domain_set_memmap_limit: symbol!("xc_domain_set_memmap_limit"),
            shadow_control: symbol!("xc_shadow_control"),
            get_cpumap_size: symbol!("xc_get_cpumap_size"),
            vcpu_setaffinity: symbol!("xc_vcpu_setaffinity"),
            vcpu_getaffinity: symbol!("xc_vcpu_getaffinity"),
            domain_claim_pages: symbol!("xc_domain_claim_pages"),
            evtchn_alloc_unbound: symbol!("xc_evtchn_alloc_unbound"),
            domain_create: symbol!("xc_domain_create"),
            domain_destroy: symbol!("xc_domain_destroy"),
            domain_setmaxmem: symbol!("xc_domain_setmaxmem"),
        })
    }
}

/// An open `xc_interface *`.
struct Handle(Xch);

// SAFETY: the handle is only used under `XenCtrl::handle`'s mutex, one call at
// a time, and libxenctrl handles are not tied to the thread that opened them.
unsafe impl Send for Handle {}

/// The host's libxenctrl, opened.
pub struct XenCtrl {
    api: Api,
    handle: Mutex<Handle>,
    version: XenVersion,
    cpumap_bytes: usize,
    library_name: String,
    // Dropped after the handle is closed (in Drop), before the library.
    _logger: Option<QuietLogger>,
    // Dropped last: the function pointers in `api` point into it.
    _library: Library,
}

/// The order in which library names are tried: the running hypervisor's
/// version first (from sysfs), then every supported release.
fn library_candidates(options: &OpenOptions) -> Vec<String> {
    if let Some(path) = &options.library_path {
        return vec![path.display().to_string()];
    }
    let read = |part: &str| std::fs::read_to_string(format!("/sys/hypervisor/version/{part}")).ok();
    let mut names = Vec::new();
    if let (Some(major), Some(minor)) = (read("major"), read("minor")) {
        names.push(format!("libxenctrl.so.{}.{}", major.trim(), minor.trim()));
    }
    for v in SUPPORTED_VERSIONS {
        let name = format!("libxenctrl.so.{}.{}", v.major, v.minor);
        if !names.contains(&name) {
            names.push(name);
        }
    }
    names
}

/// Whether this process may make hypercalls, given what was found.
pub(crate) fn check_access(privcmd: &Path, euid: u32) -> std::result::Result<(), Unavailable> {
    if !privcmd.exists() {
        return Err(Unavailable::NoPrivcmd {
            path: privcmd.display().to_string(),
        });
    }
    if euid != 0 {
        return Err(Unavailable::NotRoot { euid });
    }
    Ok(())
}

fn last_errno() -> i32 {
    std::io::Error::last_os_error()
        .raw_os_error()
        .unwrap_or(libc::EIO)
}

fn to_cpumap(cpus: &[u32], bytes: usize, operation: &'static str) -> Result<Vec<u8>> {
    let mut map = vec![0u8; bytes];
    for &cpu in cpus {
        let byte = map
            .get_mut(cpu as usize / 8)
            .ok_or_else(|| XenError::InvalidArgument {
                operation,
                message: format!("CPU {cpu} is beyond the host's cpumap ({} CPUs)", bytes * 8),
            })?;
        *byte |= 1 << (cpu % 8);
    }
    Ok(map)
}

fn from_cpumap(map: &[u8]) -> Vec<u32> {
    (0..map.len() * 8)
        .filter(|&cpu| map[cpu / 8] & (1 << (cpu % 8)) != 0)
        .map(|c| c as u32)
        .collect()
}

impl XenCtrl {
    pub fn open(options: &OpenOptions) -> Result<XenCtrl> {
        let tried = library_candidates(options);
        let mut last_error = String::new();
        let mut found = None;
        for name in &tried {
            // SAFETY: loading libxenctrl runs its initialisers, which only set
            // up its own state; it is the library this interface exists for.
            match unsafe { Library::new(name) } {
                Ok(library) => {
                    found = Some((name.clone(), library));
                    break;
                }
                Err(e) => last_error = e.to_string(),
            }
        }
        let Some((library_name, library)) = found else {
            return Err(XenError::Unavailable(Unavailable::NoLibrary {
                tried,
                reason: last_error,
            }));
        };
        let api = Api::load(&library).map_err(|e| {
            XenError::Unavailable(Unavailable::NoLibrary {
                tried: vec![library_name.clone()],
                reason: e.to_string(),
            })
        })?;
        // SAFETY: geteuid cannot fail and has no preconditions.
        let euid = unsafe { libc::geteuid() };
        check_access(&options.privcmd_path, euid).map_err(XenError::Unavailable)?;

        let logger = match options.library_log {
            LibraryLog::Quiet => QuietLogger::new(&library),
            LibraryLog::Stderr => None,
        };
        let log = logger.as_ref().map_or(std::ptr::null_mut(), |l| l.logger);
        // SAFETY: a logger from libxentoollog, or null for libxenctrl's
        // default (stderr); the logger outlives the interface (see XenCtrl).
        let xch = unsafe { (api.interface_open)(log, log, 0) };
        if xch.is_null() {
            return Err(XenError::Unavailable(Unavailable::OpenFailed {
                errno: last_errno(),
            }));
        }
        let handle = Handle(xch);
        // SAFETY: XENVER_version takes no argument buffer and returns major << 16 | minor.
        let raw = unsafe { (api.version)(xch, XENVER_VERSION, std::ptr::null_mut()) };
        let version = XenVersion {
            major: (raw as u32) >> 16,
            minor: (raw as u32) & 0xffff,
        };
        let close = |api: &Api| {
            // SAFETY: xch came from xc_interface_open and is not used after this.
            unsafe { (api.interface_close)(handle.0) };
        };
        if raw < 0 {
            close(&api);
            return Err(XenError::hypercall("xc_version", last_errno()));
        }
        if !SUPPORTED_VERSIONS.contains(&version) {
            close(&api);
            return Err(XenError::VersionUnsupported {
                version,
                supported: SUPPORTED_VERSIONS.to_vec(),
            });
        }
        // SAFETY: a valid handle; returns the size in bytes of a cpumap, or ≤ 0 on failure.
        let cpumap_bytes = unsafe { (api.get_cpumap_size)(xch) };
        if cpumap_bytes <= 0 {
            close(&api);
            return Err(XenError::hypercall("xc_get_cpumap_size", last_errno()));
        }
        Ok(XenCtrl {
            api,
            handle: Mutex::new(handle),
            version,
            cpumap_bytes: cpumap_bytes as usize,
            library_name,
            _logger: logger,
            _library: library,
        })
    }

    /// The library that was loaded.
    pub fn library_name(&self) -> &str {
        &self.library_name
    }

    /// Runs one libxenctrl call on the handle; a negative result is a failure
    /// with errno set.
    fn call(&self, operation: &'static str, f: impl FnOnce(&Api, Xch) -> c_int) -> Result<c_int> {
        let handle = self
            .handle
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let rc = f(&self.api, handle.0);
        if rc < 0 {
            return Err(XenError::hypercall(operation, last_errno()));
        }
        Ok(rc)
    }
}

impl Drop for XenCtrl {
    fn drop(&mut self) {
        let handle = self
            .handle
            .get_mut()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        // SAFETY: the handle came from xc_interface_open and is closed once, here.
        unsafe { (self.api.interface_close)(handle.0) };
    }
}

impl Hypervisor for XenCtrl {
    fn version(&self) -> XenVersion {
        self.version
    }

    fn physinfo(&self) -> Result<PhysInfo> {
        let mut raw = abi::Physinfo::default();
        // SAFETY: raw is a physinfo of this release's layout.
        self.call("xc_physinfo", |api, xch| unsafe {
            (api.physinfo)(xch, &mut raw)
        })?;
        Ok(PhysInfo {
            threads_per_core: raw.threads_per_core,
            cores_per_socket: raw.cores_per_socket,
            nr_cpus: raw.nr_cpus,
            max_cpu_id: raw.max_cpu_id,
            nr_nodes: raw.nr_nodes,
            max_node_id: raw.max_node_id,
            cpu_khz: raw.cpu_khz,
            capabilities: Capabilities::from_bits(raw.capabilities),
            total_pages: raw.total_pages,
            free_pages: raw.free_pages,
            scrub_pages: raw.scrub_pages,
            outstanding_pages: raw.outstanding_pages,
            max_mfn: raw.max_mfn,
        })
    }

    fn numa_info(&self) -> Result<NumaInfo> {
        let mut count: c_uint = 0;
        // SAFETY: null buffers ask for the node count only.
        self.call("xc_numainfo", |api, xch| unsafe {
            (api.numainfo)(xch, &mut count, std::ptr::null_mut(), std::ptr::null_mut())
        })?;
        let n = count as usize;
        let mut memory = vec![abi::Meminfo::default(); n];
        let mut distances = vec![0u32; n * n];
        // SAFETY: the buffers hold `count` meminfos and count² distances, as asked.
        self.call("xc_numainfo", |api, xch| unsafe {
            (api.numainfo)(xch, &mut count, memory.as_mut_ptr(), distances.as_mut_ptr())
        })?;
        let n = (count as usize).min(n);
        Ok(NumaInfo {
            nodes: memory[..n]
                .iter()
                .map(|m| {
                    (m.memsize != XEN_INVALID_MEM_SZ).then_some(NodeMemory {
                        size_bytes: m.memsize,
                        free_bytes: m.memfree,
                    })
                })
                .collect(),
            distances: (0..n)
                .map(|i| distances[i * n..i * n + n].to_vec())
                .collect(),
        })
    }

    fn cpu_topology(&self) -> Result<CpuTopology> {
        let mut count: c_uint = 0;
        // SAFETY: a null buffer asks for the CPU count only.
        self.call("xc_cputopoinfo", |api, xch| unsafe {
            (api.cputopoinfo)(xch, &mut count, std::ptr::null_mut())
        })?;
        let mut cpus = vec![abi::Cputopo::default(); count as usize];
        // SAFETY: the buffer holds `count` entries, as asked.
        self.call("xc_cputopoinfo", |api, xch| unsafe {
            (api.cputopoinfo)(xch, &mut count, cpus.as_mut_ptr())
        })?;
        cpus.truncate(count as usize);
        Ok(CpuTopology {
            cpus: cpus
                .iter()
                .map(|c| {
                    (c.node != XEN_INVALID_ID).then_some(CpuLocation {
                        core: c.core,
                        socket: c.socket,
                        node: c.node,
                    })
                })
                .collect(),
        })
    }

    fn domain_info(&self, domid: DomId) -> Result<DomainInfo> {
        let mut raw = abi::Domaininfo::default();
        // SAFETY: room for exactly the one domaininfo asked for.
        let found = self.call("xc_domain_getinfolist", |api, xch| unsafe {
            (api.domain_getinfolist)(xch, domid, 1, &mut raw)
        })?;
        // getinfolist returns the next domain at or after `domid`.
        if found != 1 || u32::from(raw.domain) != domid {
            return Err(XenError::hypercall("xc_domain_getinfolist", libc::ESRCH));
        }
        Ok(DomainInfo {
            domid,
            hvm: raw.flags & XEN_DOMINF_HVM_GUEST != 0,
            dying: raw.flags & XEN_DOMINF_DYING != 0,
            tot_pages: raw.tot_pages,
            max_pages: raw.max_pages,
            outstanding_pages: raw.outstanding_pages,
            max_vcpu_id: (raw.max_vcpu_id != XEN_INVALID_ID).then_some(raw.max_vcpu_id),
            online_vcpus: raw.nr_online_vcpus,
            cpupool: raw.cpupool,
        })
    }

    fn set_hvm_param(&self, domid: DomId, param: u32, value: u64) -> Result<()> {
        // SAFETY: plain values.
        self.call("xc_hvm_param_set", |api, xch| unsafe {
            (api.hvm_param_set)(xch, domid, param, value)
        })?;
        Ok(())
    }

    fn set_max_vcpus(&self, domid: DomId, max_vcpus: u32) -> Result<()> {
        // SAFETY: plain values.
        self.call("xc_domain_max_vcpus", |api, xch| unsafe {
            (api.domain_max_vcpus)(xch, domid, max_vcpus)
        })?;
        Ok(())
    }

    fn set_memmap_limit(&self, domid: DomId, limit_kib: u64) -> Result<()> {
        // SAFETY: plain values (c_ulong is 64 bits on the 64-bit targets we build).
        self.call("xc_domain_set_memmap_limit", |api, xch| unsafe {
            (api.domain_set_memmap_limit)(xch, domid, limit_kib as c_ulong)
        })?;
        Ok(())
    }

    fn shadow_allocation_mib(&self, domid: DomId) -> Result<u32> {
        let mut mib: c_uint = 0;
        // SAFETY: mb is an out parameter for GET_ALLOCATION; mode is unused.
        self.call("xc_shadow_control", |api, xch| unsafe {
            (api.shadow_control)(xch, domid, XEN_DOMCTL_SHADOW_OP_GET_ALLOCATION, &mut mib, 0)
        })?;
        Ok(mib)
    }

    fn set_shadow_allocation_mib(&self, domid: DomId, mib: u32) -> Result<()> {
        let mut mib: c_uint = mib;
        // SAFETY: mb is an in parameter for SET_ALLOCATION; mode is unused.
        self.call("xc_shadow_control", |api, xch| unsafe {
            (api.shadow_control)(xch, domid, XEN_DOMCTL_SHADOW_OP_SET_ALLOCATION, &mut mib, 0)
        })?;
        Ok(())
    }

    fn set_vcpu_affinity(
        &self,
        domid: DomId,
        vcpu: u32,
        hard: Option<&[u32]>,
        soft: Option<&[u32]>,
    ) -> Result<VcpuAffinity> {
        const OP: &str = "xc_vcpu_setaffinity";
        let flags =
            hard.map_or(0, |_| XEN_VCPUAFFINITY_HARD) | soft.map_or(0, |_| XEN_VCPUAFFINITY_SOFT);
        let mut hard_map = to_cpumap(hard.unwrap_or(&[]), self.cpumap_bytes, OP)?;
        let mut soft_map = to_cpumap(soft.unwrap_or(&[]), self.cpumap_bytes, OP)?;
        let vcpu = c_int::try_from(vcpu).map_err(|_| XenError::InvalidArgument {
            operation: OP,
            message: format!("vCPU {vcpu} is out of range"),
        })?;
        // SAFETY: both maps are xc_get_cpumap_size bytes; they are in/out.
        self.call(OP, |api, xch| unsafe {
            (api.vcpu_setaffinity)(
                xch,
                domid,
                vcpu,
                hard_map.as_mut_ptr(),
                soft_map.as_mut_ptr(),
                flags,
            )
        })?;
        Ok(VcpuAffinity {
            hard: if hard.is_some() {
                from_cpumap(&hard_map)
            } else {
                Vec::new()
            },
            soft: if soft.is_some() {
                from_cpumap(&soft_map)
            } else {
                Vec::new()
            },
        })
    }

    fn vcpu_affinity(&self, domid: DomId, vcpu: u32) -> Result<VcpuAffinity> {
        const OP: &str = "xc_vcpu_getaffinity";
        let mut hard = vec![0u8; self.cpumap_bytes];
        let mut soft = vec![0u8; self.cpumap_bytes];
        let vcpu = c_int::try_from(vcpu).map_err(|_| XenError::InvalidArgument {
            operation: OP,
            message: format!("vCPU {vcpu} is out of range"),
        })?;
        // SAFETY: both maps are xc_get_cpumap_size bytes, written by the call.
        self.call(OP, |api, xch| unsafe {
            (api.vcpu_getaffinity)(
                xch,
                domid,
                vcpu,
                hard.as_mut_ptr(),
                soft.as_mut_ptr(),
                XEN_VCPUAFFINITY_HARD | XEN_VCPUAFFINITY_SOFT,
            )
        })?;
        Ok(VcpuAffinity {
            hard: from_cpumap(&hard),
            soft: from_cpumap(&soft),
        })
    }

    fn claim_pages(&self, domid: DomId, pages: u64) -> Result<()> {
        // Note: libxenctrl turns ENOSYS (a Xen without claims) into success.
        // SAFETY: plain values.
        self.call("xc_domain_claim_pages", |api, xch| unsafe {
            (api.domain_claim_pages)(xch, domid, pages as c_ulong)
        })?;
        Ok(())
    }

    fn claim_pages_on_node(&self, _domid: DomId, _node: u32, _pages: u64) -> Result<()> {
        // No released libxenctrl has a node claim: XenServer's Xen patches it
        // in, and upstream's XEN_DOMCTL_claim_memory is still under review.
        Err(XenError::hypercall("claim_pages_on_node", libc::ENOSYS))
    }

    fn alloc_unbound_evtchn(&self, domid: DomId, remote: DomId) -> Result<u32> {
        // SAFETY: plain values; returns the port or -1.
        let port = self.call("xc_evtchn_alloc_unbound", |api, xch| unsafe {
            (api.evtchn_alloc_unbound)(xch, domid, remote)
        })?;
        Ok(port as u32)
    }

    fn create_domain(&self, config: &DomainConfig) -> Result<DomId> {
        let (flags, emulation_flags) = match config.kind {
            DomainKind::Pv => (0, 0),
            DomainKind::Hvm => (XEN_DOMCTL_CDF_HVM | XEN_DOMCTL_CDF_HAP, XEN_X86_EMU_HVM),
            DomainKind::Pvh => (XEN_DOMCTL_CDF_HVM | XEN_DOMCTL_CDF_HAP, XEN_X86_EMU_LAPIC),
        };
        let mut raw = abi::Createdomain {
            flags,
            max_vcpus: config.max_vcpus,
            max_evtchn_port: config.max_evtchn_port,
            // Negative: the hypervisor's default limits.
            max_grant_frames: config
                .max_grant_frames
                .map_or(-1, |f| i32::try_from(f).unwrap_or(i32::MAX)),
            max_maptrack_frames: config
                .max_maptrack_frames
                .map_or(-1, |f| i32::try_from(f).unwrap_or(i32::MAX)),
            // Grant table version 1.
            grant_opts: 1,
            arch: abi::ArchDomainConfig {
                emulation_flags,
                misc_flags: 0,
            },
            ..Default::default()
        };
        let mut domid: u32 = 0;
        // SAFETY: raw is a createdomain of this release's layout; domid 0 asks
        // Xen to choose one, written back through the pointer.
        self.call("xc_domain_create", |api, xch| unsafe {
            (api.domain_create)(xch, &mut domid, &mut raw)
        })?;
        Ok(domid)
    }

    fn destroy_domain(&self, domid: DomId) -> Result<()> {
        // SAFETY: plain values.
        self.call("xc_domain_destroy", |api, xch| unsafe {
            (api.domain_destroy)(xch, domid)
        })?;
        Ok(())
    }

    fn set_max_memory_kib(&self, domid: DomId, max_kib: u64) -> Result<()> {
        // SAFETY: plain values.
        self.call("xc_domain_setmaxmem", |api, xch| unsafe {
            (api.domain_setmaxmem)(xch, domid, max_kib)
        })?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn access_needs_privcmd_then_root() {
        let missing = Path::new("/nonexistent/privcmd");
        assert_eq!(
            check_access(missing, 0),
            Err(Unavailable::NoPrivcmd {
                path: missing.display().to_string()
            })
        );
        let present = Path::new("/");
        assert_eq!(
            check_access(present, 1000),
            Err(Unavailable::NotRoot { euid: 1000 })
        );
        assert_eq!(check_access(present, 0), Ok(()));
    }

    #[test]
    fn cpumaps_round_trip_and_refuse_cpus_beyond_them() {
        let map = to_cpumap(&[0, 3, 9], 2, "op").unwrap();
        assert_eq!(map, vec![0b0000_1001, 0b0000_0010]);
        assert_eq!(from_cpumap(&map), vec![0, 3, 9]);
        let err = to_cpumap(&[16], 2, "op").unwrap_err();
        assert_eq!(err.code(), "INVALID_ARGUMENT");
    }

    #[test]
    fn library_names_try_every_supported_release() {
        let names = library_candidates(&OpenOptions::default());
        assert!(names.contains(&"libxenctrl.so.4.17".to_string()));
        let custom = OpenOptions {
            library_path: Some("/opt/x/libxenctrl.so".into()),
            ..Default::default()
        };
        assert_eq!(
            library_candidates(&custom),
            vec!["/opt/x/libxenctrl.so".to_string()]
        );
    }
}
