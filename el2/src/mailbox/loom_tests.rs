//! Loom models of the mailbox protocol: every interleaving of the cores (and
//! every value a relaxed or acquire load may legally see) within a
//! preemption bound. Run by tests/loom.sh:
//!
//! ```text
//! RUSTFLAGS="--cfg loom" cargo test -p el2 --lib --release -- loom --nocapture
//! ```
//!
//! Cores are loom threads. The SGI is not modelled (`notify` does nothing):
//! a target finds its work by polling, which is what its idle loop does
//! anyway. Every wait loop ends its round with `loom::thread::yield_now()`
//! so that loom knows the thread is spinning and runs the others.
//!
//! A model that could hang (a lost request, a core waiting on a closed or
//! forgotten mailbox) fails: either loom sees every thread blocked, or the
//! spinning execution exceeds loom's branch limit.

use super::{phase, AnswerWords, Bound, Mailbox, RequestWords, SendError, Timeout, CLOSED, EMPTY};
use loom::sync::Arc;
use loom::thread;
use std::sync::atomic::{AtomicUsize, Ordering as StdOrdering};

/// What core `me` answers to `req`: who answered, the request echoed, and a
/// marker, so that an answer collected by the wrong requester, or from the
/// wrong core, or half old, cannot pass for the right one.
fn answer(me: usize, req: RequestWords) -> AnswerWords {
    [me as u64, req[0], req[1], req[2], req[3], 0xa5]
}

/// The request core `me` sends.
fn request(me: usize) -> RequestWords {
    [me as u64, 100 + me as u64, 200 + me as u64, 300 + me as u64]
}

/// One model's spin bound and counters, printed when it is done.
struct Counters {
    /// Useless rounds a wait may make before loom stops branching (see
    /// `SPIN_BOUND`); None: no bound, a pure `yield_now` loop.
    spin_bound: Option<u32>,
    /// Executions explored.
    runs: AtomicUsize,
    /// Waits cut short by the spin bound (see `Spin`).
    spin_bounded: AtomicUsize,
}

impl Counters {
    const fn new(spin_bound: Option<u32>) -> Counters {
        Counters {
            spin_bound,
            runs: AtomicUsize::new(0),
            spin_bounded: AtomicUsize::new(0),
        }
    }
}

/// The spin bound of the models that need one: the unproductive rounds a
/// wait may make (rounds in which the waiter served nothing and its own
/// condition did not hold) before loom stops branching.
///
/// Why a bound at all: loom's scheduler is not fair among spinning threads.
/// Two threads that wait for a third may yield to each other for ever,
/// every switch being free, and loom explores that path until it hits its
/// branch limit (tokio-rs/loom#53) although no fair machine would starve
/// the third core. After that many useless rounds the wait calls
/// `loom::skip_branch()`: the execution still runs to its end (on loom's
/// default schedule, which runs the thread that yielded least first, so a
/// real livelock still fails) and every assertion is still checked, but no
/// alternatives are branched from there on.
///
/// Why it loses nothing that matters: an unproductive round only loads
/// (the failed claim, the poll for DONE or for a post); it writes nothing.
/// Taking it out of an execution leaves every other thread's behaviour
/// possible, so every outcome of an execution with more such rounds is the
/// outcome of one with fewer, where the waiter was preempted instead of
/// yielding.
const SPIN_BOUND: Option<u32> = Some(2);

/// One core's wait: serves its own mailbox (if it has one to serve) and
/// yields, counting useless rounds against the model's spin bound.
struct Spin<'a> {
    counters: &'static Counters,
    own: Option<(&'a Mailbox, usize)>,
    served: u32,
    useless: u32,
    bounded: bool,
}

