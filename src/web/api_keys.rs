//! The API Keys pages: the list, the editor (create or link), the key's Details tab, and deletion.

use std::collections::BTreeSet;

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use serde::Deserialize;

use crate::access::AccountAccess;
use crate::api_keys::{self, ApiKey, KeyDetails, KeyInput, ListFilter};
use crate::error::{AppError, FieldErrors};
use crate::ids::{AccountId, ApiKeyId};
use crate::policies::Policy;
use crate::web::display;
use crate::web::forms::{CsrfForm, HtmlForm};
use crate::web::layout::{Layout, Nav};
use crate::web::render::{html, html_with_status};
use crate::web::session::{Flash, SignedIn, see_other_with_flash};
use crate::web::state::{AppState, State};
use crate::web::urls::AccountUrls;
use crate::web::views::KeyView;

#[derive(Deserialize)]
pub struct ListQuery {
    #[serde(default)]
    q: String,
    #[serde(default)]
    tag: String,
    #[serde(default)]
    page: String,
}

/// A line of the "access codes expire soon" banner.
pub struct ExpiringView {
    pub key_name: String,
    pub url: String,
    pub when: String,
}

#[derive(Template)]
#[template(path = "api_keys/list.html")]
struct ListPage {
    layout: Layout,
    expiring: Vec<ExpiringView>,
    keys: Vec<KeyView>,
    q: String,
    tag: String,
    tags: Vec<String>,
    total: i64,
    page: i64,
    pages: i64,
    /// The account has keys, even if none matches the search.
    has_any: bool,
    prev_url: Option<String>,
    next_url: Option<String>,
}

/// The list URL for a page of the current search.
fn list_url(urls: &AccountUrls, q: &str, tag: &str, page: i64) -> String {
    let mut params = Vec::new();
    if !q.is_empty() {
        params.push(format!(
            "q={}",
            percent_encoding::utf8_percent_encode(q, percent_encoding::NON_ALPHANUMERIC)
        ));
    }
    if !tag.is_empty() {
        params.push(format!(
            "tag={}",
            percent_encoding::utf8_percent_encode(tag, percent_encoding::NON_ALPHANUMERIC)
        ));
    }
    if page > 1 {
        params.push(format!("page={page}"));
    }
    if params.is_empty() {
        urls.api_keys()
    } else {
        format!("{}?{}", urls.api_keys(), params.join("&"))
    }
}

/// `GET /accounts/{acc}/permissions/api-keys` (`q`, `tag`, `page`)
pub async fn list_api_keys(
    req: HttpRequest,
    state: State,
    who: SignedIn,
    path: web::Path<AccountId>,
    query: web::Query<ListQuery>,
) -> Result<HttpResponse, AppError> {
    let query = query.into_inner();
    let filter = ListFilter {
        q: query.q.trim().chars().take(200).collect(),
        tag: query.tag.trim().chars().take(64).collect(),
        page: query.page.trim().parse().unwrap_or(1),
    };
    let list_filter = filter.clone();
    let (access, page, tags, has_any, expiring) = who
        .read_in(&state, &path.into_inner(), move |conn, access| {
            let page = api_keys::list_for_account(conn, &access.account.id, &list_filter)?;
            let tags = api_keys::tags_in_account(conn, &access.account.id)?;
            let has_any = page.total > 0 || api_keys::account_has_keys(conn, &access.account.id)?;
            let expiring = crate::access_codes::expiring_in_account(conn, &access.account.id)?;
            Ok((access, page, tags, has_any, expiring))
        })
        .await?;
    let urls = AccountUrls::new(&access.account.id);
    let keys = page
        .keys
        .iter()
        .map(|k| KeyView::new(k, &page.details, &urls))
        .collect();
    let now = crate::db::now();
    let expiring = expiring
        .iter()
        .map(|(key, code)| ExpiringView {
            key_name: key.name.clone(),
            url: urls.access_codes(&key.id),
            when: match (code.expires_at - now).whole_days() {
                d if d < 0 => format!("a code expired on {}", display::date(&code.expires_at)),
                0 => "a code expires today".to_owned(),
                1 => "a code expires tomorrow".to_owned(),
                d => format!(
                    "a code expires in {d} days ({})",
                    display::date(&code.expires_at)
                ),
            },
        })
        .collect();
    html(&ListPage {
        layout: Layout::account(
            &state,
            &who,
            &access,
            "API Keys",
            Nav::ApiKeys,
            Flash::take(&req),
        ),
        expiring,
        keys,
        prev_url: (page.page > 1).then(|| list_url(&urls, &filter.q, &filter.tag, page.page - 1)),
        next_url: (page.page < page.pages)
            .then(|| list_url(&urls, &filter.q, &filter.tag, page.page + 1)),
        q: filter.q,
        tag: filter.tag,
        tags,
        total: page.total,
        page: page.page,
        pages: page.pages,
        has_any,
    })
}

