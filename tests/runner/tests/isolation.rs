//! Isolation: what the guest is granted, tried as a hostile guest would
//! (README, "Isolation"). Each test decides from QEMU's exit status and a
//! timeout.

use std::path::Path;

use runner::{dt, Config, Outcome, EXIT_REFUSED, GUEST_DTB, GUEST_RAM_BASE, RAM_BASE};

/// Where the probe list goes: 1 MiB into the guest's RAM, between its
/// device tree and its image.
const PROBES: u64 = GUEST_RAM_BASE + 0x10_0000;

fn explain(out: &Outcome) -> String {
    format!(
        "status {:?}, timed out {}, {:.1} s; output:\n{}",
        out.status,
        out.timed_out,
        out.elapsed.as_secs_f64(),
        out.output
    )
}

/// The hypervisor's lower-EL synchronous vector (AArch64, `el2_vectors +
/// 0x400`), from the image's symbols.
fn hypervisor_vector() -> u64 {
    let elf = runner::build_dir().join("el2.elf");
    let out = std::process::Command::new("aarch64-linux-gnu-nm")
        .arg(&elf)
        .output()
        .expect("aarch64-linux-gnu-nm (make deps)");
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .find(|l| l.ends_with(" el2_vectors"))
        .expect("el2_vectors in el2.elf");
    u64::from_str_radix(line.split(' ').next().unwrap(), 16).unwrap() + 0x400
}

/// A region of QEMU's own tree and whether the grant policy gives it to
/// the guest: registers (not a bus window) of a device with a rule.
fn granted(nodes: &[dt::Node], r: &dt::Region) -> bool {
    let node = dt::find(nodes, &r.path).expect("region's node");
    !r.window
        && node
            .prop("compatible")
            .and_then(el2::grant::rule_for)
            .is_some()
}

/// Writes the probe list for `test=grant` (tests/guest/src/grant.rs) from
/// the machine tree at `machine`; returns it with the regions.
fn probe_list(machine: &Path, memory_mib: u64) -> (Vec<u8>, Vec<(dt::Region, bool)>) {
    let blob = std::fs::read(machine).unwrap();
    let nodes = dt::nodes(&blob).unwrap();
    let regions: Vec<(dt::Region, bool)> = dt::mmio_regions(&nodes)
        .into_iter()
        .map(|r| {
            let g = granted(&nodes, &r);
            (r, g)
        })
        .collect();
    let fw_cfg = regions
        .iter()
        .find(|(r, _)| r.compatible == "qemu,fw-cfg-mmio")
        .map(|(r, _)| r.base)
        .expect("QEMU virt has fw_cfg");
    let ram_size = RAM_BASE + (memory_mib << 20) - GUEST_RAM_BASE;
    let mut words = vec![
        u64::from_le_bytes(*b"TMPROBE1"),
        regions.len() as u64,
        fw_cfg,
        hypervisor_vector(),
        GUEST_DTB,
        GUEST_RAM_BASE,
        ram_size,
    ];
    for (r, g) in &regions {
        words.extend([r.base, r.size, u64::from(*g)]);
    }
    (
        words.iter().flat_map(|w| w.to_le_bytes()).collect(),
        regions,
    )
}

/// The hostile guest tries every memory-mapped region of QEMU's own machine
/// tree (dumped with `dumpdtb`, not the guest's tree), mounts the fw_cfg
/// DMA attack on the hypervisor's exception vector, and searches its RAM
/// for the hypervisor's tree and bootargs. On the code before the grant
/// this fails: the guest reads flash, fw_cfg, virtio and PCIe, and the
/// attack makes EL2 execute the guest's bytes (`FATAL: hypervisor
/// exception (vector 4)`).
#[test]
fn hostile_guest_touches_every_device_of_the_machine() {
    let mut cfg = Config::test_guest(1, &format!("test=grant probes={PROBES:#x}"));
    let dir = runner::tempdir().unwrap();
    let machine = dir.join("machine.dtb");
    runner::dump_machine_dtb(&cfg, &machine).unwrap();
    let (list, regions) = probe_list(&machine, cfg.memory_mib);
    let probes = dir.join("probes.bin");
    std::fs::write(&probes, list).unwrap();
    cfg.extra_loads.push((probes, PROBES));
    let out = runner::run(&cfg).expect("QEMU runs");
    std::fs::remove_dir_all(&dir).ok();

    // The list covers what the attack needs and what must stay out.
    let has = |c: &str, want: bool| regions.iter().any(|(r, g)| r.compatible == c && *g == want);
    for (c, want) in [
        ("qemu,fw-cfg-mmio", false),
        ("virtio,mmio", false),
        ("cfi-flash", false),
        ("arm,pl061", false),
        ("pci-host-ecam-generic", false),
        ("arm,gic-v3-its", false),
        ("arm,pl031", true),
        ("arm,pl011", true),
        ("arm,gic-v3", true),
    ] {
        assert!(
            has(c, want),
            "probe list lacks {c} (granted {want}): {regions:?}"
        );
    }
    assert!(!out.timed_out, "QEMU timed out: {}", explain(&out));
    assert_eq!(
        out.status,
        Some(0),
        "guest did not exit 0: {}",
        explain(&out)
    );
    for check in [
        "every-region",
        "fw-cfg-dma-attack",
        "hypercall-after",
        "no-hypervisor-tree-in-ram",
    ] {
        assert_eq!(
            out.lines_with(&format!("guest: PASS {check}")).count(),
            1,
            "{check} did not pass: {}",
            explain(&out)
        );
    }
    assert_eq!(out.lines_with("FATAL").count(), 0, "{}", explain(&out));
    // Every region was tried: none is skipped but those beyond the 39-bit
    // address space (QEMU's 512 GiB high PCIe window).
    let summary = out
        .lines_with("grant: ")
        .find(|l| l.contains(" regions: "))
        .expect("sweep summary");
    let beyond = regions.iter().filter(|(r, _)| r.base >= 1 << 39).count();
    assert!(
        summary.contains(&format!("{} regions", regions.len()))
            && summary.contains(&format!("{beyond} beyond")),
        "{summary}"
    );
    println!("{summary}");
}

