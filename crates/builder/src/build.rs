//! The build sequence, as libxl runs it (`libxl__build_pv`, `libxl__build_dom`),
//! over the safe operations of [`Libxenguest`] and [`DomImage`]: the real ones
//! are in `ffi`, tests use a recording fake.

use crate::args::{BuildArgs, Mode};
use crate::protocol::{Built, Failure};
use std::time::Instant;

pub const PAGE_SHIFT: u32 = 12;

/// `xen_vmemrange_t`: a range of guest physical memory on a virtual node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Vmemrange {
    pub start_bytes: u64,
    pub end_bytes: u64,
    pub flags: u32,
    pub vnode: u32,
}

/// `struct xc_dom_image`'s `container_type`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Container {
    Pv,
    Hvm,
}

/// The fields of `struct xc_dom_image` libxl sets before building.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageSettings {
    pub container: Container,
    /// start_info's SIF_* flags.
    pub flags: u64,
    pub console_evtchn: u32,
    pub console_domid: u32,
    pub xenstore_evtchn: u32,
    pub xenstore_domid: u32,
    pub max_vcpus: u32,
    /// Always false: the toolstack claimed the memory before running us, and
    /// a builder's own claim would outlive a failed build.
    pub claim_enabled: bool,
}

/// The host's libxenguest and libxenctrl, opened.
pub trait Libxenguest {
    type Image: DomImage;
    /// `xc_dom_allocate`.
    fn allocate(&self, cmdline: &str, features: &str) -> Result<Self::Image, Failure>;
    /// The domain's vCPU count (from `xc_domain_getinfolist`).
    fn domain_max_vcpus(&self, domid: u32) -> Result<u32, Failure>;
    /// Maps an HVM guest's `hvm_info_table` (from `HVM_INFO_OFFSET` to the
    /// end of its page) and lets `update` change it.
    fn update_hvm_info(&self, domid: u32, update: &mut dyn FnMut(&mut [u8]))
        -> Result<(), Failure>;
}

/// One `struct xc_dom_image`, released on drop (`xc_dom_release`).
pub trait DomImage {
    fn configure(&mut self, settings: &ImageSettings);
    /// The HVM memory layout fields.
    fn configure_hvm(&mut self, memory: &HvmMemory);
    /// `xc_domain_set_memory_map`, and `dom->e820` as libxl leaves it.
    fn set_memory_map(&mut self, domid: u32, map: &[E820Entry]) -> Result<(), Failure>;
    /// ACPI tables for libxenguest to load at `guest_address` (PVH).
    fn set_acpi_tables(&mut self, tables: &[u8], guest_address: u64) -> Result<(), Failure>;
    fn kernel_file(&mut self, path: &str) -> Result<(), Failure>;
    fn module_file(&mut self, path: &str, cmdline: Option<&str>) -> Result<(), Failure>;
    /// The guest's virtual NUMA layout, which libxenguest allocates by.
    fn set_vnuma(&mut self, ranges: &[Vmemrange], vnode_to_pnode: &[u32]) -> Result<(), Failure>;
    fn boot_xen_init(&mut self, domid: u32) -> Result<(), Failure>;
    fn parse_image(&mut self) -> Result<(), Failure>;
    fn mem_init(&mut self, mem_mib: u32) -> Result<(), Failure>;
    fn boot_mem_init(&mut self) -> Result<(), Failure>;
    fn build_image(&mut self) -> Result<(), Failure>;
    fn boot_image(&mut self) -> Result<(), Failure>;
    fn gnttab_init(&mut self) -> Result<(), Failure>;
    /// (`console_pfn`, `xenstore_pfn`).
    fn magic_pfns(&self) -> (u64, u64);
    /// `xc_dom_p2m`: the machine frame behind a PV guest frame.
    fn p2m(&self, pfn: u64) -> Option<u64>;
    fn total_pages(&self) -> u64;
}

/// One virtual node holding all of the guest's memory, on physical node
/// `pnode`: libxenguest then allocates every page with
/// `XENMEMF_exact_node(pnode)` (`meminit_pv`), and fails rather than spill.
pub fn one_node_layout(mem_mib: u64, pnode: u32) -> (Vec<Vmemrange>, Vec<u32>) {
    let range = Vmemrange {
        start_bytes: 0,
        end_bytes: mem_mib << 20,
        flags: 0,
        vnode: 0,
    };
    (vec![range], vec![pnode])
}

