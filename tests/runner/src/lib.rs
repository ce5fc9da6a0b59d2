//! Runs the hypervisor and a guest on QEMU for `make run` and the
//! integration tests.
//!
//! The machine is QEMU's `virt` with EL2 (`virtualization=on`), GICv3 and
//! `-cpu max`. QEMU enters the hypervisor's raw image at EL2 with its own
//! device tree in x0; the hypervisor's command line (`-append`) says where
//! the runner loaded the guest: its image at [`GUEST_ENTRY`] and its device
//! tree at [`GUEST_DTB`]. The guest's device tree is QEMU's own, dumped for
//! the same machine, with the memory node shrunk to the guest's RAM (above
//! the hypervisor's reservation) and pruned to what the hypervisor grants
//! (`dt::prune_to_grant`: GIC without its ITS, the console PL011, the RTC,
//! timer, PMU, PSCI). Pass or fail comes from QEMU's exit status (the guest
//! exits through semihosting) and a timeout.

pub mod dt;
pub mod execlog;
pub mod fvp;
pub mod snapshot;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Start of RAM on QEMU virt.
pub const RAM_BASE: u64 = 0x4000_0000;
/// The hypervisor keeps the first 64 MiB of RAM; the guest gets the rest.
pub const GUEST_RAM_BASE: u64 = 0x4400_0000;
/// Where the guest's device tree is loaded.
pub const GUEST_DTB: u64 = GUEST_RAM_BASE;
/// Where the guest image is loaded and entered (2 MiB into its RAM, as
/// Linux's boot protocol places an Image).
pub const GUEST_ENTRY: u64 = GUEST_RAM_BASE + 0x20_0000;
/// Exit status of the hypervisor's refusal to boot (bad device tree, bad guest).
pub const EXIT_REFUSED: i32 = 2;

/// The workspace's root directory.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("workspace root")
}

/// Where `make images` puts the images.
pub fn build_dir() -> PathBuf {
    root().join("build")
}

/// The hypervisor's raw image.
pub fn hypervisor_image() -> PathBuf {
    build_dir().join("el2.bin")
}

/// The bundled test guest's raw image.
pub fn test_guest_image() -> PathBuf {
    build_dir().join("test-guest.bin")
}

/// The hypervisor built with the deliberately naive trace strategy (mode
/// written by the caller, hardware programmed later by the target), for the
/// test that shows the checker catches the seed's race.
pub fn naive_hypervisor_image() -> PathBuf {
    build_dir().join("el2-naive.bin")
}

/// What to run.
#[derive(Clone, Debug)]
pub struct Config {
    /// Number of cores (1..=8).
    pub cores: usize,
    /// RAM in MiB.
    pub memory_mib: u64,
    /// The hypervisor image; an ELF here makes QEMU pass no device tree.
    pub hypervisor: PathBuf,
    /// The guest image.
    pub guest: PathBuf,
    /// The guest's /chosen/bootargs.
    pub guest_bootargs: String,
    /// The hypervisor's command line; `None` gives the standard one.
    pub hypervisor_args: Option<String>,
    /// Words added to the standard command line (test switches such as
    /// `test.powerdown`).
    pub hypervisor_switches: String,
    /// The guest's RAM in its device tree: (base, size).
    pub guest_memory: Option<(u64, u64)>,
    /// Replace QEMU's device tree for the hypervisor (`-dtb`).
    pub hypervisor_dtb: Option<PathBuf>,
    /// How long QEMU may run.
    pub timeout: Duration,
    /// Print QEMU's output as it comes.
    pub echo: bool,
    /// Use this device tree for the guest instead of making one (see
    /// [`guest_dtb`]; a caller that needs more in the guest's tree, such as
    /// an initrd or idle states, makes it with [`guest_dtb`] and edits it).
    pub guest_dtb: Option<PathBuf>,
    /// More raw files to load into memory: (file, address).
    pub extra_loads: Vec<(PathBuf, u64)>,
    /// Give QEMU this process's standard input (an interactive console)
    /// instead of none.
    pub interactive: bool,
    /// Extra `-cpu` properties after `max` (such as `sme=off`).
    pub cpu_features: String,
    /// Record when this text first appears in the output
    /// ([`Outcome::mark_at`]).
    pub mark: Option<String>,
    /// QEMU's `-icount shift=N,sleep=off`: virtual time advances with
    /// instructions executed (2^N ns each), so guest-visible times are
    /// repeatable and comparable between runs.
    pub icount: Option<u32>,
    /// Run with `-semihosting`. Semihosting is a host interface that QEMU
    /// serves before any EL2 trap, to the guest too (it can open host files
    /// and choose QEMU's exit status): only the bundled test guests, whose
    /// verdict is their exit status, run with it. Without it, a failure of
    /// the hypervisor resets the machine and `-no-reboot` ends QEMU, so the
    /// verdict comes from the hypervisor's console and a timeout.
    pub semihosting: bool,
    /// QEMU's log of executed instructions ([`execlog::ExecLog`]: file and
    /// guest address ranges); adds `-singlestep -d exec,nochain -dfilter
    /// ... -D ...` and `-accel tcg,thread=single`.
    pub exec_log: Option<execlog::ExecLog>,
}

