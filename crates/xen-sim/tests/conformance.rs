//! The `Hypervisor` conformance suite (`crates/xenctrl/tests/conformance`)
//! against the simulator, on a host shaped as the real-Xen test machine:
//! the `qemu-2-node` preset, with a domain holding some memory as Xen and
//! dom0 do on a real host.

#[path = "../../xenctrl/tests/conformance/mod.rs"]
#[macro_use]
mod conformance;

use conformance::{Fixture, Host, MIB_PAGES};
use xen_sim::{preset, SimHost};
use xenctrl::{DomainConfig, DomainKind, Hypervisor};

const GIB_PAGES: u64 = 262_144;

fn simulated() -> Fixture<SimHost> {
    let sim = SimHost::new(preset("qemu-2-node").unwrap()).unwrap();
    let own = sim
        .create_domain(&DomainConfig {
            kind: DomainKind::Pv,
            max_vcpus: 1,
            ..Default::default()
        })
        .unwrap();
    sim.set_max_memory_kib(own, 64 << 10).unwrap();
    sim.populate(own, 64 * MIB_PAGES).unwrap();
    Fixture {
        hypervisor: sim,
        host: Host {
            cpu_nodes: vec![0, 0, 1, 1],
            distances: vec![vec![10, 21], vec![21, 10]],
            total_pages: 2 * GIB_PAGES..=2 * GIB_PAGES,
            node_size_bytes: 1 << 30..=1 << 30,
        },
    }
}

conformance_tests!(fixture: simulated());
