//! Trusted reverse proxies (`--trusted-proxies`): only when the TCP peer is one of them are its
//! `X-Forwarded-For` and `X-Forwarded-Proto` believed, for the per-address limits and for the
//! scheme of `messaging_url`. Anyone else could write those headers to pass for another address.

use std::net::IpAddr;

/// An address and how many of its leading bits a peer must share with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Net {
    addr: IpAddr,
    prefix: u8,
}

impl Net {
    fn contains(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => prefix_eq(
                u128::from(u32::from(net)) << 96,
                u128::from(u32::from(ip)) << 96,
                self.prefix,
            ),
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                prefix_eq(u128::from(net), u128::from(ip), self.prefix)
            }
            _ => false,
        }
    }
}

fn prefix_eq(a: u128, b: u128, prefix: u8) -> bool {
    prefix == 0 || (a ^ b) >> (128 - u32::from(prefix)) == 0
}

/// An IPv4 address mapped into IPv6 (`::ffff:a.b.c.d`, as a dual-stack socket reports one) is
/// the IPv4 address.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// The configured proxies; empty (the default) trusts nobody.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies {
    nets: Vec<Net>,
}

/// Where a request came from, as far as the server may believe it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Origin {
    /// The client's address: the TCP peer's, or the one a trusted proxy forwarded.
    pub client: IpAddr,
    /// The scheme the client used, when a trusted proxy said (`X-Forwarded-Proto`): true for
    /// `https` (the client gets `wss://`), false for `http`, `None` when not said or not believed.
    pub secure: Option<bool>,
}

impl TrustedProxies {
    /// Parses a comma-separated list of addresses and CIDR blocks (`10.0.0.0/8`, `::1`).
    pub fn parse(list: &str) -> Result<TrustedProxies, String> {
        let mut nets = Vec::new();
        for item in list.split(',').map(str::trim).filter(|i| !i.is_empty()) {
            let (addr, prefix) = match item.split_once('/') {
                Some((addr, prefix)) => (addr, Some(prefix)),
                None => (item, None),
            };
            let addr: IpAddr = addr.parse().map_err(|_| {
                format!("--trusted-proxies: `{item}` is not an IP address or CIDR block")
            })?;
            let addr = canonical(addr);
            let max = if addr.is_ipv4() { 32 } else { 128 };
            let prefix = match prefix {
                None => max,
                Some(bits) => bits
                    .parse::<u8>()
                    .ok()
                    .filter(|bits| *bits <= max)
                    .ok_or_else(|| {
                        format!("--trusted-proxies: `{item}`: the prefix must be 0 to {max}")
                    })?,
            };
            nets.push(Net { addr, prefix });
        }
        Ok(TrustedProxies { nets })
    }

    pub fn is_empty(&self) -> bool {
        self.nets.is_empty()
    }

    pub fn trusts(&self, ip: IpAddr) -> bool {
        self.nets.iter().any(|net| net.contains(ip))
    }

    /// The request's origin from its TCP `peer` and its `X-Forwarded-For` (every such header,
    /// joined with commas in order) and `X-Forwarded-Proto`. The client is the rightmost
    /// forwarded address that is not a trusted proxy (each proxy appends the address it got the
    /// request from, so the ones left of that are the client's own claims); when every one is
    /// trusted, the leftmost. An entry that is not an address ends the walk: the hop that wrote
    /// it is taken for the client.
    pub fn origin(&self, peer: IpAddr, forwarded_for: Option<&str>, proto: Option<&str>) -> Origin {
        if !self.trusts(peer) {
            return Origin {
                client: peer,
                secure: None,
            };
        }
        let mut client = peer;
        if let Some(list) = forwarded_for {
            for entry in list.rsplit(',').map(str::trim) {
                let Some(ip) = parse_entry(entry) else { break };
                client = ip;
                if !self.trusts(ip) {
                    break;
                }
            }
        }
        // A chain of proxies may each append their scheme: the first hop's is the client's.
        let secure = proto
            .and_then(|p| p.split(',').next())
            .map(str::trim)
            .and_then(|p| match p.to_ascii_lowercase().as_str() {
                "https" | "wss" => Some(true),
                "http" | "ws" => Some(false),
                _ => None,
            });
        Origin { client, secure }
    }
}

/// An `X-Forwarded-For` entry: an address, perhaps with a port (`1.2.3.4:80`, `[::1]:80`).
fn parse_entry(entry: &str) -> Option<IpAddr> {
    entry
        .parse::<IpAddr>()
        .or_else(|_| entry.parse::<std::net::SocketAddr>().map(|s| s.ip()))
        .ok()
        .map(canonical)
}

#[cfg(test)]
mod tests;
