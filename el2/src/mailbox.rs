//! Cross-core requests: one mailbox per target core.
//!
//! A core never touches another core's hypervisor state. To have something
//! done on core T, a core claims T's mailbox, posts the request, sends the
//! hypervisor's SGI to T and waits for T's answer. T's EL2 serves the
//! request in its SGI handler, on its own core, with interrupts masked.
//!
//! States of a mailbox:
//!
//! ```text
//!  CLOSED --open (by T, at power-on)--> EMPTY --claim (requester)--> CLAIMED
//!  CLAIMED --post--> POSTED --serve (T)--> DONE --collect (requester)--> EMPTY
//!  EMPTY --close (by T, before power-off)--> CLOSED
//! ```
//!
//! A core that waits (to claim, or for its answer) keeps serving its own
//! mailbox, so cores that request from each other at the same moment cannot
//! deadlock. A closed mailbox answers "target off" at once; a core closes its
//! mailbox only after serving what was posted to it, so a posted request is
//! always answered.

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
const DONE: u32 = 4;

/// Why a request did not reach its target.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SendError {
    /// The target core is off: its mailbox is closed.
    TargetOff,
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

    /// Opens the mailbox. Called by its own core when it comes up.
    pub fn open(&self) {
        let _ = self
            .state
            .compare_exchange(CLOSED, EMPTY, Ordering::AcqRel, Ordering::Acquire);
    }

    /// Is the mailbox open?
    pub fn is_open(&self) -> bool {
        self.state.load(Ordering::Acquire) != CLOSED
    }

    /// Serves a posted request, if any, with `handler`. Called only by the
    /// mailbox's own core. Returns whether it served one.
    pub fn serve(&self, handler: &mut dyn FnMut(RequestWords) -> AnswerWords) -> bool {
        if self.state.load(Ordering::Acquire) != POSTED {
            return false;
        }
        let req: RequestWords = core::array::from_fn(|i| self.request[i].load(Ordering::Relaxed));
        let ans = handler(req);
        for (slot, v) in self.answer.iter().zip(ans) {
            slot.store(v, Ordering::Relaxed);
        }
        self.state.store(DONE, Ordering::Release);
        true
    }

    /// Closes the mailbox, serving anything posted first. Called only by its
    /// own core, before it powers off. `wait` is called between polls (it
    /// may wait for an event): only a requester in the middle of a claim or a
    /// collect is ever waited for.
    pub fn close(
        &self,
        handler: &mut dyn FnMut(RequestWords) -> AnswerWords,
        wait: &mut dyn FnMut(),
    ) {
        loop {
            match self
                .state
                .compare_exchange(EMPTY, CLOSED, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) | Err(CLOSED) => return,
                Err(POSTED) => {
                    self.serve(handler);
                }
                Err(_) => wait(),
            }
        }
    }

    /// Sends `request` to this mailbox's core and returns its answer.
    ///
    /// `notify` is called once the request is posted (it sends the SGI);
    /// `idle` is called while waiting and must serve the caller's own
    /// mailbox (that is what keeps all-to-all requests deadlock-free).
    pub fn send(
        &self,
        request: RequestWords,
        notify: &mut dyn FnMut(),
        idle: &mut dyn FnMut(),
    ) -> Result<AnswerWords, SendError> {
        loop {
            match self
                .state
                .compare_exchange(EMPTY, CLAIMED, Ordering::Acquire, Ordering::Acquire)
            {
                Ok(_) => break,
                Err(CLOSED) => return Err(SendError::TargetOff),
                Err(_) => idle(),
            }
        }
        for (slot, v) in self.request.iter().zip(request) {
            slot.store(v, Ordering::Relaxed);
        }
        self.state.store(POSTED, Ordering::Release);
        notify();
        while self.state.load(Ordering::Acquire) != DONE {
            idle();
        }
        let ans: AnswerWords = core::array::from_fn(|i| self.answer[i].load(Ordering::Relaxed));
        self.state.store(EMPTY, Ordering::Release);
        Ok(ans)
    }
}

// Loom's atomics work only inside a loom model: the plain tests run without.
#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicBool;
    use std::sync::Arc;

    #[test]
    fn closed_mailbox_refuses_at_once() {
        let m = Mailbox::new();
        let r = m.send([1, 2, 3, 4], &mut || panic!("no notify"), &mut || {
            panic!("no wait")
        });
        assert_eq!(r, Err(SendError::TargetOff));
    }

    #[test]
    fn request_is_answered_by_the_server() {
        let m = Mailbox::new();
        m.open();
        // The "target" is simulated by serving from the idle hook.
        let mut notified = false;
        let r = m.send([7, 9, 0, 1], &mut || notified = true, &mut || {
            m.serve(&mut |req| [req[0] + req[1], 1, 2, 3, 4, req[3] + 5]);
        });
        assert!(notified);
        assert_eq!(r, Ok([16, 1, 2, 3, 4, 6]));
        assert!(!m.serve(&mut |_| unreachable!()), "nothing left to serve");
    }

    #[test]
    fn close_serves_what_was_posted() {
        let m = Arc::new(Mailbox::new());
        m.open();
        let requester = {
            let m = m.clone();
            std::thread::spawn(move || m.send([5, 0, 0, 0], &mut || {}, &mut std::hint::spin_loop))
        };
        // The target keeps trying to close until the request is in and served.
        let mut served = 0;
        while !requester.is_finished() || m.is_open() {
            m.close(
                &mut |r| {
                    served += 1;
                    [r[0] * 2, 0, 0, 0, 0, 0]
                },
                &mut std::hint::spin_loop,
            );
        }
        let r = requester.join().unwrap();
        // Either served before closing, or refused because closed first.
        match r {
            Ok(a) => {
                assert_eq!(a[0], 10);
                assert_eq!(served, 1)
            }
            Err(SendError::TargetOff) => assert_eq!(served, 0),
        }
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
