//! The flusher thread: puts the loop's sealed ticks into sled and makes them durable, so the
//! loop never waits for sled.
//!
//! The loop numbers its tick commits and hands each over sealed ([`TickWrites`]); the thread
//! applies everything handed over so far in one sled transaction and one flush (ticks that
//! arrive during a flush share the next one: group commit) and then wakes the loop, which lets
//! the acknowledgements of the commits now durable leave.

use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use sled::Tree;

use super::{apply, TickWrites};
use crate::priority::Helpers;

/// What the loop learns when it asks how far the flushes got.
#[derive(Debug, Default)]
pub struct Progress {
    /// Every commit numbered up to this one is durable.
    pub durable: u64,
    /// How long each flush since the last look took.
    pub flush_times: Vec<Duration>,
}

#[derive(Default)]
struct State {
    /// Sealed ticks handed over and not yet taken by the thread, oldest first.
    queue: Vec<Arc<TickWrites>>,
    progress: Progress,
    /// A flush failed: nothing after it can be acknowledged truthfully.
    failed: Option<sled::Error>,
    stopping: bool,
}

struct Shared {
    state: Mutex<State>,
    /// Signalled when there is a request (for the thread) or progress (for `wait_for`).
    changed: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // The thread never panics while holding the lock (sled errors are values).
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

pub struct Flusher {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl Flusher {
    /// Starts the thread; `notify` runs after every flush (the loop's waker).
    pub fn start(
        db: sled::Db,
        trees: Vec<Tree>,
        helpers: Arc<Helpers>,
        notify: impl Fn() + Send + 'static,
    ) -> Flusher {
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            changed: Condvar::new(),
        });
        let thread_shared = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name("parley-flush".into())
            .spawn(move || flush_on_request(&thread_shared, &db, &trees, &helpers, &notify))
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

    /// How far the flushes got, and how long they took; the error of a failed flush.
    pub fn progress(&self) -> Result<Progress, sled::Error> {
        let mut state = self.shared.lock();
        if let Some(err) = &state.failed {
            return Err(err.clone());
        }
        Ok(Progress {
            durable: state.progress.durable,
            flush_times: std::mem::take(&mut state.progress.flush_times),
        })
    }

    /// Blocks until commit `seq` is durable (or a flush failed).
    pub fn wait_for(&self, seq: u64) -> Result<(), sled::Error> {
        let mut state = self.shared.lock();
        loop {
            if let Some(err) = &state.failed {
                return Err(err.clone());
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
    db: &sled::Db,
    trees: &[Tree],
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
        if state.failed.is_some() || (state.stopping && state.queue.is_empty()) {
            return;
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
        let result = apply(trees, &ticks).and_then(|()| db.flush().map(drop));
        let took = started.elapsed();
        state = shared.lock();
        match result {
            Ok(()) => {
                let last = ticks.last().expect("taken only when not empty");
                state.progress.durable = last.commit();
                state.progress.flush_times.push(took);
            }
            Err(err) => state.failed = Some(err),
        }
        drop(state);
        shared.changed.notify_all();
        notify();
        state = shared.lock();
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use uuid::Uuid;

    use crate::clock::Stamp;
    use crate::protocol;
    use crate::store::{Ceiling, Store};

    use super::*;

    #[test]
    fn sealed_ticks_reach_sled_in_order_and_wake_the_loop() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(dir.path(), 1 << 20).unwrap();
        let woken = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&woken);
        let flusher = store.start_flusher(Arc::default(), move || {
            counter.fetch_add(1, Ordering::SeqCst);
        });
        let user = Uuid::from_u128(7);
        let (first, second, other) = (Uuid::from_u128(1), Uuid::from_u128(2), Uuid::from_u128(3));
        let ack = |id: &str, timestamp, message_id| {
            let seq = crate::store::message_id::ack_seq(message_id);
            let stamp = Stamp { seq, timestamp };
            Some(protocol::sent_event(Some(id), stamp, message_id))
        };
        let ceiling = |seq| Ceiling {
            seq,
            time: seq * 10,
        };
        store.put_client_ack(&store.retry_key(user, "a"), first, 10);
        flusher.request(store.write(1, ceiling(100)));
        store.put_client_ack(&store.retry_key(user, "a"), second, 20);
        store.put_client_ack(&store.retry_key(user, "b"), other, 30);
        flusher.request(store.write(2, ceiling(200)));
        // Before the flusher is known done, reads see the sealed ticks, newest first.
        assert_eq!(
            store.client_ack(&store.retry_key(user, "a")).unwrap(),
            ack("a", 20, second)
        );
        flusher.wait_for(2).unwrap();
        let progress = flusher.progress().unwrap();
        assert_eq!(progress.durable, 2);
        assert!(!progress.flush_times.is_empty());
        // The loop's waker runs right after the flush is recorded.
        let deadline = Instant::now() + Duration::from_secs(5);
        while woken.load(Ordering::SeqCst) == 0 {
            assert!(Instant::now() < deadline, "the flusher never woke the loop");
            std::thread::yield_now();
        }
        // Once forgotten, the same answers come from sled itself.
        store.forget_applied(2);
        assert_eq!(
            store.client_ack(&store.retry_key(user, "a")).unwrap(),
            ack("a", 20, second)
        );
        assert_eq!(
            store.client_ack(&store.retry_key(user, "b")).unwrap(),
            ack("b", 30, other)
        );
        assert_eq!(store.ceiling().unwrap(), ceiling(200));
    }
}
