//! The raw layer over libxenctrl: loading the library, its function table,
//! the `xc_interface *` handle, and one safe method per C function. Every
//! `unsafe` of the real backend is here, each justified; `super` (the safe
//! layer) turns Xen's structs into this crate's types and never touches a
//! pointer.
#![allow(unsafe_code)]

use super::layouts as abi;
use crate::error::{Result, XenError};
use crate::real::LibraryLog;
use std::ffi::{c_int, c_uint, c_ulong, c_void};
use std::sync::{Mutex, MutexGuard};
use xenlib::Loaded;

type Xch = *mut c_void;

/// libxentoollog's `XTL_NUM_LEVELS`: above every level a message can have.
const XTL_NUM_LEVELS: c_int = 11;
const XENVER_VERSION: c_int = 0;

/// This process's effective user id.
pub(super) fn euid() -> u32 {
    // SAFETY: geteuid cannot fail and has no preconditions.
    unsafe { libc::geteuid() }
}

use xenlib::errno::last as last_errno;

/// A xentoollog logger that prints nothing, and the stream it holds.
struct QuietLogger {
    logger: *mut c_void,
    stream: *mut libc::FILE,
    destroy: unsafe extern "C" fn(*mut c_void),
}

impl QuietLogger {
    /// `None` when the logger cannot be made: libxenctrl then logs as it would.
    fn new(library: &Loaded) -> Option<QuietLogger> {
        // SAFETY: the C signature of libxentoollog 1.0's constructor (a
        // dependency of libxenctrl, so found through its handle):
        // (FILE *, xentoollog_level, unsigned) -> logger.
        let create = unsafe {
            library.symbol::<unsafe extern "C" fn(*mut libc::FILE, c_int, c_uint) -> *mut c_void>(
                "xtl_createlogger_stdiostream",
            )
        }
        .ok()?;
        // SAFETY: the C signature of libxentoollog's destructor: (logger).
        let destroy =
            unsafe { library.symbol::<unsafe extern "C" fn(*mut c_void)>("xtl_logger_destroy") }
                .ok()?;
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
// `Interface::handle`'s mutex; it is created before and destroyed after them.
unsafe impl Send for QuietLogger {}
// SAFETY: as for Send: no method of QuietLogger touches it from `&self`.
unsafe impl Sync for QuietLogger {}

impl Drop for QuietLogger {
    fn drop(&mut self) {
        // SAFETY: the logger was made in `new`, and the interface that used
        // it is closed before this runs (see `Interface`'s field order).
        unsafe { (self.destroy)(self.logger) };
        // SAFETY: the stream was opened in `new` and only the logger used it.
        unsafe { libc::fclose(self.stream) };
    }
}

/// The libxenctrl functions used, by their C signatures (the same in every
/// supported release, 4.17 to 4.22; `xc_shadow_control` is the 4.16+ form).
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
    /// The struct is the running release's `xen_domctl_createdomain`.
    domain_create: unsafe extern "C" fn(Xch, *mut u32, *mut c_void) -> c_int,
    domain_destroy: unsafe extern "C" fn(Xch, u32) -> c_int,
    domain_sethandle: unsafe extern "C" fn(Xch, u32, *const u8) -> c_int,
    domain_setmaxmem: unsafe extern "C" fn(Xch, u32, u64) -> c_int,
    domain_unpause: unsafe extern "C" fn(Xch, u32) -> c_int,
}

impl Api {
    fn load(library: &Loaded) -> std::result::Result<Api, xenlib::SymbolError> {
        macro_rules! symbol {
            ($name:literal) => {
                // SAFETY: the field's type is the C signature of this libxenctrl
                // function in every supported release (checked against the headers).
                unsafe { library.symbol($name) }?
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
            domain_sethandle: symbol!("xc_domain_sethandle"),
            domain_setmaxmem: symbol!("xc_domain_setmaxmem"),
            domain_unpause: symbol!("xc_domain_unpause"),
        })
    }
}

/// An open `xc_interface *`.
struct Handle(Xch);

// SAFETY: the handle is only used under `Interface::handle`'s mutex, one call
// at a time, and libxenctrl handles are not tied to the thread that opened them.
unsafe impl Send for Handle {}

/// Why `Interface::open` failed.
pub(super) enum OpenError {
    /// A symbol is missing: not a libxenctrl this crate can use.
    Symbols(xenlib::SymbolError),
    /// `xc_interface_open` failed with this errno.
    Open(i32),
}

/// libxenctrl, loaded and opened: every call goes through one handle, one at
/// a time. Fields drop in order: the handle is closed (in `Drop`) before the
/// logger it writes to is destroyed, and both before the library is unloaded.
pub(super) struct Interface {
    api: Api,
    handle: Mutex<Handle>,
    _logger: Option<QuietLogger>,
    library: Loaded,
}

/// A checked cpumap size, in bytes.
#[derive(Clone, Copy)]
pub(super) struct CpumapBytes(usize);

impl CpumapBytes {
    pub(super) fn get(self) -> usize {
        self.0
    }
}

impl Interface {
    pub(super) fn open(library: Loaded, log: LibraryLog) -> std::result::Result<Self, OpenError> {
        let api = Api::load(&library).map_err(OpenError::Symbols)?;
        let logger = match log {
            LibraryLog::Quiet => QuietLogger::new(&library),
            LibraryLog::Stderr => None,
        };
        let log = logger.as_ref().map_or(std::ptr::null_mut(), |l| l.logger);
        // SAFETY: a logger from libxentoollog, or null for libxenctrl's
        // default (stderr); the logger outlives the interface (field order).
        let xch = unsafe { (api.interface_open)(log, log, 0) };
        if xch.is_null() {
            return Err(OpenError::Open(last_errno()));
        }
        Ok(Interface {
            api,
            handle: Mutex::new(Handle(xch)),
            _logger: logger,
            library,
        })
    }