/// `HVM_BELOW_4G_MMIO_LENGTH`: the MMIO hole below 4 GiB an HVM guest with a
/// device model gets (xen/hvm/e820.h).
pub const HVM_BELOW_4G_MMIO_LENGTH_BYTES: u64 = 0x1000_0000;
/// libxl's `LIBXL_VGA_HOLE_SIZE`: 0xA0000-0xBFFFF, not populated.
pub const VGA_HOLE_PAGES: u64 = 0x20;
/// Where RAM starts in an HVM guest's e820 with a device model (below it:
/// the BIOS area, which hvmloader describes itself).
pub const HVM_LOW_MEM_START_BYTES: u64 = 0x10_0000;
const FOUR_GIB: u64 = 1 << 32;
const E820_RAM: u32 = 1;

/// An HVM guest's memory layout, as `libxl__build_hvm` computes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HvmMemory {
    /// RAM in the guest's physical map (`xc_dom_mem_init`'s size).
    pub mem_mib: u64,
    /// What is populated now; less than `mem_mib` pages: populate-on-demand.
    pub target_pages: u64,
    pub mmio_start_bytes: u64,
    pub mmio_size_bytes: u64,
    pub lowmem_end_bytes: u64,
    /// 0 when all RAM fits below the MMIO hole.
    pub highmem_end_bytes: u64,
    pub vga_hole_pages: u64,
    /// HVM: a device model emulates the platform; PVH: none.
    pub device_model: bool,
}

pub fn hvm_memory(mem_max_mib: u64, mem_start_mib: u64) -> HvmMemory {
    memory_layout(
        mem_max_mib,
        mem_start_mib,
        HVM_BELOW_4G_MMIO_LENGTH_BYTES,
        true,
    )
}

/// Where the special pages (xenstore, console, ...) of a guest without a
/// device model end: `X86_HVM_END_SPECIAL_REGION` (xenguest.h), a page number.
const X86_HVM_END_SPECIAL_REGION: u64 = 0xff000;
const X86_HVM_NR_SPECIAL_PAGES: u64 = 8;
const E820_RESERVED: u32 = 2;
const E820_ACPI: u32 = 3;

/// A PVH guest's layout: no device model, so the hole below 4 GiB starts at
/// the lowest of the special pages, the local APIC and the ACPI tables, as
/// `libxl__build_hvm` computes it.
pub fn pvh_memory(mem_max_mib: u64, mem_start_mib: u64) -> HvmMemory {
    let special_bytes = (X86_HVM_END_SPECIAL_REGION - X86_HVM_NR_SPECIAL_PAGES) << PAGE_SHIFT;
    let hole_start_bytes = special_bytes
        .min(u64::from(crate::acpi::LAPIC_BASE_ADDRESS))
        .min(crate::acpi::ACPI_TABLES_ADDRESS);
    memory_layout(
        mem_max_mib,
        mem_start_mib,
        FOUR_GIB - hole_start_bytes,
        false,
    )
}

fn memory_layout(
    mem_max_mib: u64,
    mem_start_mib: u64,
    mmio_size_bytes: u64,
    device_model: bool,
) -> HvmMemory {
    let mem_bytes = mem_max_mib << 20;
    let mmio_start_bytes = FOUR_GIB - mmio_size_bytes;
    let (lowmem_end_bytes, highmem_end_bytes) = if mem_bytes > mmio_start_bytes {
        (mmio_start_bytes, FOUR_GIB + (mem_bytes - mmio_start_bytes))
    } else {
        (mem_bytes, 0)
    };
    HvmMemory {
        mem_mib: mem_max_mib,
        target_pages: mem_start_mib << (20 - PAGE_SHIFT),
        mmio_start_bytes,
        mmio_size_bytes,
        lowmem_end_bytes,
        highmem_end_bytes,
        vga_hole_pages: if device_model { VGA_HOLE_PAGES } else { 0 },
        device_model,
    }
}

/// The RAM below the MMIO hole and, if any, above 4 GiB: the ranges
/// `libxl__vnuma_build_vmemrange_hvm` gives one vnode.
pub fn hvm_one_node_layout(m: &HvmMemory, pnode: u32) -> (Vec<Vmemrange>, Vec<u32>) {
    let mut ranges = vec![Vmemrange {
        start_bytes: 0,
        end_bytes: m.lowmem_end_bytes.min(m.mmio_start_bytes),
        flags: 0,
        vnode: 0,
    }];
    if m.highmem_end_bytes > FOUR_GIB {
        ranges.push(Vmemrange {
            start_bytes: FOUR_GIB,
            end_bytes: m.highmem_end_bytes,
            flags: 0,
            vnode: 0,
        });
    }
    (ranges, vec![pnode])
}

/// One entry of the guest's e820 memory map.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct E820Entry {
    pub addr_bytes: u64,
    pub size_bytes: u64,
    pub kind: u32,
}

