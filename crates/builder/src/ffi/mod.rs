//! The host's libxenguest and libxenctrl, loaded at run time (as libxl links
//! them), and `struct xc_dom_image` reached through the offsets in [`layout`].
//! The hypervisor is opened through the `xenctrl` crate (which checks the
//! release and the library's match); libxenguest and the libxenctrl handle
//! it builds through are then loaded for exactly that release by `xenlib`.
//! Everything `unsafe` in the builder is in this module: the calls, and the
//! `extern "C"` callbacks libxenguest calls during a save or a restore,
//! which hand each call to the safe side (`save_restore`) and catch any
//! panic there before it could unwind into C.
#![allow(unsafe_code)]

pub mod layout;

use crate::build::{
    Container, DomImage, E820Entry, HvmMemory, ImageSettings, Libxenguest, Vmemrange,
};
use crate::protocol::{Built, Failure};
use crate::save_restore::{
    Decision, PrecopyStats, RestoreCallbacks, RestoreRequest, SaveCallbacks, SaveFlags,
    StaticDataMissing, Streams,
};
use layout::{
    DomImageLayout, Field, RawE820Entry, RawFirmwareModule, RawPrecopyStats, RawRestoreCallbacks,
    RawSaveCallbacks, RawVmemrange, RawXcError,
};
use std::ffi::{c_char, c_int, c_uint, c_ulong, c_void, CStr, CString};
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::ptr::NonNull;
use xenctrl::{DomainInfo, Hypervisor, Unavailable, XenCtrl, XenError, XenVersion};
use xenlib::errno::{clear as clear_errno, last_or_zero as errno, message as strerror};
use xenlib::{Loaded, SymbolError};

type Xch = *mut c_void;
type Dom = *mut c_void;

const XC_OUT_OF_MEMORY: c_int = 4;
const XC_INVALID_KERNEL: c_int = 2;
const XC_INVALID_PARAM: c_int = 3;

/// `xc_domain_save`.
type SaveFn =
    unsafe extern "C" fn(Xch, c_int, u32, u32, *mut RawSaveCallbacks, c_int, c_int) -> c_int;

/// `xc_domain_restore` up to 4.21: (xch, io_fd, dom, store_evtchn,
/// &store_mfn, store_domid, console_evtchn, &console_mfn, console_domid,
/// stream_type, callbacks, send_back_fd).
type RestoreFn = unsafe extern "C" fn(
    Xch,
    c_int,
    u32,
    c_uint,
    *mut c_ulong,
    u32,
    c_uint,
    *mut c_ulong,
    u32,
    c_int,
    *mut RawRestoreCallbacks,
    c_int,
) -> c_int;

/// `xc_domain_restore` from 4.22: the same, then `unsigned int memflags`.
type RestoreMemflagsFn = unsafe extern "C" fn(
    Xch,
    c_int,
    u32,
    c_uint,
    *mut c_ulong,
    u32,
    c_uint,
    *mut c_ulong,
    u32,
    c_int,
    *mut RawRestoreCallbacks,
    c_int,
    c_uint,
) -> c_int;

/// The running release's `xc_domain_restore`.
#[derive(Clone, Copy)]
enum Restore {
    Plain(RestoreFn),
    WithMemflags(RestoreMemflagsFn),
}

/// The functions used, by their C signatures in `xenctrl.h` and `xenguest.h`
/// (the same in every supported release, 4.17 to 4.22, but for
/// `xc_domain_restore`, whose release's own is loaded). Save, restore and
/// resume are looked up but not required: a library without them still
/// builds.
struct Api {
    interface_open: unsafe extern "C" fn(*mut c_void, *mut c_void, c_uint) -> Xch,
    interface_close: unsafe extern "C" fn(Xch) -> c_int,
    get_last_error: unsafe extern "C" fn(Xch) -> *const RawXcError,
    clear_last_error: unsafe extern "C" fn(Xch),
    domain_set_memory_map: unsafe extern "C" fn(Xch, u32, *mut RawE820Entry, u32) -> c_int,
    map_foreign_range: unsafe extern "C" fn(Xch, u32, c_int, c_int, c_ulong) -> *mut c_void,
    dom_allocate: unsafe extern "C" fn(Xch, *const c_char, *const c_char) -> Dom,
    dom_release: unsafe extern "C" fn(Dom),
    dom_malloc: unsafe extern "C" fn(Dom, usize) -> *mut c_void,
    dom_kernel_file: unsafe extern "C" fn(Dom, *const c_char) -> c_int,
    dom_module_file: unsafe extern "C" fn(Dom, *const c_char, *const c_char) -> c_int,
    dom_boot_xen_init: unsafe extern "C" fn(Dom, Xch, u32) -> c_int,
    dom_parse_image: unsafe extern "C" fn(Dom) -> c_int,
    dom_mem_init: unsafe extern "C" fn(Dom, c_uint) -> c_int,
    dom_boot_mem_init: unsafe extern "C" fn(Dom) -> c_int,
    dom_build_image: unsafe extern "C" fn(Dom) -> c_int,
    dom_boot_image: unsafe extern "C" fn(Dom) -> c_int,
    dom_gnttab_init: unsafe extern "C" fn(Dom) -> c_int,
    dom_translated: unsafe extern "C" fn(Dom) -> bool,
    domain_save: Option<SaveFn>,
    domain_restore: Option<Restore>,
    domain_resume: Option<unsafe extern "C" fn(Xch, u32, c_int) -> c_int>,
}

