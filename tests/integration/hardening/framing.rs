//! HTTP framing without smuggling: a request whose length is ambiguous is refused with 400 and
//! the connection closed, so bytes the server did not frame are never read as a second request;
//! pipelined requests are answered in order; a body is framed by `Content-Length` only.

use crate::support::*;

/// What a connection got back: every answer until the server closed it.
fn answers_until_close(http: &mut Http) -> Vec<Response> {
    let mut answers = Vec::new();
    while let Ok(answer) = http.try_read_response() {
        let closes = answer.header("connection") == Some("close");
        answers.push(answer);
        if closes {
            break;
        }
    }
    answers
}

/// Classic CL.TE and TE.CL shapes with a second request hidden in the body: one 400, then
/// the connection is closed; the hidden request is never answered.
#[test]
fn smuggled_requests_are_never_answered() {
    let server = Server::start();
    let hidden = "GET /metrics HTTP/1.1\r\nHost: t\r\n\r\n";
    let attempts = [
        // CL.TE: a front end that trusts Content-Length forwards everything as one body.
        format!(
            "POST /login HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nContent-Length: {}\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n{hidden}",
            5 + hidden.len()
        ),
        // TE.CL: a front end that trusts Transfer-Encoding.
        format!(
            "POST /login HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n{hidden}\r\n0\r\n\r\n",
            hidden.len()
        ),
        // Obfuscated Transfer-Encoding values.
        format!("POST /login HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\nTransfer-Encoding: xchunked\r\n\r\n{hidden}"),
        format!("POST /login HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\nTransfer-Encoding : chunked\r\n\r\n{hidden}"),
        // Two lengths: whichever a proxy picks, the other leaves a request behind.
        format!("POST /login HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\nContent-Length: {}\r\n\r\n{hidden}", hidden.len()),
    ];
    for attempt in attempts {
        let mut http = Http::connect(server.addr);
        http.send_raw_lossy(attempt.as_bytes());
        let answers = answers_until_close(&mut http);
        let statuses: Vec<u16> = answers.iter().map(|a| a.status).collect();
        assert_eq!(
            statuses,
            vec![400],
            "one 400 and nothing else for {attempt:?}"
        );
        answers[0].expect_error(400, "bad_request");
        assert!(
            http.closed_by_peer(),
            "closed after the 400 for {attempt:?}"
        );
    }
    assert_eq!(server.get("/healthz").expect(200), json!({"status": "ok"}));
}

/// A `Content-Length` body is exactly that many bytes: what follows is the next request, even
/// when the body itself looks like a request.
#[test]
fn a_body_that_looks_like_a_request_is_only_a_body() {
    let server = Server::start_with_args(&["--auth-rate", "0"]);
    let body = r#"{"username":"GET /metrics HTTP/1.1","password":"x"}"#;
    let mut http = Http::connect(server.addr);
    let mut bytes = http.build(
        "POST",
        "/login",
        &[("Content-Type", "application/json")],
        Some(body.as_bytes()),
    );
    bytes.extend_from_slice(b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n");
    http.send_raw(&bytes);
    http.read_response().expect_error(401, "unauthorized");
    assert_eq!(http.read_response().expect(200), json!({"status": "ok"}));
    assert!(http.leftover().is_empty());
}

/// Pipelined requests of every kind (a password check that waits for a worker thread, errors,
/// plain GETs) are answered in the order they were sent, on one connection.
#[test]
fn pipelined_requests_are_answered_in_order_across_slow_and_fast_handlers() {
    let server = Server::start_with_args(&["--auth-rate", "0"]);
    let alice = server.user("alice");
    let mut http = Http::connect(server.addr);
    let mut bytes = Vec::new();
    let login = json!({"username": alice.name, "password": PASSWORD}).to_string();
    let wrong = json!({"username": alice.name, "password": "wrong"}).to_string();
    let json_ct = [("Content-Type", "application/json")];
    bytes.extend(http.build("POST", "/login", &json_ct, Some(login.as_bytes())));
    bytes.extend(http.build("GET", "/healthz", &[], None));
    bytes.extend(http.build("GET", "/nope/nope", &[], None));
    bytes.extend(http.build("POST", "/login", &json_ct, Some(wrong.as_bytes())));
    bytes.extend(http.build(
        "POST",
        "/login",
        &[("Content-Type", "text/plain")],
        Some(b"x"),
    ));
    bytes.extend(http.build("DELETE", "/users", &[], None));
    bytes.extend(http.build("GET", "/healthz", &[("Connection", "close")], None));
    http.send_raw(&bytes);
    let token = http.read_response().expect(200)["token"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        crate::support::jwt::claims(&token)["user_id"],
        alice.id.as_str()
    );
    assert_eq!(http.read_response().expect(200), json!({"status": "ok"}));
    http.read_response().expect_error(404, "not_found");
    http.read_response().expect_error(401, "unauthorized");
    http.read_response()
        .expect_error(415, "unsupported_media_type");
    let not_allowed = http.read_response();
    not_allowed.expect_error(405, "method_not_allowed");
    assert_eq!(not_allowed.header("allow"), Some("GET, HEAD, POST"));
    let last = http.read_response();
    assert_eq!(last.expect(200), json!({"status": "ok"}));
    assert_eq!(last.header("connection"), Some("close"));
    assert!(http.closed_by_peer());
}

/// An error that closes the connection in the middle of a pipeline: the requests before it are
/// answered, nothing after it is.
#[test]
fn a_framing_error_inside_a_pipeline_ends_it_there() {
    let server = Server::start();
    let mut http = Http::connect(server.addr);
    let mut bytes = http.build("GET", "/healthz", &[], None);
    bytes.extend_from_slice(
        b"POST /login HTTP/1.1\r\nHost: t\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n{}",
    );
    bytes.extend(http.build("GET", "/healthz", &[], None));
    http.send_raw(&bytes);
    let answers = answers_until_close(&mut http);
    let statuses: Vec<u16> = answers.iter().map(|a| a.status).collect();
    assert_eq!(statuses, vec![200, 400]);
    assert!(http.closed_by_peer());
}

/// HTTP/1.0 without keep-alive is answered and closed; `Connection: keep-alive` on 1.0 keeps it.
#[test]
fn http_1_0_is_framed_and_closed() {
    let server = Server::start();
    let mut http = Http::connect(server.addr);
    http.send_raw(b"GET /healthz HTTP/1.0\r\n\r\n");
    let answer = http.read_response();
    assert_eq!(answer.expect(200), json!({"status": "ok"}));
    assert_eq!(answer.header("connection"), Some("close"));
    assert!(http.closed_by_peer());

    let mut http = Http::connect(server.addr);
    http.send_raw(
        b"GET /healthz HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET /healthz HTTP/1.0\r\n\r\n",
    );
    assert_eq!(http.read_response().header("connection"), None);
    assert_eq!(http.read_response().header("connection"), Some("close"));
    assert!(http.closed_by_peer());
}
