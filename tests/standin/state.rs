//! The stand-in's whole world, in memory behind one lock: accounts, sessions, groups, the stored
//! events of each user with their seqs, and the live connections events are written to.

use std::collections::HashMap;
use std::io::{self, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{json, Map, Value};
use uuid::Uuid;

/// A defect injected by the hidden `--defect NAME`, so that tests can show the kit catching it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Defect {
    /// The 21 ack leaves out the client `id`.
    NoAckId,
    /// A sync page by seq that is not the last reports the next event's seq, not the last sent.
    SyncSkips,
    /// Anyone may add anyone to a group.
    JoinUnauthorized,
    /// The sender's 21 ack takes the seq of its message.
    SeqReuse,
    /// A sync page by timestamp stops at `limit`, even inside a millisecond.
    MsSplit,
    /// Typing events carry a seq.
    TypingSeq,
}

impl Defect {
    pub fn parse(name: &str) -> Option<Defect> {
        Some(match name {
            "no-ack-id" => Defect::NoAckId,
            "sync-skips" => Defect::SyncSkips,
            "join-unauthorized" => Defect::JoinUnauthorized,
            "seq-reuse" => Defect::SeqReuse,
            "ms-split" => Defect::MsSplit,
            "typing-seq" => Defect::TypingSeq,
            _ => return None,
        })
    }
}

/// A refusal: the HTTP status, and the code and text of the error body or of event 90.
#[derive(Debug)]
pub struct Refusal {
    pub status: u16,
    pub code: &'static str,
    pub text: String,
}

pub fn refuse<T>(status: u16, code: &'static str, text: impl Into<String>) -> Result<T, Refusal> {
    Err(Refusal {
        status,
        code,
        text: text.into(),
    })
}

fn bad<T>(text: impl Into<String>) -> Result<T, Refusal> {
    refuse(400, "bad_request", text)
}

/// The writing half of a live WebSocket: whole frames go out under its lock, from any thread.
pub type Writer = Arc<Mutex<TcpStream>>;

/// Writes one text frame (server frames are unmasked).
pub fn write_text(writer: &Writer, text: &str) -> io::Result<()> {
    write_frame(writer, 0x1, text.as_bytes())
}

/// Writes a close frame with `code`.
pub fn write_close(writer: &Writer, code: u16) -> io::Result<()> {
    write_frame(writer, 0x8, &code.to_be_bytes())
}

fn write_frame(writer: &Writer, opcode: u8, payload: &[u8]) -> io::Result<()> {
    let mut frame = vec![0x80 | opcode];
    match payload.len() {
        n if n < 126 => frame.push(n as u8),
        n if n <= 0xffff => {
            frame.push(126);
            frame.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            frame.push(127);
            frame.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    frame.extend_from_slice(payload);
    let mut stream = writer.lock().unwrap_or_else(|e| e.into_inner());
    stream.write_all(&frame)
}

struct Group {
    name: String,
    /// The creator, then the member in the group longest when the owner leaves; none once
    /// everyone left, until someone joins.
    owner: Option<String>,
    members: Vec<String>,
    /// Removed by the owner, and not added back since: they may not join by the id.
    removed: Vec<String>,
}

struct Conn {
    user: String,
    writer: Writer,
}

pub type Shared = Arc<Mutex<State>>;

pub fn lock(state: &Shared) -> MutexGuard<'_, State> {
    state.lock().expect("no handler panicked holding the state")
}

#[derive(Default)]
pub struct State {
    defect: Option<Defect>,
    /// User id -> password, kept as given: a test stand-in holds throwaway ones, in memory only.
    users: HashMap<String, String>,
    /// Lower-cased username or email -> user id.
    names: HashMap<String, String>,
    emails: HashMap<String, String>,
    /// Login token -> user id.
    logins: HashMap<String, String>,
    /// Messaging token -> user id.
    tokens: HashMap<String, String>,
    groups: HashMap<String, Group>,
    /// Message id -> (group id, author).
    messages: HashMap<String, (String, String)>,
    /// User id -> the user's stored events, in seq order.
    streams: HashMap<String, Vec<Value>>,
    /// (user, client id) -> the original ack of that send.
    sent: HashMap<(String, String), Value>,
    conns: HashMap<u64, Conn>,
    next_conn: u64,
    last_seq: u64,
    clock: u64,
}

fn string<'a>(body: &'a Value, key: &str) -> Result<&'a str, Refusal> {
    body.get(key)
        .and_then(Value::as_str)
        .map_or_else(|| bad(format!("`{key}` must be a string")), Ok)
}

