//! CoreSight trace snapshots (the "ARM Trace and Debug Snapshot" directory
//! format OpenCSD reads) of raw ETE trace, and OpenCSD's `trc_pkt_lister`
//! run over them.
//!
//! TRBE writes one trace unit's packets to memory as they come, without the
//! CoreSight frame formatter (no trace IDs in the data): OpenCSD calls such a
//! buffer `format = source_data`, and decodes it with the single source the
//! trace.ini maps to it. So each core's buffer is its own trace buffer entry
//! with its own ETE source and core.
//!
//! Layout written by `write`:
//!
//! ```text
//! snapshot.ini        [device_list] of every cpu_N.ini and ete_N.ini, [trace] metadata=trace.ini
//! cpu_N.ini           class=core, type=ARMv9-A (OpenCSD needs the core's architecture)
//! ete_N.ini           class=trace_source, type=ETE, [regs] TRCCONFIGR, TRCTRACEIDR, TRCIDR0/1/2/8, TRCDEVARCH
//! trace.ini           [trace_buffers], one [buffer_N] (format=source_data) each,
//!                     [source_buffers] ete_N=buffer, [core_trace_sources] cpu_N=ete_N
//! trbe_N.bin          the buffer's bytes
//! mem_K.bin           with `write_with_memory`: the K-th memory dump, named
//!                     in every cpu_N.ini as a [dumpK] section (file, address,
//!                     length), so the full decode (`-decode`) can walk the code
//! ```
//!
//! [`executed_addresses`] reads a full decode back as the instruction
//! addresses it reconstructed, in order.

use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;

/// The decoder's tool.
pub const TRC_PKT_LISTER: &str = "trc_pkt_lister";

/// TRCDEVARCH of an ETE (ARCHITECT Arm, PRESENT, ARCHID 0x5a13 = ETE).
pub const ETE_DEVARCH: u64 = 0x4770_5a13;
/// TRCIDR1 default OpenCSD assumes (designer Arm, ETE/ETMv4.x revision),
/// which the QEMU model reports; used for a log line from a hypervisor
/// whose model reported 0.
pub const DEFAULT_TRCIDR1: u64 = el2::trace::MODEL_TRCIDR1;

/// The ETE programming the decoder needs to parse one unit's packets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EteRegs {
    /// TRCCONFIGR as programmed (timestamps, context ID, cycle counting).
    pub configr: u64,
    /// TRCTRACEIDR.
    pub traceidr: u64,
    /// TRCIDR0 (timestamp size, features).
    pub idr0: u64,
    /// TRCIDR1 (architecture revision).
    pub idr1: u64,
    /// TRCIDR2 (address, context ID and VMID sizes).
    pub idr2: u64,
    /// TRCIDR8 (maximum speculation depth).
    pub idr8: u64,
    /// TRCDEVARCH.
    pub devarch: u64,
}

impl EteRegs {
    /// The QEMU model's trace unit with trace ID `traceid`, programmed with
    /// `configr`: the ID registers the model reports.
    pub const fn model(configr: u64, traceid: u64) -> EteRegs {
        EteRegs {
            configr,
            traceidr: traceid,
            idr0: el2::trace::MODEL_TRCIDR0,
            idr1: DEFAULT_TRCIDR1,
            idr2: el2::trace::MODEL_TRCIDR2,
            idr8: 0,
            devarch: ETE_DEVARCH,
        }
    }
}

/// One core's captured trace.
#[derive(Clone, Debug)]
pub struct Capture {
    /// The core's index (names the files and devices).
    pub cpu: usize,
    /// Its trace unit's programming.
    pub regs: EteRegs,
    /// The buffer's bytes, oldest first.
    pub data: Vec<u8>,
}

/// The trace-buffer name of core `cpu` in the snapshot (`-src_name`).
pub fn buffer_name(cpu: usize) -> String {
    format!("trbe_{cpu}")
}

/// Memory the decoder may read: the code it walks between waypoints.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemoryDump {
    /// Address of the first byte (the address space the trace uses).
    pub address: u64,
    /// The contents.
    pub bytes: Vec<u8>,
}

/// Writes a snapshot of `captures` into `dir` (created if needed).
pub fn write(dir: &Path, captures: &[Capture]) -> Result<(), String> {
    write_with_memory(dir, captures, &[])
}

