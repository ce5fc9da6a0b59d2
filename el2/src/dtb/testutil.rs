//! What the unit tests of every stage share: the QEMU fixtures, a minimal
//! FDT writer ([`Builder`]) and a QEMU-virt-like tree with knobs to break
//! it ([`Spec`]). Test-only (`#[cfg(test)]` in `mod.rs`).

use super::sanitize::{FDT_BEGIN_NODE, FDT_END, FDT_END_NODE, FDT_MAGIC, FDT_NOP, FDT_PROP};
use super::{parse, DtbError, Platform};

/// `qemu-system-aarch64 -machine virt,virtualization=on,gic-version=3,dumpdtb=...
/// -cpu max -smp 4 -m 1G -kernel /dev/null -append "console=ttyAMA0 foo=bar"
/// -initrd <3000 bytes>` (QEMU 7.2), trailing free space trimmed.
pub(super) static SMP4: &[u8] = include_bytes!("testdata/qemu-virt-smp4.dtb");
/// The DTB QEMU 7.2 placed in guest RAM when given an -smp 8 dumped DTB
/// with `-dtb` and a raw kernel: libfdt edits left 54 FDT_NOP tokens.
pub(super) static SMP8_NOP: &[u8] = include_bytes!("testdata/qemu-virt-smp8-nop.dtb");
/// `qemu-virt-smp4.dtb` pruned to the grant, as the runner prunes.
pub(super) static SMP4_GRANTED: &[u8] = include_bytes!("testdata/qemu-virt-smp4-granted.dtb");

pub(super) const SCRATCH: usize = 64 * 1024;
pub(super) const GIB: u64 = 1 << 30;

pub(super) fn parse_blob(blob: &[u8]) -> Result<Platform, DtbError> {
    let mut scratch = vec![0u8; SCRATCH];
    parse(blob, &mut scratch)
}

pub(super) fn get_be32(blob: &[u8], at: usize) -> u32 {
    u32::from_be_bytes(blob[at..at + 4].try_into().unwrap())
}

pub(super) fn set_be32(blob: &mut [u8], at: usize, v: u32) {
    blob[at..at + 4].copy_from_slice(&v.to_be_bytes());
}

