//! `GET /metrics` accounts for what the hardening refuses: errors by code, connections dropped
//! by reason, and the connection gauges.

use super::metric;
use crate::support::*;

#[test]
fn refusals_and_drops_are_counted() {
    let server = Server::start();
    let addr = server.addr;
    let too_large = "parley_errors_total{code=\"too_large\"}";
    let unsupported = "parley_errors_total{code=\"unsupported_media_type\"}";
    let before = (metric(addr, too_large), metric(addr, unsupported));

    let mut http = Http::connect(addr);
    http.send_raw_lossy(b"POST /login HTTP/1.1\r\nHost: t\r\nContent-Length: 70000\r\n\r\n");
    http.read_response().expect_error(413, "too_large");
    let mut http = Http::connect(addr);
    http.send_raw(
        b"POST /login HTTP/1.1\r\nHost: t\r\nContent-Type: text/plain\r\nContent-Length: 0\r\n\r\n",
    );
    http.read_response()
        .expect_error(415, "unsupported_media_type");
    assert_eq!(metric(addr, too_large), before.0 + 1);
    assert_eq!(metric(addr, unsupported), before.1 + 1);

    // On a fresh server, two held connections fill a per-address cap of 2; the third is refused
    // and counted.
    let capped = Server::start_with_args(&["--max-connections-per-ip", "2"]);
    let addr = capped.addr;
    let mut held: Vec<Http> = (0..2).map(|_| Http::connect(addr)).collect();
    for h in &mut held {
        assert_eq!(h.get("/healthz").status, 200);
    }
    let mut third = Http::connect(addr);
    third.send_raw_lossy(b"GET /metrics HTTP/1.1\r\nHost: t\r\n\r\n");
    third.read_response().expect_error(429, "rate_limited");
    let text = String::from_utf8(held[0].get("/metrics").body).unwrap();
    assert!(
        text.contains("parley_connections_dropped_total{reason=\"per_ip\"} 1\n"),
        "{text}"
    );
    assert!(
        text.contains("parley_connections{phase=\"http\"} 2\n"),
        "{text}"
    );
    assert!(
        text.contains("# TYPE parley_errors_total counter\n"),
        "{text}"
    );
}
