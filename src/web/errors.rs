//! How an `AppError` is answered: a status, and a JSON body for integrations or a plain page for
//! browsers. Internal errors are logged with their cause chain and the request id, and shown without
//! details.

use actix_web::http::StatusCode;
use actix_web::http::header::{self, ContentType};
use actix_web::{HttpResponse, ResponseError};
use askama::Template;

use crate::error::{AppError, ErrorChain};
use crate::web::api_errors::{FieldProblem, Problem};
use crate::web::layout::Layout;
use crate::web::middleware::current_request;

/// The error page; it needs no database, so it renders whatever failed. It shows the signed-in user's
/// header when the request got as far as checking the session.
#[derive(Template)]
#[template(path = "errors/error.html")]
struct ErrorPage<'a> {
    layout: Layout,
    status: u16,
    message: &'a str,
    request_id: &'a str,
}

impl AppError {
    /// The machine-readable code of JSON error bodies.
    fn code(&self) -> &'static str {
        match self {
            AppError::NotFound => "not_found",
            AppError::MethodNotAllowed => "method_not_allowed",
            AppError::Unauthenticated => "unauthenticated",
            AppError::Forbidden(_) => "forbidden",
            AppError::Escalation(_) => "escalation",
            AppError::Invalid(_) => "invalid",
            AppError::BadRequest(_) => "bad_request",
            AppError::Conflict(_) => "conflict",
            AppError::TooManyRequests { .. } => "rate_limited",
            AppError::Unavailable(_) => "unavailable",
            AppError::Internal(_) => "internal",
        }
    }

    fn title(&self) -> &'static str {
        match self {
            AppError::NotFound => "Page not found",
            AppError::MethodNotAllowed => "Not available this way",
            AppError::Unauthenticated => "Sign-in required",
            AppError::Forbidden(_) | AppError::Escalation(_) => "Not allowed",
            AppError::Invalid(_) => "Some fields need attention",
            AppError::BadRequest(_) => "Something is wrong with this request",
            AppError::Conflict(_) => "This cannot be done right now",
            AppError::TooManyRequests { .. } => "Too many attempts",
            AppError::Unavailable(_) => "Temporarily unavailable",
            AppError::Internal(_) => "Something went wrong",
        }
    }

    /// What the user reads. Internal and database details never reach them.
    fn public_message(&self) -> String {
        match self {
            AppError::NotFound => {
                "There is nothing here, or you do not have access to it. Check the address."
                    .to_owned()
            }
            AppError::Unauthenticated => "Sign in to continue.".to_owned(),
            AppError::MethodNotAllowed => {
                "This address does not accept this kind of request. Use the links and buttons of the console.".to_owned()
            }
            AppError::Invalid(errors) => errors.summary(),
            AppError::Unavailable(_) => {
                "The service cannot reach its database right now. Try again in a moment.".to_owned()
            }
            AppError::Internal(_) => {
                "An unexpected error happened. It has been logged; try again, and if it persists, \
                 tell support the reference below."
                    .to_owned()
            }
            other => other.to_string(),
        }
    }
}

impl ResponseError for AppError {
    fn status_code(&self) -> StatusCode {
        match self {
            AppError::NotFound => StatusCode::NOT_FOUND,
            AppError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            AppError::Unauthenticated => StatusCode::UNAUTHORIZED,
            AppError::Forbidden(_) | AppError::Escalation(_) => StatusCode::FORBIDDEN,
            AppError::Invalid(_) => StatusCode::UNPROCESSABLE_ENTITY,
            AppError::BadRequest(_) => StatusCode::BAD_REQUEST,
            AppError::Conflict(_) => StatusCode::CONFLICT,
            AppError::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            AppError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            AppError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let context = current_request();
        let request_id = context.as_ref().map_or("-", |c| c.id.as_str());
        // Only console pages run inside the request context; API scopes answer in JSON.
        let wants_json = context.as_ref().is_none_or(|c| c.wants_json);
        match self {
            AppError::Internal(e) | AppError::Unavailable(e) => {
                tracing::error!(request_id, "{}", ErrorChain(self));
                tracing::debug!(request_id, "cause: {}", ErrorChain(e.as_ref()));
            }
            _ => {}
        }
        let status = self.status_code();
        let mut builder = HttpResponse::build(status);
        if let AppError::TooManyRequests {
            retry_after_secs, ..
        } = self
        {
            builder.insert_header((header::RETRY_AFTER, retry_after_secs.to_string()));
        }
        if wants_json {
            let mut problem = Problem::new(status, self.code(), self.public_message());
            if let AppError::Invalid(errors) = self {
                problem = problem.with_errors(
                    errors
                        .iter()
                        .map(|(field, message)| FieldProblem {
                            field: field.to_owned(),
                            message: message.to_owned(),
                        })
                        .collect(),
                );
            }
            return problem.respond_with(builder);
        }
        if matches!(self, AppError::Unauthenticated) {
            // Browsers go to the sign-in page and come back afterwards.
            return HttpResponse::SeeOther()
                .insert_header((header::LOCATION, crate::web::urls::LOGIN))
                .finish();
        }
        let message = self.public_message();
        let signed_in = context.as_ref().and_then(|c| c.signed_in.get().cloned());
        let page = ErrorPage {
            layout: Layout::error(self.title(), signed_in),
            status: status.as_u16(),
            message: &message,
            request_id,
        };
        match page.render() {
            Ok(html) => builder.content_type(ContentType::html()).body(html),
            Err(_) => builder.content_type(ContentType::plaintext()).body(message),
        }
    }
}

/// The answer to any URL not in the route table.
/// Checks the session first (when there is one) so that the page keeps the user's header.
pub async fn not_found(
    _who: Option<crate::web::session::SignedIn>,
) -> Result<HttpResponse, AppError> {
    Err(AppError::NotFound)
}

/// The answer to an unknown URL under the API scopes.
pub async fn json_not_found() -> HttpResponse {
    api_not_found()
}

/// The answer to a path under the APIs' prefixes that names no API.
pub fn api_not_found() -> HttpResponse {
    Problem::new(
        StatusCode::NOT_FOUND,
        "not_found",
        "There is no such API. See /docs/apis for the list.",
    )
    .respond()
}

/// The answer to a console URL requested with a method it does not take.
pub async fn method_not_allowed() -> Result<HttpResponse, AppError> {
    Err(AppError::MethodNotAllowed)
}

/// The answer to a `/v1` URL requested with a method it does not take.
pub async fn json_method_not_allowed() -> HttpResponse {
    Problem::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "This API does not take that method. See /docs/apis.",
    )
    .respond()
}
