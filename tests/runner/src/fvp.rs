//! The FVP layout: where everything goes on Arm's FVP Base RevC (DRAM at
//! 0x8000_0000), and the device trees for it, made from the machine's own.
//!
//! The addresses are QEMU's layout moved from QEMU virt's RAM base
//! (0x4000_0000) to FVP Base's DRAM base, the same offsets throughout:
//!
//! | what | address | put there by |
//! |---|---|---|
//! | hypervisor, `build/el2-fvp.bin` | 0x8008_0000 | the model (`--data`); TF-A's `PRELOADED_BL33_BASE` |
//! | hypervisor's device tree | 0x8200_0000 | the model; TF-A's `ARM_PRELOADED_DTB_BASE`, passed in x0 |
//! | guest RAM | 0x8400_0000 .. end of that DRAM range (0xff00_0000 on FVP: TF-A keeps the top 16 MiB secure) | |
//! | guest device tree | 0x8400_0000 | the model |
//! | test guest, `build/test-guest-fvp.bin` | 0x8420_0000 | the model |
//!
//! [`prepare`] makes both device trees from the machine's tree (on FVP,
//! TF-A's `fdts/fvp-base-gicv3-psci*.dtb`, which the user supplies; on
//! QEMU, the machine's dumped tree) with `fdtput`, finding the nodes by
//! their properties rather than by path: the hypervisor's gets
//! `/chosen/bootargs` with the guest's location; the guest's gets its RAM
//! as the only memory, pruned to what the hypervisor grants (no ITS, no GICv2
//! frames, only the console UART), and its own bootargs. [`qemu_command`] boots the same images and trees on
//! QEMU virt with 3 GiB of RAM (which spans the FVP addresses), with a
//! four-instruction stub standing in for TF-A's hand-over to BL33.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::dt::{nodes, Node};
use crate::{build_dir, tool, Config};

/// Start of FVP Base's DRAM.
pub const RAM_BASE: u64 = 0x8000_0000;
/// Where the hypervisor is linked (el2/build.rs) and entered.
pub const HYPERVISOR: u64 = RAM_BASE + 0x8_0000;
/// Where the hypervisor's device tree goes (TF-A's ARM_PRELOADED_DTB_BASE).
pub const HYPERVISOR_DTB: u64 = RAM_BASE + 0x200_0000;
/// Start of the guest's RAM; the hypervisor keeps the 64 MiB below.
pub const GUEST_RAM_BASE: u64 = RAM_BASE + 0x400_0000;
/// Where the guest's device tree goes.
pub const GUEST_DTB: u64 = GUEST_RAM_BASE;
/// Where the guest image is loaded and entered (tests/guest/build.rs).
pub const GUEST_ENTRY: u64 = GUEST_RAM_BASE + 0x20_0000;
/// Where the QEMU stand-in for TF-A's hand-over runs: QEMU RAM below the
/// FVP addresses, clear of the device tree QEMU puts at its RAM base.
pub const QEMU_BOOT_STUB: u64 = 0x4020_0000;

// The hypervisor's device tree stays out of the guest's RAM; the stub out
// of the FVP addresses.
const _: () = assert!(HYPERVISOR_DTB < GUEST_RAM_BASE && QEMU_BOOT_STUB < RAM_BASE);

/// The hypervisor linked for FVP (`make images`).
pub fn hypervisor_image() -> PathBuf {
    build_dir().join("el2-fvp.bin")
}

/// The test guest linked for FVP (`make images`).
pub fn test_guest_image() -> PathBuf {
    build_dir().join("test-guest-fvp.bin")
}

/// The hypervisor's command line for the FVP layout, plus `switches`.
pub fn hypervisor_bootargs(switches: &str) -> String {
    format!("guest.entry={GUEST_ENTRY:#x} guest.dtb={GUEST_DTB:#x} {switches}")
        .trim_end()
        .to_string()
}

/// The two device trees [`prepare`] made.
#[derive(Clone, Debug)]
pub struct Trees {
    /// The hypervisor's, for [`HYPERVISOR_DTB`].
    pub hypervisor: PathBuf,
    /// The guest's, for [`GUEST_DTB`].
    pub guest: PathBuf,
    /// The guest's RAM: (base, size).
    pub guest_memory: (u64, u64),
}

