//! Memory given back to the system after a burst of closed connections (issue #18, finding 5).
//!
//! mimalloc keeps what is freed for reuse and returns it to the system only on its own later
//! activity (a purge delay that runs out during some later allocation): a loop that goes quiet
//! after a thousand slow consumers closed keeps their megabytes of write buffers resident. So
//! the loop counts the buffer bytes its closes free (and large buffers given back once written),
//! and the once-a-second sweep asks mimalloc to collect once they add up to
//! `COLLECT_AFTER_BYTES`: a walk of the loop thread's heap, at most once a second, and never on
//! the way of a delivery.

/// Buffer bytes freed by closes past which the next sweep collects: a few large buffers (a slow
/// consumer's is up to twice the per-connection cap), never the churn of ordinary connections.
pub(super) const COLLECT_AFTER_BYTES: usize = 4 * 1024 * 1024;

/// Frees what the loop thread's heap holds unused and returns the free memory to the system
/// (mimalloc's purge, without waiting for its delay).
pub(super) fn give_back() {
    // SAFETY: `mi_collect` has no preconditions; with another global allocator it finds an
    // empty heap (the library's own tests).
    unsafe { libmimalloc_sys::mi_collect(true) }
}
