//! A `parley` process under the test's full control, for what `support::Server` does not do:
//! killing it before it has started listening, lowering its file-descriptor limit, and
//! watching its exit code.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

const LISTENING: &str = "parley: listening on ";

pub struct Process {
    child: Child,
    lines: Receiver<String>,
    stderr: Arc<Mutex<Vec<String>>>,
    /// Reads stderr until the process closes it.
    reader: Option<thread::JoinHandle<()>>,
    pub started: Instant,
    reaped: bool,
}

/// How a `Process` is started.
#[derive(Default)]
pub struct Launch<'a> {
    pub args: &'a [&'a str],
    pub envs: &'a [(&'a str, &'a str)],
    /// `ulimit -n` for the process (through `sh`), to make `accept` fail with EMFILE.
    pub max_open_files: Option<u32>,
}

impl Process {
    /// Starts `parley --listen 127.0.0.1:0 --data-dir DIR ARGS` without waiting for anything.
    pub fn spawn(data_dir: &Path, launch: &Launch) -> Process {
        let exe = env!("CARGO_BIN_EXE_parley");
        let mut command = match launch.max_open_files {
            Some(limit) => {
                let mut sh = Command::new("sh");
                sh.arg("-c")
                    .arg(format!("ulimit -n {limit} && exec \"$0\" \"$@\""))
                    .arg(exe);
                sh
            }
            None => Command::new(exe),
        };
        command
            .arg("--listen")
            .arg("127.0.0.1:0")
            .arg("--data-dir")
            .arg(data_dir)
            .args(launch.args)
            .env_remove("PARLEY_JWT_SECRET")
            .envs(launch.envs.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let started = Instant::now();
        let mut child = command
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {exe}: {e}"));
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let (tx, lines) = mpsc::channel();
        let pipe = child.stderr.take().unwrap();
        let kept = Arc::clone(&stderr);
        let reader = thread::spawn(move || {
            for line in BufReader::new(pipe).lines() {
                let Ok(line) = line else { break };
                kept.lock().unwrap().push(line.clone());
                let _ = tx.send(line);
            }
        });
        Process {
            child,
            lines,
            stderr,
            reader: Some(reader),
            started,
            reaped: false,
        }
    }

    /// Waits for the `listening on` line; `None` if the process exits first or `within` passes.
    pub fn wait_listening(&mut self, within: Duration) -> Option<SocketAddr> {
        let deadline = Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    if let Some(addr) = line.strip_prefix(LISTENING) {
                        return Some(addr.trim().parse().expect("address in the listening line"));
                    }
                }
                Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => return None,
            }
        }
    }

    /// Starts and waits (at most 20 s) for the listening line; panics with stderr otherwise.
    pub fn start(data_dir: &Path, launch: &Launch) -> (Process, SocketAddr) {
        let mut process = Process::spawn(data_dir, launch);
        match process.wait_listening(Duration::from_secs(20)) {
            Some(addr) => (process, addr),
            None => panic!(
                "parley did not start; stderr:\n{}",
                process.stderr().join("\n")
            ),
        }
    }

    /// Waits (at most `within`) for the process to exit on its own; its whole stderr is then
    /// in `stderr()`.
    pub fn wait_exit(&mut self, within: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                self.reaped = true;
                if let Some(reader) = self.reader.take() {
                    let _ = reader.join();
                }
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            thread::sleep(Duration::from_millis(10)); // polling an exit, not synchronising
        }
    }

    /// SIGKILL, like `kill -9`, and reap.
    pub fn kill(&mut self) {
        if !self.reaped {
            self.reaped = true;
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Every stderr line so far.
    pub fn stderr(&self) -> Vec<String> {
        self.stderr.lock().unwrap().clone()
    }

    /// Waits (at most `within`) until stderr has `count` lines containing `needle`.
    pub fn wait_for_lines(&self, needle: &str, count: usize, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        loop {
            if self.count_lines(needle) >= count {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            thread::sleep(Duration::from_millis(5)); // polling a log, not synchronising
        }
    }

    pub fn count_lines(&self, needle: &str) -> usize {
        self.stderr
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.contains(needle))
            .count()
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.kill();
        if thread::panicking() {
            eprintln!("---- parley stderr ----\n{}", self.stderr().join("\n"));
        }
    }
}
