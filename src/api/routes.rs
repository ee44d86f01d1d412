//! The routes table: a method and a path to a [`Route`], or why none matches (404, or 405 with
//! the methods allowed).

use uuid::Uuid;

use crate::error::{ApiError, ErrorCode};
use crate::http::Response;

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
    // Accounts and devices (issue #19). Ids stay text here: a malformed one is a 400 from its
    // handler, not an unknown path.
    /// `GET /users/me`.
    Me,
    /// `GET /users/{id}`.
    User(String),
    /// `GET /users?username=` or `?id=...`.
    FindUsers,
    /// `PUT /users/me/password`.
    ChangePassword,
    /// `POST /logout`.
    Logout,
    /// `POST /logout/all`.
    LogoutAll,
    /// `GET /sessions`.
    ListSessions,
    /// `DELETE /sessions/{id}`.
    DeleteSession(String),
    /// The operator's admin API, under `/admin/`.
    Admin(AdminRoute),
    // Conversations (issue #20).
    /// `GET /groups/{id}/messages?before=&limit=`: history.
    GroupMessages(Uuid),
    /// `GET /groups`: the caller's groups.
    ListGroups,
    /// `GET /groups/{id}`: one group's view.
    GroupView(Uuid),
}

/// The admin API's routes; ids stay text, as above.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AdminRoute {
    /// `GET /admin/users?username=`.
    FindUser,
    /// `POST /admin/users/{id}/suspend`.
    Suspend(String),
    /// `POST /admin/users/{id}/unsuspend`.
    Unsuspend(String),
    /// `DELETE /admin/users/{id}`.
    DeleteUser(String),
    /// `DELETE /admin/users/{id}/sessions`.
    RevokeSessions(String),
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
pub(super) const GET: &str = "GET, HEAD";

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
        ["users"] if method == "POST" => Ok(Route::Register),
        ["users"] => only("GET, HEAD, POST", Route::FindUsers),
        ["users", "me"] => only(GET, Route::Me),
        ["users", "me", "password"] => only("PUT", Route::ChangePassword),
        ["users", id] => only(GET, Route::User(id.to_string())),
        ["login"] => only("POST", Route::Login),
        ["logout"] => only("POST", Route::Logout),
        ["logout", "all"] => only("POST", Route::LogoutAll),
        ["sessions"] if method == "POST" => Ok(Route::CreateSession),
        ["sessions"] => only("GET, HEAD, POST", Route::ListSessions),
        ["sessions", id] => only("DELETE", Route::DeleteSession(id.to_string())),
        ["admin", rest @ ..] => admin_route(rest).map(|(allowed, route)| only(allowed, route))?,
        ["groups"] if method == "POST" => Ok(Route::CreateGroup),
        ["groups"] => only("GET, HEAD, POST", Route::ListGroups),
        ["groups", id] => {
            let id = id.parse::<Uuid>().map_err(|_| NoRoute::NotFound)?;
            if method == "PUT" {
                Ok(Route::RenameGroup(id))
            } else {
                only("GET, HEAD, PUT", Route::GroupView(id))
            }
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
        ["groups", id, "messages"] => {
            let id = id.parse::<Uuid>().map_err(|_| NoRoute::NotFound)?;
            only(GET, Route::GroupMessages(id))
        }
        // Any other segment may be a token, which only GET uses: to other methods, an unknown path.
        [token] if !token.is_empty() && allows(GET, method) => {
            Ok(Route::Messaging(token.to_string()))
        }
        _ => Err(NoRoute::NotFound),
    }
}

/// An admin path's route and the methods it allows.
fn admin_route(rest: &[&str]) -> Result<(&'static str, Route), NoRoute> {
    let (allowed, route) = match rest {
        ["users"] => (GET, AdminRoute::FindUser),
        ["users", id] => ("DELETE", AdminRoute::DeleteUser(id.to_string())),
        ["users", id, "suspend"] => ("POST", AdminRoute::Suspend(id.to_string())),
        ["users", id, "unsuspend"] => ("POST", AdminRoute::Unsuspend(id.to_string())),
        ["users", id, "sessions"] => ("DELETE", AdminRoute::RevokeSessions(id.to_string())),
        _ => return Err(NoRoute::NotFound),
    };
    Ok((allowed, Route::Admin(route)))
}

/// Whether `path` (query aside) is under `/admin/`.
pub(super) fn is_admin(path: &str) -> bool {
    let path = path.split_once('?').map_or(path, |(p, _)| p);
    path.trim_start_matches('/').split('/').next() == Some("admin")
}

/// Whether `path` (query aside) is the echo endpoint's.
pub(super) fn is_echo(path: &str) -> bool {
    let path = path.split_once('?').map_or(path, |(p, _)| p);
    path.trim_start_matches('/') == "_echo"
}
