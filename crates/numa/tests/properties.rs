//! Property tests: the engine against a plain reference implementation of
//! xenopsd's rule, and the invariants every plan must keep.

mod common;

use common::{ids, node, reference};
use numa::{
    LargeHostCandidates, NodeId, NodeSet, Planner, Request, Topology, TopologySpec,
    AVERAGE_TOLERANCE,
};
use proptest::prelude::*;

/// Distances drawn so that ties, unreachable pairs, negative values and
/// invalid tables all happen often.
fn distance() -> impl Strategy<Value = i64> {
    prop_oneof![
        6 => Just(10i64),
        // Few values, so that equal averages across max-distance groups are common.
        10 => prop::sample::select(vec![11i64, 12, 16, 20, 21, 22]),
        2 => 10i64..=40,
        1 => Just(0xFFFF_FFFF),
        1 => Just(-1),
        1 => 256i64..1000,
        1 => 0i64..10,
    ]
}

fn spec(max_nodes: usize) -> impl Strategy<Value = TopologySpec> {
    (1..=max_nodes).prop_flat_map(|n| {
        (
            prop::collection::vec(prop::collection::vec(distance(), n), n),
            prop::collection::vec(prop::option::weighted(0.95, node_id(n)), 0..=3 * n),
            prop::collection::vec(0u32..4, n),
        )
            .prop_map(|(mut distances, cpu_to_node, node_cores)| {
                // Mostly local self-distances, so that most tables are reasonable.
                for (i, row) in distances.iter_mut().enumerate() {
                    if row[i] != 0xFFFF_FFFF && row[i] != -1 {
                        row[i] = 10;
                    }
                }
                TopologySpec {
                    distances,
                    cpu_to_node,
                    node_cores,
                    large_host: LargeHostCandidates::SingleNodes,
                }
            })
    })
}

/// A node id below `count`.
fn node_id(count: usize) -> impl Strategy<Value = NodeId> {
    (0..count).prop_map(node)
}

fn request() -> impl Strategy<Value = Request> {
    (0u64..=64, 0u32..=12, 0u32..=8)
        .prop_map(|(gib, vcpus, cores)| Request::new(gib << 28, vcpus, cores))
}

