//! Verification for other services: `POST /v1/keys/verify` (ask whether a request may pass) and
//! `GET /v1/auth/forward` (nginx `auth_request`, Traefik ForwardAuth, Envoy ext_authz-style gateways).

use actix_web::http::header::{self, HeaderName, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;

use crate::verify::{Check, Grant, Refusal, Requirement};
use crate::web::State;
use crate::web::bms_api::{
    ApiConflict, ApiRefusal, Presented, account_in_path, client_addr, presented,
};

#[derive(Deserialize)]
pub struct VerifyRequest {
    key: String,
    #[serde(default = "default_method")]
    method: String,
    path: String,
}

fn default_method() -> String {
    "GET".to_owned()
}

/// What a verification needs besides the code: a method and a path that make sense.
fn request_problem(method: &str, path: &str) -> Option<&'static str> {
    if method.is_empty() || method.len() > 16 || !method.bytes().all(|b| b.is_ascii_uppercase()) {
        Some("method must be an upper-case HTTP method, like GET.")
    } else if !path.starts_with('/') || path.len() > 2048 || path.chars().any(char::is_control) {
        Some("path must be an absolute path, like /api/v1/accounts/acc_…/ads.")
    } else {
        None
    }
}

/// The ping API needs only a code that reaches the account; everything else a matching policy.
fn requirement_for(method: &str, path: &str) -> Requirement {
    let ping = path.starts_with("/api/v1/accounts/")
        && path.ends_with("/ping")
        && path.matches('/').count() == 5;
    if method == "GET" && ping {
        Requirement::ReachOnly
    } else {
        Requirement::Policy
    }
}

fn verdict(result: &Result<Grant, Refusal>) -> serde_json::Value {
    match result {
        Ok(g) => serde_json::json!({
            "valid": true,
            "code": "ok",
            "account_id": &*g.account_id,
            "api_key_id": &*g.api_key_id,
            "access_code_id": &*g.access_code_id,
            "policies": &*g.policies,
            "expires_at": crate::db::rfc3339(&g.expires_at),
        }),
        Err(refusal) => serde_json::json!({
            "valid": false,
            "code": refusal.code(),
            "message": refusal.message(),
            "account_id": null,
            "api_key_id": null,
            "access_code_id": null,
            "policies": [],
            "expires_at": null,
        }),
    }
}

/// `POST /v1/keys/verify` `{ "key", "method", "path" }` → 200 with the verdict (`valid` true or false);
/// 400 for a malformed request, 429 when rate-limited, 503 when the decision cannot be made.
pub async fn verify_key(
    req: HttpRequest,
    state: State,
    body: web::Json<VerifyRequest>,
) -> HttpResponse {
    let body = body.into_inner();
    let path = body.path.split('?').next().unwrap_or("");
    if let Some(problem) = request_problem(&body.method, path) {
        return HttpResponse::BadRequest()
            .json(crate::web::bms_api::error_body("bad_request", problem));
    }
    let check = Check {
        secret: &body.key,
        method: &body.method,
        path,
        target_account: account_in_path(path),
        requirement: requirement_for(&body.method, path),
        client_ip: client_addr(&req, &state),
    };
    let result = state.verifier.verify(&check).await;
    let status = match &result {
        Err(r @ (Refusal::RateLimited { .. } | Refusal::Unavailable)) => {
            actix_web::http::StatusCode::from_u16(r.status())
                .unwrap_or(actix_web::http::StatusCode::SERVICE_UNAVAILABLE)
        }
        _ => actix_web::http::StatusCode::OK,
    };
    let mut res = HttpResponse::build(status);
    if let Err(Refusal::RateLimited { retry_after }) = &result {
        res.insert_header((
            header::RETRY_AFTER,
            retry_after.as_secs().max(1).to_string(),
        ));
    }
    res.json(verdict(&result))
}

fn header_str<'a>(req: &'a HttpRequest, names: &[&str]) -> Option<&'a str> {
    names
        .iter()
        .find_map(|n| req.headers().get(*n).and_then(|v| v.to_str().ok()))
}

/// `GET /v1/auth/forward` — for gateways: the key from `x-api-key` or the `apiKey` of the original
/// URI, the method and URI from `X-Forwarded-*` / `X-Original-*`. 200 with `X-Bms-Account` and
/// `X-Bms-Api-Key`, else 401/403 (429, 503) with a JSON body.
pub async fn forward_auth(
    req: HttpRequest,
    state: State,
) -> Result<HttpResponse, actix_web::Error> {
    let uri = header_str(&req, &["x-forwarded-uri", "x-original-uri"]).unwrap_or("/");
    let (path, query) = uri.split_once('?').unwrap_or((uri, ""));
    let method = header_str(&req, &["x-forwarded-method", "x-original-method"]).unwrap_or("GET");
    let header = req
        .headers()
        .get("x-api-key")
        .map(|v| v.to_str().unwrap_or("\u{0}"));
    let secret = match presented(header, query) {
        Presented::Secret(s) => s,
        Presented::None => String::new(),
        Presented::Conflicting => return Err(ApiConflict.into()),
    };
    if let Some(problem) = request_problem(method, path) {
        // The gateway sent headers we cannot read: say so, rather than blame the caller's code.
        return Ok(HttpResponse::BadRequest()
            .json(crate::web::bms_api::error_body("bad_request", problem)));
    }
    let check = Check {
        secret: &secret,
        method,
        path,
        target_account: account_in_path(path),
        requirement: requirement_for(method, path),
        client_ip: client_addr(&req, &state),
    };
    let grant = state.verifier.verify(&check).await.map_err(ApiRefusal)?;
    let mut res = HttpResponse::Ok();
    for (name, value) in [
        ("x-bms-account", &*grant.account_id),
        ("x-bms-api-key", &*grant.api_key_id),
        ("x-bms-access-code", &*grant.access_code_id),
    ] {
        if let Ok(value) = HeaderValue::from_str(value) {
            res.insert_header((HeaderName::from_static(name), value));
        }
    }
    if let Ok(value) = HeaderValue::from_str(&grant.policies.join(",")) {
        res.insert_header((HeaderName::from_static("x-bms-policies"), value));
    }
    Ok(res.finish())
}