/// A guest tree that names a device the machine does not grant (QEMU's own
/// tree as it comes, fw_cfg and virtio included) is refused before the
/// guest runs, with the device and the reason.
#[test]
fn guest_tree_naming_an_ungranted_device_is_refused() {
    let cfg = Config::test_guest(1, "test=smp");
    let dir = runner::tempdir().unwrap();
    let full = dir.join("full.dtb");
    runner::dump_machine_dtb(&cfg, &full).unwrap();
    // Its memory is the guest's, so only the devices are wrong.
    let size = (cfg.memory_mib << 20) - (GUEST_RAM_BASE - RAM_BASE);
    let (base, size) = (format!("{GUEST_RAM_BASE:#x}"), format!("{size:#x}"));
    let p = full.to_str().unwrap();
    runner::tool(
        "fdtput",
        &[
            "-t",
            "x",
            p,
            "/memory@40000000",
            "reg",
            "0",
            &base,
            "0",
            &size,
        ],
    )
    .unwrap();
    let mut cfg = cfg;
    cfg.guest_dtb = Some(full);
    let out = runner::run(&cfg).expect("QEMU runs");
    std::fs::remove_dir_all(&dir).ok();
    assert!(!out.timed_out, "QEMU timed out: {}", explain(&out));
    assert_eq!(out.status, Some(EXIT_REFUSED), "{}", explain(&out));
    assert!(
        out.output
            .contains("refusing to start the guest: guest device tree: device")
            && out.output.contains("is not granted to the guest"),
        "{}",
        explain(&out)
    );
    assert!(!out.output.contains("guest["), "{}", explain(&out));
}

/// The same for a granted kind of device at an address where the machine
/// has none: an "RTC" over fw_cfg.
#[test]
fn guest_tree_moving_a_granted_device_is_refused() {
    let mut cfg = Config::test_guest(1, "test=smp");
    let dir = runner::tempdir().unwrap();
    let dtb = runner::guest_dtb(&cfg, &dir).unwrap();
    let p = dtb.to_str().unwrap();
    runner::tool(
        "fdtput",
        &[
            "-t",
            "x",
            p,
            "/pl031@9010000",
            "reg",
            "0",
            "0x9020000",
            "0",
            "0x1000",
        ],
    )
    .unwrap();
    cfg.guest_dtb = Some(dtb);
    let out = runner::run(&cfg).expect("QEMU runs");
    std::fs::remove_dir_all(&dir).ok();
    assert_eq!(out.status, Some(EXIT_REFUSED), "{}", explain(&out));
    assert!(
        out.output.contains(
            "at 0x9020000 is not granted to the guest: the machine grants no such device"
        ),
        "{}",
        explain(&out)
    );
}

/// Without semihosting (how Linux and any other guest run), a hypervisor
/// failure cannot choose QEMU's exit status: it resets the machine through
/// PSCI, `-no-reboot` ends QEMU, and the console says so. A runner that
/// needs the hypervisor's `guest asked for SYSTEM_OFF` line for a pass (the
/// Linux runner does) sees a failure, not a clean exit.
#[test]
fn hypervisor_failure_without_semihosting_resets_the_machine() {
    let mut cfg = Config::test_guest(1, "test=smp");
    cfg.semihosting = false;
    cfg.guest_memory = Some((RAM_BASE, 1 << 30)); // refused: hypervisor memory
    let out = runner::run(&cfg).expect("QEMU runs");
    assert!(!out.timed_out, "QEMU did not end: {}", explain(&out));
    assert!(
        out.output.contains("FATAL: refusing to start the guest")
            && out.output.contains("resetting through PSCI SYSTEM_RESET"),
        "{}",
        explain(&out)
    );
    assert!(!out.output.contains("SYSTEM_OFF"), "{}", explain(&out));
}
