//! Routing and the REST handlers: a parsed request in, a response (or a password-hashing job, or
//! a WebSocket upgrade) out. No I/O; the loop does the sockets and the worker threads.

use std::net::IpAddr;
use std::time::Instant;

use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::json;
use uuid::Uuid;

use crate::auth::{self, Jwt};
use crate::chat::Chat;
use crate::error::{ApiError, ErrorCode};
use crate::hasher::{self, Work};
use crate::http::{Request, Response};
use crate::proxies::TrustedProxies;
use crate::ratelimit::RateLimiter;
use crate::store::{SessionRecord, UserRecord};

/// One variant per endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// `GET /`: the browser client.
    ClientPage,
    Healthz,
    Register,
    Login,
    CreateSession,
    CreateGroup,
    Join(Uuid),
    Leave(Uuid),
    /// `PUT /groups/{id}`: rename.
    RenameGroup(Uuid),
    /// `GET /{access_token}`: the WebSocket.
    Messaging(String),
    /// `GET /metrics`: Prometheus text.
    Metrics,
    /// `GET /_echo`: a WebSocket echo for the Autobahn cases, when enabled.
    Echo,
}

/// Why a request matched no route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NoRoute {
    NotFound,
    /// The path exists; these methods are allowed on it.
    MethodNotAllowed(&'static str),
}

impl NoRoute {
    pub fn code(&self) -> ErrorCode {
        match self {
            NoRoute::NotFound => ErrorCode::NotFound,
            NoRoute::MethodNotAllowed(_) => ErrorCode::MethodNotAllowed,
        }
    }

    pub fn response(&self) -> Response {
        match self {
            NoRoute::NotFound => Response::error(&ApiError::new(self.code(), "no such endpoint")),
            NoRoute::MethodNotAllowed(allow) => Response::error(&ApiError::new(
                self.code(),
                format!("method not allowed; allowed: {allow}"),
            ))
            .with_header("allow", *allow),
        }
    }
}

/// The `Allow` of a GET route: a HEAD is answered wherever a GET is (RFC 9110 §9.3.2).
const GET: &str = "GET, HEAD";

/// Whether an `Allow` value lists `method`.
fn allows(allow: &str, method: &str) -> bool {
    allow.split(", ").any(|m| m == method)
}

pub fn route(method: &str, path: &str) -> Result<Route, NoRoute> {
    let path = path.split_once('?').map_or(path, |(p, _)| p);
    let only = |allowed: &'static str, route: Route| {
        if allows(allowed, method) {
            Ok(route)
        } else {
            Err(NoRoute::MethodNotAllowed(allowed))
        }
    };
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    match segments.as_slice() {
        [""] => only(GET, Route::ClientPage),
        ["healthz"] => only(GET, Route::Healthz),
        ["metrics"] => only(GET, Route::Metrics),
        ["_echo"] => only(GET, Route::Echo),
        ["users"] => only("POST", Route::Register),
        ["login"] => only("POST", Route::Login),
        ["sessions"] => only("POST", Route::CreateSession),
        ["groups"] => only("POST", Route::CreateGroup),
        ["groups", id] => {
            let id = id.parse::<Uuid>().map_err(|_| NoRoute::NotFound)?;
            only("PUT", Route::RenameGroup(id))
        }
        ["groups", id, action @ ("join" | "left")] => {
            let id = id.parse::<Uuid>().map_err(|_| NoRoute::NotFound)?;
            let route = if *action == "join" {
                Route::Join(id)
            } else {
                Route::Leave(id)
            };
            only("PUT", route)
        }
        // Any other segment may be a token, which only GET uses: to other methods, an unknown path.
        [token] if !token.is_empty() && allows(GET, method) => {
            Ok(Route::Messaging(token.to_string()))
        }
        _ => Err(NoRoute::NotFound),
    }
}

/// The body of a registration and of a login (which needs `username` or `email`).
#[derive(Deserialize)]
struct Credentials {
    username: Option<String>,
    email: Option<String>,
    password: Option<String>,
}

/// A password-hashing job's context, handed back with its outcome.
#[derive(Debug)]
pub enum Pending {
    Register { username: String, email: String },
    Login { user: Option<Uuid> },
}

