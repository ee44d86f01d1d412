//! The REST side of the protocol as one-line helpers on `Server`, so tests read like the
//! walkthrough: `server.user("alice")`, `server.connect(&alice)`, `server.create_group(...)`.
//! Helpers named after a success (`register`, `login`, ...) assert the success status and body;
//! the `*_response` variants return the raw `Response` for tests about failures.

use serde_json::{json, Value};

use super::check::{assert_keys, assert_ms, assert_uuid};
use super::http::{Http, Response};
use super::server::Server;
use super::ws::Ws;
use super::{unique, PASSWORD};

/// A registered, logged-in user.
#[derive(Debug, Clone)]
pub struct User {
    pub name: String,
    pub email: String,
    pub password: String,
    pub id: String,
    /// The JWT from `POST /login`.
    pub token: String,
}

/// The usual session body from the walkthrough.
pub fn session_body() -> Value {
    json!({"device_id": "0000", "platform": "web", "model": "chrome", "build": 1, "name": "ievgen-pc"})
}

impl Server {
    /// A new connection to this server.
    pub fn http(&self) -> Http {
        Http::connect(self.addr)
    }

    /// `POST path` with a JSON body on a fresh connection.
    pub fn post(&self, path: &str, token: Option<&str>, body: &Value) -> Response {
        self.http().json("POST", path, token, body)
    }

    /// `PUT path` with a JSON body on a fresh connection.
    pub fn put(&self, path: &str, token: Option<&str>, body: &Value) -> Response {
        self.http().json("PUT", path, token, body)
    }

    /// `GET path` on a fresh connection.
    pub fn get(&self, path: &str) -> Response {
        self.http().get(path)
    }

    // ---- users ----

    pub fn register_response(&self, username: &str, email: &str, password: &str) -> Response {
        self.post(
            "/users",
            None,
            &json!({"username": username, "email": email, "password": password}),
        )
    }

    /// Registers `username` with `username@example.com` and the walkthrough password; returns the id.
    #[track_caller]
    pub fn register(&self, username: &str) -> String {
        let body = self
            .register_response(username, &format!("{username}@example.com"), PASSWORD)
            .expect(201);
        assert_keys(&body, &["id"]);
        assert_uuid(&body["id"])
    }

    pub fn login_response(&self, body: &Value) -> Response {
        self.post("/login", None, body)
    }

    /// Logs in by username; returns the token.
    #[track_caller]
    pub fn login(&self, username: &str, password: &str) -> String {
        let body = self
            .login_response(&json!({"username": username, "password": password}))
            .expect(200);
        assert_keys(&body, &["token", "user_id"]);
        assert_uuid(&body["user_id"]);
        body["token"]
            .as_str()
            .expect("token is a string")
            .to_string()
    }

    /// A fresh user (unique name based on `prefix`), registered and logged in.
    #[track_caller]
    pub fn user(&self, prefix: &str) -> User {
        let name = unique(prefix);
        let id = self.register(&name);
        let token = self.login(&name, PASSWORD);
        User {
            email: format!("{name}@example.com"),
            name,
            password: PASSWORD.to_string(),
            id,
            token,
        }
    }

    // ---- sessions ----

    pub fn session_response(&self, token: &str, body: &Value) -> Response {
        self.post("/sessions", Some(token), body)
    }

    /// Every token in `refused` (named by what is wrong with it) gets exactly 401 `unauthorized`
    /// from `POST /sessions`.
    #[track_caller]
    pub fn assert_sessions_refused(&self, refused: &[(&str, String)]) {
        for (what, token) in refused {
            let answer = self.session_response(token, &session_body());
            answer.expect_error_for(what, 401, "unauthorized");
        }
    }

    /// `POST /sessions` with the walkthrough's body; asserts 201 and the body's shape; returns the body.
    #[track_caller]
    pub fn open_session(&self, token: &str) -> Value {
        let body = self.session_response(token, &session_body()).expect(201);
        assert_keys(&body, &["created_at", "id", "messaging_url"]);
        assert_ms(&body["created_at"]);
        assert_uuid(&body["id"]);
        assert!(body["messaging_url"].is_string(), "messaging_url: {body}");
        body
    }

    /// A new session for `token`; returns its messaging URL (which must point at this server).
    #[track_caller]
    pub fn messaging_url(&self, token: &str) -> String {
        let url = self.open_session(token)["messaging_url"]
            .as_str()
            .unwrap()
            .to_string();
        let prefix = format!("ws://{}/", self.addr);
        assert!(
            url.starts_with(&prefix),
            "messaging_url {url} is not under {prefix}"
        );
        url
    }

    /// A new session for `user`, connected.
    #[track_caller]
    pub fn connect(&self, user: &User) -> Ws {
        let url = self.messaging_url(&user.token);
        Ws::connect(&url, &user.name)
    }

    // ---- groups ----

    pub fn create_group_response(&self, token: &str, body: &Value) -> Response {
        self.post("/groups", Some(token), body)
    }

    /// `creator` creates group `name` with `members`; returns the group id.
    #[track_caller]
    pub fn create_group(&self, creator: &User, name: &str, members: &[&User]) -> String {
        let ids: Vec<&str> = members.iter().map(|u| u.id.as_str()).collect();
        let body = self
            .create_group_response(&creator.token, &json!({"name": name, "user_ids": ids}))
            .expect(201);
        assert_keys(&body, &["id"]);
        assert_uuid(&body["id"])
    }

    /// `PUT /groups/{group}/join` by `actor`, for `target` (None: no `user_id`, meaning the caller).
    pub fn join(&self, actor: &User, group: &str, target: Option<&User>) -> Response {
        let body = match target {
            Some(t) => json!({"user_id": t.id}),
            None => json!({}),
        };
        self.put(&format!("/groups/{group}/join"), Some(&actor.token), &body)
    }

    /// `PUT /groups/{group}/left` by `actor`, for `target` (None: the caller).
    pub fn leave(&self, actor: &User, group: &str, target: Option<&User>) -> Response {
        let body = match target {
            Some(t) => json!({"user_id": t.id}),
            None => json!({}),
        };
        self.put(&format!("/groups/{group}/left"), Some(&actor.token), &body)
    }
}

/// The access token at the end of a messaging URL.
pub fn url_token(url: &str) -> &str {
    url.rsplit('/').next().unwrap()
}

/// The body of a successful join/left/rename answer: `{group_id, name, owner, user_ids}`;
/// returns the user ids.
#[track_caller]
pub fn assert_group_answer(body: &Value, group: &str, name: &str) -> Vec<String> {
    assert_keys(body, &["group_id", "name", "owner", "user_ids"]);
    assert_eq!(body["group_id"], group);
    assert_eq!(body["name"], name);
    body["user_ids"]
        .as_array()
        .expect("user_ids is an array")
        .iter()
        .map(|v| v.as_str().expect("user ids are strings").to_string())
        .collect()
}
