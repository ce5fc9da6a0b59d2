//! `test=story`: what `make run` shows — the trace manager at work on four
//! cores, told as a short story with each core's status after each step.
//!
//! 1. Bring up the cores (the smp suite's `cpu-on`).
//! 2. The boot core enables trace on cores 1, 2 and 3 (EL1|TS|CTXID; core 3
//!    only inside the guest's own image, with an address filter).
//! 3. Core 2 does a power-down CPU_SUSPEND: it comes back through its entry
//!    point when the hypervisor simulates the power loss, or the call
//!    returns 0. Its trace is unchanged: ENABLED/TRACING, same generation,
//!    same config.
//! 4. Core 1 disables core 3's trace while core 3 idles in WFI.
//! 5. The boot core disables every core.
//!
//! Statuses are printed one core a line, `cpuN: mode=... hw=... gen=...
//! config=... backend=...` (see [`crate::trace_calls`]); the check
//! `story` passes iff each status is what the story expects. With fewer
//! cores the roles shrink to the cores there are.

use guest_api::trace::{
    self as abi, CONFIG_ADDR_FILTER, CONFIG_CONTEXT_ID, CONFIG_EL1, CONFIG_TIMESTAMPS,
};

use crate::arch::{self, MAX_CPUS};
use crate::report::{fail, Msg, Report, Subchecks};
use crate::smp::{self, Cmd};
use crate::trace_calls::{self as tc, Expect};
use crate::{calls, platform, stress, suite};

/// Bound of every wait for another core.
const WAIT_MS: u64 = 5000;
/// The story's config.
const CONFIG: u64 = CONFIG_EL1 | CONFIG_TIMESTAMPS | CONFIG_CONTEXT_ID;
/// The power-down suspend is woken by the timer after this long.
const SLEEP_MS: u64 = 5;

extern "C" {
    /// First byte of the guest image (linker/guest.ld).
    static __image_start: u8;
    /// End of the guest image, stacks included (linker/guest.ld).
    static __image_end: u8;
}

/// The guest image, `[start, end)`, rounded out to whole instructions.
fn image() -> (u64, u64) {
    let start = &raw const __image_start as u64;
    let end = &raw const __image_end as u64;
    (start & !3, (end + 3) & !3)
}

/// Runs the scenario; the exit status.
pub fn run() -> u64 {
    let mut report = Report::new();
    report.check("cpu-on", suite::cpu_on());
    report.check("story", story());
    report.finish()
}

/// What the story expects of each core.
#[derive(Clone, Copy, Debug)]
struct Book {
    want: [Expect; MAX_CPUS],
}

impl Book {
    /// Prints every core's status and checks it.
    fn show(&self, s: &mut Subchecks, when: &str) {
        println!("story: {when}:");
        for i in 0..platform::get().ncpus {
            self.show_one(s, i);
        }
    }

    fn show_one(&self, s: &mut Subchecks, i: usize) {
        match tc::status_of(platform::get().mpidr[i]) {
            Ok(st) => {
                println!("cpu{i}: {}", tc::Show(&st));
                if let Err(m) = tc::check(&st, &self.want[i]) {
                    s.fail(format_args!("cpu{i}: {m}"));
                }
            }
            Err(e) => {
                println!("cpu{i}: TRACE_STATUS failed: {e}");
                s.fail(format_args!("TRACE_STATUS(cpu{i}): {e}"));
            }
        }
    }
}

/// A call that must succeed: the generation it returned.
fn committed(s: &mut Subchecks, what: core::fmt::Arguments, r: crate::calls::Ret6) -> Option<u64> {
    match r {
        Ok(r) if r[0] == 0 => {
            println!("story: {what} -> gen={}", r[1]);
            Some(r[1])
        }
        Ok(r) => {
            s.fail(format_args!(
                "{what}: x0 = {} ({})",
                tc::code(&r),
                tc::error_name(tc::code(&r))
            ));
            None
        }
        Err(c) => {
            s.fail(format_args!("{what}: {c}"));
            None
        }
    }
}

/// Runs command `cmd` on core `i` (or here, if `i` is this core) and waits.
fn on_core(
    s: &mut Subchecks,
    i: usize,
    cmd: Cmd,
    arg: u64,
    here: impl FnOnce() -> Result<(), Msg>,
) {
    if i == arch::core_index() {
        s.add(here());
        return;
    }
    let seq = smp::post(i, cmd, arg);
    match smp::wait_done(i, seq, WAIT_MS) {
        Some(true) => {}
        Some(false) => s.fail(format_args!("cpu{i} failed its part (see its lines)")),
        None => s.fail(format_args!(
            "cpu{i} did not finish within {WAIT_MS} ms: {}",
            smp::progress(i, seq)
        )),
    }
}

