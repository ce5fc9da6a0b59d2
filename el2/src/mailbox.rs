//! Cross-core requests: one mailbox per target core.
//!
//! A core never touches another core's hypervisor state. To have something
//! done on core T, a core claims T's mailbox, posts the request, sends the
//! hypervisor's SGI to T and waits for T's answer. T's EL2 serves the
//! request in its SGI handler, on its own core, with interrupts masked.
//!
//! Phases of a mailbox (the state word's low byte):
//!
//! ```text
//!  CLOSED --open (T, at power-on)--> EMPTY --claim (requester)--> CLAIMED
//!  CLAIMED --post--> POSTED --take (T)--> TAKEN --answer (T)--> DONE
//!  DONE --collect (requester)--> EMPTY
//!  POSTED --withdraw (requester, bound passed)--> EMPTY
//!  TAKEN --abandon (requester, bound passed)--> ABANDONED --answer (T)--> EMPTY
//!  EMPTY --close (T, before power-off)--> CLOSED
//! ```
//!
//! **Closing.** T closes its mailbox before CPU_OFF in two steps: first it
//! sets the CLOSING flag (bit 8, kept by every other transition), after
//! which no claim succeeds and a requester that had claimed but not posted
//! gives its claim back; then it serves the one request that may already be
//! posted, waits for a requester that is collecting or giving a claim back
//! (a few instructions of EL2 with interrupts masked), and moves EMPTY to
//! CLOSED. So a core going off serves at most one more request, whatever
//! other cores keep sending (before this, a flood of requests kept a closing
//! core busy for seconds: each freed slot was claimed again before the
//! closer's next look). A closed or closing mailbox answers TargetOff at
//! once.
//!
//! **Bounded waits.** Every wait on another core has a bound, measured on
//! a clock the caller supplies (the generic counter on the machine, a poll
//! counter in the host tests and loom models), because a target can stop
//! answering: powered off behind PSCI's back with its mailbox open, or
//! stuck. When the bound passes:
//! - a requester still waiting to claim gives up (`Timeout::Unclaimed`)
//!   when the target has taken no request, for anybody, for one bound
//!   (or after `CLAIM_BOUNDS` bounds in all);
//! - a posted request is withdrawn (`Timeout::Withdrawn`): the requester's
//!   POSTED -> EMPTY and the target's POSTED -> TAKEN are both
//!   compare-exchanges on the same word, so exactly one of them wins, and a
//!   withdrawn request is never executed, however late the target wakes up;
//! - a request the target already took is abandoned (`Timeout::Abandoned`):
//!   it may have been applied, but its answer is dropped, and the target,
//!   when it finishes, frees the slot instead of publishing.
//!
//! A core that waits (to claim, or for its answer) keeps serving its own
//! mailbox, so cores that request from each other at the same moment cannot
//! deadlock.

use sync::{AtomicU32, AtomicU64, Ordering};

/// The atomics the protocol uses: the real ones, or loom's under
/// `--cfg loom` so that the models below can explore every interleaving
/// (tests/loom.sh).
mod sync {
    #[cfg(not(loom))]
    pub(super) use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};
    #[cfg(loom)]
    pub(super) use loom::sync::atomic::{AtomicU32, AtomicU64, Ordering};
}

const CLOSED: u32 = 0;
const EMPTY: u32 = 1;
const CLAIMED: u32 = 2;
const POSTED: u32 = 3;
const TAKEN: u32 = 4;
const DONE: u32 = 5;
const ABANDONED: u32 = 6;
/// The owner is closing the mailbox: no new claim succeeds.
const CLOSING: u32 = 1 << 8;
const PHASE: u32 = 0xff;
/// Bits [31:16] count the requests the owner has taken (wrapping), in the
/// same word so that taking and counting are one compare-exchange: a
/// requester waiting to claim sees the target making progress for others,
/// and the word never returns to an earlier value while it does.
const TAKE: u32 = 1 << 16;

const fn phase(state: u32) -> u32 {
    state & PHASE
}

/// Why a request did not get its answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SendError {
    /// The target core is off, or going off: its mailbox is closed or
    /// closing. Nothing was done.
    TargetOff,
    /// The target did not answer within the bound.
    Timeout(Timeout),
}

/// The longest a claim may wait while the target serves others, in bounds.
pub const CLAIM_BOUNDS: u64 = 3;

