//! The receiving side of revocation on PostgreSQL: how a change made on one instance reaches the
//! caches of all the others, by two independent roads.
//!
//! - The **listener** (`LISTEN`, its own connection) hears the key ids that the write path sends with
//!   `NOTIFY` inside the change's transaction, and forgets them within `NOTIFY_POLL` of the commit. On
//!   a reconnect it clears the whole cache, since notifications may have been missed (not on its
//!   first connection: the log reader covers the moments before it, and a cache filled by the first
//!   requests must not be thrown away by a listener that happened to connect after them).
//! - The **log reader** (a pooled connection) reads `revocation_log` after the last number it saw
//!   every `LOG_POLL`: one primary-key read. It catches whatever the listener missed (a connection
//!   killed between a commit and its delivery) within that period, so revocation never rests on a
//!   notification alone. A gap in the numbers (entries pruned while it could not read) clears the cache.
//!
//! Cache entries also expire after a minute, the last safety net. SQLite has one instance: neither
//! runs; the write path clears its own cache.

use std::sync::Weak;
use std::time::{Duration, Instant};

use diesel::prelude::*;

use crate::db::Pool;
use crate::revocation::{self, CHANNEL, Revoked};
use crate::verify::Verifier;

/// How often the listener looks for notifications: a local socket read, no round trip.
const NOTIFY_POLL: Duration = Duration::from_millis(50);
/// How often the listener checks that its connection is alive.
const HEALTH_CHECK: Duration = Duration::from_secs(5);
/// How often the log reader reads the revocation log.
pub const LOG_POLL: Duration = Duration::from_millis(250);
/// Most log entries read at once; a reader further behind clears its cache instead.
const LOG_BATCH: i64 = 1000;
/// How often old log entries are pruned.
const PRUNE_EVERY: Duration = Duration::from_secs(3600);
/// The `application_name` of the listener's connection, to find it in `pg_stat_activity`.
pub const LISTENER_NAME: &str = "bms-keys-revocation-listener";

/// Starts the log reader, and the listener unless `listen` is off, for a PostgreSQL database. Both
/// stop by themselves once the verifier is dropped (the server has shut down).
pub fn spawn_listener(database_url: String, listen: bool, pool: Pool, verifier: Weak<Verifier>) {
    // Where the log stands before the first request is served: every entry after it is read.
    let head = pool
        .get_timeout(Duration::from_secs(1))
        .ok()
        .and_then(|mut conn| revocation::log_head(&mut conn).ok());
    if listen {
        let listener_verifier = verifier.clone();
        let url = with_application_name(&database_url);
        let spawned = std::thread::Builder::new()
            .name("bms-revocations".to_owned())
            .spawn(move || self::listen(&url, &listener_verifier));
        if let Err(e) = spawned {
            tracing::error!("cannot start the revocation listener: {e}");
        }
    }
    let spawned = std::thread::Builder::new()
        .name("bms-revocation-log".to_owned())
        .spawn(move || read_log(&pool, &verifier, head));
    if let Err(e) = spawned {
        tracing::error!("cannot start the revocation log reader: {e}");
    }
}

/// The URL with this connection's `application_name` added.
fn with_application_name(url: &str) -> String {
    let separator = if url.contains('?') { '&' } else { '?' };
    format!("{url}{separator}application_name={LISTENER_NAME}")
}

