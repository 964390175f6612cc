//! The management API: API keys, access codes, the audit log and the policy catalogue as JSON, under
//! `/api/v1/accounts/{account}/…` like every BMS API — verified by the same path (access code, policy,
//! tenant, links, revocation), and every change made by the same domain command the console runs,
//! through the one write path. This file holds the route table and the handlers; `types` the JSON,
//! `openapi` the document built from both.

pub mod openapi;
pub mod types;

use std::collections::BTreeSet;

use actix_web::http::StatusCode;
use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;

use crate::access_codes::{self, Disclosure, RevealRequest};
use crate::api_caller::ApiCaller;
use crate::api_keys::{self, KeyInput, ListFilter};
use crate::audit::AuditEvent;
use crate::db::DbConn;
use crate::error::{AppError, FieldErrors};
use crate::idempotency::{self, Answer, Earlier, Keyed};
use crate::ids::{AccessCodeId, ApiKeyId};
use crate::revocation::{self, Changed};
use crate::verify::{CanonicalPath, Grant};
use crate::web::api_errors::{FieldProblem, Problem};
use crate::web::body::read_within;
use crate::web::client::client_addr;
use crate::web::state::State;

use types::*;

/// What a management route does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    ListPolicies,
    ListKeys,
    CreateKey,
    GetKey,
    UpdateKey,
    DeleteKey,
    ListCodes,
    CreateCode,
    GetCode,
    UpdateCode,
    DeleteCode,
    RevealCode,
    RetireCode,
    CancelRetirement,
    ListAuditEvents,
}

/// The route table: what `dispatch` serves, and what the OpenAPI document must describe (a test checks
/// both ways).
const ROUTES: &[(&str, &str, Op)] = &[
    (
        "GET",
        "/api/v1/accounts/{account}/policies",
        Op::ListPolicies,
    ),
    ("GET", "/api/v1/accounts/{account}/api-keys", Op::ListKeys),
    ("POST", "/api/v1/accounts/{account}/api-keys", Op::CreateKey),
    (
        "GET",
        "/api/v1/accounts/{account}/api-keys/{key}",
        Op::GetKey,
    ),
    (
        "PATCH",
        "/api/v1/accounts/{account}/api-keys/{key}",
        Op::UpdateKey,
    ),
    (
        "DELETE",
        "/api/v1/accounts/{account}/api-keys/{key}",
        Op::DeleteKey,
    ),
    (
        "GET",
        "/api/v1/accounts/{account}/api-keys/{key}/access-codes",
        Op::ListCodes,
    ),
    (
        "POST",
        "/api/v1/accounts/{account}/api-keys/{key}/access-codes",
        Op::CreateCode,
    ),
    (
        "GET",
        "/api/v1/accounts/{account}/api-keys/{key}/access-codes/{code}",
        Op::GetCode,
    ),
    (
        "PATCH",
        "/api/v1/accounts/{account}/api-keys/{key}/access-codes/{code}",
        Op::UpdateCode,
    ),
    (
        "DELETE",
        "/api/v1/accounts/{account}/api-keys/{key}/access-codes/{code}",
        Op::DeleteCode,
    ),
    (
        "POST",
        "/api/v1/accounts/{account}/api-keys/{key}/access-codes/{code}/reveal",
        Op::RevealCode,
    ),
    (
        "POST",
        "/api/v1/accounts/{account}/api-keys/{key}/access-codes/{code}/retire",
        Op::RetireCode,
    ),
    (
        "DELETE",
        "/api/v1/accounts/{account}/api-keys/{key}/access-codes/{code}/retire",
        Op::CancelRetirement,
    ),
    (
        "GET",
        "/api/v1/accounts/{account}/audit-events",
        Op::ListAuditEvents,
    ),
];

/// Every management route, `(method, path template)`.
pub fn routes() -> impl Iterator<Item = (&'static str, &'static str)> {
    ROUTES.iter().map(|(method, path, _)| (*method, *path))
}

/// Whether `api` (the path after `/api/v1/accounts/{account}/`) is the management API's.
pub fn is_management(api: &str) -> bool {
    let first = api.split('/').next().unwrap_or("");
    matches!(first, "api-keys" | "audit-events" | "policies")
}

