//! HTTP/1.1 as parley speaks it: routing statuses, content types, size limits, framing,
//! keep-alive and pipelining. Raw bytes where framing matters.

use crate::support::*;

fn register_body(name: &str) -> String {
    json!({"username": name, "email": format!("{name}@example.com"), "password": PASSWORD})
        .to_string()
}

#[test]
fn healthz_answers_ok() {
    let server = Server::start();
    let answer = server.get("/healthz");
    assert_eq!(answer.expect(200), json!({"status": "ok"}));
    let ct = answer
        .header("content-type")
        .expect("content-type on a JSON answer");
    assert!(ct.starts_with("application/json"), "content-type {ct}");
}

#[test]
fn unknown_path_is_404() {
    let server = Server::start();
    server.get("/no/such/path").expect_error(404, "not_found");
    server
        .post("/no/such/path", None, &json!({}))
        .expect_error(404, "not_found");
    // (`/users/extra` is `GET /users/{id}`'s path: a POST there is a 405.)
    server
        .post("/users/extra/more", None, &json!({}))
        .expect_error(404, "not_found");
}

#[test]
fn wrong_method_is_405_with_allow() {
    let server = Server::start();
    let cases: &[(&str, &str, &str)] = &[
        ("DELETE", "/users", "POST"),
        ("PUT", "/login", "POST"),
        ("DELETE", "/groups", "POST"),
        ("DELETE", "/sessions", "POST"),
        (
            "POST",
            "/groups/00000000-0000-4000-8000-000000000000/join",
            "PUT",
        ),
        (
            "GET",
            "/groups/00000000-0000-4000-8000-000000000000/left",
            "PUT",
        ),
    ];
    for (method, path, allowed) in cases {
        let answer = server.http().request(method, path, &[], None);
        answer.expect_error(405, "method_not_allowed");
        let allow = answer
            .header("allow")
            .unwrap_or_else(|| panic!("{method} {path}: 405 without Allow"));
        let methods: Vec<&str> = allow.split(',').map(|m| m.trim()).collect();
        assert!(
            methods.contains(allowed),
            "{method} {path}: Allow {allow:?} lacks {allowed}"
        );
        assert!(
            !methods.contains(method),
            "{method} {path}: Allow {allow:?} lists the refused method"
        );
    }
}

#[test]
fn text_plain_body_is_415() {
    let server = Server::start();
    let name = unique("plain");
    let answer = server.http().request(
        "POST",
        "/users",
        &[("Content-Type", "text/plain")],
        Some(register_body(&name).as_bytes()),
    );
    answer.expect_error(415, "unsupported_media_type");
    // Nothing was created: the same registration as JSON succeeds.
    server.register(&name);
}

#[test]
fn json_content_type_with_charset_is_accepted() {
    let server = Server::start();
    let name = unique("charset");
    let answer = server.http().request(
        "POST",
        "/users",
        &[("Content-Type", "application/json; charset=utf-8")],
        Some(register_body(&name).as_bytes()),
    );
    assert_keys(&answer.expect(201), &["id"]);
}

#[test]
fn malformed_json_is_400() {
    let server = Server::start();
    for body in [
        &b"{\"username\":"[..],
        b"not json",
        b"",
        b"[1,2,3]",
        b"{\"username\": \"a\"} trailing",
        &[0xff, 0xfe, b'{', b'}'],
    ] {
        let answer = server.http().request(
            "POST",
            "/users",
            &[("Content-Type", "application/json")],
            Some(body),
        );
        answer.expect_error(400, "bad_request");
    }
}

/// A JSON registration body padded with spaces to exactly `len` bytes.
fn padded_register_body(name: &str, len: usize) -> Vec<u8> {
    let mut body = register_body(name).into_bytes();
    assert!(body.len() <= len);
    body.resize(len, b' ');
    body
}

#[test]
fn body_over_64k_is_413() {
    let server = Server::start();
    let name = unique("big");
    let body = padded_register_body(&name, 64 * 1024 + 1);
    let mut http = server.http();
    let head = format!(
        "POST /users HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        server.addr,
        body.len()
    );
    http.send_raw(head.as_bytes());
    // The server may answer as soon as it has seen the head, and may close without reading the
    // body: send it, but do not insist.
    http.send_raw_lossy(&body);
    http.read_response().expect_error(413, "too_large");
    // Nothing was created.
    server.register(&name);
}

