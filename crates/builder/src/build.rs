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
}

/// One `struct xc_dom_image`, released on drop (`xc_dom_release`).
pub trait DomImage {
    fn configure(&mut self, settings: &ImageSettings);
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
    build_dom(&mut dom, args.domid, mem_mib, log)?;
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

/// `libxl__build_dom`: from `xc_dom_boot_xen_init` to `xc_dom_gnttab_init`.
fn build_dom<I: DomImage>(
    dom: &mut I,
    domid: u32,
    mem_mib: u64,
    log: &mut dyn FnMut(&str),
) -> Result<(), Failure> {
    let mem_mib = u32::try_from(mem_mib)
        .map_err(|_| Failure::new("xc_dom_mem_init", libc::EINVAL, "memory size too large"))?;
    step(log, "xc_dom_boot_xen_init", || dom.boot_xen_init(domid))?;
    step(log, "xc_dom_parse_image", || dom.parse_image())?;
    step(log, "xc_dom_mem_init", || dom.mem_init(mem_mib))?;
    step(log, "xc_dom_boot_mem_init", || dom.boot_mem_init())?;
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
    }

    impl DomImage for FakeImage {
        fn configure(&mut self, s: &ImageSettings) {
            self.calls.borrow_mut().push(format!("configure({s:?})"));
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
}