/// The ids a route's path carries.
#[derive(Debug, Default)]
struct PathIds<'a> {
    key: Option<&'a str>,
    code: Option<&'a str>,
}

/// The route `path` matches, and its ids; else the methods the path takes (none: no such path).
fn route<'a>(method: &str, path: &'a str) -> Result<(Op, PathIds<'a>), Vec<&'static str>> {
    let mut allowed = Vec::new();
    for (route_method, template, op) in ROUTES {
        let mut ids = PathIds::default();
        let mut parts = path.split('/');
        let matched = template.split('/').all(|t| {
            let Some(part) = parts.next() else {
                return false;
            };
            match t {
                "{account}" => true,
                "{key}" => {
                    ids.key = Some(part);
                    true
                }
                "{code}" => {
                    ids.code = Some(part);
                    true
                }
                literal => literal == part,
            }
        }) && parts.next().is_none();
        if matched {
            if *route_method == method {
                return Ok((*op, ids));
            }
            allowed.push(*route_method);
        }
    }
    Err(allowed)
}

/// Serves a management API request (`api` as in `is_management`): verifies the code for the route,
/// then runs it.
pub async fn dispatch(
    req: &HttpRequest,
    payload: actix_web::dev::Payload,
    state: State,
    path: CanonicalPath<'_>,
    account: &str,
) -> Result<HttpResponse, actix_web::Error> {
    let (op, ids) = match route(req.method().as_str(), path.as_str()) {
        Ok(found) => found,
        Err(allowed) if allowed.is_empty() => {
            return Ok(crate::web::errors::json_not_found().await);
        }
        Err(allowed) => {
            let mut res = HttpResponse::MethodNotAllowed();
            res.insert_header((header::ALLOW, allowed.join(", ")));
            return Ok(Problem::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "This API does not accept this method. See /docs/api.",
            )
            .respond_with(res));
        }
    };
    let requirement = crate::web::verify_api::requirement_for(req.method().as_str(), path);
    let grant =
        crate::web::bms_api::verify_request(req, &state, path, account, requirement).await?;
    let rate = grant.rate;
    // Ids are ours (base62 with a prefix): anything else names nothing.
    let key = ids.key.map(ApiKeyId::parse).transpose();
    let code = ids.code.map(AccessCodeId::parse).transpose();
    let (Ok(key), Ok(code)) = (key, code) else {
        return Ok(not_found());
    };
    let ip = client_addr(req, &state)
        .map(|ip| ip.to_string())
        .unwrap_or_default();
    let call = Call {
        state,
        ip,
        grant,
        path: path.as_str().to_owned(),
    };
    let result = match (op, key, code) {
        (Op::ListPolicies, ..) => Ok(list_policies(&call)),
        (Op::ListKeys, ..) => list_keys(&call, req.query_string()).await,
        (Op::ListAuditEvents, ..) => list_audit_events(&call, req.query_string()).await,
        (Op::GetKey, Some(key), _) => get_key(&call, key).await,
        (Op::DeleteKey, Some(key), _) => delete_key(&call, key).await,
        (Op::ListCodes, Some(key), _) => list_codes(&call, key).await,
        (Op::GetCode, Some(key), Some(code)) => get_code(&call, key, code).await,
        (Op::DeleteCode, Some(key), Some(code)) => delete_code(&call, key, code).await,
        (Op::CancelRetirement, Some(key), Some(code)) => cancel_retirement(&call, key, code).await,
        (write, key, code) => {
            let body = match read_within(payload, call.state.settings.body_timeout).await {
                Ok(body) => body,
                Err(problem) => return Ok(crate::web::body::problem_response(problem, true)),
            };
            let idem = match idempotency_of(req, &call, &body) {
                Ok(idem) => idem,
                Err(problem) => return Ok(problem.respond()),
            };
            match (write, key, code) {
                (Op::CreateKey, ..) => create_key(&call, idem, &body).await,
                (Op::UpdateKey, Some(key), _) => update_key(&call, key, &body).await,
                (Op::CreateCode, Some(key), _) => create_code(&call, idem, key, &body).await,
                (Op::UpdateCode, Some(key), Some(code)) => {
                    update_code(&call, key, code, &body).await
                }
                (Op::RetireCode, Some(key), Some(code)) => {
                    retire_code(&call, idem, key, code, &body).await
                }
                (Op::RevealCode, Some(key), Some(code)) => {
                    reveal_code(&call, idem, key, code).await
                }
                // A route's template and its ids agree (the table above): this is not reached.
                _ => Err(Refused::App(AppError::NotFound)),
            }
        }
    };
    Ok(crate::web::api_errors::with_rate_limit(
        result.unwrap_or_else(|e| e.respond()),
        rate.as_ref(),
    ))
}