/// What the loop should do with a request.
#[derive(Debug)]
pub enum Outcome {
    Respond(Response),
    /// Hash or verify a password on a worker, then call [`Api::finish`].
    Hash(Pending, Work),
    /// Answer 101 and hand the connection to the WebSocket codec.
    Upgrade {
        session: SessionRecord,
        key: String,
    },
    /// Answer 101 and echo every message back (`/_echo`).
    UpgradeEcho {
        key: String,
    },
    /// Answer with the loop's metrics, which only the loop can read.
    Metrics,
}

pub struct Api {
    jwt: Jwt,
    /// `ws://host` or `wss://host` from `--public-url`.
    public_url: Option<String>,
    /// Used when a request has no `Host` header.
    fallback_host: String,
    /// Verified for unknown users, so that a login takes as long for them as for a wrong password.
    dummy_hash: String,
    /// Origins allowed to open a WebSocket; empty = any.
    allowed_origins: Vec<String>,
    echo_enabled: bool,
    auth_limiter: RateLimiter,
    trusted_proxies: TrustedProxies,
}

/// What [`Api::new`] needs besides the signing key.
pub struct ApiOptions {
    pub public_url: Option<String>,
    pub fallback_host: String,
    pub allowed_origins: Vec<String>,
    pub echo_enabled: bool,
    pub auth_rate_per_minute: u32,
    pub trusted_proxies: TrustedProxies,
}

/// The browser client, built into the binary.
const CLIENT_PAGE: &str = include_str!("../web/index.html");

const PLATFORMS: [&str; 4] = ["web", "ios", "android", "live"];
const MAX_PASSWORD_BYTES: usize = 1024;
const MAX_FIELD_CHARS: usize = 256;

impl Api {
    pub fn new(jwt: Jwt, options: ApiOptions) -> Api {
        Api {
            jwt,
            public_url: options.public_url,
            fallback_host: options.fallback_host,
            dummy_hash: hasher::unmatchable_hash(),
            allowed_origins: options.allowed_origins,
            echo_enabled: options.echo_enabled,
            auth_limiter: RateLimiter::new(options.auth_rate_per_minute),
            trusted_proxies: options.trusted_proxies,
        }
    }

    /// Handles one request from `peer`. `wall` is the wall clock in ms, `now` the monotonic one.
    pub fn handle(
        &mut self,
        chat: &mut Chat,
        req: &Request,
        peer: IpAddr,
        wall: u64,
        now: Instant,
    ) -> Outcome {
        chat.metrics.http_requests += 1;
        let route = match route(&req.method, &req.path) {
            Ok(Route::Echo) if !self.echo_enabled => Err(NoRoute::NotFound),
            // Without --echo-endpoint `/_echo` is no route, so no method is "allowed" there.
            Err(NoRoute::MethodNotAllowed(_)) if !self.echo_enabled && is_echo(&req.path) => {
                Err(NoRoute::NotFound)
            }
            other => other,
        };
        let route = match route {
            Ok(route) => route,
            Err(no_route) => {
                chat.metrics.count_error(no_route.code());
                return Outcome::Respond(no_route.response());
            }
        };
        let origin = self.trusted_proxies.origin(
            peer,
            req.forwarded_for.as_deref(),
            req.forwarded_proto.as_deref(),
        );
        if matches!(route, Route::Register | Route::Login) {
            if let Err(wait) = self.auth_limiter.check(origin.client, now) {
                let limited = ApiError::rate_limited(
                    "too many registrations or logins from this address; retry later",
                );
                chat.metrics.count_error(limited.code);
                let seconds = wait.as_secs() + 1;
                return Outcome::Respond(
                    Response::error(&limited).with_header("retry-after", seconds.to_string()),
                );
            }
        }
        match self.route_request(chat, route, req, origin.secure, wall) {
            Ok(outcome) => outcome,
            Err(err) => {
                chat.metrics.count_error(err.code);
                Outcome::Respond(Response::error(&err))
            }
        }
    }

    /// Drops rate-limit state that no longer limits anyone.
    pub fn sweep(&mut self, now: Instant) {
        self.auth_limiter.forget_full(now);
    }

