//! The host's libxenguest and libxenctrl, loaded at run time (as libxl links
//! them), and `struct xc_dom_image` reached through the offsets in [`layout`].
//! The hypervisor is opened through the `xenctrl` crate (which checks the
//! release and the library's match); libxenguest and the libxenctrl handle
//! it builds through are then loaded for exactly that release by `xenlib`.
//! Everything `unsafe` in the builder is in this module.
#![allow(unsafe_code)]

pub mod layout;

use crate::build::{
    Container, DomImage, E820Entry, HvmMemory, ImageSettings, Libxenguest, Vmemrange,
};
use crate::protocol::Failure;
use layout::{DomImageLayout, Field, RawE820Entry, RawFirmwareModule, RawVmemrange, RawXcError};
use std::ffi::{c_char, c_int, c_uint, c_ulong, c_void, CStr, CString};
use std::fs::File;
use std::os::fd::FromRawFd;
use std::ptr::NonNull;
use xenctrl::{Hypervisor, Unavailable, XenCtrl, XenError};
use xenlib::errno::{clear as clear_errno, last_or_zero as errno, message as strerror};
use xenlib::{Loaded, SymbolError};

type Xch = *mut c_void;
type Dom = *mut c_void;

const XC_OUT_OF_MEMORY: c_int = 4;
const XC_INVALID_KERNEL: c_int = 2;
const XC_INVALID_PARAM: c_int = 3;

/// The functions used, by their C signatures in `xenctrl.h` and `xenguest.h`
/// (the same in every supported release, 4.17 to 4.22).
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
}

impl Api {
    fn load(ctrl: &Loaded, guest: &Loaded) -> Result<Api, SymbolError> {
        macro_rules! symbol {
            ($lib:ident, $name:literal) => {
                // SAFETY: the field's type is this function's C signature in
                // every release in xenlib's table.
                unsafe { $lib.symbol($name) }?
            };
        }
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
        let api = Api::load(&ctrl, &guest)
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
        let info = self.hypervisor.domain_info(domid).map_err(|e| match e {
            XenError::Hypercall {
                errno: libc::ESRCH,
                operation,
            } => Failure::new(
                operation,
                libc::ESRCH,
                format!("domain {domid} does not exist"),
            ),
            other => failure_of(other),
        })?;
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

/// The control pipe the toolstack gave as `-controloutfd`, if it is open.
pub fn control_file(fd: i32) -> Option<File> {
    // SAFETY: F_GETFD only reads the descriptor's flags.
    if fd < 0 || unsafe { libc::fcntl(fd, libc::F_GETFD) } == -1 {
        return None;
    }
    // SAFETY: an open descriptor given to this process for exactly this use;
    // nothing else in the process owns it.
    Some(unsafe { File::from_raw_fd(fd) })
}
