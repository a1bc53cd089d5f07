//! The N-API binding of xen-domain-build: JS values in, crate calls, JS values
//! out. Logic lives in the crates; JS numbers are checked in `convert`, and
//! every error becomes a JS error with a stable `code` in `error`.
#![deny(clippy::all)]

mod convert;
mod error;
mod planner;
