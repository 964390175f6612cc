//! The BMS APIs this binary serves, each behind the verification path: a policy must allow the API,
//! except ping, which answers any valid code that reaches the account. Handlers receive the grant,
//! never the credentials.
//!
//! Two ways in, one set of rules: `FastLane` answers every request it can from the request's head
//! alone, before the app (the BMS APIs' hot path); `BmsApis`, registered on the app, serves what the
//! fast lane hands on (a body to read, the management API, a path the app's router reads differently).

use std::borrow::Cow;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use actix_service::IntoServiceFactory;
use actix_web::body::BoxBody;
use actix_web::dev::{
    AppConfig, AppService, HttpServiceFactory, Payload, RequestHead, ResourceDef, Response,
    Service, ServiceFactory, ServiceRequest, ServiceResponse, fn_service,
};
use actix_web::http::StatusCode;
use actix_web::http::header::{CONTENT_TYPE, HeaderValue};
use actix_web::{FromRequest, HttpRequest, HttpResponse, ResponseError, web};
use serde::Deserialize;

use crate::error::AppError;
use crate::verify::{CanonicalPath, Check, Grant, Refusal, Requirement, Verification, canonical};
use crate::web::api_errors::{ApiRefusal, Problem, conflicting_keys, with_rate_limit};
use crate::web::body::{problem_response, read_within};
use crate::web::client::client_addr_of;
use crate::web::credentials::{Presented, presented};
use crate::web::state::State;
use crate::{ads, drive_files, usage};

/// Runs the verification path for a request to one of this binary's BMS APIs on `account`.
pub(crate) async fn verify_request(
    req: &HttpRequest,
    state: &State,
    path: CanonicalPath<'_>,
    account: &str,
    requirement: Requirement,
) -> Result<Grant, actix_web::Error> {
    settle(start_verification(
        req.head(),
        state,
        path,
        account,
        requirement,
    )?)
    .await
}

/// A verification's outcome, once its lookup (if it needed one) is done.
async fn settle(verification: Verification) -> Result<Grant, actix_web::Error> {
    let result = match verification {
        Verification::Done(result) => result,
        Verification::Pending(lookup) => lookup.await,
    };
    result.map_err(|r| ApiRefusal(r).into())
}

/// Starts the verification path: a warm code is decided here, without leaving this worker; a cold
/// one comes back as the lookup to await. Not an `async fn`: the BMS APIs' hot path awaits nothing
/// for a warm code (in a staged measurement, an awaited wrapper here cost about 0.3 µs a request).
fn start_verification(
    head: &RequestHead,
    state: &State,
    path: CanonicalPath<'_>,
    account: &str,
    requirement: Requirement,
) -> Result<Verification, actix_web::Error> {
    let secret = match presented(&head.headers, head.uri.query().unwrap_or("")) {
        Presented::Secret(s) => s,
        Presented::None => Cow::Borrowed(""),
        Presented::Conflicting => return Err(conflicting_keys().into()),
    };
    let check = Check {
        secret: &secret,
        method: head.method.as_str(),
        path,
        target_account: Some(account),
        requirement,
        client_ip: client_addr_of(head, state),
    };
    Ok(state.verifier.start(&check))
}

/// Where the BMS APIs live.
pub const PREFIX: &str = "/api/v1/accounts";

/// The BMS APIs, `/api/v1/accounts/{acc}/…`, as one service registered straight on the app: no scope,
/// no middleware, no extractors. Those layers (a scope's router and its boxed default service, the
/// handler's extractor futures) cost a tenth of the hot path's own CPU time in a profile; this
/// service reaches the same state and parts directly.
pub struct BmsApis;

impl HttpServiceFactory for BmsApis {
    fn register(self, config: &mut AppService) {
        config.register_service(
            ResourceDef::root_prefix(PREFIX),
            None,
            fn_service(serve),
            None,
        );
    }
}

