//! `conformance-standin`: a small, independent server of the protocol (the walkthrough and the
//! protocol notes, seq included) that differs from parley wherever the notes allow: UUID-shaped
//! messaging tokens, no `/healthz`, chunked bodies decoded, its own error texts and limits. It
//! holds everything in memory, runs a thread per connection, and shares no code with parley: the
//! conformance kit's `core` level must pass against it (tests/conformance_standin.rs).
//!
//! `conformance-standin [--listen ADDR]` prints `http://ADDR` on stdout once it listens.

mod http;
mod state;
mod ws;

use std::io::Write;
use std::net::TcpListener;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::thread;

use state::{Defect, State};

fn main() -> ExitCode {
    let mut listen = "127.0.0.1:0".to_string();
    let mut defect = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match (arg.as_str(), args.next()) {
            ("--listen", Some(addr)) => listen = addr,
            // Hidden: the tests inject one defect to show the kit catches it.
            ("--defect", Some(name)) => match Defect::parse(&name) {
                Some(found) => defect = Some(found),
                None => return usage(&format!("unknown defect `{name}`")),
            },
            _ => return usage(&format!("unexpected `{arg}`")),
        }
    }
    let listener = match TcpListener::bind(&listen) {
        Ok(listener) => listener,
        Err(err) => return usage(&format!("cannot listen on {listen}: {err}")),
    };
    let addr = listener
        .local_addr()
        .expect("a bound listener has an address");
    println!("http://{addr}");
    let _ = std::io::stdout().flush();
    let state = Arc::new(Mutex::new(State::new(defect)));
    for stream in listener.incoming().flatten() {
        let state = Arc::clone(&state);
        thread::spawn(move || http::serve(stream, &state));
    }
    ExitCode::SUCCESS
}

fn usage(problem: &str) -> ExitCode {
    eprintln!("conformance-standin: {problem}\nusage: conformance-standin [--listen ADDR]");
    ExitCode::from(2)
}
