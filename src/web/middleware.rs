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
use crate::web::session::{ConsoleCookie, Flash};
use crate::web::state::State;

/// What the rest of the request's handling may want to know about it (error pages show the id).
#[derive(Debug, Clone)]
pub struct RequestContext {
    pub id: String,
    /// The client is an integration (JSON API) rather than a browser (HTML console).
    pub wants_json: bool,
    /// Who is signed in, once a handler has checked the session: error pages show them the same
    /// header (account menu, sign out) as every other page.
    pub signed_in: std::sync::Arc<std::sync::OnceLock<SignedInHeader>>,
}

/// What the header of an error page needs to know about the signed-in user.
#[derive(Debug, Clone)]
pub struct SignedInHeader {
    pub user: crate::web::layout::UserView,
    pub csrf_token: String,
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
/// raw query, which would write access codes into the logs. The line is built only when it is
/// written (API lines are at debug level).
pub async fn request_context(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let started = Instant::now();
    let context = RequestContext {
        id: next_request_id(),
        wants_json: is_json_path(req.path()),
        signed_in: Default::default(),
    };
    let api = context.wants_json;
    let method = req.method().clone();
    // A cheap clone (shared bytes): the target is redacted only if a line is written.
    let uri = req.uri().clone();
    let target = || redacted_target(uri.path(), uri.query().unwrap_or(""));
    let request_id = context.id.clone();
    let mut res = REQUEST.scope(context, next.call(req)).await?;
    let status = res.status();
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        res.headers_mut()
            .insert(HeaderName::from_static("x-request-id"), value);
    }
    let micros = started.elapsed().as_micros();
    if status.is_server_error() {
        tracing::error!(request_id, %method, target = target(), status = status.as_u16(), micros, "request failed");
    } else if api {
        // API and verification traffic is the hot path: its lines are at debug level (RUST_LOG=debug),
        // so that a busy gateway does not write a log line per request.
        tracing::debug!(request_id, %method, target = target(), status = status.as_u16(), micros, "request");
    } else {
        tracing::info!(request_id, %method, target = target(), status = status.as_u16(), micros, "request");
    }
    Ok(res)
}

/// The path and query as they may be logged: the value of every `apiKey` parameter and the setup
/// `token` replaced, and every path segment, parameter name or value that holds something shaped like
/// a secret — as sent, or once `+` and percent-escapes (up to three layers) are decoded.
pub fn redacted_target(path: &str, query: &str) -> String {
    let mut out = String::with_capacity(path.len() + query.len() + 1);
    for (n, segment) in path.split('/').enumerate() {
        if n > 0 {
            out.push('/');
        }
        out.push_str(redacted(segment));
    }
    if query.is_empty() {
        return out;
    }
    out.push('?');
    for (n, pair) in query.split('&').enumerate() {
        if n > 0 {
            out.push('&');
        }
        let (name, value) = match pair.split_once('=') {
            Some((name, value)) => (name, Some(value)),
            None => (pair, None),
        };
        // Compare the decoded name: `%61piKey` reaches the verifier as `apiKey`.
        let decoded = decoded_layers(name)
            .last()
            .map(|n| n.to_ascii_lowercase())
            .unwrap_or_default();
        out.push_str(redacted(name));
        match value {
            Some(_) if decoded.contains("apikey") || decoded == "token" => {
                out.push_str("=[REDACTED]");
            }
            Some(value) => {
                out.push('=');
                out.push_str(redacted(value));
            }
            None => {}
        }
    }
    out
}

/// `[REDACTED]` if any decoding of this URL component looks like it holds a secret, else the component.
fn redacted(component: &str) -> &str {
    if decoded_layers(component).any(|text| crate::secrets::contains_secret_like(&text)) {
        "[REDACTED]"
    } else {
        component
    }
}

/// The component as sent, then decoded (`+` as space, percent-escapes) while decoding changes it, at
/// most three times (a double-encoded secret is still a secret).
fn decoded_layers(component: &str) -> impl Iterator<Item = std::borrow::Cow<'_, str>> {
    let mut current = Some(std::borrow::Cow::Borrowed(component));
    let mut layers = 0;
    std::iter::from_fn(move || {
        let this = current.take()?;
        layers += 1;
        if layers <= 3 && (this.contains('%') || this.contains('+')) {
            let plus_as_space = this.replace('+', " ");
            let decoded = percent_decode_str(&plus_as_space)
                .decode_utf8_lossy()
                .into_owned();
            if decoded != this {
                current = Some(std::borrow::Cow::Owned(decoded));
            }
        }
        Some(this)
    })
}

