//! The OpenAPI 3.1 document of the management API, built by utoipa from the operations described here
//! and the JSON types the handlers answer with (`types`). The problem answers every operation can give
//! are added to each by `ProblemAnswers`; a test checks that the document's paths are exactly the
//! route table's. Served at `GET /api/openapi.json`; `/docs/api` renders the same document.

use actix_web::HttpResponse;
use utoipa::openapi::path::Operation;
use utoipa::openapi::security::{self, ApiKeyValue, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{ContentBuilder, Ref, ResponseBuilder};
use utoipa::{Modify, OpenApi};

use crate::web::api_errors::{FieldProblem, PROBLEM_JSON, Problem};
use crate::web::manage::types::*;

/// The problems any operation may answer, with what they mean.
pub const PROBLEM_ANSWERS: &[(&str, &str)] = &[
    (
        "400",
        "The request cannot be read: `invalid_json`, `bad_path`, `conflicting_keys`, `bad_idempotency_key`.",
    ),
    (
        "401",
        "No usable access code: `missing`, `malformed`, `unknown`, `disabled`, `expired`.",
    ),
    (
        "403",
        "`no_access` (the key does not reach this account), `forbidden` (no policy allows this API), `escalation` (more than the calling key holds).",
    ),
    ("404", "`not_found`: no such object in this account."),
    (
        "409",
        "`conflict` (e.g. deleting an enabled code, a third code) or `idempotency_in_progress`.",
    ),
    ("413", "`payload_too_large`: bodies are at most 256 KiB."),
    (
        "422",
        "`invalid` (with `errors` by field) or `idempotency_mismatch`.",
    ),
    ("429", "`rate_limited`, with `Retry-After`."),
    (
        "503",
        "`unavailable`: access cannot be checked right now; retry.",
    ),
];

/// The operations, described for the document (utoipa reads the attributes; the handlers that serve
/// them are in `super`, routed by its table).
#[allow(dead_code)]
mod operations {
    use super::*;

    #[utoipa::path(get, path = "/api/v1/accounts/{account}/policies", tag = "Policies",
        summary = "List the policy catalogue",
        description = "Every policy with the APIs it allows. Any valid access code that reaches the account may read it.",
        responses((status = 200, description = "The catalogue.", body = PolicyList)))]
    fn list_policies() {}

    #[utoipa::path(get, path = "/api/v1/accounts/{account}/api-keys", tag = "API keys",
        summary = "List API keys",
        description = "Newest first, `limit` at a time (1–100, default 20). Pass `next_cursor` as `cursor` for the next page; pages stay stable while keys are added. Needs `api-keys.read` or `api-keys.manage`.",
        params(
            ("limit" = Option<u8>, Query, minimum = 1, maximum = 100, description = "Keys per page (1–100, default 20)."),
            ("cursor" = Option<String>, Query, description = "`next_cursor` of the previous page."),
            ("q" = Option<String>, Query, description = "Part of a name (any case), or a whole key id."),
            ("tag" = Option<String>, Query, description = "Only keys with this tag."),
        ),
        responses((status = 200, description = "A page of keys.", body = ApiKeyPage)))]
    fn list_keys() {}

    #[utoipa::path(post, path = "/api/v1/accounts/{account}/api-keys", tag = "API keys",
        summary = "Create or link an API key",
        description = "With `name`: a new key of this account. With `link`: another account's key linked into this one (at least one policy). The key may carry only policies the calling key holds (else 403 `escalation`). Needs `api-keys.manage`. Send an `Idempotency-Key` to retry safely.",
        params(("Idempotency-Key" = Option<String>, Header, pattern = "^[!-~]{1,255}$", description = "1–255 visible ASCII characters: a retry with the same key and body within 24 h replays the first answer.")),
        request_body(content = NewApiKey, content_type = "application/json"),
        responses((status = 201, description = "The key; `Location` names it.", body = ApiKey)))]
    fn create_key() {}

    #[utoipa::path(get, path = "/api/v1/accounts/{account}/api-keys/{key}", tag = "API keys",
        summary = "Get an API key", description = "Needs `api-keys.read` or `api-keys.manage`.",
        responses((status = 200, description = "The key.", body = ApiKey)))]
    fn get_key() {}

    #[utoipa::path(patch, path = "/api/v1/accounts/{account}/api-keys/{key}", tag = "API keys",
        summary = "Change an API key",
        description = "Only the fields given change. The key may end up with only policies the calling key holds. Needs `api-keys.manage`.",
        request_body(content = ApiKeyChanges, content_type = "application/json"),
        responses((status = 200, description = "The key as changed.", body = ApiKey)))]
    fn update_key() {}

    #[utoipa::path(delete, path = "/api/v1/accounts/{account}/api-keys/{key}", tag = "API keys",
        summary = "Delete an API key",
        description = "With its access codes; requests with them are refused at once. A key cannot delete itself. Needs `api-keys.manage`.",
        responses((status = 204, description = "Deleted.")))]
    fn delete_key() {}

    #[utoipa::path(get, path = "/api/v1/accounts/{account}/api-keys/{key}/access-codes", tag = "Access codes",
        summary = "List a key's access codes", description = "Two at most; never a secret. Needs `api-keys.read` or `api-keys.manage`.",
        responses((status = 200, description = "The codes.", body = AccessCodeList)))]
    fn list_codes() {}

    #[utoipa::path(post, path = "/api/v1/accounts/{account}/api-keys/{key}/access-codes", tag = "Access codes",
        summary = "Create an access code",
        description = "Valid for 365 days; a key has at most two (409 `conflict` for a third). The answer is the only one that carries the secret. Not on keys holding policies the calling key lacks. Needs `api-keys.manage`.",
        params(("Idempotency-Key" = Option<String>, Header, pattern = "^[!-~]{1,255}$", description = "A retry with the same key and body within 24 h replays the first answer, secret included.")),
        request_body(content = NewAccessCodeRequest, content_type = "application/json"),
        responses((status = 201, description = "The code with its secret; `Location` names it.", body = NewAccessCode)))]
    fn create_code() {}

    #[utoipa::path(get, path = "/api/v1/accounts/{account}/api-keys/{key}/access-codes/{code}", tag = "Access codes",
        summary = "Get an access code", description = "Never its secret. Needs `api-keys.read` or `api-keys.manage`.",
        responses((status = 200, description = "The code.", body = AccessCode)))]
    fn get_code() {}

    #[utoipa::path(patch, path = "/api/v1/accounts/{account}/api-keys/{key}/access-codes/{code}", tag = "Access codes",
        summary = "Change an access code",
        description = "Its description, and `enabled`: a disabled code is refused at once; an expired one cannot be enabled (409). Needs `api-keys.manage`.",
        request_body(content = AccessCodeChanges, content_type = "application/json"),
        responses((status = 200, description = "The code as changed.", body = AccessCode)))]
    fn update_code() {}

    #[utoipa::path(delete, path = "/api/v1/accounts/{account}/api-keys/{key}/access-codes/{code}", tag = "Access codes",
        summary = "Delete an access code", description = "Disable it first (409 `conflict` while enabled). Needs `api-keys.manage`.",
        responses((status = 204, description = "Deleted.")))]
    fn delete_code() {}

    #[utoipa::path(post, path = "/api/v1/accounts/{account}/api-keys/{key}/access-codes/{code}/reveal", tag = "Access codes",
        summary = "Reveal an access code's secret",
        description = "Recorded in the audit log. Not on keys holding policies the calling key lacks. Needs `access-codes.reveal`.",
        params(("Idempotency-Key" = Option<String>, Header, pattern = "^[!-~]{1,255}$", description = "A retry replays the first answer.")),
        responses((status = 200, description = "The secret.", body = Secret)))]
    fn reveal_code() {}

    #[utoipa::path(post, path = "/api/v1/accounts/{account}/api-keys/{key}/access-codes/{code}/retire", tag = "Access codes",
        summary = "Schedule an access code's retirement",
        description = "Rotation without a gap: `{\"when\": \"idle\", \"quiet_seconds\": N}` disables the code once another code of the key has been used and this one has seen no request for N seconds (10 s to 7 days); `{\"at\": time}` at that time. The key needs another enabled code (409 otherwise). Replaces an earlier schedule. Needs `api-keys.manage`.",
        params(("Idempotency-Key" = Option<String>, Header, pattern = "^[!-~]{1,255}$", description = "A retry replays the first answer.")),
        request_body(content = RetireRequest, content_type = "application/json"),
        responses((status = 200, description = "The schedule.", body = Retirement)))]
    fn retire_code() {}

    #[utoipa::path(delete, path = "/api/v1/accounts/{account}/api-keys/{key}/access-codes/{code}/retire", tag = "Access codes",
        summary = "Cancel a scheduled retirement", description = "404 when none is scheduled. Needs `api-keys.manage`.",
        responses((status = 204, description = "Cancelled.")))]
    fn cancel_retirement() {}

    #[utoipa::path(get, path = "/api/v1/accounts/{account}/audit-events", tag = "Audit log",
        summary = "Read the audit log",
        description = "Newest first, `limit` at a time (1–100, default 20), `next_cursor` for the next page. Needs `audit.read`.",
        params(
            ("limit" = Option<u8>, Query, minimum = 1, maximum = 100, description = "Events per page (1–100, default 20)."),
            ("cursor" = Option<String>, Query, description = "`next_cursor` of the previous page."),
        ),
        responses((status = 200, description = "A page of events.", body = AuditEventPage)))]
    fn list_audit_events() {}
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "BMS API keys — management API",
        version = "1",
        description = "Manage an account's API keys, access codes and audit log with an access code whose policies allow it. Every refusal is an RFC 9457 problem (`application/problem+json`) with a stable `code`."
    ),
    paths(operations::list_policies, operations::list_keys, operations::create_key,
          operations::get_key, operations::update_key, operations::delete_key, operations::list_codes,
          operations::create_code, operations::get_code, operations::update_code,
          operations::delete_code, operations::reveal_code, operations::retire_code,
          operations::cancel_retirement, operations::list_audit_events),
    components(schemas(Problem, FieldProblem)),
    modifiers(&Common),
)]
struct ManagementApi;

