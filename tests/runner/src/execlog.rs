//! QEMU's log of executed instructions, the oracle for instruction trace.
//!
//! With `-singlestep -d exec,nochain` QEMU 7.2 translates one guest
//! instruction per translation block (TB), never chains blocks, and logs
//! every block it enters. `-accel tcg,thread=single` runs all vCPUs on one
//! host thread, so the lines of all cores come in the order the
//! instructions ran, and a line about a block follows that block's own
//! `Trace` line. `-dfilter` keeps only blocks whose guest PC lies in the
//! given ranges (QEMU 8.1 and later spell `-singlestep` as `-accel
//! tcg,one-insn-per-tb=on`). The hypervisor cannot influence any of it.
//!
//! The lines (QEMU 7.2, `accel/tcg/cpu-exec.c`, checked against real runs
//! here; the fixtures in the tests below are excerpts of them):
//!
//! ```text
//! Trace <cpu_index>: <host ptr> [<cs_base>/<pc>/<flags>/<cflags>] <symbol>
//! Stopped execution of TB chain before <host ptr> [<pc>] <symbol>
//! ```
//!
//! `Trace` is printed as the block is entered (`log_cpu_exec`, from
//! `cpu_tb_exec`), with the PC, TB flags and compile flags in hex (PC and
//! cs_base 16 digits, flags and cflags 8) and the symbol QEMU knows for
//! the PC (none for a raw image: empty). `Stopped execution` follows when
//! the block exited with TB_EXIT_REQUESTED before running its first
//! instruction (an exit request, such as an interrupt becoming pending):
//! that block did not execute, so its `Trace` line, the one just before,
//! is dropped. A third line, `cpu_io_recompile: rewound execution of TB to
//! <pc>` (icount only), likewise means the last block was abandoned and
//! will run again.
//!
//! One more kind of block executes no instruction: when software step is
//! active-pending (MDSCR_EL1.SS set and PSTATE.SS clear, as after an
//! exception entry while EL2 single-steps the guest), QEMU makes a block
//! that only raises the step exception. Its TB flags say so: in QEMU 7.2's
//! `TBFLAG_ANY`, bit 1 is SS_ACTIVE and bit 2 PSTATE.SS ([`TB_SS_ACTIVE`],
//! [`TB_PSTATE_SS`]); such a block is dropped too. (Seen in real runs
//! while EL2 steps the guest: flags 0x23 on the first block of the EL1
//! vector after an SVC or an IRQ, then the same PC again with 0x27.)

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// TB flag (QEMU 7.2 `TBFLAG_ANY.AARCH64_STATE`): the block is A64 code.
pub const TB_AARCH64: u32 = 1 << 0;
/// TB flag (`TBFLAG_ANY.SS_ACTIVE`): software step is active.
pub const TB_SS_ACTIVE: u32 = 1 << 1;
/// TB flag (`TBFLAG_ANY.PSTATE__SS`): PSTATE.SS, set when the step is
/// active-not-pending (one instruction runs, then the step exception).
pub const TB_PSTATE_SS: u32 = 1 << 2;

/// Where QEMU writes its execution log and which guest addresses it logs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExecLog {
    /// The log file (`-D`), written by QEMU and overwritten on each run.
    pub file: PathBuf,
    /// Guest virtual address ranges `[start, end)` to log (`-dfilter`).
    pub ranges: Vec<(u64, u64)>,
}

impl ExecLog {
    /// Logs `[start, end)` to `file`.
    pub fn new(file: impl Into<PathBuf>, start: u64, end: u64) -> ExecLog {
        ExecLog {
            file: file.into(),
            ranges: vec![(start, end)],
        }
    }

