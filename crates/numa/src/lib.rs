//! The NUMA placement engine of xen-domain-build.
//!
//! It makes exactly the decisions of xenopsd's `Topology.NUMA` and
//! `Softaffinity.plan`: candidates are node sets ranked by their largest then
//! average distance, and a VM goes to the least used of the first fitting
//! candidates whose average distances tie (see [`Planner::plan`]). There are
//! two deliberate differences, both documented where they live: an
//! unreachable distance between two valid nodes counts as 0xFFFFFFFF (xenopsd
//! would use a negative value as it is), and hosts with more than 16 valid
//! nodes may opt into neighbourhood candidates.
//!
//! Node and CPU ids are distinct types ([`NodeId`], [`CpuId`]), as in
//! xenopsd, so that one cannot be passed where the other is meant.
//!
//! Pure Rust: no I/O, no `unsafe`.
#![forbid(unsafe_code)]

mod cpuset;
mod ids;
mod nodeset;
mod planner;
mod topology;

pub use cpuset::CpuSet;
pub use ids::{CpuId, NodeId, MAX_CPUS, MAX_NODES};
pub use nodeset::NodeSet;
pub use planner::{Plan, PlanError, Planner, Request, AVERAGE_TOLERANCE};
pub use topology::{
    normalize_distance, Candidate, LargeHostCandidates, NumaOff, Topology, TopologyError,
    TopologySpec, LOCAL_DISTANCE, MAX_NEIGHBOURHOOD_NODES, MAX_NODES_ALL_SUBSETS, UNREACHABLE,
};
