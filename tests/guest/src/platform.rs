//! What the guest learns from its device tree: the cores (in `/cpus`
//! order, which is also the hypervisor's core numbering), the GIC, the
//! UART, the PSCI conduit and the scenario in `/chosen/bootargs`.

use core::cell::UnsafeCell;
use core::mem::MaybeUninit;
use core::sync::atomic::{AtomicBool, Ordering};

use fdt::Fdt;

use crate::arch::MAX_CPUS;
use crate::calls::Conduit;

// The platform's addresses (QEMU virt, or FVP Base with the `fvp`
// feature), written by build.rs: LOAD_ADDRESS, DEFAULT_DTB (where the runner
// puts the DTB; used when x0 is 0 at boot) and HYPERVISOR_IMAGE.
include!(concat!(env!("OUT_DIR"), "/layout.rs"));

const FDT_MAGIC: u32 = 0xd00d_feed;

/// The machine as the DTB describes it.
#[derive(Debug)]
pub struct Platform {
    /// Cores used (at most [`MAX_CPUS`]).
    pub ncpus: usize,
    /// Cores listed in `/cpus`.
    pub cpus_in_dtb: usize,
    /// Each core's MPIDR affinity (`reg` of its cpu node), in `/cpus` order.
    pub mpidr: [u64; MAX_CPUS],
    /// GIC distributor base.
    pub gicd: usize,
    /// First redistributor region: base and size.
    pub gicr: usize,
    /// Size of the redistributor region.
    pub gicr_size: usize,
    /// PL011 base.
    pub uart: usize,
    /// `/psci` `method`.
    pub psci_conduit: Conduit,
    /// `/chosen/bootargs`.
    pub bootargs: Option<&'static str>,
    /// The guest's RAM: the first region of `/memory`, (base, size).
    pub ram: (u64, u64),
}

/// What `/chosen/bootargs` asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scenario {
    /// `test=smp` (or no `test=`): the full suite. `resume-selftest` adds a
    /// check of the power-down resume path through a context-keeping CPU_OFF.
    Smp { resume_selftest: bool },
    /// `test=hypmem hypmem=<hex>`: the isolation test.
    HypMem { addr: u64 },
    /// `test=fault`: executes an UDF, to check the unexpected-exception
    /// path (the run must end with status 3).
    Fault,
    /// `test=trace [ops=N] [expect-violations]`: the trace manager's ABI,
    /// isolation and concurrency stress (`ops` operations per core).
    /// `deadline=S` bounds the stress (seconds of counter time).
    Trace {
        ops: u32,
        expect_violations: bool,
        deadline_s: u64,
    },
    /// `test=story`: the trace manager at work, told for `make run`.
    Story,
    /// `test=bench`: measurements for `make bench`.
    Bench,
    /// `test=tracedata`: trace data read out and printed for decoding.
    TraceData,
    /// `test=insntrace [insntrace-core=N]`: a known program traced
    /// instruction by instruction on core N (default: the boot core; see
    /// [`crate::insntrace`]).
    InsnTrace { core: Option<usize> },
    /// `test=stepdebug`: the guest's own debug while the hypervisor steps
    /// it (see [`crate::stepdebug`]).
    StepDebug,
    /// `test=fuzz [seed=N] [calls=N]`: the ABI fuzz (see [`crate::fuzz`]).
    Fuzz { seed: u64, calls: u32 },
    /// `test=hostile`: hostile register, memory, GIC and argument probes
    /// (see [`crate::hostile`]).
    Hostile,
    /// `test=grant probes=<hex>`: every region of the machine's own tree.
    Grant { probes: u64 },
    /// `test=console`: the guest disables and reprograms its UART, then
    /// every core prints while the hypervisor logs.
    Console,
    /// `test=offflood`: a core calls CPU_OFF while all others flood it
    /// with trace calls (see [`crate::vanish`]).
    OffFlood,
    /// `test=vanish`: a core goes off behind the hypervisor's back
    /// (hypervisor switch `test.vanish`; see [`crate::vanish`]).
    Vanish,
    /// Unusable bootargs.
    Invalid(&'static str),
}

impl Platform {
    /// The index of the core with affinity `mpidr`.
    pub fn index_of(&self, mpidr: u64) -> Option<usize> {
        self.mpidr[..self.ncpus].iter().position(|&m| m == mpidr)
    }

