//! xen-domain-builder against a real Xen (Debian 12's 4.17, Debian 13's 4.20) under QEMU with
//! 2 NUMA nodes, run in dom0 by `npm run test:xen` (ignored elsewhere). Each
//! test makes a PV domain as build_pre does (vCPUs, maxmem, memmap limit, two
//! unbound event channels for dom0, a claim), runs the builder binary with
//! xenguestArgs()'s arguments, and checks what Xen says about the domain;
//! the PV guest is then booted to its init (xenstored and xenconsoled, which
//! run.sh starts, serve it), the PVH guest as far as PVH Linux gets under
//! this QEMU, and the HVM guest to hvmloader's banner.
//!
//! Paths come from the environment (test-xen.mjs sets them): XEN_BUILDER,
//! GUEST_KERNEL (dom0's vmlinuz), GUEST_RAMDISK (busybox initramfs),
//! HVMLOADER (Debian's).

use std::ffi::{c_char, c_int, c_uint, c_void, CString};
use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use xenctrl::layouts::Domaininfo;
use xenctrl::{DomainConfig, DomainKind, Hypervisor, OpenOptions, XenCtrl};
use xenlib::Loaded;

const GUEST_MIB: u64 = 256;
const PAGES_PER_MIB: u64 = 256;
/// TCG is slow: a 256 MiB build takes seconds; a hang is a failure, not a wait.
const BUILDER_TIME_LIMIT: Duration = Duration::from_secs(180);
const XEN_DOMINF_SHUTDOWN: u32 = 1 << 2;
const SHUTDOWN_REASON_SHIFT: u32 = 16;
const SHUTDOWN_POWEROFF: u32 = 0;
const SHUTDOWN_CRASH: u32 = 3;
const HVM_PARAM_STORE_PFN: c_int = 1;
const HVM_PARAM_STORE_EVTCHN: c_int = 2;
const HVM_PARAM_CONSOLE_PFN: c_int = 17;
const HVM_PARAM_CONSOLE_EVTCHN: c_int = 18;
/// The HVM test guest: 256 MiB with 8 MiB of video RAM, so the build gets
/// 248 MiB (memoryModel's buildMaxMib).
const HVM_VIDEO_MIB: u64 = 8;
/// libxl's VGA hole, 0xA0000-0xBFFFF: not populated.
const VGA_HOLE_PAGES: u64 = 0x20;

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("{name} is not set (npm run test:xen sets it)"))
}

fn xen() -> XenCtrl {
    XenCtrl::open(&OpenOptions::default()).expect("open the real hypervisor")
}

/// What libxenctrl offers beyond the `xenctrl` crate, for checking only:
/// debug keys and the console ring (Xen's own per-node page count), unpause,
/// and the shutdown reason.
struct RawXc {
    xch: *mut c_void,
    send_debug_keys: unsafe extern "C" fn(*mut c_void, *const c_char) -> c_int,
    readconsolering: unsafe extern "C" fn(
        *mut c_void,
        *mut c_char,
        *mut c_uint,
        c_int,
        c_int,
        *mut u32,
    ) -> c_int,
    unpause: unsafe extern "C" fn(*mut c_void, u32) -> c_int,
    getinfolist: unsafe extern "C" fn(*mut c_void, u32, c_uint, *mut Domaininfo) -> c_int,
    hvm_param_get: unsafe extern "C" fn(*mut c_void, u32, c_int, *mut u64) -> c_int,
    _library: Loaded,
}

impl RawXc {
    fn open() -> RawXc {
        // The running release's libxenctrl (sysfs names it).
        let library = xenlib::load::load_versioned("libxenctrl", None).unwrap();
        macro_rules! symbol {
            ($name:literal) => {
                // SAFETY: the C signature of this function in xenctrl.h, the
                // same in every supported release.
                unsafe { library.symbol($name) }.unwrap()
            };
        }
        let open: unsafe extern "C" fn(*mut c_void, *mut c_void, c_uint) -> *mut c_void =
            symbol!("xc_interface_open");
        // SAFETY: null loggers: libxenctrl's default (stderr).
        let xch = unsafe { open(std::ptr::null_mut(), std::ptr::null_mut(), 0) };
        assert!(!xch.is_null());
        RawXc {
            xch,
            send_debug_keys: symbol!("xc_send_debug_keys"),
            readconsolering: symbol!("xc_readconsolering"),
            unpause: symbol!("xc_domain_unpause"),
            getinfolist: symbol!("xc_domain_getinfolist"),
            hvm_param_get: symbol!("xc_hvm_param_get"),
            _library: library,
        }
    }

