//! A set of physical CPU ids, as a bit set.

use crate::ids::CpuId;

/// A set of CPU ids. Bits live in 64-bit words; the set grows to fit the
/// largest id inserted, so sets built from the same topology compare equal
/// whatever order their CPUs were added in.
#[derive(Clone, Default, PartialEq, Eq, Hash)]
pub struct CpuSet {
    words: Vec<u64>,
}

impl CpuSet {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn insert(&mut self, cpu: CpuId) {
        let cpu = cpu.index();
        let word = cpu / 64;
        if word >= self.words.len() {
            self.words.resize(word + 1, 0);
        }
        self.words[word] |= 1 << (cpu % 64);
    }

    pub fn contains(&self, cpu: CpuId) -> bool {
        self.contains_index(cpu.index())
    }

    fn contains_index(&self, cpu: usize) -> bool {
        self.words
            .get(cpu / 64)
            .is_some_and(|w| w & (1 << (cpu % 64)) != 0)
    }

    pub fn len(&self) -> usize {
        self.words.iter().map(|w| w.count_ones() as usize).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.words.iter().all(|&w| w == 0)
    }

    pub fn union_with(&mut self, other: &CpuSet) {
        if other.words.len() > self.words.len() {
            self.words.resize(other.words.len(), 0);
        }
        for (mine, theirs) in self.words.iter_mut().zip(&other.words) {
            *mine |= theirs;
        }
    }

    /// The CPU ids in ascending order.
    pub fn iter(&self) -> impl Iterator<Item = CpuId> + '_ {
        self.words.iter().enumerate().flat_map(|(i, &word)| {
            BitIter(word).map(move |bit| CpuId::from_mask_bit(i * 64 + bit as usize))
        })
    }

    /// One bool per CPU up to the largest member, as Xen's cpumap bytes want.
    pub fn to_mask(&self) -> Vec<bool> {
        let end = self.iter().last().map_or(0, |max| max.index() + 1);
        (0..end).map(|cpu| self.contains_index(cpu)).collect()
    }
}

impl FromIterator<CpuId> for CpuSet {
    fn from_iter<I: IntoIterator<Item = CpuId>>(iter: I) -> Self {
        let mut set = CpuSet::new();
        for cpu in iter {
            set.insert(cpu);
        }
        set
    }
}

impl std::fmt::Debug for CpuSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set()
            .entries(self.iter().map(CpuId::index))
            .finish()
    }
}

/// The set bits of a word, lowest first.
pub(crate) struct BitIter(pub u64);

impl Iterator for BitIter {
    type Item = u32;

    fn next(&mut self) -> Option<u32> {
        if self.0 == 0 {
            return None;
        }
        let bit = self.0.trailing_zeros();
        self.0 &= self.0 - 1;
        Some(bit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cpu(id: usize) -> CpuId {
        CpuId::new(id).unwrap()
    }

    fn cpus(ids: &[usize]) -> CpuSet {
        ids.iter().map(|&id| cpu(id)).collect()
    }

    fn ids(set: &CpuSet) -> Vec<usize> {
        set.iter().map(CpuId::index).collect()
    }

    #[test]
    fn insert_iterate_and_count() {
        let set = cpus(&[130, 0, 63, 64, 5]);
        assert_eq!(ids(&set), vec![0, 5, 63, 64, 130]);
        assert_eq!(set.len(), 5);
        assert!(set.contains(cpu(64)) && !set.contains(cpu(65)) && !set.contains(cpu(10_000)));
        assert_eq!(format!("{set:?}"), "{0, 5, 63, 64, 130}");
    }

    #[test]
    fn the_highest_cpu_id_fits() {
        let highest = cpu(crate::MAX_CPUS - 1);
        let set: CpuSet = [highest].into_iter().collect();
        assert_eq!(set.iter().collect::<Vec<_>>(), vec![highest]);
    }

    #[test]
    fn union_grows_to_the_larger_set() {
        let mut a = cpus(&[1, 2]);
        let b = cpus(&[2, 200]);
        a.union_with(&b);
        assert_eq!(ids(&a), vec![1, 2, 200]);
    }

    #[test]
    fn empty_and_mask() {
        assert!(CpuSet::new().is_empty());
        assert!(CpuSet::new().to_mask().is_empty());
        assert_eq!(cpus(&[0, 3]).to_mask(), vec![true, false, false, true]);
    }
}
