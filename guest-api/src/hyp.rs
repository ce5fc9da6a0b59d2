//! The vendor-specific hypervisor service (SMCCC owner 6): this hypervisor's
//! own calls.
//!
//! | call                | function ID   | in                         | out                                              |
//! |---------------------|---------------|----------------------------|--------------------------------------------------|
//! | CALL_COUNT          | `0x8600_FF00` | -                          | x0 = number of calls in the service              |
//! | CALL_UID            | `0x8600_FF01` | -                          | w0..w3 = [`UID`]                                 |
//! | REVISION            | `0x8600_FF03` | -                          | x0 = major, x1 = minor                           |
//! | ABI_VERSION         | `0xC600_0000` | -                          | x0 = (major << 16) \| minor                      |
//! | FEATURES            | `0xC600_0001` | x1 = function ID           | x0 = 0 if implemented, else NOT_SUPPORTED (-1)   |
//! | PING                | `0xC600_0002` | x1 = target MPIDR          | x0 = 0, x1 = target's core index, x2 = target's MPIDR, x3 = target's count of pings served |
//!
//! Errors (in x0): NOT_SUPPORTED (-1) for any other function ID in the
//! service's range; INVALID_PARAMETER (-3) for an MPIDR that names no core;
//! TARGET_OFF (-5) when the target core is powered off.
//!
//! PING travels the same path as every cross-core request: the calling
//! core posts it in the target's mailbox and sends the hypervisor's SGI;
//! the target's EL2 answers; the caller returns the answer.

use crate::smccc::{FunctionId, Owner, Uid};

/// CALL_COUNT query of the service.
pub const CALL_COUNT: u32 = 0x8600_FF00;
/// CALL_UID query of the service.
pub const CALL_UID: u32 = 0x8600_FF01;
/// REVISION query of the service.
pub const REVISION: u32 = 0x8600_FF03;

/// Function number of ABI_VERSION (SMC64/HVC64 fast call, owner 6).
pub const ABI_VERSION: u32 = FunctionId::fast(true, Owner::VendorHyp, 0x0000).encode();
/// Function number of FEATURES.
pub const FEATURES: u32 = FunctionId::fast(true, Owner::VendorHyp, 0x0001).encode();
/// Function number of PING.
pub const PING: u32 = FunctionId::fast(true, Owner::VendorHyp, 0x0002).encode();

/// The calls of the service, for CALL_COUNT and FEATURES.
pub const CALLS: [u32; 3] = [ABI_VERSION, FEATURES, PING];

/// This hypervisor's identity: 08f433e7-b7bf-4fc8-b7aa-ccd84170f67c.
pub const UID: Uid = Uid([
    0x08, 0xf4, 0x33, 0xe7, 0xb7, 0xbf, 0x4f, 0xc8, 0xb7, 0xaa, 0xcc, 0xd8, 0x41, 0x70, 0xf6, 0x7c,
]);

/// Service revision reported by REVISION.
pub const REVISION_MAJOR: u64 = 0;
/// Service revision reported by REVISION.
pub const REVISION_MINOR: u64 = 1;
/// ABI_VERSION's answer: major 0, minor 1.
pub const ABI_VERSION_VALUE: u64 = (REVISION_MAJOR << 16) | REVISION_MINOR;

/// Errors of the service, returned as negative values in x0.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(i64)]
pub enum Error {
    /// Unknown function ID.
    NotSupported = -1,
    /// An argument names nothing valid (an unknown MPIDR, a bad address).
    InvalidParameter = -3,
    /// The call is valid but not allowed for this caller.
    Denied = -4,
    /// The target core is powered off.
    TargetOff = -5,
}

impl Error {
    /// The value returned in x0.
    pub const fn code(self) -> i64 {
        self as i64
    }

    /// The error a negative x0 stands for, if it is one of ours.
    pub const fn from_code(code: i64) -> Option<Error> {
        Some(match code {
            -1 => Error::NotSupported,
            -3 => Error::InvalidParameter,
            -4 => Error::Denied,
            -5 => Error::TargetOff,
            _ => return None,
        })
    }
}

/// A call of the service, decoded once from `x0..x1`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Call {
    /// CALL_COUNT.
    CallCount,
    /// CALL_UID.
    CallUid,
    /// REVISION.
    Revision,
    /// ABI_VERSION.
    AbiVersion,
    /// FEATURES(function).
    Features { function: u32 },
    /// PING(target MPIDR).
    Ping { target: u64 },
}

impl Call {
    /// Decodes an owner-6 call; `None` for anything this ABI does not define.
    pub const fn decode(x: [u64; 4]) -> Option<Call> {
        if x[0] >> 32 != 0 {
            // SMCCC: bits [63:32] of a function ID are zero for 32-bit IDs;
            // tolerate nothing else for our own service.
            return None;
        }
        Some(match x[0] as u32 {
            CALL_COUNT => Call::CallCount,
            CALL_UID => Call::CallUid,
            REVISION => Call::Revision,
            ABI_VERSION => Call::AbiVersion,
            FEATURES => Call::Features {
                function: x[1] as u32,
            },
            PING => Call::Ping { target: x[1] },
            _ => return None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_owner_six_fast_calls() {
        for id in CALLS {
            let f = FunctionId::decode(id as u64).unwrap();
            assert_eq!(f.owner, Owner::VendorHyp);
            assert!(f.fast && f.is_64);
        }
        assert_eq!(ABI_VERSION, 0xC600_0000);
        assert_eq!(FEATURES, 0xC600_0001);
        assert_eq!(PING, 0xC600_0002);
    }

    #[test]
    fn decode_each_call() {
        assert_eq!(
            Call::decode([CALL_COUNT as u64, 0, 0, 0]),
            Some(Call::CallCount)
        );
        assert_eq!(
            Call::decode([CALL_UID as u64, 0, 0, 0]),
            Some(Call::CallUid)
        );
        assert_eq!(
            Call::decode([REVISION as u64, 0, 0, 0]),
            Some(Call::Revision)
        );
        assert_eq!(
            Call::decode([ABI_VERSION as u64, 0, 0, 0]),
            Some(Call::AbiVersion)
        );
        assert_eq!(
            Call::decode([FEATURES as u64, PING as u64, 0, 0]),
            Some(Call::Features { function: PING })
        );
        assert_eq!(
            Call::decode([PING as u64, 0x8000_0003, 0, 0]),
            Some(Call::Ping {
                target: 0x8000_0003
            })
        );
        assert_eq!(Call::decode([0xC600_0003, 0, 0, 0]), None);
        assert_eq!(Call::decode([0x1_C600_0000, 0, 0, 0]), None);
    }

    #[test]
    fn error_codes_round_trip() {
        for e in [
            Error::NotSupported,
            Error::InvalidParameter,
            Error::Denied,
            Error::TargetOff,
        ] {
            assert_eq!(Error::from_code(e.code()), Some(e));
        }
        assert_eq!(Error::from_code(0), None);
    }

    #[test]
    fn uid_is_not_all_zero_and_is_version_4() {
        assert_ne!(UID.0, [0; 16]);
        assert_eq!(UID.0[6] >> 4, 4);
    }
}
