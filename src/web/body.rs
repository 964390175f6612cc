//! Request bodies must arrive within a deadline (`--body-timeout`, 10 s by default): a client that
//! trickles a body (slow POST, R.U.D.Y.) gets `408` and its connection closed, instead of holding a
//! connection and a buffer for as long as it likes. The request head has actix's own deadline
//! (`client_request_timeout`, 5 s), which answers slowloris the same way.

use std::time::Duration;

use actix_web::body::{BodyStream, EitherBody, MessageBody, to_bytes_limited};
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::http::{StatusCode, header};
use actix_web::middleware::Next;
use actix_web::web::Bytes;
use actix_web::{Error, HttpMessage, HttpResponse};

use crate::web::api_errors::Problem;
use crate::web::middleware::is_json_path;
use crate::web::state::State;

/// The largest body read: above every form and JSON limit (the extractors apply their own, smaller).
pub const MAX_BODY: usize = 256 * 1024;

/// Why a body could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyProblem {
    TimedOut,
    TooLarge,
    /// The client closed the connection or sent a broken chunked encoding.
    Broken,
}

/// The whole body, if it arrives within `deadline` and `MAX_BODY`.
pub async fn read_within(payload: Payload, deadline: Duration) -> Result<Bytes, BodyProblem> {
    match tokio::time::timeout(
        deadline,
        to_bytes_limited(BodyStream::new(payload), MAX_BODY),
    )
    .await
    {
        Err(_) => Err(BodyProblem::TimedOut),
        Ok(Err(_)) => Err(BodyProblem::TooLarge),
        Ok(Ok(Err(_))) => Err(BodyProblem::Broken),
        Ok(Ok(Ok(bytes))) => Ok(bytes),
    }
}

/// The answer to a body that could not be read: 408 (and the connection closed), 413 or 400.
pub fn problem_response(problem: BodyProblem, json: bool) -> HttpResponse {
    let (status, code, message) = match problem {
        BodyProblem::TimedOut => (
            StatusCode::REQUEST_TIMEOUT,
            "request_timeout",
            "The request body did not arrive in time.",
        ),
        BodyProblem::TooLarge => (
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            "The request body is too large.",
        ),
        BodyProblem::Broken => (
            StatusCode::BAD_REQUEST,
            "bad_request",
            "The request body could not be read.",
        ),
    };
    let mut res = HttpResponse::build(status);
    // The connection may still hold the rest of a body: never read another request from it.
    res.force_close();
    if json {
        Problem::new(status, code, message).respond_with(res)
    } else {
        res.content_type(header::ContentType::plaintext())
            .body(message)
    }
}

/// Whether the request announces a body (a length above zero, or a chunked one).
fn has_body(req: &ServiceRequest) -> bool {
    let headers = req.headers();
    headers.contains_key(header::TRANSFER_ENCODING)
        || headers
            .get(header::CONTENT_LENGTH)
            .is_some_and(|v| v.as_bytes() != b"0")
}

/// Reads a request's body within the deadline before its handler runs, then hands the handler the
/// buffered body.
pub async fn body_deadline(
    mut req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, Error> {
    let deadline = match req.app_data::<State>() {
        Some(state) if has_body(&req) => state.settings.body_timeout,
        _ => return Ok(next.call(req).await?.map_into_left_body()),
    };
    match read_within(req.take_payload(), deadline).await {
        Ok(bytes) => {
            req.set_payload(Payload::from(bytes));
            Ok(next.call(req).await?.map_into_left_body())
        }
        Err(problem) => {
            let json = is_json_path(req.path());
            Ok(req
                .into_response(problem_response(problem, json))
                .map_into_right_body())
        }
    }
}
