//! An access code's secret: the secret view (masked until revealed, copy buttons, QR code), the
//! `.txt` download, and support staff's reason form in front of both.

use actix_web::http::StatusCode;
use actix_web::http::header::{self, ContentDisposition, DispositionParam, DispositionType};
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use serde::Deserialize;

use crate::access::AccountAccess;
use crate::access_codes::{self, Disclosure, RevealRequest, Revealed};
use crate::api_keys;
use crate::error::{AppError, FieldErrors};
use crate::ids::{AccessCodeId, AccountId, ApiKeyId};
use crate::web::access_codes::CodeView;
use crate::web::display;
use crate::web::forms::HtmlForm;
use crate::web::layout::{Layout, Nav};
use crate::web::render::html;
use crate::web::session::{Flash, SignedIn};
use crate::web::state::{AppState, State};
use crate::web::urls::AccountUrls;
use crate::web::views::KeyView;

/// Support staff's reason for opening a secret: a POST form (never a URL, so it stays out of access
/// logs and browser history), checked against the session's CSRF token.
#[derive(Deserialize, Default)]
#[serde(default)]
pub struct ReasonForm {
    csrf_token: String,
    reason: String,
}

#[derive(Template)]
#[template(path = "access_codes/reason.html")]
struct ReasonPage {
    layout: Layout,
    code_id: String,
    action_url: String,
    cancel_url: String,
    reason: String,
    errors: FieldErrors,
    download: bool,
}

/// The downloaded `.txt`: the credentials and how to send them (plain text, nothing escaped).
#[derive(Template)]
#[template(path = "access_codes/secret.txt", escape = "none")]
struct SecretFile<'a> {
    key_name: &'a str,
    key_id: &'a str,
    account_name: &'a str,
    account_id: &'a str,
    code_id: &'a str,
    description: &'a str,
    created: String,
    expires: String,
    url: String,
    secret: &'a str,
}

#[derive(Template)]
#[template(path = "access_codes/secret.html")]
struct SecretPage {
    layout: Layout,
    key: KeyView,
    code: CodeView,
    secret: String,
    header_line: String,
    example_url: String,
    qr_svg: String,
    download_url: String,
    /// Support staff download with a POST that repeats their reason.
    staff_reason: Option<String>,
    access_codes_url: String,
}

/// What asked for a secret: a plain visit (support staff are then asked why), or staff's reason form.
enum Asked {
    Visit,
    WithReason(ReasonForm),
}

/// Reveals (or, for support staff without a valid reason yet, asks why) — shared by the view and
/// download. Revealing is a change (an audit event), so it goes through the one write path.
async fn reveal_or_ask(
    req: &HttpRequest,
    state: &AppState,
    who: &SignedIn,
    path: (AccountId, ApiKeyId, AccessCodeId),
    how: Disclosure,
    asked: Asked,
) -> Result<Result<(AccountAccess, Revealed, String), HttpResponse>, AppError> {
    let (account_id, key_id, code_id) = path;
    let (reason, reason_given) = match asked {
        Asked::Visit => (String::new(), false),
        Asked::WithReason(form) => {
            who.check_csrf(&form.csrf_token)?;
            (form.reason, true)
        }
    };
    let keys = state.keys.clone();
    let (given, key, code) = (reason.clone(), key_id.clone(), code_id.clone());
    let result = who
        .change_in(state, &account_id, move |conn, access, actor| {
            let request = RevealRequest {
                key_id: &key,
                code_id: &code,
                how,
                reason: Some(given.as_str()),
            };
            Ok(access_codes::reveal(conn, access, actor, &keys, request)?
                .map(|revealed| (access.clone(), revealed)))
        })
        .await;
    let errors = match result {
        Ok((access, revealed)) => return Ok(Ok((access, revealed, reason))),
        Err(AppError::Invalid(errors)) => errors,
        Err(other) => return Err(other),
    };
    let access = who
        .read_in(state, &account_id, |_, access| Ok(access))
        .await?;
    let urls = AccountUrls::new(&access.account.id);
    let download = how == Disclosure::Downloaded;
    let page = ReasonPage {
        layout: Layout::account(
            state,
            who,
            &access,
            "Reason required",
            Nav::ApiKeys,
            Flash::take(req),
        ),
        action_url: if download {
            urls.access_code_download(&key_id, &code_id)
        } else {
            urls.access_code_secret(&key_id, &code_id)
        },
        cancel_url: urls.access_codes(&key_id),
        code_id: code_id.to_string(),
        // A first visit asks without complaining; a submitted form gets the message.
        errors: if reason_given {
            errors
        } else {
            FieldErrors::new()
        },
        reason,
        download,
    };
    let mut res = html(&page)?;
    if reason_given {
        *res.status_mut() = StatusCode::UNPROCESSABLE_ENTITY;
    }
    Ok(Err(res))
}

/// The example request URL of the guide's query-string method, for the copy button and the `.txt`.
fn example_url(state: &AppState, account_id: &str, secret: &str) -> String {
    format!(
        "{}/api/v1/accounts/{account_id}/ping?apiKey={secret}",
        state.settings.public_url
    )
}