/// One verified request.
struct Call {
    state: State,
    ip: String,
    grant: Grant,
    path: String,
}

/// A refusal of the management API: a domain refusal or a problem of the API itself.
#[derive(Debug)]
enum Refused {
    App(AppError),
    Problem(Box<Problem>),
}

impl From<AppError> for Refused {
    fn from(e: AppError) -> Self {
        Refused::App(e)
    }
}

impl From<diesel::result::Error> for Refused {
    fn from(e: diesel::result::Error) -> Self {
        Refused::App(e.into())
    }
}

impl Refused {
    fn respond(self) -> HttpResponse {
        match self {
            Refused::Problem(p) => p.respond(),
            Refused::App(AppError::Invalid(errors)) => invalid(&errors).respond(),
            Refused::App(e) => actix_web::ResponseError::error_response(&e),
        }
    }
}

fn not_found() -> HttpResponse {
    Problem::new(
        StatusCode::NOT_FOUND,
        "not_found",
        "There is no such object in this account.",
    )
    .respond()
}

/// The domain's form fields, named as the API's JSON names them.
fn json_field(field: &str) -> &str {
    match field {
        "policy" => "policies",
        "linked_key_id" => "link.source_key_id",
        "rate_per_minute" => "rate_limit.requests_per_minute",
        "rate_per_day" => "rate_limit.requests_per_day",
        other => other,
    }
}

fn invalid(errors: &FieldErrors) -> Problem {
    let list: Vec<FieldProblem> = errors
        .iter()
        .map(|(field, message)| FieldProblem {
            field: json_field(field).to_owned(),
            message: message.to_owned(),
        })
        .collect();
    let detail = list
        .iter()
        .map(|p| format!("{}: {}", p.field, p.message))
        .collect::<Vec<_>>()
        .join(" ");
    Problem::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid", detail).with_errors(list)
}

fn invalid_field(field: &'static str, message: &str) -> Refused {
    let mut errors = FieldErrors::new();
    errors.add(field, message);
    Refused::Problem(Box::new(invalid(&errors)))
}

/// The body as `T`, from a JSON object (serde would also take an array for a struct); never echoes
/// the body's content (it may hold a pasted secret).
fn parse_json<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, Refused> {
    if !body.trim_ascii_start().starts_with(b"{") {
        return Err(Refused::Problem(Box::new(Problem::new(
            StatusCode::BAD_REQUEST,
            "invalid_json",
            "The body must be a JSON object. See /docs/api.",
        ))));
    }
    serde_json::from_slice(body).map_err(|e| {
        let what = if e.is_syntax() || e.is_eof() {
            "The body is not valid JSON"
        } else {
            "The body does not fit this request: a field is unknown, missing or of the wrong type"
        };
        Refused::Problem(Box::new(Problem::new(
            StatusCode::BAD_REQUEST,
            "invalid_json",
            format!(
                "{what} (line {}, column {}). See /docs/api.",
                e.line(),
                e.column()
            ),
        )))
    })
}

/// The request's `Idempotency-Key`, if it sent one.
fn idempotency_of(
    req: &HttpRequest,
    call: &Call,
    body: &[u8],
) -> Result<Option<Keyed>, Box<Problem>> {
    let mut values = req.headers().get_all("idempotency-key");
    let Some(value) = values.next() else {
        return Ok(None);
    };
    let key = value.to_str().ok().filter(|k| idempotency::valid_key(k));
    let (Some(key), None) = (key, values.next()) else {
        return Err(Box::new(Problem::new(
            StatusCode::BAD_REQUEST,
            "bad_idempotency_key",
            "Send one Idempotency-Key of 1 to 255 visible ASCII characters, e.g. a UUID.",
        )));
    };
    Ok(Some(Keyed {
        account_id: call.grant.account_id().to_string(),
        access_code_id: call.grant.access_code_id().to_string(),
        key: key.to_owned(),
        request_hash: idempotency::request_hash(req.method().as_str(), &call.path, body),
    }))
}

