//! base64url round trips (the tests' encoder, the kit's decode cases) and the parts of a JWT.

use super::*;

#[test]
fn base64url_round_trip() {
    for data in [
        &b""[..],
        b"f",
        b"fo",
        b"foo",
        b"foob",
        b"fooba",
        b"foobar",
        &[0xff, 0xfe, 0x00],
    ] {
        assert_eq!(b64url_decode(&b64url_encode(data)).unwrap(), data);
    }
    assert_eq!(b64url_encode(b"foobar"), "Zm9vYmFy");
    assert_eq!(b64url_encode(b"fo"), "Zm8");
    assert_eq!(b64url_decode("eyJhIjoxfQ").unwrap(), br#"{"a":1}"#);
    assert_eq!(b64url_decode("_-8").unwrap(), vec![0xff, 0xef]);
    assert!(b64url_decode("a*b").is_none());
}

#[test]
fn parts() {
    let token = format!(
        "{}.{}.sig",
        b64url_encode(br#"{"alg":"HS256"}"#),
        b64url_encode(br#"{"user_id":"u"}"#)
    );
    assert_eq!(part(&token, 0).unwrap()["alg"], "HS256");
    assert_eq!(part(&token, 1).unwrap()["user_id"], "u");
    assert!(part("a.b", 1)
        .unwrap_err()
        .contains("three dot-separated parts"));
    assert!(part("a.*.c", 1).unwrap_err().contains("not base64url"));
}
