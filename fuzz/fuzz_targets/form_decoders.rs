//! The form decoder with every console form, and the field checks behind it: arbitrary bytes never
//! panic, and a body over the limit is always refused.
#![no_main]

use bms_keys::web::forms::{CsrfForm, FORM_LIMIT, decode};
use bms_keys::web::{access_codes, account, api_keys, auth, setup};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = decode::<api_keys::KeyForm>(data);
    let _ = decode::<auth::LoginForm>(data);
    let _ = decode::<setup::SetupForm>(data);
    let _ = decode::<account::PasswordForm>(data);
    let _ = decode::<access_codes::DescriptionForm>(data);
    let _ = decode::<access_codes::EnabledForm>(data);
    if let Ok(form) = decode::<CsrfForm>(data) {
        assert!(data.len() <= FORM_LIMIT);
        let _ = form.csrf_token;
    }
    let text = String::from_utf8_lossy(data);
    let _ = bms_keys::api_keys::name_problem(&text);
    let _ = bms_keys::api_keys::parse_tags(&text);
    let _ = bms_keys::access_codes::description_problem(&text);
});
