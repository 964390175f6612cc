//! Sending the outbox. Every instance runs a worker that, once a second, claims due deliveries of
//! enabled endpoints (moving their next attempt past the timeout: a lease, so an instance killed
//! mid-delivery leaves the row due again), sends each signed, and records the outcome: delivered on
//! a 2xx answer; otherwise retried on the schedule (by default 5 s, 5 min, 30 min, 2 h, 5 h, 10 h and
//! 10 h after the previous attempt, as Standard Webhooks senders do), then failed. An endpoint whose
//! deliveries have all failed for the disable period (5 days) is disabled, and says why. Redirects
//! are not followed and every connection goes through the SSRF guard's resolver.

use std::sync::Arc;
use std::time::Duration;

use diesel::prelude::*;
use time::PrimitiveDateTime;

use crate::audit::{Actor, AuditAction, AuditEvent};
use crate::db::{self, DbConn, Pool};
use crate::schema::{webhook_deliveries, webhook_endpoints};
use crate::secrets::KeyMaterial;
use crate::webhooks::{Endpoint, seal_context, signing, target};

pub const PENDING: &str = "pending";
pub const DELIVERED: &str = "delivered";
pub const FAILED: &str = "failed";

/// Deliveries one instance sends at once.
const BATCH: i64 = 16;
/// How often the worker looks for due deliveries.
const POLL: Duration = Duration::from_secs(1);
/// The most of a receiver's error answer kept in the log.
const MAX_ERROR_LEN: usize = 200;

/// How deliveries are made; the operator's flags, short schedules in tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliverySettings {
    pub policy: target::TargetPolicy,
    /// The wait before each retry; a delivery is attempted `1 + retries.len()` times.
    pub retries: Vec<Duration>,
    /// The whole time one attempt may take (connecting, sending, the answer).
    pub timeout: Duration,
    /// How long an endpoint may fail every delivery before it is disabled.
    pub disable_after: Duration,
    /// How often the expiry notices are looked for.
    pub expiry_sweep: Duration,
}

impl Default for DeliverySettings {
    fn default() -> Self {
        Self {
            policy: target::TargetPolicy::default(),
            retries: [5, 300, 1800, 7200, 18000, 36000, 36000]
                .into_iter()
                .map(Duration::from_secs)
                .collect(),
            timeout: Duration::from_secs(10),
            disable_after: Duration::from_secs(5 * 24 * 3600),
            expiry_sweep: Duration::from_secs(60),
        }
    }
}

impl DeliverySettings {
    /// How long a claim lasts: longer than any attempt can take.
    fn lease(&self) -> time::Duration {
        to_time(self.timeout + Duration::from_secs(5))
    }
}

fn to_time(d: Duration) -> time::Duration {
    time::Duration::try_from(d).unwrap_or(time::Duration::MAX)
}

/// A claimed delivery, with what sending it needs.
struct Claimed {
    id: String,
    endpoint_id: String,
    url: String,
    payload: String,
    attempts: i32,
    /// The secrets that sign: the current one, and the previous one during its grace day.
    secrets: Vec<String>,
}

/// How one attempt went.
#[derive(Debug)]
struct Outcome {
    status: Option<u16>,
    error: Option<String>,
}

impl Outcome {
    fn delivered(&self) -> bool {
        self.error.is_none() && self.status.is_some_and(|s| (200..300).contains(&s))
    }
}

/// Whether any delivery is due, without taking SQLite's write lock.
fn any_due(conn: &mut DbConn, now: PrimitiveDateTime) -> QueryResult<bool> {
    diesel::select(diesel::dsl::exists(
        webhook_deliveries::table
            .inner_join(webhook_endpoints::table)
            .filter(webhook_deliveries::state.eq(PENDING))
            .filter(webhook_deliveries::next_attempt_at.le(now))
            .filter(webhook_endpoints::enabled.eq(true)),
    ))
    .get_result(conn)
}

/// Claims up to a batch of due deliveries: each row is taken by one instance only (the conditional
/// update re-checks it under the row lock).
fn claim(
    conn: &mut DbConn,
    keys: &KeyMaterial,
    settings: &DeliverySettings,
) -> QueryResult<Vec<Claimed>> {
    db::write_transaction(conn, |conn| {
        let now = db::now();
        let due: Vec<(String, i32, String, Endpoint)> = webhook_deliveries::table
            .inner_join(webhook_endpoints::table)
            .filter(webhook_deliveries::state.eq(PENDING))
            .filter(webhook_deliveries::next_attempt_at.le(now))
            .filter(webhook_endpoints::enabled.eq(true))
            .order(webhook_deliveries::next_attempt_at)
            .limit(BATCH)
            .select((
                webhook_deliveries::id,
                webhook_deliveries::attempts,
                webhook_deliveries::payload,
                Endpoint::as_select(),
            ))
            .load(conn)?;
        let mut claimed = Vec::with_capacity(due.len());
        for (id, attempts, payload, endpoint) in due {
            let taken = diesel::update(
                webhook_deliveries::table
                    .find(&id)
                    .filter(webhook_deliveries::state.eq(PENDING))
                    .filter(webhook_deliveries::next_attempt_at.le(now)),
            )
            .set((
                webhook_deliveries::next_attempt_at.eq(now + settings.lease()),
                webhook_deliveries::attempts.eq(attempts + 1),
            ))
            .execute(conn)?;
            if taken == 1 {
                claimed.push(Claimed {
                    id,
                    secrets: signing_secrets(keys, &endpoint, now),
                    endpoint_id: endpoint.id,
                    url: endpoint.url,
                    payload,
                    attempts: attempts + 1,
                });
            }
        }
        Ok(claimed)
    })
}

