//! Errata of the trace hardware, keyed by MIDR_EL1, and the workaround EL2
//! applies for each.
//!
//! The facts (erratum numbers, parts, revision ranges, what goes wrong)
//! come from Arm's software developer errata notices as Linux records them
//! (arch/arm64/kernel/cpu_errata.c, arch/arm64/Kconfig,
//! drivers/hwtracing/coresight/coresight-trbe.c). The workarounds are ours,
//! fitted to EL2's buffers:
//!
//! - Write out of range (2224489, 2253138): the TRBE may write up to 64
//!   bytes past LIMIT. Every per-core buffer is followed by a guard page
//!   that holds nothing (`hv::tracing`'s layout), so the stray bytes never
//!   reach another core's buffer or EL2's data; a buffer without a guard
//!   page gets LIMIT one page lower instead (what Linux does).
//! - Overwrite in fill mode (2119858, 2139208): on a FILL event the TRBE
//!   may overwrite the first cache lines at BASE. A fill-mode capture starts
//!   256 bytes past BASE, and those bytes are never read out.
//! - TSB flush failure (2054223, 2067961): one TSB CSYNC may leave trace in
//!   the unit; every TSB CSYNC is issued twice (with trace prohibited, the
//!   two need not be back to back).
//! - Drain after disable (2064142): TRB* writes right after TRBLIMITR.E = 0
//!   can be dropped (a dropped TRBSR write leaves the level-triggered TRBE
//!   interrupt asserted for ever); a TSB CSYNC and a DSB follow every
//!   disable.
//! - Context synchronization after enable (2038923): a second ISB follows
//!   setting TRBLIMITR.E.
//! - Trace corruption (1902691): the TRBE is not used at all.

/// Arm Limited's implementer code (MIDR_EL1.Implementer).
pub const ARM: u8 = 0x41;
/// MIDR_EL1.PartNum of the parts below.
pub const CORTEX_A510: u16 = 0xd46;
/// Cortex-A710.
pub const CORTEX_A710: u16 = 0xd47;
/// Cortex-X2.
pub const CORTEX_X2: u16 = 0xd48;
/// Neoverse N2.
pub const NEOVERSE_N2: u16 = 0xd49;

/// The fields of MIDR_EL1 the table keys on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Midr(pub u64);

impl Midr {
    /// Implementer [31:24].
    pub const fn implementer(self) -> u8 {
        (self.0 >> 24) as u8
    }
    /// PartNum [15:4].
    pub const fn part(self) -> u16 {
        ((self.0 >> 4) & 0xfff) as u16
    }
    /// Variant [23:20] and Revision [3:0] as one number, rXpY = X << 4 | Y,
    /// so revision ranges compare as integers.
    pub const fn rev(self) -> u8 {
        ((((self.0 >> 20) & 0xf) << 4) | (self.0 & 0xf)) as u8
    }
    /// A MIDR of Arm part `part`, revision rXpY.
    pub const fn arm(part: u16, r: u8, p: u8) -> Midr {
        Midr(
            ((ARM as u64) << 24)
                | (((r & 0xf) as u64) << 20)
                | (0xf << 16)
                | ((part as u64) << 4)
                | (p & 0xf) as u64,
        )
    }
}

/// What EL2 does about an erratum.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Workaround {
    /// A guard page beyond LIMIT, never EL2 data.
    GuardBeyondLimit,
    /// Fill-mode captures start 256 bytes past BASE.
    SkipBaseInFill,
    /// Every TSB CSYNC twice.
    DoubleTsb,
    /// TSB CSYNC and DSB after every TRBE disable.
    DrainAfterDisable,
    /// A second ISB after every TRBE enable.
    IsbAfterEnable,
    /// The TRBE is not used.
    Unusable,
}

impl Workaround {
    const fn bit(self) -> u8 {
        1 << self as u8
    }

    /// For the boot log.
    pub const fn describe(self) -> &'static str {
        match self {
            Workaround::GuardBeyondLimit => "guard page beyond LIMIT",
            Workaround::SkipBaseInFill => "fill-mode capture starts 256 bytes past BASE",
            Workaround::DoubleTsb => "every TSB CSYNC issued twice",
            Workaround::DrainAfterDisable => "TSB CSYNC + DSB after every TRBE disable",
            Workaround::IsbAfterEnable => "second ISB after every TRBE enable",
            Workaround::Unusable => "TRBE not used",
        }
    }
}

/// One erratum on one part.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Erratum {
    /// Arm's erratum number.
    pub number: u32,
    /// The part's name.
    pub cpu: &'static str,
    /// MIDR_EL1.PartNum (implementer Arm).
    pub part: u16,
    /// First and last affected revision, as `Midr::rev` numbers, inclusive.
    pub revs: (u8, u8),
    /// What EL2 does.
    pub workaround: Workaround,
}

const ALL: (u8, u8) = (0x00, 0xff);
/// r0p0 to r2p0.
const UP_TO_R2P0: (u8, u8) = (0x00, 0x20);
/// r0p0 to r0p2.
const UP_TO_R0P2: (u8, u8) = (0x00, 0x02);
/// r0p0 to r0p1.
const UP_TO_R0P1: (u8, u8) = (0x00, 0x01);

const fn e(number: u32, cpu: &'static str, part: u16, revs: (u8, u8), w: Workaround) -> Erratum {
    Erratum {
        number,
        cpu,
        part,
        revs,
        workaround: w,
    }
}

