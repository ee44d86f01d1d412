use super::*;

/// Tests that set `PARLEY_*` variables take turns: clap reads the process's environment.
static ENVIRONMENT: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Parses `args` with exactly the `PARLEY_*` variables `env` (the rest removed meanwhile).
fn run(args: &[&str], env: &[(&str, &str)]) -> Result<Config, String> {
    let _turn = ENVIRONMENT.lock().unwrap_or_else(|e| e.into_inner());
    let saved: Vec<(String, String)> = std::env::vars()
        .filter(|(key, _)| key.starts_with("PARLEY_"))
        .collect();
    for (key, _) in &saved {
        std::env::remove_var(key);
    }
    for (key, value) in env {
        std::env::set_var(key, value);
    }
    let parsed = parse(std::iter::once(&"parley").chain(args)).map_err(|e| e.to_string());
    for (key, _) in env {
        std::env::remove_var(key);
    }
    for (key, value) in saved {
        std::env::set_var(key, value);
    }
    parsed
}

#[test]
fn defaults() {
    let config = run(&[], &[]).unwrap();
    assert_eq!(config.listen, "127.0.0.1:3000".parse().unwrap());
    assert_eq!(config.data_dir, PathBuf::from("./parley-data"));
    assert_eq!(config.public_url, None);
}

#[test]
fn flags_override_environment() {
    let config = run(
        &["--listen", "127.0.0.1:0", "--data-dir=/tmp/x"],
        &[
            ("PARLEY_LISTEN", "0.0.0.0:9"),
            ("PARLEY_PUBLIC_URL", "https://chat.example.com/"),
        ],
    )
    .unwrap();
    assert_eq!(config.listen, "127.0.0.1:0".parse().unwrap());
    assert_eq!(config.data_dir, PathBuf::from("/tmp/x"));
    assert_eq!(config.public_url.as_deref(), Some("wss://chat.example.com"));
}

#[test]
fn limits_and_switches() {
    let config = run(
        &[
            "--auth-rate",
            "0",
            "--max-connections-per-ip=5",
            "--echo-endpoint",
        ],
        &[(
            "PARLEY_ALLOWED_ORIGINS",
            "https://a.example, http://b.example/",
        )],
    )
    .unwrap();
    assert_eq!(config.limits.auth_rate_per_minute, 0);
    assert_eq!(config.limits.max_connections_per_ip, 5);
    assert!(config.echo_endpoint);
    assert_eq!(
        config.allowed_origins,
        vec!["https://a.example", "http://b.example"]
    );
    assert!(run(&["--hash-workers", "0"], &[]).is_err());
}

#[test]
fn memory_for_the_client_id_index() {
    assert_eq!(
        mem_total_bytes("MemFree: 1 kB\nMemTotal:       24588412 kB\n"),
        Some(24588412 * 1024)
    );
    assert_eq!(mem_total_bytes("MemFree: 1 kB\n"), None);
    let files = |files: &'static [(&'static str, &'static str)]| {
        move |path: &str| {
            files
                .iter()
                .find(|(name, _)| *name == path)
                .map(|(_, text)| text.to_string())
        }
    };
    // cgroup v2: the unit's own limit, below the root's "max"; a parent's lower one counts.
    let v2 = files(&[
        ("/sys/fs/cgroup/memory.max", "max\n"),
        ("/sys/fs/cgroup/system.slice/memory.max", "max\n"),
        (
            "/sys/fs/cgroup/system.slice/parley.service/memory.max",
            "2147483648\n",
        ),
    ]);
    let own = "0::/system.slice/parley.service\n";
    assert_eq!(cgroup_memory_limit(own, v2), Some(2147483648));
    let parent = files(&[
        ("/sys/fs/cgroup/a/memory.max", "1000\n"),
        ("/sys/fs/cgroup/a/b/memory.max", "max\n"),
    ]);
    assert_eq!(cgroup_memory_limit("0::/a/b\n", parent), Some(1000));
    // No limit anywhere, or no files: none.
    assert_eq!(cgroup_memory_limit(own, files(&[])), None);
    // cgroup v1: the memory controller's line; "no limit" is a huge number.
    let v1 = files(&[(
        "/sys/fs/cgroup/memory/process_api/memory.limit_in_bytes",
        "9223372036854771712\n",
    )]);
    let lines = "12:cpu,cpuacct:/x\n4:memory:/process_api\n";
    assert_eq!(cgroup_memory_limit(lines, v1), Some(9223372036854771712));
    assert_eq!(cgroup_memory_limit("1:cpu:/x\n", v1), None);
}

