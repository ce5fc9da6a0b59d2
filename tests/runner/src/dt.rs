//! Reading flattened device trees on the host: the runner's own small
//! parser (independent of the hypervisor's), used to prepare guest trees
//! and to list the regions of QEMU's machine tree that the hostile guest
//! touches.

/// One node of a flattened device tree: its path and properties.
#[derive(Clone, Debug)]
pub struct Node {
    /// Full path, `/` for the root.
    pub path: String,
    /// Properties in tree order: (name, value).
    pub props: Vec<(String, Vec<u8>)>,
}

impl Node {
    /// A property's value.
    pub fn prop(&self, name: &str) -> Option<&[u8]> {
        self.props
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_slice())
    }

    /// A string property without its NUL.
    pub fn string(&self, name: &str) -> Option<&str> {
        let v = self.prop(name)?;
        std::str::from_utf8(v.strip_suffix(&[0])?).ok()
    }

    /// Whether `compatible` lists `want`.
    pub fn compatible(&self, want: &str) -> bool {
        self.prop("compatible")
            .is_some_and(|v| v.split(|&b| b == 0).any(|s| s == want.as_bytes()))
    }

    /// A property as big-endian cells.
    pub fn u32s(&self, name: &str) -> Option<Vec<u32>> {
        let v = self.prop(name)?;
        (v.len() % 4 == 0).then(|| {
            v.chunks(4)
                .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]))
                .collect()
        })
    }

    /// `reg` as (base, size) pairs of two cells each.
    pub fn ranges(&self) -> Vec<(u64, u64)> {
        let cells = self.u32s("reg").unwrap_or_default();
        cells
            .chunks_exact(4)
            .map(|c| {
                (
                    (u64::from(c[0]) << 32) | u64::from(c[1]),
                    (u64::from(c[2]) << 32) | u64::from(c[3]),
                )
            })
            .collect()
    }

    /// The parent's path.
    pub fn parent(&self) -> &str {
        match self.path.rfind('/') {
            Some(0) | None => "/",
            Some(i) => &self.path[..i],
        }
    }
}

/// Every node of the flattened device tree `blob`, in tree order (the root
/// first), with its full path. `FDT_NOP`s are skipped.
pub fn nodes(blob: &[u8]) -> Result<Vec<Node>, String> {
    let be32 = |off: usize| -> Result<u32, String> {
        blob.get(off..off + 4)
            .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
            .ok_or_else(|| "device tree truncated".to_string())
    };
    if be32(0)? != 0xd00d_feed {
        return Err("not a flattened device tree (bad magic)".into());
    }
    let structs = be32(8)? as usize;
    let strings = be32(12)? as usize;
    let cstr = |off: usize| -> Result<String, String> {
        let rest = blob.get(off..).ok_or("device tree truncated")?;
        let len = rest
            .iter()
            .position(|&b| b == 0)
            .ok_or("unterminated string")?;
        Ok(String::from_utf8_lossy(&rest[..len]).into_owned())
    };
    let mut out: Vec<Node> = Vec::new();
    let mut stack: Vec<usize> = Vec::new();
    let mut off = structs;
    loop {
        let token = be32(off)?;
        off += 4;
        match token {
            1 => {
                let name = cstr(off)?;
                off = (off + name.len() + 1 + 3) & !3;
                let path = match stack.last() {
                    None => "/".to_string(),
                    Some(&p) if out[p].path == "/" => format!("/{name}"),
                    Some(&p) => format!("{}/{name}", out[p].path),
                };
                stack.push(out.len());
                out.push(Node {
                    path,
                    props: Vec::new(),
                });
            }
            2 => {
                stack.pop().ok_or("unbalanced END_NODE")?;
            }
            3 => {
                let len = be32(off)? as usize;
                let name = cstr(strings + be32(off + 4)? as usize)?;
                let value = blob
                    .get(off + 8..off + 8 + len)
                    .ok_or("device tree truncated")?
                    .to_vec();
                off = (off + 8 + len + 3) & !3;
                let &node = stack.last().ok_or("property outside a node")?;
                out[node].props.push((name, value));
            }
            4 => {}
            9 => return Ok(out),
            t => return Err(format!("bad device tree token {t:#x}")),
        }
    }
}

