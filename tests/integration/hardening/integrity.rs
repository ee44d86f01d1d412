//! Integrity (issue #18, finding 1): a store damaged on disk never serves with acknowledged
//! data silently gone. Each trial fills a data directory over real WebSockets (every send
//! acknowledged), stops the server (SIGTERM, or SIGKILL), damages a copy of the directory the
//! way a bad disk or an operator would (a flipped byte, a truncation, 4 KiB of garbage, sled's
//! data file deleted), and starts the real binary on it: it must refuse (non-zero exit, and a
//! message naming the loss and what to do), or, if nothing acknowledged was lost, serve every
//! acknowledged message. `--accept-data-loss` starts anyway and says what was lost.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::process::{Launch, Process};
use crate::support::*;

const MESSAGES: usize = 150;

/// A filled data directory: who sent what, and every acknowledged message id.
pub struct Filled {
    pub dir: tempfile::TempDir,
    pub user: User,
    pub acked: BTreeSet<String>,
}

/// Sends `MESSAGES` acknowledged messages in a fresh directory, then stops the server:
/// gracefully, or with SIGKILL once the high-water mark has settled.
pub fn fill(kill: bool) -> Filled {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start_in(dir.path());
    let user = server.user("keeper");
    let group = server.create_group(&user, "ledger", &[]);
    let mut ws = server.connect(&user);
    let mut acked = BTreeSet::new();
    for i in 0..MESSAGES {
        let data = format!("message {i:04} {}", "x".repeat(200));
        let ack = ws.send_and_ack(&group, &data);
        acked.insert(ack["body"]["message_id"].as_str().unwrap().to_string());
    }
    drop(ws);
    if kill {
        wait_for_settled_mark(dir.path());
        server.kill();
    } else {
        let status = server.terminate(Duration::from_secs(20));
        assert!(
            status.is_some_and(|s| s.success()),
            "graceful stop: {status:?}"
        );
    }
    Filled { dir, user, acked }
}

/// The mark is written at a low rate after the flushes: waits until it has not changed for a
/// few of its intervals, so a SIGKILL does not race its last write.
fn wait_for_settled_mark(dir: &Path) {
    let path = dir.join("durable");
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut last = fs::read(&path).ok();
    let mut since = Instant::now();
    while since.elapsed() < Duration::from_millis(500) {
        assert!(
            Instant::now() < deadline,
            "the high-water mark never settled"
        );
        std::thread::sleep(Duration::from_millis(20)); // polling a file, not synchronising
        let now = fs::read(&path).ok();
        if now != last {
            last = now;
            since = Instant::now();
        }
    }
    assert!(last.is_some(), "no high-water mark in {}", dir.display());
}

pub fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for entry in fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// The largest file under `dir`.
fn largest_file(dir: &Path) -> PathBuf {
    let mut best: Option<(u64, PathBuf)> = None;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(at) = stack.pop() {
        for entry in fs::read_dir(&at).unwrap() {
            let entry = entry.unwrap();
            let meta = entry.metadata().unwrap();
            if meta.is_dir() {
                stack.push(entry.path());
            } else if best.as_ref().is_none_or(|(len, _)| meta.len() > *len) {
                best = Some((meta.len(), entry.path()));
            }
        }
    }
    best.expect("a file in the store").1
}

#[derive(Debug, Clone, Copy)]
pub enum Damage {
    /// One byte XORed with 0xFF at this fraction of the largest file (of its written part).
    Flip(f64),
    /// The largest file cut to this fraction of its written part.
    Truncate(f64),
    /// 4 KiB of garbage over the largest file at this fraction of its written part.
    Garbage(f64),
    /// sled's data file deleted, its `conf` kept.
    DeleteData,
}

pub fn damage(dir: &Path, how: Damage) {
    let store = dir.join("db");
    if let Damage::DeleteData = how {
        fs::remove_file(store.join("db")).unwrap();
        return;
    }
    let file = largest_file(&store);
    let mut bytes = fs::read(&file).unwrap();
    // Fractions of the written part: sled pads its file with zeros to a whole segment, and a
    // damage there hits nothing.
    let used = bytes
        .iter()
        .rposition(|&b| b != 0)
        .map_or(bytes.len(), |i| i + 1);
    let at = |fraction: f64| (used as f64 * fraction) as usize;
    match how {
        Damage::Flip(f) => {
            let i = at(f).min(bytes.len() - 1);
            bytes[i] ^= 0xff;
        }
        Damage::Truncate(f) => bytes.truncate(at(f)),
        Damage::Garbage(f) => {
            let start = at(f).min(bytes.len().saturating_sub(4096));
            let mut x = 0x9e37_79b9_7f4a_7c15u64 ^ start as u64;
            for byte in bytes.iter_mut().skip(start).take(4096) {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                *byte = x as u8;
            }
        }
        Damage::DeleteData => unreachable!(),
    }
    fs::write(&file, &bytes).unwrap();
}

#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    /// Non-zero exit with a message naming the loss.
    Refused,
    /// Started, and served every acknowledged message.
    ServedEverything,
}

