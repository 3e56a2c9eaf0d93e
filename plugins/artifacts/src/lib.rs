//! The rule components of this repository, built for `wasm32-wasip2` by this crate's
//! build script: a path constant per component, for tests and benchmarks.
//!
//! Building this crate also installs the example components into `examples/rules/`, so
//! `cargo build --release` leaves the example rules directory ready to run.

include!(concat!(env!("OUT_DIR"), "/rules.rs"));
