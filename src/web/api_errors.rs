//! Every JSON refusal of the service is an RFC 9457 problem (`application/problem+json`): `type`,
//! `title`, `status`, `detail`, a stable `code`, and for validation `errors: [{"field", "message"}]`.
//! The `code` values are the contract integrations switch on; `type` points at their explanation.

use actix_web::http::{StatusCode, header};
use actix_web::{HttpResponse, HttpResponseBuilder, ResponseError};
use std::borrow::Cow;

use serde::Serialize;

use crate::verify::Refusal;

/// The media type of problem answers.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// One field's message in a validation problem.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct FieldProblem {
    /// The JSON field, dotted for nested ones (`link.source_key_id`).
    pub field: String,
    pub message: String,
}

/// An RFC 9457 problem document. Built on the hot path for every refused code, so it borrows what it
/// can: the code and title are static, the detail usually is, and `type` is written, not stored.
#[derive(Debug, Clone, utoipa::ToSchema)]
pub struct Problem {
    /// A URI reference naming the kind of problem: its explanation on the API reference page
    /// (`/docs/api#problem-{code}`).
    #[schema(rename = "type", value_type = String)]
    pub kind: (),
    #[schema(value_type = String)]
    pub title: &'static str,
    pub status: u16,
    #[schema(value_type = String)]
    pub detail: Cow<'static, str>,
    /// Stable and machine-readable: `malformed`, `forbidden`, `invalid`, `escalation`, …
    #[schema(value_type = String)]
    pub code: &'static str,
    /// Validation problems (`invalid` only): what is wrong with each field.
    #[schema(required = false)]
    pub errors: Vec<FieldProblem>,
}

impl Serialize for Problem {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut out = s.serialize_struct("Problem", 6)?;
        out.serialize_field("type", &format_args!("/docs/api#problem-{}", self.code))?;
        out.serialize_field("title", self.title)?;
        out.serialize_field("status", &self.status)?;
        out.serialize_field("detail", &self.detail)?;
        out.serialize_field("code", self.code)?;
        if !self.errors.is_empty() {
            out.serialize_field("errors", &self.errors)?;
        }
        out.end()
    }
}

impl Problem {
    pub fn new(
        status: StatusCode,
        code: &'static str,
        detail: impl Into<Cow<'static, str>>,
    ) -> Self {
        Problem {
            kind: (),
            title: title_of(code, status),
            status: status.as_u16(),
            detail: detail.into(),
            code,
            errors: Vec::new(),
        }
    }

    pub fn with_errors(mut self, errors: Vec<FieldProblem>) -> Self {
        self.errors = errors;
        self
    }

    /// The answer, on a builder that may already carry headers (`Retry-After`).
    pub fn respond_with(&self, mut builder: HttpResponseBuilder) -> HttpResponse {
        builder
            .content_type(header::HeaderValue::from_static(PROBLEM_JSON))
            .body(serde_json::to_vec(self).unwrap_or_default())
    }

    pub fn respond(&self) -> HttpResponse {
        self.respond_with(HttpResponse::build(self.status_code()))
    }

    fn status_code(&self) -> StatusCode {
        StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.code)
    }
}

impl ResponseError for Problem {
    fn status_code(&self) -> StatusCode {
        Problem::status_code(self)
    }

    fn error_response(&self) -> HttpResponse {
        self.respond()
    }
}

/// The short title of a problem code: the same for every problem with that code.
fn title_of(code: &str, status: StatusCode) -> &'static str {
    match code {
        "missing" => "Access code missing",
        "malformed" => "Malformed access code",
        "unknown" => "Unknown access code",
        "disabled" => "Access code disabled",
        "expired" => "Access code expired",
        "no_access" => "No access to this account",
        "forbidden" => "Not allowed by the key's policies",
        "escalation" => "More than the calling key may grant",
        "rate_limited" => "Too many requests",
        "unavailable" => "Temporarily unavailable",
        "bad_path" => "Path not canonical",
        "conflicting_keys" => "Two access codes",
        "conflicting_headers" => "Conflicting gateway headers",
        "invalid" => "Invalid input",
        "invalid_json" => "Malformed JSON",
        "conflict" => "Conflicts with the current state",
        "not_found" => "Not found",
        "method_not_allowed" => "Method not allowed",
        "idempotency_mismatch" => "Idempotency key reused with another request",
        "idempotency_in_progress" => "Request with this idempotency key in progress",
        "bad_idempotency_key" => "Malformed idempotency key",
        _ => status.canonical_reason().unwrap_or("Error"),
    }
}

/// A refused API request, answered as a problem with the refusal's code.
#[derive(Debug)]
pub struct ApiRefusal(pub Refusal);

