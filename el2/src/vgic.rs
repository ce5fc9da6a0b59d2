//! Injection of interrupts into the guest through the GICv3 virtual CPU
//! interface (ICH_LR<n>_EL2), with a pending set for when the list
//! registers are full.
//!
//! Physical PPIs and SPIs are injected with the HW bit, so that the guest's
//! deactivation of the virtual interrupt deactivates the physical one: the
//! physical interrupt stays active until then and cannot be taken again, so
//! it is never queued twice. SGIs are purely virtual (the architecture does
//! not allow HW = 1 for an SGI's pINTID): a new SGI that finds the same SGI
//! already pending in a list register merges with it, one that finds it
//! active makes it active-and-pending, as a physical GIC would.
//!
//! When every list register is in use, the interrupt waits in a per-core
//! pending set and the maintenance interrupt calls EL2 back to refill (see
//! `Refill` for which condition, chosen so it is never asserted on return).

/// List register fields (GICv3, ICH_LR<n>_EL2).
pub mod lr {
    /// State: pending.
    pub const PENDING: u64 = 1 << 62;
    /// State: active.
    pub const ACTIVE: u64 = 1 << 63;
    /// State mask.
    pub const STATE: u64 = PENDING | ACTIVE;
    /// Hardware interrupt: deactivating the virtual one deactivates pINTID.
    pub const HW: u64 = 1 << 61;
    /// Group 1.
    pub const GROUP1: u64 = 1 << 60;

    /// A pending group-1 list register value.
    pub const fn pending(intid: u32, priority: u8, hw: bool) -> u64 {
        let mut v = PENDING | GROUP1 | ((priority as u64) << 48) | intid as u64;
        if hw {
            v |= HW | ((intid as u64 & 0x1fff) << 32);
        }
        v
    }

    /// The virtual INTID in a list register value.
    pub const fn vintid(v: u64) -> u32 {
        v as u32
    }
}

/// The list registers of this core, as hardware or as a test fake.
pub trait ListRegisters {
    /// How many list registers there are (ICH_VTR_EL2.ListRegs + 1).
    fn count(&self) -> usize;
    /// Reads list register `n`.
    fn read(&self, n: usize) -> u64;
    /// Writes list register `n`.
    fn write(&mut self, n: usize, v: u64);
    /// Chooses the maintenance interrupt that calls EL2 back to refill.
    fn set_refill_interrupt(&mut self, refill: Refill);
}

/// When the maintenance interrupt should fire, given what waits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refill {
    /// Nothing waits: no maintenance interrupt.
    Off,
    /// ICH_HCR_EL2.NPIE: once no list register is pending (the guest took
    /// everything offered). Chosen while some list register is pending, so
    /// it is not asserted on return to the guest.
    NoPending,
    /// ICH_HCR_EL2.UIE: once at most one list register is valid. Chosen when
    /// every list register is active (a guest nesting interrupts), where
    /// NPIE would stay asserted and call EL2 back forever.
    Underflow,
}

/// Interrupts waiting for a free list register, with their priorities.
#[derive(Debug)]
pub struct Pending {
    bits: [u64; 16],
    /// Which of them are purely virtual (no physical interrupt behind them,
    /// so no HW bit): see [`assert_virtual`].
    virtual_only: [u64; 16],
    priority: [u8; 1024],
    count: usize,
}

/// The highest INTID the pending set holds (SPIs end at 1019).
pub const MAX_INTID: u32 = 1019;
/// SGIs are 0..16; they are the virtual-only interrupts.
pub const SGI_COUNT: u32 = 16;

impl Default for Pending {
    fn default() -> Self {
        Self::new()
    }
}

impl Pending {
    /// An empty set.
    pub const fn new() -> Pending {
        Pending {
            bits: [0; 16],
            virtual_only: [0; 16],
            priority: [0; 1024],
            count: 0,
        }
    }

