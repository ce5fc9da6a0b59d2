//! The hypervisor's logic. Everything outside `arch` and `hv` is plain Rust
//! that runs and is tested on the host; `arch` holds the assembly and the
//! system registers, `hv` the glue that drives real hardware, and both exist
//! only on the real target.
#![cfg_attr(not(test), no_std)]

pub mod bootargs;
pub mod console;
pub mod debug_view;
pub mod dtb;
pub mod esr;
pub mod gic_mmio;
pub mod grant;
pub mod inject;
pub mod mailbox;
pub mod manager;
pub mod mmu;
pub mod platform;
pub mod power;
pub mod regs;
pub mod request;
pub mod sgi;
pub mod stage2;
pub mod stats;
pub mod suspend;
pub mod trace;
pub mod vgic;
pub mod vuart;

#[cfg(target_os = "none")]
pub mod arch;
#[cfg(target_os = "none")]
pub mod hv;
