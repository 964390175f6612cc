//! Signing in and out of the console.

use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use serde::Deserialize;

use crate::error::AppError;
use crate::sessions::{self, Session};
use crate::throttle::SharedThrottle;
use crate::users;
use crate::web::client::client_ip;
use crate::web::forms::{CsrfForm, HtmlForm};
use crate::web::layout::Layout;
use crate::web::session::{
    self as websession, ConsoleCookie, Flash, SignedIn, see_other_with_flash,
};
use crate::web::state::{AppState, State};
use crate::web::urls;

/// Failed sign-ins allowed in 15 minutes, per email and per client IP.
pub const FAILURES_PER_EMAIL: u32 = 5;
pub const FAILURES_PER_IP: u32 = 20;
const THROTTLE_WINDOW: Duration = Duration::from_secs(15 * 60);

/// The two counters that slow down password guessing: against one account, and from one address.
/// Shared by every instance when there is a shared store (`--redis-url`).
#[derive(Debug)]
pub struct LoginThrottle {
    per_email: SharedThrottle,
    per_ip: SharedThrottle,
}

impl Default for LoginThrottle {
    fn default() -> Self {
        Self {
            per_email: SharedThrottle::new("login-email", FAILURES_PER_EMAIL, THROTTLE_WINDOW),
            per_ip: SharedThrottle::new("login-ip", FAILURES_PER_IP, THROTTLE_WINDOW),
        }
    }
}

/// What a sign-in attempt does to the throttle.
enum Attempt {
    Check,
    Failed,
    Succeeded,
}

/// Checks or counts an attempt for this email and address, on the blocking pool (the shared store
/// is a network call). `Err(wait)` when either is locked out.
async fn throttle(
    state: &State,
    attempt: Attempt,
    email: &str,
    ip: &str,
) -> Result<Result<(), Duration>, AppError> {
    let (state, email, ip) = (state.clone(), email.to_owned(), ip.to_owned());
    web::block(move || {
        let (t, store) = (&state.login_throttle, state.shared.as_deref());
        match attempt {
            Attempt::Check => {
                return t
                    .per_email
                    .check(store, &email)
                    .and(t.per_ip.check(store, &ip));
            }
            Attempt::Failed => {
                t.per_email.record_failure(store, &email);
                t.per_ip.record_failure(store, &ip);
            }
            Attempt::Succeeded => t.per_email.reset(store, &email),
        }
        Ok(())
    })
    .await
    .map_err(AppError::internal)
}

#[derive(Template)]
#[template(path = "auth/login.html")]
struct LoginPage {
    layout: Layout,
    email: String,
    next: String,
    error: Option<String>,
}

#[derive(Deserialize)]
pub struct LoginQuery {
    next: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct LoginForm {
    email: String,
    password: String,
    csrf_token: String,
    next: String,
}

fn render_login(
    req: &HttpRequest,
    state: &AppState,
    status: StatusCode,
    email: &str,
    next: &str,
    error: Option<String>,
) -> Result<HttpResponse, AppError> {
    let token = websession::anonymous_csrf_token(req, state);
    let page = LoginPage {
        layout: Layout::anonymous(state, "Sign in", &token, Flash::take(req)),
        email: email.to_owned(),
        next: websession::safe_next(Some(next)),
        error,
    };
    Ok(HttpResponse::build(status)
        .content_type(header::ContentType::html())
        .cookie(ConsoleCookie::LoginCsrf.set(state, token))
        .body(page.render().map_err(AppError::internal)?))
}

/// `GET /login`
pub async fn show_login(
    req: HttpRequest,
    state: State,
    query: web::Query<LoginQuery>,
) -> Result<HttpResponse, AppError> {
    let next = query.next.as_deref().unwrap_or(urls::HOME);
    render_login(&req, &state, StatusCode::OK, "", next, None)
}

/// `POST /login` (`email`, `password`)
pub async fn log_in(
    req: HttpRequest,
    state: State,
    HtmlForm(form): HtmlForm<LoginForm>,
) -> Result<HttpResponse, AppError> {
    let csrf_ok = websession::anonymous_csrf_ok(&req, &state, &form.csrf_token);
    let retry = |status, message: &str| {
        render_login(
            &req,
            &state,
            status,
            &form.email,
            &form.next,
            Some(message.to_owned()),
        )
    };
    if !csrf_ok {
        return retry(
            StatusCode::FORBIDDEN,
            "This sign-in form had expired. Please try again.",
        );
    }
    if form.email.trim().is_empty() || form.password.is_empty() {
        return retry(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Enter your email and password.",
        );
    }
    let ip = client_ip(&req, &state);
    let email_key = users::normalize_email(&form.email);
    if let Err(wait) = throttle(&state, Attempt::Check, &email_key, &ip).await? {
        let minutes = wait.as_secs().div_ceil(60).max(1);
        let mut res = retry(
            StatusCode::TOO_MANY_REQUESTS,
            &format!("Too many failed sign-in attempts. Try again in {minutes} minute(s)."),
        )?;
        if let Ok(value) = header::HeaderValue::from_str(&wait.as_secs().max(1).to_string()) {
            res.headers_mut().insert(header::RETRY_AFTER, value);
        }
        return Ok(res);
    }

    let user_agent = websession::user_agent(&req);
    let old_token = ConsoleCookie::Session.read(&req, &state);
    let (email, password, ip_for_db) = (form.email.clone(), form.password.clone(), ip.clone());
    let outcome = state
        .db
        .run(move |conn| {
            let signed_in = sessions::sign_in(conn, &email, &password, &ip_for_db, &user_agent)?;
            // A new session id at every sign-in: a token planted before sign-in is worthless after.
            // A failed attempt leaves the browser's current session alone.
            if let (Some(_), Some(old)) = (&signed_in, old_token) {
                Session::end(conn, &old)?;
            }
            Ok(signed_in)
        })
        .await?;

    let Some((token, _user)) = outcome else {
        let _ = throttle(&state, Attempt::Failed, &email_key, &ip).await?;
        let db = state.db.clone();
        let (email, ip) = (email_key, ip);
        actix_web::rt::spawn(async move {
            if let Err(e) = db
                .run(move |conn| Ok(sessions::record_failed_sign_in(conn, &email, &ip)?))
                .await
            {
                tracing::warn!("could not record a failed sign-in: {e}");
            }
        });
        return retry(
            StatusCode::UNAUTHORIZED,
            "The email or password is not correct.",
        );
    };
    let _ = throttle(&state, Attempt::Succeeded, &email_key, &ip).await?;
    let mut res = websession::see_other(&websession::safe_next(Some(&form.next)));
    res.add_cookie(&ConsoleCookie::Session.set(&state, token))
        .map_err(AppError::internal)?;
    res.add_cookie(&ConsoleCookie::LoginCsrf.removal(&state))
        .map_err(AppError::internal)?;
    Ok(res)
}

/// `POST /logout`
pub async fn log_out(
    req: HttpRequest,
    state: State,
    who: SignedIn,
    HtmlForm(form): HtmlForm<CsrfForm>,
) -> Result<HttpResponse, AppError> {
    who.check_csrf(&form.csrf_token)?;
    if let Some(token) = ConsoleCookie::Session.read(&req, &state) {
        state
            .db
            .run(move |conn| Ok(Session::end(conn, &token)?))
            .await?;
    }
    let mut res = see_other_with_flash(urls::LOGIN, &Flash::success("You have signed out."));
    res.add_cookie(&ConsoleCookie::Session.removal(&state))
        .map_err(AppError::internal)?;
    Ok(res)
}
