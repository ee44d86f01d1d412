use super::*;

const GROUP: &str = "95ba5e74-810d-49b4-943f-0b2753d688c9";

#[test]
fn decodes_the_walkthrough_rpcs() {
    let sync = decode(r#"{"method":20, "timestamp":1532786538556}"#).unwrap();
    assert_eq!(
        sync.call,
        Call::Sync {
            cursor: Cursor::Timestamp(1532786538556),
            limit: None
        }
    );
    let send = decode(&format!(
        r#"{{"method":40,"body":{{"group_id":"{GROUP}", "data":"Hello, how are you?"}}}}"#
    ))
    .unwrap();
    assert_eq!(
        send.call,
        Call::Send {
            group_id: GROUP.parse().unwrap(),
            data: "Hello, how are you?".into()
        }
    );
    let typing = decode(&format!(
        r#"{{"method":61,"body":{{"group_id":"{GROUP}"}}}}"#
    ))
    .unwrap();
    assert_eq!(
        typing.call,
        Call::Typing {
            group_id: GROUP.parse().unwrap(),
            start: false
        }
    );
}

#[test]
fn sync_cursor_and_limit_may_stand_in_body() {
    let rpc = decode(r#"{"method":20,"id":"s1","body":{"timestamp":5,"limit":2}}"#).unwrap();
    assert_eq!(rpc.id.as_deref(), Some("s1"));
    assert_eq!(
        rpc.call,
        Call::Sync {
            cursor: Cursor::Timestamp(5),
            limit: Some(2)
        }
    );
    let bare = decode(r#"{"method":20}"#).unwrap();
    assert_eq!(
        bare.call,
        Call::Sync {
            cursor: Cursor::Seq(0),
            limit: None
        }
    );
    let cases = [
        (r#"{"method":20,"seq":9}"#, Cursor::Seq(9)),
        (r#"{"method":20,"body":{"seq":9}}"#, Cursor::Seq(9)),
        (r#"{"method":20,"timestamp":5,"seq":9}"#, Cursor::Seq(9)),
        (
            r#"{"method":20,"timestamp":5,"body":{"seq":9}}"#,
            Cursor::Seq(9),
        ),
        (
            r#"{"method":20,"seq":null,"timestamp":5}"#,
            Cursor::Timestamp(5),
        ),
    ];
    for (text, cursor) in cases {
        let call = decode(text).unwrap().call;
        assert_eq!(
            call,
            Call::Sync {
                cursor,
                limit: None
            },
            "{text}"
        );
    }
    let err = decode(r#"{"method":20,"seq":"9"}"#).unwrap_err();
    assert_eq!(
        (err.error.code, err.error.message.as_str()),
        (
            ErrorCode::BadRequest,
            "`seq` must be a non-negative integer"
        )
    );
}

#[test]
fn errors_keep_method_and_id() {
    let err = decode(r#"{"method":99,"id":"x"}"#).unwrap_err();
    assert_eq!(
        (err.method, err.id.as_deref(), err.error.code),
        (Some(99), Some("x"), ErrorCode::UnknownMethod)
    );
    let err =
        decode(r#"{"method":40,"id":"y","body":{"group_id":"nope","data":"d"}}"#).unwrap_err();
    assert_eq!(
        (err.method, err.id.as_deref(), err.error.code),
        (Some(40), Some("y"), ErrorCode::BadRequest)
    );
    let err = decode("not json").unwrap_err();
    assert_eq!((err.method, err.error.code), (None, ErrorCode::BadRequest));
    let err = decode(r#"{"method":20,"timestamp":-1}"#).unwrap_err();
    assert_eq!(err.error.code, ErrorCode::BadRequest);
    let err = decode(&format!(
        r#"{{"method":40,"id":"e","body":{{"group_id":"{GROUP}","data":""}}}}"#
    ))
    .unwrap_err();
    assert_eq!(
        (err.id.as_deref(), err.error.message.as_str()),
        (Some("e"), "`data` must not be empty")
    );
    let err = decode(r#"{"method":40,"id":7}"#).unwrap_err();
    assert_eq!(
        (err.method, err.error.code),
        (Some(40), ErrorCode::BadRequest)
    );
}

#[test]
fn encodes_the_envelope_in_walkthrough_order() {
    let id: Uuid = GROUP.parse().unwrap();
    let body = SentBody { message_id: id };
    assert_eq!(
        encode(event::SENT, None, None, 7, &body),
        format!(r#"{{"type":21,"timestamp":7,"body":{{"message_id":"{GROUP}"}}}}"#)
    );
    assert_eq!(
        encode(event::SENT, Some(3), Some("c-17"), 7, &body),
        format!(
            r#"{{"type":21,"seq":3,"id":"c-17","timestamp":7,"body":{{"message_id":"{GROUP}"}}}}"#
        )
    );
}

/// An event stored without a seq reads back as if encoded with it.
#[test]
fn with_seq_puts_the_seq_where_encode_does() {
    let body = SentBody {
        message_id: GROUP.parse().unwrap(),
    };
    for id in [None, Some("c,1")] {
        let stored = encode(event::SENT, None, id, 7, &body);
        assert_eq!(
            with_seq(stored.as_bytes(), 12),
            encode(event::SENT, Some(12), id, 7, &body).into_bytes()
        );
    }
    assert_eq!(with_seq(b"[1,2]", 5), b"[1,2]");
}

/// The hand-written message event is byte for byte what serde makes of the same event, for
/// data with every kind of character JSON escapes or passes through.
#[test]
fn message_event_matches_serdes_bytes() {
    let ids = [
        Uuid::from_u128(1),
        Uuid::from_u128(u128::MAX),
        Uuid::new_v4(),
    ];
    let mut datas: Vec<String> = [
        "",
        "hi",
        "\"quoted\" \\ back",
        "tab\t new\n cr\r",
        "é ü 😀 \u{2028}\u{7f}",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    datas.push((0u8..=0x7f).map(char::from).collect());
    for data in &datas {
        for (i, ts) in [0, 1, 1_764_060_000_000, u64::MAX].into_iter().enumerate() {
            let stamp = Stamp {
                seq: ts / 3,
                timestamp: ts,
            };
            let (message_id, group_id, user_id) = (ids[i % 3], ids[(i + 1) % 3], ids[(i + 2) % 3]);
            let body = MessageBody {
                message_id,
                data,
                group_id,
                user_id,
            };
            assert_eq!(
                message_event(stamp, message_id, data, group_id, user_id),
                encode(event::MESSAGE, Some(stamp.seq), None, ts, &body),
                "{data:?}"
            );
        }
    }
}