/// How far a request got before its bound passed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Timeout {
    /// The mailbox stayed busy with another request: nothing was posted.
    Unclaimed,
    /// Posted, never taken, and withdrawn: the target will never execute it.
    Withdrawn,
    /// Taken by the target, not answered: it may have been applied.
    Abandoned,
}

/// How a close ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Closed {
    /// Requests served while closing (at most one).
    pub served: u32,
    /// A requester did not finish its claim or collect within the bound:
    /// the mailbox was closed under it (it then finds it closed).
    pub forced: bool,
}

/// A bound on a wait: `now` reads a clock, `ticks` is how long one wait may
/// last on it.
pub struct Bound<'a> {
    /// The clock (monotonic; wrapping differences are used).
    pub now: &'a mut dyn FnMut() -> u64,
    /// The longest wait, in the clock's ticks.
    pub ticks: u64,
}

impl core::fmt::Debug for Bound<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Bound")
            .field("ticks", &self.ticks)
            .finish_non_exhaustive()
    }
}

impl Bound<'_> {
    fn start(&mut self) -> u64 {
        (self.now)()
    }

    fn passed(&mut self, since: u64) -> bool {
        (self.now)().wrapping_sub(since) >= self.ticks
    }
}

/// Words in a request.
pub const REQUEST_WORDS: usize = 4;
/// Words in an answer (x0..x5 of the guest's call).
pub const ANSWER_WORDS: usize = 6;
/// A request, as words.
pub type RequestWords = [u64; REQUEST_WORDS];
/// An answer, as words.
pub type AnswerWords = [u64; ANSWER_WORDS];

/// One core's mailbox: a request of four words and an answer of six.
#[derive(Debug)]
pub struct Mailbox {
    state: AtomicU32,
    request: [AtomicU64; REQUEST_WORDS],
    answer: [AtomicU64; ANSWER_WORDS],
}

/// The body of `Mailbox::new`, shared by its const and its loom version.
macro_rules! closed_mailbox {
    () => {
        Mailbox {
            state: AtomicU32::new(CLOSED),
            request: [
                AtomicU64::new(0),
                AtomicU64::new(0),
                AtomicU64::new(0),
                AtomicU64::new(0),
            ],
            answer: [
                AtomicU64::new(0),
                AtomicU64::new(0),
                AtomicU64::new(0),
                AtomicU64::new(0),
                AtomicU64::new(0),
                AtomicU64::new(0),
            ],
        }
    };
}

impl Default for Mailbox {
    fn default() -> Self {
        Self::new()
    }
}

impl Mailbox {
    /// A closed mailbox: its core is not running yet.
    #[cfg(not(loom))]
    pub const fn new() -> Mailbox {
        closed_mailbox!()
    }

    /// A closed mailbox: its core is not running yet. (Loom's atomics have
    /// no `const fn new`.)
    #[cfg(loom)]
    pub fn new() -> Mailbox {
        closed_mailbox!()
    }

    /// Moves the phase from `from` to `to`, keeping the CLOSING flag and
    /// the take count.
    /// `Err(state)` if the phase is not `from`.
    fn advance(&self, from: u32, to: u32, success: Ordering) -> Result<u32, u32> {
        self.advance_counting(from, to, 0, success)
    }

    /// [`Self::advance`], adding `takes` to the take count.
    fn advance_counting(
        &self,
        from: u32,
        to: u32,
        takes: u32,
        success: Ordering,
    ) -> Result<u32, u32> {
        let mut cur = self.state.load(Ordering::Acquire);
        loop {
            if phase(cur) != from {
                return Err(cur);
            }
            let new = (cur & !PHASE).wrapping_add(takes) | to;
            match self
                .state
                .compare_exchange(cur, new, success, Ordering::Acquire)
            {
                Ok(old) => return Ok(old),
                // Only the flag can have changed under us (the phase is
                // ours to move): look again.
                Err(now) => cur = now,
            }
        }
    }

    /// Opens the mailbox. Called by its own core when it comes up.
    pub fn open(&self) {
        let _ = self
            .state
            .compare_exchange(CLOSED, EMPTY, Ordering::AcqRel, Ordering::Acquire);
    }

    /// Is the mailbox open (and not closing)?
    pub fn is_open(&self) -> bool {
        let s = self.state.load(Ordering::Acquire);
        phase(s) != CLOSED && s & CLOSING == 0
    }

