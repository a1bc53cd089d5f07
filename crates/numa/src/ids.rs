//! Node and CPU ids as distinct types, so that one is never used for the
//! other (xenopsd's `topology.ml` does the same with `node = private Node of int`).

/// The most NUMA nodes a topology may have (Xen's x86 `MAX_NUMNODES`).
pub const MAX_NODES: usize = 64;

/// The most CPUs a topology may have (Xen's largest x86 `NR_CPUS`, rounded up).
pub const MAX_CPUS: usize = 16_384;

/// A NUMA node id, below [`MAX_NODES`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NodeId(u8);

impl NodeId {
    /// `None` when `id` is not below [`MAX_NODES`].
    pub const fn new(id: usize) -> Option<NodeId> {
        if id < MAX_NODES {
            Some(NodeId(id as u8))
        } else {
            None
        }
    }

    /// The id as an index into per-node arrays.
    pub const fn index(self) -> usize {
        self.0 as usize
    }

    /// The node of a bit of a 64-bit node mask: every such bit is below
    /// [`MAX_NODES`], so the hot path needs no check.
    pub(crate) const fn from_mask_bit(bit: u32) -> NodeId {
        debug_assert!(bit < MAX_NODES as u32);
        NodeId(bit as u8)
    }
}

impl From<NodeId> for u32 {
    fn from(node: NodeId) -> u32 {
        u32::from(node.0)
    }
}

impl std::fmt::Display for NodeId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// A physical CPU id, below [`MAX_CPUS`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CpuId(u16);

impl CpuId {
    /// `None` when `id` is not below [`MAX_CPUS`].
    pub const fn new(id: usize) -> Option<CpuId> {
        if id < MAX_CPUS {
            Some(CpuId(id as u16))
        } else {
            None
        }
    }

    /// The id as an index into per-CPU arrays.
    pub const fn index(self) -> usize {
        self.0 as usize
    }

    /// The CPU of a set bit of a [`crate::CpuSet`]: only ids were inserted
    /// there, so every such bit is below [`MAX_CPUS`].
    pub(crate) const fn from_mask_bit(bit: usize) -> CpuId {
        debug_assert!(bit < MAX_CPUS);
        CpuId(bit as u16)
    }
}

impl From<CpuId> for u32 {
    fn from(cpu: CpuId) -> u32 {
        u32::from(cpu.0)
    }
}

impl std::fmt::Display for CpuId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// Every node id, ascending: zipped with per-node input, it names each entry
/// without a fallible conversion.
pub(crate) fn all_node_ids() -> impl Iterator<Item = NodeId> + Clone {
    (0..MAX_NODES as u8).map(NodeId)
}

/// Every CPU id, ascending (see [`all_node_ids`]).
pub(crate) fn all_cpu_ids() -> impl Iterator<Item = CpuId> {
    (0..MAX_CPUS as u16).map(CpuId)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_ids_stop_below_max_nodes() {
        assert_eq!(NodeId::new(0).map(NodeId::index), Some(0));
        assert_eq!(NodeId::new(MAX_NODES - 1).map(NodeId::index), Some(63));
        assert_eq!(NodeId::new(MAX_NODES), None);
        assert_eq!(NodeId::new(usize::MAX), None);
    }

    #[test]
    fn cpu_ids_stop_below_max_cpus() {
        assert_eq!(CpuId::new(0).map(CpuId::index), Some(0));
        assert_eq!(CpuId::new(MAX_CPUS - 1).map(CpuId::index), Some(16_383));
        assert_eq!(CpuId::new(MAX_CPUS), None);
        assert_eq!(CpuId::new(usize::MAX), None);
    }

    #[test]
    fn ids_display_as_their_number() {
        let node = NodeId::new(7).unwrap();
        let cpu = CpuId::new(300).unwrap();
        assert_eq!(
            (node.to_string(), cpu.to_string()),
            ("7".into(), "300".into())
        );
        assert_eq!((u32::from(node), u32::from(cpu)), (7, 300));
    }

    #[test]
    fn the_id_iterators_cover_every_id_once() {
        assert_eq!(all_node_ids().count(), MAX_NODES);
        assert_eq!(all_node_ids().last(), NodeId::new(MAX_NODES - 1));
        assert_eq!(all_cpu_ids().count(), MAX_CPUS);
        assert_eq!(all_cpu_ids().last(), CpuId::new(MAX_CPUS - 1));
    }
}
