//! The simulated host's state and its rules.

use crate::faults::{decide, Fault, Rng};
use crate::{Clock, HostSpec, ScrubReporting};
use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};
use xenctrl::{
    Capabilities, CpuTopology, DomId, DomainConfig, DomainInfo, DomainKind, Hypervisor, NodeMemory,
    NumaInfo, PhysInfo, Result, ShutdownReason, VcpuAffinity, XenError, XenVersion,
    HVM_PARAM_TIMER_MODE, PAGE_SIZE_BYTES, XEN_MAX_GRANT_FRAMES, XEN_MAX_MAPTRACK_FRAMES,
};

const PAGES_PER_MIB: u64 = 256;
/// The domain builder populates 2 MiB superpages where it can.
const EXTENT_PAGES: u64 = 512;
/// Xen grows a shadow or HAP pool one page at a time (`alloc_domheap_page`),
/// so the pool spreads evenly over the nodes it may use.
const POOL_EXTENT_PAGES: u64 = 1;
/// Xen's HVM timer modes are 0 to 3 (HVMPTM_*).
const MAX_TIMER_MODE: u64 = 3;
/// Xen's limit on vCPUs per domain in the simulation (HVM_MAX_VCPUS is 128).
const MAX_VCPUS: u32 = 128;
/// Xen's DOMID_FIRST_RESERVED: guests' domids are below it.
const FIRST_RESERVED_DOMID: DomId = 0x7FF0;
/// The highest port of the 2-level event channel ABI a new guest starts
/// with (64 × 64 ports on a 64-bit guest): a larger `max_evtchn_port` only
/// matters once the guest switches to FIFO, which the simulation does not.
const MAX_PORT_2_LEVEL: u32 = 64 * 64 - 1;

#[derive(Clone, Debug, Default)]
struct Node {
    total_pages: u64,
    free_pages: u64,
    /// Freed by destroyed domains, not yet scrubbed: not free.
    dirty_pages: u64,
    /// Outstanding node claims on this node.
    claimed_pages: u64,
}

#[derive(Clone, Debug)]
struct Claim {
    outstanding_pages: u64,
    node: Option<usize>,
}

#[derive(Clone, Debug)]
struct Vcpu {
    hard: Vec<u32>,
    soft: Vec<u32>,
}

#[derive(Clone, Debug)]
struct Domain {
    kind: DomainKind,
    /// What `xc_domain_create` was given; its handle changes with `xc_domain_sethandle`.
    config: DomainConfig,
    max_vcpus: u32,
    /// Empty until `xc_domain_max_vcpus` allocates them.
    vcpus: Vec<Vcpu>,
    max_pages: u64,
    pages_per_node: Vec<u64>,
    shadow_pages_per_node: Vec<u64>,
    claim: Option<Claim>,
    hvm_params: BTreeMap<u32, u64>,
    memmap_limit_kib: Option<u64>,
    max_evtchn_port: u32,
    /// Allocated event channel ports, with their remote domain.
    evtchns: BTreeMap<u32, DomId>,
    /// Where the next interleaved extent goes (Xen's `last_alloc_node`).
    next_node: usize,
    /// Paused by the toolstack (`XEN_DOMINF_paused`) until unpaused.
    paused: bool,
    /// Shut down, and why (`is_shut_down` and `shutdown_code`): its vCPUs
    /// stay stopped, whatever the toolstack unpauses, until it is resumed.
    shutdown: Option<ShutdownReason>,
}

impl Domain {
    fn tot_pages(&self) -> u64 {
        self.pages_per_node.iter().sum()
    }

    fn outstanding(&self) -> u64 {
        self.claim.as_ref().map_or(0, |c| c.outstanding_pages)
    }

    fn shadow_pages(&self) -> u64 {
        self.shadow_pages_per_node.iter().sum()
    }
}

struct State {
    nodes: Vec<Node>,
    /// Host-wide outstanding claims, node claims included (Xen's `outstanding_claims`).
    outstanding_pages: u64,
    domains: BTreeMap<DomId, Domain>,
    faults: Vec<Fault>,
    rng: Rng,
    /// Simulated milliseconds since the host started ([`Clock::Manual`]).
    manual_ms: u64,
    /// When the scrubber last ran, in host milliseconds.
    scrubbed_at_ms: u64,
    /// The domid the next domain gets, or the first free one after it: Xen
    /// does not hand out a domid again until it has gone round its range.
    next_domid: DomId,
}

/// The operations a fault can be injected into, by their libxenctrl names
/// (`claim_pages_on_node` is the node claim, which only XenServer's Xen has).
pub const OPERATIONS: &[&str] = &[
    "claim_pages_on_node",
    "xc_cputopoinfo",
    "xc_domain_claim_pages",
    "xc_domain_create",
    "xc_domain_destroy",
    "xc_domain_getinfolist",
    "xc_domain_max_vcpus",
    "xc_domain_populate_physmap_exact",
    "xc_domain_resume",
    "xc_domain_set_memmap_limit",
    "xc_domain_setmaxmem",
    "xc_domain_shutdown",
    "xc_domain_unpause",
    "xc_evtchn_alloc_unbound",
    "xc_hvm_param_set",
    "xc_numainfo",
    "xc_physinfo",
    "xc_shadow_control",
    "xc_vcpu_getaffinity",
    "xc_vcpu_setaffinity",
];