impl Config {
    /// The bundled test guest on `cores` cores with `bootargs`.
    pub fn test_guest(cores: usize, bootargs: &str) -> Config {
        Config {
            cores,
            memory_mib: 1024,
            hypervisor: hypervisor_image(),
            guest: test_guest_image(),
            guest_bootargs: bootargs.to_string(),
            hypervisor_args: None,
            hypervisor_switches: String::new(),
            guest_memory: None,
            hypervisor_dtb: None,
            timeout: Duration::from_secs(240),
            echo: false,
            guest_dtb: None,
            extra_loads: Vec::new(),
            interactive: false,
            cpu_features: String::new(),
            mark: None,
            icount: None,
            semihosting: true,
            exec_log: None,
        }
    }

    /// QEMU's `-machine`, `-cpu`, `-smp` and `-m` arguments for this run.
    pub fn machine_args(&self) -> Vec<String> {
        let mut args = vec![
            "-machine".into(),
            "virt,virtualization=on,gic-version=3".into(),
            "-cpu".into(),
            if self.cpu_features.is_empty() {
                "max".into()
            } else {
                format!("max,{}", self.cpu_features)
            },
            "-smp".into(),
            self.cores.to_string(),
            "-m".into(),
            format!("{}M", self.memory_mib),
        ];
        if let Some(shift) = self.icount {
            args.push("-icount".into());
            args.push(format!("shift={shift},sleep=off"));
        }
        args
    }
}

/// How a run ended.
#[derive(Debug)]
pub struct Outcome {
    /// QEMU's exit status (`None` if killed).
    pub status: Option<i32>,
    /// Whether the timeout killed it.
    pub timed_out: bool,
    /// Everything QEMU printed (the serial console).
    pub output: String,
    /// Wall time.
    pub elapsed: Duration,
    /// Wall time when [`Config::mark`] first appeared.
    pub mark_at: Option<Duration>,
}

impl Outcome {
    /// The value of `key=<number>` on the first line containing `marker`.
    pub fn number_after(&self, marker: &str, key: &str) -> Option<u64> {
        let line = self.lines_with(marker).next()?;
        let pat = format!("{key}=");
        let rest = &line[line.find(&pat)? + pat.len()..];
        rest.split(|c: char| !c.is_ascii_digit())
            .next()?
            .parse()
            .ok()
    }

    /// Lines of the output that contain `needle`.
    pub fn lines_with<'a>(&'a self, needle: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.output.lines().filter(move |l| l.contains(needle))
    }
}