    /// The library, and the release its name says it is.
    pub(super) fn loaded(&self) -> &Loaded {
        &self.library
    }

    fn handle(&self) -> MutexGuard<'_, Handle> {
        self.handle
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Runs one call; a negative result is a failure whose errno is read at
    /// once, before anything else can change it.
    fn call(&self, operation: &'static str, f: impl FnOnce(&Api, Xch) -> c_int) -> Result<c_int> {
        let handle = self.handle();
        let rc = f(&self.api, handle.0);
        if rc < 0 {
            return Err(XenError::hypercall(operation, last_errno()));
        }
        Ok(rc)
    }

    /// `XENVER_version`: major << 16 | minor.
    pub(super) fn version(&self) -> Result<u32> {
        // SAFETY: XENVER_version takes no argument buffer.
        let raw = self.call("xc_version", |api, xch| unsafe {
            (api.version)(xch, XENVER_VERSION, std::ptr::null_mut())
        })?;
        Ok(raw as u32)
    }

    pub(super) fn cpumap_bytes(&self) -> Result<CpumapBytes> {
        // SAFETY: a valid handle; returns the size in bytes of a cpumap, or ≤ 0.
        let bytes = self.call("xc_get_cpumap_size", |api, xch| unsafe {
            (api.get_cpumap_size)(xch)
        })?;
        if bytes == 0 {
            return Err(XenError::hypercall("xc_get_cpumap_size", libc::EINVAL));
        }
        Ok(CpumapBytes(bytes as usize))
    }

    pub(super) fn physinfo(&self) -> Result<abi::Physinfo> {
        let mut raw = abi::Physinfo::default();
        // SAFETY: raw is a physinfo of this release's layout.
        self.call("xc_physinfo", |api, xch| unsafe {
            (api.physinfo)(xch, &mut raw)
        })?;
        Ok(raw)
    }

    /// Node memory, and the distance matrix row-major with the returned
    /// stride (the node count asked for: Xen lays it out so).
    pub(super) fn numainfo(&self) -> Result<(Vec<abi::Meminfo>, Vec<u32>, usize)> {
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
        memory.truncate((count as usize).min(n));
        Ok((memory, distances, n))
    }

    pub(super) fn cputopoinfo(&self) -> Result<Vec<abi::Cputopo>> {
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
        Ok(cpus)
    }

    /// The first domain at or after `domid`, if any.
    pub(super) fn domain_getinfo(&self, domid: u32) -> Result<Option<abi::Domaininfo>> {
        let mut raw = abi::Domaininfo::default();
        // SAFETY: room for exactly the one domaininfo asked for.
        let found = self.call("xc_domain_getinfolist", |api, xch| unsafe {
            (api.domain_getinfolist)(xch, domid, 1, &mut raw)
        })?;
        Ok((found == 1).then_some(raw))
    }

    pub(super) fn hvm_param_set(&self, domid: u32, param: u32, value: u64) -> Result<()> {
        // SAFETY: plain values.
        self.call("xc_hvm_param_set", |api, xch| unsafe {
            (api.hvm_param_set)(xch, domid, param, value)
        })?;
        Ok(())
    }

    pub(super) fn domain_max_vcpus(&self, domid: u32, max_vcpus: u32) -> Result<()> {
        // SAFETY: plain values.
        self.call("xc_domain_max_vcpus", |api, xch| unsafe {
            (api.domain_max_vcpus)(xch, domid, max_vcpus)
        })?;
        Ok(())
    }

    pub(super) fn domain_set_memmap_limit(&self, domid: u32, limit_kib: u64) -> Result<()> {
        // SAFETY: plain values (c_ulong is 64 bits on the 64-bit targets we build).
        self.call("xc_domain_set_memmap_limit", |api, xch| unsafe {
            (api.domain_set_memmap_limit)(xch, domid, limit_kib as c_ulong)
        })?;
        Ok(())
    }

    /// `xc_shadow_control` with an allocation op: `mib` is in/out.
    pub(super) fn shadow_control(&self, domid: u32, op: c_uint, mib: &mut c_uint) -> Result<()> {
        // SAFETY: mb is a valid in/out pointer for the allocation ops; mode is unused.
        self.call("xc_shadow_control", |api, xch| unsafe {
            (api.shadow_control)(xch, domid, op, mib, 0)
        })?;
        Ok(())
    }

