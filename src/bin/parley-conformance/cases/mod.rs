//! The cases, one module per part of the protocol, and what they share: the context that reaches
//! the server, fixtures that make fresh users, sessions and groups, and JSON shape checks.
//!
//! Every fixture name carries this run's random tag and a counter, so cases never collide with
//! each other, with earlier runs, or with data the server already holds.

pub mod delivery;
pub mod durability;
pub mod edits;
pub mod groups;
pub mod messaging;
pub mod rest;
pub mod seq;
pub mod sync;
pub mod walkthrough;

use std::time::Duration;

use parley_client::json;
pub use parley_client::json::now_ms;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::http::{Http, Response};
use crate::registry::{ensure, ensure_eq, fail, Stop};
use crate::transcript::Transcript;
use crate::ws::Ws;

/// How to kill and restart the server, for the durability cases.
#[derive(Debug, Clone)]
pub struct Restarts {
    pub kill_cmd: String,
    pub restart_cmd: String,
}

pub struct Ctx {
    pub http: Http,
    pub transcript: Transcript,
    /// How long any one answer or event may take.
    pub timeout: Duration,
    pub restarts: Option<Restarts>,
    /// Random per run; part of every name the kit creates.
    run_tag: String,
    counter: u64,
}

/// A registered, logged-in user.
#[derive(Debug, Clone)]
pub struct User {
    pub id: String,
    pub username: String,
    pub password: String,
    pub token: String,
}

impl Ctx {
    pub fn new(
        http: Http,
        transcript: Transcript,
        timeout: Duration,
        restarts: Option<Restarts>,
    ) -> Ctx {
        Ctx {
            http,
            transcript,
            timeout,
            restarts,
            run_tag: Uuid::new_v4().simple().to_string()[..10].to_string(),
            counter: 0,
        }
    }

    /// A name no other case, run or existing record uses.
    pub fn unique(&mut self, what: &str) -> String {
        self.counter += 1;
        format!("{what}{}x{}", self.run_tag, self.counter)
    }

    pub fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
    ) -> Result<Response, Stop> {
        with_backoff(|| self.http.call(method, path, token, body))
    }

    /// A JSON request with this exact `Authorization` header value.
    pub fn call_authorized(
        &self,
        method: &str,
        path: &str,
        authorization: &str,
        body: &Value,
    ) -> Result<Response, Stop> {
        let headers = [
            ("authorization", authorization.to_string()),
            ("content-type", "application/json".to_string()),
        ];
        with_backoff(|| {
            self.http
                .send(method, path, &headers, body.to_string().as_bytes())
        })
    }

    /// Registers a user with fresh credentials (201 expected), without logging in.
    pub fn register_only(&mut self) -> Result<(String, String, String, String), Stop> {
        let username = self.unique("cu");
        let email = format!("{username}@example.com");
        let password = format!("pw-{}", self.unique("p"));
        let response = self.call(
            "POST",
            "/users",
            None,
            Some(&json!({"username": username, "email": email, "password": password})),
        )?;
        expect_status(&response, 201, "register")?;
        let id = id_field(&response.json(), "id", "register answer")?;
        Ok((id, username, email, password))
    }

    /// A fresh user, registered and logged in.
    pub fn user(&mut self) -> Result<User, Stop> {
        let (id, username, _, password) = self.register_only()?;
        let token = self.login(&json!({"username": username, "password": password}))?;
        Ok(User {
            id,
            username,
            password,
            token,
        })
    }

    /// Logs in with `body`; the token (200 expected).
    pub fn login(&self, body: &Value) -> Result<String, Stop> {
        let response = self.call("POST", "/login", None, Some(body))?;
        expect_status(&response, 200, "login")?;
        match response.json()["token"].as_str() {
            Some(token) if !token.is_empty() => Ok(token.to_string()),
            _ => fail(format!(
                "login answer has no string `token`: {}",
                response.body_text()
            )),
        }
    }

    /// Opens a device session for `user`; its messaging token (the last segment of
    /// `messaging_url`; the kit dials it on the base URL it was given).
    pub fn session(&mut self, user: &User) -> Result<String, Stop> {
        let device = self.unique("dev");
        let response = self.call(
            "POST",
            "/sessions",
            Some(&user.token),
            Some(&json!({"device_id": device, "platform": "web", "model": "conformance", "build": 1})),
        )?;
        expect_status(&response, 201, "open a session")?;
        messaging_token(&response.json())
    }

    /// A new session of `user`, connected.
    pub fn device(&mut self, user: &User, label: &str) -> Result<Ws, Stop> {
        let token = self.session(user)?;
        self.connect(&token, label)
    }

    /// Another connection on an existing messaging token.
    pub fn connect(&self, token: &str, label: &str) -> Result<Ws, Stop> {
        Ok(Ws::connect(
            &self.http.base,
            token,
            label,
            &self.transcript,
            self.timeout,
        )?)
    }

    /// A group created by `owner` with `members`; its id.
    pub fn group(&mut self, owner: &User, members: &[&User]) -> Result<String, Stop> {
        let name = self.unique("group");
        let ids: Vec<&str> = members.iter().map(|u| u.id.as_str()).collect();
        let response = self.call(
            "POST",
            "/groups",
            Some(&owner.token),
            Some(&json!({"name": name, "user_ids": ids})),
        )?;
        expect_status(&response, 201, "create a group")?;
        id_field(&response.json(), "id", "create-group answer")
    }

    /// `PUT /groups/{group}/{action}` by `caller` on `target` (the caller when `None`), naming
    /// the target in the body as the walkthrough does.
    pub fn membership(
        &self,
        action: &str,
        caller: &User,
        group: &str,
        target: Option<&User>,
    ) -> Result<Response, Stop> {
        let body = json!({"user_id": target.unwrap_or(caller).id});
        self.call(
            "PUT",
            &format!("/groups/{group}/{action}"),
            Some(&caller.token),
            Some(&body),
        )
    }
}