impl<'a> Spin<'a> {
    fn new(counters: &'static Counters, own: Option<(&'a Mailbox, usize)>) -> Self {
        Spin {
            counters,
            own,
            served: 0,
            useless: 0,
            bounded: false,
        }
    }

    /// One round of waiting.
    fn idle(&mut self) {
        if let Some((own, me)) = self.own {
            if own.serve(&mut |r| answer(me, r)) {
                self.served += 1;
                self.useless = 0;
                return;
            }
        }
        self.useless += 1;
        let over = self.counters.spin_bound.is_some_and(|b| self.useless > b);
        if over && !self.bounded {
            self.bounded = true;
            self.counters
                .spin_bounded
                .fetch_add(1, StdOrdering::Relaxed);
            loom::skip_branch();
        }
        thread::yield_now();
    }

    /// A new wait begins: its useless rounds count from zero.
    fn restart(&mut self) {
        self.useless = 0;
    }

    /// Keeps serving the own mailbox until `n` requests were served in all.
    fn serve_until(&mut self, n: u32) {
        self.restart();
        while self.served < n {
            self.idle();
        }
    }
}

/// Core `me` sends its request to `boxes[to]` through `spin` (which serves
/// its own mailbox while it waits) and checks the answer.
fn send_checked(boxes: &[Mailbox], me: usize, to: usize, spin: &mut Spin) {
    let req = request(me);
    spin.restart();
    let a = boxes[to].send(req, &mut || {}, &mut || spin.idle(), &mut unbounded());
    assert_eq!(a, Ok(answer(to, req)), "core {me} -> core {to}");
}

/// A bound that never passes: the models (a) to (e) check the protocol
/// without timeouts.
fn unbounded() -> Bound<'static> {
    Bound {
        now: Box::leak(Box::new(|| 0)),
        ticks: u64::MAX,
    }
}

/// A clock that advances one tick each time it is read: a wait with a bound
/// of `ticks` gives up after that many polls.
fn polls(ticks: u64) -> Bound<'static> {
    let mut t = 0u64;
    Bound {
        now: Box::leak(Box::new(move || {
            t += 1;
            t
        })),
        ticks,
    }
}

fn open_boxes<const N: usize>() -> Arc<[Mailbox; N]> {
    let boxes: Arc<[Mailbox; N]> = Arc::new(core::array::from_fn(|_| Mailbox::new()));
    for b in boxes.iter() {
        b.open();
    }
    boxes
}

/// The preemption bound of a model: `full` under `make loom`
/// (`TM_LOOM_FULL=1`), `quick` in `make test`, whose time budget the full
/// bound of the ring model (13 M interleavings) exceeds.
fn bound(full: Option<usize>, quick: Option<usize>) -> Option<usize> {
    if std::env::var_os("TM_LOOM_FULL").is_some() {
        full
    } else {
        quick
    }
}

/// Explores `model` exhaustively within `preemptions` (None: unbounded) and
/// its spin bound, counting the executions in `counters`, and prints the count.
fn explore(
    name: &str,
    preemptions: Option<usize>,
    counters: &'static Counters,
    model: impl Fn() + Sync + Send + 'static,
) {
    let mut b = loom::model::Builder::new();
    b.preemption_bound = preemptions;
    // Exhaustive within the bounds, whatever LOOM_MAX_* say.
    b.max_permutations = None;
    b.max_duration = None;
    b.check(move || {
        counters.runs.fetch_add(1, StdOrdering::Relaxed);
        model()
    });
    let n = counters.runs.load(StdOrdering::Relaxed);
    let cut = counters.spin_bounded.load(StdOrdering::Relaxed);
    let show = |b: Option<String>| b.unwrap_or("none".into());
    let preemptions = show(preemptions.map(|p| p.to_string()));
    let spins = show(counters.spin_bound.map(|s| s.to_string()));
    println!(
        "loom model {name}: {n} interleavings explored \
         (preemption bound {preemptions}, spin bound {spins}, {cut} waits spin-bounded)"
    );
    assert!(n > 1, "{name}: loom explored a single execution");
}

