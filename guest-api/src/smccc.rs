//! SMC Calling Convention (Arm DEN0028): the function-ID layout and the UID
//! packing this ABI needs. The architecture calls' IDs and return codes are
//! the smccc crate's; they are re-exported here at the widths this ABI uses
//! (function IDs as `u32`, results as the `i64` a guest reads from `x0`).

use smccc::arch::error as arch_error;

/// `SMCCC_ARCH_FEATURES(function ID)`: is an Arm Architecture Service call implemented?
pub use smccc::arch::SMCCC_ARCH_FEATURES;
/// `SMCCC_VERSION`: returns the convention's version (major << 16 | minor).
pub use smccc::arch::SMCCC_VERSION;
/// SMCCC version 1.1.
pub const VERSION_1_1: u32 = 0x0001_0001;
/// The SMCCC version the hypervisor implements towards its guests: 1.2,
/// whose calls may return results in x0..x17 (TRACE_STATUS uses x0..x5).
pub const VERSION_1_2: u32 = 0x0001_0002;

/// SMCCC return code: success.
pub const SUCCESS: i64 = arch_error::SUCCESS as i64;
/// SMCCC return code: the function ID is not implemented. Every unknown call gets it.
pub const NOT_SUPPORTED: i64 = arch_error::NOT_SUPPORTED as i64;
/// SMCCC return code: the call is implemented but not required on this platform.
pub const NOT_REQUIRED: i64 = arch_error::NOT_REQUIRED as i64;
/// SMCCC return code: an argument is invalid.
pub const INVALID_PARAMETER: i64 = arch_error::INVALID_PARAMETER as i64;

/// The owning entity of a call: bits `[29:24]` of the function ID.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Owner {
    /// 0: Arm Architecture calls (SMCCC_VERSION, workarounds).
    Arch,
    /// 1: CPU service calls.
    Cpu,
    /// 2: SiP service calls.
    Sip,
    /// 3: OEM service calls.
    Oem,
    /// 4: Standard secure service calls (PSCI lives here).
    StandardSecure,
    /// 5: Standard hypervisor service calls.
    StandardHyp,
    /// 6: Vendor specific hypervisor service calls: this hypervisor's own ABI.
    VendorHyp,
    /// 7..=47: reserved, and 48..=63: trusted applications / trusted OS.
    Other(u8),
}

impl Owner {
    /// The six-bit owner number.
    pub const fn number(self) -> u8 {
        match self {
            Owner::Arch => 0,
            Owner::Cpu => 1,
            Owner::Sip => 2,
            Owner::Oem => 3,
            Owner::StandardSecure => 4,
            Owner::StandardHyp => 5,
            Owner::VendorHyp => 6,
            Owner::Other(n) => n & 0x3f,
        }
    }

    /// The owner named by a six-bit owner number.
    pub const fn from_number(n: u8) -> Owner {
        match n & 0x3f {
            0 => Owner::Arch,
            1 => Owner::Cpu,
            2 => Owner::Sip,
            3 => Owner::Oem,
            4 => Owner::StandardSecure,
            5 => Owner::StandardHyp,
            6 => Owner::VendorHyp,
            n => Owner::Other(n),
        }
    }
}

/// A decoded SMCCC function identifier.
///
/// Bit 31 says fast (1) or yielding (0); bit 30 says SMC64/HVC64 (1) or
/// SMC32/HVC32 (0); bits `[29:24]` name the owner; bits `[15:0]` the function.
/// Bits `[23:16]` must be zero for a valid call (bit 16 is the SVE hint in
/// SMCCC 1.3, which this ABI does not use), so `decode` rejects them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FunctionId {
    /// Fast call (atomic, runs to completion). Yielding calls are not offered.
    pub fast: bool,
    /// SMC64/HVC64 calling convention: arguments and results are 64 bits wide.
    pub is_64: bool,
    /// Who implements the call.
    pub owner: Owner,
    /// The function number within the owner's range.
    pub number: u16,
}

impl FunctionId {
    /// A fast call of the given width, owner and number.
    pub const fn fast(is_64: bool, owner: Owner, number: u16) -> FunctionId {
        FunctionId {
            fast: true,
            is_64,
            owner,
            number,
        }
    }

