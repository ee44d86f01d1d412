//! `parley check DIR` and `parley backup DEST` (issue #18): the check passes on a whole
//! directory with the right counts and fails, saying why, on a damaged one or one a server holds;
//! a backup taken while the server runs, restored after the directory is destroyed, serves every
//! message acknowledged before it over a real WebSocket.

use std::collections::BTreeSet;
use std::fs;
use std::path::Path;
use std::process::{Command, Output};

use super::integrity::{copy_dir, damage, fill, Damage};
use crate::support::*;

fn parley(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_parley"))
        .args(args)
        .env_remove("PARLEY_DATA_DIR")
        .output()
        .expect("run parley")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn check(dir: &Path) -> (bool, String, String) {
    let out = parley(&["check", dir.to_str().unwrap()]);
    (out.status.success(), text(&out.stdout), text(&out.stderr))
}

#[test]
fn check_counts_a_whole_directory_and_names_the_loss_in_a_damaged_one() {
    let filled = fill(false);
    // Damage either shows as a loss, or (a byte sled no longer needed) lost nothing.
    let copy = tempfile::tempdir().unwrap();
    let mut detected = 0;
    for (i, how) in [
        Damage::Truncate(0.5),
        Damage::Truncate(0.1),
        Damage::Flip(0.3),
    ]
    .into_iter()
    .enumerate()
    {
        let damaged = copy.path().join(format!("damaged-{i}"));
        copy_dir(filled.dir.path(), &damaged);
        damage(&damaged, how);
        let (ok, stdout, stderr) = check(&damaged);
        eprintln!(
            "check after {how:?}: {}",
            stdout.trim_end().replace('\n', "; ")
        );
        if ok {
            assert!(
                stdout.contains(&format!("messages {}", filled.acked.len())),
                "{how:?}: check passes a store that lost messages: {stdout}{stderr}"
            );
        } else {
            assert!(
                stdout.contains("lost acknowledged data") && stdout.contains("NOT whole"),
                "{how:?}: {stdout}{stderr}"
            );
            detected += 1;
        }
    }
    assert!(detected > 0, "no damage was detected");

    let (ok, stdout, stderr) = check(filled.dir.path());
    assert!(ok, "check of a whole directory: {stdout}{stderr}");
    assert!(
        stdout.contains("users 1, sessions 1, groups 1, memberships 1, receipts 0")
            && stdout.contains(&format!("messages {}", filled.acked.len()))
            && stdout.contains(": whole"),
        "{stdout}"
    );

    let gone = copy.path().join("gone");
    copy_dir(filled.dir.path(), &gone);
    damage(&gone, Damage::DeleteData);
    let (ok, _, stderr) = check(&gone);
    assert!(!ok && stderr.contains("no store"), "{stderr}");
}

#[test]
fn check_refuses_a_directory_a_server_holds() {
    let server = Server::start();
    let (ok, stdout, stderr) = check(server.data_dir());
    assert!(!ok, "{stdout}");
    assert!(stderr.contains("in use (sled's lock)"), "{stderr}");
}

/// Every message id `user` can sync.
fn synced(server: &Server, user: &User) -> BTreeSet<String> {
    let mut ws = server.connect(user);
    ws.sync_all(None)
        .iter()
        .filter(|ev| ty(ev) == 20)
        .map(|ev| ev["body"]["message_id"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn a_backup_taken_while_serving_restores_every_message_acknowledged_before_it() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut server = Server::start_in(&data);
    let user = server.user("saver");
    let group = server.create_group(&user, "archive", &[]);
    let mut ws = server.connect(&user);
    let mut before = BTreeSet::new();
    for i in 0..100 {
        let ack = ws.send_and_ack(&group, &format!("before {i}"));
        before.insert(ack["body"]["message_id"].as_str().unwrap().to_string());
    }

    let dest = dir.path().join("backup");
    let out = parley(&[
        "backup",
        "--data-dir",
        data.to_str().unwrap(),
        dest.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "backup while serving: {}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    assert!(
        text(&out.stdout).contains("at commit"),
        "{}",
        text(&out.stdout)
    );
    // The server goes on serving after the copy.
    for i in 0..20 {
        ws.send_and_ack(&group, &format!("after {i}"));
    }
    drop(ws);

    let (ok, stdout, stderr) = check(&dest);
    assert!(ok, "check of the backup: {stdout}{stderr}");

    // Destroy the server and its directory; restore: the backup moved into place.
    server.kill();
    fs::remove_dir_all(&data).unwrap();
    fs::rename(&dest, &data).unwrap();
    let restored = Server::start_in(&data);
    let have = synced(&restored, &user);
    let missing: Vec<_> = before.difference(&have).collect();
    assert!(
        missing.is_empty(),
        "{} of {} messages acknowledged before the backup are missing after the restore",
        missing.len(),
        before.len()
    );
    drop(restored);

    // A second backup to an existing directory is refused; offline, the tool copies itself.
    let out = parley(&[
        "backup",
        "--data-dir",
        data.to_str().unwrap(),
        data.to_str().unwrap(),
    ]);
    assert!(!out.status.success() && text(&out.stderr).contains("exists"));
    let offline = dir.path().join("offline");
    let out = parley(&[
        "backup",
        "--data-dir",
        data.to_str().unwrap(),
        offline.to_str().unwrap(),
    ]);
    assert!(
        out.status.success() && text(&out.stdout).contains("no server running"),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    let (ok, stdout, stderr) = check(&offline);
    assert!(ok, "check of the offline backup: {stdout}{stderr}");
}

/// A pid file that names another process (stale, after a crash and pid reuse) is never
/// signalled: SIGUSR1 would end it. Here it names this test process.
#[test]
fn backup_never_signals_a_process_that_is_not_parley() {
    let server = Server::start();
    let data = server.data_dir().to_path_buf();
    fs::write(data.join("parley.pid"), format!("{}\n", std::process::id())).unwrap();
    let dest = tempfile::tempdir().unwrap().path().join("copy");
    let out = parley(&[
        "backup",
        "--data-dir",
        data.to_str().unwrap(),
        dest.to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("is not a running parley"),
        "{}",
        text(&out.stderr)
    );
    assert!(!dest.exists());
}
