//! The NUMA placement engine of xen-domain-build.
//!
//! It makes exactly the decisions of xenopsd's `Topology.NUMA` and
//! `Softaffinity.plan` (see DESIGN §4), with two deliberate differences, both
//! documented where they live: an unreachable distance between two valid nodes
//! counts as 0xFFFFFFFF (xenopsd would use a negative value as it is), and
//! hosts with more than 16 valid nodes may opt into neighbourhood candidates.
//!
//! Pure Rust: no I/O, no `unsafe`.
#![forbid(unsafe_code)]

mod cpuset;
mod nodeset;
mod planner;
mod topology;

pub use cpuset::CpuSet;
pub use nodeset::{NodeSet, MAX_NODES};
pub use planner::{Plan, PlanError, Planner, Request, AVERAGE_TOLERANCE};
pub use topology::{
    normalize_distance, Candidate, LargeHostCandidates, NumaOff, Topology, TopologyError,
    TopologySpec, LOCAL_DISTANCE, MAX_CPUS, MAX_NEIGHBOURHOOD_NODES, MAX_NODES_ALL_SUBSETS,
    UNREACHABLE,
};
