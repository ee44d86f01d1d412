//! The log's unit tests: entries, old formats, damage.

use super::entry::*;
use super::*;
use crate::protocol;
use crate::store::memory::MemoryBackend;
use crate::store::StoredEvent;

/// A log over an empty backend in memory.
fn in_memory() -> EventLog {
    EventLog::new(Arc::new(MemoryBackend::default()))
}

const EVERYTHING: Span = Span {
    from: 0,
    to: u64::MAX,
    after_time: None,
};

fn stamp(seq: u64, timestamp: u64) -> Stamp {
    Stamp { seq, timestamp }
}

#[test]
fn entries_round_trip() {
    let viewer = Uuid::from_u128(1);
    let parts = MessageParts {
        stamp: stamp(20, 1_000),
        ..old_formats::STORED
    };
    let message = MessageParts {
        client_id: None,
        ..parts
    };
    let mut chunk = Vec::new();
    encode_entry(&mut chunk, stamp(7, 999), Audience::Only(viewer), b"ack");
    encode_message(&mut chunk, &parts);
    encode_message(&mut chunk, &message);
    let mut pos = 0;
    let first = decode_entry(&chunk, &mut pos).unwrap();
    assert_eq!(
        (
            first.stamp(),
            first.viewer,
            first.message,
            first.ack,
            first.bytes
        ),
        (stamp(7, 999), Some(viewer), None, None, &b"ack"[..])
    );
    let meta = Some(MessageMeta {
        message_id: old_formats::MESSAGE_ID,
        author: old_formats::AUTHOR,
    });
    for client_id in [Some("c1"), None] {
        let entry = decode_entry(&chunk, &mut pos).unwrap();
        let ack = FoldedAck { seq: 21, client_id };
        assert_eq!(entry.ack_stamp(&ack), stamp(21, 1_000));
        assert_eq!(
            (
                entry.stamp(),
                entry.viewer,
                entry.message,
                entry.ack,
                entry.bytes
            ),
            (stamp(20, 1_000), None, meta, Some(ack), &b"hi \"you\""[..])
        );
    }
    assert!(decode_entry(&chunk, &mut pos).is_none());
    let mut pos = 0;
    let truncated = &chunk[..chunk.len() - 1];
    assert!(decode_entry(truncated, &mut pos).is_some());
    assert!(decode_entry(truncated, &mut pos).is_some());
    assert!(decode_entry(truncated, &mut pos).is_none());
}

fn read(log: &EventLog, span: Span, viewer: Uuid) -> Vec<StoredEvent> {
    let mut reader = log
        .reader(old_formats::GROUP, span, viewer, Vec::new())
        .unwrap();
    let mut events = Vec::new();
    while let Some(event) = reader.next_entry().unwrap() {
        events.push(event);
    }
    events
}

/// A message stored by format 2 (JSON) and by format 4 (parts) reads back byte for byte as
/// format 2 stored its two events, with the seq each was upgraded to, to every viewer and
/// over every span around it; and the newest of what each viewer sees is the last of it.
#[test]
fn old_messages_read_back_byte_for_byte_with_their_seqs() {
    let mut parts = in_memory();
    parts.append_message_as_format_4(old_formats::GROUP, &old_formats::STORED);
    let mut old = in_memory();
    old.append_format_2();
    let (author, other) = (old_formats::AUTHOR, Uuid::from_u128(9));
    let [message, ack] = [0, 1].map(|i| old_formats::events()[i].clone());
    let span = |from, to, after_time| Span {
        from,
        to,
        after_time,
    };
    let cases = [
        (EVERYTHING, author, vec![message.clone(), ack.clone()]),
        (EVERYTHING, other, vec![message.clone()]),
        (span(21, u64::MAX, None), author, vec![ack.clone()]),
        (span(0, 20, None), author, vec![message.clone()]),
        (span(22, u64::MAX, None), author, vec![]),
        (span(0, u64::MAX, Some(20)), author, vec![ack]),
        (span(0, u64::MAX, Some(19)), other, vec![message]),
    ];
    for (span, viewer, expected) in cases {
        for log in [&parts, &old] {
            assert_eq!(read(log, span, viewer), expected, "{span:?}");
            let newest = log
                .newest(old_formats::GROUP, span, viewer, Vec::new())
                .unwrap();
            if span.after_time.is_none() {
                assert_eq!(newest, expected.last().map(|event| event.stamp), "{span:?}");
            }
        }
    }
}

/// A message of format 5 has its own timestamp, shared by its ack, and its events read
/// back as they were sent live.
#[test]
fn a_message_reads_back_as_sent() {
    let mut log = in_memory();
    let parts = MessageParts {
        stamp: stamp(20, 1_000),
        ..old_formats::STORED
    };
    log.append_message(old_formats::GROUP, &parts);
    let (id, group, author) = (parts.message_id, old_formats::GROUP, parts.author);
    let message = protocol::message_event(parts.stamp, id, parts.data, group, author);
    let ack = protocol::sent_event(Some("c1"), stamp(21, 1_000), id);
    assert_eq!(
        read(&log, EVERYTHING, author),
        vec![
            StoredEvent::new(stamp(20, 1_000), message.into_bytes()),
            StoredEvent::new(stamp(21, 1_000), ack.into_bytes())
        ]
    );
    let after = Span {
        after_time: Some(1_000),
        ..EVERYTHING
    };
    assert_eq!(read(&log, after, author), vec![]);
}

/// Stored bytes are checked by the backend (sled's CRC), so damage here means a bug; it must
/// still cost no more than the damaged entry, and never send a message's bare `data` as an
/// event.
#[test]
fn a_damaged_entry_is_skipped_and_never_sent_raw() {
    let mut log = in_memory();
    let group = old_formats::GROUP;
    let data = MessageParts {
        data: "XY",
        ..old_formats::STORED
    };
    log.append_message(group, &data);
    log.append(group, stamp(30, 30), Audience::All, b"later");
    let chunk = &mut log.pending.get_mut(&group).unwrap().bytes;
    let at = chunk.windows(2).position(|w| w == b"XY").unwrap();
    chunk[at] = 0xff;
    assert_eq!(
        read(&log, EVERYTHING, old_formats::AUTHOR),
        vec![StoredEvent::new(stamp(30, 30), b"later".to_vec())],
        "data that is not UTF-8 drops its entry only"
    );

    for flags in [PARTS, PARTS | ACK_ID, ACK_ID | MESSAGE, 0x40] {
        let mut log = in_memory();
        let chunk = log.chunk(group, 20, 21);
        chunk.extend_from_slice(&20u64.to_le_bytes());
        chunk.push(flags);
        chunk.extend_from_slice(&21u64.to_le_bytes());
        put_bytes(chunk, b"raw data, not an event");
        assert_eq!(
            read(&log, EVERYTHING, old_formats::AUTHOR),
            vec![],
            "flags {flags:#x}"
        );
    }
}

#[test]
fn the_old_message_id_says_where_it_is() {
    assert_eq!(
        old_formats::MESSAGE_ID,
        crate::store::message_id::new(20, 1, 0)
    );
}

#[test]
fn chunk_keys_sort_by_stream_then_seq() {
    let a = Uuid::from_u128(1);
    assert!(chunk_key(a, 255) < chunk_key(a, 256));
    assert!(chunk_key(a, u64::MAX) < chunk_key(Uuid::from_u128(2), 0));
    assert_eq!(read_seq(&chunk_key(a, 1 << 40)), 1 << 40);
}
