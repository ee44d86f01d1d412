//! Fuzz target: the HTTP head and framing decision (`http::parse`) on arbitrary bytes. Beyond
//! "never panics": a buffer is never held as partial past the head and body limits, a refusal
//! is one of the framing statuses, and a complete request parses the same on its own.
#![no_main]

use libfuzzer_sys::fuzz_target;
use parley::config::Limits;
use parley::http::{parse, Parsed};

fuzz_target!(|data: &[u8]| {
    let limits = Limits::default();
    match parse(data, &limits) {
        Ok(Parsed::Partial) => assert!(
            data.len() <= limits.max_head_bytes + limits.max_body_bytes,
            "{} bytes buffered as a partial request",
            data.len()
        ),
        Ok(Parsed::Complete(request, used)) => {
            assert!(used <= data.len());
            assert!(request.body.len() <= limits.max_body_bytes);
            assert!(used - request.body.len() <= limits.max_head_bytes);
            match parse(&data[..used], &limits) {
                Ok(Parsed::Complete(alone, used_alone)) => {
                    assert_eq!(used_alone, used);
                    assert_eq!(alone, request);
                }
                other => panic!("the request alone parses as {other:?}"),
            }
        }
        Err(refusal) => assert!(
            matches!(refusal.0.status, 400 | 411 | 413 | 431),
            "framing refusal with status {}",
            refusal.0.status
        ),
    }
});
