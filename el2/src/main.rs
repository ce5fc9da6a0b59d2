//! The hypervisor image. On the host this file is an empty program so that
//! `cargo test` can build the workspace; the real entry is `boot/entry.S`.
#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(not(target_os = "none"))]
fn main() {}