impl Api {
    /// `restore_takes_memflags`: the release table's word for the running
    /// release.
    fn load(
        ctrl: &Loaded,
        guest: &Loaded,
        restore_takes_memflags: bool,
    ) -> Result<Api, SymbolError> {
        macro_rules! symbol {
            ($lib:ident, $name:literal) => {
                // SAFETY: the field's type is this function's C signature in
                // every release in xenlib's table.
                unsafe { $lib.symbol($name) }?
            };
        }
        let domain_restore = if restore_takes_memflags {
            // SAFETY: 4.22's prototype, for a release whose table entry says
            // its xc_domain_restore takes memflags.
            unsafe { guest.symbol::<RestoreMemflagsFn>("xc_domain_restore") }
                .ok()
                .map(Restore::WithMemflags)
        } else {
            // SAFETY: the prototype of 4.17 to 4.21, for a release whose
            // table entry says its xc_domain_restore takes no memflags.
            unsafe { guest.symbol::<RestoreFn>("xc_domain_restore") }
                .ok()
                .map(Restore::Plain)
        };
        Ok(Api {
            interface_open: symbol!(ctrl, "xc_interface_open"),
            interface_close: symbol!(ctrl, "xc_interface_close"),
            get_last_error: symbol!(ctrl, "xc_get_last_error"),
            clear_last_error: symbol!(ctrl, "xc_clear_last_error"),
            domain_set_memory_map: symbol!(ctrl, "xc_domain_set_memory_map"),
            map_foreign_range: symbol!(ctrl, "xc_map_foreign_range"),
            dom_allocate: symbol!(guest, "xc_dom_allocate"),
            dom_release: symbol!(guest, "xc_dom_release"),
            dom_malloc: symbol!(guest, "xc_dom_malloc"),
            dom_kernel_file: symbol!(guest, "xc_dom_kernel_file"),
            dom_module_file: symbol!(guest, "xc_dom_module_file"),
            dom_boot_xen_init: symbol!(guest, "xc_dom_boot_xen_init"),
            dom_parse_image: symbol!(guest, "xc_dom_parse_image"),
            dom_mem_init: symbol!(guest, "xc_dom_mem_init"),
            dom_boot_mem_init: symbol!(guest, "xc_dom_boot_mem_init"),
            dom_build_image: symbol!(guest, "xc_dom_build_image"),
            dom_boot_image: symbol!(guest, "xc_dom_boot_image"),
            dom_gnttab_init: symbol!(guest, "xc_dom_gnttab_init"),
            dom_translated: symbol!(guest, "xc_dom_translated"),
            // SAFETY: xc_domain_save's C signature in every release in the table.
            domain_save: unsafe { guest.symbol::<SaveFn>("xc_domain_save") }.ok(),
            domain_restore,
            // SAFETY: xc_domain_resume's C signature in every release in the table.
            domain_resume: unsafe { guest.symbol("xc_domain_resume") }.ok(),
        })
    }
}

fn c_string(function: &'static str, text: &str) -> Result<CString, Failure> {
    CString::new(text).map_err(|_| {
        Failure::new(
            function,
            libc::EINVAL,
            format!("{text:?} contains a NUL byte"),
        )
    })
}

/// The hypervisor interface's failure as the builder reports it: the
/// function, an errno and a message (xenguest's error line).
fn failure_of(e: XenError) -> Failure {
    let message = e.to_string();
    match e {
        XenError::Unavailable(Unavailable::NoLibrary { .. }) => {
            Failure::new("dlopen", libc::ENOENT, message)
        }
        XenError::Unavailable(Unavailable::OpenFailed { errno }) => Failure::new(
            "xc_interface_open",
            errno,
            format!("{message} (is this a Xen dom0, run as root?)"),
        ),
        XenError::Unavailable(Unavailable::NotRoot { .. }) => {
            Failure::new("xc_interface_open", libc::EPERM, message)
        }
        XenError::Unavailable(Unavailable::LibraryMismatch(_)) => {
            Failure::new("xc_interface_open", libc::EACCES, message)
        }
        XenError::Unavailable(_) => Failure::new("xc_interface_open", libc::ENODEV, message),
        XenError::VersionUnsupported { .. } => {
            Failure::new("xc_version", libc::EOPNOTSUPP, message)
        }
        XenError::Hypercall { operation, errno } => Failure::new(operation, errno, message),
        XenError::InvalidArgument { operation, .. } => {
            Failure::new(operation, libc::EINVAL, message)
        }
    }
}

fn load(base: &str, version: xenlib::XenVersion) -> Result<Loaded, Failure> {
    xenlib::load::load_release(base, version).map_err(|e| {
        Failure::new(
            "dlopen",
            libc::ENOENT,
            format!("no {base} could be loaded ({e})"),
        )
    })
}

/// An open `xc_interface *` with libxenguest beside it, and the hypervisor
/// interface (for what it answers: the release, domain info).
pub struct Xenguest {
    api: Api,
    xch: Xch,
    layout: &'static DomImageLayout,
    hypervisor: XenCtrl,
    // Dropped after `xch` is closed (in Drop); the function pointers in `api`
    // point into them.
    _guest: Loaded,
    _ctrl: Loaded,
}

