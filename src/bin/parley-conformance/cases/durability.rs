//! Durability: kill the server (`--kill-cmd`) right after it acknowledged, start it again
//! (`--restart-cmd`), and check that every acknowledged message and every 2xx answer survived.
//!
//! The restart command's contract: it returns once it has started the server (it need not wait
//! for it to be ready); if the new server listens elsewhere, the command prints the new base URL
//! (`http://...`) as the last such line on its stdout, otherwise the kit keeps the URL it had. The
//! kit then polls `POST /login` until the server answers it. Neither command may leave a process
//! holding its stdout open (redirect the server's output).

use std::collections::{BTreeMap, HashMap};
use std::io::Read;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::sync::{sync_all, By};
use super::{expect_status, Ctx};
use crate::http::BaseUrl;
use crate::registry::{ensure, ensure_eq, fail, Case, Needs, Outcome, Stop};
use crate::ws::{Incoming, Ws};

pub const CASES: &[Case] = &[
    Case::core("durability.acked_messages", "every message acknowledged (21) before a kill -9 is stored after the restart, exactly once", acked_messages).needing(Needs::Restarts),
    Case::core("durability.idempotent_restart", "a send retried after a restart gets its original ack; unacknowledged ones complete exactly once", idempotent_restart).needing(Needs::Restarts),
    Case::core("durability.rest_answers", "users, sessions and groups answered 2xx right before a kill -9 exist after the restart", rest_answers).needing(Needs::Restarts),
];

/// How long the kill and restart commands, and the server's return to health, may take.
const COMMAND_DEADLINE: Duration = Duration::from_secs(60);
const ROUNDS: usize = 3;
const BURST: usize = 40;
/// Acks to wait for before killing, so that the rest of the burst is in flight at the kill.
const KILL_AFTER_ACKS: usize = 10;

fn acked_messages(ctx: &mut Ctx) -> Outcome {
    let sender = ctx.user()?;
    let reader = ctx.user()?;
    let group = ctx.group(&sender, &[&reader])?;
    let sender_token = ctx.session(&sender)?;
    let reader_token = ctx.session(&reader)?;
    let mut acked: BTreeMap<String, Value> = BTreeMap::new();
    for round in 0..ROUNDS {
        let mut ws = ctx.connect(&sender_token, &format!("sender-{round}"))?;
        let ids: Vec<String> = (0..BURST).map(|i| format!("r{round}-{i}")).collect();
        send_burst(&mut ws, &group, &ids)?;
        let acks = kill_amid_acks(ctx, &mut ws)?;
        ensure(acks.len() >= KILL_AFTER_ACKS, || {
            format!("only {} acks arrived before the kill", acks.len())
        })?;
        acked.extend(acks);
        restart(ctx)?;
    }
    let mut ws = ctx.connect(&sender_token, "sender-after")?;
    let sender_events = sync_all(&mut ws, By::Timestamp, 0, 1000)?;
    let mut reader_ws = ctx.connect(&reader_token, "reader-after")?;
    let reader_events = sync_all(&mut reader_ws, By::Timestamp, 0, 1000)?;
    for (client_id, ack) in &acked {
        let message_id = &ack["body"]["message_id"];
        ensure(
            sender_events.iter().any(|e| {
                e["type"] == 21
                    && e["body"]["message_id"] == *message_id
                    && e["timestamp"] == ack["timestamp"]
            }),
            || {
                format!("the ack of `{client_id}` ({ack}) is not in the sender's sync after the restart")
            },
        )?;
        let copies = reader_events
            .iter()
            .filter(|e| e["type"] == 20 && e["body"]["message_id"] == *message_id)
            .count();
        ensure_eq(
            &format!("copies of acknowledged message `{client_id}` in the reader's sync"),
            copies,
            1,
        )?;
    }
    no_duplicate_data(&reader_events)
}

