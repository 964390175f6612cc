//! The *Webhooks* tab of Permissions → API Keys: the account's endpoints and the form that registers
//! one; an endpoint's page with its settings, signing secret rotation, test event and delivery log.
//! The rules live in `crate::webhooks`; these handlers read forms and render.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use askama::Template;
use serde::Deserialize;

use crate::error::{AppError, FieldErrors};
use crate::ids::{AccountId, WebhookEndpointId, WebhookMessageId};
use crate::web::display::Moment;
use crate::web::forms::{CsrfForm, EnabledForm, HtmlForm};
use crate::web::layout::{Layout, Nav};
use crate::web::render::{html, html_with_status};
use crate::web::session::{Flash, SignedIn, see_other_with_flash};
use crate::web::state::{AppState, State};
use crate::web::urls::AccountUrls;
use crate::webhooks::{self, Delivery, Endpoint, EndpointInput, EventType};

/// One subscribable event as a checkbox.
struct EventChoice {
    name: &'static str,
    description: &'static str,
    checked: bool,
}

fn event_choices(selected: &[String]) -> Vec<EventChoice> {
    EventType::subscribable()
        .map(|t| EventChoice {
            name: t.as_str(),
            description: t.describe(),
            checked: selected.iter().any(|s| s == t.as_str()),
        })
        .collect()
}

/// The endpoint form's fields as typed, shown again with messages.
#[derive(Deserialize, Default)]
#[serde(default)]
pub struct EndpointForm {
    csrf_token: String,
    url: String,
    description: String,
    events: Vec<String>,
}

impl EndpointForm {
    fn input(&self) -> EndpointInput {
        EndpointInput {
            url: self.url.clone(),
            description: self.description.clone(),
            events: self.events.clone(),
        }
    }
}

/// An endpoint as the list shows it.
struct EndpointRow {
    url: String,
    description: String,
    page_url: String,
    events: usize,
    enabled: bool,
    auto_disabled: bool,
    created: Moment,
}

#[derive(Template)]
#[template(path = "webhooks/list.html")]
struct WebhooksPage {
    layout: Layout,
    endpoints: Vec<EndpointRow>,
    choices: Vec<EventChoice>,
    url: String,
    description: String,
    errors: FieldErrors,
    at_limit: bool,
    auto_disabled: usize,
    url_hint: &'static str,
}

fn webhooks_url(account_id: &str) -> String {
    format!("{}/webhooks", AccountUrls::new(account_id).api_keys())
}

fn endpoint_url(account_id: &str, endpoint_id: &str) -> String {
    format!("{}/{endpoint_id}", webhooks_url(account_id))
}

async fn render_list(
    state: &AppState,
    who: &SignedIn,
    account_id: AccountId,
    form: Option<&EndpointForm>,
    errors: FieldErrors,
    flash: Option<Flash>,
    status: StatusCode,
) -> Result<HttpResponse, AppError> {
    let (access, endpoints) = who
        .read_in(state, &account_id, |conn, access| {
            let endpoints = webhooks::list(conn, &access.account.id)?;
            Ok((access, endpoints))
        })
        .await?;
    let rows: Vec<EndpointRow> = endpoints
        .iter()
        .map(|e| EndpointRow {
            url: e.url.clone(),
            description: e.description.clone(),
            page_url: endpoint_url(&e.account_id, &e.id),
            events: e.event_types().len(),
            enabled: e.enabled,
            auto_disabled: e.disabled_reason.is_some(),
            created: Moment::date(&e.created_at),
        })
        .collect();
    let default_events: Vec<String> = EventType::subscribable()
        .map(|t| t.as_str().to_owned())
        .collect();
    let layout = Layout::account(state, who, &access, "Webhooks", Nav::ApiKeys, flash);
    html_with_status(
        status,
        &WebhooksPage {
            layout,
            auto_disabled: rows.iter().filter(|r| r.auto_disabled).count(),
            at_limit: rows.len() as i64 >= webhooks::MAX_ENDPOINTS,
            endpoints: rows,
            choices: event_choices(form.map_or(&default_events, |f| &f.events)),
            url: form.map(|f| f.url.clone()).unwrap_or_default(),
            description: form.map(|f| f.description.clone()).unwrap_or_default(),
            errors,
            url_hint: if state.settings.webhooks.policy.allow_http {
                "The receiver's URL. This server also allows http:// endpoints."
            } else {
                "The receiver's https:// URL, on the public internet. Redirects are not followed."
            },
        },
    )
}

