//! The first run: `serve` prints a one-time link while no user exists; at it, the first owner creates
//! their sign-in and their account, and lands signed in on the account's API Keys page.

use std::sync::Mutex;

use actix_web::http::StatusCode;
use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use serde::Deserialize;

use crate::error::AppError;
use crate::onboarding::{self, NewMember};
use crate::sessions::{self, Session};
use crate::users::Role;
use crate::web::client::client_ip;
use crate::web::forms::{FieldErrors, HtmlForm};
use crate::web::layout::Layout;
use crate::web::session::{self as websession, Flash};
use crate::web::state::{AppState, State};
use crate::web::urls::AccountUrls;

/// The token of the one-time setup link, while setup is still to be done.
#[derive(Debug)]
pub struct SetupLink {
    token: Mutex<Option<String>>,
}

impl SetupLink {
    pub fn new(token: Option<String>) -> Self {
        Self {
            token: Mutex::new(token),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<String>> {
        self.token.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The current token, to print or (in tests) to follow.
    pub fn token(&self) -> Option<String> {
        self.lock().clone()
    }

    fn matches(&self, candidate: &str) -> bool {
        self.lock()
            .as_deref()
            .is_some_and(|t| sessions::tokens_equal(t, candidate))
    }

    fn consume(&self) {
        *self.lock() = None;
    }
}

#[derive(Deserialize)]
pub struct SetupQuery {
    #[serde(default)]
    token: String,
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct SetupForm {
    csrf_token: String,
    account_name: String,
    display_name: String,
    email: String,
    password: String,
    password_confirm: String,
}

#[derive(Template)]
#[template(path = "auth/setup.html")]
struct SetupPage {
    layout: Layout,
    token: String,
    form: SetupForm,
    errors: FieldErrors,
}

fn render_setup(
    req: &HttpRequest,
    state: &AppState,
    status: StatusCode,
    token: &str,
    form: SetupForm,
    errors: FieldErrors,
) -> Result<HttpResponse, AppError> {
    let csrf = websession::anonymous_csrf_token(req, state);
    let page = SetupPage {
        layout: Layout::anonymous(state, "Set up BMS", &csrf, None),
        token: token.to_owned(),
        form: SetupForm {
            password: String::new(),
            password_confirm: String::new(),
            ..form
        },
        errors,
    };
    Ok(HttpResponse::build(status)
        .content_type(header::ContentType::html())
        .cookie(websession::ConsoleCookie::LoginCsrf.set(state, csrf))
        .body(page.render().map_err(AppError::internal)?))
}

/// `GET /setup?token=…` — 404 once setup is done or with a wrong token.
pub async fn show_setup(
    req: HttpRequest,
    state: State,
    query: web::Query<SetupQuery>,
) -> Result<HttpResponse, AppError> {
    if !state.setup.matches(&query.token) {
        return Err(AppError::NotFound);
    }
    render_setup(
        &req,
        &state,
        StatusCode::OK,
        &query.token,
        SetupForm::default(),
        FieldErrors::new(),
    )
}

/// `POST /setup?token=…` — creates the first owner and account, signs them in.
pub async fn complete_setup(
    req: HttpRequest,
    state: State,
    query: web::Query<SetupQuery>,
    HtmlForm(form): HtmlForm<SetupForm>,
) -> Result<HttpResponse, AppError> {
    if !state.setup.matches(&query.token) {
        return Err(AppError::NotFound);
    }
    if !websession::anonymous_csrf_ok(&req, &state, &form.csrf_token) {
        return Err(AppError::forbidden(
            "This form had expired. Reload the setup page and try again.",
        ));
    }
    let new = NewMember {
        email: form.email.clone(),
        display_name: form.display_name.clone(),
        password: form.password.clone(),
        account_name: form.account_name.clone(),
        role: Some(Role::Owner),
        is_staff: false,
    };
    let mut errors = FieldErrors::new();
    for (field, problem) in onboarding::problems(&new) {
        errors.add(field, problem);
    }
    if form.password != form.password_confirm {
        errors.add("password_confirm", "The two passwords do not match.");
    }
    if !errors.is_empty() {
        return render_setup(
            &req,
            &state,
            StatusCode::UNPROCESSABLE_ENTITY,
            &query.token,
            form,
            errors,
        );
    }
    let ip = client_ip(&req, &state);
    let user_agent = websession::user_agent(&req);
    let (added, token) = state
        .db
        .run(move |conn| {
            let added = onboarding::complete_first_run(conn, &new, &ip)?;
            let (token, _) = Session::start(conn, &added.user.id, &ip, &user_agent)?;
            Ok((added, token))
        })
        .await?;
    state.setup.consume();
    tracing::info!(account = %added.account.id, "first-run setup completed");
    let mut res = websession::see_other_with_flash(
        &AccountUrls::new(&added.account.id).api_keys(),
        &Flash::success(format!(
            "Welcome! Your account {} is ready.",
            added.account.name
        )),
    );
    res.add_cookie(&websession::ConsoleCookie::Session.set(&state, token))
        .map_err(AppError::internal)?;
    Ok(res)
}
