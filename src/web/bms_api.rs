//! The BMS APIs this binary serves, each behind the verification path: a policy must allow the API,
//! except ping, which answers any valid code that reaches the account. Handlers receive the grant,
//! never the credentials.

use std::borrow::Cow;
use std::future::{Future, ready};
use std::pin::Pin;

use actix_web::dev::Payload;
use actix_web::http::header::HeaderMap;
use actix_web::http::{StatusCode, header};
use actix_web::{FromRequest, HttpRequest, HttpResponse, ResponseError, web};
use percent_encoding::percent_decode_str;
use serde::Deserialize;

use crate::error::AppError;
use crate::verify::{CanonicalPath, Check, Grant, Refusal, Requirement, Verification, canonical};
use crate::web::State;
use crate::web::body::{problem_response, read_within};
use crate::web::client::client_addr;
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
pub enum Presented<'a> {
    Secret(Cow<'a, str>),
    None,
    /// Two different codes: the header and the query string, or a repeated header or parameter.
    /// Which one an upstream would use is unknown, so neither is.
    Conflicting,
}

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
    let mut values = headers.get_all("x-api-key");
    // A header that is not visible ASCII cannot hold a valid code: it is refused as malformed.
    let header = values.next().map(|v| v.to_str().unwrap_or("\u{0}"));
    if let Some(first) = header
        && values.any(|v| v.to_str().ok() != Some(first))
    {
        return Presented::Conflicting;
    }
    // Only a query that could name the parameter (`apiKey`, `%61piKey`, `ap%69Key`…) is parsed.
    let from_query = if query.contains("piKey") || query.contains('%') {
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

type AuthFuture = Pin<Box<dyn Future<Output = Result<Grant, actix_web::Error>>>>;

/// Runs the verification path for a request to one of this binary's BMS APIs on `account`.
fn verify_request(
    req: &HttpRequest,
    path: CanonicalPath<'_>,
    account: &str,
    requirement: Requirement,
) -> AuthFuture {
    let Some(state) = req.app_data::<State>().cloned() else {
        return Box::pin(ready(Err(
            AppError::internal("application state missing").into()
        )));
    };
    let secret = match presented(req.headers(), req.query_string()) {
        Presented::Secret(s) => s,
        Presented::None => Cow::Borrowed(""),
        Presented::Conflicting => return Box::pin(ready(Err(ApiConflict.into()))),
    };
    let check = Check {
        secret: &secret,
        method: req.method().as_str(),
        path,
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
/// fixed APIs need no regex. The path must be canonical (the same check as the verify and forward
/// endpoints make); the code is verified before any body is read.
pub async fn dispatch(
    req: HttpRequest,
    payload: web::Payload,
    state: State,
) -> Result<HttpResponse, actix_web::Error> {
    let path = canonical(req.path()).map_err(|why| ApiRefusal(Refusal::BadPath(why)))?;
    let rest = path
        .as_str()
        .strip_prefix("/api/v1/accounts/")
        .unwrap_or("");
    let (account, api) = rest.split_once('/').unwrap_or((rest, ""));
    if account.is_empty() || account.len() > 64 {
        return Ok(crate::web::errors::json_not_found().await);
    }
    let verified = |requirement| verify_request(&req, path, account, requirement);
    match (req.method().as_str(), api) {
        ("GET", "ping") => Ok(ping(verified(Requirement::ReachOnly).await?)),
        ("GET", "metrics") => metrics(state, verified(Requirement::Policy).await?).await,
        ("GET", "ads") => list_ads(state, verified(Requirement::Policy).await?).await,
        ("POST", "ads") => {
            let grant = verified(Requirement::Policy).await?;
            // This scope has no body middleware (the hot path has no body): the same deadline here.
            let bytes = match read_within(payload.into_inner(), state.settings.body_timeout).await {
                Ok(bytes) => bytes,
                Err(problem) => return Ok(problem_response(problem, true)),
            };
            let body = web::Json::<NewAd>::from_request(&req, &mut Payload::from(bytes)).await?;
            create_ad(state, grant, body.into_inner()).await
        }
        ("GET", "drive-files") => {
            list_drive_files(state, verified(Requirement::Policy).await?).await
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