async fn serve(req: ServiceRequest) -> Result<ServiceResponse, actix_web::Error> {
    let (req, payload) = req.into_parts();
    let res = match req.app_data::<State>() {
        Some(state) => dispatch(&req, payload, state).await,
        // The app is always built with its state (`startup`); a test app without it hears so.
        None => return Err(actix_web::error::ErrorInternalServerError("no app state")),
    };
    Ok(ServiceResponse::new(req, res))
}

/// Every answer of the app's way in, with the API headers.
async fn dispatch(req: &HttpRequest, payload: Payload, state: &State) -> HttpResponse {
    let res = match route(req.method().as_str(), req.path()) {
        Route::Api(ApiRoute {
            path,
            account,
            api: Api::PostAd,
        }) => match verify_request(req, state, path, account, Requirement::Policy).await {
            Ok(grant) => {
                let rate = grant.rate;
                let answer = Box::pin(post_ad(req, payload, state.clone(), grant))
                    .await
                    .unwrap_or_else(|e| e.error_response());
                with_rate_limit(answer, rate.as_ref())
            }
            Err(e) => e.error_response(),
        },
        Route::Api(ApiRoute {
            path,
            account,
            api: Api::Read(read),
        }) => match answer_from_head(req.head(), state, path, account, read) {
            Answer::Ready(res) => res,
            Answer::Later(answer) => answer.await,
        },
        // Boxed: awaited inline, its (large) state would be part of every BMS API request's future.
        Route::Management { path, account } => Box::pin(crate::web::manage::dispatch(
            req,
            payload,
            state.clone(),
            path,
            account,
        ))
        .await
        .unwrap_or_else(|e| e.error_response()),
        Route::Refused(res) => res,
    };
    with_api_headers(res)
}

fn with_api_headers(mut res: HttpResponse) -> HttpResponse {
    crate::web::middleware::add_api_headers(res.headers_mut());
    res
}

/// The BMS APIs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Api {
    /// One without a body: answered from the request's head.
    Read(ReadApi),
    PostAd,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ReadApi {
    Ping,
    Metrics,
    ListAds,
    DriveFiles,
}

impl ReadApi {
    /// What a code must grant to call the API (`POST …/ads`: a policy).
    fn requirement(self) -> Requirement {
        match self {
            ReadApi::Ping => Requirement::ReachOnly,
            _ => Requirement::Policy,
        }
    }
}

/// A request for one of the BMS APIs.
struct ApiRoute<'a> {
    path: CanonicalPath<'a>,
    account: &'a str,
    api: Api,
}

/// Where a request under `PREFIX` goes, from its method and path alone.
enum Route<'a> {
    Api(ApiRoute<'a>),
    /// The management API (`web::manage`), which routes, reads bodies and answers for itself.
    Management {
        path: CanonicalPath<'a>,
        account: &'a str,
    },
    /// Refused from the method and path: not canonical, no such API, or not with this method.
    Refused(HttpResponse),
}

/// Routed by hand: actix's router matches patterns with dynamic segments through a regex on every
/// request, which took a fifth of the hot path's CPU time in a profile; five fixed APIs need no
/// regex. The path must be canonical (the same check as the verify and forward endpoints make); the
/// code is verified before any body is read.
fn route<'a>(method: &str, raw_path: &'a str) -> Route<'a> {
    let path = match canonical(raw_path) {
        Ok(path) => path,
        Err(why) => return Route::Refused(ApiRefusal(Refusal::BadPath(why)).error_response()),
    };
    let rest = path
        .as_str()
        .strip_prefix(PREFIX)
        .and_then(|rest| rest.strip_prefix('/'))
        .unwrap_or("");
    // A byte search: `split_once('/')` runs a generic char searcher, twice the cost for a short id.
    let (account, api) = match rest.bytes().position(|b| b == b'/') {
        Some(slash) => (&rest[..slash], &rest[slash + 1..]),
        None => (rest, ""),
    };
    if account.is_empty() || account.len() > 64 {
        return Route::Refused(crate::web::errors::api_not_found());
    }
    let api = match (method, api) {
        ("GET", "ping") => Api::Read(ReadApi::Ping),
        ("GET", "metrics") => Api::Read(ReadApi::Metrics),
        ("GET", "ads") => Api::Read(ReadApi::ListAds),
        ("POST", "ads") => Api::PostAd,
        ("GET", "drive-files") => Api::Read(ReadApi::DriveFiles),
        (_, "ping" | "metrics" | "ads" | "drive-files") => {
            return Route::Refused(
                Problem::new(
                    StatusCode::METHOD_NOT_ALLOWED,
                    "method_not_allowed",
                    "This API does not accept this method. See /docs/apis.",
                )
                .respond(),
            );
        }
        _ if crate::web::manage::is_management(api) => {
            return Route::Management { path, account };
        }
        _ => return Route::Refused(crate::web::errors::api_not_found()),
    };
    Route::Api(ApiRoute { path, account, api })
}