    fn route_request(
        &self,
        chat: &mut Chat,
        route: Route,
        req: &Request,
        secure: Option<bool>,
        wall: u64,
    ) -> Result<Outcome, ApiError> {
        let respond =
            |status, body: serde_json::Value| Ok(Outcome::Respond(Response::json(status, &body)));
        match route {
            Route::ClientPage => Ok(Outcome::Respond(Response::html(CLIENT_PAGE))),
            Route::Healthz => respond(200, json!({"status": "ok"})),
            Route::Register => self.register(chat, req),
            Route::Login => self.login(chat, req),
            Route::Messaging(token) => self.upgrade(chat, req, &token),
            Route::Metrics => Ok(Outcome::Metrics),
            Route::Echo => Ok(Outcome::UpgradeEcho {
                key: self.check_upgrade(req)?,
            }),
            Route::CreateSession => {
                let user = self.authenticate(chat, req)?;
                let session = self.create_session(chat, req, user, wall)?;
                respond(
                    201,
                    json!({
                        "created_at": session.created_at,
                        "id": session.id,
                        "messaging_url": self.messaging_url(req, secure, &session.access_token),
                    }),
                )
            }
            Route::CreateGroup => {
                let user = self.authenticate(chat, req)?;
                #[derive(Deserialize)]
                struct Body {
                    name: Option<String>,
                    #[serde(default)]
                    user_ids: Vec<String>,
                }
                let body: Body = json_body(req)?;
                let name = body
                    .name
                    .ok_or_else(|| ApiError::bad_request("missing `name`"))?;
                let id = chat.create_group(user, &name, &body.user_ids, wall)?;
                respond(201, json!({ "id": id }))
            }
            Route::Join(group) | Route::Leave(group) => {
                let user = self.authenticate(chat, req)?;
                #[derive(Deserialize, Default)]
                struct Body {
                    user_id: Option<Uuid>,
                }
                let body: Body = if req.body.iter().all(u8::is_ascii_whitespace) {
                    Body::default()
                } else {
                    json_body(req)?
                };
                let view = if matches!(route, Route::Join(_)) {
                    chat.join(user, group, body.user_id, wall)?
                } else {
                    chat.leave(user, group, body.user_id, wall)?
                };
                Ok(Outcome::Respond(Response::json(200, &view)))
            }
            Route::RenameGroup(group) => {
                let user = self.authenticate(chat, req)?;
                // A map, not a struct: serde would take `["name"]` for `{"name": "name"}`.
                let body: serde_json::Map<String, serde_json::Value> = json_body(req)?;
                let Some(name) = body.get("name").and_then(|name| name.as_str()) else {
                    return Err(ApiError::bad_request("`name` must be a string"));
                };
                let view = chat.rename(user, group, name, wall)?;
                Ok(Outcome::Respond(Response::json(200, &view)))
            }
        }
    }

    /// Validates a registration and asks for the password hash; [`Api::finish`] stores the user.
    fn register(&self, chat: &Chat, req: &Request) -> Result<Outcome, ApiError> {
        let body: Credentials = json_body(req)?;
        let username = body
            .username
            .ok_or_else(|| ApiError::bad_request("missing `username`"))?;
        let email = body
            .email
            .ok_or_else(|| ApiError::bad_request("missing `email`"))?;
        let password = body
            .password
            .ok_or_else(|| ApiError::bad_request("missing `password`"))?;
        validate_username(&username)?;
        let email = normalize_email(&email)?;
        if password.is_empty() || password.len() > MAX_PASSWORD_BYTES {
            return Err(ApiError::bad_request(format!(
                "`password` must be 1 to {MAX_PASSWORD_BYTES} bytes"
            )));
        }
        check_names_free(chat, &username, &email)?;
        Ok(Outcome::Hash(
            Pending::Register { username, email },
            Work::Hash { password },
        ))
    }

    fn login(&self, chat: &Chat, req: &Request) -> Result<Outcome, ApiError> {
        let body: Credentials = json_body(req)?;
        let password = body
            .password
            .ok_or_else(|| ApiError::bad_request("missing `password`"))?;
        if password.len() > MAX_PASSWORD_BYTES {
            return Err(ApiError::bad_request(format!(
                "`password` must be at most {MAX_PASSWORD_BYTES} bytes"
            )));
        }
        let store = chat.store();
        let user = match (body.username.filter(|u| !u.is_empty()), body.email) {
            (Some(username), _) => store.user_id_by_username(&username)?,
            (None, Some(email)) => store.user_id_by_email(email.trim())?,
            (None, None) => return Err(ApiError::bad_request("missing `username` or `email`")),
        };
        let hash = match user {
            Some(id) => store.user(id)?.map(|u| u.password_hash),
            None => None,
        };
        let user = user.filter(|_| hash.is_some());
        let hash = hash.unwrap_or_else(|| self.dummy_hash.clone());
        Ok(Outcome::Hash(
            Pending::Login { user },
            Work::Verify { password, hash },
        ))
    }