/// What the key editor does: create an own key, or link another account's key. Sent as `mode`; a
/// missing mode is `create`, an unknown one a 400.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EditorMode {
    #[default]
    Create,
    Link,
}

impl EditorMode {
    pub const fn as_str(self) -> &'static str {
        match self {
            EditorMode::Create => "create",
            EditorMode::Link => "link",
        }
    }
}

/// The editor's fields as the user typed them, to show again.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct KeyForm {
    csrf_token: String,
    mode: EditorMode,
    name: String,
    tags: String,
    policy: Vec<String>,
    linked_key_id: String,
}

impl KeyForm {
    fn input(&self) -> KeyInput {
        KeyInput {
            name: self.name.clone(),
            tags: self.tags.clone(),
            policies: self.policy.clone(),
            linked_key_id: self.linked_key_id.clone(),
        }
    }

    fn selected(&self) -> BTreeSet<String> {
        self.policy.iter().cloned().collect()
    }
}

#[derive(Template)]
#[template(path = "api_keys/new.html")]
struct NewKeyPage {
    layout: Layout,
    link_mode: bool,
    form: KeyForm,
    selected: BTreeSet<String>,
    errors: FieldErrors,
    policies: Vec<Policy>,
    create_url: String,
    create_mode_url: String,
    link_mode_url: String,
}

#[derive(Deserialize)]
pub struct NewQuery {
    #[serde(default)]
    mode: EditorMode,
}

fn render_new(
    state: &AppState,
    who: &SignedIn,
    access: &AccountAccess,
    policies: Vec<Policy>,
    form: KeyForm,
    errors: FieldErrors,
    status: StatusCode,
) -> Result<HttpResponse, AppError> {
    let urls = AccountUrls::new(&access.account.id);
    let link_mode = form.mode == EditorMode::Link;
    let title = if link_mode {
        "Link an existing API key"
    } else {
        "Create an API key"
    };
    html_with_status(
        status,
        &NewKeyPage {
            layout: Layout::account(state, who, access, title, Nav::ApiKeys, None),
            link_mode,
            selected: form.selected(),
            form,
            errors,
            policies,
            create_url: urls.api_keys(),
            create_mode_url: urls.new_api_key(EditorMode::Create.as_str()),
            link_mode_url: urls.new_api_key(EditorMode::Link.as_str()),
        },
    )
}

/// `GET …/api-keys/new?mode=create|link` — the editor.
pub async fn new_api_key(
    state: State,
    who: SignedIn,
    path: web::Path<AccountId>,
    query: web::Query<NewQuery>,
) -> Result<HttpResponse, AppError> {
    let (access, policies) = who
        .read_in(&state, &path.into_inner(), |conn, access| {
            access.require_owner()?;
            Ok((access, Policy::list_active(conn)?))
        })
        .await?;
    let form = KeyForm {
        mode: query.mode,
        ..KeyForm::default()
    };
    render_new(
        &state,
        &who,
        &access,
        policies,
        form,
        FieldErrors::new(),
        StatusCode::OK,
    )
}