/// The `[dumpK]` sections naming `memory` in a core's device ini (OpenCSD's
/// snapshot reader: a section whose name starts with `dump`, keys `file`,
/// `address` and `length`).
fn dump_sections(memory: &[MemoryDump]) -> String {
    let mut s = String::new();
    for (k, m) in memory.iter().enumerate() {
        let _ = write!(
            s,
            "\n[dump{k}]\nfile=mem_{k}.bin\naddress={:#x}\nlength={:#x}\n",
            m.address,
            m.bytes.len()
        );
    }
    s
}

/// Writes a snapshot of `captures` into `dir` (created if needed), with
/// `memory` dumped and given to every core, so the full decode can follow
/// instruction trace through it.
pub fn write_with_memory(
    dir: &Path,
    captures: &[Capture],
    memory: &[MemoryDump],
) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let put = |name: &str, text: &[u8]| {
        std::fs::write(dir.join(name), text).map_err(|e| format!("{name}: {e}"))
    };
    let mut devices = String::new();
    let mut buffers = Vec::new();
    let mut trace = String::new();
    let mut sources = String::from("[source_buffers]\n");
    let mut cores = String::from("[core_trace_sources]\n");
    for (i, c) in captures.iter().enumerate() {
        let (cpu, ete, buf) = (
            format!("cpu_{}", c.cpu),
            format!("ete_{}", c.cpu),
            buffer_name(c.cpu),
        );
        let _ = writeln!(devices, "device{}={cpu}.ini", 2 * i);
        let _ = writeln!(devices, "device{}={ete}.ini", 2 * i + 1);
        put(
            &format!("{cpu}.ini"),
            format!(
                "[device]\nname={cpu}\nclass=core\ntype=ARMv9-A\n\n[regs]\nPC=0x0\n{}",
                dump_sections(memory)
            )
            .as_bytes(),
        )?;
        let r = &c.regs;
        put(
            &format!("{ete}.ini"),
            format!(
                "[device]\nname={ete}\nclass=trace_source\ntype=ETE\n\n[regs]\n\
                 TRCCONFIGR={:#x}\nTRCTRACEIDR={:#x}\nTRCIDR0={:#x}\nTRCIDR1={:#x}\n\
                 TRCIDR2={:#x}\nTRCIDR8={:#x}\nTRCDEVARCH={:#x}\n",
                r.configr, r.traceidr, r.idr0, r.idr1, r.idr2, r.idr8, r.devarch
            )
            .as_bytes(),
        )?;
        put(&format!("{buf}.bin"), &c.data)?;
        buffers.push(format!("buffer{i}"));
        let _ = write!(
            trace,
            "\n[buffer{i}]\nname={buf}\nfile={buf}.bin\nformat=source_data\n"
        );
        let _ = writeln!(sources, "{ete}={buf}");
        let _ = writeln!(cores, "{cpu}={ete}");
    }
    for (k, m) in memory.iter().enumerate() {
        put(&format!("mem_{k}.bin"), &m.bytes)?;
    }
    put(
        "snapshot.ini",
        format!(
            "[snapshot]\nversion=1.0\ndescription=trace manager: raw ETE trace from TRBE\n\n\
             [device_list]\n{devices}\n[trace]\nmetadata=trace.ini\n"
        )
        .as_bytes(),
    )?;
    put(
        "trace.ini",
        format!(
            "[trace_buffers]\nbuffers={}\n{trace}\n{sources}\n{cores}",
            buffers.join(",")
        )
        .as_bytes(),
    )
}

/// Whether `trc_pkt_lister` is installed.
pub fn have_decoder() -> bool {
    // It writes trc_pkt_lister.ppl into its working directory even for -help.
    Command::new(TRC_PKT_LISTER)
        .current_dir(std::env::temp_dir())
        .arg("-help")
        .output()
        .map(|o| o.status.success() || !o.stdout.is_empty())
        .unwrap_or(false)
}

/// Runs `trc_pkt_lister` over the buffer of core `cpu` in snapshot `dir`,
/// packets only or with the full decode (`-decode`), and returns its output.
pub fn list(dir: &Path, cpu: usize, decode: bool) -> Result<String, String> {
    let mut cmd = Command::new(TRC_PKT_LISTER);
    // Any log file it writes lands in the snapshot, not the caller's tree.
    cmd.current_dir(dir).args(["-ss_dir", "."]).args([
        "-src_name",
        &buffer_name(cpu),
        "-logstdout",
    ]);
    if decode {
        cmd.arg("-decode");
    }
    let out = cmd
        .output()
        .map_err(|e| format!("{TRC_PKT_LISTER}: {e} (apt-get install libopencsd-bin)"))?;
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        return Err(format!("{TRC_PKT_LISTER} failed ({}):\n{text}", out.status));
    }
    Ok(text)
}

