//! Reading flattened device trees (DTBs): the machine description QEMU hands
//! the hypervisor in x0, and the guest's own DTB that the hypervisor checks
//! before it starts the guest.
//!
//! Every blob goes through two stages. First [`sanitize`] walks the header,
//! the memory reservation block, the structure block and the strings block,
//! checks every bound and every structural rule the `fdt` crate silently
//! relies on, and rebuilds the blob into a caller-provided scratch buffer
//! without `FDT_NOP` tokens (libfdt leaves them behind when QEMU edits a
//! user-supplied DTB, and `fdt` 0.1.5 then fails to find `/cpus` and
//! `/chosen`). Only that clean copy is handed to `fdt::Fdt`, and only through
//! the calls that cannot panic on a structurally valid blob: `all_nodes`,
//! `children` and `properties`. Property values (`reg`, `#address-cells`,
//! strings) are decoded here with bounds checks, never by the crate.
//!
//! Nothing here allocates or panics, whatever the input bytes.

use core::fmt;

use fdt::node::FdtNode;
use fdt::Fdt;

/// Most CPUs a [`Platform`] or [`GuestLayout`] describes.
pub const MAX_CPUS: usize = 8;
/// Most memory ranges a [`Platform`] or [`GuestLayout`] describes.
pub const MAX_MEMORY_RANGES: usize = 8;
/// Longest `/chosen` `bootargs` accepted, in bytes, without the NUL.
pub const MAX_BOOTARGS: usize = 256;
/// Largest header `totalsize` accepted. QEMU's own DTB declares 1 MiB, and
/// when it edits a DTB given with `-dtb` it grows it to twice the file size
/// plus some slack (about 2 MiB for a dumped QEMU DTB), so the limit leaves
/// room for that while still refusing absurd sizes before the caller builds
/// a slice over memory it has not checked.
pub const MAX_TOTAL_SIZE: usize = 16 << 20;
/// Deepest node nesting accepted; the root node is at depth 1.
pub const MAX_DEPTH: usize = 16;
/// The affinity fields of MPIDR_EL1 (Aff3 in bits 39:32, Aff2..Aff0 in bits
/// 23:0). The Arm CPU binding puts exactly these bits in a cpu node's `reg`.
pub const MPIDR_AFFINITY_MASK: u64 = 0xff_00ff_ffff;

const FDT_MAGIC: u32 = 0xd00d_feed;
const FDT_BEGIN_NODE: u32 = 0x1;
const FDT_END_NODE: u32 = 0x2;
const FDT_PROP: u32 = 0x3;
const FDT_NOP: u32 = 0x4;
const FDT_END: u32 = 0x9;

/// Header length up to and including `size_dt_strings` (version 16).
const HEADER_V16_LEN: usize = 36;
/// Header length including `size_dt_struct` (version 17).
const HEADER_V17_LEN: usize = 40;
/// One memory reservation entry: a 64-bit address and a 64-bit size.
const RSV_ENTRY_LEN: usize = 16;

/// `compatible` strings of a PSCI node, newest first.
const PSCI_COMPATIBLE: [&str; 3] = ["arm,psci-1.0", "arm,psci-0.2", "arm,psci"];

/// A physical address range `[base, base + size)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Range {
    /// First address of the range.
    pub base: u64,
    /// Length in bytes.
    pub size: u64,
}

impl Range {
    /// The range `[base, base + size)`.
    pub const fn new(base: u64, size: u64) -> Self {
        Self { base, size }
    }

    /// One past the last address, saturating at `u64::MAX`.
    pub const fn end(&self) -> u64 {
        self.base.saturating_add(self.size)
    }

    /// Whether `addr` lies inside the range.
    pub fn contains(&self, addr: u64) -> bool {
        addr >= self.base && addr < self.end()
    }

    /// Whether all of `other` lies inside this range.
    pub fn contains_range(&self, other: &Range) -> bool {
        other.base >= self.base && other.end() <= self.end()
    }

    /// Whether the two ranges share at least one address; empty ranges
    /// overlap nothing.
    pub fn overlaps(&self, other: &Range) -> bool {
        self.size != 0 && other.size != 0 && self.base < other.end() && other.base < self.end()
    }
}

impl fmt::Display for Range {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[{:#x}, {:#x})", self.base, self.end())
    }
}

/// How PSCI calls reach the firmware (the PSCI node's `method` property).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PsciMethod {
    /// `SMC #0`, handled at EL3.
    Smc,
    /// `HVC #0`, handled at EL2.
    Hvc,
}

/// What the hypervisor needs to know about the machine, read from its DTB.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Platform {
    /// RAM from every `device_type = "memory"` node, sorted by base, empty
    /// ranges left out; only the first `memory_count` entries are valid.
    pub memory: [Range; MAX_MEMORY_RANGES],
    /// Number of valid entries in `memory`.
    pub memory_count: usize,
    /// MPIDR affinity values of the `/cpus` cpu nodes, in tree order; only
    /// the first `cpu_count` entries are valid.
    pub cpus: [u64; MAX_CPUS],
    /// Number of valid entries in `cpus`.
    pub cpu_count: usize,
    /// GICv3 distributor (`reg` entry 0 of the `arm,gic-v3` node).
    pub gicd: Range,
    /// First GICv3 redistributor region (`reg` entry 1).
    pub gicr: Range,
    /// PSCI conduit.
    pub psci: PsciMethod,
    /// PL011 registers: the `/chosen` `stdout-path` node if it is a PL011,
    /// else the first enabled PL011.
    pub uart: Range,
    /// `/chosen` `bootargs` without the NUL; only the first `bootargs_len`
    /// bytes are valid.
    pub bootargs: [u8; MAX_BOOTARGS],
    /// Number of valid bytes in `bootargs`.
    pub bootargs_len: usize,
    /// `/chosen` `linux,initrd-start` .. `linux,initrd-end`, if both are
    /// present and the range is not empty.
    pub initrd: Option<Range>,
}

