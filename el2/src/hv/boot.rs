//! Boot: the first core checks the device trees and builds the guest's
//! world; every core (first, CPU_ON, warm boot) then sets up its own EL2
//! and enters the guest. The top of `hv`'s module graph: entered from
//! entry.S, nothing imports it.

use core::fmt;
use core::sync::atomic::Ordering;

use buddy_system_allocator::LockedHeap;
use guest_api::psci::PowerStateFormat;

use super::fatal::fatal;
use super::state::{self, machine, Machine, CORES, WARM_BOOT};
use super::{gic, psci, tracing, vcpu, vuart};
use crate::arch::{self, layout, *};
use crate::dtb::{self, Range};
use crate::mmu::{self, ATTR_DEVICE, ATTR_NORMAL};
use crate::stage2::{self, Stage2};
use crate::{bootargs, console, println};

const HEAP_SIZE: usize = 2 << 20;

#[repr(C, align(4096))]
struct HeapMemory(core::cell::UnsafeCell<[u8; HEAP_SIZE]>);

// SAFETY: the memory is handed to the allocator once (primary_main, boot
// core, before any other core runs) and never touched through this static
// again; the allocator's lock serialises everything after.
unsafe impl Sync for HeapMemory {}

static HEAP_MEMORY: HeapMemory = HeapMemory(core::cell::UnsafeCell::new([0; HEAP_SIZE]));

#[global_allocator]
static HEAP: LockedHeap<32> = LockedHeap::empty();

/// Scratch space for the NOP-free copy of a device tree (the copy drops the
/// free space QEMU leaves, so a few KiB of real content fit easily).
static DTB_SCRATCH: spin::Mutex<[u8; 256 << 10]> = spin::Mutex::new([0; 256 << 10]);

/// Largest device tree accepted (QEMU pads its own to 1 MiB, and a `-dtb`
/// one to about 2 MiB).
const MAX_DTB: usize = 4 << 20;

/// The platform whose memory map this image's EL2 identity map follows.
const BUILT_FOR: &str = if cfg!(feature = "fvp") {
    "FVP Base (DRAM at 0x8000_0000)"
} else {
    "QEMU virt (RAM at 0x4000_0000)"
};

/// Stops the boot unless the EL2 identity map gives all of `r` the
/// attribute `attr`: an image built for another platform's memory map stops
/// here with a message instead of faulting (or reading RAM as Device, or a
/// device as cacheable memory) later.
fn require_mapped(what: fmt::Arguments<'_>, r: Range, attr: u64) {
    if !mmu::covers(r.base, r.size, attr) {
        fatal(format_args!(
            "{what} {:#x}..{:#x} is not mapped as {} by this image, built for {BUILT_FOR}",
            r.base,
            r.end(),
            if attr == ATTR_DEVICE {
                "Device memory"
            } else {
                "RAM"
            }
        ));
    }
}

/// A device tree in memory, as a slice bounded by its header's totalsize.
fn dtb_at<'a>(addr: u64, what: &str, ram: Option<&[Range]>) -> &'a [u8] {
    if addr == 0 || !addr.is_multiple_of(8) {
        fatal(format_args!(
            "no device tree for the {what}: address {addr:#x} is not a valid device tree address"
        ));
    }
    if let Some(ram) = ram {
        if !ram.iter().any(|r| r.contains_range(&Range::new(addr, 40))) {
            fatal(format_args!(
                "{what} device tree at {addr:#x} is outside RAM"
            ));
        }
    }
    require_mapped(
        format_args!("the {what}'s device tree at"),
        Range::new(addr, 40),
        ATTR_NORMAL,
    );
    // SAFETY: the header is 40 bytes at an address in RAM (or, for the
    // hypervisor's own tree, where QEMU put it), identity mapped at EL2 as
    // Normal memory (checked just above).
    let header = unsafe { core::slice::from_raw_parts(addr as *const u8, 40) };
    let size = match dtb::total_size(header) {
        Ok(s) if s <= MAX_DTB => s,
        Ok(s) => fatal(format_args!(
            "{what} device tree at {addr:#x}: {s} bytes is too large"
        )),
        Err(e) => fatal(format_args!("the {what}'s device tree at {addr:#x}: {e}")),
    };
    require_mapped(
        format_args!("the {what}'s device tree at"),
        Range::new(addr, size as u64),
        ATTR_NORMAL,
    );
    // SAFETY: `size` bytes from a validated header, capped at MAX_DTB, in
    // RAM mapped Normal (checked just above).
    unsafe { core::slice::from_raw_parts(addr as *const u8, size) }
}

