//! Requests sent byte for byte as written: HTTP clients normalise or refuse the targets an attacker
//! sends (`..`, `%2e`, `\`, `;`), so the trust-boundary tests write the request line themselves.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// An answer read off the socket: status, the raw head, the body as text (chunk sizes and all).
#[derive(Debug)]
pub struct RawResponse {
    pub status: u16,
    pub head: String,
    pub body: String,
}

impl RawResponse {
    /// A header's value (the first), by case-insensitive name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().skip(1).find_map(|line| {
            let (n, v) = line.split_once(':')?;
            n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }
}

/// `host:port` of a `http://host:port` address.
pub fn authority(address: &str) -> &str {
    address.trim_start_matches("http://")
}

/// Sends `method target` with these headers (and `Connection: close`) to `authority`, off the async
/// runtime, and reads the whole answer.
pub async fn send(
    authority: &str,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> RawResponse {
    let mut request =
        format!("{method} {target} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    if let Some(body) = body {
        request.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    request.push_str("\r\n");
    request.push_str(body.unwrap_or(""));
    send_stalled(authority, request).await
}

/// Sends `request` as it is — a head announcing more body than follows, say — then reads the answer
/// the server gives while the client sends nothing more.
pub async fn send_stalled(authority: &str, request: String) -> RawResponse {
    let authority = authority.to_owned();
    actix_web::rt::task::spawn_blocking(move || exchange(&authority, request.as_bytes()))
        .await
        .expect("the raw request thread")
}

fn exchange(authority: &str, request: &[u8]) -> RawResponse {
    let mut stream = TcpStream::connect(authority).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .expect("timeout");
    stream.write_all(request).expect("write the request");
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    parse(&answer)
}

/// Splits an answer into status, head and body.
fn parse(answer: &[u8]) -> RawResponse {
    let text = String::from_utf8_lossy(answer).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    RawResponse {
        status,
        head: head.to_owned(),
        body: body.to_owned(),
    }
}