/// One packet as `trc_pkt_lister` printed it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Packet {
    /// Byte offset in the buffer.
    pub idx: usize,
    /// The packet's name, e.g. `I_EXCEPT`, `I_ADDR_L_64IS0`.
    pub name: String,
    /// The rest of the line (its decoded fields).
    pub text: String,
}

impl Packet {
    /// The value after `key` (e.g. `Addr=`, `Updated val = `), as hex.
    pub fn hex_after(&self, key: &str) -> Option<u64> {
        let rest = &self.text[self.text.find(key)? + key.len()..];
        let rest = rest.trim_start();
        let digits = rest.strip_prefix("0x").unwrap_or(rest);
        let end = digits
            .find(|c: char| !c.is_ascii_hexdigit())
            .unwrap_or(digits.len());
        u64::from_str_radix(&digits[..end], 16).ok()
    }
}

/// The packet lines of a packets-only listing (`Idx:N; ID:N;\tNAME : ...`).
/// Lines of the full decode (`OCSD_GEN_TRC_ELEM_...`) are not packets.
pub fn packets(listing: &str) -> Vec<Packet> {
    listing
        .lines()
        .filter_map(|l| {
            let rest = l.strip_prefix("Idx:")?;
            let (idx, rest) = rest.split_once(';')?;
            let (_, rest) = rest.split_once(';')?;
            // Full-decode runs print the raw bytes in brackets first.
            let rest = match rest.find("];") {
                Some(i) if rest.trim_start().starts_with('[') => &rest[i + 2..],
                _ => rest,
            };
            let rest = rest.trim_start();
            if !rest.starts_with("I_") {
                return None;
            }
            let (name, text) = rest.split_once(" : ").unwrap_or((rest, ""));
            Some(Packet {
                idx: idx.trim().parse().ok()?,
                name: name.trim().to_string(),
                text: text.to_string(),
            })
        })
        .collect()
}

/// Errors the decoder reported (lines mentioning `ERR` or `Error`).
pub fn errors(listing: &str) -> Vec<&str> {
    listing
        .lines()
        .filter(|l| l.contains("OCSD_ERR") || l.contains("Error") || l.contains("BAD_SEQUENCE"))
        .collect()
}

/// What the test guest's `test=tracedata` scenario printed, read back from
/// a run's console output (QEMU's or the FVP's).
#[derive(Clone, Debug)]
pub struct TraceDataRun {
    /// The guest image's address range `[start, end)`: every traced return
    /// address of a guest HVC lies in it.
    pub image: (u64, u64),
    /// How many HVCs the guest made while tracing (besides TRACE_DISABLE).
    pub calls: usize,
    /// One capture per core, with its ID registers (see [`decoder_ids`]).
    pub captures: Vec<Capture>,
    /// Whether every capture's ID registers came from the hypervisor's log
    /// of a real trace unit (`backend=ete`).
    pub from_hardware: bool,
    /// Core 0's buffer after it wrapped in CONFIG_WRAP mode (`wrap0`), with
    /// core 0's ID registers, if the guest printed it.
    pub wrapped: Option<Capture>,
}

/// TRCCONFIGR as EL2 programs it for the scenario's EL1 | timestamps |
/// context ID: RES1 (0), CID (6), TS (11).
pub const TRACEDATA_CONFIGR: u64 = 1 | (1 << 6) | (1 << 11);

/// The ID registers of core `cpu`'s trace unit from the hypervisor's log
/// line (el2/src/hv/tracing.rs, `log_decoder_ids_once`):
///
/// `el2[cpuN] trace unit ids: backend=ete traceid=T TRCIDR0=0x.. TRCIDR1=0x.. TRCIDR2=0x.. TRCIDR8=0x.. TRCDEVARCH=0x..`
///
/// Returns the registers and whether the backend is the real ETE, or `None`
/// without such a line. A TRCIDR1 of 0 (which a real unit never reads: its
/// bits [15:12] are RES1; the QEMU model reported it before it had one)
/// becomes OpenCSD's default.
pub fn decoder_ids(output: &str, cpu: usize) -> Option<(EteRegs, bool)> {
    let prefix = format!("el2[cpu{cpu}] ");
    let line = output
        .lines()
        .filter_map(|l| l.find(&prefix).map(|at| &l[at + prefix.len()..]))
        .find_map(|l| l.find("trace unit ids: ").map(|at| &l[at..]))?;
    let value = |key: &str| -> Option<u64> {
        let word = line
            .split_whitespace()
            .find_map(|w| w.strip_prefix(key)?.strip_prefix('='))?;
        match word.strip_prefix("0x") {
            Some(hex) => u64::from_str_radix(hex, 16).ok(),
            None => word.parse().ok(),
        }
    };
    let hardware = line.contains("backend=ete");
    let idr1 = value("TRCIDR1")?;
    Some((
        EteRegs {
            configr: TRACEDATA_CONFIGR,
            traceidr: value("traceid")?,
            idr0: value("TRCIDR0")?,
            idr1: if idr1 == 0 { DEFAULT_TRCIDR1 } else { idr1 },
            idr2: value("TRCIDR2")?,
            idr8: value("TRCIDR8")?,
            devarch: value("TRCDEVARCH")?,
        },
        hardware,
    ))
}

