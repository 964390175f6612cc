//! `POST /v1/credentials/revoke` — anyone who finds a leaked access code can revoke it, as GitHub's
//! credential revocation API lets anyone revoke a leaked token. The answer is the same whatever was
//! sent (202 with the number of credentials received), so it tells nothing about which codes exist.

use actix_web::http::StatusCode;
use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;

use crate::exposure::{self, MAX_REPORTED, Report, Reported};
use crate::web::api_errors::Problem;
use crate::web::client::client_addr;
use crate::web::state::State;

#[derive(Deserialize)]
pub struct RevokeRequest {
    credentials: Vec<String>,
}

/// `POST /v1/credentials/revoke` `{"credentials": ["bms_…", …]}` (at most 100) → 202.
pub async fn revoke_credentials(
    req: HttpRequest,
    state: State,
    body: web::Json<RevokeRequest>,
) -> Result<HttpResponse, actix_web::Error> {
    let client = client_addr(&req, &state);
    if let Some(ip) = client {
        if let Err(wait) = state.revoke_reports.check(&ip) {
            let mut res = HttpResponse::TooManyRequests();
            res.insert_header((header::RETRY_AFTER, wait.as_secs().max(1).to_string()));
            return Ok(Problem::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                "Too many reports from this address. Try again later.",
            )
            .respond_with(res));
        }
        state.revoke_reports.record_failure(&ip);
    }
    let credentials: Vec<Reported> = body
        .into_inner()
        .credentials
        .into_iter()
        .map(|secret| Reported {
            secret,
            location: None,
        })
        .collect();
    if credentials.len() > MAX_REPORTED {
        return Ok(Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid",
            "Send at most 100 credentials per request.",
        )
        .respond());
    }
    let received = credentials.len();
    let ip = client.map(|ip| ip.to_string()).unwrap_or_default();
    let keys = state.keys.clone();
    let found = state
        .commit(move |conn| {
            let report = Report {
                source: "credential revocation API",
                client_ip: &ip,
            };
            exposure::revoke_reported(conn, &keys, &credentials, &report)
        })
        .await?;
    let found = found.iter().filter(|f| **f).count();
    tracing::info!(received, found, "credential revocation report");
    Ok(HttpResponse::Accepted().json(serde_json::json!({ "received": received })))
}

/// A token GitHub found, as its secret-scanning partner contract sends it.
#[derive(Deserialize)]
pub struct GithubToken {
    token: String,
    #[serde(rename = "type")]
    kind: String,
    url: Option<String>,
}

/// Most tokens one alert may carry.
const MAX_ALERT_TOKENS: usize = 1000;

fn bad_signature() -> HttpResponse {
    Problem::new(
        StatusCode::UNAUTHORIZED,
        "bad_signature",
        "The alert's Github-Public-Key-Signature does not verify with the key named by Github-Public-Key-Identifier.",
    )
    .respond()
}

/// `POST /v1/secret-scanning/github` — GitHub's leak alert: verified against GitHub's key set, refused
/// if replayed, then every `bms_` token in it is revoked like any leak report. Answers GitHub's
/// feedback: `true_positive` for a code of ours (now disabled), `false_positive` otherwise.
pub async fn github_alert(
    req: HttpRequest,
    state: State,
    body: web::Bytes,
) -> Result<HttpResponse, actix_web::Error> {
    if state.github_keys.is_none() {
        return Ok(crate::web::errors::json_not_found().await);
    }
    let header = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let (Some(key_id), Some(signature)) = (
        header("github-public-key-identifier"),
        header("github-public-key-signature"),
    ) else {
        return Ok(bad_signature());
    };
    // On the blocking pool: an unknown key id may make it fetch GitHub's key set again.
    let (checking, signed) = (state.clone(), body.clone());
    let verified = web::block(move || {
        checking
            .github_keys
            .as_ref()
            .is_some_and(|keys| keys.verify(&key_id, &signature, &signed))
    })
    .await?;
    if !verified {
        return Ok(bad_signature());
    }
    let Ok(tokens) = serde_json::from_slice::<Vec<GithubToken>>(&body) else {
        return Ok(Problem::new(
            StatusCode::BAD_REQUEST,
            "invalid_json",
            "The alert is not a JSON array of {token, type, url, source}.",
        )
        .respond());
    };
    if tokens.len() > MAX_ALERT_TOKENS {
        return Ok(Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid",
            "An alert carries at most 1000 tokens.",
        )
        .respond());
    }
    let reported: Vec<Reported> = tokens
        .iter()
        .map(|t| Reported {
            secret: t.token.clone(),
            location: t.url.clone(),
        })
        .collect();
    let ip = client_addr(&req, &state)
        .map(|ip| ip.to_string())
        .unwrap_or_default();
    let keys = state.keys.clone();
    let found = state
        .commit(move |conn| {
            if !crate::secret_scanning::first_sighting(conn, &body)? {
                return Ok(crate::revocation::Changed::nothing_revoked(None));
            }
            let report = Report {
                source: "GitHub secret scanning",
                client_ip: &ip,
            };
            Ok(exposure::revoke_reported(conn, &keys, &reported, &report)?.map(Some))
        })
        .await?;
    let Some(found) = found else {
        return Ok(Problem::new(
            StatusCode::CONFLICT,
            "replayed_alert",
            "This alert was received before: it is not acted on twice.",
        )
        .respond());
    };
    let feedback: Vec<serde_json::Value> = tokens
        .iter()
        .zip(found)
        .map(|(t, ours)| {
            serde_json::json!({
                "token_raw": t.token,
                "token_type": t.kind,
                "label": if ours { "true_positive" } else { "false_positive" },
            })
        })
        .collect();
    Ok(HttpResponse::Ok().json(feedback))
}