/// The node at `path`.
pub fn find<'a>(nodes: &'a [Node], path: &str) -> Option<&'a Node> {
    nodes.iter().find(|n| n.path == path)
}

/// A cell-count property of the node at `path`, or the spec's default.
fn cell_count(nodes: &[Node], path: &str, name: &str, default: u32) -> u32 {
    find(nodes, path)
        .and_then(|n| n.u32s(name))
        .and_then(|v| v.first().copied())
        .unwrap_or(default)
}

/// A number of `cells.len()` big-endian cells; only the low two count (a
/// PCI address's first cell is its space code).
fn number(cells: &[u32]) -> u64 {
    cells
        .iter()
        .rev()
        .take(2)
        .rev()
        .fold(0, |acc, &c| (acc << 32) | u64::from(c))
}

/// Translates `addr`, an address on the bus of the node at `bus`, up to the
/// root through every `ranges` on the way (devicetree spec 2.3.8). `None`
/// when a bus on the way has no `ranges` (not memory-mapped) or no range
/// covers the address.
pub fn translate(nodes: &[Node], bus: &str, addr: u64) -> Option<u64> {
    let mut path = bus.to_string();
    let mut addr = addr;
    while path != "/" {
        let node = find(nodes, &path)?;
        let parent = node.parent().to_string();
        let ranges = node.u32s("ranges")?;
        if !ranges.is_empty() {
            let cac = cell_count(nodes, &path, "#address-cells", 2) as usize;
            let csc = cell_count(nodes, &path, "#size-cells", 1) as usize;
            let pac = cell_count(nodes, &parent, "#address-cells", 2) as usize;
            addr = ranges.chunks_exact(cac + pac + csc).find_map(|e| {
                let child = number(&e[..cac]);
                let up = number(&e[cac..cac + pac]);
                let size = number(&e[cac + pac..]);
                (child <= addr && addr - child < size).then(|| up + (addr - child))
            })?;
        }
        path = parent;
    }
    Some(addr)
}

/// A memory-mapped region of a machine's tree.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Region {
    /// The node it belongs to.
    pub path: String,
    /// The node's first `compatible` string (empty if none).
    pub compatible: String,
    /// CPU physical address.
    pub base: u64,
    /// Length in bytes.
    pub size: u64,
    /// A bus window (`ranges`) rather than registers (`reg`).
    pub window: bool,
}

/// Every memory-mapped region of the tree: each node's `reg` entries and
/// each bus's `ranges` windows, translated to CPU physical addresses.
/// CPUs and memory nodes are left out.
pub fn mmio_regions(nodes: &[Node]) -> Vec<Region> {
    let mut out = Vec::new();
    for n in nodes.iter().skip(1) {
        if n.path.starts_with("/cpus") || n.string("device_type") == Some("memory") {
            continue;
        }
        let compatible = n
            .prop("compatible")
            .and_then(|v| v.split(|&b| b == 0).next())
            .map(|s| String::from_utf8_lossy(s).into_owned())
            .unwrap_or_default();
        let parent = n.parent();
        let ac = cell_count(nodes, parent, "#address-cells", 2) as usize;
        let sc = cell_count(nodes, parent, "#size-cells", 1) as usize;
        if let Some(reg) = n.u32s("reg").filter(|_| ac + sc > 0) {
            for e in reg.chunks_exact(ac + sc) {
                let (addr, size) = (number(&e[..ac]), number(&e[ac..]));
                if let (Some(base), true) = (translate(nodes, parent, addr), size > 0) {
                    out.push(Region {
                        path: n.path.clone(),
                        compatible: compatible.clone(),
                        base,
                        size,
                        window: false,
                    });
                }
            }
        }
        let cac = cell_count(nodes, &n.path, "#address-cells", 2) as usize;
        let csc = cell_count(nodes, &n.path, "#size-cells", 1) as usize;
        if let Some(ranges) = n.u32s("ranges").filter(|r| !r.is_empty()) {
            for e in ranges.chunks_exact(cac + ac + csc) {
                let (up, size) = (number(&e[cac..cac + ac]), number(&e[cac + ac..]));
                if let (Some(base), true) = (translate(nodes, parent, up), size > 0) {
                    out.push(Region {
                        path: n.path.clone(),
                        compatible: compatible.clone(),
                        base,
                        size,
                        window: true,
                    });
                }
            }
        }
    }
    out
}