/// Cold boot of the first core. `dtb` is QEMU's (or the boot loader's) x0.
#[no_mangle]
extern "C" fn primary_main(dtb_addr: u64) -> ! {
    console::init_log(log::LevelFilter::Info);
    let platform = match dtb::parse(
        dtb_at(dtb_addr, "hypervisor", None),
        &mut *DTB_SCRATCH.lock(),
    ) {
        Ok(p) => p,
        Err(e) => fatal(format_args!("{e}")),
    };
    console::set_uart(platform.uart.base);
    let args = bootargs::parse(platform.bootargs())
        .unwrap_or_else(|w| fatal(format_args!("bad hypervisor argument '{w}'")));
    log::set_max_level(args.log);
    crate::trace::set_test_switches(args.test_midr, args.test_trace_probe);
    println!(
        "trace-manager hypervisor {}: {} cores, RAM {:#x}+{:#x}",
        env!("CARGO_PKG_VERSION"),
        platform.cpu_count,
        platform.memory()[0].base,
        platform.memory()[0].size
    );
    if platform.cpus()[0] & 0xff_00ff_ffff != MPIDR_EL1.get() & 0xff_00ff_ffff {
        fatal(format_args!(
            "the boot core is not the first CPU of the device tree"
        ));
    }
    if platform.psci != dtb::PsciMethod::Smc {
        fatal(format_args!(
            "firmware PSCI must use SMC (the guest's HVCs are the hypervisor's)"
        ));
    }

    let hyp = Range::new(
        layout::hyp_start() & !0x1f_ffff,
        layout::hyp_end() - (layout::hyp_start() & !0x1f_ffff),
    );
    if !platform.memory().iter().any(|r| r.contains_range(&hyp)) {
        fatal(format_args!(
            "the hypervisor's memory {:#x}..{:#x} is not inside RAM",
            hyp.base,
            hyp.end()
        ));
    }

    require_mapped(format_args!("the hypervisor's memory"), hyp, ATTR_NORMAL);
    require_mapped(format_args!("the UART"), platform.uart, ATTR_DEVICE);
    require_mapped(
        format_args!("the GIC distributor"),
        platform.gicd,
        ATTR_DEVICE,
    );
    require_mapped(
        format_args!("the GIC redistributors"),
        platform.gicr,
        ATTR_DEVICE,
    );

    let (Some(entry), Some(guest_dtb)) = (args.guest_entry, args.guest_dtb) else {
        fatal(format_args!(
            "no guest: bootargs must give guest.entry=<addr> guest.dtb=<addr>"
        ));
    };
    let blob = dtb_at(guest_dtb, "guest", Some(platform.memory()));
    let guest = match dtb::validate_guest(
        blob,
        &mut *DTB_SCRATCH.lock(),
        platform.memory(),
        hyp,
        platform.cpus(),
        &platform.grant,
    ) {
        Ok(g) => g,
        Err(e) => fatal(format_args!("refusing to start the guest: {e}")),
    };
    if !guest.contains(&Range::new(entry, 4))
        || !guest.contains(&Range::new(guest_dtb, blob.len() as u64))
    {
        fatal(format_args!(
            "refusing to start the guest: its image or device tree lies outside its memory"
        ));
    }
    // EL2 copies trace data into the guest's RAM through its own map.
    for r in guest.memory() {
        require_mapped(format_args!("the guest's RAM"), *r, ATTR_NORMAL);
    }
    if !guest.cpus().contains(&platform.cpus()[0]) {
        fatal(format_args!(
            "refusing to start the guest: it has no vCPU for the boot core"
        ));
    }

    // SAFETY: the heap memory is used by nothing else, and this runs once,
    // on the boot core, before anything allocates.
    unsafe {
        HEAP.lock().init(HEAP_MEMORY.0.get() as usize, HEAP_SIZE);
    }

    let gic_layout = gic::layout(&platform).unwrap_or_else(|e| {
        fatal(format_args!(
            "no GIC redistributor for the CPU with MPIDR {:#x}",
            e.0
        ))
    });
    let stage2 = build_stage2(&platform, &guest);
    scrub_own_tree(
        dtb_addr,
        &guest,
        Range::new(guest_dtb, blob.len() as u64),
        entry,
    );
    let features = smccc::psci::psci_features::<smccc::Smc>(smccc::psci::PSCI_CPU_SUSPEND_64);
    // PSCI_FEATURES of CPU_SUSPEND, bit 1: the extended StateID format.
    let power_state_format = if features.is_ok_and(|f| f & 0b10 != 0) {
        PowerStateFormat::Extended
    } else {
        PowerStateFormat::Original
    };

    gic::init_distributor(&gic_layout);
    vuart::init(&platform);
    let m = state::set_machine(Machine {
        platform,
        guest,
        gic: gic_layout,
        hyp,
        stage2,
        power_state_format,
        list_registers: gic::list_register_count(),
        simulate_power_loss: args.simulate_power_loss,
        guest_counts_el2: args.guest_counts_el2,
        vanish_on_cpu_off: args.vanish_on_cpu_off,
        request_bound_ticks: crate::power::bound_ticks(CNTFRQ_EL0.get()),
        trace_source: args.trace_source,
    });
    if m.vanish_on_cpu_off {
        log::info!("test switch test.vanish: CPU_OFF leaves the core's mailbox open");
    }
    println!(
        "hypervisor memory {:#x}..{:#x} (image {} KiB, bss {} KiB, stacks {} KiB); stage 2: {} tables",
        m.hyp.base,
        m.hyp.end(),
        (layout::image_end() - layout::hyp_start()) / 1024,
        layout::bss_size() / 1024,
        layout::stacks_size() / 1024,
        m.stage2.table_count()
    );
    println!(
        "memory per core: stack {} B, core-local state {} B, shared state {} B, trace buffer {} B",
        layout::stacks_size() / dtb::MAX_CPUS as u64,
        tracing::STATE_SIZE + vcpu::STATE_SIZE + vuart::STATE_SIZE,
        core::mem::size_of::<state::Shared>(),
        tracing::BUFFER_SIZE
    );
    // (What a suspend's save + restore costs in trace register accesses,
    // against a full readback, is computed on the host: `make bench`.)
    println!("trace backend on this core: {:?}", tracing::backend_kind());
    for r in m.guest.memory() {
        println!(
            "guest RAM {:#x}..{:#x}; entry {entry:#x}, device tree {guest_dtb:#x}",
            r.base,
            r.end()
        );
    }
    // Counter time since reset (virtual time under QEMU's -icount): what the
    // hypervisor adds to a guest's boot.
    let freq = CNTFRQ_EL0.get().max(1);
    println!(
        "entering the guest {} us after reset",
        CNTPCT_EL0.get().saturating_mul(1_000_000) / freq
    );
    CORES[0].entry.store(entry, Ordering::Relaxed);
    CORES[0].context.store(guest_dtb, Ordering::Relaxed);
    start_core(false)
}