/// Starts the real binary on a damaged directory and judges what it did.
fn outcome(filled: &Filled, dir: &Path, what: &str) -> Outcome {
    let mut process = Process::spawn(dir, &Launch::default());
    if process.wait_listening(Duration::from_secs(20)).is_none() {
        let status = process.wait_exit(Duration::from_secs(20));
        let stderr = process.stderr().join("\n");
        assert!(
            status.is_some_and(|s| !s.success()),
            "{what}: neither listening nor failed: {status:?}\n{stderr}"
        );
        assert!(
            stderr.contains("parley: cannot start")
                && (stderr.contains("lost acknowledged data")
                    || stderr.contains("is missing")
                    || stderr.contains("is damaged")
                    || stderr.contains("only part of a store"))
                && stderr.contains("--accept-data-loss")
                && !stderr.contains("panicked"),
            "{what}: the refusal must say what was found and what to do:\n{stderr}"
        );
        eprintln!("{what}: {}", stderr.lines().last().unwrap_or_default());
        return Outcome::Refused;
    }
    process.kill();
    // It started: then nothing acknowledged may be missing.
    let server = Server::start_in(dir);
    let mut ws = server.connect(&filled.user);
    let synced: BTreeSet<String> = ws
        .sync_all(None)
        .iter()
        .filter(|ev| ty(ev) == 20)
        .map(|ev| ev["body"]["message_id"].as_str().unwrap().to_string())
        .collect();
    let missing = filled.acked.difference(&synced).count();
    assert_eq!(
        missing,
        0,
        "{what}: started and serves only {} of {} acknowledged messages (silent loss)",
        filled.acked.len() - missing,
        filled.acked.len()
    );
    Outcome::ServedEverything
}

fn run_trials(filled: &Filled, label: &str, damages: &[Damage]) -> (usize, usize) {
    let (mut refused, mut served) = (0, 0);
    for (i, how) in damages.iter().enumerate() {
        let copy = tempfile::tempdir().unwrap();
        let dir = copy.path().join(format!("trial-{i}"));
        copy_dir(filled.dir.path(), &dir);
        damage(&dir, *how);
        let what = format!("{label} {how:?}");
        let result = outcome(filled, &dir, &what);
        eprintln!("integrity trial {what}: {result:?}");
        match result {
            Outcome::Refused => refused += 1,
            Outcome::ServedEverything => served += 1,
        }
    }
    eprintln!(
        "integrity trials ({label}): {} damages, {refused} refused, {served} served every \
         acknowledged message, 0 silent losses",
        damages.len()
    );
    (refused, served)
}

const DAMAGES: [Damage; 12] = [
    Damage::Flip(0.1),
    Damage::Flip(0.3),
    Damage::Flip(0.5),
    Damage::Flip(0.7),
    Damage::Flip(0.9),
    Damage::Truncate(0.9),
    Damage::Truncate(0.5),
    Damage::Garbage(0.1),
    Damage::Garbage(0.5),
    Damage::Garbage(0.8),
    Damage::DeleteData,
    Damage::Flip(0.02),
];

#[test]
fn damage_after_a_graceful_stop_is_refused_or_lost_nothing() {
    let filled = fill(false);
    let (refused, _) = run_trials(&filled, "after SIGTERM", &DAMAGES);
    assert!(refused >= 1, "at least the deleted data file is refused");
}

#[test]
fn damage_after_kill_9_is_refused_or_lost_nothing() {
    let filled = fill(true);
    let (refused, _) = run_trials(&filled, "after SIGKILL", &DAMAGES);
    assert!(refused >= 1, "at least the deleted data file is refused");
}

/// sled lays its files out again at an open and a clean stop: the same damages on a directory
/// that has been through one more start.
#[test]
fn damage_after_a_restart_is_refused_or_lost_nothing() {
    let filled = fill(false);
    let mut again = Server::start_in(filled.dir.path());
    let status = again.terminate(Duration::from_secs(20));
    assert!(
        status.is_some_and(|s| s.success()),
        "graceful stop: {status:?}"
    );
    let (refused, _) = run_trials(&filled, "after a restart", &DAMAGES);
    assert!(refused >= 1, "at least the deleted data file is refused");
}

#[test]
fn accept_data_loss_starts_says_what_was_lost_and_rewrites_the_mark() {
    let filled = fill(false);
    let dir = filled.dir.path();
    damage(dir, Damage::Truncate(0.5));
    assert_eq!(outcome(&filled, dir, "truncated to half"), Outcome::Refused);

    let mut accepted = Process::spawn(
        dir,
        &Launch {
            args: &["--accept-data-loss"],
            ..Launch::default()
        },
    );
    assert!(
        accepted.wait_listening(Duration::from_secs(20)).is_some(),
        "--accept-data-loss starts: {:?}",
        accepted.stderr()
    );
    let stderr = accepted.stderr().join("\n");
    assert!(
        stderr.contains("lost acknowledged data")
            && stderr.contains("starting with lost data")
            && stderr.contains("the log ends at seq")
            && stderr.contains("is lost"),
        "the log says what was lost:\n{stderr}"
    );
    accepted.kill();
    // The mark now matches what is left: a plain start serves again.
    let mut plain = Process::spawn(dir, &Launch::default());
    assert!(
        plain.wait_listening(Duration::from_secs(20)).is_some(),
        "{:?}",
        plain.stderr()
    );
    plain.kill();
}

#[test]
fn a_data_directory_without_a_mark_starts_and_gets_one() {
    let filled = fill(false);
    let dir = filled.dir.path();
    fs::remove_file(dir.join("durable")).unwrap();
    assert_eq!(outcome(&filled, dir, "no mark"), Outcome::ServedEverything);
    assert!(dir.join("durable").is_file());
}