    /// How many interrupts wait.
    pub fn len(&self) -> usize {
        self.count
    }

    /// Is nothing waiting?
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    fn insert(&mut self, intid: u32, priority: u8, hw: bool) {
        let (w, b) = ((intid / 64) as usize, intid % 64);
        if self.bits[w] & (1 << b) == 0 {
            self.bits[w] |= 1 << b;
            self.count += 1;
        }
        if hw {
            self.virtual_only[w] &= !(1 << b);
        } else {
            self.virtual_only[w] |= 1 << b;
        }
        self.priority[intid as usize] = priority;
    }

    fn remove(&mut self, intid: u32) {
        let (w, b) = ((intid / 64) as usize, intid % 64);
        if self.bits[w] & (1 << b) != 0 {
            self.bits[w] &= !(1 << b);
            self.virtual_only[w] &= !(1 << b);
            self.count -= 1;
        }
    }

    /// The lowest waiting INTID: (intid, priority, hw).
    fn take_first(&mut self) -> Option<(u32, u8, bool)> {
        let w = self.bits.iter().position(|&w| w != 0)?;
        let b = self.bits[w].trailing_zeros();
        let hw = self.virtual_only[w] & (1 << b) == 0;
        self.remove(w as u32 * 64 + b);
        let intid = w as u32 * 64 + b;
        Some((intid, self.priority[intid as usize], hw))
    }
}

/// Queues `intid` for the guest and fills list registers. INTIDs above
/// `MAX_INTID` (special and LPI ranges) are ignored: EL2 never forwards them.
pub fn inject(lrs: &mut dyn ListRegisters, pending: &mut Pending, intid: u32, priority: u8) {
    if intid > MAX_INTID {
        return;
    }
    pending.insert(intid, priority, intid >= SGI_COUNT);
    flush(lrs, pending);
}

/// Raises a purely virtual, level-sensitive interrupt (a device EL2
/// emulates, such as the guest's UART): pending without the HW bit, since
/// no physical interrupt stands behind it. One already pending stays as it
/// is; one the guest has active becomes active and pending, so it is taken
/// again after the guest's EOI, as a level still asserted would be.
pub fn assert_virtual(
    lrs: &mut dyn ListRegisters,
    pending: &mut Pending,
    intid: u32,
    priority: u8,
) {
    if intid > MAX_INTID {
        return;
    }
    pending.insert(intid, priority, false);
    flush(lrs, pending);
}

/// Lowers a purely virtual level-sensitive interrupt: its pending state
/// goes (from the waiting set and from its list register), so the guest is
/// not offered an interrupt whose cause is gone; an active one stays active
/// until the guest's EOI. A list register with the HW bit is left alone:
/// its state belongs to the physical interrupt.
pub fn deassert_virtual(lrs: &mut dyn ListRegisters, pending: &mut Pending, intid: u32) {
    if intid > MAX_INTID {
        return;
    }
    pending.remove(intid);
    for n in 0..lrs.count() {
        let v = lrs.read(n);
        if v & lr::STATE != 0 && lr::vintid(v) == intid && v & lr::HW == 0 && v & lr::PENDING != 0 {
            lrs.write(n, v & !lr::PENDING);
        }
    }
    flush(lrs, pending);
}

/// Moves waiting interrupts into free list registers; asks for the refill
/// interrupt while some still wait.
pub fn flush(lrs: &mut dyn ListRegisters, pending: &mut Pending) {
    while let Some((intid, priority, hw)) = pending.take_first() {
        if !place(lrs, intid, priority, hw) {
            pending.insert(intid, priority, hw);
            break;
        }
    }
    let refill = if pending.is_empty() {
        Refill::Off
    } else if any_pending(lrs) {
        Refill::NoPending
    } else {
        Refill::Underflow
    };
    lrs.set_refill_interrupt(refill);
}