/// The guest's stage 2 ([`stage2::for_guest`]): its RAM and the devices
/// its grant passes through, nothing else.
fn build_stage2(p: &dtb::Platform, g: &dtb::GuestLayout) -> Stage2 {
    let s2 = stage2::for_guest(g.memory(), &p.grant)
        .unwrap_or_else(|e| fatal(format_args!("cannot build the guest's stage 2: {e:?}")));
    for d in p.grant.regions() {
        println!(
            "granted to the guest: {:?} {:#x}..{:#x} ({})",
            d.device,
            d.range.base,
            d.range.end(),
            match d.access {
                crate::grant::Access::Emulated => "emulated by EL2",
                crate::grant::Access::PassThrough => "passed through",
            }
        );
    }
    s2
}

/// Zeroes the hypervisor's own device tree where it lies in the guest's
/// RAM (QEMU puts it at 0x4800_0000): its bootargs and the machine's whole
/// description are the hypervisor's, and everything EL2 needs of it was
/// copied into EL2's memory by `dtb::parse`. Cleaned to the point of
/// coherency, so a guest reading with its MMU off sees the zeros too. A
/// tree that overlaps the guest's own tree or its entry point is refused:
/// scrubbing it would destroy the guest's.
fn scrub_own_tree(addr: u64, guest: &dtb::GuestLayout, guest_dtb: Range, entry: u64) {
    let len = dtb_at(addr, "hypervisor", None).len() as u64;
    let own = Range::new(addr, len);
    if !guest.memory().iter().any(|r| r.overlaps(&own)) {
        return;
    }
    if own.overlaps(&guest_dtb) || own.contains(entry) {
        fatal(format_args!(
            "refusing to start the guest: the hypervisor's device tree {:#x}..{:#x} overlaps the guest's tree or entry point",
            own.base,
            own.end()
        ));
    }
    // SAFETY: `own` is the hypervisor's tree, in RAM mapped Normal at EL2
    // (dtb_at checked), which nothing reads any more: `dtb::parse` copied
    // what EL2 keeps, and no other core runs yet.
    unsafe { core::ptr::write_bytes(addr as *mut u8, 0, len as usize) };
    arch::clean_dcache_to_poc(addr, len);
    println!(
        "hypervisor device tree {:#x}..{:#x} scrubbed from the guest's RAM",
        own.base,
        own.end()
    );
}

