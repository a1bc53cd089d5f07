//! `NativePlanner`: a NUMA placement planner for one host.
//!
//! `planIndex` is the hot path: plain numbers and a Float64Array in, a
//! candidate index out, so one call crosses N-API with no object or array
//! built. The TypeScript façade turns indexes into (cached) node and CPU lists.

use crate::convert::{to_i64, to_u32, to_u64};
use crate::error::{from_plan, from_topology, invalid_argument, sync, Result};
use napi::bindgen_prelude::{Env, Float64Array};
use napi_derive::napi;
use numa::{LargeHostCandidates, NodeId, Planner, Request, Topology, TopologySpec};

#[napi(object)]
pub struct TopologyInput {
    /// Node-to-node distances, n × n; above 255 or below 0 is unreachable.
    pub distances: Vec<Vec<f64>>,
    /// The node of each CPU; null for a CPU with no node (offline).
    pub cpu_to_node: Vec<Option<f64>>,
    /// Physical cores per node.
    pub node_cores: Vec<f64>,
    // The enum's JavaScript name: napi's types would name the Rust one, which they do not declare.
    #[napi(ts_type = "LargeHostCandidates")]
    pub large_host_candidates: Option<LargeHostCandidatesJs>,
}

/// Candidates on hosts with more than 16 valid nodes.
#[napi(string_enum = "kebab-case", js_name = "LargeHostCandidates")]
pub enum LargeHostCandidatesJs {
    /// xenopsd's rule (the default): single nodes only.
    SingleNodes,
    /// Also, for each node, the sets grown from it by its nearest nodes.
    Neighbourhoods,
}

#[napi(object)]
pub struct NativeCandidate {
    pub nodes: Vec<u32>,
    pub cpus: Vec<u32>,
    pub max_distance: f64,
    pub average_distance: f64,
}

fn spec_from_input(input: TopologyInput) -> Result<TopologySpec> {
    let distances = input
        .distances
        .iter()
        .enumerate()
        .map(|(i, row)| {
            row.iter()
                .enumerate()
                .map(|(j, &d)| to_i64(d, || format!("topology.distances[{i}][{j}]")))
                .collect::<Result<Vec<i64>>>()
        })
        .collect::<Result<Vec<_>>>()?;
    let node_count = input.distances.len();
    let cpu_to_node = input
        .cpu_to_node
        .iter()
        .enumerate()
        .map(|(cpu, node)| {
            let field = || format!("topology.cpuToNode[{cpu}]");
            node.map(|n| {
                let id = to_u32(n, field)?;
                // An id no host can have: refused with the engine's message
                // for an id past the host's nodes, so JS sees no difference.
                NodeId::new(id as usize).ok_or_else(|| {
                    invalid_argument(format!(
                        "{}: node {id} does not exist (the host has {node_count} nodes)",
                        field()
                    ))
                })
            })
            .transpose()
        })
        .collect::<Result<Vec<_>>>()?;
    let node_cores = input
        .node_cores
        .iter()
        .enumerate()
        .map(|(node, &c)| to_u32(c, || format!("topology.nodeCores[{node}]")))
        .collect::<Result<Vec<_>>>()?;
    let large_host = match input.large_host_candidates {
        None | Some(LargeHostCandidatesJs::SingleNodes) => LargeHostCandidates::SingleNodes,
        Some(LargeHostCandidatesJs::Neighbourhoods) => LargeHostCandidates::Neighbourhoods,
    };
    Ok(TopologySpec {
        distances,
        cpu_to_node,
        node_cores,
        large_host,
    })
}

#[napi]
pub struct NativePlanner {
    planner: Planner,
    /// Reused between calls: the hot path allocates nothing.
    node_free_bytes: Vec<u64>,
    /// The façade's typed array that plan calls read (see `useCallBuffer`).
    call: Option<Float64Array>,
}

/// memoryBytes, vcpus, cores: what precedes each node's free bytes in the call buffer.
const REQUEST_FIELDS: usize = 3;

