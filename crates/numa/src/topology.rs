//! A host's NUMA topology and its candidate node sets (xenopsd's `NUMA.make`).

use crate::cpuset::CpuSet;
use crate::ids::{all_cpu_ids, all_node_ids, CpuId, NodeId, MAX_CPUS, MAX_NODES};
use crate::nodeset::NodeSet;

/// What Xen reports for a pair of nodes with no path between them, and the
/// value such a pair counts as when candidates are ranked.
pub const UNREACHABLE: u32 = 0xFFFF_FFFF;

/// The ACPI SLIT distance of a node to itself.
pub const LOCAL_DISTANCE: u32 = 10;

/// Up to this many valid nodes, every subset is a candidate (xenopsd's limit).
pub const MAX_NODES_ALL_SUBSETS: usize = 16;

/// How large a host's neighbourhood candidates may grow (see
/// [`LargeHostCandidates::Neighbourhoods`]).
pub const MAX_NEIGHBOURHOOD_NODES: usize = 8;

/// A distance as the host reported it; above 255 or below 0 means unreachable.
pub fn normalize_distance(reported: i64) -> u32 {
    if (0..=255).contains(&reported) {
        reported as u32
    } else {
        UNREACHABLE
    }
}

/// Which candidates a host with more than [`MAX_NODES_ALL_SUBSETS`] valid
/// nodes gets, where trying every subset would cost too much.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LargeHostCandidates {
    /// Single nodes only, as xenopsd does: a VM larger than one node is not placed.
    #[default]
    SingleNodes,
    /// Single nodes, and for each node the sets grown from it by adding the
    /// nearest other nodes one at a time, up to [`MAX_NEIGHBOURHOOD_NODES`]:
    /// a VM larger than one node still gets close nodes. Our own extension.
    Neighbourhoods,
}

/// What a topology is built from: the host's raw report.
#[derive(Clone, Debug, Default)]
pub struct TopologySpec {
    /// Node-to-node distances, row-major, as reported (see [`normalize_distance`]).
    pub distances: Vec<Vec<i64>>,
    /// The node of each CPU, indexed by CPU id; `None` for a CPU with no
    /// node (offline).
    pub cpu_to_node: Vec<Option<NodeId>>,
    /// Physical cores per node.
    pub node_cores: Vec<u32>,
    pub large_host: LargeHostCandidates,
}

/// A topology that cannot be built: the input is inconsistent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TopologyError {
    TooManyNodes {
        nodes: usize,
    },
    TooManyCpus {
        cpus: usize,
    },
    /// The row of `node` does not have one entry per node.
    NotSquare {
        node: NodeId,
        len: usize,
        nodes: usize,
    },
    NodeCoresLength {
        len: usize,
        nodes: usize,
    },
    CpuNodeOutOfRange {
        cpu: CpuId,
        node: NodeId,
        nodes: usize,
    },
}

impl TopologyError {
    /// The input field the error is about.
    pub fn field(&self) -> &'static str {
        match self {
            TopologyError::TooManyNodes { .. } | TopologyError::NotSquare { .. } => "distances",
            TopologyError::TooManyCpus { .. } | TopologyError::CpuNodeOutOfRange { .. } => {
                "cpuToNode"
            }
            TopologyError::NodeCoresLength { .. } => "nodeCores",
        }
    }
}

impl std::fmt::Display for TopologyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match *self {
            TopologyError::TooManyNodes { nodes } => {
                write!(
                    f,
                    "distances: {nodes} nodes, at most {MAX_NODES} are supported"
                )
            }
            TopologyError::TooManyCpus { cpus } => {
                write!(
                    f,
                    "cpuToNode: {cpus} CPUs, at most {MAX_CPUS} are supported"
                )
            }
            TopologyError::NotSquare { node, len, nodes } => write!(
                f,
                "distances[{node}]: {len} entries, expected {nodes} (the matrix must be square)"
            ),
            TopologyError::NodeCoresLength { len, nodes } => {
                write!(
                    f,
                    "nodeCores: {len} entries, expected one per node ({nodes})"
                )
            }
            TopologyError::CpuNodeOutOfRange { cpu, node, nodes } => write!(
                f,
                "cpuToNode[{cpu}]: node {node} does not exist (the host has {nodes} nodes)"
            ),
        }
    }
}

impl std::error::Error for TopologyError {}

/// Why NUMA placement is off for a host. Not an error: builds go on without it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NumaOff {
    /// Every CPU is on a node whose self-distance is unreachable (or on none).
    NoCpuOnValidNode,
    /// A reachable self-distance other than 10, or a reachable entry below 10.
    UnreasonableDistance {
        from: NodeId,
        to: NodeId,
        distance: u32,
    },
}

