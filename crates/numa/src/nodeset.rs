//! A set of NUMA node ids, as one 64-bit word (Xen's x86 MAX_NUMNODES is 64).

use crate::cpuset::BitIter;
use crate::ids::NodeId;

/// A set of node ids (each below [`crate::MAX_NODES`], one bit each).
///
/// Its integer order is the balancing tie-break of xenopsd: there, a plan's
/// nodes are a list in descending id order and lists compare element by
/// element, a prefix first. The larger of two such lists is the one holding
/// the highest id where the sets differ, which is exactly the larger mask.
#[derive(Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NodeSet(u64);

impl NodeSet {
    pub const EMPTY: NodeSet = NodeSet(0);

    pub fn from_ids<I: IntoIterator<Item = NodeId>>(ids: I) -> Self {
        ids.into_iter().fold(NodeSet::EMPTY, NodeSet::with)
    }

    pub fn bits(self) -> u64 {
        self.0
    }

    pub fn len(self) -> usize {
        self.0.count_ones() as usize
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    pub fn contains(self, node: NodeId) -> bool {
        self.0 & (1 << node.index()) != 0
    }

    pub(crate) fn with(self, node: NodeId) -> Self {
        NodeSet(self.0 | (1 << node.index()))
    }

    /// The node ids in ascending order.
    pub fn iter(self) -> impl Iterator<Item = NodeId> {
        BitIter(self.0).map(NodeId::from_mask_bit)
    }
}

impl FromIterator<NodeId> for NodeSet {
    fn from_iter<I: IntoIterator<Item = NodeId>>(iter: I) -> Self {
        NodeSet::from_ids(iter)
    }
}

impl std::fmt::Debug for NodeSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set()
            .entries(self.iter().map(NodeId::index))
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nodes(ids: &[usize]) -> NodeSet {
        NodeSet::from_ids(ids.iter().map(|&id| NodeId::new(id).unwrap()))
    }

    /// xenopsd's lists in descending order, compared as OCaml compares lists.
    fn xenopsd_list_order(a: NodeSet, b: NodeSet) -> std::cmp::Ordering {
        let mut a: Vec<NodeId> = a.iter().collect();
        let mut b: Vec<NodeId> = b.iter().collect();
        a.reverse();
        b.reverse();
        a.cmp(&b)
    }

    #[test]
    fn mask_order_is_the_descending_list_order() {
        let sets: Vec<NodeSet> = (1u64..256).map(NodeSet).collect();
        for &a in &sets {
            for &b in &sets {
                assert_eq!(a.cmp(&b), xenopsd_list_order(a, b), "{a:?} vs {b:?}");
            }
        }
    }

    #[test]
    fn one_two_beats_zero_three() {
        assert!(nodes(&[1, 2]) < nodes(&[0, 3]));
    }

    #[test]
    fn the_highest_node_id_has_a_bit() {
        let set = nodes(&[0, crate::MAX_NODES - 1]);
        assert_eq!(set.bits(), 1 | 1 << 63);
        assert!(set.contains(NodeId::new(63).unwrap()) && !set.contains(NodeId::new(62).unwrap()));
        assert_eq!(
            set.iter().map(NodeId::index).collect::<Vec<_>>(),
            vec![0, 63]
        );
        assert_eq!(format!("{set:?}"), "{0, 63}");
    }
}
