//! The walk over a clean tree: [`Props`] and [`Bus`] read what a node
//! says of itself and of its children's addresses, `reg` and `ranges`
//! turn bus addresses into CPU physical addresses, and [`Scan`] collects
//! in one pass the memory, the CPUs, the GIC, PSCI, the PL011s, the TRBE
//! interrupt and the passed-through devices.

use fdt::node::FdtNode;

use super::{
    be32, be64, cpu_position, prefix, DtbError, PsciMethod, Range, MAX_CPUS, MAX_DEPTH,
    MAX_MEMORY_RANGES, MPIDR_AFFINITY_MASK,
};
use crate::grant::{self, Access, Grant};

/// `compatible` strings of a PSCI node, newest first.
const PSCI_COMPATIBLE: [&str; 3] = ["arm,psci-1.0", "arm,psci-0.2", "arm,psci"];

/// The properties this module reads from a node, first occurrence of each.
#[derive(Clone, Copy, Default)]
pub(super) struct Props<'a> {
    device_type: Option<&'a [u8]>,
    pub(super) compatible: Option<&'a [u8]>,
    status: Option<&'a [u8]>,
    pub(super) reg: Option<&'a [u8]>,
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

    pub(super) fn device_type_is(&self, ty: &str) -> bool {
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
    pub(super) fn enabled(&self) -> bool {
        self.status
            .is_none_or(|s| matches!(str_bytes(s), b"okay" | b"ok"))
    }
}

/// What a node tells its children about addresses: how many cells their
/// `reg` addresses and sizes take and how the node's bus maps into its
/// parent's (`ranges`).
#[derive(Clone, Copy)]
pub(super) struct Bus<'a> {
    pub(super) name: &'a str,
    /// `None` when the property is malformed (not exactly one cell).
    address_cells: Option<u32>,
    size_cells: Option<u32>,
    pub(super) ranges: Option<&'a [u8]>,
}

impl<'a> Bus<'a> {
    /// Cell counts when a node lacks the properties: the spec tells clients
    /// to assume 2 address cells and 1 size cell.
    pub(super) const DEFAULT: Bus<'static> = Bus {
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

pub(super) fn string_prop<'a>(node: FdtNode<'_, 'a>, name: &str) -> Option<&'a [u8]> {
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
pub(super) fn reg_entries<'a>(
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

/// Whether a node under `ancestors` (root first) sits in the CPU's address
/// space: every bus above it but the root has `ranges` (devicetree spec
/// 2.3.8); otherwise its `reg` is an address on that bus only.
pub(super) fn memory_mapped(ancestors: &[Bus<'_>]) -> bool {
    ancestors.iter().skip(1).all(|b| b.ranges.is_some())
}

/// Maps `r` from the address space of the last bus in `ancestors` up to the
/// root's, through each bus's `ranges` (devicetree spec 2.3.8): an empty
/// `ranges` is the identity, a missing one means the bus is not
/// memory-mapped.
pub(super) fn translate(
    mut r: Range,
    ancestors: &[Bus<'_>],
    node: &'static str,
) -> Result<Range, DtbError> {
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
pub(super) struct Scan {
    pub(super) memory: [Range; MAX_MEMORY_RANGES],
    pub(super) memory_count: usize,
    pub(super) cpus: [u64; MAX_CPUS],
    pub(super) cpu_count: usize,
    pub(super) gic: Option<(Range, Range)>,
    pub(super) psci: Option<PsciMethod>,
    pub(super) uart: Option<(Range, Option<u32>)>,
    pub(super) trbe: Option<u32>,
    /// Enabled passed-through devices ([`grant::POLICY`]) at their `reg`.
    pub(super) passthrough: Grant,
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
            if rule.access == Access::PassThrough && props.enabled() && memory_mapped(ancestors) {
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
    pub(super) fn memory(&self) -> Result<([Range; MAX_MEMORY_RANGES], usize), DtbError> {
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

    pub(super) fn cpus(&self) -> Result<([u64; MAX_CPUS], usize), DtbError> {
        match self.cpu_count {
            0 => Err(DtbError::NoCpus),
            n if n > MAX_CPUS => Err(DtbError::TooManyCpus(n)),
            n => Ok((self.cpus, n)),
        }
    }
}

/// Walks the whole tree under `root` once. `platform` selects whether the
/// GIC, PSCI and UART nodes are looked for as well as memory and CPUs.
pub(super) fn scan(root: FdtNode<'_, '_>, platform: bool) -> Result<Scan, DtbError> {
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
/// first. The depth is bounded by [`MAX_DEPTH`], checked by
/// [`sanitize`](super::sanitize::sanitize)
/// and again here.
pub(super) fn walk<'b, 'a, F>(
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
pub(super) fn find_child<'b, 'a>(node: FdtNode<'b, 'a>, name: &str) -> Option<FdtNode<'b, 'a>> {
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
pub(super) fn stdout_uart(
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
pub(super) fn chosen_initrd(chosen: FdtNode<'_, '_>) -> Result<Option<Range>, DtbError> {
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
    use super::super::sanitize::FDT_PROP;
    use super::super::testutil::*;
    use super::super::*;
    use crate::grant::{self, Access, Device, Grant};

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
}