/// A JSON answer as it is sent, and stored for idempotent replays.
fn answer<T: serde::Serialize>(status: StatusCode, location: Option<String>, value: &T) -> Answer {
    Answer {
        status: status.as_u16(),
        location,
        body: serde_json::to_string(value).unwrap_or_default(),
    }
}

fn respond(answer: Answer, replayed: bool) -> HttpResponse {
    let mut res =
        HttpResponse::build(StatusCode::from_u16(answer.status).unwrap_or(StatusCode::OK));
    if let Some(location) = answer.location {
        res.insert_header((header::LOCATION, location));
    }
    if replayed {
        res.insert_header(("idempotent-replayed", "true"));
    }
    if answer.status == 204 {
        return res.finish();
    }
    res.content_type("application/json").body(answer.body)
}

/// Reads in the account as the caller.
async fn read<T, F>(call: &Call, read: F) -> Result<T, Refused>
where
    F: FnOnce(&mut DbConn, &ApiCaller) -> Result<T, Refused> + Send + 'static,
    T: Send + 'static,
{
    let (grant, ip) = (call.grant.clone(), call.ip.clone());
    call.state
        .db
        .run(move |conn| {
            let caller = ApiCaller::load(conn, &grant, &ip)?;
            Ok(read(conn, &caller))
        })
        .await?
}

/// **The write path of the API**: the change runs through `revocation::commit` as the caller (the
/// domain command audits it, naming the key and code), with the idempotency claim and the stored
/// answer in the same transaction; afterwards this instance forgets what it revoked.
async fn change<F>(call: &Call, idem: Option<Keyed>, change: F) -> Result<HttpResponse, Refused>
where
    F: FnOnce(&mut DbConn, &ApiCaller) -> Result<Changed<Answer>, Refused> + Send + 'static,
{
    let (grant, ip, keys) = (call.grant.clone(), call.ip.clone(), call.state.keys.clone());
    let outcome = call
        .state
        .db
        .run(move |conn| {
            let caller = ApiCaller::load(conn, &grant, &ip)?;
            Ok(revocation::commit(conn, |conn| {
                if let Some(k) = &idem {
                    match idempotency::claim(conn, &keys, k)? {
                        Earlier::None => {}
                        Earlier::Replay(earlier) => {
                            return Ok(Changed::nothing_revoked((earlier, true)));
                        }
                        Earlier::Mismatch => {
                            return Err(Refused::Problem(Box::new(Problem::new(
                                StatusCode::UNPROCESSABLE_ENTITY,
                                "idempotency_mismatch",
                                "This Idempotency-Key was used with another request in the last 24 hours. Use a new key for a new request.",
                            ))));
                        }
                        Earlier::InProgress => {
                            return Err(Refused::Problem(Box::new(Problem::new(
                                StatusCode::CONFLICT,
                                "idempotency_in_progress",
                                "A request with this Idempotency-Key is still being processed. Retry shortly.",
                            ))));
                        }
                    }
                }
                let changed = change(conn, &caller)?;
                if let Some(k) = &idem {
                    idempotency::store(conn, &keys, k, &changed.value)?;
                }
                Ok(changed.map(|answer| (answer, false)))
            }))
        })
        .await?;
    let Changed { value, revoked } = outcome?;
    call.state.verifier.forget(&revoked);
    let (answer, replayed) = value;
    Ok(respond(answer, replayed))
}

/// `limit` (1–100, default 20) and `cursor` of a list.
#[derive(Debug, Deserialize)]
struct PageQuery {
    limit: Option<String>,
    cursor: Option<String>,
    #[serde(default)]
    q: String,
    #[serde(default)]
    tag: String,
}

fn page_query(query: &str) -> Result<(PageQuery, i64), Refused> {
    let mut query = web::Query::<PageQuery>::from_query(query)
        .map_err(|_| invalid_field("query", "The query string cannot be read."))?
        .into_inner();
    // An empty cursor is the first page, as if none were given.
    query.cursor = query.cursor.filter(|c| !c.is_empty());
    let limit = match &query.limit {
        None => 20,
        Some(text) => match text.parse::<i64>() {
            Ok(n) if (1..=100).contains(&n) => n,
            _ => return Err(invalid_field("limit", "Use a whole number from 1 to 100.")),
        },
    };
    Ok((query, limit))
}