/// Reads the `test=tracedata` output of `cpus` cores: the image line, and
/// each core's dump (`tracedata: cpuN OFFSET HEX` lines, offsets checked to
/// follow each other, ending with `tracedata: cpuN end LEN`). ID registers
/// come from the hypervisor's log ([`decoder_ids`]); a core without that
/// line gets the QEMU model's (`el2::trace::MODEL_*`), which is what runs
/// there unless the hypervisor logs at debug level.
pub fn parse_tracedata(output: &str, cpus: usize) -> Result<TraceDataRun, String> {
    let head = output
        .lines()
        .find(|l| l.contains("tracedata: image "))
        .ok_or("no 'tracedata: image' line")?;
    let words: Vec<&str> = head.split_whitespace().collect();
    let at = words.iter().position(|w| *w == "image").unwrap_or(0);
    let hex = |s: Option<&&str>| {
        s.and_then(|s| u64::from_str_radix(s.trim_start_matches("0x"), 16).ok())
            .ok_or_else(|| format!("bad image line: {head}"))
    };
    let image = (hex(words.get(at + 1))?, hex(words.get(at + 2))?);
    let calls = words
        .get(at + 4)
        .and_then(|w| w.parse().ok())
        .ok_or_else(|| format!("bad image line: {head}"))?;
    let mut captures = Vec::new();
    let mut from_hardware = cpus > 0;
    for cpu in 0..cpus {
        let data = printed_dump(output, &format!("cpu{cpu}"))?;
        let (regs, hardware) = decoder_ids(output, cpu).unwrap_or((
            EteRegs::model(TRACEDATA_CONFIGR, el2::trace::trace_id(cpu).into()),
            false,
        ));
        from_hardware &= hardware;
        captures.push(Capture { cpu, regs, data });
    }
    let wrapped = if output.contains("tracedata: wrap0 begin") {
        let data = printed_dump(output, "wrap0")?;
        captures.first().map(|c0| Capture {
            cpu: 0,
            regs: c0.regs.clone(),
            data,
        })
    } else {
        None
    };
    Ok(TraceDataRun {
        image,
        calls,
        captures,
        from_hardware,
        wrapped,
    })
}

/// The bytes a guest printed as `tracedata: <tag> OFFSET HEX` lines, checked
/// to follow each other and to end with one `tracedata: <tag> end LEN`.
pub fn printed_dump(output: &str, tag: &str) -> Result<Vec<u8>, String> {
    let mut data = Vec::new();
    let prefix = format!("tracedata: {tag} ");
    for line in output.lines().filter(|l| l.contains(&prefix)) {
        let rest = &line[line.find(&prefix).unwrap_or(0) + prefix.len()..];
        let mut f = rest.split_whitespace();
        let (Some(off), Some(bytes), None) = (f.next(), f.next(), f.next()) else {
            continue;
        };
        if off.len() != 6 || !off.chars().all(|c| c.is_ascii_hexdigit()) {
            continue;
        }
        if usize::from_str_radix(off, 16).ok() != Some(data.len()) {
            return Err(format!("{tag}: dump out of order at: {line}"));
        }
        for i in (0..bytes.len()).step_by(2) {
            let byte = bytes
                .get(i..i + 2)
                .and_then(|b| u8::from_str_radix(b, 16).ok())
                .ok_or_else(|| format!("{tag}: bad hex in: {line}"))?;
            data.push(byte);
        }
    }
    let end_line = format!("{prefix}end {}", data.len());
    if output.lines().filter(|l| l.contains(&end_line)).count() != 1 {
        return Err(format!("{tag}: no single '{end_line}' line"));
    }
    Ok(data)
}

