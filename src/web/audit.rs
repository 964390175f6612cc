//! The account's audit log page.

use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use serde::Deserialize;

use crate::audit::AuditEvent;
use crate::error::AppError;
use crate::ids::AccountId;
use crate::web::display;
use crate::web::layout::{Layout, Nav};
use crate::web::render::html;
use crate::web::session::{Flash, SignedIn};
use crate::web::state::State;
use crate::web::urls::AccountUrls;

/// Events per page.
const PAGE_SIZE: i64 = 50;

pub struct EventView {
    pub at: display::Moment,
    pub actor: String,
    pub staff: bool,
    pub action: &'static str,
    pub target: String,
    pub ip: String,
    pub details: String,
}

#[derive(Template)]
#[template(path = "audit/list.html")]
struct AuditPage {
    layout: Layout,
    events: Vec<EventView>,
    page: i64,
    prev_url: Option<String>,
    next_url: Option<String>,
}

#[derive(Deserialize)]
pub struct AuditQuery {
    #[serde(default)]
    page: String,
}

/// `GET /accounts/{acc}/audit` (`page`)
pub async fn list_audit_events(
    req: HttpRequest,
    state: State,
    who: SignedIn,
    path: web::Path<AccountId>,
    query: web::Query<AuditQuery>,
) -> Result<HttpResponse, AppError> {
    // Pages past the 100,000th event are refused by clamping: nobody pages that far, and the offset stays cheap.
    let page = query
        .page
        .trim()
        .parse::<i64>()
        .unwrap_or(1)
        .clamp(1, 2_000);
    let (access, events, has_more) = who
        .read_in(&state, &path.into_inner(), move |conn, access| {
            let (events, has_more) = AuditEvent::list_for_account(
                conn,
                &access.account.id,
                (page - 1) * PAGE_SIZE,
                PAGE_SIZE,
            )?;
            Ok((access, events, has_more))
        })
        .await?;
    let urls = AccountUrls::new(&access.account.id);
    let url = |p: i64| urls.audit_page(p);
    let events = events
        .into_iter()
        .map(|e| EventView {
            at: display::Moment::datetime(&e.occurred_at),
            actor: e.actor_email,
            staff: e.actor_is_staff,
            action: e.action.as_str(),
            target: e.target,
            ip: e.client_ip,
            details: e.details,
        })
        .collect();
    html(&AuditPage {
        layout: Layout::account(
            &state,
            &who,
            &access,
            "Audit log",
            Nav::Audit,
            Flash::take(&req),
        ),
        events,
        page,
        prev_url: (page > 1).then(|| url(page - 1)),
        next_url: has_more.then(|| url(page + 1)),
    })
}