impl Platform {
    /// The RAM ranges, sorted by base.
    pub fn memory(&self) -> &[Range] {
        prefix(&self.memory, self.memory_count)
    }

    /// The CPUs' MPIDR affinity values, in tree order.
    pub fn cpus(&self) -> &[u64] {
        prefix(&self.cpus, self.cpu_count)
    }

    /// The kernel command line, or `""` if it is not UTF-8.
    pub fn bootargs(&self) -> &str {
        core::str::from_utf8(prefix(&self.bootargs, self.bootargs_len)).unwrap_or("")
    }

    /// Index in [`Platform::cpus`] of the CPU whose MPIDR is `mpidr`; only
    /// the affinity fields are compared, so a raw MPIDR_EL1 value works.
    pub fn cpu_index(&self, mpidr: u64) -> Option<usize> {
        cpu_position(self.cpus(), mpidr)
    }
}

/// The parts of a guest DTB the hypervisor checks: its RAM and its CPUs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GuestLayout {
    /// Guest RAM, sorted by base; only the first `memory_count` are valid.
    pub memory: [Range; MAX_MEMORY_RANGES],
    /// Number of valid entries in `memory`.
    pub memory_count: usize,
    /// MPIDR affinity values of the guest's CPUs, in tree order; only the
    /// first `cpu_count` are valid.
    pub cpus: [u64; MAX_CPUS],
    /// Number of valid entries in `cpus`.
    pub cpu_count: usize,
}

impl GuestLayout {
    /// The guest RAM ranges, sorted by base.
    pub fn memory(&self) -> &[Range] {
        prefix(&self.memory, self.memory_count)
    }

    /// The guest CPUs' MPIDR affinity values, in tree order.
    pub fn cpus(&self) -> &[u64] {
        prefix(&self.cpus, self.cpu_count)
    }

    /// Whether `r` lies entirely inside one guest RAM range.
    pub fn contains(&self, r: &Range) -> bool {
        self.memory().iter().any(|m| m.contains_range(r))
    }
}

/// Why a DTB was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DtbError {
    /// No blob at all (null pointer or zero length).
    NotFound,
    /// The header magic is not 0xd00dfeed.
    BadMagic(u32),
    /// The format version cannot be read by a version 17 reader.
    BadVersion {
        /// Header `version`.
        version: u32,
        /// Header `last_comp_version`.
        last_compatible: u32,
    },
    /// The blob is shorter than its header says.
    Truncated {
        /// Bytes the header needs.
        needed: usize,
        /// Bytes actually given.
        available: usize,
    },
    /// The header's `totalsize` is above [`MAX_TOTAL_SIZE`].
    TotalSizeTooLarge {
        /// Header `totalsize`.
        size: usize,
        /// [`MAX_TOTAL_SIZE`].
        limit: usize,
    },
    /// The blob breaks a structural rule of the devicetree format.
    Malformed(&'static str),
    /// The rebuilt blob does not fit in the scratch buffer.
    TooLarge {
        /// Bytes the rebuilt blob needs.
        size: usize,
        /// Bytes of scratch given.
        scratch: usize,
    },
    /// No memory node with a non-empty `reg`.
    NoMemory,
    /// More memory ranges than [`MAX_MEMORY_RANGES`] (the count found).
    TooManyMemoryRanges(usize),
    /// A memory range overlaps another one.
    OverlappingMemory(Range),
    /// `/cpus` is missing or holds no cpu node.
    NoCpus,
    /// More cpu nodes than [`MAX_CPUS`] (the count found).
    TooManyCpus(usize),
    /// Two cpu nodes have the same MPIDR.
    DuplicateCpu(u64),
    /// No enabled `arm,gic-v3` node.
    NoGicV3,
    /// No PSCI node.
    NoPsci,
    /// The PSCI `method` is missing or neither `smc` nor `hvc`.
    BadPsciMethod,
    /// No enabled `arm,pl011` node.
    NoUart,
    /// A property needed for the named node is malformed or uses a layout
    /// this module does not support (e.g. more than two address cells).
    BadProperty {
        /// The node's role, e.g. `"memory"` or `"GICv3"`.
        node: &'static str,
        /// The property, e.g. `"reg"` or `"#address-cells"`.
        property: &'static str,
    },
    /// `/chosen` `bootargs` is longer than [`MAX_BOOTARGS`] (its length).
    BootargsTooLong(usize),
    /// A guest memory range is not inside the machine's RAM.
    GuestMemoryOutsideRam(Range),
    /// A guest memory range overlaps the hypervisor's own memory.
    GuestMemoryOverlapsHypervisor(Range),
    /// A guest cpu's MPIDR is not one of the machine's CPUs.
    GuestCpuUnknown(u64),
}

