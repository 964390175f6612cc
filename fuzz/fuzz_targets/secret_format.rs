//! The secret parser and the secret finders: never panic; whatever passes the format check is
//! found by the leak detector; nothing secret-like survives redaction; a secret in the header or the
//! query string is read back exactly.
#![no_main]

use bms_keys::secrets::{check_format, contains_secret_like, redact_secret_like};
use bms_keys::web::bms_api::{Presented, presented, query_api_key};
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
    assert!(!contains_secret_like(&redact_secret_like(text)));
    let (path, query) = text.split_once('?').unwrap_or((text, ""));
    assert!(!contains_secret_like(&redacted_target(path, query)));
    let _ = query_api_key(text);
    match presented(Some(text), "") {
        Presented::Secret(s) => assert_eq!(s, text),
        _ => panic!("a header alone is presented as it is"),
    }
    if !text.contains(['&', '=', '%', '+', '#']) {
        match presented(None, &format!("apiKey={text}")) {
            Presented::Secret(s) => assert_eq!(s, text),
            _ => panic!("a plain apiKey value is presented as it is"),
        }
    }
});
