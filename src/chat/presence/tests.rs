//! Presence in the chat core, with the sweep's time passed in: one event per change, to each
//! online co-member once, none for a reconnect within the debounce, none when off.

use super::super::tests::test_limits;
use super::super::{Chat, ConnId, Frame, Release};
use super::OFFLINE_AFTER_MS;
use crate::store::client_ids::ClientIdLimits;
use crate::store::Store;
use uuid::Uuid;

/// A chat where users 1 and 2 share two groups and user 3 shares none with them.
fn chat() -> (tempfile::TempDir, Chat) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_with(dir.path(), 1 << 20, ClientIdLimits::DEFAULT).unwrap();
    let mut chat = Chat::open(store, test_limits()).unwrap();
    let wall = crate::clock::wall_ms();
    let (a, b, c) = (user(1), user(2), user(3));
    for _ in 0..2 {
        let group = chat.create_group(a, "g", &[], wall).unwrap();
        chat.join(b, group, None, wall).unwrap();
    }
    chat.create_group(c, "alone", &[], wall).unwrap();
    chat.outbox.drain();
    (dir, chat)
}

fn user(n: u128) -> Uuid {
    Uuid::from_u128(n)
}

fn conn(key: usize) -> ConnId {
    ConnId { key, serial: 1 }
}

/// The presence events queued, as (connection, user_id, online), and none other.
fn presence(chat: &mut Chat) -> Vec<(ConnId, String, bool)> {
    chat.outbox
        .drain()
        .map(|(to, frame, release)| {
            let Frame::Event(text) = frame else {
                panic!("an event")
            };
            assert_eq!(release, Release::Now, "transient");
            let event: serde_json::Value = serde_json::from_str(&text).unwrap();
            assert_eq!(event["type"], 50, "{event}");
            assert!(event.get("seq").is_none());
            let body = &event["body"];
            let id = body["user_id"].as_str().unwrap().to_string();
            (to, id, body["online"].as_bool().unwrap())
        })
        .collect()
}

#[test]
fn one_event_a_change_to_each_online_co_member_once() {
    let (_dir, mut chat) = chat();
    let (a, b, c) = (user(1), user(2), user(3));
    chat.connect(b, conn(2));
    chat.connect(c, conn(3));
    assert_eq!(presence(&mut chat), [], "nobody else online to tell");
    chat.connect(a, conn(1));
    assert_eq!(presence(&mut chat), [(conn(2), a.to_string(), true)]);
    chat.connect(a, conn(4));
    assert_eq!(presence(&mut chat), [], "not the first socket");
    chat.disconnect(a, conn(4));
    chat.disconnect(a, conn(1));
    let closed = crate::clock::wall_ms();
    chat.presence_sweep(closed + OFFLINE_AFTER_MS - 1000);
    assert_eq!(presence(&mut chat), [], "within the debounce");
    chat.presence_sweep(closed + OFFLINE_AFTER_MS + 1000);
    assert_eq!(presence(&mut chat), [(conn(2), a.to_string(), false)]);
    chat.presence_sweep(closed + OFFLINE_AFTER_MS + 2000);
    assert_eq!(presence(&mut chat), [], "once");
}

#[test]
fn a_reconnect_within_the_debounce_sends_nothing_and_presence_off_nothing_at_all() {
    let (_dir, mut chat) = chat();
    let (a, b) = (user(1), user(2));
    chat.connect(b, conn(2));
    chat.connect(a, conn(1));
    presence(&mut chat);
    chat.disconnect(a, conn(1));
    chat.connect(a, conn(5));
    chat.presence_sweep(crate::clock::wall_ms() + OFFLINE_AFTER_MS + 1000);
    assert_eq!(presence(&mut chat), [], "never looked offline");
    assert_eq!(chat.presence_of(b, a).map(|(online, _)| online), Some(true));
    assert_eq!(chat.presence_of(user(3), a), None, "shares no group");

    let (_dir, mut chat) = self::chat();
    chat.set_presence(false);
    chat.connect(b, conn(2));
    chat.connect(a, conn(1));
    chat.disconnect(a, conn(1));
    chat.presence_sweep(crate::clock::wall_ms() + OFFLINE_AFTER_MS + 1000);
    assert_eq!(presence(&mut chat), []);
    assert_eq!(chat.presence_of(b, a), None, "off");
}
