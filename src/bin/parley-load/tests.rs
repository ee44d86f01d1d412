//! The command line: both flag syntaxes, defaults and floors, refusals.

use super::*;

fn parse_args(args: &[&str]) -> Result<Cli, String> {
    parse(std::iter::once(&"parley-load").chain(args)).map_err(|e| e.to_string())
}

fn refused(args: &[&str]) -> String {
    match parse_args(args) {
        Ok(_) => panic!("{args:?} accepted"),
        Err(message) => message,
    }
}

#[test]
fn both_flag_syntaxes() {
    for args in [
        &[
            "fanout",
            "--clients",
            "8",
            "--url",
            "http://127.0.0.1:9",
            "--json",
        ][..],
        &[
            "--clients=8",
            "fanout",
            "--url=http://127.0.0.1:9",
            "--json",
        ],
    ] {
        let cli = parse_args(args).unwrap();
        assert_eq!(cli.scenario, "fanout");
        assert_eq!(cli.options.clients, 8, "{args:?}");
        assert_eq!(cli.options.endpoint.host, "127.0.0.1:9", "{args:?}");
        assert!(cli.json);
    }
}

#[test]
fn defaults_and_floors() {
    let cli = parse_args(&["idle", "--group", "0", "--rate=0", "--target", "relay"]).unwrap();
    let o = &cli.options;
    assert_eq!(
        (o.clients, o.group_size, o.window, o.conns),
        (200, 1, 4, 10_000)
    );
    assert_eq!((o.duration, o.rate, o.logins_per_sec), (10.0, 1.0, 20.0));
    assert_eq!(o.target, Target::Relay);
    assert!(!o.client_ids && o.server_pid.is_none() && cli.label.is_none());
}

#[test]
fn bad_arguments() {
    let negative = refused(&["rate", "--rate=-1"]);
    assert!(negative.contains("--rate"), "{negative}");
    let word = refused(&["rate", "--rate=lots"]);
    assert!(word.contains("expected a non-negative number"), "{word}");
    assert!(parse_args(&["rate", "--target", "nginx"]).is_err());
    assert!(parse_args(&["rate", "--server-pid", "x"]).is_err());
    assert!(parse_args(&["walk"]).is_err());
    assert!(parse_args(&["rate", "idle"]).is_err());
    assert!(parse_args(&["rate", "--bogus"]).is_err());
    assert!(parse_args(&["--clients", "3"]).is_err(), "no scenario");
}
