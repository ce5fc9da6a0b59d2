//! `test=grant probes=<addr>`: a hostile guest tries every device of the
//! machine, not just those its tree names.
//!
//! The runner dumps QEMU's *own* machine tree (not the guest's, which only
//! names what the hypervisor grants), lists every memory-mapped region in
//! it, and loads the list at `probes` (format below). The guest then:
//!
//! 1. reads the first word of every region: a granted one must answer, one
//!    that is not must raise a synchronous external abort, and the guest
//!    carries on either way;
//! 2. mounts the fw_cfg DMA attack: a descriptor in its own RAM asking
//!    fw_cfg to write 4 bytes (the "QEMU" signature) over the hypervisor's
//!    lower-EL synchronous exception vector, its address written to the
//!    DMA register. The write must abort and the descriptor stay untouched
//!    (QEMU clears its control word when it runs one); then a hypercall
//!    must still answer, which it cannot if the vector was overwritten;
//! 3. searches all of its RAM for anything of the hypervisor's device tree:
//!    an FDT header other than its own tree's, and the hypervisor's
//!    bootargs (`guest.dtb=`). The patterns are kept masked in the guest's
//!    own code and data, so that the search never finds itself.
//!
//! The list, little-endian 64-bit words: the magic `TMPROBE1`, the number
//! of regions, the fw_cfg base (0: none), the address fw_cfg is asked to
//! write (the hypervisor's vector), the guest's own tree's address, the
//! guest RAM's base and size; then per region its base, size and flags
//! (bit 0: granted).

use core::arch::asm;
use core::hint::black_box;

use guest_api::smccc;

use crate::calls;
use crate::hypmem;
use crate::platform;
use crate::report::{fail, Msg, Report};
use crate::trap;

const MAGIC: u64 = u64::from_le_bytes(*b"TMPROBE1");
const HEADER_WORDS: usize = 7;
/// Most regions the list may hold (QEMU virt has about 45).
const MAX_REGIONS: u64 = 256;
/// The guest's stage 1 and the hypervisor's stage 2 both end here (39-bit
/// addresses): a region above it cannot be named by any guest access.
const ADDRESS_LIMIT: u64 = 1 << 39;

/// fw_cfg DMA control bits (QEMU's docs/specs/fw_cfg.rst).
const FW_CFG_DMA_READ: u32 = 0x02;
const FW_CFG_DMA_SELECT: u32 = 0x08;
/// The DMA address register, big-endian, at this offset from the base.
const FW_CFG_DMA_ADDRESS: u64 = 0x10;

/// A fw_cfg DMA descriptor: control, length, address, all big-endian.
#[repr(C, align(16))]
struct Descriptor {
    control: u32,
    length: u32,
    address: u64,
}

static mut DESCRIPTOR: Descriptor = Descriptor {
    control: 0,
    length: 0,
    address: 0,
};

/// Runs the scenario; the exit status.
pub fn run(probes: u64) -> u64 {
    let mut report = Report::new();
    let words = |i: usize| {
        // SAFETY: the runner loaded the list at `probes` in guest RAM, which
        // the guest's stage 1 maps as Normal memory; `i` is bounded below.
        unsafe { core::ptr::read_volatile((probes as *const u64).add(i)) }
    };
    if words(0) != MAGIC || words(1) > MAX_REGIONS {
        println!("grant: FAIL setup: no probe list at {probes:#x}");
        return crate::status::SETUP;
    }
    let count = words(1) as usize;
    let (fw_cfg, target, own_dtb) = (words(2), words(3), words(4));
    let (ram_base, ram_size) = (words(5), words(6));
    let region = |i: usize| {
        let at = HEADER_WORDS + 3 * i;
        (words(at), words(at + 1), words(at + 2) & 1 != 0)
    };
    report.check("every-region", sweep(count, region));
    if fw_cfg != 0 {
        report.check("fw-cfg-dma-attack", fw_cfg_attack(fw_cfg, target));
    }
    report.check("hypercall-after", hypercall());
    report.check(
        "no-hypervisor-tree-in-ram",
        search_ram(ram_base, ram_size, own_dtb),
    );
    report.finish()
}

/// A 32-bit read of `addr`, with any exception caught.
fn read(addr: u64) -> (u32, Option<trap::Caught>) {
    // SAFETY: the point of the test: the load may abort (the catch skips
    // it); a device that answers is only read, and reading the first word
    // of any of QEMU virt's devices has no effect the guest relies on.
    trap::catching(|| unsafe {
        let v: u32;
        asm!("mov {v:w}, wzr", "ldr {v:w}, [{a}]", v = out(reg) v, a = in(reg) addr, options(nostack));
        v
    })
}

fn sweep(count: usize, region: impl Fn(usize) -> (u64, u64, bool)) -> Result<(), Msg> {
    let (mut granted, mut refused, mut unreachable) = (0, 0, 0);
    let mut leaked = 0;
    let mut first_leak = None;
    for i in 0..count {
        let (base, size, is_granted) = region(i);
        if base >= ADDRESS_LIMIT {
            // No address the guest can form reaches it: nothing to try.
            unreachable += 1;
            println!("grant: {base:#x}+{size:#x} is beyond the 39-bit address space");
            continue;
        }
        let (v, caught) = read(base);
        match (is_granted, caught) {
            (true, None) => granted += 1,
            (true, Some(c)) => fail!("granted region {base:#x}+{size:#x} aborted: {c}"),
            (false, None) => {
                // Go on, so that the count shows everything that leaks.
                println!("grant: region {base:#x}+{size:#x} is not granted but answered {v:#x}");
                leaked += 1;
                first_leak.get_or_insert(base);
            }
            (false, Some(c)) => {
                hypmem::check_abort(base, false, c)?;
                refused += 1;
            }
        }
    }
    println!(
        "grant: {count} regions: {granted} granted and answered, {refused} refused with an abort, \
         {leaked} not granted but answered, {unreachable} beyond the address space"
    );
    if let Some(base) = first_leak {
        fail!("{leaked} regions that are not granted answered (the first at {base:#x})");
    }
    if granted == 0 || refused == 0 {
        fail!("the list must hold granted and refused regions");
    }
    Ok(())
}

