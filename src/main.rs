//! The `parley` binary: parse the configuration, bind, run; errors become the exit code. Or one
//! of the operator's tools: `parley check DIR`, `parley backup DEST`.

use std::process::ExitCode;

use parley::config::{self, Command, Config};
use parley::server::Server;
use parley::store::{backup, check};

/// Why mimalloc and not the system's malloc: see Cargo.toml.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    // mimalloc is built without its huge-page advice, but on a host whose transparent huge
    // pages are `always` its arenas would get them anyway, and every sparsely used block would
    // be resident 2 MiB at a time (docs/BENCHMARKS.md, "Changes of 2026-12-06 (fifth session)").
    #[cfg(target_os = "linux")]
    // SAFETY: sets a flag of this process; no memory is touched.
    unsafe {
        libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0);
    }
    // Help and version on stdout with 0, bad arguments on stderr with 2.
    match config::command(std::env::args_os()).unwrap_or_else(|err| err.exit()) {
        Command::Serve(config) => serve(&config),
        Command::Check { dir } => check_dir(&dir),
        Command::Backup { data_dir, dest } => match backup::backup(&data_dir, &dest) {
            Ok(done) => {
                println!("parley backup: {done}");
                ExitCode::SUCCESS
            }
            Err(err) => {
                eprintln!("parley backup: {err}");
                ExitCode::FAILURE
            }
        },
    }
}

/// `parley check DIR`: the report on stdout; 0 when whole, 1 with the problems otherwise.
fn check_dir(dir: &std::path::Path) -> ExitCode {
    parley::log::install(parley::log::Filter::default());
    match check::check(dir) {
        Ok(report) => {
            print!("{report}");
            if report.is_whole() {
                println!("{}: whole", dir.display());
                ExitCode::SUCCESS
            } else {
                println!(
                    "{}: NOT whole ({} problems)",
                    dir.display(),
                    report.problems.len()
                );
                ExitCode::FAILURE
            }
        }
        Err(err) => {
            eprintln!("parley check: {err}");
            ExitCode::FAILURE
        }
    }
}

fn serve(config: &Config) -> ExitCode {
    parley::log::install(config.log.clone());
    log::info!(
        "retry index: up to {} sends in memory (--client-ids-in-memory)",
        config.client_ids.max_entries
    );
    let mut server = match Server::bind(config) {
        Ok(server) => server,
        Err(err) => {
            eprintln!("parley: cannot start: {err}");
            return ExitCode::FAILURE;
        }
    };
    if let Err(err) = backup::write_pid(&config.data_dir) {
        log::warn!(
            "cannot write {}: {err}; `parley backup` cannot reach this server",
            backup::PID
        );
    }
    // Tests and scripts read the address from this exact line.
    eprintln!("parley: listening on {}", server.local_addr());
    let result = server.run();
    backup::remove_pid(&config.data_dir);
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("parley: stopped: {err}");
            ExitCode::FAILURE
        }
    }
}
