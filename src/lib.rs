//! The N-API binding of xen-domain-build: JS values in, crate calls, JS values
//! out. Logic lives in the crates; JS numbers are checked in `convert`, and
//! every error becomes a JS error with a stable `code` in `error`.
// Under `cargo clippy --all-targets` the lib is also built as a test, where
// napi-rs registers nothing, so exported items look unused there.
#![cfg_attr(test, allow(dead_code))]

mod convert;
mod error;
mod hypervisor;
mod planner;
mod sim;
mod task;
mod xenstore;