/// A simulated Xen host. Cheap to share: every operation locks its state briefly.
pub struct SimHost {
    spec: HostSpec,
    started: Instant,
    state: Mutex<State>,
}

/// Takes up to `pages` from `candidates` in round-robin extents of
/// `extent_pages`, as Xen interleaves a domain's allocations over its nodes
/// (each allocation goes to the node after the last one, `cycle_node`),
/// starting at `*next`; `available(nodes, n)` says what node `n` may give.
/// Returns what it took.
fn interleave(
    nodes: &mut [Node],
    candidates: &[usize],
    next: &mut usize,
    extent_pages: u64,
    mut pages: u64,
    taken: &mut [u64],
    available: impl Fn(&[Node], usize) -> u64,
) -> u64 {
    let wanted = pages;
    while pages > 0 && !candidates.is_empty() {
        let found = (0..candidates.len())
            .map(|i| (i, candidates[(*next + i) % candidates.len()]))
            .find_map(|(i, n)| {
                let got = pages.min(extent_pages).min(available(nodes, n));
                (got > 0).then_some((i, n, got))
            });
        let Some((i, n, got)) = found else { break };
        nodes[n].free_pages -= got;
        taken[n] += got;
        pages -= got;
        *next = (*next + i + 1) % candidates.len();
    }
    wanted - pages
}

fn esrch(operation: &'static str) -> XenError {
    XenError::hypercall(operation, libc::ESRCH)
}

fn einval(operation: &'static str) -> XenError {
    XenError::hypercall(operation, libc::EINVAL)
}

impl SimHost {
    pub fn new(spec: HostSpec) -> std::result::Result<SimHost, String> {
        spec.validate()?;
        let nodes = spec
            .node_memory_bytes
            .iter()
            .map(|&bytes| Node {
                total_pages: bytes / PAGE_SIZE_BYTES,
                free_pages: bytes / PAGE_SIZE_BYTES,
                ..Node::default()
            })
            .collect();
        let mut domains = BTreeMap::new();
        // Domain 0 exists, with no memory of the simulated nodes.
        let n = spec.node_memory_bytes.len();
        let dom0 = DomainConfig {
            max_evtchn_port: 1023,
            ..DomainConfig::default()
        };
        domains.insert(0, Domain::new(&dom0, n));
        Ok(SimHost {
            started: Instant::now(),
            state: Mutex::new(State {
                nodes,
                outstanding_pages: 0,
                domains,
                faults: Vec::new(),
                rng: Rng::new(1),
                manual_ms: 0,
                scrubbed_at_ms: 0,
                next_domid: 1,
            }),
            spec,
        })
    }

    pub fn spec(&self) -> &HostSpec {
        &self.spec
    }

    fn now_ms(&self, state: &State) -> u64 {
        match self.spec.clock {
            Clock::Manual => state.manual_ms,
            Clock::RealTime => self.started.elapsed().as_millis() as u64,
        }
    }