impl fmt::Display for DtbError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::NotFound => write!(
                f,
                "device tree: none was provided (null pointer or empty blob)"
            ),
            Self::BadMagic(magic) => {
                write!(
                    f,
                    "device tree: bad magic {magic:#010x}, expected 0xd00dfeed"
                )
            }
            Self::BadVersion {
                version,
                last_compatible,
            } => write!(
                f,
                "device tree: unsupported format version {version} (last compatible \
                 {last_compatible}); versions 16 and 17 are supported"
            ),
            Self::Truncated { needed, available } => write!(
                f,
                "device tree: blob is truncated: {needed} bytes needed, {available} available"
            ),
            Self::TotalSizeTooLarge { size, limit } => write!(
                f,
                "device tree: header totalsize of {size} bytes is above the {limit}-byte limit"
            ),
            Self::Malformed(what) => write!(f, "device tree: malformed: {what}"),
            Self::TooLarge { size, scratch } => write!(
                f,
                "device tree: needs {size} bytes of scratch space but only {scratch} are reserved"
            ),
            Self::NoMemory => write!(f, "device tree: no memory node with a non-empty reg"),
            Self::TooManyMemoryRanges(n) => write!(
                f,
                "device tree: {n} memory ranges, more than the {MAX_MEMORY_RANGES} supported"
            ),
            Self::OverlappingMemory(r) => {
                write!(
                    f,
                    "device tree: memory range {r} overlaps another memory range"
                )
            }
            Self::NoCpus => write!(f, "device tree: /cpus is missing or has no cpu node"),
            Self::TooManyCpus(n) => {
                write!(
                    f,
                    "device tree: {n} cpu nodes, more than the {MAX_CPUS} supported"
                )
            }
            Self::DuplicateCpu(mpidr) => {
                write!(f, "device tree: two cpu nodes have the MPIDR {mpidr:#x}")
            }
            Self::NoGicV3 => {
                write!(
                    f,
                    "device tree: no enabled \"arm,gic-v3\" interrupt controller node"
                )
            }
            Self::NoPsci => write!(
                f,
                "device tree: no PSCI node (compatible \"arm,psci-1.0\", \"arm,psci-0.2\" or \
                 \"arm,psci\")"
            ),
            Self::BadPsciMethod => write!(
                f,
                "device tree: the PSCI method is missing or is neither \"smc\" nor \"hvc\""
            ),
            Self::NoUart => write!(f, "device tree: no enabled \"arm,pl011\" UART node"),
            Self::BadProperty { node, property } => write!(
                f,
                "device tree: malformed or unsupported {property} property for the {node} node"
            ),
            Self::BootargsTooLong(n) => write!(
                f,
                "device tree: /chosen bootargs is {n} bytes, more than the {MAX_BOOTARGS} supported"
            ),
            Self::GuestMemoryOutsideRam(r) => write!(
                f,
                "guest device tree: memory range {r} is not inside the machine's RAM"
            ),
            Self::GuestMemoryOverlapsHypervisor(r) => write!(
                f,
                "guest device tree: memory range {r} overlaps the hypervisor's own memory"
            ),
            Self::GuestCpuUnknown(mpidr) => write!(
                f,
                "guest device tree: cpu MPIDR {mpidr:#x} is not a CPU of this machine"
            ),
        }
    }
}

/// Reads the header's `totalsize` after checking the magic, so the caller
/// can turn the raw x0 pointer into a slice of the right length. Only the
/// first 8 bytes of `header` are read.
pub fn total_size(header: &[u8]) -> Result<usize, DtbError> {
    if header.is_empty() {
        return Err(DtbError::NotFound);
    }
    let truncated = DtbError::Truncated {
        needed: 8,
        available: header.len(),
    };
    let magic = be32(header, 0).ok_or(truncated)?;
    if magic != FDT_MAGIC {
        return Err(DtbError::BadMagic(magic));
    }
    let size = be32(header, 4).ok_or(truncated)? as usize;
    if size < HEADER_V16_LEN {
        return Err(DtbError::Malformed("totalsize is smaller than the header"));
    }
    if size > MAX_TOTAL_SIZE {
        return Err(DtbError::TotalSizeTooLarge {
            size,
            limit: MAX_TOTAL_SIZE,
        });
    }
    Ok(size)
}

/// Parses the hypervisor's own DTB. The blob is validated and rebuilt
/// without NOPs into `scratch` (which needs room for the blob minus its
/// free space; about 9 KiB for QEMU virt), then read. `blob` may be longer
/// than the header's `totalsize`; the excess is ignored.
pub fn parse(blob: &[u8], scratch: &mut [u8]) -> Result<Platform, DtbError> {
    let len = sanitize(blob, scratch)?;
    let clean = scratch
        .get(..len)
        .ok_or(DtbError::Malformed("rebuilt blob is out of bounds"))?;
    let fdt = Fdt::new(clean).map_err(|_| DtbError::Malformed("rebuilt blob was refused"))?;
    let root = fdt
        .all_nodes()
        .next()
        .ok_or(DtbError::Malformed("there is no root node"))?;

    let scan = scan(root, true)?;
    let (memory, memory_count) = scan.memory()?;
    let (cpus, cpu_count) = scan.cpus()?;
    let (gicd, gicr) = scan.gic.ok_or(DtbError::NoGicV3)?;
    let psci = scan.psci.ok_or(DtbError::NoPsci)?;
    let first_uart = scan.uart.ok_or(DtbError::NoUart)?;

    let mut bootargs = [0; MAX_BOOTARGS];
    let mut bootargs_len = 0;
    let mut initrd = None;
    let mut uart = first_uart;
    if let Some(chosen) = find_child(root, "chosen") {
        if let Some(args) = string_prop(chosen, "bootargs") {
            let dst = bootargs
                .get_mut(..args.len())
                .ok_or(DtbError::BootargsTooLong(args.len()))?;
            dst.copy_from_slice(args);
            bootargs_len = args.len();
        }
        initrd = chosen_initrd(chosen)?;
        if let Some(stdout) = stdout_uart(root, chosen)? {
            uart = stdout;
        }
    }

    Ok(Platform {
        memory,
        memory_count,
        cpus,
        cpu_count,
        gicd,
        gicr,
        psci,
        uart,
        bootargs,
        bootargs_len,
        initrd,
    })
}

/// Validates the guest's DTB: it must be structurally valid and describe
/// memory and CPUs; every guest memory range must lie inside one range of
/// `ram` (the machine's RAM) and must not overlap `hypervisor` (the
/// hypervisor's own memory); every guest CPU must be one of
/// `physical_cpus`, because vCPUs are pinned 1:1 to physical CPUs by MPIDR.
/// GIC, PSCI and UART nodes are not looked at.
pub fn validate_guest(
    blob: &[u8],
    scratch: &mut [u8],
    ram: &[Range],
    hypervisor: Range,
    physical_cpus: &[u64],
) -> Result<GuestLayout, DtbError> {
    let len = sanitize(blob, scratch)?;
    let clean = scratch
        .get(..len)
        .ok_or(DtbError::Malformed("rebuilt blob is out of bounds"))?;
    let fdt = Fdt::new(clean).map_err(|_| DtbError::Malformed("rebuilt blob was refused"))?;
    let root = fdt
        .all_nodes()
        .next()
        .ok_or(DtbError::Malformed("there is no root node"))?;

    let scan = scan(root, false)?;
    let (memory, memory_count) = scan.memory()?;
    let (cpus, cpu_count) = scan.cpus()?;
    let layout = GuestLayout {
        memory,
        memory_count,
        cpus,
        cpu_count,
    };

    for r in layout.memory() {
        if !ram.iter().any(|m| m.contains_range(r)) {
            return Err(DtbError::GuestMemoryOutsideRam(*r));
        }
        if r.overlaps(&hypervisor) {
            return Err(DtbError::GuestMemoryOverlapsHypervisor(*r));
        }
    }
    for &mpidr in layout.cpus() {
        if cpu_position(physical_cpus, mpidr).is_none() {
            return Err(DtbError::GuestCpuUnknown(mpidr));
        }
    }
    Ok(layout)
}

