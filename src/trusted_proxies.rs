//! Which peers may tell us who the client is. Only a proxy we run ourselves adds an honest
//! `X-Forwarded-For` entry; anything to the left of it was written by whoever connected to it. So the
//! client is the right-most address that is not one of our proxies (`--trusted-proxies`); with no
//! trusted proxies, or a peer that is not one, the header is ignored and the client is the peer.

use std::net::IpAddr;
use std::str::FromStr;

use ipnet::IpNet;

/// The networks whose peers are trusted to report the client's address.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<IpNet>);

/// A `--trusted-proxies` entry that is neither an address nor a network.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("'{0}' is not an IP address or a network like 10.0.0.0/8")]
pub struct BadProxyEntry(String);

impl FromStr for TrustedProxies {
    type Err = BadProxyEntry;

    /// A comma-separated list of addresses (`127.0.0.1`, `::1`) and networks (`10.0.0.0/8`).
    fn from_str(list: &str) -> Result<Self, Self::Err> {
        list.split(',')
            .map(str::trim)
            .filter(|entry| !entry.is_empty())
            .map(|entry| {
                entry
                    .parse::<IpNet>()
                    .or_else(|_| entry.parse::<IpAddr>().map(IpNet::from))
                    .map_err(|_| BadProxyEntry(entry.to_owned()))
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Self)
    }
}

impl TrustedProxies {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.0.iter().any(|net| net.contains(&ip))
    }

    /// The client behind `peer`, given the `X-Forwarded-For` header values in the order received.
    /// Entries are read right to left while they are trusted proxies; an entry that is not an address
    /// stops the walk at the last address known (a proxy of ours wrote everything to its right).
    pub fn client<'a>(&self, peer: IpAddr, forwarded_for: impl Iterator<Item = &'a str>) -> IpAddr {
        let peer = peer.to_canonical();
        if !self.contains(peer) {
            return peer;
        }
        let entries: Vec<&str> = forwarded_for.flat_map(|v| v.split(',')).collect();
        let mut client = peer;
        for entry in entries.iter().rev() {
            let Some(ip) = parse_entry(entry.trim()) else {
                return client;
            };
            client = ip;
            if !self.contains(ip) {
                return ip;
            }
        }
        client
    }
}

/// An `X-Forwarded-For` entry: an address, possibly with a port (`1.2.3.4:5`, `[::1]:5`).
fn parse_entry(entry: &str) -> Option<IpAddr> {
    entry
        .parse::<IpAddr>()
        .or_else(|_| entry.parse::<std::net::SocketAddr>().map(|a| a.ip()))
        .ok()
        .map(|ip| ip.to_canonical())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn the_client_is_the_right_most_untrusted_address() {
        let trusted: TrustedProxies = "127.0.0.1, 10.0.0.0/8".parse().unwrap();
        let peer = ip("127.0.0.1");
        // What nginx's $proxy_add_x_forwarded_for makes of a client that sent its own header.
        let spoofed = ["6.6.6.6, 203.0.113.7"];
        assert_eq!(trusted.client(peer, spoofed.into_iter()), ip("203.0.113.7"));
        // Two proxies of ours in a row.
        let chain = ["6.6.6.6, 203.0.113.7, 10.1.2.3"];
        assert_eq!(trusted.client(peer, chain.into_iter()), ip("203.0.113.7"));
        // Several header lines are one list, in order.
        let lines = ["6.6.6.6", "203.0.113.7"];
        assert_eq!(trusted.client(peer, lines.into_iter()), ip("203.0.113.7"));
        // A peer that is not trusted: the header is ignored.
        assert_eq!(
            trusted.client(ip("198.51.100.1"), spoofed.into_iter()),
            ip("198.51.100.1")
        );
        // No header, or garbage at the right: the last address known.
        assert_eq!(trusted.client(peer, std::iter::empty()), peer);
        assert_eq!(trusted.client(peer, ["6.6.6.6, junk"].into_iter()), peer);
        assert_eq!(
            trusted.client(peer, ["[2001:db8::1]:443"].into_iter()),
            ip("2001:db8::1")
        );
        // IPv4-mapped IPv6 peers count as their IPv4 address.
        assert_eq!(
            trusted.client(ip("::ffff:127.0.0.1"), ["203.0.113.7"].into_iter()),
            ip("203.0.113.7")
        );
    }

    #[test]
    fn nothing_is_trusted_by_default_and_bad_entries_are_refused() {
        let none = TrustedProxies::default();
        assert_eq!(
            none.client(ip("127.0.0.1"), ["203.0.113.7"].into_iter()),
            ip("127.0.0.1")
        );
        assert!("".parse::<TrustedProxies>().unwrap().is_empty());
        assert_eq!(
            "10.0.0.0/8,nope".parse::<TrustedProxies>(),
            Err(BadProxyEntry("nope".into()))
        );
        assert!("10.0.0.0/33".parse::<TrustedProxies>().is_err());
    }
}
