//! The BMS APIs this binary serves, each behind the verification path: a policy must allow the API,
//! except ping, which answers any valid code that reaches the account. Handlers receive the grant,
//! never the credentials.

use std::future::{Future, ready};
use std::net::IpAddr;
use std::pin::Pin;

use actix_web::http::{StatusCode, header};
use actix_web::{FromRequest, HttpRequest, HttpResponse, ResponseError, web};
use percent_encoding::percent_decode_str;
use serde::Deserialize;

use crate::error::AppError;
use crate::verify::{Check, Grant, Refusal, Requirement, Verification};
use crate::web::{AppState, State};
use crate::{ads, drive_files, usage};

/// A refused API request, answered in JSON: `{ "error": { "code", "message" } }`.
#[derive(Debug)]
pub struct ApiRefusal(pub Refusal);

impl std::fmt::Display for ApiRefusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0.code())
    }
}

impl ResponseError for ApiRefusal {
    fn status_code(&self) -> StatusCode {
        StatusCode::from_u16(self.0.status()).unwrap_or(StatusCode::FORBIDDEN)
    }

    fn error_response(&self) -> HttpResponse {
        let mut res = HttpResponse::build(self.status_code());
        if let Refusal::RateLimited { retry_after } = &self.0 {
            res.insert_header((
                header::RETRY_AFTER,
                retry_after.as_secs().max(1).to_string(),
            ));
        }
        res.json(error_body(self.0.code(), &self.0.message()))
    }
}

pub fn error_body(code: &str, message: &str) -> serde_json::Value {
    serde_json::json!({ "error": { "code": code, "message": message } })
}

/// Where the access code came from.
pub enum Presented {
    Secret(String),
    None,
    /// Both the header and the query string carry a code, and they differ.
    Conflicting,
}

/// The `apiKey` parameter of a query string, decoded.
pub fn query_api_key(query: &str) -> Option<String> {
    query.split('&').find_map(|pair| {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        (percent_decode_str(name).decode_utf8_lossy() == "apiKey").then(|| {
            percent_decode_str(&value.replace('+', " "))
                .decode_utf8_lossy()
                .into_owned()
        })
    })
}

/// The code from `x-api-key`, else from `apiKey` in `query`; both present and different is refused.
pub fn presented(header: Option<&str>, query: &str) -> Presented {
    let from_query = if query.contains("piKey") {
        query_api_key(query)
    } else {
        None
    };
    match (header, from_query) {
        (Some(h), Some(q)) if h != q => Presented::Conflicting,
        (Some(h), _) => Presented::Secret(h.to_owned()),
        (None, Some(q)) => Presented::Secret(q),
        (None, None) => Presented::None,
    }
}

/// The client address used for rate limiting.
pub fn client_addr(req: &HttpRequest, state: &AppState) -> Option<IpAddr> {
    if state.settings.trust_proxy {
        req.connection_info().realip_remote_addr().and_then(|s| {
            s.parse::<IpAddr>()
                .ok()
                .or_else(|| s.parse::<std::net::SocketAddr>().ok().map(|a| a.ip()))
        })
    } else {
        req.peer_addr().map(|a| a.ip())
    }
}

/// The `{account}` of a BMS API path: the segment after `accounts`.
pub fn account_in_path(path: &str) -> Option<&str> {
    let mut segments = path.split('/');
    segments.find(|s| *s == "accounts")?;
    segments.next().filter(|s| !s.is_empty())
}

type AuthFuture = Pin<Box<dyn Future<Output = Result<Grant, actix_web::Error>>>>;

/// Runs the verification path for a request to one of this binary's BMS APIs on `account`.
fn verify_request(req: &HttpRequest, account: &str, requirement: Requirement) -> AuthFuture {
    let Some(state) = req.app_data::<State>().cloned() else {
        return Box::pin(ready(Err(
            AppError::internal("application state missing").into()
        )));
    };
    // A header that is not visible ASCII cannot hold a valid code: it is refused as malformed.
    let header = req
        .headers()
        .get("x-api-key")
        .map(|v| v.to_str().unwrap_or("\u{0}"));
    let secret = match presented(header, req.query_string()) {
        Presented::Secret(s) => s,
        Presented::None => String::new(),
        Presented::Conflicting => return Box::pin(ready(Err(ApiConflict.into()))),
    };
    let check = Check {
        secret: &secret,
        method: req.method().as_str(),
        path: req.path(),
        target_account: Some(account),
        requirement,
        client_ip: client_addr(req, &state),
    };
    match state.verifier.start(&check) {
        // The warm path: decided from memory, answered without leaving this worker.
        Verification::Done(result) => Box::pin(ready(result.map_err(|r| ApiRefusal(r).into()))),
        Verification::Pending(future) => {
            Box::pin(async move { future.await.map_err(|r| ApiRefusal(r).into()) })
        }
    }
}

/// Two different access codes in one request: refused, since it is unclear which one is meant.
#[derive(Debug)]
pub struct ApiConflict;

impl std::fmt::Display for ApiConflict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("conflicting access codes")
    }
}

impl ResponseError for ApiConflict {
    fn status_code(&self) -> StatusCode {
        StatusCode::BAD_REQUEST
    }

    fn error_response(&self) -> HttpResponse {
        HttpResponse::BadRequest().json(error_body(
            "conflicting_keys",
            "The x-api-key header and the apiKey query parameter carry different access codes. Send one.",
        ))
    }
}