/// The memory map libxl gives an HVM guest with a device model and no
/// reserved device memory: low RAM from 1 MiB, and high RAM above 4 GiB.
pub fn hvm_e820(m: &HvmMemory) -> Vec<E820Entry> {
    let mut map = vec![E820Entry {
        addr_bytes: HVM_LOW_MEM_START_BYTES,
        size_bytes: m.lowmem_end_bytes - HVM_LOW_MEM_START_BYTES,
        kind: E820_RAM,
    }];
    if m.highmem_end_bytes > FOUR_GIB {
        map.push(E820Entry {
            addr_bytes: FOUR_GIB,
            size_bytes: m.highmem_end_bytes - FOUR_GIB,
            kind: E820_RAM,
        });
    }
    map
}

/// A PVH guest's memory map, as libxl's `domain_construct_memmap` makes it
/// (low RAM from 0, the special pages reserved, the ACPI tables, high RAM),
/// in address order.
pub fn pvh_e820(m: &HvmMemory, acpi_address: u64, acpi_bytes: u64) -> Vec<E820Entry> {
    let mut map = vec![
        E820Entry {
            addr_bytes: 0,
            size_bytes: m.lowmem_end_bytes,
            kind: E820_RAM,
        },
        E820Entry {
            addr_bytes: acpi_address,
            size_bytes: acpi_bytes.next_multiple_of(1 << PAGE_SHIFT),
            kind: E820_ACPI,
        },
        E820Entry {
            addr_bytes: (X86_HVM_END_SPECIAL_REGION - X86_HVM_NR_SPECIAL_PAGES) << PAGE_SHIFT,
            size_bytes: X86_HVM_NR_SPECIAL_PAGES << PAGE_SHIFT,
            kind: E820_RESERVED,
        },
    ];
    if m.highmem_end_bytes > FOUR_GIB {
        map.push(E820Entry {
            addr_bytes: FOUR_GIB,
            size_bytes: m.highmem_end_bytes - FOUR_GIB,
            kind: E820_RAM,
        });
    }
    map
}

/// What `hvm_build_set_params` (libxl) writes into `hvm_info_table` after
/// libxenguest filled it: the local APIC on, the vCPU count, all vCPUs
/// online, and the checksum that makes the table's bytes sum to 0.
pub fn update_hvm_info(table: &mut [u8], nr_vcpus: u32) -> Result<(), Failure> {
    use crate::ffi::layout::HvmInfoTable;
    use std::mem::offset_of;
    let fail = |message: String| Failure::new("hvm_info_table", libc::EINVAL, message);
    let size = std::mem::size_of::<HvmInfoTable>();
    if table.len() < size || &table[..8] != b"HVM INFO" {
        return Err(fail("no hvm_info_table where libxenguest writes it".into()));
    }
    let online_bytes = HvmInfoTable::default().vcpu_online.len();
    if nr_vcpus as usize > online_bytes * 8 {
        return Err(fail(format!(
            "{nr_vcpus} vCPUs: hvmloader takes {}",
            online_bytes * 8
        )));
    }
    let length_at = offset_of!(HvmInfoTable, length);
    let length = u32::from_ne_bytes(table[length_at..length_at + 4].try_into().unwrap()) as usize;
    if length < size || length > table.len() {
        return Err(fail(format!("hvm_info_table length {length}")));
    }
    table[offset_of!(HvmInfoTable, apic_mode)] = 1;
    let vcpus_at = offset_of!(HvmInfoTable, nr_vcpus);
    table[vcpus_at..vcpus_at + 4].copy_from_slice(&nr_vcpus.to_ne_bytes());
    let online_at = offset_of!(HvmInfoTable, vcpu_online);
    for (i, byte) in table[online_at..online_at + online_bytes]
        .iter_mut()
        .enumerate()
    {
        let vcpus_here = (nr_vcpus as usize).saturating_sub(i * 8).min(8);
        *byte = ((1u16 << vcpus_here) - 1) as u8;
    }
    let checksum_at = offset_of!(HvmInfoTable, checksum);
    table[checksum_at] = 0;
    let sum = table[..length].iter().fold(0u8, |a, b| a.wrapping_add(*b));
    table[checksum_at] = 0u8.wrapping_sub(sum);
    Ok(())
}

/// Runs one step, logging how long it took.
fn step<T>(
    log: &mut dyn FnMut(&str),
    name: &str,
    f: impl FnOnce() -> Result<T, Failure>,
) -> Result<T, Failure> {
    let started = Instant::now();
    let value = f()?;
    log(&format!("{name}: {} ms", started.elapsed().as_millis()));
    Ok(value)
}