/// Longest the kit waits, per request, on a server that asks it to come back later.
const MAX_BACKOFF: Duration = Duration::from_secs(120);

/// Repeats a request answered 429 or 503 with `Retry-After` (a rate limit, a full hashing
/// queue) after the time the server asks for, so that a kit run against a server with its limits
/// on is slow rather than failing.
fn with_backoff(request: impl Fn() -> Result<Response, String>) -> Result<Response, Stop> {
    let mut waited = Duration::ZERO;
    loop {
        let response = request()?;
        let retry_after = response
            .header("retry-after")
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(|secs| Duration::from_secs(secs.max(1)));
        match retry_after {
            Some(pause)
                if matches!(response.status, 429 | 503) && waited + pause <= MAX_BACKOFF =>
            {
                std::thread::sleep(pause);
                waited += pause;
            }
            _ => return Ok(response),
        }
    }
}

/// Sends a message on `ws` and returns its ack (event 21).
pub fn send_message(ws: &mut Ws, group: &str, data: &str) -> Result<Value, Stop> {
    ws.send_json(&json::send_message(group, data, None))?;
    let ack = ws.expect(21)?;
    id_field(&ack["body"], "message_id", "event 21 body")?;
    Ok(ack)
}

/// The status, and for an error the documented body `{"error": text, "code": code}`.
pub fn expect_error(response: &Response, status: u16, code: &str, what: &str) -> Result<(), Stop> {
    expect_status(response, status, what)?;
    let body = response.json();
    ensure(body["error"].is_string(), || {
        format!(
            "{what}: error body must carry a string `error`: {}",
            response.body_text()
        )
    })?;
    ensure_eq(
        &format!("{what}: error `code`"),
        body["code"].as_str(),
        Some(code),
    )
}

pub fn expect_status(response: &Response, status: u16, what: &str) -> Result<(), Stop> {
    ensure(response.status == status, || {
        format!(
            "{what}: expected status {status}, got {} {}",
            response.status,
            response.body_text()
        )
    })
}

/// An id at `value[key]`: a non-empty string (the walkthrough shows UUIDs; only parley's level
/// requires them, `rest.ids.uuid`).
pub fn id_field(value: &Value, key: &str, what: &str) -> Result<String, Stop> {
    match value[key].as_str() {
        Some(text) if !text.is_empty() => Ok(text.to_string()),
        _ => fail(format!(
            "{what}: `{key}` must be a non-empty string id, got {}",
            value[key]
        )),
    }
}