/// `GET /accounts/{acc}/permissions/api-keys/webhooks`
pub async fn list_webhooks(
    state: State,
    who: SignedIn,
    path: web::Path<AccountId>,
    req: actix_web::HttpRequest,
) -> Result<HttpResponse, AppError> {
    let flash = Flash::take(&req);
    render_list(
        &state,
        &who,
        path.into_inner(),
        None,
        FieldErrors::new(),
        flash,
        StatusCode::OK,
    )
    .await
}

/// `POST /accounts/{acc}/permissions/api-keys/webhooks` (`url`, `description`, `events`…) → the new
/// endpoint's page with its signing secret, shown this once.
pub async fn create_webhook(
    state: State,
    who: SignedIn,
    path: web::Path<AccountId>,
    HtmlForm(form): HtmlForm<EndpointForm>,
) -> Result<HttpResponse, AppError> {
    who.check_csrf(&form.csrf_token)?;
    let account_id = path.into_inner();
    let keys = state.keys.clone();
    let result = match checked_input(&state, &who, &account_id, None, &form).await? {
        Ok(valid) => {
            who.change_in(&state, &account_id, move |conn, access, actor| {
                webhooks::create(conn, access, actor, &keys, valid)
            })
            .await
        }
        Err(refused) => Err(refused),
    };
    match result {
        Ok(created) => {
            let flash = Flash::success(
                "Webhook endpoint added. Copy its signing secret now: it is not shown again.",
            );
            render_endpoint(
                &state,
                &who,
                account_id,
                &created.endpoint.id,
                Shown {
                    secret: Some(created.secret),
                    flash: Some(flash),
                    ..Shown::default()
                },
            )
            .await
        }
        Err(AppError::Invalid(errors)) => {
            render_list(
                &state,
                &who,
                account_id,
                Some(&form),
                errors,
                None,
                StatusCode::UNPROCESSABLE_ENTITY,
            )
            .await
        }
        Err(AppError::Conflict(message)) => {
            let flash = Some(Flash::error(message));
            render_list(
                &state,
                &who,
                account_id,
                Some(&form),
                FieldErrors::new(),
                flash,
                StatusCode::CONFLICT,
            )
            .await
        }
        Err(other) => Err(other),
    }
}

/// The form's input checked — after the user's right to change the account (and the endpoint's being
/// in it) is, so another tenant's ids get a 404 whatever was sent — on the blocking pool, outside any
/// transaction since checking the URL resolves its host. The outer error ends the request; the inner
/// one is the form's messages.
async fn checked_input(
    state: &AppState,
    who: &SignedIn,
    account_id: &AccountId,
    endpoint: Option<WebhookEndpointId>,
    form: &EndpointForm,
) -> Result<Result<webhooks::ValidInput, AppError>, AppError> {
    who.read_in(state, account_id, move |conn, access| {
        access.require_owner()?;
        if let Some(id) = &endpoint {
            webhooks::find(conn, &access.account.id, id)?;
        }
        Ok(())
    })
    .await?;
    let (input, policy) = (form.input(), state.settings.webhooks.policy);
    web::block(move || input.validate(policy))
        .await
        .map_err(AppError::internal)
}

/// A delivery as the log shows it.
struct DeliveryRow {
    id: String,
    event_type: String,
    created: Moment,
    state: &'static str,
    state_class: &'static str,
    attempts: i32,
    result: String,
    last_attempt: Moment,
    next_retry: Option<Moment>,
    redeliver_url: String,
}