#[test]
fn client_id_index() {
    let config = run(&[], &[]).unwrap();
    assert_eq!(
        config.client_ids.window_ms,
        ClientIdLimits::DEFAULT.window_ms
    );
    assert_eq!(
        config.client_ids.max_entries,
        default_client_ids_in_memory()
    );
    assert!((100_000..=16_000_000).contains(&config.client_ids.max_entries));
    let config = run(
        &["--client-id-hours", "48"],
        &[("PARLEY_CLIENT_IDS_IN_MEMORY", "0")],
    )
    .unwrap();
    assert_eq!(config.client_ids.window_ms, 48 * 60 * 60 * 1000);
    assert_eq!(config.client_ids.max_entries, 0);
    // The protocol promises at least a day.
    let refused = run(&["--client-id-hours", "23"], &[]).err().unwrap();
    assert!(refused.contains("from 24"), "{refused}");
}

#[test]
fn rejects_bad_input() {
    assert!(run(&["--nope"], &[]).is_err());
    assert!(run(&["--listen"], &[]).is_err());
    assert!(run(&["--public-url", "ftp://x"], &[]).is_err());
    assert!(
        run(&["--echo-endpoint", "1"], &[]).is_err(),
        "=1 or nothing"
    );
    let short = run(&[], &[("PARLEY_JWT_SECRET", "short")]).unwrap_err();
    assert!(
        short.contains("PARLEY_JWT_SECRET must be at least 32 bytes"),
        "{short}"
    );
    let log = run(&[], &[("PARLEY_LOG", "loud")]).unwrap_err();
    assert!(log.contains("PARLEY_LOG=loud"), "{log}");
    let log = run(&[], &[("PARLEY_LOG", "info,sled=loud")]).unwrap_err();
    assert!(log.contains("PARLEY_LOG=info,sled=loud: "), "{log}");
}

#[test]
fn both_flag_syntaxes() {
    for args in [
        &[
            "--cache-mb",
            "8",
            "--public-url",
            "http://h:1",
            "--hash-workers",
            "3",
        ][..],
        &[
            "--cache-mb=8",
            "--public-url=http://h:1",
            "--hash-workers=3",
        ],
    ] {
        let config = run(args, &[]).unwrap();
        assert_eq!(config.cache_bytes, 8 * 1024 * 1024, "{args:?}");
        assert_eq!(config.public_url.as_deref(), Some("ws://h:1"), "{args:?}");
        assert_eq!(config.hash_workers, 3, "{args:?}");
    }
    // A value may itself contain `=`.
    let config = run(&["--allowed-origins=https://a.example/?x=1"], &[]).unwrap();
    assert_eq!(config.allowed_origins, vec!["https://a.example/?x=1"]);
}

#[test]
fn environment_fallback() {
    let config = run(
        &[],
        &[
            ("PARLEY_LISTEN", "127.0.0.1:7"),
            ("PARLEY_DATA_DIR", "/tmp/env"),
            ("PARLEY_CACHE_MB", "2"),
            ("PARLEY_MAX_CONNECTIONS", "9"),
            ("PARLEY_REQUEST_TIMEOUT_SECS", "3"),
            ("PARLEY_IDLE_TIMEOUT_SECS", "4"),
            ("PARLEY_ECHO_ENDPOINT", "yes"),
            ("PARLEY_LOG", "debug"),
            ("PARLEY_JWT_SECRET", &"s".repeat(32)),
        ],
    )
    .unwrap();
    assert_eq!(config.listen, "127.0.0.1:7".parse().unwrap());
    assert_eq!(config.data_dir, PathBuf::from("/tmp/env"));
    assert_eq!(config.cache_bytes, 2 * 1024 * 1024);
    assert_eq!(config.limits.max_connections, 9);
    assert_eq!(config.limits.request_timeout, Duration::from_secs(3));
    assert_eq!(config.limits.http_idle_timeout, Duration::from_secs(4));
    assert!(config.echo_endpoint);
    assert_eq!(config.log, log::Filter::parse("debug").unwrap());
    assert_eq!(config.jwt_secret, Some(vec![b's'; 32]));
    // Any other word is off, as before; so is the flag with one.
    let off = |args: &[&str], env: &[(&str, &str)]| !run(args, env).unwrap().echo_endpoint;
    assert!(off(&[], &[("PARLEY_ECHO_ENDPOINT", "2")]));
    assert!(off(
        &["--echo-endpoint=off"],
        &[("PARLEY_ECHO_ENDPOINT", "1")]
    ));
    // A bad value from the environment is refused like one from a flag.
    let refused = run(&[], &[("PARLEY_CACHE_MB", "lots")]).unwrap_err();
    assert!(refused.contains("--cache-mb"), "{refused}");
    assert!(
        refused.contains("expected a whole number from 1 to 65536"),
        "{refused}"
    );
}