    /// Decodes the low 32 bits of `x0`. Returns `None` when the reserved
    /// bits `[23:16]` are not zero. Per SMCCC, bits `[63:32]` of `x0` are ignored.
    pub const fn decode(x0: u64) -> Option<FunctionId> {
        let id = x0 as u32;
        if id & 0x00ff_0000 != 0 {
            return None;
        }
        Some(FunctionId {
            fast: id & (1 << 31) != 0,
            is_64: id & (1 << 30) != 0,
            owner: Owner::from_number(((id >> 24) & 0x3f) as u8),
            number: id as u16,
        })
    }

    /// The 32-bit function ID to place in `w0`.
    pub const fn encode(self) -> u32 {
        ((self.fast as u32) << 31)
            | ((self.is_64 as u32) << 30)
            | ((self.owner.number() as u32) << 24)
            | self.number as u32
    }
}

/// A UUID as returned by the SMCCC "Call UID" queries: in `w0..w3`, each
/// register holding four bytes of the RFC 4122 byte string, little-endian.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Uid(pub [u8; 16]);

impl Uid {
    /// The four 32-bit register values `w0..w3`.
    pub const fn to_registers(self) -> [u32; 4] {
        let b = self.0;
        [
            u32::from_le_bytes([b[0], b[1], b[2], b[3]]),
            u32::from_le_bytes([b[4], b[5], b[6], b[7]]),
            u32::from_le_bytes([b[8], b[9], b[10], b[11]]),
            u32::from_le_bytes([b[12], b[13], b[14], b[15]]),
        ]
    }

    /// The UUID returned in `w0..w3` (upper halves of `x0..x3` ignored).
    pub const fn from_registers(r: [u64; 4]) -> Uid {
        let a = (r[0] as u32).to_le_bytes();
        let b = (r[1] as u32).to_le_bytes();
        let c = (r[2] as u32).to_le_bytes();
        let d = (r[3] as u32).to_le_bytes();
        Uid([
            a[0], a[1], a[2], a[3], b[0], b[1], b[2], b[3], c[0], c[1], c[2], c[3], d[0], d[1],
            d[2], d[3],
        ])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_psci_and_arch_ids() {
        let v = FunctionId::decode(0x8400_0000).unwrap();
        assert_eq!(v, FunctionId::fast(false, Owner::StandardSecure, 0));
        let on64 = FunctionId::decode(0xC400_0003).unwrap();
        assert!(on64.fast && on64.is_64);
        assert_eq!(on64.owner, Owner::StandardSecure);
        assert_eq!(on64.number, 3);
        let arch = FunctionId::decode(SMCCC_ARCH_FEATURES as u64).unwrap();
        assert_eq!(arch.owner, Owner::Arch);
        assert_eq!(arch.number, 1);
    }

    #[test]
    fn upper_half_of_x0_is_ignored() {
        assert_eq!(
            FunctionId::decode(0xdead_beef_8400_0000),
            FunctionId::decode(0x8400_0000)
        );
    }

    #[test]
    fn reserved_bits_are_rejected() {
        assert_eq!(FunctionId::decode(0x8401_0000), None);
        assert_eq!(FunctionId::decode(0x8480_0000), None);
    }

    #[test]
    fn encode_decode_round_trip_over_every_owner_and_width() {
        for owner in 0..64u8 {
            for is_64 in [false, true] {
                for fast in [false, true] {
                    for number in [0u16, 1, 0x7fff, 0xff00, 0xffff] {
                        let f = FunctionId {
                            fast,
                            is_64,
                            owner: Owner::from_number(owner),
                            number,
                        };
                        assert_eq!(FunctionId::decode(f.encode() as u64), Some(f));
                        assert_eq!(f.owner.number(), owner);
                    }
                }
            }
        }
    }

    #[test]
    fn uid_register_packing_matches_smccc() {
        // KVM's published UUID 28b46fb6-2ec5-11e9-a9ca-4b564d003a74 and the
        // register values Linux defines for it.
        let kvm = Uid([
            0x28, 0xb4, 0x6f, 0xb6, 0x2e, 0xc5, 0x11, 0xe9, 0xa9, 0xca, 0x4b, 0x56, 0x4d, 0x00,
            0x3a, 0x74,
        ]);
        assert_eq!(
            kvm.to_registers(),
            [0xb66f_b428, 0xe911_c52e, 0x564b_caa9, 0x743a_004d]
        );
        let r = kvm.to_registers().map(|w| w as u64 | 0xffff_0000_0000_0000);
        assert_eq!(Uid::from_registers(r), kvm);
    }
}