/// Checks a group as a join or leave answer (`{"group_id", "name", "user_ids"}`) or an event 70's
/// body (`{"group_id", ...}`) shows it: members compared as a set, since after a join or a leave
/// the protocol leaves their order open.
pub fn expect_group(
    value: &Value,
    group: &str,
    name: &str,
    members: &[&str],
    what: &str,
) -> Result<(), Stop> {
    ensure_eq(
        &format!("{what}: `group_id`"),
        value["group_id"].as_str(),
        Some(group),
    )?;
    ensure_eq(
        &format!("{what}: `name`"),
        value["name"].as_str(),
        Some(name),
    )?;
    let Some(listed) = value["user_ids"].as_array() else {
        return fail(format!("{what}: `user_ids` must be a list: {value}"));
    };
    let mut listed: Vec<&str> = listed.iter().filter_map(Value::as_str).collect();
    let mut want = members.to_vec();
    listed.sort_unstable();
    want.sort_unstable();
    ensure_eq(&format!("{what}: `user_ids` (in any order)"), listed, want)
}

/// Checks an event's envelope and that its body holds `fields` (more fields are allowed: the
/// protocol grows by additions).
pub fn expect_event(event: &Value, kind: u64, fields: &Value) -> Result<u64, Stop> {
    ensure_eq("event `type`", event["type"].as_u64(), Some(kind))?;
    let Some(timestamp) = event["timestamp"].as_u64() else {
        return fail(format!(
            "event {kind}: `timestamp` must be an integer (ms), got {event}"
        ));
    };
    let Some(body) = event["body"].as_object() else {
        return fail(format!("event {kind}: `body` must be an object: {event}"));
    };
    for (key, want) in fields.as_object().expect("fields are an object") {
        ensure(body.get(key) == Some(want), || {
            format!("event {kind}: body `{key}` should be {want}, got {event}")
        })?;
    }
    Ok(timestamp)
}

/// The messaging token at the end of a `messaging_url` (`ws://HOST/<access token>`); its shape is
/// the server's own (parley's is checked by `rest.session.token`).
pub fn messaging_token(session: &Value) -> Result<String, Stop> {
    let url = session["messaging_url"].as_str().unwrap_or("");
    let Some(rest) = url
        .strip_prefix("ws://")
        .or_else(|| url.strip_prefix("wss://"))
    else {
        return fail(format!(
            "`messaging_url` must be ws:// or wss://, got {}",
            session["messaging_url"]
        ));
    };
    match rest
        .split_once('/')
        .and_then(|(_, path)| path.rsplit('/').next())
    {
        Some(token) if !token.is_empty() && !token.contains(['?', '#']) => Ok(token.to_string()),
        _ => fail(format!(
            "`messaging_url` must end with the access token: `{url}`"
        )),
    }
}

/// Whether an event is of a stored kind (what sync replays), as opposed to a transient one (sync
/// complete 29, typing 40/41, presence 50, error 90).
pub fn stored(event: &Value) -> bool {
    !matches!(event["type"].as_u64(), Some(29 | 40 | 41 | 50 | 90))
}

/// The types of a list of events, for readable comparisons.
pub fn types(events: &[Value]) -> Vec<u64> {
    events
        .iter()
        .map(|e| e["type"].as_u64().unwrap_or(0))
        .collect()
}

/// Sends in each of [`interleaved_bursts`]' two bursts.
pub const BURST: usize = 20;

/// Two members' connections and a third member's, after the two sent [`BURST`] messages each
/// to one group, both bursts in flight together so that the server interleaves them. Nothing
/// has been read from any of them yet.
pub struct Bursts {
    pub a: Ws,
    pub b: Ws,
    pub observer: Ws,
}

pub fn interleaved_bursts(ctx: &mut Ctx) -> Result<Bursts, Stop> {
    let a = ctx.user()?;
    let b = ctx.user()?;
    let observer = ctx.user()?;
    let group = ctx.group(&a, &[&b, &observer])?;
    let mut bursts = Bursts {
        a: ctx.device(&a, "a")?,
        b: ctx.device(&b, "b")?,
        observer: ctx.device(&observer, "observer")?,
    };
    for i in 0..BURST {
        for (ws, who) in [(&mut bursts.a, "a"), (&mut bursts.b, "b")] {
            ws.send_json(
                &json!({"method": 40, "body": {"group_id": group, "data": format!("{who}-{i}")}}),
            )?;
        }
    }
    Ok(bursts)
}
