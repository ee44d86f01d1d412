//! Password hashing off the loop thread: a bounded queue feeds worker threads running argon2id;
//! results come back on a channel and a `mio::Waker` tells the loop to collect them.

use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread;

use argon2::password_hash::{
    rand_core::OsRng, PasswordHash, PasswordHasher, PasswordVerifier, SaltString,
};
use argon2::Argon2;

/// Passwords are never printed, so `Debug` is written by hand.
pub enum Work {
    /// Hash a new password.
    Hash { password: String },
    /// Check a password against a stored hash.
    Verify { password: String, hash: String },
}

impl std::fmt::Debug for Work {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Work::Hash { .. } => f.write_str("Hash"),
            Work::Verify { .. } => f.write_str("Verify"),
        }
    }
}

pub enum Outcome {
    Hashed(String),
    Verified(bool),
}

/// The queue is full: the caller should answer 503 with `Retry-After`.
#[derive(Debug)]
pub struct Busy;

/// `T` is the caller's context, carried through the worker and handed back with the outcome.
pub struct Hasher<T> {
    jobs: SyncSender<(T, Work)>,
    done: Receiver<(T, Outcome)>,
}

impl<T: Send + 'static> Hasher<T> {
    pub fn start(workers: usize, queue: usize, waker: Arc<mio::Waker>) -> Hasher<T> {
        give_hash_memory_back();
        let (jobs, job_rx) = mpsc::sync_channel::<(T, Work)>(queue);
        let (done_tx, done) = mpsc::channel();
        let job_rx = Arc::new(Mutex::new(job_rx));
        for n in 0..workers {
            let job_rx = Arc::clone(&job_rx);
            let done_tx = done_tx.clone();
            let waker = Arc::clone(&waker);
            thread::Builder::new()
                .name(format!("parley-hash-{n}"))
                .spawn(move || {
                    yield_to_the_loop();
                    loop {
                        let next = job_rx.lock().map(|rx| rx.recv());
                        let Ok(Ok((context, work))) = next else {
                            return;
                        };
                        if done_tx.send((context, run(work))).is_err() {
                            return;
                        }
                        let _ = waker.wake();
                    }
                })
                .expect("spawn hashing thread");
        }
        Hasher { jobs, done }
    }

    pub fn submit(&self, context: T, work: Work) -> Result<(), Busy> {
        match self.jobs.try_send((context, work)) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => Err(Busy),
        }
    }

    /// Outcomes ready now; never blocks.
    pub fn finished(&self) -> impl Iterator<Item = (T, Outcome)> + '_ {
        self.done.try_iter()
    }
}

/// Each hash needs 19 MiB. glibc's default raises its mmap threshold after the first such block
/// is freed and from then on keeps those blocks in its arenas: 150 MB of resident memory after a
/// few dozen logins. A fixed threshold keeps every large block an `mmap` that goes back to the
/// OS when the hash is done.
fn give_hash_memory_back() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: mallopt only sets an allocator parameter; called before the workers start.
        unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, 1024 * 1024);
        }
    }
}

/// Lowers the calling thread to `SCHED_IDLE`: it runs only when nothing else wants the CPU, so
/// a burst of logins cannot delay the event loop even when both share one core. Best effort: if
/// the system refuses, hashing simply runs at normal priority.
fn yield_to_the_loop() {
    #[cfg(target_os = "linux")]
    {
        let param = libc::sched_param { sched_priority: 0 };
        // SAFETY: sched_setscheduler reads `param` only during the call; pid 0 is this thread.
        let refused = unsafe { libc::sched_setscheduler(0, libc::SCHED_IDLE, &param) } != 0;
        if refused {
            crate::warn!("password hashing runs at normal priority (SCHED_IDLE refused)");
        }
    }
}

fn run(work: Work) -> Outcome {
    match work {
        Work::Hash { password } => Outcome::Hashed(hash_password(&password)),
        Work::Verify { password, hash } => Outcome::Verified(verify_password(&password, &hash)),
    }
}

/// argon2id with the crate's default cost (19 MiB, t=2, p=1).
pub fn hash_password(password: &str) -> String {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .expect("argon2 with default parameters cannot fail")
        .to_string()
}

pub fn verify_password(password: &str, hash: &str) -> bool {
    PasswordHash::new(hash)
        .map(|parsed| {
            Argon2::default()
                .verify_password(password.as_bytes(), &parsed)
                .is_ok()
        })
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_verify_only_their_password() {
        let hash = hash_password("0000");
        assert!(hash.starts_with("$argon2id$"));
        assert!(verify_password("0000", &hash));
        assert!(!verify_password("0001", &hash));
        assert!(!verify_password("0000", "not a hash"));
    }
}