/// A core started by PSCI CPU_ON, or woken from a power-down suspend.
#[no_mangle]
extern "C" fn secondary_main(context: u64) -> ! {
    start_core(context & WARM_BOOT != 0)
}

/// Sets up this core's EL2 and enters its guest vCPU.
fn start_core(warm: bool) -> ! {
    let m = machine();
    let idx = arch::core_index();
    init_el2(m);
    gic::init_redistributor(&m.gic, idx, !warm);
    gic::init_cpu_interface();
    if warm {
        // Back from a power-down: the same restore as when firmware returns.
        crate::suspend::warm_boot(&mut psci::ThisCore);
        log::debug!(
            "warm boot after a power-down suspend: trace and virtual CPU interface restored"
        );
    } else {
        vcpu::power_on();
        tracing::power_on();
    }
    state::come_online();
    let me = &CORES[idx];
    let (entry, arg) = (
        me.entry.load(Ordering::Relaxed),
        me.context.load(Ordering::Relaxed),
    );
    log::debug!(
        "entering the guest at {entry:#x} (x0 = {arg:#x}){}",
        if warm { " after power-down" } else { "" }
    );
    vcpu::enter(entry, arg)
}

/// HCR_EL2: VM (stage 2), SWIO, FMO, IMO, AMO (all interrupts to EL2), TID3
/// (ID registers, to hide the trace unit), TSC (trap SMC), RW (EL1 is
/// AArch64), APK and API (pointer-authentication keys and instructions are
/// the guest's own: EL2 is built without pointer authentication, so it has
/// no keys of its own to protect, and Linux writes APIAKey at boot).
const HCR: u64 = {
    use crate::arch::fields::HCR_EL2::*;
    VM::Enable.value
        | SWIO::SET.value
        | FMO::EnableVirtualFIQ.value
        | IMO::EnableVirtualIRQ.value
        | AMO::SET.value
        | TID3::SET.value
        | TSC::EnableTrapEl1SmcToEl2.value
        | RW::EL1IsAarch64.value
        | APK::DisableTrapPointerAuthKeyRegsToEl2.value
        | API::DisableTrapPointerAuthInstToEl2.value
};
/// CPTR_EL2 (E2H = 0): TTA (bit 20) traps the guest's trace-unit register
/// accesses; otherwise RES1 bits only, so FP/SIMD and SVE are the guest's
/// (the hypervisor is built soft-float and never touches them); SME (TSM)
/// stays trapped. Written by hand: aarch64-cpu 11 defines only CPTR_EL2.TAM.
const CPTR: u64 = 0xff | (1 << 9) | (1 << 12) | (1 << 13) | (1 << 20);
/// MDCR_EL2 besides HPMN: TDOSA traps the OS lock registers, TTRF traps
/// TRFCR_EL1, E2TB = 0b00 makes EL2 the trace buffer's owner and traps
/// EL1's TRB* accesses, E2PB = 0b11 leaves the statistical profiling
/// buffer to the guest.
const MDCR_TRACE_OWNER: u64 = {
    use crate::arch::MDCR_EL2::*;
    TDOSA::SET.value | TTRF::SET.value | E2TB::EL1OrEL2OwnerTrapToEL2.value | E2PB::OwnedByEL1.value
};
/// MDCR_EL2.HPMD (FEAT_PMUv3p1): the guest's event counters do not count
/// at EL2.
const MDCR_HPMD: u64 = crate::arch::MDCR_EL2::HPMD::SET.value;
/// MDCR_EL2.HCCD (FEAT_PMUv3p5): the cycle counter does not count at EL2.
const MDCR_HCCD: u64 = crate::arch::MDCR_EL2::HCCD::SET.value;