fn listen(url: &str, verifier: &Weak<Verifier>) {
    let mut first = true;
    while verifier.strong_count() > 0 {
        match diesel::PgConnection::establish(url) {
            Ok(mut conn) => {
                if let Err(e) = diesel::sql_query(format!("LISTEN {CHANNEL}")).execute(&mut conn) {
                    tracing::warn!("revocation listener cannot LISTEN: {e}");
                } else if let Some(v) = verifier.upgrade() {
                    if !std::mem::take(&mut first) {
                        // Changes may have happened while we were not listening.
                        v.cache.clear();
                    }
                    drop(v);
                    poll(&mut conn, verifier);
                }
            }
            Err(e) => tracing::warn!("revocation listener cannot connect: {e}"),
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Receives notifications until the connection fails or the verifier is gone.
fn poll(conn: &mut diesel::PgConnection, verifier: &Weak<Verifier>) {
    let mut checked = Instant::now();
    loop {
        std::thread::sleep(NOTIFY_POLL);
        let Some(v) = verifier.upgrade() else { return };
        if checked.elapsed() >= HEALTH_CHECK {
            if diesel::sql_query("SELECT 1").execute(conn).is_err() {
                tracing::warn!("revocation listener lost its connection: reconnecting");
                return;
            }
            checked = Instant::now();
        }
        let mut changed: Vec<String> = Vec::new();
        for notification in conn.notifications_iter() {
            match notification {
                Ok(n) => changed.push(n.payload),
                Err(e) => {
                    tracing::warn!("revocation listener lost its connection: {e}");
                    return;
                }
            }
        }
        if !changed.is_empty() {
            v.forget(&Revoked::keys(changed.iter().map(String::as_str)));
        }
        drop(v);
    }
}

/// Reads the revocation log after `head` every `LOG_POLL` until the verifier is gone.
fn read_log(pool: &Pool, verifier: &Weak<Verifier>, head: Option<i64>) {
    // Unknown when the database could not be read at the start: the first read takes the head and
    // clears the cache, since entries before it may concern what the cache holds.
    let mut last = head;
    let mut pruned = Instant::now();
    let mut failing = false;
    while verifier.strong_count() > 0 {
        let read = pool
            .get_timeout(Duration::from_secs(1))
            .map_err(|e| e.to_string())
            .and_then(|mut conn| {
                let entries = match last {
                    None => {
                        last = Some(revocation::log_head(&mut conn).map_err(|e| e.to_string())?);
                        if let Some(v) = verifier.upgrade() {
                            v.cache.clear();
                        }
                        Vec::new()
                    }
                    Some(seq) => revocation::log_after(&mut conn, seq, LOG_BATCH)
                        .map_err(|e| e.to_string())?,
                };
                if pruned.elapsed() >= PRUNE_EVERY {
                    pruned = Instant::now();
                    if let Err(e) = revocation::prune_log(&mut conn) {
                        tracing::warn!("cannot prune the revocation log: {e}");
                    }
                }
                Ok(entries)
            });
        match read {
            Ok(entries) => {
                if failing {
                    tracing::info!("revocation log readable again");
                    failing = false;
                }
                if let (Some(seq), Some(v)) = (last, verifier.upgrade()) {
                    last = Some(apply(&v, seq, &entries));
                }
            }
            Err(e) => {
                if !failing {
                    tracing::warn!("cannot read the revocation log: {e}");
                    failing = true;
                }
            }
        }
        std::thread::sleep(LOG_POLL);
    }
}

/// Forgets the keys of log entries after `seq`; answers the new last number. Entries missing
/// between `seq` and the first one read, or more than one batch, clear the whole cache.
fn apply(verifier: &Verifier, seq: i64, entries: &[(i64, String)]) -> i64 {
    let Some((first, _)) = entries.first() else {
        return seq;
    };
    let behind = i64::try_from(entries.len()).unwrap_or(i64::MAX) >= LOG_BATCH;
    let last = entries.last().map_or(seq, |(last, _)| *last);
    let mut own = verifier.own_log_entries();
    if *first != seq + 1 || behind {
        own.clear();
        drop(own);
        tracing::warn!("revocation log: entries missed, clearing the cache");
        verifier.cache.clear();
        return last;
    }
    // This instance's own changes were applied when they were made.
    let others: Vec<&str> = entries
        .iter()
        .filter(|(n, _)| !own.remove(n))
        .map(|(_, k)| k.as_str())
        .collect();
    own.retain(|n| *n > last);
    drop(own);
    verifier.forget(&Revoked::keys(others));
    last
}