/// An answer, now or once its lookups are done.
pub enum Answer {
    Ready(HttpResponse),
    Later(Pin<Box<dyn Future<Output = HttpResponse>>>),
}

/// The answer to a request for `read`, an API without a body, on `account`: a warm code on ping is
/// answered here and now; a cold code, or an API that reads the database, later.
fn answer_from_head(
    head: &RequestHead,
    state: &State,
    path: CanonicalPath<'_>,
    account: &str,
    read: ReadApi,
) -> Answer {
    let verification = match start_verification(head, state, path, account, read.requirement()) {
        Ok(verification) => verification,
        Err(e) => return Answer::Ready(e.error_response()),
    };
    match verification {
        Verification::Done(Ok(grant)) => respond(read, grant, state),
        // Answered here, not through `actix_web::Error` (a box per refusal): a flood of bad codes
        // is answered as cheaply as a valid one.
        Verification::Done(Err(refusal)) => Answer::Ready(ApiRefusal(refusal).error_response()),
        Verification::Pending(lookup) => {
            let state = state.clone();
            Answer::Later(Box::pin(async move {
                match lookup.await {
                    Ok(grant) => match respond(read, grant, &state) {
                        Answer::Ready(res) => res,
                        Answer::Later(answer) => answer.await,
                    },
                    Err(refusal) => ApiRefusal(refusal).error_response(),
                }
            }))
        }
    }
}

/// What an allowed request for `read` is answered. Every answer to an allowed request tells the
/// client what is left of its key's limits.
fn respond(read: ReadApi, grant: Grant, state: &State) -> Answer {
    let rate = grant.rate;
    let state = state.clone();
    let answer = match read {
        ReadApi::Ping => return Answer::Ready(with_rate_limit(ping(&grant), rate.as_ref())),
        ReadApi::Metrics => Box::pin(metrics(state, grant)) as Pin<Box<dyn Future<Output = _>>>,
        ReadApi::ListAds => Box::pin(list_ads(state, grant)),
        ReadApi::DriveFiles => Box::pin(list_drive_files(state, grant)),
    };
    Answer::Later(Box::pin(async move {
        let answer = answer.await.unwrap_or_else(|e| e.error_response());
        with_rate_limit(answer, rate.as_ref())
    }))
}

/// The BMS APIs' way in ahead of the app: a service factory wrapping the app's, which answers
/// every BMS API request it can from the request's head alone and hands the rest (the console, the
/// verification endpoints, the management API, `POST …/ads`) to the app, untouched. Building the
/// app's request (its pooled `HttpRequest`, the app data, the router's path) and then taking it
/// apart again was 2.8 % of all samples in a profile of the ping (a fifth of the service's time).
pub struct FastLane<A> {
    state: State,
    app: A,
}

impl<A: ServiceFactory<actix_http::Request>> FastLane<A> {
    /// The fast lane in front of `app` (an `App`), both with the same `state`.
    pub fn new(state: State, app: impl IntoServiceFactory<A, actix_http::Request>) -> Self {
        Self {
            state,
            app: app.into_factory(),
        }
    }
}

