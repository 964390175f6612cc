//! Middleware run on every request: a request id and an access log line that never prints a secret,
//! the security headers, and the one-shot flash message cookie.

use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{Error, HttpMessage};
use percent_encoding::percent_decode_str;

use crate::ids;
use crate::web::session::{FLASH_COOKIE, Flash};

/// What the rest of the request's handling may want to know about it (error pages show the id).
#[derive(Debug, Clone)]
pub struct RequestContext {
    pub id: String,
    /// The client is an integration (JSON API) rather than a browser (HTML console).
    pub wants_json: bool,
}

tokio::task_local! {
    /// The current request's context, readable where no request is at hand (error rendering).
    pub static REQUEST: RequestContext;
}

/// The current request's context, if called while handling one.
pub fn current_request() -> Option<RequestContext> {
    REQUEST.try_with(Clone::clone).ok()
}

/// Paths answered in JSON rather than HTML.
pub fn is_json_path(path: &str) -> bool {
    path.starts_with("/v1/") || path.starts_with("/api/")
}

/// A request id: a per-process random prefix and a counter — unique, and cheap enough for the hot
/// path (no system call per request).
fn next_request_id() -> String {
    static PREFIX: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| ids::random_base62(6));
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("{}-{n:x}", *PREFIX)
}

/// Gives the request an id, runs it inside that context, and logs one line for it.
///
/// The line has the path and a query string with `apiKey` redacted: actix's stock `Logger` prints the
/// raw query, which would write access codes into the logs.
pub async fn request_context(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let started = Instant::now();
    let context = RequestContext {
        id: next_request_id(),
        wants_json: is_json_path(req.path()),
    };
    let api = context.wants_json;
    let method = req.method().clone();
    let target = redacted_target(req.path(), req.query_string());
    let request_id = context.id.clone();
    let mut res = REQUEST.scope(context, next.call(req)).await?;
    let status = res.status();
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        res.headers_mut()
            .insert(HeaderName::from_static("x-request-id"), value);
    }
    let micros = started.elapsed().as_micros();
    if status.is_server_error() {
        tracing::error!(request_id, %method, target, status = status.as_u16(), micros, "request failed");
    } else if api {
        // API and verification traffic is the hot path: its lines are at debug level (RUST_LOG=debug),
        // so that a busy gateway does not write a log line per request.
        tracing::debug!(request_id, %method, target, status = status.as_u16(), micros, "request");
    } else {
        tracing::info!(request_id, %method, target, status = status.as_u16(), micros, "request");
    }
    Ok(res)
}

/// The path and query as they may be logged: the value of every `apiKey` parameter replaced, and
/// anything else that looks like a secret (pasted into a search box, say).
pub fn redacted_target(path: &str, query: &str) -> String {
    crate::secrets::redact_secret_like(&api_key_redacted(path, query)).into_owned()
}

fn api_key_redacted(path: &str, query: &str) -> String {
    if query.is_empty() {
        return path.to_owned();
    }
    let query: Vec<String> = query
        .split('&')
        .map(|pair| {
            let name = pair.split('=').next().unwrap_or("");
            // Compare the decoded name: `%61piKey` reaches the verifier as `apiKey`.
            let decoded = percent_decode_str(name)
                .decode_utf8_lossy()
                .to_ascii_lowercase();
            if decoded.contains("apikey") {
                format!("{name}=[REDACTED]")
            } else if decoded == "token" {
                // The one-time setup link's token.
                "token=[REDACTED]".to_owned()
            } else {
                pair.to_owned()
            }
        })
        .collect();
    format!("{path}?{}", query.join("&"))
}

/// The Content-Security-Policy of every page: our own scripts and styles only, no inline script, no
/// framing (https://www.w3.org/TR/CSP3/, https://owasp.org/www-project-secure-headers/).
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// Adds the security headers to every response, and `no-store` to every non-asset response so that no
/// page (some show secrets) lands in a shared or browser cache.
pub async fn security_headers(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let mut res = next.call(req).await?;
    let headers = res.headers_mut();
    let set = |headers: &mut header::HeaderMap, name: HeaderName, value: &'static str| {
        if !headers.contains_key(&name) {
            headers.insert(name, HeaderValue::from_static(value));
        }
    };
    set(headers, header::CONTENT_SECURITY_POLICY, CSP);
    set(headers, header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    set(headers, header::REFERRER_POLICY, "no-referrer");
    set(headers, header::X_FRAME_OPTIONS, "DENY");
    set(
        headers,
        HeaderName::from_static("cross-origin-opener-policy"),
        "same-origin",
    );
    set(headers, header::CACHE_CONTROL, "no-store");
    Ok(res)
}

/// Reads the flash cookie into the request's extensions for the page to show, and clears it once a
/// page (not a redirect) has been rendered with it.
pub async fn flash_messages(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let flash = req
        .cookie(FLASH_COOKIE)
        .and_then(|c| Flash::decode(c.value()));
    let had_flash = flash.is_some();
    if let Some(flash) = flash {
        req.extensions_mut().insert(flash);
    }
    let mut res = next.call(req).await?;
    if had_flash
        && !res.status().is_redirection()
        && !res.response().cookies().any(|c| c.name() == FLASH_COOKIE)
    {
        let mut removal = actix_web::cookie::Cookie::build(FLASH_COOKIE, "")
            .path("/")
            .finish();
        removal.make_removal();
        let _ = res.response_mut().add_cookie(&removal);
    }
    Ok(res)
}

/// The headers of every API and verification response: no referrer, no sniffing, no caching.
pub fn api_headers() -> actix_web::middleware::DefaultHeaders {
    actix_web::middleware::DefaultHeaders::new()
        .add((header::REFERRER_POLICY, "no-referrer"))
        .add((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .add((header::CACHE_CONTROL, "no-store"))
}

#[cfg(test)]
mod tests {
    use super::redacted_target;

    #[test]
    fn api_key_values_are_redacted_in_any_case_and_position() {
        assert_eq!(
            redacted_target("/api/v1/x", "a=1&apiKey=bms_secret&b=2&APIKEY=x&%61piKey=y"),
            "/api/v1/x?a=1&apiKey=[REDACTED]&b=2&APIKEY=[REDACTED]&%61piKey=[REDACTED]"
        );
        assert_eq!(redacted_target("/p", ""), "/p");
        let secret = crate::secrets::generate();
        assert_eq!(
            redacted_target(&format!("/keys/{secret}"), &format!("q={secret}")),
            "/keys/[REDACTED]?q=[REDACTED]"
        );
        assert_eq!(
            redacted_target("/setup", "token=abc"),
            "/setup?token=[REDACTED]"
        );
    }
}
