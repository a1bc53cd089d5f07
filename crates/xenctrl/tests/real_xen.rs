//! The hypercall layer against a real Xen (Debian 12's 4.17, Debian 13's 4.20), booted under
//! QEMU with 2 NUMA nodes (distance 21) and 4 CPUs by `npm run test:xen`,
//! which runs these tests inside dom0. Elsewhere they are ignored.
//!
//! They run one at a time (`--test-threads=1`): each creates and destroys
//! its own domain.

use xenctrl::{
    DomainConfig, DomainKind, Hypervisor, LibraryLog, OpenOptions, XenCtrl, XenError,
    HVM_PARAM_TIMER_MODE,
};

const MIB_PAGES: u64 = 256;

fn xen() -> XenCtrl {
    XenCtrl::open(&OpenOptions::default()).expect("open the real hypervisor")
}

fn errno(result: Result<impl std::fmt::Debug, XenError>) -> String {
    result.expect_err("expected a failure").code()
}

/// A PV domain with 2 vCPUs allocated and room for 64 MiB; destroyed on drop.
struct Domain<'a> {
    xen: &'a XenCtrl,
    domid: u32,
}

impl<'a> Domain<'a> {
    fn pv(xen: &'a XenCtrl) -> Self {
        let domid = xen
            .create_domain(&DomainConfig {
                kind: DomainKind::Pv,
                max_vcpus: 2,
                max_evtchn_port: 1023,
                ..Default::default()
            })
            .unwrap();
        Domain { xen, domid }
    }
}

impl Drop for Domain<'_> {
    fn drop(&mut self) {
        self.xen.destroy_domain(self.domid).ok();
    }
}

#[test]
#[ignore = "needs a real Xen dom0: npm run test:xen"]
fn opens_the_running_release_and_reads_physinfo() {
    let xen = xen();
    // The release sysfs names, and its own library.
    let read =
        |part: &str| std::fs::read_to_string(format!("/sys/hypervisor/version/{part}")).unwrap();
    let running = format!("{}.{}", read("major").trim(), read("minor").trim());
    assert_eq!(xen.version().to_string(), running);
    assert_eq!(xen.library_name(), xen.release().soname("libxenctrl"));
    println!("Xen {running}, {}", xen.library_name());
    let p = xen.physinfo().unwrap();
    println!("physinfo: {p:?}");
    assert_eq!((p.nr_cpus, p.nr_nodes), (4, 2));
    // 6 GiB of RAM, some of it Xen's own.
    assert!(
        p.total_pages > 1_400_000 && p.total_pages <= 1_572_864,
        "{}",
        p.total_pages
    );
    assert!(p.free_pages > 0 && p.free_pages < p.total_pages);
    assert_eq!(p.scrub_pages, 0, "upstream Xen reports no scrub progress");
    assert!(p.capabilities.pv);
}

#[test]
#[ignore = "needs a real Xen dom0: npm run test:xen"]
fn numa_info_has_the_nodes_and_distances_qemu_was_given() {
    let n = xen().numa_info().unwrap();
    println!("numainfo: {n:?}");
    assert_eq!(n.distances, vec![vec![10, 21], vec![21, 10]]);
    assert_eq!(n.nodes.len(), 2);
    for node in n.nodes.iter().map(|m| m.expect("a valid node")) {
        // QEMU gave each node 3 GiB. Xen reports a node's span: node 0's
        // includes the PCI hole below 4 GiB (5 GiB here), and one node has a
        // little less.
        assert!(
            node.size_bytes > (2900 << 20) && node.size_bytes <= (6 << 30),
            "{}",
            node.size_bytes
        );
        assert!(node.free_bytes <= node.size_bytes);
    }
}

#[test]
#[ignore = "needs a real Xen dom0: npm run test:xen"]
fn cpu_topology_puts_cpus_0_1_on_node_0_and_2_3_on_node_1() {
    let t = xen().cpu_topology().unwrap();
    println!("cputopo: {t:?}");
    let nodes: Vec<u32> = t.cpus.iter().map(|c| c.expect("online").node).collect();
    assert_eq!(nodes, vec![0, 0, 1, 1]);
}

