//! The ports' contract suites: each case a function over the port's trait, for every
//! adapter to pass unchanged (`tests/contract.rs` runs them on each).

pub mod access;
pub mod metadata;
