//! Choosing where a VM goes (xenopsd's `Softaffinity.plan` and `NUMA.choose`).

use crate::nodeset::NodeSet;
use crate::topology::{Candidate, Topology};

/// Candidates whose average distances differ by less than this are ties.
pub const AVERAGE_TOLERANCE: f64 = 1e-3;

/// What a VM asks of the nodes it is placed on.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Request {
    pub memory_bytes: u64,
    pub vcpus: u32,
    /// Physical cores wanted; 0 when the policy leaves hyperthreads alone.
    pub cores: u32,
}

impl Request {
    pub fn new(memory_bytes: u64, vcpus: u32, cores: u32) -> Self {
        Request {
            memory_bytes,
            vcpus,
            cores,
        }
    }
}

/// A planning call that cannot be answered: its input does not match the topology.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PlanError {
    NodeFreeLength { len: usize, nodes: usize },
}

impl std::fmt::Display for PlanError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match *self {
            PlanError::NodeFreeLength { len, nodes } => {
                write!(
                    f,
                    "nodeFreeBytes: {len} entries, expected one per node ({nodes})"
                )
            }
        }
    }
}

impl std::error::Error for PlanError {}

/// The chosen candidate.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Plan {
    /// Its position in [`Topology::candidates`].
    pub candidate: usize,
    pub nodes: NodeSet,
}

/// A topology with its balancing counters: one per host, living as long as it.
#[derive(Clone, Debug)]
pub struct Planner {
    topology: Topology,
    /// How many plans chose each node. Never decremented, as in xenopsd.
    usage: Vec<u64>,
}

impl Planner {
    pub fn new(topology: Topology) -> Self {
        let usage = vec![0; topology.node_count()];
        Planner { topology, usage }
    }

    pub fn topology(&self) -> &Topology {
        &self.topology
    }

    /// How many plans chose each node.
    pub fn usage(&self) -> &[u64] {
        &self.usage
    }

    /// Plans a VM given each node's free memory (minus what is claimed there).
    ///
    /// The first fitting candidate opens a run of fitting candidates whose
    /// average distance is within [`AVERAGE_TOLERANCE`] of its own; candidates
    /// that do not fit are skipped and do not end the run. Of the run, the one
    /// with the least usage wins, then the smaller node set (see [`NodeSet`]),
    /// and each of its nodes is counted once more. `None` when nothing fits or
    /// NUMA placement is off; the counters are then unchanged.
    pub fn plan(
        &mut self,
        request: &Request,
        node_free_bytes: &[u64],
    ) -> Result<Option<Plan>, PlanError> {
        if node_free_bytes.len() != self.topology.node_count() {
            return Err(PlanError::NodeFreeLength {
                len: node_free_bytes.len(),
                nodes: self.topology.node_count(),
            });
        }
        let Some(plan) = self.choose(request, node_free_bytes) else {
            return Ok(None);
        };
        for node in plan.nodes.iter() {
            self.usage[node.index()] += 1;
        }
        Ok(Some(plan))
    }

    fn choose(&self, request: &Request, free: &[u64]) -> Option<Plan> {
        // Fit is monotone: when all valid nodes together do not fit, no subset
        // does, and an unplaceable request costs O(nodes), not a full scan.
        let all = self.topology.valid_nodes();
        let all_cpus: u32 = all
            .iter()
            .map(|n| self.topology.node_cpus(n).len() as u32)
            .sum();
        let all_cores: u64 = all
            .iter()
            .map(|n| u64::from(self.topology.node_cores(n)))
            .sum();
        if self.topology.candidates().is_empty() || !fits(all, all_cpus, all_cores, request, free) {
            return None;
        }

        let candidates = self.topology.candidates();
        let first = candidates
            .iter()
            .position(|c| candidate_fits(c, request, free))?;
        let first_average = candidates[first].average_distance();
        let key = |index: usize| {
            let nodes = candidates[index].nodes();
            (self.usage_of(nodes), nodes)
        };
        let mut best = (key(first), first);
        for (index, candidate) in candidates.iter().enumerate().skip(first + 1) {
            if !candidate_fits(candidate, request, free) {
                continue;
            }
            if (candidate.average_distance() - first_average).abs() >= AVERAGE_TOLERANCE {
                break;
            }
            let k = key(index);
            if k < best.0 {
                best = (k, index);
            }
        }
        let (_, candidate) = best;
        Some(Plan {
            candidate,
            nodes: candidates[candidate].nodes(),
        })
    }

    fn usage_of(&self, nodes: NodeSet) -> u64 {
        nodes.iter().map(|n| self.usage[n.index()]).sum()
    }
}

fn candidate_fits(candidate: &Candidate, request: &Request, free: &[u64]) -> bool {
    fits(
        candidate.nodes(),
        candidate.cpu_count(),
        candidate.core_count(),
        request,
        free,
    )
}

/// Totals over the set, not per node: memory, vCPUs and physical cores.
fn fits(nodes: NodeSet, cpu_count: u32, core_count: u64, request: &Request, free: &[u64]) -> bool {
    request.vcpus <= cpu_count
        && u64::from(request.cores) <= core_count
        && request.memory_bytes
            <= nodes
                .iter()
                .fold(0u64, |sum, n| sum.saturating_add(free[n.index()]))
}
