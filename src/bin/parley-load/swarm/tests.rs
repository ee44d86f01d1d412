//! Reading an event's type, seq and send stamp without a JSON parse.

use super::*;

#[test]
fn reads_type_seq_and_stamp() {
    let event = r#"{"type":20,"seq":5,"timestamp":1796665039690,"body":{"message_id":"m","data":"123456 xx","group_id":"g","user_id":"u"}}"#;
    assert_eq!(event_type(event), Some(20));
    assert_eq!(event_seq(event), Some(5));
    assert_eq!(data_stamp(event), Some(123456));
    let ack =
        r#"{"type":21,"seq":6,"id":"c1","timestamp":1796665039690,"body":{"message_id":"m"}}"#;
    assert_eq!(event_type(ack), Some(21));
    assert_eq!(event_seq(ack), Some(6));
    assert_eq!(data_stamp(ack), None);
    // Transient events carry no seq; the sync-complete's body seq is not the event's.
    let typing = r#"{"type":40,"timestamp":1796665039690,"body":{"group_id":"g","user_id":"u"}}"#;
    assert_eq!(event_seq(typing), None);
    let done = r#"{"type":29,"timestamp":1796665039690,"body":{"timestamp":1796665039690,"seq":6,"more":false}}"#;
    assert_eq!(event_seq(done), None);
    assert_eq!(
        after_key(r#"{"a":"x","data":"1"}"#, "\"data\":\""),
        Some("1\"}")
    );
    assert_eq!(after_key("\"data\":", "\"data\":\""), None);
}