/// (a) Three cores, each sends one request to the next (0->1, 1->2, 2->0)
/// while serving its own mailbox: each gets the right answer from the right
/// core, each serves exactly the one request sent to it, nothing deadlocks.
#[test]
fn loom_ring_of_three() {
    static COUNTERS: Counters = Counters::new(SPIN_BOUND);
    explore(
        "a ring 0->1->2->0",
        bound(Some(3), Some(2)),
        &COUNTERS,
        || {
            let boxes = open_boxes::<3>();
            let core = |me: usize, boxes: &[Mailbox]| {
                let mut spin = Spin::new(&COUNTERS, Some((&boxes[me], me)));
                send_checked(boxes, me, (me + 1) % 3, &mut spin);
                spin.serve_until(1);
                assert_eq!(spin.served, 1, "core {me} served a request twice");
            };
            let others: Vec<_> = (1..3)
                .map(|me| {
                    let boxes = boxes.clone();
                    thread::spawn(move || core(me, &boxes[..]))
                })
                .collect();
            core(0, &boxes[..]);
            for t in others {
                t.join().unwrap();
            }
            for b in boxes.iter() {
                assert_eq!(phase(b.state.load(super::Ordering::Relaxed)), EMPTY);
            }
        },
    );
}

/// (b) Two requesters send to the same target at once while it serves: both
/// are answered, each with the answer to its own request.
#[test]
fn loom_two_requesters_one_target() {
    static COUNTERS: Counters = Counters::new(SPIN_BOUND);
    explore("b two requesters -> one target", Some(3), &COUNTERS, || {
        let boxes = open_boxes::<3>();
        let requesters: Vec<_> = (1..3)
            .map(|me| {
                let boxes = boxes.clone();
                thread::spawn(move || {
                    let mut spin = Spin::new(&COUNTERS, Some((&boxes[me], me)));
                    send_checked(&boxes[..], me, 0, &mut spin);
                    assert_eq!(spin.served, 0);
                })
            })
            .collect();
        let mut spin = Spin::new(&COUNTERS, Some((&boxes[0], 0)));
        spin.serve_until(2);
        for t in requesters {
            t.join().unwrap();
        }
        assert_eq!(spin.served, 2);
        assert_eq!(phase(boxes[0].state.load(super::Ordering::Relaxed)), EMPTY);
    });
}

/// The target of (c): closes its mailbox, counting what it served first.
fn close_counting(own: &Mailbox, counters: &'static Counters) -> u32 {
    let mut served = 0;
    let mut spin = Spin::new(counters, None);
    let closed = own.close(
        &mut |r| {
            served += 1;
            answer(0, r)
        },
        &mut || spin.idle(),
        &mut unbounded(),
    );
    assert!(!closed.forced);
    assert_eq!(closed.served, served);
    served
}

/// Requester `me` of (c): sends to core 0 (serving nothing while it waits).
/// Returns whether it was answered; the answer must be the right one.
fn send_to_closing(boxes: &[Mailbox], me: usize, counters: &'static Counters) -> bool {
    let req = request(me);
    let mut spin = Spin::new(counters, None);
    match boxes[0].send(req, &mut || {}, &mut || spin.idle(), &mut unbounded()) {
        Ok(a) => {
            assert_eq!(a, answer(0, req), "core {me}");
            true
        }
        Err(SendError::TargetOff) => false,
        Err(e) => panic!("core {me}: {e:?} without a bound"),
    }
}

/// (c) The target closes its mailbox while a requester sends: the requester
/// gets the right answer (and the target served it exactly once) or
/// TargetOff (and the target served nothing); it never hangs; the mailbox
/// ends closed.
#[test]
fn loom_close_races_send() {
    static COUNTERS: Counters = Counters::new(None);
    explore("c close races one send", None, &COUNTERS, || {
        let boxes = open_boxes::<2>();
        let requester = {
            let boxes = boxes.clone();
            thread::spawn(move || send_to_closing(&boxes[..], 1, &COUNTERS))
        };
        let served = close_counting(&boxes[0], &COUNTERS);
        let answered = requester.join().unwrap();
        assert_eq!(served, answered as u32);
        assert!(!boxes[0].is_open());
        assert_eq!(boxes[0].state.load(super::Ordering::Relaxed), CLOSED);
    });
}