impl DeliveryRow {
    fn new(d: &Delivery, endpoint_page: &str) -> Self {
        let (state, state_class) = match d.state.as_str() {
            webhooks::delivery::DELIVERED => ("Delivered", "success"),
            webhooks::delivery::FAILED => ("Failed", "danger"),
            _ if d.attempts == 0 => ("Pending", "info"),
            _ => ("Retrying", "warning"),
        };
        let result = match (d.last_status, &d.last_error) {
            (Some(status), Some(error)) if !error.is_empty() => format!("HTTP {status}: {error}"),
            (Some(status), _) => format!("HTTP {status}"),
            (None, Some(error)) => error.clone(),
            (None, None) => "—".to_owned(),
        };
        Self {
            id: d.id.clone(),
            event_type: d.event_type.clone(),
            created: Moment::datetime(&d.created_at),
            state,
            state_class,
            attempts: d.attempts,
            result,
            last_attempt: Moment::or_never(&d.last_attempt_at),
            next_retry: (d.state == webhooks::delivery::PENDING && d.attempts > 0)
                .then(|| Moment::datetime(&d.next_attempt_at)),
            redeliver_url: format!("{endpoint_page}/deliveries/{}/redeliver", d.id),
        }
    }
}

#[derive(Template)]
#[template(path = "webhooks/show.html")]
struct EndpointPage {
    layout: Layout,
    endpoint: Endpoint,
    page_url: String,
    list_url: String,
    created: Moment,
    previous_secret_until: Option<Moment>,
    choices: Vec<EventChoice>,
    url: String,
    description: String,
    errors: FieldErrors,
    secret: Option<String>,
    deliveries: Vec<DeliveryRow>,
}

/// What an endpoint's page shows beyond the stored endpoint: a secret just made, the edit form's
/// input and messages, a flash.
#[derive(Default)]
struct Shown {
    secret: Option<String>,
    form: Option<EndpointForm>,
    errors: FieldErrors,
    flash: Option<Flash>,
    status: Option<StatusCode>,
}

async fn render_endpoint(
    state: &AppState,
    who: &SignedIn,
    account_id: AccountId,
    endpoint_id: &str,
    shown: Shown,
) -> Result<HttpResponse, AppError> {
    let id = WebhookEndpointId::parse(endpoint_id).map_err(|_| AppError::NotFound)?;
    let (access, endpoint, deliveries) = who
        .read_in(state, &account_id, move |conn, access| {
            let endpoint = webhooks::find(conn, &access.account.id, &id)?;
            let deliveries = webhooks::deliveries(conn, &endpoint.id)?;
            Ok((access, endpoint, deliveries))
        })
        .await?;
    let page_url = endpoint_url(&endpoint.account_id, &endpoint.id);
    let now = crate::db::now();
    let selected: Vec<String> = match &shown.form {
        Some(form) => form.events.clone(),
        None => endpoint
            .event_types()
            .iter()
            .map(|t| t.as_str().to_owned())
            .collect(),
    };
    let layout = Layout::account(
        state,
        who,
        &access,
        "Webhook endpoint",
        Nav::ApiKeys,
        shown.flash,
    );
    html_with_status(
        shown.status.unwrap_or(StatusCode::OK),
        &EndpointPage {
            layout,
            list_url: webhooks_url(&endpoint.account_id),
            created: Moment::datetime(&endpoint.created_at),
            previous_secret_until: endpoint
                .previous_secret_until
                .filter(|until| *until > now)
                .map(|until| Moment::datetime(&until)),
            choices: event_choices(&selected),
            url: shown
                .form
                .as_ref()
                .map_or_else(|| endpoint.url.clone(), |f| f.url.clone()),
            description: shown
                .form
                .as_ref()
                .map_or_else(|| endpoint.description.clone(), |f| f.description.clone()),
            errors: shown.errors,
            secret: shown.secret,
            deliveries: deliveries
                .iter()
                .map(|d| DeliveryRow::new(d, &page_url))
                .collect(),
            page_url,
            endpoint,
        },
    )
}