    /// Locks the state, after letting the scrubber catch up with the clock.
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let now = self.now_ms(&state);
        let elapsed_ms = now.saturating_sub(state.scrubbed_at_ms);
        if elapsed_ms > 0 {
            let budget = self
                .spec
                .scrub_pages_per_second_per_node
                .saturating_mul(elapsed_ms)
                / 1000;
            for node in &mut state.nodes {
                let scrubbed = budget.min(node.dirty_pages);
                node.dirty_pages -= scrubbed;
                node.free_pages += scrubbed;
            }
            state.scrubbed_at_ms = now;
        }
        state
    }

    /// Applies injected faults: waits out their latency, then fails or not.
    fn enter(&self, operation: &'static str) -> Result<()> {
        let (latency_ms, errno) = {
            let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
            let State { faults, rng, .. } = &mut *state;
            decide(faults, rng, operation)
        };
        if latency_ms > 0 {
            std::thread::sleep(Duration::from_millis(latency_ms));
        }
        match errno {
            Some(errno) => Err(XenError::hypercall(operation, errno)),
            None => Ok(()),
        }
    }

    // ----- the simulator's own controls -----

    /// Moves the manual clock on (the scrubber runs); no effect in real time.
    pub fn advance_clock(&self, ms: u64) {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        state.manual_ms += ms;
        drop(state);
        drop(self.lock());
    }

    pub fn clock_ms(&self) -> u64 {
        let state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        self.now_ms(&state)
    }

    /// Fails for an operation the simulator does not have (a typo would
    /// otherwise be a fault that never fires).
    pub fn inject_fault(&self, fault: Fault) -> std::result::Result<(), String> {
        if !OPERATIONS.contains(&fault.operation.as_str()) {
            return Err(format!(
                "fault.operation: {:?} is not an operation of the simulator (one of {})",
                fault.operation,
                OPERATIONS.join(", ")
            ));
        }
        let mut state = self.lock();
        state.faults.retain(|f| f.operation != fault.operation);
        state.faults.push(fault);
        Ok(())
    }

    pub fn clear_faults(&self) {
        self.lock().faults.clear();
    }

    pub fn seed_faults(&self, seed: u64) {
        self.lock().rng = Rng::new(seed);
    }

    /// The domain shuts itself down, as its kernel does with `SCHEDOP_shutdown`
    /// (and the toolstack with `xc_domain_shutdown`): Xen's `domain_shutdown`.
    /// It stops running and reports `reason`; its memory, claim, event
    /// channels and pause state stay, and unpausing it does not make it run:
    /// only [`resume_domain`](Self::resume_domain) or destroying it ends
    /// that. Xen keeps the first reason: shutting down a domain that has
    /// already shut down succeeds and changes nothing. A domain that does
    /// not exist is ESRCH (`SCHEDOP_remote_shutdown`). Domain 0 is EINVAL:
    /// on Xen it would take the host down with it, which the simulator does
    /// not do.
    pub fn shutdown_domain(&self, domid: DomId, reason: ShutdownReason) -> Result<()> {
        const OP: &str = "xc_domain_shutdown";
        self.enter(OP)?;
        if domid == 0 {
            return Err(einval(OP));
        }
        let mut state = self.lock();
        let d = state.domains.get_mut(&domid).ok_or_else(|| esrch(OP))?;
        d.shutdown
            .get_or_insert(ShutdownReason::from_code(reason.code()));
        Ok(())
    }

    /// `XEN_DOMCTL_resumedomain`, which libxenguest's `xc_domain_resume`
    /// makes after a suspend that did not end the domain (Xen's
    /// `domain_resume`): the domain no longer reports a shutdown, and runs
    /// again unless the toolstack has it paused. Xen does this to any
    /// domain, shut down or not: on a running one it succeeds and changes
    /// nothing. ESRCH for a domain that does not exist; EINVAL for domain 0,
    /// the caller's own (Xen cannot pause the domain that asks).
    pub fn resume_domain(&self, domid: DomId) -> Result<()> {
        const OP: &str = "xc_domain_resume";
        self.enter(OP)?;
        let mut state = self.lock();
        if !state.domains.contains_key(&domid) {
            return Err(esrch(OP));
        }
        if domid == 0 {
            return Err(einval(OP));
        }
        state
            .domains
            .get_mut(&domid)
            .expect("checked above")
            .shutdown = None;
        Ok(())
    }

    /// Pages of each node's memory the domain holds (shadow memory excluded).
    pub fn domain_pages_by_node(&self, domid: DomId) -> Result<Vec<u64>> {
        let state = self.lock();
        let domain = state
            .domains
            .get(&domid)
            .ok_or_else(|| esrch("domain_pages_by_node"))?;
        Ok(domain.pages_per_node.clone())
    }

    /// The nodes Xen allocates the domain's memory from (`auto_node_affinity`):
    /// those of its vCPUs' hard ∩ soft affinity, or of hard alone when that is empty.
    pub fn node_affinity(&self, domid: DomId) -> Result<Vec<u32>> {
        let state = self.lock();
        let domain = state
            .domains
            .get(&domid)
            .ok_or_else(|| esrch("node_affinity"))?;
        Ok(self.affine_nodes(domain))
    }

    /// Free, to-be-scrubbed and claimed pages of each node.
    pub fn node_pages(&self) -> Vec<(u64, u64, u64, u64)> {
        self.lock()
            .nodes
            .iter()
            .map(|n| (n.total_pages, n.free_pages, n.dirty_pages, n.claimed_pages))
            .collect()
    }

    /// Ids of the domains that exist, domain 0 included.
    pub fn domains(&self) -> Vec<DomId> {
        self.lock().domains.keys().copied().collect()
    }

    /// Populates a domain's memory as the domain builder does: from its
    /// claimed node first, then interleaved over its affine nodes, then from
    /// anywhere, in 2 MiB extents. All or nothing: ENOMEM when the pages are
    /// not there for it (memory claimed by other domains is not), E2BIG past
    /// its max pages (Xen's `assign_pages`). Consumes its claim.
    pub fn populate(&self, domid: DomId, pages: u64) -> Result<()> {
        const OP: &str = "xc_domain_populate_physmap_exact";
        self.enter(OP)?;
        let mut state = self.lock();
        let State {
            nodes,
            domains,
            outstanding_pages,
            ..
        } = &mut *state;
        let domain = domains.get(&domid).ok_or_else(|| esrch(OP))?;
        if domain.tot_pages() + pages > domain.max_pages {
            return Err(XenError::hypercall(OP, libc::E2BIG));
        }
        // Xen's alloc_heap_pages: memory others have claimed is not available.
        let own_claim = domain.outstanding();
        let free: u64 = nodes.iter().map(|n| n.free_pages).sum();
        if pages > free.saturating_sub(*outstanding_pages - own_claim) {
            return Err(XenError::hypercall(OP, libc::ENOMEM));
        }
        let claimed_node = domain.claim.as_ref().and_then(|c| c.node);
        let available = |nodes: &[Node], n: usize| {
            let others = nodes[n].claimed_pages
                - if claimed_node == Some(n) {
                    own_claim
                } else {
                    0
                };
            nodes[n].free_pages.saturating_sub(others)
        };
        let mut taken = vec![0u64; nodes.len()];
        let mut remaining = pages;
        if let Some(n) = claimed_node {
            let got = remaining.min(available(nodes, n));
            nodes[n].free_pages -= got;
            taken[n] += got;
            remaining -= got;
        }
        let affine: Vec<usize> = self
            .affine_nodes(domain)
            .into_iter()
            .map(|n| n as usize)
            .collect();
        let all: Vec<usize> = (0..nodes.len()).collect();
        let mut next = domain.next_node;
        for candidates in [&affine, &all] {
            remaining -= interleave(
                nodes,
                candidates,
                &mut next,
                EXTENT_PAGES,
                remaining,
                &mut taken,
                available,
            );
        }
        if remaining > 0 {
            for (node, &pages) in nodes.iter_mut().zip(&taken) {
                node.free_pages += pages;
            }
            return Err(XenError::hypercall(OP, libc::ENOMEM));
        }
        let domain = domains.get_mut(&domid).expect("checked above");
        domain.next_node = next;
        for (mine, &pages) in domain.pages_per_node.iter_mut().zip(&taken) {
            *mine += pages;
        }
        // Allocations consume the claim (Xen's domain_adjust_tot_pages).
        if let Some(claim) = &mut domain.claim {
            let consumed = claim.outstanding_pages.min(pages);
            claim.outstanding_pages -= consumed;
            *outstanding_pages -= consumed;
            if let Some(n) = claim.node {
                nodes[n].claimed_pages -= consumed;
            }
            if claim.outstanding_pages == 0 {
                domain.claim = None;
            }
        }
        Ok(())
    }

    /// Populates a domain's memory from one node only, as a builder given
    /// `-mem_pnode` does (`XENMEMF_exact_node`): extent by extent, so when the
    /// node runs out the pages taken so far stay with the domain and the call
    /// fails with ENOMEM half-way, as on Xen. Memory others have claimed, on
    /// the node or host-wide, is not available; the domain's own claim is.
    pub fn populate_on_node(&self, domid: DomId, pages: u64, node: usize) -> Result<()> {
        const OP: &str = "xc_domain_populate_physmap_exact";
        self.enter(OP)?;
        let mut state = self.lock();
        let State {
            nodes,
            domains,
            outstanding_pages,
            ..
        } = &mut *state;
        let domain = domains.get_mut(&domid).ok_or_else(|| esrch(OP))?;
        if node >= nodes.len() || nodes[node].total_pages == 0 {
            return Err(einval(OP));
        }
        if domain.tot_pages() + pages > domain.max_pages {
            return Err(XenError::hypercall(OP, libc::E2BIG));
        }
        let own_claim = domain.outstanding();
        let own_on_node = match domain.claim.as_ref().and_then(|c| c.node) {
            Some(n) if n == node => own_claim,
            _ => 0,
        };
        let free_total: u64 = nodes.iter().map(|n| n.free_pages).sum();
        // Xen's alloc_heap_pages: beyond its own claim, a domain may only take
        // what no other domain has claimed, host-wide and on the node.
        let host_available = free_total.saturating_sub(*outstanding_pages - own_claim);
        let node_available = nodes[node]
            .free_pages
            .saturating_sub(nodes[node].claimed_pages - own_on_node);
        let available = node_available.min(host_available);
        // Short of the whole: as many whole 2 MiB extents as the node has.
        let taken = if available >= pages {
            pages
        } else {
            available / EXTENT_PAGES * EXTENT_PAGES
        };
        nodes[node].free_pages -= taken;
        domain.pages_per_node[node] += taken;
        if let Some(claim) = &mut domain.claim {
            let consumed = claim.outstanding_pages.min(taken);
            claim.outstanding_pages -= consumed;
            *outstanding_pages -= consumed;
            if let Some(n) = claim.node {
                nodes[n].claimed_pages -= consumed;
            }
            if claim.outstanding_pages == 0 {
                domain.claim = None;
            }
        }
        if taken < pages {
            return Err(XenError::hypercall(OP, libc::ENOMEM));
        }
        Ok(())
    }

    fn affine_nodes(&self, domain: &Domain) -> Vec<u32> {
        let online = self.spec.cpus.len() as u32;
        let mut hard = vec![false; online as usize];
        let mut soft = vec![false; online as usize];
        for vcpu in &domain.vcpus {
            vcpu.hard
                .iter()
                .filter(|&&c| c < online)
                .for_each(|&c| hard[c as usize] = true);
            vcpu.soft
                .iter()
                .filter(|&&c| c < online)
                .for_each(|&c| soft[c as usize] = true);
        }
        if domain.vcpus.is_empty() {
            hard.fill(true);
        }
        let both: Vec<bool> = hard.iter().zip(&soft).map(|(&h, &s)| h && s).collect();
        let cpus = if both.iter().any(|&b| b) {
            &both
        } else {
            &hard
        };
        let mut nodes: Vec<u32> = cpus
            .iter()
            .enumerate()
            .filter(|(_, &on)| on)
            .map(|(cpu, _)| self.spec.cpus[cpu].node)
            .collect();
        nodes.sort_unstable();
        nodes.dedup();
        nodes
    }

    /// Xen's paging_domctl: no paging ops before the domain has vCPUs, and a
    /// PV domain has a shadow pool only where Xen has shadow paging.
    fn check_paging_op(&self, domain: &Domain, operation: &'static str) -> Result<()> {
        if domain.vcpus.is_empty() || (domain.kind == DomainKind::Pv && !self.spec.shadow_paging) {
            return Err(einval(operation));
        }
        Ok(())
    }

    fn all_cpus(&self) -> Vec<u32> {
        (0..self.spec.cpus.len() as u32).collect()
    }

    /// Xen drops bits past the last CPU (`xenctl_bitmap_to_bitmap`).
    fn online(&self, cpus: &[u32]) -> Vec<u32> {
        let mut set: Vec<u32> = cpus
            .iter()
            .copied()
            .filter(|&c| (c as usize) < self.spec.cpus.len())
            .collect();
        set.sort_unstable();
        set.dedup();
        set
    }

    fn release_claim(state: &mut State, domid: DomId) {
        let State {
            nodes,
            domains,
            outstanding_pages,
            ..
        } = state;
        if let Some(claim) = domains.get_mut(&domid).and_then(|d| d.claim.take()) {
            *outstanding_pages -= claim.outstanding_pages;
            if let Some(n) = claim.node {
                nodes[n].claimed_pages -= claim.outstanding_pages;
            }
        }
    }

    /// Xen's `domain_set_outstanding_pages`, with an optional node.
    fn claim(
        &self,
        operation: &'static str,
        domid: DomId,
        node: Option<usize>,
        pages: u64,
    ) -> Result<()> {
        let mut state = self.lock();
        // XENMEM_claim_pages answers EINVAL, not ESRCH, for a domain that does not exist.
        let domain = state.domains.get(&domid).ok_or_else(|| einval(operation))?;
        if pages == 0 {
            Self::release_claim(&mut state, domid);
            return Ok(());
        }
        // One claim per domain; more than it has, no more than its maximum.
        if domain.claim.is_some() || pages <= domain.tot_pages() || pages > domain.max_pages {
            return Err(einval(operation));
        }
        let claim = pages - domain.tot_pages();
        let free: u64 = state.nodes.iter().map(|n| n.free_pages).sum();
        if claim > free.saturating_sub(state.outstanding_pages) {
            return Err(XenError::hypercall(operation, libc::ENOMEM));
        }
        if let Some(n) = node {
            let on_node = &state.nodes[n];
            if claim > on_node.free_pages.saturating_sub(on_node.claimed_pages) {
                return Err(XenError::hypercall(operation, libc::ENOMEM));
            }
            state.nodes[n].claimed_pages += claim;
        }
        state.outstanding_pages += claim;
        state.domains.get_mut(&domid).expect("checked above").claim = Some(Claim {
            outstanding_pages: claim,
            node,
        });
        Ok(())
    }
}

