//! The verification path: may this request, carrying this access code, reach this API?
//!
//! Read top to bottom: the path is canonical (checked by the caller, and typed so) → the secret's
//! format and checksum → its digest → the cache (the database only on a miss) → enabled, not expired
//! → the target account is the key's own (its policies) or links the key (the link's policies) → a
//! rule allows method and path → the deciding key's rate limit (`crate::limits`) has room. A warm
//! request never leaves the async worker: no pool checkout, no blocking call, no log line, no write
//! (usage and rate limits are counted in memory; usage is flushed, limits synced, in batches).
//!
//! The failure limiter protects the database, not the door: a client with too many failed
//! verifications in a minute is still answered from the cache (a valid code it used before verifies,
//! a code known to be unknown is refused from memory), while its cache misses go one at a time
//! through a slow lane shared by every client over its limit. A malformed or missing code from such a
//! client gets 429. So a valid code is never refused for its client's failures; it can only wait.

pub mod cache;
pub mod canonical;
mod clock;
pub mod listener;
pub mod lookup;

use std::borrow::Cow;
use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use time::PrimitiveDateTime;

use crate::db::Pool;
use crate::error::AppError;
use crate::limits::RateStatus;
use crate::limits::keys::{KeyLimiter, Today};
use crate::metrics::VerifyMetrics;
use crate::policies::Rule;
use crate::revocation::Revoked;
use crate::secrets::{self, KeyMaterial};
use crate::throttle::FailureThrottle;
use crate::usage::UsageRecorder;
use cache::{Cached, CodeCache};
pub use canonical::{BadPath, CanonicalPath, canonical};

/// Failed verifications per client per minute before its cache misses go through the slow lane.
pub const FAILURES_PER_IP_PER_MINUTE: u32 = 120;
/// The failure limiter's window.
pub const FAILURE_WINDOW: Duration = Duration::from_secs(60);
/// How long a lookup waits for the slow lane before it is answered 429: under a flood that keeps the
/// lane busy longer, a client over its limit hears so instead of holding a worker.
const SLOW_LANE_WAIT: Duration = Duration::from_secs(2);
/// Most codes kept in the cache.
const CACHE_ENTRIES: usize = 200_000;
/// How long a cached grant is trusted without an invalidation (a safety net: changes invalidate at once).
const CACHE_TTL: Duration = Duration::from_secs(60);
/// How long "no such code" is remembered.
const NEGATIVE_TTL: Duration = Duration::from_secs(10);
/// How long a lookup waits for a database connection before answering 503: when the database is
/// away, a client hears so within a second instead of holding a worker (the console waits longer).
const LOOKUP_WAIT: Duration = Duration::from_millis(500);

/// What the route demands beyond a valid code that reaches the account.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Requirement {
    /// A policy rule must allow the method and path.
    Policy,
    /// Reaching the account is enough (the ping API, for checking a code).
    ReachOnly,
}

/// One request to decide.
#[derive(Debug, Clone, Copy)]
pub struct Check<'a> {
    pub secret: &'a str,
    pub method: &'a str,
    /// Accounts and policy rules are matched on a canonical path only.
    pub path: CanonicalPath<'a>,
    /// The account the request targets (`{account}` in the path); `None`: the key's own account.
    pub target_account: Option<&'a str>,
    pub requirement: Requirement,
    pub client_ip: Option<IpAddr>,
}

/// An allowed request: who it is, for the handler and the usage counters. Never the secret.
///
/// It holds the cached entry (and the link that decided, on a linking account) rather than copies of
/// its ids: making and dropping a grant is one reference count, not one per field.
#[derive(Debug, Clone)]
pub struct Grant {
    entry: Arc<cache::CodeEntry>,
    /// The target account's link to the code's key, when the target is not the key's own account.
    link: Option<Arc<cache::LinkGrant>>,
    /// When the decision was made (one clock read serves the expiry check and the usage counter).
    pub decided_at: PrimitiveDateTime,
    /// The deciding key's rate limits and what is left of them, when it has any.
    pub rate: Option<RateStatus>,
}

impl Grant {
    /// The account the request acts on.
    pub fn account_id(&self) -> &Arc<str> {
        self.link
            .as_ref()
            .map_or(&self.entry.account_id, |l| &l.account_id)
    }