fn fw_cfg_attack(fw_cfg: u64, target: u64) -> Result<(), Msg> {
    let control = (FW_CFG_DMA_SELECT | FW_CFG_DMA_READ).to_be(); // key 0: "QEMU"
    let d = core::ptr::addr_of_mut!(DESCRIPTOR);
    // SAFETY: the descriptor is this scenario's own static, used by this
    // core alone; volatile so the DMA engine (should it run) and the check
    // below see memory, not registers.
    unsafe {
        core::ptr::write_volatile(
            d,
            Descriptor {
                control,
                length: 4u32.to_be(),
                address: target.to_be(),
            },
        );
    }
    asm_barrier();
    let reg = fw_cfg + FW_CFG_DMA_ADDRESS;
    let value = (d as u64).to_be();
    // SAFETY: the point of the test: the store must abort (the catch skips
    // it). Should it land, QEMU writes 4 bytes over the hypervisor's vector,
    // which is the defect under test, and the hypercall check reports it.
    let ((), caught) = trap::catching(|| unsafe {
        asm!("str {v}, [{a}]", v = in(reg) value, a = in(reg) reg, options(nostack));
    });
    asm_barrier();
    // SAFETY: as above.
    let after = unsafe { core::ptr::read_volatile(core::ptr::addr_of!((*d).control)) };
    match caught {
        None => fail!(
            "the write of the descriptor's address to fw_cfg's DMA register ({reg:#x}) did not \
             fault (descriptor control now {:#x})",
            u32::from_be(after)
        ),
        Some(c) => hypmem::check_abort(reg, true, c)?,
    }
    if after != control {
        fail!(
            "fw_cfg ran the descriptor (control {:#x})",
            u32::from_be(after)
        );
    }
    println!("grant: fw_cfg DMA attack on {target:#x} refused: the DMA register write aborted");
    Ok(())
}

fn asm_barrier() {
    // SAFETY: a full barrier has no other effect.
    unsafe { asm!("dsb sy", options(nostack)) };
}

fn hypercall() -> Result<(), Msg> {
    let conduit = platform::get().psci_conduit;
    match calls::call(conduit, smccc::SMCCC_VERSION, 0, 0, 0) {
        Ok(r) if r[0] as i64 >= 0x1_0000 => {
            println!("grant: SMCCC_VERSION answers {:#x} after the attacks", r[0]);
            Ok(())
        }
        Ok(r) => fail!("SMCCC_VERSION answered {:#x}", r[0]),
        Err(c) => fail!("SMCCC_VERSION raised {c}"),
    }
}

/// Masks that keep the patterns out of the guest's own memory: only the
/// masked forms are ever stored, and each word read is masked before it is
/// compared.
const MASK32: u32 = 0x5a5a_a5a5;
const MASK64: u64 = 0xa5a5_5a5a_3c3c_c3c3;
/// An FDT header's first word as a little-endian load sees it (d0 0d fe ed).
const FDT_MAGIC_MASKED: u32 = 0xedfe_0dd0 ^ MASK32;
/// "gues", then "guest.dt", little-endian.
const GUES_MASKED: u32 = u32::from_le_bytes(*b"gues") ^ MASK32;
const GUEST_DT_MASKED: u64 = u64::from_le_bytes(*b"guest.dt") ^ MASK64;

fn search_ram(base: u64, size: u64, own_dtb: u64) -> Result<(), Msg> {
    let (m32, m64) = (black_box(MASK32), black_box(MASK64));
    let (magic, gues, guest_dt) = (
        black_box(FDT_MAGIC_MASKED),
        black_box(GUES_MASKED),
        black_box(GUEST_DT_MASKED),
    );
    let end = base + size - 8;
    let mut trees = 0u64;
    let mut args = 0u64;
    let mut first = None;
    let mut p = base;
    while p < end {
        // SAFETY: `p` is 4-byte aligned inside the guest's RAM, mapped
        // Normal by its stage 1; reads only.
        let w = unsafe { core::ptr::read_volatile(p as *const u32) } ^ m32;
        if w == magic && p.is_multiple_of(8) && p != own_dtb {
            trees += 1;
            first.get_or_insert(p);
        } else if w == gues {
            // SAFETY: as above; an unaligned load of Normal memory.
            let d = unsafe { core::ptr::read_unaligned(p as *const u64) } ^ m64;
            if d == guest_dt {
                args += 1;
                first.get_or_insert(p);
            }
        }
        p += 4;
    }
    println!(
        "grant: searched {} MiB of guest RAM: {trees} foreign device tree headers, {args} copies of \
         the hypervisor's bootargs",
        size >> 20
    );
    if trees != 0 || args != 0 {
        fail!(
            "guest RAM holds the hypervisor's device tree or bootargs (first at {:#x})",
            first.unwrap_or(0)
        );
    }
    Ok(())
}
