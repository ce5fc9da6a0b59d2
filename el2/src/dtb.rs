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

use crate::grant::{self, Access, Device, Grant};

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
/// Longest property name accepted. The spec allows 31 characters; the
/// bound is generous, and it keeps the search for each name's NUL from
/// making validation quadratic in the size of a hostile strings block.
const MAX_PROPERTY_NAME: usize = 255;

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
    /// That UART's interrupt, a GIC SPI, as an INTID (the first specifier
    /// of its `interrupts`), if it has one the hypervisor can use.
    pub uart_intid: Option<u32>,
    /// `/chosen` `bootargs` without the NUL; only the first `bootargs_len`
    /// bytes are valid.
    pub bootargs: [u8; MAX_BOOTARGS],
    /// Number of valid bytes in `bootargs`.
    pub bootargs_len: usize,
    /// `/chosen` `linux,initrd-start` .. `linux,initrd-end`, if both are
    /// present and the range is not empty.
    pub initrd: Option<Range>,
    /// The TRBE interrupt's INTID from an enabled `arm,trbe` node's
    /// `interrupts` (a GIC PPI), if the tree has one.
    pub trbe_intid: Option<u32>,
    /// What of this machine a guest may be granted ([`grant::POLICY`]
    /// applied to this tree): the GIC and the console UART, emulated, and
    /// every enabled passed-through device at its `reg`.
    pub grant: Grant,
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

    /// Index of the CPU a guest names as the target of a call (PSCI's
    /// `target_cpu` and `target_affinity`, the trace calls' target MPIDR).
    /// Unlike [`Platform::cpu_index`], which takes raw MPIDR_EL1 values,
    /// every bit outside the affinity fields must be zero (PSCI: "bits
    /// [63:40] and [31:24] must be zero"): a value with such bits names no
    /// CPU.
    pub fn target_index(&self, mpidr: u64) -> Option<usize> {
        if mpidr & !MPIDR_AFFINITY_MASK != 0 {
            return None;
        }
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

    /// Whether `entry` may be a guest entry point (PSCI CPU_ON and
    /// power-down CPU_SUSPEND): an A64 instruction address, so a multiple
    /// of 4, in the guest's RAM. Anything else is INVALID_ADDRESS before
    /// any state changes; a misaligned one would otherwise start the core
    /// with a PC alignment fault.
    pub fn valid_entry(&self, entry: u64) -> bool {
        entry.is_multiple_of(4) && self.memory().iter().any(|m| m.contains(entry))
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
    /// The guest's tree describes a memory-mapped device the machine does
    /// not grant it (see [`grant`]), or a granted kind of device somewhere
    /// the machine has none.
    GuestDeviceNotGranted {
        /// The node's name, e.g. `fw-cfg@9020000`.
        node: NodeName,
        /// The first address of the offending `reg` entry.
        base: u64,
        /// Why it is refused.
        why: &'static str,
    },
    /// The guest's tree describes trace hardware, which EL2 owns.
    GuestTraceDevice(NodeName),
}

/// A node's name, copied out of a tree for an error message (cut at
/// [`NodeName::MAX`] bytes).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct NodeName {
    bytes: [u8; NodeName::MAX],
    len: u8,
}

impl NodeName {
    /// Longest name kept.
    pub const MAX: usize = 48;

    /// A copy of `name`, cut at [`NodeName::MAX`] bytes.
    pub fn new(name: &str) -> NodeName {
        let mut bytes = [0; Self::MAX];
        let len = name.len().min(Self::MAX);
        bytes[..len].copy_from_slice(&name.as_bytes()[..len]);
        NodeName {
            bytes,
            len: len as u8,
        }
    }

    /// The name (lossy if the cut split a UTF-8 sequence).
    pub fn as_str(&self) -> &str {
        let b = &self.bytes[..usize::from(self.len)];
        match core::str::from_utf8(b) {
            Ok(s) => s,
            Err(e) => core::str::from_utf8(&b[..e.valid_up_to()]).unwrap_or(""),
        }
    }
}

impl fmt::Debug for NodeName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.as_str())
    }
}

impl fmt::Display for NodeName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
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
            Self::GuestDeviceNotGranted { node, base, why } => write!(
                f,
                "guest device tree: device {node} at {base:#x} is not granted to the guest: {why}"
            ),
            Self::GuestTraceDevice(node) => write!(
                f,
                "guest device tree: {node} is trace hardware, which the hypervisor owns \
                 (guests ask for trace through its calls)"
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
        uart: uart.0,
        uart_intid: uart.1,
        bootargs,
        bootargs_len,
        initrd,
        trbe_intid: scan.trbe,
        grant: platform_grant(gicd, gicr, uart.0, &scan.passthrough),
    })
}

/// The machine's grant: the GIC frames and the console UART emulated (they
/// come first, so they always fit), then the passed-through devices found.
fn platform_grant(gicd: Range, gicr: Range, uart: Range, passthrough: &Grant) -> Grant {
    let mut g = Grant::new();
    for (device, range) in [
        (Device::Gic, gicd),
        (Device::Gic, gicr),
        (Device::Uart, uart),
    ] {
        // Three emulated regions always fit an empty grant.
        let _ = g.add(device, Access::Emulated, range);
    }
    for r in passthrough.passed_through() {
        // One that does not fit is simply not granted (and a guest tree
        // naming it is refused).
        let _ = g.add(r.device, r.access, r.range);
    }
    g
}

/// Validates the guest's DTB: it must be structurally valid and describe
/// memory and CPUs; every guest memory range must lie inside one range of
/// `ram` (the machine's RAM) and must not overlap `hypervisor` (the
/// hypervisor's own memory); every guest CPU must be one of
/// `physical_cpus`, because vCPUs are pinned 1:1 to physical CPUs by MPIDR;
/// and every enabled memory-mapped device it describes must be granted by
/// `grant`, at an address inside the machine's granted region for that
/// device ([`check_devices`]). Trace hardware is refused wherever it
/// appears.
pub fn validate_guest(
    blob: &[u8],
    scratch: &mut [u8],
    ram: &[Range],
    hypervisor: Range,
    physical_cpus: &[u64],
    grant: &Grant,
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
    check_devices(root, grant)?;
    Ok(layout)
}

