//! Exception handlers for everything the guest causes. Each decodes once,
//! handles what the hypervisor owns, and injects the architectural exception
//! for anything else: nothing a guest does stops the hypervisor.

use core::sync::atomic::{AtomicBool, Ordering};

use super::core_state::{self, machine, CORES, VGIC};
use super::{gic, psci, tracing, vuart};
use crate::arch::{self, *};
use crate::debug_view;
use crate::esr::{self, Trap};
use crate::gic_mmio::{self, Effect, MAINTENANCE_INTID};
use crate::inject::{self, Fault, GuestState};
use crate::regs::GuestRegs;
use crate::sgi::{self, HYP_SGI};
use crate::stats::Event;
use crate::vgic;

/// Synchronous exceptions from the guest.
#[no_mangle]
extern "C" fn handle_guest_sync(regs: &mut GuestRegs) {
    let esr = esr_el2::read();
    let trap = esr::decode(esr);
    // Emulated instructions are skipped by the length the syndrome gives.
    let skip = |regs: &mut GuestRegs| regs.elr = esr::next_instruction(regs.elr, esr);
    {
        use crate::trace::packet::ExceptionType as E;
        let kind = match trap {
            Trap::Hvc { .. } | Trap::Smc { .. } => E::Call,
            Trap::DataAbort { .. } => E::DataFault,
            Trap::InstructionAbort { .. } => E::InstFault,
            _ => E::Trap,
        };
        tracing::guest_event(kind, regs.elr, regs.spsr);
    }
    match trap {
        Trap::Hvc { imm } => smccc(regs, imm),
        Trap::Smc { imm } => {
            // A trapped SMC's ELR points at the SMC itself.
            skip(regs);
            smccc(regs, imm);
        }
        Trap::SysReg { reg, rt, read } => {
            if debug_view::is_id_register(reg) && read {
                regs.set(
                    rt,
                    debug_view::id_view(reg, arch::read_id_register(reg.crm, reg.op2)),
                );
                skip(regs);
                return flush_list_registers();
            }
            // SAFETY: EL2 on this core, interrupts masked, no other `local()` alive.
            let oslock = unsafe { &mut core_state::local().oslock };
            if let Some(v) = oslock.access(reg, (!read).then(|| regs.get(rt))) {
                if read {
                    regs.set(rt, v);
                }
                skip(regs);
            } else if reg == esr::ICC_SGI1R_EL1 && !read {
                send_guest_sgi(regs.get(rt));
                skip(regs);
            } else if (reg == esr::ICC_SGI0R_EL1 || reg == esr::ICC_ASGI1R_EL1) && !read {
                // Group-0 and alternate-group SGIs do not exist for a
                // guest whose interrupts are all group 1: ignored.
                skip(regs);
            } else {
                log::debug!(
                    "guest {} S{}_{}_C{}_C{}_{} at {:#x}: UNDEF injected",
                    if read { "MRS" } else { "MSR" },
                    reg.op0,
                    reg.op1,
                    reg.crn,
                    reg.crm,
                    reg.op2,
                    regs.elr
                );
                inject_fault(regs, Fault::Undefined);
            }
        }
        Trap::DataAbort { access, write, .. } => {
            let ipa = ((hpfar_el2::read() >> 4) << 12) | (far_el2::read() & 0xfff);
            let m = machine();
            let uart = vuart::guest_page(&m.platform);
            if let (true, Some(a)) = (uart.contains(ipa), access) {
                let value = a.write.then(|| regs.get(a.reg));
                let v = vuart::access(ipa - uart.base, a.size, value);
                if !a.write {
                    regs.set(a.reg, v);
                }
                skip(regs);
                return flush_list_registers();
            }
            match (m.gic.locate(ipa), access) {
                (Some(target), Some(a)) => {
                    let value = a.write.then(|| regs.get(a.reg));
                    let (mut v, effect) = gic_mmio::emulate(
                        &m.gic,
                        &VGIC,
                        &mut gic::PhysicalGic,
                        target,
                        a.size,
                        value,
                    );
                    if !a.write {
                        if a.sign_extend && a.size < 8 {
                            let shift = 64 - 8 * a.size as u32;
                            v = (((v << shift) as i64) >> shift) as u64;
                        }
                        if !a.sixty_four {
                            v &= 0xffff_ffff;
                        }
                        regs.set(a.reg, v);
                    }
                    if let Effect::SgiEnabled(core) = effect {
                        if core == arch::core_index() {
                            deliver_sgis();
                        }
                    }
                    skip(regs);
                }
                (target, _) => {
                    if target.is_some() {
                        warn_once(
                            &GIC_UNDECODABLE,
                            "guest GIC access without syndrome (load/store pair?): abort injected",
                        );
                    }
                    log::debug!(
                        "guest data abort at IPA {ipa:#x}, pc {:#x}: injected",
                        regs.elr
                    );
                    inject_fault(
                        regs,
                        Fault::DataAbort {
                            far: far_el2::read(),
                            write,
                        },
                    );
                }
            }
        }
        Trap::InstructionAbort { .. } => {
            log::debug!(
                "guest instruction abort at {:#x}: injected",
                far_el2::read()
            );
            inject_fault(
                regs,
                Fault::InstructionAbort {
                    far: far_el2::read(),
                },
            );
        }
        Trap::Wfx { .. } => skip(regs),
        Trap::Other { ec, .. } => {
            log::debug!("guest trap EC {ec:#x} at {:#x}: UNDEF injected", regs.elr);
            inject_fault(regs, Fault::Undefined);
        }
    }
    flush_list_registers();
}

