//! The secret parser, the secret finders and the canonical-path check: never panic; whatever passes
//! the format check is found by the leak detector; nothing secret-like survives redaction; a secret in
//! the header or the query string is read back exactly; a canonical path has no dot segment.
#![no_main]

use bms_keys::secrets::{check_format, contains_secret_like};
use actix_web::http::header::{HeaderMap, HeaderName, HeaderValue};
use bms_keys::verify::canonical;
use bms_keys::web::credentials::{Presented, presented};
use bms_keys::web::middleware::redacted_target;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if check_format(text).is_ok() {
        assert_eq!(text.len(), 50);
        assert!(text.starts_with("bms_"));
        assert!(contains_secret_like(text), "a valid secret escapes the leak detector");
    }
    let (path, query) = text.split_once('?').unwrap_or((text, ""));
    assert!(!contains_secret_like(&redacted_target(path, query)));
    if let Ok(path) = canonical(path) {
        assert!(path.as_str().split('/').all(|s| s != "." && s != ".."));
    }
    let _ = presented(&HeaderMap::new(), text);
    if let Ok(value) = HeaderValue::from_str(text)
        && value.to_str().is_ok()
    {
        let mut headers = HeaderMap::new();
        headers.insert(HeaderName::from_static("x-api-key"), value);
        match presented(&headers, "") {
            Presented::Secret(s) => assert_eq!(s, text),
            _ => panic!("a header alone is presented as it is"),
        }
    }
    if !text.contains(['&', '=', '%', '+', '#']) {
        match presented(&HeaderMap::new(), &format!("apiKey={text}")) {
            Presented::Secret(s) => assert_eq!(s, text),
            _ => panic!("a plain apiKey value is presented as it is"),
        }
    }
});