impl Xenguest {
    /// Opens the hypervisor (refusing a release not in xenlib's table, or a
    /// library of another release), then loads that release's libxenguest
    /// and opens the interface it builds through.
    pub fn open() -> Result<Xenguest, Failure> {
        let hypervisor = XenCtrl::open(&xenctrl::OpenOptions {
            library_log: xenctrl::LibraryLog::Stderr,
            ..Default::default()
        })
        .map_err(failure_of)?;
        let version = hypervisor.version();
        let ctrl = load("libxenctrl", version)?;
        let guest = load("libxenguest", version)?;
        let restore_takes_memflags =
            xenlib::release(version).is_some_and(|r| r.restore_takes_memflags);
        let api = Api::load(&ctrl, &guest, restore_takes_memflags)
            .map_err(|e| Failure::new("dlsym", libc::ENOSYS, e.to_string()))?;
        clear_errno();
        // SAFETY: null loggers: libxenctrl logs errors to stderr itself.
        let xch = unsafe { (api.interface_open)(std::ptr::null_mut(), std::ptr::null_mut(), 0) };
        if xch.is_null() {
            let errno = match errno() {
                0 => libc::EIO,
                e => e,
            };
            return Err(Failure::new(
                "xc_interface_open",
                errno,
                format!("{} (is this a Xen dom0, run as root?)", strerror(errno)),
            ));
        }
        Ok(Xenguest {
            api,
            xch,
            layout: &layout::DOM_IMAGE,
            hypervisor,
            _guest: guest,
            _ctrl: ctrl,
        })
    }

    pub fn version(&self) -> (u32, u32) {
        let v = self.hypervisor.version();
        (v.major, v.minor)
    }

    /// The domain's info; ESRCH says which domain does not exist.
    fn domain_info(&self, domid: u32) -> Result<DomainInfo, Failure> {
        self.hypervisor.domain_info(domid).map_err(|e| match e {
            XenError::Hypercall {
                errno: libc::ESRCH,
                operation,
            } => Failure::new(
                operation,
                libc::ESRCH,
                format!("domain {domid} does not exist"),
            ),
            other => failure_of(other),
        })
    }

    /// Runs one libxenctrl/libxenguest call returning 0 on success, and turns
    /// a failure into the function, an errno and libxenctrl's own message.
    fn checked(&self, function: &'static str, call: impl FnOnce() -> c_int) -> Result<(), Failure> {
        clear_errno();
        // SAFETY: a valid interface handle.
        unsafe { (self.api.clear_last_error)(self.xch) };
        let rc = call();
        if rc == 0 {
            return Ok(());
        }
        let saved_errno = errno();
        // SAFETY: a valid interface handle; returns the error kept in it.
        let last = unsafe { (self.api.get_last_error)(self.xch) };
        // SAFETY: never null (it points into the handle), and read before
        // the next call on the handle can change it.
        let last = unsafe { &*last };
        // SAFETY: libxenctrl keeps `message` NUL-terminated (vsnprintf).
        let message = unsafe { CStr::from_ptr(last.message.as_ptr()) }
            .to_string_lossy()
            .into_owned();
        // Some calls return -errno, most -1 with errno set; xc_dom_* checks
        // that fail on their own (no loader, segment too large) set neither.
        let errno = match (rc, saved_errno, last.code) {
            (rc, _, _) if rc < -1 => -rc,
            (_, e, _) if e != 0 => e,
            (_, _, XC_OUT_OF_MEMORY) => libc::ENOMEM,
            (_, _, XC_INVALID_KERNEL | XC_INVALID_PARAM) => libc::EINVAL,
            _ => libc::EIO,
        };
        let message = if message.is_empty() {
            strerror(errno)
        } else {
            message
        };
        Err(Failure::new(function, errno, message))
    }
}

impl Drop for Xenguest {
    fn drop(&mut self) {
        // SAFETY: xch came from xc_interface_open and is closed once, here,
        // after every image (which borrows self) is released.
        unsafe { (self.api.interface_close)(self.xch) };
    }
}

/// One `struct xc_dom_image`; `xc_dom_release` on drop.
pub struct Image<'a> {
    xg: &'a Xenguest,
    dom: NonNull<c_void>,
}

impl Image<'_> {
    fn ptr<T>(&self, field: Field<T>) -> *mut T {
        // SAFETY: every offset in a layout is inside struct xc_dom_image
        // (tests/layout.rs checks them against the C header), and the struct
        // is allocated while self lives.
        unsafe { self.dom.as_ptr().cast::<u8>().add(field.offset).cast::<T>() }
    }

    fn write<T>(&mut self, field: Field<T>, value: T) {
        // SAFETY: a field of type T, aligned as C aligns it, in the live struct.
        unsafe { self.ptr(field).write(value) }
    }

    fn read<T: Copy>(&self, field: Field<T>) -> T {
        // SAFETY: a field of type T, aligned as C aligns it, in the live struct.
        unsafe { self.ptr(field).read() }
    }

    fn dom(&self) -> Dom {
        self.dom.as_ptr()
    }

    /// A copy of `values` in xc_dom's pool: freed by xc_dom_release.
    fn pool_alloc<T: Copy + Default>(&mut self, values: &[T]) -> Result<*mut T, Failure> {
        let bytes = std::mem::size_of_val(values);
        // SAFETY: a live image; returns memory owned by it, or null.
        let raw = unsafe { (self.xg.api.dom_malloc)(self.dom(), bytes) }.cast::<T>();
        if raw.is_null() {
            return Err(Failure::new("xc_dom_malloc", libc::ENOMEM, "out of memory"));
        }
        // SAFETY: malloc's memory is aligned for any C type and holds `bytes`.
        unsafe { std::ptr::copy_nonoverlapping(values.as_ptr(), raw, values.len()) };
        Ok(raw)
    }
}