impl std::fmt::Display for NumaOff {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match *self {
            NumaOff::NoCpuOnValidNode => {
                write!(f, "no CPU is on a reachable node: the distance table only has unreachable nodes")
            }
            NumaOff::UnreasonableDistance { from, to, distance } if from == to => write!(
                f,
                "the distance table is invalid: node {from} is at distance {distance} from itself, expected {LOCAL_DISTANCE}"
            ),
            NumaOff::UnreasonableDistance { from, to, distance } => write!(
                f,
                "the distance table is invalid: node {from} to node {to} is {distance}, below the local distance {LOCAL_DISTANCE}"
            ),
        }
    }
}

/// A set of nodes a VM may be placed on, with its ranking key and the
/// static totals the fit test needs. Candidates come only from
/// [`Topology::candidates`], computed from their nodes, so a candidate's key
/// and totals always are those of its nodes.
#[derive(Clone, Debug, PartialEq)]
pub struct Candidate {
    nodes: NodeSet,
    max_distance: u32,
    average_distance: f64,
    cpu_count: u32,
    core_count: u64,
}

impl Candidate {
    /// The candidate for a set of valid nodes of `topology`.
    pub(crate) fn new(topology: &Topology, nodes: NodeSet) -> Candidate {
        let mut max_distance = 0;
        let mut sum: u64 = 0;
        for a in nodes.iter() {
            for b in nodes.iter() {
                let d = topology.distance(a, b);
                max_distance = max_distance.max(d);
                sum += u64::from(d);
            }
        }
        let pairs = (nodes.len() * nodes.len()) as f64;
        Candidate {
            nodes,
            max_distance,
            average_distance: sum as f64 / pairs,
            cpu_count: nodes
                .iter()
                .map(|n| topology.node_cpu_count[n.index()])
                .sum(),
            core_count: nodes
                .iter()
                .map(|n| u64::from(topology.node_cores[n.index()]))
                .sum(),
        }
    }

    pub fn nodes(&self) -> NodeSet {
        self.nodes
    }

    /// The largest distance over all ordered pairs of the set, self-pairs included.
    pub fn max_distance(&self) -> u32 {
        self.max_distance
    }

    /// The average of those distances.
    pub fn average_distance(&self) -> f64 {
        self.average_distance
    }

    /// CPUs on the set's nodes.
    pub fn cpu_count(&self) -> u32 {
        self.cpu_count
    }

    /// Physical cores on the set's nodes.
    pub fn core_count(&self) -> u64 {
        self.core_count
    }
}

/// A validated host topology. Its candidates are computed once, sorted.
#[derive(Clone, Debug)]
pub struct Topology {
    node_count: usize,
    /// Normalized distances, row-major.
    distances: Vec<u32>,
    cpu_count: usize,
    /// CPUs of each node; empty for an invalid node.
    node_cpus: Vec<CpuSet>,
    node_cpu_count: Vec<u32>,
    node_cores: Vec<u32>,
    valid: NodeSet,
    numa_off: Option<NumaOff>,
    candidates: Vec<Candidate>,
}

impl Topology {
    pub fn new(spec: &TopologySpec) -> Result<Topology, TopologyError> {
        let node_count = spec.distances.len();
        if node_count > MAX_NODES {
            return Err(TopologyError::TooManyNodes { nodes: node_count });
        }
        if let Some((node, row)) = all_node_ids()
            .zip(&spec.distances)
            .find(|(_, row)| row.len() != node_count)
        {
            return Err(TopologyError::NotSquare {
                node,
                len: row.len(),
                nodes: node_count,
            });
        }
        if spec.node_cores.len() != node_count {
            return Err(TopologyError::NodeCoresLength {
                len: spec.node_cores.len(),
                nodes: node_count,
            });
        }
        if spec.cpu_to_node.len() > MAX_CPUS {
            return Err(TopologyError::TooManyCpus {
                cpus: spec.cpu_to_node.len(),
            });
        }
        if let Some((cpu, node)) = all_cpu_ids()
            .zip(&spec.cpu_to_node)
            .find_map(|(cpu, node)| node.filter(|n| n.index() >= node_count).map(|n| (cpu, n)))
        {
            return Err(TopologyError::CpuNodeOutOfRange {
                cpu,
                node,
                nodes: node_count,
            });
        }

        let distances: Vec<u32> = spec
            .distances
            .iter()
            .flat_map(|row| row.iter().map(|&d| normalize_distance(d)))
            .collect();
        let distance = |a: NodeId, b: NodeId| distances[a.index() * node_count + b.index()];

        // A node unreachable from itself is not a node CPUs can be scheduled on.
        let valid: NodeSet = all_node_ids()
            .take(node_count)
            .filter(|&n| distance(n, n) != UNREACHABLE)
            .collect();
        let mut node_cpus = vec![CpuSet::new(); node_count];
        for (cpu, node) in all_cpu_ids().zip(&spec.cpu_to_node) {
            if let Some(node) = node.filter(|&n| valid.contains(n)) {
                node_cpus[node.index()].insert(cpu);
            }
        }
        let node_cpu_count: Vec<u32> = node_cpus.iter().map(|s| s.len() as u32).collect();

        let numa_off = if node_cpus.iter().all(CpuSet::is_empty) {
            Some(NumaOff::NoCpuOnValidNode)
        } else {
            first_unreasonable_distance(node_count, &distances)
        };

        let mut topology = Topology {
            node_count,
            distances,
            cpu_count: spec.cpu_to_node.len(),
            node_cpus,
            node_cpu_count,
            node_cores: spec.node_cores.clone(),
            valid,
            numa_off,
            candidates: Vec::new(),
        };
        if topology.numa_off.is_none() {
            topology.candidates = topology.generate_candidates(spec.large_host);
        }
        Ok(topology)
    }

