//! Reading the access code a request carries: the `x-api-key` header, else the `apiKey` query
//! parameter (any spelling of its name that decodes to it). Two different codes — header and query, or
//! a repeated header or parameter — are a conflict: which one an upstream would use is unknown.

use std::borrow::Cow;

use actix_web::http::header::{HeaderMap, HeaderName};
use percent_encoding::percent_decode_str;

/// Where the access code came from.
pub enum Presented<'a> {
    Secret(Cow<'a, str>),
    None,
    /// Two different codes: the header and the query string, or a repeated header or parameter.
    /// Which one an upstream would use is unknown, so neither is.
    Conflicting,
}

/// The header's name, made once: looking a header up by a `&str` parses the name on every request.
static X_API_KEY: HeaderName = HeaderName::from_static("x-api-key");

/// Every `apiKey` parameter of a query string, decoded, if all are the same; `Err` if they differ.
fn query_api_key(query: &str) -> Result<Option<String>, ()> {
    let mut found: Option<String> = None;
    for pair in query.split('&') {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        if percent_decode_str(name).decode_utf8_lossy() != "apiKey" {
            continue;
        }
        let value = percent_decode_str(&value.replace('+', " "))
            .decode_utf8_lossy()
            .into_owned();
        match &found {
            Some(earlier) if *earlier != value => return Err(()),
            Some(_) => {}
            None => found = Some(value),
        }
    }
    Ok(found)
}

/// The code from `x-api-key`, else from `apiKey` in `query`; different codes are refused.
pub fn presented<'a>(headers: &'a HeaderMap, query: &str) -> Presented<'a> {
    let mut values = headers.get_all(&X_API_KEY);
    // A header that is not visible ASCII cannot hold a valid code: it is refused as malformed.
    let header = values.next().map(|v| v.to_str().unwrap_or("\u{0}"));
    if let Some(first) = header
        && values.any(|v| v.to_str().ok() != Some(first))
    {
        return Presented::Conflicting;
    }
    // Only a query that could name the parameter is parsed: `apiKey` has a `K`, and any other
    // spelling of it (`%61piKey`, `apiKe%79`…) a `%`. One pass over the bytes, no substring search.
    let from_query = if query.bytes().any(|b| b == b'K' || b == b'%') {
        match query_api_key(query) {
            Ok(found) => found,
            Err(()) => return Presented::Conflicting,
        }
    } else {
        None
    };
    match (header, from_query) {
        (Some(h), Some(q)) if h != q => Presented::Conflicting,
        (Some(h), _) => Presented::Secret(Cow::Borrowed(h)),
        (None, Some(q)) => Presented::Secret(Cow::Owned(q)),
        (None, None) => Presented::None,
    }
}