    /// Completes a request that waited for a password hash.
    pub fn finish(
        &self,
        chat: &mut Chat,
        pending: Pending,
        outcome: hasher::Outcome,
        wall: u64,
    ) -> Response {
        let result = match (pending, outcome) {
            (Pending::Register { username, email }, hasher::Outcome::Hashed(password_hash)) => {
                self.store_user(chat, username, email, password_hash, wall)
            }
            (Pending::Login { user: Some(user) }, hasher::Outcome::Verified(true)) => Ok(
                Response::json(200, &json!({ "token": self.jwt.issue(user, wall / 1000) })),
            ),
            (Pending::Login { .. }, _) => Err(ApiError::unauthorized("invalid credentials")),
            (Pending::Register { .. }, _) => Err(ApiError::internal("hash job answered a verify")),
        };
        result.unwrap_or_else(|err| {
            chat.metrics.count_error(err.code);
            Response::error(&err)
        })
    }

    fn store_user(
        &self,
        chat: &mut Chat,
        username: String,
        email: String,
        password_hash: String,
        wall: u64,
    ) -> Result<Response, ApiError> {
        // Checked again: another registration may have taken a name while this one was hashing.
        check_names_free(chat, &username, &email)?;
        let user = UserRecord {
            id: Uuid::new_v4(),
            username,
            email,
            password_hash,
            created_at: wall,
        };
        chat.store_mut().insert_user(&user);
        Ok(Response::json(201, &json!({ "id": user.id })))
    }

    fn create_session(
        &self,
        chat: &mut Chat,
        req: &Request,
        user: Uuid,
        wall: u64,
    ) -> Result<SessionRecord, ApiError> {
        #[derive(Deserialize)]
        struct Body {
            device_id: Option<String>,
            platform: Option<String>,
            model: Option<String>,
            // A JSON number: `102.0` is the integer 102 to JSON and to JavaScript clients.
            build: Option<serde_json::Number>,
            name: Option<String>,
        }
        let body: Body = json_body(req)?;
        let device_id = required_text(body.device_id, "device_id")?;
        let platform = required_text(body.platform, "platform")?;
        if !PLATFORMS.contains(&platform.as_str()) {
            return Err(ApiError::bad_request(
                "`platform` must be one of web, ios, android, live",
            ));
        }
        let model = required_text(body.model, "model")?;
        let build = body
            .build
            .as_ref()
            .and_then(positive_whole_number)
            .ok_or_else(|| ApiError::bad_request("`build` must be an integer above 0"))?;
        let name = match body.name {
            Some(name) => Some(required_text(Some(name), "name")?),
            None => None,
        };
        let session = SessionRecord {
            id: Uuid::new_v4(),
            user_id: user,
            device_id,
            platform,
            model,
            build,
            name,
            created_at: wall,
            access_token: auth::random_hex(32),
        };
        chat.store_mut().insert_session(&session);
        Ok(session)
    }

    fn upgrade(&self, chat: &Chat, req: &Request, token: &str) -> Result<Outcome, ApiError> {
        let key = self.check_upgrade(req)?;
        let session = chat
            .store()
            .session_by_access_token(token)?
            .ok_or_else(|| ApiError::unauthorized("unknown messaging token"))?;
        chat.check_connection_room(session.user_id)?;
        Ok(Outcome::Upgrade { session, key })
    }

    /// Checks a WebSocket upgrade's headers and Origin; returns its `Sec-WebSocket-Key`.
    fn check_upgrade(&self, req: &Request) -> Result<String, ApiError> {
        // Only a GET upgrades (RFC 6455 §4.1); a HEAD gets what a plain GET gets.
        if !req.wants_upgrade || req.method != "GET" {
            return Err(ApiError::not_found("no such endpoint"));
        }
        let key = req
            .websocket_key
            .clone()
            .ok_or_else(|| ApiError::bad_request("missing Sec-WebSocket-Key"))?;
        if req.websocket_version.as_deref() != Some("13") {
            return Err(ApiError::bad_request(
                "unsupported Sec-WebSocket-Version; use 13",
            ));
        }
        if let Some(origin) = &req.origin {
            let origin = origin.trim_end_matches('/');
            let allowed = self.allowed_origins.is_empty()
                || self
                    .allowed_origins
                    .iter()
                    .any(|allowed| allowed.eq_ignore_ascii_case(origin));
            if !allowed {
                return Err(ApiError::forbidden(
                    "this Origin may not open a WebSocket here",
                ));
            }
        }
        Ok(key)
    }

