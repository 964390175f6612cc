//! Webhooks: an account's owners register endpoints that hear about changes to its keys and codes —
//! codes created, disabled, deleted, exposed, retired or about to expire; keys deleted; links made and
//! removed. Each change writes its event to the outbox (`webhook_deliveries`) in the change's own
//! transaction ([`emit`]); the delivery worker (`delivery`) signs it the Standard Webhooks way
//! (`signing`) and sends it, with retries, to endpoints the SSRF guard allows (`target`). Payloads
//! carry ids and times, never a secret.

use diesel::prelude::*;
use time::PrimitiveDateTime;

use crate::access::AccountAccess;
use crate::audit::{Actor, AuditAction, AuditEvent};
use crate::db::{self, DbConn};
use crate::error::{AppError, FieldErrors};
use crate::ids::{WebhookEndpointId, WebhookMessageId};
use crate::revocation::Changed;
use crate::schema::{webhook_deliveries, webhook_endpoints};
use crate::secrets::KeyMaterial;

pub mod delivery;
pub mod expiry;
pub mod signing;
pub mod target;

pub use delivery::DeliverySettings;
pub use target::TargetPolicy;

crate::text_enum! {
    /// What an event reports, as its `type` field and the endpoint's subscription name it.
    pub enum EventType("webhook event type") {
        AccessCodeExpiring = "access_code.expiring",
        AccessCodeExpired = "access_code.expired",
        AccessCodeCreated = "access_code.created",
        AccessCodeDisabled = "access_code.disabled",
        AccessCodeDeleted = "access_code.deleted",
        AccessCodeExposed = "access_code.exposed",
        AccessCodeRetired = "access_code.retired",
        ApiKeyDeleted = "api_key.deleted",
        LinkCreated = "link.created",
        LinkRemoved = "link.removed",
        /// Sent by *Send test event* to one endpoint, whatever it subscribes to.
        Test = "webhook.test",
    }
}

impl EventType {
    /// The events an endpoint can subscribe to (all but the test event).
    pub fn subscribable() -> impl Iterator<Item = EventType> {
        EventType::ALL
            .iter()
            .copied()
            .filter(|t| *t != EventType::Test)
    }

    /// What the event means, for the subscription checkboxes.
    pub fn describe(self) -> &'static str {
        match self {
            EventType::AccessCodeExpiring => "An access code expires in 30, 7 or 1 days",
            EventType::AccessCodeExpired => "An access code has expired",
            EventType::AccessCodeCreated => "An access code was created",
            EventType::AccessCodeDisabled => "An access code was disabled by hand",
            EventType::AccessCodeDeleted => "An access code was deleted",
            EventType::AccessCodeExposed => "An access code was reported as leaked and disabled",
            EventType::AccessCodeRetired => "An access code was retired by its rotation schedule",
            EventType::ApiKeyDeleted => "An API key was deleted",
            EventType::LinkCreated => "A key was linked (into this account, or from it by another)",
            EventType::LinkRemoved => "A link was removed",
            EventType::Test => "A test event",
        }
    }
}

/// Endpoints one account may have.
pub const MAX_ENDPOINTS: i64 = 10;
pub const MAX_DESCRIPTION_LEN: usize = 200;
/// How long the previous secret keeps signing after a rotation, so receivers can switch.
pub const PREVIOUS_SECRET_GRACE: time::Duration = time::Duration::hours(24);
/// Deliveries shown on an endpoint's page.
pub const DELIVERY_LOG_LEN: i64 = 50;

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = webhook_endpoints)]
pub struct Endpoint {
    pub id: String,
    pub account_id: String,
    pub url: String,
    pub description: String,
    /// Subscribed event types, separated by spaces.
    pub events: String,
    pub enabled: bool,
    pub sealed_secret: Vec<u8>,
    pub previous_sealed_secret: Option<Vec<u8>>,
    pub previous_secret_until: Option<PrimitiveDateTime>,
    pub failing_since: Option<PrimitiveDateTime>,
    /// Why the endpoint was disabled automatically; `None` if it was not.
    pub disabled_reason: Option<String>,
    pub created_at: PrimitiveDateTime,
}

impl Endpoint {
    pub fn event_types(&self) -> Vec<EventType> {
        self.events
            .split(' ')
            .filter_map(EventType::parse)
            .collect()
    }

    pub fn receives(&self, event: EventType) -> bool {
        self.events.split(' ').any(|e| e == event.as_str())
    }

    /// The host the endpoint points at, for the audit log (the full URL may carry a token of the
    /// receiver's in its query).
    pub fn host(&self) -> String {
        url::Url::parse(&self.url)
            .ok()
            .and_then(|u| u.host_str().map(str::to_owned))
            .unwrap_or_default()
    }
}

