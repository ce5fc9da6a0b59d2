//! The hypervisor image. The entry points are in `boot/entry.S`; they call
//! `el2::hv::boot`. On the host this file is an empty program so that
//! `cargo test` can build the workspace.
#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(target_os = "none")]
use el2 as _;

#[cfg(not(target_os = "none"))]
fn main() {}