#[test]
fn body_of_exactly_64k_is_accepted() {
    let server = Server::start();
    let name = unique("edge");
    let body = padded_register_body(&name, 64 * 1024);
    let answer = server.http().request(
        "POST",
        "/users",
        &[("Content-Type", "application/json")],
        Some(&body),
    );
    assert_keys(&answer.expect(201), &["id"]);
}

#[test]
fn head_over_8k_is_431() {
    let server = Server::start();
    let pad = "a".repeat(9000);
    let answer = server
        .http()
        .request("GET", "/healthz", &[("X-Pad", pad.as_str())], None);
    answer.expect_error(431, "too_large");
}

#[test]
fn more_than_64_headers_is_431() {
    let server = Server::start();
    let names: Vec<String> = (0..70).map(|i| format!("X-Header-{i}")).collect();
    let headers: Vec<(&str, &str)> = names.iter().map(|n| (n.as_str(), "v")).collect();
    let answer = server.http().request("GET", "/healthz", &headers, None);
    answer.expect_error(431, "too_large");
}

#[test]
fn head_just_under_the_limits_is_accepted() {
    let server = Server::start();
    let pad = "a".repeat(7000);
    let names: Vec<String> = (0..40).map(|i| format!("X-Header-{i}")).collect();
    let mut headers: Vec<(&str, &str)> = names.iter().map(|n| (n.as_str(), "v")).collect();
    headers.push(("X-Pad", pad.as_str()));
    let answer = server.http().request("GET", "/healthz", &headers, None);
    assert_eq!(answer.expect(200), json!({"status": "ok"}));
}

#[test]
fn chunked_body_is_411() {
    let server = Server::start();
    let name = unique("chunked");
    let body = register_body(&name);
    let raw = format!(
        "POST /users HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n{}\r\n0\r\n\r\n",
        server.addr,
        body.len(),
        body
    );
    let mut http = server.http();
    http.send_raw(raw.as_bytes());
    http.read_response().expect_error(411, "bad_request");
}

#[test]
fn keep_alive_serves_several_requests_on_one_connection() {
    let server = Server::start();
    let name = unique("keepalive");
    let mut http = server.http();
    let id = http
        .json(
            "POST",
            "/users",
            None,
            &serde_json::from_str(&register_body(&name)).unwrap(),
        )
        .expect(201);
    let token = http
        .json(
            "POST",
            "/login",
            None,
            &json!({"username": name, "password": PASSWORD}),
        )
        .expect(200);
    assert_eq!(
        jwt::claims(token["token"].as_str().unwrap())["user_id"],
        id["id"]
    );
    assert_eq!(http.get("/healthz").expect(200), json!({"status": "ok"}));
    // An error answer does not end the connection either.
    http.get("/no/such/path").expect_error(404, "not_found");
    assert_eq!(http.get("/healthz").expect(200), json!({"status": "ok"}));
    assert!(
        http.leftover().is_empty(),
        "bytes after the last answer: {:?}",
        http.leftover()
    );
}

#[test]
fn pipelined_requests_are_answered_in_order() {
    let server = Server::start();
    let name = unique("pipe");
    let mut http = server.http();
    let json_ct = [("Content-Type", "application/json")];
    let body = register_body(&name);
    // Three requests in one write: register, the same again (409), health.
    let mut bytes = http.build("POST", "/users", &json_ct, Some(body.as_bytes()));
    bytes.extend(http.build("POST", "/users", &json_ct, Some(body.as_bytes())));
    bytes.extend(http.build("GET", "/healthz", &[], None));
    http.send_raw(&bytes);
    assert_keys(&http.read_response().expect(201), &["id"]);
    http.read_response().expect_error(409, "conflict");
    assert_eq!(http.read_response().expect(200), json!({"status": "ok"}));
    assert!(
        http.leftover().is_empty(),
        "bytes after the last answer: {:?}",
        http.leftover()
    );
}

