//! The REST side: a parsed request in, a response (or a password-hashing job, or a WebSocket
//! upgrade) out. No I/O; the loop does the sockets and the worker threads.
//!
//! In the order a request flows: `routes` (method and path to a [`Route`]), [`Api::handle`]
//! (rate limits, authentication, dispatch), then the handlers by resource: `users` (accounts,
//! login), `accounts` (the caller's account, lookups, password, logout), `sessions` (devices,
//! the upgrade), `groups`, `admin` (the operator's); `body` and `query` read request bodies and
//! query strings.

mod accounts;
mod admin;
mod body;
mod groups;
mod history;
mod query;
mod routes;
mod sessions;
mod users;

use std::net::IpAddr;
use std::time::Instant;

use serde_json::json;
use uuid::Uuid;

use crate::auth::{Jwt, Token};
use crate::chat::Chat;
use crate::config::AdminConfig;
use crate::error::ApiError;
use crate::hasher::{self, Work};
use crate::http::{Request, Response};
use crate::proxies::TrustedProxies;
use crate::ratelimit::RateLimiter;
use crate::store::{SessionRecord, UserRecord};
use routes::{is_admin, is_echo};
pub use routes::{route, AdminRoute, NoRoute, Route};

/// A password-hashing job's context, handed back with its outcome.
#[derive(Debug)]
pub enum Pending {
    Register {
        username: String,
        email: String,
    },
    Login {
        user: Option<Uuid>,
    },
    /// `PUT /users/me/password` by a token of generation `gen`.
    ChangePassword {
        user: Uuid,
        gen: u32,
    },
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
    /// `GET /users?username=` per client address: a name lookup must not enumerate accounts.
    lookup_limiter: RateLimiter,
    /// Live sessions one user may have; 0 = no cap.
    max_sessions_per_user: usize,
    /// The admin API, when configured.
    admin: Option<AdminConfig>,
}

/// Who a login token authenticates, as the store says now.
pub(crate) struct Caller {
    pub user: UserRecord,
    pub token: Token,
}

/// What [`Api::new`] needs besides the signing key.
pub struct ApiOptions {
    pub public_url: Option<String>,
    pub fallback_host: String,
    pub allowed_origins: Vec<String>,
    pub echo_enabled: bool,
    pub auth_rate_per_minute: u32,
    pub trusted_proxies: TrustedProxies,
    pub lookup_rate_per_minute: u32,
    pub max_sessions_per_user: usize,
    pub admin: Option<AdminConfig>,
}

