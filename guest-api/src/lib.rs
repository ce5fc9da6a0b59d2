//! The ABI between the trace-manager hypervisor and the guest kernels it hosts.
//!
//! Everything a guest may send to EL2 is defined here and nowhere else: the
//! hypervisor decodes with these types and every guest (the bundled Rust test
//! guest, the C header `include/tracemgr.h` for Linux) encodes with them.
//! The crate is `no_std` and has no dependencies, so it builds for EL2, for
//! EL1 guests and for the host's tests alike.
//!
//! Calls follow the Arm SMC Calling Convention (DEN0028): a function ID in
//! `x0`, arguments in `x1..x17`, results in `x0..x7` (TRACE_STATUS uses
//! `x0..x5`).
#![cfg_attr(not(test), no_std)]

pub mod hyp;
pub mod psci;
pub mod smccc;
pub mod trace;