fn signing_secrets(keys: &KeyMaterial, endpoint: &Endpoint, now: PrimitiveDateTime) -> Vec<String> {
    let context = seal_context(&endpoint.id);
    let mut secrets: Vec<String> = keys
        .open(&endpoint.sealed_secret, &context)
        .into_iter()
        .collect();
    if let (Some(previous), Some(until)) = (
        &endpoint.previous_sealed_secret,
        endpoint.previous_secret_until,
    ) && now < until
    {
        secrets.extend(keys.open(previous, &context));
    }
    secrets
}

/// The HTTP client: timeouts, no redirects, the SSRF guard as its resolver.
pub fn client(settings: &DeliverySettings) -> Result<ureq::Agent, native_tls::Error> {
    let policy = settings.policy;
    let tls = native_tls::TlsConnector::new()?;
    Ok(ureq::AgentBuilder::new()
        .timeout_connect(settings.timeout.min(Duration::from_secs(5)))
        .timeout(settings.timeout)
        .redirects(0)
        .user_agent(concat!("bms-keys-webhooks/", env!("CARGO_PKG_VERSION")))
        .tls_connector(Arc::new(tls))
        .resolver(move |addr: &str| {
            target::resolve(addr, policy).map_err(|refused| {
                std::io::Error::new(std::io::ErrorKind::PermissionDenied, refused)
            })
        })
        .build())
}

/// Sends one delivery, signed, and says how it went.
fn send(agent: &ureq::Agent, item: &Claimed) -> Outcome {
    let timestamp = time::OffsetDateTime::now_utc().unix_timestamp();
    let secrets: Vec<&str> = item.secrets.iter().map(String::as_str).collect();
    let signature = signing::signature_header(&secrets, &item.id, timestamp, &item.payload);
    let answer = agent
        .post(&item.url)
        .set("content-type", "application/json")
        .set("webhook-id", &item.id)
        .set("webhook-timestamp", &timestamp.to_string())
        .set("webhook-signature", &signature)
        .send_string(&item.payload);
    match answer {
        Ok(res) if (300..400).contains(&res.status()) => Outcome {
            status: Some(res.status()),
            error: Some("redirect not followed: point the endpoint at the final URL".to_owned()),
        },
        Ok(res) => Outcome {
            status: Some(res.status()),
            error: None,
        },
        Err(ureq::Error::Status(status, res)) => Outcome {
            status: Some(status),
            error: Some(short(&res.into_string().unwrap_or_default())),
        },
        Err(ureq::Error::Transport(transport)) => Outcome {
            status: None,
            error: Some(short(&transport.to_string())),
        },
    }
}

fn short(text: &str) -> String {
    let text = text.trim();
    match text.char_indices().nth(MAX_ERROR_LEN) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_owned(),
    }
}

/// Records an attempt's outcome, and the endpoint's health with it.
fn record(
    conn: &mut DbConn,
    item: &Claimed,
    outcome: &Outcome,
    settings: &DeliverySettings,
) -> QueryResult<()> {
    db::write_transaction(conn, |conn| {
        let now = db::now();
        let status = outcome.status.map(i32::from);
        if outcome.delivered() {
            diesel::update(webhook_deliveries::table.find(&item.id))
                .set((
                    webhook_deliveries::state.eq(DELIVERED),
                    webhook_deliveries::last_attempt_at.eq(Some(now)),
                    webhook_deliveries::last_status.eq(status),
                    webhook_deliveries::last_error.eq(None::<String>),
                ))
                .execute(conn)?;
            diesel::update(webhook_endpoints::table.find(&item.endpoint_id))
                .set(webhook_endpoints::failing_since.eq(None::<PrimitiveDateTime>))
                .execute(conn)?;
            return Ok(());
        }
        let retry = usize::try_from(item.attempts - 1)
            .ok()
            .and_then(|i| settings.retries.get(i));
        let (state, next) = match retry {
            Some(wait) => (PENDING, now + to_time(*wait)),
            None => (FAILED, now),
        };
        diesel::update(webhook_deliveries::table.find(&item.id))
            .set((
                webhook_deliveries::state.eq(state),
                webhook_deliveries::next_attempt_at.eq(next),
                webhook_deliveries::last_attempt_at.eq(Some(now)),
                webhook_deliveries::last_status.eq(status),
                webhook_deliveries::last_error.eq(&outcome.error),
            ))
            .execute(conn)?;
        note_failure(conn, &item.endpoint_id, now, settings)
    })
}