/// The grant check of a guest tree. Every enabled node is looked at:
///
/// - trace hardware (`grant::is_trace_hardware`) is refused, `reg` or not;
/// - memory nodes and everything under `/cpus` (whose `reg` is an MPIDR)
///   were checked by the caller;
/// - a node with a `reg` in the CPU's address space (every bus above it has
///   `ranges`) is a memory-mapped device: its `compatible` must have a rule
///   in [`grant::POLICY`], and each `reg` entry must lie inside a region
///   the machine grants for that device;
/// - a node without one (timer, PMU, PSCI, clocks, idle states) names no
///   MMIO and is allowed.
///
/// A disabled node is not a device the guest will use, so it is skipped;
/// its children are still checked.
fn check_devices(root: FdtNode<'_, '_>, grant: &Grant) -> Result<(), DtbError> {
    let mut stack = [Bus::DEFAULT; MAX_DEPTH];
    walk(root, &mut stack, 0, &mut |node, props, ancestors| {
        if ancestors.is_empty() || !props.enabled() {
            return Ok(());
        }
        let compatible = props.compatible.unwrap_or_default();
        if grant::is_trace_hardware(compatible) {
            return Err(DtbError::GuestTraceDevice(NodeName::new(node.name)));
        }
        let under_cpus = ancestors.get(1).is_some_and(|b| b.name == "cpus")
            || (ancestors.len() == 1 && node.name == "cpus");
        if props.device_type_is("memory") || under_cpus || props.reg.is_none() {
            return Ok(());
        }
        // Not memory-mapped: a bus above has no `ranges` (devicetree spec
        // 2.3.8), so `reg` is an address on that bus, not the CPU's.
        if ancestors.iter().skip(1).any(|b| b.ranges.is_none()) {
            return Ok(());
        }
        let parent = ancestors
            .last()
            .ok_or(DtbError::Malformed("node without a parent"))?;
        let rule = grant::rule_for(compatible);
        for (base, size) in reg_entries(props.reg, parent, "device")? {
            if base.checked_add(size).is_none() {
                return Err(DtbError::BadProperty {
                    node: "device",
                    property: "reg",
                });
            }
            let r = translate(Range::new(base, size), ancestors, "device")?;
            let refused = |why| DtbError::GuestDeviceNotGranted {
                node: NodeName::new(node.name),
                base: r.base,
                why,
            };
            match rule {
                None => {
                    return Err(refused(
                        grant::never_reason(compatible)
                            .unwrap_or("its compatible is not in the grant policy"),
                    ))
                }
                Some(rule) if !grant.allows(rule.device, &r) => {
                    return Err(refused("the machine grants no such device at that address"))
                }
                Some(_) => {}
            }
        }
        Ok(())
    })
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
        out_strings.saturating_sub(out_struct),
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
    let len = rest
        .iter()
        .take(MAX_PROPERTY_NAME + 1)
        .position(|&b| b == 0)
        .ok_or(Malformed(
            "a property name is not NUL-terminated within 255 bytes",
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
    interrupts: Option<&'a [u8]>,
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
                "interrupts" => &mut props.interrupts,
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
    uart: Option<(Range, Option<u32>)>,
    trbe: Option<u32>,
    /// Enabled passed-through devices ([`grant::POLICY`]) at their `reg`.
    passthrough: Grant,
}

/// The INTID of a device's `interrupts` when its first specifier (GIC
/// binding: type, number, flags) is an SPI (type 0): number + 32, SPIs
/// ending at INTID 1019. Anything else (none, a PPI, a malformed value)
/// is no interrupt the hypervisor can take for the device.
fn spi_intid(interrupts: Option<&[u8]>) -> Option<u32> {
    let v = interrupts?;
    if v.len() < 12 || v.len() % 4 != 0 {
        return None;
    }
    let (kind, number) = (be32(v, 0)?, be32(v, 4)?);
    (kind == 0 && number < 988).then_some(number + 32)
}

/// The INTID of a TRBE node's `interrupts`: the GIC binding's first
/// specifier (type, number, flags; a fourth cell, PPI affinity, may
/// follow), which must be a PPI (type 1) that is not one of the PPIs the
/// architecture gives to others (PMU 23, GIC maintenance 25, the generic
/// timers 26..=30).
fn trbe_ppi(interrupts: Option<&[u8]>) -> Option<u32> {
    let v = interrupts?;
    if v.len() < 12 || v.len() % 4 != 0 {
        return None;
    }
    let (kind, number) = (be32(v, 0)?, be32(v, 4)?);
    let intid = number.checked_add(16)?;
    (kind == 1 && number < 16 && intid != 23 && !(25..=30).contains(&intid)).then_some(intid)
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
            self.uart = Some((
                reg_at(props, ancestors, "PL011", 0)?,
                spi_intid(props.interrupts),
            ));
        }
        if let Some(rule) = grant::rule_for(props.compatible.unwrap_or_default()) {
            let mapped = ancestors.iter().skip(1).all(|b| b.ranges.is_some());
            if rule.access == Access::PassThrough && props.enabled() && mapped {
                let parent = ancestors
                    .last()
                    .ok_or(DtbError::Malformed("node without a parent"))?;
                for (base, size) in reg_entries(props.reg, parent, rule.compatible)? {
                    if size == 0 || base.checked_add(size).is_none() {
                        continue;
                    }
                    let r = translate(Range::new(base, size), ancestors, rule.compatible)?;
                    // A device that is not whole pages is not passed
                    // through (stage 2 would expose its neighbour).
                    let _ = self.passthrough.add(rule.device, Access::PassThrough, r);
                }
            }
        }
        if self.trbe.is_none() && props.enabled() && props.compatible_with(&["arm,trbe"]) {
            self.trbe = Some(trbe_ppi(props.interrupts).ok_or(DtbError::BadProperty {
                node: "arm,trbe",
                property: "interrupts",
            })?);
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
        trbe: None,
        passthrough: Grant::new(),
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
fn stdout_uart(
    root: FdtNode<'_, '_>,
    chosen: FdtNode<'_, '_>,
) -> Result<Option<(Range, Option<u32>)>, DtbError> {
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
    Ok(Some((
        reg_at(&props, ancestors, "PL011", 0)?,
        spi_intid(props.interrupts),
    )))
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

#[cfg(test)]
mod tests {
    use super::*;

    /// `qemu-system-aarch64 -machine virt,virtualization=on,gic-version=3,dumpdtb=...
    /// -cpu max -smp 4 -m 1G -kernel /dev/null -append "console=ttyAMA0 foo=bar"
    /// -initrd <3000 bytes>` (QEMU 7.2), trailing free space trimmed.
    static SMP4: &[u8] = include_bytes!("dtb_testdata/qemu-virt-smp4.dtb");
    /// The DTB QEMU 7.2 placed in guest RAM when given an -smp 8 dumped DTB
    /// with `-dtb` and a raw kernel: libfdt edits left 54 FDT_NOP tokens.
    static SMP8_NOP: &[u8] = include_bytes!("dtb_testdata/qemu-virt-smp8-nop.dtb");
    /// `qemu-virt-smp4.dtb` pruned to the grant, as the runner prunes.
    static SMP4_GRANTED: &[u8] = include_bytes!("dtb_testdata/qemu-virt-smp4-granted.dtb");

    const SCRATCH: usize = 64 * 1024;
    const GIB: u64 = 1 << 30;

    fn parse_blob(blob: &[u8]) -> Result<Platform, DtbError> {
        let mut scratch = vec![0u8; SCRATCH];
        parse(blob, &mut scratch)
    }

    fn get_be32(blob: &[u8], at: usize) -> u32 {
        u32::from_be_bytes(blob[at..at + 4].try_into().unwrap())
    }

    fn set_be32(blob: &mut [u8], at: usize, v: u32) {
        blob[at..at + 4].copy_from_slice(&v.to_be_bytes());
    }

    /// Offsets (from the start of the blob) and values of every token in a
    /// well-formed blob's structure block.
    fn tokens(blob: &[u8]) -> Vec<(usize, u32)> {
        let start = get_be32(blob, 8) as usize;
        let strings = get_be32(blob, 12) as usize;
        let mut pos = start;
        let mut out = Vec::new();
        loop {
            let t = get_be32(blob, pos);
            out.push((pos, t));
            pos += match t {
                FDT_BEGIN_NODE => {
                    let name = blob[pos + 4..].iter().position(|&b| b == 0).unwrap();
                    4 + ((name + 1 + 3) & !3)
                }
                FDT_PROP => 12 + ((get_be32(blob, pos + 4) as usize + 3) & !3),
                FDT_END => return out,
                _ => 4,
            };
            assert!(pos < strings.max(blob.len()));
        }
    }

    /// A minimal FDT writer: a version 17 header, an empty memory
    /// reservation block, the structure block, the strings block.
    #[derive(Default)]
    struct Builder {
        structure: Vec<u8>,
        strings: Vec<u8>,
        /// Put an FDT_NOP before every token and after every node.
        nops: bool,
    }

    impl Builder {
        fn new() -> Self {
            Self::default()
        }

        fn with_nops(nops: bool) -> Self {
            Self {
                nops,
                ..Self::default()
            }
        }

        fn word(&mut self, w: u32) -> &mut Self {
            self.structure.extend_from_slice(&w.to_be_bytes());
            self
        }

        fn raw(&mut self, bytes: &[u8]) -> &mut Self {
            self.structure.extend_from_slice(bytes);
            self
        }

        fn pad(&mut self) {
            while !self.structure.len().is_multiple_of(4) {
                self.structure.push(0);
            }
        }

        fn nop(&mut self) -> &mut Self {
            if self.nops {
                self.word(FDT_NOP);
            }
            self
        }

        fn begin(&mut self, name: &str) -> &mut Self {
            self.nop()
                .word(FDT_BEGIN_NODE)
                .raw(name.as_bytes())
                .raw(&[0]);
            self.pad();
            self.nop()
        }

        fn end(&mut self) -> &mut Self {
            self.nop().word(FDT_END_NODE).nop()
        }

        fn name_offset(&mut self, name: &str) -> u32 {
            let mut key = name.as_bytes().to_vec();
            key.push(0);
            let found = (0..self.strings.len()).find(|&p| {
                (p == 0 || self.strings[p - 1] == 0) && self.strings[p..].starts_with(&key)
            });
            found.unwrap_or_else(|| {
                let at = self.strings.len();
                self.strings.extend_from_slice(&key);
                at
            }) as u32
        }

        fn prop_at(&mut self, name_offset: u32, value: &[u8]) -> &mut Self {
            self.nop()
                .word(FDT_PROP)
                .word(value.len() as u32)
                .word(name_offset)
                .raw(value);
            self.pad();
            self
        }

        fn prop(&mut self, name: &str, value: &[u8]) -> &mut Self {
            let off = self.name_offset(name);
            self.prop_at(off, value)
        }

        fn prop_str(&mut self, name: &str, s: &str) -> &mut Self {
            let mut v = s.as_bytes().to_vec();
            v.push(0);
            self.prop(name, &v)
        }

        fn prop_cells(&mut self, name: &str, cells: &[u32]) -> &mut Self {
            let v: Vec<u8> = cells.iter().flat_map(|c| c.to_be_bytes()).collect();
            self.prop(name, &v)
        }

        fn prop_u32(&mut self, name: &str, v: u32) -> &mut Self {
            self.prop_cells(name, &[v])
        }

        /// The blob with FDT_END appended.
        fn finish(&self) -> Vec<u8> {
            let mut structure = self.structure.clone();
            structure.extend_from_slice(&FDT_END.to_be_bytes());
            self.finish_raw(&structure)
        }

        /// The blob with exactly `structure` as the structure block.
        fn finish_raw(&self, structure: &[u8]) -> Vec<u8> {
            let off_rsv = 40;
            let off_struct = off_rsv + 16;
            let off_strings = off_struct + structure.len();
            let total = off_strings + self.strings.len();
            let header = [
                FDT_MAGIC,
                total as u32,
                off_struct as u32,
                off_strings as u32,
                off_rsv as u32,
                17,
                16,
                0,
                self.strings.len() as u32,
                structure.len() as u32,
            ];
            let mut blob: Vec<u8> = header.iter().flat_map(|w| w.to_be_bytes()).collect();
            blob.extend_from_slice(&[0; 16]);
            blob.extend_from_slice(structure);
            blob.extend_from_slice(&self.strings);
            assert_eq!(blob.len(), total);
            blob
        }
    }

    /// A number as `n` big-endian cells.
    fn cells(v: u64, n: u32) -> Vec<u32> {
        match n {
            1 => vec![u32::try_from(v).unwrap()],
            2 => vec![(v >> 32) as u32, v as u32],
            n => [vec![0; n as usize - 2], cells(v, 2)].concat(),
        }
    }

    fn reg(entries: &[(u64, u64)], ac: u32, sc: u32) -> Vec<u32> {
        entries
            .iter()
            .flat_map(|&(a, s)| [cells(a, ac), cells(s, sc)].concat())
            .collect()
    }

    /// A QEMU-virt-like machine, with knobs to break it.
    #[derive(Clone)]
    struct Spec {
        nops: bool,
        /// `None` leaves the root without #address-cells/#size-cells.
        root_cells: Option<(u32, u32)>,
        memory: Vec<(u64, u64)>,
        /// `None` leaves out /cpus.
        cpus: Option<Vec<u64>>,
        cpu_address_cells: u32,
        gic: bool,
        psci: bool,
        psci_method: Option<&'static str>,
        uart: bool,
        bootargs: Option<Vec<u8>>,
        initrd: Option<(u64, u64)>,
        /// An `arm,trbe` node with these `interrupts` cells.
        trbe: Option<Vec<u32>>,
    }

    impl Default for Spec {
        fn default() -> Self {
            Self {
                nops: false,
                root_cells: Some((2, 2)),
                memory: vec![(0x4000_0000, GIB)],
                cpus: Some(vec![0, 1, 2, 3]),
                cpu_address_cells: 1,
                gic: true,
                psci: true,
                psci_method: Some("smc"),
                uart: true,
                bootargs: Some(b"console=ttyAMA0".to_vec()),
                initrd: Some((0x4800_0000, 0x4800_1000)),
                trbe: None,
            }
        }
    }

    fn build(spec: &Spec) -> Vec<u8> {
        let mut b = Builder::with_nops(spec.nops);
        b.begin("");
        if let Some((ac, sc)) = spec.root_cells {
            b.prop_u32("#address-cells", ac).prop_u32("#size-cells", sc);
        }
        let (ac, sc) = spec.root_cells.unwrap_or((2, 1));
        b.prop_str("compatible", "linux,dummy-virt");
        if spec.psci {
            b.begin("psci")
                .prop("compatible", b"arm,psci-1.0\0arm,psci-0.2\0arm,psci\0");
            if let Some(m) = spec.psci_method {
                b.prop_str("method", m);
            }
            b.end();
        }
        for &(base, size) in &spec.memory {
            b.begin(&format!("memory@{base:x}"))
                .prop_cells("reg", &reg(&[(base, size)], ac, sc))
                .prop_str("device_type", "memory")
                .end();
        }
        if spec.gic {
            b.begin("intc@8000000")
                .prop_str("compatible", "arm,gic-v3")
                .prop_cells(
                    "reg",
                    &reg(&[(0x0800_0000, 0x1_0000), (0x080a_0000, 0xf6_0000)], ac, sc),
                )
                .prop("interrupt-controller", &[])
                .end();
        }
        if let Some(irq) = &spec.trbe {
            b.begin("trbe")
                .prop_str("compatible", "arm,trbe")
                .prop_cells("interrupts", irq)
                .end();
        }
        if spec.uart {
            b.begin("pl011@9000000")
                .prop("compatible", b"arm,pl011\0arm,primecell\0")
                .prop_cells("reg", &reg(&[(0x0900_0000, 0x1000)], ac, sc))
                .end();
        }
        if let Some(cpus) = &spec.cpus {
            b.begin("cpus")
                .prop_u32("#address-cells", spec.cpu_address_cells)
                .prop_u32("#size-cells", 0);
            b.begin("cpu-map")
                .begin("cluster0")
                .begin("core0")
                .prop_u32("cpu", 1)
                .end()
                .end()
                .end();
            for (i, &mpidr) in cpus.iter().enumerate() {
                b.begin(&format!("cpu@{i}"))
                    .prop_cells("reg", &cells(mpidr, spec.cpu_address_cells))
                    .prop_str("enable-method", "psci")
                    .prop_str("compatible", "arm,cortex-a57")
                    .prop_str("device_type", "cpu")
                    .end();
            }
            b.end();
        }
        b.begin("chosen");
        if let Some(args) = &spec.bootargs {
            let mut v = args.clone();
            v.push(0);
            b.prop("bootargs", &v);
        }
        if let Some((start, end)) = spec.initrd {
            b.prop_cells("linux,initrd-start", &cells(start, 2))
                .prop_cells("linux,initrd-end", &cells(end, 2));
        }
        if spec.uart {
            b.prop_str("stdout-path", "/pl011@9000000");
        }
        b.end();
        b.end();
        b.finish()
    }

    fn parse_spec(spec: &Spec) -> Result<Platform, DtbError> {
        parse_blob(&build(spec))
    }

    // ---------------------------------------------------------------- QEMU

    #[test]
    fn trbe_interrupt_comes_from_the_tree_and_must_be_a_free_ppi() {
        assert_eq!(parse_spec(&Spec::default()).unwrap().trbe_intid, None);
        for (cells, intid) in [
            (vec![1, 15, 4], 31),
            (vec![1, 6, 4], 22),
            (vec![1, 15, 4, 0], 31),
        ] {
            let spec = Spec {
                trbe: Some(cells.clone()),
                ..Spec::default()
            };
            assert_eq!(
                parse_spec(&spec).unwrap().trbe_intid,
                Some(intid),
                "{cells:?}"
            );
        }
        // An SPI, a PPI number out of range, the PMU's, the maintenance
        // interrupt, a timer's, and cut-short specifiers.
        for cells in [
            vec![0, 15, 4],
            vec![1, 16, 4],
            vec![1, 7, 4],
            vec![1, 9, 4],
            vec![1, 11, 4],
            vec![1, 14, 4],
            vec![1, 15],
            vec![],
        ] {
            let spec = Spec {
                trbe: Some(cells.clone()),
                ..Spec::default()
            };
            assert!(
                matches!(
                    parse_spec(&spec),
                    Err(DtbError::BadProperty {
                        node: "arm,trbe",
                        property: "interrupts"
                    })
                ),
                "{cells:?}"
            );
        }
    }

    #[test]
    fn guest_entry_points_are_aligned_addresses_in_guest_ram() {
        let mut memory = [Range::new(0, 0); MAX_MEMORY_RANGES];
        memory[0] = Range::new(0x4400_0000, 0x3c00_0000);
        let g = GuestLayout {
            memory,
            memory_count: 1,
            cpus: [0; MAX_CPUS],
            cpu_count: 1,
        };
        assert!(g.valid_entry(0x4420_0000));
        assert!(g.valid_entry(0x7fff_fffc));
        for bad in [
            0x4420_0002u64,
            0x4420_0001,
            0x4420_0003,
            0x4008_0000,
            0x43ff_fffc,
            0x8000_0000,
            0,
            !3,
        ] {
            assert!(!g.valid_entry(bad), "{bad:#x}");
        }
    }

    #[test]
    fn qemu_smp4_fixture_gives_the_values_qemu_reported() {
        let p = parse_blob(SMP4).unwrap();
        assert_eq!(p.memory(), &[Range::new(0x4000_0000, GIB)]);
        assert_eq!(p.cpus(), &[0, 1, 2, 3]);
        assert_eq!(p.gicd, Range::new(0x0800_0000, 0x1_0000));
        assert_eq!(p.gicr, Range::new(0x080a_0000, 0xf6_0000));
        assert_eq!(p.psci, PsciMethod::Smc);
        assert_eq!(p.uart, Range::new(0x0900_0000, 0x1000));
        assert_eq!(p.uart_intid, Some(33), "QEMU virt's PL011 is SPI 1");
        assert_eq!(p.bootargs(), "console=ttyAMA0 foo=bar");
        assert_eq!(p.initrd, Some(Range::new(0x4800_0000, 3000)));
        assert_eq!(total_size(SMP4), Ok(SMP4.len()));
    }

    #[test]
    fn qemu_smp8_fixture_with_nops_parses() {
        let nops = tokens(SMP8_NOP).iter().filter(|t| t.1 == FDT_NOP).count();
        assert_eq!(nops, 54, "the fixture should still hold QEMU's NOPs");
        // Why NOPs are stripped first: the fdt crate alone loses nodes.
        let raw = Fdt::new(SMP8_NOP).unwrap();
        assert!(raw.find_node("/cpus").is_none());

        let p = parse_blob(SMP8_NOP).unwrap();
        assert_eq!(p.memory(), &[Range::new(0x4000_0000, GIB)]);
        assert_eq!(p.cpus(), &[0, 1, 2, 3, 4, 5, 6, 7]);
        assert_eq!(p.gicd, Range::new(0x0800_0000, 0x1_0000));
        assert_eq!(p.gicr, Range::new(0x080a_0000, 0xf6_0000));
        assert_eq!(p.psci, PsciMethod::Smc);
        assert_eq!(p.uart, Range::new(0x0900_0000, 0x1000));
        assert_eq!(p.uart_intid, Some(33));
        assert_eq!(p.bootargs(), "console=ttyAMA0");
        assert_eq!(p.initrd, None);
        assert_eq!(p.cpu_index(0x8000_0005), Some(5));
    }

    #[test]
    fn qemu_totalsize_with_free_space_and_longer_blob() {
        // QEMU declares totalsize = 1 MiB, mostly free space; the scratch
        // only needs the used part.
        let mut padded = SMP4.to_vec();
        padded.resize(1 << 20, 0);
        set_be32(&mut padded, 4, 1 << 20);
        let mut scratch = [0u8; 12 * 1024];
        assert_eq!(parse(&padded, &mut scratch), parse_blob(SMP4));
        // Bytes past totalsize are not looked at.
        let mut longer = SMP4.to_vec();
        longer.extend_from_slice(&[0xff; 100]);
        assert_eq!(parse_blob(&longer), parse_blob(SMP4));
        // And the rebuilt copy parses the same as the original.
        let mut copy = vec![0u8; SCRATCH];
        let len = sanitize(SMP8_NOP, &mut copy).unwrap();
        assert!(len < SMP8_NOP.len());
        assert!(tokens(&copy[..len]).iter().all(|t| t.1 != FDT_NOP));
        assert_eq!(parse_blob(&copy[..len]), parse_blob(SMP8_NOP));
    }

    #[test]
    fn scratch_too_small() {
        let mut scratch = [0u8; 1024];
        match parse(SMP4, &mut scratch) {
            Err(DtbError::TooLarge {
                size,
                scratch: 1024,
                // QEMU leaves 8 bytes between its 40-byte header and the
                // reservation block at 0x30; the rebuilt copy does not.
            }) => assert_eq!(size, SMP4.len() - 8),
            other => panic!("{other:?}"),
        }
        let mut exact = vec![0u8; SMP4.len() - 8];
        assert!(parse(SMP4, &mut exact).is_ok());
        let mut short = vec![0u8; SMP4.len() - 9];
        assert!(matches!(
            parse(SMP4, &mut short),
            Err(DtbError::TooLarge { .. })
        ));
    }

    // ------------------------------------------------------------- header

    #[test]
    fn total_size_checks_magic_and_limits() {
        assert_eq!(total_size(&[]), Err(DtbError::NotFound));
        assert_eq!(
            total_size(&[0xd0, 0x0d]),
            Err(DtbError::Truncated {
                needed: 8,
                available: 2
            })
        );
        assert_eq!(
            total_size(&SMP4[..6]),
            Err(DtbError::Truncated {
                needed: 8,
                available: 6
            })
        );
        assert_eq!(total_size(&SMP4[..8]), Ok(SMP4.len()));
        assert_eq!(
            total_size(&[0, 0, 0, 0, 0, 0, 1, 0]),
            Err(DtbError::BadMagic(0))
        );
        let mut h = SMP4[..40].to_vec();
        set_be32(&mut h, 4, 20);
        assert!(matches!(total_size(&h), Err(DtbError::Malformed(_))));
        set_be32(&mut h, 4, 0x7fff_ffff);
        assert_eq!(
            total_size(&h),
            Err(DtbError::TotalSizeTooLarge {
                size: 0x7fff_ffff,
                limit: MAX_TOTAL_SIZE
            })
        );
    }

    #[test]
    fn zero_length_and_bad_magic() {
        assert_eq!(parse_blob(&[]), Err(DtbError::NotFound));
        let mut blob = SMP4.to_vec();
        blob[0] = 0xfe;
        assert_eq!(parse_blob(&blob), Err(DtbError::BadMagic(0xfe0d_feed)));
        let zeros = [0u8; 64];
        assert_eq!(parse_blob(&zeros), Err(DtbError::BadMagic(0)));
    }

    #[test]
    fn truncated_blobs() {
        assert_eq!(
            parse_blob(&SMP4[..SMP4.len() - 1]),
            Err(DtbError::Truncated {
                needed: SMP4.len(),
                available: SMP4.len() - 1
            })
        );
        for len in (1..SMP4.len()).step_by(7) {
            let err = parse_blob(&SMP4[..len]).unwrap_err();
            assert!(matches!(err, DtbError::Truncated { .. }), "{len}: {err:?}");
        }
        // totalsize larger than the blob.
        let mut blob = SMP4.to_vec();
        set_be32(&mut blob, 4, SMP4.len() as u32 + 4);
        assert_eq!(
            parse_blob(&blob),
            Err(DtbError::Truncated {
                needed: SMP4.len() + 4,
                available: SMP4.len()
            })
        );
    }

    #[test]
    fn versions() {
        let good = build(&Spec::default());
        for (version, last) in [(15, 15), (1, 1), (17, 18), (0xffff_ffff, 0xffff_ffff)] {
            let mut blob = good.clone();
            set_be32(&mut blob, 20, version);
            set_be32(&mut blob, 24, last);
            assert_eq!(
                parse_blob(&blob),
                Err(DtbError::BadVersion {
                    version,
                    last_compatible: last
                })
            );
        }
        // A later version readable by a version 17 reader is fine.
        let mut blob = good.clone();
        set_be32(&mut blob, 20, 18);
        assert_eq!(parse_blob(&blob), parse_blob(&good));
        // Version 16 has no size_dt_struct: garbage there is ignored and the
        // structure block ends at FDT_END.
        let mut blob = good.clone();
        set_be32(&mut blob, 20, 16);
        set_be32(&mut blob, 36, 0xdead_beef);
        assert_eq!(parse_blob(&blob), parse_blob(&good));
    }

    #[test]
    fn block_layout_errors() {
        let good = build(&Spec::default());
        let total = good.len() as u32;
        let cases: &[(usize, u32)] = &[
            (16, 44),        // reservation block misaligned
            (16, 8),         // reservation block inside the header
            (16, total - 8), // no room for its terminator
            (8, 58),         // structure block misaligned
            (8, 16),         // structure block inside the header
            (36, 6),         // size_dt_struct not a multiple of 4
            (36, total),     // structure block past totalsize
            (12, 4),         // strings block inside the header
            (32, total),     // strings block past totalsize
            (12, 56),        // strings block overlaps the structure block
            (16, 56),        // reservation block overlaps the structure block
        ];
        for &(field, value) in cases {
            let mut blob = good.clone();
            set_be32(&mut blob, field, value);
            let err = parse_blob(&blob).unwrap_err();
            assert!(
                matches!(err, DtbError::Malformed(_)),
                "field {field} = {value}: {err:?}"
            );
        }
        // A reservation entry is allowed and skipped.
        let mut b = Builder::new();
        b.begin("").end();
        let mut blob = b.finish();
        let mut with_rsv = blob[..40].to_vec();
        with_rsv.extend_from_slice(&[0, 0, 0, 0, 0x40, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10, 0]);
        with_rsv.extend_from_slice(&blob[40..]);
        for field in [4, 8, 12] {
            let v = get_be32(&with_rsv, field);
            set_be32(&mut with_rsv, field, v + 16);
        }
        assert_eq!(parse_blob(&with_rsv), Err(DtbError::NoMemory));
        set_be32(&mut blob, 16, 41);
        assert!(matches!(parse_blob(&blob), Err(DtbError::Malformed(_))));
    }

    // ---------------------------------------------------------- structure

    fn malformed(blob: &[u8]) -> &'static str {
        match parse_blob(blob) {
            Err(DtbError::Malformed(why)) => why,
            other => panic!("expected Malformed, got {other:?}"),
        }
    }

    #[test]
    fn nops_anywhere_parse_identically() {
        let plain = parse_spec(&Spec::default()).unwrap();
        let blob = build(&Spec {
            nops: true,
            ..Spec::default()
        });
        assert!(tokens(&blob).iter().filter(|t| t.1 == FDT_NOP).count() > 50);
        assert_eq!(parse_blob(&blob), Ok(plain));
        // NOPs before the root and right before FDT_END, too.
        let mut b = Builder::new();
        b.word(FDT_NOP).word(FDT_NOP);
        let inner = build(&Spec::default());
        let off = get_be32(&inner, 8) as usize;
        let size = get_be32(&inner, 36) as usize;
        b.raw(&inner[off..off + size - 4]).word(FDT_NOP);
        b.strings = inner[get_be32(&inner, 12) as usize..].to_vec();
        assert_eq!(parse_blob(&b.finish()), parse_spec(&Spec::default()));
    }

    #[test]
    fn built_platform_values() {
        let p = parse_spec(&Spec::default()).unwrap();
        assert_eq!(p.memory(), &[Range::new(0x4000_0000, GIB)]);
        assert_eq!(p.cpus(), &[0, 1, 2, 3]);
        assert_eq!(p.gicd, Range::new(0x0800_0000, 0x1_0000));
        assert_eq!(p.gicr, Range::new(0x080a_0000, 0xf6_0000));
        assert_eq!(p.psci, PsciMethod::Smc);
        assert_eq!(p.uart, Range::new(0x0900_0000, 0x1000));
        assert_eq!(p.bootargs(), "console=ttyAMA0");
        assert_eq!(p.initrd, Some(Range::new(0x4800_0000, 0x1000)));
    }

    #[test]
    fn unterminated_node_name() {
        let mut b = Builder::new();
        b.begin("").word(FDT_BEGIN_NODE).raw(b"abcd");
        assert_eq!(
            malformed(&b.finish_raw(&b.structure.clone())),
            "a node name is not NUL-terminated"
        );
    }

    #[test]
    fn bad_node_names() {
        let mut b = Builder::new();
        b.begin("root");
        b.end();
        assert_eq!(malformed(&b.finish()), "the root node has a name");
        for name in ["", "a/b", "sp ace", "\u{e9}"] {
            let mut b = Builder::new();
            b.begin("").begin(name).end().end();
            assert_eq!(
                malformed(&b.finish()),
                "a node name is empty or has invalid characters"
            );
        }
    }

    #[test]
    fn property_names_in_the_strings_block() {
        let mut b = Builder::new();
        b.begin("").prop("x", b"1").prop_at(2, b"").end();
        assert_eq!(
            malformed(&b.finish()),
            "a property name offset lies outside the strings block"
        );
        let mut b = Builder::new();
        b.begin("").prop_at(0xffff_fff0, b"").end();
        assert_eq!(
            malformed(&b.finish()),
            "a property name offset lies outside the strings block"
        );
        let mut b = Builder::new();
        b.begin("").prop("x", b"1").end();
        b.strings = b"xy".to_vec();
        assert_eq!(
            malformed(&b.finish()),
            "a property name is not NUL-terminated within 255 bytes"
        );
        let long = |n: usize| {
            let mut b = Builder::new();
            b.begin("").prop_at(0, b"").end();
            b.strings = vec![b'a'; n];
            b.strings.push(0);
            parse_blob(&b.finish())
        };
        assert_eq!(long(255), Err(DtbError::NoMemory));
        assert_eq!(
            long(256),
            Err(DtbError::Malformed(
                "a property name is not NUL-terminated within 255 bytes"
            ))
        );
        for bad in [&b"\0"[..], b"a b\0", b"\xff\0"] {
            let mut b = Builder::new();
            b.begin("").prop_at(0, b"").end();
            b.strings = bad.to_vec();
            assert_eq!(
                malformed(&b.finish()),
                "a property name is empty or has invalid characters"
            );
        }
    }

    #[test]
    fn property_values_stay_inside_the_block() {
        let mut b = Builder::new();
        b.begin("").prop("x", b"abcd").end();
        let mut blob = b.finish();
        let (at, _) = tokens(&blob).into_iter().find(|t| t.1 == FDT_PROP).unwrap();
        for len in [0x1000, 0xffff_fff0, u32::MAX] {
            set_be32(&mut blob, at + 4, len);
            assert_eq!(
                malformed(&blob),
                "a node name or property value runs past the structure block"
            );
        }
        // A property header cut by the end of the block.
        let mut b = Builder::new();
        b.begin("").word(FDT_PROP).word(0);
        assert_eq!(
            malformed(&b.finish_raw(&b.structure.clone())),
            "a property header runs past the structure block"
        );
    }

    #[test]
    fn token_stream_rules() {
        let mut b = Builder::new();
        b.begin("").begin("a").end().prop_str("late", "x").end();
        assert_eq!(malformed(&b.finish()), "a property follows a child node");

        let mut b = Builder::new();
        b.prop_str("early", "x").begin("").end();
        assert_eq!(malformed(&b.finish()), "a property lies outside every node");

        let mut b = Builder::new();
        b.begin("").end().begin("").end();
        assert_eq!(malformed(&b.finish()), "there is more than one root node");

        let mut b = Builder::new();
        b.begin("").end().end();
        assert_eq!(
            malformed(&b.finish()),
            "FDT_END_NODE has no matching FDT_BEGIN_NODE"
        );

        let mut b = Builder::new();
        b.begin("").begin("a").end();
        assert_eq!(
            malformed(&b.finish()),
            "FDT_END comes before the root node is closed"
        );

        let b = Builder::new();
        assert_eq!(
            malformed(&b.finish()),
            "FDT_END comes before the root node is closed"
        );

        let mut b = Builder::new();
        b.begin("").end();
        assert_eq!(
            malformed(&b.finish_raw(&b.structure.clone())),
            "the structure block ends without FDT_END"
        );

        let mut b = Builder::new();
        b.begin("").end().word(FDT_END).word(FDT_NOP);
        assert_eq!(
            malformed(&b.finish_raw(&b.structure.clone())),
            "data follows FDT_END in the structure block"
        );

        for token in [0, 5, 6, 7, 8, 10, 0xffff_ffff] {
            let mut b = Builder::new();
            b.begin("").word(token).end();
            assert_eq!(
                malformed(&b.finish()),
                "the structure block holds an unknown token"
            );
        }
    }

    #[test]
    fn depth_bomb() {
        let nested = |levels: usize| {
            let mut b = Builder::new();
            b.begin("");
            for _ in 1..levels {
                b.begin("n");
            }
            for _ in 0..levels {
                b.end();
            }
            b.finish()
        };
        // MAX_DEPTH levels are fine (no memory, but structurally valid).
        assert_eq!(parse_blob(&nested(MAX_DEPTH)), Err(DtbError::NoMemory));
        assert_eq!(
            malformed(&nested(MAX_DEPTH + 1)),
            "nodes are nested more than 16 levels deep"
        );
        assert_eq!(
            malformed(&nested(10_000)),
            "nodes are nested more than 16 levels deep"
        );
    }

    // ------------------------------------------------------------ content

    #[test]
    fn missing_cpus() {
        assert_eq!(
            parse_spec(&Spec {
                cpus: None,
                ..Spec::default()
            }),
            Err(DtbError::NoCpus)
        );
        assert_eq!(
            parse_spec(&Spec {
                cpus: Some(vec![]),
                ..Spec::default()
            }),
            Err(DtbError::NoCpus)
        );
    }

    #[test]
    fn cpu_counts_and_ids() {
        let nine: Vec<u64> = (0..9).collect();
        assert_eq!(
            parse_spec(&Spec {
                cpus: Some(nine),
                ..Spec::default()
            }),
            Err(DtbError::TooManyCpus(9))
        );
        let eight: Vec<u64> = (0..8).map(|i| 0x100 | i).collect();
        let p = parse_spec(&Spec {
            cpus: Some(eight.clone()),
            ..Spec::default()
        })
        .unwrap();
        assert_eq!(p.cpus(), &eight[..]);
        assert_eq!(p.cpu_index(0x8000_0103), Some(3));
        assert_eq!(
            p.cpu_index(0x8100_0103),
            Some(3),
            "U and MT bits are not affinity"
        );
        assert_eq!(p.cpu_index(0x3), None);
        // A guest's target must carry the affinity fields and nothing else.
        assert_eq!(p.target_index(0x103), Some(3));
        for bad in [
            0x8000_0103u64,
            0x4000_0103,
            0x0100_0103,
            0x100_0000_0103,
            0x8000_0000_0000_0103,
            u64::MAX,
        ] {
            assert_eq!(p.target_index(bad), None, "{bad:#x}");
        }

        assert_eq!(
            parse_spec(&Spec {
                cpus: Some(vec![0, 1, 1]),
                ..Spec::default()
            }),
            Err(DtbError::DuplicateCpu(1))
        );
        // Two-cell reg with Aff3.
        let spec = Spec {
            cpus: Some(vec![0x12_0000_0001, 0x12_0000_0002]),
            cpu_address_cells: 2,
            ..Spec::default()
        };
        assert_eq!(
            parse_spec(&spec).unwrap().cpus(),
            &[0x12_0000_0001, 0x12_0000_0002]
        );
        // Bits outside the affinity fields do not belong in a cpu reg.
        let spec = Spec {
            cpus: Some(vec![0x8000_0000]),
            ..Spec::default()
        };
        assert_eq!(
            parse_spec(&spec),
            Err(DtbError::BadProperty {
                node: "cpu",
                property: "reg"
            })
        );
        let spec = Spec {
            cpus: Some(vec![0]),
            cpu_address_cells: 2,
            ..Spec::default()
        };
        let mut blob = build(&spec);
        // Make /cpus #address-cells say 3.
        let cpus_cells = tokens(&blob)
            .into_iter()
            .rev()
            .find(|t| {
                t.1 == FDT_PROP && get_be32(&blob, t.0 + 4) == 4 && get_be32(&blob, t.0 + 12) == 2
            })
            .unwrap();
        set_be32(&mut blob, cpus_cells.0 + 12, 3);
        assert_eq!(
            parse_blob(&blob),
            Err(DtbError::BadProperty {
                node: "cpu",
                property: "#address-cells"
            })
        );
    }

    #[test]
    fn memory_nodes() {
        assert_eq!(
            parse_spec(&Spec {
                memory: vec![],
                ..Spec::default()
            }),
            Err(DtbError::NoMemory)
        );
        assert_eq!(
            parse_spec(&Spec {
                memory: vec![(0x4000_0000, 0)],
                ..Spec::default()
            }),
            Err(DtbError::NoMemory)
        );
        let spec = Spec {
            memory: vec![(0x1_0000_0000, GIB), (0x4000_0000, 0), (0x4000_0000, GIB)],
            ..Spec::default()
        };
        assert_eq!(
            parse_spec(&spec).unwrap().memory(),
            &[Range::new(0x4000_0000, GIB), Range::new(0x1_0000_0000, GIB)]
        );
        let spec = Spec {
            memory: vec![(0x4000_0000, GIB), (0x7000_0000, GIB)],
            ..Spec::default()
        };
        assert_eq!(
            parse_spec(&spec),
            Err(DtbError::OverlappingMemory(Range::new(0x7000_0000, GIB)))
        );
        let nine: Vec<(u64, u64)> = (0..9)
            .map(|i| (0x4000_0000 + i * 0x100_0000, 0x1000))
            .collect();
        assert_eq!(
            parse_spec(&Spec {
                memory: nine,
                ..Spec::default()
            }),
            Err(DtbError::TooManyMemoryRanges(9))
        );
        let spec = Spec {
            memory: vec![(u64::MAX - 0xfff, 0x2000)],
            ..Spec::default()
        };
        assert_eq!(
            parse_spec(&spec),
            Err(DtbError::BadProperty {
                node: "memory",
                property: "reg"
            })
        );

        // Several pairs in one node.
        let mut b = Builder::new();
        b.begin("")
            .prop_u32("#address-cells", 2)
            .prop_u32("#size-cells", 2);
        b.begin("memory@0")
            .prop_str("device_type", "memory")
            .prop_cells("reg", &reg(&[(0x8000_0000, GIB), (0x4000_0000, GIB)], 2, 2))
            .end();
        b.end();
        let mut scratch = vec![0u8; SCRATCH];
        let layout = validate_guest(
            &b.finish(),
            &mut scratch,
            &[Range::new(0, 4 * GIB)],
            Range::new(0, 0x1000),
            &[0],
            &Grant::new(),
        );
        assert_eq!(layout, Err(DtbError::NoCpus));
    }

    #[test]
    fn reg_layouts() {
        // #address-cells = <1>, #size-cells = <1> at the root.
        let p = parse_spec(&Spec {
            root_cells: Some((1, 1)),
            ..Spec::default()
        })
        .unwrap();
        assert_eq!(p.memory(), &[Range::new(0x4000_0000, GIB)]);
        assert_eq!(p.gicr, Range::new(0x080a_0000, 0xf6_0000));
        assert_eq!(p.uart, Range::new(0x0900_0000, 0x1000));
        // Missing cell properties default to 2 and 1.
        let p = parse_spec(&Spec {
            root_cells: None,
            ..Spec::default()
        })
        .unwrap();
        assert_eq!(p.memory(), &[Range::new(0x4000_0000, GIB)]);
        assert_eq!(p.gicd, Range::new(0x0800_0000, 0x1_0000));
        // Unsupported cell counts.
        assert_eq!(
            parse_spec(&Spec {
                root_cells: Some((3, 2)),
                ..Spec::default()
            }),
            Err(DtbError::BadProperty {
                node: "memory",
                property: "#address-cells"
            })
        );
        assert_eq!(
            parse_spec(&Spec {
                root_cells: Some((2, 3)),
                ..Spec::default()
            }),
            Err(DtbError::BadProperty {
                node: "memory",
                property: "#size-cells"
            })
        );
        // reg values that are not whole (address, size) pairs for 2+2
        // cells, or absent.
        let memory_with = |value: Option<&[u32]>| {
            let mut b = Builder::new();
            b.begin("")
                .prop_u32("#address-cells", 2)
                .prop_u32("#size-cells", 2);
            b.begin("memory@40000000").prop_str("device_type", "memory");
            if let Some(v) = value {
                b.prop_cells("reg", v);
            }
            b.end().end();
            parse_blob(&b.finish())
        };
        let bad_reg = Err(DtbError::BadProperty {
            node: "memory",
            property: "reg",
        });
        assert_eq!(memory_with(Some(&[0, 0x4000_0000, 0])), bad_reg);
        assert_eq!(memory_with(Some(&[0, 0x4000_0000, 0, 0x1000, 0])), bad_reg);
        assert_eq!(memory_with(Some(&[])), bad_reg);
        assert_eq!(memory_with(None), bad_reg);
        assert_eq!(
            memory_with(Some(&[0, 0x4000_0000, 0, 0x1000])),
            Err(DtbError::NoCpus)
        );
        let blob = build(&Spec::default());
        let mut odd = blob.clone();
        // The root's first property is #address-cells; make it 2 bytes.
        let (first_prop, _) = tokens(&blob).into_iter().find(|t| t.1 == FDT_PROP).unwrap();
        set_be32(&mut odd, first_prop + 4, 2);
        assert_eq!(
            parse_blob(&odd),
            Err(DtbError::BadProperty {
                node: "memory",
                property: "#address-cells"
            })
        );
    }

    /// A tree whose GIC and UART sit under a `/soc` bus.
    fn soc_tree(ranges: Option<&[u32]>) -> Vec<u8> {
        let mut b = Builder::new();
        b.begin("")
            .prop_u32("#address-cells", 2)
            .prop_u32("#size-cells", 2);
        b.begin("memory@40000000")
            .prop_str("device_type", "memory")
            .prop_cells("reg", &reg(&[(0x4000_0000, GIB)], 2, 2))
            .end();
        b.begin("psci")
            .prop_str("compatible", "arm,psci-0.2")
            .prop_str("method", "hvc")
            .end();
        b.begin("cpus")
            .prop_u32("#address-cells", 1)
            .prop_u32("#size-cells", 0);
        b.begin("cpu@0")
            .prop_str("device_type", "cpu")
            .prop_u32("reg", 0)
            .end();
        b.end();
        b.begin("soc")
            .prop_u32("#address-cells", 1)
            .prop_u32("#size-cells", 1);
        if let Some(r) = ranges {
            b.prop_cells("ranges", r);
        }
        b.begin("interrupt-controller@0")
            .prop_str("compatible", "arm,gic-v3")
            .prop_cells("reg", &[0x0, 0x1_0000, 0xa_0000, 0xf6_0000])
            .end();
        b.begin("serial@1000000")
            .prop_str("compatible", "arm,pl011")
            .prop_cells("reg", &[0x100_0000, 0x1000])
            .end();
        b.end();
        b.end();
        b.finish()
    }

    #[test]
    fn bus_ranges_are_translated() {
        // child 0.. -> parent 0x0800_0000.., 32 MiB.
        let p = parse_blob(&soc_tree(Some(&[0, 0, 0x0800_0000, 0x200_0000]))).unwrap();
        assert_eq!(p.gicd, Range::new(0x0800_0000, 0x1_0000));
        assert_eq!(p.gicr, Range::new(0x080a_0000, 0xf6_0000));
        assert_eq!(p.uart, Range::new(0x0900_0000, 0x1000));
        assert_eq!(p.psci, PsciMethod::Hvc);
        assert_eq!(p.bootargs(), "");
        assert_eq!(p.initrd, None);
        // Empty ranges: identity.
        let p = parse_blob(&soc_tree(Some(&[]))).unwrap();
        assert_eq!(p.gicd, Range::new(0, 0x1_0000));
        // No ranges: not memory-mapped.
        let ranges_err = Err(DtbError::BadProperty {
            node: "GICv3",
            property: "ranges",
        });
        assert_eq!(parse_blob(&soc_tree(None)), ranges_err);
        // A window that does not cover the registers.
        assert_eq!(
            parse_blob(&soc_tree(Some(&[0, 0, 0x0800_0000, 0x1000]))),
            ranges_err
        );
        // Malformed ranges length.
        assert_eq!(
            parse_blob(&soc_tree(Some(&[0, 0, 0x0800_0000]))),
            ranges_err
        );
        // Translation that overflows.
        assert_eq!(
            parse_blob(&soc_tree(Some(&[0, 0xffff_ffff, 0xffff_0000, 0x200_0000]))),
            ranges_err
        );
    }

    #[test]
    fn gic() {
        assert_eq!(
            parse_spec(&Spec {
                gic: false,
                ..Spec::default()
            }),
            Err(DtbError::NoGicV3)
        );
        let mut b = Builder::new();
        b.begin("")
            .prop_u32("#address-cells", 1)
            .prop_u32("#size-cells", 1);
        b.begin("memory")
            .prop_str("device_type", "memory")
            .prop_cells("reg", &[0x4000_0000, 0x1000])
            .end();
        b.begin("cpus")
            .prop_u32("#address-cells", 1)
            .prop_u32("#size-cells", 0);
        b.begin("cpu@0")
            .prop_str("device_type", "cpu")
            .prop_u32("reg", 0)
            .end()
            .end();
        let base = b.structure.clone();
        // Only a distributor.
        b.begin("intc")
            .prop_str("compatible", "arm,gic-v3")
            .prop_cells("reg", &[0x0800_0000, 0x1_0000])
            .end()
            .end();
        assert_eq!(
            parse_blob(&b.finish()),
            Err(DtbError::BadProperty {
                node: "GICv3",
                property: "reg"
            })
        );
        // A zero-sized redistributor region.
        b.structure = base.clone();
        b.begin("intc")
            .prop_str("compatible", "arm,gic-v3")
            .prop_cells("reg", &[0x0800_0000, 0x1_0000, 0x080a_0000, 0])
            .end()
            .end();
        assert_eq!(
            parse_blob(&b.finish()),
            Err(DtbError::BadProperty {
                node: "GICv3",
                property: "reg"
            })
        );
        // A disabled GIC does not count; a GICv2 is not a GICv3.
        b.structure = base.clone();
        b.begin("intc@1")
            .prop_str("compatible", "arm,gic-v3")
            .prop_str("status", "disabled")
            .prop_cells("reg", &[0x1000_0000, 0x1_0000, 0x1100_0000, 0x2_0000])
            .end();
        b.begin("intc@2")
            .prop_str("compatible", "arm,cortex-a15-gic")
            .prop_cells("reg", &[0x2000_0000, 0x1000, 0x2001_0000, 0x1000])
            .end();
        b.end();
        assert_eq!(parse_blob(&b.finish()), Err(DtbError::NoGicV3));
    }

    #[test]
    fn psci() {
        assert_eq!(
            parse_spec(&Spec {
                psci: false,
                ..Spec::default()
            }),
            Err(DtbError::NoPsci)
        );
        for method in [Some("foo"), Some(""), Some("smcc"), None] {
            let spec = Spec {
                psci_method: method,
                ..Spec::default()
            };
            assert_eq!(
                parse_spec(&spec),
                Err(DtbError::BadPsciMethod),
                "{method:?}"
            );
        }
        let spec = Spec {
            psci_method: Some("hvc"),
            ..Spec::default()
        };
        assert_eq!(parse_spec(&spec).unwrap().psci, PsciMethod::Hvc);
    }

    #[test]
    fn uart_selection() {
        assert_eq!(
            parse_spec(&Spec {
                uart: false,
                ..Spec::default()
            }),
            Err(DtbError::NoUart)
        );
        let tree = |stdout: &str, aliases: bool, first_status: &str| {
            let mut b = Builder::new();
            b.begin("")
                .prop_u32("#address-cells", 1)
                .prop_u32("#size-cells", 1);
            b.begin("memory")
                .prop_str("device_type", "memory")
                .prop_cells("reg", &[0x4000_0000, 0x1000])
                .end();
            b.begin("cpus")
                .prop_u32("#address-cells", 1)
                .prop_u32("#size-cells", 0);
            b.begin("cpu@0")
                .prop_str("device_type", "cpu")
                .prop_u32("reg", 0)
                .end()
                .end();
            b.begin("gic")
                .prop_str("compatible", "arm,gic-v3")
                .prop_cells("reg", &[1 << 20, 0x1000, 2 << 20, 0x1000])
                .end();
            b.begin("psci")
                .prop_str("compatible", "arm,psci")
                .prop_str("method", "smc")
                .end();
            if aliases {
                b.begin("aliases")
                    .prop_str("serial1", "/uart@2000")
                    .prop_str("loop", "loop")
                    .end();
            }
            b.begin("uart@1000")
                .prop_str("compatible", "arm,pl011")
                .prop_str("status", first_status)
                .prop_cells("reg", &[0x1000, 0x100])
                .end();
            b.begin("uart@2000")
                .prop_str("compatible", "arm,pl011")
                .prop_cells("reg", &[0x2000, 0x100])
                .end();
            b.begin("rtc@3000")
                .prop_str("compatible", "arm,pl031")
                .prop_cells("reg", &[0x3000, 0x100])
                .end();
            b.begin("chosen").prop_str("stdout-path", stdout).end();
            b.end();
            parse_blob(&b.finish()).map(|p| p.uart.base)
        };
        assert_eq!(tree("/uart@2000", false, "okay"), Ok(0x2000));
        assert_eq!(tree("/uart@2000:115200n8", false, "okay"), Ok(0x2000));
        assert_eq!(tree("serial1:115200n8", true, "okay"), Ok(0x2000));
        assert_eq!(
            tree("serial1", false, "okay"),
            Ok(0x1000),
            "no /aliases: first PL011"
        );
        assert_eq!(
            tree("loop", true, "okay"),
            Ok(0x1000),
            "aliases are not followed twice"
        );
        assert_eq!(
            tree("/rtc@3000", false, "okay"),
            Ok(0x1000),
            "not a PL011: first PL011"
        );
        assert_eq!(tree("/nowhere", false, "okay"), Ok(0x1000));
        assert_eq!(tree("/", false, "okay"), Ok(0x1000));
        assert_eq!(
            tree("/rtc@3000", false, "disabled"),
            Ok(0x2000),
            "disabled PL011 skipped"
        );
        assert_eq!(tree("/uart@1000", false, "disabled"), Ok(0x2000));
    }

    #[test]
    fn the_uart_interrupt_is_the_chosen_uarts_spi() {
        let tree = |stdout: &str, second: &[u32]| {
            let mut b = Builder::new();
            b.begin("")
                .prop_u32("#address-cells", 1)
                .prop_u32("#size-cells", 1);
            b.begin("memory")
                .prop_str("device_type", "memory")
                .prop_cells("reg", &[0x4000_0000, 0x1000_0000])
                .end();
            b.begin("cpus")
                .prop_u32("#address-cells", 1)
                .prop_u32("#size-cells", 0)
                .begin("cpu@0")
                .prop_str("device_type", "cpu")
                .prop_u32("reg", 0)
                .end()
                .end();
            b.begin("gic")
                .prop_str("compatible", "arm,gic-v3")
                .prop_cells("reg", &[1 << 20, 0x1000, 2 << 20, 0x1000])
                .end();
            b.begin("psci")
                .prop_str("compatible", "arm,psci")
                .prop_str("method", "smc")
                .end();
            b.begin("uart@1000")
                .prop_str("compatible", "arm,pl011")
                .prop_cells("reg", &[0x1000, 0x100])
                .prop_cells("interrupts", &[0, 5, 4])
                .end();
            b.begin("uart@2000")
                .prop_str("compatible", "arm,pl011")
                .prop_cells("reg", &[0x2000, 0x100]);
            if !second.is_empty() {
                b.prop_cells("interrupts", second);
            }
            b.end();
            b.begin("chosen").prop_str("stdout-path", stdout).end();
            b.end();
            parse_blob(&b.finish()).map(|p| (p.uart.base, p.uart_intid))
        };
        assert_eq!(tree("/nowhere", &[0, 7, 4]), Ok((0x1000, Some(37))));
        assert_eq!(tree("/uart@2000", &[0, 7, 4]), Ok((0x2000, Some(39))));
        assert_eq!(tree("/uart@2000", &[]), Ok((0x2000, None)), "no interrupts");
        assert_eq!(tree("/uart@2000", &[1, 7, 4]), Ok((0x2000, None)), "a PPI");
        assert_eq!(
            tree("/uart@2000", &[0, 988, 4]),
            Ok((0x2000, None)),
            "past SPIs"
        );
        assert_eq!(tree("/uart@2000", &[0, 7]), Ok((0x2000, None)), "short");
    }

    #[test]
    fn bootargs() {
        let with = |args: Option<Vec<u8>>| {
            parse_spec(&Spec {
                bootargs: args,
                ..Spec::default()
            })
        };
        assert_eq!(
            with(Some(vec![b'a'; MAX_BOOTARGS + 1])),
            Err(DtbError::BootargsTooLong(MAX_BOOTARGS + 1))
        );
        let p = with(Some(vec![b'a'; MAX_BOOTARGS])).unwrap();
        assert_eq!(p.bootargs().len(), MAX_BOOTARGS);
        assert_eq!(with(None).unwrap().bootargs(), "");
        assert_eq!(with(Some(vec![])).unwrap().bootargs(), "");
        let p = with(Some(b"a\xffb".to_vec())).unwrap();
        assert_eq!((p.bootargs(), p.bootargs_len), ("", 3));
        // Missing /chosen altogether.
        let mut b = Builder::new();
        b.begin("")
            .prop_u32("#address-cells", 1)
            .prop_u32("#size-cells", 1);
        b.begin("m")
            .prop_str("device_type", "memory")
            .prop_cells("reg", &[0x4000_0000, 0x1000])
            .end();
        b.begin("cpus")
            .prop_u32("#address-cells", 1)
            .prop_u32("#size-cells", 0);
        b.begin("cpu@0")
            .prop_str("device_type", "cpu")
            .prop_u32("reg", 0)
            .end()
            .end();
        b.begin("gic")
            .prop_str("compatible", "arm,gic-v3")
            .prop_cells("reg", &[1 << 20, 0x1000, 2 << 20, 0x1000])
            .end();
        b.begin("psci")
            .prop_str("compatible", "arm,psci")
            .prop_str("method", "smc")
            .end();
        b.begin("uart")
            .prop_str("compatible", "arm,pl011")
            .prop_cells("reg", &[0x1000, 0x100])
            .end();
        b.end();
        let p = parse_blob(&b.finish()).unwrap();
        assert_eq!((p.bootargs(), p.initrd, p.uart.base), ("", None, 0x1000));
    }

    #[test]
    fn initrd() {
        let with = |initrd| {
            parse_spec(&Spec {
                initrd,
                ..Spec::default()
            })
            .map(|p| p.initrd)
        };
        assert_eq!(with(Some((0x4800_0000, 0x4800_0000))), Ok(None));
        assert_eq!(
            with(Some((0x1_4800_0000, 0x1_4900_0000))),
            Ok(Some(Range::new(0x1_4800_0000, 0x100_0000)))
        );
        assert_eq!(
            with(Some((0x4800_1000, 0x4800_0000))),
            Err(DtbError::BadProperty {
                node: "/chosen",
                property: "linux,initrd-end"
            })
        );
        let chosen_props = |props: &[(&str, &[u32])]| {
            let mut b = Builder::new();
            b.begin("")
                .prop_u32("#address-cells", 1)
                .prop_u32("#size-cells", 1);
            b.begin("m")
                .prop_str("device_type", "memory")
                .prop_cells("reg", &[0x4000_0000, 0x1000])
                .end();
            b.begin("cpus")
                .prop_u32("#address-cells", 1)
                .prop_u32("#size-cells", 0);
            b.begin("cpu@0")
                .prop_str("device_type", "cpu")
                .prop_u32("reg", 0)
                .end()
                .end();
            b.begin("gic")
                .prop_str("compatible", "arm,gic-v3")
                .prop_cells("reg", &[1 << 20, 0x1000, 2 << 20, 0x1000])
                .end();
            b.begin("psci")
                .prop_str("compatible", "arm,psci")
                .prop_str("method", "smc")
                .end();
            b.begin("uart")
                .prop_str("compatible", "arm,pl011")
                .prop_cells("reg", &[0x1000, 0x100])
                .end();
            b.begin("chosen");
            for (name, value) in props {
                b.prop_cells(name, value);
            }
            b.end().end();
            parse_blob(&b.finish()).map(|p| p.initrd)
        };
        assert_eq!(
            chosen_props(&[
                ("linux,initrd-start", &[0x4800_0000]),
                ("linux,initrd-end", &[0x4800_0800])
            ]),
            Ok(Some(Range::new(0x4800_0000, 0x800)))
        );
        assert_eq!(
            chosen_props(&[("linux,initrd-start", &[0x4800_0000])]),
            Err(DtbError::BadProperty {
                node: "/chosen",
                property: "linux,initrd-end"
            })
        );
        assert_eq!(
            chosen_props(&[("linux,initrd-end", &[0x4800_0000])]),
            Err(DtbError::BadProperty {
                node: "/chosen",
                property: "linux,initrd-start"
            })
        );
        assert_eq!(
            chosen_props(&[
                ("linux,initrd-start", &[0, 0, 1]),
                ("linux,initrd-end", &[1])
            ]),
            Err(DtbError::BadProperty {
                node: "/chosen",
                property: "linux,initrd-start"
            })
        );
    }

    // -------------------------------------------------------------- guest

    const RAM: [Range; 1] = [Range::new(0x4000_0000, 2 * GIB)];
    const HYP: Range = Range::new(0x4008_0000, 62 << 20);

    fn guest(memory: Vec<(u64, u64)>, cpus: Vec<u64>) -> Result<GuestLayout, DtbError> {
        let mut b = Builder::new();
        b.begin("")
            .prop_u32("#address-cells", 2)
            .prop_u32("#size-cells", 2);
        for (base, size) in memory {
            b.begin(&format!("memory@{base:x}"))
                .prop_str("device_type", "memory")
                .prop_cells("reg", &reg(&[(base, size)], 2, 2))
                .end();
        }
        b.begin("cpus")
            .prop_u32("#address-cells", 1)
            .prop_u32("#size-cells", 0);
        for (i, mpidr) in cpus.into_iter().enumerate() {
            b.begin(&format!("cpu@{i}"))
                .prop_str("device_type", "cpu")
                .prop_cells("reg", &cells(mpidr, 1))
                .end();
        }
        b.end().end();
        let mut scratch = vec![0u8; SCRATCH];
        validate_guest(
            &b.finish(),
            &mut scratch,
            &RAM,
            HYP,
            &[0, 1, 2, 3],
            &Grant::new(),
        )
    }

    #[test]
    fn guest_validation() {
        let layout = guest(
            vec![(0x6000_0000, 0x1000_0000), (0x4400_0000, 0x400_0000)],
            vec![2, 0],
        )
        .unwrap();
        assert_eq!(
            layout.memory(),
            &[
                Range::new(0x4400_0000, 0x400_0000),
                Range::new(0x6000_0000, 0x1000_0000)
            ]
        );
        assert_eq!(layout.cpus(), &[2, 0]);
        assert!(layout.contains(&Range::new(0x6000_1000, 0x1000)));
        assert!(
            !layout.contains(&Range::new(0x47ff_f000, 0x2000)),
            "straddles two ranges"
        );
        assert!(!layout.contains(&Range::new(0x5000_0000, 0x1000)));

        let r = Range::new(0x4000_0000, 0x1000_0000);
        assert_eq!(
            guest(vec![(r.base, r.size)], vec![0]),
            Err(DtbError::GuestMemoryOverlapsHypervisor(r))
        );
        let r = Range::new(HYP.end() - 0x1000, 0x2000);
        assert_eq!(
            guest(vec![(r.base, r.size)], vec![0]),
            Err(DtbError::GuestMemoryOverlapsHypervisor(r))
        );
        let r = Range::new(0xc000_0000, 0x1000);
        assert_eq!(
            guest(vec![(r.base, r.size)], vec![0]),
            Err(DtbError::GuestMemoryOutsideRam(r))
        );
        let r = Range::new(0xbfff_f000, 0x2000);
        assert_eq!(
            guest(vec![(r.base, r.size)], vec![0]),
            Err(DtbError::GuestMemoryOutsideRam(r))
        );
        let r = Range::new(0x1000, 0x1000);
        assert_eq!(
            guest(vec![(r.base, r.size)], vec![0]),
            Err(DtbError::GuestMemoryOutsideRam(r))
        );
        assert_eq!(
            guest(vec![(0x5000_0000, 0x1000)], vec![0, 4]),
            Err(DtbError::GuestCpuUnknown(4))
        );
        assert_eq!(
            guest(vec![(0x5000_0000, 0x1000)], vec![0, 0]),
            Err(DtbError::DuplicateCpu(0))
        );
        assert_eq!(
            guest(vec![(0x5000_0000, 0x1000)], vec![]),
            Err(DtbError::NoCpus)
        );
        assert_eq!(guest(vec![], vec![0]), Err(DtbError::NoMemory));
        assert_eq!(
            guest(vec![(0x5000_0000, 0x1000)], (0..9).collect()),
            Err(DtbError::TooManyCpus(9))
        );

        // QEMU's own tree as a guest tree is refused: it describes devices
        // the machine does not grant (the first in tree order is the
        // platform bus's neighbour fw_cfg; the platform bus has no reg).
        let mut scratch = vec![0u8; SCRATCH];
        let ram = [Range::new(0x4000_0000, 2 * GIB)];
        let hyp = Range::new(0x8000_0000, 0x100_0000);
        let grant = parse_blob(SMP4).unwrap().grant;
        match validate_guest(SMP4, &mut scratch, &ram, hyp, &[0, 1, 2, 3], &grant) {
            Err(DtbError::GuestDeviceNotGranted { node, base, why }) => {
                assert_eq!(node.as_str(), "fw-cfg@9020000");
                assert_eq!(base, 0x0902_0000);
                assert!(why.contains("physical address"), "{why}");
            }
            other => panic!("QEMU's whole tree accepted as a guest tree: {other:?}"),
        }
        // The same tree pruned to the grant is accepted.
        let layout =
            validate_guest(SMP4_GRANTED, &mut scratch, &ram, hyp, &[0, 1, 2, 3], &grant).unwrap();
        assert_eq!(layout.cpus(), &[0, 1, 2, 3]);
        assert!(matches!(
            validate_guest(SMP8_NOP, &mut scratch, &ram, hyp, &[0, 1, 2, 3], &grant),
            Err(DtbError::GuestCpuUnknown(4))
        ));
        // A guest DTB without GIC/PSCI/UART (which parse would refuse).
        assert!(guest(vec![(0x5000_0000, 0x1000)], vec![3]).is_ok());
        // Structural checks apply to guests as well.
        let mut broken = SMP4_GRANTED.to_vec();
        let (at, _) = tokens(&broken)[3];
        set_be32(&mut broken, at, 7);
        assert!(matches!(
            validate_guest(&broken, &mut scratch, &ram, hyp, &[0, 1, 2, 3], &grant),
            Err(DtbError::Malformed(_))
        ));
        assert_eq!(
            validate_guest(&[], &mut scratch, &ram, hyp, &[0], &grant),
            Err(DtbError::NotFound)
        );
    }

    // -------------------------------------------------------------- grant

    #[test]
    fn the_machine_grant_from_qemus_tree() {
        let p = parse_blob(SMP4).unwrap();
        let regions: Vec<_> = p.grant.regions().copied().collect();
        assert_eq!(
            regions,
            [
                grant::Region {
                    device: Device::Gic,
                    access: Access::Emulated,
                    range: Range::new(0x0800_0000, 0x1_0000)
                },
                grant::Region {
                    device: Device::Gic,
                    access: Access::Emulated,
                    range: Range::new(0x080a_0000, 0xf6_0000)
                },
                grant::Region {
                    device: Device::Uart,
                    access: Access::Emulated,
                    range: Range::new(0x0900_0000, 0x1000)
                },
                grant::Region {
                    device: Device::Rtc,
                    access: Access::PassThrough,
                    range: Range::new(0x0901_0000, 0x1000)
                },
            ]
        );
        // Only the RTC reaches stage 2; fw_cfg, flash, virtio, PCIe never.
        assert_eq!(p.grant.passed_through().count(), 1);
    }

    /// A guest tree with 1 GiB of RAM at 0x4400_0000, one CPU, and
    /// `devices` (name, compatible, reg entries, status) at the root, or
    /// under `bus` (its `ranges`, if any: `Some(&[])` is the identity).
    fn guest_with(
        devices: &[(&str, &str, &[(u64, u64)], &str)],
        bus: Option<Option<&[u32]>>,
    ) -> Vec<u8> {
        let mut b = Builder::new();
        b.begin("")
            .prop_u32("#address-cells", 2)
            .prop_u32("#size-cells", 2);
        b.begin("memory@44000000")
            .prop_str("device_type", "memory")
            .prop_cells("reg", &reg(&[(0x4400_0000, GIB)], 2, 2))
            .end();
        b.begin("cpus")
            .prop_u32("#address-cells", 1)
            .prop_u32("#size-cells", 0);
        b.begin("cpu@0")
            .prop_str("device_type", "cpu")
            .prop_cells("reg", &[0])
            .end();
        b.end();
        if let Some(ranges) = bus {
            b.begin("soc")
                .prop_u32("#address-cells", 2)
                .prop_u32("#size-cells", 2);
            if let Some(r) = ranges {
                b.prop_cells("ranges", r);
            }
        }
        for &(name, compatible, regs, status) in devices {
            b.begin(name).prop_str("compatible", compatible);
            if !regs.is_empty() {
                b.prop_cells("reg", &reg(regs, 2, 2));
            }
            if !status.is_empty() {
                b.prop_str("status", status);
            }
            b.end();
        }
        if bus.is_some() {
            b.end();
        }
        b.end();
        b.finish()
    }

    fn check_guest(blob: &[u8]) -> Result<GuestLayout, DtbError> {
        let grant = parse_blob(SMP4).unwrap().grant;
        let mut scratch = vec![0u8; SCRATCH];
        validate_guest(blob, &mut scratch, &RAM, HYP, &[0, 1, 2, 3], &grant)
    }

    fn refused_at(r: Result<GuestLayout, DtbError>) -> Option<(String, u64, &'static str)> {
        match r {
            Err(DtbError::GuestDeviceNotGranted { node, base, why }) => {
                Some((node.as_str().to_string(), base, why))
            }
            _ => None,
        }
    }

    #[test]
    fn guest_devices_must_be_granted_where_the_machine_has_them() {
        const GIC: (&str, &str, &[(u64, u64)], &str) = (
            "intc@8000000",
            "arm,gic-v3",
            &[(0x0800_0000, 0x1_0000), (0x080a_0000, 0xf6_0000)],
            "",
        );
        const UART: (&str, &str, &[(u64, u64)], &str) = (
            "pl011@9000000",
            "arm,pl011\0arm,primecell",
            &[(0x0900_0000, 0x1000)],
            "",
        );
        const RTC: (&str, &str, &[(u64, u64)], &str) = (
            "pl031@9010000",
            "arm,pl031\0arm,primecell",
            &[(0x0901_0000, 0x1000)],
            "",
        );
        const TIMER: (&str, &str, &[(u64, u64)], &str) = ("timer", "arm,armv8-timer", &[], "");
        assert!(check_guest(&guest_with(&[GIC, UART, RTC, TIMER], None)).is_ok());
        // The same devices behind a bus with identity ranges.
        assert!(check_guest(&guest_with(&[UART, RTC], Some(Some(&[])))).is_ok());

        // fw_cfg, with the reason.
        let fw_cfg = (
            "fw-cfg@9020000",
            "qemu,fw-cfg-mmio",
            &[(0x0902_0000u64, 0x18u64)][..],
            "",
        );
        let (node, base, why) =
            refused_at(check_guest(&guest_with(&[UART, fw_cfg], None))).unwrap();
        assert_eq!((node.as_str(), base), ("fw-cfg@9020000", 0x0902_0000));
        assert!(why.contains("DMA"), "{why}");
        // ...also when it hides behind a translating bus: soc 0 maps to 0x0900_0000.
        let hidden = (
            "dev@20000",
            "qemu,fw-cfg-mmio",
            &[(0x2_0000u64, 0x18u64)][..],
            "",
        );
        let ranges = [0, 0, 0, 0x0900_0000, 0, 0x10_0000];
        let (_, base, _) =
            refused_at(check_guest(&guest_with(&[hidden], Some(Some(&ranges))))).unwrap();
        assert_eq!(base, 0x0902_0000, "translated to the CPU's address");
        // ...but not when disabled, or on a bus that is not memory-mapped.
        let off = (
            "fw-cfg@9020000",
            "qemu,fw-cfg-mmio",
            &[(0x0902_0000u64, 0x18u64)][..],
            "disabled",
        );
        assert!(check_guest(&guest_with(&[off], None)).is_ok());
        assert!(check_guest(&guest_with(&[fw_cfg], Some(None))).is_ok());

        // A granted kind of device somewhere the machine has none of it.
        for bad in [
            (
                "pl031@9030000",
                "arm,pl031",
                &[(0x0903_0000u64, 0x1000u64)][..],
                "",
            ),
            (
                "pl031@9010000",
                "arm,pl031",
                &[(0x0901_0000, 0x2000)][..],
                "",
            ),
            (
                "pl011@9040000",
                "arm,pl011",
                &[(0x0904_0000, 0x1000)][..],
                "",
            ),
            // An RTC named at the UART's address: the UART is emulated, not an RTC.
            (
                "pl031@9000000",
                "arm,pl031",
                &[(0x0900_0000, 0x1000)][..],
                "",
            ),
        ] {
            let (_, _, why) = refused_at(check_guest(&guest_with(&[bad], None)))
                .unwrap_or_else(|| panic!("{} accepted", bad.0));
            assert!(why.contains("no such device"), "{why}");
        }
        // The GIC's GICv2-compatibility frames (FVP's GICC/GICH/GICV as reg
        // entries 2..4) are not granted.
        let gicv2 = (
            "intc@8000000",
            "arm,gic-v3",
            &[
                (0x0800_0000u64, 0x1_0000u64),
                (0x080a_0000, 0xf6_0000),
                (0x0801_0000, 0x1_0000),
            ][..],
            "",
        );
        let (_, base, _) = refused_at(check_guest(&guest_with(&[gicv2], None))).unwrap();
        assert_eq!(base, 0x0801_0000);
        // An unknown device.
        let virtio = (
            "virtio_mmio@a000000",
            "virtio,mmio",
            &[(0x0a00_0000u64, 0x200u64)][..],
            "",
        );
        assert!(refused_at(check_guest(&guest_with(&[virtio], None))).is_some());
        let other = (
            "thing@a000000",
            "acme,thing",
            &[(0x0a00_0000u64, 0x200u64)][..],
            "okay",
        );
        let (_, _, why) = refused_at(check_guest(&guest_with(&[other], None))).unwrap();
        assert!(why.contains("not in the grant policy"), "{why}");
    }

    /// An FVP Base-like tree: DRAM at 2 GiB, the GIC with its GICv2
    /// frames, and the motherboard peripherals behind a translating bus
    /// (UART0/1, RTC, watchdog, system registers), UART0 the console.
    /// `memory` is its one memory range, `gic_entries` how many `reg`
    /// entries the GIC node has, `devices` picks the bus children.
    fn fvp_tree(memory: (u64, u64), gic_entries: usize, devices: &[&str]) -> Vec<u8> {
        const GIC: [(u64, u64); 5] = [
            (0x2f00_0000, 0x1_0000),
            (0x2f10_0000, 0x20_0000),
            (0x2c00_0000, 0x2000),
            (0x2c01_0000, 0x2000),
            (0x2c02_f000, 0x2000),
        ];
        let all = [
            ("uart@90000", "arm,pl011\0arm,primecell", 0x9_0000u64),
            ("uart@a0000", "arm,pl011\0arm,primecell", 0xa_0000),
            ("rtc@170000", "arm,pl031\0arm,primecell", 0x17_0000),
            ("wdt@f0000", "arm,sp805\0arm,primecell", 0xf_0000),
            ("sysreg@10000", "arm,vexpress-sysreg", 0x1_0000),
        ];
        let mut b = Builder::new();
        b.begin("")
            .prop_u32("#address-cells", 2)
            .prop_u32("#size-cells", 2);
        b.begin(&format!("memory@{:x}", memory.0))
            .prop_str("device_type", "memory")
            .prop_cells("reg", &reg(&[memory], 2, 2))
            .end();
        b.begin("cpus")
            .prop_u32("#address-cells", 1)
            .prop_u32("#size-cells", 0);
        b.begin("cpu@0")
            .prop_str("device_type", "cpu")
            .prop_cells("reg", &[0])
            .end();
        b.end();
        b.begin("psci")
            .prop_str("compatible", "arm,psci-1.0")
            .prop_str("method", "smc")
            .end();
        b.begin("interrupt-controller@2f000000")
            .prop_str("compatible", "arm,gic-v3")
            .prop_cells("reg", &reg(&GIC[..gic_entries], 2, 2))
            .end();
        // The motherboard bus: its 0 is the CPU's 0x1c00_0000.
        b.begin("bus@1c000000")
            .prop_str("compatible", "simple-bus")
            .prop_u32("#address-cells", 1)
            .prop_u32("#size-cells", 1)
            .prop_cells("ranges", &[0, 0, 0x1c00_0000, 0x100_0000]);
        for (name, compatible, at) in all {
            if devices.iter().any(|d| name.starts_with(d)) {
                b.begin(name)
                    .prop_str("compatible", compatible)
                    .prop_cells("reg", &[at as u32, 0x1000])
                    .end();
            }
        }
        b.end();
        b.begin("chosen")
            .prop_str("stdout-path", "/bus@1c000000/uart@90000:38400n8")
            .end();
        b.end();
        b.finish()
    }

    #[test]
    fn fvp_grant_passes_the_rtc_only_and_never_the_gicv2_frames() {
        let machine = fvp_tree((0x8000_0000, 2 * GIB), 5, &["uart", "rtc", "wdt", "sysreg"]);
        let p = parse_blob(&machine).unwrap();
        assert_eq!(p.uart, Range::new(0x1c09_0000, 0x1000));
        let regions: Vec<_> = p.grant.regions().map(|r| (r.device, r.access, r.range.base)).collect();
        assert_eq!(
            regions,
            [
                (Device::Gic, Access::Emulated, 0x2f00_0000),
                (Device::Gic, Access::Emulated, 0x2f10_0000),
                (Device::Uart, Access::Emulated, 0x1c09_0000),
                (Device::Rtc, Access::PassThrough, 0x1c17_0000),
            ]
        );
        let s2 = crate::stage2::for_guest(&[Range::new(0x8400_0000, GIB)], &p.grant).unwrap();
        for (addr, mapped) in [
            (0x1c17_0000, true),   // RTC
            (0x1c09_0000, false),  // UART0: emulated
            (0x1c0a_0000, false),  // UART1
            (0x1c0f_0000, false),  // watchdog
            (0x1c01_0000, false),  // system registers
            (0x1c10_0000, false),  // power controller (not even in the tree)
            (0x2c00_0000, false),  // GICC
            (0x2c01_0000, false),  // GICH
            (0x2c02_f000, false),  // GICV
            (0x2f00_0000, false),  // GICD: emulated
        ] {
            assert_eq!(s2.translate(addr).is_some(), mapped, "{addr:#x}");
        }

        let mut scratch = vec![0u8; SCRATCH];
        let ram = [Range::new(0x8000_0000, 2 * GIB)];
        let hyp = Range::new(0x8000_0000, 0x400_0000);
        let mut check = |blob: &[u8]| {
            validate_guest(blob, &mut scratch, &ram, hyp, &[0], &p.grant).map(|_| ())
        };
        // A guest tree with the GIC's distributor and redistributors, UART0
        // and the RTC: granted.
        let guest = |gic, devices: &[&str]| fvp_tree((0x8400_0000, 0x7c00_0000), gic, devices);
        assert_eq!(check(&guest(2, &["uart@9", "rtc"])), Ok(()));
        let refused = |r: Result<(), DtbError>| match r {
            Err(DtbError::GuestDeviceNotGranted { base, why, .. }) => Some((base, why)),
            _ => None,
        };
        // The GICv2-compatibility frames.
        assert_eq!(
            refused(check(&guest(3, &[]))).map(|r| r.0),
            Some(0x2c00_0000)
        );
        for (dev, base, why) in [
            ("uart@a", 0x1c0a_0000, "no such device"),
            ("wdt", 0x1c0f_0000, "watchdog"),
            ("sysreg", 0x1c01_0000, "system registers"),
        ] {
            let (b, w) = refused(check(&guest(2, &[dev]))).unwrap();
            assert_eq!(b, base, "{dev}");
            assert!(w.contains(why), "{dev}: {w}");
        }
    }

    #[test]
    fn guest_trees_never_name_trace_hardware() {
        for c in [
            "arm,embedded-trace-extension",
            "arm,trbe",
            "arm,coresight-etm4x\0arm,primecell",
        ] {
            let blob = guest_with(&[("ete0", c, &[], "")], None);
            assert_eq!(
                check_guest(&blob),
                Err(DtbError::GuestTraceDevice(NodeName::new("ete0"))),
                "{c}"
            );
        }
        let msg = DtbError::GuestTraceDevice(NodeName::new("trbe")).to_string();
        assert!(msg.contains("trace hardware"), "{msg}");
    }

    #[test]
    fn node_names_are_cut_safely() {
        let long = "x".repeat(100);
        assert_eq!(NodeName::new(&long).as_str().len(), NodeName::MAX);
        let multi = format!("{}é", "a".repeat(NodeName::MAX - 1));
        assert_eq!(
            NodeName::new(&multi).as_str(),
            "a".repeat(NodeName::MAX - 1)
        );
    }

    // --------------------------------------------------------------- misc

    #[test]
    fn range_helpers() {
        let r = Range::new(0x1000, 0x1000);
        assert_eq!(r.end(), 0x2000);
        assert!(
            r.contains(0x1000) && r.contains(0x1fff) && !r.contains(0x2000) && !r.contains(0xfff)
        );
        assert!(r.contains_range(&r));
        assert!(r.contains_range(&Range::new(0x1800, 0x800)));
        assert!(!r.contains_range(&Range::new(0x1800, 0x801)));
        assert!(!r.contains_range(&Range::new(0xfff, 0x10)));
        assert!(r.overlaps(&Range::new(0x1fff, 1)) && r.overlaps(&Range::new(0, 0x1001)));
        assert!(!r.overlaps(&Range::new(0x2000, 1)) && !r.overlaps(&Range::new(0, 0x1000)));
        assert!(
            !r.overlaps(&Range::new(0x1800, 0)),
            "empty ranges overlap nothing"
        );
        assert_eq!(Range::new(u64::MAX - 1, 10).end(), u64::MAX);
        assert_eq!(format!("{r}"), "[0x1000, 0x2000)");
    }

    #[test]
    fn accessors_never_index_out_of_bounds() {
        let mut p = parse_blob(SMP4).unwrap();
        p.memory_count = 100;
        p.cpu_count = 100;
        p.bootargs_len = 1000;
        assert_eq!(p.memory().len(), MAX_MEMORY_RANGES);
        assert_eq!(p.cpus().len(), MAX_CPUS);
        assert_eq!(p.bootargs().len(), MAX_BOOTARGS, "clamped to the array");
    }

    #[test]
    fn every_error_has_a_sentence() {
        let r = Range::new(0x1000, 0x1000);
        let all = [
            DtbError::NotFound,
            DtbError::BadMagic(1),
            DtbError::BadVersion {
                version: 1,
                last_compatible: 1,
            },
            DtbError::Truncated {
                needed: 2,
                available: 1,
            },
            DtbError::TotalSizeTooLarge { size: 2, limit: 1 },
            DtbError::Malformed("x"),
            DtbError::TooLarge {
                size: 2,
                scratch: 1,
            },
            DtbError::NoMemory,
            DtbError::TooManyMemoryRanges(9),
            DtbError::OverlappingMemory(r),
            DtbError::NoCpus,
            DtbError::TooManyCpus(9),
            DtbError::DuplicateCpu(1),
            DtbError::NoGicV3,
            DtbError::NoPsci,
            DtbError::BadPsciMethod,
            DtbError::NoUart,
            DtbError::BadProperty {
                node: "memory",
                property: "reg",
            },
            DtbError::BootargsTooLong(300),
            DtbError::GuestMemoryOutsideRam(r),
            DtbError::GuestMemoryOverlapsHypervisor(r),
            DtbError::GuestCpuUnknown(4),
        ];
        let texts: Vec<String> = all.iter().map(|e| e.to_string()).collect();
        for t in &texts {
            assert!(
                t.starts_with("device tree: ") || t.starts_with("guest device tree: "),
                "{t}"
            );
            assert!(!t.ends_with('.') && !t.contains('\n'), "{t}");
        }
        let mut unique = texts.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), texts.len());
        assert_eq!(
            DtbError::NoCpus.to_string(),
            "device tree: /cpus is missing or has no cpu node"
        );
    }

    // ------------------------------------------------------------ fuzzing

    struct XorShift(u64);

    impl XorShift {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }

        fn below(&mut self, n: usize) -> usize {
            (self.next() % n.max(1) as u64) as usize
        }
    }

    /// One to three random damages to a copy of `base`.
    fn mutate(rng: &mut XorShift, base: &[u8]) -> Vec<u8> {
        let mut b = base.to_vec();
        let struct_start = get_be32(base, 8) as usize;
        let struct_end = struct_start + get_be32(base, 36) as usize;
        for _ in 0..1 + rng.below(3) {
            if b.len() < 48 {
                break;
            }
            let len = b.len();
            match rng.below(9) {
                0 => {
                    let at = rng.below(len);
                    b[at] ^= 1 + rng.below(255) as u8;
                }
                1 => b.truncate(rng.below(len + 1)),
                2 => {
                    // Truncate but keep the header consistent, so the
                    // damage reaches the block checks.
                    let new_len = 40 + rng.below(len - 40);
                    b.truncate(new_len);
                    set_be32(&mut b, 4, new_len as u32);
                }
                3 => {
                    let n = 1 + rng.below(64);
                    let from = rng.below(len - n);
                    let to = rng.below(len - n);
                    b.copy_within(from..from + n, to);
                }
                4 | 5 => {
                    // A structure-block word becomes a token or a small
                    // number: the damage the token walker must catch.
                    let words = struct_end.min(len).saturating_sub(struct_start) / 4;
                    let at = struct_start + 4 * rng.below(words);
                    let v = match rng.below(3) {
                        0 => 1 + rng.below(9) as u32,
                        1 => rng.below(64) as u32,
                        _ => rng.next() as u32,
                    };
                    if at + 4 <= len {
                        set_be32(&mut b, at, v);
                    }
                }
                6 => {
                    let field = 4 * rng.below(10);
                    let old = get_be32(&b, field);
                    let v = match rng.below(4) {
                        0 => old.wrapping_add(4 * rng.below(8) as u32).wrapping_sub(16),
                        1 => rng.below(len + 64) as u32,
                        2 => rng.next() as u32,
                        _ => 0,
                    };
                    set_be32(&mut b, field, v);
                }
                7 => {
                    // Insert or remove a word without fixing the header.
                    let at = struct_start + 4 * rng.below(len.saturating_sub(struct_start) / 4);
                    if at > len {
                        continue;
                    }
                    if rng.below(2) == 0 {
                        let w = (rng.next() as u32).to_be_bytes();
                        b.splice(at..at, w);
                    } else if at + 4 <= len {
                        b.drain(at..at + 4);
                    }
                }
                _ => {
                    // Set a property's length or name offset.
                    let props: Vec<usize> = tokens(base)
                        .iter()
                        .filter(|t| t.1 == FDT_PROP)
                        .map(|t| t.0)
                        .collect();
                    let at = props[rng.below(props.len())] + 4 + 4 * rng.below(2);
                    let v = match rng.below(3) {
                        0 => rng.below(16) as u32,
                        1 => rng.below(0x2000) as u32,
                        _ => rng.next() as u32,
                    };
                    if at + 4 <= len {
                        set_be32(&mut b, at, v);
                    }
                }
            }
        }
        b
    }

    /// `base` with `count` NOPs inserted before its token at `at`, header
    /// fixed up: the same tree.
    fn insert_nops(base: &[u8], at: usize, count: usize) -> Vec<u8> {
        let mut b = base.to_vec();
        b.splice(
            at..at,
            std::iter::repeat_n(FDT_NOP.to_be_bytes(), count).flatten(),
        );
        let grow = 4 * count as u32;
        for field in [4, 12, 36] {
            let v = get_be32(&b, field);
            set_be32(&mut b, field, v + grow);
        }
        b
    }

    #[test]
    fn random_damage_never_panics() {
        let ram = [Range::new(0x4000_0000, 2 * GIB)];
        let hyp = Range::new(0x8000_0000, 0x100_0000);
        let cpus = [0, 1, 2, 3, 4, 5, 6, 7];
        let mut scratch = vec![0u8; SCRATCH];
        let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
        let smp4_grant = parse(SMP4, &mut scratch).unwrap().grant;
        let mut rejected = 0;
        let mut accepted = 0;
        let mut guest_rejected = 0;
        const ROUNDS: usize = 24_000;
        for round in 0..ROUNDS {
            let base = if round % 2 == 0 { SMP4 } else { SMP8_NOP };
            let blob = mutate(&mut rng, base);
            match parse(&blob, &mut scratch) {
                Ok(p) => {
                    accepted += 1;
                    assert!(p.cpu_count <= MAX_CPUS && p.memory_count <= MAX_MEMORY_RANGES);
                    assert!(p.bootargs_len <= MAX_BOOTARGS);
                }
                Err(e) => {
                    rejected += 1;
                    let _ = e.to_string();
                }
            }
            if validate_guest(&blob, &mut scratch, &ram, hyp, &cpus, &smp4_grant).is_err() {
                guest_rejected += 1;
            }
            // A small scratch must fail cleanly too.
            let mut small = [0u8; 512];
            let _ = parse(&blob, &mut small);
        }
        println!("{ROUNDS} mutations: {accepted} accepted, {rejected} rejected, {guest_rejected} rejected as guest");
        assert!(rejected > ROUNDS / 3, "{rejected} rejected");
        assert!(
            accepted > ROUNDS / 50,
            "{accepted} accepted: damage should not always hit the header"
        );
        assert!(guest_rejected > ROUNDS / 3);

        // NOPs at any token boundary leave the tree unchanged.
        for base in [SMP4, SMP8_NOP] {
            let expected = parse_blob(base).unwrap();
            let toks = tokens(base);
            for _ in 0..500 {
                let (at, _) = toks[rng.below(toks.len())];
                let blob = insert_nops(base, at, 1 + rng.below(4));
                assert_eq!(parse(&blob, &mut scratch).as_ref(), Ok(&expected));
            }
        }
        assert!(parse(SMP4, &mut scratch).is_ok());
        let grant = parse(SMP4, &mut scratch).unwrap().grant;
        assert!(validate_guest(SMP4_GRANTED, &mut scratch, &ram, hyp, &cpus, &grant).is_ok());
        assert!(matches!(
            validate_guest(SMP8_NOP, &mut scratch, &ram, hyp, &cpus, &grant),
            Err(DtbError::GuestDeviceNotGranted { .. })
        ));
    }
}