/// `GET …/api-keys/webhooks/{hook}`
pub async fn show_webhook(
    state: State,
    who: SignedIn,
    path: web::Path<(AccountId, WebhookEndpointId)>,
    req: actix_web::HttpRequest,
) -> Result<HttpResponse, AppError> {
    let (account_id, id) = path.into_inner();
    let shown = Shown {
        flash: Flash::take(&req),
        ..Shown::default()
    };
    render_endpoint(&state, &who, account_id, &id, shown).await
}

/// Where a change to an endpoint lands: its page with a message, or the page again with the refusal.
async fn after_change<T>(
    state: &AppState,
    who: &SignedIn,
    account_id: AccountId,
    id: &WebhookEndpointId,
    result: Result<T, AppError>,
    done: impl FnOnce(T) -> Flash,
    form: Option<EndpointForm>,
) -> Result<HttpResponse, AppError> {
    match result {
        Ok(value) => Ok(see_other_with_flash(
            &endpoint_url(&account_id, id),
            &done(value),
        )),
        Err(AppError::Invalid(errors)) => {
            let shown = Shown {
                form,
                errors,
                status: Some(StatusCode::UNPROCESSABLE_ENTITY),
                ..Shown::default()
            };
            render_endpoint(state, who, account_id, id, shown).await
        }
        Err(AppError::Conflict(message)) => {
            let shown = Shown {
                form,
                flash: Some(Flash::error(message)),
                status: Some(StatusCode::CONFLICT),
                ..Shown::default()
            };
            render_endpoint(state, who, account_id, id, shown).await
        }
        Err(other) => Err(other),
    }
}

/// `POST …/api-keys/webhooks/{hook}` (`url`, `description`, `events`…)
pub async fn update_webhook(
    state: State,
    who: SignedIn,
    path: web::Path<(AccountId, WebhookEndpointId)>,
    HtmlForm(form): HtmlForm<EndpointForm>,
) -> Result<HttpResponse, AppError> {
    who.check_csrf(&form.csrf_token)?;
    let (account_id, id) = path.into_inner();
    let target = id.clone();
    let result = match checked_input(&state, &who, &account_id, Some(id.clone()), &form).await? {
        Ok(valid) => {
            who.change_in(&state, &account_id, move |conn, access, actor| {
                webhooks::update(conn, access, actor, &target, valid)
            })
            .await
        }
        Err(refused) => Err(refused),
    };
    let done = |_| Flash::success("Webhook endpoint saved.");
    after_change(&state, &who, account_id, &id, result, done, Some(form)).await
}

/// `POST …/api-keys/webhooks/{hook}/enabled` (`enabled` = `true` | `false`)
pub async fn set_webhook_enabled(
    state: State,
    who: SignedIn,
    path: web::Path<(AccountId, WebhookEndpointId)>,
    HtmlForm(form): HtmlForm<EnabledForm>,
) -> Result<HttpResponse, AppError> {
    who.check_csrf(&form.csrf_token)?;
    let enabled = form.enabled()?;
    let (account_id, id) = path.into_inner();
    let target = id.clone();
    let result = who
        .change_in(&state, &account_id, move |conn, access, actor| {
            webhooks::set_enabled(conn, access, actor, &target, enabled)
        })
        .await;
    let done = |endpoint: Endpoint| {
        Flash::success(if endpoint.enabled {
            "Webhook endpoint enabled: pending events are being sent."
        } else {
            "Webhook endpoint disabled: events are no longer sent to it."
        })
    };
    after_change(&state, &who, account_id, &id, result, done, None).await
}

