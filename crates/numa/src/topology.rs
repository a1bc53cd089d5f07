//! A host's NUMA topology and its candidate node sets (xenopsd's `NUMA.make`).

use crate::cpuset::CpuSet;
use crate::nodeset::{NodeSet, MAX_NODES};

/// The most CPUs a topology may have (Xen's largest x86 `NR_CPUS`, rounded up).
pub const MAX_CPUS: usize = 16_384;

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
    /// The node of each CPU; `None` for a CPU with no node (offline).
    pub cpu_to_node: Vec<Option<usize>>,
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
    NotSquare {
        row: usize,
        len: usize,
        nodes: usize,
    },
    NodeCoresLength {
        len: usize,
        nodes: usize,
    },
    CpuNodeOutOfRange {
        cpu: usize,
        node: usize,
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
            TopologyError::NotSquare { row, len, nodes } => write!(
                f,
                "distances[{row}]: {len} entries, expected {nodes} (the matrix must be square)"
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
        from: usize,
        to: usize,
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
/// static totals the fit test needs.
#[derive(Clone, Debug, PartialEq)]
pub struct Candidate {
    pub nodes: NodeSet,
    /// The largest distance over all ordered pairs of the set, self-pairs included.
    pub max_distance: u32,
    /// The average of those distances.
    pub average_distance: f64,
    pub cpu_count: u32,
    pub core_count: u64,
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
        if let Some((row, r)) = spec
            .distances
            .iter()
            .enumerate()
            .find(|(_, r)| r.len() != node_count)
        {
            return Err(TopologyError::NotSquare {
                row,
                len: r.len(),
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
        if let Some((cpu, node)) = spec
            .cpu_to_node
            .iter()
            .enumerate()
            .find_map(|(cpu, node)| node.filter(|&n| n >= node_count).map(|n| (cpu, n)))
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
        let distance = |a: usize, b: usize| distances[a * node_count + b];

        // A node unreachable from itself is not a node CPUs can be scheduled on.
        let valid = NodeSet::from_ids((0..node_count).filter(|&n| distance(n, n) != UNREACHABLE))
            .unwrap_or_default();
        let mut node_cpus = vec![CpuSet::new(); node_count];
        for (cpu, node) in spec.cpu_to_node.iter().enumerate() {
            if let Some(node) = node.filter(|&n| valid.contains(n)) {
                node_cpus[node].insert(cpu);
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
    pub fn distance(&self, a: usize, b: usize) -> u32 {
        self.distances[a * self.node_count + b]
    }

    /// Nodes that are reachable from themselves.
    pub fn valid_nodes(&self) -> NodeSet {
        self.valid
    }

    pub fn node_cpus(&self, node: usize) -> &CpuSet {
        &self.node_cpus[node]
    }

    pub fn node_cores(&self, node: usize) -> u32 {
        self.node_cores[node]
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
        for node in nodes.iter().filter(|&n| n < self.node_count) {
            cpus.union_with(&self.node_cpus[node]);
        }
        cpus
    }

    /// The candidate for a set of valid nodes, with its ranking key.
    pub(crate) fn candidate(&self, nodes: NodeSet) -> Candidate {
        let mut max_distance = 0;
        let mut sum: u64 = 0;
        for a in nodes.iter() {
            for b in nodes.iter() {
                let d = self.distance(a, b);
                max_distance = max_distance.max(d);
                sum += u64::from(d);
            }
        }
        let pairs = (nodes.len() * nodes.len()) as f64;
        Candidate {
            nodes,
            max_distance,
            average_distance: sum as f64 / pairs,
            cpu_count: nodes.iter().map(|n| self.node_cpu_count[n]).sum(),
            core_count: nodes.iter().map(|n| u64::from(self.node_cores[n])).sum(),
        }
    }

    fn generate_candidates(&self, large_host: LargeHostCandidates) -> Vec<Candidate> {
        let valid: Vec<usize> = self.valid.iter().collect();
        let mut candidates: Vec<Candidate> = if valid.len() <= MAX_NODES_ALL_SUBSETS {
            // Bit i of `mask` selects the i-th valid node: generation order is
            // the order of increasing masks, which the stable sort keeps for ties.
            (1u32..1 << valid.len())
                .map(|mask| {
                    let nodes = crate::cpuset::BitIter(u64::from(mask))
                        .fold(NodeSet::EMPTY, |set, i| set.with(valid[i as usize]));
                    self.candidate(nodes)
                })
                .collect()
        } else {
            let singles = valid.iter().map(|&n| NodeSet::EMPTY.with(n));
            match large_host {
                LargeHostCandidates::SingleNodes => singles.map(|s| self.candidate(s)).collect(),
                LargeHostCandidates::Neighbourhoods => {
                    let mut seen = std::collections::HashSet::new();
                    singles
                        .chain(
                            valid
                                .iter()
                                .flat_map(|&seed| self.neighbourhoods(seed, &valid)),
                        )
                        .filter(|set| seen.insert(*set))
                        .map(|s| self.candidate(s))
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
    fn neighbourhoods(&self, seed: usize, valid: &[usize]) -> Vec<NodeSet> {
        let mut others: Vec<usize> = valid.iter().copied().filter(|&n| n != seed).collect();
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
    (0..node_count).find_map(|from| {
        (0..node_count).find_map(|to| {
            let distance = distances[from * node_count + to];
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
