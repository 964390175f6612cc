//! Decoding HTML forms (repeated fields such as `policy` included, which `web::Form` cannot do) and
//! carrying per-field validation messages back to the re-rendered form.

use std::future::Future;
use std::pin::Pin;

use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::{FromRequest, HttpRequest, web};
use serde::de::DeserializeOwned;

use crate::error::AppError;

/// Largest form body accepted: a form here carries at most a few hundred characters of text.
pub const FORM_LIMIT: usize = 64 * 1024;

/// An `application/x-www-form-urlencoded` body decoded into `T`. Declare the fields of `T` with
/// `#[serde(default)]` so that a missing field becomes an empty one and gets a message by the field
/// rather than a generic error.
pub struct HtmlForm<T>(pub T);

impl<T: DeserializeOwned + 'static> FromRequest for HtmlForm<T> {
    type Error = AppError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, AppError>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let content_type_ok = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| {
                v.split(';').next().is_some_and(|m| {
                    m.trim()
                        .eq_ignore_ascii_case("application/x-www-form-urlencoded")
                })
            });
        let body = web::Bytes::from_request(req, payload);
        Box::pin(async move {
            if !content_type_ok {
                return Err(AppError::bad_request(
                    "Send this form as application/x-www-form-urlencoded.",
                ));
            }
            let bytes = body.await.map_err(|_| {
                AppError::bad_request("The form is too large or could not be read.")
            })?;
            decode(&bytes).map(HtmlForm)
        })
    }
}

/// Decodes a form body into `T`, refusing bodies over [`FORM_LIMIT`] with a message (the fuzz
/// target `form_decoders` feeds this arbitrary bytes).
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, AppError> {
    if bytes.len() > FORM_LIMIT {
        return Err(AppError::bad_request("The form is too large."));
    }
    serde_html_form::from_bytes(bytes).map_err(|_| {
        AppError::bad_request("The form could not be read. Reload the page and try again.")
    })
}

pub use crate::error::FieldErrors;

/// An on/off switch's form: `enabled` = `true` | `false` (`on` | `off` from a checkbox).
#[derive(Debug, Default, serde::Deserialize)]
#[serde(default)]
pub struct EnabledForm {
    pub csrf_token: String,
    pub enabled: String,
}

impl EnabledForm {
    /// The switch's new state; anything else is a 400.
    pub fn enabled(&self) -> Result<bool, AppError> {
        match self.enabled.as_str() {
            "true" | "on" => Ok(true),
            "false" | "off" => Ok(false),
            _ => Err(AppError::bad_request(
                "The field enabled must be true or false.",
            )),
        }
    }
}

/// A form that carries nothing but its CSRF token (sign out, delete, confirmations).
#[derive(Debug, Default, serde::Deserialize)]
#[serde(default)]
pub struct CsrfForm {
    pub csrf_token: String,
}
