//! The documentation pages: `/docs/apis`, the complete list of BMS APIs and the policies that grant
//! each, and `/docs/api-keys`, the guide's "Learn more about API Keys" with examples to copy.

use actix_web::{HttpRequest, HttpResponse};
use askama::Template;

use crate::error::AppError;
use crate::web::layout::Layout;
use crate::web::render::html;
use crate::web::session::{Flash, SignedIn};
use crate::web::state::{AppState, State};

/// The documentation pages are public: signed-in users see their usual header.
fn docs_layout(req: &HttpRequest, state: &AppState, who: Option<&SignedIn>, title: &str) -> Layout {
    let flash = Flash::take(req);
    match who {
        Some(who) => Layout::signed_in(state, who, title, flash),
        None => Layout::anonymous(state, title, "", flash),
    }
}

pub struct ApiView {
    pub method: String,
    pub path: String,
    pub name: String,
    pub description: String,
    pub policies: Vec<String>,
}

pub struct PolicyView {
    pub name: String,
    pub description: String,
    pub rules: Vec<String>,
}

#[derive(Template)]
#[template(path = "docs/apis.html")]
struct ApisPage {
    layout: Layout,
    apis: Vec<ApiView>,
    policies: Vec<PolicyView>,
}

/// `GET /docs/apis` — public; signed-in users see their usual header.
pub async fn list_apis(
    req: HttpRequest,
    state: State,
    who: Option<SignedIn>,
) -> Result<HttpResponse, AppError> {
    let catalogue = &state.catalogue;
    let apis = catalogue
        .apis
        .iter()
        .map(|api| ApiView {
            method: api.method.clone(),
            path: api.path.clone(),
            name: api.name.clone(),
            description: api.description.clone(),
            policies: catalogue.policies_granting(&api.method, &api.path),
        })
        .collect();
    let policies = catalogue
        .policy_entries()
        .map(|(name, description, rules)| PolicyView {
            name: name.to_owned(),
            description: description.to_owned(),
            rules: rules.to_vec(),
        })
        .collect();
    let layout = docs_layout(&req, &state, who.as_ref(), "BMS APIs");
    html(&ApisPage {
        layout,
        apis,
        policies,
    })
}

/// A code example on the help page.
pub struct Example {
    pub title: &'static str,
    pub code: String,
}

#[derive(Template)]
#[template(path = "docs/api_keys.html")]
struct ApiKeysHelpPage {
    layout: Layout,
    /// The example URL: the ads of `ACCOUNT_ID` on this server.
    ads_url: String,
    examples: Vec<Example>,
    /// (status, code, what to do) for every refusal of the verification path.
    refusals: &'static [(u16, &'static str, &'static str)],
}

/// Every refusal code an integration can get, with what to do about it.
const REFUSALS: &[(u16, &str, &str)] = &[
    (
        401,
        "missing",
        "Send the secret in the x-api-key header or the apiKey query parameter.",
    ),
    (
        401,
        "malformed",
        "The secret was cut or changed while copying: copy it again, whole (bms_ and 46 letters and digits).",
    ),
    (
        401,
        "unknown",
        "The code was deleted, or the secret belongs to no code. Create a new access code.",
    ),
    (
        401,
        "disabled",
        "An owner disabled the code. Enable it again on the key's Access Codes tab, or use the other code.",
    ),
    (
        401,
        "expired",
        "The code is older than 365 days. Create a new code and put its secret into your service.",
    ),
    (
        403,
        "no_access",
        "The key does not belong to the account in the path, and that account has not linked it. Check the account ID.",
    ),
    (
        403,
        "forbidden",
        "No policy of the key allows this API. The answer names the policies that would: add one on the key's page.",
    ),
    (
        400,
        "bad_path",
        "The path has . or .. segments, // or encoded slashes. Send the plain path.",
    ),
    (
        400,
        "conflicting_keys",
        "The request carries two different secrets. Send one.",
    ),
    (
        429,
        "rate_limited",
        "Too many failed attempts from your address. Wait the seconds in Retry-After, then fix the secret.",
    ),
    (
        503,
        "unavailable",
        "Access cannot be checked for a moment. Retry after a short wait.",
    ),
];