/// Marks the endpoint failing since its first failure in a row; disables it once that is longer
/// ago than the disable period.
fn note_failure(
    conn: &mut DbConn,
    endpoint_id: &str,
    now: PrimitiveDateTime,
    settings: &DeliverySettings,
) -> QueryResult<()> {
    let Some((account_id, enabled, failing_since)) = webhook_endpoints::table
        .find(endpoint_id)
        .select((
            webhook_endpoints::account_id,
            webhook_endpoints::enabled,
            webhook_endpoints::failing_since,
        ))
        .first::<(String, bool, Option<PrimitiveDateTime>)>(conn)
        .optional()?
    else {
        return Ok(()); // deleted meanwhile
    };
    let Some(since) = failing_since else {
        diesel::update(webhook_endpoints::table.find(endpoint_id))
            .set(webhook_endpoints::failing_since.eq(Some(now)))
            .execute(conn)?;
        return Ok(());
    };
    if !enabled || now - since < to_time(settings.disable_after) {
        return Ok(());
    }
    let since_text = db::rfc3339(&since);
    let reason = format!(
        "Disabled automatically: every delivery has failed since {since_text}. Fix the endpoint, then enable it to send what is pending."
    );
    diesel::update(webhook_endpoints::table.find(endpoint_id))
        .set((
            webhook_endpoints::enabled.eq(false),
            webhook_endpoints::disabled_reason.eq(Some(&reason)),
        ))
        .execute(conn)?;
    let system = Actor {
        user_id: None,
        email: "BMS (webhook delivery)".to_owned(),
        is_staff: false,
        client_ip: String::new(),
    };
    AuditEvent::record(
        conn,
        &system,
        Some(&account_id),
        AuditAction::WebhookAutoDisabled,
        endpoint_id,
        &format!("every delivery failed since {since_text}"),
    )
}

/// One round of the worker: claims what is due and sends it, several at once. Returns how many
/// deliveries it attempted.
pub fn run_once(
    pool: &Pool,
    agent: &ureq::Agent,
    keys: &KeyMaterial,
    settings: &DeliverySettings,
) -> usize {
    let claimed = {
        let Ok(mut conn) = pool.get() else { return 0 };
        if !any_due(&mut conn, db::now()).unwrap_or(false) {
            return 0;
        }
        match claim(&mut conn, keys, settings) {
            Ok(claimed) => claimed,
            Err(e) => {
                tracing::warn!("webhook delivery: cannot claim: {e}");
                return 0;
            }
        }
    };
    std::thread::scope(|scope| {
        for item in &claimed {
            scope.spawn(move || {
                let outcome = send(agent, item);
                tracing::info!(
                    message = item.id,
                    endpoint = item.endpoint_id,
                    attempt = item.attempts,
                    status = outcome.status,
                    delivered = outcome.delivered(),
                    "webhook delivery attempt"
                );
                // If recording fails the lease runs out and the delivery is sent again: at least once.
                let recorded = pool.get().map_err(|e| e.to_string()).and_then(|mut conn| {
                    record(&mut conn, item, &outcome, settings).map_err(|e| e.to_string())
                });
                if let Err(e) = recorded {
                    tracing::warn!(message = item.id, "webhook delivery: cannot record: {e}");
                }
            });
        }
    });
    claimed.len()
}

/// Starts the delivery worker (and the expiry sweep, which feeds it). It stops by itself once
/// `alive` can no longer be upgraded (the server has shut down).
pub fn spawn_worker<T: Send + Sync + 'static>(
    pool: Pool,
    keys: KeyMaterial,
    settings: DeliverySettings,
    alive: std::sync::Weak<T>,
) {
    let agent = match client(&settings) {
        Ok(agent) => agent,
        Err(e) => {
            tracing::error!("webhooks cannot be delivered: no TLS client: {e}");
            return;
        }
    };
    let spawned = std::thread::Builder::new()
        .name("bms-webhooks".to_owned())
        .spawn(move || {
            let mut last_sweep: Option<std::time::Instant> = None;
            while alive.strong_count() > 0 {
                if last_sweep.is_none_or(|t| t.elapsed() >= settings.expiry_sweep) {
                    last_sweep = Some(std::time::Instant::now());
                    if let Ok(mut conn) = pool.get()
                        && let Err(e) = crate::webhooks::expiry::sweep(&mut conn, db::now())
                    {
                        tracing::warn!("expiry sweep: {e}");
                    }
                }
                if run_once(&pool, &agent, &keys, &settings) == 0 {
                    std::thread::sleep(POLL);
                }
            }
        });
    if let Err(e) = spawned {
        tracing::error!("cannot start the webhook worker: {e}");
    }
}
