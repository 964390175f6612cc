//! One key's page: the Details tab (view and save name, tags, policies; usage chart) and deletion.

use std::collections::BTreeSet;

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;

use crate::access::AccountAccess;
use crate::api_keys::{self, ApiKey, KeyDetails};
use crate::error::{AppError, FieldErrors};
use crate::ids::{AccountId, ApiKeyId};
use crate::policies::Policy;
use crate::web::forms::{CsrfForm, HtmlForm};
use crate::web::layout::{Layout, Nav};
use crate::web::render::{html, html_with_status};
use crate::web::session::{Flash, SignedIn, see_other_with_flash};
use crate::web::state::{AppState, State};
use crate::web::urls::AccountUrls;
use crate::web::views::{KeyView, LinkView};

use crate::web::api_keys::editor::KeyForm;

#[derive(Template)]
#[template(path = "api_keys/show.html")]
struct ShowKeyPage {
    layout: Layout,
    key: KeyView,
    /// Other accounts' links to this key (own keys only).
    links: Vec<LinkView>,
    form: KeyForm,
    selected: BTreeSet<String>,
    errors: FieldErrors,
    policies: Vec<Policy>,
    update_url: String,
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
    links: Vec<api_keys::LinkingAccount>,
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
        let links = if key.is_linked() {
            Vec::new()
        } else {
            api_keys::links_to(conn, &key)?
        };
        Ok(KeyPageData {
            links,
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
        rate_per_minute: key
            .rate
            .per_minute
            .map(|v| v.to_string())
            .unwrap_or_default(),
        rate_per_day: key.rate.per_day.map(|v| v.to_string()).unwrap_or_default(),
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
            links: data
                .links
                .iter()
                .map(|link| LinkView::new(&key.id, link, &urls))
                .collect(),
            selected: form.selected(),
            form,
            errors,
            policies,
            update_url: urls.api_key(&key.id),
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