/// An RFC 3339 time as the database stores times (UTC, no offset).
fn utc_time(text: &str) -> Option<time::PrimitiveDateTime> {
    let at = time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
        .ok()?
        .to_offset(time::UtcOffset::UTC);
    Some(time::PrimitiveDateTime::new(at.date(), at.time()))
}

const BAD_CURSOR: &str =
    "This is not a cursor of this list: pass next_cursor from the previous page.";

fn encode_cursor(text: &str) -> String {
    URL_SAFE_NO_PAD.encode(text)
}

fn decode_cursor(cursor: &str, prefix: &str) -> Result<String, Refused> {
    URL_SAFE_NO_PAD
        .decode(cursor)
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .and_then(|text| text.strip_prefix(prefix).map(str::to_owned))
        .ok_or_else(|| invalid_field("cursor", BAD_CURSOR))
}

/// `GET /policies` — the catalogue, with the APIs each policy allows.
fn list_policies(call: &Call) -> HttpResponse {
    let catalogue = &call.state.catalogue;
    let data = catalogue
        .policy_entries()
        .map(|(name, description, _)| PolicyEntry {
            name: name.to_owned(),
            description: description.to_owned(),
            apis: catalogue
                .apis
                .iter()
                .filter(|api| {
                    catalogue
                        .policies_granting(&api.method, &api.path)
                        .iter()
                        .any(|p| p == name)
                })
                .map(|api| format!("{} {}", api.method, api.path))
                .collect(),
        })
        .collect();
    respond(answer(StatusCode::OK, None, &PolicyList { data }), false)
}

/// `GET /api-keys?limit=&cursor=&q=&tag=`
async fn list_keys(call: &Call, query: &str) -> Result<HttpResponse, Refused> {
    let (query, limit) = page_query(query)?;
    let after = match &query.cursor {
        None => None,
        Some(cursor) => {
            let text = decode_cursor(cursor, "k:")?;
            let (at, id) = text
                .rsplit_once(' ')
                .ok_or_else(|| invalid_field("cursor", BAD_CURSOR))?;
            let at = utc_time(at).ok_or_else(|| invalid_field("cursor", BAD_CURSOR))?;
            Some((at, id.to_owned()))
        }
    };
    let filter = ListFilter {
        q: query.q.clone(),
        tag: query.tag.clone(),
        page: 1,
        expiring_only: false,
    };
    let page = read(call, move |conn, caller| {
        Ok(api_keys::list_after(
            conn,
            &caller.access.account.id,
            &filter,
            after,
            limit,
        )?)
    })
    .await?;
    let (keys, details, more) = page;
    let next_cursor = keys.last().filter(|_| more).map(|last| {
        encode_cursor(&format!(
            "k:{} {}",
            crate::db::rfc3339(&last.created_at),
            last.id
        ))
    });
    let data = keys.iter().map(|k| ApiKey::new(k, &details)).collect();
    Ok(respond(
        answer(StatusCode::OK, None, &ApiKeyPage { data, next_cursor }),
        false,
    ))
}

fn key_location(call: &Call, key_id: &str) -> String {
    format!(
        "/api/v1/accounts/{}/api-keys/{key_id}",
        call.grant.account_id()
    )
}

/// The key with its details, as the API shows it.
fn key_json(conn: &mut DbConn, key: &api_keys::ApiKey) -> Result<ApiKey, Refused> {
    let details = api_keys::details_of(conn, std::slice::from_ref(key))?;
    Ok(ApiKey::new(key, &details))
}

/// The policies a key holds now.
fn policies_of(conn: &mut DbConn, key: &api_keys::ApiKey) -> Result<Vec<String>, Refused> {
    Ok(key_json(conn, key)?.policies)
}

/// Tags as the domain takes them (comma-separated); a tag with a comma is refused, not split.
fn tags_text(tags: &[String]) -> Result<String, Refused> {
    if tags.iter().any(|t| t.contains(',')) {
        return Err(invalid_field("tags", "A tag cannot contain a comma."));
    }
    Ok(tags.join(","))
}

