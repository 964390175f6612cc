//! Where a webhook may be sent: the SSRF guard. An endpoint is an `https://` URL whose host resolves
//! only to public addresses — never loopback, private, link-local, carrier-grade NAT, multicast or
//! reserved ranges, nor an IPv6 form of one — unless the operator allows plain http or private
//! addresses (`--webhooks-allow-http`, `--webhooks-allow-private`). The check runs when an endpoint
//! is saved (a clear message) and again as each delivery connects (`resolve`, the delivery's DNS
//! resolver), so a name that later points inside cannot be used to reach it. Redirects are never
//! followed (`delivery`).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, ToSocketAddrs};

/// What the operator allows beyond public https endpoints.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TargetPolicy {
    pub allow_http: bool,
    pub allow_private: bool,
}

/// The longest endpoint URL accepted.
pub const MAX_URL_LEN: usize = 500;

/// Why an endpoint URL is refused, as the form shows it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error("Enter the full URL of the endpoint, like https://example.com/webhooks.")]
    NotAUrl,
    #[error("Use an https:// URL: events are only sent encrypted.")]
    NotHttps,
    #[error("Leave the user name and password out of the URL.")]
    Credentials,
    #[error("Keep the URL to at most 500 characters.")]
    TooLong,
    #[error("The host {0} cannot be found. Check the address.")]
    Unresolvable(String),
    #[error(
        "The host {0} is a private, loopback or reserved address: events are only sent to public addresses."
    )]
    NotPublic(String),
}

/// Checks the form of an endpoint URL (scheme, no credentials, a host) without resolving it.
pub fn check_form(text: &str, policy: TargetPolicy) -> Result<url::Url, Refused> {
    if text.len() > MAX_URL_LEN {
        return Err(Refused::TooLong);
    }
    let url = url::Url::parse(text.trim()).map_err(|_| Refused::NotAUrl)?;
    match url.scheme() {
        "https" => {}
        "http" if policy.allow_http => {}
        "http" => return Err(Refused::NotHttps),
        _ => return Err(Refused::NotAUrl),
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(Refused::Credentials);
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(Refused::NotAUrl);
    }
    Ok(url)
}

/// Checks an endpoint URL fully: its form, and that its host resolves only to allowed addresses.
pub fn check(text: &str, policy: TargetPolicy) -> Result<url::Url, Refused> {
    let url = check_form(text, policy)?;
    let host = url.host_str().unwrap_or_default().to_owned();
    let port = url.port_or_known_default().unwrap_or(443);
    resolve(&format!("{host}:{port}"), policy)?;
    Ok(url)
}

/// Resolves `host:port` and returns its addresses if every one is allowed: a name with one private
/// address among public ones is refused whole, since the connection could go to any of them.
pub fn resolve(host_port: &str, policy: TargetPolicy) -> Result<Vec<SocketAddr>, Refused> {
    let host = host_port
        .rsplit_once(':')
        .map_or(host_port, |(host, _)| host)
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    let addrs: Vec<SocketAddr> = host_port
        .to_socket_addrs()
        .map_err(|_| Refused::Unresolvable(host.clone()))?
        .collect();
    if addrs.is_empty() {
        return Err(Refused::Unresolvable(host));
    }
    if !policy.allow_private && addrs.iter().any(|a| !is_public(a.ip())) {
        return Err(Refused::NotPublic(host));
    }
    Ok(addrs)
}

/// Whether an address is reachable on the public internet (the ranges of RFC 6890's special-purpose
/// registries are not).
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => is_public_v6(v6),
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    !(ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_broadcast()
        || ip.is_documentation()
        || ip.is_multicast()
        || a == 0 // "this network"
        || a >= 240 // reserved
        || (a == 100 && (64..128).contains(&b)) // carrier-grade NAT, 100.64.0.0/10
        || (a == 192 && b == 0 && c == 0) // IETF protocol assignments
        || (a == 198 && (18..20).contains(&b))) // benchmarking, 198.18.0.0/15
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    if let Some(v4) = ip.to_ipv4_mapped() {
        return is_public_v4(v4);
    }
    let segments = ip.segments();
    // NAT64 (64:ff9b::/96) and 6to4 (2002::/16) carry an IPv4 address that decides.
    if segments[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        let [_, _, _, _, _, _, hi, lo] = segments;
        return is_public_v4(Ipv4Addr::from((u32::from(hi) << 16) | u32::from(lo)));
    }
    if segments[0] == 0x2002 {
        return is_public_v4(Ipv4Addr::from(
            (u32::from(segments[1]) << 16) | u32::from(segments[2]),
        ));
    }
    !(ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_multicast()
        || (segments[0] & 0xfe00) == 0xfc00 // unique local, fc00::/7
        || (segments[0] & 0xffc0) == 0xfe80 // link-local, fe80::/10
        || (segments[0] == 0x2001 && segments[1] == 0x0db8) // documentation
        || segments[..6] == [0, 0, 0, 0, 0, 0]) // IPv4-compatible (deprecated), ::/96
}

#[cfg(test)]
mod tests {
    use super::*;

    const STRICT: TargetPolicy = TargetPolicy {
        allow_http: false,
        allow_private: false,
    };

    #[test]
    fn only_public_addresses_are_public() {
        for inside in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "0.0.0.0",
            "100.64.0.1",
            "255.255.255.255",
            "224.0.0.1",
            "198.18.0.1",
            "::1",
            "::",
            "fe80::1",
            "fd00::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "64:ff9b::a9fe:a9fe",
            "2002:7f00:1::",
            "2001:db8::1",
        ] {
            assert!(!is_public(inside.parse().unwrap()), "{inside}");
        }
        for outside in [
            "93.184.216.34",
            "1.1.1.1",
            "2606:4700:4700::1111",
            "::ffff:8.8.8.8",
        ] {
            assert!(is_public(outside.parse().unwrap()), "{outside}");
        }
    }

    #[test]
    fn urls_are_https_without_credentials() {
        assert_eq!(
            check_form("http://example.com/h", STRICT),
            Err(Refused::NotHttps)
        );
        assert_eq!(
            check_form("ftp://example.com/h", STRICT),
            Err(Refused::NotAUrl)
        );
        assert_eq!(check_form("example.com", STRICT), Err(Refused::NotAUrl));
        assert_eq!(
            check_form("https://u:p@example.com/", STRICT),
            Err(Refused::Credentials)
        );
        assert!(check_form("https://example.com/h?x=1", STRICT).is_ok());
        let lenient = TargetPolicy {
            allow_http: true,
            ..STRICT
        };
        assert!(check_form("http://example.com/h", lenient).is_ok());
    }

    #[test]
    fn literal_inside_addresses_are_refused_unless_allowed() {
        for url in [
            "https://127.0.0.1/",
            "https://[::1]:8443/",
            "https://10.0.0.1/",
            "https://169.254.169.254/latest",
        ] {
            assert!(
                matches!(check(url, STRICT), Err(Refused::NotPublic(_))),
                "{url}"
            );
        }
        let lenient = TargetPolicy {
            allow_http: true,
            allow_private: true,
        };
        assert!(check("http://127.0.0.1:9/", lenient).is_ok());
    }
}
