//! The command line and base URLs.

use super::*;

fn parse(args: &[&str]) -> Result<Options, String> {
    Args::try_parse_from(std::iter::once(&"parley-conformance").chain(args))
        .map(Options::from)
        .map_err(|e| e.to_string())
}

#[test]
fn parses_flags() {
    let options = parse(&[
        "--url=http://127.0.0.1:9",
        "--filter",
        "sync.",
        "--filter",
        "walkthrough",
        "--skip=seq.",
        "--level",
        "core",
        "--json",
        "--timeout-secs",
        "3",
    ])
    .unwrap();
    assert_eq!(options.url, "http://127.0.0.1:9");
    assert_eq!(options.selection.filters, vec!["sync.", "walkthrough"]);
    assert_eq!(options.selection.skips, vec!["seq."]);
    assert_eq!(options.selection.level, Some(Level::Core));
    assert!(options.json && !options.slow && options.restarts.is_none());
    assert_eq!(options.timeout, Duration::from_secs(3));
}

#[test]
fn durability_needs_both_commands() {
    assert!(parse(&["--kill-cmd", "true"]).is_err());
    let options = parse(&["--kill-cmd", "k", "--restart-cmd", "r"]).unwrap();
    let restarts = options.restarts.unwrap();
    assert_eq!(
        (restarts.kill_cmd.as_str(), restarts.restart_cmd.as_str()),
        ("k", "r")
    );
    assert!(parse(&["--restart-cmd", "true"]).is_err());
    assert!(parse(&["--bogus"]).is_err());
    assert!(parse(&["--timeout-secs", "0"]).is_err());
    assert!(parse(&["--timeout-secs=601"]).is_err());
}

#[test]
fn levels() {
    assert_eq!(parse(&[]).unwrap().selection.level, None);
    assert_eq!(parse(&["--level", "all"]).unwrap().selection.level, None);
    assert_eq!(
        parse(&["--level=parley"]).unwrap().selection.level,
        Some(Level::Parley)
    );
    let strict = parse(&["--level", "strict"]).err().unwrap_or_default();
    assert!(strict.contains("expected core, parley or all"), "{strict}");
}

#[test]
fn base_urls() {
    let base = BaseUrl::parse("http://127.0.0.1:3000/").unwrap();
    assert_eq!(base.authority, "127.0.0.1:3000");
    assert_eq!(base.ws_url("abc"), "ws://127.0.0.1:3000/abc");
    let prefixed = BaseUrl::parse("http://localhost/chat").unwrap();
    assert_eq!(prefixed.authority, "localhost:80");
    assert_eq!(prefixed.target("/users"), "/chat/users");
    assert!(BaseUrl::parse("https://x").is_err());
    assert!(BaseUrl::parse("127.0.0.1:3000").is_err());
}
