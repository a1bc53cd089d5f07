//! xenopsd's topologies and scenarios, with its decisions: the fixtures in
//! `__test__/fixtures/xenopsd` (described in its README.md).

mod common;

use common::{ids, node, read_json, topology_from_json};
use numa::{NumaOff, Planner, Request, Topology, UNREACHABLE};
use serde_json::{json, Value};

/// Plays a scenario as `__test__/fixtures/xenopsd/README.md` says: one
/// planner, memory taken from the chosen nodes in ascending id order.
fn play(scenario: &Value) -> Vec<Value> {
    let mut planner = Planner::new(topology_from_json(scenario));
    let mut free: Vec<u64> = scenario["node_free"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap())
        .collect();
    let mut lines = Vec::new();
    for r in scenario["requests"].as_array().unwrap() {
        let request = Request::new(
            r["memory"].as_u64().unwrap(),
            r["vcpus"].as_u64().unwrap() as u32,
            r["cores"].as_u64().unwrap() as u32,
        );
        match planner.plan(&request, &free).unwrap() {
            None => lines.push(json!({"nodes": null, "cpus": null})),
            Some(plan) => {
                let mut remaining = request.memory_bytes;
                for n in plan.nodes.iter() {
                    let take = remaining.min(free[n.index()]);
                    free[n.index()] -= take;
                    remaining -= take;
                }
                let nodes = ids(plan.nodes);
                let cpus: Vec<usize> = planner
                    .topology()
                    .cpus_of(plan.nodes)
                    .iter()
                    .map(numa::CpuId::index)
                    .collect();
                lines.push(json!({"nodes": nodes, "cpus": cpus}));
            }
        }
    }
    lines
}

fn expected(name: &str) -> Vec<Value> {
    let path = common::shared_data().join(name);
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn small_scenario_matches_xenopsd() {
    assert_eq!(
        play(&read_json("placement/small.json")),
        expected("placement/small.expected.jsonl")
    );
}

#[test]
fn tiebreak_scenario_matches_xenopsd() {
    assert_eq!(
        play(&read_json("placement/tiebreak.json")),
        expected("placement/tiebreak.expected.jsonl")
    );
}

#[test]
fn unreachable_cases_give_xenopsd_candidates() {
    let cases = read_json("numa/unreachable.json");
    for case in cases["scenarios"].as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        let topology = topology_from_json(case);
        match case["expected_candidates"].as_array() {
            None => assert_eq!(
                topology.numa_off(),
                Some(&NumaOff::NoCpuOnValidNode),
                "{name}"
            ),
            Some(expected) => {
                assert_eq!(topology.numa_off(), None, "{name}");
                let got: Vec<(f64, Vec<usize>)> = topology
                    .candidates()
                    .iter()
                    .map(|c| (c.average_distance(), ids(c.nodes())))
                    .collect();
                let want: Vec<(f64, Vec<usize>)> = expected
                    .iter()
                    .map(|e| {
                        let nodes = e[1]
                            .as_array()
                            .unwrap()
                            .iter()
                            .map(|n| n.as_u64().unwrap() as usize)
                            .collect();
                        (e[0].as_f64().unwrap(), nodes)
                    })
                    .collect();
                assert_eq!(got, want, "{name}");
            }
        }
    }
}

#[test]
fn unreachable_pair_between_valid_nodes_sorts_last_but_is_usable() {
    // Two valid nodes that cannot reach each other: xenopsd would rank the
    // pair by a negative distance, closer than local; we rank it last.
    let spec = common::spec_from_json(&json!({
        "distances": [[10, -1], [-1, 10]], "cpu_to_node": [0, 1], "node_cores": [1, 1]
    }));
    let topology = Topology::new(&spec).unwrap();
    let last = topology.candidates().last().unwrap();
    assert_eq!(ids(last.nodes()), vec![0, 1]);
    assert_eq!(last.max_distance(), UNREACHABLE);
    assert_eq!(
        last.average_distance(),
        (10.0 + 10.0 + 2.0 * f64::from(UNREACHABLE)) / 4.0
    );
    let mut planner = Planner::new(topology);
    let plan = planner
        .plan(&Request::new(0, 2, 0), &[0, 0])
        .unwrap()
        .unwrap();
    assert_eq!(ids(plan.nodes), vec![0, 1]);
}

#[test]
fn documented_eight_node_example_prefers_0_1_4_over_0_1_2() {
    let topology = topology_from_json(&read_json("numa/topology_mli_doc_8node.json"));
    let position = |wanted: &[usize]| {
        topology
            .candidates()
            .iter()
            .position(|c| ids(c.nodes()) == wanted)
            .unwrap()
    };
    assert!(position(&[0, 1, 4]) < position(&[0, 1, 2]));
}

