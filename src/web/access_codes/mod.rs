//! The Access Codes tab of an API key: the codes, creating one, editing the description, the enable
//! switch, and deleting. The secret itself (view, download, staff's reason) is in `secret`.

pub mod secret;

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use serde::Deserialize;

use crate::access::AccountAccess;
use crate::access_codes::{self, AccessCode, Status};
use crate::api_keys::{self, ApiKey};
use crate::db;
use crate::error::{AppError, FieldErrors};
use crate::ids::{AccessCodeId, AccountId, ApiKeyId};
use crate::web::display;
use crate::web::forms::{CsrfForm, EnabledForm, HtmlForm};
use crate::web::layout::{Layout, Nav};
use crate::web::render::{html, html_with_status};
use crate::web::session::{Flash, SignedIn, see_other_with_flash};
use crate::web::state::{AppState, State};
use crate::web::urls::AccountUrls;
use crate::web::views::KeyView;

/// One code as its row shows it.
pub struct CodeView {
    pub id: String,
    pub description: String,
    pub hint: String,
    pub status: &'static str,
    pub status_class: &'static str,
    pub status_detail: String,
    pub enabled: bool,
    pub expired: bool,
    pub created: display::Moment,
    pub expires: display::Moment,
    pub last_used: display::Moment,
    pub secret_url: String,
    pub update_url: String,
    pub enabled_url: String,
    pub delete_url: String,
    pub retire_url: String,
    pub cancel_retirement_url: String,
    /// "Retires when idle for 15 min." when scheduled.
    pub retirement: Option<String>,
    /// Enabled, with another code of the key in use to take over.
    pub can_retire: bool,
}

impl CodeView {
    pub fn new(code: &AccessCode, urls: &AccountUrls) -> Self {
        let now = db::now();
        let (status, status_class, status_detail) = match code.status_at(now) {
            Status::Active => ("Active", "success", String::new()),
            Status::ExpiringSoon(days) => (
                "Expiring soon",
                "warning",
                match days {
                    0 => "expires today".to_owned(),
                    1 => "expires in 1 day".to_owned(),
                    d => format!("expires in {d} days"),
                },
            ),
            Status::Disabled if code.exposed_at.is_some() => (
                "Exposed",
                "danger",
                "disabled after a leak report".to_owned(),
            ),
            Status::Disabled => ("Disabled", "", String::new()),
            Status::Expired => ("Expired", "danger", String::new()),
        };
        let (key_id, code_id) = (code.api_key_id.as_str(), code.id.as_str());
        Self {
            id: code.id.clone(),
            description: code.description.clone(),
            hint: format!("{}…", code.secret_hint),
            status,
            status_class,
            status_detail,
            enabled: code.enabled,
            expired: code.is_expired_at(now),
            created: display::Moment::date(&code.created_at),
            expires: display::Moment::date(&code.expires_at),
            last_used: display::Moment::or_never(&code.last_used_at),
            secret_url: urls.access_code_secret(key_id, code_id),
            update_url: urls.access_code(key_id, code_id),
            enabled_url: urls.access_code_enabled(key_id, code_id),
            delete_url: urls.delete_access_code(key_id, code_id),
            retire_url: urls.retire_access_code(key_id, code_id),
            cancel_retirement_url: urls.cancel_retirement(key_id, code_id),
            retirement: None,
            can_retire: false,
        }
    }

    /// Deleting is offered only for a disabled or expired code.
    pub fn deletable(&self) -> bool {
        !self.enabled || self.expired
    }
}

#[derive(Template)]
#[template(path = "access_codes/list.html")]
struct CodesPage {
    layout: Layout,
    key: KeyView,
    codes: Vec<CodeView>,
    description: String,
    errors: FieldErrors,
    /// The description being edited when its form came back with a problem: (code id, text).
    editing: Option<(String, String)>,
    update_url: String,
    access_codes_url: String,
    limit_reached: bool,
}

impl CodesPage {
    fn is_editing(&self, code_id: &str) -> bool {
        self.editing.as_ref().is_some_and(|(id, _)| id == code_id)
    }

    /// The description shown in a code's edit form: what was typed, if it came back with a problem.
    fn description_of<'a>(&'a self, code: &'a CodeView) -> &'a str {
        match &self.editing {
            Some((id, text)) if *id == code.id => text,
            _ => &code.description,
        }
    }
}