/// Runs a host tool (fdtput, dtc, ...), with its stderr in the error.
pub fn tool(name: &str, args: &[&str]) -> Result<(), String> {
    let out = Command::new(name)
        .args(args)
        .output()
        .map_err(|e| format!("cannot run {name}: {e} (run `make deps`)"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{name} {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// Dumps QEMU's own device tree for `cfg`'s machine to `path`.
pub fn dump_machine_dtb(cfg: &Config, path: &Path) -> Result<(), String> {
    let p = path.to_str().ok_or("non-UTF-8 path")?;
    let mut args = cfg.machine_args();
    args[1].push_str(&format!(",dumpdtb={p}"));
    let out = Command::new("qemu-system-aarch64")
        .args(&args)
        .args(["-nographic", "-nodefaults"])
        .output()
        .map_err(|e| format!("cannot run qemu-system-aarch64: {e} (run `make deps`)"))?;
    if !path.exists() {
        return Err(format!(
            "QEMU did not dump its device tree: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(())
}

/// Makes the guest's device tree for `cfg` in `dir` and returns its path.
pub fn guest_dtb(cfg: &Config, dir: &Path) -> Result<PathBuf, String> {
    let path = dir.join("guest.dtb");
    let p = path.to_str().ok_or("non-UTF-8 path")?;
    dump_machine_dtb(cfg, &path)?;
    let ram_end = RAM_BASE + cfg.memory_mib * 1024 * 1024;
    let (base, size) = cfg
        .guest_memory
        .unwrap_or((GUEST_RAM_BASE, ram_end - GUEST_RAM_BASE));
    let reg = [
        base >> 32,
        base & 0xffff_ffff,
        size >> 32,
        size & 0xffff_ffff,
    ]
    .map(|v| format!("{v:#x}"));
    let memory_node = format!("/memory@{RAM_BASE:x}");
    tool(
        "fdtput",
        &[
            "-t",
            "x",
            p,
            &memory_node,
            "reg",
            &reg[0],
            &reg[1],
            &reg[2],
            &reg[3],
        ],
    )?;
    // Only what the hypervisor grants (el2::grant): no fw_cfg, virtio,
    // PCIe, flash, GPIO or ITS; the hypervisor refuses a tree with them.
    dt::prune_to_grant(&path)?;
    tool(
        "fdtput",
        &["-t", "s", p, "/chosen", "bootargs", &cfg.guest_bootargs],
    )?;
    Ok(path)
}

/// Runs QEMU as `cfg` says and waits for it, at most `cfg.timeout`.
pub fn run(cfg: &Config) -> Result<Outcome, String> {
    for image in [&cfg.hypervisor, &cfg.guest] {
        if !image.exists() {
            return Err(format!(
                "{} is missing: run `make images` first",
                image.display()
            ));
        }
    }
    let dir = tempdir()?;
    let dtb = match &cfg.guest_dtb {
        Some(d) => d.clone(),
        None => guest_dtb(cfg, &dir)?,
    };
    let hyp_args = cfg.hypervisor_args.clone().unwrap_or_else(|| {
        format!(
            "guest.entry={GUEST_ENTRY:#x} guest.dtb={GUEST_DTB:#x} {}",
            cfg.hypervisor_switches
        )
    });
    let mut cmd = Command::new("qemu-system-aarch64");
    cmd.args(cfg.machine_args())
        .args(cfg.exec_log.iter().flat_map(execlog::ExecLog::qemu_args))
        // No network: nothing here uses one, and a default NIC would need
        // option ROMs that a minimal QEMU install lacks.
        .args(["-nographic", "-nic", "none", "-no-reboot"])
        .args(cfg.semihosting.then_some("-semihosting"))
        .arg("-kernel")
        .arg(&cfg.hypervisor)
        .args(["-append", &hyp_args])
        .arg("-device")
        .arg(format!(
            "loader,file={},addr={GUEST_ENTRY:#x},force-raw=on",
            cfg.guest.display()
        ))
        .arg("-device")
        .arg(format!(
            "loader,file={},addr={GUEST_DTB:#x},force-raw=on",
            dtb.display()
        ));
    for (file, addr) in &cfg.extra_loads {
        cmd.arg("-device").arg(format!(
            "loader,file={},addr={addr:#x},force-raw=on",
            file.display()
        ));
    }
    if let Some(d) = &cfg.hypervisor_dtb {
        cmd.arg("-dtb").arg(d);
    }
    let out = run_command(cfg, cmd);
    let _ = std::fs::remove_dir_all(&dir);
    out
}

/// Runs a prepared QEMU command with `cfg`'s console, timeout and mark
/// (for runs without the hypervisor, such as Linux on bare QEMU).
pub fn run_command(cfg: &Config, mut cmd: Command) -> Result<Outcome, String> {
    cmd.stdin(if cfg.interactive {
        Stdio::inherit()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let start = Instant::now();
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("cannot start QEMU: {e} (run `make deps`)"))?;
    let mut stdout = child.stdout.take().expect("piped");
    let mut stderr = child.stderr.take().expect("piped");
    let echo = cfg.echo;
    let mark = cfg.mark.clone().map(String::into_bytes);
    let reader = std::thread::spawn(move || {
        let mut all = Vec::new();
        let mut mark_at = None;
        let mut buf = [0u8; 4096];
        loop {
            match stdout.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if echo {
                        use std::io::Write;
                        let _ = std::io::stdout().write_all(&buf[..n]);
                        let _ = std::io::stdout().flush();
                    }
                    all.extend_from_slice(&buf[..n]);
                    if let Some(m) = mark.as_deref().filter(|_| mark_at.is_none()) {
                        let from = all.len().saturating_sub(n + m.len());
                        if all[from..].windows(m.len()).any(|w| w == m) {
                            mark_at = Some(start.elapsed());
                        }
                    }
                }
            }
        }
        (all, mark_at)
    });
    let err_reader = std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = stderr.read_to_end(&mut s);
        s
    });
    let mut timed_out = false;
    let status = loop {
        match child.try_wait() {
            Ok(Some(s)) => break s.code(),
            Ok(None) if start.elapsed() > cfg.timeout => {
                timed_out = true;
                let _ = child.kill();
                break child.wait().ok().and_then(|s| s.code());
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(50)),
            Err(e) => return Err(format!("waiting for QEMU: {e}")),
        }
    };
    let (bytes, mark_at) = reader.join().unwrap_or_default();
    let mut output = String::from_utf8_lossy(&bytes).replace('\r', "");
    let err = err_reader.join().unwrap_or_default();
    if !err.is_empty() {
        output.push_str(&String::from_utf8_lossy(&err));
    }
    Ok(Outcome {
        status: if timed_out { None } else { status },
        timed_out,
        output,
        elapsed: start.elapsed(),
        mark_at,
    })
}

/// A fresh temporary directory.
pub fn tempdir() -> Result<PathBuf, String> {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    let dir = std::env::temp_dir().join(format!(
        "tm-runner-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    Ok(dir)
}