/// `GET /api-keys/{key}`
async fn get_key(call: &Call, key_id: ApiKeyId) -> Result<HttpResponse, Refused> {
    let json = read(call, move |conn, caller| {
        let key = api_keys::find_in_account(conn, &caller.access.account.id, &key_id)?;
        key_json(conn, &key)
    })
    .await?;
    Ok(respond(answer(StatusCode::OK, None, &json), false))
}

/// `POST /api-keys` — creates a key, or links another account's key.
async fn create_key(
    call: &Call,
    idem: Option<Keyed>,
    body: &[u8],
) -> Result<HttpResponse, Refused> {
    let new: NewApiKey = parse_json(body)?;
    let (rate_per_minute, rate_per_day) = new.rate_limit.unwrap_or_default().as_typed();
    let input = KeyInput {
        name: new.name.clone().unwrap_or_default(),
        tags: tags_text(&new.tags)?,
        policies: new.policies.clone(),
        linked_key_id: new
            .link
            .as_ref()
            .map(|l| l.source_key_id.clone())
            .unwrap_or_default(),
        rate_per_minute,
        rate_per_day,
    };
    let linking = new.link.is_some();
    let location_of = {
        let account = call.grant.account_id().to_string();
        move |id: &str| format!("/api/v1/accounts/{account}/api-keys/{id}")
    };
    change(call, idem, move |conn, caller| {
        caller.may_grant(input.policies.iter().map(String::as_str))?;
        let changed = if linking {
            api_keys::link(conn, &caller.access, &caller.actor, &input)?
        } else {
            api_keys::create(conn, &caller.access, &caller.actor, &input)?
        };
        let json = key_json(conn, &changed.value)?;
        let location = location_of(&json.id);
        Ok(changed.map(|_| answer(StatusCode::CREATED, Some(location), &json)))
    })
    .await
}

/// `PATCH /api-keys/{key}` — only the fields given change.
async fn update_key(call: &Call, key_id: ApiKeyId, body: &[u8]) -> Result<HttpResponse, Refused> {
    let changes: ApiKeyChanges = parse_json(body)?;
    let tags = changes.tags.as_deref().map(tags_text).transpose()?;
    change(call, None, move |conn, caller| {
        let key = api_keys::find_in_account(conn, &caller.access.account.id, &key_id)?;
        let now = key_json(conn, &key)?;
        let (rate_per_minute, rate_per_day) =
            changes.rate_limit.unwrap_or(now.rate_limit).as_typed();
        let input = KeyInput {
            name: changes.name.unwrap_or(now.name),
            tags: tags.unwrap_or_else(|| now.tags.join(",")),
            policies: changes.policies.unwrap_or(now.policies),
            linked_key_id: String::new(),
            rate_per_minute,
            rate_per_day,
        };
        caller.may_grant(input.policies.iter().map(String::as_str))?;
        let changed = api_keys::update(conn, &caller.access, &caller.actor, &key_id, &input)?;
        let json = key_json(conn, &changed.value)?;
        Ok(changed.map(|_| answer(StatusCode::OK, None, &json)))
    })
    .await
}

/// `DELETE /api-keys/{key}` — never the calling key itself.
async fn delete_key(call: &Call, key_id: ApiKeyId) -> Result<HttpResponse, Refused> {
    change(call, None, move |conn, caller| {
        api_keys::find_in_account(conn, &caller.access.account.id, &key_id)?;
        caller.may_delete(key_id.as_str())?;
        let changed = api_keys::delete(conn, &caller.access, &caller.actor, &key_id)?;
        Ok(changed.map(|_| answer(StatusCode::NO_CONTENT, None, &())))
    })
    .await
}

/// The key, if the caller may act on its codes (it holds nothing the caller lacks).
fn key_for_codes(
    conn: &mut DbConn,
    caller: &ApiCaller,
    key_id: &ApiKeyId,
) -> Result<api_keys::ApiKey, Refused> {
    let key = api_keys::find_in_account(conn, &caller.access.account.id, key_id)?;
    let held: BTreeSet<String> = policies_of(conn, &key)?.into_iter().collect();
    caller.may_use_codes_of(held.iter().map(String::as_str))?;
    Ok(key)
}

