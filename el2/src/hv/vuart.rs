//! The guest's UART: the emulated PL011 (`crate::vuart`) wired to the
//! guest's trapped accesses, EL2's console, the physical receiver and the
//! guest's virtual interrupt.
//!
//! The physical PL011 is EL2's alone: stage 2 leaves its page unmapped
//! (`boot::build_stage2`), so every guest access traps here. The guest's
//! output goes to EL2's console a line at a time under the console lock,
//! exactly as the guest wrote it; its input comes from the physical
//! receiver, which EL2 drains when the UART's SPI fires and whenever the
//! guest polls FR or DR.
//!
//! The UART state is one for the machine, under a ticket lock: each holder
//! does a bounded amount of work (one register, at most [`DRAIN_MAX`]
//! physical reads) and never takes the console lock inside it, and the
//! ticket order serves waiters first come first served, so a core waits at
//! most for the other cores' critical sections once each. The transmit line
//! buffers are per vCPU and need no lock.
//!
//! The interrupt. The guest programs the UART's SPI (enable, priority,
//! route) through the distributor emulation, which passes those settings
//! through to the physical SPI: so the physical interrupt reaches EL2 on the
//! core the guest chose, and EL2 presents the virtual one (the same INTID,
//! purely virtual, no HW bit) on that core only. The line is a level,
//! modelled as the list register's pending state: it is re-evaluated after
//! every guest access and after every fill from the physical receiver, that
//! is, at every event that can change it, and raised or withdrawn on the
//! owning core (told with EL2's SGI when it is another core, on a change).
//! That suffices without the EOI maintenance interrupt because a handler
//! only finishes by accessing the UART: Linux's `pl011_int` loops until
//! RIS & IMSC reads 0, and that last read withdraws the pending state; if
//! the line is still high at any access during the handler, the interrupt
//! becomes active and pending and is taken again after the EOI, as a level
//! would be. A guest that EOIs without touching the UART, with the line
//! still high, is not interrupted again until the next change: its loss.

use core::sync::atomic::{AtomicBool, Ordering};

use spin::mutex::TicketMutex;

use super::state::{self, machine, Machine, PerCore, CORES};
use super::{gic, vcpu};
use crate::arch;
use crate::console;
use crate::dtb::{Platform, Range, MAX_CPUS};
use crate::vuart::{reg, LineBuffer, Pl011, RX_FIFO};

static UART: TicketMutex<Pl011> = TicketMutex::new(Pl011::new());
/// The line as last evaluated (under `UART`'s lock).
static LEVEL: AtomicBool = AtomicBool::new(false);
/// Per core: re-evaluate the virtual interrupt at the next EL2 SGI.
static KICK: [AtomicBool; MAX_CPUS] = [const { AtomicBool::new(false) }; MAX_CPUS];
/// Per vCPU: what it wrote and the console has not had yet.
static TX: PerCore<LineBuffer> = PerCore::new(
    [const { percore::ExceptionLock::new(core::cell::RefCell::new(LineBuffer::new())) }; MAX_CPUS],
);

/// Bytes of per-core state this module keeps.
pub const STATE_SIZE: usize = core::mem::size_of::<LineBuffer>();

/// Most bytes taken from the physical receiver at one interrupt: two of the
/// guest FIFO's worth. What the guest's full FIFO cannot take is lost with
/// an overrun, as on a real UART, so that the physical level-sensitive
/// interrupt drops and a guest that never reads cannot keep EL2 busy.
pub const DRAIN_MAX: usize = 2 * RX_FIFO;

/// The 4 KiB page the guest's UART occupies: kept out of the guest's stage
/// 2 and emulated instead.
pub fn guest_page(p: &Platform) -> Range {
    Range::new(p.uart.base & !0xfff, 0x1000)
}

/// Readies the physical UART: its receive interrupts unmasked, so its SPI
/// tells EL2 of input once the guest enables that SPI.
pub fn init(p: &Platform) {
    if p.uart_intid.is_some() {
        console::rx::enable_interrupts();
    }
}

/// Takes bytes from the physical receiver into the guest's FIFO: at most
/// `max`, and without losing any if `lossless` (then no more than the FIFO
/// has room for).
fn drain(u: &mut Pl011, max: usize, lossless: bool) {
    let limit = if lossless { max.min(u.rx_room()) } else { max };
    let mut got = 0;
    while got < limit {
        let Some(b) = console::rx::byte() else { break };
        u.receive(b);
        got += 1;
    }
    if got > 0 {
        u.rx_idle();
    }
}

/// Evaluates the line under the lock: (level, changed since last time).
fn evaluate(u: &Pl011) -> (bool, bool) {
    let level = u.line();
    (level, LEVEL.swap(level, Ordering::AcqRel) != level)
}

/// A guest access at `offset` in the UART page. Returns what a load reads.
pub fn access(offset: u64, size: u8, write: Option<u64>) -> u64 {
    let (out, level, changed) = {
        let mut u = UART.lock();
        if write.is_none() && (offset == reg::FR || offset == reg::DR) {
            // A polling guest (no interrupt enabled) gets its input here.
            drain(&mut u, RX_FIFO, true);
        }
        let out = u.access(offset, size, write.map(|v| v as u32));
        let (level, changed) = evaluate(&u);
        (out, level, changed)
    };
    state::with(&TX, |tx| {
        tx.apply(out.tx, &mut |piece| console::guest_output(piece))
    });
    signal(machine(), level, changed);
    out.value as u64
}

/// The physical UART's SPI, taken at EL2: drain the receiver.
pub fn physical_interrupt() {
    let (level, changed) = {
        let mut u = UART.lock();
        drain(&mut u, DRAIN_MAX, false);
        evaluate(&u)
    };
    signal(machine(), level, changed);
}

/// EL2's SGI arrived: re-evaluate if another core asked.
pub fn serve_kick() {
    if KICK[arch::core_index()].swap(false, Ordering::AcqRel) {
        if let Some(intid) = machine().platform.uart_intid {
            reconcile(machine(), intid, LEVEL.load(Ordering::Acquire));
        }
    }
}

/// The core the guest routed the UART's SPI to (GICD_IROUTER, which the
/// distributor emulation passes through); `None` for "any core" (IRM) or a
/// route naming no core.
fn owner(m: &Machine, intid: u32) -> Option<usize> {
    const IRM: u64 = 1 << 31;
    let route = gic::spi_route(&m.gic, intid);
    if route & IRM != 0 {
        return None;
    }
    m.platform.cpu_index(route & 0xff_00ff_ffff)
}

/// Presents the line to the owning core: here if this is it (or no core
/// owns it), else by telling the owner when the line changed.
fn signal(m: &Machine, level: bool, changed: bool) {
    let Some(intid) = m.platform.uart_intid else {
        return;
    };
    let me = arch::core_index();
    match owner(m, intid) {
        Some(t) if t != me => {
            if changed && CORES[t].power.is_on() {
                KICK[t].store(true, Ordering::Release);
                gic::send_hyp_sgi(m.platform.cpus()[t]);
            }
        }
        _ => reconcile(m, intid, level),
    }
}

/// Raises or withdraws the virtual interrupt in this core's list registers.
/// A disabled SPI (the guest's own enable, passed through) is never offered.
fn reconcile(m: &Machine, intid: u32, level: bool) {
    let (enabled, priority) = gic::spi_enabled_priority(&m.gic, intid);
    vcpu::set_virtual_level(intid, level && enabled, priority);
}