    /// QEMU's options for this log: one instruction per block, no
    /// chaining, one TCG thread, the filter and the file.
    pub fn qemu_args(&self) -> Vec<String> {
        let filter = self
            .ranges
            .iter()
            .filter(|(s, e)| s < e)
            // QEMU's `a..b` range includes b.
            .map(|(s, e)| format!("{s:#x}..{:#x}", e - 1))
            .collect::<Vec<_>>()
            .join(",");
        let mut args: Vec<String> = ["-accel", "tcg,thread=single", "-singlestep"]
            .map(String::from)
            .into();
        args.extend(["-d".into(), "exec,nochain".into()]);
        if !filter.is_empty() {
            args.extend(["-dfilter".into(), filter]);
        }
        args.extend(["-D".into(), self.file.display().to_string()]);
        args
    }

    /// Reads the log QEMU wrote.
    pub fn read(&self) -> Result<String, String> {
        std::fs::read(&self.file)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .map_err(|e| format!("{}: {e}", self.file.display()))
    }
}

/// One `Trace` line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entered {
    /// The vCPU (QEMU's cpu_index: the core's position in `-smp`).
    pub cpu: usize,
    /// The guest PC of the block.
    pub pc: u64,
    /// The TB flags.
    pub flags: u32,
}

impl Entered {
    /// Does this block run an instruction? Not if it only raises a pending
    /// software-step exception (see the module documentation).
    pub fn executes(&self) -> bool {
        self.flags & (TB_SS_ACTIVE | TB_PSTATE_SS) != TB_SS_ACTIVE
    }
}

/// A line of the log that matters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Line {
    /// `Trace N: ...`: a block entered.
    Entered(Entered),
    /// `Stopped execution of TB chain before ... [pc]`: the block just
    /// entered did not run.
    Stopped(u64),
    /// `cpu_io_recompile: rewound execution of TB to pc`: likewise.
    Rewound(u64),
}

fn hex(s: &str) -> Option<u64> {
    let s = s.trim();
    let s = s.strip_prefix("0x").unwrap_or(s);
    if s.is_empty() {
        return None;
    }
    u64::from_str_radix(s, 16).ok()
}

/// Parses one line of the log; `None` for lines of no interest (other
/// `-d` categories, blank lines).
pub fn parse_line(line: &str) -> Option<Line> {
    if let Some(rest) = line.strip_prefix("Trace ") {
        let (cpu, rest) = rest.split_once(':')?;
        let cpu = cpu.trim().parse().ok()?;
        let open = rest.find('[')?;
        let close = open + rest[open..].find(']')?;
        let mut f = rest[open + 1..close].split('/');
        let (_cs_base, pc, flags) = (f.next()?, hex(f.next()?)?, hex(f.next()?)?);
        return Some(Line::Entered(Entered {
            cpu,
            pc,
            flags: u32::try_from(flags).ok()?,
        }));
    }
    if let Some(rest) = line.strip_prefix("Stopped execution of TB chain before ") {
        let open = rest.find('[')?;
        let close = open + rest[open..].find(']')?;
        return Some(Line::Stopped(hex(&rest[open + 1..close])?));
    }
    if let Some(rest) = line.strip_prefix("cpu_io_recompile: rewound execution of TB to ") {
        return Some(Line::Rewound(hex(rest.split_whitespace().next()?)?));
    }
    None
}

/// The blocks that ran, all cores, in log order: every `Trace` line
/// except those a `Stopped`/`rewound` line cancels and those that only
/// raise a pending step exception. A cancelling line with no block before
/// it, or naming a PC other than its block's, is an error: the log is not
/// what this parser understands.
pub fn executed(log: &str) -> Result<Vec<Entered>, String> {
    let mut out: Vec<Entered> = Vec::new();
    // Whether the last block entered is still `out`'s last (not dropped as
    // a step-pending block), so that a cancelling line can remove it.
    let mut last: Option<(Entered, bool)> = None;
    for (n, line) in log.lines().enumerate() {
        match parse_line(line) {
            Some(Line::Entered(e)) => {
                let runs = e.executes();
                if runs {
                    out.push(e.clone());
                }
                last = Some((e, runs));
            }
            Some(Line::Stopped(pc) | Line::Rewound(pc)) => match last.take() {
                Some((e, pushed)) if e.pc == pc => {
                    if pushed {
                        out.pop();
                    }
                }
                Some((e, _)) => {
                    return Err(format!(
                        "line {}: {line:?} follows a block at {:#x}",
                        n + 1,
                        e.pc
                    ))
                }
                None => {
                    return Err(format!(
                        "line {}: {line:?} follows no block it could cancel",
                        n + 1
                    ))
                }
            },
            None => {}
        }
    }
    Ok(out)
}