#[test]
#[ignore = "needs a real Xen dom0: npm run test:xen"]
fn a_pv_domain_gets_vcpus_memmap_and_shadow() {
    let xen = xen();
    let d = Domain::pv(&xen);
    let info = xen.domain_info(d.domid).unwrap();
    assert!(!info.hvm && !info.dying);
    // max_vcpus must repeat createdomain's value.
    assert_eq!(errno(xen.set_max_vcpus(d.domid, 3)), "EINVAL");
    xen.set_max_vcpus(d.domid, 2).unwrap();
    assert_eq!(xen.domain_info(d.domid).unwrap().max_vcpu_id, Some(1));
    xen.set_max_memory_kib(d.domid, 64 << 10).unwrap();
    assert_eq!(xen.domain_info(d.domid).unwrap().max_pages, 64 * MIB_PAGES);
    xen.set_memmap_limit(d.domid, 64 << 10).unwrap();
    // Debian's Xen has no shadow paging: a PV domain has no shadow pool.
    assert!(!xen.physinfo().unwrap().capabilities.shadow);
    assert_eq!(errno(xen.set_shadow_allocation_mib(d.domid, 4)), "EINVAL");
    assert_eq!(errno(xen.shadow_allocation_mib(d.domid)), "EINVAL");
}

#[test]
#[ignore = "needs a real Xen dom0: npm run test:xen"]
fn an_hvm_domain_gets_its_hap_pool_once_it_has_vcpus() {
    let xen = xen();
    let config = DomainConfig {
        kind: DomainKind::Hvm,
        hap: true,
        max_vcpus: 1,
        max_evtchn_port: 1023,
        ..Default::default()
    };
    let domid = xen.create_domain(&config).unwrap();
    let d = Domain { xen: &xen, domid };
    assert!(xen.domain_info(d.domid).unwrap().hvm);
    // A new domain may hold nothing until its maximum is set.
    assert_eq!(xen.domain_info(d.domid).unwrap().max_pages, 0);
    // No paging operation before the vCPUs exist.
    assert_eq!(errno(xen.shadow_allocation_mib(d.domid)), "EINVAL");
    xen.set_max_vcpus(d.domid, 1).unwrap();
    let info = xen.domain_info(d.domid).unwrap();
    assert_eq!((info.max_vcpu_id, info.online_vcpus), (Some(0), 0));
    let free = xen.physinfo().unwrap().free_pages;
    xen.set_shadow_allocation_mib(d.domid, 8).unwrap();
    assert_eq!(xen.shadow_allocation_mib(d.domid).unwrap(), 8);
    // The pool comes out of free memory.
    assert!(free - xen.physinfo().unwrap().free_pages >= 7 * MIB_PAGES);
    xen.set_hvm_param(d.domid, HVM_PARAM_TIMER_MODE, 1).unwrap();
    assert_eq!(
        errno(xen.set_hvm_param(d.domid, HVM_PARAM_TIMER_MODE, 7)),
        "EINVAL"
    );
    xen.set_memmap_limit(d.domid, 64 << 10).unwrap();
}

#[test]
#[ignore = "needs a real Xen dom0: npm run test:xen"]
fn vcpu_affinity_reads_back_as_effective_masks() {
    let xen = xen();
    let d = Domain::pv(&xen);
    xen.set_max_vcpus(d.domid, 2).unwrap();
    // Hard: the mask ∩ online CPUs; CPUs past the last online one (but within
    // the 8-CPU cpumap) are dropped.
    let a = xen
        .set_vcpu_affinity(d.domid, 0, Some(&[0, 1, 2, 5]), Some(&[2, 3]))
        .unwrap();
    assert_eq!((a.hard, a.soft), (vec![0, 1, 2], vec![2]));
    let soft_only = xen
        .set_vcpu_affinity(d.domid, 1, None, Some(&[2, 3]))
        .unwrap();
    assert_eq!(soft_only.soft, vec![2, 3]);
    let read = xen.vcpu_affinity(d.domid, 0).unwrap();
    println!("read back: {read:?}");
    assert_eq!(read.hard, vec![0, 1, 2]);
    assert_eq!(read.soft, vec![2, 3]);
    assert_eq!(
        errno(xen.set_vcpu_affinity(d.domid, 0, Some(&[]), None)),
        "EINVAL"
    );
    assert_eq!(
        errno(xen.set_vcpu_affinity(d.domid, 5, Some(&[0]), None)),
        "EINVAL"
    );
    // Beyond the cpumap itself: refused before the call, by us.
    let beyond = xen
        .set_vcpu_affinity(d.domid, 0, Some(&[9]), None)
        .unwrap_err();
    assert_eq!(beyond.code(), "INVALID_ARGUMENT");
}