impl Domain {
    fn new(config: &DomainConfig, nodes: usize) -> Self {
        Domain {
            kind: config.kind,
            config: *config,
            max_vcpus: config.max_vcpus,
            vcpus: Vec::new(),
            // A new domain may hold nothing until its maximum is set.
            max_pages: 0,
            pages_per_node: vec![0; nodes],
            shadow_pages_per_node: vec![0; nodes],
            claim: None,
            hvm_params: BTreeMap::new(),
            memmap_limit_kib: None,
            // evtchn_init: at most INT_MAX, whatever the toolstack asked.
            max_evtchn_port: config.max_evtchn_port.min(i32::MAX as u32),
            evtchns: BTreeMap::new(),
            next_node: 0,
            // Xen creates domains paused by the toolstack.
            paused: true,
            shutdown: None,
        }
    }
}

impl Hypervisor for SimHost {
    fn version(&self) -> XenVersion {
        self.spec.version
    }

    fn physinfo(&self) -> Result<PhysInfo> {
        self.enter("xc_physinfo")?;
        let state = self.lock();
        let cpus = &self.spec.cpus;
        let cores = {
            let mut c: Vec<(u32, u32)> = cpus.iter().map(|c| (c.socket, c.core)).collect();
            c.sort_unstable();
            c.dedup();
            c.len().max(1) as u32
        };
        let sockets = cpus.iter().map(|c| c.socket).max().unwrap_or(0) + 1;
        let total: u64 = state.nodes.iter().map(|n| n.total_pages).sum();
        let dirty: u64 = state.nodes.iter().map(|n| n.dirty_pages).sum();
        Ok(PhysInfo {
            threads_per_core: (cpus.len() as u32 / cores).max(1),
            cores_per_socket: (cores / sockets).max(1),
            nr_cpus: cpus.len() as u32,
            max_cpu_id: cpus.len() as u32 - 1,
            nr_nodes: state.nodes.len() as u32,
            // Xen reports MAX_NUMNODES - 1, not the last node present.
            max_node_id: 63,
            cpu_khz: 2_400_000,
            capabilities: Capabilities {
                hvm: true,
                pv: true,
                hap: self.spec.hap,
                shadow: self.spec.shadow_paging,
                vpmu: self.spec.vpmu,
                gnttab_v2: self.spec.gnttab_max_version >= 2,
            },
            total_pages: total,
            free_pages: state.nodes.iter().map(|n| n.free_pages).sum(),
            scrub_pages: match self.spec.scrub_reporting {
                ScrubReporting::XenServer => dirty,
                ScrubReporting::Upstream => 0,
            },
            outstanding_pages: state.outstanding_pages,
            max_mfn: total,
        })
    }