#[test]
fn request_written_byte_by_byte_is_understood() {
    let server = Server::start();
    let name = unique("bytes");
    let mut http = server.http();
    let body = register_body(&name);
    let bytes = http.build(
        "POST",
        "/users",
        &[("Content-Type", "application/json")],
        Some(body.as_bytes()),
    );
    for b in &bytes {
        http.send_raw(std::slice::from_ref(b));
    }
    assert_keys(&http.read_response().expect(201), &["id"]);
}

#[test]
fn connection_close_is_honoured() {
    let server = Server::start();
    let mut http = server.http();
    let answer = http.request("GET", "/healthz", &[("Connection", "close")], None);
    assert_eq!(answer.expect(200), json!({"status": "ok"}));
    assert!(
        http.closed_by_peer(),
        "the server keeps the connection open after Connection: close"
    );
}

#[test]
fn garbage_request_line_is_400() {
    let server = Server::start();
    let mut http = server.http();
    http.send_raw(b"THIS IS NOT HTTP\r\n\r\n");
    let answer = http.read_response();
    assert_eq!(
        answer.status,
        400,
        "body: {}",
        String::from_utf8_lossy(&answer.body)
    );
}

#[test]
fn bad_content_length_is_400() {
    let server = Server::start();
    let body = register_body(&unique("cl"));
    for cl in ["abc", "-1", "12, 13", "1e3"] {
        let mut http = server.http();
        let raw = format!(
            "POST /users HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: {cl}\r\n\r\n{body}",
            server.addr
        );
        http.send_raw(raw.as_bytes());
        let answer = http.read_response();
        assert_eq!(
            answer.status,
            400,
            "Content-Length {cl:?}: {}",
            String::from_utf8_lossy(&answer.body)
        );
    }
    // Two different Content-Length headers (a smuggling vector).
    let mut http = server.http();
    let raw = format!(
        "POST /users HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nContent-Length: 2\r\n\r\n{body}",
        server.addr,
        body.len()
    );
    http.send_raw(raw.as_bytes());
    let answer = http.read_response();
    assert_eq!(
        answer.status,
        400,
        "conflicting Content-Length: {}",
        String::from_utf8_lossy(&answer.body)
    );
}

