//! Rendering a page: an Askama template into an HTML response.

use actix_web::HttpResponse;
use actix_web::http::StatusCode;
use actix_web::http::header::ContentType;
use askama::Template;

use crate::error::AppError;

/// Renders a template into a `200` HTML response.
pub fn html(page: &impl Template) -> Result<HttpResponse, AppError> {
    html_with_status(StatusCode::OK, page)
}

/// Renders a template with the given status (422 for a form shown again with messages).
pub fn html_with_status(
    status: StatusCode,
    page: &impl Template,
) -> Result<HttpResponse, AppError> {
    Ok(HttpResponse::build(status)
        .content_type(ContentType::html())
        .body(page.render().map_err(AppError::internal)?))
}
