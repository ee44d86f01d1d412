//! Scheduling priority of the helper threads: the event loop must win the core whenever it has
//! work, the store's flushes must not wait behind password hashing, and hashing takes what is
//! left.
//!
//! The hash workers run at `SCHED_IDLE` always. The flusher thread and sled's I/O threads run at
//! `SCHED_IDLE` too while no hash is being computed: on a one-core host the loop then preempts a
//! flush the moment a socket wakes it (at normal priority, or even at nice 19, a flusher delays
//! the loop's wake-ups: docs/ARCHITECTURE.md, "Group commit off the loop thread"). But
//! idle-class threads share the CPU evenly among themselves, so during a login storm a flush
//! would get a third of what the hash workers leave: milliseconds, during which the answers and
//! acks it holds back (and every later frame to their connections) wait. So while a hash runs, the flush threads run at normal priority.

use std::io;
use std::sync::{Arc, Mutex};

/// Moves thread `tid` (0: the calling thread) to `SCHED_IDLE`: it runs only when nothing else
/// wants the CPU. False if the system refused (the thread keeps its priority).
pub fn lower_to_idle(tid: libc::pid_t) -> bool {
    set_policy(tid, Policy::Idle).is_ok()
}

/// The flush threads' priority, following whether any password hash is being computed.
///
/// The flush threads are the flusher (registered while it runs) and sled's I/O threads, found
/// by name in `/proc/self/task` at each change: sled starts and ends pool threads on its own,
/// and a thread id kept after its thread ended could by now name another thread.
pub struct Helpers {
    state: Mutex<HelpersState>,
}

impl Default for Helpers {
    fn default() -> Helpers {
        Helpers::with_io_threads_named(SLED_IO_THREADS)
    }
}

/// The name sled gives its I/O pool threads, followed by a number.
const SLED_IO_THREADS: &str = "sled-io";

#[derive(Default)]
struct HelpersState {
    /// The prefix of the I/O threads' names (see [`SLED_IO_THREADS`]).
    io_threads: &'static str,
    flusher: Option<libc::pid_t>,
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
    fn with_io_threads_named(prefix: &'static str) -> Helpers {
        Helpers {
            state: Mutex::new(HelpersState {
                io_threads: prefix,
                ..HelpersState::default()
            }),
        }
    }

    /// Registers the calling thread as the flusher until the guard is dropped, and sets it and
    /// sled's I/O threads to the policy of the moment. The flag says whether the system allowed
    /// it.
    pub fn flusher_started(self: &Arc<Self>) -> (Flusher, bool) {
        let mut state = self.lock();
        state.flusher = Some(current_tid());
        let allowed = !state.apply(state.flush_policy()).refused;
        let registration = Flusher {
            helpers: Arc::clone(self),
        };
        (registration, allowed)
    }

