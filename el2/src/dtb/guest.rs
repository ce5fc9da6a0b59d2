//! The checks a guest's tree must pass beyond being a valid tree with
//! memory and CPUs: its RAM inside the machine's and clear of the
//! hypervisor, its CPUs the machine's own, and every device it names
//! granted ([`check_devices`]).

use fdt::node::FdtNode;

use super::scan::{memory_mapped, reg_entries, translate, walk, Bus};
use super::{cpu_position, DtbError, GuestLayout, NodeName, Range, MAX_DEPTH};
use crate::grant::{self, Grant};

/// The guest's RAM and CPUs against the machine's: every memory range
/// inside one range of `ram` and clear of `hypervisor`, every CPU one of
/// `physical_cpus` (vCPUs are pinned 1:1 to physical CPUs by MPIDR).
pub(super) fn check_layout(
    layout: &GuestLayout,
    ram: &[Range],
    hypervisor: Range,
    physical_cpus: &[u64],
) -> Result<(), DtbError> {
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
    Ok(())
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
pub(super) fn check_devices(root: FdtNode<'_, '_>, grant: &Grant) -> Result<(), DtbError> {
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
        if !memory_mapped(ancestors) {
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

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use super::super::*;
    use crate::grant::{Access, Device, Grant};

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

    /// A device node of a test tree: name, compatible, `reg` entries,
    /// status (empty for none).
    type DeviceNode<'a> = (&'a str, &'a str, &'a [(u64, u64)], &'a str);

    /// A guest tree with 1 GiB of RAM at 0x4400_0000, one CPU, and
    /// `devices` (name, compatible, reg entries, status) at the root, or
    /// under `bus` (its `ranges`, if any: `Some(&[])` is the identity).
    fn guest_with(devices: &[DeviceNode<'_>], bus: Option<Option<&[u32]>>) -> Vec<u8> {
        let mut b = Builder::new();
        b.machine((0x4400_0000, GIB));
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
        const GIC: DeviceNode<'static> = (
            "intc@8000000",
            "arm,gic-v3",
            &[(0x0800_0000, 0x1_0000), (0x080a_0000, 0xf6_0000)],
            "",
        );
        const UART: DeviceNode<'static> = (
            "pl011@9000000",
            "arm,pl011\0arm,primecell",
            &[(0x0900_0000, 0x1000)],
            "",
        );
        const RTC: DeviceNode<'static> = (
            "pl031@9010000",
            "arm,pl031\0arm,primecell",
            &[(0x0901_0000, 0x1000)],
            "",
        );
        const TIMER: DeviceNode<'static> = ("timer", "arm,armv8-timer", &[], "");
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
        b.machine(memory);
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
        let regions: Vec<_> = p
            .grant
            .regions()
            .map(|r| (r.device, r.access, r.range.base))
            .collect();
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
            (0x1c17_0000, true),  // RTC
            (0x1c09_0000, false), // UART0: emulated
            (0x1c0a_0000, false), // UART1
            (0x1c0f_0000, false), // watchdog
            (0x1c01_0000, false), // system registers
            (0x1c10_0000, false), // power controller (not even in the tree)
            (0x2c00_0000, false), // GICC
            (0x2c01_0000, false), // GICH
            (0x2c02_f000, false), // GICV
            (0x2f00_0000, false), // GICD: emulated
        ] {
            assert_eq!(s2.translate(addr).is_some(), mapped, "{addr:#x}");
        }

        let mut scratch = vec![0u8; SCRATCH];
        let ram = [Range::new(0x8000_0000, 2 * GIB)];
        let hyp = Range::new(0x8000_0000, 0x400_0000);
        let mut check =
            |blob: &[u8]| validate_guest(blob, &mut scratch, &ram, hyp, &[0], &p.grant).map(|_| ());
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
}
