//! The console's browser session on the HTTP side: the cookies, the `SignedIn` extractor (with the
//! two ways into an account: `read_in`, and `change_in`, the one write path), CSRF checks, flash
//! messages and the `next=` check.

use std::future::Future;
use std::pin::Pin;

use actix_web::cookie::{Cookie, SameSite};
use actix_web::dev::Payload;
use actix_web::{FromRequest, HttpMessage, HttpRequest, HttpResponse, web};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::access::AccountAccess;
use crate::audit::Actor;
use crate::db::DbConn;
use crate::error::AppError;
use crate::ids::AccountId;
use crate::revocation::{self, Changed};
use crate::sessions::{self, Session};
use crate::users::User;
use crate::web::client::client_ip;
use crate::web::state::{AppState, State};
use crate::web::urls;

/// The console's cookies. Over HTTPS every name carries the `__Host-` prefix, which browsers accept
/// only on a `Secure`, host-only cookie with `Path=/` (RFC 6265bis §4.1.3.2): no plain-HTTP page and
/// no sibling domain can set or overwrite it. All are `HttpOnly` and `SameSite=Lax`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConsoleCookie {
    /// The session token.
    Session,
    /// The pre-session CSRF token of the sign-in and setup forms (double-submit: the form has a copy).
    LoginCsrf,
    /// A one-shot message, set on a redirect and shown by the next page (`middleware::flash_messages`).
    Flash,
}

impl ConsoleCookie {
    /// The cookie's name on this server.
    pub fn name(self, state: &AppState) -> &'static str {
        match (self, state.settings.secure_cookies()) {
            (ConsoleCookie::Session, true) => "__Host-bms_session",
            (ConsoleCookie::Session, false) => "bms_session",
            (ConsoleCookie::LoginCsrf, true) => "__Host-bms_login_csrf",
            (ConsoleCookie::LoginCsrf, false) => "bms_login_csrf",
            (ConsoleCookie::Flash, true) => "__Host-bms_flash",
            (ConsoleCookie::Flash, false) => "bms_flash",
        }
    }

    /// The value the browser sent.
    pub fn read(self, req: &HttpRequest, state: &AppState) -> Option<String> {
        req.cookie(self.name(state)).map(|c| c.value().to_owned())
    }

    /// The cookie that sets `value`.
    pub fn set(self, state: &AppState, value: String) -> Cookie<'static> {
        Cookie::build(self.name(state), value)
            .path("/")
            .http_only(true)
            .same_site(SameSite::Lax)
            .secure(state.settings.secure_cookies())
            .finish()
    }

    /// The cookie that deletes it.
    pub fn removal(self, state: &AppState) -> Cookie<'static> {
        let mut cookie = self.set(state, String::new());
        cookie.make_removal();
        cookie
    }
}

/// The pre-session CSRF token of the sign-in and setup forms: the browser's cookie, or a new one.
pub fn anonymous_csrf_token(req: &HttpRequest, state: &AppState) -> String {
    ConsoleCookie::LoginCsrf
        .read(req, state)
        .filter(|v| v.len() == 43)
        .unwrap_or_else(sessions::new_token)
}

/// Whether a sign-in or setup form carries the same token as the browser's pre-session cookie.
pub fn anonymous_csrf_ok(req: &HttpRequest, state: &AppState, submitted: &str) -> bool {
    ConsoleCookie::LoginCsrf
        .read(req, state)
        .is_some_and(|c| !submitted.is_empty() && sessions::tokens_equal(&c, submitted))
}

