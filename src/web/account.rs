//! The signed-in user's own settings: changing the password, signing out other browsers.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse};
use askama::Template;
use serde::Deserialize;

use crate::error::{AppError, FieldErrors};
use crate::sessions;
use crate::web::forms::HtmlForm;
use crate::web::layout::Layout;
use crate::web::render::html_with_status;
use crate::web::session::{self as websession, Flash, SignedIn};
use crate::web::state::State;
use crate::web::urls;

#[derive(Template)]
#[template(path = "account/password.html")]
struct PasswordPage {
    layout: Layout,
    errors: FieldErrors,
    /// The user's live sessions in other browsers.
    other_sessions: i64,
}

/// The page, with the number of the user's live sessions in other browsers.
async fn render_page(
    state: &State,
    who: &SignedIn,
    status: StatusCode,
    errors: FieldErrors,
    flash: Option<Flash>,
) -> Result<HttpResponse, AppError> {
    let (user_id, keep) = (who.user.id.clone(), who.session.id.clone());
    let other_sessions = state
        .db
        .run(move |conn| Ok(sessions::Session::count_others(conn, &user_id, &keep)?))
        .await?;
    html_with_status(
        status,
        &PasswordPage {
            layout: Layout::signed_in(state, who, "Password and sessions", flash),
            errors,
            other_sessions,
        },
    )
}

/// `GET /account/password`
pub async fn show_password_form(
    req: HttpRequest,
    state: State,
    who: SignedIn,
) -> Result<HttpResponse, AppError> {
    let flash = Flash::take(&req);
    render_page(&state, &who, StatusCode::OK, FieldErrors::new(), flash).await
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
    let rerender =
        |errors| render_page(&state, &who, StatusCode::UNPROCESSABLE_ENTITY, errors, None);
    if form.new_password != form.new_password_confirm {
        let mut errors = FieldErrors::new();
        errors.add(
            "new_password_confirm",
            "The two new passwords do not match.",
        );
        return rerender(errors).await;
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
                urls::HOME,
                &Flash::success("Password changed. Every other browser has been signed out."),
            );
            res.add_cookie(&websession::ConsoleCookie::Session.set(&state, token))
                .map_err(AppError::internal)?;
            Ok(res)
        }
        Err(errors) => rerender(errors).await,
    }
}

/// `POST /account/sessions/sign-out-elsewhere` — ends every other session of the user (a lost laptop,
/// a shared computer), keeping this one.
pub async fn sign_out_elsewhere(
    state: State,
    who: SignedIn,
    HtmlForm(form): HtmlForm<crate::web::forms::CsrfForm>,
) -> Result<HttpResponse, AppError> {
    who.check_csrf(&form.csrf_token)?;
    let (user, keep, ip) = (
        who.user.clone(),
        who.session.id.clone(),
        who.client_ip.clone(),
    );
    let ended = state
        .db
        .run(move |conn| Ok(sessions::sign_out_elsewhere(conn, &user, &keep, &ip)?))
        .await?;
    let message = match ended {
        0 => "You were not signed in anywhere else.".to_owned(),
        1 => "Signed out of 1 other session.".to_owned(),
        n => format!("Signed out of {n} other sessions."),
    };
    Ok(websession::see_other_with_flash(
        urls::PASSWORD,
        &Flash::success(message),
    ))
}