impl<A> ServiceFactory<actix_http::Request> for FastLane<A>
where
    A: ServiceFactory<
            actix_http::Request,
            Config = AppConfig,
            Response = ServiceResponse<BoxBody>,
            Error = actix_web::Error,
            InitError = (),
        >,
    A::Future: 'static,
    A::Service: 'static,
{
    type Response = Response<BoxBody>;
    type Error = actix_web::Error;
    type Config = AppConfig;
    type Service = FastLaneService<A::Service>;
    type InitError = ();
    type Future = Pin<Box<dyn Future<Output = Result<Self::Service, ()>>>>;

    fn new_service(&self, config: AppConfig) -> Self::Future {
        let state = self.state.clone();
        let app = self.app.new_service(config);
        Box::pin(async move {
            Ok(FastLaneService {
                state,
                app: app.await?,
            })
        })
    }
}

pub struct FastLaneService<S> {
    state: State,
    app: S,
}

impl<S> Service<actix_http::Request> for FastLaneService<S>
where
    S: Service<actix_http::Request, Response = ServiceResponse<BoxBody>, Error = actix_web::Error>,
    S::Future: 'static,
{
    type Response = Response<BoxBody>;
    type Error = actix_web::Error;
    type Future = Answered;

    actix_web::dev::forward_ready!(app);

    fn call(&self, req: actix_http::Request) -> Self::Future {
        let head = req.head();
        // Only what `BmsApis` would serve: its prefix, as a whole segment.
        let under_prefix = head
            .uri
            .path()
            .strip_prefix(PREFIX)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'));
        if under_prefix {
            let answer = match route(head.method.as_str(), head.uri.path()) {
                Route::Api(ApiRoute {
                    path,
                    account,
                    api: Api::Read(read),
                }) => Some(answer_from_head(head, &self.state, path, account, read)),
                Route::Refused(res) => Some(Answer::Ready(res)),
                Route::Api(_) | Route::Management { .. } => None,
            };
            match answer {
                Some(Answer::Ready(res)) => {
                    return Answered::Now(std::future::ready(Ok(with_api_headers(res).into())));
                }
                Some(Answer::Later(answer)) => {
                    return Answered::Later(Box::pin(async move {
                        Ok(with_api_headers(answer.await).into())
                    }));
                }
                None => {}
            }
        }
        let app = self.app.call(req);
        Answered::Later(Box::pin(async move { app.await.map(Into::into) }))
    }
}

type Answering = Result<Response<BoxBody>, actix_web::Error>;

/// The fast lane's answer: ready (no box), or a future (a lookup, a database read, or the app).
pub enum Answered {
    Now(std::future::Ready<Answering>),
    Later(Pin<Box<dyn Future<Output = Answering>>>),
}

impl Future for Answered {
    type Output = Answering;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Answering> {
        match self.get_mut() {
            Answered::Now(answer) => Pin::new(answer).poll(cx),
            Answered::Later(answer) => answer.as_mut().poll(cx),
        }
    }
}

/// `GET /api/v1/accounts/{acc}/ping` — answers any valid code that reaches the account: what the
/// code is, as far as this account is concerned. The answer is fixed for as long as the cached grant
/// lives, so it is rendered once per grant and then shared (`verify::cache::AnswerMemo`).
pub fn ping(grant: &Grant) -> HttpResponse {
    let body = grant
        .answer()
        .get_or_init(|| ping_body(grant).into())
        .clone();
    // A header value made at compile time: `ContentType::json()` would format and copy the MIME
    // type each time, and the response builder adds a step per header.
    const JSON: HeaderValue = HeaderValue::from_static("application/json");
    let mut res = HttpResponse::with_body(StatusCode::OK, body);
    res.headers_mut().insert(CONTENT_TYPE, JSON);
    res.map_into_boxed_body()
}