fn story() -> Result<(), Msg> {
    let mut s = Subchecks::new("story");
    let p = platform::get();
    let boot = smp::boot_core();

    // The cast: up to three traced secondaries (cores 1, 2, 3 on four cores).
    let mut traced = [0usize; 3];
    let mut ntraced = 0;
    for i in smp::online_secondaries().take(3) {
        traced[ntraced] = i;
        ntraced += 1;
    }
    if ntraced == 0 {
        println!("story: one core: it traces itself");
        traced[0] = boot;
        ntraced = 1;
    }
    let traced = &traced[..ntraced];
    let filtered = traced[ntraced - 1];
    let sleeper = traced[ntraced.min(2) - 1];
    let disabler = if ntraced > 1 { traced[0] } else { boot };
    let (lo, hi) = image();

    let mut book = Book {
        want: [Expect::disabled(Some(0)); MAX_CPUS],
    };
    book.show(&mut s, "at boot");

    let mut names = crate::console::Text::<64>::new();
    for (k, t) in traced.iter().enumerate() {
        let _ = core::fmt::Write::write_fmt(
            &mut names,
            format_args!("{}cpu{t}", if k == 0 { "" } else { ", " }),
        );
    }
    println!(
        "story: cpu{boot} enables trace on {names} with EL1|TS|CTXID; cpu{filtered} only inside the guest image {lo:#x}..{hi:#x}"
    );
    for &t in traced {
        let (word, start, end) = if t == filtered {
            (CONFIG | CONFIG_ADDR_FILTER, lo, hi)
        } else {
            (CONFIG, 0, 0)
        };
        let g = committed(
            &mut s,
            format_args!("TRACE_ENABLE(cpu{t}, {})", tc::config_name(word)),
            tc::enable(p.mpidr[t], word, start, end),
        );
        book.want[t] = Expect::enabled(g, (word, start, end));
    }
    book.show(&mut s, "tracing");

    println!("story: cpu{sleeper} does a power-down CPU_SUSPEND");
    on_core(&mut s, sleeper, Cmd::PowerDown, SLEEP_MS, || {
        power_down(SLEEP_MS)
    });
    println!("story: cpu{sleeper} after its power-down (must be unchanged):");
    book.show_one(&mut s, sleeper);

    println!("story: cpu{disabler} disables cpu{filtered} while cpu{filtered} idles");
    on_core(&mut s, disabler, Cmd::TraceDisable, filtered as u64, || {
        disable_other(filtered)
    });
    book.want[filtered] = Expect::disabled(book.want[filtered].generation.map(|g| g + 1));
    book.show(&mut s, "after the remote disable");

    println!("story: cpu{boot} disables every core");
    for i in 0..p.ncpus {
        let g = committed(
            &mut s,
            format_args!("TRACE_DISABLE(cpu{i})"),
            tc::disable(p.mpidr[i]),
        );
        let was = book.want[i];
        let want = match was.mode {
            guest_api::trace::Mode::Enabled => was.generation.map(|g| g + 1),
            guest_api::trace::Mode::Disabled => was.generation,
        };
        if let (Some(g), Some(w)) = (g, want) {
            s.expect(
                g == w,
                format_args!("TRACE_DISABLE(cpu{i}) gave generation {g}, want {w}"),
            );
        }
        book.want[i] = Expect::disabled(want);
    }
    book.show(&mut s, "all disabled");

    // What each core captured: the data stays in the hypervisor's buffer,
    // readable with TRACE_READ, until the next enable.
    println!("story: the trace data each core captured (TRACE_STATS):");
    for i in 0..p.ncpus {
        match calls::hyp6(abi::TRACE_STATS, [p.mpidr[i], 0, 0, 0]).map(abi::Stats::from_registers) {
            Ok(Ok(st)) => {
                println!(
                    "cpu{i}: {} bytes written, {} readable, {} wraps, {} lost{}",
                    st.written,
                    st.available,
                    st.wraps,
                    st.lost,
                    if st.flags & abi::STATS_FULL != 0 {
                        ", full"
                    } else {
                        ""
                    }
                );
                let traced_here = traced.contains(&i);
                s.expect(
                    traced_here == (st.available > 0),
                    format_args!(
                        "cpu{i}: {} bytes readable, traced: {traced_here}",
                        st.available
                    ),
                );
            }
            Ok(Err(e)) => s.fail(format_args!("TRACE_STATS(cpu{i}): {e:?}")),
            Err(c) => s.fail(format_args!("TRACE_STATS(cpu{i}): {c}")),
        }
    }
    s.result()
}

/// The power-down of the story, on the sleeping core.
pub fn power_down(wake_ms: u64) -> Result<(), Msg> {
    let resumed = stress::power_down(wake_ms)?;
    println!(
        "story: power-down CPU_SUSPEND {}",
        if resumed {
            "lost power and resumed at the entry point"
        } else {
            "returned 0"
        }
    );
    Ok(())
}

/// TRACE_DISABLE of core `target` from this core.
pub fn disable_other(target: usize) -> Result<(), Msg> {
    let p = platform::get();
    if target >= p.ncpus {
        fail!("no core {target}");
    }
    match tc::disable(p.mpidr[target]) {
        Ok(r) if r[0] == 0 => {
            println!("story: TRACE_DISABLE(cpu{target}) -> gen={}", r[1]);
            Ok(())
        }
        Ok(r) => fail!(
            "TRACE_DISABLE(cpu{target}): x0 = {} ({})",
            tc::code(&r),
            tc::error_name(tc::code(&r))
        ),
        Err(c) => fail!("TRACE_DISABLE(cpu{target}): {c}"),
    }
}