/// The Content-Security-Policy of every page: our own scripts and styles only, no inline script, no
/// framing (https://www.w3.org/TR/CSP3/, https://owasp.org/www-project-secure-headers/).
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// HSTS for a console served over HTTPS: two years, subdomains included (RFC 6797).
const HSTS: &str = "max-age=63072000; includeSubDomains";

/// Adds the security headers to every response, and `no-store` to every non-asset response so that no
/// page (some show secrets) lands in a shared or browser cache. Over HTTPS, `Strict-Transport-Security`
/// keeps browsers from ever asking over plain HTTP again.
pub async fn security_headers(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let https = req
        .app_data::<State>()
        .is_some_and(|state| state.settings.secure_cookies());
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
    if https {
        set(headers, header::STRICT_TRANSPORT_SECURITY, HSTS);
    }
    Ok(res)
}

/// Owns the flash cookie: reads it into the request's extensions for the page to show; sets it from a
/// `Flash` a handler left in its redirect's extensions; clears it once a page (not a redirect) has
/// been rendered with it.
pub async fn flash_messages(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let Some(state) = req.app_data::<State>().cloned() else {
        return next.call(req).await;
    };
    let flash = req
        .cookie(ConsoleCookie::Flash.name(&state))
        .and_then(|c| Flash::decode(c.value()));
    let had_flash = flash.is_some();
    if let Some(flash) = flash {
        req.extensions_mut().insert(flash);
    }
    let mut res = next.call(req).await?;
    let new_flash = res.response().extensions().get::<Flash>().cloned();
    if let Some(flash) = new_flash {
        let _ = res
            .response_mut()
            .add_cookie(&ConsoleCookie::Flash.set(&state, flash.encode()));
    } else if had_flash && !res.status().is_redirection() {
        let _ = res
            .response_mut()
            .add_cookie(&ConsoleCookie::Flash.removal(&state));
    }
    Ok(res)
}

/// The headers of every API and verification response: no referrer, no sniffing, no caching.
// Values made at compile time: `HeaderValue::from_static` checks its text each time it runs.
const API_HEADERS: [(header::HeaderName, header::HeaderValue); 3] = [
    (
        header::REFERRER_POLICY,
        header::HeaderValue::from_static("no-referrer"),
    ),
    (
        header::X_CONTENT_TYPE_OPTIONS,
        header::HeaderValue::from_static("nosniff"),
    ),
    (
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-store"),
    ),
];

/// The API headers as a middleware, for the verification endpoints' scope.
pub fn api_headers() -> actix_web::middleware::DefaultHeaders {
    API_HEADERS
        .into_iter()
        .fold(actix_web::middleware::DefaultHeaders::new(), |d, h| {
            d.add(h)
        })
}

/// The API headers written straight into an answer, replacing any of the same name: the BMS APIs'
/// hot path does this itself rather than through a middleware layer around every request, and no
/// BMS API answer sets these headers otherwise (so there is nothing to look up first).
pub fn add_api_headers(headers: &mut actix_web::http::header::HeaderMap) {
    for (name, value) in API_HEADERS {
        headers.insert(name, value);
    }
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

    #[test]
    fn encoded_secrets_are_redacted_in_every_spelling() {
        let secret = crate::secrets::generate();
        let encode_all = |s: &str| s.bytes().map(|b| format!("%{b:02X}")).collect::<String>();
        let spellings = [
            secret.replacen('_', "%5F", 1),
            format!(
                "{}%{:02x}{}",
                &secret[..10],
                secret.as_bytes()[10],
                &secret[11..]
            ),
            encode_all(&secret),
            encode_all(&secret).replace('%', "%25"),
            format!("{}+", &secret),
        ];
        for spelling in &spellings {
            for (path, query) in [
                (format!("/accounts/{spelling}"), String::new()),
                (
                    "/login".to_owned(),
                    format!("next=%2Faccounts%2F{spelling}"),
                ),
                ("/a".to_owned(), format!("q={spelling}&page=2")),
            ] {
                let line = redacted_target(&path, &query);
                assert!(line.contains("[REDACTED]"), "{path}?{query} → {line}");
                assert!(!line.contains(&secret[4..20]), "{line}");
                assert!(
                    !line.contains(&spelling[..spelling.len().min(30)]),
                    "{line}"
                );
            }
        }
        assert_eq!(redacted_target("/a/b%20c", "q=x+y"), "/a/b%20c?q=x+y");
        // Found by the fuzz target secret_format: a prefix inside a secret-like run.
        let overlapping = "bms_mbmcCCcCCCCCCCCCCCCCCCbms_mbmcCCCCCCCCCCCmcCCcCCCCCCCCCCCCCC";
        assert_eq!(
            redacted_target("/p", &format!("q={overlapping}")),
            "/p?q=[REDACTED]"
        );
    }
}
