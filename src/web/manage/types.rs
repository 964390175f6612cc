//! What the management API reads and writes, as JSON: built from the domain's models, described for
//! the OpenAPI document by the same types (so the document cannot drift from the answers).

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::access_codes::{AccessCode as CodeModel, Status};
use crate::api_keys::{ApiKey as KeyModel, KeyDetails, LinkSource};
use crate::audit::AuditEvent as EventModel;
use crate::db::rfc3339;

/// An API key: the account's own, or another account's key linked into it.
#[derive(Debug, Serialize, ToSchema)]
pub struct ApiKey {
    #[schema(example = "key_3kTq9ZbWm1xYc0Pa")]
    pub id: String,
    pub name: String,
    pub tags: Vec<String>,
    pub policies: Vec<String>,
    /// `own` keys have access codes; `linked` keys use the codes of the key they link.
    #[schema(pattern = "^(own|linked)$")]
    pub kind: String,
    /// Linked keys only: the key they link, while it exists and the link stands.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source_key_id: Option<String>,
    #[schema(format = DateTime)]
    pub created_at: String,
    #[schema(format = DateTime)]
    pub last_used_at: Option<String>,
    pub access_code_count: i64,
    /// This key's own limits (a link's are set in the linking account); `null` is no limit.
    pub rate_limit: RateLimit,
}

/// A key's rate limits: over either, requests get 429 `rate_limited` with `Retry-After`.
#[derive(Debug, Default, Clone, Copy, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RateLimit {
    /// Requests per minute (1–100,000,000), a share of them allowed at once; `null`: no limit.
    #[serde(default)]
    #[schema(minimum = 1, maximum = 100_000_000)]
    pub requests_per_minute: Option<u32>,
    /// Requests per UTC day (1–2,000,000,000); `null`: no limit.
    #[serde(default)]
    #[schema(minimum = 1, maximum = 2_000_000_000)]
    pub requests_per_day: Option<u32>,
}

impl RateLimit {
    /// The limits as the domain's input takes them (as typed; empty is no limit).
    pub fn as_typed(&self) -> (String, String) {
        let typed = |v: Option<u32>| v.map(|v| v.to_string()).unwrap_or_default();
        (
            typed(self.requests_per_minute),
            typed(self.requests_per_day),
        )
    }
}

impl ApiKey {
    pub fn new(key: &KeyModel, details: &KeyDetails) -> Self {
        let source_key_id = match details.sources.get(&key.id) {
            Some(LinkSource::Key { key_id, .. }) => Some(key_id.clone()),
            _ => None,
        };
        ApiKey {
            id: key.id.clone(),
            name: key.name.clone(),
            tags: details.tags.get(&key.id).cloned().unwrap_or_default(),
            policies: details
                .policies
                .get(&key.id)
                .map(|held| held.iter().map(|p| p.name.clone()).collect())
                .unwrap_or_default(),
            kind: key.kind.as_str().to_owned(),
            source_key_id,
            created_at: rfc3339(&key.created_at),
            last_used_at: key.last_used_at.as_ref().map(rfc3339),
            access_code_count: details.code_counts.get(&key.id).copied().unwrap_or(0),
            rate_limit: {
                let limit = key.rate_limit();
                RateLimit {
                    requests_per_minute: limit.per_minute,
                    requests_per_day: limit.per_day,
                }
            },
        }
    }
}

/// An access code of an API key (never its secret, except in the answer that creates it).
#[derive(Debug, Serialize, ToSchema)]
pub struct AccessCode {
    #[schema(example = "code_8fJq2LmN0pQrStUv")]
    pub id: String,
    pub api_key_id: String,
    pub description: String,
    #[schema(pattern = "^(active|disabled|expired)$")]
    pub status: String,
    #[schema(format = DateTime)]
    pub created_at: String,
    #[schema(format = DateTime)]
    pub expires_at: String,
    #[schema(format = DateTime)]
    pub last_used_at: Option<String>,
}

impl AccessCode {
    pub fn new(code: &CodeModel) -> Self {
        let status = match code.status_at(crate::db::now()) {
            Status::Expired => "expired",
            Status::Disabled => "disabled",
            Status::Active | Status::ExpiringSoon(_) => "active",
        };
        AccessCode {
            id: code.id.clone(),
            api_key_id: code.api_key_id.clone(),
            description: code.description.clone(),
            status: status.to_owned(),
            created_at: rfc3339(&code.created_at),
            expires_at: rfc3339(&code.expires_at),
            last_used_at: code.last_used_at.as_ref().map(rfc3339),
        }
    }
}

/// A new access code, with its secret: the only answer that carries it.
#[derive(Debug, Serialize, ToSchema)]
pub struct NewAccessCode {
    #[serde(flatten)]
    pub code: AccessCode,
    /// Send it in `x-api-key`. Shown here once; `reveal` opens it again.
    #[schema(example = "bms_…")]
    pub secret: String,
}