/// `GET /docs/api-keys` — public, like the API documentation.
pub async fn api_keys_help(
    req: HttpRequest,
    state: State,
    who: Option<SignedIn>,
) -> Result<HttpResponse, AppError> {
    let base_url = state.settings.public_url.trim_end_matches('/').to_owned();
    let ads = format!("{base_url}/api/v1/accounts/ACCOUNT_ID/ads");
    let examples = vec![
        Example {
            title: "curl",
            code: format!("curl -H \"x-api-key: $BMS_ACCESS_CODE\" \\\n  {ads}"),
        },
        Example {
            title: "Python (requests)",
            code: format!(
                "import os, requests\n\nanswer = requests.get(\n    \"{ads}\",\n    headers={{\"x-api-key\": os.environ[\"BMS_ACCESS_CODE\"]}},\n    timeout=10,\n)\nanswer.raise_for_status()\nprint(answer.json())"
            ),
        },
        Example {
            title: "JavaScript (fetch)",
            code: format!(
                "const answer = await fetch(\"{ads}\", {{\n  headers: {{ \"x-api-key\": process.env.BMS_ACCESS_CODE }},\n}});\nif (!answer.ok) throw new Error((await answer.json()).detail);\nconsole.log(await answer.json());"
            ),
        },
    ];
    let layout = docs_layout(&req, &state, who.as_ref(), "API keys: how they work");
    html(&ApiKeysHelpPage {
        layout,
        ads_url: ads,
        examples,
        refusals: REFUSALS,
    })
}

#[derive(Template)]
#[template(path = "docs/api.html")]
struct ManagementApiPage {
    layout: Layout,
    operations: Vec<crate::web::manage::openapi::OperationView>,
    schemas: Vec<crate::web::manage::openapi::SchemaView>,
    /// (code, title, status, what it means)
    problems: &'static [(u16, &'static str, &'static str)],
}

/// The problem codes of the service, with the status they come with and what they mean; `type` URIs
/// point at their anchors on `/docs/api`.
const PROBLEM_CODES: &[(u16, &str, &str)] = &[
    (
        400,
        "invalid_json",
        "The body is not a JSON object of the request's schema.",
    ),
    (
        400,
        "bad_path",
        "The path is not canonical (dot segments, //, encoded slashes…).",
    ),
    (
        400,
        "conflicting_keys",
        "Two different access codes in one request.",
    ),
    (
        400,
        "bad_idempotency_key",
        "The Idempotency-Key is not 1–255 visible ASCII characters, or is sent twice.",
    ),
    (401, "missing", "No access code."),
    (
        401,
        "malformed",
        "Not an access code (bms_ and 46 letters and digits).",
    ),
    (401, "unknown", "No such access code."),
    (401, "disabled", "The access code is disabled."),
    (401, "expired", "The access code is older than 365 days."),
    (403, "no_access", "The key does not reach this account."),
    (403, "forbidden", "No policy of the key allows this API."),
    (
        403,
        "escalation",
        "The request would give a key more than the calling key holds, touch the codes of a stronger key, or delete the calling key.",
    ),
    (
        404,
        "not_found",
        "No such API, or no such object in this account.",
    ),
    (
        405,
        "method_not_allowed",
        "The path does not take this method (see Allow).",
    ),
    (
        409,
        "conflict",
        "The state forbids it: an enabled code cannot be deleted, a key has two codes at most…",
    ),
    (
        409,
        "idempotency_in_progress",
        "A request with this Idempotency-Key has not finished.",
    ),
    (413, "payload_too_large", "The body is over 256 KiB."),
    (
        422,
        "invalid",
        "Input breaks a rule; errors[] says which field and why.",
    ),
    (
        422,
        "idempotency_mismatch",
        "The Idempotency-Key was used with another request in the last 24 hours.",
    ),
    (
        429,
        "rate_limited",
        "Too many failed verifications from this address; see Retry-After.",
    ),
    (
        503,
        "unavailable",
        "Access cannot be checked right now; retry.",
    ),
];

/// `GET /docs/api` — the management API's reference, rendered from its OpenAPI document.
pub async fn management_api(
    req: HttpRequest,
    state: State,
    who: Option<SignedIn>,
) -> Result<HttpResponse, AppError> {
    let (operations, schemas) = crate::web::manage::openapi::reference();
    let layout = docs_layout(&req, &state, who.as_ref(), "Management API");
    html(&ManagementApiPage {
        layout,
        operations,
        schemas,
        problems: PROBLEM_CODES,
    })
}