    fn numa_info(&self) -> Result<NumaInfo> {
        self.enter("xc_numainfo")?;
        let state = self.lock();
        Ok(NumaInfo {
            // Like Xen's, a node's free memory includes what is claimed on it.
            nodes: state
                .nodes
                .iter()
                .map(|n| {
                    Some(NodeMemory {
                        size_bytes: n.total_pages * PAGE_SIZE_BYTES,
                        free_bytes: n.free_pages * PAGE_SIZE_BYTES,
                    })
                })
                .collect(),
            distances: self.spec.distances.clone(),
        })
    }

    fn cpu_topology(&self) -> Result<CpuTopology> {
        self.enter("xc_cputopoinfo")?;
        Ok(CpuTopology {
            cpus: self.spec.cpus.iter().copied().map(Some).collect(),
        })
    }

    fn domain_info(&self, domid: DomId) -> Result<DomainInfo> {
        const OP: &str = "xc_domain_getinfolist";
        self.enter(OP)?;
        let state = self.lock();
        let d = state.domains.get(&domid).ok_or_else(|| esrch(OP))?;
        Ok(DomainInfo {
            domid,
            handle: d.config.handle,
            ssidref: d.config.ssidref,
            hvm: d.kind != DomainKind::Pv,
            hap: d.config.hap,
            dying: false,
            paused: d.paused,
            shutdown: d.shutdown,
            tot_pages: d.tot_pages(),
            max_pages: d.max_pages,
            outstanding_pages: d.outstanding(),
            max_vcpu_id: (!d.vcpus.is_empty()).then(|| d.vcpus.len() as u32 - 1),
            // vCPUs are down until the domain runs.
            online_vcpus: 0,
            cpupool: 0,
            // Every domain here was made through this host.
            created_vcpus: Some(d.max_vcpus),
        })
    }