fn prefix<T>(all: &[T], count: usize) -> &[T] {
    all.get(..count).unwrap_or(all)
}

fn cpu_position(cpus: &[u64], mpidr: u64) -> Option<usize> {
    let wanted = mpidr & MPIDR_AFFINITY_MASK;
    cpus.iter().position(|&c| c & MPIDR_AFFINITY_MASK == wanted)
}

fn be32(bytes: &[u8], at: usize) -> Option<u32> {
    let word: &[u8; 4] = bytes.get(at..)?.first_chunk()?;
    Some(u32::from_be_bytes(*word))
}

fn be64(bytes: &[u8], at: usize) -> Option<u64> {
    let word: &[u8; 8] = bytes.get(at..)?.first_chunk()?;
    Some(u64::from_be_bytes(*word))
}

/// Rounds up to the next multiple of 4: tokens, node names and property
/// values are all padded to 32-bit alignment in the structure block.
fn align4(n: usize) -> Option<usize> {
    Some(n.checked_add(3)? & !3)
}

/// The output side of [`sanitize`]: appends to the scratch buffer and keeps
/// counting past its end, so a too-small buffer can report the size needed.
struct Out<'s> {
    buf: &'s mut [u8],
    len: usize,
    fits: bool,
}

impl Out<'_> {
    fn push(&mut self, bytes: &[u8]) {
        let Some(end) = self.len.checked_add(bytes.len()) else {
            self.fits = false;
            self.len = usize::MAX;
            return;
        };
        match self.buf.get_mut(self.len..end) {
            Some(dst) => dst.copy_from_slice(bytes),
            None => self.fits = false,
        }
        self.len = end;
    }
}

/// Validates `blob` and rebuilds it into `scratch` as header (version 17),
/// memory reservation block, structure block without NOPs, strings block.
/// Returns the rebuilt length.
fn sanitize(blob: &[u8], scratch: &mut [u8]) -> Result<usize, DtbError> {
    use DtbError::Malformed;

    let total = total_size(blob)?;
    let blob = blob.get(..total).ok_or(DtbError::Truncated {
        needed: total,
        available: blob.len(),
    })?;
    let field = |at: usize| be32(blob, at).map(|v| v as usize);

    let version = be32(blob, 20).ok_or(Malformed("header is cut short"))?;
    let last_compatible = be32(blob, 24).ok_or(Malformed("header is cut short"))?;
    // A version 17 reader can read any blob whose last_comp_version is at
    // most 17; size_dt_struct only exists from version 17 on, and older
    // layouts differ in ways not worth supporting.
    if version < 16 || last_compatible > 17 {
        return Err(DtbError::BadVersion {
            version,
            last_compatible,
        });
    }
    let header_len = if version >= 17 {
        HEADER_V17_LEN
    } else {
        HEADER_V16_LEN
    };
    if total < header_len {
        return Err(Malformed("totalsize is smaller than the header"));
    }
    let short = Malformed("header is cut short");
    let off_struct = field(8).ok_or(short)?;
    let off_strings = field(12).ok_or(short)?;
    let off_rsv = field(16).ok_or(short)?;
    let boot_cpuid = be32(blob, 28).ok_or(short)?;
    let size_strings = field(32).ok_or(short)?;
    let size_struct = if version >= 17 {
        Some(field(36).ok_or(short)?)
    } else {
        None
    };

    // Memory reservation block: 8-byte aligned, a list of (address, size)
    // pairs ended by an all-zero pair.
    if off_rsv % 8 != 0 {
        return Err(Malformed(
            "the memory reservation block is not 8-byte aligned",
        ));
    }
    if off_rsv < header_len {
        return Err(Malformed(
            "the memory reservation block overlaps the header",
        ));
    }
    let mut rsv_len = 0usize;
    loop {
        let at = off_rsv
            .checked_add(rsv_len)
            .ok_or(Malformed("reservation offset overflows"))?;
        let (Some(addr), Some(size)) = (be64(blob, at), be64(blob, at.saturating_add(8))) else {
            return Err(Malformed(
                "the memory reservation block has no terminating entry",
            ));
        };
        rsv_len += RSV_ENTRY_LEN;
        if addr == 0 && size == 0 {
            break;
        }
    }
    let rsv = blob
        .get(off_rsv..off_rsv.saturating_add(rsv_len))
        .ok_or(Malformed(
            "the memory reservation block runs past totalsize",
        ))?;

    // Structure block: tokens are 32-bit aligned.
    if off_struct % 4 != 0 {
        return Err(Malformed("the structure block is not 4-byte aligned"));
    }
    if off_struct < header_len {
        return Err(Malformed("the structure block overlaps the header"));
    }
    let struct_src = match size_struct {
        Some(size) => {
            if size % 4 != 0 {
                return Err(Malformed("the structure block size is not a multiple of 4"));
            }
            off_struct
                .checked_add(size)
                .and_then(|end| blob.get(off_struct..end))
        }
        // Version 16 has no size_dt_struct: the block ends at FDT_END.
        None => blob.get(off_struct..),
    }
    .ok_or(Malformed("the structure block runs past totalsize"))?;

    if off_strings < header_len {
        return Err(Malformed("the strings block overlaps the header"));
    }
    let strings = off_strings
        .checked_add(size_strings)
        .and_then(|end| blob.get(off_strings..end))
        .ok_or(Malformed("the strings block runs past totalsize"))?;

    let scratch_len = scratch.len();
    let mut out = Out {
        buf: scratch,
        len: 0,
        fits: true,
    };
    out.push(&[0; HEADER_V17_LEN]);
    out.push(rsv);
    let out_struct = out.len;
    let struct_used = copy_structure(struct_src, strings, &mut out)?;
    if size_struct.is_some_and(|size| size != struct_used) {
        return Err(Malformed("data follows FDT_END in the structure block"));
    }
    let out_strings = out.len;
    out.push(strings);
    let out_total = out.len;

    // The three blocks must not share bytes, or a later edit of one (by
    // libfdt, say) would corrupt another.
    let blocks = [
        (off_rsv, rsv_len),
        (off_struct, struct_used),
        (off_strings, size_strings),
    ];
    for (i, a) in blocks.iter().enumerate() {
        for b in blocks.iter().skip(i + 1) {
            if Range::new(a.0 as u64, a.1 as u64).overlaps(&Range::new(b.0 as u64, b.1 as u64)) {
                return Err(Malformed("two blocks of the blob overlap"));
            }
        }
    }

    if !out.fits {
        return Err(DtbError::TooLarge {
            size: out_total,
            scratch: scratch_len,
        });
    }
    let header_fields = [
        FDT_MAGIC as usize,
        out_total,
        out_struct,
        out_strings,
        HEADER_V17_LEN,
        17,
        16,
        boot_cpuid as usize,
        size_strings,
        out_strings - out_struct,
    ];
    let header = out
        .buf
        .get_mut(..HEADER_V17_LEN)
        .ok_or(Malformed("scratch is too small"))?;
    for (slot, value) in header.chunks_exact_mut(4).zip(header_fields) {
        let value = u32::try_from(value).map_err(|_| Malformed("rebuilt blob is too large"))?;
        slot.copy_from_slice(&value.to_be_bytes());
    }
    Ok(out_total)
}

