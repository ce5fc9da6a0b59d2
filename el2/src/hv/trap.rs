//! Exception handlers for everything the guest causes: the top of the data
//! path (trap -> decode -> route). Each decodes once (`esr::decode`),
//! hands SMCCC calls to the router (`hvc`), emulates what the hypervisor
//! owns (the GIC and UART registers, the ID and OS lock registers, SGIs),
//! and injects the architectural exception for anything else: nothing a
//! guest does stops the hypervisor.

use core::sync::atomic::{AtomicBool, Ordering};

use super::state::{machine, VGIC};
use super::{gic, hvc, step, tracing, vcpu, vuart};
use crate::arch::{self, *};
use crate::debug_view;
use crate::esr::{self, Trap};
use crate::gic_mmio::{self, Effect, MAINTENANCE_INTID};
use crate::inject::Fault;
use crate::regs::GuestRegs;
use crate::sgi::HYP_SGI;

/// Synchronous exceptions from the guest.
#[no_mangle]
extern "C" fn handle_guest_sync(regs: &mut GuestRegs) {
    guest_sync(regs);
    step::on_guest_return(regs);
}

fn guest_sync(regs: &mut GuestRegs) {
    let esr = ESR_EL2.get();
    let class = esr::exception_class(esr);
    if class == esr::ec::SOFTSTP_LOW {
        // EL2 steps this guest (trace.source=insn): one instruction done.
        return step::on_step(regs);
    }
    if (class == esr::ec::BREAKPT_LOW || class == esr::ec::WATCHPT_LOW)
        && step::on_debug(regs, class)
    {
        // Only while EL2 steps the guest: the end of an exclusive sequence
        // EL2 ran unstepped, or the guest's own breakpoint or watchpoint.
        return;
    }
    step::on_trap(regs, Some(class));
    let trap = esr::decode(esr);
    // Emulated instructions are skipped by the length the syndrome gives.
    // That completes the instruction, and with it a software step the
    // guest may have had active on it (PSTATE.SS cleared, as the hardware
    // does for an instruction that completes: its step exception is then
    // taken where it resumes).
    let skip = |regs: &mut GuestRegs| {
        regs.elr = esr::next_instruction(regs.elr, esr);
        regs.spsr &= !crate::inject::psr::SS;
    };
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
        Trap::Hvc { imm } => hvc::call(regs, imm),
        Trap::Smc { imm } => {
            // A trapped SMC's ELR points at the SMC itself.
            skip(regs);
            hvc::call(regs, imm);
        }
        Trap::SysReg { reg, rt, read } => {
            if debug_view::is_id_register(reg) && read {
                regs.set(
                    rt,
                    debug_view::id_view(reg, arch::read_id_register(reg.crm, reg.op2)),
                );
                skip(regs);
                return vcpu::flush_list_registers();
            }
            let value = (!read).then(|| regs.get(rt));
            if let Some(v) =
                vcpu::os_lock_access(reg, value).or_else(|| step::mdscr_access(reg, value))
            {
                if read {
                    regs.set(rt, v);
                }
                skip(regs);
            } else if reg == esr::ICC_SGI1R_EL1 && !read {
                vcpu::send_guest_sgi(regs.get(rt));
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
                vcpu::inject_fault(regs, Fault::Undefined);
            }
        }
        Trap::DataAbort { access, write, .. } => {
            let ipa = ((HPFAR_EL2.get() >> 4) << 12) | (FAR_EL2.get() & 0xfff);
            let m = machine();
            let uart = vuart::guest_page(&m.platform);
            if let (true, Some(a)) = (uart.contains(ipa), access) {
                let value = a.write.then(|| regs.get(a.reg));
                let v = vuart::access(ipa - uart.base, a.size, value);
                if !a.write {
                    regs.set(a.reg, v);
                }
                skip(regs);
                return vcpu::flush_list_registers();
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
                            vcpu::deliver_sgis();
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
                    vcpu::inject_fault(
                        regs,
                        Fault::DataAbort {
                            far: FAR_EL2.get(),
                            write,
                        },
                    );
                }
            }
        }
        Trap::InstructionAbort { .. } => {
            log::debug!("guest instruction abort at {:#x}: injected", FAR_EL2.get());
            vcpu::inject_fault(regs, Fault::InstructionAbort { far: FAR_EL2.get() });
        }
        Trap::Wfx { .. } => skip(regs),
        Trap::Other {
            ec: esr::ec::BRK64,
            iss,
            ..
        } => {
            // Only while EL2 steps the guest (TDE routes the guest's BRK
            // here): hand it back to the guest's EL1.
            vcpu::inject_fault(
                regs,
                Fault::Breakpoint {
                    comment: iss as u16,
                },
            );
        }
        Trap::Other { ec, .. } => {
            log::debug!("guest trap EC {ec:#x} at {:#x}: UNDEF injected", regs.elr);
            vcpu::inject_fault(regs, Fault::Undefined);
        }
    }
    vcpu::flush_list_registers();
}

static GIC_UNDECODABLE: AtomicBool = AtomicBool::new(false);

fn warn_once(flag: &AtomicBool, msg: &str) {
    if !flag.swap(true, Ordering::Relaxed) {
        log::warn!("{msg}");
    }
}

/// Physical interrupts, all of which are taken at EL2 (HCR_EL2.IMO).
#[no_mangle]
extern "C" fn handle_guest_irq(regs: &mut GuestRegs) {
    step::on_trap(regs, None);
    guest_irq(regs);
    step::on_guest_return(regs);
}

fn guest_irq(regs: &mut GuestRegs) {
    tracing::guest_event(
        crate::trace::packet::ExceptionType::Irq,
        regs.elr,
        regs.spsr,
    );
    while let Some((id, prio)) = gic::acknowledge() {
        gic::end_of_interrupt(id);
        let intid = u32::from(id);
        if intid == HYP_SGI {
            gic::deactivate(id);
            tracing::serve_mailbox();
            vcpu::deliver_sgis();
            vuart::serve_kick();
        } else if intid == MAINTENANCE_INTID {
            gic::deactivate(id);
            // Refill now: the maintenance interrupt is a level that stays
            // asserted until the list registers change.
            vcpu::flush_list_registers();
        } else if Some(intid) == machine().gic.trbe_intid {
            // EL2's own (the guest never sees it). Level-sensitive: lower it
            // (TRBSR.IRQ) before deactivating.
            tracing::buffer_interrupt();
            gic::deactivate(id);
        } else if Some(intid) == machine().platform.uart_intid {
            // The UART is EL2's; the guest's is emulated. Drain before
            // deactivating, so the level-sensitive SPI has dropped.
            vuart::physical_interrupt();
            gic::deactivate(id);
        } else if intid < 16 {
            // A physical SGI the hypervisor never sends: drop it.
            gic::deactivate(id);
        } else {
            vcpu::inject(intid, prio);
        }
    }
    vcpu::flush_list_registers();
}

/// SError from the guest: logged; the guest continues.
#[no_mangle]
extern "C" fn handle_guest_serror(regs: &mut GuestRegs) {
    step::on_trap(regs, Some(esr::ec::SERROR));
    log::warn!(
        "SError from the guest at {:#x}, ESR {:#x}",
        regs.elr,
        ESR_EL2.get()
    );
    step::on_guest_return(regs);
}