/// The PCs core `cpu` executed, in order ([`executed`] for one core).
/// Panics on a log [`executed`] refuses, naming the line.
pub fn executed_pcs(log: &str, cpu: usize) -> Vec<u64> {
    match executed(log) {
        Ok(all) => all
            .into_iter()
            .filter(|e| e.cpu == cpu)
            .map(|e| e.pc)
            .collect(),
        Err(e) => panic!("QEMU exec log: {e}"),
    }
}

/// A function symbol of an ELF image: its name and `[start, end)`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Symbol {
    /// The symbol's name.
    pub name: String,
    /// First address.
    pub start: u64,
    /// One past the last address: start + st_size; for a label without a
    /// size (st_size 0), see [`Symbols::from_list`].
    pub end: u64,
}

/// The code symbols (functions and labels of executable sections) of an
/// ELF64 little-endian image, sorted by address, for naming addresses.
#[derive(Clone, Debug, Default)]
pub struct Symbols {
    syms: Vec<Symbol>,
    by_name: BTreeMap<String, usize>,
}

fn rd<const N: usize>(b: &[u8], at: usize) -> Result<[u8; N], String> {
    b.get(at..at + N)
        .and_then(|s| s.try_into().ok())
        .ok_or_else(|| format!("ELF truncated at {at:#x}"))
}
fn u16_at(b: &[u8], at: usize) -> Result<u16, String> {
    rd::<2>(b, at).map(u16::from_le_bytes)
}
fn u32_at(b: &[u8], at: usize) -> Result<u32, String> {
    rd::<4>(b, at).map(u32::from_le_bytes)
}
fn u64_at(b: &[u8], at: usize) -> Result<u64, String> {
    rd::<8>(b, at).map(u64::from_le_bytes)
}
fn usize_at(b: &[u8], at: usize) -> Result<usize, String> {
    usize::try_from(u64_at(b, at)?).map_err(|e| e.to_string())
}