/// What every operation shares: the path parameters, the access code, the problem answers.
struct Common;

impl Modify for Common {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "x-api-key",
            SecurityScheme::ApiKey(security::ApiKey::Header(ApiKeyValue::with_description(
                "x-api-key",
                "The secret of an access code (bms_…).",
            ))),
        );
        components.add_security_scheme(
            "apiKey",
            SecurityScheme::ApiKey(security::ApiKey::Query(ApiKeyValue::with_description(
                "apiKey",
                "The same secret as a query parameter, for tools that cannot set headers.",
            ))),
        );
        // The header is the way to call; the query parameter is described for tools that cannot set
        // headers, but not required alongside (both at once with different codes is a 400).
        doc.security = Some(vec![SecurityRequirement::new(
            "x-api-key",
            Vec::<String>::new(),
        )]);
        for (path, item) in doc.paths.paths.iter_mut() {
            let ids: Vec<&str> = ["account", "key", "code"]
                .into_iter()
                .filter(|id| path.contains(&format!("{{{id}}}")))
                .collect();
            for op in [
                &mut item.get,
                &mut item.post,
                &mut item.patch,
                &mut item.delete,
            ]
            .into_iter()
            .flatten()
            {
                add_path_parameters(op, &ids);
                add_problems(op);
            }
        }
    }
}

