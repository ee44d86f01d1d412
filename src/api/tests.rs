use super::admin::check_admin;
use super::body::positive_whole_number;
use super::query::{has, pairs};
use super::routes::GET;
use super::users::{normalize_email, validate_username};
use super::*;
use crate::error::ErrorCode;

#[test]
fn routes_every_endpoint() {
    let g = "95ba5e74-810d-49b4-943f-0b2753d688c9";
    assert_eq!(route("POST", "/users"), Ok(Route::Register));
    assert_eq!(route("POST", "/login"), Ok(Route::Login));
    assert_eq!(route("POST", "/sessions"), Ok(Route::CreateSession));
    assert_eq!(route("POST", "/groups"), Ok(Route::CreateGroup));
    assert_eq!(
        route("PUT", &format!("/groups/{g}/join")),
        Ok(Route::Join(g.parse().unwrap()))
    );
    assert_eq!(
        route("PUT", &format!("/groups/{g}/left")),
        Ok(Route::Leave(g.parse().unwrap()))
    );
    assert_eq!(route("GET", "/abc?x=1"), Ok(Route::Messaging("abc".into())));
    assert_eq!(route("GET", "/healthz"), Ok(Route::Healthz));
    assert_eq!(route("GET", "/users/me"), Ok(Route::Me));
    assert_eq!(route("GET", "/users/x"), Ok(Route::User("x".into())));
    assert_eq!(route("GET", "/users?username=a"), Ok(Route::FindUsers));
    assert_eq!(
        route("PUT", "/users/me/password"),
        Ok(Route::ChangePassword)
    );
    assert_eq!(route("POST", "/logout"), Ok(Route::Logout));
    assert_eq!(route("POST", "/logout/all"), Ok(Route::LogoutAll));
    assert_eq!(route("GET", "/sessions"), Ok(Route::ListSessions));
    assert_eq!(
        route("DELETE", &format!("/sessions/{g}")),
        Ok(Route::DeleteSession(g.into()))
    );
}

#[test]
fn wrong_method_and_unknown_path() {
    assert_eq!(
        route("PUT", "/users"),
        Err(NoRoute::MethodNotAllowed("GET, HEAD, POST"))
    );
    assert_eq!(
        route("GET", "/logout"),
        Err(NoRoute::MethodNotAllowed("POST"))
    );
    assert_eq!(
        route("POST", "/sessions/x"),
        Err(NoRoute::MethodNotAllowed("DELETE"))
    );
    assert_eq!(
        route("PUT", "/groups/not-a-uuid/join"),
        Err(NoRoute::NotFound)
    );
    assert_eq!(route("GET", "/"), Ok(Route::ClientPage));
    assert_eq!(route("POST", "/"), Err(NoRoute::MethodNotAllowed(GET)));
    assert_eq!(
        route("DELETE", "/healthz"),
        Err(NoRoute::MethodNotAllowed(GET))
    );
    assert_eq!(route("GET", "/a/b"), Err(NoRoute::NotFound));
    let response = NoRoute::MethodNotAllowed("POST").response();
    assert_eq!(response.status, 405);
    assert_eq!(response.headers, vec![("allow", "POST".to_string())]);
}

#[test]
fn head_goes_wherever_get_goes() {
    for (path, expected) in [
        ("/", Route::ClientPage),
        ("/healthz", Route::Healthz),
        ("/metrics", Route::Metrics),
        ("/_echo", Route::Echo),
        ("/abc?x=1", Route::Messaging("abc".into())),
    ] {
        assert_eq!(route("HEAD", path), Ok(expected.clone()), "HEAD {path}");
        assert_eq!(route("GET", path), Ok(expected), "GET {path}");
    }
    assert_eq!(route("HEAD", "/users?id=x"), Ok(Route::FindUsers));
    assert_eq!(route("HEAD", "/sessions"), Ok(Route::ListSessions));
    assert_eq!(
        route("HEAD", "/logout"),
        Err(NoRoute::MethodNotAllowed("POST"))
    );
    assert_eq!(route("HEAD", "/a/b"), Err(NoRoute::NotFound));
    assert_eq!(
        NoRoute::MethodNotAllowed(GET).response().headers,
        vec![("allow", "GET, HEAD".to_string())]
    );
}

#[test]
fn a_single_unknown_segment_is_a_token_path_for_get_only() {
    for method in ["POST", "PUT", "DELETE", "PATCH", "OPTIONS", "head"] {
        assert_eq!(route(method, "/user"), Err(NoRoute::NotFound), "{method}");
        assert_eq!(
            route(method, "/foo?x=1"),
            Err(NoRoute::NotFound),
            "{method}"
        );
    }
    // Real single-segment routes keep their 405.
    assert_eq!(
        route("GET", "/login"),
        Err(NoRoute::MethodNotAllowed("POST"))
    );
    assert_eq!(
        route("PUT", "/metrics"),
        Err(NoRoute::MethodNotAllowed(GET))
    );
    assert!(is_echo("/_echo?x") && is_echo("//_echo") && !is_echo("/_echo/x"));
}