/// One delivery of the log: an event to an endpoint and how its attempts went.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = webhook_deliveries)]
pub struct Delivery {
    pub id: String,
    pub endpoint_id: String,
    pub event_type: String,
    pub payload: String,
    pub created_at: PrimitiveDateTime,
    pub state: String,
    pub attempts: i32,
    pub next_attempt_at: PrimitiveDateTime,
    pub last_attempt_at: Option<PrimitiveDateTime>,
    pub last_status: Option<i32>,
    pub last_error: Option<String>,
}

/// The seal context of an endpoint's signing secret: a sealed secret opens only as its own.
fn seal_context(endpoint_id: &str) -> String {
    format!("webhook-secret:{endpoint_id}")
}

/// What the endpoint form submits.
#[derive(Debug, Clone, Default)]
pub struct EndpointInput {
    pub url: String,
    pub description: String,
    pub events: Vec<String>,
}

/// Checked endpoint input: the URL allowed by the policy, known events.
pub struct ValidInput {
    url: String,
    description: String,
    events: String,
}

impl EndpointInput {
    /// Checks every field. It resolves the URL's host: call it on the blocking pool, and outside
    /// any transaction (a slow name server must not hold the database's write lock).
    pub fn validate(&self, policy: TargetPolicy) -> Result<ValidInput, AppError> {
        let mut errors = FieldErrors::new();
        let url = match target::check(self.url.trim(), policy) {
            Ok(url) => url.to_string(),
            Err(refused) => {
                errors.add("url", refused.to_string());
                String::new()
            }
        };
        let description = self.description.trim().to_owned();
        if description.chars().count() > MAX_DESCRIPTION_LEN {
            errors.add(
                "description",
                "Keep the description to at most 200 characters.",
            );
        }
        let mut events: Vec<EventType> = Vec::new();
        for name in &self.events {
            match EventType::parse(name).filter(|t| *t != EventType::Test) {
                Some(t) if !events.contains(&t) => events.push(t),
                Some(_) => {}
                None => errors.add(
                    "events",
                    format!("{name} is not an event this endpoint can receive."),
                ),
            }
        }
        if events.is_empty() && errors.get("events").is_none() {
            errors.add(
                "events",
                "Choose at least one event to send to this endpoint.",
            );
        }
        if !errors.is_empty() {
            return Err(AppError::Invalid(errors));
        }
        let events = EventType::subscribable()
            .filter(|t| events.contains(t))
            .map(EventType::as_str)
            .collect::<Vec<_>>()
            .join(" ");
        Ok(ValidInput {
            url,
            description,
            events,
        })
    }
}

/// The account's endpoints, oldest first.
pub fn list(conn: &mut DbConn, account_id: &str) -> QueryResult<Vec<Endpoint>> {
    webhook_endpoints::table
        .filter(webhook_endpoints::account_id.eq(account_id))
        .order((webhook_endpoints::created_at, webhook_endpoints::id))
        .select(Endpoint::as_select())
        .load(conn)
}

/// One endpoint of the account; `NotFound` for another account's.
pub fn find(
    conn: &mut DbConn,
    account_id: &str,
    id: &WebhookEndpointId,
) -> Result<Endpoint, AppError> {
    webhook_endpoints::table
        .find(id.as_str())
        .filter(webhook_endpoints::account_id.eq(account_id))
        .select(Endpoint::as_select())
        .first(conn)
        .optional()?
        .ok_or(AppError::NotFound)
}

/// The endpoint's latest deliveries, newest first.
pub fn deliveries(conn: &mut DbConn, endpoint_id: &str) -> QueryResult<Vec<Delivery>> {
    webhook_deliveries::table
        .filter(webhook_deliveries::endpoint_id.eq(endpoint_id))
        .order((
            webhook_deliveries::created_at.desc(),
            webhook_deliveries::id.desc(),
        ))
        .limit(DELIVERY_LOG_LEN)
        .select(Delivery::as_select())
        .load(conn)
}

/// A registered endpoint and its signing secret, shown once.
pub struct Created {
    pub endpoint: Endpoint,
    pub secret: String,
}