/// The browser client, built into the binary.
const CLIENT_PAGE: &str = include_str!("../web/index.html");
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
            lookup_limiter: RateLimiter::new(options.lookup_rate_per_minute),
            max_sessions_per_user: options.max_sessions_per_user,
            admin: options.admin,
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
            // Without an admin token `/admin/` is no route either.
            Ok(Route::Admin(_)) | Err(NoRoute::MethodNotAllowed(_))
                if self.admin.is_none() && is_admin(&req.path) =>
            {
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
        // A password change guesses a password too, so it shares the logins' budget.
        let limited = if matches!(
            route,
            Route::Register | Route::Login | Route::ChangePassword
        ) {
            self.auth_limiter
                .check(origin.client, now)
                .err()
                .map(|wait| (wait, "too many registrations or logins from this address"))
        } else if route == Route::FindUsers && query::has(&req.path, "username") {
            self.lookup_limiter
                .check(origin.client, now)
                .err()
                .map(|wait| (wait, "too many lookups by username from this address"))
        } else {
            None
        };
        if let Some((wait, what)) = limited {
            let limited = ApiError::rate_limited(format!("{what}; retry later"));
            chat.metrics.count_error(limited.code);
            let seconds = wait.as_secs() + 1;
            return Outcome::Respond(
                Response::error(&limited).with_header("retry-after", seconds.to_string()),
            );
        }
        let answer = match (route, &self.admin) {
            // The TCP peer, not X-Forwarded-For: an operator's address is not taken on trust.
            (Route::Admin(admin_route), Some(admin)) => admin::check_admin(admin, req, peer)
                .and_then(|()| self.admin(chat, admin_route, req, peer, wall)),
            (route, _) => self.route_request(chat, route, req, origin.secure, wall),
        };
        match answer {
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
        self.lookup_limiter.forget_full(now);
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
            Route::Messaging(token) => self.upgrade(chat, req, &token, wall),
            Route::Metrics => Ok(Outcome::Metrics),
            Route::Echo => Ok(Outcome::UpgradeEcho {
                key: self.check_upgrade(req)?,
            }),
            Route::CreateSession => {
                let user = self.authenticate(chat, req)?;
                self.check_session_room(chat, user)?;
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
            Route::CreateGroup => self.create_group(chat, req, wall),
            Route::Join(group) | Route::Leave(group) => {
                self.join_or_leave(chat, route, group, req, wall)
            }
            Route::RenameGroup(group) => self.rename_group(chat, group, req, wall),
            Route::ListGroups => self.list_groups(chat, req),
            Route::GroupView(group) => self.group_view(chat, group, req),
            // Accounts and devices (issue #19).
            Route::Me => self.me(chat, req),
            Route::User(id) => self.user(chat, req, &id),
            Route::FindUsers => self.find_users(chat, req),
            Route::ChangePassword => self.change_password(chat, req),
            Route::Logout => self.logout(chat, req),
            Route::LogoutAll => self.logout_all(chat, req),
            Route::ListSessions => self.list_sessions(chat, req, wall),
            Route::DeleteSession(id) => self.delete_session(chat, req, &id),
            Route::Admin(_) => Err(ApiError::not_found("no such endpoint")),
            // Conversations (issue #20): history.
            Route::GroupMessages(group) => self.history(chat, group, req),
        }
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
            (Pending::Login { user: Some(user) }, hasher::Outcome::Verified(true)) => {
                self.logged_in(chat, user, wall)
            }
            (Pending::Login { .. }, _) => Err(ApiError::unauthorized("invalid credentials")),
            (Pending::ChangePassword { user, gen }, hasher::Outcome::Rehashed(Some(hash))) => {
                self.password_changed(chat, user, gen, hash, wall)
            }
            (Pending::ChangePassword { .. }, hasher::Outcome::Rehashed(None)) => {
                Err(ApiError::unauthorized("wrong current password"))
            }
            (Pending::ChangePassword { .. }, _) => {
                Err(ApiError::internal("hash job answered another job"))
            }
            (Pending::Register { .. }, _) => Err(ApiError::internal("hash job answered a verify")),
        };
        result.unwrap_or_else(|err| {
            chat.metrics.count_error(err.code);
            Response::error(&err)
        })
    }

    fn authenticate(&self, chat: &Chat, req: &Request) -> Result<Uuid, ApiError> {
        Ok(self.caller(chat, req)?.user.id)
    }

    /// The caller of a request with a login token: the token is ours and unexpired, its user
    /// exists, its generation is the user's and it was not logged out. Two reads of the store.
    fn caller(&self, chat: &Chat, req: &Request) -> Result<Caller, ApiError> {
        let token = self.jwt.authenticate(req.authorization.as_deref())?;
        let refused = || ApiError::unauthorized("invalid or expired token");
        let store = chat.store();
        let user = store
            .user(token.user_id)?
            .filter(|u| !u.deleted)
            .ok_or_else(refused)?;
        if token.gen != user.token_generation || store.token_revoked(token.exp, &token.signature)? {
            return Err(refused());
        }
        if user.suspended {
            return Err(ApiError::forbidden("this account is suspended"));
        }
        Ok(Caller { user, token })
    }
}

#[cfg(test)]
mod tests;