    /// Both maps are in/out and must be `cpumap` bytes long.
    pub(super) fn vcpu_setaffinity(
        &self,
        domid: u32,
        vcpu: c_int,
        hard: &mut [u8],
        soft: &mut [u8],
        flags: u32,
        cpumap: CpumapBytes,
    ) -> Result<()> {
        const OP: &str = "xc_vcpu_setaffinity";
        check_maps(OP, cpumap, hard, soft)?;
        // SAFETY: both maps are xc_get_cpumap_size bytes (checked above).
        self.call(OP, |api, xch| unsafe {
            (api.vcpu_setaffinity)(
                xch,
                domid,
                vcpu,
                hard.as_mut_ptr(),
                soft.as_mut_ptr(),
                flags,
            )
        })?;
        Ok(())
    }

    /// Both maps are written and must be `cpumap` bytes long.
    pub(super) fn vcpu_getaffinity(
        &self,
        domid: u32,
        vcpu: c_int,
        hard: &mut [u8],
        soft: &mut [u8],
        flags: u32,
        cpumap: CpumapBytes,
    ) -> Result<()> {
        const OP: &str = "xc_vcpu_getaffinity";
        check_maps(OP, cpumap, hard, soft)?;
        // SAFETY: both maps are xc_get_cpumap_size bytes (checked above).
        self.call(OP, |api, xch| unsafe {
            (api.vcpu_getaffinity)(
                xch,
                domid,
                vcpu,
                hard.as_mut_ptr(),
                soft.as_mut_ptr(),
                flags,
            )
        })?;
        Ok(())
    }

    pub(super) fn domain_claim_pages(&self, domid: u32, pages: u64) -> Result<()> {
        // SAFETY: plain values.
        self.call("xc_domain_claim_pages", |api, xch| unsafe {
            (api.domain_claim_pages)(xch, domid, pages as c_ulong)
        })?;
        Ok(())
    }

    pub(super) fn evtchn_alloc_unbound(&self, domid: u32, remote: u32) -> Result<u32> {
        // SAFETY: plain values; returns the port or -1.
        let port = self.call("xc_evtchn_alloc_unbound", |api, xch| unsafe {
            (api.evtchn_alloc_unbound)(xch, domid, remote)
        })?;
        Ok(port as u32)
    }

    /// Creates a domain; Xen chooses its id.
    pub(super) fn domain_create(&self, config: &mut abi::Createdomain) -> Result<u32> {
        let mut domid: u32 = 0;
        let raw: *mut c_void = match config {
            abi::Createdomain::Bytes64(c) => (c as *mut abi::Createdomain64).cast(),
            abi::Createdomain::Bytes68(c) => (c as *mut abi::Createdomain68).cast(),
        };
        // SAFETY: raw is a whole createdomain in the layout of the release
        // that runs (the safe layer built it from `xenlib`'s table for the
        // version the hypervisor reported), which libxenctrl copies in and
        // back out; domid 0 asks Xen to choose one, written back.
        self.call("xc_domain_create", |api, xch| unsafe {
            (api.domain_create)(xch, &mut domid, raw)
        })?;
        Ok(domid)
    }

    pub(super) fn domain_destroy(&self, domid: u32) -> Result<()> {
        // SAFETY: plain values.
        self.call("xc_domain_destroy", |api, xch| unsafe {
            (api.domain_destroy)(xch, domid)
        })?;
        Ok(())
    }

    pub(super) fn domain_sethandle(&self, domid: u32, handle: &[u8; 16]) -> Result<()> {
        // SAFETY: xen_domain_handle_t is uint8_t[16], passed as a pointer to
        // its first byte; libxenctrl copies the 16 bytes and keeps nothing.
        self.call("xc_domain_sethandle", |api, xch| unsafe {
            (api.domain_sethandle)(xch, domid, handle.as_ptr())
        })?;
        Ok(())
    }

    pub(super) fn domain_setmaxmem(&self, domid: u32, max_kib: u64) -> Result<()> {
        // SAFETY: plain values.
        self.call("xc_domain_setmaxmem", |api, xch| unsafe {
            (api.domain_setmaxmem)(xch, domid, max_kib)
        })?;
        Ok(())
    }

    pub(super) fn domain_unpause(&self, domid: u32) -> Result<()> {
        // SAFETY: plain values.
        self.call("xc_domain_unpause", |api, xch| unsafe {
            (api.domain_unpause)(xch, domid)
        })?;
        Ok(())
    }
}

fn check_maps(
    operation: &'static str,
    cpumap: CpumapBytes,
    hard: &[u8],
    soft: &[u8],
) -> Result<()> {
    if hard.len() != cpumap.0 || soft.len() != cpumap.0 {
        return Err(XenError::InvalidArgument {
            operation,
            message: format!("cpumaps must be {} bytes", cpumap.0),
        });
    }
    Ok(())
}

impl Drop for Interface {
    fn drop(&mut self) {
        let handle = self
            .handle
            .get_mut()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        // SAFETY: the handle came from xc_interface_open and is closed once, here.
        unsafe { (self.api.interface_close)(handle.0) };
    }
}