impl Symbols {
    /// Reads the symbol table (`.symtab`) of the ELF64 file at `path`.
    pub fn read(path: &Path) -> Result<Symbols, String> {
        let b = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
        Symbols::parse(&b).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// Reads the symbol table of an ELF64 little-endian image in memory.
    pub fn parse(b: &[u8]) -> Result<Symbols, String> {
        if b.get(..4) != Some(b"\x7fELF") || b.get(4) != Some(&2) || b.get(5) != Some(&1) {
            return Err("not an ELF64 little-endian file".into());
        }
        let shoff = usize_at(b, 0x28)?;
        let shentsize = usize::from(u16_at(b, 0x3a)?);
        let shnum = usize::from(u16_at(b, 0x3c)?);
        let section = |i: usize| shoff + i * shentsize;
        // Section flags SHF_EXECINSTR, by index.
        let mut exec = vec![false; shnum];
        let mut symtab = None;
        for (i, x) in exec.iter_mut().enumerate() {
            let sh = section(i);
            let kind = u32_at(b, sh + 4)?;
            *x = u64_at(b, sh + 8)? & 4 != 0;
            if kind == 2 {
                symtab = Some(sh);
            }
        }
        let sh = symtab.ok_or("no .symtab (stripped image?)")?;
        let (off, size, link, entsize) = (
            usize_at(b, sh + 0x18)?,
            usize_at(b, sh + 0x20)?,
            u32_at(b, sh + 0x28)? as usize,
            usize_at(b, sh + 0x38)?,
        );
        if entsize < 24 || link >= shnum {
            return Err("malformed .symtab".into());
        }
        let strtab = usize_at(b, section(link) + 0x18)?;
        let mut syms = Vec::new();
        for i in 1..size / entsize {
            let e = off + i * entsize;
            let (name, info, shndx) = (
                u32_at(b, e)? as usize,
                *b.get(e + 4).ok_or("ELF truncated")?,
                usize::from(u16_at(b, e + 6)?),
            );
            let (value, sz) = (u64_at(b, e + 8)?, u64_at(b, e + 16)?);
            // STT_NOTYPE (labels) and STT_FUNC in an executable section.
            if !matches!(info & 0xf, 0 | 2) || !exec.get(shndx).copied().unwrap_or(false) {
                continue;
            }
            let s = strtab + name;
            let len = b
                .get(s..)
                .and_then(|t| t.iter().position(|&c| c == 0))
                .ok_or("symbol name out of the file")?;
            let name = String::from_utf8_lossy(&b[s..s + len]).into_owned();
            // Mapping symbols ($x, $d) say nothing about functions.
            if name.is_empty() || name.starts_with('$') {
                continue;
            }
            syms.push(Symbol {
                name,
                start: value,
                end: value + sz,
            });
        }
        Ok(Symbols::from_list(syms))
    }

    /// Builds the table from a list (tests; images without ELF). A symbol
    /// with `end <= start` (a label without a size) is given the range up
    /// to the next symbol's start or the end of the sized symbol it lies
    /// in, whichever comes first (one instruction if neither exists).
    pub fn from_list(mut syms: Vec<Symbol>) -> Symbols {
        syms.sort_by(|a, b| (a.start, &a.name).cmp(&(b.start, &b.name)));
        let starts: Vec<u64> = syms.iter().map(|s| s.start).collect();
        let sized: Vec<(u64, u64)> = syms
            .iter()
            .filter(|s| s.end > s.start)
            .map(|s| (s.start, s.end))
            .collect();
        for s in syms.iter_mut().filter(|s| s.end <= s.start) {
            let next = starts[starts.partition_point(|&a| a <= s.start)..]
                .first()
                .copied();
            let enclosing = sized
                .iter()
                .filter(|(a, b)| (*a..*b).contains(&s.start))
                .map(|&(_, b)| b)
                .min();
            s.end = match (next, enclosing) {
                (Some(n), Some(e)) => n.min(e),
                (Some(x), None) | (None, Some(x)) => x,
                (None, None) => s.start + 4,
            };
        }
        let by_name = syms
            .iter()
            .enumerate()
            .map(|(i, s)| (s.name.clone(), i))
            .collect();
        Symbols { syms, by_name }
    }

    /// The symbol named `name`.
    pub fn get(&self, name: &str) -> Option<&Symbol> {
        self.by_name.get(name).map(|&i| &self.syms[i])
    }

    /// The innermost symbol covering `addr` (the one starting last at or
    /// below it whose range holds it).
    pub fn at(&self, addr: u64) -> Option<&Symbol> {
        let upto = self.syms.partition_point(|s| s.start <= addr);
        self.syms[..upto].iter().rev().find(|s| addr < s.end)
    }

    /// `name+0xoff` for `addr`, or the bare address.
    pub fn describe(&self, addr: u64) -> String {
        match self.at(addr) {
            Some(s) if s.start == addr => format!("{addr:#x} <{}>", s.name),
            Some(s) => format!("{addr:#x} <{}+{:#x}>", s.name, addr - s.start),
            None => format!("{addr:#x}"),
        }
    }
}

/// The test guest's ELF (the image `build/test-guest.bin` is made from).
pub fn test_guest_elf() -> PathBuf {
    crate::root().join("target/aarch64-unknown-none/release/test-guest")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// QEMU's `a..b` includes b (checked on QEMU 7.2: a filter
    /// `0x44202060..0x44202067,0x44202164..0x44202167` logged exactly the
    /// blocks at 0x44202060, 0x44202064 and 0x44202164).
    #[test]
    fn qemu_args_filter_inclusive_ranges() {
        let mut two = ExecLog::new("/tmp/y.log", 0x4420_2060, 0x4420_2068);
        two.ranges.push((0x4420_2164, 0x4420_2168));
        two.ranges.push((0x10, 0x10));
        assert!(two
            .qemu_args()
            .contains(&"0x44202060..0x44202067,0x44202164..0x44202167".to_string()));
        let l = ExecLog::new("/tmp/x.log", 0x4420_0000, 0x4420_1000);
        assert_eq!(
            l.qemu_args(),
            [
                "-accel",
                "tcg,thread=single",
                "-singlestep",
                "-d",
                "exec,nochain",
                "-dfilter",
                "0x44200000..0x44200fff",
                "-D",
                "/tmp/x.log"
            ]
        );
    }

    /// From a real run (QEMU 7.2, `test=tracedata`, 2 cores): core 0 is
    /// stopped before 0x4420002c (an exit request) and enters it again;
    /// then core 1 runs, then core 0 again. The trailing space is QEMU's
    /// (no symbol for a raw image).
    const REAL: &str = "\
Trace 0: 0x7f7324298980 [0000000000104004/0000000044200024/00000021/ff000201] 
Trace 0: 0x7f7324298b00 [0000000000104004/0000000044200028/00000021/ff000201] 
Trace 0: 0x7f7324298c40 [0000000000104004/000000004420002c/00000021/ff000201] 
Stopped execution of TB chain before 0x7f7324298c40 [000000004420002c] 
Trace 0: 0x7f7324298c40 [0000000000104004/000000004420002c/00000021/ff000201] 
Trace 0: 0x7f7324298e00 [0000000000104004/0000000044200030/00000021/ff000201] 
Trace 0: 0x7f7324405380 [0000000000104004/000000004420c7a8/00000021/ff000201] 
Trace 1: 0x7f7324424180 [0000000000104004/00000000442010d4/00000121/ff000201] 
Trace 1: 0x7f73244242c0 [0000000000104004/00000000442010d8/00000121/ff000201] 
Trace 0: 0x7f732442b400 [0000000000104004/000000004420c7ac/00000021/ff000201] 
";

    /// From a real run (QEMU 7.2, `test=insntrace`, 2 cores): the timer's
    /// interrupt arrives in the program's waiting loop; the block at
    /// 0x44202120 is stopped, the IRQ vector (0x44201a80) runs and ERETs,
    /// and 0x44202120 runs then.
    const REAL_IRQ: &str = "\
Trace 0: 0x7ff04c4e3380 [0000000000104004/0000000044202110/00000021/ff000201] 
Trace 0: 0x7ff04c4e34c0 [0000000000104004/0000000044202114/00000021/ff000201] 
Trace 0: 0x7ff04c4e3640 [0000000000104004/0000000044202118/00000021/ff000201] 
Trace 0: 0x7ff04c4e37c0 [0000000000104004/000000004420211c/00000021/ff000201] 
Trace 0: 0x7ff04c4e3900 [0000000000104004/0000000044202120/00000021/ff000201] 
Stopped execution of TB chain before 0x7ff04c4e3900 [0000000044202120] 
Trace 0: 0x7ff04c5141c0 [0000000000104004/0000000044201a80/00000021/ff000201] 
Trace 0: 0x7ff04c514340 [0000000000104004/0000000044201a84/00000021/ff000201] 
Trace 0: 0x7ff04c514480 [0000000000104004/0000000044201a88/00000021/ff000201] 
Trace 0: 0x7ff04c514600 [0000000000104004/0000000044201a8c/00000021/ff000201] 
Trace 0: 0x7ff04c514740 [0000000000104004/0000000044201a90/00000021/ff000201] 
Trace 0: 0x7ff04c5148c0 [0000000000104004/0000000044201a94/00000021/ff000201] 
Trace 0: 0x7ff04c514a00 [0000000000104004/0000000044201a98/00000021/ff000201] 
Trace 0: 0x7ff04c514b80 [0000000000104004/0000000044201a9c/00000021/ff000201] 
Trace 0: 0x7ff04c514cc0 [0000000000104004/0000000044201aa0/00000021/ff000201] 
Trace 0: 0x7ff04c514e00 [0000000000104004/0000000044201aa4/00000021/ff000201] 
Trace 0: 0x7ff04c514f80 [0000000000104004/0000000044201aa8/00000021/ff000201] 
Trace 0: 0x7ff04c4e3900 [0000000000104004/0000000044202120/00000021/ff000201] 
Trace 0: 0x7ff04c515080 [0000000000104004/0000000044202124/00000021/ff000201] 
Trace 0: 0x7ff04c5151c0 [0000000000104004/0000000044202128/00000021/ff000201] 
";

    #[test]
    fn an_interrupted_block_runs_after_the_handler() {
        let pcs = executed_pcs(REAL_IRQ, 0);
        let at = pcs.iter().position(|&pc| pc == 0x4420_1a80).unwrap();
        assert_eq!(pcs[at - 1], 0x4420_211c, "the block before the stopped one");
        assert_eq!(pcs.iter().filter(|&&pc| pc == 0x4420_2120).count(), 1);
        assert_eq!(&pcs[at + 11..], [0x4420_2120, 0x4420_2124, 0x4420_2128]);
        assert_eq!(
            REAL_IRQ.lines().filter(|l| l.starts_with("Trace")).count(),
            pcs.len() + 1
        );
    }

    #[test]
    fn real_log_lines_parse() {
        assert_eq!(
            parse_line(REAL.lines().nth(7).unwrap()),
            Some(Line::Entered(Entered {
                cpu: 1,
                pc: 0x4420_10d4,
                flags: 0x121
            }))
        );
        assert_eq!(
            parse_line(REAL.lines().nth(3).unwrap()),
            Some(Line::Stopped(0x4420_002c))
        );
        assert_eq!(parse_line(""), None);
        assert_eq!(
            parse_line("Linking TBs 0x1 [0000000044200000] index 0 -> 0x2"),
            None
        );
        assert_eq!(
            parse_line("cpu_io_recompile: rewound execution of TB to 0000000044200010"),
            Some(Line::Rewound(0x4420_0010))
        );
    }

    #[test]
    fn a_stopped_block_is_dropped_and_cores_are_separated() {
        assert_eq!(
            executed_pcs(REAL, 0),
            [
                0x4420_0024,
                0x4420_0028,
                0x4420_002c,
                0x4420_0030,
                0x4420_c7a8,
                0x4420_c7ac
            ]
        );
        assert_eq!(executed_pcs(REAL, 1), [0x4420_10d4, 0x4420_10d8]);
        assert!(executed_pcs(REAL, 2).is_empty());
        assert_eq!(executed(REAL).unwrap().len(), 8);
    }

    #[test]
    fn a_cancelling_line_that_names_another_block_is_refused() {
        let bad = REAL.replace(
            "before 0x7f7324298c40 [000000004420002c]",
            "before 0x1 [0000000044200028]",
        );
        assert!(executed(&bad).is_err());
        let orphan = "Stopped execution of TB chain before 0x1 [0000000044200028] \n";
        assert!(executed(orphan).is_err());
    }

    /// From a real run (QEMU 7.2, `test=insntrace` under a hypervisor that
    /// single-steps the guest with MDCR_EL2.TDE and MDSCR_EL1.SS): flags
    /// 0x27 are A64 + SS_ACTIVE + PSTATE.SS (one instruction, then the step
    /// exception); after the SVC at 0x442020e0 and the IRQ taken after
    /// 0x44202114, the first block at the vector (0x44201a00, 0x44201a80)
    /// has flags 0x23 (step active-pending): it only raises the step
    /// exception, and the vector's first instruction runs in the next block.
    const REAL_STEPPED: &str = "\
Trace 0: 0x7f3eb84d5880 [0000000000104004/00000000442020dc/00000027/ff000201] 
Trace 0: 0x7f3eb84d59c0 [0000000000104004/00000000442020e0/00000027/ff000201] 
Trace 0: 0x7f3eb84d5b00 [0000000000104004/0000000044201a00/00000023/ff000201] 
Trace 0: 0x7f3eb84ddbc0 [0000000000104004/0000000044201a00/00000027/ff000201] 
Trace 0: 0x7f3eb84ddd40 [0000000000104004/0000000044201a04/00000027/ff000201] 
Trace 0: 0x7f3eb84dde80 [0000000000104004/0000000044201a08/00000027/ff000201] 
Trace 0: 0x7f3eb84e8780 [0000000000104004/0000000044202110/00000027/ff000201] 
Trace 0: 0x7f3eb84e8900 [0000000000104004/0000000044202114/00000027/ff000201] 
Trace 0: 0x7f3eb84fd700 [0000000000104004/0000000044201a80/00000023/ff000201] 
Trace 0: 0x7f3eb84fe480 [0000000000104004/0000000044201a80/00000027/ff000201] 
Trace 0: 0x7f3eb84fe600 [0000000000104004/0000000044201a84/00000027/ff000201] 
";

    #[test]
    fn a_step_pending_block_runs_nothing() {
        assert_eq!(
            executed_pcs(REAL_STEPPED, 0),
            [
                0x4420_20dc,
                0x4420_20e0,
                0x4420_1a00,
                0x4420_1a04,
                0x4420_1a08,
                0x4420_2110,
                0x4420_2114,
                0x4420_1a80,
                0x4420_1a84
            ]
        );
        // A pending step cancelled before it raised anything is still
        // one block: the Stopped line names it, nothing else is dropped.
        let stopped = "\
Trace 0: 0x1 [0000000000104004/0000000044201a00/00000023/ff000201] 
Stopped execution of TB chain before 0x1 [0000000044201a00] 
Trace 0: 0x1 [0000000000104004/0000000044201a00/00000023/ff000201] 
Trace 0: 0x2 [0000000000104004/0000000044201a00/00000027/ff000201] 
";
        assert_eq!(executed_pcs(stopped, 0), [0x4420_1a00]);
    }

    /// A minimal ELF64 with `.text` (executable), `.data`, `.symtab` and
    /// `.strtab`, built by hand.
    fn tiny_elf() -> Vec<u8> {
        let strtab = b"\0f_one\0f_two\0$x\0data_obj\0label\0";
        let name = |s: &str| {
            let n = strtab
                .windows(s.len() + 1)
                .position(|w| &w[..s.len()] == s.as_bytes() && w[s.len()] == 0);
            n.unwrap() as u32
        };
        // (name, info, shndx, value, size)
        let syms: [(u32, u8, u16, u64, u64); 5] = [
            (name("f_one"), 0x12, 1, 0x4420_0000, 0x10),
            (name("f_two"), 0x02, 1, 0x4420_0010, 0x20),
            (name("$x"), 0x00, 1, 0x4420_0000, 0),
            (name("data_obj"), 0x01, 2, 0x4430_0000, 8),
            (name("label"), 0x00, 1, 0x4420_0018, 0),
        ];
        let mut symtab = vec![0u8; 24];
        for (n, info, shndx, value, size) in syms {
            symtab.extend(n.to_le_bytes());
            symtab.push(info);
            symtab.push(0);
            symtab.extend(shndx.to_le_bytes());
            symtab.extend(value.to_le_bytes());
            symtab.extend(size.to_le_bytes());
        }
        let sym_off = 64u64;
        let str_off = sym_off + symtab.len() as u64;
        let sh_off = (str_off + strtab.len() as u64).next_multiple_of(8);
        let mut b = vec![0u8; 64];
        b[..6].copy_from_slice(b"\x7fELF\x02\x01");
        b[0x28..0x30].copy_from_slice(&sh_off.to_le_bytes());
        b[0x3a..0x3c].copy_from_slice(&64u16.to_le_bytes());
        b[0x3c..0x3e].copy_from_slice(&5u16.to_le_bytes());
        b.extend(&symtab);
        b.extend(strtab);
        b.resize(sh_off as usize, 0);
        // (type, flags, offset, size, link, entsize)
        let sections: [(u32, u64, u64, u64, u32, u64); 5] = [
            (0, 0, 0, 0, 0, 0),
            (1, 6, 0, 0x30, 0, 0),
            (1, 3, 0, 8, 0, 0),
            (2, 0, sym_off, symtab.len() as u64, 4, 24),
            (3, 0, str_off, strtab.len() as u64, 0, 0),
        ];
        for (kind, flags, off, size, link, entsize) in sections {
            let mut sh = [0u8; 64];
            sh[4..8].copy_from_slice(&kind.to_le_bytes());
            sh[8..16].copy_from_slice(&flags.to_le_bytes());
            sh[0x18..0x20].copy_from_slice(&off.to_le_bytes());
            sh[0x20..0x28].copy_from_slice(&size.to_le_bytes());
            sh[0x28..0x2c].copy_from_slice(&link.to_le_bytes());
            sh[0x38..0x40].copy_from_slice(&entsize.to_le_bytes());
            b.extend(sh);
        }
        b
    }

    #[test]
    fn elf_code_symbols_name_addresses() {
        let s = Symbols::parse(&tiny_elf()).unwrap();
        assert_eq!(
            s.get("f_two"),
            Some(&Symbol {
                name: "f_two".into(),
                start: 0x4420_0010,
                end: 0x4420_0030
            })
        );
        assert!(s.get("data_obj").is_none(), "data is not code");
        assert!(s.get("$x").is_none(), "mapping symbols are skipped");
        assert_eq!(s.describe(0x4420_0004), "0x44200004 <f_one+0x4>");
        assert_eq!(s.describe(0x4420_0010), "0x44200010 <f_two>");
        // The innermost: a label inside f_two.
        assert_eq!(s.describe(0x4420_0018), "0x44200018 <label>");
        assert_eq!(s.describe(0x4420_001c), "0x4420001c <label+0x4>");
        assert_eq!(s.describe(0x4420_002c), "0x4420002c <label+0x14>");
        assert_eq!(s.describe(0x4420_0040), "0x44200040");
        // A label without a size reaches the next symbol.
        let labels = Symbols::from_list(vec![
            Symbol {
                name: "outer".into(),
                start: 0x100,
                end: 0x200,
            },
            Symbol {
                name: "inner".into(),
                start: 0x140,
                end: 0x140,
            },
            Symbol {
                name: "next".into(),
                start: 0x150,
                end: 0x150,
            },
        ]);
        assert_eq!(labels.describe(0x148), "0x148 <inner+0x8>");
        assert_eq!(labels.describe(0x154), "0x154 <next+0x4>");
        assert_eq!(labels.describe(0x1fc), "0x1fc <next+0xac>");
        assert_eq!(labels.describe(0x138), "0x138 <outer+0x38>");
        assert_eq!(labels.describe(0x200), "0x200");
        assert!(Symbols::parse(b"\x7fELF\x01\x01").is_err());
        assert!(Symbols::parse(&tiny_elf()[..100]).is_err());
    }
}