    /// Closes the mailbox of a core that another core found gone (firmware
    /// says it is off, but it never went through CPU_OFF): later requests
    /// are refused at once instead of each waiting out the bound. Only an
    /// idle mailbox is closed; its core reopens it when it is started again.
    /// Returns whether it closed it.
    pub fn close_for_vanished_owner(&self) -> bool {
        let s = self.state.load(Ordering::Acquire);
        phase(s) == EMPTY
            && s & CLOSING == 0
            && self
                .state
                .compare_exchange(s, CLOSED, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
    }

    /// Serves a posted request, if any, with `handler`. Called only by the
    /// mailbox's own core. Returns whether it executed one.
    pub fn serve(&self, handler: &mut dyn FnMut(RequestWords) -> AnswerWords) -> bool {
        // Taking is a compare-exchange against the requester's withdrawal:
        // exactly one of the two wins. Acquire: the request words the
        // requester wrote before its Release post are visible.
        if self
            .advance_counting(POSTED, TAKEN, TAKE, Ordering::Acquire)
            .is_err()
        {
            return false;
        }
        let req: RequestWords = core::array::from_fn(|i| self.request[i].load(Ordering::Relaxed));
        let ans = handler(req);
        for (slot, v) in self.answer.iter().zip(ans) {
            slot.store(v, Ordering::Relaxed);
        }
        // Release: the answer words are visible to whoever sees DONE.
        if self.advance(TAKEN, DONE, Ordering::Release).is_err() {
            // The requester gave up on it (ABANDONED): nobody will collect,
            // so the slot is freed here.
            let _ = self.advance(ABANDONED, EMPTY, Ordering::Release);
        }
        true
    }

    /// Closes the mailbox, serving what was posted first. Called only by
    /// its own core, before it powers off. New requests are refused from
    /// the first instruction on; `wait` is called between polls (it may wait
    /// for an event) and only a requester in the middle of giving back a
    /// claim or collecting an answer is ever waited for, within `bound`.
    pub fn close(
        &self,
        handler: &mut dyn FnMut(RequestWords) -> AnswerWords,
        wait: &mut dyn FnMut(),
        bound: &mut Bound,
    ) -> Closed {
        let mut closed = Closed {
            served: 0,
            forced: false,
        };
        // Refuse new claims at once.
        let mut cur = self.state.load(Ordering::Acquire);
        loop {
            if phase(cur) == CLOSED {
                return closed;
            }
            match self.state.compare_exchange(
                cur,
                cur | CLOSING,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => break,
                Err(now) => cur = now,
            }
        }
        let since = bound.start();
        loop {
            let s = self.state.load(Ordering::Acquire);
            match phase(s) {
                EMPTY => {
                    if self
                        .state
                        .compare_exchange(s, CLOSED, Ordering::AcqRel, Ordering::Acquire)
                        .is_ok()
                    {
                        return closed;
                    }
                }
                CLOSED => return closed,
                POSTED => {
                    if self.serve(handler) {
                        closed.served += 1;
                    }
                }
                _ => {
                    if bound.passed(since) {
                        // A requester that stopped in the middle of a claim
                        // or a collect: it finds the mailbox closed when
                        // (if) it goes on, and gives up.
                        self.state.store(CLOSED, Ordering::Release);
                        closed.forced = true;
                        return closed;
                    }
                    wait();
                }
            }
        }
    }

    /// Sends `request` to this mailbox's core and returns its answer.
    ///
    /// `notify` is called once the request is posted (it sends the SGI);
    /// `idle` is called while waiting and must serve the caller's own
    /// mailbox (that is what keeps all-to-all requests deadlock-free).
    ///
    /// `bound` limits each wait: the claim ends when the mailbox makes no
    /// progress (the target takes no request, for anybody) for one bound,
    /// or after [`CLAIM_BOUNDS`] bounds in all, however busy the target
    /// is with others (the one-request mailbox is not fair among
    /// requesters: under a flood from several cores one of them can lose
    /// the claim for a long time); the answer must come within one bound
    /// of the post.
    pub fn send(
        &self,
        request: RequestWords,
        notify: &mut dyn FnMut(),
        idle: &mut dyn FnMut(),
        bound: &mut Bound,
    ) -> Result<AnswerWords, SendError> {
        let first = bound.start();
        let mut since = first;
        let mut cur = self.state.load(Ordering::Acquire);
        let mut seen = cur / TAKE;
        let claimed = loop {
            if phase(cur) == CLOSED || cur & CLOSING != 0 {
                return Err(SendError::TargetOff);
            }
            if phase(cur) == EMPTY {
                let claimed = (cur & !PHASE) | CLAIMED;
                match self.state.compare_exchange(
                    cur,
                    claimed,
                    Ordering::Acquire,
                    Ordering::Acquire,
                ) {
                    Ok(_) => break claimed,
                    Err(now) => {
                        cur = now;
                        continue;
                    }
                }
            }
            if cur / TAKE != seen {
                // The target serves others: it is alive.
                seen = cur / TAKE;
                since = bound.start();
            }
            let total = (bound.now)().wrapping_sub(first);
            if bound.passed(since) || total / CLAIM_BOUNDS >= bound.ticks {
                return Err(SendError::Timeout(Timeout::Unclaimed));
            }
            idle();
            cur = self.state.load(Ordering::Acquire);
        };
        for (slot, v) in self.request.iter().zip(request) {
            slot.store(v, Ordering::Relaxed);
        }
        // Post only into a mailbox that is not closing (Release: the words
        // above are visible to the target that takes it).
        if let Err(s) = self.state.compare_exchange(
            claimed,
            (claimed & !PHASE) | POSTED,
            Ordering::Release,
            Ordering::Acquire,
        ) {
            // The owner began closing after the claim: give the claim back
            // (unless a close that gave up on us already made it CLOSED).
            if phase(s) == CLAIMED {
                let _ = self.state.compare_exchange(
                    s,
                    (s & !PHASE) | EMPTY,
                    Ordering::Release,
                    Ordering::Relaxed,
                );
            }
            return Err(SendError::TargetOff);
        }
        notify();
        let since = bound.start();
        loop {
            let s = self.state.load(Ordering::Acquire);
            if phase(s) == DONE {
                break;
            }
            if phase(s) == CLOSED {
                // A close that gave up waiting for us (we stopped for a
                // whole bound after the target answered): the request was
                // executed, its answer is lost.
                return Err(SendError::Timeout(Timeout::Abandoned));
            }
            if bound.passed(since) {
                if self.advance(POSTED, EMPTY, Ordering::Relaxed).is_ok() {
                    return Err(SendError::Timeout(Timeout::Withdrawn));
                }
                if self.advance(TAKEN, ABANDONED, Ordering::Relaxed).is_ok() {
                    return Err(SendError::Timeout(Timeout::Abandoned));
                }
                // Neither posted nor taken: the target answered in between
                // (DONE), or a close gave up on us (CLOSED, as above).
                if phase(self.state.load(Ordering::Acquire)) != DONE {
                    return Err(SendError::Timeout(Timeout::Abandoned));
                }
                break;
            }
            idle();
        }
        let ans: AnswerWords = core::array::from_fn(|i| self.answer[i].load(Ordering::Relaxed));
        let _ = self.advance(DONE, EMPTY, Ordering::Release);
        Ok(ans)
    }
}

// Loom's atomics work only inside a loom model: the plain tests run without.
#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use std::cell::Cell;
    use std::sync::atomic::AtomicBool;
    use std::sync::Arc;

