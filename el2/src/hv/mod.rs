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
//!  └ step                  the instruction observer (trace.source=insn):
//!                          steps the guest, feeds tracing's model
//! state                    the machine, each core's shared state
//! gic                      the physical GIC
//! fatal                    stopping: boot refusals, panics, EL2 faults
//! ```
//!
//! (`psci` imports `tracing`: a power-down saves trace first; `trap` and
//! `vcpu` import `step`, which imports `tracing`: every return to the guest
//! arms or disarms stepping.)

pub mod boot;
pub mod fatal;
pub mod gic;
pub mod hvc;
pub mod psci;
pub mod state;
pub mod step;
pub mod tracing;
pub mod trap;
pub mod vcpu;
pub mod vuart;