/// What the tab needs from the database.
struct TabData {
    access: AccountAccess,
    key: ApiKey,
    details: api_keys::KeyDetails,
    codes: Vec<AccessCode>,
    retirements: Vec<access_codes::rotation::Retirement>,
}

async fn load_tab(
    state: &AppState,
    who: &SignedIn,
    account_id: AccountId,
    key_id: ApiKeyId,
) -> Result<TabData, AppError> {
    who.read_in(state, &account_id, move |conn, access| {
        let key = api_keys::find_in_account(conn, &access.account.id, &key_id)?;
        let details = api_keys::details_of(conn, std::slice::from_ref(&key))?;
        let codes = access_codes::list_for_key(conn, &key.id)?;
        let retirements = access_codes::rotation::for_key(conn, &key.id)?;
        Ok(TabData {
            access,
            key,
            details,
            codes,
            retirements,
        })
    })
    .await
}

/// The tab's parts a re-render may fill in.
#[derive(Default)]
struct TabState {
    description: String,
    errors: FieldErrors,
    editing: Option<(String, String)>,
    flash: Option<Flash>,
}

fn render_tab(
    state: &AppState,
    who: &SignedIn,
    data: TabData,
    status: StatusCode,
    tab: TabState,
) -> Result<HttpResponse, AppError> {
    let urls = AccountUrls::new(&data.access.account.id);
    if data.key.is_linked() {
        // Linked keys have no codes: their page explains why, and the tab is disabled there.
        return Ok(see_other_with_flash(
            &urls.api_key(&data.key.id),
            &Flash::error(
                "Linked API keys have no access codes of their own: use the access code of the key they link.",
            ),
        ));
    }
    let key = KeyView::new(&data.key, &data.details, &urls);
    let now = crate::db::now();
    let codes: Vec<CodeView> = data
        .codes
        .iter()
        .map(|c| {
            let mut view = CodeView::new(c, &urls);
            view.retirement = data
                .retirements
                .iter()
                .find(|r| r.code_id == c.id)
                .map(|r| format!("Retires {}.", r.describe()));
            // A code may be scheduled to retire while another code of the key is in use.
            view.can_retire =
                c.in_use_at(now) && access_codes::rotation::has_successor(&c.id, &data.codes, now);
            view
        })
        .collect();
    html_with_status(
        status,
        &CodesPage {
            layout: Layout::account(
                state,
                who,
                &data.access,
                &format!("Access codes of {}", key.name),
                Nav::ApiKeys,
                tab.flash,
            ),
            limit_reached: codes.len() as i64 >= access_codes::MAX_PER_KEY,
            update_url: urls.api_key(&key.id),
            access_codes_url: urls.access_codes(&key.id),
            key,
            codes,
            description: tab.description,
            errors: tab.errors,
            editing: tab.editing,
        },
    )
}

