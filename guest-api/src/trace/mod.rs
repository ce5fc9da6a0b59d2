//! The trace manager's calls (part of the vendor hypervisor service, owner 6):
//! their function IDs here, one file per codec beside this one. The calls,
//! their words and their semantics are documented in the crate's ABI
//! document (`ABI.md`, the [crate]'s documentation).
//!
//! Every item is re-exported here, so `guest_api::trace::TraceConfig` and
//! the like are the paths guests and the hypervisor use.

use crate::smccc::{FunctionId, Owner};

mod config;
mod idregs;
mod read;
mod stats;
mod status;

pub use config::{
    filter_valid, ConfigError, TraceConfig, CONFIG_ADDR_FILTER, CONFIG_ALL, CONFIG_CONTEXT_ID,
    CONFIG_CYCLES, CONFIG_EL0, CONFIG_EL1, CONFIG_TIMESTAMPS, CONFIG_WRAP, FILTER_ALIGN,
    FILTER_END_MAX,
};
pub use idregs::{trace_id, IdRegs, TRACE_ID_BASE, TRACE_ID_STRIDE};
pub use read::{ReadResult, READ_ALIGN, READ_MAX};
pub use stats::{
    Stats, STATS_EC_MASK, STATS_EC_SHIFT, STATS_ERROR, STATS_FULL, STATS_INSTRUCTIONS,
};
pub use status::{
    parse_state, state_backend, state_hw, state_mode, state_powered, state_word, Backend, Hardware,
    Mode, Status, BACKEND_ETE_TRBE, BACKEND_MODEL, HW_STOPPED, HW_TRACING, MODE_DISABLED,
    MODE_ENABLED, STATE_BACKEND_MASK, STATE_BACKEND_SHIFT, STATE_HW_MASK, STATE_HW_SHIFT,
    STATE_MODE_MASK, STATE_MODE_SHIFT, STATE_POWERED, STATE_RESERVED_MASK,
};

/// TRACE_ENABLE(x1 = target MPIDR, x2 = config, x3 = filter start, x4 = filter end).
pub const TRACE_ENABLE: u32 = FunctionId::fast(true, Owner::VendorHyp, 0x0010).encode();
/// TRACE_DISABLE(x1 = target MPIDR).
pub const TRACE_DISABLE: u32 = FunctionId::fast(true, Owner::VendorHyp, 0x0011).encode();
/// TRACE_STATUS(x1 = target MPIDR).
pub const TRACE_STATUS: u32 = FunctionId::fast(true, Owner::VendorHyp, 0x0012).encode();
/// TRACE_READ(x1 = target MPIDR, x2 = offset, x3 = guest IPA, x4 = size).
pub const TRACE_READ: u32 = FunctionId::fast(true, Owner::VendorHyp, 0x0013).encode();
/// TRACE_STATS(x1 = target MPIDR).
pub const TRACE_STATS: u32 = FunctionId::fast(true, Owner::VendorHyp, 0x0014).encode();
/// TRACE_IDREGS(x1 = target MPIDR).
pub const TRACE_IDREGS: u32 = FunctionId::fast(true, Owner::VendorHyp, 0x0015).encode();

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_owner_six_fast_64_bit_calls() {
        assert_eq!(TRACE_ENABLE, 0xC600_0010);
        assert_eq!(TRACE_DISABLE, 0xC600_0011);
        assert_eq!(TRACE_STATUS, 0xC600_0012);
        for id in [TRACE_ENABLE, TRACE_DISABLE, TRACE_STATUS] {
            let f = FunctionId::decode(id as u64).unwrap();
            assert!(f.fast && f.is_64);
            assert_eq!(f.owner, Owner::VendorHyp);
        }
    }

    #[test]
    fn trace_data_ids() {
        assert_eq!(TRACE_READ, 0xC600_0013);
        assert_eq!(TRACE_STATS, 0xC600_0014);
        assert_eq!(TRACE_IDREGS, 0xC600_0015);
        for id in [TRACE_READ, TRACE_STATS, TRACE_IDREGS] {
            let f = FunctionId::decode(id as u64).unwrap();
            assert!(f.fast && f.is_64);
            assert_eq!(f.owner, Owner::VendorHyp);
        }
    }
}