/// (c') As (c) with two requesters racing the close: each is answered or
/// refused, the target served exactly the answered ones.
#[test]
fn loom_close_races_two_sends() {
    static COUNTERS: Counters = Counters::new(SPIN_BOUND);
    explore("c' close races two sends", Some(4), &COUNTERS, || {
        let boxes = open_boxes::<3>();
        let requesters: Vec<_> = (1..3)
            .map(|me| {
                let boxes = boxes.clone();
                thread::spawn(move || send_to_closing(&boxes[..], me, &COUNTERS))
            })
            .collect();
        let served = close_counting(&boxes[0], &COUNTERS);
        let answered = requesters
            .into_iter()
            .map(|t| t.join().unwrap() as u32)
            .sum::<u32>();
        assert_eq!(served, answered);
        assert!(!boxes[0].is_open());
        assert_eq!(boxes[0].state.load(super::Ordering::Relaxed), CLOSED);
    });
}

/// (d) A chain: core 0 requests from core 1 while core 1 is itself waiting
/// for core 2, which only serves. Core 1 must serve core 0 from its wait.
#[test]
fn loom_chain_through_a_waiting_core() {
    static COUNTERS: Counters = Counters::new(None);
    explore(
        "d chain 0->1 while 1->2",
        // Unbounded: with no spin bound, a preemption bound would let a
        // spinning core run for ever.
        None,
        &COUNTERS,
        || {
            let boxes = open_boxes::<3>();
            let core0 = {
                let boxes = boxes.clone();
                thread::spawn(move || {
                    let mut spin = Spin::new(&COUNTERS, Some((&boxes[0], 0)));
                    send_checked(&boxes[..], 0, 1, &mut spin);
                    assert_eq!(spin.served, 0);
                })
            };
            let core1 = {
                let boxes = boxes.clone();
                thread::spawn(move || {
                    let mut spin = Spin::new(&COUNTERS, Some((&boxes[1], 1)));
                    send_checked(&boxes[..], 1, 2, &mut spin);
                    spin.serve_until(1);
                    assert_eq!(spin.served, 1);
                })
            };
            let mut spin = Spin::new(&COUNTERS, Some((&boxes[2], 2)));
            spin.serve_until(1);
            core0.join().unwrap();
            core1.join().unwrap();
            assert_eq!(spin.served, 1);
            for b in boxes.iter() {
                assert_eq!(phase(b.state.load(super::Ordering::Relaxed)), EMPTY);
            }
        },
    );
}

/// (e) Closing refuses new requests at once: with two requesters racing the
/// close, the target serves at most the one request that was posted when the
/// close began (the mailbox holds one), never a second that claimed after it.
#[test]
fn loom_close_serves_at_most_one() {
    static COUNTERS: Counters = Counters::new(SPIN_BOUND);
    explore("e close serves at most one", Some(4), &COUNTERS, || {
        let boxes = open_boxes::<3>();
        let requesters: Vec<_> = (1..3)
            .map(|me| {
                let boxes = boxes.clone();
                thread::spawn(move || send_to_closing(&boxes[..], me, &COUNTERS))
            })
            .collect();
        let served = close_counting(&boxes[0], &COUNTERS);
        for t in requesters {
            t.join().unwrap();
        }
        assert!(served <= 1, "close served {served} requests");
    });
}

/// What a bounded send ended with, for (f) and (g).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Outcome {
    Answered = 0,
    Refused = 1,
    Withdrawn = 2,
    Abandoned = 3,
}

/// How often each `Outcome` happened over a model's executions, so that a
/// model shows it reached every outcome it claims to check.
struct Seen([AtomicUsize; 4]);

impl Seen {
    const fn new() -> Seen {
        Seen([const { AtomicUsize::new(0) }; 4])
    }

    fn record(&self, o: Outcome) {
        self.0[o as usize].fetch_add(1, StdOrdering::Relaxed);
    }

    /// Asserts that each of `outcomes` happened in some execution.
    fn expect(&self, name: &str, outcomes: &[Outcome]) {
        let counts: Vec<_> = self
            .0
            .iter()
            .map(|c| c.load(StdOrdering::Relaxed))
            .collect();
        println!("loom model {name}: outcomes answered/refused/withdrawn/abandoned = {counts:?}");
        for &o in outcomes {
            assert!(counts[o as usize] > 0, "{name}: no execution ended {o:?}");
        }
    }
}

