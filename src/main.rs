//! The `parley` binary: parse the configuration, bind, run; errors become the exit code.

use std::process::ExitCode;

use parley::config;
use parley::server::Server;

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
    let config = config::parse(std::env::args_os()).unwrap_or_else(|err| err.exit());
    parley::log::install(config.log.clone());
    log::info!(
        "retry index: up to {} sends in memory (--client-ids-in-memory)",
        config.client_ids.max_entries
    );
    let mut server = match Server::bind(&config) {
        Ok(server) => server,
        Err(err) => {
            eprintln!("parley: cannot start: {err}");
            return ExitCode::FAILURE;
        }
    };
    // Tests and scripts read the address from this exact line.
    eprintln!("parley: listening on {}", server.local_addr());
    match server.run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("parley: stopped: {err}");
            ExitCode::FAILURE
        }
    }
}
