//! The signed-in user's own settings: changing the password.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse};
use askama::Template;
use serde::Deserialize;

use crate::error::{AppError, FieldErrors};
use crate::sessions;
use crate::web::State;
use crate::web::console::html_with_status;
use crate::web::forms::HtmlForm;
use crate::web::layout::Layout;
use crate::web::session::{self as websession, Flash, SignedIn};

#[derive(Template)]
#[template(path = "account/password.html")]
struct PasswordPage {
    layout: Layout,
    errors: FieldErrors,
}

/// `GET /account/password`
pub async fn show_password_form(
    req: HttpRequest,
    state: State,
    who: SignedIn,
) -> Result<HttpResponse, AppError> {
    html_with_status(
        StatusCode::OK,
        &PasswordPage {
            layout: Layout::signed_in(&state, &who, "Change password", Flash::take(&req)),
            errors: FieldErrors::new(),
        },
    )
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct PasswordForm {
    csrf_token: String,
    current_password: String,
    new_password: String,
    new_password_confirm: String,
}

/// `POST /account/password` — on success every other session of the user ends.
pub async fn change_password(
    req: HttpRequest,
    state: State,
    who: SignedIn,
    HtmlForm(form): HtmlForm<PasswordForm>,
) -> Result<HttpResponse, AppError> {
    who.check_csrf(&form.csrf_token)?;
    let rerender = |errors: FieldErrors| {
        html_with_status(
            StatusCode::UNPROCESSABLE_ENTITY,
            &PasswordPage {
                layout: Layout::signed_in(&state, &who, "Change password", None),
                errors,
            },
        )
    };
    if form.new_password != form.new_password_confirm {
        let mut errors = FieldErrors::new();
        errors.add(
            "new_password_confirm",
            "The two new passwords do not match.",
        );
        return rerender(errors);
    }
    let user_agent = websession::user_agent(&req);
    let (user, ip) = (who.user.clone(), who.client_ip.clone());
    let result = state
        .db
        .run(move |conn| {
            match sessions::change_password(
                conn,
                &user,
                &form.current_password,
                &form.new_password,
                &ip,
                &user_agent,
            ) {
                Err(AppError::Invalid(errors)) => Ok(Err(errors)),
                other => other.map(Ok),
            }
        })
        .await?;
    match result {
        Ok(token) => {
            let mut res = websession::see_other_with_flash(
                "/",
                &Flash::success("Password changed. Every other browser has been signed out."),
            );
            res.add_cookie(&websession::session_cookie(&state, token))
                .map_err(AppError::internal)?;
            Ok(res)
        }
        Err(errors) => rerender(errors),
    }
}