fn object(body: &Value) -> Result<&Map<String, Value>, Refusal> {
    body.as_object()
        .map_or_else(|| bad("the body must be a JSON object"), Ok)
}

impl State {
    pub fn new(defect: Option<Defect>) -> State {
        State {
            defect,
            ..State::default()
        }
    }

    fn has(&self, defect: Defect) -> bool {
        self.defect == Some(defect)
    }

    /// Wall-clock ms, held at its last value while the clock steps back.
    fn now(&mut self) -> u64 {
        let wall = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        self.clock = self.clock.max(wall);
        self.clock
    }

    /// A stored event under the next seq.
    fn event(&mut self, kind: u64, timestamp: u64, body: Value) -> Value {
        self.last_seq += 1;
        json!({"type": kind, "timestamp": timestamp, "seq": self.last_seq, "body": body})
    }

    fn keep(&mut self, event: &Value, users: &[String]) {
        for user in users {
            self.streams
                .entry(user.clone())
                .or_default()
                .push(event.clone());
        }
    }

    /// Writes `event` to every live connection of `users` except `except`; a connection that
    /// cannot take it is dropped.
    fn deliver(&mut self, event: &Value, users: &[String], except: Option<u64>) {
        let text = event.to_string();
        let mut dead = Vec::new();
        for (id, conn) in &self.conns {
            let wanted = Some(*id) != except && users.contains(&conn.user);
            if wanted && write_text(&conn.writer, &text).is_err() {
                dead.push(*id);
            }
        }
        for id in dead {
            self.detach(id);
        }
    }

    fn reply(&mut self, conn: u64, event: &Value) {
        if let Some(writer) = self.conns.get(&conn).map(|c| Arc::clone(&c.writer)) {
            if write_text(&writer, &event.to_string()).is_err() {
                self.detach(conn);
            }
        }
    }

    pub fn register(&mut self, body: &Value) -> Result<Value, Refusal> {
        object(body)?;
        let (username, password) = (string(body, "username")?, string(body, "password")?);
        let email = string(body, "email")?.trim();
        let valid_email = email
            .rsplit_once('@')
            .is_some_and(|(local, domain)| !local.is_empty() && !domain.is_empty())
            && !email.contains(char::is_whitespace);
        if username.is_empty() || password.is_empty() || !valid_email {
            return bad("need a username, a password and an email like name@host");
        }
        let (name_key, email_key) = (username.to_lowercase(), email.to_lowercase());
        if self.names.contains_key(&name_key) || self.emails.contains_key(&email_key) {
            return refuse(409, "conflict", "that username or email is in use");
        }
        let id = Uuid::new_v4().to_string();
        self.names.insert(name_key, id.clone());
        self.emails.insert(email_key, id.clone());
        self.users.insert(id.clone(), password.to_string());
        Ok(json!({"id": id}))
    }

    pub fn login(&mut self, body: &Value) -> Result<Value, Refusal> {
        object(body)?;
        let password = body["password"].as_str();
        let found = match (body["username"].as_str(), body["email"].as_str()) {
            (Some(name), _) => self.names.get(&name.to_lowercase()),
            (None, Some(email)) => self.emails.get(&email.trim().to_lowercase()),
            (None, None) => None,
        };
        let user = found
            .filter(|id| Some(self.users[*id].as_str()) == password)
            .cloned();
        let Some(user) = user else {
            return refuse(401, "unauthorized", "no account matches these credentials");
        };
        let token = Uuid::new_v4().simple().to_string();
        self.logins.insert(token.clone(), user.clone());
        Ok(json!({"token": token, "user_id": user}))
    }