/// Makes the hypervisor's and the guest's device trees in `dir` from the
/// machine's tree `machine`. `cores` keeps only the first N cpu nodes in
/// both (for a model run with fewer cores than its tree lists; the
/// `/cpus/cpu-map` that names the others goes too).
pub fn prepare(
    machine: &Path,
    dir: &Path,
    cores: Option<usize>,
    guest_bootargs: &str,
    hypervisor_switches: &str,
) -> Result<Trees, String> {
    let blob =
        std::fs::read(machine).map_err(|e| format!("cannot read {}: {e}", machine.display()))?;
    let nodes = nodes(&blob)?;
    let root = nodes.first().ok_or("device tree without a root node")?;
    for cells in ["#address-cells", "#size-cells"] {
        if root.u32s(cells).as_deref() != Some(&[2]) {
            return Err(format!("the root node's {cells} is not 2"));
        }
    }
    let memory: Vec<&Node> = nodes
        .iter()
        .filter(|n| n.string("device_type") == Some("memory"))
        .collect();
    let ram_end = memory
        .iter()
        .flat_map(|n| n.ranges())
        .find(|&(base, size)| base <= GUEST_RAM_BASE && GUEST_RAM_BASE < base + size)
        .map(|(base, size)| base + size)
        .ok_or_else(|| format!("no memory range of the tree holds {GUEST_RAM_BASE:#x}"))?;
    let guest_memory = (GUEST_RAM_BASE, ram_end - GUEST_RAM_BASE);
    let cpus: Vec<&Node> = nodes
        .iter()
        .filter(|n| n.parent() == "/cpus" && n.string("device_type") == Some("cpu"))
        .collect();

    let hypervisor = dir.join("hypervisor.dtb");
    let guest = dir.join("guest.dtb");
    for out in [&hypervisor, &guest] {
        std::fs::copy(machine, out).map_err(|e| format!("cannot write {}: {e}", out.display()))?;
        let p = path_str(out)?;
        if let Some(n) = cores {
            if n == 0 || n > cpus.len() {
                return Err(format!(
                    "--cores {n}: the tree has {} cpu nodes",
                    cpus.len()
                ));
            }
            for cpu in &cpus[n..] {
                tool("fdtput", &["-r", p, &cpu.path])?;
            }
            if nodes.iter().any(|n| n.path == "/cpus/cpu-map") {
                tool("fdtput", &["-r", p, "/cpus/cpu-map"])?;
            }
        }
    }
    tool(
        "fdtput",
        &[
            "-p",
            "-t",
            "s",
            path_str(&hypervisor)?,
            "/chosen",
            "bootargs",
            &hypervisor_bootargs(hypervisor_switches),
        ],
    )?;

    let g = path_str(&guest)?;
    let (first, others) = memory.split_first().ok_or("no memory node")?;
    let (base, size) = guest_memory;
    let reg = [
        base >> 32,
        base & 0xffff_ffff,
        size >> 32,
        size & 0xffff_ffff,
    ]
    .map(|v| format!("{v:#x}"));
    let mut args = vec!["-t", "x", g, first.path.as_str(), "reg"];
    args.extend(reg.iter().map(String::as_str));
    tool("fdtput", &args)?;
    for other in others {
        tool("fdtput", &["-r", g, &other.path])?;
    }
    // Only what the hypervisor grants (el2::grant): the ITS, the GICv2
    // frames, the other UARTs, watchdog, system registers, virtio go.
    crate::dt::prune_to_grant(&guest)?;
    tool(
        "fdtput",
        &["-p", "-t", "s", g, "/chosen", "bootargs", guest_bootargs],
    )?;
    Ok(Trees {
        hypervisor,
        guest,
        guest_memory,
    })
}

fn path_str(p: &Path) -> Result<&str, String> {
    p.to_str()
        .ok_or_else(|| format!("non-UTF-8 path {}", p.display()))
}