#[test]
fn emails_are_checked_and_folded() {
    assert_eq!(
        normalize_email(" User1@Gmail.com ").unwrap(),
        "user1@gmail.com"
    );
    assert!(normalize_email("[email protected]").is_err());
    assert!(normalize_email("a@b@c").is_err());
    assert!(normalize_email("@b").is_err());
    assert!(normalize_email("a@").is_err());
}

#[test]
fn build_numbers_are_whole_and_positive() {
    let number = |text: &str| serde_json::from_str::<serde_json::Number>(text).unwrap();
    assert_eq!(positive_whole_number(&number("102")), Some(102));
    assert_eq!(positive_whole_number(&number("102.0")), Some(102));
    assert_eq!(positive_whole_number(&number("102.5")), None);
    assert_eq!(positive_whole_number(&number("0")), None);
    assert_eq!(positive_whole_number(&number("-3")), None);
    assert_eq!(positive_whole_number(&number("18446744073709551616")), None);
}

#[test]
fn usernames_have_no_spaces_or_at() {
    assert!(validate_username("user1").is_ok());
    assert!(validate_username("").is_err());
    assert!(validate_username("a b").is_err());
    assert!(validate_username("a@b").is_err());
}

#[test]
fn query_pairs_decode_in_order() {
    let got = pairs("/users?username=J%C3%BCrgen+X&id=a&id=b&&flag").unwrap();
    let want = [
        ("username", "Jürgen X"),
        ("id", "a"),
        ("id", "b"),
        ("flag", ""),
    ];
    let want: Vec<(String, String)> = want
        .iter()
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect();
    assert_eq!(got, want);
    assert_eq!(pairs("/users").unwrap(), Vec::new());
    assert_eq!(pairs("/users?x=%zz").unwrap_err().status, 400);
    assert_eq!(pairs("/users?x=%ff").unwrap_err().status, 400);
    assert_eq!(pairs("/users?x=%4").unwrap_err().status, 400);
}

#[test]
fn query_names_are_found_without_decoding() {
    assert!(has("/users?id=1&username=x", "username"));
    assert!(has("/users?username", "username"));
    assert!(!has("/users?usernames=x", "username"));
    assert!(!has("/users", "username"));
}

fn admin_request(authorization: Option<&str>) -> Request {
    Request {
        method: "GET".into(),
        path: "/admin/users?username=a".into(),
        keep_alive: true,
        authorization: authorization.map(str::to_string),
        host: None,
        content_type: None,
        origin: None,
        forwarded_for: None,
        forwarded_proto: None,
        websocket_key: None,
        websocket_version: None,
        wants_upgrade: false,
        body: Vec::new(),
    }
}

#[test]
fn the_admin_api_answers_loopback_and_listed_peers_with_the_token() {
    let token = "an-admin-token-of-at-least-32-characters";
    let loopback_only = AdminConfig {
        token: token.into(),
        addresses: TrustedProxies::default(),
    };
    let good = admin_request(Some(&format!("Bearer {token}")));
    let local: IpAddr = "127.0.0.1".parse().unwrap();
    let remote: IpAddr = "10.1.2.3".parse().unwrap();
    assert_eq!(check_admin(&loopback_only, &good, local), Ok(()));
    assert_eq!(
        check_admin(&loopback_only, &good, "::1".parse().unwrap()),
        Ok(())
    );
    let refused = check_admin(&loopback_only, &good, remote).unwrap_err();
    assert_eq!((refused.status, refused.code), (403, ErrorCode::Forbidden));
    let listed = AdminConfig {
        token: token.into(),
        addresses: TrustedProxies::parse("10.0.0.0/8").unwrap(),
    };
    assert_eq!(check_admin(&listed, &good, remote), Ok(()));
    for wrong in [
        None,
        Some("Bearer an-admin-token-of-at-least-32-characterZ"),
        Some("Bearer short"),
        Some(&format!("Basic {token}")[..]),
    ] {
        let refused = check_admin(&listed, &admin_request(wrong), remote).unwrap_err();
        assert_eq!(
            (refused.status, refused.code),
            (401, ErrorCode::Unauthorized)
        );
    }
}

#[test]
fn routes_the_group_list_and_view() {
    let g = "95ba5e74-810d-49b4-943f-0b2753d688c9";
    let id: uuid::Uuid = g.parse().unwrap();
    let view = format!("/groups/{g}");
    assert_eq!(route("GET", "/groups"), Ok(Route::ListGroups));
    assert_eq!(route("HEAD", "/groups"), Ok(Route::ListGroups));
    assert_eq!(route("POST", "/groups"), Ok(Route::CreateGroup));
    assert_eq!(route("GET", &view), Ok(Route::GroupView(id)));
    assert_eq!(route("HEAD", &view), Ok(Route::GroupView(id)));
    assert_eq!(route("PUT", &view), Ok(Route::RenameGroup(id)));
    assert_eq!(
        route("DELETE", &view),
        Err(NoRoute::MethodNotAllowed("GET, HEAD, PUT"))
    );
    assert_eq!(
        route("DELETE", "/groups"),
        Err(NoRoute::MethodNotAllowed("GET, HEAD, POST"))
    );
}