    /// The scenario named by the bootargs.
    pub fn scenario(&self) -> Scenario {
        let args = self.bootargs.unwrap_or("");
        let mut test = "smp";
        let mut hypmem = None;
        let mut probes = None;
        let mut resume_selftest = false;
        let mut ops = None;
        let mut expect_violations = false;
        let mut seed = None;
        let mut deadline = None;
        let mut calls = None;
        let mut insn_core = None;
        for word in args.split_ascii_whitespace() {
            if let Some(v) = word.strip_prefix("test=") {
                test = v;
            } else if let Some(v) = word.strip_prefix("probes=") {
                probes = Some(v);
            } else if let Some(v) = word.strip_prefix("hypmem=") {
                hypmem = Some(v);
            } else if let Some(v) = word.strip_prefix("ops=") {
                ops = Some(v);
            } else if let Some(v) = word.strip_prefix("seed=") {
                seed = Some(v);
            } else if let Some(v) = word.strip_prefix("deadline=") {
                deadline = Some(v);
            } else if let Some(v) = word.strip_prefix("calls=") {
                calls = Some(v);
            } else if let Some(v) = word.strip_prefix("insntrace-core=") {
                insn_core = Some(v);
            } else if word == "resume-selftest" {
                resume_selftest = true;
            } else if word == "expect-violations" {
                expect_violations = true;
            }
        }
        match test {
            "smp" => Scenario::Smp { resume_selftest },
            "fault" => Scenario::Fault,
            "tracedata" => Scenario::TraceData,
            "insntrace" => match insn_core.map(|v| v.parse::<usize>()) {
                None => Scenario::InsnTrace { core: None },
                Some(Ok(core)) => Scenario::InsnTrace { core: Some(core) },
                Some(Err(_)) => Scenario::Invalid("insntrace-core= is not a decimal core index"),
            },
            "stepdebug" => Scenario::StepDebug,
            "hypmem" => match hypmem.map(parse_hex) {
                Some(Some(addr)) => Scenario::HypMem { addr },
                Some(None) => Scenario::Invalid("hypmem= is not a hex address"),
                None => Scenario::Invalid("test=hypmem needs hypmem=<hex address>"),
            },
            "trace" => match (
                ops.map(|v| v.parse::<u32>()),
                deadline.map_or(Ok(crate::stress::DEADLINE_MS / 1000), |v| v.parse::<u64>()),
            ) {
                (_, Err(_)) => Scenario::Invalid("deadline= is not a decimal number of seconds"),
                (None, Ok(deadline_s)) => Scenario::Trace {
                    ops: crate::stress::DEFAULT_OPS,
                    expect_violations,
                    deadline_s,
                },
                (Some(Ok(ops)), Ok(deadline_s)) => Scenario::Trace {
                    ops,
                    expect_violations,
                    deadline_s,
                },
                (Some(Err(_)), _) => {
                    Scenario::Invalid("ops= is not a decimal number of operations")
                }
            },
            "story" => Scenario::Story,
            "bench" => Scenario::Bench,
            "hostile" => Scenario::Hostile,
            "grant" => match probes.map(parse_hex) {
                Some(Some(probes)) => Scenario::Grant { probes },
                _ => Scenario::Invalid("test=grant needs probes=<hex address>"),
            },
            "console" => Scenario::Console,
            "offflood" => Scenario::OffFlood,
            "vanish" => Scenario::Vanish,
            "fuzz" => {
                let seed = match seed.map(|v| v.parse::<u64>().ok().or_else(|| parse_hex(v))) {
                    None => crate::fuzz::DEFAULT_SEED,
                    Some(Some(s)) => s,
                    Some(None) => return Scenario::Invalid("seed= is not a number"),
                };
                match calls.map(|v| v.parse::<u32>()) {
                    None => Scenario::Fuzz {
                        seed,
                        calls: crate::fuzz::DEFAULT_CALLS,
                    },
                    Some(Ok(calls)) => Scenario::Fuzz { seed, calls },
                    Some(Err(_)) => Scenario::Invalid("calls= is not a decimal number"),
                }
            }
            _ => Scenario::Invalid(
                "unknown test= (expected smp, hypmem, fault, trace, tracedata, insntrace, story, bench, fuzz, hostile, grant, console, offflood or vanish)",
            ),
        }
    }
}

/// Parses `0x…` or bare hex (underscores allowed: `0x4008_0000`).
pub fn parse_hex(s: &str) -> Option<u64> {
    let digits = s
        .strip_prefix("0x")
        .or_else(|| s.strip_prefix("0X"))
        .unwrap_or(s);
    let mut value: u64 = 0;
    let mut any = false;
    for c in digits.chars() {
        if c == '_' {
            continue;
        }
        let d = c.to_digit(16)? as u64;
        value = value.checked_mul(16)?.checked_add(d)?;
        any = true;
    }
    any.then_some(value)
}

/// A value set once, before other cores run, and read-only afterwards.
struct Once<T> {
    ready: AtomicBool,
    value: UnsafeCell<MaybeUninit<T>>,
}

// SAFETY: the value is written once, before `ready` is published with
// Release, and only read (shared) after `ready` is seen with Acquire.
unsafe impl<T: Sync> Sync for Once<T> {}