    fn authenticate(&self, chat: &Chat, req: &Request) -> Result<Uuid, ApiError> {
        let user = self.jwt.authenticate(req.authorization.as_deref())?;
        if chat.store().user_exists(user)? {
            Ok(user)
        } else {
            Err(ApiError::unauthorized("invalid or expired token"))
        }
    }

    /// `--public-url`'s base, else the request's `Host` with `wss` when a trusted proxy says
    /// the client came over https (`secure`), `ws` otherwise.
    fn messaging_url(&self, req: &Request, secure: Option<bool>, token: &str) -> String {
        match &self.public_url {
            Some(base) => format!("{base}/{token}"),
            None => {
                let host = req.host.as_deref().unwrap_or(&self.fallback_host);
                let scheme = if secure == Some(true) { "wss" } else { "ws" };
                format!("{scheme}://{host}/{token}")
            }
        }
    }
}

/// Whether `path` (query aside) is the echo endpoint's.
fn is_echo(path: &str) -> bool {
    let path = path.split_once('?').map_or(path, |(p, _)| p);
    path.trim_start_matches('/') == "_echo"
}

fn json_body<T: DeserializeOwned>(req: &Request) -> Result<T, ApiError> {
    if let Some(content_type) = &req.content_type {
        let mime = content_type
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        if mime != "application/json" && !mime.ends_with("+json") {
            return Err(ApiError::new(
                ErrorCode::UnsupportedMediaType,
                "the body must be JSON (content-type: application/json)",
            ));
        }
    }
    serde_json::from_slice(&req.body)
        .map_err(|e| ApiError::bad_request(format!("invalid JSON body: {e}")))
}

/// A number above 0 with no fractional part, however it is written (`3`, `3.0`, `3e0`).
fn positive_whole_number(number: &serde_json::Number) -> Option<u64> {
    match number.as_u64() {
        Some(n) => Some(n),
        None => number
            .as_f64()
            // `u64::MAX as f64` rounds up to 2^64, so `<` keeps 2^64 itself out.
            .filter(|f| f.fract() == 0.0 && *f >= 1.0 && *f < u64::MAX as f64)
            .map(|f| f as u64),
    }
    .filter(|n| *n > 0)
}

fn required_text(value: Option<String>, field: &str) -> Result<String, ApiError> {
    match value {
        Some(text) if !text.trim().is_empty() && text.chars().count() <= MAX_FIELD_CHARS => {
            Ok(text)
        }
        _ => Err(ApiError::bad_request(format!(
            "`{field}` must be a string of 1 to {MAX_FIELD_CHARS} characters"
        ))),
    }
}

fn validate_username(username: &str) -> Result<(), ApiError> {
    let ok = (1..=64).contains(&username.chars().count())
        && !username
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || c == '@');
    if ok {
        Ok(())
    } else {
        Err(ApiError::bad_request(
            "`username` must be 1 to 64 characters without spaces or `@`",
        ))
    }
}

/// Trims and lower-cases an email after checking it looks like `local@domain`.
fn normalize_email(email: &str) -> Result<String, ApiError> {
    let email = email.trim();
    let valid = email.len() <= 254
        && matches!(email.split_once('@'), Some((local, domain))
            if !local.is_empty()
                && !domain.is_empty()
                && !domain.contains('@')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
                && !email.contains(|c: char| c.is_whitespace() || c.is_control()));
    if valid {
        Ok(email.to_lowercase())
    } else {
        Err(ApiError::bad_request("`email` must look like local@domain"))
    }
}

fn check_names_free(chat: &Chat, username: &str, email: &str) -> Result<(), ApiError> {
    let store = chat.store();
    if store.user_id_by_username(username)?.is_some() {
        return Err(ApiError::conflict("username is taken"));
    }
    if store.user_id_by_email(email)?.is_some() {
        return Err(ApiError::conflict("email is taken"));
    }
    Ok(())
}

#[cfg(test)]
mod tests;
