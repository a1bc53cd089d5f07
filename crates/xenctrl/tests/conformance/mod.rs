//! The `Hypervisor` conformance suite: what every backend must do as Xen does,
//! written once over `&dyn Hypervisor`. `conformance_tests!` turns each check
//! into a test of a backend's own test binary, given a fixture: the simulator
//! in `crates/xen-sim/tests/conformance.rs` (run by `cargo test`), the real Xen
//! in `crates/xenctrl/tests/real_xen.rs` (run by `npm run test:xen`).
//!
//! A fixture's host is the real-Xen test machine: QEMU's 2 NUMA nodes and 4
//! CPUs, booted by Debian's Xen (4.17 or 4.20: no node claims, no shadow
//! paging). What its memory is differs, so the fixture says (`Host`). A check
//! creates its own domains and destroys them, so checks run one at a time on
//! the real Xen and each on its own host in the simulator.

use std::ops::RangeInclusive;
use xenctrl::{DomainConfig, DomainKind, Hypervisor, XenError, HVM_PARAM_TIMER_MODE};

pub const MIB_PAGES: u64 = 256;

/// What a backend's host is.
pub struct Host {
    /// Each CPU's node, CPU 0 first.
    pub cpu_nodes: Vec<u32>,
    pub distances: Vec<Vec<u32>>,
    pub total_pages: RangeInclusive<u64>,
    /// What each node's size may be: Xen reports a node's span.
    pub node_size_bytes: RangeInclusive<u64>,
}

/// A backend to check and what its host is.
pub struct Fixture<H> {
    pub hypervisor: H,
    pub host: Host,
}