/// `GET /api-keys/{key}/access-codes`
async fn list_codes(call: &Call, key_id: ApiKeyId) -> Result<HttpResponse, Refused> {
    let data = read(call, move |conn, caller| {
        let key = api_keys::find_in_account(conn, &caller.access.account.id, &key_id)?;
        let codes = access_codes::list_for_key(conn, &key.id)?;
        Ok(codes.iter().map(AccessCode::new).collect::<Vec<_>>())
    })
    .await?;
    Ok(respond(
        answer(StatusCode::OK, None, &AccessCodeList { data }),
        false,
    ))
}

/// The code `code_id` of the key `key_id` in the caller's account.
fn find_code(
    conn: &mut DbConn,
    caller: &ApiCaller,
    key_id: &ApiKeyId,
    code_id: &AccessCodeId,
) -> Result<access_codes::AccessCode, Refused> {
    let key = api_keys::find_in_account(conn, &caller.access.account.id, key_id)?;
    access_codes::list_for_key(conn, &key.id)?
        .into_iter()
        .find(|c| c.id == code_id.as_str())
        .ok_or(Refused::App(AppError::NotFound))
}

/// `GET /api-keys/{key}/access-codes/{code}`
async fn get_code(
    call: &Call,
    key_id: ApiKeyId,
    code_id: AccessCodeId,
) -> Result<HttpResponse, Refused> {
    let code = read(call, move |conn, caller| {
        Ok(AccessCode::new(&find_code(
            conn, caller, &key_id, &code_id,
        )?))
    })
    .await?;
    Ok(respond(answer(StatusCode::OK, None, &code), false))
}

/// `POST /api-keys/{key}/access-codes` — the answer carries the secret, this once.
async fn create_code(
    call: &Call,
    idem: Option<Keyed>,
    key_id: ApiKeyId,
    body: &[u8],
) -> Result<HttpResponse, Refused> {
    let new: NewAccessCodeRequest = if body.is_empty() {
        NewAccessCodeRequest::default()
    } else {
        parse_json(body)?
    };
    let keys = call.state.keys.clone();
    let location_of = {
        let base = key_location(call, key_id.as_str());
        move |id: &str| format!("{base}/access-codes/{id}")
    };
    change(call, idem, move |conn, caller| {
        key_for_codes(conn, caller, &key_id)?;
        let changed = access_codes::create(
            conn,
            &caller.access,
            &caller.actor,
            &keys,
            &key_id,
            &new.description,
        )?;
        let (code, secret) = &changed.value;
        let json = NewAccessCode {
            code: AccessCode::new(code),
            secret: secret.clone(),
        };
        let location = location_of(&code.id);
        Ok(changed.map(|_| answer(StatusCode::CREATED, Some(location), &json)))
    })
    .await
}

/// `PATCH /api-keys/{key}/access-codes/{code}` — description and/or enabled.
async fn update_code(
    call: &Call,
    key_id: ApiKeyId,
    code_id: AccessCodeId,
    body: &[u8],
) -> Result<HttpResponse, Refused> {
    let changes: AccessCodeChanges = parse_json(body)?;
    change(call, None, move |conn, caller| {
        key_for_codes(conn, caller, &key_id)?;
        let mut revoked = crate::revocation::Revoked::nothing();
        if let Some(description) = &changes.description {
            let changed = access_codes::update_description(
                conn,
                &caller.access,
                &caller.actor,
                &key_id,
                &code_id,
                description,
            )?;
            revoked = changed.revoked;
        }
        if let Some(enabled) = changes.enabled {
            let changed = access_codes::set_enabled(
                conn,
                &caller.access,
                &caller.actor,
                &key_id,
                &code_id,
                enabled,
            )?;
            if !changed.revoked.is_empty() {
                revoked = changed.revoked;
            }
        }
        let code = AccessCode::new(&find_code(conn, caller, &key_id, &code_id)?);
        Ok(Changed::revoking(
            answer(StatusCode::OK, None, &code),
            revoked,
        ))
    })
    .await
}