/// Registers an endpoint (owners only; at most ten per account).
pub fn create(
    conn: &mut DbConn,
    access: &AccountAccess,
    actor: &Actor,
    keys: &KeyMaterial,
    valid: ValidInput,
) -> Result<Changed<Created>, AppError> {
    access.require_owner()?;
    db::write_transaction(conn, |conn| {
        let count: i64 = webhook_endpoints::table
            .filter(webhook_endpoints::account_id.eq(&access.account.id))
            .count()
            .get_result(conn)?;
        if count >= MAX_ENDPOINTS {
            return Err(AppError::conflict(
                "This account has 10 webhook endpoints, the most it can have. Delete one first.",
            ));
        }
        let id = WebhookEndpointId::generate();
        let secret = signing::new_secret();
        let sealed = keys
            .seal(&secret, &seal_context(&id))
            .map_err(AppError::internal)?;
        let endpoint = Endpoint {
            id: id.as_str().to_owned(),
            account_id: access.account.id.clone(),
            url: valid.url,
            description: valid.description,
            events: valid.events,
            enabled: true,
            sealed_secret: sealed,
            previous_sealed_secret: None,
            previous_secret_until: None,
            failing_since: None,
            disabled_reason: None,
            created_at: db::now(),
        };
        diesel::insert_into(webhook_endpoints::table)
            .values(&endpoint)
            .execute(conn)?;
        AuditEvent::record(
            conn,
            actor,
            Some(&access.account.id),
            AuditAction::WebhookCreated,
            &endpoint.id,
            &format!("to {}; events: {}", endpoint.host(), endpoint.events),
        )?;
        Ok(Changed::nothing_revoked(Created { endpoint, secret }))
    })
}

/// Changes an endpoint's URL, description and events.
pub fn update(
    conn: &mut DbConn,
    access: &AccountAccess,
    actor: &Actor,
    id: &WebhookEndpointId,
    valid: ValidInput,
) -> Result<Changed<Endpoint>, AppError> {
    access.require_owner()?;
    db::write_transaction(conn, |conn| {
        let before = find(conn, &access.account.id, id)?;
        diesel::update(webhook_endpoints::table.find(&before.id))
            .set((
                webhook_endpoints::url.eq(&valid.url),
                webhook_endpoints::description.eq(&valid.description),
                webhook_endpoints::events.eq(&valid.events),
            ))
            .execute(conn)?;
        let after = Endpoint {
            url: valid.url,
            description: valid.description,
            events: valid.events,
            ..before.clone()
        };
        AuditEvent::record(
            conn,
            actor,
            Some(&access.account.id),
            AuditAction::WebhookUpdated,
            &after.id,
            &format!(
                "to {} → {}; events: {} → {}",
                before.host(),
                after.host(),
                before.events,
                after.events
            ),
        )?;
        Ok(Changed::nothing_revoked(after))
    })
}

/// Enables or disables an endpoint. Enabling one that was disabled for failing clears its failure
/// record; deliveries still pending are sent again.
pub fn set_enabled(
    conn: &mut DbConn,
    access: &AccountAccess,
    actor: &Actor,
    id: &WebhookEndpointId,
    enabled: bool,
) -> Result<Changed<Endpoint>, AppError> {
    access.require_owner()?;
    db::write_transaction(conn, |conn| {
        let endpoint = find(conn, &access.account.id, id)?;
        if endpoint.enabled == enabled {
            return Ok(Changed::nothing_revoked(endpoint));
        }
        diesel::update(webhook_endpoints::table.find(&endpoint.id))
            .set((
                webhook_endpoints::enabled.eq(enabled),
                webhook_endpoints::failing_since.eq(None::<PrimitiveDateTime>),
                webhook_endpoints::disabled_reason.eq(None::<String>),
            ))
            .execute(conn)?;
        AuditEvent::record(
            conn,
            actor,
            Some(&access.account.id),
            AuditAction::WebhookUpdated,
            &endpoint.id,
            if enabled { "enabled" } else { "disabled" },
        )?;
        Ok(Changed::nothing_revoked(Endpoint {
            enabled,
            failing_since: None,
            disabled_reason: None,
            ..endpoint
        }))
    })
}

/// Replaces the signing secret; the previous one keeps signing (a second signature) for 24 hours.
/// Returns the new secret, shown once.
pub fn rotate_secret(
    conn: &mut DbConn,
    access: &AccountAccess,
    actor: &Actor,
    keys: &KeyMaterial,
    id: &WebhookEndpointId,
) -> Result<Changed<String>, AppError> {
    access.require_owner()?;
    db::write_transaction(conn, |conn| {
        let endpoint = find(conn, &access.account.id, id)?;
        let secret = signing::new_secret();
        let sealed = keys
            .seal(&secret, &seal_context(&endpoint.id))
            .map_err(AppError::internal)?;
        let until = db::now() + PREVIOUS_SECRET_GRACE;
        diesel::update(webhook_endpoints::table.find(&endpoint.id))
            .set((
                webhook_endpoints::sealed_secret.eq(sealed),
                webhook_endpoints::previous_sealed_secret.eq(Some(endpoint.sealed_secret)),
                webhook_endpoints::previous_secret_until.eq(Some(until)),
            ))
            .execute(conn)?;
        AuditEvent::record(
            conn,
            actor,
            Some(&access.account.id),
            AuditAction::WebhookSecretRotated,
            &endpoint.id,
            "the previous secret also signs for 24 hours",
        )?;
        Ok(Changed::nothing_revoked(secret))
    })
}