fn fits(topology: &Topology, nodes: NodeSet, request: &Request, free: &[u64]) -> bool {
    let memory: u128 = nodes.iter().map(|n| u128::from(free[n.index()])).sum();
    let cpus: usize = nodes.iter().map(|n| topology.node_cpus(n).len()).sum();
    let cores: u64 = nodes
        .iter()
        .map(|n| u64::from(topology.node_cores(n)))
        .sum();
    u128::from(request.memory_bytes) <= memory
        && request.vcpus as usize <= cpus
        && u64::from(request.cores) <= cores
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn engine_makes_the_reference_decisions(
        spec in spec(6),
        steps in prop::collection::vec((request(), prop::collection::vec(0u64..=16, 6)), 1..12),
    ) {
        let topology = Topology::new(&spec).unwrap();
        let mut host = reference::make(&spec.distances, &spec.cpu_to_node, &spec.node_cores);
        prop_assert_eq!(topology.numa_off().is_some(), host.candidates.is_none());
        if let Some(expected) = &host.candidates {
            let got: Vec<(u64, f64, Vec<usize>)> = topology
                .candidates()
                .iter()
                .map(|c| (u64::from(c.max_distance()), c.average_distance(), ids(c.nodes())))
                .collect();
            prop_assert_eq!(&got, expected);
        }
        let n = topology.node_count();
        let mut planner = Planner::new(topology);
        for (request, free_gib) in steps {
            let free: Vec<u64> = free_gib.iter().take(n).map(|g| g << 28).collect();
            let ours = planner.plan(&request, &free).unwrap().map(|p| ids(p.nodes));
            let theirs = reference::plan(&mut host, request.memory_bytes, u64::from(request.vcpus), u64::from(request.cores), &free);
            prop_assert_eq!(ours, theirs);
            prop_assert_eq!(planner.usage(), &host.usage[..]);
        }
    }

    #[test]
    fn every_plan_fits_heads_its_group_and_is_counted(
        spec in spec(9),
        steps in prop::collection::vec((request(), prop::collection::vec(0u64..=16, 9)), 1..20),
    ) {
        let topology = Topology::new(&spec).unwrap();
        let n = topology.node_count();
        let mut planner = Planner::new(topology);
        let mut placed_nodes = 0u64;
        for (request, free_gib) in steps {
            let free: Vec<u64> = free_gib.iter().take(n).map(|g| g << 28).collect();
            let before = planner.usage().to_vec();
            let plan = planner.plan(&request, &free).unwrap();
            let topology = planner.topology();
            let first_fit = topology.candidates().iter().position(|c| fits(topology, c.nodes(), &request, &free));
            match plan {
                None => {
                    prop_assert!(first_fit.is_none());
                    prop_assert_eq!(planner.usage(), &before[..]);
                }
                Some(plan) => {
                    let chosen = &topology.candidates()[plan.candidate];
                    prop_assert_eq!(chosen.nodes(), plan.nodes);
                    prop_assert!(fits(topology, plan.nodes, &request, &free));
                    let first = &topology.candidates()[first_fit.unwrap()];
                    prop_assert!(first_fit.unwrap() <= plan.candidate);
                    prop_assert!((chosen.average_distance() - first.average_distance()).abs() < AVERAGE_TOLERANCE);
                    placed_nodes += plan.nodes.len() as u64;
                }
            }
        }
        prop_assert_eq!(planner.usage().iter().sum::<u64>(), placed_nodes);
    }

    #[test]
    fn any_input_is_refused_or_built_never_a_panic(
        distances in prop::collection::vec(prop::collection::vec(any::<i64>(), 0..5), 0..5),
        cpu_to_node in prop::collection::vec(prop::option::of(node_id(8)), 0..10),
        node_cores in prop::collection::vec(any::<u32>(), 0..5),
        free in prop::collection::vec(any::<u64>(), 0..5),
        memory in any::<u64>(), vcpus in any::<u32>(), cores in any::<u32>(),
    ) {
        let spec = TopologySpec { distances, cpu_to_node, node_cores, large_host: LargeHostCandidates::SingleNodes };
        if let Ok(topology) = Topology::new(&spec) {
            let n = topology.node_count();
            let mut planner = Planner::new(topology);
            let result = planner.plan(&Request::new(memory, vcpus, cores), &free);
            prop_assert_eq!(result.is_err(), free.len() != n);
        }
    }

    #[test]
    fn large_hosts_get_single_nodes_unless_neighbourhoods_are_asked_for(n in 17usize..=40, seed in 0usize..40) {
        let distances: Vec<Vec<i64>> = (0..n)
            .map(|i| (0..n).map(|j| if i == j { 10 } else { 12 + ((i * 7 + j * 3 + seed) % 20) as i64 }).collect())
            .collect();
        let cpu_to_node = (0..2 * n).map(|c| Some(node(c / 2))).collect();
        let mut spec = TopologySpec { distances, cpu_to_node, node_cores: vec![1; n], large_host: LargeHostCandidates::SingleNodes };
        let singles = Topology::new(&spec).unwrap();
        prop_assert_eq!(singles.candidates().len(), n);
        prop_assert!(singles.candidates().iter().all(|c| c.nodes().len() == 1));
        spec.large_host = LargeHostCandidates::Neighbourhoods;
        let grown = Topology::new(&spec).unwrap();
        prop_assert!(grown.candidates().iter().any(|c| c.nodes().len() == numa::MAX_NEIGHBOURHOOD_NODES));
        // A VM of three nodes' CPUs: placed only with neighbourhoods.
        let free = vec![1u64 << 30; n];
        let request = Request::new(1 << 20, 5, 0);
        prop_assert!(Planner::new(singles).plan(&request, &free).unwrap().is_none());
        let plan = Planner::new(grown).plan(&request, &free).unwrap().unwrap();
        prop_assert_eq!(plan.nodes.len(), 3);
    }
}