/// The hex number right after `key` in `line`.
fn hex_at(line: &str, key: &str) -> Option<u64> {
    let rest = &line[line.find(key)? + key.len()..];
    let rest = rest.trim_start();
    let digits = rest.strip_prefix("0x").unwrap_or(rest);
    let end = digits
        .find(|c: char| !c.is_ascii_hexdigit())
        .unwrap_or(digits.len());
    u64::from_str_radix(&digits[..end], 16).ok()
}

/// The instruction addresses a full decode (`list(.., true)`) reconstructed,
/// in execution order: each `OCSD_GEN_TRC_ELEM_INSTR_RANGE` expanded into
/// its 4-byte A64 instructions `[start, end)`. A decode that lost its way
/// is an error, not a shorter list: decoder errors, ranges it could not
/// walk (`I_RANGE_NOPATH`), memory it could not read (`ADDR_NACC`), or a
/// range that disagrees with its own instruction count.
pub fn executed_addresses(decoder_output: &str) -> Result<Vec<u64>, String> {
    let errs = errors(decoder_output);
    if !errs.is_empty() {
        return Err(format!("decoder errors: {errs:?}"));
    }
    let mut out = Vec::new();
    for line in decoder_output.lines() {
        for bad in [
            "OCSD_GEN_TRC_ELEM_I_RANGE_NOPATH",
            "OCSD_GEN_TRC_ELEM_ADDR_NACC",
        ] {
            if line.contains(bad) {
                return Err(format!("decoder could not follow the code: {line}"));
            }
        }
        if !line.contains("OCSD_GEN_TRC_ELEM_INSTR_RANGE(") {
            continue;
        }
        let parse = || -> Option<(u64, u64, u64)> {
            let start = hex_at(line, "exec range=")?;
            let end = hex_at(line, ":[")?;
            let n = line[line.find("num_i(")? + 6..]
                .split(')')
                .next()?
                .trim()
                .parse()
                .ok()?;
            Some((start, end, n))
        };
        let (start, end, n) = parse().ok_or_else(|| format!("unreadable range: {line}"))?;
        if end < start || (end - start) % 4 != 0 || (end - start) / 4 != n {
            return Err(format!("range and count disagree: {line}"));
        }
        out.extend((start..end).step_by(4));
    }
    Ok(out)
}