/// `GET …/access-codes/{code}/secret` — the secret, masked until revealed, with copy buttons, QR code
/// and download link. Support staff get the reason form instead.
pub async fn show_secret(
    req: HttpRequest,
    state: State,
    who: SignedIn,
    path: web::Path<(AccountId, ApiKeyId, AccessCodeId)>,
) -> Result<HttpResponse, AppError> {
    secret_page(&req, &state, &who, path.into_inner(), Asked::Visit).await
}

/// `POST …/access-codes/{code}/secret` (`reason`) — support staff's reason form.
pub async fn reveal_secret(
    req: HttpRequest,
    state: State,
    who: SignedIn,
    path: web::Path<(AccountId, ApiKeyId, AccessCodeId)>,
    HtmlForm(form): HtmlForm<ReasonForm>,
) -> Result<HttpResponse, AppError> {
    secret_page(
        &req,
        &state,
        &who,
        path.into_inner(),
        Asked::WithReason(form),
    )
    .await
}

async fn secret_page(
    req: &HttpRequest,
    state: &AppState,
    who: &SignedIn,
    path: (AccountId, ApiKeyId, AccessCodeId),
    asked: Asked,
) -> Result<HttpResponse, AppError> {
    let (access, revealed, reason) =
        match reveal_or_ask(req, state, who, path, Disclosure::Viewed, asked).await? {
            Ok(done) => done,
            Err(ask) => return Ok(ask),
        };
    let urls = AccountUrls::new(&access.account.id);
    let details = api_keys::KeyDetails::default();
    let key = KeyView::new(&revealed.key, &details, &urls);
    let code = CodeView::new(&revealed.code, &urls);
    let download_url = urls.access_code_download(&key.id, &code.id);
    let qr_svg = qr_code_svg(&revealed.secret)?;
    html(&SecretPage {
        layout: Layout::account(
            state,
            who,
            &access,
            "Access code secret",
            Nav::ApiKeys,
            Flash::take(req),
        ),
        header_line: format!("x-api-key: {}", revealed.secret),
        example_url: example_url(state, &access.account.id, &revealed.secret),
        secret: revealed.secret,
        qr_svg,
        download_url,
        staff_reason: access.via_staff.then_some(reason),
        access_codes_url: urls.access_codes(&key.id),
        key,
        code,
    })
}

/// The secret as a QR code, an SVG drawn by `qrcode` (our own markup, from base62 text only).
fn qr_code_svg(secret: &str) -> Result<String, AppError> {
    let code = qrcode::QrCode::new(secret.as_bytes()).map_err(AppError::internal)?;
    Ok(code
        .render::<qrcode::render::svg::Color<'_>>()
        .min_dimensions(220, 220)
        .quiet_zone(true)
        .build())
}

/// A file name made of the key name and code id, in characters every system accepts.
fn download_file_name(key_name: &str, code_id: &str) -> String {
    let mut name: String = key_name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.' {
                c
            } else {
                '-'
            }
        })
        .collect();
    name.truncate(60);
    let name = name.trim_matches(['-', '.']);
    let name = if name.is_empty() { "api-key" } else { name };
    format!("{name}-{code_id}.txt")
}

/// `GET …/access-codes/{code}/download` — the credentials as a `.txt` attachment (support staff get
/// the reason form instead).
pub async fn download_secret(
    req: HttpRequest,
    state: State,
    who: SignedIn,
    path: web::Path<(AccountId, ApiKeyId, AccessCodeId)>,
) -> Result<HttpResponse, AppError> {
    secret_file(&req, &state, &who, path.into_inner(), Asked::Visit).await
}

/// `POST …/access-codes/{code}/download` (`reason`) — support staff's reason form.
pub async fn download_secret_with_reason(
    req: HttpRequest,
    state: State,
    who: SignedIn,
    path: web::Path<(AccountId, ApiKeyId, AccessCodeId)>,
    HtmlForm(form): HtmlForm<ReasonForm>,
) -> Result<HttpResponse, AppError> {
    secret_file(
        &req,
        &state,
        &who,
        path.into_inner(),
        Asked::WithReason(form),
    )
    .await
}

async fn secret_file(
    req: &HttpRequest,
    state: &AppState,
    who: &SignedIn,
    path: (AccountId, ApiKeyId, AccessCodeId),
    asked: Asked,
) -> Result<HttpResponse, AppError> {
    let (access, revealed, _reason) =
        match reveal_or_ask(req, state, who, path, Disclosure::Downloaded, asked).await? {
            Ok(done) => done,
            Err(ask) => return Ok(ask),
        };
    let Revealed { key, code, secret } = revealed;
    let body = SecretFile {
        key_name: &key.name,
        key_id: &key.id,
        account_name: &access.account.name,
        account_id: &access.account.id,
        code_id: &code.id,
        description: if code.description.is_empty() {
            "(none)"
        } else {
            &code.description
        },
        created: display::datetime(&code.created_at),
        expires: display::datetime(&code.expires_at),
        url: example_url(state, &access.account.id, &secret),
        secret: &secret,
    }
    .render()
    .map_err(AppError::internal)?;
    Ok(HttpResponse::Ok()
        .content_type("text/plain; charset=utf-8")
        .insert_header(ContentDisposition {
            disposition: DispositionType::Attachment,
            parameters: vec![DispositionParam::Filename(download_file_name(
                &key.name, &code.id,
            ))],
        })
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .body(body))
}