#[napi]
impl NativePlanner {
    #[napi(constructor)]
    pub fn new(env: &Env, topology: TopologyInput) -> napi::Result<Self> {
        sync(env, || {
            let topology = Topology::new(&spec_from_input(topology)?).map_err(from_topology)?;
            let node_count = topology.node_count();
            Ok(NativePlanner {
                planner: Planner::new(topology),
                node_free_bytes: vec![0; node_count],
                call: None,
            })
        })
    }

    /// Gives the planner the typed array its plan calls read:
    /// `[memoryBytes, vcpus, cores, nodeFreeBytes...]`, one entry per node.
    /// The façade fills it in place before each `planIndex()`, so a plan call
    /// crosses N-API with no argument at all.
    #[napi]
    pub fn use_call_buffer(&mut self, env: &Env, buffer: Float64Array) -> napi::Result<()> {
        sync(env, || {
            let expected = REQUEST_FIELDS + self.node_free_bytes.len();
            if buffer.len() != expected {
                return Err(invalid_argument(format!(
                    "callBuffer: {} numbers, expected {expected} (3, and one per node)",
                    buffer.len()
                )));
            }
            self.call = Some(buffer);
            Ok(())
        })
    }

    /// Plans the VM described in the call buffer; returns the chosen
    /// candidate's index, or -1 when none fits or NUMA placement is off.
    #[napi]
    pub fn plan_index(&mut self, env: &Env) -> napi::Result<i32> {
        sync(env, || {
            // useCallBuffer checked the length: a buffer is always long enough.
            let Some([memory_bytes, vcpus, cores, node_free_bytes @ ..]) = self.call.as_deref()
            else {
                return Err(invalid_argument(
                    "planIndex: no call buffer (useCallBuffer)",
                ));
            };
            let request = Request::new(
                to_u64(*memory_bytes, || "request.memoryBytes".into())?,
                to_u32(*vcpus, || "request.vcpus".into())?,
                to_u32(*cores, || "request.cores".into())?,
            );
            for (node, (slot, &bytes)) in self
                .node_free_bytes
                .iter_mut()
                .zip(node_free_bytes)
                .enumerate()
            {
                *slot = to_u64(bytes, || format!("nodeFreeBytes[{node}]"))?;
            }
            let plan = self
                .planner
                .plan(&request, &self.node_free_bytes)
                .map_err(from_plan)?;
            // Candidates number at most 2^16 - 1 plus a few per node: an i32 holds them.
            Ok(plan.map_or(-1, |p| p.candidate as i32))
        })
    }

    /// Does nothing: the cost of a method call into the addon, which
    /// `npm run bench` compares a plan call with.
    #[napi]
    pub fn noop(&self) {}

    /// The candidate at `index` in ranking order.
    #[napi]
    pub fn candidate(&self, env: &Env, index: u32) -> napi::Result<NativeCandidate> {
        sync(env, || {
            let topology = self.planner.topology();
            let candidate = topology.candidates().get(index as usize).ok_or_else(|| {
                invalid_argument(format!(
                    "index: {index} is not below the candidate count {}",
                    topology.candidates().len()
                ))
            })?;
            Ok(NativeCandidate {
                nodes: candidate.nodes().iter().map(u32::from).collect(),
                cpus: topology
                    .cpus_of(candidate.nodes())
                    .iter()
                    .map(u32::from)
                    .collect(),
                max_distance: f64::from(candidate.max_distance()),
                average_distance: candidate.average_distance(),
            })
        })
    }

    #[napi(getter)]
    pub fn candidate_count(&self) -> u32 {
        self.planner.topology().candidates().len() as u32
    }

    #[napi(getter)]
    pub fn node_count(&self) -> u32 {
        self.planner.topology().node_count() as u32
    }

    /// How many plans chose each node.
    #[napi]
    pub fn usage(&self) -> Vec<f64> {
        self.planner.usage().iter().map(|&u| u as f64).collect()
    }

    /// Why NUMA placement is off for this host, or null when it is on.
    #[napi(getter)]
    pub fn numa_off_reason(&self) -> Option<String> {
        self.planner.topology().numa_off().map(ToString::to_string)
    }
}