/// The exceptions a full decode reported, in order: (preferred return
/// address, exception number as the ETE packet's TYPE field).
pub fn decoded_exceptions(decoder_output: &str) -> Vec<(u64, u32)> {
    decoder_output
        .lines()
        .filter(|l| l.contains("OCSD_GEN_TRC_ELEM_EXCEPTION("))
        .filter_map(|l| {
            let ret = hex_at(l, "pref ret addr:")?;
            let num = hex_at(l, "excep num (")? as u32;
            Some((ret, num))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_packets_parse_both_listing_styles() {
        let l = "Idx:30; ID:0;\tI_EXCEPT : Exception.;  Call; Ret Addr Follows;\n\
                 Idx:32; ID:0; [0x9d 0x0d ];\tI_ADDR_L_64IS0 : Address, Long, 64 bit, IS0.; Addr=0x0000000044201234; \n\
                 Idx:30; ID:1; OCSD_GEN_TRC_ELEM_EXCEPTION(pref ret addr:0x44201234; excep num (0x02) )\n\
                 Idx:16; ID:0;\tI_TIMESTAMP : Timestamp.; Updated val = 0x123456\n";
        let p = packets(l);
        assert_eq!(p.len(), 3);
        assert_eq!(p[0].name, "I_EXCEPT");
        assert!(p[0].text.contains("Call"));
        assert_eq!(p[1].idx, 32);
        assert_eq!(p[1].hex_after("Addr="), Some(0x4420_1234));
        assert_eq!(p[2].hex_after("Updated val = "), Some(0x123456));
    }

    #[test]
    fn snapshot_files_name_a_raw_source_buffer() {
        let dir = crate::tempdir().unwrap();
        let regs = EteRegs {
            configr: 0x801,
            traceidr: 1,
            idr0: 0,
            idr1: DEFAULT_TRCIDR1,
            idr2: 0x1088,
            idr8: 0,
            devarch: ETE_DEVARCH,
        };
        write(
            &dir,
            &[Capture {
                cpu: 2,
                regs,
                data: vec![1, 2, 3],
            }],
        )
        .unwrap();
        let trace = std::fs::read_to_string(dir.join("trace.ini")).unwrap();
        assert!(trace.contains("format=source_data"), "{trace}");
        assert!(trace.contains("ete_2=trbe_2"), "{trace}");
        assert!(trace.contains("cpu_2=ete_2"), "{trace}");
        let ete = std::fs::read_to_string(dir.join("ete_2.ini")).unwrap();
        assert!(ete.contains("TRCIDR2=0x1088"), "{ete}");
        assert_eq!(std::fs::read(dir.join("trbe_2.bin")).unwrap(), [1, 2, 3]);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn decoder_ids_come_from_the_hypervisor_log() {
        let out = "el2[cpu0] trace-manager hypervisor\n\
                   el2[cpu1] trace unit ids: backend=ete traceid=18 TRCIDR0=0x28c1 TRCIDR1=0x4100fff0 \
                   TRCIDR2=0x20001088 TRCIDR8=0x4 TRCDEVARCH=0x47715a13\n";
        let (r, hw) = decoder_ids(out, 1).unwrap();
        assert!(hw);
        assert_eq!(
            r,
            EteRegs {
                configr: TRACEDATA_CONFIGR,
                traceidr: 0x12,
                idr0: 0x28c1,
                idr1: 0x4100_fff0,
                idr2: 0x2000_1088,
                idr8: 4,
                devarch: 0x4771_5a13,
            }
        );
        assert!(decoder_ids(out, 0).is_none());
        let model =
            "el2[cpu0] DEBUG trace unit ids: backend=model traceid=16 TRCIDR0=0x1 TRCIDR1=0x0 \
                     TRCIDR2=0x2 TRCIDR8=0x0 TRCDEVARCH=0x47705a13";
        let (r, hw) = decoder_ids(model, 0).unwrap();
        assert!(!hw);
        assert_eq!(r.idr1, DEFAULT_TRCIDR1, "a TRCIDR1 of 0 is replaced");
        assert_eq!(r.traceidr, 0x10);
    }

    #[test]
    fn tracedata_dump_is_read_back_in_order() {
        let out = "guest[cpu0] tracedata: image 0x84200000 0x84250000 calls 3 config 0x7\n\
                   guest[cpu0] tracedata: cpu0 begin\n\
                   guest[cpu0] tracedata: cpu0 000000 00000000\n\
                   guest[cpu0] tracedata: cpu0 000004 0a0b\n\
                   guest[cpu0] tracedata: cpu0 end 6\n";
        let run = parse_tracedata(out, 1).unwrap();
        assert_eq!(run.image, (0x8420_0000, 0x8425_0000));
        assert_eq!(run.calls, 3);
        assert_eq!(run.captures[0].data, [0, 0, 0, 0, 10, 11]);
        assert_eq!(run.captures[0].regs.idr0, el2::trace::MODEL_TRCIDR0);
        assert!(!run.from_hardware);
        let gap = out.replace("000004 0a0b", "000005 0a0b");
        assert!(parse_tracedata(&gap, 1).is_err());
    }

    #[test]
    fn executed_addresses_expand_ranges_in_order() {
        let out = "\
Idx:29; ID:2; OCSD_GEN_TRC_ELEM_INSTR_RANGE(exec range=0x44200000:[0x4420000c] num_i(3) last_sz(4) (ISA=A64) E BR   <cond>)
Idx:61; ID:0; [0x06 0x05 ];\tI_EXCEPT : Exception.;  Call; Ret Addr Follows;
Idx:61; ID:2; OCSD_GEN_TRC_ELEM_INSTR_RANGE(exec range=0x44200004:[0x44200008] num_i(1) last_sz(4) (ISA=A64) E --- )
Idx:61; ID:2; OCSD_GEN_TRC_ELEM_EXCEPTION(pref ret addr:0x44200008; excep num (0x02) )
";
        assert_eq!(
            executed_addresses(out),
            Ok(vec![0x4420_0000, 0x4420_0004, 0x4420_0008, 0x4420_0004])
        );
        assert_eq!(decoded_exceptions(out), [(0x4420_0008, 2)]);
        let miscounted = out.replace("num_i(3)", "num_i(2)");
        assert!(executed_addresses(&miscounted).is_err());
        let lost = format!("{out}Idx:70; ID:2; OCSD_GEN_TRC_ELEM_ADDR_NACC( 0x44300000 )\n");
        assert!(executed_addresses(&lost).is_err());
    }
}