    fn set_hvm_param(&self, domid: DomId, param: u32, value: u64) -> Result<()> {
        const OP: &str = "xc_hvm_param_set";
        self.enter(OP)?;
        let mut state = self.lock();
        let d = state.domains.get_mut(&domid).ok_or_else(|| esrch(OP))?;
        // HVMOP_set_param refuses a PV domain, and a timer mode Xen does not know.
        if d.kind == DomainKind::Pv || (param == HVM_PARAM_TIMER_MODE && value > MAX_TIMER_MODE) {
            return Err(einval(OP));
        }
        d.hvm_params.insert(param, value);
        Ok(())
    }

    fn set_max_vcpus(&self, domid: DomId, max_vcpus: u32) -> Result<()> {
        const OP: &str = "xc_domain_max_vcpus";
        self.enter(OP)?;
        let all = self.all_cpus();
        let mut state = self.lock();
        let d = state.domains.get_mut(&domid).ok_or_else(|| esrch(OP))?;
        // Xen 4.17: must match the value given to createdomain.
        if max_vcpus != d.max_vcpus {
            return Err(einval(OP));
        }
        if d.vcpus.is_empty() {
            d.vcpus = (0..max_vcpus)
                .map(|_| Vcpu {
                    hard: all.clone(),
                    soft: all.clone(),
                })
                .collect();
        }
        Ok(())
    }

    fn set_memmap_limit(&self, domid: DomId, limit_kib: u64) -> Result<()> {
        const OP: &str = "xc_domain_set_memmap_limit";
        self.enter(OP)?;
        let mut state = self.lock();
        let d = state.domains.get_mut(&domid).ok_or_else(|| esrch(OP))?;
        d.memmap_limit_kib = Some(limit_kib);
        Ok(())
    }

    fn shadow_allocation_mib(&self, domid: DomId) -> Result<u32> {
        const OP: &str = "xc_shadow_control";
        self.enter(OP)?;
        let state = self.lock();
        let d = state.domains.get(&domid).ok_or_else(|| esrch(OP))?;
        self.check_paging_op(d, OP)?;
        // Xen reports the pool in MiB, rounded up.
        Ok(d.shadow_pages().div_ceil(PAGES_PER_MIB) as u32)
    }

