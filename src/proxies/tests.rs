use std::net::IpAddr;

use super::*;

fn ip(text: &str) -> IpAddr {
    text.parse().unwrap()
}

#[test]
fn addresses_and_blocks_parse_and_match() {
    let proxies = TrustedProxies::parse(" 127.0.0.1, 10.0.0.0/8 ,fd00::/8,::1").unwrap();
    for trusted in ["127.0.0.1", "10.1.2.3", "fd12::1", "::1", "::ffff:10.0.0.1"] {
        assert!(proxies.trusts(ip(trusted)), "{trusted}");
    }
    for other in [
        "127.0.0.2",
        "11.0.0.1",
        "fe80::1",
        "::2",
        "::ffff:127.0.0.2",
    ] {
        assert!(!proxies.trusts(ip(other)), "{other}");
    }
    assert!(TrustedProxies::parse("0.0.0.0/0")
        .unwrap()
        .trusts(ip("8.8.8.8")));
    assert!(TrustedProxies::parse("").unwrap().is_empty());
    for bad in ["localhost", "10.0.0.0/33", "::/129", "1.2.3.4/x", "1.2.3"] {
        assert!(TrustedProxies::parse(bad).is_err(), "{bad}");
    }
}

#[test]
fn only_a_trusted_peer_is_believed() {
    let proxies = TrustedProxies::parse("127.0.0.1,10.0.0.0/8").unwrap();
    let origin = |peer, xff, proto| proxies.origin(ip(peer), xff, proto);
    // An untrusted peer: its headers change nothing.
    assert_eq!(
        origin("192.0.2.1", Some("198.51.100.7"), Some("https")),
        Origin {
            client: ip("192.0.2.1"),
            secure: None
        }
    );
    // Trusted: the rightmost untrusted entry, whatever the client put left of it.
    assert_eq!(
        origin(
            "127.0.0.1",
            Some("6.6.6.6, 198.51.100.7, 10.0.0.5"),
            Some("https")
        ),
        Origin {
            client: ip("198.51.100.7"),
            secure: Some(true)
        }
    );
    // Every entry trusted: the leftmost. None: the peer. Garbage: the hop that wrote it.
    assert_eq!(
        origin("127.0.0.1", Some("10.0.0.9,10.0.0.5"), None).client,
        ip("10.0.0.9")
    );
    assert_eq!(
        origin("127.0.0.1", None, Some("http")).client,
        ip("127.0.0.1")
    );
    assert_eq!(
        origin("127.0.0.1", Some("junk, 10.0.0.5"), None).client,
        ip("10.0.0.5")
    );
    assert_eq!(
        origin("127.0.0.1", Some("[2001:db8::1]:443"), None).client,
        ip("2001:db8::1")
    );
    assert_eq!(
        origin("127.0.0.1", None, Some("http, https")).secure,
        Some(false)
    );
    assert_eq!(origin("127.0.0.1", None, Some("gopher")).secure, None);
    // Nobody trusted by default.
    let none = TrustedProxies::default();
    assert_eq!(
        none.origin(ip("127.0.0.1"), Some("1.2.3.4"), Some("https"))
            .client,
        ip("127.0.0.1")
    );
}