/// The MDCR_EL2 bits that keep EL2 out of the guest's PMU counts, as far as
/// PMU version `pmuver` (ID_AA64DFR0_EL1.PMUVer) implements them (both bits
/// are RES0 before their feature).
fn mdcr_hide_el2(pmuver: u64) -> u64 {
    match pmuver {
        0 | 0xf => 0,
        v if v >= 6 => MDCR_HPMD | MDCR_HCCD,
        v if v >= 4 => MDCR_HPMD,
        _ => 0,
    }
}

fn init_el2(m: &Machine) {
    // SAFETY: `m.stage2` is the guest's stage 2, built for exactly this
    // layout (VTCR), mapping guest RAM and passed-through devices only, and
    // it lives in the machine for ever; the TLBs are invalidated before HCR
    // turns stage 2 on; HCR keeps E2H and TGE clear. This core, interrupts
    // masked, before it enters the guest.
    unsafe {
        vtcr_el2::write(stage2::VTCR);
        vttbr_el2::write(m.stage2.root_address() | (1 << 48));
        isb();
        arch::tlbi_vmalls12e1is();
        hcr_el2::write(HCR);
    }
    // EL1PCTEN, EL1PCEN: the guest keeps its physical counter and timer;
    // and EL2's event stream, so that a wait in WFE for a core that
    // stopped answering still wakes to look at its bound.
    CNTHCTL_EL2.set(
        (CNTHCTL_EL2::EL1PCEN::SET + CNTHCTL_EL2::EL1PCTEN::SET).value
            | crate::power::event_stream_bits(CNTFRQ_EL0.get()),
    );
    CNTVOFF_EL2.set(0);
    CPTR_EL2.set(CPTR);
    if ID_AA64PFR0_EL1.read(ID_AA64PFR0_EL1::SVE) != 0 {
        zcr_el2::write(0xf); // the guest may use any SVE vector length
    }
    // HPMN = PMCR_EL0.N: every event counter belongs to the guest. HPMD
    // and HCCD keep them and the cycle counter from counting at EL2 (what
    // the hypervisor does is not the guest's to measure) unless the `bench`
    // switch asks for it.
    let hide = if m.guest_counts_el2 {
        0
    } else {
        mdcr_hide_el2((crate::arch::trace_regs::id_aa64dfr0() >> 8) & 0xf)
    };
    MDCR_EL2.set(MDCR_TRACE_OWNER | hide | ((pmcr_el0::read() >> 11) & 0x1f)); // HPMN = PMCR_EL0.N
    hstr_el2::write(0);
    vpidr_el2::write(MIDR_EL1.get());
    VMPIDR_EL2.set(MPIDR_EL1.get());
    SCTLR_EL1.set(vcpu::SCTLR_EL1_RESET);
    isb();
    // Every entry path (cold boot, CPU_ON, warm boot) comes through here.
    if !crate::arch::trace_regs::open_os_lock_at_init() {
        log::warn!("the OS lock stayed locked: the guest's debug exceptions will not fire");
    }
}
