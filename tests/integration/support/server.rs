//! Starting, stopping and restarting the real `parley` binary.
//!
//! `Server::start()` runs `parley --listen 127.0.0.1:0 --data-dir <fresh tempdir>` and waits (at
//! most 20 s) for its one start-up line on stderr, `parley: listening on ADDR`. Both output pipes
//! are drained by background threads for the life of the process, so they never fill up; stderr
//! is kept and printed if the test fails. Dropping the `Server` kills the process (SIGKILL).

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use tempfile::TempDir;

const STARTUP_DEADLINE: Duration = Duration::from_secs(20);
const LISTENING: &str = "parley: listening on ";

pub struct Server {
    child: Child,
    /// The executable: this build's `parley`, or another release's.
    exe: PathBuf,
    /// The address the server listens on (port chosen by the OS).
    pub addr: SocketAddr,
    data_dir: PathBuf,
    /// Owned when `start()` made the directory; carried over by `restart()`.
    dir: Option<TempDir>,
    args: Vec<String>,
    envs: Vec<(String, String)>,
    stderr: Arc<Mutex<Vec<String>>>,
    killed: bool,
}

impl Server {
    /// A server on a fresh, empty data directory.
    pub fn start() -> Server {
        Self::start_with_args(&[])
    }

    /// A server on a fresh data directory, with extra command-line arguments.
    pub fn start_with_args(args: &[&str]) -> Server {
        Self::start_with(args, &[])
    }

    /// A server on a fresh data directory, with extra arguments and environment variables.
    pub fn start_with(args: &[&str], envs: &[(&str, &str)]) -> Server {
        let dir = tempfile::tempdir().expect("create temp dir");
        let args = args.iter().map(|s| s.to_string()).collect();
        let envs = envs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let mut server = Self::spawn(dir.path(), args, envs);
        server.dir = Some(dir);
        server
    }

    /// A server on an existing data directory (which the caller keeps alive).
    pub fn start_in(dir: &Path) -> Server {
        Self::start_in_with_args(dir, &[])
    }

    /// A server on an existing data directory (which the caller keeps alive), with extra
    /// command-line arguments.
    pub fn start_in_with_args(dir: &Path, args: &[&str]) -> Server {
        Self::start_exe_in(Path::new(env!("CARGO_BIN_EXE_parley")), dir, args)
    }

    /// Another `parley` executable (an older release's, say) on an existing data directory,
    /// with extra arguments. It must print the same start-up line.
    pub fn start_exe_in(exe: &Path, dir: &Path, args: &[&str]) -> Server {
        let args = args.iter().map(|s| s.to_string()).collect();
        Self::spawn_exe(exe, dir, args, Vec::new())
    }

    /// Kill this server (SIGKILL) and start a new one on the same data directory and arguments.
    /// The new one listens on a new port.
    pub fn restart(mut self) -> Server {
        self.kill();
        let dir = self.dir.take();
        let mut next = Self::spawn_exe(
            &self.exe,
            &self.data_dir,
            self.args.clone(),
            self.envs.clone(),
        );
        next.dir = dir;
        next
    }

    /// SIGKILL, like `kill -9`, and reap the process.
    pub fn kill(&mut self) {
        if !self.killed {
            self.killed = true;
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }

    /// SIGTERM, then wait (at most `within`) for the process to exit; returns its exit status,
    /// or `None` if it was still running at the deadline (it is then killed).
    pub fn terminate(&mut self, within: Duration) -> Option<std::process::ExitStatus> {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("run kill");
        assert!(sent.success(), "kill -TERM {pid} failed");
        let deadline = Instant::now() + within;
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                break Some(status);
            }
            if Instant::now() >= deadline {
                break None;
            }
            thread::sleep(Duration::from_millis(10)); // polling an exit, not synchronising
        };
        self.kill();
        status
    }

    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// Everything the server wrote on stderr so far.
    pub fn stderr(&self) -> Vec<String> {
        self.stderr.lock().unwrap().clone()
    }

    /// `ws://ADDR/<token>`: the messaging URL for `token` on this server's current address.
    pub fn ws_url(&self, token: &str) -> String {
        format!("ws://{}/{}", self.addr, token)
    }

    fn spawn(data_dir: &Path, args: Vec<String>, envs: Vec<(String, String)>) -> Server {
        let exe = Path::new(env!("CARGO_BIN_EXE_parley"));
        Self::spawn_exe(exe, data_dir, args, envs)
    }

    fn spawn_exe(
        exe: &Path,
        data_dir: &Path,
        args: Vec<String>,
        envs: Vec<(String, String)>,
    ) -> Server {
        let mut child = Command::new(exe)
            .arg("--listen")
            .arg("127.0.0.1:0")
            .arg("--data-dir")
            .arg(data_dir)
            .args(&args)
            .env_remove("PARLEY_JWT_SECRET")
            .envs(envs.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", exe.display()));

        // Drain stdout for the life of the process.
        let mut stdout = child.stdout.take().unwrap();
        thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while matches!(stdout.read(&mut buf), Ok(n) if n > 0) {}
        });

        // Drain stderr line by line: keep every line, and hand them to the start-up wait.
        let stderr_lines = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = mpsc::channel::<String>();
        {
            let stderr = child.stderr.take().unwrap();
            let lines = Arc::clone(&stderr_lines);
            thread::spawn(move || {
                let mut reader = BufReader::new(stderr);
                let mut raw = Vec::new();
                loop {
                    raw.clear();
                    match reader.read_until(b'\n', &mut raw) {
                        Ok(0) | Err(_) => break,
                        Ok(_) => {
                            let line = String::from_utf8_lossy(&raw).trim_end().to_string();
                            lines.lock().unwrap().push(line.clone());
                            let _ = tx.send(line); // the receiver goes away after start-up
                        }
                    }
                }
            });
        }

        let deadline = Instant::now() + STARTUP_DEADLINE;
        let addr = loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) => {
                    if let Some(rest) = line.strip_prefix(LISTENING) {
                        break rest.trim().parse::<SocketAddr>().unwrap_or_else(|e| {
                            panic!("cannot parse the address in {line:?}: {e}")
                        });
                    }
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!(
                        "parley did not print {LISTENING:?} within {STARTUP_DEADLINE:?}; stderr:\n{}",
                        stderr_lines.lock().unwrap().join("\n")
                    );
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    let status = child.wait();
                    panic!(
                        "parley exited ({status:?}) before listening; stderr:\n{}",
                        stderr_lines.lock().unwrap().join("\n")
                    );
                }
            }
        };

        Server {
            child,
            exe: exe.to_path_buf(),
            addr,
            data_dir: data_dir.to_path_buf(),
            dir: None,
            args,
            envs,
            stderr: stderr_lines,
            killed: false,
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
        if thread::panicking() {
            let lines = self.stderr();
            if lines.len() > 1 {
                eprintln!(
                    "---- parley stderr ({}) ----\n{}",
                    self.addr,
                    lines.join("\n")
                );
            }
        }
    }
}