/// Puts one interrupt in a list register. False if none is free.
fn place(lrs: &mut dyn ListRegisters, intid: u32, priority: u8, hw: bool) -> bool {
    let mut free = None;
    for n in 0..lrs.count() {
        let v = lrs.read(n);
        if v & lr::STATE == 0 {
            free.get_or_insert(n);
            continue;
        }
        if lr::vintid(v) == intid {
            // The same INTID in two list registers is UNPREDICTABLE: merge.
            if v & lr::PENDING == 0 {
                lrs.write(n, v | lr::PENDING);
            }
            return true;
        }
    }
    match free {
        Some(n) => {
            lrs.write(n, lr::pending(intid, priority, hw));
            true
        }
        None => false,
    }
}

/// Does any list register hold a pending interrupt? (A core about to
/// suspend must not: the physical wake-up would never come.)
pub fn any_pending(lrs: &dyn ListRegisters) -> bool {
    (0..lrs.count()).any(|n| lrs.read(n) & lr::PENDING != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fake {
        lrs: Vec<u64>,
        refill: Refill,
    }

    impl ListRegisters for Fake {
        fn count(&self) -> usize {
            self.lrs.len()
        }
        fn read(&self, n: usize) -> u64 {
            self.lrs[n]
        }
        fn write(&mut self, n: usize, v: u64) {
            self.lrs[n] = v;
        }
        fn set_refill_interrupt(&mut self, refill: Refill) {
            self.refill = refill;
        }
    }

    fn fake(n: usize) -> Fake {
        Fake {
            lrs: vec![0; n],
            refill: Refill::Off,
        }
    }

    #[test]
    fn ppi_and_spi_are_hardware_sgi_is_virtual() {
        let mut f = fake(4);
        let mut p = Pending::new();
        inject(&mut f, &mut p, 27, 0xa0);
        inject(&mut f, &mut p, 1, 0x80);
        assert_eq!(
            f.lrs[0],
            lr::PENDING | lr::GROUP1 | lr::HW | (27 << 32) | (0xa0 << 48) | 27
        );
        assert_eq!(f.lrs[1], lr::PENDING | lr::GROUP1 | (0x80 << 48) | 1);
        assert_eq!(f.refill, Refill::Off);
    }

    #[test]
    fn a_second_sgi_merges_or_becomes_active_and_pending() {
        let mut f = fake(4);
        let mut p = Pending::new();
        inject(&mut f, &mut p, 2, 0xa0);
        inject(&mut f, &mut p, 2, 0xa0);
        assert_eq!(f.lrs.iter().filter(|&&v| v != 0).count(), 1, "merged");
        // The guest acknowledged it: the list register is now active.
        f.lrs[0] = (f.lrs[0] & !lr::STATE) | lr::ACTIVE;
        inject(&mut f, &mut p, 2, 0xa0);
        assert_eq!(f.lrs[0] & lr::STATE, lr::STATE, "active and pending");
        assert_eq!(f.lrs.iter().filter(|&&v| v != 0).count(), 1);
    }

    #[test]
    fn overflow_waits_and_refills_in_order() {
        let mut f = fake(2);
        let mut p = Pending::new();
        for intid in [33, 34, 35, 3] {
            inject(&mut f, &mut p, intid, 0xa0);
        }
        assert_eq!(p.len(), 2);
        assert_eq!(
            f.refill,
            Refill::NoPending,
            "refill once the guest took what is offered"
        );
        // The guest handled both: list registers empty again.
        f.lrs = vec![0, 0];
        flush(&mut f, &mut p);
        let mut got: Vec<u32> = f.lrs.iter().map(|&v| lr::vintid(v)).collect();
        got.sort();
        assert_eq!(got, vec![3, 35]);
        assert!(p.is_empty());
        assert_eq!(f.refill, Refill::Off, "refill interrupt no longer needed");
    }

    #[test]
    fn every_list_register_active_asks_for_underflow_not_no_pending() {
        let mut f = fake(2);
        let mut p = Pending::new();
        f.lrs = vec![lr::ACTIVE | lr::GROUP1 | 1, lr::ACTIVE | lr::GROUP1 | 2];
        inject(&mut f, &mut p, 3, 0xa0);
        assert_eq!(p.len(), 1);
        assert_eq!(
            f.refill,
            Refill::Underflow,
            "NPIE would be asserted at once"
        );
        f.lrs[1] = 0; // the guest finished SGI 2
        flush(&mut f, &mut p);
        assert!(p.is_empty());
        assert_eq!(lr::vintid(f.lrs[1]), 3);
        assert_eq!(f.refill, Refill::Off);
    }

    #[test]
    fn special_intids_are_not_forwarded() {
        let mut f = fake(2);
        let mut p = Pending::new();
        for intid in [1020, 1023, 8192] {
            inject(&mut f, &mut p, intid, 0);
        }
        assert!(f.lrs.iter().all(|&v| v == 0));
        assert!(p.is_empty());
    }

    #[test]
    fn a_virtual_level_interrupt_has_no_hw_bit_and_follows_its_line() {
        let mut f = fake(2);
        let mut p = Pending::new();
        assert_virtual(&mut f, &mut p, 33, 0xa0);
        assert_eq!(f.lrs[0], lr::PENDING | lr::GROUP1 | (0xa0 << 48) | 33);
        assert_virtual(&mut f, &mut p, 33, 0xa0);
        assert_eq!(f.lrs.iter().filter(|&&v| v & lr::STATE != 0).count(), 1);
        // The guest took it; the line is still high: active and pending.
        f.lrs[0] = (f.lrs[0] & !lr::STATE) | lr::ACTIVE;
        assert_virtual(&mut f, &mut p, 33, 0xa0);
        assert_eq!(f.lrs[0] & lr::STATE, lr::STATE);
        // The guest cleared the cause: pending goes, active stays.
        deassert_virtual(&mut f, &mut p, 33);
        assert_eq!(f.lrs[0] & lr::STATE, lr::ACTIVE);
        // Not yet taken and then lowered: nothing left to take.
        f.lrs[0] = 0;
        assert_virtual(&mut f, &mut p, 33, 0xa0);
        deassert_virtual(&mut f, &mut p, 33);
        assert_eq!(f.lrs[0] & lr::STATE, 0);
        // A hardware interrupt's list register is not the emulation's.
        f.lrs[1] = lr::pending(40, 0xa0, true);
        deassert_virtual(&mut f, &mut p, 40);
        assert_eq!(f.lrs[1], lr::pending(40, 0xa0, true));
    }

    #[test]
    fn a_waiting_virtual_interrupt_keeps_no_hw_and_can_be_withdrawn() {
        let mut f = fake(1);
        let mut p = Pending::new();
        inject(&mut f, &mut p, 27, 0xa0);
        assert_virtual(&mut f, &mut p, 33, 0x80);
        assert_eq!(p.len(), 1, "waits for a list register");
        f.lrs[0] = 0;
        flush(&mut f, &mut p);
        assert_eq!(
            f.lrs[0],
            lr::PENDING | lr::GROUP1 | (0x80 << 48) | 33,
            "still without HW"
        );
        // Withdrawn while waiting: never offered.
        f.lrs[0] = lr::pending(27, 0xa0, true);
        assert_virtual(&mut f, &mut p, 34, 0x80);
        deassert_virtual(&mut f, &mut p, 34);
        assert!(p.is_empty());
        assert_eq!(f.refill, Refill::Off);
    }

    #[test]
    fn pending_detection() {
        let mut f = fake(4);
        assert!(!any_pending(&f));
        f.lrs[3] = lr::ACTIVE | 5;
        assert!(!any_pending(&f));
        f.lrs[2] = lr::pending(27, 0, true);
        assert!(any_pending(&f));
    }
}
