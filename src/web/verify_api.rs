//! Verification for other services: `POST /v1/keys/verify` (ask whether a request may pass) and
//! `GET /v1/auth/forward` (nginx `auth_request`, Traefik ForwardAuth, Envoy ext_authz-style gateways).

use std::borrow::Cow;

use actix_web::http::StatusCode;
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;

use crate::verify::{BadPath, CanonicalPath, Check, Grant, Refusal, Requirement, canonical};
use crate::web::api_errors::{ApiRefusal, Problem, conflicting_keys, with_rate_limit};
use crate::web::client::client_addr;
use crate::web::credentials::{Presented, presented};
use crate::web::state::State;

#[derive(Deserialize)]
pub struct VerifyRequest {
    key: String,
    /// Required: a request is never judged as some default method.
    method: String,
    path: String,
}

/// A refusal of the request's description (not of its access code): 400 with a stable code.
fn bad_request(code: &'static str, message: impl Into<Cow<'static, str>>) -> actix_web::Error {
    Problem::new(StatusCode::BAD_REQUEST, code, message).into()
}

/// The method and the URI (path and query) of the request to decide, as the caller describes them:
/// an upper-case method, and a path that is canonical — the one the upstream will serve.
fn described<'a>(
    method: &str,
    uri: &'a str,
) -> Result<(CanonicalPath<'a>, &'a str), actix_web::Error> {
    if method.is_empty() || method.len() > 16 || !method.bytes().all(|b| b.is_ascii_uppercase()) {
        return Err(bad_request(
            "bad_request",
            "method must be an upper-case HTTP method, like GET.",
        ));
    }
    let (path, query) = uri.split_once('?').unwrap_or((uri, ""));
    // A fragment is never part of a request; control characters never part of a query.
    if query.bytes().any(|b| b == b'#' || b.is_ascii_control()) {
        return Err(ApiRefusal(Refusal::BadPath(BadPath::Character)).into());
    }
    let path = canonical(path).map_err(|why| ApiRefusal(Refusal::BadPath(why)))?;
    Ok((path, query))
}

/// The ping API and the policy catalogue need only a code that reaches the account; everything else a
/// matching policy. The APIs this binary serves decide by the same function.
pub(crate) fn requirement_for(method: &str, path: CanonicalPath<'_>) -> Requirement {
    let path = path.as_str();
    let open = path.starts_with("/api/v1/accounts/")
        && (path.ends_with("/ping") || path.ends_with("/policies"))
        && path.matches('/').count() == 5;
    if method == "GET" && open {
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
            "account_id": &**g.account_id(),
            "api_key_id": &**g.api_key_id(),
            "access_code_id": &**g.access_code_id(),
            "policies": g.policies(),
            "expires_at": crate::db::rfc3339(&g.expires_at()),
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
/// 400 for a malformed request or a path that is not canonical (`bad_path`), 429 when rate-limited,
/// 503 when the decision cannot be made.
pub async fn verify_key(
    req: HttpRequest,
    state: State,
    body: web::Json<VerifyRequest>,
) -> Result<HttpResponse, actix_web::Error> {
    let body = body.into_inner();
    let (path, _query) = described(&body.method, &body.path)?;
    let check = Check {
        secret: &body.key,
        method: &body.method,
        path,
        target_account: path.account(),
        requirement: requirement_for(&body.method, path),
        client_ip: client_addr(&req, &state),
    };
    let result = state.verifier.verify(&check).await;
    match result {
        // No verdict could be made: a problem (with `valid: false`, so verdict readers need no case).
        Err(
            refusal @ (Refusal::RateLimited { .. } | Refusal::KeyLimited(_) | Refusal::Unavailable),
        ) => {
            let refusal = ApiRefusal(refusal);
            let mut problem = serde_json::to_value(refusal.problem()).unwrap_or_default();
            problem["valid"] = serde_json::Value::Bool(false);
            Ok(refusal
                .builder()
                .content_type(crate::web::api_errors::PROBLEM_JSON)
                .body(problem.to_string()))
        }
        result => {
            let rate = result.as_ref().ok().and_then(|g| g.rate);
            Ok(with_rate_limit(
                HttpResponse::Ok().json(verdict(&result)),
                rate.as_ref(),
            ))
        }
    }
}

/// The one value a gateway gave under either name of a header pair (`X-Forwarded-Uri` and
/// `X-Original-URI`, say). Missing, unreadable, or two different values (a client's copy that the
/// gateway let through beside its own) is a refusal: never a default, never a guess.
fn gateway_header<'a>(req: &'a HttpRequest, names: [&str; 2]) -> Result<&'a str, actix_web::Error> {
    let mut found: Option<&str> = None;
    for value in names.iter().flat_map(|n| req.headers().get_all(*n)) {
        let Ok(value) = value.to_str() else {
            return Err(bad_request(
                "bad_request",
                format!("The gateway sent an unreadable {} header.", names[0]),
            ));
        };
        match found {
            Some(earlier) if earlier != value => {
                return Err(bad_request(
                    "conflicting_headers",
                    format!(
                        "The gateway sent two different values for {} / {}: it must overwrite both.",
                        names[0], names[1]
                    ),
                ));
            }
            _ => found = Some(value),
        }
    }
    found.ok_or_else(|| {
        bad_request(
            "bad_request",
            format!(
                "The gateway must send the original request's {} (or {}).",
                names[0], names[1]
            ),
        )
    })
}

/// `GET /v1/auth/forward` — for gateways: the original method and URI from `X-Forwarded-Method` /
/// `X-Original-Method` and `X-Forwarded-Uri` / `X-Original-URI` (both required; the two names of a
/// pair must agree), the key from `x-api-key` or the URI's `apiKey`. 200 with `X-Bms-Account`,
/// `X-Bms-Api-Key`, `X-Bms-Access-Code` and `X-Bms-Policies`; else 400 (the gateway's headers or a
/// path that is not canonical), 401/403 (the code), 429, 503 — each with a JSON body.
pub async fn forward_auth(
    req: HttpRequest,
    state: State,
) -> Result<HttpResponse, actix_web::Error> {
    let uri = gateway_header(&req, ["x-forwarded-uri", "x-original-uri"])?;
    let method = gateway_header(&req, ["x-forwarded-method", "x-original-method"])?;
    let (path, query) = described(method, uri)?;
    let secret = match presented(req.headers(), query) {
        Presented::Secret(s) => s,
        Presented::None => Cow::Borrowed(""),
        Presented::Conflicting => return Err(conflicting_keys().into()),
    };
    let check = Check {
        secret: &secret,
        method,
        path,
        target_account: path.account(),
        requirement: requirement_for(method, path),
        client_ip: client_addr(&req, &state),
    };
    let grant = state.verifier.verify(&check).await.map_err(ApiRefusal)?;
    let mut res = HttpResponse::Ok();
    for (name, value) in [
        ("x-bms-account", &**grant.account_id()),
        ("x-bms-api-key", &**grant.api_key_id()),
        ("x-bms-access-code", &**grant.access_code_id()),
    ] {
        if let Ok(value) = HeaderValue::from_str(value) {
            res.insert_header((HeaderName::from_static(name), value));
        }
    }
    if let Ok(value) = HeaderValue::from_str(&grant.policies().join(",")) {
        res.insert_header((HeaderName::from_static("x-bms-policies"), value));
    }
    Ok(with_rate_limit(res.finish(), grant.rate.as_ref()))
}