fn add_path_parameters(op: &mut Operation, ids: &[&str]) {
    use utoipa::openapi::path::{ParameterBuilder, ParameterIn};
    use utoipa::openapi::schema::{ObjectBuilder, Type};
    let parameters = op.parameters.get_or_insert_with(Vec::new);
    for id in ids {
        let (description, pattern) = match *id {
            "account" => ("The account's id (acc_…).", "^acc_[0-9A-Za-z]{16}$"),
            "key" => ("An API key's id (key_…).", "^key_[0-9A-Za-z]{16}$"),
            _ => ("An access code's id (code_…).", "^code_[0-9A-Za-z]{16}$"),
        };
        parameters.insert(
            0,
            ParameterBuilder::new()
                .name(*id)
                .parameter_in(ParameterIn::Path)
                .required(utoipa::openapi::Required::True)
                .description(Some(description))
                .schema(Some(
                    ObjectBuilder::new()
                        .schema_type(Type::String)
                        .pattern(Some(pattern)),
                ))
                .build(),
        );
    }
}

fn add_problems(op: &mut Operation) {
    for (status, description) in PROBLEM_ANSWERS {
        let content = ContentBuilder::new()
            .schema(Some(Ref::from_schema_name("Problem")))
            .build();
        op.responses.responses.insert(
            (*status).to_owned(),
            ResponseBuilder::new()
                .description(*description)
                .content(PROBLEM_JSON, content)
                .into(),
        );
    }
}