/// Builds a PV guest: `libxl__build_pv` without the parts that are the
/// toolstack's (claims, xenstore, vNUMA as the guest sees it).
pub fn build_pv<L: Libxenguest>(
    lib: &L,
    args: &BuildArgs,
    log: &mut dyn FnMut(&str),
) -> Result<Built, Failure> {
    debug_assert_eq!(args.mode, Mode::Pv);
    let max_vcpus = lib.domain_max_vcpus(args.domid)?;
    let mut dom = lib.allocate(&args.cmdline, &args.features)?;
    dom.configure(&ImageSettings {
        container: Container::Pv,
        flags: args.flags,
        console_evtchn: args.console_port,
        console_domid: args.console_domid,
        xenstore_evtchn: args.store_port,
        xenstore_domid: args.store_domid,
        max_vcpus,
        claim_enabled: false,
    });
    step(log, "xc_dom_kernel_file", || dom.kernel_file(&args.image))?;
    if let Some(ramdisk) = &args.ramdisk {
        step(log, "xc_dom_module_file", || dom.module_file(ramdisk, None))?;
    }
    // PV guests start with their target and balloon; upstream libxenguest
    // has no separate maximum for a PV p2m (libxl passes target_memkb too).
    let mem_mib = args.mem_start_mib;
    if let Some(pnode) = args.mem_pnode {
        let (ranges, vnode_to_pnode) = one_node_layout(mem_mib, pnode);
        dom.set_vnuma(&ranges, &vnode_to_pnode)?;
        log(&format!(
            "all {mem_mib} MiB on node {pnode} (one vNUMA node)"
        ));
    }
    build_dom(&mut dom, args.domid, mem_mib, None, log)?;
    let (console_pfn, store_pfn) = dom.magic_pfns();
    let mfn = |pfn: u64, what: &str| {
        dom.p2m(pfn).ok_or_else(|| {
            Failure::new(
                "xc_dom_p2m",
                libc::EFAULT,
                format!("the {what} page {pfn:#x} is outside the guest's p2m"),
            )
        })
    };
    let built = Built {
        store_mfn: mfn(store_pfn, "xenstore")?,
        console_mfn: mfn(console_pfn, "console")?,
    };
    log(&format!("{} pages", dom.total_pages()));
    Ok(built)
}

/// Builds an HVM guest booting `args.image` (hvmloader): `libxl__build_hvm`
/// for a guest with a device model, no firmware modules (hvmloader's own
/// ROMBIOS), and no reserved device memory. Returns guest frames.
pub fn build_hvm<L: Libxenguest>(
    lib: &L,
    args: &BuildArgs,
    log: &mut dyn FnMut(&str),
) -> Result<Built, Failure> {
    debug_assert_eq!(args.mode, Mode::Hvm);
    build_hvm_container(
        lib,
        args,
        hvm_memory(args.mem_max_mib, args.mem_start_mib),
        log,
    )
}

/// Builds a PVH guest: `libxl__build_hvm` without a device model, the
/// kernel loaded directly with its boot modules, and the ACPI tables of
/// [`crate::acpi`]. Returns guest frames.
pub fn build_pvh<L: Libxenguest>(
    lib: &L,
    args: &BuildArgs,
    log: &mut dyn FnMut(&str),
) -> Result<Built, Failure> {
    debug_assert_eq!(args.mode, Mode::Pvh);
    build_hvm_container(
        lib,
        args,
        pvh_memory(args.mem_max_mib, args.mem_start_mib),
        log,
    )
}

