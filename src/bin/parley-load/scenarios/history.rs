//! The `history` scenario (issue #20): a group holds E messages; one member then asks for pages
//! of its history (`GET /groups/{id}/messages`, 50 messages) at its newest end, in the middle and
//! near its oldest end. A page is read backwards from where it ends, so its latency should not
//! depend on E: run it with `--events 100` and `--events 1000000` and compare.

use std::time::Instant;

use super::sync::fill_group;
use super::{hundredths, pair_on_parley, round, sample, Options, Report};
use crate::http_client::HttpClient;
use crate::setup;
use crate::stats::Histogram;
use crate::swarm::{after_key, leading_number};

/// Pages asked for at each place.
const PAGES: usize = 200;

/// `history`: E messages in a group of two, then [`PAGES`] pages at each of three places.
pub fn history(options: &Options) -> Result<Report, String> {
    let fleet = pair_on_parley(
        options,
        "history needs storage: the reference relays have none",
    )?;
    let (stored, fill_s) = fill_group(options, &fleet, "history", "messages")?;

    let mut http = HttpClient::new(options.endpoint.addr, &options.endpoint.host);
    let (token, _) = setup::login(&mut http, &fleet.accounts[0])?;
    let group = &fleet.groups[0];
    let path = |before: Option<u64>| match before {
        Some(before) => format!("/groups/{group}/messages?limit=50&before={before}"),
        None => format!("/groups/{group}/messages?limit=50"),
    };
    // The newest page's first seq says where the history ends; seqs grow about two a message
    // (the message and its ack).
    let newest = setup::call(&mut http, "GET", &path(None), Some(&token), "", 200)?;
    let newest_seq = after_key(&newest, "\"seq\":")
        .and_then(leading_number)
        .ok_or_else(|| format!("an empty newest page: {newest}"))?;
    // Each place: where its pages end, and the report's keys for their p50, p99 and size.
    let places = [
        (
            None,
            ["newest_p50_us", "newest_p99_us", "newest_page_bytes"],
        ),
        (
            Some((newest_seq / 2).max(2)),
            ["middle_p50_us", "middle_p99_us", "middle_page_bytes"],
        ),
        (
            Some(newest_seq.clamp(2, 200)),
            ["oldest_p50_us", "oldest_p99_us", "oldest_page_bytes"],
        ),
    ];
    let before = sample(options);
    let mut report = Report::new("history", options);
    report.add("messages_stored", stored);
    report.add("fill_s", round(fill_s));
    for (at, [p50, p99, size]) in places {
        let mut latency = Histogram::default();
        let mut bytes = 0;
        for _ in 0..PAGES {
            let started = Instant::now();
            let page = setup::call(&mut http, "GET", &path(at), Some(&token), "", 200)?;
            latency.record(started.elapsed().as_nanos() as u64);
            bytes = page.len();
        }
        let summary = latency.summary();
        report.add(p50, summary.p50_us);
        report.add(p99, summary.p99_us);
        report.add(size, bytes as u64);
    }
    if let (Some(before), Some(after)) = (before, sample(options)) {
        report.add("server_cpu_s", hundredths(after.cpu_secs - before.cpu_secs));
    }
    Ok(report)
}