static PLATFORM: Once<Platform> = Once {
    ready: AtomicBool::new(false),
    value: UnsafeCell::new(MaybeUninit::uninit()),
};

/// The platform; [`init`] must have run (the boot core does it first).
pub fn get() -> &'static Platform {
    assert!(
        PLATFORM.ready.load(Ordering::Acquire),
        "platform used before init"
    );
    // SAFETY: `ready` says the value was written, and it is never written again.
    unsafe { (*PLATFORM.value.get()).assume_init_ref() }
}

/// Reads the DTB at `dtb` and records the platform. Boot core only, once.
pub fn init(dtb: u64) -> Result<&'static Platform, &'static str> {
    let ptr = dtb as usize as *const u8;
    // SAFETY: the DTB lies in guest RAM, which the identity map covers as
    // Normal memory; reading its first word is harmless.
    let magic = u32::from_be(unsafe { ptr.cast::<u32>().read_volatile() });
    if magic != FDT_MAGIC {
        return Err("no FDT magic");
    }
    // SAFETY: a valid FDT header is there (magic checked); the runner's DTB
    // stays in place, unmodified, for the whole run.
    let fdt: Fdt<'static> = unsafe { Fdt::from_ptr(ptr) }.map_err(|_| "malformed FDT")?;
    let plat = parse(&fdt)?;
    assert!(
        !PLATFORM.ready.load(Ordering::Relaxed),
        "platform initialised twice"
    );
    // SAFETY: only the boot core calls this, once, before any other core
    // runs and before `ready` is set, so nobody reads the value meanwhile.
    unsafe { (*PLATFORM.value.get()).write(plat) };
    PLATFORM.ready.store(true, Ordering::Release);
    Ok(get())
}

fn parse(fdt: &Fdt<'static>) -> Result<Platform, &'static str> {
    let mut mpidr = [0u64; MAX_CPUS];
    let mut ncpus = 0;
    let mut cpus_in_dtb = 0;
    let cpus = fdt.find_node("/cpus").ok_or("no /cpus")?;
    let addr_cells = cpus
        .property("#address-cells")
        .and_then(|p| p.as_usize())
        .unwrap_or(1);
    for cpu in cpus.children() {
        if cpu.name.split('@').next() != Some("cpu") {
            continue;
        }
        if cpu
            .property("device_type")
            .and_then(|p| p.as_str())
            .is_some_and(|t| t != "cpu")
        {
            continue;
        }
        let reg = cpu.property("reg").ok_or("cpu node without reg")?;
        let id = match (addr_cells, reg.value.len()) {
            (1, 4..) => u32::from_be_bytes(reg.value[..4].try_into().unwrap_or([0; 4])) as u64,
            (2, 8..) => u64::from_be_bytes(reg.value[..8].try_into().unwrap_or([0; 8])),
            _ => return Err("cpu reg of an unsupported size"),
        };
        if ncpus < MAX_CPUS {
            mpidr[ncpus] = id & 0xff_00ff_ffff;
            ncpus += 1;
        }
        cpus_in_dtb += 1;
    }
    if ncpus == 0 {
        return Err("no cpu in /cpus");
    }

    let gic = fdt
        .find_compatible(&["arm,gic-v3"])
        .ok_or("no arm,gic-v3 node")?;
    let mut regs = gic.reg().ok_or("GIC without reg")?;
    let gicd = regs.next().ok_or("GIC without a distributor reg")?;
    let gicr = regs.next().ok_or("GIC without a redistributor reg")?;

    let uart = fdt
        .find_compatible(&["arm,pl011"])
        .and_then(|n| n.reg())
        .and_then(|mut r| r.next())
        .ok_or("no arm,pl011 node")?;

    let method = fdt
        .find_node("/psci")
        .and_then(|n| n.property("method"))
        .and_then(|p| p.as_str())
        .ok_or("no /psci method")?;
    let psci_conduit = match method {
        "smc" => Conduit::Smc,
        "hvc" => Conduit::Hvc,
        _ => return Err("/psci method is neither smc nor hvc"),
    };

    let bootargs = fdt
        .find_node("/chosen")
        .and_then(|n| n.property("bootargs"))
        .and_then(|p| p.as_str());

    let ram = fdt
        .memory()
        .regions()
        .next()
        .map(|r| (r.starting_address as u64, r.size.unwrap_or(0) as u64))
        .ok_or("no /memory region")?;

    Ok(Platform {
        ncpus,
        cpus_in_dtb,
        mpidr,
        gicd: gicd.starting_address as usize,
        gicr: gicr.starting_address as usize,
        gicr_size: gicr.size.unwrap_or(0),
        uart: uart.starting_address as usize,
        psci_conduit,
        bootargs,
        ram,
    })
}
