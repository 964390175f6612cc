//! Who the client is, for throttling and the audit log — one answer for the console and the APIs:
//! the TCP peer, or, only when the peer is one of `--trusted-proxies`, the right-most
//! `X-Forwarded-For` address that is not itself a trusted proxy (`trusted_proxies::TrustedProxies`).

use std::net::IpAddr;

use actix_web::HttpRequest;
use actix_web::dev::RequestHead;

use crate::web::state::AppState;

/// The client's address; `None` only when the connection has no peer address (tests' in-memory calls).
pub fn client_addr(req: &HttpRequest, state: &AppState) -> Option<IpAddr> {
    client_addr_of(req.head(), state)
}

/// `client_addr` from a request's head (the BMS APIs' fast lane has no `HttpRequest`).
pub fn client_addr_of(head: &RequestHead, state: &AppState) -> Option<IpAddr> {
    let peer = head.peer_addr?.ip();
    let trusted = &state.settings.trusted_proxies;
    if trusted.is_empty() {
        return Some(peer.to_canonical());
    }
    let forwarded_for = head
        .headers
        .get_all("x-forwarded-for")
        .filter_map(|v| v.to_str().ok());
    Some(trusted.client(peer, forwarded_for))
}

/// The client's address as the audit log and the sessions list show it.
pub fn client_ip(req: &HttpRequest, state: &AppState) -> String {
    client_addr(req, state).map_or_else(|| "unknown".to_owned(), |ip| ip.to_string())
}