    /// The key whose policies decided: the code's own key, or the target account's link to it.
    pub fn api_key_id(&self) -> &Arc<str> {
        self.link
            .as_ref()
            .map_or(&self.entry.key_id, |l| &l.link_key_id)
    }

    /// The key the access code belongs to.
    pub fn source_key_id(&self) -> &Arc<str> {
        &self.entry.key_id
    }

    pub fn access_code_id(&self) -> &Arc<str> {
        &self.entry.code_id
    }

    /// The names of the deciding key's policies.
    pub fn policies(&self) -> &[String] {
        &self
            .link
            .as_ref()
            .map_or(&self.entry.own, |l| &l.policies)
            .names
    }

    pub fn expires_at(&self) -> PrimitiveDateTime {
        self.entry.expires_at
    }

    /// Whether the request acts on an account that links the code's key.
    pub fn linked(&self) -> bool {
        self.link.is_some()
    }

    /// A grant as `decide` makes it, for the usage recorder's tests.
    #[cfg(test)]
    pub(crate) fn for_test(
        entry: Arc<cache::CodeEntry>,
        link: Option<Arc<cache::LinkGrant>>,
        decided_at: PrimitiveDateTime,
    ) -> Self {
        Self {
            entry,
            link,
            decided_at,
            rate: None,
        }
    }

    /// The cached entry the grant came from.
    pub fn entry(&self) -> &Arc<cache::CodeEntry> {
        &self.entry
    }

    /// Where this grant's requests are counted until the usage flush.
    pub fn tally(&self) -> &crate::usage::Tally {
        self.link
            .as_ref()
            .map_or(&self.entry.own_tally, |l| &l.tally)
    }

    /// Where the API layer keeps what it rendered for this grant (`cache::AnswerMemo`).
    pub fn answer(&self) -> &cache::AnswerMemo {
        self.link
            .as_ref()
            .map_or(&self.entry.own_answer, |l| &l.answer)
    }
}

/// Why a request is refused; each has a stable machine-readable code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The path is not canonical: refused before anything else, since what the upstream would serve
    /// for it is unknown.
    BadPath(BadPath),
    Missing,
    Malformed,
    Unknown,
    Disabled,
    Expired,
    /// The code's key has no access to the target account (not its own, not linked there).
    NoAccess,
    /// The key reaches the account but no policy allows this API; the policies that would.
    NotAllowed {
        would_allow: Vec<String>,
    },
    /// Too many failed verifications from the client (the failure limiter).
    RateLimited {
        retry_after: Duration,
    },
    /// The deciding key's own rate limit is used up.
    KeyLimited(RateStatus),
    Unavailable,
}