/// Every trace erratum EL2 knows.
pub const ERRATA: [Erratum; 11] = [
    e(
        2224489,
        "Cortex-A710",
        CORTEX_A710,
        ALL,
        Workaround::GuardBeyondLimit,
    ),
    e(
        2224489,
        "Cortex-X2",
        CORTEX_X2,
        UP_TO_R2P0,
        Workaround::GuardBeyondLimit,
    ),
    e(
        2253138,
        "Neoverse N2",
        NEOVERSE_N2,
        ALL,
        Workaround::GuardBeyondLimit,
    ),
    e(
        2119858,
        "Cortex-A710",
        CORTEX_A710,
        ALL,
        Workaround::SkipBaseInFill,
    ),
    e(
        2119858,
        "Cortex-X2",
        CORTEX_X2,
        UP_TO_R2P0,
        Workaround::SkipBaseInFill,
    ),
    e(
        2139208,
        "Neoverse N2",
        NEOVERSE_N2,
        ALL,
        Workaround::SkipBaseInFill,
    ),
    e(
        2054223,
        "Cortex-A710",
        CORTEX_A710,
        ALL,
        Workaround::DoubleTsb,
    ),
    e(
        2067961,
        "Neoverse N2",
        NEOVERSE_N2,
        ALL,
        Workaround::DoubleTsb,
    ),
    e(
        2064142,
        "Cortex-A510",
        CORTEX_A510,
        UP_TO_R0P2,
        Workaround::DrainAfterDisable,
    ),
    e(
        2038923,
        "Cortex-A510",
        CORTEX_A510,
        UP_TO_R0P2,
        Workaround::IsbAfterEnable,
    ),
    e(
        1902691,
        "Cortex-A510",
        CORTEX_A510,
        UP_TO_R0P1,
        Workaround::Unusable,
    ),
];

impl Erratum {
    /// Whether this erratum affects the core with `midr`.
    pub const fn applies(&self, midr: Midr) -> bool {
        let r = midr.rev();
        midr.implementer() == ARM
            && midr.part() == self.part
            && r >= self.revs.0
            && r <= self.revs.1
    }
}

/// The errata of one core, as the set of workarounds to apply.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Errata(u8);

impl Errata {
    /// None apply.
    pub const NONE: Errata = Errata(0);

    /// The errata of a core with `midr`.
    pub fn for_midr(midr: Midr) -> Errata {
        applying(midr).fold(Errata::NONE, |e, x| e.with(x.workaround))
    }

    /// This set and `w`.
    pub const fn with(self, w: Workaround) -> Errata {
        Errata(self.0 | w.bit())
    }

    /// Whether `w` is needed.
    pub const fn has(self, w: Workaround) -> bool {
        self.0 & w.bit() != 0
    }

    /// Whether none apply.
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }
}

/// The errata affecting a core with `midr`, in table order.
pub fn applying(midr: Midr) -> impl Iterator<Item = &'static Erratum> {
    ERRATA.iter().filter(move |e| e.applies(midr))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// QEMU's `-cpu max` (7.2): implementer 0, part 0x051.
    const QEMU_MAX: Midr = Midr(0x000f_0510);

    fn numbers(m: Midr) -> Vec<u32> {
        applying(m).map(|e| e.number).collect()
    }

    #[test]
    fn errata_none_apply_to_qemu_or_unaffected_parts() {
        assert!(Errata::for_midr(QEMU_MAX).is_empty());
        assert_eq!(numbers(QEMU_MAX), Vec::<u32>::new());
        // Cortex-X2 r2p1 is past the fixed revision; A510 r1p0 likewise.
        assert_eq!(numbers(Midr::arm(CORTEX_X2, 2, 1)), Vec::<u32>::new());
        assert_eq!(numbers(Midr::arm(CORTEX_A510, 1, 0)), Vec::<u32>::new());
        // Same part number from another implementer.
        assert_eq!(numbers(Midr(0x510f_d470)), Vec::<u32>::new());
    }

    #[test]
    fn errata_table_matches_the_published_ranges() {
        assert_eq!(
            numbers(Midr::arm(CORTEX_A710, 2, 1)),
            [2224489, 2119858, 2054223]
        );
        assert_eq!(numbers(Midr::arm(CORTEX_X2, 2, 0)), [2224489, 2119858]);
        assert_eq!(
            numbers(Midr::arm(NEOVERSE_N2, 0, 3)),
            [2253138, 2139208, 2067961]
        );
        assert_eq!(numbers(Midr::arm(CORTEX_A510, 0, 2)), [2064142, 2038923]);
        assert_eq!(
            numbers(Midr::arm(CORTEX_A510, 0, 1)),
            [2064142, 2038923, 1902691]
        );
        let a710 = Errata::for_midr(Midr::arm(CORTEX_A710, 0, 0));
        for w in [
            Workaround::GuardBeyondLimit,
            Workaround::SkipBaseInFill,
            Workaround::DoubleTsb,
        ] {
            assert!(a710.has(w), "{w:?}");
        }
        assert!(!a710.has(Workaround::DrainAfterDisable));
        assert!(Errata::for_midr(Midr::arm(CORTEX_A510, 0, 0)).has(Workaround::Unusable));
        assert!(!Errata::for_midr(Midr::arm(CORTEX_A510, 0, 2)).has(Workaround::Unusable));
    }

    #[test]
    fn errata_midr_fields() {
        // Cortex-A710 r2p1 as the TRM gives it: 0x412F_D471.
        let m = Midr(0x412f_d471);
        assert_eq!(
            (m.implementer(), m.part(), m.rev()),
            (ARM, CORTEX_A710, 0x21)
        );
        assert_eq!(Midr::arm(CORTEX_A710, 2, 1), m);
    }
}
