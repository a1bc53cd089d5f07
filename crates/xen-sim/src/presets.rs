//! Hosts to simulate: the real NUMA topologies of xenopsd's tests and
//! documentation (`__test__/fixtures/xenopsd/numa`, see its README.md), and
//! the 2-node machine the real-Xen tests boot under QEMU.

use crate::HostSpec;
use xenctrl::CpuLocation;

const GIB: u64 = 1 << 30;

pub struct Preset {
    pub name: &'static str,
    pub description: &'static str,
    pub build: fn() -> HostSpec,
}

/// `nodes` nodes of `cpus_per_node` CPUs, two threads per core, one socket
/// per `nodes_per_socket` nodes.
fn cpus(nodes: u32, cpus_per_node: u32, nodes_per_socket: u32) -> Vec<CpuLocation> {
    (0..nodes * cpus_per_node)
        .map(|cpu| {
            let node = cpu / cpus_per_node;
            CpuLocation {
                core: cpu / 2,
                socket: node / nodes_per_socket,
                node,
            }
        })
        .collect()
}

fn amd_opteron_6272() -> HostSpec {
    HostSpec {
        distances: vec![
            vec![10, 16, 16, 22, 16, 22, 16, 22],
            vec![16, 10, 22, 16, 16, 22, 22, 16],
            vec![16, 22, 10, 16, 16, 16, 16, 16],
            vec![22, 16, 16, 10, 16, 16, 22, 22],
            vec![16, 16, 16, 16, 10, 16, 16, 22],
            vec![22, 22, 16, 16, 16, 10, 22, 16],
            vec![16, 22, 16, 22, 16, 22, 10, 16],
            vec![22, 16, 16, 22, 22, 16, 16, 10],
        ],
        cpus: cpus(8, 4, 2),
        node_memory_bytes: vec![16 * GIB; 8],
        ..HostSpec::default()
    }
}

fn two_socket_4_node() -> HostSpec {
    HostSpec {
        distances: vec![
            vec![10, 11, 21, 21],
            vec![11, 10, 21, 21],
            vec![21, 21, 10, 11],
            vec![21, 21, 11, 10],
        ],
        cpus: cpus(4, 4, 2),
        node_memory_bytes: vec![16 * GIB; 4],
        ..HostSpec::default()
    }
}

/// Like the real machine: Debian's upstream Xen, without node claims, scrub
/// reporting or shadow paging.
fn qemu_2_node() -> HostSpec {
    HostSpec {
        distances: vec![vec![10, 21], vec![21, 10]],
        cpus: (0..4)
            .map(|cpu| CpuLocation {
                core: cpu,
                socket: 0,
                node: cpu / 2,
            })
            .collect(),
        node_memory_bytes: vec![GIB, GIB],
        node_claims: false,
        shadow_paging: false,
        scrub_reporting: crate::ScrubReporting::Upstream,
        ..HostSpec::default()
    }
}

fn linear_16_node() -> HostSpec {
    let n: u32 = 16;
    HostSpec {
        distances: (0..n)
            .map(|i| (0..n).map(|j| 10 + 11 * i.abs_diff(j)).collect())
            .collect(),
        cpus: cpus(n, 16, 2),
        node_memory_bytes: vec![16 * GIB; n as usize],
        ..HostSpec::default()
    }
}

pub const PRESETS: &[Preset] = &[
    Preset {
        name: "amd-opteron-6272",
        description: "xenopsd's AMD Opteron 6272: 8 nodes of 4 CPUs, distances 10/16/22, 16 GiB per node",
        build: amd_opteron_6272,
    },
    Preset {
        name: "two-socket-4-node",
        description: "xenopsd's documented 2-socket host with sub-NUMA clusters: 4 nodes, 11 within a socket, 21 across, 16 GiB per node",
        build: two_socket_4_node,
    },
    Preset {
        name: "qemu-2-node",
        description: "the real-Xen test machine under QEMU (Debian's upstream Xen 4.17: no node claims, no shadow paging): 2 nodes of 2 CPUs, distance 21, 1 GiB per node",
        build: qemu_2_node,
    },
    Preset {
        name: "linear-16-node",
        description: "xenopsd's linear example: 16 nodes of 16 CPUs, distance 10 + 11 × |i - j|, 16 GiB per node",
        build: linear_16_node,
    },
];

pub fn preset(name: &str) -> Option<HostSpec> {
    PRESETS.iter().find(|p| p.name == name).map(|p| (p.build)())
}
