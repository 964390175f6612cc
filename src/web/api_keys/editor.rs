//! The key editor: create an own key or link another account's key (`mode`), and the form it shares
//! with the Details tab.

use std::collections::BTreeSet;

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use askama::Template;
use serde::Deserialize;

use crate::access::AccountAccess;
use crate::api_keys::{self, KeyInput};
use crate::error::{AppError, FieldErrors};
use crate::ids::AccountId;
use crate::policies::Policy;
use crate::web::forms::HtmlForm;
use crate::web::layout::{Layout, Nav};
use crate::web::render::html_with_status;
use crate::web::session::{Flash, SignedIn, see_other_with_flash};
use crate::web::state::{AppState, State};
use crate::web::urls::AccountUrls;

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
    pub(super) csrf_token: String,
    pub(super) mode: EditorMode,
    pub(super) name: String,
    pub(super) tags: String,
    pub(super) policy: Vec<String>,
    pub(super) linked_key_id: String,
    pub(super) rate_per_minute: String,
    pub(super) rate_per_day: String,
}

impl KeyForm {
    pub(super) fn input(&self) -> KeyInput {
        KeyInput {
            name: self.name.clone(),
            tags: self.tags.clone(),
            policies: self.policy.clone(),
            linked_key_id: self.linked_key_id.clone(),
            rate_per_minute: self.rate_per_minute.clone(),
            rate_per_day: self.rate_per_day.clone(),
        }
    }

    pub(super) fn selected(&self) -> BTreeSet<String> {
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
            create_mode_url: urls.new_api_key(EditorMode::Create),
            link_mode_url: urls.new_api_key(EditorMode::Link),
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
                format!("API key \"{}\" created.", key.name)
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
