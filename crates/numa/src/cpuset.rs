//! A set of physical CPU ids, as a bit set.

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

    pub fn insert(&mut self, cpu: usize) {
        let word = cpu / 64;
        if word >= self.words.len() {
            self.words.resize(word + 1, 0);
        }
        self.words[word] |= 1 << (cpu % 64);
    }

    pub fn contains(&self, cpu: usize) -> bool {
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
    pub fn iter(&self) -> impl Iterator<Item = usize> + '_ {
        self.words
            .iter()
            .enumerate()
            .flat_map(|(i, &word)| BitIter(word).map(move |bit| i * 64 + bit as usize))
    }

    /// One bool per CPU up to the largest member, as Xen's cpumap bytes want.
    pub fn to_mask(&self) -> Vec<bool> {
        let end = self.iter().last().map_or(0, |max| max + 1);
        (0..end).map(|cpu| self.contains(cpu)).collect()
    }
}

impl FromIterator<usize> for CpuSet {
    fn from_iter<I: IntoIterator<Item = usize>>(iter: I) -> Self {
        let mut set = CpuSet::new();
        for cpu in iter {
            set.insert(cpu);
        }
        set
    }
}

impl std::fmt::Debug for CpuSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.iter()).finish()
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

    #[test]
    fn insert_iterate_and_count() {
        let set: CpuSet = [130, 0, 63, 64, 5].into_iter().collect();
        assert_eq!(set.iter().collect::<Vec<_>>(), vec![0, 5, 63, 64, 130]);
        assert_eq!(set.len(), 5);
        assert!(set.contains(64) && !set.contains(65) && !set.contains(10_000));
    }

    #[test]
    fn union_grows_to_the_larger_set() {
        let mut a: CpuSet = [1, 2].into_iter().collect();
        let b: CpuSet = [2, 200].into_iter().collect();
        a.union_with(&b);
        assert_eq!(a.iter().collect::<Vec<_>>(), vec![1, 2, 200]);
    }

    #[test]
    fn empty_and_mask() {
        assert!(CpuSet::new().is_empty());
        assert!(CpuSet::new().to_mask().is_empty());
        let set: CpuSet = [0, 3].into_iter().collect();
        assert_eq!(set.to_mask(), vec![true, false, false, true]);
    }
}