static GIC_UNDECODABLE: AtomicBool = AtomicBool::new(false);

fn warn_once(flag: &AtomicBool, msg: &str) {
    if !flag.swap(true, Ordering::Relaxed) {
        log::warn!("{msg}");
    }
}

fn smccc(regs: &mut GuestRegs, imm: u16) {
    if imm != 0 {
        regs.x[0] = guest_api::smccc::NOT_SUPPORTED as u64;
        return;
    }
    core_state::count(Event::GuestCall);
    let (r, n) = psci::dispatch(regs.smccc_args());
    regs.x[..n].copy_from_slice(&r[..n]);
}

fn inject_fault(regs: &mut GuestRegs, fault: Fault) {
    let inj = inject::inject(
        fault,
        GuestState {
            pc: regs.elr,
            pstate: regs.spsr,
            vbar_el1: vbar_el1::read(),
            sctlr_el1: sctlr_el1::read(),
        },
    );
    esr_el1::write(inj.esr_el1);
    if let Some(far) = inj.far_el1 {
        far_el1::write(far);
    }
    elr_el1::write(inj.elr_el1);
    spsr_el1::write(inj.spsr_el1);
    regs.elr = inj.pc;
    regs.spsr = inj.pstate;
}

/// A guest SGI: recorded in each target's pending set, and the target is
/// told with EL2's SGI (or served at once when it is this core).
fn send_guest_sgi(value: u64) {
    let m = machine();
    let me = arch::core_index();
    let (intid, mask) = sgi::targets(value, m.platform.cpus(), me);
    for idx in (0..m.platform.cpu_count).filter(|i| mask & (1 << i) != 0) {
        let core = &CORES[idx];
        if !core.power.is_on() || m.guest_cpu_index(m.platform.cpus()[idx]).is_none() {
            continue;
        }
        core.pending_sgi.fetch_or(1 << intid, Ordering::AcqRel);
        if idx == me {
            deliver_sgis();
        } else {
            gic::send_hyp_sgi(m.platform.cpus()[idx]);
        }
    }
}