/// The browser's `User-Agent`, kept with a session so a user can tell their sessions apart.
pub fn user_agent(req: &HttpRequest) -> String {
    req.headers()
        .get(actix_web::http::header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned()
}

/// A signed-in user with a live session: the extractor every console page after sign-in uses.
/// Without one, the request fails with `Unauthenticated` (a redirect to the sign-in page).
pub struct SignedIn {
    pub user: User,
    pub session: Session,
    pub client_ip: String,
}

impl SignedIn {
    /// Refuses a POST whose `csrf_token` is not this session's (synchronizer token pattern).
    pub fn check_csrf(&self, submitted: &str) -> Result<(), AppError> {
        if sessions::tokens_equal(submitted, &self.session.csrf_token) {
            Ok(())
        } else {
            Err(AppError::forbidden(
                "This form has expired or did not come from this site. Go back, reload the page and try again.",
            ))
        }
    }
}

impl SignedIn {
    /// Reads from the account as this user, on the blocking pool: loads their access (404 for another
    /// tenant's account), then `read` with it.
    pub async fn read_in<T, F>(
        &self,
        state: &AppState,
        account_id: &AccountId,
        read: F,
    ) -> Result<T, AppError>
    where
        F: FnOnce(&mut DbConn, AccountAccess) -> Result<T, AppError> + Send + 'static,
        T: Send + 'static,
    {
        let (user, account_id) = (self.user.clone(), account_id.to_owned());
        state
            .db
            .run(move |conn| {
                let access = AccountAccess::load(conn, &user, &account_id)?;
                read(conn, access)
            })
            .await
    }

    /// **The one write path**: runs a change in the account as this user. On the blocking pool it loads
    /// their access (404 for another tenant's account) and audit actor, then runs `change` through
    /// `revocation::commit` (a write transaction that announces what it revoked); after the commit it
    /// clears the revoked keys from this instance's verification cache. A refusal is the
    /// command's own error (`AppError::Invalid` with the form's messages, `Conflict`…), for the
    /// handler to show or re-render; nothing is committed then.
    pub async fn change_in<T, F>(
        &self,
        state: &AppState,
        account_id: &AccountId,
        change: F,
    ) -> Result<T, AppError>
    where
        F: FnOnce(&mut DbConn, &AccountAccess, &Actor) -> Result<Changed<T>, AppError>
            + Send
            + 'static,
        T: Send + 'static,
    {
        let (user, ip, account_id) = (
            self.user.clone(),
            self.client_ip.clone(),
            account_id.to_owned(),
        );
        let Changed { value, revoked } = state
            .db
            .run(move |conn| {
                let access = AccountAccess::load(conn, &user, &account_id)?;
                let actor = access.actor(&user, &ip);
                revocation::commit(conn, |conn| change(conn, &access, &actor))
            })
            .await?;
        state.verifier.forget(&revoked);
        Ok(value)
    }
}

impl FromRequest for SignedIn {
    type Error = AppError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, AppError>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let state = req.app_data::<State>().cloned();
        let req = req.clone();
        Box::pin(async move {
            let state = state.ok_or_else(|| AppError::internal("application state missing"))?;
            let token = ConsoleCookie::Session
                .read(&req, &state)
                .filter(|t| !t.is_empty() && t.len() <= 64)
                .ok_or(AppError::Unauthenticated)?;
            let (session, user) = state
                .db
                .run(move |conn| Ok(Session::find_active(conn, &token)?))
                .await?
                .ok_or(AppError::Unauthenticated)?;
            if let Some(context) = crate::web::middleware::current_request() {
                let _ = context
                    .signed_in
                    .set(crate::web::middleware::SignedInHeader {
                        user: crate::web::layout::UserView::of(&user),
                        csrf_token: session.csrf_token.clone(),
                    });
            }
            Ok(SignedIn {
                client_ip: client_ip(&req, &state),
                user,
                session,
            })
        })
    }
}

/// A message shown once on the next page: "API key created", "Signed out".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Flash {
    pub kind: FlashKind,
    pub message: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlashKind {
    Success,
    Error,
}

impl FlashKind {
    pub fn css_class(self) -> &'static str {
        match self {
            FlashKind::Success => "success",
            FlashKind::Error => "error",
        }
    }
}

impl Flash {
    pub fn success(message: impl Into<String>) -> Self {
        Self {
            kind: FlashKind::Success,
            message: message.into(),
        }
    }

    pub fn error(message: impl Into<String>) -> Self {
        Self {
            kind: FlashKind::Error,
            message: message.into(),
        }
    }

    pub fn encode(&self) -> String {
        let kind = match self.kind {
            FlashKind::Success => 's',
            FlashKind::Error => 'e',
        };
        URL_SAFE_NO_PAD.encode(format!("{kind}{}", self.message))
    }

    /// Reads the cookie value; anything malformed is ignored. The text is only ever shown escaped.
    pub fn decode(value: &str) -> Option<Flash> {
        let bytes = URL_SAFE_NO_PAD.decode(value).ok()?;
        let text = String::from_utf8(bytes).ok()?;
        let mut chars = text.chars();
        let kind = match chars.next()? {
            's' => FlashKind::Success,
            'e' => FlashKind::Error,
            _ => return None,
        };
        let message: String = chars.take(300).collect();
        Some(Flash { kind, message })
    }

    /// The flash set by the previous redirect, if any.
    pub fn take(req: &HttpRequest) -> Option<Flash> {
        req.extensions().get::<Flash>().cloned()
    }
}

/// A `303 See Other` to `location`, the answer to every successful form POST (post/redirect/get).
pub fn see_other(location: &str) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((actix_web::http::header::LOCATION, location))
        .finish()
}

/// A `303` to `location` that shows `flash` there (the flash middleware turns it into the cookie).
pub fn see_other_with_flash(location: &str, flash: &Flash) -> HttpResponse {
    let mut res = see_other(location);
    res.extensions_mut().insert(flash.clone());
    res
}

/// `next=` targets after sign-in are only pages of this console, so the sign-in page cannot send
/// users to another site (open redirect) or break its own answer: a known console path, in visible
/// ASCII, with no `\\`, no `//` and no scheme. Anything else lands on the home page.
pub fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n) if n.len() < 1000 && is_console_target(n) => n.to_owned(),
        _ => urls::HOME.to_owned(),
    }
}

fn is_console_target(target: &str) -> bool {
    let path = target.split(['?', '#']).next().unwrap_or("");
    target.bytes().all(|b| b.is_ascii_graphic())
        && !target.contains('\\')
        && !target.contains("//")
        && (path == urls::HOME
            || path == urls::ACCOUNTS
            || urls::CONSOLE_PREFIXES.iter().any(|p| path.starts_with(p)))
}

/// The state from a request, for handlers that take `HttpRequest` only.
pub fn state_of(req: &HttpRequest) -> Result<web::Data<AppState>, AppError> {
    req.app_data::<State>()
        .cloned()
        .ok_or_else(|| AppError::internal("application state missing"))
}