/// Connections that stop half-way through a request do not hold up anyone else.
#[test]
fn a_stalled_client_does_not_block_others() {
    let server = Server::start();
    let mut stalled_body = server.http();
    stalled_body.send_raw(
        format!("POST /users HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"user", server.addr)
            .as_bytes(),
    );
    let mut stalled_head = server.http();
    stalled_head.send_raw(b"GET /heal");

    assert_eq!(server.get("/healthz").expect(200), json!({"status": "ok"}));
    let user = server.user("unblocked");
    let mut ws = server.connect(&user);
    ws.assert_quiet();

    // The stalled head, completed, is answered.
    stalled_head.send_raw(format!("thz HTTP/1.1\r\nHost: {}\r\n\r\n", server.addr).as_bytes());
    assert_eq!(
        stalled_head.read_response().expect(200),
        json!({"status": "ok"})
    );
}

#[test]
fn plain_get_or_bad_upgrade_of_a_messaging_token_is_refused() {
    let server = Server::start();
    let user = server.user("plain");
    let url = server.messaging_url(&user.token);
    server
        .get(&format!("/{}", url_token(&url)))
        .expect_error(404, "not_found");
    // An upgrade without a key, or of another version: 400.
    let token = url_token(&url);
    let upgrade = |extra: &[(&str, &str)]| {
        let mut headers = vec![("Upgrade", "websocket"), ("Connection", "Upgrade")];
        headers.extend_from_slice(extra);
        server
            .http()
            .request("GET", &format!("/{token}"), &headers, None)
    };
    let answer = upgrade(&[("Sec-WebSocket-Version", "13")]);
    assert_eq!(answer.status, 400, "upgrade without Sec-WebSocket-Key");
    let answer = upgrade(&[
        ("Sec-WebSocket-Version", "8"),
        ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
    ]);
    assert_eq!(answer.status, 400, "upgrade of version 8");
    // The token still works for a real upgrade.
    Ws::connect(&url, "plain").assert_quiet();
}

/// Password hashing does not run on the event loop: while a pile of logins is being hashed, a
/// health check is answered before the last of them.
#[test]
fn hashing_does_not_block_other_requests() {
    use std::time::Instant;
    let server = Server::start();
    let name = unique("hasher");
    server.register(&name);
    let body = json!({"username": name, "password": PASSWORD}).to_string();
    let mut logins: Vec<Http> = (0..12).map(|_| server.http()).collect();
    for http in logins.iter_mut() {
        let bytes = http.build(
            "POST",
            "/login",
            &[("Content-Type", "application/json")],
            Some(body.as_bytes()),
        );
        http.send_raw(&bytes);
    }
    let start = Instant::now();
    assert_eq!(server.get("/healthz").expect(200), json!({"status": "ok"}));
    let health = start.elapsed();
    for http in logins.iter_mut() {
        http.read_response().expect(200);
    }
    let all_logins = start.elapsed();
    assert!(
        health * 2 < all_logins,
        "health answered after {health:?}, the 12 logins after {all_logins:?}: hashing blocks the loop?"
    );
}

// ---- Host (RFC 9112 §3.2) ----

/// The exact 400 of a refused `Host`; the connection closes after it, as after any framing error.
#[track_caller]
fn assert_host_refused(mut http: Http, what: &str, message: &str) {
    let answer = http.read_response();
    assert_eq!(
        answer.expect(400),
        json!({"error": message, "code": "bad_request"}),
        "{what}"
    );
    assert_eq!(answer.header("connection"), Some("close"), "{what}");
    assert!(http.closed_by_peer(), "{what}: the connection stays open");
}

#[test]
fn two_host_headers_are_400() {
    let server = Server::start();
    for (first, second) in [("Host", "Host"), ("Host", "host"), ("HOST", "hOsT")] {
        for (a, b) in [("127.0.0.1", "127.0.0.1"), ("a.example", "b.example")] {
            let mut http = server.http();
            http.send_raw(
                format!("GET /healthz HTTP/1.1\r\n{first}: {a}\r\n{second}: {b}\r\n\r\n")
                    .as_bytes(),
            );
            assert_host_refused(
                http,
                &format!("{first}: {a} + {second}: {b}"),
                "more than one Host header",
            );
        }
    }
    assert_eq!(server.get("/healthz").expect(200), json!({"status": "ok"}));
}

#[test]
fn a_host_that_is_no_host_and_port_is_400_and_never_reaches_messaging_url() {
    let server = Server::start();
    let user = server.user("host");
    let auth = format!("Bearer {}", user.token);
    let body = session_body().to_string();
    let open_session = |host: &[u8]| {
        let mut http = server.http();
        let mut raw = b"POST /sessions HTTP/1.1\r\nHost: ".to_vec();
        raw.extend_from_slice(host);
        raw.extend_from_slice(
            format!(
                "\r\nAuthorization: {auth}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            )
            .as_bytes(),
        );
        http.send_raw(&raw);
        http
    };
    for bad in [
        &b"evil.example/phish"[..],
        b"evil.example:80/x",
        b"a b",
        b"user@evil.example",
        b"\"quoted\"",
        b"<script>",
        b"evil.example?x",
        b"evil.example#x",
        b"evil.example\\x",
        b"tab\there",
        b"caf\xc3\xa9.example",
        b"host:8o",
        b"host:80:80",
        b":80",
        b"[::1",
        b"[not-an-ip]:80",
        b"",
    ] {
        let what = format!("Host {:?}", String::from_utf8_lossy(bad));
        assert_host_refused(
            open_session(bad),
            &what,
            "invalid Host header; expected host[:port]",
        );
    }
    for (good, base) in [
        ("chat.example.com", "ws://chat.example.com/"),
        ("Chat.Example.com:8443", "ws://Chat.Example.com:8443/"),
        ("192.0.2.7:3000", "ws://192.0.2.7:3000/"),
        ("[2001:db8::1]:3000", "ws://[2001:db8::1]:3000/"),
        ("xn--bcher-kva.example", "ws://xn--bcher-kva.example/"),
    ] {
        let answer = open_session(good.as_bytes()).read_response();
        let url = answer.expect(201)["messaging_url"]
            .as_str()
            .unwrap()
            .to_string();
        assert!(url.starts_with(base), "Host {good}: messaging_url {url}");
        assert_eq!(
            url_token(&url).len(),
            64,
            "Host {good}: messaging_url {url}"
        );
    }
}

// ---- HEAD (RFC 9110 §9.3.2) ----

/// `HEAD path` answers the status and headers `GET path` answers, `Content-Length` of its body
/// included, and no body: a GET pipelined behind it on the same connection reads cleanly.
#[track_caller]
fn assert_head_like_get(server: &Server, path: &str, headers: &[(&str, &str)]) -> Response {
    let get = server.http().request("GET", path, headers, None);
    let mut http = server.http();
    let mut bytes = http.build("HEAD", path, headers, None);
    bytes.extend(http.build("GET", "/healthz", &[], None));
    http.send_raw(&bytes);
    let head = http.read_head_answer();
    assert_eq!(head.status, get.status, "HEAD {path}");
    assert_eq!(head.headers, get.headers, "HEAD {path}");
    let length = get.body.len().to_string();
    assert_eq!(
        head.header("content-length"),
        Some(length.as_str()),
        "HEAD {path}"
    );
    assert_eq!(
        http.read_response().expect(200),
        json!({"status": "ok"}),
        "the answer after HEAD {path}"
    );
    assert!(
        http.leftover().is_empty(),
        "bytes after HEAD {path}: {:?}",
        http.leftover()
    );
    get
}

#[test]
fn head_answers_what_get_answers_without_the_body() {
    let server = Server::start();
    let get = assert_head_like_get(&server, "/healthz", &[]);
    assert_eq!(get.expect(200), json!({"status": "ok"}));
    let get = assert_head_like_get(&server, "/", &[]);
    assert_eq!(get.status, 200);
    assert_eq!(get.header("content-type"), Some("text/html; charset=utf-8"));
    assert!(String::from_utf8_lossy(&get.body).contains("<html"));
    let get = assert_head_like_get(&server, "/healthz?probe=1", &[("Connection", "keep-alive")]);
    assert_eq!(get.expect(200), json!({"status": "ok"}));
    // Errors too: an unknown path, and a real route's 405.
    let get = assert_head_like_get(&server, "/no/such/path", &[]);
    assert_eq!(
        get.expect(404),
        json!({"error": "no such endpoint", "code": "not_found"})
    );
    let get = assert_head_like_get(&server, "/login", &[]);
    get.expect_error(405, "method_not_allowed");
    assert_eq!(get.header("allow"), Some("POST"));
}

#[test]
fn head_of_metrics_is_its_head() {
    let server = Server::start();
    let mut http = server.http();
    let mut bytes = http.build("HEAD", "/metrics", &[], None);
    bytes.extend(http.build("GET", "/metrics", &[], None));
    http.send_raw(&bytes);
    let head = http.read_head_answer();
    // One tick normally answers both, where only the request counter moves; the slack covers a
    // tick between them (the tick-time histogram then moves too).
    let get = http.read_response();
    assert_eq!((head.status, get.status), (200, 200));
    for answer in [&head, &get] {
        assert_eq!(
            answer.header("content-type"),
            Some("text/plain; version=0.0.4")
        );
    }
    let head_length: usize = head.header("content-length").unwrap().parse().unwrap();
    assert!(
        head_length.abs_diff(get.body.len()) < 64,
        "HEAD says {head_length} bytes, GET sent {}",
        get.body.len()
    );
    assert!(String::from_utf8_lossy(&get.body).contains("parley_"));
    assert!(http.leftover().is_empty(), "bytes after GET /metrics");
}

#[test]
fn head_of_a_messaging_token_answers_the_plain_get_and_never_upgrades() {
    let server = Server::start();
    let user = server.user("headws");
    let url = server.messaging_url(&user.token);
    let path = format!("/{}", url_token(&url));
    let not_found = json!({"error": "no such endpoint", "code": "not_found"});
    assert_eq!(
        assert_head_like_get(&server, &path, &[]).expect(404),
        not_found
    );
    assert_eq!(
        assert_head_like_get(&server, "/unknown-token", &[]).expect(404),
        not_found
    );
    // With every upgrade header a HEAD still gets what a plain GET gets: no 101.
    let upgrade = [
        ("Upgrade", "websocket"),
        ("Connection", "Upgrade"),
        ("Sec-WebSocket-Version", "13"),
        ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
    ];
    let mut http = server.http();
    let mut bytes = http.build("HEAD", &path, &upgrade, None);
    bytes.extend(http.build("GET", "/healthz", &[], None));
    http.send_raw(&bytes);
    let head = http.read_head_answer();
    assert_eq!(head.status, 404, "HEAD with upgrade headers");
    assert_eq!(
        head.header("content-length"),
        Some(not_found.to_string().len().to_string().as_str())
    );
    assert_eq!(http.read_response().expect(200), json!({"status": "ok"}));
    // The token is untouched: a real upgrade works.
    Ws::connect(&url, "headws").assert_quiet();
}

#[test]
fn allow_lists_head_wherever_it_lists_get() {
    let server = Server::start();
    for (method, path) in [
        ("POST", "/"),
        ("POST", "/healthz"),
        ("DELETE", "/healthz"),
        ("PUT", "/metrics"),
    ] {
        let answer = server.http().request(method, path, &[], None);
        assert_eq!(
            answer.expect(405),
            json!({"error": "method not allowed; allowed: GET, HEAD", "code": "method_not_allowed"}),
            "{method} {path}"
        );
        assert_eq!(answer.header("allow"), Some("GET, HEAD"), "{method} {path}");
    }
}

#[test]
fn a_refused_head_gets_its_head_only() {
    let server = Server::start();
    let mut http = server.http();
    http.send_raw(b"HEAD /healthz HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n");
    let answer = http.read_head_answer();
    assert_eq!(answer.status, 400);
    let body = json!({"error": "more than one Host header", "code": "bad_request"});
    assert_eq!(
        answer.header("content-length"),
        Some(body.to_string().len().to_string().as_str())
    );
    assert_eq!(answer.header("connection"), Some("close"));
    assert!(http.closed_by_peer(), "a body after the head, or no close");
}

// ---- one unknown segment is a token path for GET only ----

#[test]
fn a_single_unknown_segment_with_another_method_is_404() {
    let server = Server::start();
    let user = server.user("typo");
    let url = server.messaging_url(&user.token);
    let token_path = format!("/{}", url_token(&url));
    for (method, path) in [
        ("POST", "/user"),
        ("POST", "/logins"),
        ("PUT", "/foo"),
        ("DELETE", "/session"),
        ("PATCH", "/groups1"),
        ("OPTIONS", "/x?y=1"),
        ("POST", token_path.as_str()),
        ("DELETE", token_path.as_str()),
        ("POST", "/_echo"),
    ] {
        let answer = server.http().request(method, path, &[], None);
        assert_eq!(
            answer.expect(404),
            json!({"error": "no such endpoint", "code": "not_found"}),
            "{method} {path}"
        );
        assert_eq!(answer.header("allow"), None, "{method} {path}");
    }
    // Real routes keep their 405.
    for (method, path, allow) in [
        ("DELETE", "/users", "GET, HEAD, POST"),
        ("GET", "/login", "POST"),
        ("PUT", "/sessions", "GET, HEAD, POST"),
    ] {
        let answer = server.http().request(method, path, &[], None);
        answer.expect_error(405, "method_not_allowed");
        assert_eq!(answer.header("allow"), Some(allow), "{method} {path}");
    }
}

#[test]
fn the_echo_endpoint_is_a_route_only_when_enabled() {
    let server = Server::start_with_args(&["--echo-endpoint"]);
    let answer = server.http().request("POST", "/_echo", &[], None);
    answer.expect_error(405, "method_not_allowed");
    assert_eq!(answer.header("allow"), Some("GET, HEAD"));
    let get = assert_head_like_get(&server, "/_echo", &[]);
    assert_eq!(
        get.expect(404),
        json!({"error": "no such endpoint", "code": "not_found"})
    );
}