#[test]
fn flags_win_over_environment_in_both_syntaxes() {
    let env = [("PARLEY_AUTH_RATE", "7"), ("PARLEY_HASH_WORKERS", "5")];
    for args in [&["--auth-rate", "8"][..], &["--auth-rate=8"]] {
        let config = run(args, &env).unwrap();
        assert_eq!(config.limits.auth_rate_per_minute, 8, "{args:?}");
        assert_eq!(config.hash_workers, 5, "{args:?}");
    }
    // A good flag over a bad variable: the variable is never looked at.
    let config = run(&["--auth-rate", "8"], &[("PARLEY_AUTH_RATE", "x")]).unwrap();
    assert_eq!(config.limits.auth_rate_per_minute, 8);
}

/// The README's configuration table and `--help` say the same: each row's flag, variable,
/// default and meaning (markdown's backticks aside) are in the help.
#[test]
fn help_carries_the_readme_table() {
    let readme = include_str!("../../README.md");
    let flat = |text: &str| text.split_whitespace().collect::<Vec<_>>().join(" ");
    let help = flat(&Args::command().render_long_help().to_string());
    let table = readme
        .split("\n## Configuration\n")
        .nth(1)
        .expect("README has a Configuration section");
    let rows: Vec<Vec<String>> = table
        .lines()
        .skip_while(|line| !line.starts_with("| flag |"))
        .skip(2)
        .take_while(|line| line.starts_with('|'))
        .map(|line| {
            line.trim_matches('|')
                .split(" | ")
                .map(|cell| flat(&cell.replace('`', "")))
                .collect()
        })
        .collect();
    assert_eq!(rows.len(), 31, "every flag and variable has a row");
    for row in &rows {
        let [flag, env, default, meaning] = &row[..] else {
            panic!("four cells: {row:?}");
        };
        let env = env.trim_end_matches("=1");
        let mut flag = flag.split(' ');
        let shown = match (flag.next(), flag.next()) {
            (Some(""), None) => format!("{env} {meaning} [default: {default}]"),
            (Some(name), Some(value)) => format!("{name} <{value}> {meaning}"),
            (Some(name), None) => format!("{name}[=<ON>] {meaning}"),
            _ => unreachable!(),
        };
        let at = help
            .find(&shown)
            .unwrap_or_else(|| panic!("`{shown}` not in --help:\n{help}"));
        // What follows the meaning, up to the next option: the variable and the default.
        let notes = help[at + shown.len()..].split(" --").next().unwrap();
        if !shown.starts_with(env) {
            assert!(notes.contains(&format!("[env: {env}=")), "{env}: {notes}");
            assert!(notes.contains(&format!("[default: {default}]")), "{notes}");
        }
    }
}

#[test]
fn trusted_proxies_parse_or_are_refused() {
    assert!(run(&[], &[]).unwrap().trusted_proxies.is_empty());
    let config = run(&[], &[("PARLEY_TRUSTED_PROXIES", "127.0.0.1, 10.0.0.0/8")]).unwrap();
    assert!(config.trusted_proxies.trusts("10.9.8.7".parse().unwrap()));
    assert!(!config.trusted_proxies.trusts("11.0.0.1".parse().unwrap()));
    let refused = run(&["--trusted-proxies", "proxy.example.com"], &[]).unwrap_err();
    assert!(refused.contains("--trusted-proxies"), "{refused}");
    assert!(refused.contains("proxy.example.com"), "{refused}");
}

/// `parley [flags]` still runs the server; `check` and `backup` are the operator's tools.
#[test]
fn subcommands_and_the_plain_server() {
    let _turn = ENVIRONMENT.lock().unwrap_or_else(|e| e.into_inner());
    let parse = |args: &[&str]| command(std::iter::once("parley").chain(args.iter().copied()));
    match parse(&["--listen", "127.0.0.1:0", "--accept-data-loss"]).unwrap() {
        Command::Serve(config) => {
            assert_eq!(config.listen.port(), 0);
            assert!(config.accept_data_loss);
        }
        other => panic!("{other:?}"),
    }
    match parse(&[]).unwrap() {
        Command::Serve(config) => assert!(!config.accept_data_loss),
        other => panic!("{other:?}"),
    }
    match parse(&["check", "some/dir"]).unwrap() {
        Command::Check { dir } => assert_eq!(dir, PathBuf::from("some/dir")),
        other => panic!("{other:?}"),
    }
    match parse(&["backup", "--data-dir", "d", "out"]).unwrap() {
        Command::Backup { data_dir, dest } => {
            assert_eq!((data_dir, dest), (PathBuf::from("d"), PathBuf::from("out")));
        }
        other => panic!("{other:?}"),
    }
    assert!(parse(&["check"]).is_err(), "check needs DIR");
}

