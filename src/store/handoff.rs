//! The state a store helper thread (the flusher, the mark's writer) shares with the loop: one
//! mutex, and a condvar signalled whenever either side changed it.

use std::sync::{Condvar, Mutex, MutexGuard};

pub struct Handoff<T> {
    state: Mutex<T>,
    /// Signalled when the state changed: a request for the thread, or progress for a waiter.
    pub changed: Condvar,
}

impl<T: Default> Default for Handoff<T> {
    fn default() -> Self {
        Handoff {
            state: Mutex::new(T::default()),
            changed: Condvar::new(),
        }
    }
}

impl<T> Handoff<T> {
    /// The state. Neither side panics while holding it (store errors are values), so a poisoned
    /// lock still holds a consistent state.
    pub fn lock(&self) -> MutexGuard<'_, T> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}