/// `POST …/api-keys` (`mode`, `name`, `tags`, `policy`…, `linked_key_id`) → 303 to the key's page.
pub async fn create_api_key(
    state: State,
    who: SignedIn,
    path: web::Path<AccountId>,
    HtmlForm(form): HtmlForm<KeyForm>,
) -> Result<HttpResponse, AppError> {
    who.check_csrf(&form.csrf_token)?;
    let account_id = path.into_inner();
    let (input, link) = (form.input(), form.mode == EditorMode::Link);
    let result = who
        .change_in(&state, &account_id, move |conn, access, actor| {
            if link {
                api_keys::link(conn, access, actor, &input)
            } else {
                api_keys::create(conn, access, actor, &input)
            }
        })
        .await;
    match result {
        Ok(key) => {
            let message = if key.is_linked() {
                format!(
                    "API key \"{}\" linked. Its creator's access codes now work here, within the policies you chose.",
                    key.name
                )
            } else {
                format!(
                    "API key \"{}\" created. Create an access code to start using it.",
                    key.name
                )
            };
            Ok(see_other_with_flash(
                &AccountUrls::new(&key.account_id).api_key(&key.id),
                &Flash::success(message),
            ))
        }
        Err(AppError::Invalid(errors)) => {
            let (access, policies) = who
                .read_in(&state, &account_id, |conn, access| {
                    Ok((access, Policy::list_active(conn)?))
                })
                .await?;
            render_new(
                &state,
                &who,
                &access,
                policies,
                form,
                errors,
                StatusCode::UNPROCESSABLE_ENTITY,
            )
        }
        Err(other) => Err(other),
    }
}

#[derive(Template)]
#[template(path = "api_keys/show.html")]
struct ShowKeyPage {
    layout: Layout,
    key: KeyView,
    source_id: Option<String>,
    form: KeyForm,
    selected: BTreeSet<String>,
    errors: FieldErrors,
    policies: Vec<Policy>,
    update_url: String,
    delete_url: String,
    access_codes_url: String,
    usage_total: i64,
    usage_chart: String,
}

/// What the key page needs from the database.
struct KeyPageData {
    access: AccountAccess,
    key: ApiKey,
    details: KeyDetails,
    policies: Vec<Policy>,
    usage: Vec<(time::Date, i64)>,
}

async fn load_key_page(
    state: &AppState,
    who: &SignedIn,
    account_id: AccountId,
    key_id: ApiKeyId,
) -> Result<KeyPageData, AppError> {
    who.read_in(state, &account_id, move |conn, access| {
        let key = api_keys::find_in_account(conn, &access.account.id, &key_id)?;
        let details = api_keys::details_of(conn, std::slice::from_ref(&key))?;
        let policies = Policy::list_active(conn)?;
        let usage = crate::usage::daily_for_key(conn, &key.id, 30)?;
        Ok(KeyPageData {
            usage,
            access,
            key,
            details,
            policies,
        })
    })
    .await
}

fn render_show(
    state: &AppState,
    who: &SignedIn,
    data: KeyPageData,
    form: Option<KeyForm>,
    errors: FieldErrors,
    flash: Option<Flash>,
    status: StatusCode,
) -> Result<HttpResponse, AppError> {
    let urls = AccountUrls::new(&data.access.account.id);
    let key = KeyView::new(&data.key, &data.details, &urls);
    let form = form.unwrap_or_else(|| KeyForm {
        name: key.name.clone(),
        tags: key.tags.join(", "),
        policy: key.policies.iter().map(|p| p.name.clone()).collect(),
        ..KeyForm::default()
    });
    // Retired policies the key holds stay selectable on its own page (they grant nothing).
    let mut policies = data.policies;
    for held in key.policies.iter().filter(|p| p.retired) {
        policies.push(Policy {
            name: held.name.clone(),
            description:
                "Retired: this policy no longer grants anything. Unselect it to remove it."
                    .to_owned(),
            rules: String::new(),
            position: i32::MAX,
            retired: true,
            updated_at: data.key.updated_at,
        });
    }
    let title = format!("API key {}", key.name);
    html_with_status(
        status,
        &ShowKeyPage {
            layout: Layout::account(state, who, &data.access, &title, Nav::ApiKeys, flash),
            source_id: KeyView::source_id(&data.key, &data.details),
            selected: form.selected(),
            form,
            errors,
            policies,
            update_url: urls.api_key(&key.id),
            delete_url: urls.delete_api_key(&key.id),
            access_codes_url: urls.access_codes(&key.id),
            usage_total: data.usage.iter().map(|(_, n)| n).sum(),
            usage_chart: crate::web::chart::requests_per_day(&data.usage),
            key,
        },
    )
}