impl Drop for Image<'_> {
    fn drop(&mut self) {
        // SAFETY: the image came from xc_dom_allocate and is released once.
        unsafe { (self.xg.api.dom_release)(self.dom()) };
    }
}

impl<'a> Libxenguest for &'a Xenguest {
    type Image = Image<'a>;

    fn allocate(&self, cmdline: &str, features: &str) -> Result<Image<'a>, Failure> {
        let cmdline = c_string("xc_dom_allocate", cmdline)?;
        let features = c_string("xc_dom_allocate", features)?;
        clear_errno();
        // SAFETY: a valid handle and NUL-terminated strings, copied by the call.
        let dom = unsafe { (self.api.dom_allocate)(self.xch, cmdline.as_ptr(), features.as_ptr()) };
        let dom = NonNull::new(dom).ok_or_else(|| {
            let errno = match errno() {
                0 => libc::ENOMEM,
                e => e,
            };
            Failure::new("xc_dom_allocate", errno, strerror(errno))
        })?;
        Ok(Image { xg: self, dom })
    }

    fn domain_max_vcpus(&self, domid: u32) -> Result<u32, Failure> {
        let info = Xenguest::domain_info(self, domid)?;
        Ok(info.max_vcpu_id.map_or(0, |id| id + 1))
    }

    fn update_hvm_info(
        &self,
        domid: u32,
        update: &mut dyn FnMut(&mut [u8]),
    ) -> Result<(), Failure> {
        const PAGE_BYTES: usize = 4096;
        clear_errno();
        // SAFETY: a valid handle; maps one page of the guest read-write, or
        // returns null.
        let page = unsafe {
            (self.api.map_foreign_range)(
                self.xch,
                domid,
                PAGE_BYTES as c_int,
                libc::PROT_READ | libc::PROT_WRITE,
                layout::HVM_INFO_PFN as c_ulong,
            )
        };
        if page.is_null() {
            let errno = match errno() {
                0 => libc::EIO,
                e => e,
            };
            return Err(Failure::new("xc_map_foreign_range", errno, strerror(errno)));
        }
        // SAFETY: HVM_INFO_OFFSET is inside the PAGE_BYTES-long mapping.
        let start = unsafe { page.cast::<u8>().add(layout::HVM_INFO_OFFSET) };
        // SAFETY: the rest of the mapping from `start`, writable, and only
        // this slice refers to it until it is unmapped below.
        let table =
            unsafe { std::slice::from_raw_parts_mut(start, PAGE_BYTES - layout::HVM_INFO_OFFSET) };
        update(table);
        // SAFETY: the mapping made above, no longer referred to.
        unsafe { libc::munmap(page, PAGE_BYTES) };
        Ok(())
    }
}