/// Walks the structure block token by token, enforcing what the format
/// requires and what the `fdt` crate assumes (it panics otherwise), and
/// copies every token except `FDT_NOP` to `out`. Returns the number of
/// source bytes up to and including `FDT_END`.
fn copy_structure(src: &[u8], strings: &[u8], out: &mut Out<'_>) -> Result<usize, DtbError> {
    use DtbError::Malformed;

    let mut pos = 0usize;
    let mut depth = 0usize;
    let mut root_closed = false;
    // Within a node all properties precede the first child node.
    let mut props_allowed = false;
    loop {
        let token = be32(src, pos).ok_or(Malformed("the structure block ends without FDT_END"))?;
        let end = match token {
            FDT_NOP => {
                pos += 4;
                continue;
            }
            FDT_BEGIN_NODE => {
                if root_closed {
                    return Err(Malformed("there is more than one root node"));
                }
                let name_at = pos + 4;
                let rest = src.get(name_at..).unwrap_or_default();
                let name_len = rest
                    .iter()
                    .position(|&b| b == 0)
                    .ok_or(Malformed("a node name is not NUL-terminated"))?;
                let name = rest.get(..name_len).unwrap_or_default();
                if depth == 0 {
                    if !name.is_empty() {
                        return Err(Malformed("the root node has a name"));
                    }
                } else if !valid_node_name(name) {
                    return Err(Malformed("a node name is empty or has invalid characters"));
                }
                depth += 1;
                if depth > MAX_DEPTH {
                    return Err(Malformed("nodes are nested more than 16 levels deep"));
                }
                props_allowed = true;
                align4(name_at + name_len + 1)
            }
            FDT_PROP => {
                if depth == 0 {
                    return Err(Malformed("a property lies outside every node"));
                }
                if !props_allowed {
                    return Err(Malformed("a property follows a child node"));
                }
                let (Some(len), Some(name_off)) = (be32(src, pos + 4), be32(src, pos + 8)) else {
                    return Err(Malformed("a property header runs past the structure block"));
                };
                check_property_name(strings, name_off as usize)?;
                (pos + 12).checked_add(len as usize).and_then(align4)
            }
            FDT_END_NODE => {
                if depth == 0 {
                    return Err(Malformed("FDT_END_NODE has no matching FDT_BEGIN_NODE"));
                }
                depth -= 1;
                props_allowed = false;
                root_closed = depth == 0;
                Some(pos + 4)
            }
            FDT_END => {
                if !root_closed {
                    return Err(Malformed("FDT_END comes before the root node is closed"));
                }
                out.push(&FDT_END.to_be_bytes());
                return Ok(pos + 4);
            }
            _ => return Err(Malformed("the structure block holds an unknown token")),
        };
        let chunk = end.and_then(|end| src.get(pos..end)).ok_or(Malformed(
            "a node name or property value runs past the structure block",
        ))?;
        out.push(chunk);
        pos += chunk.len();
    }
}

/// Node names are `name[@unit-address]` from a small printable set
/// (devicetree spec 2.2.1); `/` would break path lookups.
fn valid_node_name(name: &[u8]) -> bool {
    !name.is_empty() && name.iter().all(|&b| b.is_ascii_graphic() && b != b'/')
}

fn check_property_name(strings: &[u8], offset: usize) -> Result<(), DtbError> {
    use DtbError::Malformed;
    if offset >= strings.len() {
        return Err(Malformed(
            "a property name offset lies outside the strings block",
        ));
    }
    let rest = strings.get(offset..).unwrap_or_default();
    let len = rest.iter().position(|&b| b == 0).ok_or(Malformed(
        "a property name is not NUL-terminated in the strings block",
    ))?;
    let name = rest.get(..len).unwrap_or_default();
    // Property names are printable (devicetree spec 2.2.4); the `fdt`
    // crate panics on names that are not UTF-8.
    if name.is_empty() || !name.iter().all(u8::is_ascii_graphic) {
        return Err(Malformed(
            "a property name is empty or has invalid characters",
        ));
    }
    Ok(())
}

