//! Runs the conformance kit against the stand-in (`tests/standin/`, the `conformance-standin`
//! binary), an independent in-memory server of the protocol that differs from parley wherever the
//! protocol notes allow: the kit's `core` level passes against it, seq cases included; its
//! `parley` level fails exactly where the stand-in chose differently; and each defect injected
//! into the stand-in (its hidden `--defect NAME`) fails exactly the core cases that check what it
//! breaks, with exit status 1.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use serde_json::Value;

mod kit_report;
use kit_report::{case_ids, report};

const KIT: &str = env!("CARGO_BIN_EXE_parley-conformance");
const STANDIN: &str = env!("CARGO_BIN_EXE_conformance-standin");

/// A stand-in listening on 127.0.0.1:0; killed when dropped.
struct Standin {
    child: Child,
    url: String,
}

impl Standin {
    fn start(args: &[&str]) -> Standin {
        let mut child = Command::new(STANDIN)
            .args(["--listen", "127.0.0.1:0"])
            .args(args)
            .stdout(Stdio::piped())
            .spawn()
            .expect("start conformance-standin");
        let stdout = child.stdout.take().expect("stdout is piped");
        let (sender, receiver) = mpsc::channel();
        // A reader thread, so that the wait for the address line has a deadline.
        thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = sender.send(line);
        });
        let line = receiver
            .recv_timeout(Duration::from_secs(10))
            .expect("the stand-in prints its address within 10 s");
        let url = line.trim().to_string();
        assert!(
            url.starts_with("http://127.0.0.1:"),
            "stand-in printed `{line}`"
        );
        Standin { child, url }
    }
}

impl Drop for Standin {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn kit(args: &[&str]) -> Output {
    Command::new(KIT)
        .args(args)
        .output()
        .expect("run parley-conformance")
}

/// The kit's exit status and JSON report for a run against `url`.
fn run_kit(url: &str, args: &[&str]) -> (Option<i32>, Value) {
    let output = kit(&[&["--url", url, "--json"], args].concat());
    (output.status.code(), report(&output))
}

#[test]
fn the_core_level_passes_against_the_standin() {
    let standin = Standin::start(&[]);
    let (status, report) = run_kit(&standin.url, &["--level", "core"]);
    assert_eq!(
        case_ids(&report, "fail"),
        Vec::<String>::new(),
        "{report:#}"
    );
    assert_eq!(status, Some(0));
    // In memory: nothing survives a restart, so the durability mode is not run against it.
    assert_eq!(
        case_ids(&report, "skip"),
        [
            "durability.acked_messages",
            "durability.idempotent_restart",
            "durability.rest_answers"
        ]
    );
    let passed = case_ids(&report, "pass");
    for seq_case in [
        "seq.stored",
        "seq.fanout",
        "seq.order",
        "seq.transient",
        "seq.sync",
        "seq.sync_complete",
        "sync.timestamp_pages",
    ] {
        assert!(
            passed.iter().any(|id| id == seq_case),
            "{seq_case} ran and passed"
        );
    }
    let listed = kit(&["--list", "--level", "core"]).stdout;
    assert_eq!(
        report["cases"].as_array().unwrap().len(),
        String::from_utf8_lossy(&listed).lines().count(),
        "every core case ran"
    );
    assert!(report["cases"]
        .as_array()
        .unwrap()
        .iter()
        .all(|c| c["level"] == "core"));
    assert_eq!(
        report["levels"],
        serde_json::json!({"core": {"passed": passed.len(), "failed": 0, "skipped": 3, "failed_cases": []}})
    );
}

/// parley's own choices are not the protocol's: the stand-in, which chose otherwise where the
/// notes allow it, fails exactly these.
#[test]
fn the_parley_level_tells_the_standin_apart() {
    let standin = Standin::start(&[]);
    let (status, report) = run_kit(&standin.url, &["--level", "parley", "--timeout-secs", "2"]);
    assert_eq!(status, Some(1));
    assert_eq!(
        case_ids(&report, "fail"),
        [
            "rest.healthz",
            "rest.register.invalid",
            "rest.login.jwt",
            "rest.session.token",
            "rest.session.limits",
            "rest.group.name_limits",
            "rest.error.body_too_large",
            "rest.error.chunked",
            "rest.error.head_too_large",
            "rest.users.lookup",
            "authz.group.unknown_user",
            "authz.body.caller",
            "ws.upgrade.no_upgrade",
            "ws.send.data_limit",
            "ws.receipt.idempotent",
            "ws.error.binary",
            "ws.error.bad_body_strict",
            "ws.close.too_large",
            "multidevice.typing_others_only",
            // It has no edit or delete (issue #20).
            "edit.live_and_sync",
            "delete.owner_tombstone",
            "edit.forbidden",
        ],
        "{report:#}"
    );
    assert_eq!(report["levels"]["parley"]["failed"], 22);
    assert!(report["levels"].get("core").is_none());
}

/// Starts the stand-in with `defect` and checks that the core level fails exactly `cases`.
fn caught(defect: &str, cases: &[&str]) {
    let standin = Standin::start(&["--defect", defect]);
    let (status, report) = run_kit(&standin.url, &["--level", "core", "--timeout-secs", "5"]);
    assert_eq!(
        case_ids(&report, "fail"),
        cases,
        "--defect {defect}:\n{report:#}"
    );
    assert_eq!(status, Some(1), "--defect {defect}");
    assert_eq!(
        report["levels"]["core"]["failed_cases"],
        serde_json::json!(cases)
    );
}

#[test]
fn an_ack_without_the_client_id_is_caught() {
    caught("no-ack-id", &["ws.send.ack"]);
}

#[test]
fn a_join_without_authorization_is_caught() {
    // Letting anyone add anyone also lets a removed user add themselves back.
    caught(
        "join-unauthorized",
        &["authz.join.forbidden", "authz.join.removed"],
    );
}

#[test]
fn a_sync_cursor_that_skips_an_event_is_caught() {
    caught("sync-skips", &["seq.sync", "seq.sync_complete"]);
}

#[test]
fn an_ack_reusing_its_message_seq_is_caught() {
    caught(
        "seq-reuse",
        &["seq.fanout", "seq.order", "seq.sync", "seq.sync_complete"],
    );
}

#[test]
fn a_timestamp_page_ending_inside_a_millisecond_is_caught() {
    caught("ms-split", &["sync.paging", "sync.timestamp_pages"]);
}

#[test]
fn a_typing_event_with_a_seq_is_caught() {
    caught("typing-seq", &["seq.transient"]);
}

#[test]
fn the_standin_refuses_unknown_defects_and_arguments() {
    for (args, problem) in [
        (&["--defect", "bogus"][..], "unknown defect `bogus`"),
        (&["--bogus"], "unexpected `--bogus`"),
    ] {
        let output = Command::new(STANDIN)
            .args(args)
            .output()
            .expect("run the stand-in");
        assert_eq!(output.status.code(), Some(2), "{args:?}");
        assert!(
            String::from_utf8_lossy(&output.stderr).contains(problem),
            "{args:?}"
        );
    }
}