fn build_hvm_container<L: Libxenguest>(
    lib: &L,
    args: &BuildArgs,
    memory: HvmMemory,
    log: &mut dyn FnMut(&str),
) -> Result<Built, Failure> {
    if args.mem_pnode.is_some() && memory.target_pages < memory.mem_mib << (20 - PAGE_SHIFT) {
        // libxenguest refuses vNUMA with populate-on-demand.
        return Err(Failure::new(
            args.mode.name(),
            libc::EINVAL,
            "-mem_pnode needs -mem_start_mib = -mem_max_mib (no populate-on-demand)",
        ));
    }
    let max_vcpus = lib.domain_max_vcpus(args.domid)?;
    let mut dom = lib.allocate(&args.cmdline, &args.features)?;
    dom.configure(&ImageSettings {
        container: Container::Hvm,
        flags: args.flags,
        console_evtchn: args.console_port,
        console_domid: args.console_domid,
        xenstore_evtchn: args.store_port,
        xenstore_domid: args.store_domid,
        max_vcpus,
        claim_enabled: false,
    });
    dom.configure_hvm(&memory);
    step(log, "xc_dom_kernel_file", || dom.kernel_file(&args.image))?;
    for module in &args.modules {
        step(log, "xc_dom_module_file", || {
            dom.module_file(&module.path, module.cmdline.as_deref())
        })?;
    }
    if let Some(pnode) = args.mem_pnode {
        let (ranges, vnode_to_pnode) = hvm_one_node_layout(&memory, pnode);
        dom.set_vnuma(&ranges, &vnode_to_pnode)?;
        log(&format!(
            "all {} MiB on node {pnode} (one vNUMA node)",
            memory.mem_mib
        ));
    }
    let e820 = if memory.device_model {
        hvm_e820(&memory)
    } else {
        let tables = crate::acpi::pvh_tables(max_vcpus)
            .map_err(|message| Failure::new("acpi_build_tables", libc::EINVAL, message))?;
        dom.set_acpi_tables(&tables, crate::acpi::ACPI_TABLES_ADDRESS)?;
        pvh_e820(
            &memory,
            crate::acpi::ACPI_TABLES_ADDRESS,
            tables.len() as u64,
        )
    };
    build_dom(&mut dom, args.domid, memory.mem_mib, Some(&e820), log)?;
    if memory.device_model {
        step(log, "hvm_info_table", || {
            let mut result = Ok(());
            lib.update_hvm_info(args.domid, &mut |table| {
                result = update_hvm_info(table, max_vcpus);
            })?;
            result
        })?;
    }
    let (console_pfn, store_pfn) = dom.magic_pfns();
    log(&format!("{} pages", dom.total_pages()));
    Ok(Built {
        store_mfn: store_pfn,
        console_mfn: console_pfn,
    })
}

