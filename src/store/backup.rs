//! `parley backup DEST`: a consistent copy of a data directory, with every message acknowledged
//! before the backup started.
//!
//! When no server holds the directory (sled's lock is free), the tool takes the lock itself and
//! copies the files. When a server runs, the tool writes its request (`DIR/backup-request`: a
//! nonce and DEST) and sends the server SIGUSR1 (its pid is in `DIR/parley.pid`); at the end of
//! its next tick the loop waits for the flusher to make every commit durable, then, with no
//! write in flight, copies the files and writes `DIR/backup-result`, which the tool waits for.
//! Either way the copy is the store as a crash at that moment would leave it, which sled
//! recovers from, and its high-water mark is the store's own count at the copy.

use std::fs::{self, File};
use std::io::{self, Write};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::integrity::{mark_path, STORE_DIR};
use super::mark::{self, Mark};

pub const REQUEST: &str = "backup-request";
pub const RESULT: &str = "backup-result";
pub const PID: &str = "parley.pid";
/// The JWT secret a data directory keeps (see `crate::auth`): copied, so tokens survive a
/// restore.
const SECRET: &str = "jwt-secret";
/// How long the tool waits for a running server's copy.
const SERVER_DEADLINE: Duration = Duration::from_secs(3600);

/// Makes the copy of `data_dir` in `dest`; returns how it was made.
pub fn backup(data_dir: &Path, dest: &Path) -> Result<String, String> {
    if dest.exists() {
        return Err(format!(
            "{} exists; the backup goes to a new directory",
            dest.display()
        ));
    }
    let data = data_dir.join(STORE_DIR).join("db");
    let lock = File::open(&data).map_err(|e| format!("{}: {e}", data.display()))?;
    // SAFETY: flock on a descriptor this function owns.
    let free = unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0;
    if free {
        // The lock is held until `lock` drops, so no server starts during the copy.
        let found = mark::read(&mark_path(data_dir))?;
        copy(data_dir, dest, found).map_err(|e| format!("copying to {}: {e}", dest.display()))?;
        return Ok(format!(
            "no server running: copied {} to {}",
            data_dir.display(),
            dest.display()
        ));
    }
    ask_server(data_dir, dest)
}

fn ask_server(data_dir: &Path, dest: &Path) -> Result<String, String> {
    let pid_file = data_dir.join(PID);
    let pid: libc::pid_t = fs::read_to_string(&pid_file)
        .ok()
        .and_then(|text| text.trim().parse().ok())
        .ok_or_else(|| {
            format!(
                "a server holds {} but {} does not name it",
                data_dir.display(),
                pid_file.display()
            )
        })?;
    // A stale file could name another process now, which SIGUSR1 would end: only a parley is
    // signalled.
    let name = fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
    if !name.trim_end().starts_with("parley") {
        return Err(format!(
            "a server holds {} but the pid {pid} in {} is not a running parley ({})",
            data_dir.display(),
            pid_file.display(),
            if name.is_empty() {
                "no such process"
            } else {
                name.trim_end()
            }
        ));
    }
    let dest = std::path::absolute(dest).map_err(|e| e.to_string())?;
    let nonce = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos())
        ^ u128::from(std::process::id());
    let result = data_dir.join(RESULT);
    let _ = fs::remove_file(&result);
    write_whole(
        &data_dir.join(REQUEST),
        format!("{nonce}\n{}\n", dest.display()).as_bytes(),
    )
    .map_err(|e| format!("writing the request: {e}"))?;
    // SAFETY: sends a signal; no memory is touched.
    if unsafe { libc::kill(pid, libc::SIGUSR1) } != 0 {
        return Err(format!(
            "cannot signal the server (pid {pid}): {}",
            io::Error::last_os_error()
        ));
    }
    let deadline = Instant::now() + SERVER_DEADLINE;
    while Instant::now() < deadline {
        if let Ok(text) = fs::read_to_string(&result) {
            if let Some(answer) = text.strip_prefix(&format!("{nonce}\n")) {
                let answer = answer.trim_end();
                return match answer.strip_prefix("error: ") {
                    Some(err) => Err(err.to_string()),
                    None => Ok(answer.to_string()),
                };
            }
        }
        std::thread::sleep(Duration::from_millis(20)); // polling a file the server writes
    }
    Err(format!(
        "the server (pid {pid}) did not answer within {SERVER_DEADLINE:?}"
    ))
}