impl Refusal {
    pub fn code(&self) -> &'static str {
        match self {
            Refusal::BadPath(_) => "bad_path",
            Refusal::Missing => "missing",
            Refusal::Malformed => "malformed",
            Refusal::Unknown => "unknown",
            Refusal::Disabled => "disabled",
            Refusal::Expired => "expired",
            Refusal::NoAccess => "no_access",
            Refusal::NotAllowed { .. } => "forbidden",
            Refusal::RateLimited { .. } | Refusal::KeyLimited(_) => "rate_limited",
            Refusal::Unavailable => "unavailable",
        }
    }

    pub fn status(&self) -> u16 {
        match self {
            Refusal::BadPath(_) => 400,
            Refusal::Missing
            | Refusal::Malformed
            | Refusal::Unknown
            | Refusal::Disabled
            | Refusal::Expired => 401,
            Refusal::NoAccess | Refusal::NotAllowed { .. } => 403,
            Refusal::RateLimited { .. } | Refusal::KeyLimited(_) => 429,
            Refusal::Unavailable => 503,
        }
    }

    pub fn message(&self) -> Cow<'static, str> {
        match self {
            Refusal::BadPath(why) => Cow::Borrowed(why.message()),
            Refusal::Missing => Cow::Borrowed(
                "Send an access code in the x-api-key header or the apiKey query parameter.",
            ),
            Refusal::Malformed => Cow::Borrowed(
                "This is not a valid BMS access code: check that it was copied whole (bms_ followed by 46 letters and digits).",
            ),
            Refusal::Unknown => Cow::Borrowed("This access code does not exist or was deleted."),
            Refusal::Disabled => Cow::Borrowed(
                "This access code is disabled. An owner of the account can enable it again in the console.",
            ),
            Refusal::Expired => Cow::Borrowed(
                "This access code has expired. Create a new access code for the API key in the console.",
            ),
            Refusal::NoAccess => {
                Cow::Borrowed("This access code's API key has no access to this account.")
            }
            Refusal::NotAllowed { would_allow } if would_allow.is_empty() => {
                Cow::Borrowed("No policy of this API key allows this API.")
            }
            Refusal::NotAllowed { would_allow } => Cow::Owned(format!(
                "No policy of this API key allows this API. Policies that would: {}.",
                would_allow.join(", ")
            )),
            Refusal::RateLimited { retry_after } => Cow::Owned(format!(
                "Too many failed verifications from this address. Try again in {} seconds.",
                retry_after.as_secs().max(1)
            )),
            Refusal::KeyLimited(status) => Cow::Owned(match status.exhausted() {
                Some((window, w)) => format!(
                    "This API key's rate limit of {} requests per {window} is used up. Try again in {} seconds.",
                    w.quota, status.retry_after
                ),
                None => format!(
                    "This API key's rate limit is used up. Try again in {} seconds.",
                    status.retry_after
                ),
            }),
            Refusal::Unavailable => {
                Cow::Borrowed("Access cannot be checked right now. Try again shortly.")
            }
        }
    }
}

/// A verification in progress.
pub enum Verification {
    Done(Result<Grant, Refusal>),
    Pending(Pin<Box<dyn Future<Output = Result<Grant, Refusal>>>>),
}

/// A `Check` that owns its text, to outlive the request's borrow on the cold path.
struct OwnedCheck {
    secret: String,
    method: String,
    path: String,
    target_account: Option<String>,
    requirement: Requirement,
    client_ip: Option<IpAddr>,
}

impl From<&Check<'_>> for OwnedCheck {
    fn from(c: &Check<'_>) -> Self {
        Self {
            secret: c.secret.to_owned(),
            method: c.method.to_owned(),
            path: c.path.as_str().to_owned(),
            target_account: c.target_account.map(str::to_owned),
            requirement: c.requirement,
            client_ip: c.client_ip,
        }
    }
}

impl OwnedCheck {
    fn as_check(&self) -> Check<'_> {
        Check {
            secret: &self.secret,
            method: &self.method,
            path: CanonicalPath::already_checked(&self.path),
            target_account: self.target_account.as_deref(),
            requirement: self.requirement,
            client_ip: self.client_ip,
        }
    }
}

/// The first step's answer: decided from memory, or the digest to look up.
pub enum Step {
    Decided(Result<Grant, Refusal>),
    Lookup {
        digest: [u8; 32],
        /// The client is over its failure limit: the lookup goes through the slow lane.
        slow_lane: bool,
    },
}

/// The verifier shared by every worker.
pub struct Verifier {
    keys: KeyMaterial,
    pool: Pool,
    pub cache: CodeCache,
    pub usage: UsageRecorder,
    pub metrics: VerifyMetrics,
    /// Failed verifications per client (shared with the sync loop when there is a shared store).
    pub failures: Arc<FailureThrottle<IpAddr>>,
    /// Requests per key with a rate limit (shared likewise).
    pub limiter: Arc<KeyLimiter>,
    own_log_entries: std::sync::Mutex<std::collections::BTreeSet<i64>>,
    /// One lookup at a time for every client over its failure limit together.
    slow_lane: tokio::sync::Semaphore,
    /// Every active policy's rules, to name the policies that would allow a refused request.
    catalogue_rules: Vec<(String, Vec<Rule>)>,
}