/// Injects this core's pending virtual SGIs that its guest has enabled.
fn deliver_sgis() {
    let me = arch::core_index();
    let enabled = VGIC.redist[me].sgi_enable.load(Ordering::Relaxed);
    let got = CORES[me].pending_sgi.fetch_and(!enabled, Ordering::AcqRel) & enabled;
    if got == 0 {
        return;
    }
    let mut lrs = gic::HwListRegisters(machine().list_registers);
    // SAFETY: EL2 on this core, interrupts masked, no other `local()` alive.
    let local = unsafe { core_state::local() };
    for intid in (0..16).filter(|i| got & (1 << i) != 0) {
        let prio = VGIC.redist[me].sgi_priority[intid as usize].load(Ordering::Relaxed);
        vgic::inject(&mut lrs, &mut local.pending, intid, prio);
    }
}

/// Moves waiting virtual interrupts into free list registers.
pub(super) fn flush_list_registers() {
    // SAFETY: EL2 on this core, interrupts masked, no other `local()` alive.
    let local = unsafe { core_state::local() };
    if !local.pending.is_empty() {
        vgic::flush(
            &mut gic::HwListRegisters(machine().list_registers),
            &mut local.pending,
        );
    }
}

/// Physical interrupts, all of which are taken at EL2 (HCR_EL2.IMO).
#[no_mangle]
extern "C" fn handle_guest_irq(regs: &mut GuestRegs) {
    tracing::guest_event(
        crate::trace::packet::ExceptionType::Irq,
        regs.elr,
        regs.spsr,
    );
    let lr_count = machine().list_registers;
    loop {
        let (intid, prio) = gic::acknowledge();
        if (1020..=1023).contains(&intid) {
            break;
        }
        gic::end_of_interrupt(intid);
        if intid == HYP_SGI {
            gic::deactivate(intid);
            tracing::serve_mailbox();
            deliver_sgis();
            vuart::serve_kick();
        } else if intid == MAINTENANCE_INTID {
            gic::deactivate(intid);
            // Refill now: the maintenance interrupt is a level that stays
            // asserted until the list registers change.
            flush_list_registers();
        } else if Some(intid) == machine().gic.trbe_intid {
            // EL2's own (the guest never sees it). Level-sensitive: lower it
            // (TRBSR.IRQ) before deactivating.
            tracing::buffer_interrupt();
            gic::deactivate(intid);
        } else if Some(intid) == machine().platform.uart_intid {
            // The UART is EL2's; the guest's is emulated. Drain before
            // deactivating, so the level-sensitive SPI has dropped.
            vuart::physical_interrupt();
            gic::deactivate(intid);
        } else if intid < 16 {
            // A physical SGI the hypervisor never sends: drop it.
            gic::deactivate(intid);
        } else {
            // SAFETY: EL2 on this core, interrupts masked, no other `local()` alive.
            let local = unsafe { core_state::local() };
            vgic::inject(
                &mut gic::HwListRegisters(lr_count),
                &mut local.pending,
                intid,
                prio,
            );
        }
    }
    flush_list_registers();
}

/// SError from the guest: logged; the guest continues.
#[no_mangle]
extern "C" fn handle_guest_serror(regs: &mut GuestRegs) {
    log::warn!(
        "SError from the guest at {:#x}, ESR {:#x}",
        regs.elr,
        esr_el2::read()
    );
}

static IN_FAULT: AtomicBool = AtomicBool::new(false);

/// A fault in the hypervisor itself: a bug, never a guest's doing.
#[no_mangle]
extern "C" fn el2_fault(kind: u64, esr: u64, elr: u64, far: u64) -> ! {
    if arch::semihosting_unavailable(esr) {
        crate::println!(
            "no semihosting to report the exit status: resetting through PSCI SYSTEM_RESET"
        );
        arch::system_reset();
    }
    if IN_FAULT.swap(true, Ordering::SeqCst) {
        arch::halt();
    }
    crate::println!(
        "FATAL: hypervisor exception (vector {kind}) ESR {esr:#x} ELR {elr:#x} FAR {far:#x}"
    );
    arch::exit_failure(3)
}