/// A members-per-group cap whose event 70 would not fit a sync page is refused at start, saying
/// the most that fits; that many is accepted.
#[test]
fn a_group_cap_whose_event_70_outgrows_a_sync_page_is_refused() {
    let err = run(&["--max-group-members", "20000"], &[]).unwrap_err();
    assert!(err.contains("at most 13390 members fit"), "{err}");
    let config = run(&["--max-group-members", "13390"], &[]).unwrap();
    assert_eq!(config.limits.max_group_members, 13390);
    let config = run(&[], &[("PARLEY_MAX_GROUPS_PER_USER", "7")]).unwrap();
    assert_eq!(
        (
            config.limits.max_group_members,
            config.limits.max_groups_per_user
        ),
        (10_000, 7)
    );
    assert!(Limits::default().check().is_ok());
}

#[test]
fn the_queued_output_budget_is_configurable_and_bounded() {
    let default = run(&[], &[]).unwrap().limits.max_queued_output_bytes;
    assert_eq!(default, 64 * 1024 * 1024);
    let config = run(&[], &[("PARLEY_MAX_QUEUED_OUTPUT_BYTES", "262144")]).unwrap();
    assert_eq!(config.limits.max_queued_output_bytes, 262_144);
    let refused = run(&["--max-queued-output-bytes", "1000"], &[]).unwrap_err();
    assert!(refused.contains("--max-queued-output-bytes"), "{refused}");
    assert!(
        refused.contains("expected a whole number from 65536 to 1099511627776"),
        "{refused}"
    );
}

#[test]
fn the_admin_api_needs_a_long_token_from_one_place() {
    assert!(run(&[], &[]).unwrap().admin.is_none());
    let token = "an-admin-token-of-at-least-32-characters";
    let admin = run(&[], &[("PARLEY_ADMIN_TOKEN", token)])
        .unwrap()
        .admin
        .unwrap();
    assert_eq!(admin.token, token);
    assert!(admin.addresses.is_empty(), "loopback only by default");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("admin-token");
    std::fs::write(&file, format!("  {token}\n")).unwrap();
    let path = file.to_str().unwrap();
    let admin = run(
        &[
            "--admin-token-file",
            path,
            "--admin-addresses",
            "10.0.0.0/8",
        ],
        &[],
    )
    .unwrap()
    .admin
    .unwrap();
    assert_eq!(admin.token, token, "trimmed");
    assert!(admin.addresses.trusts("10.2.3.4".parse().unwrap()));
    for (args, env, says) in [
        (
            vec!["--admin-token", "short"],
            vec![],
            "at least 32 characters",
        ),
        (
            vec!["--admin-token-file", path],
            vec![("PARLEY_ADMIN_TOKEN", token)],
            "not both",
        ),
        (
            vec!["--admin-addresses", "10.0.0.1"],
            vec![],
            "needs --admin-token",
        ),
        (
            vec!["--admin-token", token, "--admin-addresses", "host.example"],
            vec![],
            "--admin-addresses",
        ),
        (
            vec!["--admin-token-file", "/nonexistent/x"],
            vec![],
            "--admin-token-file",
        ),
    ] {
        let refused = run(&args, &env).unwrap_err();
        assert!(refused.contains(says), "{args:?}: {refused}");
    }
}

// Presence (issue #20).
#[test]
fn presence_is_on_unless_turned_off_and_takes_only_on_or_off() {
    assert!(run(&[], &[]).unwrap().presence);
    assert!(!run(&["--presence", "off"], &[]).unwrap().presence);
    assert!(!run(&[], &[("PARLEY_PRESENCE", "off")]).unwrap().presence);
    assert!(
        run(&["--presence=on"], &[("PARLEY_PRESENCE", "off")])
            .unwrap()
            .presence
    );
    let refused = run(&["--presence", "no"], &[]).unwrap_err();
    assert!(refused.contains("expected `on` or `off`"), "{refused}");
}