/// The server's side: when a request is waiting, makes the copy (the caller has made every
/// commit durable and writes nothing meanwhile) with `stored`, the store's own mark, and
/// answers it.
pub fn serve_request(data_dir: &Path, stored: Result<Mark, String>) {
    let Ok(request) = fs::read_to_string(data_dir.join(REQUEST)) else {
        log::warn!("SIGUSR1 without a backup request in {}", data_dir.display());
        return;
    };
    let _ = fs::remove_file(data_dir.join(REQUEST));
    let mut lines = request.lines();
    let (Some(nonce), Some(dest)) = (lines.next(), lines.next()) else {
        log::warn!("a malformed backup request in {}", data_dir.display());
        return;
    };
    let dest = PathBuf::from(dest);
    let started = Instant::now();
    let answer = match stored {
        // The store cannot write (a full disk): what is on disk is not everything acknowledged.
        Err(why) => format!("error: the store cannot write ({why}); no backup taken"),
        Ok(_) if dest.exists() => format!("error: {} exists", dest.display()),
        Ok(stored) => match copy(data_dir, &dest, Some(stored)) {
            Ok(()) => {
                log::info!(
                    "backup: copied to {} at commit {} in {:?}",
                    dest.display(),
                    stored.commits,
                    started.elapsed()
                );
                format!(
                    "copied {} at commit {} to {}",
                    data_dir.display(),
                    stored.commits,
                    dest.display()
                )
            }
            Err(err) => {
                log::warn!("backup to {} failed: {err}", dest.display());
                format!("error: copying to {}: {err}", dest.display())
            }
        },
    };
    if let Err(err) = write_whole(
        &data_dir.join(RESULT),
        format!("{nonce}\n{answer}\n").as_bytes(),
    ) {
        log::warn!("cannot answer the backup request: {err}");
    }
}

/// Copies sled's directory, the JWT secret and the mark (`mark`, or none) into `dest`, every
/// file and directory synced.
fn copy(data_dir: &Path, dest: &Path, mark: Option<Mark>) -> io::Result<()> {
    fs::create_dir_all(dest)?;
    copy_tree(&data_dir.join(STORE_DIR), &dest.join(STORE_DIR))?;
    let secret = data_dir.join(SECRET);
    if secret.is_file() {
        fs::copy(&secret, dest.join(SECRET))?;
        File::open(dest.join(SECRET))?.sync_all()?;
    }
    if let Some(mark) = mark {
        mark::write(&mark_path(dest), mark)?;
    }
    File::open(dest)?.sync_all()
}

fn copy_tree(from: &Path, to: &Path) -> io::Result<()> {
    fs::create_dir(to)?;
    for entry in fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_tree(&entry.path(), &target)?;
        } else {
            fs::copy(entry.path(), &target)?;
            File::open(&target)?.sync_all()?;
        }
    }
    File::open(to)?.sync_all()
}

/// Writes `bytes` to `path` whole (a synced temporary file renamed over it).
fn write_whole(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let temporary = path.with_extension("tmp");
    let mut file = File::create(&temporary)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    fs::rename(&temporary, path)
}

/// Records this process as the server of `data_dir`, for `parley backup`.
pub fn write_pid(data_dir: &Path) -> io::Result<()> {
    write_whole(
        &data_dir.join(PID),
        format!("{}\n", std::process::id()).as_bytes(),
    )
}

/// Removes the record [`write_pid`] made, at a clean stop.
pub fn remove_pid(data_dir: &Path) {
    let _ = fs::remove_file(data_dir.join(PID));
}
