//! The HTTP contract's URLs (DESIGN.md), written out as literals. Deliberately not `src/web/urls.rs`:
//! integrations and bookmarks outside this repository use these exact paths, so a change to the
//! application's own URL builders that moved one must fail here rather than move the tests with it.

pub const HOME: &str = "/";
pub const LOGIN: &str = "/login";
pub const LOGOUT: &str = "/logout";
pub const SETUP: &str = "/setup";
pub const ACCOUNTS: &str = "/accounts";
pub const PASSWORD: &str = "/account/password";
pub const SIGN_OUT_ELSEWHERE: &str = "/account/sessions/sign-out-elsewhere";
pub const API_DOCS: &str = "/docs/apis";
pub const API_KEYS_HELP: &str = "/docs/api-keys";
pub const MANAGEMENT_API_DOCS: &str = "/docs/api";
/// `POST` a code, method and path; the answer says whether the code may make that request.
pub const VERIFY: &str = "/v1/keys/verify";
/// A gateway's `auth_request` / `forward_auth` subrequest.
pub const FORWARD_AUTH: &str = "/v1/auth/forward";

/// The first-run page, with the token the server printed.
pub fn setup(token: &str) -> String {
    format!("/setup?token={token}")
}

/// The API Keys list (`GET`), and where the editor posts a new key (`POST`).
pub fn keys(acc: &str) -> String {
    format!("/accounts/{acc}/permissions/api-keys")
}

/// The key editor without a mode (it creates).
pub fn editor(acc: &str) -> String {
    format!("/accounts/{acc}/permissions/api-keys/new")
}

/// The key editor, `mode` `create` or `link`.
pub fn new_key(acc: &str, mode: &str) -> String {
    format!("/accounts/{acc}/permissions/api-keys/new?mode={mode}")
}

/// One key's Details tab.
pub fn key(acc: &str, key: &str) -> String {
    format!("/accounts/{acc}/permissions/api-keys/{key}")
}

pub fn delete_key(acc: &str, key: &str) -> String {
    format!("/accounts/{acc}/permissions/api-keys/{key}/delete")
}

/// The key's Access Codes tab (`GET`), and where a new code is posted (`POST`).
pub fn codes(acc: &str, key: &str) -> String {
    format!("/accounts/{acc}/permissions/api-keys/{key}/access-codes")
}

/// One code: `POST` saves its description.
pub fn code(acc: &str, key: &str, code: &str) -> String {
    format!("/accounts/{acc}/permissions/api-keys/{key}/access-codes/{code}")
}

pub fn code_secret(acc: &str, key: &str, code: &str) -> String {
    format!("/accounts/{acc}/permissions/api-keys/{key}/access-codes/{code}/secret")
}

pub fn code_download(acc: &str, key: &str, code: &str) -> String {
    format!("/accounts/{acc}/permissions/api-keys/{key}/access-codes/{code}/download")
}

pub fn code_enabled(acc: &str, key: &str, code: &str) -> String {
    format!("/accounts/{acc}/permissions/api-keys/{key}/access-codes/{code}/enabled")
}

pub fn delete_code(acc: &str, key: &str, code: &str) -> String {
    format!("/accounts/{acc}/permissions/api-keys/{key}/access-codes/{code}/delete")
}

pub fn audit(acc: &str) -> String {
    format!("/accounts/{acc}/audit")
}

/// The confirmation (`GET`) and removal (`POST`) of another account's link `link` to `key`.
pub fn remove_link(acc: &str, key: &str, link: &str) -> String {
    format!("/accounts/{acc}/permissions/api-keys/{key}/links/{link}/remove")
}

/// A built-in BMS API of the account: `ads`, `metrics`, `drive-files`, `ping`.
pub fn api(acc: &str, api: &str) -> String {
    format!("/api/v1/accounts/{acc}/{api}")
}

/// The Webhooks tab of API Keys (`GET`), and where a new endpoint is posted (`POST`).
pub fn webhooks(acc: &str) -> String {
    format!("/accounts/{acc}/permissions/api-keys/webhooks")
}

/// One webhook endpoint's page (`GET`), and where its settings are posted (`POST`); its actions are
/// below it: `/enabled`, `/secret`, `/test`, `/delete`, `/deliveries/{msg}/redeliver`.
pub fn webhook(acc: &str, hook: &str) -> String {
    format!("/accounts/{acc}/permissions/api-keys/webhooks/{hook}")
}
