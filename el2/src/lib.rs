//! The hypervisor's logic. Everything outside `arch` is plain Rust that
//! runs and is tested on the host; `arch` holds the assembly, the system
//! registers and the devices, and exists only on the real target.
#![cfg_attr(not(test), no_std)]

pub mod dtb;
pub mod esr;
