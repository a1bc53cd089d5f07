//! Helpers shared by the integration tests: the shared data folder, JSON
//! topologies, id conversions, and a literal reference implementation of
//! xenopsd's candidates and plans.
#![allow(dead_code)]

use numa::{LargeHostCandidates, NodeId, NodeSet, Topology, TopologySpec};
use serde_json::Value;
use std::path::PathBuf;

/// xenopsd's topologies and decisions: `__test__/fixtures/xenopsd` (see its
/// README.md), or the folder `XDB_SHARED_DATA` names.
pub fn shared_data() -> PathBuf {
    let dir = std::env::var_os("XDB_SHARED_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../__test__/fixtures/xenopsd")
        });
    assert!(
        dir.is_dir(),
        "xenopsd fixtures not found at {} (set XDB_SHARED_DATA)",
        dir.display()
    );
    dir
}

/// A node id the test knows to be in range.
pub fn node(id: usize) -> NodeId {
    NodeId::new(id).unwrap_or_else(|| panic!("node id {id} out of range"))
}

/// A node set as plain ids, ascending, to compare with expected lists.
pub fn ids(nodes: NodeSet) -> Vec<usize> {
    nodes.iter().map(NodeId::index).collect()
}

pub fn read_json(relative: &str) -> Value {
    let path = shared_data().join(relative);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

pub fn spec_from_json(v: &Value) -> TopologySpec {
    let distances: Vec<Vec<i64>> = v["distances"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| {
            row.as_array()
                .unwrap()
                .iter()
                .map(|d| d.as_i64().unwrap())
                .collect()
        })
        .collect();
    let n = distances.len();
    let cpu_to_node = match v.get("cpu_to_node") {
        Some(c) => c
            .as_array()
            .unwrap()
            .iter()
            .map(|x| Some(node(x.as_u64().unwrap() as usize)))
            .collect(),
        None => (0..n).map(|id| Some(node(id))).collect(),
    };
    let node_cores = match v.get("node_cores") {
        Some(c) => c
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_u64().unwrap() as u32)
            .collect(),
        None => vec![1; n],
    };
    TopologySpec {
        distances,
        cpu_to_node,
        node_cores,
        large_host: LargeHostCandidates::SingleNodes,
    }
}

pub fn topology_from_json(v: &Value) -> Topology {
    Topology::new(&spec_from_json(v)).expect("valid topology")
}

/// The rule written out as plainly as possible, with lists, full scans, no
/// tricks and plain integers for ids: every non-empty subset of the valid
/// nodes is a candidate (single nodes only past 16 valid nodes), ranked by
/// largest then average distance; a plan takes, of the fitting candidates
/// whose average is within 1e-3 of the first fitting one's, the least used,
/// then the one whose descending id list is smallest.
pub mod reference {
    use numa::NodeId;

    pub const UNREACHABLE: u64 = 0xFFFF_FFFF;

    pub struct Host {
        pub d: Vec<Vec<u64>>,
        pub node_cpus: Vec<Vec<usize>>,
        pub cores: Vec<u64>,
        /// (max, average, node ids ascending), sorted; `None` when NUMA is off.
        pub candidates: Option<Vec<(u64, f64, Vec<usize>)>>,
        pub usage: Vec<u64>,
    }

    pub fn make(distances: &[Vec<i64>], cpu_to_node: &[Option<NodeId>], cores: &[u32]) -> Host {
        let d: Vec<Vec<u64>> = distances
            .iter()
            .map(|r| {
                r.iter()
                    .map(|&x| {
                        if (0..=255).contains(&x) {
                            x as u64
                        } else {
                            UNREACHABLE
                        }
                    })
                    .collect()
            })
            .collect();
        let n = d.len();
        let valid: Vec<usize> = (0..n).filter(|&i| d[i][i] != UNREACHABLE).collect();
        let mut node_cpus = vec![Vec::new(); n];
        for (cpu, node) in cpu_to_node.iter().enumerate() {
            if let Some(node) = node.map(NodeId::index) {
                if valid.contains(&node) {
                    node_cpus[node].push(cpu);
                }
            }
        }
        let reasonable = (0..n).all(|i| {
            (d[i][i] == UNREACHABLE || d[i][i] == 10)
                && d[i].iter().all(|&x| x >= 10 || x == UNREACHABLE)
        });
        let off = node_cpus.iter().all(Vec::is_empty) || !reasonable;
        let candidates = (!off).then(|| {
            let subsets: Vec<Vec<usize>> = if valid.len() > 16 {
                valid.iter().map(|&v| vec![v]).collect()
            } else {
                (1u64..1 << valid.len())
                    .map(|m| {
                        valid
                            .iter()
                            .enumerate()
                            .filter(|(i, _)| m >> i & 1 == 1)
                            .map(|(_, &v)| v)
                            .collect()
                    })
                    .collect()
            };
            let mut keyed: Vec<(u64, f64, Vec<usize>)> = subsets
                .into_iter()
                .map(|s| {
                    let pairs: Vec<u64> = s
                        .iter()
                        .flat_map(|&a| s.iter().map(|&b| d[a][b]).collect::<Vec<_>>())
                        .collect();
                    let max = *pairs.iter().max().unwrap();
                    let avg = pairs.iter().sum::<u64>() as f64 / pairs.len() as f64;
                    (max, avg, s)
                })
                .collect();
            keyed.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.partial_cmp(&b.1).unwrap()));
            keyed
        });
        Host {
            d,
            node_cpus,
            cores: cores.iter().map(|&c| c as u64).collect(),
            candidates,
            usage: vec![0; n],
        }
    }

    /// The plan's node ids, ascending, or `None`.
    pub fn plan(
        host: &mut Host,
        memory: u64,
        vcpus: u64,
        cores: u64,
        free: &[u64],
    ) -> Option<Vec<usize>> {
        let candidates = host.candidates.as_ref()?;
        let fitting: Vec<&(u64, f64, Vec<usize>)> = candidates
            .iter()
            .filter(|(_, _, s)| {
                let mem: u128 = s.iter().map(|&n| free[n] as u128).sum();
                let cpus: u64 = s.iter().map(|&n| host.node_cpus[n].len() as u64).sum();
                let c: u64 = s.iter().map(|&n| host.cores[n]).sum();
                memory as u128 <= mem && vcpus <= cpus && cores <= c
            })
            .collect();
        let first = fitting.first()?.1;
        let run = fitting
            .iter()
            .take_while(|(_, avg, _)| (avg - first).abs() < 1e-3);
        let best = run
            .map(|(_, _, s)| {
                let sum: u64 = s.iter().map(|&n| host.usage[n]).sum();
                let mut desc = s.clone();
                desc.reverse();
                (sum, desc, s.clone())
            })
            .min()?;
        for &n in &best.2 {
            host.usage[n] += 1;
        }
        Some(best.2)
    }
}