#[test]
#[ignore = "needs a real Xen dom0: npm run test:xen"]
fn a_host_wide_claim_is_held_and_cancelled() {
    let xen = xen();
    let d = Domain::pv(&xen);
    // No claim above the domain's maximum.
    assert_eq!(errno(xen.claim_pages(d.domid, 1)), "EINVAL");
    xen.set_max_memory_kib(d.domid, 64 << 10).unwrap();
    let before = xen.physinfo().unwrap().outstanding_pages;
    xen.claim_pages(d.domid, 32 * MIB_PAGES).unwrap();
    assert_eq!(
        xen.domain_info(d.domid).unwrap().outstanding_pages,
        32 * MIB_PAGES
    );
    assert_eq!(
        xen.physinfo().unwrap().outstanding_pages,
        before + 32 * MIB_PAGES
    );
    // One claim per domain.
    assert_eq!(errno(xen.claim_pages(d.domid, 16 * MIB_PAGES)), "EINVAL");
    xen.claim_pages(d.domid, 0).unwrap();
    assert_eq!(xen.domain_info(d.domid).unwrap().outstanding_pages, 0);
    assert_eq!(xen.physinfo().unwrap().outstanding_pages, before);
    // More than the host has free.
    let huge = xen.physinfo().unwrap().total_pages;
    xen.set_max_memory_kib(d.domid, huge * 8).unwrap();
    assert_eq!(errno(xen.claim_pages(d.domid, huge)), "ENOMEM");
}

#[test]
#[ignore = "needs a real Xen dom0: npm run test:xen"]
fn a_node_claim_is_enosys_on_upstream_xen() {
    let xen = xen();
    let d = Domain::pv(&xen);
    xen.set_max_memory_kib(d.domid, 64 << 10).unwrap();
    let e = xen
        .claim_pages_on_node(d.domid, 0, 16 * MIB_PAGES)
        .unwrap_err();
    assert_eq!(
        (e.code(), e.operation()),
        ("ENOSYS".to_string(), Some("claim_pages_on_node"))
    );
}

#[test]
#[ignore = "needs a real Xen dom0: npm run test:xen"]
fn an_hvm_param_on_a_pv_domain_is_refused() {
    let xen = xen();
    let d = Domain::pv(&xen);
    let result = xen.set_hvm_param(d.domid, HVM_PARAM_TIMER_MODE, 1);
    println!("HVM param on a PV domain: {result:?}");
    assert_eq!(errno(result), "EINVAL");
}

#[test]
#[ignore = "needs a real Xen dom0: npm run test:xen"]
fn event_channels_are_allocated_unbound() {
    let xen = xen();
    let d = Domain::pv(&xen);
    let store = xen.alloc_unbound_evtchn(d.domid, 0).unwrap();
    let console = xen.alloc_unbound_evtchn(d.domid, 0).unwrap();
    println!("ports: {store}, {console}");
    assert!(store >= 1 && console > store);
}

#[test]
#[ignore = "needs a real Xen dom0: npm run test:xen"]
fn a_created_domain_is_paused_until_unpaused_once() {
    let xen = xen();
    let d = Domain::pv(&xen);
    assert!(xen.domain_info(d.domid).unwrap().paused);
    xen.unpause_domain(d.domid).unwrap();
    assert!(!xen.domain_info(d.domid).unwrap().paused);
    // Not paused any more: Xen refuses a second unpause.
    assert_eq!(errno(xen.unpause_domain(d.domid)), "EINVAL");
}

#[test]
#[ignore = "needs a real Xen dom0: npm run test:xen"]
fn destroy_and_a_domain_that_does_not_exist() {
    let xen = xen();
    let domid = Domain::pv(&xen).domid; // created and destroyed
    assert_eq!(errno(xen.domain_info(domid)), "ESRCH");
    let gone = 0x7000;
    assert_eq!(errno(xen.set_max_vcpus(gone, 1)), "ESRCH");
    assert_eq!(
        errno(xen.set_vcpu_affinity(gone, 0, Some(&[0]), None)),
        "ESRCH"
    );
    assert_eq!(errno(xen.vcpu_affinity(gone, 0)), "ESRCH");
    assert_eq!(errno(xen.alloc_unbound_evtchn(gone, 0)), "ESRCH");
    assert_eq!(errno(xen.set_max_memory_kib(gone, 1024)), "ESRCH");
    assert_eq!(errno(xen.set_memmap_limit(gone, 1024)), "ESRCH");
    assert_eq!(errno(xen.set_shadow_allocation_mib(gone, 1)), "ESRCH");
    assert_eq!(
        errno(xen.set_hvm_param(gone, HVM_PARAM_TIMER_MODE, 1)),
        "ESRCH"
    );
    assert_eq!(errno(xen.destroy_domain(gone)), "ESRCH");
    // XENMEM_claim_pages says EINVAL for a domain that does not exist.
    assert_eq!(errno(xen.claim_pages(gone, 1)), "EINVAL");
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