fn idempotent_restart(ctx: &mut Ctx) -> Outcome {
    let sender = ctx.user()?;
    let reader = ctx.user()?;
    let group = ctx.group(&sender, &[&reader])?;
    let sender_token = ctx.session(&sender)?;
    let reader_token = ctx.session(&reader)?;
    let ids: Vec<String> = (0..BURST).map(|i| format!("retry-{i}")).collect();
    let acked = {
        let mut ws = ctx.connect(&sender_token, "sender")?;
        send_burst(&mut ws, &group, &ids)?;
        kill_amid_acks(ctx, &mut ws)?
    };
    restart(ctx)?;
    let mut ws = ctx.connect(&sender_token, "sender-retry")?;
    send_burst(&mut ws, &group, &ids)?;
    let mut retried = HashMap::new();
    while retried.len() < ids.len() {
        let event = ws.expect(21)?;
        let Some(id) = event["id"].as_str() else {
            return fail(format!(
                "an ack of a send with a client id carries no `id`: {event}"
            ));
        };
        retried.insert(id.to_string(), event);
    }
    for (id, ack) in &acked {
        ensure_eq(
            &format!("the retried ack of `{id}` (message_id, timestamp)"),
            (
                &retried[id]["body"]["message_id"],
                &retried[id]["timestamp"],
            ),
            (&ack["body"]["message_id"], &ack["timestamp"]),
        )?;
    }
    let mut reader_ws = ctx.connect(&reader_token, "reader")?;
    let events = sync_all(&mut reader_ws, By::Timestamp, 0, 1000)?;
    for id in &ids {
        let copies = events
            .iter()
            .filter(|e| e["type"] == 20 && e["body"]["data"] == json!(format!("data of {id}")))
            .count();
        ensure_eq(
            &format!("stored copies of `{id}` after its retry"),
            copies,
            1,
        )?;
    }
    Ok(())
}

fn rest_answers(ctx: &mut Ctx) -> Outcome {
    let owner = ctx.user()?;
    let member = ctx.user()?;
    let messaging = ctx.session(&owner)?;
    let group = ctx.group(&owner, &[&member])?;
    // The last answer before the kill: a registration.
    let (_, late_name, _, late_password) = ctx.register_only()?;
    kill(ctx)?;
    restart(ctx)?;

    let late_token = ctx.login(&json!({"username": late_name, "password": late_password}))?;
    let owner_token =
        ctx.login(&json!({"username": owner.username, "password": owner.password}))?;
    let mut ws = ctx.connect(&messaging, "owner-after")?;
    let events = sync_all(&mut ws, By::Timestamp, 0, 1000)?;
    ensure(
        events
            .iter()
            .any(|e| e["type"] == 70 && e["body"]["group_id"] == json!(group)),
        || "the group created before the kill is not in its creator's sync".to_string(),
    )?;
    let response = ctx.call(
        "PUT",
        &format!("/groups/{group}/join"),
        Some(&owner_token),
        Some(&json!({"user_id": member.id})),
    )?;
    ensure_eq(
        "adding a member of the group created before the kill (409: still a member)",
        response.status,
        409,
    )?;
    let response = ctx.call(
        "PUT",
        &format!("/groups/{group}/join"),
        Some(&late_token),
        Some(&json!({})),
    )?;
    expect_status(
        &response,
        200,
        "the user registered before the kill joins the group",
    )
}

fn send_burst(ws: &mut Ws, group: &str, ids: &[String]) -> Outcome {
    for id in ids {
        ws.send_json(&json!({"method": 40, "id": id, "body": {"group_id": group, "data": format!("data of {id}")}}))?;
    }
    Ok(())
}

/// Waits for the first acks of a burst, kills the server, and returns every ack that arrived
/// (the ones already on the wire at the kill were acknowledged too), by client id.
fn kill_amid_acks(ctx: &mut Ctx, ws: &mut Ws) -> Result<BTreeMap<String, Value>, Stop> {
    let mut acks = BTreeMap::new();
    let mut record = |event: Value| -> Outcome {
        if event["type"] == 21 {
            match event["id"].as_str() {
                Some(id) => {
                    acks.insert(id.to_string(), event.clone());
                }
                None => {
                    return fail(format!(
                        "an ack of a send with a client id carries no `id`: {event}"
                    ))
                }
            }
        }
        Ok(())
    };
    let mut seen = 0;
    while seen < KILL_AFTER_ACKS {
        let event = ws.next_event()?;
        seen += usize::from(event["type"] == 21);
        record(event)?;
    }
    kill(ctx)?;
    loop {
        match ws.next_message(ctx.timeout) {
            Incoming::Message(tungstenite::Message::Text(text)) => {
                record(serde_json::from_str(text.as_str()).unwrap_or(Value::Null))?
            }
            Incoming::Message(_) => continue,
            Incoming::Nothing => {
                return fail(format!(
                    "the connection stayed open {:?} after the kill command",
                    ctx.timeout
                ))
            }
            Incoming::Ended(_) => return Ok(acks),
        }
    }
}