impl Verifier {
    pub fn new(
        keys: KeyMaterial,
        pool: Pool,
        catalogue_rules: Vec<(String, Vec<Rule>)>,
        failures_per_minute: u32,
        burst_share: f64,
    ) -> Self {
        Self {
            keys,
            pool,
            cache: CodeCache::new(CACHE_ENTRIES, CACHE_TTL, NEGATIVE_TTL),
            usage: UsageRecorder::default(),
            metrics: VerifyMetrics::default(),
            failures: Arc::new(FailureThrottle::new(failures_per_minute, FAILURE_WINDOW)),
            limiter: Arc::new(KeyLimiter::new(burst_share)),
            own_log_entries: std::sync::Mutex::default(),
            slow_lane: tokio::sync::Semaphore::new(1),
            catalogue_rules,
        }
    }

    /// Decides from memory when it can: format, cache; the failure limit only where neither decides.
    pub fn begin(&self, check: &Check<'_>, now: Instant) -> Step {
        let refusal = if check.secret.is_empty() {
            Some(Refusal::Missing)
        } else if secrets::check_format(check.secret).is_err() {
            Some(Refusal::Malformed)
        } else {
            None
        };
        if let Some(refusal) = refusal {
            // Counted here, in the same step as the limit check (`finish` leaves these alone).
            let over = check
                .client_ip
                .and_then(|ip| self.failures.fail_unless_over(&ip, now).err());
            return Step::Decided(Err(match over {
                Some(retry_after) => Refusal::RateLimited { retry_after },
                None => refusal,
            }));
        }
        let digest = self.keys.digest(check.secret);
        match self.cache.get(&digest, now) {
            Some(cached) => {
                self.metrics.cache_hit();
                Step::Decided(self.decide(cached, check, now))
            }
            None => {
                self.metrics.cache_miss();
                Step::Lookup {
                    digest,
                    slow_lane: self.over_limit(check, now).is_some(),
                }
            }
        }
    }

    /// How long until the client is under its failure limit again, if it is over it now.
    fn over_limit(&self, check: &Check<'_>, now: Instant) -> Option<Duration> {
        self.failures.check_at(&check.client_ip?, now).err()
    }

    /// The cold path: reads the code from the database (blocking: run it off the async workers) and
    /// caches the answer.
    pub fn load(&self, digest: [u8; 32]) -> Result<Cached, AppError> {
        // Before the read: an invalidation from here on means the answer may be stale (cache.rs).
        let generation = self.cache.generation();
        let mut conn = self.pool.get_timeout(LOOKUP_WAIT)?;
        let cached = match lookup::load_entry(&mut conn, &digest)? {
            Some(entry) => Cached::Found(Arc::new(entry)),
            None => Cached::Unknown,
        };
        self.cache.insert(digest, cached.clone(), generation);
        Ok(cached)
    }

    /// Starts a verification: decided at once from memory (the warm path, no allocation beyond the
    /// grant), or a future that makes one trip to the database on the blocking pool.
    pub fn start(self: &Arc<Self>, check: &Check<'_>) -> Verification {
        let started = Instant::now();
        match self.begin(check, started) {
            Step::Decided(result) => {
                self.finish(check, &result, started);
                Verification::Done(result)
            }
            Step::Lookup { digest, slow_lane } => {
                let owned = OwnedCheck::from(check);
                let verifier = self.clone();
                Verification::Pending(Box::pin(async move {
                    let check = owned.as_check();
                    let result = verifier.look_up_and_decide(digest, slow_lane, &check).await;
                    verifier.finish(&check, &result, started);
                    result
                }))
            }
        }
    }

    /// The cold path's decision: one trip to the database on the blocking pool (through the slow
    /// lane for a client over its failure limit).
    async fn look_up_and_decide(
        self: &Arc<Self>,
        digest: [u8; 32],
        slow_lane: bool,
        check: &Check<'_>,
    ) -> Result<Grant, Refusal> {
        let _turn = if slow_lane {
            match tokio::time::timeout(SLOW_LANE_WAIT, self.slow_lane.acquire()).await {
                Ok(Ok(permit)) => Some(permit),
                _ => {
                    return Err(Refusal::RateLimited {
                        retry_after: SLOW_LANE_WAIT,
                    });
                }
            }
        } else {
            None
        };
        let loader = self.clone();
        match actix_web::web::block(move || loader.load(digest)).await {
            Ok(Ok(cached)) => self.decide(cached, check, Instant::now()),
            Ok(Err(e)) => {
                tracing::warn!("verification lookup failed: {e}");
                Err(Refusal::Unavailable)
            }
            Err(_) => Err(Refusal::Unavailable),
        }
    }