/// Core 1 sends to core 0 with a bound of `ticks` polls (serving nothing).
fn send_bounded(boxes: &[Mailbox], ticks: u64) -> Outcome {
    let req = request(1);
    match boxes[0].send(req, &mut || {}, &mut thread::yield_now, &mut polls(ticks)) {
        Ok(a) => {
            assert_eq!(a, answer(0, req));
            Outcome::Answered
        }
        Err(SendError::TargetOff) => Outcome::Refused,
        Err(SendError::Timeout(Timeout::Withdrawn)) => Outcome::Withdrawn,
        Err(SendError::Timeout(Timeout::Abandoned)) => Outcome::Abandoned,
        Err(SendError::Timeout(Timeout::Unclaimed)) => panic!("nobody else holds the mailbox"),
    }
}

/// Checks one bounded send against what the target executed: a request is
/// either executed by the target or withdrawn by the requester, exactly once.
fn check_once(outcome: Outcome, executed: u32) {
    match outcome {
        Outcome::Answered | Outcome::Abandoned => assert_eq!(executed, 1, "{outcome:?}"),
        Outcome::Refused | Outcome::Withdrawn => assert_eq!(executed, 0, "{outcome:?}"),
    }
}

/// (f) A target that answers late, or never: the requester gives up after
/// two polls, the target tries to serve a few times, at any moment relative
/// to the requester. Whatever the interleaving: the request is executed
/// once and answered (or abandoned: then its answer is dropped), or
/// withdrawn and never executed, not even by a target that wakes up after
/// the requester left; the mailbox ends EMPTY, ready for the next request.
#[test]
fn loom_withdraw_races_take() {
    static COUNTERS: Counters = Counters::new(None);
    static SEEN: Seen = Seen::new();
    explore("f withdraw races take", None, &COUNTERS, || {
        let boxes = open_boxes::<1>();
        let target = {
            let boxes = boxes.clone();
            thread::spawn(move || {
                let mut executed = 0;
                for _ in 0..2 {
                    if boxes[0].serve(&mut |r| {
                        executed += 1;
                        answer(0, r)
                    }) {
                        break;
                    }
                    thread::yield_now();
                }
                executed
            })
        };
        let outcome = send_bounded(&boxes[..], 2);
        let executed = target.join().unwrap();
        // The target wakes up once more, after everything: nothing to do.
        assert!(!boxes[0].serve(&mut |_| panic!("{outcome:?}: executed late")));
        check_once(outcome, executed);
        SEEN.record(outcome);
        assert_eq!(phase(boxes[0].state.load(super::Ordering::Relaxed)), EMPTY);
    });
    use Outcome::*;
    SEEN.expect("f withdraw races take", &[Answered, Withdrawn, Abandoned]);
}

/// (g) A bounded send races the target's close: answered (served once by
/// the close), refused, withdrawn (never served) or abandoned (served, the
/// answer dropped); the close never waits for ever and the mailbox ends
/// CLOSED.
#[test]
fn loom_bounded_send_races_close() {
    static COUNTERS: Counters = Counters::new(None);
    static SEEN: Seen = Seen::new();
    explore("g bounded send races close", None, &COUNTERS, || {
        let boxes = open_boxes::<1>();
        let requester = {
            let boxes = boxes.clone();
            thread::spawn(move || send_bounded(&boxes[..], 2))
        };
        let mut executed = 0;
        let closed = boxes[0].close(
            &mut |r| {
                executed += 1;
                answer(0, r)
            },
            &mut thread::yield_now,
            &mut unbounded(),
        );
        let outcome = requester.join().unwrap();
        assert!(!closed.forced);
        assert_eq!(closed.served, executed);
        check_once(outcome, executed);
        SEEN.record(outcome);
        assert_eq!(boxes[0].state.load(super::Ordering::Relaxed), CLOSED);
    });
    use Outcome::*;
    SEEN.expect(
        "g bounded send races close",
        &[Answered, Refused, Withdrawn, Abandoned],
    );
}