    /// A bound that never passes.
    fn unbounded() -> Bound<'static> {
        Bound {
            now: Box::leak(Box::new(|| 0)),
            ticks: u64::MAX,
        }
    }

    #[test]
    fn closed_mailbox_refuses_at_once() {
        let m = Mailbox::new();
        let r = m.send(
            [1, 2, 3, 4],
            &mut || panic!("no notify"),
            &mut || panic!("no wait"),
            &mut unbounded(),
        );
        assert_eq!(r, Err(SendError::TargetOff));
    }

    #[test]
    fn request_is_answered_by_the_server() {
        let m = Mailbox::new();
        m.open();
        // The "target" is simulated by serving from the idle hook.
        let mut notified = false;
        let r = m.send(
            [7, 9, 0, 1],
            &mut || notified = true,
            &mut || {
                m.serve(&mut |req| [req[0] + req[1], 1, 2, 3, 4, req[3] + 5]);
            },
            &mut unbounded(),
        );
        assert!(notified);
        assert_eq!(r, Ok([16, 1, 2, 3, 4, 6]));
        assert!(!m.serve(&mut |_| unreachable!()), "nothing left to serve");
    }

    /// A target that never answers (powered off behind PSCI's back with its
    /// mailbox open): the send ends when the bound passes, on an injected
    /// clock (one tick per poll), and the request is withdrawn: the target,
    /// waking up later, finds nothing to execute, and the mailbox takes the
    /// next request as usual.
    #[test]
    fn send_to_a_vanished_target_ends_at_the_bound() {
        let m = Mailbox::new();
        m.open();
        let ticks = Cell::new(0u64);
        let mut polls = 0;
        let r = m.send(
            [1, 0, 0, 0],
            &mut || {},
            &mut || polls += 1,
            &mut Bound {
                now: &mut || {
                    ticks.set(ticks.get() + 1);
                    ticks.get()
                },
                ticks: 100,
            },
        );
        assert_eq!(r, Err(SendError::Timeout(Timeout::Withdrawn)));
        assert!(
            (98..=100).contains(&polls),
            "{polls} polls for a bound of 100"
        );
        assert!(!m.serve(&mut |_| panic!("a withdrawn request was executed")));
        assert!(m.is_open());
        let r = m.send(
            [2, 0, 0, 0],
            &mut || {},
            &mut || {
                m.serve(&mut |w| [w[0], 0, 0, 0, 0, 0]);
            },
            &mut unbounded(),
        );
        assert_eq!(r, Ok([2, 0, 0, 0, 0, 0]));
    }

    /// The target took the request and is stuck in it: the requester
    /// abandons it at the bound; the target, when it finishes, frees the
    /// slot instead of publishing an answer nobody collects.
    #[test]
    fn a_taken_request_is_abandoned_at_the_bound_and_freed_by_the_target() {
        let m = Arc::new(Mailbox::new());
        m.open();
        let (taken_tx, taken_rx) = std::sync::mpsc::channel();
        let (finish_tx, finish_rx) = std::sync::mpsc::channel::<()>();
        let target = {
            let m = m.clone();
            std::thread::spawn(move || {
                while !m.serve(&mut |w| {
                    taken_tx.send(()).unwrap();
                    finish_rx.recv().unwrap();
                    [w[0], 0, 0, 0, 0, 0]
                }) {
                    std::hint::spin_loop();
                }
            })
        };
        let now = Cell::new(0u64);
        let taken = Cell::new(false);
        let r = m.send(
            [3, 0, 0, 0],
            &mut || {},
            &mut || {
                // Time passes only once the target is inside the request.
                if !taken.get() {
                    taken_rx.recv().unwrap();
                    taken.set(true);
                }
            },
            &mut Bound {
                now: &mut || {
                    if taken.get() {
                        now.set(now.get() + 10);
                    }
                    now.get()
                },
                ticks: 50,
            },
        );
        assert_eq!(r, Err(SendError::Timeout(Timeout::Abandoned)));
        assert!(!m.is_open() || phase(m.state.load(Ordering::Acquire)) == ABANDONED);
        finish_tx.send(()).unwrap();
        target.join().unwrap();
        assert_eq!(phase(m.state.load(Ordering::Acquire)), EMPTY);
    }

    /// Claiming a mailbox that stays busy ends at the bound too.
    #[test]
    fn a_claim_on_a_busy_mailbox_ends_at_the_bound() {
        let m = Mailbox::new();
        m.open();
        m.state.store(TAKEN, Ordering::Relaxed);
        let mut t = 0;
        let r = m.send(
            [1, 0, 0, 0],
            &mut || panic!("posted"),
            &mut || {},
            &mut Bound {
                now: &mut || {
                    t += 1;
                    t
                },
                ticks: 5,
            },
        );
        assert_eq!(r, Err(SendError::Timeout(Timeout::Unclaimed)));
    }

    #[test]
    fn close_serves_what_was_posted() {
        let m = Arc::new(Mailbox::new());
        m.open();
        let requester = {
            let m = m.clone();
            std::thread::spawn(move || {
                m.send(
                    [5, 0, 0, 0],
                    &mut || {},
                    &mut std::hint::spin_loop,
                    &mut unbounded(),
                )
            })
        };
        // The target keeps trying to close until the request is in and served.
        let mut served = 0;
        while !requester.is_finished() || m.is_open() {
            let c = m.close(
                &mut |r| {
                    served += 1;
                    [r[0] * 2, 0, 0, 0, 0, 0]
                },
                &mut std::hint::spin_loop,
                &mut unbounded(),
            );
            assert!(!c.forced);
        }
        let r = requester.join().unwrap();
        // Either served before closing, or refused because closed first.
        match r {
            Ok(a) => {
                assert_eq!(a[0], 10);
                assert_eq!(served, 1)
            }
            Err(SendError::TargetOff) => assert_eq!(served, 0),
            Err(e) => panic!("{e:?}"),
        }
        assert!(!m.is_open());
    }

    /// Closing refuses new requests at once: a request posted when the
    /// close begins is served, and nothing after it, although requesters
    /// keep sending as fast as they can. (Before the CLOSING flag, each
    /// freed slot was claimed again before the closer looked: a core going
    /// off under a flood of requests kept serving for seconds.)
    #[test]
    fn close_under_a_flood_serves_at_most_one() {
        for _ in 0..20 {
            let m = Arc::new(Mailbox::new());
            m.open();
            // Each requester sends until it is refused.
            let floods: Vec<_> = (0..3)
                .map(|i| {
                    let m = m.clone();
                    std::thread::spawn(move || loop {
                        match m.send(
                            [i, 0, 0, 0],
                            &mut || {},
                            &mut std::thread::yield_now,
                            &mut unbounded(),
                        ) {
                            Ok(a) => assert_eq!(a[0], i),
                            Err(SendError::TargetOff) => return,
                            Err(e) => panic!("{e:?}"),
                        }
                    })
                })
                .collect();
            // Serve a while, so that the flood is on when the close begins.
            let mut before = 0;
            while before < 20 {
                if m.serve(&mut |w| [w[0], 0, 0, 0, 0, 0]) {
                    before += 1;
                }
            }
            let c = m.close(
                &mut |w| [w[0], 0, 0, 0, 0, 0],
                &mut std::hint::spin_loop,
                &mut unbounded(),
            );
            assert!(c.served <= 1, "close served {} requests", c.served);
            assert!(!c.forced);
            for t in floods {
                t.join().unwrap();
            }
            assert!(!m.serve(&mut |_| panic!("served after close")));
        }
    }

    /// A requester that claimed and then stopped for good (its core lost
    /// power in EL2): the close does not wait for it beyond the bound.
    #[test]
    fn close_does_not_wait_for_ever_on_a_stopped_requester() {
        let m = Mailbox::new();
        m.open();
        m.state.store(CLAIMED, Ordering::Relaxed);
        let mut t = 0;
        let c = m.close(
            &mut |_| unreachable!(),
            &mut || {},
            &mut Bound {
                now: &mut || {
                    t += 1;
                    t
                },
                ticks: 10,
            },
        );
        assert_eq!(
            c,
            Closed {
                served: 0,
                forced: true
            }
        );
        assert!(!m.is_open());
    }

    /// Every core requests from every other core at once while serving its
    /// own mailbox: no deadlock, every answer comes from the right core.
    #[test]
    fn all_to_all_requests_complete() {
        const CORES: usize = 4;
        const ROUNDS: u64 = 300;
        let boxes: Arc<Vec<Mailbox>> = Arc::new((0..CORES).map(|_| Mailbox::new()).collect());
        for b in boxes.iter() {
            b.open();
        }
        let stop = Arc::new(AtomicBool::new(false));
        let finished = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let threads: Vec<_> = (0..CORES)
            .map(|me| {
                let (boxes, stop, finished) = (boxes.clone(), stop.clone(), finished.clone());
                std::thread::spawn(move || {
                    let mut served = 0u64;
                    let serve_own = |served: &mut u64| {
                        boxes[me].serve(&mut |r| {
                            *served += 1;
                            [me as u64, r[0], r[1], r[2], r[3], 7]
                        });
                    };
                    for round in 0..ROUNDS {
                        for t in (0..CORES).filter(|&t| t != me) {
                            let mut s = 0;
                            let a = boxes[t]
                                .send(
                                    [me as u64, round, round * 3, !round],
                                    &mut || {},
                                    &mut || serve_own(&mut s),
                                    &mut unbounded(),
                                )
                                .unwrap();
                            served += s;
                            assert_eq!(a, [t as u64, me as u64, round, round * 3, !round, 7]);
                        }
                    }
                    finished.fetch_add(1, Ordering::AcqRel);
                    // Keep serving until everyone is done.
                    while !stop.load(Ordering::Acquire) {
                        serve_own(&mut served);
                        std::hint::spin_loop();
                    }
                    served
                })
            })
            .collect();
        // Stop serving only once every core has had all its requests
        // answered: a core that stopped earlier would leave a sender waiting.
        while finished.load(Ordering::Acquire) < CORES {
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
        stop.store(true, Ordering::Release);
        let total: u64 = threads.into_iter().map(|t| t.join().unwrap()).sum();
        assert_eq!(total, ROUNDS * (CORES * (CORES - 1)) as u64);
    }
}

#[cfg(all(test, loom))]
mod loom_tests;
