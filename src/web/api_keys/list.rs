//! The API Keys list: search, tag filter, pagination, and the "codes expire soon" banner.

use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use serde::Deserialize;

use crate::api_keys::{self, ListFilter};
use crate::error::AppError;
use crate::ids::AccountId;
use crate::web::display;
use crate::web::layout::{Layout, Nav};
use crate::web::render::html;
use crate::web::session::{Flash, SignedIn};
use crate::web::state::State;
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
    /// `30`: only keys with a code that expires within 30 days (or has expired while enabled).
    #[serde(default)]
    expiring: String,
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
    /// Only keys with codes expiring within 30 days.
    expiring_only: bool,
}

/// The list URL for a page of the current search.
fn list_url(urls: &AccountUrls, filter: &ListFilter, page: i64) -> String {
    let (q, tag) = (filter.q.as_str(), filter.tag.as_str());
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
    if filter.expiring_only {
        params.push("expiring=30".to_owned());
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
        expiring_only: query.expiring.trim() == "30",
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
        prev_url: (page.page > 1).then(|| list_url(&urls, &filter, page.page - 1)),
        next_url: (page.page < page.pages).then(|| list_url(&urls, &filter, page.page + 1)),
        expiring_only: filter.expiring_only,
        q: filter.q,
        tag: filter.tag,
        tags,
        total: page.total,
        page: page.page,
        pages: page.pages,
        has_any,
    })
}