    /// The user an `Authorization` header value logs in.
    pub fn authorize(&self, header: Option<&str>) -> Result<String, Refusal> {
        header
            .and_then(|h| h.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .and_then(|(_, token)| self.logins.get(token.trim()))
            .cloned()
            .map_or_else(|| refuse(401, "unauthorized", "log in first"), Ok)
    }

    pub fn open_session(&mut self, user: &str, body: &Value, host: &str) -> Result<Value, Refusal> {
        object(body)?;
        let fields_present = ["device_id", "model"]
            .iter()
            .all(|k| body[*k].as_str().is_some_and(|s| !s.is_empty()));
        let platform_known = matches!(
            body["platform"].as_str(),
            Some("web" | "ios" | "android" | "live")
        );
        let build_positive = body["build"].as_u64().is_some_and(|b| b > 0);
        let name_fits = body.get("name").is_none_or(Value::is_string);
        if !(fields_present && platform_known && build_positive && name_fits) {
            return bad("a session needs device_id, model, platform (web, ios, android or live) and a build above 0");
        }
        let token = Uuid::new_v4().to_string();
        self.tokens.insert(token.clone(), user.to_string());
        Ok(json!({
            "created_at": self.now(),
            "id": Uuid::new_v4().to_string(),
            "messaging_url": format!("ws://{host}/{token}"),
        }))
    }

    pub fn create_group(&mut self, user: &str, body: &Value) -> Result<Value, Refusal> {
        object(body)?;
        let name = string(body, "name")?.to_string();
        let listed = match body.get("user_ids") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(ids)) => ids.clone(),
            Some(_) => return bad("`user_ids` must be a list"),
        };
        let mut members: Vec<String> = Vec::new();
        let mut unknown = Vec::new();
        for id in &listed {
            match id.as_str() {
                Some(id) if !self.users.contains_key(id) => unknown.push(id.to_string()),
                Some(id) if id != user && !members.iter().any(|m| m == id) => {
                    members.push(id.to_string())
                }
                Some(_) => {}
                None => return bad("`user_ids` must hold strings"),
            }
        }
        if !unknown.is_empty() {
            return bad(format!("unknown users: {}", unknown.join(", ")));
        }
        members.push(user.to_string());
        let id = Uuid::new_v4().to_string();
        let group = Group {
            name,
            owner: Some(user.to_string()),
            members,
            removed: Vec::new(),
        };
        let now = self.now();
        let event = self.event(70, now, view(&id, &group));
        self.keep(&event, &group.members);
        self.deliver(&event, &group.members, None);
        self.groups.insert(id.clone(), group);
        Ok(json!({"id": id}))
    }

    /// `PUT /groups/{id}/join` or `/left` by `user`.
    pub fn membership(
        &mut self,
        user: &str,
        id: &str,
        join: bool,
        body: &Value,
    ) -> Result<Value, Refusal> {
        let Some(group) = self.groups.get(id) else {
            return refuse(404, "not_found", format!("group {id} does not exist"));
        };
        let target = string(body, "user_id")?.to_string();
        if !self.users.contains_key(&target) {
            return refuse(404, "not_found", format!("user {target} does not exist"));
        }
        let is_member = |who: &str| group.members.iter().any(|m| m == who);
        let allowed = (target == user && !(join && group.removed.contains(&target)))
            || (join && (is_member(user) || self.has(Defect::JoinUnauthorized)))
            || (!join && group.owner.as_deref() == Some(user));
        if !allowed {
            return refuse(403, "forbidden", "not yours to change");
        }
        if is_member(&target) == join {
            let state = if join { "already" } else { "not" };
            return refuse(409, "conflict", format!("{target} is {state} a member"));
        }
        let now = self.now();
        let change = json!({"group_id": id, "user_id": target});
        let group = self.groups.get_mut(id).expect("looked up above");
        let mut new_owner = false;
        let told = if join {
            group.removed.retain(|r| *r != target);
            group.members.push(target.clone());
            if group.owner.is_none() {
                group.owner = Some(target.clone());
                new_owner = true;
            }
            group.members.clone()
        } else {
            let before = group.members.clone();
            group.members.retain(|m| *m != target);
            if target != user {
                group.removed.push(target.clone());
            }
            if group.owner.as_deref() == Some(target.as_str()) {
                group.owner = group.members.first().cloned();
                new_owner = group.owner.is_some();
            }
            before
        };
        let answer = view(id, &self.groups[id]);
        if join {
            let created = self.event(70, now, answer.clone());
            self.keep(&created, std::slice::from_ref(&target));
            self.deliver(&created, std::slice::from_ref(&target), None);
        }
        let event = self.event(if join { 72 } else { 73 }, now, change);
        self.keep(&event, &told);
        self.deliver(&event, &told, None);
        if new_owner {
            self.updated(id, now);
        }
        Ok(answer)
    }

    /// `PUT /groups/{id}` by `user`: any member renames.
    pub fn rename(&mut self, user: &str, id: &str, body: &Value) -> Result<Value, Refusal> {
        let Some(group) = self.groups.get(id) else {
            return refuse(404, "not_found", format!("group {id} does not exist"));
        };
        if !group.members.iter().any(|m| m == user) {
            return refuse(403, "forbidden", "not yours to change");
        }
        object(body)?;
        let name = string(body, "name")?.to_string();
        if name.is_empty() {
            return bad("`name` must not be empty");
        }
        if group.name != name {
            self.groups.get_mut(id).expect("looked up above").name = name;
            let now = self.now();
            self.updated(id, now);
        }
        Ok(view(id, &self.groups[id]))
    }

    /// Event 74, the group's name and owner now, to its members.
    fn updated(&mut self, id: &str, now: u64) {
        let group = &self.groups[id];
        let body = json!({"group_id": id, "name": group.name, "owner": group.owner});
        let members = group.members.clone();
        let event = self.event(74, now, body);
        self.keep(&event, &members);
        self.deliver(&event, &members, None);
    }

    /// The user a messaging token belongs to.
    pub fn token_user(&self, token: &str) -> Option<String> {
        self.tokens.get(token).cloned()
    }

    pub fn attach(&mut self, user: String, writer: Writer) -> u64 {
        self.next_conn += 1;
        self.conns.insert(self.next_conn, Conn { user, writer });
        self.next_conn
    }

    pub fn detach(&mut self, conn: u64) {
        if let Some(conn) = self.conns.remove(&conn) {
            let stream = conn.writer.lock().unwrap_or_else(|e| e.into_inner());
            let _ = stream.shutdown(Shutdown::Both);
        }
    }

    /// One RPC from a connection: its replies, or an error event 90, go to that connection.
    pub fn rpc(&mut self, conn: u64, text: &str) {
        // A delivery that failed may have dropped the connection while this message was read.
        let Some(user) = self.conns.get(&conn).map(|c| c.user.clone()) else {
            return;
        };
        let rpc: Value = serde_json::from_str(text).unwrap_or(Value::Null);
        let id = rpc.get("id").and_then(Value::as_str).map(str::to_string);
        let method = rpc.get("method").and_then(Value::as_u64);
        let outcome = match (&rpc, method) {
            (Value::Object(_), _) if rpc.get("id").is_some_and(|i| !i.is_string()) => {
                bad("`id` must be a string")
            }
            (Value::Object(_), Some(method)) => {
                self.dispatch(conn, &user, method, id.as_deref(), &rpc)
            }
            _ => bad("send a JSON object with a numeric `method`"),
        };
        if let Err(refusal) = outcome {
            let body = json!({"code": refusal.code, "error": refusal.text, "method": method});
            let now = self.now();
            let mut event = json!({"type": 90, "timestamp": now, "body": body});
            if let Some(id) = id {
                event["id"] = json!(id);
                event["body"]["id"] = json!(id);
            }
            self.reply(conn, &event);
        }
    }

    fn dispatch(
        &mut self,
        conn: u64,
        user: &str,
        method: u64,
        id: Option<&str>,
        rpc: &Value,
    ) -> Result<(), Refusal> {
        let body = &rpc["body"];
        match method {
            20 => self.sync(conn, user, rpc),
            40 => self.send(conn, user, id, object(body).map(|_| body)?),
            41 | 42 => self.receipt(conn, user, 22 + method - 41, object(body).map(|_| body)?),
            60 | 61 => self.typing(conn, user, 40 + method - 60, object(body).map(|_| body)?),
            _ => refuse(
                400,
                "unknown_method",
                format!("there is no method {method}"),
            ),
        }
    }

    /// The group `id` with `user` as a member: its members.
    fn members_for(&self, user: &str, id: &str) -> Result<Vec<String>, Refusal> {
        let Some(group) = self.groups.get(id) else {
            return refuse(404, "not_found", format!("group {id} does not exist"));
        };
        if !group.members.iter().any(|m| m == user) {
            return refuse(403, "not_member", format!("you are not in group {id}"));
        }
        Ok(group.members.clone())
    }

    fn send(
        &mut self,
        conn: u64,
        user: &str,
        id: Option<&str>,
        body: &Value,
    ) -> Result<(), Refusal> {
        let (group, data) = (string(body, "group_id")?, string(body, "data")?);
        if let Some(ack) = id.and_then(|id| self.sent.get(&(user.to_string(), id.to_string()))) {
            let ack = ack.clone();
            self.reply(conn, &ack);
            return Ok(());
        }
        let members = self.members_for(user, group)?;
        let now = self.now();
        let message_id = Uuid::new_v4().to_string();
        let body =
            json!({"message_id": message_id, "data": data, "group_id": group, "user_id": user});
        let message = self.event(20, now, body);
        self.keep(&message, &members);
        let mut ack = self.event(21, now, json!({"message_id": message_id}));
        if self.has(Defect::SeqReuse) {
            ack["seq"] = message["seq"].clone();
        }
        if let Some(id) = id.filter(|_| !self.has(Defect::NoAckId)) {
            ack["id"] = json!(id);
        }
        self.keep(&ack, &[user.to_string()]);
        if let Some(id) = id {
            self.sent
                .insert((user.to_string(), id.to_string()), ack.clone());
        }
        self.messages
            .insert(message_id, (group.to_string(), user.to_string()));
        self.deliver(&message, &members, Some(conn));
        self.reply(conn, &ack);
        Ok(())
    }

    fn receipt(&mut self, conn: u64, user: &str, kind: u64, body: &Value) -> Result<(), Refusal> {
        let message_id = string(body, "message_id")?;
        let Some((group, author)) = self.messages.get(message_id).cloned() else {
            return refuse(
                404,
                "not_found",
                format!("message {message_id} does not exist"),
            );
        };
        self.members_for(user, &group)?;
        let now = self.now();
        let event = self.event(
            kind,
            now,
            json!({"message_id": message_id, "group_id": group, "user_id": user}),
        );
        let mut told = vec![author];
        if told[0] != user {
            told.push(user.to_string());
        }
        self.keep(&event, &told);
        self.deliver(&event, &told, Some(conn));
        Ok(())
    }

    fn typing(&mut self, conn: u64, user: &str, kind: u64, body: &Value) -> Result<(), Refusal> {
        let group = string(body, "group_id")?;
        let members = self.members_for(user, group)?;
        let now = self.now();
        let mut event =
            json!({"type": kind, "timestamp": now, "body": {"group_id": group, "user_id": user}});
        if self.has(Defect::TypingSeq) {
            self.last_seq += 1;
            event["seq"] = json!(self.last_seq);
        }
        self.deliver(&event, &members, Some(conn));
        Ok(())
    }

    /// Method 20: the caller's stored events after the cursor (`seq` wins over `timestamp`),
    /// a page at a time, then event 29.
    fn sync(&mut self, conn: u64, user: &str, rpc: &Value) -> Result<(), Refusal> {
        let number = |key: &str| -> Result<Option<u64>, Refusal> {
            match rpc.get(key).or_else(|| rpc["body"].get(key)) {
                None | Some(Value::Null) => Ok(None),
                Some(value) => value.as_u64().map_or_else(
                    || bad(format!("`{key}` must be a whole number")),
                    |n| Ok(Some(n)),
                ),
            }
        };
        let (seq, timestamp) = (number("seq")?, number("timestamp")?);
        let limit = number("limit")?.unwrap_or(100);
        if limit == 0 {
            return bad("`limit` must be at least 1");
        }
        let (field, cursor) = match (seq, timestamp) {
            (Some(seq), _) => ("seq", seq),
            (None, timestamp) => ("timestamp", timestamp.unwrap_or(0)),
        };
        let other = if field == "seq" { "timestamp" } else { "seq" };
        let at = |event: &Value, key: &str| event[key].as_u64().unwrap_or(0);
        let stream = self.streams.get(user).map_or(&[][..], Vec::as_slice);
        let after: Vec<&Value> = stream.iter().filter(|e| at(e, field) > cursor).collect();
        let mut take = after.len().min(limit as usize);
        // A page by timestamp ends at a millisecond's end, so that its cursor skips nothing.
        while field == "timestamp"
            && !self.has(Defect::MsSplit)
            && take > 0
            && take < after.len()
            && at(after[take], "timestamp") == at(after[take - 1], "timestamp")
        {
            take += 1;
        }
        let more = take < after.len();
        let mut done = match after[..take].last() {
            Some(last) => json!({"timestamp": at(last, "timestamp"), "seq": at(last, "seq")}),
            None => {
                let latest = stream.iter().rev().find(|e| at(e, field) <= cursor);
                let mut done = json!({ "more": false });
                done[field] = json!(cursor);
                done[other] = json!(latest.map_or(0, |e| at(e, other)));
                done
            }
        };
        if more && field == "seq" && self.has(Defect::SyncSkips) {
            done["seq"] = json!(at(after[take], "seq"));
        }
        done["more"] = json!(more);
        let page: Vec<Value> = after[..take].iter().map(|e| (*e).clone()).collect();
        for event in &page {
            self.reply(conn, event);
        }
        let now = self.now();
        self.reply(conn, &json!({"type": 29, "timestamp": now, "body": done}));
        Ok(())
    }
}

/// A group as event 70 and the join/leave answers show it.
fn view(id: &str, group: &Group) -> Value {
    json!({"group_id": id, "name": group.name, "user_ids": group.members, "owner": group.owner})
}
