//! The JSON answers of the API and verification routes that refuse: `{ "error": { "code", "message" } }`
//! with a stable code.

use actix_web::http::{StatusCode, header};
use actix_web::{HttpResponse, ResponseError};

use crate::verify::Refusal;

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
            "The request carries two different access codes (in the x-api-key header and the apiKey query parameter, or one of them twice). Send one.",
        ))
    }
}