/// A secret opened again.
#[derive(Debug, Serialize, ToSchema)]
pub struct Secret {
    pub secret: String,
}

/// An event of the audit log.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditEvent {
    pub id: i64,
    /// The user's email, `API key key_… (access code code_…)` for the management API, or a system.
    pub actor: String,
    pub actor_is_staff: bool,
    #[schema(example = "api_key.created")]
    pub action: String,
    pub target: String,
    pub details: String,
    pub client_ip: String,
    #[schema(format = DateTime)]
    pub occurred_at: String,
}

impl AuditEvent {
    pub fn new(e: &EventModel) -> Self {
        AuditEvent {
            id: e.id,
            actor: e.actor_email.clone(),
            actor_is_staff: e.actor_is_staff,
            action: e.action.as_str().to_owned(),
            target: e.target.clone(),
            details: e.details.clone(),
            client_ip: e.client_ip.clone(),
            occurred_at: rfc3339(&e.occurred_at),
        }
    }
}

/// A policy of the catalogue and the APIs it allows.
#[derive(Debug, Serialize, ToSchema)]
pub struct PolicyEntry {
    pub name: String,
    pub description: String,
    /// `METHOD /path` of each API it allows.
    pub apis: Vec<String>,
}

/// A page of API keys.
#[derive(Debug, Serialize, ToSchema)]
pub struct ApiKeyPage {
    pub data: Vec<ApiKey>,
    /// Pass as `cursor` for the next page; `null` on the last.
    pub next_cursor: Option<String>,
}

/// The access codes of a key (two at most: no pages).
#[derive(Debug, Serialize, ToSchema)]
pub struct AccessCodeList {
    pub data: Vec<AccessCode>,
}

/// A page of audit events.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditEventPage {
    pub data: Vec<AuditEvent>,
    pub next_cursor: Option<String>,
}

/// The policy catalogue.
#[derive(Debug, Serialize, ToSchema)]
pub struct PolicyList {
    pub data: Vec<PolicyEntry>,
}

/// The key a link points at.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LinkTarget {
    /// Another account's own key, as its owner gave it (`key_…`).
    pub source_key_id: String,
}

/// A key to create (`name` required) or to link (`link` given; `name` defaults to the source key's).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewApiKey {
    /// Required for a new key (1–100 characters); a link defaults to the source key's name.
    #[schema(min_length = 1, max_length = 100)]
    pub name: Option<String>,
    #[serde(default)]
    pub tags: Vec<String>,
    /// At most the calling key's own policies; a link needs at least one.
    #[serde(default)]
    pub policies: Vec<String>,
    pub link: Option<LinkTarget>,
    /// No limit when absent.
    pub rate_limit: Option<RateLimit>,
}

/// Changes to a key: only the fields given change.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ApiKeyChanges {
    #[schema(min_length = 1, max_length = 100)]
    pub name: Option<String>,
    pub tags: Option<Vec<String>>,
    pub policies: Option<Vec<String>>,
    /// Replaces both limits (a limit left out or `null` is removed); absent: unchanged.
    pub rate_limit: Option<RateLimit>,
}

/// A code to create.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewAccessCodeRequest {
    /// Where the code is used; up to 200 characters.
    #[serde(default)]
    pub description: String,
}

/// Changes to a code: only the fields given change.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AccessCodeChanges {
    pub description: Option<String>,
    pub enabled: Option<bool>,
}

/// How an access code retires: `{"when": "idle", "quiet_seconds": N}` (once another code of the key has
/// been used and this one has seen no request for N seconds, 10 s to 7 days) or `{"at": time}`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RetireRequest {
    #[schema(pattern = "^idle$")]
    pub when: Option<String>,
    #[schema(minimum = 10, maximum = 604800)]
    pub quiet_seconds: Option<i64>,
    #[schema(format = DateTime)]
    pub at: Option<String>,
}

/// A scheduled retirement.
#[derive(Debug, Serialize, ToSchema)]
pub struct Retirement {
    pub code_id: String,
    pub api_key_id: String,
    #[schema(pattern = "^(idle|at)$")]
    pub when: String,
    pub quiet_seconds: Option<i32>,
    #[schema(format = DateTime)]
    pub at: Option<String>,
    #[schema(format = DateTime)]
    pub scheduled_at: String,
}

impl Retirement {
    pub fn new(r: &crate::access_codes::rotation::Retirement) -> Self {
        Retirement {
            code_id: r.code_id.clone(),
            api_key_id: r.api_key_id.clone(),
            when: r.mode.clone(),
            quiet_seconds: r.quiet_seconds,
            at: r.retire_at.as_ref().map(rfc3339),
            scheduled_at: rfc3339(&r.scheduled_at),
        }
    }
}