    /// Xen's `u` debug key: pages of each domain per node, from Xen's own
    /// page lists. Returns (total, pages on each node) of `domid`.
    fn pages_per_node(&self, domid: u32) -> (u64, Vec<u64>) {
        let keys = CString::new("u").unwrap();
        // SAFETY: an open handle and a NUL-terminated key string.
        let rc = unsafe { (self.send_debug_keys)(self.xch, keys.as_ptr()) };
        assert_eq!(rc, 0);
        let mut buffer = vec![0u8; 1 << 20];
        let mut chars = buffer.len() as c_uint;
        let mut index = 0u32;
        // SAFETY: the buffer holds `chars` bytes; not incremental, not cleared.
        let rc = unsafe {
            (self.readconsolering)(
                self.xch,
                buffer.as_mut_ptr().cast(),
                &mut chars,
                0,
                0,
                &mut index,
            )
        };
        assert_eq!(rc, 0);
        let ring = String::from_utf8_lossy(&buffer[..chars as usize]).into_owned();
        // The last report in the ring is this one.
        let report = ring
            .rsplit("Memory location of each domain:")
            .next()
            .expect("the u key printed its report");
        // Xen 4.17 heads each domain "Domain 21 (total: N):", 4.20 "d21 (total: N):".
        let headers = [
            format!("Domain {domid} (total: "),
            format!("d{domid} (total: "),
        ];
        let header_of = |line: &str| {
            let text = line.trim_start_matches("(XEN)").trim_start();
            headers
                .iter()
                .find(|h| text.starts_with(h.as_str()))
                .map(|h| text[h.len()..].to_string())
        };
        let mut lines = report.lines().skip_while(|l| header_of(l).is_none());
        let first = lines
            .next()
            .unwrap_or_else(|| panic!("no {} in:\n{report}", headers.join(" or ")));
        let total: u64 = header_of(first)
            .unwrap()
            .trim_end_matches("):")
            .parse()
            .unwrap();
        let nodes = lines
            .map_while(|l| {
                let rest = l.split("    Node ").nth(1)?;
                rest.split(": ").nth(1)?.trim().parse().ok()
            })
            .collect();
        (total, nodes)
    }

    /// The whole console ring.
    fn console(&self) -> String {
        let mut buffer = vec![0u8; 1 << 20];
        let mut chars = buffer.len() as c_uint;
        let mut index = 0u32;
        // SAFETY: the buffer holds `chars` bytes; not incremental, not cleared.
        let rc = unsafe {
            (self.readconsolering)(
                self.xch,
                buffer.as_mut_ptr().cast(),
                &mut chars,
                0,
                0,
                &mut index,
            )
        };
        assert_eq!(rc, 0);
        String::from_utf8_lossy(&buffer[..chars as usize]).into_owned()
    }

    fn hvm_param(&self, domid: u32, param: c_int) -> u64 {
        let mut value = 0u64;
        // SAFETY: an open handle; value is an out parameter.
        let rc = unsafe { (self.hvm_param_get)(self.xch, domid, param, &mut value) };
        assert_eq!(rc, 0);
        value
    }

    fn unpause(&self, domid: u32) {
        // SAFETY: an open handle, a plain domid.
        assert_eq!(unsafe { (self.unpause)(self.xch, domid) }, 0);
    }

    /// The raw domaininfo flags of `domid`.
    fn flags(&self, domid: u32) -> u32 {
        let mut info = Domaininfo::default();
        // SAFETY: room for the one domaininfo asked for.
        let n = unsafe { (self.getinfolist)(self.xch, domid, 1, &mut info) };
        assert!(n == 1 && u32::from(info.domain) == domid);
        info.flags
    }
}

/// Xen's xenstore client library, for what build_post does with a built PV
/// guest: its console and store keys, and introducing it to xenstored (which
/// run.sh starts, with xenconsoled).
struct XenStore {
    handle: *mut c_void,
    write: unsafe extern "C" fn(*mut c_void, u32, *const c_char, *const c_void, c_uint) -> bool,
    introduce: unsafe extern "C" fn(*mut c_void, c_uint, std::ffi::c_ulong, c_uint) -> bool,
    close: unsafe extern "C" fn(*mut c_void),
    _library: Loaded,
}