/// Deletes an endpoint and its delivery log; pending deliveries are dropped.
pub fn delete(
    conn: &mut DbConn,
    access: &AccountAccess,
    actor: &Actor,
    id: &WebhookEndpointId,
) -> Result<Changed<()>, AppError> {
    access.require_owner()?;
    db::write_transaction(conn, |conn| {
        let endpoint = find(conn, &access.account.id, id)?;
        // Its deliveries go with it (ON DELETE CASCADE; foreign keys are on for SQLite too).
        diesel::delete(webhook_endpoints::table.find(&endpoint.id)).execute(conn)?;
        AuditEvent::record(
            conn,
            actor,
            Some(&access.account.id),
            AuditAction::WebhookDeleted,
            &endpoint.id,
            &format!("to {}", endpoint.host()),
        )?;
        Ok(Changed::nothing_revoked(()))
    })
}

/// Sends a delivery again now, whatever became of it (a new round of attempts).
pub fn redeliver(
    conn: &mut DbConn,
    access: &AccountAccess,
    id: &WebhookEndpointId,
    message: &WebhookMessageId,
) -> Result<Changed<()>, AppError> {
    access.require_owner()?;
    db::write_transaction(conn, |conn| {
        let endpoint = find(conn, &access.account.id, id)?;
        let changed = diesel::update(
            webhook_deliveries::table
                .find(message.as_str())
                .filter(webhook_deliveries::endpoint_id.eq(&endpoint.id)),
        )
        .set((
            webhook_deliveries::state.eq(delivery::PENDING),
            webhook_deliveries::attempts.eq(0),
            webhook_deliveries::next_attempt_at.eq(db::now()),
        ))
        .execute(conn)?;
        if changed == 0 {
            return Err(AppError::NotFound);
        }
        Ok(Changed::nothing_revoked(()))
    })
}

/// Queues a `webhook.test` event for this endpoint alone.
pub fn send_test(
    conn: &mut DbConn,
    access: &AccountAccess,
    id: &WebhookEndpointId,
) -> Result<Changed<()>, AppError> {
    access.require_owner()?;
    db::write_transaction(conn, |conn| {
        let endpoint = find(conn, &access.account.id, id)?;
        let data =
            serde_json::json!({ "account_id": endpoint.account_id, "endpoint_id": endpoint.id });
        enqueue(conn, &endpoint, EventType::Test, &data)?;
        Ok(Changed::nothing_revoked(()))
    })
}

/// Records `event` for every enabled endpoint of the account that subscribes to it, in the caller's
/// transaction: the event exists exactly when the change does. `data` holds ids and times only.
pub fn emit(
    conn: &mut DbConn,
    account_id: &str,
    event: EventType,
    data: &serde_json::Value,
) -> QueryResult<()> {
    let endpoints: Vec<Endpoint> = webhook_endpoints::table
        .filter(webhook_endpoints::account_id.eq(account_id))
        .filter(webhook_endpoints::enabled.eq(true))
        .select(Endpoint::as_select())
        .load(conn)?;
    for endpoint in endpoints.iter().filter(|e| e.receives(event)) {
        enqueue(conn, endpoint, event, data)?;
    }
    Ok(())
}

/// Writes one outbox row: the payload `{"type", "timestamp", "data"}`, due now.
fn enqueue(
    conn: &mut DbConn,
    endpoint: &Endpoint,
    event: EventType,
    data: &serde_json::Value,
) -> QueryResult<()> {
    let now = db::now();
    let timestamp = db::rfc3339(&now);
    let payload =
        serde_json::json!({ "type": event.as_str(), "timestamp": timestamp, "data": data });
    diesel::insert_into(webhook_deliveries::table)
        .values((
            webhook_deliveries::id.eq(WebhookMessageId::generate().as_str()),
            webhook_deliveries::endpoint_id.eq(&endpoint.id),
            webhook_deliveries::account_id.eq(&endpoint.account_id),
            webhook_deliveries::event_type.eq(event.as_str()),
            webhook_deliveries::payload.eq(payload.to_string()),
            webhook_deliveries::created_at.eq(now),
            webhook_deliveries::state.eq(delivery::PENDING),
            webhook_deliveries::attempts.eq(0),
            webhook_deliveries::next_attempt_at.eq(now),
        ))
        .execute(conn)?;
    Ok(())
}

/// The data of an access code event.
pub fn code_data(account_id: &str, key_id: &str, code_id: &str) -> serde_json::Value {
    serde_json::json!({ "account_id": account_id, "api_key_id": key_id, "access_code_id": code_id })
}
