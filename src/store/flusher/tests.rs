//! The flusher's unit tests.

use std::sync::atomic::{AtomicUsize, Ordering};

use uuid::Uuid;

use crate::clock::Stamp;
use crate::protocol;
use crate::store::tests::{both, Place};
use crate::store::Ceiling;

use super::*;

both!(sealed_ticks_reach_the_backend_in_order_and_wake_the_loop);

fn sealed_ticks_reach_the_backend_in_order_and_wake_the_loop(place: Place) {
    let mut store = place.open();
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
    // Once forgotten, the same answers come from the backend itself.
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