impl XenStore {
    fn open() -> XenStore {
        let library = xenlib::load::load_stable(&["libxenstore.so.4"], None).unwrap();
        macro_rules! symbol {
            ($name:literal) => {
                // SAFETY: the C signature of this function in xenstore.h
                // (libxenstore.so.4 in every supported release).
                unsafe { library.symbol($name) }.unwrap()
            };
        }
        let open: unsafe extern "C" fn(std::ffi::c_ulong) -> *mut c_void = symbol!("xs_open");
        // SAFETY: flags 0: read-write, socket or xenbus device.
        let handle = unsafe { open(0) };
        assert!(!handle.is_null(), "xenstored is not running");
        XenStore {
            handle,
            write: symbol!("xs_write"),
            introduce: symbol!("xs_introduce_domain"),
            close: symbol!("xs_close"),
            _library: library,
        }
    }

    fn write(&self, path: &str, value: &str) {
        let path = CString::new(path).unwrap();
        // SAFETY: an open handle, no transaction (XBT_NULL), a NUL-terminated
        // path and `len` bytes of value.
        let ok = unsafe {
            (self.write)(
                self.handle,
                0,
                path.as_ptr(),
                value.as_ptr().cast(),
                value.len() as c_uint,
            )
        };
        assert!(ok, "xs_write {path:?}");
    }

    fn introduce(&self, domid: u32, store_mfn: u64, store_port: u32) {
        // SAFETY: an open handle and plain values.
        assert!(unsafe { (self.introduce)(self.handle, domid, store_mfn, store_port) });
    }
}

impl Drop for XenStore {
    fn drop(&mut self) {
        // SAFETY: the handle from xs_open, closed once.
        unsafe { (self.close)(self.handle) };
    }
}

/// A PV domain made ready as build_pre makes it; destroyed on drop.
struct Guest<'a> {
    xen: &'a XenCtrl,
    domid: u32,
    store_port: u32,
    console_port: u32,
}