    pub fn node_count(&self) -> usize {
        self.node_count
    }

    pub fn cpu_count(&self) -> usize {
        self.cpu_count
    }

    /// The normalized distance from node `a` to node `b`.
    pub fn distance(&self, a: NodeId, b: NodeId) -> u32 {
        self.distances[a.index() * self.node_count + b.index()]
    }

    /// Nodes that are reachable from themselves.
    pub fn valid_nodes(&self) -> NodeSet {
        self.valid
    }

    pub fn node_cpus(&self, node: NodeId) -> &CpuSet {
        &self.node_cpus[node.index()]
    }

    pub fn node_cores(&self, node: NodeId) -> u32 {
        self.node_cores[node.index()]
    }

    /// Why NUMA placement is off for this host, if it is.
    pub fn numa_off(&self) -> Option<&NumaOff> {
        self.numa_off.as_ref()
    }

    /// The candidates, best first; empty when NUMA placement is off.
    pub fn candidates(&self) -> &[Candidate] {
        &self.candidates
    }

    /// All CPUs of the given nodes.
    pub fn cpus_of(&self, nodes: NodeSet) -> CpuSet {
        let mut cpus = CpuSet::new();
        for node in nodes.iter().filter(|n| n.index() < self.node_count) {
            cpus.union_with(&self.node_cpus[node.index()]);
        }
        cpus
    }

    fn generate_candidates(&self, large_host: LargeHostCandidates) -> Vec<Candidate> {
        let valid: Vec<NodeId> = self.valid.iter().collect();
        let mut candidates: Vec<Candidate> = if valid.len() <= MAX_NODES_ALL_SUBSETS {
            // Bit i of `mask` selects the i-th valid node: generation order is
            // the order of increasing masks, which the stable sort keeps for ties.
            (1u32..1 << valid.len())
                .map(|mask| {
                    let nodes = crate::cpuset::BitIter(u64::from(mask))
                        .fold(NodeSet::EMPTY, |set, i| set.with(valid[i as usize]));
                    Candidate::new(self, nodes)
                })
                .collect()
        } else {
            let singles = valid.iter().map(|&n| NodeSet::EMPTY.with(n));
            match large_host {
                LargeHostCandidates::SingleNodes => {
                    singles.map(|s| Candidate::new(self, s)).collect()
                }
                LargeHostCandidates::Neighbourhoods => {
                    let mut seen = std::collections::HashSet::new();
                    singles
                        .chain(
                            valid
                                .iter()
                                .flat_map(|&seed| self.neighbourhoods(seed, &valid)),
                        )
                        .filter(|set| seen.insert(*set))
                        .map(|s| Candidate::new(self, s))
                        .collect()
                }
            }
        };
        candidates.sort_by(|a, b| {
            a.max_distance
                .cmp(&b.max_distance)
                .then(a.average_distance.total_cmp(&b.average_distance))
        });
        candidates
    }

    /// The sets of 2 to [`MAX_NEIGHBOURHOOD_NODES`] nodes grown from `seed`,
    /// nearest first (ties by node id).
    fn neighbourhoods(&self, seed: NodeId, valid: &[NodeId]) -> Vec<NodeSet> {
        let mut others: Vec<NodeId> = valid.iter().copied().filter(|&n| n != seed).collect();
        others.sort_by_key(|&n| (self.distance(seed, n), n));
        others
            .iter()
            .take(MAX_NEIGHBOURHOOD_NODES - 1)
            .scan(NodeSet::EMPTY.with(seed), |set, &n| {
                *set = set.with(n);
                Some(*set)
            })
            .collect()
    }
}

fn first_unreasonable_distance(node_count: usize, distances: &[u32]) -> Option<NumaOff> {
    let nodes = all_node_ids().take(node_count);
    nodes.clone().find_map(|from| {
        nodes.clone().find_map(|to| {
            let distance = distances[from.index() * node_count + to.index()];
            let reasonable = distance == UNREACHABLE
                || if from == to {
                    distance == LOCAL_DISTANCE
                } else {
                    distance >= LOCAL_DISTANCE
                };
            (!reasonable).then_some(NumaOff::UnreasonableDistance { from, to, distance })
        })
    })
}