/// The properties this module reads from a node, first occurrence of each.
#[derive(Clone, Copy, Default)]
struct Props<'a> {
    device_type: Option<&'a [u8]>,
    compatible: Option<&'a [u8]>,
    status: Option<&'a [u8]>,
    reg: Option<&'a [u8]>,
    method: Option<&'a [u8]>,
    address_cells: Option<&'a [u8]>,
    size_cells: Option<&'a [u8]>,
    ranges: Option<&'a [u8]>,
}

impl<'a> Props<'a> {
    fn of(node: FdtNode<'_, 'a>) -> Self {
        let mut props = Self::default();
        for p in node.properties() {
            let slot = match p.name {
                "device_type" => &mut props.device_type,
                "compatible" => &mut props.compatible,
                "status" => &mut props.status,
                "reg" => &mut props.reg,
                "method" => &mut props.method,
                "#address-cells" => &mut props.address_cells,
                "#size-cells" => &mut props.size_cells,
                "ranges" => &mut props.ranges,
                _ => continue,
            };
            slot.get_or_insert(p.value);
        }
        props
    }

    fn device_type_is(&self, ty: &str) -> bool {
        self.device_type.map(str_bytes) == Some(ty.as_bytes())
    }

    fn compatible_with(&self, wanted: &[&str]) -> bool {
        self.compatible.is_some_and(|list| {
            list.split(|&b| b == 0)
                .any(|c| wanted.iter().any(|w| w.as_bytes() == c))
        })
    }

    /// The spec's `status`: absent, "okay" or (historically) "ok" mean the
    /// device is usable.
    fn enabled(&self) -> bool {
        self.status
            .is_none_or(|s| matches!(str_bytes(s), b"okay" | b"ok"))
    }
}

/// What a node tells its children about addresses: how many cells their
/// `reg` addresses and sizes take and how the node's bus maps into its
/// parent's (`ranges`).
#[derive(Clone, Copy)]
struct Bus<'a> {
    name: &'a str,
    /// `None` when the property is malformed (not exactly one cell).
    address_cells: Option<u32>,
    size_cells: Option<u32>,
    ranges: Option<&'a [u8]>,
}

impl<'a> Bus<'a> {
    /// Cell counts when a node lacks the properties: the spec tells clients
    /// to assume 2 address cells and 1 size cell.
    const DEFAULT: Bus<'static> = Bus {
        name: "",
        address_cells: Some(2),
        size_cells: Some(1),
        ranges: None,
    };

    fn of(node: FdtNode<'_, 'a>, props: &Props<'a>) -> Self {
        let cell = |value: Option<&[u8]>, default: u32| match value {
            None => Some(default),
            Some(v) if v.len() == 4 => be32(v, 0),
            Some(_) => None,
        };
        Bus {
            name: node.name,
            address_cells: cell(props.address_cells, 2),
            size_cells: cell(props.size_cells, 1),
            ranges: props.ranges,
        }
    }

    /// Address cells usable here: 1 or 2, so an address fits in a u64.
    fn address_cells(&self, node: &'static str) -> Result<usize, DtbError> {
        match self.address_cells {
            Some(n @ 1..=2) => Ok(n as usize),
            _ => Err(DtbError::BadProperty {
                node,
                property: "#address-cells",
            }),
        }
    }

    /// Size cells usable here: 0 to 2.
    fn size_cells(&self, node: &'static str) -> Result<usize, DtbError> {
        match self.size_cells {
            Some(n @ 0..=2) => Ok(n as usize),
            _ => Err(DtbError::BadProperty {
                node,
                property: "#size-cells",
            }),
        }
    }
}

/// A string property's bytes up to its NUL (the spec NUL-terminates them).
fn str_bytes(value: &[u8]) -> &[u8] {
    value.split(|&b| b == 0).next().unwrap_or_default()
}

fn string_prop<'a>(node: FdtNode<'_, 'a>, name: &str) -> Option<&'a [u8]> {
    node.property(name).map(|p| str_bytes(p.value))
}

/// A big-endian number of 0, 1 or 2 cells.
fn read_cells(bytes: &[u8], cells: usize) -> Option<u64> {
    match cells {
        0 => Some(0),
        1 => be32(bytes, 0).map(u64::from),
        2 => be64(bytes, 0),
        _ => None,
    }
}

/// Splits a `reg` value into (address, size) entries with the parent's cell
/// counts; a value that is empty or not a whole number of entries is
/// refused.
fn reg_entries<'a>(
    reg: Option<&'a [u8]>,
    parent: &Bus<'_>,
    node: &'static str,
) -> Result<impl Iterator<Item = (u64, u64)> + 'a, DtbError> {
    let bad_reg = DtbError::BadProperty {
        node,
        property: "reg",
    };
    let ac = parent.address_cells(node)?;
    let sc = parent.size_cells(node)?;
    let reg = reg.ok_or(bad_reg)?;
    let entry = (ac + sc) * 4;
    if reg.is_empty() || reg.len() % entry != 0 {
        return Err(bad_reg);
    }
    Ok(reg.chunks_exact(entry).map(move |e| {
        let addr = read_cells(e, ac).unwrap_or_default();
        let size = e
            .get(ac * 4..)
            .and_then(|s| read_cells(s, sc))
            .unwrap_or_default();
        (addr, size)
    }))
}

