//! The source side of links on a key's page: the confirmation and the removal of another account's
//! link (the list of links is part of the Details tab, `details`).

use actix_web::{HttpResponse, web};
use askama::Template;

use crate::api_keys::{self, LinkingAccount};
use crate::error::AppError;
use crate::ids::{AccountId, ApiKeyId};
use crate::web::forms::{CsrfForm, HtmlForm};
use crate::web::layout::{Layout, Nav};
use crate::web::render::html;
use crate::web::session::{Flash, SignedIn, see_other_with_flash};
use crate::web::state::State;
use crate::web::urls::AccountUrls;
use crate::web::views::LinkView;

#[derive(Template)]
#[template(path = "api_keys/remove_link.html")]
struct RemoveLinkPage {
    layout: Layout,
    key_name: String,
    key_url: String,
    link: LinkView,
}

/// `GET …/api-keys/{key}/links/{link}/remove` — the confirmation step.
pub async fn confirm_remove_link(
    state: State,
    who: SignedIn,
    path: web::Path<(AccountId, ApiKeyId, ApiKeyId)>,
) -> Result<HttpResponse, AppError> {
    let (account_id, key_id, link_id) = path.into_inner();
    let (access, key, link): (_, _, LinkingAccount) = who
        .read_in(&state, &account_id, move |conn, access| {
            access.require_owner()?;
            let key = api_keys::find_in_account(conn, &access.account.id, &key_id)?;
            let link = api_keys::find_link(conn, &key, &link_id)?;
            Ok((access, key, link))
        })
        .await?;
    let urls = AccountUrls::new(&access.account.id);
    let layout = Layout::account(&state, &who, &access, "Remove link", Nav::ApiKeys, None);
    html(&RemoveLinkPage {
        layout,
        link: LinkView::new(&key.id, &link, &urls),
        key_url: urls.api_key(&key.id),
        key_name: key.name,
    })
}

/// `POST …/api-keys/{key}/links/{link}/remove` → 303 to the key's page.
pub async fn remove_link(
    state: State,
    who: SignedIn,
    path: web::Path<(AccountId, ApiKeyId, ApiKeyId)>,
    HtmlForm(form): HtmlForm<CsrfForm>,
) -> Result<HttpResponse, AppError> {
    who.check_csrf(&form.csrf_token)?;
    let (account_id, key_id, link_id) = path.into_inner();
    let removed = who
        .change_in(&state, &account_id, move |conn, access, actor| {
            api_keys::remove_link(conn, access, actor, &key_id, &link_id)
        })
        .await?;
    Ok(see_other_with_flash(
        &AccountUrls::new(&removed.source.account_id).api_key(&removed.source.id),
        &Flash::success(format!(
            "Link removed: the access codes of \"{}\" no longer reach {}.",
            removed.source.name, removed.link.account_name
        )),
    ))
}