/// `POST …/api-keys/webhooks/{hook}/secret` → the page with the new secret, shown this once.
pub async fn rotate_webhook_secret(
    state: State,
    who: SignedIn,
    path: web::Path<(AccountId, WebhookEndpointId)>,
    HtmlForm(form): HtmlForm<CsrfForm>,
) -> Result<HttpResponse, AppError> {
    who.check_csrf(&form.csrf_token)?;
    let (account_id, id) = path.into_inner();
    let (keys, target) = (state.keys.clone(), id.clone());
    let secret = who
        .change_in(&state, &account_id, move |conn, access, actor| {
            webhooks::rotate_secret(conn, access, actor, &keys, &target)
        })
        .await?;
    let flash = Flash::success(
        "New signing secret made. Copy it now: it is not shown again. Events are signed with the previous secret too for 24 hours, while you update your receiver.",
    );
    let shown = Shown {
        secret: Some(secret),
        flash: Some(flash),
        ..Shown::default()
    };
    render_endpoint(&state, &who, account_id, &id, shown).await
}

/// `POST …/api-keys/webhooks/{hook}/test` — queues a `webhook.test` event.
pub async fn send_test_webhook(
    state: State,
    who: SignedIn,
    path: web::Path<(AccountId, WebhookEndpointId)>,
    HtmlForm(form): HtmlForm<CsrfForm>,
) -> Result<HttpResponse, AppError> {
    who.check_csrf(&form.csrf_token)?;
    let (account_id, id) = path.into_inner();
    let target = id.clone();
    let result = who
        .change_in(&state, &account_id, move |conn, access, _actor| {
            webhooks::send_test(conn, access, &target)
        })
        .await;
    let done = |_| {
        Flash::success("Test event queued: it appears in the delivery log below within seconds.")
    };
    after_change(&state, &who, account_id, &id, result, done, None).await
}

/// `POST …/api-keys/webhooks/{hook}/deliveries/{msg}/redeliver`
pub async fn redeliver_webhook(
    state: State,
    who: SignedIn,
    path: web::Path<(AccountId, WebhookEndpointId, WebhookMessageId)>,
    HtmlForm(form): HtmlForm<CsrfForm>,
) -> Result<HttpResponse, AppError> {
    who.check_csrf(&form.csrf_token)?;
    let (account_id, id, message) = path.into_inner();
    let target = id.clone();
    let result = who
        .change_in(&state, &account_id, move |conn, access, _actor| {
            webhooks::redeliver(conn, access, &target, &message)
        })
        .await;
    let done = |_| Flash::success("The event is being sent again.");
    after_change(&state, &who, account_id, &id, result, done, None).await
}

#[derive(Template)]
#[template(path = "webhooks/delete.html")]
struct DeleteWebhookPage {
    layout: Layout,
    endpoint: Endpoint,
    page_url: String,
}

/// `GET …/api-keys/webhooks/{hook}/delete` — the confirmation step.
pub async fn confirm_delete_webhook(
    state: State,
    who: SignedIn,
    path: web::Path<(AccountId, WebhookEndpointId)>,
) -> Result<HttpResponse, AppError> {
    let (account_id, id) = path.into_inner();
    let (access, endpoint) = who
        .read_in(&state, &account_id, move |conn, access| {
            access.require_owner()?;
            let endpoint = webhooks::find(conn, &access.account.id, &id)?;
            Ok((access, endpoint))
        })
        .await?;
    let layout = Layout::account(
        &state,
        &who,
        &access,
        "Delete webhook endpoint",
        Nav::ApiKeys,
        None,
    );
    html(&DeleteWebhookPage {
        layout,
        page_url: endpoint_url(&endpoint.account_id, &endpoint.id),
        endpoint,
    })
}

/// `POST …/api-keys/webhooks/{hook}/delete` → 303 to the Webhooks tab.
pub async fn delete_webhook(
    state: State,
    who: SignedIn,
    path: web::Path<(AccountId, WebhookEndpointId)>,
    HtmlForm(form): HtmlForm<CsrfForm>,
) -> Result<HttpResponse, AppError> {
    who.check_csrf(&form.csrf_token)?;
    let (account_id, id) = path.into_inner();
    who.change_in(&state, &account_id, move |conn, access, actor| {
        webhooks::delete(conn, access, actor, &id)
    })
    .await?;
    Ok(see_other_with_flash(
        &webhooks_url(&account_id),
        &Flash::success("Webhook endpoint deleted: no more events are sent to it."),
    ))
}