/// The document.
pub fn document() -> utoipa::openapi::OpenApi {
    ManagementApi::openapi()
}

/// `GET /api/openapi.json`
pub async fn serve_document() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .body(document().to_json().unwrap_or_default())
}

/// One operation as the reference page shows it.
pub struct OperationView {
    pub anchor: String,
    pub method: String,
    pub path: String,
    pub summary: String,
    pub description: String,
    /// (name, where, required, description)
    pub parameters: Vec<(String, String, bool, String)>,
    pub request_body: Option<String>,
    /// (status, description, schema name)
    pub responses: Vec<(String, String, String)>,
}

/// One schema: its name and its properties (name, type, required, description).
pub struct SchemaView {
    pub name: String,
    pub description: String,
    pub properties: Vec<(String, String, bool, String)>,
}

fn text(v: &serde_json::Value) -> String {
    v.as_str().unwrap_or_default().to_owned()
}

/// The schema's name from a `$ref`, or its type.
fn type_of(schema: &serde_json::Value) -> String {
    if let Some(reference) = schema["$ref"].as_str() {
        return reference.rsplit('/').next().unwrap_or_default().to_owned();
    }
    if let Some(items) = schema.get("items") {
        return format!("array of {}", type_of(items));
    }
    if let Some(one) = schema["oneOf"].as_array() {
        return one.iter().map(type_of).collect::<Vec<_>>().join(" or ");
    }
    match &schema["type"] {
        serde_json::Value::Array(types) => types.iter().map(text).collect::<Vec<_>>().join(" or "),
        other => text(other),
    }
}

/// The document, read for the reference page: operations in route-table order, then the schemas.
pub fn reference() -> (Vec<OperationView>, Vec<SchemaView>) {
    let doc = serde_json::to_value(document()).unwrap_or_default();
    let mut operations = Vec::new();
    for (method, path) in super::routes() {
        let op = &doc["paths"][path][method.to_ascii_lowercase()];
        let parameters = op["parameters"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|p| {
                (
                    text(&p["name"]),
                    text(&p["in"]),
                    p["required"].as_bool().unwrap_or(false),
                    text(&p["description"]),
                )
            })
            .collect();
        let request_body = op["requestBody"]["content"]["application/json"]["schema"]
            .as_object()
            .map(|s| type_of(&serde_json::Value::Object(s.clone())));
        let responses = op["responses"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(status, r)| {
                let schema = r["content"]
                    .as_object()
                    .and_then(|c| c.values().next())
                    .map(|c| type_of(&c["schema"]))
                    .unwrap_or_default();
                (status.clone(), text(&r["description"]), schema)
            })
            .collect();
        operations.push(OperationView {
            anchor: text(&op["operationId"]),
            method: method.to_owned(),
            path: path.to_owned(),
            summary: text(&op["summary"]),
            description: text(&op["description"]),
            parameters,
            request_body,
            responses,
        });
    }
    let schemas = doc["components"]["schemas"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(name, schema)| {
            let required: Vec<&str> = schema["required"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|r| r.as_str())
                .collect();
            SchemaView {
                name: name.clone(),
                description: text(&schema["description"]),
                properties: schema["properties"]
                    .as_object()
                    .into_iter()
                    .flatten()
                    .map(|(field, s)| {
                        (
                            field.clone(),
                            type_of(s),
                            required.contains(&field.as_str()),
                            text(&s["description"]),
                        )
                    })
                    .collect(),
            }
        })
        .collect();
    (operations, schemas)
}