    fn set_shadow_allocation_mib(&self, domid: DomId, mib: u32) -> Result<()> {
        const OP: &str = "xc_shadow_control";
        self.enter(OP)?;
        let mut state = self.lock();
        let affine = {
            let d = state.domains.get(&domid).ok_or_else(|| esrch(OP))?;
            self.check_paging_op(d, OP)?;
            self.affine_nodes(d)
        };
        let State {
            nodes,
            domains,
            outstanding_pages,
            ..
        } = &mut *state;
        let d = domains.get_mut(&domid).expect("checked above");
        let want = u64::from(mib) * PAGES_PER_MIB;
        let have = d.shadow_pages();
        if want <= have {
            // Give back from the highest nodes first.
            let mut surplus = have - want;
            for n in (0..nodes.len()).rev() {
                let back = surplus.min(d.shadow_pages_per_node[n]);
                d.shadow_pages_per_node[n] -= back;
                nodes[n].free_pages += back;
                surplus -= back;
            }
            return Ok(());
        }
        // The pool has no owner: it may not use memory that domains have claimed.
        let mut need = want - have;
        let free: u64 = nodes.iter().map(|n| n.free_pages).sum();
        if need > free.saturating_sub(*outstanding_pages) {
            return Err(XenError::hypercall(OP, libc::ENOMEM));
        }
        // Pool pages interleave over the domain's nodes like its memory.
        let unclaimed =
            |nodes: &[Node], n: usize| nodes[n].free_pages.saturating_sub(nodes[n].claimed_pages);
        let affine: Vec<usize> = affine.iter().map(|&n| n as usize).collect();
        let all: Vec<usize> = (0..nodes.len()).collect();
        let mut next = d.next_node;
        let mut taken = vec![0u64; nodes.len()];
        for candidates in [&affine, &all] {
            need -= interleave(
                nodes,
                candidates,
                &mut next,
                POOL_EXTENT_PAGES,
                need,
                &mut taken,
                unclaimed,
            );
        }
        d.next_node = next;
        for (mine, got) in d.shadow_pages_per_node.iter_mut().zip(taken) {
            *mine += got;
        }
        debug_assert_eq!(need, 0);
        Ok(())
    }

    fn set_vcpu_affinity(
        &self,
        domid: DomId,
        vcpu: u32,
        hard: Option<&[u32]>,
        soft: Option<&[u32]>,
    ) -> Result<VcpuAffinity> {
        const OP: &str = "xc_vcpu_setaffinity";
        self.enter(OP)?;
        let hard = hard.map(|h| self.online(h));
        let soft = soft.map(|s| self.online(s));
        let mut state = self.lock();
        let d = state.domains.get_mut(&domid).ok_or_else(|| esrch(OP))?;
        if vcpu >= d.max_vcpus {
            return Err(einval(OP));
        }
        let v = d.vcpus.get_mut(vcpu as usize).ok_or_else(|| esrch(OP))?;
        if let Some(hard) = &hard {
            // vcpu_set_hard_affinity: the mask must meet the pool's online CPUs.
            if hard.is_empty() {
                return Err(einval(OP));
            }
            v.hard = hard.clone();
        }
        if let Some(soft) = &soft {
            v.soft = soft.clone();
        }
        // Effective: hard ∩ online; soft ∩ hard ∩ online.
        Ok(VcpuAffinity {
            hard: if hard.is_some() {
                v.hard.clone()
            } else {
                Vec::new()
            },
            soft: if soft.is_some() {
                v.soft
                    .iter()
                    .copied()
                    .filter(|c| v.hard.contains(c))
                    .collect()
            } else {
                Vec::new()
            },
        })
    }

    fn vcpu_affinity(&self, domid: DomId, vcpu: u32) -> Result<VcpuAffinity> {
        const OP: &str = "xc_vcpu_getaffinity";
        self.enter(OP)?;
        let state = self.lock();
        let d = state.domains.get(&domid).ok_or_else(|| esrch(OP))?;
        if vcpu >= d.max_vcpus {
            return Err(einval(OP));
        }
        let v = d.vcpus.get(vcpu as usize).ok_or_else(|| esrch(OP))?;
        Ok(VcpuAffinity {
            hard: v.hard.clone(),
            soft: v.soft.clone(),
        })
    }

    fn claim_pages(&self, domid: DomId, pages: u64) -> Result<()> {
        const OP: &str = "xc_domain_claim_pages";
        self.enter(OP)?;
        self.claim(OP, domid, None, pages)
    }

    fn claim_pages_on_node(&self, domid: DomId, node: u32, pages: u64) -> Result<()> {
        const OP: &str = "claim_pages_on_node";
        self.enter(OP)?;
        if !self.spec.node_claims {
            return Err(XenError::hypercall(OP, libc::ENOSYS));
        }
        if node as usize >= self.spec.node_memory_bytes.len() {
            return Err(einval(OP));
        }
        self.claim(OP, domid, Some(node as usize), pages)
    }

    fn alloc_unbound_evtchn(&self, domid: DomId, remote: DomId) -> Result<u32> {
        const OP: &str = "xc_evtchn_alloc_unbound";
        self.enter(OP)?;
        let mut state = self.lock();
        if !state.domains.contains_key(&remote) {
            return Err(esrch(OP));
        }
        let d = state.domains.get_mut(&domid).ok_or_else(|| esrch(OP))?;
        // Port 0 is never allocated; the lowest free port is.
        let port = (1..=d.max_evtchn_port.min(MAX_PORT_2_LEVEL))
            .find(|p| !d.evtchns.contains_key(p))
            .ok_or_else(|| XenError::hypercall(OP, libc::ENOSPC))?;
        d.evtchns.insert(port, remote);
        Ok(port)
    }

