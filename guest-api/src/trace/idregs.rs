//! TRACE_IDREGS: a core's trace-unit ID registers as EL2 reads them, and
//! the trace ID EL2 programs into it: what a trace decoder (OpenCSD, perf's
//! `cs_etm` metadata) needs to know about the unit that wrote the data.

use crate::hyp;

/// Trace ID of core 0: CoreSight's legacy per-CPU trace IDs start here.
pub const TRACE_ID_BASE: u64 = 0x10;
/// Trace IDs of consecutive cores differ by this.
pub const TRACE_ID_STRIDE: u64 = 2;

/// The TRCTRACEIDR the hypervisor programs on core `core` (its index in
/// the guest's device tree, which is Linux's logical CPU number when the
/// boot CPU is the first cpu node): `0x10 + 2 * core`, the legacy per-CPU
/// ID that Linux's CoreSight framework and perf (6.1 and older) assume
/// for CPU `core` without asking the kernel. Every value for the
/// hypervisor's cores (up to 8) is a valid trace ID (1..=0x6f).
pub const fn trace_id(core: usize) -> u64 {
    TRACE_ID_BASE + TRACE_ID_STRIDE * core as u64
}

/// TRACE_IDREGS's answer (x1..x4). Every register is 32 bits wide; two go
/// in each result register, the first in bits `[31:0]`:
///
/// | register | `[31:0]` | `[63:32]` |
/// |---|---|---|
/// | x1 | TRCIDR0 | TRCIDR1 |
/// | x2 | TRCIDR2 | TRCIDR8 |
/// | x3 | TRCAUTHSTATUS | TRCDEVARCH |
/// | x4 | TRCTRACEIDR | zero |
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IdRegs {
    /// TRCIDR0: tracing features (timestamps, cycle counting, ...).
    pub idr0: u32,
    /// TRCIDR1: the unit's architecture revision and designer.
    pub idr1: u32,
    /// TRCIDR2: address, context ID and VMID sizes.
    pub idr2: u32,
    /// TRCIDR8: maximum speculation depth.
    pub idr8: u32,
    /// TRCAUTHSTATUS: what the authentication interface allows.
    pub authstatus: u32,
    /// TRCDEVARCH: the unit's architecture (ETE: ARCHVER 5, ARCHPART 0xA13).
    pub devarch: u32,
    /// TRCTRACEIDR: the trace ID the hypervisor programs ([`trace_id`]).
    pub traceid: u32,
}

const fn pair(lo: u32, hi: u32) -> u64 {
    lo as u64 | (hi as u64) << 32
}

impl IdRegs {
    /// x0..x5 of the successful answer (x5 is not defined by the call).
    pub const fn to_registers(&self) -> [u64; 6] {
        [
            0,
            pair(self.idr0, self.idr1),
            pair(self.idr2, self.idr8),
            pair(self.authstatus, self.devarch),
            self.traceid as u64,
            0,
        ]
    }

    /// Decodes x0..x4 as the guest receives them.
    pub fn from_registers(r: [u64; 6]) -> Result<IdRegs, hyp::Error> {
        if r[0] != 0 {
            return Err(hyp::Error::from_code(r[0] as i64).unwrap_or(hyp::Error::InvalidParameter));
        }
        Ok(IdRegs {
            idr0: r[1] as u32,
            idr1: (r[1] >> 32) as u32,
            idr2: r[2] as u32,
            idr8: (r[2] >> 32) as u32,
            authstatus: r[3] as u32,
            devarch: (r[3] >> 32) as u32,
            traceid: r[4] as u32,
        })
    }

    /// TRCDEVARCH says ETE: ARCHVER `[15:12]` 5 and ARCHPART `[11:0]`
    /// 0xA13 (the test perf applies to pick its ETE decoder).
    pub const fn is_ete(&self) -> bool {
        (self.devarch >> 12) & 0xf == 5 && self.devarch & 0xfff == 0xa13
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answer_round_trip_and_layout() {
        let ids = IdRegs {
            idr0: 0x2800_02a1,
            idr1: 0x4100_f403,
            idr2: 0x0000_1088,
            idr8: 0x8,
            authstatus: 0xc,
            devarch: 0x4770_5a13,
            traceid: 0x14,
        };
        let r = ids.to_registers();
        assert_eq!(
            r,
            [
                0,
                0x4100_f403_2800_02a1,
                0x0000_0008_0000_1088,
                0x4770_5a13_0000_000c,
                0x14,
                0
            ]
        );
        assert_eq!(IdRegs::from_registers(r), Ok(ids));
        assert!(ids.is_ete());
        // Each field lands in its own half: all ones in one field only.
        let one = IdRegs {
            idr8: u32::MAX,
            ..IdRegs::default()
        };
        assert_eq!(one.to_registers()[2], 0xffff_ffff_0000_0000);
        assert_eq!(IdRegs::from_registers(one.to_registers()), Ok(one));
    }

    #[test]
    fn errors_decode() {
        assert_eq!(
            IdRegs::from_registers([(-3i64) as u64, 1, 2, 3, 4, 5]),
            Err(hyp::Error::InvalidParameter)
        );
        assert_eq!(
            IdRegs::from_registers([(-5i64) as u64, 0, 0, 0, 0, 0]),
            Err(hyp::Error::TargetOff)
        );
    }

    #[test]
    fn ete_is_archver_5_archpart_a13() {
        let with = |devarch| IdRegs {
            devarch,
            ..IdRegs::default()
        };
        assert!(with(0x4770_5a13).is_ete());
        // ETMv4.x: ARCHVER 4, ARCHPART 0xA13.
        assert!(!with(0x4774_4a13).is_ete());
        assert!(!with(0x4770_5a14).is_ete());
        assert!(!with(0).is_ete());
    }

    #[test]
    fn trace_ids_are_the_legacy_per_cpu_ids() {
        // Linux's CORESIGHT_LEGACY_CPU_TRACE_ID / perf's coresight_get_trace_id.
        assert_eq!(trace_id(0), 0x10);
        assert_eq!(trace_id(1), 0x12);
        assert_eq!(trace_id(7), 0x1e);
        for core in 0..48 {
            let id = trace_id(core);
            // 0 and 0x70..=0x7f are reserved.
            assert!(id != 0 && id < 0x70, "core {core}: {id:#x}");
        }
    }
}
