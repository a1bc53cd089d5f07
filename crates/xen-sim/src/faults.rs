//! Fault injection: make an operation fail with a given errno, once, always or
//! with a seeded probability, and add latency to it.

/// When an injected fault fires.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum FaultMode {
    Once,
    Always,
    /// Each call fails with this probability (0 to 1), from a seeded generator.
    Probability(f64),
    /// Never fails: only the latency applies.
    Never,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Fault {
    /// The operation, by its libxenctrl name (`xc_domain_claim_pages`, ...).
    pub operation: String,
    pub errno: i32,
    pub mode: FaultMode,
    /// Added to every call of the operation, whether it fails or not.
    pub latency_ms: u64,
}

/// A small deterministic generator (xorshift64*), so seeded runs repeat.
#[derive(Clone, Debug)]
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Self {
        Rng(seed.max(1))
    }

    /// A float in [0, 1).
    pub(crate) fn next_f64(&mut self) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// What the faults say about one call: how long to wait, and the errno to fail with.
pub(crate) fn decide(
    faults: &mut Vec<Fault>,
    rng: &mut Rng,
    operation: &str,
) -> (u64, Option<i32>) {
    let Some(index) = faults.iter().position(|f| f.operation == operation) else {
        return (0, None);
    };
    let fault = faults[index].clone();
    let fails = match fault.mode {
        FaultMode::Once => {
            faults.remove(index);
            true
        }
        FaultMode::Always => true,
        FaultMode::Probability(p) => rng.next_f64() < p,
        FaultMode::Never => false,
    };
    (fault.latency_ms, fails.then_some(fault.errno))
}
