//! Where the fields the builder reads and writes sit in `struct xc_dom_image`,
//! the same in every supported release (4.22 adds a field in what was tail
//! padding, after all of them). `xc_dom_allocate` allocates the struct, so
//! only the offsets of the fields used are needed, not the whole struct.
//! `tests/layout.rs` compares every offset and size written here with each
//! release's facts (crates/c-probe), measured from its `xenguest.h`.

use std::ffi::{c_char, c_int, c_long, c_uint, c_ulong, c_void};
use std::marker::PhantomData;

/// A field of type `T` at `offset` bytes into a C struct.
pub struct Field<T> {
    pub offset: usize,
    // fn() -> T: a plain marker, Send and Sync whatever T is.
    ty: PhantomData<fn() -> T>,
}

impl<T> Clone for Field<T> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<T> Copy for Field<T> {}

impl<T> Field<T> {
    const fn at(offset: usize) -> Self {
        Field {
            offset,
            ty: PhantomData,
        }
    }

    pub fn size(&self) -> usize {
        std::mem::size_of::<T>()
    }
}

/// `xen_vmemrange_t`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RawVmemrange {
    pub start: u64,
    pub end: u64,
    pub flags: u32,
    pub nid: u32,
}

/// `struct xc_hvm_firmware_module`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct RawFirmwareModule {
    pub data: *mut u8,
    pub length: u32,
    pub guest_addr_out: u64,
}

impl Default for RawFirmwareModule {
    fn default() -> Self {
        RawFirmwareModule {
            data: std::ptr::null_mut(),
            length: 0,
            guest_addr_out: 0,
        }
    }
}

/// `MAX_ACPI_MODULES`.
pub const MAX_ACPI_MODULES: usize = 4;

/// libxenctrl's `xc_error`.
#[repr(C)]
pub struct RawXcError {
    pub code: c_int,
    pub message: [c_char; 1024],
}

/// libxenctrl's `struct e820entry` (packed).
#[repr(C, packed)]
#[derive(Clone, Copy, Debug, Default)]
pub struct RawE820Entry {
    pub addr: u64,
    pub size: u64,
    pub kind: u32,
}

/// `struct hvm_info_table` (xen/hvm/hvm_info_table.h), which hvmloader reads
/// at `HVM_INFO_PFN`:`HVM_INFO_OFFSET`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct HvmInfoTable {
    pub signature: [u8; 8],
    pub length: u32,
    pub checksum: u8,
    pub apic_mode: u8,
    pub nr_vcpus: u32,
    pub low_mem_pgend: u32,
    pub reserved_mem_pgstart: u32,
    pub high_mem_pgend: u32,
    pub vcpu_online: [u8; HVM_MAX_VCPUS / 8],
}

pub const HVM_MAX_VCPUS: usize = 128;
pub const HVM_INFO_PFN: u64 = 0x9f;
pub const HVM_INFO_OFFSET: usize = 0x800;

/// `struct xc_dom_image`'s `container_type` values.
pub const XC_DOM_PV_CONTAINER: c_int = 0;
pub const XC_DOM_HVM_CONTAINER: c_int = 1;

/// The fields of `struct xc_dom_image` used, with their C types.
pub struct DomImageLayout {
    pub console_pfn: Field<u64>,
    pub xenstore_pfn: Field<u64>,
    pub pv_p2m: Field<*mut u64>,
    pub total_pages: Field<u64>,
    pub flags: Field<c_ulong>,
    pub console_evtchn: Field<c_uint>,
    pub xenstore_evtchn: Field<c_uint>,
    pub console_domid: Field<u32>,
    pub xenstore_domid: Field<u32>,
    pub claim_enabled: Field<c_int>,
    pub vmemranges: Field<*mut RawVmemrange>,
    pub nr_vmemranges: Field<c_uint>,
    pub vnode_to_pnode: Field<*mut c_uint>,
    pub nr_vnodes: Field<c_uint>,
    pub container_type: Field<c_int>,
    pub max_vcpus: Field<c_uint>,
    // HVM only.
    pub target_pages: Field<u64>,
    pub mmio_start: Field<u64>,
    pub mmio_size: Field<u64>,
    pub lowmem_end: Field<u64>,
    pub highmem_end: Field<u64>,
    pub vga_hole_size: Field<u64>,
    pub device_model: Field<bool>,
    pub e820: Field<*mut RawE820Entry>,
    pub e820_entries: Field<c_uint>,
    pub acpi_modules: Field<[RawFirmwareModule; MAX_ACPI_MODULES]>,
}

