//! Scheduling priority of the helper threads: the event loop must win the core whenever it has
//! work, the store's flushes must not wait behind password hashing, and hashing takes what is
//! left.
//!
//! The hash workers run at `SCHED_IDLE` always. The flusher thread and sled's I/O threads run at
//! `SCHED_IDLE` too while no hash is being computed: on a one-core host the loop then preempts a
//! flush the moment a socket wakes it (a flusher at normal priority delayed the loop's wake-ups
//! by 38 us on average; at nice 19, 54 us). But idle-class threads share the CPU evenly among
//! themselves, so during a login storm a flush would get a third of what the hash workers leave:
//! milliseconds, during which the answers and acks it holds back (and every later frame to
//! their connections) wait. So while a hash runs, the flush threads run at normal priority.

use std::sync::Mutex;

/// Moves thread `tid` (0: the calling thread) to `SCHED_IDLE`: it runs only when nothing else
/// wants the CPU. False if the system refused (the thread keeps its priority).
pub fn lower_to_idle(tid: libc::pid_t) -> bool {
    set_policy(tid, Policy::Idle)
}

/// The flush threads' priority, following whether any password hash is being computed.
#[derive(Default)]
pub struct Helpers {
    state: Mutex<HelpersState>,
}

#[derive(Default)]
struct HelpersState {
    /// The flusher thread and sled's I/O threads.
    flush_threads: Vec<libc::pid_t>,
    hashes_running: usize,
    /// Raising them was refused once already (and said so).
    raise_refused: bool,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Policy {
    Idle,
    Normal,
}

impl Helpers {
    /// Puts `tids` (the flush threads; 0 is the calling thread) under this policy and sets them
    /// to what it says now. False if the system refused.
    pub fn adopt_flush_threads(&self, tids: &[libc::pid_t]) -> bool {
        let mut state = self.lock();
        let policy = state.flush_policy();
        state.flush_threads.extend(tids.iter().map(
            |&tid| {
                if tid == 0 {
                    current_tid()
                } else {
                    tid
                }
            },
        ));
        state
            .flush_threads
            .iter()
            .all(|&tid| set_policy(tid, policy))
    }

    /// Marks a hash as running until the guard is dropped.
    pub fn hashing(&self) -> Hashing<'_> {
        let mut state = self.lock();
        state.hashes_running += 1;
        if state.hashes_running == 1 && !state.apply(Policy::Normal) && !state.raise_refused {
            state.raise_refused = true;
            crate::warn!(
                "store flushes stay at idle priority while passwords are hashed: leaving \
                 SCHED_IDLE needs RLIMIT_NICE of 20 or more (systemd: LimitNICE=20) or CAP_SYS_NICE"
            );
        }
        Hashing { helpers: self }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HelpersState> {
        // Nothing panics while holding it.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl HelpersState {
    fn flush_policy(&self) -> Policy {
        if self.hashes_running > 0 {
            Policy::Normal
        } else {
            Policy::Idle
        }
    }

    /// False if the system refused it for any of the threads.
    fn apply(&self, policy: Policy) -> bool {
        // Every thread, even after a refusal.
        let mut all = true;
        for &tid in &self.flush_threads {
            all &= set_policy(tid, policy);
        }
        all
    }
}

/// A password hash in progress (see [`Helpers::hashing`]).
pub struct Hashing<'a> {
    helpers: &'a Helpers,
}

impl Drop for Hashing<'_> {
    fn drop(&mut self) {
        let mut state = self.helpers.lock();
        state.hashes_running -= 1;
        if state.hashes_running == 0 {
            state.apply(Policy::Idle);
        }
    }
}

#[cfg(target_os = "linux")]
fn set_policy(tid: libc::pid_t, policy: Policy) -> bool {
    let policy = match policy {
        Policy::Idle => libc::SCHED_IDLE,
        Policy::Normal => libc::SCHED_OTHER,
    };
    let param = libc::sched_param { sched_priority: 0 };
    // SAFETY: sched_setscheduler reads `param` only during the call.
    unsafe { libc::sched_setscheduler(tid, policy, &param) == 0 }
}

#[cfg(not(target_os = "linux"))]
fn set_policy(_tid: libc::pid_t, _policy: Policy) -> bool {
    false
}

#[cfg(target_os = "linux")]
fn current_tid() -> libc::pid_t {
    // SAFETY: gettid has no preconditions.
    unsafe { libc::gettid() }
}

#[cfg(not(target_os = "linux"))]
fn current_tid() -> libc::pid_t {
    0
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    fn policy_of(tid: libc::pid_t) -> libc::c_int {
        // SAFETY: sched_getscheduler has no memory arguments.
        unsafe { libc::sched_getscheduler(tid) }
    }

    #[test]
    fn flush_threads_run_at_normal_priority_exactly_while_a_hash_runs() {
        let helpers = Helpers::default();
        let (tid_tx, tid_rx) = std::sync::mpsc::channel();
        let (stop_tx, stop_rx) = std::sync::mpsc::channel::<()>();
        let flush_thread = std::thread::spawn(move || {
            tid_tx.send(current_tid()).unwrap();
            let _ = stop_rx.recv();
        });
        let tid = tid_rx.recv().unwrap();
        if !helpers.adopt_flush_threads(&[tid]) {
            // SCHED_IDLE refused here (a sandbox): nothing to check.
            return;
        }
        assert_eq!(policy_of(tid), libc::SCHED_IDLE);
        // Leaving SCHED_IDLE takes CAP_SYS_NICE or a raised RLIMIT_NICE.
        if !set_policy(tid, Policy::Normal) {
            return;
        }
        set_policy(tid, Policy::Idle);
        let first = helpers.hashing();
        let second = helpers.hashing();
        assert_eq!(policy_of(tid), libc::SCHED_OTHER);
        drop(first);
        assert_eq!(policy_of(tid), libc::SCHED_OTHER, "one hash still runs");
        drop(second);
        assert_eq!(policy_of(tid), libc::SCHED_IDLE);
        stop_tx.send(()).unwrap();
        flush_thread.join().unwrap();
    }
}