/// `libxl__build_dom`: from `xc_dom_boot_xen_init` to `xc_dom_gnttab_init`;
/// for HVM, the memory map once the memory is there (libxl's
/// `libxl__arch_domain_finalise_hw_description`).
fn build_dom<I: DomImage>(
    dom: &mut I,
    domid: u32,
    mem_mib: u64,
    e820: Option<&[E820Entry]>,
    log: &mut dyn FnMut(&str),
) -> Result<(), Failure> {
    let mem_mib = u32::try_from(mem_mib)
        .map_err(|_| Failure::new("xc_dom_mem_init", libc::EINVAL, "memory size too large"))?;
    step(log, "xc_dom_boot_xen_init", || dom.boot_xen_init(domid))?;
    step(log, "xc_dom_parse_image", || dom.parse_image())?;
    step(log, "xc_dom_mem_init", || dom.mem_init(mem_mib))?;
    step(log, "xc_dom_boot_mem_init", || dom.boot_mem_init())?;
    if let Some(map) = e820 {
        step(log, "xc_domain_set_memory_map", || {
            dom.set_memory_map(domid, map)
        })?;
    }
    step(log, "xc_dom_build_image", || dom.build_image())?;
    step(log, "xc_dom_boot_image", || dom.boot_image())?;
    step(log, "xc_dom_gnttab_init", || dom.gnttab_init())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::args::{parse, Command};
    use std::cell::RefCell;
    use std::rc::Rc;

    /// Records every call; fails the one named in `fail_at`.
    #[derive(Default)]
    struct Fake {
        calls: Rc<RefCell<Vec<String>>>,
        fail_at: Option<&'static str>,
    }

    struct FakeImage {
        calls: Rc<RefCell<Vec<String>>>,
        fail_at: Option<&'static str>,
        total_pages: u64,
    }

    impl FakeImage {
        fn call(&mut self, name: &'static str, detail: String) -> Result<(), Failure> {
            self.calls.borrow_mut().push(format!("{name}{detail}"));
            if self.fail_at == Some(name) {
                return Err(Failure::new(name, libc::ENOMEM, "fake failure"));
            }
            Ok(())
        }
    }

    impl Drop for FakeImage {
        fn drop(&mut self) {
            self.calls.borrow_mut().push("xc_dom_release".into());
        }
    }

    impl Libxenguest for Fake {
        type Image = FakeImage;
        fn allocate(&self, cmdline: &str, features: &str) -> Result<FakeImage, Failure> {
            self.calls
                .borrow_mut()
                .push(format!("xc_dom_allocate({cmdline:?}, {features:?})"));
            Ok(FakeImage {
                calls: self.calls.clone(),
                fail_at: self.fail_at,
                total_pages: 0,
            })
        }
        fn domain_max_vcpus(&self, domid: u32) -> Result<u32, Failure> {
            self.calls.borrow_mut().push(format!("getinfo({domid})"));
            Ok(2)
        }
        fn update_hvm_info(
            &self,
            domid: u32,
            update: &mut dyn FnMut(&mut [u8]),
        ) -> Result<(), Failure> {
            self.calls
                .borrow_mut()
                .push(format!("update_hvm_info({domid})"));
            let mut page = hvm_info_as_libxenguest_leaves_it();
            update(&mut page);
            Ok(())
        }
    }

    /// An hvm_info_table as libxenguest's build_hvm_info writes it.
    fn hvm_info_as_libxenguest_leaves_it() -> Vec<u8> {
        let mut page = vec![0u8; 0x800];
        page[..8].copy_from_slice(b"HVM INFO");
        page[8..12].copy_from_slice(&48u32.to_ne_bytes());
        page[20..24].copy_from_slice(&0xf000u32.to_ne_bytes());
        let sum = page[..48].iter().fold(0u8, |a, b| a.wrapping_add(*b));
        page[12] = 0u8.wrapping_sub(sum);
        page
    }

    impl DomImage for FakeImage {
        fn configure(&mut self, s: &ImageSettings) {
            self.calls.borrow_mut().push(format!("configure({s:?})"));
        }
        fn configure_hvm(&mut self, m: &HvmMemory) {
            self.calls
                .borrow_mut()
                .push(format!("configure_hvm({m:?})"));
        }
        fn set_memory_map(&mut self, domid: u32, map: &[E820Entry]) -> Result<(), Failure> {
            self.call("xc_domain_set_memory_map", format!("({domid}, {map:?})"))
        }
        fn set_acpi_tables(&mut self, tables: &[u8], address: u64) -> Result<(), Failure> {
            self.call(
                "set_acpi_tables",
                format!("({}, {address:#x})", tables.len()),
            )
        }
        fn kernel_file(&mut self, path: &str) -> Result<(), Failure> {
            self.call("xc_dom_kernel_file", format!("({path})"))
        }
        fn module_file(&mut self, path: &str, cmdline: Option<&str>) -> Result<(), Failure> {
            self.call("xc_dom_module_file", format!("({path}, {cmdline:?})"))
        }
        fn set_vnuma(&mut self, r: &[Vmemrange], p: &[u32]) -> Result<(), Failure> {
            self.call("set_vnuma", format!("({r:?}, {p:?})"))
        }
        fn boot_xen_init(&mut self, domid: u32) -> Result<(), Failure> {
            self.call("xc_dom_boot_xen_init", format!("({domid})"))
        }
        fn parse_image(&mut self) -> Result<(), Failure> {
            self.call("xc_dom_parse_image", String::new())
        }
        fn mem_init(&mut self, mem_mib: u32) -> Result<(), Failure> {
            self.total_pages = u64::from(mem_mib) << (20 - PAGE_SHIFT);
            self.call("xc_dom_mem_init", format!("({mem_mib})"))
        }
        fn boot_mem_init(&mut self) -> Result<(), Failure> {
            self.call("xc_dom_boot_mem_init", String::new())
        }
        fn build_image(&mut self) -> Result<(), Failure> {
            self.call("xc_dom_build_image", String::new())
        }
        fn boot_image(&mut self) -> Result<(), Failure> {
            self.call("xc_dom_boot_image", String::new())
        }
        fn gnttab_init(&mut self) -> Result<(), Failure> {
            self.call("xc_dom_gnttab_init", String::new())
        }
        fn magic_pfns(&self) -> (u64, u64) {
            (0x100, 0x101)
        }
        fn p2m(&self, pfn: u64) -> Option<u64> {
            (pfn < self.total_pages).then_some(0x8_0000 + pfn)
        }
        fn total_pages(&self) -> u64 {
            self.total_pages
        }
    }

    fn pv_args(extra: &str) -> BuildArgs {
        let line = format!(
            "-controloutfd 1 -controlinfd 0 -mode linux_build -image /k -cmdline c -ramdisk /r \
             -features f -flags 0 -domid 5 -store_port 3 -store_domid 0 -console_port 4 \
             -console_domid 0 -mem_max_mib 256 -mem_start_mib 256{extra}"
        );
        let argv: Vec<String> = line.split(' ').map(String::from).collect();
        match parse(&argv).unwrap() {
            Command::Build(b) => *b,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn pv_runs_libxls_sequence_without_a_claim_and_returns_machine_frames() {
        let fake = Fake::default();
        let mut logs = Vec::new();
        let built = build_pv(&fake, &pv_args(""), &mut |l| logs.push(l.to_string())).unwrap();
        assert_eq!(
            built,
            Built {
                store_mfn: 0x8_0101,
                console_mfn: 0x8_0100
            }
        );
        let calls = fake.calls.borrow();
        let expected = [
            "getinfo(5)",
            "xc_dom_allocate(\"c\", \"f\")",
            "configure(ImageSettings { container: Pv, flags: 0, console_evtchn: 4, console_domid: 0, \
             xenstore_evtchn: 3, xenstore_domid: 0, max_vcpus: 2, claim_enabled: false })",
            "xc_dom_kernel_file(/k)",
            "xc_dom_module_file(/r, None)",
            "xc_dom_boot_xen_init(5)",
            "xc_dom_parse_image",
            "xc_dom_mem_init(256)",
            "xc_dom_boot_mem_init",
            "xc_dom_build_image",
            "xc_dom_boot_image",
            "xc_dom_gnttab_init",
            "xc_dom_release",
        ];
        assert_eq!(*calls, expected);
        assert!(logs.iter().any(|l| l.starts_with("xc_dom_boot_mem_init: ")));
        assert!(logs.contains(&"65536 pages".to_string()));
    }

    #[test]
    fn mem_pnode_gives_one_vnode_on_that_node_covering_all_memory() {
        let fake = Fake::default();
        build_pv(&fake, &pv_args(" -mem_pnode 1"), &mut |_| ()).unwrap();
        let calls = fake.calls.borrow();
        let vnuma = calls
            .iter()
            .position(|c| c.starts_with("set_vnuma"))
            .unwrap();
        assert_eq!(
            calls[vnuma],
            "set_vnuma([Vmemrange { start_bytes: 0, end_bytes: 268435456, flags: 0, vnode: 0 }], [1])"
        );
        // Before the memory is allocated.
        let meminit = calls
            .iter()
            .position(|c| c == "xc_dom_boot_mem_init")
            .unwrap();
        assert!(vnuma < meminit);
    }

    #[test]
    fn a_failing_step_stops_the_build_and_still_releases_the_image() {
        let fake = Fake {
            fail_at: Some("xc_dom_parse_image"),
            ..Default::default()
        };
        let err = build_pv(&fake, &pv_args(""), &mut |_| ()).unwrap_err();
        assert_eq!(err.function, "xc_dom_parse_image");
        let calls = fake.calls.borrow();
        assert_eq!(calls[calls.len() - 2], "xc_dom_parse_image");
        assert_eq!(calls[calls.len() - 1], "xc_dom_release");
    }

    fn hvm_args(extra: &str) -> BuildArgs {
        let line = format!(
            "-controloutfd 1 -controlinfd 0 -mode hvm_build -image /hvmloader -domid 6 \
             -store_port 3 -console_port 4 -mem_max_mib 248 -mem_start_mib 248{extra}"
        );
        let argv: Vec<String> = line.split(' ').map(String::from).collect();
        match parse(&argv).unwrap() {
            Command::Build(b) => *b,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn hvm_memory_below_and_above_the_mmio_hole() {
        let small = hvm_memory(248, 200);
        assert_eq!(small.lowmem_end_bytes, 248 << 20);
        assert_eq!(small.highmem_end_bytes, 0);
        assert_eq!(small.target_pages, 200 * 256);
        assert_eq!(small.mmio_start_bytes, 0xF000_0000);
        assert_eq!(
            hvm_e820(&small),
            vec![E820Entry {
                addr_bytes: 0x10_0000,
                size_bytes: (248 << 20) - 0x10_0000,
                kind: 1
            }]
        );
        // 6 GiB: 3.75 GiB below the hole, the rest above 4 GiB.
        let big = hvm_memory(6 << 10, 6 << 10);
        assert_eq!(big.lowmem_end_bytes, 0xF000_0000);
        assert_eq!(big.highmem_end_bytes, (1 << 32) + (6 << 30) - 0xF000_0000);
        let (ranges, pnodes) = hvm_one_node_layout(&big, 1);
        assert_eq!(pnodes, vec![1]);
        let pages: u64 = ranges
            .iter()
            .map(|r| (r.end_bytes - r.start_bytes) >> 12)
            .sum();
        assert_eq!(
            pages,
            (6 << 30) >> 12,
            "the vmemranges cover exactly the RAM"
        );
        assert_eq!(ranges[1].start_bytes, 1 << 32);
        assert_eq!(hvm_e820(&big).len(), 2);
    }

    #[test]
    fn hvm_info_gets_apic_vcpus_online_and_a_checksum_summing_to_zero() {
        let mut page = hvm_info_as_libxenguest_leaves_it();
        update_hvm_info(&mut page, 10).unwrap();
        assert_eq!(page[13], 1, "apic_mode");
        assert_eq!(u32::from_ne_bytes(page[16..20].try_into().unwrap()), 10);
        assert_eq!(&page[32..35], &[0xff, 0x03, 0x00]);
        assert_eq!(page[..48].iter().fold(0u8, |a, b| a.wrapping_add(*b)), 0);
        assert_eq!(
            u32::from_ne_bytes(page[20..24].try_into().unwrap()),
            0xf000,
            "untouched"
        );
        let mut garbage = vec![0u8; 0x800];
        assert_eq!(
            update_hvm_info(&mut garbage, 1).unwrap_err().function,
            "hvm_info_table"
        );
        let mut page = hvm_info_as_libxenguest_leaves_it();
        assert!(update_hvm_info(&mut page, 129).is_err());
    }

    #[test]
    fn hvm_runs_libxls_sequence_with_the_memory_map_before_the_image() {
        let fake = Fake::default();
        let built = build_hvm(&fake, &hvm_args(" -mem_pnode 0"), &mut |_| ()).unwrap();
        // Guest frames, not machine frames.
        assert_eq!(
            built,
            Built {
                store_mfn: 0x101,
                console_mfn: 0x100
            }
        );
        let calls = fake.calls.borrow();
        let names: Vec<&str> = calls.iter().map(|c| c.split('(').next().unwrap()).collect();
        assert_eq!(
            names,
            [
                "getinfo",
                "xc_dom_allocate",
                "configure",
                "configure_hvm",
                "xc_dom_kernel_file",
                "set_vnuma",
                "xc_dom_boot_xen_init",
                "xc_dom_parse_image",
                "xc_dom_mem_init",
                "xc_dom_boot_mem_init",
                "xc_domain_set_memory_map",
                "xc_dom_build_image",
                "xc_dom_boot_image",
                "xc_dom_gnttab_init",
                "update_hvm_info",
                "xc_dom_release",
            ]
        );
        assert!(calls[2].contains("container: Hvm") && calls[2].contains("claim_enabled: false"));
        assert_eq!(calls[8], "xc_dom_mem_init(248)");
    }

    #[test]
    fn hvm_refuses_mem_pnode_with_populate_on_demand() {
        let mut args = hvm_args(" -mem_pnode 0");
        args.mem_start_mib = 128;
        let err = build_hvm(&Fake::default(), &args, &mut |_| ()).unwrap_err();
        assert_eq!((err.function, err.errno), ("hvm_build", libc::EINVAL));
    }

    #[test]
    fn pvh_loads_kernel_modules_and_acpi_tables_without_hvm_info() {
        let line = "-controloutfd 1 -controlinfd 0 -mode pvh_build -image /vmlinuz -cmdline c \
                    -features '' -flags 0 -module /initrd -cmdline m -domid 6 -store_port 3 \
                    -console_port 4 -mem_max_mib 256 -mem_start_mib 256";
        let argv: Vec<String> = line
            .split(' ')
            .map(|a| if a == "''" { String::new() } else { a.into() })
            .collect();
        let Command::Build(args) = parse(&argv).unwrap() else {
            panic!()
        };
        let fake = Fake::default();
        build_pvh(&fake, &args, &mut |_| ()).unwrap();
        let calls = fake.calls.borrow();
        let names: Vec<&str> = calls.iter().map(|c| c.split('(').next().unwrap()).collect();
        assert_eq!(
            names,
            [
                "getinfo",
                "xc_dom_allocate",
                "configure",
                "configure_hvm",
                "xc_dom_kernel_file",
                "xc_dom_module_file",
                "set_acpi_tables",
                "xc_dom_boot_xen_init",
                "xc_dom_parse_image",
                "xc_dom_mem_init",
                "xc_dom_boot_mem_init",
                "xc_domain_set_memory_map",
                "xc_dom_build_image",
                "xc_dom_boot_image",
                "xc_dom_gnttab_init",
                "xc_dom_release",
            ]
        );
        assert_eq!(calls[5], "xc_dom_module_file(/initrd, Some(\"m\"))");
        assert_eq!(calls[6], "set_acpi_tables(4096, 0xfc000000)");
        assert!(calls[3].contains("device_model: false") && calls[3].contains("vga_hole_pages: 0"));
    }

    #[test]
    fn pvh_memory_map_reserves_the_special_pages_and_marks_the_acpi_tables() {
        let m = pvh_memory(256, 256);
        // The hole starts at the ACPI tables, the lowest of the three.
        assert_eq!(m.mmio_start_bytes, 0xFC00_0000);
        assert_eq!((m.lowmem_end_bytes, m.highmem_end_bytes), (256 << 20, 0));
        assert_eq!(
            pvh_e820(&m, 0xFC00_0000, 4096),
            vec![
                E820Entry {
                    addr_bytes: 0,
                    size_bytes: 256 << 20,
                    kind: 1
                },
                E820Entry {
                    addr_bytes: 0xFC00_0000,
                    size_bytes: 4096,
                    kind: 3
                },
                E820Entry {
                    addr_bytes: 0xFEFF_8000,
                    size_bytes: 8 << 12,
                    kind: 2
                },
            ]
        );
    }
}