/// `GET …/api-keys/{key}/access-codes`
pub async fn list_access_codes(
    req: HttpRequest,
    state: State,
    who: SignedIn,
    path: web::Path<(AccountId, ApiKeyId)>,
) -> Result<HttpResponse, AppError> {
    let (account_id, key_id) = path.into_inner();
    let data = load_tab(&state, &who, account_id, key_id).await?;
    let tab = TabState {
        flash: Flash::take(&req),
        ..TabState::default()
    };
    render_tab(&state, &who, data, StatusCode::OK, tab)
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct DescriptionForm {
    csrf_token: String,
    description: String,
}

/// Re-renders the tab after a refused change: the form's messages, or the conflict's message on top.
async fn render_refusal(
    state: &AppState,
    who: &SignedIn,
    account_id: AccountId,
    key_id: ApiKeyId,
    error: AppError,
    mut tab: TabState,
) -> Result<HttpResponse, AppError> {
    let status = match error {
        AppError::Invalid(errors) => {
            tab.errors = errors;
            StatusCode::UNPROCESSABLE_ENTITY
        }
        AppError::Conflict(message) => {
            tab.flash = Some(Flash::error(message));
            StatusCode::CONFLICT
        }
        other => return Err(other),
    };
    let data = load_tab(state, who, account_id, key_id).await?;
    render_tab(state, who, data, status, tab)
}

/// `POST …/api-keys/{key}/access-codes` (`description`) → 303 to the new code's secret view.
pub async fn create_access_code(
    state: State,
    who: SignedIn,
    path: web::Path<(AccountId, ApiKeyId)>,
    HtmlForm(form): HtmlForm<DescriptionForm>,
) -> Result<HttpResponse, AppError> {
    who.check_csrf(&form.csrf_token)?;
    let (account_id, key_id) = path.into_inner();
    let keys = state.keys.clone();
    let (key, description) = (key_id.clone(), form.description.clone());
    let result = who
        .change_in(&state, &account_id, move |conn, access, actor| {
            access_codes::create(conn, access, actor, &keys, &key, &description)
        })
        .await;
    match result {
        Ok((code, _secret)) => Ok(see_other_with_flash(
            &format!(
                "{}/secret",
                AccountUrls::new(&account_id).access_code(&key_id, &code.id)
            ),
            &Flash::success(
                "Access code created. Copy the secret into your integration or download it; you can open it again later from the code's row.",
            ),
        )),
        Err(error) => {
            let tab = TabState {
                description: form.description,
                ..TabState::default()
            };
            render_refusal(&state, &who, account_id, key_id, error, tab).await
        }
    }
}

/// `POST …/access-codes/{code}` (`description`)
pub async fn update_access_code(
    state: State,
    who: SignedIn,
    path: web::Path<(AccountId, ApiKeyId, AccessCodeId)>,
    HtmlForm(form): HtmlForm<DescriptionForm>,
) -> Result<HttpResponse, AppError> {
    who.check_csrf(&form.csrf_token)?;
    let (account_id, key_id, code_id) = path.into_inner();
    let (key, code, description) = (key_id.clone(), code_id.clone(), form.description.clone());
    let result = who
        .change_in(&state, &account_id, move |conn, access, actor| {
            access_codes::update_description(conn, access, actor, &key, &code, &description)
        })
        .await;
    match result {
        Ok(_) => Ok(see_other_with_flash(
            &AccountUrls::new(&account_id).access_codes(&key_id),
            &Flash::success("Description saved."),
        )),
        Err(error) => {
            let tab = TabState {
                editing: Some((code_id.to_string(), form.description)),
                ..TabState::default()
            };
            render_refusal(&state, &who, account_id, key_id, error, tab).await
        }
    }
}

/// `POST …/access-codes/{code}/enabled` (`enabled` = `true` | `false`)
pub async fn set_access_code_enabled(
    state: State,
    who: SignedIn,
    path: web::Path<(AccountId, ApiKeyId, AccessCodeId)>,
    HtmlForm(form): HtmlForm<EnabledForm>,
) -> Result<HttpResponse, AppError> {
    who.check_csrf(&form.csrf_token)?;
    let enabled = form.enabled()?;
    let (account_id, key_id, code_id) = path.into_inner();
    let (key, code) = (key_id.clone(), code_id.clone());
    let result = who
        .change_in(&state, &account_id, move |conn, access, actor| {
            access_codes::set_enabled(conn, access, actor, &key, &code, enabled)
        })
        .await;
    match result {
        Ok(code) => {
            let message = if code.enabled {
                "Access code enabled: requests using it are accepted again."
            } else {
                "Access code disabled: requests using it are refused from now on."
            };
            Ok(see_other_with_flash(
                &AccountUrls::new(&account_id).access_codes(&key_id),
                &Flash::success(message),
            ))
        }
        Err(error) => {
            render_refusal(&state, &who, account_id, key_id, error, TabState::default()).await
        }
    }
}

#[derive(Template)]
#[template(path = "access_codes/delete.html")]
struct DeleteCodePage {
    layout: Layout,
    key: KeyView,
    code: CodeView,
    access_codes_url: String,
}

/// `GET …/access-codes/{code}/delete` — the confirmation step (only for a disabled or expired code).
pub async fn confirm_delete_access_code(
    state: State,
    who: SignedIn,
    path: web::Path<(AccountId, ApiKeyId, AccessCodeId)>,
) -> Result<HttpResponse, AppError> {
    let (account_id, key_id, code_id) = path.into_inner();
    let data = load_tab(&state, &who, account_id.clone(), key_id.clone()).await?;
    data.access.require_owner()?;
    let urls = AccountUrls::new(&data.access.account.id);
    let code = data
        .codes
        .iter()
        .find(|c| c.id == *code_id)
        .ok_or(AppError::NotFound)?;
    let code = CodeView::new(code, &urls);
    if !code.deletable() {
        let tab = TabState::default();
        return render_refusal(
            &state,
            &who,
            account_id,
            key_id,
            AppError::conflict("Disable this access code before deleting it. Deleting cannot be undone, and every service using the code stops working."),
            tab,
        )
        .await;
    }
    html(&DeleteCodePage {
        layout: Layout::account(
            &state,
            &who,
            &data.access,
            "Delete access code",
            Nav::ApiKeys,
            None,
        ),
        key: KeyView::new(&data.key, &data.details, &urls),
        access_codes_url: urls.access_codes(&data.key.id),
        code,
    })
}

/// `POST …/access-codes/{code}/delete` — refused with 409 while the code is enabled.
pub async fn delete_access_code(
    state: State,
    who: SignedIn,
    path: web::Path<(AccountId, ApiKeyId, AccessCodeId)>,
    HtmlForm(form): HtmlForm<CsrfForm>,
) -> Result<HttpResponse, AppError> {
    who.check_csrf(&form.csrf_token)?;
    let (account_id, key_id, code_id) = path.into_inner();
    let key = key_id.clone();
    let result = who
        .change_in(&state, &account_id, move |conn, access, actor| {
            access_codes::delete(conn, access, actor, &key, &code_id)
        })
        .await;
    match result {
        Ok(_) => Ok(see_other_with_flash(
            &AccountUrls::new(&account_id).access_codes(&key_id),
            &Flash::success("Access code deleted. Services that used it can no longer connect."),
        )),
        Err(error) => {
            render_refusal(&state, &who, account_id, key_id, error, TabState::default()).await
        }
    }
}

/// `quiet_seconds`: how long the code must have been idle.
#[derive(Debug, Deserialize)]
pub struct RetireForm {
    #[serde(default)]
    csrf_token: String,
    #[serde(default)]
    quiet_seconds: String,
}

/// `POST …/access-codes/{code}/retire` (`quiet_seconds`) — retires the code once another code of the
/// key is in use and this one has been idle that long.
pub async fn retire_access_code(
    state: State,
    who: SignedIn,
    path: web::Path<(AccountId, ApiKeyId, AccessCodeId)>,
    HtmlForm(form): HtmlForm<RetireForm>,
) -> Result<HttpResponse, AppError> {
    who.check_csrf(&form.csrf_token)?;
    let (account_id, key_id, code_id) = path.into_inner();
    // An unreadable period is 0 s, which the rule refuses with its message (after the role check).
    let quiet = form.quiet_seconds.trim().parse::<i64>().unwrap_or(0);
    let when = access_codes::rotation::When::Idle(time::Duration::seconds(quiet));
    let result = who
        .change_in(&state, &account_id, move |conn, access, actor| {
            access_codes::rotation::schedule(conn, access, actor, &key_id, &code_id, when)
        })
        .await;
    let urls = AccountUrls::new(account_id.as_str());
    match result {
        Ok(r) => Ok(see_other_with_flash(
            &urls.access_codes(&r.api_key_id),
            &Flash::success(format!(
                "Access code {} retires {}, once the other code is in use.",
                r.code_id,
                r.describe()
            )),
        )),
        Err(AppError::Invalid(errors)) => Err(AppError::BadRequest(errors.summary())),
        Err(other) => Err(other),
    }
}

/// `POST …/access-codes/{code}/retire/cancel`
pub async fn cancel_access_code_retirement(
    state: State,
    who: SignedIn,
    path: web::Path<(AccountId, ApiKeyId, AccessCodeId)>,
    HtmlForm(form): HtmlForm<CsrfForm>,
) -> Result<HttpResponse, AppError> {
    who.check_csrf(&form.csrf_token)?;
    let (account_id, key_id, code_id) = path.into_inner();
    let key = key_id.clone();
    who.change_in(&state, &account_id, move |conn, access, actor| {
        access_codes::rotation::cancel(conn, access, actor, &key_id, &code_id)
    })
    .await?;
    Ok(see_other_with_flash(
        &AccountUrls::new(account_id.as_str()).access_codes(key.as_str()),
        &Flash::success("Retirement cancelled: the code stays enabled."),
    ))
}