    fn create_domain(&self, config: &DomainConfig) -> Result<DomId> {
        const OP: &str = "xc_domain_create";
        self.enter(OP)?;
        if config.max_vcpus == 0 || config.max_vcpus > MAX_VCPUS {
            return Err(einval(OP));
        }
        // (arch_)sanitise_domain_config: what the host cannot do is EINVAL.
        let hvm = config.kind != DomainKind::Pv;
        let spec = &self.spec;
        if (config.hap && (!hvm || !spec.hap))
            || (config.nested_virt && !config.hap)
            || (config.vpmu && !spec.vpmu)
        {
            return Err(einval(OP));
        }
        // A shadowed HVM domain on a Xen without shadow paging: before 4.22
        // shadow_enable fails (EOPNOTSUPP, seen on Debian's 4.17); 4.22
        // refuses it earlier, in arch_sanitise_domain_config (EINVAL).
        if hvm && !config.hap && !spec.shadow_paging {
            let errno = if spec.version
                < (XenVersion {
                    major: 4,
                    minor: 22,
                }) {
                libc::EOPNOTSUPP
            } else {
                libc::EINVAL
            };
            return Err(XenError::hypercall(OP, errno));
        }
        // grant_table_init: a version from 1 to the host's `gnttab=max-ver`.
        if config.max_grant_version == 0 || config.max_grant_version > spec.gnttab_max_version {
            return Err(einval(OP));
        }
        // grant_table_init: at least one grant frame, none above the host's limits.
        let grant_frames = config.max_grant_frames.unwrap_or(XEN_MAX_GRANT_FRAMES);
        let maptrack_frames = config
            .max_maptrack_frames
            .unwrap_or(XEN_MAX_MAPTRACK_FRAMES);
        if grant_frames == 0
            || grant_frames > XEN_MAX_GRANT_FRAMES
            || maptrack_frames > XEN_MAX_MAPTRACK_FRAMES
        {
            return Err(einval(OP));
        }
        let mut state = self.lock();
        // Xen's domain_create: the next id after the last one handed out,
        // wrapping at DOMID_FIRST_RESERVED, skipping those in use.
        let start = state.next_domid;
        let domid = (start..FIRST_RESERVED_DOMID)
            .chain(1..start)
            .find(|id| !state.domains.contains_key(id))
            .ok_or_else(|| XenError::hypercall(OP, libc::ENOSPC))?;
        state.next_domid = if domid + 1 >= FIRST_RESERVED_DOMID {
            1
        } else {
            domid + 1
        };
        let nodes = state.nodes.len();
        state.domains.insert(domid, Domain::new(config, nodes));
        Ok(domid)
    }

    fn destroy_domain(&self, domid: DomId) -> Result<()> {
        const OP: &str = "xc_domain_destroy";
        self.enter(OP)?;
        if domid == 0 {
            return Err(einval(OP));
        }
        let mut state = self.lock();
        if !state.domains.contains_key(&domid) {
            return Err(esrch(OP));
        }
        Self::release_claim(&mut state, domid);
        let domain = state.domains.remove(&domid).expect("checked above");
        // Its memory is not free at once: it goes to the scrubber.
        for (n, node) in state.nodes.iter_mut().enumerate() {
            node.dirty_pages += domain.pages_per_node[n] + domain.shadow_pages_per_node[n];
        }
        Ok(())
    }

    fn set_domain_handle(&self, domid: DomId, handle: [u8; 16]) -> Result<()> {
        const OP: &str = "xc_domain_sethandle";
        self.enter(OP)?;
        let mut state = self.lock();
        // XEN_DOMCTL_setdomainhandle: any domain, any 16 bytes.
        state
            .domains
            .get_mut(&domid)
            .ok_or_else(|| esrch(OP))?
            .config
            .handle = handle;
        Ok(())
    }

    fn set_max_memory_kib(&self, domid: DomId, max_kib: u64) -> Result<()> {
        const OP: &str = "xc_domain_setmaxmem";
        self.enter(OP)?;
        let mut state = self.lock();
        let d = state.domains.get_mut(&domid).ok_or_else(|| esrch(OP))?;
        // XEN_DOMCTL_max_mem: no check against tot_pages; a domain above its
        // new maximum just cannot allocate more.
        d.max_pages = max_kib / (PAGE_SIZE_BYTES / 1024);
        Ok(())
    }

    fn unpause_domain(&self, domid: DomId) -> Result<()> {
        const OP: &str = "xc_domain_unpause";
        self.enter(OP)?;
        let mut state = self.lock();
        let d = state.domains.get_mut(&domid).ok_or_else(|| esrch(OP))?;
        // domain_unpause_by_systemcontroller: EINVAL when it is not paused.
        // A shut-down domain's vCPUs stay paused for the shutdown
        // (`paused_for_shutdown`): it is unpaused but does not run.
        if !d.paused {
            return Err(einval(OP));
        }
        d.paused = false;
        Ok(())
    }
}