/// What TF-A's BL31 does when it hands over to a Linux-style BL33
/// (ARM_LINUX_KERNEL_AS_BL33): x0 = the device tree, x1..x3 = 0, then a
/// jump to the image, at EL2. Four-instruction-per-register encoding of
/// `movz`/`movk`, then `br x4`.
pub fn boot_stub(dtb: u64, entry: u64) -> Vec<u8> {
    fn mov_imm64(rd: u32, v: u64) -> [u32; 4] {
        let half = |hw: u32| ((v >> (16 * hw)) & 0xffff) as u32;
        [
            0xd280_0000 | (half(0) << 5) | rd,
            0xf2a0_0000 | (half(1) << 5) | rd,
            0xf2c0_0000 | (half(2) << 5) | rd,
            0xf2e0_0000 | (half(3) << 5) | rd,
        ]
    }
    let mut words = Vec::new();
    words.extend(mov_imm64(0, dtb));
    for rd in 1..=3 {
        words.push(0xd280_0000 | rd); // movz xN, #0
    }
    words.extend(mov_imm64(4, entry));
    words.push(0xd61f_0080); // br x4
    words.iter().flat_map(|w| w.to_le_bytes()).collect()
}

/// QEMU virt set up as the FVP would be: `cfg`'s machine with
/// `cfg.memory_mib` (3 GiB or more, so RAM spans the FVP addresses), the
/// FVP-linked images and `trees` at their FVP addresses, and [`boot_stub`]
/// as the boot CPU's entry (QEMU's `-device loader,cpu-num=0` sets the PC;
/// there is no `-kernel`, so the hypervisor gets the stub's x0).
pub fn qemu_command(cfg: &Config, trees: &Trees, dir: &Path) -> Result<Command, String> {
    let stub = dir.join("boot-stub.bin");
    std::fs::write(&stub, boot_stub(HYPERVISOR_DTB, HYPERVISOR))
        .map_err(|e| format!("cannot write {}: {e}", stub.display()))?;
    let mut cmd = Command::new("qemu-system-aarch64");
    cmd.args(cfg.machine_args())
        .args(["-nographic", "-nic", "none", "-semihosting"]);
    for (file, addr) in [
        (&cfg.hypervisor, HYPERVISOR),
        (&trees.hypervisor, HYPERVISOR_DTB),
        (&trees.guest, GUEST_DTB),
        (&cfg.guest, GUEST_ENTRY),
    ] {
        if !file.exists() {
            return Err(format!(
                "{} is missing: run `make images` first",
                file.display()
            ));
        }
        cmd.arg("-device").arg(format!(
            "loader,file={},addr={addr:#x},force-raw=on",
            file.display()
        ));
    }
    cmd.arg("-device").arg(format!(
        "loader,file={},addr={QEMU_BOOT_STUB:#x},force-raw=on,cpu-num=0",
        stub.display()
    ));
    Ok(cmd)
}

/// Runs `cfg` (its images should be the FVP-linked ones) on QEMU in the
/// FVP layout, the trees made by [`prepare`] from QEMU's own.
pub fn run_on_qemu(cfg: &Config) -> Result<crate::Outcome, String> {
    let dir = crate::tempdir()?;
    let machine = dir.join("machine.dtb");
    crate::dump_machine_dtb(cfg, &machine)?;
    let trees = prepare(
        &machine,
        &dir,
        None,
        &cfg.guest_bootargs,
        &cfg.hypervisor_switches,
    )?;
    let out = crate::run_command(cfg, qemu_command(cfg, &trees, &dir)?);
    let _ = std::fs::remove_dir_all(&dir);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_matches_the_images() {
        assert_eq!(HYPERVISOR, 0x8008_0000);
        assert_eq!(GUEST_ENTRY, 0x8420_0000);
    }

    #[test]
    fn boot_stub_encodes_the_hand_over() {
        let words: Vec<u32> = boot_stub(0x8200_0000, 0x8008_0000)
            .chunks(4)
            .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        assert_eq!(words.len(), 12);
        // movz x0, #0; movk x0, #0x8200, lsl #16; movk #0, lsl #32; lsl #48
        assert_eq!(
            &words[..4],
            &[0xd280_0000, 0xf2b0_4000, 0xf2c0_0000, 0xf2e0_0000]
        );
        assert_eq!(&words[4..7], &[0xd280_0001, 0xd280_0002, 0xd280_0003]);
        // movz x4, #0; movk x4, #0x8008, lsl #16
        assert_eq!(&words[7..9], &[0xd280_0004, 0xf2b0_0104]);
        assert_eq!(words[11], 0xd61f_0080);
    }
}
