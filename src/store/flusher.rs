//! The flusher thread: puts the loop's sealed ticks into the backend and makes them durable, so
//! the loop never waits for it.
//!
//! The loop numbers its tick commits and hands each over sealed ([`TickWrites`]); the thread
//! applies everything handed over so far in one atomic batch and one flush (ticks that
//! arrive during a flush share the next one: group commit) and then wakes the loop, which lets
//! the acknowledgements of the commits now durable leave.
//!
//! A failed apply or flush (a full disk) does not end it: the batch goes back to the front of
//! the queue, the flusher is *degraded*, and once a [`RETRY_INTERVAL`] it opens the backend
//! again (sled fails every write after its first failed one until then) and applies the queue
//! again. Nothing in the failed batch was acknowledged, and it stays in the store's overlay, so
//! the loop's held answers leave, true, when a retry stores it.

use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::backend::Backend;
use super::{StoreError, TickWrites};
use crate::priority::Helpers;

/// What the loop learns when it asks how far the flushes got.
#[derive(Debug, Default)]
pub struct Progress {
    /// Every commit numbered up to this one is durable.
    pub durable: u64,
    /// How long each flush since the last look took.
    pub flush_times: Vec<Duration>,
    /// The error of the last attempt, while the queue cannot be stored.
    pub degraded: Option<StoreError>,
}

/// How often a degraded flusher tries again.
pub const RETRY_INTERVAL: Duration = Duration::from_secs(1);

#[derive(Default)]
struct State {
    /// Sealed ticks handed over and not yet taken by the thread, oldest first.
    queue: Vec<Arc<TickWrites>>,
    progress: Progress,
    stopping: bool,
}

type Shared = super::handoff::Handoff<State>;

pub struct Flusher {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl Flusher {
    /// Starts the thread; `notify` runs after every flush (the loop's waker).
    pub fn start(
        backend: Arc<dyn Backend>,
        helpers: Arc<Helpers>,
        notify: impl Fn() + Send + 'static,
    ) -> Flusher {
        let shared = Arc::new(Shared::default());
        let thread_shared = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name("parley-flush".into())
            .spawn(move || flush_on_request(&thread_shared, &*backend, &helpers, &notify))
            .expect("spawning the flusher thread");
        Flusher {
            shared,
            thread: Some(thread),
        }
    }

    /// Hands over a sealed tick to be applied and made durable.
    pub fn request(&self, tick: Arc<TickWrites>) {
        let mut state = self.shared.lock();
        state.queue.push(tick);
        drop(state);
        self.shared.changed.notify_all();
    }

    /// How far the flushes got, how long they took, and whether they fail.
    pub fn progress(&self) -> Progress {
        let mut state = self.shared.lock();
        Progress {
            durable: state.progress.durable,
            flush_times: std::mem::take(&mut state.progress.flush_times),
            degraded: state.progress.degraded.clone(),
        }
    }

    /// Blocks until commit `seq` is durable; when `give_up` and the flushes fail, returns their
    /// error instead (a degraded flusher may take as long as the disk stays full).
    pub fn wait_for(&self, seq: u64, give_up: bool) -> Result<(), StoreError> {
        let mut state = self.shared.lock();
        loop {
            match &state.progress.degraded {
                Some(err) if give_up => return Err(err.clone()),
                _ => {}
            }
            if state.progress.durable >= seq {
                return Ok(());
            }
            state = self
                .shared
                .changed
                .wait(state)
                .unwrap_or_else(|poisoned| poisoned.into_inner());
        }
    }
}

impl Drop for Flusher {
    /// Finishes the flushes already asked for, then stops the thread.
    fn drop(&mut self) {
        self.shared.lock().stopping = true;
        self.shared.changed.notify_all();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn flush_on_request(
    shared: &Shared,
    backend: &dyn Backend,
    helpers: &Arc<Helpers>,
    notify: &dyn Fn(),
) {
    // Idle priority except while a password hash runs (see `crate::priority`). The flush runs
    // whenever the loop waits, and the loop waits for nothing but sockets, so it cannot starve
    // for long.
    let (_registered, allowed) = helpers.flusher_started();
    if !allowed {
        log::warn!("store flushes run at normal priority (SCHED_IDLE refused)");
    }
    let mut state = shared.lock();
    loop {
        // Stopping while degraded: what is queued cannot be stored (the loop's `finish` says so).
        if state.stopping && (state.queue.is_empty() || state.progress.degraded.is_some()) {
            return;
        }
        if state.progress.degraded.is_some() {
            // A new request wakes the thread too; the retries keep their pace (a reopen reads
            // sled's log again, and blocks the loop's reads meanwhile).
            let retry_at = Instant::now() + RETRY_INTERVAL;
            while !state.stopping {
                let Some(left) = retry_at.checked_duration_since(Instant::now()) else {
                    break;
                };
                state = shared
                    .changed
                    .wait_timeout(state, left)
                    .unwrap_or_else(|poisoned| poisoned.into_inner())
                    .0;
            }
            if state.stopping {
                continue;
            }
            drop(state);
            let reopened = backend.reopen();
            state = shared.lock();
            if let Err(err) = reopened {
                state.progress.degraded = Some(err);
                continue;
            }
            if state.queue.is_empty() {
                state.progress.degraded = None;
            }
        }
        if state.queue.is_empty() {
            state = shared
                .changed
                .wait(state)
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            continue;
        }
        let ticks = std::mem::take(&mut state.queue);
        drop(state);
        let started = Instant::now();
        let result = backend.apply(&ticks).and_then(|()| backend.flush());
        let took = started.elapsed();
        state = shared.lock();
        match result {
            Ok(()) => {
                let last = ticks.last().expect("taken only when not empty");
                state.progress.durable = last.commit();
                state.progress.flush_times.push(took);
                state.progress.degraded = None;
            }
            Err(err) => {
                // Back in front of what arrived meanwhile, to be applied again after a reopen.
                let arrived = std::mem::replace(&mut state.queue, ticks);
                state.queue.extend(arrived);
                state.progress.degraded = Some(err);
            }
        }
        drop(state);
        shared.changed.notify_all();
        notify();
        state = shared.lock();
    }
}

#[cfg(test)]
mod tests;
