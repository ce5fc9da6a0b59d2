//! The hypervisor running on real (or emulated) hardware: boot, per-core
//! setup, and the exception handlers that tie the host-tested logic to the
//! registers.
//!
//! The modules form a one-way graph that follows the data; each imports
//! only modules below it:
//!
//! ```text
//! boot                     entry from entry.S: cold boot, CPU_ON, warm boot
//! trap                     guest exceptions: decode, emulate, route
//!  └ hvc                   the SMCCC router
//!     ├ psci               PSCI, relayed to firmware; suspend save/restore
//!     └ tracing            trace requests: caller side, owning-core side
//! vuart                    the guest's emulated UART
//! vcpu                     the guest's vCPU: entry, list registers, SGIs,
//!                          injected exceptions, its CPU interface
//! state                    the machine, each core's shared state
//! gic                      the physical GIC
//! fatal                    stopping: boot refusals, panics, EL2 faults
//! ```
//!
//! (`psci` imports `tracing`: a power-down saves trace first.)

pub mod boot;
pub mod fatal;
pub mod gic;
pub mod hvc;
pub mod psci;
pub mod state;
pub mod tracing;
pub mod trap;
pub mod vcpu;
pub mod vuart;