impl std::fmt::Display for ApiRefusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0.code())
    }
}

impl ApiRefusal {
    pub fn problem(&self) -> Problem {
        Problem::new(self.status_code(), self.0.code(), self.0.message())
    }

    /// The builder with the refusal's status and headers (`Retry-After` when rate-limited, and the
    /// key's `RateLimit` fields when its own limit refused).
    pub fn builder(&self) -> HttpResponseBuilder {
        let mut res = HttpResponse::build(self.status_code());
        match &self.0 {
            Refusal::RateLimited { retry_after } => {
                res.insert_header((
                    header::RETRY_AFTER,
                    retry_after.as_secs().max(1).to_string(),
                ));
            }
            Refusal::KeyLimited(status) => {
                res.insert_header((header::RETRY_AFTER, status.retry_after.to_string()));
                for (name, value) in rate_limit_headers(status) {
                    res.insert_header((name, value));
                }
            }
            _ => {}
        }
        res
    }
}

impl ResponseError for ApiRefusal {
    fn status_code(&self) -> StatusCode {
        StatusCode::from_u16(self.0.status()).unwrap_or(StatusCode::FORBIDDEN)
    }

    fn error_response(&self) -> HttpResponse {
        match fixed_body(&self.0) {
            Some(body) => self
                .builder()
                .content_type(header::HeaderValue::from_static(PROBLEM_JSON))
                .body(body),
            None => self.problem().respond_with(self.builder()),
        }
    }
}

/// The problem document of a refusal whose answer never varies (missing, malformed, unknown,
/// disabled, expired, no access), rendered once: these are what a flood of bad codes is answered
/// with, so they cost no serialisation per request.
fn fixed_body(refusal: &Refusal) -> Option<actix_web::web::Bytes> {
    use std::sync::OnceLock;
    const FIXED: [Refusal; 6] = [
        Refusal::Missing,
        Refusal::Malformed,
        Refusal::Unknown,
        Refusal::Disabled,
        Refusal::Expired,
        Refusal::NoAccess,
    ];
    // Kept for the process's life (six short documents, made once), so that each answer refers to
    // them without counting references (`Bytes::from_static`).
    static BODIES: OnceLock<Vec<&'static [u8]>> = OnceLock::new();
    let i = FIXED.iter().position(|f| f == refusal)?;
    let bodies = BODIES.get_or_init(|| {
        FIXED
            .iter()
            .map(|r| {
                let problem = ApiRefusal(r.clone()).problem();
                let body: &'static [u8] = Box::leak(
                    serde_json::to_vec(&problem)
                        .unwrap_or_default()
                        .into_boxed_slice(),
                );
                body
            })
            .collect()
    });
    bodies
        .get(i)
        .map(|body| actix_web::web::Bytes::from_static(body))
}

/// The IETF `RateLimit-Policy` and `RateLimit` fields for a key with limits.
pub fn rate_limit_headers(
    status: &crate::limits::RateStatus,
) -> impl Iterator<Item = (header::HeaderName, header::HeaderValue)> {
    [
        ("ratelimit-policy", status.policy_header()),
        ("ratelimit", status.limit_header()),
    ]
    .into_iter()
    .filter_map(|(name, value)| {
        header::HeaderValue::try_from(value)
            .ok()
            .map(|v| (header::HeaderName::from_static(name), v))
    })
}

/// Adds a grant's rate-limit fields to an answer (nothing for a key without limits).
pub fn with_rate_limit(
    mut res: HttpResponse,
    status: Option<&crate::limits::RateStatus>,
) -> HttpResponse {
    if let Some(status) = status {
        for (name, value) in rate_limit_headers(status) {
            res.headers_mut().insert(name, value);
        }
    }
    res
}

/// Two different access codes in one request: refused, since it is unclear which one is meant.
pub fn conflicting_keys() -> Problem {
    Problem::new(
        StatusCode::BAD_REQUEST,
        "conflicting_keys",
        "The request carries two different access codes (in the x-api-key header and the apiKey query parameter, or one of them twice). Send one.",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_bodies_are_the_problems_they_stand_for() {
        for refusal in [Refusal::Missing, Refusal::Malformed, Refusal::NoAccess] {
            let fixed = fixed_body(&refusal).expect("a fixed body");
            let rendered = serde_json::to_vec(&ApiRefusal(refusal).problem()).unwrap();
            assert_eq!(&fixed[..], &rendered[..]);
        }
        assert!(
            fixed_body(&Refusal::NotAllowed {
                would_allow: vec![]
            })
            .is_none()
        );
    }
}