    /// The whole check, awaited.
    pub async fn verify(self: &Arc<Self>, check: &Check<'_>) -> Result<Grant, Refusal> {
        match self.start(check) {
            Verification::Done(result) => result,
            Verification::Pending(future) => future.await,
        }
    }

    /// Counts the outcome: metrics, usage (allowed) or the client's failures (refused).
    pub fn finish(&self, check: &Check<'_>, result: &Result<Grant, Refusal>, started: Instant) {
        self.metrics.observe(
            result.as_ref().err().map_or("ok", Refusal::code),
            started.elapsed(),
        );
        match result {
            Ok(grant) => self.usage.record(grant, grant.decided_at),
            Err(
                // Counted by `begin` already.
                Refusal::Missing
                | Refusal::Malformed
                // Not a wrong code.
                | Refusal::BadPath(_)
                | Refusal::RateLimited { .. }
                | Refusal::KeyLimited(_)
                | Refusal::Unavailable
                | Refusal::NotAllowed { .. }
                | Refusal::NoAccess,
            ) => {}
            Err(_) => {
                if let Some(ip) = check.client_ip {
                    self.failures.record_failure_at(&ip, started);
                }
            }
        }
    }

    /// The decision for a known (or known-unknown) code, at `now` (an instant just read).
    fn decide(&self, cached: Cached, check: &Check<'_>, now: Instant) -> Result<Grant, Refusal> {
        let Cached::Found(entry) = cached else {
            return Err(Refusal::Unknown);
        };
        let now = clock::wall_time(now);
        if now >= entry.expires_at {
            return Err(Refusal::Expired);
        }
        if !entry.enabled {
            return Err(Refusal::Disabled);
        }
        let target = check.target_account.unwrap_or(&entry.account_id);
        let link = if target == &*entry.account_id {
            None
        } else {
            match entry.links.get(target) {
                Some(link) => Some(link.clone()),
                None => return Err(Refusal::NoAccess),
            }
        };
        let (api_key_id, policies, limit) = match &link {
            None => (&entry.key_id, &entry.own, entry.rate),
            Some(link) => (&link.link_key_id, &link.policies, link.rate),
        };
        let path = check.path.as_str();
        if check.requirement == Requirement::Policy && !policies.allows(check.method, path, target)
        {
            return Err(Refusal::NotAllowed {
                would_allow: self.policies_allowing(check.method, path, target),
            });
        }
        // Last: only a request that would be allowed uses up its key's limit.
        let rate = if limit.is_none() {
            None
        } else {
            match self.limiter.admit(api_key_id, limit, Today::of(now)) {
                Ok(status) => Some(status),
                Err(status) => return Err(Refusal::KeyLimited(status)),
            }
        };
        Ok(Grant {
            entry,
            link,
            decided_at: now,
            rate,
        })
    }

    /// Names of the catalogue's policies that would allow the request.
    fn policies_allowing(&self, method: &str, path: &str, account: &str) -> Vec<String> {
        self.catalogue_rules
            .iter()
            .filter(|(_, rules)| rules.iter().any(|r| r.matches(method, path, account)))
            .map(|(name, _)| name.clone())
            .collect()
    }

    /// Forgets what the cache knows about these keys (after a change to them or their codes). Called
    /// by the write path and the listener only (`crate::revocation`).
    pub fn forget(&self, revoked: &Revoked) {
        for id in revoked.key_ids() {
            self.cache.invalidate_key(id);
        }
        if !revoked.logged().is_empty() {
            let mut own = self.own_log_entries();
            if own.len() > 10_000 {
                // The log reader is not reading: it will clear the cache on its return anyway.
                own.clear();
            }
            own.extend(revoked.logged());
        }
    }

    /// Revocation-log entries this instance wrote (and so applied) itself, until the log reader
    /// passes them: it skips them rather than clearing fresh cache entries a second time.
    pub fn own_log_entries(&self) -> std::sync::MutexGuard<'_, std::collections::BTreeSet<i64>> {
        self.own_log_entries
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }
}
