//! The `groups-list` scenario (issue #20): what `GET /groups` costs a user in many groups, each
//! with a message they have not read (one view per group: its last message and unread count).

use std::time::{Duration, Instant};

use parley_client::ws::Session;
use tungstenite::Message;

use super::{pair_on_parley, round, Options, Report};
use crate::http_client::{json_str, HttpClient};
use crate::setup;
use crate::stats::Histogram;

/// `GET /groups` requests measured, one after another on one keep-alive connection.
const LISTS: usize = 50;

/// Sends the writer keeps outstanding while filling the groups.
const FILL_WINDOW: usize = 64;

/// `groups-list`: a reader in `--hog-groups` groups (the server needs `--max-groups-per-user`
/// at least that), another member's message in each, then [`LISTS`] `GET /groups` by the
/// reader: their latency and size.
pub fn groups_list(options: &Options) -> Result<Report, String> {
    // Account 0 reads, account 1 writes; the fleet made their first group together.
    let fleet = pair_on_parley(
        options,
        "groups-list needs groups and storage: the reference relays have none",
    )?;
    let mut http = HttpClient::new(options.endpoint.addr, &options.endpoint.host);
    let (reader_token, reader_id) = setup::login(&mut http, &fleet.accounts[0])?;
    let (writer_token, _) = setup::login(&mut http, &fleet.accounts[1])?;
    let more = options.hog_groups.saturating_sub(1);
    let mut groups = setup::parallel(
        &options.endpoint,
        more,
        options.setup_threads,
        "groups",
        |http, g| {
            let body = format!(r#"{{"name":"list-{g}","user_ids":["{reader_id}"]}}"#);
            let answer = setup::call(http, "POST", "/groups", Some(&writer_token), &body, 201)?;
            json_str(&answer, "id")
                .map(str::to_string)
                .ok_or_else(|| format!("answer without `id`: {answer}"))
        },
    )
    .map_err(|e| {
        format!("{e} (start the server with --max-groups-per-user at least --hog-groups)")
    })?;
    groups.extend(fleet.groups.iter().cloned());
    fill(options, &fleet.accounts[1].ws_path, &groups)?;

    let mut latency = Histogram::default();
    let (mut bytes, mut views) = (0, 0);
    for _ in 0..LISTS {
        let started = Instant::now();
        let answer = http
            .request("GET", "/groups", Some(&reader_token), "")
            .map_err(|e| format!("GET /groups: {e}"))?;
        latency.record(started.elapsed().as_nanos() as u64);
        if answer.status != 200 {
            return Err(format!("GET /groups: {}", answer.status));
        }
        let body = answer.body_text();
        bytes = body.len();
        views = body.matches("\"unread\":1").count();
    }
    if views != groups.len() {
        return Err(format!(
            "GET /groups showed {views} groups with one unread message, expected {}",
            groups.len()
        ));
    }
    let latency = latency.summary();
    let mut report = Report::new("groups-list", options);
    report.add("groups", groups.len() as u64);
    report.add("lists", LISTS as u64);
    report.add("answer_bytes", bytes as u64);
    report.add("list_p50_us", round(latency.p50_us));
    report.add("list_p99_us", round(latency.p99_us));
    report.add("list_max_us", round(latency.max_us));
    Ok(report)
}

/// The writer sends one message to each group, [`FILL_WINDOW`] at a time, and waits for the
/// acks.
fn fill(options: &Options, ws_path: &str, groups: &[String]) -> Result<(), String> {
    let url = format!("ws://{}{}", options.endpoint.addr, ws_path);
    let mut session = Session::connect(&url, &[], Duration::from_secs(10))
        .map_err(|e| format!("the writer's WebSocket: {e:?}"))?;
    let fail = |e: tungstenite::Error| format!("the writer's WebSocket: {e}");
    let deadline = Instant::now() + Duration::from_secs(600);
    let (mut sent, mut acked) = (0, 0);
    while acked < groups.len() {
        while sent < groups.len() && sent - acked < FILL_WINDOW {
            let send = format!(
                r#"{{"method":40,"body":{{"group_id":"{}","data":"unread"}}}}"#,
                groups[sent]
            );
            session.queue(Message::text(send)).map_err(fail)?;
            sent += 1;
        }
        session.flush().map_err(fail)?;
        match session.read_before(deadline).map_err(fail)? {
            None => return Err("the writer's sends went unanswered for 600 s".into()),
            Some(Message::Text(text)) if text.contains("\"type\":21") => acked += 1,
            Some(Message::Text(text)) if text.contains("\"type\":90") => {
                return Err(format!(
                    "the writer got an error (start the server with PARLEY_SENDS_PER_SECOND=0): \
                     {text}"
                ));
            }
            Some(Message::Close(frame)) => return Err(format!("the writer was closed: {frame:?}")),
            Some(_) => {}
        }
    }
    let _ = session.close(None);
    Ok(())
}