/// `/api/v1/accounts/{acc}/…`, routed by hand: actix's router matches patterns with dynamic segments
/// through a regex on every request, which took a fifth of the hot path's CPU time in a profile; five
/// fixed APIs need no regex. The code is verified before any body is read.
pub async fn dispatch(
    req: HttpRequest,
    payload: web::Payload,
    state: State,
) -> Result<HttpResponse, actix_web::Error> {
    let rest = req.path().strip_prefix("/api/v1/accounts/").unwrap_or("");
    let (account, api) = rest.split_once('/').unwrap_or((rest, ""));
    if account.is_empty() || account.len() > 64 {
        return Ok(crate::web::errors::json_not_found().await);
    }
    let account = account.to_owned();
    match (req.method().as_str(), api) {
        ("GET", "ping") => Ok(ping(
            verify_request(&req, &account, Requirement::ReachOnly).await?,
        )),
        ("GET", "metrics") => {
            metrics(
                state,
                verify_request(&req, &account, Requirement::Policy).await?,
            )
            .await
        }
        ("GET", "ads") => {
            list_ads(
                state,
                verify_request(&req, &account, Requirement::Policy).await?,
            )
            .await
        }
        ("POST", "ads") => {
            let grant = verify_request(&req, &account, Requirement::Policy).await?;
            let body = web::Json::<NewAd>::from_request(&req, &mut payload.into_inner()).await?;
            create_ad(state, grant, body.into_inner()).await
        }
        ("GET", "drive-files") => {
            list_drive_files(
                state,
                verify_request(&req, &account, Requirement::Policy).await?,
            )
            .await
        }
        (_, "ping" | "metrics" | "ads" | "drive-files") => Ok(HttpResponse::MethodNotAllowed()
            .json(error_body(
                "method_not_allowed",
                "This API does not accept this method. See /docs/apis.",
            ))),
        _ => Ok(crate::web::errors::json_not_found().await),
    }
}

/// The ping API's answer: what the code is, as far as this account is concerned.
#[derive(serde::Serialize)]
struct PingAnswer<'a> {
    ok: bool,
    account_id: &'a str,
    api_key_id: &'a str,
    access_code_id: &'a str,
    policies: &'a [String],
    #[serde(serialize_with = "crate::db::serialize_utc")]
    expires_at: time::PrimitiveDateTime,
    linked: bool,
}

/// `GET /api/v1/accounts/{acc}/ping` — answers any valid code that reaches the account.
fn ping(grant: Grant) -> HttpResponse {
    HttpResponse::Ok().json(PingAnswer {
        ok: true,
        account_id: &grant.account_id,
        api_key_id: &grant.api_key_id,
        access_code_id: &grant.access_code_id,
        policies: &grant.policies,
        expires_at: grant.expires_at,
        linked: grant.linked,
    })
}

/// JSON for a domain error on an API route (validation failures name their fields).
fn api_error(e: AppError) -> actix_web::Error {
    match e {
        AppError::Invalid(errors) => {
            let res =
                HttpResponse::UnprocessableEntity().json(error_body("invalid", &errors.summary()));
            actix_web::error::InternalError::from_response("invalid", res).into()
        }
        other => other.into(),
    }
}

/// `GET /api/v1/accounts/{acc}/metrics` — requests per key per day, last 30 days.
async fn metrics(state: State, grant: Grant) -> Result<HttpResponse, actix_web::Error> {
    let account = grant.account_id.to_string();
    let rows = state
        .db
        .run(move |conn| Ok(usage::for_account(conn, &account, 30)?))
        .await
        .map_err(api_error)?;
    let days: Vec<_> = rows
        .into_iter()
        .map(|(key_id, key_name, day, requests)| {
            serde_json::json!({ "day": day.to_string(), "api_key_id": key_id, "api_key_name": key_name, "requests": requests })
        })
        .collect();
    Ok(HttpResponse::Ok()
        .json(serde_json::json!({ "account_id": &*grant.account_id, "days": days })))
}

/// `GET /api/v1/accounts/{acc}/ads`
async fn list_ads(state: State, grant: Grant) -> Result<HttpResponse, actix_web::Error> {
    let account = grant.account_id.to_string();
    let ads = state
        .db
        .run(move |conn| Ok(ads::list_for_account(conn, &account)?))
        .await
        .map_err(api_error)?;
    Ok(HttpResponse::Ok().json(serde_json::json!({ "ads": ads })))
}

#[derive(Deserialize)]
pub struct NewAd {
    name: String,
    daily_budget_cents: i64,
}

/// `POST /api/v1/accounts/{acc}/ads` `{ "name", "daily_budget_cents" }` → 201 with the ad.
async fn create_ad(
    state: State,
    grant: Grant,
    body: NewAd,
) -> Result<HttpResponse, actix_web::Error> {
    let account = grant.account_id.to_string();
    let NewAd {
        name,
        daily_budget_cents,
    } = body;
    let ad = state
        .db
        .run(move |conn| ads::create(conn, &account, &name, daily_budget_cents))
        .await
        .map_err(api_error)?;
    Ok(HttpResponse::Created().json(ad))
}

/// `GET /api/v1/accounts/{acc}/drive-files`
async fn list_drive_files(state: State, grant: Grant) -> Result<HttpResponse, actix_web::Error> {
    let account = grant.account_id.to_string();
    let files = state
        .db
        .run(move |conn| Ok(drive_files::list_for_account(conn, &account)?))
        .await
        .map_err(api_error)?;
    Ok(HttpResponse::Ok().json(serde_json::json!({ "files": files })))
}