    /// Marks a hash as running until the guard is dropped.
    pub fn hashing(&self) -> Hashing<'_> {
        let mut state = self.lock();
        state.hashes_running += 1;
        if state.hashes_running == 1
            && state.apply(Policy::Normal).permission_denied
            && !state.raise_refused
        {
            state.raise_refused = true;
            log::warn!(
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

/// What setting a policy on the flush threads met (a thread that ended meanwhile aside).
struct Applied {
    refused: bool,
    permission_denied: bool,
}

impl HelpersState {
    fn flush_policy(&self) -> Policy {
        if self.hashes_running > 0 {
            Policy::Normal
        } else {
            Policy::Idle
        }
    }

    /// Sets `policy` on every flush thread alive now (one that ended meanwhile is skipped).
    fn apply(&self, policy: Policy) -> Applied {
        let mut applied = Applied {
            refused: false,
            permission_denied: false,
        };
        let threads = self
            .flusher
            .into_iter()
            .chain(threads_named(self.io_threads));
        for tid in threads {
            match set_policy(tid, policy) {
                Err(err) if err.raw_os_error() != Some(libc::ESRCH) => {
                    applied.refused = true;
                    applied.permission_denied |= err.kind() == io::ErrorKind::PermissionDenied;
                }
                _ => {}
            }
        }
        applied
    }
}

/// The registration of the flusher thread (see [`Helpers::flusher_started`]).
pub struct Flusher {
    helpers: Arc<Helpers>,
}

impl Drop for Flusher {
    fn drop(&mut self) {
        self.helpers.lock().flusher = None;
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

/// This process's threads whose names start with `prefix`, alive now.
fn threads_named(prefix: &str) -> Vec<libc::pid_t> {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return Vec::new();
    };
    tasks
        .flatten()
        .filter(|task| {
            std::fs::read_to_string(task.path().join("comm"))
                .is_ok_and(|comm| comm.starts_with(prefix))
        })
        .filter_map(|task| task.file_name().to_str()?.parse().ok())
        .collect()
}

#[cfg(target_os = "linux")]
fn set_policy(tid: libc::pid_t, policy: Policy) -> io::Result<()> {
    let policy = match policy {
        Policy::Idle => libc::SCHED_IDLE,
        Policy::Normal => libc::SCHED_OTHER,
    };
    let param = libc::sched_param { sched_priority: 0 };
    // SAFETY: sched_setscheduler reads `param` only during the call.
    if unsafe { libc::sched_setscheduler(tid, policy, &param) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

#[cfg(not(target_os = "linux"))]
fn set_policy(_tid: libc::pid_t, _policy: Policy) -> io::Result<()> {
    Err(io::ErrorKind::Unsupported.into())
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
    use std::sync::mpsc;
    use std::thread;

    use super::*;

    fn policy_of(tid: libc::pid_t) -> libc::c_int {
        // SAFETY: sched_getscheduler has no memory arguments.
        unsafe { libc::sched_getscheduler(tid) }
    }

    /// Runs `body` on a new thread named `name` and keeps what it returns until the returned
    /// sender is dropped; gives the thread's id.
    fn parked_thread<T>(
        name: &str,
        body: impl FnOnce() -> T + Send + 'static,
    ) -> (libc::pid_t, mpsc::Sender<()>, thread::JoinHandle<()>) {
        let (tid_tx, tid_rx) = mpsc::channel();
        let (stop_tx, stop_rx) = mpsc::channel::<()>();
        let handle = thread::Builder::new()
            .name(name.into())
            .spawn(move || {
                let _kept = body();
                tid_tx.send(current_tid()).unwrap();
                let _ = stop_rx.recv();
            })
            .unwrap();
        (tid_rx.recv().unwrap(), stop_tx, handle)
    }

    #[test]
    fn flush_threads_run_at_normal_priority_exactly_while_a_hash_runs() {
        // A stand-in for one of sled's I/O threads, found by its name (its own, so that flushers
        // other tests start meanwhile leave it alone).
        let helpers = Arc::new(Helpers::with_io_threads_named("prio-test-io"));
        let (io_tid, io_stop, io_thread) = parked_thread("prio-test-io-0", || ());
        let (allowed_tx, allowed_rx) = mpsc::channel();
        let registered = Arc::clone(&helpers);
        let (flusher_tid, flusher_stop, flusher_thread) =
            parked_thread("flusher-test", move || {
                let (registration, allowed) = registered.flusher_started();
                allowed_tx.send(allowed).unwrap();
                registration
            });
        // Lowering one's own threads needs no privilege.
        assert!(allowed_rx.recv().unwrap(), "SCHED_IDLE refused");
        for tid in [flusher_tid, io_tid] {
            assert_eq!(policy_of(tid), libc::SCHED_IDLE);
        }
        // Leaving SCHED_IDLE takes CAP_SYS_NICE or a raised RLIMIT_NICE.
        if set_policy(flusher_tid, Policy::Normal).is_ok() {
            set_policy(flusher_tid, Policy::Idle).unwrap();
            let first = helpers.hashing();
            let second = helpers.hashing();
            for tid in [flusher_tid, io_tid] {
                assert_eq!(policy_of(tid), libc::SCHED_OTHER);
            }
            drop(first);
            assert_eq!(policy_of(io_tid), libc::SCHED_OTHER, "one hash still runs");
            drop(second);
            for tid in [flusher_tid, io_tid] {
                assert_eq!(policy_of(tid), libc::SCHED_IDLE);
            }
        }
        drop((io_stop, flusher_stop));
        io_thread.join().unwrap();
        flusher_thread.join().unwrap();
    }
}