/// `GET …/api-keys/{key}` — the Details tab.
pub async fn show_api_key(
    req: HttpRequest,
    state: State,
    who: SignedIn,
    path: web::Path<(AccountId, ApiKeyId)>,
) -> Result<HttpResponse, AppError> {
    let (account_id, key_id) = path.into_inner();
    let data = load_key_page(&state, &who, account_id, key_id).await?;
    render_show(
        &state,
        &who,
        data,
        None,
        FieldErrors::new(),
        Flash::take(&req),
        StatusCode::OK,
    )
}

/// `POST …/api-keys/{key}` (`name`, `tags`, `policy`…) — saves the Details tab.
pub async fn update_api_key(
    state: State,
    who: SignedIn,
    path: web::Path<(AccountId, ApiKeyId)>,
    HtmlForm(form): HtmlForm<KeyForm>,
) -> Result<HttpResponse, AppError> {
    who.check_csrf(&form.csrf_token)?;
    let (account_id, key_id) = path.into_inner();
    let (input, id) = (form.input(), key_id.clone());
    let result = who
        .change_in(&state, &account_id, move |conn, access, actor| {
            api_keys::update(conn, access, actor, &id, &input)
        })
        .await;
    match result {
        Ok(key) => Ok(see_other_with_flash(
            &AccountUrls::new(&key.account_id).api_key(&key.id),
            &Flash::success(format!("Changes to \"{}\" saved.", key.name)),
        )),
        Err(AppError::Invalid(errors)) => {
            let data = load_key_page(&state, &who, account_id, key_id).await?;
            render_show(
                &state,
                &who,
                data,
                Some(form),
                errors,
                None,
                StatusCode::UNPROCESSABLE_ENTITY,
            )
        }
        Err(other) => Err(other),
    }
}

#[derive(Template)]
#[template(path = "api_keys/delete.html")]
struct DeleteKeyPage {
    layout: Layout,
    key: KeyView,
    delete_url: String,
}

/// `GET …/api-keys/{key}/delete` — the confirmation step.
pub async fn confirm_delete_api_key(
    state: State,
    who: SignedIn,
    path: web::Path<(AccountId, ApiKeyId)>,
) -> Result<HttpResponse, AppError> {
    let (account_id, key_id) = path.into_inner();
    let data = load_key_page(&state, &who, account_id, key_id).await?;
    data.access.require_owner()?;
    let urls = AccountUrls::new(&data.access.account.id);
    let key = KeyView::new(&data.key, &data.details, &urls);
    html(&DeleteKeyPage {
        layout: Layout::account(
            &state,
            &who,
            &data.access,
            "Delete API key",
            Nav::ApiKeys,
            None,
        ),
        delete_url: urls.delete_api_key(&key.id),
        key,
    })
}

/// `POST …/api-keys/{key}/delete`
pub async fn delete_api_key(
    state: State,
    who: SignedIn,
    path: web::Path<(AccountId, ApiKeyId)>,
    HtmlForm(form): HtmlForm<CsrfForm>,
) -> Result<HttpResponse, AppError> {
    who.check_csrf(&form.csrf_token)?;
    let (account_id, key_id) = path.into_inner();
    let key = who
        .change_in(&state, &account_id, move |conn, access, actor| {
            api_keys::delete(conn, access, actor, &key_id)
        })
        .await?;
    Ok(see_other_with_flash(
        &AccountUrls::new(&key.account_id).api_keys(),
        &Flash::success(format!(
            "API key \"{}\" deleted. Integrations using it no longer have access.",
            key.name
        )),
    ))
}
