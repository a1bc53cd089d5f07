//! The hypercall layer against a real Xen (Debian 12's 4.17, Debian 13's 4.20), booted under
//! QEMU with 2 NUMA nodes (distance 21) and 4 CPUs by `npm run test:xen`,
//! which runs these tests inside dom0. Elsewhere they are ignored.
//!
//! The `Hypervisor` conformance suite (`conformance/`, which the simulator
//! passes too) runs here first; the tests below it are the real backend's
//! own: the library it opens, what it refuses before calling Xen, and
//! libxenctrl's log.
//!
//! They run one at a time (`--test-threads=1`): each creates and destroys
//! its own domain.

#[macro_use]
mod conformance;

use conformance::{Fixture, Host};
use xenctrl::{DomainConfig, DomainKind, Hypervisor, LibraryLog, OpenOptions, XenCtrl, XenError};

fn xen() -> XenCtrl {
    XenCtrl::open(&OpenOptions::default()).expect("open the real hypervisor")
}

fn real() -> Fixture<XenCtrl> {
    Fixture {
        hypervisor: xen(),
        host: Host {
            cpu_nodes: vec![0, 0, 1, 1],
            distances: vec![vec![10, 21], vec![21, 10]],
            // 6 GiB of RAM, some of it Xen's own.
            total_pages: 1_400_001..=1_572_864,
            // QEMU gave each node 3 GiB. Xen reports a node's span: node 0's
            // includes the PCI hole below 4 GiB (5 GiB here), and one node has a
            // little less.
            node_size_bytes: (2900 << 20) + 1..=6 << 30,
        },
    }
}

conformance_tests!(
    #[ignore = "needs a real Xen dom0: npm run test:xen"]
    fixture: real()
);

fn errno(result: Result<impl std::fmt::Debug, XenError>) -> String {
    result.expect_err("expected a failure").code()
}

#[test]
#[ignore = "needs a real Xen dom0: npm run test:xen"]
fn opens_the_running_release() {
    let xen = xen();
    // The release sysfs names, and its own library.
    let read =
        |part: &str| std::fs::read_to_string(format!("/sys/hypervisor/version/{part}")).unwrap();
    let running = format!("{}.{}", read("major").trim(), read("minor").trim());
    assert_eq!(xen.version().to_string(), running);
    assert_eq!(xen.library_name(), xen.release().soname("libxenctrl"));
    println!("Xen {running}, {}", xen.library_name());
}

#[test]
#[ignore = "needs a real Xen dom0: npm run test:xen"]
fn a_cpu_beyond_the_cpumap_is_refused_before_the_call() {
    let xen = xen();
    let domid = xen
        .create_domain(&DomainConfig {
            kind: DomainKind::Pv,
            max_vcpus: 2,
            max_evtchn_port: 1023,
            ..Default::default()
        })
        .unwrap();
    xen.set_max_vcpus(domid, 2).unwrap();
    // The cpumap has 8 CPUs: CPU 9 is refused by us, not by Xen.
    let beyond = xen.set_vcpu_affinity(domid, 0, Some(&[9]), None);
    xen.destroy_domain(domid).ok();
    assert_eq!(beyond.unwrap_err().code(), "INVALID_ARGUMENT");
}

/// What the process writes to its stderr while `f` runs (up to a pipe's
/// buffer: libxenctrl's few lines).
fn stderr_during(f: impl FnOnce()) -> String {
    use std::io::Read;
    use std::os::fd::AsRawFd;
    let (mut reader, writer) = std::io::pipe().unwrap();
    // SAFETY: fd 2 is open; the copy is this function's, closed below.
    let saved = unsafe { libc::dup(2) };
    assert!(saved >= 0);
    // SAFETY: both descriptors are open; fd 2 now writes into the pipe.
    unsafe { libc::dup2(writer.as_raw_fd(), 2) };
    f();
    // SAFETY: restores fd 2 from the saved copy (closing the pipe's copy).
    unsafe { libc::dup2(saved, 2) };
    // SAFETY: the saved copy is this function's and closed once.
    unsafe { libc::close(saved) };
    drop(writer);
    let mut out = Vec::new();
    reader.read_to_end(&mut out).unwrap();
    String::from_utf8_lossy(&out).into_owned()
}

#[test]
#[ignore = "needs a real Xen dom0: npm run test:xen"]
fn libxenctrl_is_quiet_unless_asked() {
    // A failing call: the error carries the errno; libxenctrl prints nothing.
    let quiet = stderr_during(|| {
        let xen = xen();
        assert_eq!(errno(xen.alloc_unbound_evtchn(0x7000, 0)), "ESRCH");
    });
    assert_eq!(quiet, "");
    let loud = stderr_during(|| {
        let xen = XenCtrl::open(&OpenOptions {
            library_log: LibraryLog::Stderr,
            ..OpenOptions::default()
        })
        .unwrap();
        assert_eq!(errno(xen.alloc_unbound_evtchn(0x7000, 0)), "ESRCH");
    });
    println!("libxenctrl's own log: {loud:?}");
    assert!(loud.contains("xc: error"), "{loud}");
}