fn kill(ctx: &mut Ctx) -> Outcome {
    let command = restarts(ctx)?.kill_cmd;
    run_shell(ctx, "kill", &command)?;
    Ok(())
}

/// Runs the restart command, follows a new base URL it prints, and waits for health.
fn restart(ctx: &mut Ctx) -> Outcome {
    let command = restarts(ctx)?.restart_cmd;
    let output = run_shell(ctx, "restart", &command)?;
    if let Some(url) = output
        .lines()
        .map(str::trim)
        .rfind(|l| l.starts_with("http://"))
    {
        ctx.http.base = BaseUrl::parse(url)?;
        ctx.transcript
            .note(format!("   the server is now at {url}"));
    }
    let deadline = Instant::now() + COMMAND_DEADLINE;
    let mut last = String::new();
    while Instant::now() < deadline {
        // Every server has `/login`; an empty login is refused at once, and any answer short of
        // a 5xx means the server is serving again.
        match ctx.http.call("POST", "/login", None, Some(&json!({}))) {
            Ok(response) if response.status < 500 => return Ok(()),
            Ok(response) => last = format!("status {}", response.status),
            Err(err) => last = err,
        }
        // Polling for readiness; each failed attempt (refused connection) returns at once.
        thread::sleep(Duration::from_millis(50));
    }
    fail(format!(
        "the server did not answer POST /login within {COMMAND_DEADLINE:?} of the restart (last: {last})"
    ))
}

fn restarts(ctx: &Ctx) -> Result<super::Restarts, Stop> {
    ctx.restarts
        .clone()
        .ok_or_else(|| Stop::Skip("needs --kill-cmd and --restart-cmd".to_string()))
}

/// `sh -c command`; its stdout. Fails on a non-zero exit or past the deadline.
fn run_shell(ctx: &Ctx, what: &str, command: &str) -> Result<String, Stop> {
    ctx.transcript.note(format!("-> {what} command: {command}"));
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(command)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| Stop::Fail(format!("cannot run the {what} command: {e}")))?;
    let captured = Arc::new(Mutex::new(Vec::new()));
    let mut stdout = child.stdout.take().expect("stdout is piped");
    let sink = Arc::clone(&captured);
    // A reader thread, so that a command whose stdout stays open cannot block the kit.
    thread::spawn(move || {
        let mut chunk = [0u8; 4096];
        while let Ok(n) = stdout.read(&mut chunk) {
            if n == 0 {
                break;
            }
            sink.lock()
                .expect("not poisoned")
                .extend_from_slice(&chunk[..n]);
        }
    });
    let deadline = Instant::now() + COMMAND_DEADLINE;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() < deadline => thread::sleep(Duration::from_millis(10)),
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                return fail(format!("the {what} command ran over {COMMAND_DEADLINE:?}"));
            }
            Err(e) => return fail(format!("waiting for the {what} command: {e}")),
        }
    };
    // Give the reader a moment to take the last of the output.
    let settle = Instant::now() + Duration::from_millis(500);
    while Arc::strong_count(&captured) > 1 && Instant::now() < settle {
        thread::sleep(Duration::from_millis(5));
    }
    let output = String::from_utf8_lossy(&captured.lock().expect("not poisoned")).into_owned();
    ctx.transcript.note(format!(
        "<- {what} command exited with {status}; stdout: {}",
        output.trim()
    ));
    ensure(status.success(), || {
        format!("the {what} command failed ({status}): {command}")
    })?;
    Ok(output)
}

fn no_duplicate_data(events: &[Value]) -> Outcome {
    let mut seen = HashMap::new();
    for event in events.iter().filter(|e| e["type"] == 20) {
        let data = event["body"]["data"].as_str().unwrap_or("");
        if let Some(previous) = seen.insert(data.to_string(), event) {
            return fail(format!("one send stored twice: {previous} and {event}"));
        }
    }
    Ok(())
}