/// One `#[test]` per check, each on a fresh fixture from `$fixture`, with
/// the attributes given first (the real Xen's `#[ignore]`).
macro_rules! conformance_tests {
    ($(#[$attr:meta])* fixture: $fixture:expr) => {
        conformance_tests!(@each [$(#[$attr])*] $fixture;
            physinfo_reports_the_host,
            numa_info_has_the_nodes_and_distances,
            cpu_topology_puts_each_cpu_on_its_node,
            a_pv_domain_gets_vcpus_memmap_and_shadow,
            an_hvm_domain_gets_its_hap_pool_once_it_has_vcpus,
            vcpu_affinity_reads_back_as_effective_masks,
            a_host_wide_claim_is_held_and_cancelled,
            a_node_claim_is_enosys_on_upstream_xen,
            an_hvm_param_on_a_pv_domain_is_refused,
            event_channels_are_allocated_unbound,
            a_created_domain_is_paused_until_unpaused_once,
            a_fresh_domain_reports_no_shutdown,
            destroy_and_a_domain_that_does_not_exist,
        );
    };
    (@each [$($attr:tt)*] $fixture:expr; $check:ident, $($rest:ident,)*) => {
        #[test]
        $($attr)*
        fn $check() {
            let fixture = $fixture;
            conformance::$check(&fixture.hypervisor, &fixture.host);
        }
        conformance_tests!(@each [$($attr)*] $fixture; $($rest,)*);
    };
    (@each [$($attr:tt)*] $fixture:expr;) => {};
}

fn errno(result: Result<impl std::fmt::Debug, XenError>) -> String {
    result.expect_err("expected a failure").code()
}

/// A PV domain with room for 2 vCPUs (not yet allocated); destroyed on drop.
struct Domain<'a> {
    xen: &'a dyn Hypervisor,
    domid: u32,
}

impl<'a> Domain<'a> {
    fn pv(xen: &'a dyn Hypervisor) -> Self {
        Self::new(
            xen,
            &DomainConfig {
                kind: DomainKind::Pv,
                max_vcpus: 2,
                max_evtchn_port: 1023,
                ..Default::default()
            },
        )
    }

    fn new(xen: &'a dyn Hypervisor, config: &DomainConfig) -> Self {
        let domid = xen.create_domain(config).unwrap();
        Domain { xen, domid }
    }
}

impl Drop for Domain<'_> {
    fn drop(&mut self) {
        self.xen.destroy_domain(self.domid).ok();
    }
}

pub fn physinfo_reports_the_host(xen: &dyn Hypervisor, host: &Host) {
    let p = xen.physinfo().unwrap();
    println!("physinfo: {p:?}");
    assert_eq!(
        (p.nr_cpus as usize, p.nr_nodes as usize),
        (host.cpu_nodes.len(), host.distances.len())
    );
    assert!(
        host.total_pages.contains(&p.total_pages),
        "{}",
        p.total_pages
    );
    // Some memory is Xen's and dom0's own.
    assert!(p.free_pages > 0 && p.free_pages < p.total_pages);
    assert_eq!(p.scrub_pages, 0, "upstream Xen reports no scrub progress");
    assert!(p.capabilities.pv);
}

pub fn numa_info_has_the_nodes_and_distances(xen: &dyn Hypervisor, host: &Host) {
    let n = xen.numa_info().unwrap();
    println!("numainfo: {n:?}");
    assert_eq!(n.distances, host.distances);
    assert_eq!(n.nodes.len(), host.distances.len());
    for node in n.nodes.iter().map(|m| m.expect("a valid node")) {
        assert!(
            host.node_size_bytes.contains(&node.size_bytes),
            "{}",
            node.size_bytes
        );
        assert!(node.free_bytes <= node.size_bytes);
    }
}

pub fn cpu_topology_puts_each_cpu_on_its_node(xen: &dyn Hypervisor, host: &Host) {
    let t = xen.cpu_topology().unwrap();
    println!("cputopo: {t:?}");
    let nodes: Vec<u32> = t.cpus.iter().map(|c| c.expect("online").node).collect();
    assert_eq!(nodes, host.cpu_nodes);
}

pub fn a_pv_domain_gets_vcpus_memmap_and_shadow(xen: &dyn Hypervisor, _: &Host) {
    let d = Domain::pv(xen);
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

pub fn an_hvm_domain_gets_its_hap_pool_once_it_has_vcpus(xen: &dyn Hypervisor, _: &Host) {
    let d = Domain::new(
        xen,
        &DomainConfig {
            kind: DomainKind::Hvm,
            hap: true,
            max_vcpus: 1,
            max_evtchn_port: 1023,
            ..Default::default()
        },
    );
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

pub fn vcpu_affinity_reads_back_as_effective_masks(xen: &dyn Hypervisor, _: &Host) {
    let d = Domain::pv(xen);
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
}

pub fn a_host_wide_claim_is_held_and_cancelled(xen: &dyn Hypervisor, _: &Host) {
    let d = Domain::pv(xen);
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

pub fn a_node_claim_is_enosys_on_upstream_xen(xen: &dyn Hypervisor, _: &Host) {
    let d = Domain::pv(xen);
    xen.set_max_memory_kib(d.domid, 64 << 10).unwrap();
    let e = xen
        .claim_pages_on_node(d.domid, 0, 16 * MIB_PAGES)
        .unwrap_err();
    assert_eq!(
        (e.code(), e.operation()),
        ("ENOSYS".to_string(), Some("claim_pages_on_node"))
    );
}

pub fn an_hvm_param_on_a_pv_domain_is_refused(xen: &dyn Hypervisor, _: &Host) {
    let d = Domain::pv(xen);
    let result = xen.set_hvm_param(d.domid, HVM_PARAM_TIMER_MODE, 1);
    println!("HVM param on a PV domain: {result:?}");
    assert_eq!(errno(result), "EINVAL");
}

pub fn event_channels_are_allocated_unbound(xen: &dyn Hypervisor, _: &Host) {
    let d = Domain::pv(xen);
    let store = xen.alloc_unbound_evtchn(d.domid, 0).unwrap();
    let console = xen.alloc_unbound_evtchn(d.domid, 0).unwrap();
    println!("ports: {store}, {console}");
    assert!(store >= 1 && console > store);
}

pub fn a_created_domain_is_paused_until_unpaused_once(xen: &dyn Hypervisor, _: &Host) {
    let d = Domain::pv(xen);
    assert!(xen.domain_info(d.domid).unwrap().paused);
    xen.unpause_domain(d.domid).unwrap();
    assert!(!xen.domain_info(d.domid).unwrap().paused);
    // Not paused any more: Xen refuses a second unpause
    // (domain_unpause_by_systemcontroller).
    assert_eq!(errno(xen.unpause_domain(d.domid)), "EINVAL");
}

pub fn a_fresh_domain_reports_no_shutdown(xen: &dyn Hypervisor, _: &Host) {
    // XEN_DOMINF_shutdown is clear (and the code field all ones, which is
    // no shutdown) until the guest shuts down: neither creating nor
    // unpausing a domain shuts it down.
    let d = Domain::pv(xen);
    let info = xen.domain_info(d.domid).unwrap();
    println!(
        "flags read back: paused {}, shutdown {:?}",
        info.paused, info.shutdown
    );
    assert_eq!(info.shutdown, None);
    xen.set_max_vcpus(d.domid, 2).unwrap();
    xen.unpause_domain(d.domid).unwrap();
    let info = xen.domain_info(d.domid).unwrap();
    assert_eq!((info.paused, info.shutdown), (false, None));
}

pub fn destroy_and_a_domain_that_does_not_exist(xen: &dyn Hypervisor, _: &Host) {
    let domid = Domain::pv(xen).domid; // created and destroyed
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
