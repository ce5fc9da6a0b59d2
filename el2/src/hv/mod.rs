//! The hypervisor running on real (or emulated) hardware: boot, per-core
//! setup, and the exception handlers that tie the host-tested logic to the
//! registers. Data path: trap -> dispatch -> mailbox -> per-core commit.

pub mod boot;
pub mod core_state;
pub mod gic;
pub mod psci;
pub mod tracing;
pub mod trap;
pub mod vuart;