/// Offsets (from the start of the blob) and values of every token in a
/// well-formed blob's structure block.
pub(super) fn tokens(blob: &[u8]) -> Vec<(usize, u32)> {
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
pub(super) struct Builder {
    pub(super) structure: Vec<u8>,
    pub(super) strings: Vec<u8>,
    /// Put an FDT_NOP before every token and after every node.
    pub(super) nops: bool,
}

impl Builder {
    pub(super) fn new() -> Self {
        Self::default()
    }

    pub(super) fn with_nops(nops: bool) -> Self {
        Self {
            nops,
            ..Self::default()
        }
    }

    pub(super) fn word(&mut self, w: u32) -> &mut Self {
        self.structure.extend_from_slice(&w.to_be_bytes());
        self
    }

    pub(super) fn raw(&mut self, bytes: &[u8]) -> &mut Self {
        self.structure.extend_from_slice(bytes);
        self
    }

    pub(super) fn pad(&mut self) {
        while !self.structure.len().is_multiple_of(4) {
            self.structure.push(0);
        }
    }

    pub(super) fn nop(&mut self) -> &mut Self {
        if self.nops {
            self.word(FDT_NOP);
        }
        self
    }

    /// Opens the root (two address and size cells) with one memory range
    /// and one CPU (MPIDR 0), the prefix of the small test machines; the
    /// caller adds nodes and closes the root.
    pub(super) fn machine(&mut self, memory: (u64, u64)) -> &mut Self {
        self.begin("")
            .prop_u32("#address-cells", 2)
            .prop_u32("#size-cells", 2);
        self.begin(&format!("memory@{:x}", memory.0))
            .prop_str("device_type", "memory")
            .prop_cells("reg", &reg(&[memory], 2, 2))
            .end();
        self.begin("cpus")
            .prop_u32("#address-cells", 1)
            .prop_u32("#size-cells", 0);
        self.begin("cpu@0")
            .prop_str("device_type", "cpu")
            .prop_cells("reg", &[0])
            .end();
        self.end()
    }

    pub(super) fn begin(&mut self, name: &str) -> &mut Self {
        self.nop()
            .word(FDT_BEGIN_NODE)
            .raw(name.as_bytes())
            .raw(&[0]);
        self.pad();
        self.nop()
    }

    pub(super) fn end(&mut self) -> &mut Self {
        self.nop().word(FDT_END_NODE).nop()
    }

    pub(super) fn name_offset(&mut self, name: &str) -> u32 {
        let mut key = name.as_bytes().to_vec();
        key.push(0);
        let found = (0..self.strings.len())
            .find(|&p| (p == 0 || self.strings[p - 1] == 0) && self.strings[p..].starts_with(&key));
        found.unwrap_or_else(|| {
            let at = self.strings.len();
            self.strings.extend_from_slice(&key);
            at
        }) as u32
    }

    pub(super) fn prop_at(&mut self, name_offset: u32, value: &[u8]) -> &mut Self {
        self.nop()
            .word(FDT_PROP)
            .word(value.len() as u32)
            .word(name_offset)
            .raw(value);
        self.pad();
        self
    }

    pub(super) fn prop(&mut self, name: &str, value: &[u8]) -> &mut Self {
        let off = self.name_offset(name);
        self.prop_at(off, value)
    }

    pub(super) fn prop_str(&mut self, name: &str, s: &str) -> &mut Self {
        let mut v = s.as_bytes().to_vec();
        v.push(0);
        self.prop(name, &v)
    }

    pub(super) fn prop_cells(&mut self, name: &str, cells: &[u32]) -> &mut Self {
        let v: Vec<u8> = cells.iter().flat_map(|c| c.to_be_bytes()).collect();
        self.prop(name, &v)
    }

    pub(super) fn prop_u32(&mut self, name: &str, v: u32) -> &mut Self {
        self.prop_cells(name, &[v])
    }

    /// The blob with FDT_END appended.
    pub(super) fn finish(&self) -> Vec<u8> {
        let mut structure = self.structure.clone();
        structure.extend_from_slice(&FDT_END.to_be_bytes());
        self.finish_raw(&structure)
    }

    /// The blob with exactly `structure` as the structure block.
    pub(super) fn finish_raw(&self, structure: &[u8]) -> Vec<u8> {
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
pub(super) fn cells(v: u64, n: u32) -> Vec<u32> {
    match n {
        1 => vec![u32::try_from(v).unwrap()],
        2 => vec![(v >> 32) as u32, v as u32],
        n => [vec![0; n as usize - 2], cells(v, 2)].concat(),
    }
}

pub(super) fn reg(entries: &[(u64, u64)], ac: u32, sc: u32) -> Vec<u32> {
    entries
        .iter()
        .flat_map(|&(a, s)| [cells(a, ac), cells(s, sc)].concat())
        .collect()
}

/// A QEMU-virt-like machine, with knobs to break it.
#[derive(Clone)]
pub(super) struct Spec {
    pub(super) nops: bool,
    /// `None` leaves the root without #address-cells/#size-cells.
    pub(super) root_cells: Option<(u32, u32)>,
    pub(super) memory: Vec<(u64, u64)>,
    /// `None` leaves out /cpus.
    pub(super) cpus: Option<Vec<u64>>,
    pub(super) cpu_address_cells: u32,
    pub(super) gic: bool,
    pub(super) psci: bool,
    pub(super) psci_method: Option<&'static str>,
    pub(super) uart: bool,
    pub(super) bootargs: Option<Vec<u8>>,
    pub(super) initrd: Option<(u64, u64)>,
    /// An `arm,trbe` node with these `interrupts` cells.
    pub(super) trbe: Option<Vec<u32>>,
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

pub(super) fn build(spec: &Spec) -> Vec<u8> {
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

pub(super) fn parse_spec(spec: &Spec) -> Result<Platform, DtbError> {
    parse_blob(&build(spec))
}