/// `DELETE /api-keys/{key}/access-codes/{code}` — 409 while the code is enabled.
async fn delete_code(
    call: &Call,
    key_id: ApiKeyId,
    code_id: AccessCodeId,
) -> Result<HttpResponse, Refused> {
    change(call, None, move |conn, caller| {
        find_code(conn, caller, &key_id, &code_id)?;
        let changed = access_codes::delete(conn, &caller.access, &caller.actor, &key_id, &code_id)?;
        Ok(changed.map(|_| answer(StatusCode::NO_CONTENT, None, &())))
    })
    .await
}

/// `POST /api-keys/{key}/access-codes/{code}/reveal` — recorded in the audit log.
async fn reveal_code(
    call: &Call,
    idem: Option<Keyed>,
    key_id: ApiKeyId,
    code_id: AccessCodeId,
) -> Result<HttpResponse, Refused> {
    let keys = call.state.keys.clone();
    change(call, idem, move |conn, caller| {
        key_for_codes(conn, caller, &key_id)?;
        let request = RevealRequest {
            key_id: &key_id,
            code_id: &code_id,
            how: Disclosure::Viewed,
            reason: None,
        };
        let changed = access_codes::reveal(conn, &caller.access, &caller.actor, &keys, request)?;
        let secret = Secret {
            secret: changed.value.secret.clone(),
        };
        Ok(changed.map(|_| answer(StatusCode::OK, None, &secret)))
    })
    .await
}

/// `GET /audit-events?limit=&cursor=`
async fn list_audit_events(call: &Call, query: &str) -> Result<HttpResponse, Refused> {
    let (query, limit) = page_query(query)?;
    let before = match &query.cursor {
        None => None,
        Some(cursor) => Some(
            decode_cursor(cursor, "a:")?
                .parse::<i64>()
                .map_err(|_| invalid_field("cursor", BAD_CURSOR))?,
        ),
    };
    let (events, more) = read(call, move |conn, caller| {
        Ok(AuditEvent::list_before(
            conn,
            &caller.access.account.id,
            before,
            limit,
        )?)
    })
    .await?;
    let next_cursor = events
        .last()
        .filter(|_| more)
        .map(|last| encode_cursor(&format!("a:{}", last.id)));
    let data = events.iter().map(types::AuditEvent::new).collect();
    Ok(respond(
        answer(StatusCode::OK, None, &AuditEventPage { data, next_cursor }),
        false,
    ))
}

/// `POST /api-keys/{key}/access-codes/{code}/retire` — schedules the code's retirement.
async fn retire_code(
    call: &Call,
    idem: Option<Keyed>,
    key_id: ApiKeyId,
    code_id: AccessCodeId,
    body: &[u8],
) -> Result<HttpResponse, Refused> {
    use crate::access_codes::rotation::{self, When};
    let request: RetireRequest = parse_json(body)?;
    let when = match (&request.when, request.quiet_seconds, &request.at) {
        (None, None, Some(at)) => {
            let at = utc_time(at).ok_or_else(|| {
                invalid_field("at", "Give an RFC 3339 time, like 2027-01-31T09:00:00Z.")
            })?;
            When::At(at)
        }
        (Some(w), quiet, None) if w == "idle" => {
            When::Idle(time::Duration::seconds(quiet.unwrap_or(900)))
        }
        _ => {
            return Err(invalid_field(
                "when",
                "Send {\"when\": \"idle\", \"quiet_seconds\": N} or {\"at\": time}.",
            ));
        }
    };
    change(call, idem, move |conn, caller| {
        key_for_codes(conn, caller, &key_id)?;
        let changed =
            rotation::schedule(conn, &caller.access, &caller.actor, &key_id, &code_id, when)?;
        let json = Retirement::new(&changed.value);
        Ok(changed.map(|_| answer(StatusCode::OK, None, &json)))
    })
    .await
}

/// `DELETE /api-keys/{key}/access-codes/{code}/retire` — cancels a scheduled retirement.
async fn cancel_retirement(
    call: &Call,
    key_id: ApiKeyId,
    code_id: AccessCodeId,
) -> Result<HttpResponse, Refused> {
    change(call, None, move |conn, caller| {
        key_for_codes(conn, caller, &key_id)?;
        let changed = crate::access_codes::rotation::cancel(
            conn,
            &caller.access,
            &caller.actor,
            &key_id,
            &code_id,
        )?;
        Ok(changed.map(|_| answer(StatusCode::NO_CONTENT, None, &())))
    })
    .await
}