/// The ping answer's JSON. Written directly rather than through serde: every value but the policy
/// names is our own id or timestamp.
fn ping_body(grant: &Grant) -> String {
    let mut body = String::with_capacity(256);
    body.push_str("{\"ok\":true,\"account_id\":");
    push_json_str(&mut body, grant.account_id());
    body.push_str(",\"api_key_id\":");
    push_json_str(&mut body, grant.api_key_id());
    body.push_str(",\"access_code_id\":");
    push_json_str(&mut body, grant.access_code_id());
    body.push_str(",\"policies\":[");
    for (i, policy) in grant.policies().iter().enumerate() {
        if i > 0 {
            body.push(',');
        }
        push_json_str(&mut body, policy);
    }
    body.push_str("],\"expires_at\":");
    push_json_str(&mut body, &crate::db::rfc3339(&grant.expires_at()));
    body.push_str(if grant.linked() {
        ",\"linked\":true}"
    } else {
        ",\"linked\":false}"
    });
    body
}

/// A JSON string: as is when it has nothing to escape (ids, policy names, timestamps), else through
/// serde_json.
fn push_json_str(out: &mut String, s: &str) {
    if s.bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"._-:+".contains(&b))
    {
        out.push('"');
        out.push_str(s);
        out.push('"');
    } else {
        out.push_str(&serde_json::Value::from(s).to_string());
    }
}

/// A domain error on an API route: answered as a problem (outside the console's request context,
/// `AppError` always answers in JSON; validation failures name their fields).
fn api_error(e: AppError) -> actix_web::Error {
    e.into()
}

/// `GET /api/v1/accounts/{acc}/metrics` — requests per key per day, last 30 days.
async fn metrics(state: State, grant: Grant) -> Result<HttpResponse, actix_web::Error> {
    let account = grant.account_id().to_string();
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
        .json(serde_json::json!({ "account_id": &**grant.account_id(), "days": days })))
}

/// `GET /api/v1/accounts/{acc}/ads`
async fn list_ads(state: State, grant: Grant) -> Result<HttpResponse, actix_web::Error> {
    let account = grant.account_id().to_string();
    let ads = state
        .db
        .run(move |conn| Ok(ads::list_for_account(conn, &account)?))
        .await
        .map_err(api_error)?;
    Ok(HttpResponse::Ok().json(serde_json::json!({ "ads": ads })))
}

/// `POST /api/v1/accounts/{acc}/ads`: reads the body (this scope has no body middleware, since the
/// hot path has no body: the same deadline here), then creates the ad.
async fn post_ad(
    req: &HttpRequest,
    payload: Payload,
    state: State,
    grant: Grant,
) -> Result<HttpResponse, actix_web::Error> {
    match read_within(payload, state.settings.body_timeout).await {
        Ok(bytes) => match web::Json::<NewAd>::from_request(req, &mut Payload::from(bytes)).await {
            Ok(body) => create_ad(state, grant, body.into_inner()).await,
            Err(e) => Err(e),
        },
        Err(problem) => Ok(problem_response(problem, true)),
    }
}

#[derive(Deserialize)]
pub struct NewAd {
    name: String,
    daily_budget_cents: i64,
}

/// `{ "name", "daily_budget_cents" }` → 201 with the ad.
async fn create_ad(
    state: State,
    grant: Grant,
    body: NewAd,
) -> Result<HttpResponse, actix_web::Error> {
    let account = grant.account_id().to_string();
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
    let account = grant.account_id().to_string();
    let files = state
        .db
        .run(move |conn| Ok(drive_files::list_for_account(conn, &account)?))
        .await
        .map_err(api_error)?;
    Ok(HttpResponse::Ok().json(serde_json::json!({ "files": files })))
}

#[cfg(test)]
mod tests {
    use super::push_json_str;

    #[test]
    fn json_strings_are_escaped_when_they_need_it() {
        for s in [
            "acc_3kTq9ZbWm1xYc0Pa",
            "ads.read",
            "2027-01-01T00:00:00Z",
            "a\"b\\c",
            "ctl\u{1}\n",
            "ünï",
            "",
        ] {
            let mut out = String::new();
            push_json_str(&mut out, s);
            assert_eq!(serde_json::from_str::<String>(&out).unwrap(), s, "{out}");
        }
    }
}