/// Maps `r` from the address space of the last bus in `ancestors` up to the
/// root's, through each bus's `ranges` (devicetree spec 2.3.8): an empty
/// `ranges` is the identity, a missing one means the bus is not
/// memory-mapped.
fn translate(mut r: Range, ancestors: &[Bus<'_>], node: &'static str) -> Result<Range, DtbError> {
    let bad_ranges = DtbError::BadProperty {
        node,
        property: "ranges",
    };
    for pair in ancestors.windows(2).rev() {
        let [up, bus] = pair else { continue };
        let ranges = bus.ranges.ok_or(bad_ranges)?;
        if ranges.is_empty() {
            continue;
        }
        let cac = bus.address_cells(node)?;
        let pac = up.address_cells(node)?;
        let csc = match bus.size_cells(node)? {
            0 => return Err(bad_ranges),
            n => n,
        };
        let entry = (cac + pac + csc) * 4;
        if ranges.len() % entry != 0 {
            return Err(bad_ranges);
        }
        let mapped = ranges.chunks_exact(entry).find_map(|e| {
            let child = read_cells(e, cac)?;
            let parent = read_cells(e.get(cac * 4..)?, pac)?;
            let len = read_cells(e.get((cac + pac) * 4..)?, csc)?;
            let offset = r.base.checked_sub(child)?;
            (offset <= len && r.size <= len - offset).then(|| parent.checked_add(offset))?
        });
        r.base = mapped.ok_or(bad_ranges)?;
        if r.base.checked_add(r.size).is_none() {
            return Err(bad_ranges);
        }
    }
    Ok(r)
}

/// `reg` entry `index` of a memory-mapped node, translated to a CPU
/// physical address.
fn reg_at(
    props: &Props<'_>,
    ancestors: &[Bus<'_>],
    node: &'static str,
    index: usize,
) -> Result<Range, DtbError> {
    let bad_reg = DtbError::BadProperty {
        node,
        property: "reg",
    };
    let parent = ancestors.last().ok_or(bad_reg)?;
    let (base, size) = reg_entries(props.reg, parent, node)?
        .nth(index)
        .ok_or(bad_reg)?;
    if size == 0 || base.checked_add(size).is_none() {
        return Err(bad_reg);
    }
    translate(Range::new(base, size), ancestors, node)
}

/// What one pass over the tree collects. Counts keep going past the array
/// sizes so the errors can say how many there were.
struct Scan {
    memory: [Range; MAX_MEMORY_RANGES],
    memory_count: usize,
    cpus: [u64; MAX_CPUS],
    cpu_count: usize,
    gic: Option<(Range, Range)>,
    psci: Option<PsciMethod>,
    uart: Option<Range>,
}

impl Scan {
    fn visit(
        &mut self,
        props: &Props<'_>,
        ancestors: &[Bus<'_>],
        platform: bool,
    ) -> Result<(), DtbError> {
        if props.device_type_is("memory") {
            self.add_memory(props, ancestors)?;
        }
        // Only /cpus/<cpu> nodes are CPUs; /cpus/cpu-map and friends are not.
        if props.device_type_is("cpu")
            && ancestors.len() == 2
            && ancestors.last().is_some_and(|b| b.name == "cpus")
        {
            self.add_cpu(props, ancestors)?;
        }
        if !platform {
            return Ok(());
        }
        if self.gic.is_none() && props.enabled() && props.compatible_with(&["arm,gic-v3"]) {
            // GICv3 binding: reg entry 0 is the distributor, entry 1 the first
            // redistributor region.
            self.gic = Some((
                reg_at(props, ancestors, "GICv3", 0)?,
                reg_at(props, ancestors, "GICv3", 1)?,
            ));
        }
        if self.psci.is_none() && props.compatible_with(&PSCI_COMPATIBLE) {
            self.psci = Some(match props.method.map(str_bytes) {
                Some(b"smc") => PsciMethod::Smc,
                Some(b"hvc") => PsciMethod::Hvc,
                _ => return Err(DtbError::BadPsciMethod),
            });
        }
        if self.uart.is_none() && props.enabled() && props.compatible_with(&["arm,pl011"]) {
            self.uart = Some(reg_at(props, ancestors, "PL011", 0)?);
        }
        Ok(())
    }

    fn add_memory(&mut self, props: &Props<'_>, ancestors: &[Bus<'_>]) -> Result<(), DtbError> {
        const NODE: &str = "memory";
        let bad_reg = DtbError::BadProperty {
            node: NODE,
            property: "reg",
        };
        let parent = ancestors.last().ok_or(bad_reg)?;
        for (base, size) in reg_entries(props.reg, parent, NODE)? {
            if size == 0 {
                continue;
            }
            if base.checked_add(size).is_none() {
                return Err(bad_reg);
            }
            let range = translate(Range::new(base, size), ancestors, NODE)?;
            if let Some(slot) = self.memory.get_mut(self.memory_count) {
                *slot = range;
            }
            self.memory_count += 1;
        }
        Ok(())
    }

    fn add_cpu(&mut self, props: &Props<'_>, ancestors: &[Bus<'_>]) -> Result<(), DtbError> {
        const NODE: &str = "cpu";
        let bad_reg = DtbError::BadProperty {
            node: NODE,
            property: "reg",
        };
        let parent = ancestors.last().ok_or(bad_reg)?;
        // A cpu's reg is its MPIDR, not a bus address: no translation. Only
        // the first entry counts (further ones would name SMT threads).
        let (mpidr, _) = reg_entries(props.reg, parent, NODE)?
            .next()
            .ok_or(bad_reg)?;
        if mpidr & !MPIDR_AFFINITY_MASK != 0 {
            return Err(bad_reg);
        }
        if cpu_position(prefix(&self.cpus, self.cpu_count), mpidr).is_some() {
            return Err(DtbError::DuplicateCpu(mpidr));
        }
        if let Some(slot) = self.cpus.get_mut(self.cpu_count) {
            *slot = mpidr;
        }
        self.cpu_count += 1;
        Ok(())
    }

    /// The memory ranges sorted by base, refusing too many or overlapping.
    fn memory(&self) -> Result<([Range; MAX_MEMORY_RANGES], usize), DtbError> {
        match self.memory_count {
            0 => return Err(DtbError::NoMemory),
            n if n > MAX_MEMORY_RANGES => return Err(DtbError::TooManyMemoryRanges(n)),
            _ => {}
        }
        let mut memory = self.memory;
        let sorted = memory.get_mut(..self.memory_count).unwrap_or_default();
        sorted.sort_unstable_by_key(|r| r.base);
        for pair in sorted.windows(2) {
            if let [a, b] = pair {
                if a.overlaps(b) {
                    return Err(DtbError::OverlappingMemory(*b));
                }
            }
        }
        Ok((memory, self.memory_count))
    }

    fn cpus(&self) -> Result<([u64; MAX_CPUS], usize), DtbError> {
        match self.cpu_count {
            0 => Err(DtbError::NoCpus),
            n if n > MAX_CPUS => Err(DtbError::TooManyCpus(n)),
            n => Ok((self.cpus, n)),
        }
    }
}

/// Walks the whole tree under `root` once. `platform` selects whether the
/// GIC, PSCI and UART nodes are looked for as well as memory and CPUs.
fn scan(root: FdtNode<'_, '_>, platform: bool) -> Result<Scan, DtbError> {
    let mut scan = Scan {
        memory: [Range::default(); MAX_MEMORY_RANGES],
        memory_count: 0,
        cpus: [0; MAX_CPUS],
        cpu_count: 0,
        gic: None,
        psci: None,
        uart: None,
    };
    let mut stack = [Bus::DEFAULT; MAX_DEPTH];
    walk(root, &mut stack, 0, &mut |_, props, ancestors| {
        scan.visit(props, ancestors, platform)
    })?;
    Ok(scan)
}

/// Depth-first walk; `stack[..depth]` holds the ancestors of `node`, root
/// first. The depth is bounded by [`MAX_DEPTH`], checked by [`sanitize`]
/// and again here.
fn walk<'b, 'a, F>(
    node: FdtNode<'b, 'a>,
    stack: &mut [Bus<'a>; MAX_DEPTH],
    depth: usize,
    visit: &mut F,
) -> Result<(), DtbError>
where
    F: FnMut(FdtNode<'b, 'a>, &Props<'a>, &[Bus<'a>]) -> Result<(), DtbError>,
{
    let too_deep = DtbError::Malformed("nodes are nested more than 16 levels deep");
    let props = Props::of(node);
    visit(node, &props, stack.get(..depth).ok_or(too_deep)?)?;
    *stack.get_mut(depth).ok_or(too_deep)? = Bus::of(node, &props);
    for child in node.children() {
        walk(child, stack, depth + 1, visit)?;
    }
    Ok(())
}

/// The child called `name`, or `name@<anything>` when `name` has no unit
/// address (how the spec's paths may leave it out).
fn find_child<'b, 'a>(node: FdtNode<'b, 'a>, name: &str) -> Option<FdtNode<'b, 'a>> {
    node.children()
        .find(|c| c.name == name || (!name.contains('@') && c.name.split('@').next() == Some(name)))
}

/// Follows an absolute path from the root, filling `stack` with the
/// ancestors of the node found. Returns the node and its depth.
fn locate<'b, 'a>(
    root: FdtNode<'b, 'a>,
    path: &str,
    stack: &mut [Bus<'a>; MAX_DEPTH],
) -> Option<(FdtNode<'b, 'a>, usize)> {
    let mut node = root;
    let mut depth = 0;
    for part in path.split('/').filter(|p| !p.is_empty()) {
        *stack.get_mut(depth)? = Bus::of(node, &Props::of(node));
        depth += 1;
        node = find_child(node, part)?;
    }
    Some((node, depth))
}

/// The UART named by `/chosen` `stdout-path`, if that is an enabled PL011.
/// The path may be an alias and may carry `:options` (devicetree spec
/// 3.6); an alias is resolved once through `/aliases`, never recursively.
fn stdout_uart(root: FdtNode<'_, '_>, chosen: FdtNode<'_, '_>) -> Result<Option<Range>, DtbError> {
    let Some(value) = string_prop(chosen, "stdout-path") else {
        return Ok(None);
    };
    let value = value.split(|&b| b == b':').next().unwrap_or_default();
    let Ok(mut path) = core::str::from_utf8(value) else {
        return Ok(None);
    };
    if !path.starts_with('/') {
        let Some(aliases) = find_child(root, "aliases") else {
            return Ok(None);
        };
        let Some(target) = string_prop(aliases, path) else {
            return Ok(None);
        };
        match core::str::from_utf8(target) {
            Ok(p) if p.starts_with('/') => path = p,
            _ => return Ok(None),
        }
    }
    let mut stack = [Bus::DEFAULT; MAX_DEPTH];
    let Some((node, depth)) = locate(root, path, &mut stack) else {
        return Ok(None);
    };
    let props = Props::of(node);
    if !props.enabled() || !props.compatible_with(&["arm,pl011"]) {
        return Ok(None);
    }
    let ancestors = stack.get(..depth).unwrap_or_default();
    reg_at(&props, ancestors, "PL011", 0).map(Some)
}

/// `linux,initrd-start` and `linux,initrd-end`, each one or two cells. An
/// empty initrd counts as none.
fn chosen_initrd(chosen: FdtNode<'_, '_>) -> Result<Option<Range>, DtbError> {
    let read = |property: &'static str| -> Result<Option<u64>, DtbError> {
        let bad = DtbError::BadProperty {
            node: "/chosen",
            property,
        };
        match chosen.property(property).map(|p| p.value) {
            None => Ok(None),
            Some(v) if v.len() == 4 => be32(v, 0).map(|x| Some(u64::from(x))).ok_or(bad),
            Some(v) if v.len() == 8 => be64(v, 0).map(Some).ok_or(bad),
            Some(_) => Err(bad),
        }
    };
    match (read("linux,initrd-start")?, read("linux,initrd-end")?) {
        (None, None) => Ok(None),
        (Some(start), Some(end)) if end >= start => {
            Ok((end > start).then(|| Range::new(start, end - start)))
        }
        (Some(_), _) => Err(DtbError::BadProperty {
            node: "/chosen",
            property: "linux,initrd-end",
        }),
        (None, Some(_)) => Err(DtbError::BadProperty {
            node: "/chosen",
            property: "linux,initrd-start",
        }),
    }
}
