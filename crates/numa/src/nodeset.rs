//! A set of NUMA node ids, as one 64-bit word (Xen's x86 MAX_NUMNODES is 64).

use crate::cpuset::BitIter;

/// The most NUMA nodes a topology may have.
pub const MAX_NODES: usize = 64;

/// A set of node ids below [`MAX_NODES`].
///
/// Its integer order is the balancing tie-break of xenopsd: there, a plan's
/// nodes are a list in descending id order and lists compare element by
/// element, a prefix first. The larger of two such lists is the one holding
/// the highest id where the sets differ, which is exactly the larger mask.
#[derive(Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NodeSet(u64);

impl NodeSet {
    pub const EMPTY: NodeSet = NodeSet(0);

    /// `None` when a node id is not below [`MAX_NODES`].
    pub fn from_ids<I: IntoIterator<Item = usize>>(ids: I) -> Option<Self> {
        let mut bits = 0u64;
        for id in ids {
            if id >= MAX_NODES {
                return None;
            }
            bits |= 1 << id;
        }
        Some(NodeSet(bits))
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

    pub fn contains(self, node: usize) -> bool {
        node < MAX_NODES && self.0 & (1 << node) != 0
    }

    pub(crate) fn with(self, node: usize) -> Self {
        NodeSet(self.0 | (1 << node))
    }

    /// The node ids in ascending order.
    pub fn iter(self) -> impl Iterator<Item = usize> {
        BitIter(self.0).map(|bit| bit as usize)
    }
}

impl std::fmt::Debug for NodeSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.iter()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// xenopsd's lists in descending order, compared as OCaml compares lists.
    fn xenopsd_list_order(a: NodeSet, b: NodeSet) -> std::cmp::Ordering {
        let mut a: Vec<usize> = a.iter().collect();
        let mut b: Vec<usize> = b.iter().collect();
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
        let a = NodeSet::from_ids([1, 2]).unwrap();
        let b = NodeSet::from_ids([0, 3]).unwrap();
        assert!(a < b);
    }

    #[test]
    fn ids_beyond_the_limit_are_refused() {
        assert!(NodeSet::from_ids([63]).is_some());
        assert!(NodeSet::from_ids([64]).is_none());
        assert!(!NodeSet::from_ids([1]).unwrap().contains(64));
    }
}
