//! JS numbers into Rust integers, refusing what is not exactly representable.
//! `field` is only formatted when a value is refused.

use crate::error::{invalid_argument, Result};

/// 2^53 - 1: above it, a JS number no longer names one integer.
const MAX_SAFE_INTEGER: f64 = 9_007_199_254_740_991.0;

fn describe(value: f64) -> String {
    if value.is_nan() {
        "NaN".into()
    } else {
        value.to_string()
    }
}

/// A safe integer, possibly negative.
pub fn to_i64(value: f64, field: impl FnOnce() -> String) -> Result<i64> {
    if value.is_finite() && value.fract() == 0.0 && value.abs() <= MAX_SAFE_INTEGER {
        Ok(value as i64)
    } else {
        Err(invalid_argument(format!(
            "{}: {} is not a safe integer",
            field(),
            describe(value)
        )))
    }
}

/// A safe integer ≥ 0.
pub fn to_u64(value: f64, field: impl FnOnce() -> String) -> Result<u64> {
    if value.is_finite() && value.fract() == 0.0 && (0.0..=MAX_SAFE_INTEGER).contains(&value) {
        Ok(value as u64)
    } else {
        Err(invalid_argument(format!(
            "{}: {} is not a non-negative safe integer",
            field(),
            describe(value)
        )))
    }
}

/// An integer from 0 to 2^32 - 1.
pub fn to_u32(value: f64, field: impl FnOnce() -> String) -> Result<u32> {
    if value.is_finite() && value.fract() == 0.0 && (0.0..=f64::from(u32::MAX)).contains(&value) {
        Ok(value as u32)
    } else {
        Err(invalid_argument(format!(
            "{}: {} is not an integer from 0 to {}",
            field(),
            describe(value),
            u32::MAX
        )))
    }
}
