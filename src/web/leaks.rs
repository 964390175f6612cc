//! `POST /v1/credentials/revoke` — anyone who finds a leaked access code can revoke it, as GitHub's
//! credential revocation API lets anyone revoke a leaked token. The answer is the same whatever was
//! sent (202 with the number of credentials received), so it tells nothing about which codes exist.

use actix_web::http::StatusCode;
use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;

use crate::exposure::{self, MAX_REPORTED, Report};
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
    let credentials = body.into_inner().credentials;
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
    let changed = state
        .db
        .run(move |conn| {
            crate::revocation::commit(conn, |conn| {
                let report = Report {
                    source: "credential revocation API",
                    location: None,
                    client_ip: &ip,
                };
                exposure::revoke_reported(conn, &keys, &credentials, &report)
            })
        })
        .await?;
    state.verifier.forget(&changed.revoked);
    tracing::info!(
        received,
        found = changed.value,
        "credential revocation report"
    );
    Ok(HttpResponse::Accepted().json(serde_json::json!({ "received": received })))
}