impl<'a> Guest<'a> {
    fn new(xen: &'a XenCtrl, mib: u64, claim: bool) -> Guest<'a> {
        let domid = xen
            .create_domain(&DomainConfig {
                kind: DomainKind::Pv,
                max_vcpus: 1,
                max_evtchn_port: 1023,
                ..DomainConfig::default()
            })
            .unwrap();
        // Owned (destroyed on drop) from here on, whatever fails next.
        let mut guest = Guest {
            xen,
            domid,
            store_port: 0,
            console_port: 0,
        };
        xen.set_max_vcpus(domid, 1).unwrap();
        // libxl's LIBXL_MAXMEM_CONSTANT: 1 MiB above the target.
        xen.set_max_memory_kib(domid, (mib << 10) + 1024).unwrap();
        xen.set_memmap_limit(domid, mib << 10).unwrap();
        guest.store_port = xen.alloc_unbound_evtchn(domid, 0).unwrap();
        guest.console_port = xen.alloc_unbound_evtchn(domid, 0).unwrap();
        if claim {
            xen.claim_pages(domid, mib * PAGES_PER_MIB).unwrap();
        }
        guest
    }

    /// An HVM domain as build_pre makes it: vCPUs, then its HAP pool (libxl's
    /// size for one vCPU and 256 MiB: 3 MiB), maxmem, two event channels.
    fn hvm(xen: &'a XenCtrl, mib: u64) -> Guest<'a> {
        Guest::hvm_container(xen, mib, DomainKind::Hvm)
    }

    /// The same for an HVM or a PVH domain.
    fn hvm_container(xen: &'a XenCtrl, mib: u64, kind: DomainKind) -> Guest<'a> {
        let domid = xen
            .create_domain(&DomainConfig {
                kind,
                hap: kind != DomainKind::Pv,
                max_vcpus: 1,
                max_evtchn_port: 1023,
                ..DomainConfig::default()
            })
            .unwrap();
        let mut guest = Guest {
            xen,
            domid,
            store_port: 0,
            console_port: 0,
        };
        xen.set_max_vcpus(domid, 1).unwrap();
        xen.set_shadow_allocation_mib(domid, 3).unwrap();
        xen.set_max_memory_kib(domid, (mib << 10) + 1024).unwrap();
        guest.store_port = xen.alloc_unbound_evtchn(domid, 0).unwrap();
        guest.console_port = xen.alloc_unbound_evtchn(domid, 0).unwrap();
        guest
    }

    /// xenguestArgs() for an HVM build of this domain.
    fn hvm_args(&self, build_mib: u64, extra: &[&str]) -> Vec<String> {
        let mut args = self.args("", "", build_mib, extra);
        // HVM has no -cmdline, -ramdisk, -features or -flags.
        args.drain(8..16);
        args[5] = "hvm_build".into();
        args[7] = env("HVMLOADER");
        args
    }

    /// xenguestArgs() for a PVH build of this domain: dom0's kernel, its
    /// command line, the ramdisk as a boot module.
    fn pvh_args(&self, extra: &[&str]) -> Vec<String> {
        let mut args = self.args(&env("GUEST_KERNEL"), "", GUEST_MIB, extra);
        args[5] = "pvh_build".into();
        // The whole boot on the console. clearcpuid=rdtscp: under this QEMU
        // (TCG) Xen cannot emulate RDTSCP for a guest in an HVM container
        // (TCG's SVM gives no next RIP: "SVM Insn len emulation failed" on
        // Xen's console), and a PVH Linux using it crashes right after its FPU
        // set-up, whoever built it: xl's PVH guest too (xl-create.sh).
        args[9] = "console=hvc0 clearcpuid=rdtscp".into();
        let ramdisk = args.iter().position(|a| a == "-ramdisk").unwrap();
        args.drain(ramdisk..ramdisk + 2);
        let domid_at = args.iter().position(|a| a == "-domid").unwrap();
        args.splice(
            domid_at..domid_at,
            ["-module".to_string(), env("GUEST_RAMDISK")],
        );
        args
    }

    /// xenguestArgs() for this domain, control pipe on stdout.
    fn args(&self, image: &str, ramdisk: &str, mib: u64, extra: &[&str]) -> Vec<String> {
        let mut args: Vec<String> = [
            "-controloutfd",
            "1",
            "-controlinfd",
            "0",
            "-mode",
            "linux_build",
            "-image",
            image,
            "-cmdline",
            "console=hvc0 quiet",
            "-ramdisk",
            ramdisk,
            "-features",
            "",
            "-flags",
            "0",
        ]
        .map(String::from)
        .to_vec();
        for (name, value) in [
            ("-domid", self.domid),
            ("-store_port", self.store_port),
            ("-store_domid", 0),
            ("-console_port", self.console_port),
            ("-console_domid", 0),
            ("-mem_max_mib", mib as u32),
            ("-mem_start_mib", mib as u32),
        ] {
            args.push(name.into());
            args.push(value.to_string());
        }
        args.extend(extra.iter().map(|s| s.to_string()));
        args
    }
}

impl Drop for Guest<'_> {
    fn drop(&mut self) {
        self.xen.destroy_domain(self.domid).ok();
    }
}

struct Run {
    status: Option<i32>,
    lines: Vec<String>,
    stderr: String,
    elapsed: Duration,
}

impl Run {
    fn last(&self) -> &str {
        self.lines.last().map_or("", String::as_str)
    }
}

/// Runs the builder; kills it past the time limit (a hang fails the test).
fn run_builder(args: &[String]) -> Run {
    let started = Instant::now();
    let mut child = Command::new(env("XEN_BUILDER"))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > BUILDER_TIME_LIMIT {
            child.kill().ok();
            panic!("the builder ran past {BUILDER_TIME_LIMIT:?}: killed");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let elapsed = started.elapsed();
    let (mut out, mut err) = (String::new(), String::new());
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    println!(
        "builder exited {:?} after {elapsed:?}:\n{out}stderr: {err}",
        status.code()
    );
    Run {
        status: status.code(),
        lines: out.lines().map(String::from).collect(),
        stderr: err,
        elapsed,
    }
}

fn result_mfns(run: &Run) -> (u64, u64) {
    let payload = run
        .last()
        .strip_prefix("result:")
        .unwrap_or_else(|| panic!("no result line: {:?}\n{}", run.lines, run.stderr));
    let mfns: Vec<u64> = payload.split(' ').map(|m| m.parse().unwrap()).collect();
    assert_eq!(mfns.len(), 2, "{payload}");
    (mfns[0], mfns[1])
}

#[test]
#[ignore = "needs a real Xen dom0: npm run test:xen"]
fn builds_a_256_mib_pv_guest_that_uses_up_its_claim_and_boots() {
    let xen = xen();
    let raw = RawXc::open();
    let guest = Guest::new(&xen, GUEST_MIB, true);
    assert_eq!(
        xen.domain_info(guest.domid).unwrap().outstanding_pages,
        GUEST_MIB * PAGES_PER_MIB
    );
    let run = run_builder(&guest.args(&env("GUEST_KERNEL"), &env("GUEST_RAMDISK"), GUEST_MIB, &[]));
    assert_eq!(run.status, Some(0), "{}", run.stderr);
    println!(
        "xen-test-timing: builder, 256 MiB PV guest: {} ms",
        run.elapsed.as_millis()
    );
    assert!(run
        .lines
        .iter()
        .all(|l| l.starts_with("info:") || l.starts_with("result:")));
    let (store_mfn, console_mfn) = result_mfns(&run);
    let max_mfn = xen.physinfo().unwrap().max_mfn;
    assert!(store_mfn != console_mfn && store_mfn > 0 && console_mfn > 0);
    assert!(
        store_mfn <= max_mfn && console_mfn <= max_mfn,
        "{store_mfn} {console_mfn} {max_mfn}"
    );

    let info = xen.domain_info(guest.domid).unwrap();
    println!("after the build: {info:?}");
    // Every page of the build, and no more; the claim used up (meminit_pv
    // cancels what is left, and nothing is).
    assert_eq!(info.tot_pages, GUEST_MIB * PAGES_PER_MIB);
    assert_eq!(info.outstanding_pages, 0);
    let (total, _) = raw.pages_per_node(guest.domid);
    assert_eq!(total, GUEST_MIB * PAGES_PER_MIB);

    // The guest boots to its init, which prints its marker and powers off.
    let flags = boot_to_marker(&raw, &guest, "builder-pv", store_mfn, console_mfn);
    let reason = (flags >> SHUTDOWN_REASON_SHIFT) & 0xff;
    assert!(
        flags & XEN_DOMINF_SHUTDOWN != 0 && reason == SHUTDOWN_POWEROFF,
        "the guest did not power off: flags {flags:#x}, reason {reason} (crash is {SHUTDOWN_CRASH})"
    );
}

/// Does build_post's part (the console and store keys, xenstored told of the
/// domain), unpauses the guest, and waits for its init's marker in the
/// console log xenconsoled writes; then up to a minute for it to shut down.
/// Returns the domain's flags.
fn boot_to_marker(
    raw: &RawXc,
    guest: &Guest,
    name: &str,
    store_frame: u64,
    console_frame: u64,
) -> u32 {
    let log = introduce_and_unpause(raw, guest, name, store_frame, console_frame);
    let console = wait_for_console(&log, &["guest-marker:"], Duration::from_secs(120));
    assert!(
        console.contains("guest-marker: PV guest up"),
        "no marker from the guest"
    );
    let marked = Instant::now();
    let mut flags = raw.flags(guest.domid);
    while flags & XEN_DOMINF_SHUTDOWN == 0 && marked.elapsed() < Duration::from_secs(60) {
        std::thread::sleep(Duration::from_millis(500));
        flags = raw.flags(guest.domid);
    }
    flags
}

/// build_post's part: the console and store keys, and xenstored told of the
/// domain; then unpause. Returns the console log xenconsoled writes.
fn introduce_and_unpause(
    raw: &RawXc,
    guest: &Guest,
    name: &str,
    store_frame: u64,
    console_frame: u64,
) -> String {
    let name = format!("{name}-{}", guest.domid);
    let store = XenStore::open();
    let dir = format!("/local/domain/{}", guest.domid);
    for (key, value) in [
        ("name", name.clone()),
        ("domid", guest.domid.to_string()),
        ("console/ring-ref", console_frame.to_string()),
        ("console/port", guest.console_port.to_string()),
        ("console/type", "xenconsoled".into()),
        ("store/ring-ref", store_frame.to_string()),
        ("store/port", guest.store_port.to_string()),
    ] {
        store.write(&format!("{dir}/{key}"), &value);
    }
    store.introduce(guest.domid, store_frame, guest.store_port);
    raw.unpause(guest.domid);
    format!("/var/log/xen/console/guest-{name}.log")
}

/// The console log once it holds one of `until`, or after `limit`.
fn wait_for_console(log: &str, until: &[&str], limit: Duration) -> String {
    let started = Instant::now();
    let console = loop {
        let console = std::fs::read_to_string(log).unwrap_or_default();
        if until.iter().any(|u| console.contains(u)) || started.elapsed() > limit {
            break console;
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    println!(
        "the guest's console after {:?}:\n{}",
        started.elapsed(),
        console.trim_end()
    );
    console
}

#[test]
#[ignore = "needs a real Xen dom0: npm run test:xen"]
fn builds_a_256_mib_pvh_guest_that_boots() {
    let xen = xen();
    let raw = RawXc::open();
    let guest = Guest::hvm_container(&xen, GUEST_MIB, DomainKind::Pvh);
    let domid = guest.domid;
    let args = guest.pvh_args(&[]);
    let run = run_builder(&args);
    assert_eq!(run.status, Some(0), "{}", run.stderr);
    println!(
        "xen-test-timing: builder, 256 MiB PVH guest: {} ms",
        run.elapsed.as_millis()
    );
    let (store_gfn, console_gfn) = result_mfns(&run);
    assert_eq!(store_gfn, raw.hvm_param(domid, HVM_PARAM_STORE_PFN));
    assert_eq!(console_gfn, raw.hvm_param(domid, HVM_PARAM_CONSOLE_PFN));
    let info = xen.domain_info(domid).unwrap();
    println!("after the build: {info:?}");
    // The guest got what the builder gave it (the memory map, the ACPI
    // tables, the ramdisk module, the command line) and boots to its init.
    let log = introduce_and_unpause(&raw, &guest, "builder-pvh", store_gfn, console_gfn);
    let console = wait_for_console(&log, &["guest-marker:"], Duration::from_secs(150));
    for expected in [
        "Command line: console=hvc0",
        "BIOS-e820: [mem 0x0000000000100000-0x000000000fffffff] usable",
        "BIOS-e820: [mem 0x00000000fc000000-0x00000000fc000fff] ACPI data",
        "BIOS-e820: [mem 0x00000000feff8000-0x00000000feffffff] reserved",
        "RAMDISK: [mem ",
        "ACPI: RSDP 0x00000000FC000000",
        "ACPI: FACP 0x00000000FC0000C0",
        "ACPI: APIC 0x00000000FC000200",
        // One CPU from the MADT: 6.1 says "smpboot: Allowing 1 CPUs", 6.12
        // "CPU topo: Allowing 1 present CPUs".
        "Allowing 1 ",
        "Booting kernel on Xen PVH",
        "guest-marker: PV guest up",
    ] {
        assert!(
            console.contains(expected),
            "no {expected:?} on the guest's console"
        );
    }
    assert!(
        console.contains("smpboot: Allowing 1 CPUs") || console.contains("Allowing 1 present CPUs"),
        "the guest's kernel did not find exactly one CPU"
    );
    let flags = raw.flags(domid);
    let reason = (flags >> SHUTDOWN_REASON_SHIFT) & 0xff;
    assert!(
        flags & XEN_DOMINF_SHUTDOWN == 0 || reason == SHUTDOWN_POWEROFF,
        "the guest shut down with reason {reason} (crash is {SHUTDOWN_CRASH})"
    );
}

#[test]
#[ignore = "needs a real Xen dom0: npm run test:xen"]
fn mem_pnode_puts_every_page_on_that_node() {
    let xen = xen();
    let raw = RawXc::open();
    for node in [1u32, 0] {
        let free_before: Vec<u64> = xen
            .numa_info()
            .unwrap()
            .nodes
            .iter()
            .map(|n| n.unwrap().free_bytes)
            .collect();
        let guest = Guest::new(&xen, GUEST_MIB, true);
        let pnode = node.to_string();
        let run = run_builder(&guest.args(
            &env("GUEST_KERNEL"),
            &env("GUEST_RAMDISK"),
            GUEST_MIB,
            &["-mem_pnode", &pnode],
        ));
        assert_eq!(run.status, Some(0), "{}", run.stderr);
        result_mfns(&run);
        assert!(run
            .lines
            .iter()
            .any(|l| l == &format!("info:all 256 MiB on node {node} (one vNUMA node)")));
        let (total, per_node) = raw.pages_per_node(guest.domid);
        println!("node {node}: Xen counts {total} pages: {per_node:?}");
        assert_eq!(total, GUEST_MIB * PAGES_PER_MIB);
        let mut expected = vec![0; 2];
        expected[node as usize] = total;
        assert_eq!(per_node, expected, "pages per node");
        // The same from the free memory of each node.
        let free_after: Vec<u64> = xen
            .numa_info()
            .unwrap()
            .nodes
            .iter()
            .map(|n| n.unwrap().free_bytes)
            .collect();
        let used_mib: Vec<i64> = (0..2)
            .map(|i| (free_before[i] as i64 - free_after[i] as i64) >> 20)
            .collect();
        println!("node {node}: MiB taken from each node: {used_mib:?}");
        // Give or take what the daemons and the last destroyed domain do meanwhile.
        assert!(
            used_mib[node as usize] >= GUEST_MIB as i64 - 4,
            "{used_mib:?}"
        );
        assert!(used_mib[1 - node as usize].abs() < 4, "{used_mib:?}");
    }
}

/// A failed build: exit 1, an `error:` line naming `function` with `errno`,
/// quickly, and no claim of the builder's own left on the domain.
fn assert_fails(image: &str, ramdisk: &str, function: &str, errno: i32) {
    let xen = xen();
    let guest = Guest::new(&xen, GUEST_MIB, false);
    let run = run_builder(&guest.args(image, ramdisk, GUEST_MIB, &[]));
    assert_eq!(run.status, Some(1));
    let prefix = format!("error:xenguest: {function}: [{errno}] ");
    assert!(
        run.last().starts_with(&prefix),
        "expected {prefix}..., got {:?}",
        run.lines
    );
    assert!(run.elapsed < Duration::from_secs(60), "{:?}", run.elapsed);
    assert_eq!(xen.domain_info(guest.domid).unwrap().outstanding_pages, 0);
}

#[test]
#[ignore = "needs a real Xen dom0: npm run test:xen"]
fn a_missing_kernel_fails_in_xc_dom_kernel_file_with_enoent() {
    assert_fails(
        "/nonexistent/vmlinuz",
        &env("GUEST_RAMDISK"),
        "xc_dom_kernel_file",
        libc::ENOENT,
    );
}

#[test]
#[ignore = "needs a real Xen dom0: npm run test:xen"]
fn a_file_that_is_not_a_kernel_fails_in_xc_dom_parse_image() {
    // A shell script: no loader recognises it.
    let script = std::env::current_dir().unwrap().join("run.sh");
    assert_fails(
        script.to_str().unwrap(),
        "",
        "xc_dom_parse_image",
        libc::EINVAL,
    );
}

#[test]
#[ignore = "needs a real Xen dom0: npm run test:xen"]
fn a_ramdisk_larger_than_the_memory_fails_with_enomem() {
    // Sparse: nothing is read before the size check.
    let path = std::env::temp_dir().join("builder-huge-ramdisk");
    let file = std::fs::File::create(&path).unwrap();
    file.set_len((GUEST_MIB + 64) << 20).unwrap();
    assert_fails(
        &env("GUEST_KERNEL"),
        path.to_str().unwrap(),
        "xc_dom_build_image",
        libc::ENOMEM,
    );
    std::fs::remove_file(&path).ok();
}

#[test]
#[ignore = "needs a real Xen dom0: npm run test:xen"]
fn builds_an_hvm_guest_that_runs_hvmloader() {
    let xen = xen();
    let raw = RawXc::open();
    let guest = Guest::hvm(&xen, GUEST_MIB);
    let build_mib = GUEST_MIB - HVM_VIDEO_MIB;
    let run = run_builder(&guest.hvm_args(build_mib, &[]));
    assert_eq!(run.status, Some(0), "{}", run.stderr);
    println!(
        "xen-test-timing: builder, 256 MiB HVM guest: {} ms",
        run.elapsed.as_millis()
    );
    let (store_gfn, console_gfn) = result_mfns(&run);
    // Guest frames, where libxenguest told Xen they are.
    assert_eq!(store_gfn, raw.hvm_param(guest.domid, HVM_PARAM_STORE_PFN));
    assert_eq!(
        console_gfn,
        raw.hvm_param(guest.domid, HVM_PARAM_CONSOLE_PFN)
    );
    assert_eq!(
        raw.hvm_param(guest.domid, HVM_PARAM_STORE_EVTCHN),
        u64::from(guest.store_port)
    );
    assert_eq!(
        raw.hvm_param(guest.domid, HVM_PARAM_CONSOLE_EVTCHN),
        u64::from(guest.console_port)
    );
    let info = xen.domain_info(guest.domid).unwrap();
    println!("after the build: {info:?}");
    assert!(info.hvm);
    // The RAM but the VGA hole, and a few special pages (xenstore, console, ioreq...).
    let ram_pages = build_mib * PAGES_PER_MIB - VGA_HOLE_PAGES;
    assert!(
        (ram_pages..ram_pages + 64).contains(&info.tot_pages),
        "{} pages, expected {ram_pages} and a few",
        info.tot_pages
    );
    assert_eq!(info.outstanding_pages, 0);

    // hvmloader runs: its banner reaches Xen's console (guest_loglvl=all).
    raw.unpause(guest.domid);
    let banner = format!("(d{}) HVM Loader", guest.domid);
    let started = Instant::now();
    while !raw.console().contains(&banner) && started.elapsed() < Duration::from_secs(30) {
        std::thread::sleep(Duration::from_millis(500));
    }
    let console = raw.console();
    let lines: Vec<&str> = console
        .lines()
        .filter(|l| l.contains(&format!("(d{})", guest.domid)))
        .collect();
    println!(
        "the guest on Xen's console:\n{}",
        lines
            .iter()
            .take(20)
            .copied()
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert!(console.contains(&banner), "no {banner:?} within 30 s");
    let flags = raw.flags(guest.domid);
    assert!(
        flags & XEN_DOMINF_SHUTDOWN == 0,
        "hvmloader shut the guest down: reason {}",
        (flags >> SHUTDOWN_REASON_SHIFT) & 0xff
    );
}

#[test]
#[ignore = "needs a real Xen dom0: npm run test:xen"]
fn hvm_and_pvh_mem_pnode_put_every_page_on_that_node() {
    let xen = xen();
    let raw = RawXc::open();
    for kind in [DomainKind::Hvm, DomainKind::Pvh] {
        let guest = Guest::hvm_container(&xen, GUEST_MIB, kind);
        // libxenguest allocates the RAM by the vNUMA layout, but the first
        // 640 KiB (HVM), the special pages and the ACPI tables (PVH) without
        // a node: those follow the domain's node affinity, which build_pre
        // sets from the soft affinity (node 1's CPUs are 2 and 3).
        xen.set_vcpu_affinity(guest.domid, 0, None, Some(&[2, 3]))
            .unwrap();
        let args = match kind {
            DomainKind::Hvm => guest.hvm_args(GUEST_MIB - HVM_VIDEO_MIB, &["-mem_pnode", "1"]),
            _ => guest.pvh_args(&["-mem_pnode", "1"]),
        };
        let run = run_builder(&args);
        assert_eq!(run.status, Some(0), "{}", run.stderr);
        let (total, per_node) = raw.pages_per_node(guest.domid);
        println!("{kind:?} on node 1: Xen counts {total} pages: {per_node:?}");
        assert_eq!(per_node, vec![0, total]);
    }
}

#[test]
#[ignore = "needs a real Xen dom0: npm run test:xen"]
fn hvm_starting_below_its_maximum_is_populated_on_demand() {
    let xen = xen();
    let guest = Guest::hvm(&xen, GUEST_MIB);
    let start_mib = 128;
    let mut args = guest.hvm_args(GUEST_MIB - HVM_VIDEO_MIB, &[]);
    let start = args.iter().position(|a| a == "-mem_start_mib").unwrap() + 1;
    args[start] = start_mib.to_string();
    let run = run_builder(&args);
    assert_eq!(run.status, Some(0), "{}", run.stderr);
    result_mfns(&run);
    let info = xen.domain_info(guest.domid).unwrap();
    println!("PoD, start {start_mib} MiB of 248: {info:?}");
    // The PoD target (the start, less the VGA hole) and the special pages:
    // the guest's map holds 248 MiB, Xen backs 128.
    let target_pages = start_mib * PAGES_PER_MIB - VGA_HOLE_PAGES;
    assert!(
        (target_pages..target_pages + 64).contains(&info.tot_pages),
        "{} pages, expected {target_pages} and a few",
        info.tot_pages
    );
}
