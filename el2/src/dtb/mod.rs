//! Reading flattened device trees (DTBs): the machine description QEMU hands
//! the hypervisor in x0, and the guest's own DTB that the hypervisor checks
//! before it starts the guest.
//!
//! Every blob goes through two stages. First [`sanitize`](mod@sanitize) walks the header,
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
//!
//! The files follow the data: `sanitize.rs` is that first stage, `scan.rs`
//! the one walk over the clean tree that finds memory, CPUs, the GIC, PSCI,
//! the console UART, the TRBE interrupt and the passed-through devices,
//! and `guest.rs` the checks a guest's tree must pass on top of that (its
//! RAM, its CPUs, and the grant). This file holds what callers see: the
//! entry points, what they return and how they fail. The address ranges and
//! CPU limits the whole hypervisor shares live in [`crate::platform`] and
//! are re-exported here.

use core::fmt;

use fdt::Fdt;

use crate::grant::{Access, Device, Grant};

pub use crate::platform::{Range, MAX_CPUS, MAX_MEMORY_RANGES, MPIDR_AFFINITY_MASK};

mod guest;
mod sanitize;
mod scan;
#[cfg(test)]
mod testutil;

use sanitize::{FDT_MAGIC, HEADER_V16_LEN};
use scan::{chosen_initrd, find_child, stdout_uart, string_prop};

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
    /// What of this machine a guest may be granted ([`crate::grant::POLICY`]
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
    /// not grant it (see [`crate::grant`]), or a granted kind of device somewhere
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

/// The blob validated and rebuilt without NOPs into `scratch`
/// ([`sanitize::sanitize`]), handed to the `fdt` crate: what both readers
/// below start from.
fn clean_tree<'s>(blob: &[u8], scratch: &'s mut [u8]) -> Result<Fdt<'s>, DtbError> {
    let len = sanitize::sanitize(blob, scratch)?;
    let clean = scratch
        .get(..len)
        .ok_or(DtbError::Malformed("rebuilt blob is out of bounds"))?;
    Fdt::new(clean).map_err(|_| DtbError::Malformed("rebuilt blob was refused"))
}

/// Parses the hypervisor's own DTB. The blob is validated and rebuilt
/// without NOPs into `scratch` (which needs room for the blob minus its
/// free space; about 9 KiB for QEMU virt), then read. `blob` may be longer
/// than the header's `totalsize`; the excess is ignored.
pub fn parse(blob: &[u8], scratch: &mut [u8]) -> Result<Platform, DtbError> {
    let fdt = clean_tree(blob, scratch)?;
    let root = fdt
        .all_nodes()
        .next()
        .ok_or(DtbError::Malformed("there is no root node"))?;

    let scan = scan::scan(root, true)?;
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
/// device ([`guest::check_devices`]). Trace hardware is refused wherever it
/// appears.
pub fn validate_guest(
    blob: &[u8],
    scratch: &mut [u8],
    ram: &[Range],
    hypervisor: Range,
    physical_cpus: &[u64],
    grant: &Grant,
) -> Result<GuestLayout, DtbError> {
    let fdt = clean_tree(blob, scratch)?;
    let root = fdt
        .all_nodes()
        .next()
        .ok_or(DtbError::Malformed("there is no root node"))?;

    let scan = scan::scan(root, false)?;
    let (memory, memory_count) = scan.memory()?;
    let (cpus, cpu_count) = scan.cpus()?;
    let layout = GuestLayout {
        memory,
        memory_count,
        cpus,
        cpu_count,
    };

    guest::check_layout(&layout, ram, hypervisor, physical_cpus)?;
    guest::check_devices(root, grant)?;
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

#[cfg(test)]
mod tests {
    use super::sanitize::{FDT_NOP, FDT_PROP};
    use super::testutil::*;
    use super::*;

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
    fn node_names_are_cut_safely() {
        let long = "x".repeat(100);
        assert_eq!(NodeName::new(&long).as_str().len(), NodeName::MAX);
        let multi = format!("{}é", "a".repeat(NodeName::MAX - 1));
        assert_eq!(
            NodeName::new(&multi).as_str(),
            "a".repeat(NodeName::MAX - 1)
        );
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
