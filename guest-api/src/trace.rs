//! The trace manager's calls (part of the vendor hypervisor service, owner 6).
//!
//! SKELETON: the values below are fixed; the codec, documentation table and
//! tests are being written.

use crate::smccc::{FunctionId, Owner};

/// TRACE_ENABLE(x1 = target MPIDR, x2 = config, x3 = filter start, x4 = filter end).
pub const TRACE_ENABLE: u32 = FunctionId::fast(true, Owner::VendorHyp, 0x0010).encode();
/// TRACE_DISABLE(x1 = target MPIDR).
pub const TRACE_DISABLE: u32 = FunctionId::fast(true, Owner::VendorHyp, 0x0011).encode();
/// TRACE_STATUS(x1 = target MPIDR).
pub const TRACE_STATUS: u32 = FunctionId::fast(true, Owner::VendorHyp, 0x0012).encode();

/// Config bit: trace the guest's EL0.
pub const CONFIG_EL0: u64 = 1 << 0;
/// Config bit: trace the guest's EL1.
pub const CONFIG_EL1: u64 = 1 << 1;
/// Config bit: timestamps.
pub const CONFIG_TIMESTAMPS: u64 = 1 << 2;
/// Config bit: cycle counting.
pub const CONFIG_CYCLES: u64 = 1 << 3;
/// Config bit: context-ID tracing.
pub const CONFIG_CONTEXT_ID: u64 = 1 << 4;
/// Config bit: trace only inside [x3, x4).
pub const CONFIG_ADDR_FILTER: u64 = 1 << 5;
/// Every defined config bit.
pub const CONFIG_ALL: u64 = 0x3f;

/// A validated trace configuration.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct TraceConfig {
    /// Trace the guest's EL0.
    pub el0: bool,
    /// Trace the guest's EL1.
    pub el1: bool,
    /// Emit timestamps.
    pub timestamps: bool,
    /// Emit cycle counts.
    pub cycles: bool,
    /// Trace context IDs (CONTEXTIDR_EL1).
    pub context_id: bool,
    /// Trace only addresses in [start, end).
    pub filter: Option<(u64, u64)>,
}

/// STATUS mode field: no trace requested.
pub const MODE_DISABLED: u64 = 0;
/// STATUS mode field: trace requested and committed.
pub const MODE_ENABLED: u64 = 1;
/// STATUS hardware field: trace unit and buffer stopped.
pub const HW_STOPPED: u64 = 0;
/// STATUS hardware field: trace unit and buffer running.
pub const HW_TRACING: u64 = 1;