impl DomImage for Image<'_> {
    fn configure(&mut self, s: &ImageSettings) {
        let l = self.xg.layout;
        let container = match s.container {
            Container::Pv => layout::XC_DOM_PV_CONTAINER,
            Container::Hvm => layout::XC_DOM_HVM_CONTAINER,
        };
        self.write(l.container_type, container);
        self.write(l.flags, s.flags as c_ulong);
        self.write(l.console_evtchn, s.console_evtchn);
        self.write(l.console_domid, s.console_domid);
        self.write(l.xenstore_evtchn, s.xenstore_evtchn);
        self.write(l.xenstore_domid, s.xenstore_domid);
        self.write(l.max_vcpus, s.max_vcpus);
        self.write(l.claim_enabled, c_int::from(s.claim_enabled));
    }

    fn configure_hvm(&mut self, m: &HvmMemory) {
        let l = self.xg.layout;
        self.write(l.target_pages, m.target_pages);
        self.write(l.mmio_start, m.mmio_start_bytes);
        self.write(l.mmio_size, m.mmio_size_bytes);
        self.write(l.lowmem_end, m.lowmem_end_bytes);
        self.write(l.highmem_end, m.highmem_end_bytes);
        self.write(l.vga_hole_size, m.vga_hole_pages);
        self.write(l.device_model, m.device_model);
    }

    fn set_acpi_tables(&mut self, tables: &[u8], guest_address: u64) -> Result<(), Failure> {
        let length = u32::try_from(tables.len())
            .map_err(|_| Failure::new("acpi_build_tables", libc::EINVAL, "tables too large"))?;
        // In xc_dom's pool: libxenguest copies them in xc_dom_build_image.
        let data = self.pool_alloc(tables)?;
        let mut modules = [RawFirmwareModule::default(); layout::MAX_ACPI_MODULES];
        modules[0] = RawFirmwareModule {
            data,
            length,
            guest_addr_out: guest_address,
        };
        self.write(self.xg.layout.acpi_modules, modules);
        Ok(())
    }

    fn set_memory_map(&mut self, domid: u32, map: &[E820Entry]) -> Result<(), Failure> {
        let raw: Vec<RawE820Entry> = map
            .iter()
            .map(|e| RawE820Entry {
                addr: e.addr_bytes,
                size: e.size_bytes,
                kind: e.kind,
            })
            .collect();
        let entries = u32::try_from(raw.len()).map_err(|_| {
            Failure::new("xc_domain_set_memory_map", libc::EINVAL, "too many entries")
        })?;
        // In xc_dom's pool: dom->e820 must live as long as the image.
        let pooled = self.pool_alloc(&raw)?;
        self.xg.checked("xc_domain_set_memory_map", || {
            // SAFETY: `entries` e820 entries at `pooled`, read by the call.
            unsafe { (self.xg.api.domain_set_memory_map)(self.xg.xch, domid, pooled, entries) }
        })?;
        let l = self.xg.layout;
        self.write(l.e820, pooled);
        self.write(l.e820_entries, entries);
        Ok(())
    }

    fn kernel_file(&mut self, path: &str) -> Result<(), Failure> {
        let path = c_string("xc_dom_kernel_file", path)?;
        let dom = self.dom();
        self.xg.checked("xc_dom_kernel_file", || {
            // SAFETY: a live image and a NUL-terminated path (mapped, not kept).
            unsafe { (self.xg.api.dom_kernel_file)(dom, path.as_ptr()) }
        })
    }

    fn module_file(&mut self, path: &str, cmdline: Option<&str>) -> Result<(), Failure> {
        let path = c_string("xc_dom_module_file", path)?;
        let cmdline = cmdline
            .map(|c| c_string("xc_dom_module_file", c))
            .transpose()?;
        let dom = self.dom();
        self.xg.checked("xc_dom_module_file", || {
            let cmdline = cmdline.as_ref().map_or(std::ptr::null(), |c| c.as_ptr());
            // SAFETY: a live image, a NUL-terminated path and a command line
            // or null (libxenguest copies it).
            unsafe { (self.xg.api.dom_module_file)(dom, path.as_ptr(), cmdline) }
        })
    }

    fn set_vnuma(&mut self, ranges: &[Vmemrange], vnode_to_pnode: &[u32]) -> Result<(), Failure> {
        let raw: Vec<RawVmemrange> = ranges
            .iter()
            .map(|r| RawVmemrange {
                start: r.start_bytes,
                end: r.end_bytes,
                flags: r.flags,
                nid: r.vnode,
            })
            .collect();
        let too_many = |_| Failure::new("set_vnuma", libc::EINVAL, "too many vNUMA entries");
        let nr_ranges = c_uint::try_from(raw.len()).map_err(too_many)?;
        let nr_vnodes = c_uint::try_from(vnode_to_pnode.len()).map_err(too_many)?;
        // In xc_dom's pool, as libxl does for PV: xc_dom_release frees them.
        let ranges_ptr = self.pool_alloc(&raw)?;
        let pnodes_ptr = self.pool_alloc(vnode_to_pnode)?;
        let l = self.xg.layout;
        self.write(l.vmemranges, ranges_ptr);
        self.write(l.nr_vmemranges, nr_ranges);
        self.write(l.vnode_to_pnode, pnodes_ptr);
        self.write(l.nr_vnodes, nr_vnodes);
        Ok(())
    }

    fn boot_xen_init(&mut self, domid: u32) -> Result<(), Failure> {
        let dom = self.dom();
        self.xg.checked("xc_dom_boot_xen_init", || {
            // SAFETY: a live image and the open interface it will use.
            unsafe { (self.xg.api.dom_boot_xen_init)(dom, self.xg.xch, domid) }
        })
    }

    fn parse_image(&mut self) -> Result<(), Failure> {
        let dom = self.dom();
        // SAFETY: a live image with a kernel loaded.
        self.xg.checked("xc_dom_parse_image", || unsafe {
            (self.xg.api.dom_parse_image)(dom)
        })
    }

    fn mem_init(&mut self, mem_mib: u32) -> Result<(), Failure> {
        let dom = self.dom();
        // SAFETY: a live, parsed image.
        self.xg.checked("xc_dom_mem_init", || unsafe {
            (self.xg.api.dom_mem_init)(dom, mem_mib)
        })
    }

    fn boot_mem_init(&mut self) -> Result<(), Failure> {
        let dom = self.dom();
        // SAFETY: a live image after xc_dom_mem_init.
        self.xg.checked("xc_dom_boot_mem_init", || unsafe {
            (self.xg.api.dom_boot_mem_init)(dom)
        })
    }

    fn build_image(&mut self) -> Result<(), Failure> {
        let dom = self.dom();
        // SAFETY: a live image with its memory populated.
        self.xg.checked("xc_dom_build_image", || unsafe {
            (self.xg.api.dom_build_image)(dom)
        })
    }

    fn boot_image(&mut self) -> Result<(), Failure> {
        let dom = self.dom();
        // SAFETY: a live, built image.
        self.xg.checked("xc_dom_boot_image", || unsafe {
            (self.xg.api.dom_boot_image)(dom)
        })
    }

    fn gnttab_init(&mut self) -> Result<(), Failure> {
        let dom = self.dom();
        // SAFETY: a live, booted image.
        self.xg.checked("xc_dom_gnttab_init", || unsafe {
            (self.xg.api.dom_gnttab_init)(dom)
        })
    }

    fn magic_pfns(&self) -> (u64, u64) {
        let l = self.xg.layout;
        (self.read(l.console_pfn), self.read(l.xenstore_pfn))
    }

    fn p2m(&self, pfn: u64) -> Option<u64> {
        // xc_dom_p2m, an inline function in xenguest.h.
        // SAFETY: a live image whose arch hooks are set (after xc_dom_mem_init).
        if unsafe { (self.xg.api.dom_translated)(self.dom()) } {
            return Some(pfn);
        }
        let l = self.xg.layout;
        let p2m = self.read(l.pv_p2m);
        if p2m.is_null() || pfn >= self.read(l.total_pages) {
            return None;
        }
        // SAFETY: pv_p2m holds p2m_size ≥ total_pages entries (meminit_pv),
        // and pfn < total_pages.
        let entry = unsafe { p2m.add(pfn as usize) };
        // SAFETY: an initialised entry of that array, in the live image.
        Some(unsafe { entry.read() })
    }

    fn total_pages(&self) -> u64 {
        self.read(self.xg.layout.total_pages)
    }
}