impl DomImageLayout {
    /// (C field name, offset, size) of every field, for the layout test.
    pub fn fields(&self) -> Vec<(&'static str, usize, usize)> {
        macro_rules! list {
            ($($f:ident),* $(,)?) => { vec![$((stringify!($f), self.$f.offset, self.$f.size())),*] };
        }
        list!(
            console_pfn,
            xenstore_pfn,
            pv_p2m,
            total_pages,
            flags,
            console_evtchn,
            xenstore_evtchn,
            console_domid,
            xenstore_domid,
            claim_enabled,
            vmemranges,
            nr_vmemranges,
            vnode_to_pnode,
            nr_vnodes,
            container_type,
            max_vcpus,
            target_pages,
            mmio_start,
            mmio_size,
            lowmem_end,
            highmem_end,
            vga_hole_size,
            device_model,
            e820,
            e820_entries,
            acpi_modules,
        )
    }
}

/// `xenguest.h` of Xen 4.17 to 4.22 (x86_64).
pub const DOM_IMAGE: DomImageLayout = DomImageLayout {
    console_pfn: Field::at(384),
    xenstore_pfn: Field::at(392),
    pv_p2m: Field::at(480),
    total_pages: Field::at(504),
    flags: Field::at(560),
    console_evtchn: Field::at(568),
    xenstore_evtchn: Field::at(572),
    console_domid: Field::at(576),
    xenstore_domid: Field::at(580),
    claim_enabled: Field::at(604),
    vmemranges: Field::at(1656),
    nr_vmemranges: Field::at(1664),
    vnode_to_pnode: Field::at(1672),
    nr_vnodes: Field::at(1680),
    container_type: Field::at(1712),
    max_vcpus: Field::at(1944),
    target_pages: Field::at(1720),
    mmio_start: Field::at(1728),
    mmio_size: Field::at(1736),
    lowmem_end: Field::at(1744),
    highmem_end: Field::at(1752),
    vga_hole_size: Field::at(1760),
    device_model: Field::at(1768),
    e820: Field::at(1920),
    e820_entries: Field::at(1928),
    acpi_modules: Field::at(1800),
};

/// `struct precopy_stats`, which libxenguest passes by value to the
/// precopy policy.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RawPrecopyStats {
    pub iteration: c_uint,
    pub total_written: c_ulong,
    /// -1 while not known.
    pub dirty_count: c_long,
}

/// `int (*)(void *data)`: `suspend`, `postcopy`, `checkpoint`, `wait_checkpoint`.
pub type DataCallback = Option<unsafe extern "C" fn(*mut c_void) -> c_int>;

/// `struct save_callbacks`.
#[repr(C)]
pub struct RawSaveCallbacks {
    pub suspend: DataCallback,
    pub precopy_policy: Option<unsafe extern "C" fn(RawPrecopyStats, *mut c_void) -> c_int>,
    pub postcopy: DataCallback,
    pub checkpoint: DataCallback,
    pub wait_checkpoint: DataCallback,
    pub switch_qemu_logdirty: Option<unsafe extern "C" fn(u32, c_uint, *mut c_void) -> c_int>,
    pub data: *mut c_void,
}

/// `struct restore_callbacks`.
#[repr(C)]
pub struct RawRestoreCallbacks {
    pub static_data_done: Option<unsafe extern "C" fn(c_uint, *mut c_void) -> c_int>,
    pub suspend: DataCallback,
    pub postcopy: DataCallback,
    pub checkpoint: DataCallback,
    pub wait_checkpoint: DataCallback,
    pub restore_results: Option<unsafe extern "C" fn(u64, u64, *mut c_void)>,
    pub data: *mut c_void,
}

/// `xc_domain_save`'s flags.
pub const XCFLAGS_LIVE: u32 = 1 << 0;
pub const XCFLAGS_DEBUG: u32 = 1 << 1;
/// `xc_stream_type_t`: a stream without checkpoints (no Remus, no COLO).
pub const XC_STREAM_PLAIN: c_int = 0;
/// What a precopy policy answers.
pub const XGS_POLICY_ABORT: c_int = -1;
pub const XGS_POLICY_CONTINUE_PRECOPY: c_int = 0;
pub const XGS_POLICY_STOP_AND_COPY: c_int = 1;
/// `static_data_done`'s `missing` bits: records a stream from before Xen
/// 4.14 lacks.
pub const XGR_SDD_MISSING_CPUID: c_uint = 1 << 0;
pub const XGR_SDD_MISSING_MSR: c_uint = 1 << 1;
