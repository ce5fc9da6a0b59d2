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
//! ```

use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;

/// The decoder's tool.
pub const TRC_PKT_LISTER: &str = "trc_pkt_lister";

/// TRCDEVARCH of an ETE (ARCHITECT Arm, PRESENT, ARCHID 0x5a13 = ETE).
pub const ETE_DEVARCH: u64 = 0x4770_5a13;
/// TRCIDR1 default OpenCSD assumes (designer Arm, ETE/ETMv4.x revision).
pub const DEFAULT_TRCIDR1: u64 = 0x4100_f403;

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

/// Writes a snapshot of `captures` into `dir` (created if needed).
pub fn write(dir: &Path, captures: &[Capture]) -> Result<(), String> {
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
            format!("[device]\nname={cpu}\nclass=core\ntype=ARMv9-A\n\n[regs]\nPC=0x0\n")
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
}