/// Whether `fd` is an open file descriptor of this process.
pub fn is_open(fd: i32) -> bool {
    // SAFETY: F_GETFD only reads the descriptor's flags.
    fd >= 0 && unsafe { libc::fcntl(fd, libc::F_GETFD) } != -1
}

/// A control pipe the toolstack gave (`-controloutfd`, `-controlinfd`), if
/// it is open.
pub fn control_file(fd: i32) -> Option<File> {
    if !is_open(fd) {
        return None;
    }
    // SAFETY: an open descriptor given to this process for exactly this use;
    // nothing else in the process owns it.
    Some(unsafe { File::from_raw_fd(fd) })
}

/// Whether a read of `fd` would not wait: data, its end, or an error.
pub fn readable(fd: BorrowedFd<'_>) -> io::Result<bool> {
    let mut poll = libc::pollfd {
        fd: fd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    loop {
        // SAFETY: one pollfd, valid for the call; a timeout of 0 never waits.
        let ready = unsafe { libc::poll(&mut poll, 1, 0) };
        if ready >= 0 {
            let wakes = libc::POLLIN | libc::POLLHUP | libc::POLLERR | libc::POLLNVAL;
            return Ok(ready > 0 && poll.revents & wakes != 0);
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

fn not_loaded(function: &'static str) -> Failure {
    Failure::new(
        function,
        libc::ENOSYS,
        format!("this libxenguest has no {function}"),
    )
}

/// The `data` of libxenguest's callbacks during one `xc_domain_save`.
struct SaveData<'a> {
    callbacks: &'a mut dyn SaveCallbacks,
}

/// The `data` of libxenguest's callbacks during one `xc_domain_restore`.
struct RestoreData<'a> {
    callbacks: &'a mut dyn RestoreCallbacks,
}

/// What a callback answers when the Rust side panicked: the panic is
/// caught (it must not unwind into C) and recorded as the failure.
fn panicked(function: &'static str) -> Failure {
    Failure::new(
        function,
        libc::EIO,
        "the builder panicked in this callback (see stderr)",
    )
}

/// # Safety
/// `data` must be the pointer [`Xenguest::domain_save`] gave libxenguest,
/// during that call: libxenguest calls back on the calling thread, one
/// callback at a time, so nothing else refers to the `SaveData` meanwhile.
unsafe fn save_data<'a>(data: *mut c_void) -> &'a mut SaveData<'a> {
    // SAFETY: as the caller promises, a live, unaliased SaveData.
    unsafe { &mut *data.cast::<SaveData<'a>>() }
}

/// # Safety
/// As [`save_data`], for [`Xenguest::domain_restore`]'s `RestoreData`.
unsafe fn restore_data<'a>(data: *mut c_void) -> &'a mut RestoreData<'a> {
    // SAFETY: as the caller promises, a live, unaliased RestoreData.
    unsafe { &mut *data.cast::<RestoreData<'a>>() }
}

/// `save_callbacks.suspend`: 1 once the guest is suspended, 0 to fail.
///
/// # Safety
/// Called by libxenguest with the `data` of [`Xenguest::domain_save`].
unsafe extern "C" fn save_suspend(data: *mut c_void) -> c_int {
    // SAFETY: libxenguest passes back the data domain_save gave it.
    let data = unsafe { save_data(data) };
    match catch_unwind(AssertUnwindSafe(|| data.callbacks.suspend())) {
        Ok(suspended) => c_int::from(suspended),
        Err(_) => {
            let _ = catch_unwind(AssertUnwindSafe(|| {
                data.callbacks.failed(panicked("suspend"))
            }));
            0
        }
    }
}

/// `save_callbacks.precopy_policy`: an `XGS_POLICY_*`.
///
/// # Safety
/// Called by libxenguest with the `data` of [`Xenguest::domain_save`].
unsafe extern "C" fn save_precopy_policy(stats: RawPrecopyStats, data: *mut c_void) -> c_int {
    // SAFETY: libxenguest passes back the data domain_save gave it.
    let data = unsafe { save_data(data) };
    let stats = PrecopyStats {
        iteration: stats.iteration,
        sent_pages: stats.total_written,
        dirty_pages: u64::try_from(stats.dirty_count).ok(),
    };
    match catch_unwind(AssertUnwindSafe(|| data.callbacks.precopy_policy(stats))) {
        Ok(Decision::Continue) => layout::XGS_POLICY_CONTINUE_PRECOPY,
        Ok(Decision::StopAndCopy) => layout::XGS_POLICY_STOP_AND_COPY,
        Ok(Decision::Abort) => layout::XGS_POLICY_ABORT,
        Err(_) => {
            let _ = catch_unwind(AssertUnwindSafe(|| {
                data.callbacks.failed(panicked("precopy_policy"))
            }));
            layout::XGS_POLICY_ABORT
        }
    }
}

/// `save_callbacks.switch_qemu_logdirty`: 0 on success.
///
/// # Safety
/// Called by libxenguest with the `data` of [`Xenguest::domain_save`].
unsafe extern "C" fn save_switch_qemu_logdirty(
    domid: u32,
    enable: c_uint,
    data: *mut c_void,
) -> c_int {
    // SAFETY: libxenguest passes back the data domain_save gave it.
    let data = unsafe { save_data(data) };
    let switch = || data.callbacks.switch_qemu_logdirty(domid, enable != 0);
    match catch_unwind(AssertUnwindSafe(switch)) {
        Ok(true) => 0,
        Ok(false) => -1,
        Err(_) => {
            let _ = catch_unwind(AssertUnwindSafe(|| {
                data.callbacks.failed(panicked("switch_qemu_logdirty"))
            }));
            -1
        }
    }
}

/// `restore_callbacks.static_data_done`: 0 to go on.
///
/// # Safety
/// Called by libxenguest with the `data` of [`Xenguest::domain_restore`].
unsafe extern "C" fn restore_static_data_done(missing: c_uint, data: *mut c_void) -> c_int {
    // SAFETY: libxenguest passes back the data domain_restore gave it.
    let data = unsafe { restore_data(data) };
    let missing = StaticDataMissing {
        cpuid: missing & layout::XGR_SDD_MISSING_CPUID != 0,
        msr: missing & layout::XGR_SDD_MISSING_MSR != 0,
    };
    match catch_unwind(AssertUnwindSafe(|| {
        data.callbacks.static_data_done(missing)
    })) {
        Ok(true) => 0,
        Ok(false) => -1,
        Err(_) => {
            let _ = catch_unwind(AssertUnwindSafe(|| {
                data.callbacks.failed(panicked("static_data_done"))
            }));
            -1
        }
    }
}

impl Streams for Xenguest {
    fn xen_version(&self) -> XenVersion {
        self.hypervisor.version()
    }

    fn domain_is_hvm(&self, domid: u32) -> Result<bool, Failure> {
        Ok(self.domain_info(domid)?.hvm)
    }

    fn domain_save(
        &self,
        domid: u32,
        fd: i32,
        flags: SaveFlags,
        callbacks: &mut dyn SaveCallbacks,
    ) -> Result<(), Failure> {
        let save = self
            .api
            .domain_save
            .ok_or_else(|| not_loaded("xc_domain_save"))?;
        let mut data = SaveData { callbacks };
        // HVM containers need switch_qemu_logdirty (libxenguest asserts it);
        // a plain stream uses no postcopy or checkpoint callbacks.
        let mut raw = RawSaveCallbacks {
            suspend: Some(save_suspend),
            precopy_policy: Some(save_precopy_policy),
            postcopy: None,
            checkpoint: None,
            wait_checkpoint: None,
            switch_qemu_logdirty: Some(save_switch_qemu_logdirty),
            data: (&raw mut data).cast(),
        };
        let mut bits = 0;
        if flags.live {
            bits |= layout::XCFLAGS_LIVE;
        }
        if flags.debug {
            bits |= layout::XCFLAGS_DEBUG;
        }
        self.checked("xc_domain_save", || {
            // SAFETY: a valid handle; `raw`'s callbacks are the functions
            // above and its data is `data`, which outlives the call and is
            // used only through that pointer meanwhile; -1: no recv_fd (a
            // plain stream has none).
            unsafe {
                save(
                    self.xch,
                    fd,
                    domid,
                    bits,
                    &mut raw,
                    layout::XC_STREAM_PLAIN,
                    -1,
                )
            }
        })
    }

    fn domain_restore(
        &self,
        request: &RestoreRequest,
        callbacks: &mut dyn RestoreCallbacks,
    ) -> Result<Built, Failure> {
        let restore = self
            .api
            .domain_restore
            .ok_or_else(|| not_loaded("xc_domain_restore"))?;
        let mut data = RestoreData { callbacks };
        // A plain stream uses only static_data_done; the callbacks struct
        // must be there (libxenguest reads it unconditionally).
        let mut raw = RawRestoreCallbacks {
            static_data_done: Some(restore_static_data_done),
            suspend: None,
            postcopy: None,
            checkpoint: None,
            wait_checkpoint: None,
            restore_results: None,
            data: (&raw mut data).cast(),
        };
        let (mut store_mfn, mut console_mfn): (c_ulong, c_ulong) = (0, 0);
        let r = request;
        match (restore, r.memflags) {
            (Restore::Plain(restore), None) => self.checked("xc_domain_restore", || {
                // SAFETY: a valid handle; two frames to write; `raw` as in
                // domain_save, its data `data`; -1: no send_back_fd.
                unsafe {
                    restore(
                        self.xch,
                        r.fd,
                        r.domid,
                        r.store_port,
                        &mut store_mfn,
                        r.store_domid,
                        r.console_port,
                        &mut console_mfn,
                        r.console_domid,
                        layout::XC_STREAM_PLAIN,
                        &mut raw,
                        -1,
                    )
                }
            })?,
            (Restore::WithMemflags(restore), Some(memflags)) => {
                self.checked("xc_domain_restore", || {
                    // SAFETY: as above, with 4.22's memflags.
                    unsafe {
                        restore(
                            self.xch,
                            r.fd,
                            r.domid,
                            r.store_port,
                            &mut store_mfn,
                            r.store_domid,
                            r.console_port,
                            &mut console_mfn,
                            r.console_domid,
                            layout::XC_STREAM_PLAIN,
                            &mut raw,
                            -1,
                            memflags,
                        )
                    }
                })?
            }
            (_, memflags) => {
                return Err(Failure::new(
                    "xc_domain_restore",
                    libc::EINVAL,
                    format!(
                        "memflags {memflags:?} for Xen {}'s xc_domain_restore, which {} them",
                        self.hypervisor.version(),
                        if memflags.is_some() {
                            "takes none of"
                        } else {
                            "needs"
                        }
                    ),
                ))
            }
        }
        Ok(Built {
            store_mfn,
            console_mfn,
        })
    }

    fn domain_resume(&self, domid: u32) -> Result<(), Failure> {
        let resume = self
            .api
            .domain_resume
            .ok_or_else(|| not_loaded("xc_domain_resume"))?;
        self.checked("xc_domain_resume", || {
            // SAFETY: a valid handle; 1: the cooperative (fast) resume.
            unsafe { resume(self.xch, domid, 1) }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;

    /// Callbacks that answer as told, or panic.
    #[derive(Default)]
    struct Scripted {
        panic: bool,
        answer: bool,
        seen: Vec<PrecopyStats>,
        missing: Vec<StaticDataMissing>,
        failures: Vec<Failure>,
    }

    impl SaveCallbacks for Scripted {
        fn suspend(&mut self) -> bool {
            assert!(!self.panic, "scripted panic");
            self.answer
        }
        fn precopy_policy(&mut self, stats: PrecopyStats) -> Decision {
            assert!(!self.panic, "scripted panic");
            self.seen.push(stats);
            if self.answer {
                Decision::StopAndCopy
            } else {
                Decision::Continue
            }
        }
        fn switch_qemu_logdirty(&mut self, _domid: u32, _enable: bool) -> bool {
            assert!(!self.panic, "scripted panic");
            self.answer
        }
        fn failed(&mut self, failure: Failure) {
            self.failures.push(failure);
        }
    }

    impl RestoreCallbacks for Scripted {
        fn static_data_done(&mut self, missing: StaticDataMissing) -> bool {
            assert!(!self.panic, "scripted panic");
            self.missing.push(missing);
            self.answer
        }
        fn failed(&mut self, failure: Failure) {
            self.failures.push(failure);
        }
    }

    /// Calls the save callbacks as libxenguest does, with `data`.
    fn as_libxenguest_saves(s: &mut Scripted) -> (c_int, c_int, c_int) {
        let mut data = SaveData { callbacks: s };
        let ptr: *mut c_void = (&raw mut data).cast();
        let stats = RawPrecopyStats {
            iteration: 2,
            total_written: 1300,
            dirty_count: -1,
        };
        // SAFETY: `ptr` is a live SaveData, used only through it here.
        let suspended = unsafe { save_suspend(ptr) };
        // SAFETY: as above.
        let policy = unsafe { save_precopy_policy(stats, ptr) };
        // SAFETY: as above.
        let logdirty = unsafe { save_switch_qemu_logdirty(7, 1, ptr) };
        (suspended, policy, logdirty)
    }

    #[test]
    fn save_callbacks_answer_in_libxenguest_s_terms() {
        let mut yes = Scripted {
            answer: true,
            ..Default::default()
        };
        assert_eq!(
            as_libxenguest_saves(&mut yes),
            (1, layout::XGS_POLICY_STOP_AND_COPY, 0)
        );
        assert_eq!(
            yes.seen,
            [PrecopyStats {
                iteration: 2,
                sent_pages: 1300,
                dirty_pages: None
            }]
        );
        let mut no = Scripted::default();
        assert_eq!(
            as_libxenguest_saves(&mut no),
            (0, layout::XGS_POLICY_CONTINUE_PRECOPY, -1)
        );
        assert!(yes.failures.is_empty() && no.failures.is_empty());
    }

    #[test]
    fn a_panic_never_reaches_c_it_fails_the_call_and_is_recorded() {
        let mut s = Scripted {
            panic: true,
            answer: true,
            ..Default::default()
        };
        assert_eq!(
            as_libxenguest_saves(&mut s),
            (0, layout::XGS_POLICY_ABORT, -1)
        );
        let functions: Vec<&str> = s.failures.iter().map(|f| f.function).collect();
        assert_eq!(
            functions,
            ["suspend", "precopy_policy", "switch_qemu_logdirty"]
        );
        let mut data = RestoreData { callbacks: &mut s };
        // SAFETY: a live RestoreData, used only through this pointer here.
        let rc = unsafe { restore_static_data_done(0, (&raw mut data).cast()) };
        assert_eq!(rc, -1);
        assert_eq!(s.failures.last().unwrap().function, "static_data_done");
    }

    #[test]
    fn static_data_done_reads_the_missing_bits() {
        let mut s = Scripted {
            answer: true,
            ..Default::default()
        };
        for bits in [
            0,
            layout::XGR_SDD_MISSING_CPUID,
            layout::XGR_SDD_MISSING_MSR,
        ] {
            let mut data = RestoreData { callbacks: &mut s };
            // SAFETY: a live RestoreData, used only through this pointer here.
            let rc = unsafe { restore_static_data_done(bits, (&raw mut data).cast()) };
            assert_eq!(rc, 0);
        }
        assert_eq!(
            s.missing,
            [
                StaticDataMissing::default(),
                StaticDataMissing {
                    cpuid: true,
                    msr: false
                },
                StaticDataMissing {
                    cpuid: false,
                    msr: true
                }
            ]
        );
    }

    #[test]
    fn readable_says_whether_a_read_would_wait() {
        use std::io::Write;
        let (reader, mut writer) = std::io::pipe().unwrap();
        assert!(!readable(reader.as_fd()).unwrap());
        writer.write_all(b"x").unwrap();
        assert!(readable(reader.as_fd()).unwrap());
        let (reader, writer) = std::io::pipe().unwrap();
        drop(writer);
        assert!(readable(reader.as_fd()).unwrap(), "the end is readable");
    }
}
