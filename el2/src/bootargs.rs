//! The hypervisor's command line (/chosen/bootargs of its own device tree).
//!
//! `guest.entry=<addr> guest.dtb=<addr> [log=<level>] [test.powerdown] [test.vanish] [bench]`:
//! where the runner loaded the guest kernel image and the guest's device
//! tree (hex with 0x, or decimal). `test.powerdown` is a test switch: a
//! power-down CPU_SUSPEND loses EL2 and trace state and comes back through
//! the warm-boot entry even where firmware only waits (QEMU). `test.vanish`
//! is a test switch too: a guest's CPU_OFF goes to firmware without closing
//! the core's mailbox or telling the other cores, as a power controller
//! behind PSCI's back would do, so that the bounded wait for a core that
//! stopped answering runs on QEMU. `bench` lets
//! the guest's PMU event counters count at EL2 (MDCR_EL2.HPMD = 0), so a
//! benchmark guest can measure the hypervisor's instructions, and EL2
//! enables event counter 2 only while it is inside the trace backend (the
//! backend/manager split, `hv/tracing/metered.rs`); without it the guest
//! cannot observe EL2 through the PMU and EL2 never touches its counters. `test.midr=<value>` makes
//! the trace errata table apply as if every core had that MIDR_EL1 (and the
//! QEMU model behave like that part); `test.trace-probe` probes the trace
//! registers even where the ID registers deny them, so the UNDEFINED
//! fallback runs on QEMU. Unknown words
//! are ignored, so that the same line can carry the runner's notes.

/// What the command line asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Args {
    /// Entry point (and load address) of the guest kernel.
    pub guest_entry: Option<u64>,
    /// Address of the guest's device tree blob.
    pub guest_dtb: Option<u64>,
    /// Maximum log level.
    pub log: log::LevelFilter,
    /// `test.powerdown`: simulate power loss in power-down suspends.
    pub simulate_power_loss: bool,
    /// `bench`: the guest's PMU may count EL2 events (and counter 2 counts
    /// the trace backend's share).
    pub guest_counts_el2: bool,
    /// `test.midr=<value>`: the MIDR the trace errata are looked up for.
    pub test_midr: Option<u64>,
    /// `test.trace-probe`: probe the trace registers regardless.
    pub test_trace_probe: bool,
    /// `test.vanish`: CPU_OFF powers the core off behind the other cores' back.
    pub vanish_on_cpu_off: bool,
    /// `trace.source=insn|exceptions`: what feeds the QEMU model.
    pub trace_source: TraceSource,
}

/// What feeds the QEMU model's trace unit (real trace hardware sees the
/// guest itself and ignores this).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TraceSource {
    /// `trace.source=exceptions`: an exception packet for each trap to EL2,
    /// nothing for the instructions between them. Cheap: for the tests that
    /// stress the control plane.
    Exceptions,
    /// `trace.source=insn`: EL2 single-steps a tracing core's guest and the
    /// model traces every instruction it executes, as an ETE would.
    Instructions,
}

fn number(s: &str) -> Option<u64> {
    match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => s.parse().ok(),
    }
}

/// Parses the command line; malformed values are reported as `Err(word)`.
pub fn parse(line: &str) -> Result<Args, &str> {
    let mut args = Args {
        guest_entry: None,
        guest_dtb: None,
        log: log::LevelFilter::Info,
        simulate_power_loss: false,
        guest_counts_el2: false,
        test_midr: None,
        test_trace_probe: false,
        vanish_on_cpu_off: false,
        trace_source: TraceSource::Exceptions,
    };
    for word in line.split_ascii_whitespace() {
        let (key, value) = word.split_once('=').unwrap_or((word, ""));
        match key {
            "guest.entry" => args.guest_entry = Some(number(value).ok_or(word)?),
            "guest.dtb" => args.guest_dtb = Some(number(value).ok_or(word)?),
            "test.powerdown" if value.is_empty() => args.simulate_power_loss = true,
            "bench" if value.is_empty() => args.guest_counts_el2 = true,
            "test.midr" => args.test_midr = Some(number(value).filter(|&m| m != 0).ok_or(word)?),
            "test.trace-probe" if value.is_empty() => args.test_trace_probe = true,
            "test.vanish" if value.is_empty() => args.vanish_on_cpu_off = true,
            "trace.source" => {
                args.trace_source = match value {
                    "insn" => TraceSource::Instructions,
                    "exceptions" => TraceSource::Exceptions,
                    _ => return Err(word),
                }
            }
            "log" => {
                args.log = match value {
                    "error" => log::LevelFilter::Error,
                    "warn" => log::LevelFilter::Warn,
                    "info" => log::LevelFilter::Info,
                    "debug" => log::LevelFilter::Debug,
                    "trace" => log::LevelFilter::Trace,
                    _ => return Err(word),
                }
            }
            _ => {}
        }
    }
    Ok(args)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_guest_location_and_log_level() {
        let a = parse("guest.entry=0x44200000 guest.dtb=1140850688 log=debug other=1").unwrap();
        assert_eq!(a.guest_entry, Some(0x4420_0000));
        assert_eq!(a.guest_dtb, Some(0x4400_0000));
        assert_eq!(a.log, log::LevelFilter::Debug);
        assert!(!a.simulate_power_loss);
        assert_eq!(parse("").unwrap().guest_entry, None);
        assert!(parse("test.powerdown").unwrap().simulate_power_loss);
        assert!(!parse("test.powerdown").unwrap().guest_counts_el2);
        assert!(parse("log=info bench").unwrap().guest_counts_el2);
        assert!(!parse("bench=1").unwrap().guest_counts_el2);
        assert_eq!(parse("").unwrap().trace_source, TraceSource::Exceptions);
        assert_eq!(
            parse("trace.source=insn").unwrap().trace_source,
            TraceSource::Instructions
        );
        assert_eq!(parse("trace.source=all"), Err("trace.source=all"));
        assert_eq!(parse("").unwrap().test_midr, None);
        assert_eq!(
            parse("test.midr=0x410fd470").unwrap().test_midr,
            Some(0x410f_d470)
        );
        assert!(parse("test.trace-probe").unwrap().test_trace_probe);
        assert!(!parse("").unwrap().test_trace_probe);
        assert!(parse("log=info test.vanish").unwrap().vanish_on_cpu_off);
        assert!(!parse("test.powerdown").unwrap().vanish_on_cpu_off);
        assert!(!parse("test.vanish=1").unwrap().vanish_on_cpu_off);
    }

    #[test]
    fn rejects_malformed_values() {
        assert_eq!(parse("guest.entry=0xzz"), Err("guest.entry=0xzz"));
        assert_eq!(parse("guest.dtb="), Err("guest.dtb="));
        assert_eq!(parse("log=loud"), Err("log=loud"));
        assert_eq!(parse("test.midr=0"), Err("test.midr=0"));
        assert_eq!(parse("test.midr=a710"), Err("test.midr=a710"));
    }
}