/// Non-MMIO devices a guest tree keeps: they have no `reg` of their own.
const KEEP_WITHOUT_REG: [&str; 7] = [
    "arm,armv8-timer",
    "arm,armv7-timer",
    "arm,armv8-pmuv3",
    "arm,psci-1.0",
    "arm,psci-0.2",
    "arm,psci",
    "fixed-clock",
];

/// The path of the console that `/chosen/stdout-path` names (an alias is
/// resolved through `/aliases`).
pub fn console_path(nodes: &[Node]) -> Option<String> {
    let stdout = find(nodes, "/chosen")?.string("stdout-path")?;
    let stdout = stdout.split(':').next()?;
    if stdout.starts_with('/') {
        return Some(stdout.to_string());
    }
    find(nodes, "/aliases")?.string(stdout).map(str::to_string)
}

/// Whether a guest tree keeps node `n` under the hypervisor's grant policy
/// (`el2::grant`): nodes without `compatible` (chosen, aliases, cpus,
/// memory), the non-MMIO devices above, granted devices (the PL011 only
/// if it is the console), and plain buses (their children are judged on
/// their own). Trace hardware, the ITS and everything else go.
fn keeps(n: &Node, console: Option<&str>) -> bool {
    let Some(list) = n.prop("compatible") else {
        return true;
    };
    if el2::grant::is_trace_hardware(list) {
        return false;
    }
    // cpu nodes, idle states, the cpu map.
    if n.path.starts_with("/cpus/") {
        return true;
    }
    let names: Vec<&[u8]> = list.split(|&b| b == 0).filter(|s| !s.is_empty()).collect();
    if names
        .iter()
        .any(|c| KEEP_WITHOUT_REG.iter().any(|k| k.as_bytes() == *c))
    {
        return n.prop("reg").is_none();
    }
    if let Some(rule) = el2::grant::rule_for(list) {
        return rule.device != el2::grant::Device::Uart || Some(n.path.as_str()) == console;
    }
    names.contains(&&b"simple-bus"[..]) && n.prop("reg").is_none()
}

/// Prunes the tree in the file at `path` to what the hypervisor grants a
/// guest ([`keeps`]), with `fdtput`; the GIC node keeps only its
/// distributor and first redistributor region (FVP's GICv2-compatibility
/// frames go).
pub fn prune_to_grant(path: &std::path::Path) -> Result<(), String> {
    let p = path.to_str().ok_or("non-UTF-8 path")?;
    let blob = std::fs::read(path).map_err(|e| format!("cannot read {p}: {e}"))?;
    let nodes = nodes(&blob)?;
    let console = console_path(&nodes);
    let mut removed: Vec<&str> = Vec::new();
    for n in nodes.iter().skip(1) {
        let under_removed = removed
            .iter()
            .any(|r| n.path.starts_with(r) && n.path.as_bytes().get(r.len()) == Some(&b'/'));
        if !under_removed && !keeps(n, console.as_deref()) {
            removed.push(&n.path);
        }
    }
    for r in &removed {
        crate::tool("fdtput", &["-r", p, r])?;
    }
    for gic in nodes.iter().filter(|n| n.compatible("arm,gic-v3")) {
        if removed.iter().any(|r| gic.path.starts_with(r)) || gic.parent() != "/" {
            continue;
        }
        let reg = gic.u32s("reg").unwrap_or_default();
        if reg.len() > 8 {
            let cells: Vec<String> = reg[..8].iter().map(|c| format!("{c:#x}")).collect();
            let mut args = vec!["-t", "x", p, gic.path.as_str(), "reg"];
            args.extend(cells.iter().map(String::as_str));
            crate::tool("fdtput", &args)?;
        }
    }
    Ok(())
}