#[test]
fn two_socket_host_ranks_socket_pairs_before_cross_socket_pairs() {
    let topology = topology_from_json(&read_json("numa/doc_2socket_subcluster.json"));
    let first_six: Vec<Vec<usize>> = topology
        .candidates()
        .iter()
        .take(6)
        .map(|c| ids(c.nodes()))
        .collect();
    assert_eq!(
        first_six,
        vec![vec![0], vec![1], vec![2], vec![3], vec![0, 1], vec![2, 3]]
    );
    assert_eq!(topology.candidates()[4].average_distance(), 10.5);
    assert_eq!(topology.candidates().len(), 15);
}

/// xenopsd's test_topology: every VM gets a plan, and together they use every CPU.
fn allocate(topology: Topology, vms: usize, memory: u64) {
    let all_cpus = topology.cpus_of(topology.valid_nodes());
    let vcpus = (all_cpus.len() / vms).max(2) as u32;
    let free = vec![16u64 << 30; topology.node_count()];
    let mut planner = Planner::new(topology);
    let mut used = numa::CpuSet::new();
    for vm in 0..vms {
        let plan = planner
            .plan(&Request::new(memory, vcpus, 0), &free)
            .unwrap()
            .unwrap_or_else(|| panic!("no plan for VM {vm}"));
        used.union_with(&planner.topology().cpus_of(plan.nodes));
    }
    assert_eq!(used, all_cpus);
    let placed: u64 = planner.usage().iter().sum();
    assert!(placed >= vms as u64);
}

#[test]
fn linear_example_hosts_use_every_cpu() {
    let doc = read_json("numa/example_linear.json");
    for scenario in doc["scenarios"].as_array().unwrap() {
        let vms = scenario["vms"].as_u64().unwrap() as usize;
        allocate(topology_from_json(scenario), vms, 1 << 30);
    }
}

#[test]
fn linear_64_node_host_is_single_node_only_with_far_pairs_unreachable() {
    let doc = read_json("numa/example_linear.json");
    let scenario = doc["scenarios"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["numa"] == 64)
        .unwrap();
    let topology = topology_from_json(scenario);
    assert_eq!(topology.distance(node(0), node(22)), 10 + 11 * 22);
    assert_eq!(topology.distance(node(0), node(23)), UNREACHABLE);
    assert_eq!(topology.candidates().len(), 64);
    assert!(topology.candidates().iter().all(|c| c.nodes().len() == 1));
}

#[test]
fn amd_opteron_host_places_small_and_two_node_vms() {
    let doc = read_json("numa/amd_opteron6272.json");
    allocate(topology_from_json(&doc), 10, 1 << 30);
    // Larger than one node's 16 GiB: each VM spans nodes, and all CPUs get used.
    allocate(topology_from_json(&doc), 6, (4u64 << 34) / 3);
}

#[test]
fn a_run_skips_unfitting_candidates_outside_the_tolerance() {
    // Sorted: the single nodes, {0,1} (max 21, average 15.5), {1,3} (22, 13.5),
    // {0,2} (22, 15.5), then sets at distance 40. A VM of 2 vCPUs and 1.5 GiB
    // fits {0,1} and {0,2} but not {1,3} (node 3 has no memory): the run that
    // {0,1} opens goes on past {1,3}, outside the tolerance, to {0,2}.
    let spec = common::spec_from_json(&json!({
        "distances": [[10, 21, 20, 40], [21, 10, 40, 22], [22, 40, 10, 40], [40, 12, 40, 10]],
        "cpu_to_node": [0, 1, 2, 3], "node_cores": [1, 1, 1, 1]
    }));
    let topology = Topology::new(&spec).unwrap();
    let order: Vec<Vec<usize>> = topology
        .candidates()
        .iter()
        .map(|c| ids(c.nodes()))
        .collect();
    assert_eq!(order[4..7], [vec![0, 1], vec![1, 3], vec![0, 2]]);
    let mut planner = Planner::new(topology);
    let free = [1 << 30, 1 << 30, 1 << 30, 0];
    let request = Request::new(3 << 29, 2, 0);
    let first = planner.plan(&request, &free).unwrap().unwrap();
    assert_eq!(ids(first.nodes), vec![0, 1]);
    // {0,1} now has usage 2 and {0,2} usage 1.
    let second = planner.plan(&request, &free).unwrap().unwrap();
    assert_eq!(ids(second.nodes), vec![0, 2]);
}
