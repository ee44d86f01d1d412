//! Password hashing off the loop thread: a bounded queue feeds worker threads running argon2id;
//! results come back on a channel and a `mio::Waker` tells the loop to collect them.

use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread;

use argon2::password_hash::rand_core::{OsRng, RngCore};
use argon2::password_hash::{Output, ParamsString, PasswordHash, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};

use crate::priority::{self, Helpers};

/// Passwords are never printed, so `Debug` is written by hand.
pub enum Work {
    /// Hash a new password.
    Hash { password: String },
    /// Check a password against a stored hash.
    Verify { password: String, hash: String },
    /// Check a password against a stored hash and, when it matches, hash a new one (a password
    /// change: one job, so the answer needs one trip to the workers).
    Rehash {
        password: String,
        hash: String,
        new_password: String,
    },
}

impl std::fmt::Debug for Work {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Work::Hash { .. } => f.write_str("Hash"),
            Work::Verify { .. } => f.write_str("Verify"),
            Work::Rehash { .. } => f.write_str("Rehash"),
        }
    }
}

pub enum Outcome {
    Hashed(String),
    Verified(bool),
    /// The new hash, or `None` when the current password did not match.
    Rehashed(Option<String>),
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
    /// `helpers` learns when a hash runs, so that flushes are not starved meanwhile.
    pub fn start(
        workers: usize,
        queue: usize,
        waker: Arc<mio::Waker>,
        helpers: Arc<Helpers>,
    ) -> Hasher<T> {
        give_hash_memory_back();
        let (jobs, job_rx) = mpsc::sync_channel::<(T, Work)>(queue);
        let (done_tx, done) = mpsc::channel();
        let job_rx = Arc::new(Mutex::new(job_rx));
        for n in 0..workers {
            let job_rx = Arc::clone(&job_rx);
            let done_tx = done_tx.clone();
            let waker = Arc::clone(&waker);
            let helpers = Arc::clone(&helpers);
            thread::Builder::new()
                .name(format!("parley-hash-{n}"))
                .spawn(move || {
                    yield_to_the_loop();
                    let mut argon2 = Argon2Memory::new();
                    loop {
                        let next = job_rx.lock().map(|rx| rx.recv());
                        let Ok(Ok((context, work))) = next else {
                            return;
                        };
                        let outcome = {
                            let _hashing = helpers.hashing();
                            argon2.run(work)
                        };
                        if done_tx.send((context, outcome)).is_err() {
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

/// glibc's default raises its mmap threshold after the first large block is freed and from then
/// on keeps such blocks in its arenas, so resident memory grew with every login burst. A fixed
/// threshold keeps every large block (a large sync page) an `mmap` that goes back to the OS when
/// freed. This is for the library on the system allocator (tests, benches, an embedding); the
/// `parley` binary allocates with mimalloc.
fn give_hash_memory_back() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: mallopt only sets an allocator parameter; called before the workers start.
        unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, 1024 * 1024);
        }
    }
}

/// A burst of logins cannot delay the event loop even when both share one core.
fn yield_to_the_loop() {
    if !priority::lower_to_idle(0) {
        log::warn!("password hashing runs at normal priority (SCHED_IDLE refused)");
    }
}

/// A worker's argon2 memory (19 MiB at the default cost), allocated once and reused by every
/// hash: allocating and freeing it per hash means an mmap and a munmap of 19 MiB each time, and
/// the munmap's TLB shootdown interrupts the event loop's core too.
struct Argon2Memory {
    blocks: Vec<Block>,
}

impl Argon2Memory {
    fn new() -> Argon2Memory {
        Argon2Memory { blocks: Vec::new() }
    }

    fn run(&mut self, work: Work) -> Outcome {
        match work {
            Work::Hash { password } => Outcome::Hashed(self.hash(&password)),
            Work::Verify { password, hash } => Outcome::Verified(self.verify(&password, &hash)),
            Work::Rehash {
                password,
                hash,
                new_password,
            } => Outcome::Rehashed(
                self.verify(&password, &hash)
                    .then(|| self.hash(&new_password)),
            ),
        }
    }

    /// argon2id with the crate's default cost (19 MiB, t=2, p=1), as a PHC string.
    fn hash(&mut self, password: &str) -> String {
        let salt = SaltString::generate(&mut OsRng);
        let params = Params::default();
        let mut salt_bytes = [0u8; 64];
        let salt_bytes = salt
            .as_salt()
            .decode_b64(&mut salt_bytes)
            .expect("a generated salt decodes");
        let mut output = [0u8; Params::DEFAULT_OUTPUT_LEN];
        self.compute(
            Algorithm::Argon2id,
            Version::V0x13,
            &params,
            password,
            salt_bytes,
            &mut output,
        )
        .expect("argon2 with default parameters cannot fail");
        phc_string(&salt, &output)
    }

    /// Checks a password against a PHC string, whatever argon2 parameters it names.
    fn verify(&mut self, password: &str, hash: &str) -> bool {
        let mut check = || -> Option<bool> {
            let parsed = PasswordHash::new(hash).ok()?;
            let algorithm = Algorithm::try_from(parsed.algorithm).ok()?;
            let version = parsed
                .version
                .map_or(Some(Version::default()), |v| Version::try_from(v).ok())?;
            let params = Params::try_from(&parsed).ok()?;
            let expected = parsed.hash?;
            let mut salt_bytes = [0u8; 64];
            let salt_bytes = parsed.salt?.decode_b64(&mut salt_bytes).ok()?;
            let mut output = vec![0u8; expected.len()];
            self.compute(
                algorithm,
                version,
                &params,
                password,
                salt_bytes,
                &mut output,
            )
            .ok()?;
            // `Output`'s equality is constant-time.
            Some(Output::new(&output).ok()? == expected)
        };
        check().unwrap_or(false)
    }

    fn compute(
        &mut self,
        algorithm: Algorithm,
        version: Version,
        params: &Params,
        password: &str,
        salt: &[u8],
        output: &mut [u8],
    ) -> argon2::Result<()> {
        let needed = params.block_count();
        if self.blocks.len() < needed {
            self.blocks.resize(needed, Block::default());
        }
        Argon2::new(algorithm, version, params.clone()).hash_password_into_with_memory(
            password.as_bytes(),
            salt,
            output,
            &mut self.blocks[..needed],
        )
    }
}

/// argon2id at the default cost with this salt and output, as a PHC string.
fn phc_string(salt: &SaltString, output: &[u8]) -> String {
    PasswordHash {
        algorithm: Algorithm::Argon2id.ident(),
        version: Some(Version::V0x13.into()),
        params: ParamsString::try_from(&Params::default()).expect("default parameters encode"),
        salt: Some(salt.as_salt()),
        hash: Some(Output::new(output).expect("32 bytes is a valid output")),
    }
    .to_string()
}

/// A hash no password matches except by chance (2^-256), at the cost of a real one: what a login
/// for an unknown user is checked against, so that it takes as long as a wrong password. Its
/// output is random bytes, not a computed hash: checking a password costs the same either way,
/// and the server's start computes no hash (one at start left 19 MiB resident on the loop's
/// thread under mimalloc, which keeps freed memory for reuse).
pub fn unmatchable_hash() -> String {
    let mut output = [0u8; Params::DEFAULT_OUTPUT_LEN];
    OsRng.fill_bytes(&mut output);
    phc_string(&SaltString::generate(&mut OsRng), &output)
}

/// One hash, outside the workers.
pub fn hash_password(password: &str) -> String {
    Argon2Memory::new().hash(password)
}

/// One check, outside the workers.
pub fn verify_password(password: &str, hash: &str) -> bool {
    Argon2Memory::new().verify(password, hash)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_are_standard_phc_strings_both_ways() {
        use argon2::password_hash::{PasswordHasher, PasswordVerifier};
        let ours = hash_password("0000");
        let parsed = PasswordHash::new(&ours).unwrap();
        assert!(Argon2::default().verify_password(b"0000", &parsed).is_ok());
        let salt = SaltString::generate(&mut OsRng);
        let theirs = Argon2::default()
            .hash_password(b"secret", &salt)
            .unwrap()
            .to_string();
        let mut memory = Argon2Memory::new();
        assert!(memory.verify("secret", &theirs));
        assert!(!memory.verify("Secret", &theirs));
        assert!(memory.verify("0000", &ours));
    }

    #[test]
    fn hashes_verify_only_their_password() {
        let hash = hash_password("0000");
        assert!(hash.starts_with("$argon2id$"));
        assert!(verify_password("0000", &hash));
        assert!(!verify_password("0001", &hash));
        assert!(!verify_password("0000", "not a hash"));
    }

    /// Checking a password against the unmatchable hash runs argon2 at the same cost as against
    /// a real one, and fails.
    #[test]
    fn the_unmatchable_hash_costs_what_a_real_one_does_and_matches_nothing() {
        let (unmatchable, real) = (unmatchable_hash(), hash_password("0000"));
        let parsed = PasswordHash::new(&unmatchable).unwrap();
        let real = PasswordHash::new(&real).unwrap();
        assert_eq!(parsed.algorithm, real.algorithm);
        assert_eq!(parsed.version, real.version);
        assert_eq!(parsed.params, real.params);
        assert_eq!(parsed.hash.unwrap().len(), real.hash.unwrap().len());
        assert_ne!(
            unmatchable,
            unmatchable_hash(),
            "a fresh salt and output each time"
        );
        for password in ["", "0000", "secret"] {
            assert!(!verify_password(password, &unmatchable));
        }
    }
}
