//! What a change revoked, and how that reaches every verifier.
//!
//! A domain command that changes what an access code may do (a key's policies, a link, a code's
//! enabled flag, a deletion) returns [`Changed`]: its result and the keys whose cached decisions are
//! now stale. It cannot be dropped unseen (`#[must_use]`), and only the one write path unwraps it:
//! [`commit`] runs the command in a write transaction and announces the keys inside it (PostgreSQL
//! `NOTIFY`, delivered to every instance only if the transaction commits); the console's
//! `web::session::SignedIn::change_in` (and the command line's `demo`) go through it, and the console
//! then clears the keys from this instance's cache. No domain function and no handler touches the
//! cache or `NOTIFY` itself.
//!
//! A notification can be lost (a listener's connection dropped at the wrong moment), so the keys are
//! also appended to `revocation_log`, numbered in commit order: each instance reads what came after
//! the last number it saw every 250 ms. The other side — each instance's listener and log reader —
//! is in `verify::listener`.

use diesel::prelude::*;

use crate::db::{self, DbConn};

/// The channel the notifications travel on.
pub const CHANNEL: &str = "bms_keys_changes";

/// The keys (own keys and links) whose cached verification decisions a change made stale.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[must_use = "what a change revoked must reach the verifiers: return it to the write path"]
pub struct Revoked {
    keys: Vec<String>,
    /// The numbers the change's entries got in the revocation log (PostgreSQL): the instance that
    /// made the change has cleared its cache already, and its log reader skips them.
    logged: Vec<i64>,
}

impl Revoked {
    /// Nothing cached depends on the change (a new key, a description, an audit-only read).
    pub fn nothing() -> Self {
        Self::default()
    }

    pub fn keys<'a>(ids: impl IntoIterator<Item = &'a str>) -> Self {
        Self {
            keys: ids.into_iter().map(str::to_owned).collect(),
            logged: Vec::new(),
        }
    }

    pub fn key_ids(&self) -> impl Iterator<Item = &str> {
        self.keys.iter().map(String::as_str)
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The log numbers of this change's entries (none before the commit, or on SQLite).
    pub fn logged(&self) -> &[i64] {
        &self.logged
    }
}

/// A command's result together with what it revoked.
#[derive(Debug)]
#[must_use = "what a change revoked must reach the verifiers: return it to the write path"]
pub struct Changed<T> {
    pub value: T,
    pub revoked: Revoked,
}

impl<T> Changed<T> {
    pub fn revoking(value: T, revoked: Revoked) -> Self {
        Self { value, revoked }
    }

    pub fn nothing_revoked(value: T) -> Self {
        Self::revoking(value, Revoked::nothing())
    }

    /// The same change with its result turned into another (what revoked stays).
    pub fn map<U>(self, f: impl FnOnce(T) -> U) -> Changed<U> {
        Changed {
            value: f(self.value),
            revoked: self.revoked,
        }
    }
}

/// The write path's transaction: runs `change` in a write transaction and announces what it revoked
/// inside it. The caller clears the returned keys from its own cache (if it has one) after this
/// returns, that is after the commit.
pub fn commit<T, E, F>(conn: &mut DbConn, change: F) -> Result<Changed<T>, E>
where
    F: FnOnce(&mut DbConn) -> Result<Changed<T>, E>,
    E: From<diesel::result::Error>,
{
    db::write_transaction(conn, |conn| {
        let mut changed = change(conn)?;
        publish(conn, &mut changed.revoked)?;
        Ok(changed)
    })
}

/// Announces, inside the change's transaction, that these keys changed: `NOTIFY` and the log. A
/// no-op on SQLite (one instance, whose cache the write path clears itself).
fn publish(conn: &mut DbConn, revoked: &mut Revoked) -> QueryResult<()> {
    let DbConn::Postgres(pg) = conn else {
        return Ok(());
    };
    if revoked.is_empty() {
        return Ok(());
    }
    // Numbers in commit order: the lock is held until this transaction ends, so a later number is
    // never visible before an earlier one (readers take no lock and are not held up).
    diesel::sql_query("LOCK TABLE revocation_log IN EXCLUSIVE MODE").execute(pg)?;
    let now = db::now();
    let mut seq = {
        use crate::schema::revocation_log;
        revocation_log::table
            .select(diesel::dsl::max(revocation_log::seq))
            .first::<Option<i64>>(pg)?
            .unwrap_or(0)
    };
    let mut logged = Vec::with_capacity(revoked.keys.len());
    for id in revoked.key_ids() {
        diesel::sql_query("SELECT pg_notify($1, $2)")
            .bind::<diesel::sql_types::Text, _>(CHANNEL)
            .bind::<diesel::sql_types::Text, _>(id)
            .execute(pg)?;
        seq += 1;
        diesel::sql_query("INSERT INTO revocation_log (seq, key_id, at) VALUES ($1, $2, $3)")
            .bind::<diesel::sql_types::BigInt, _>(seq)
            .bind::<diesel::sql_types::Text, _>(id)
            .bind::<diesel::sql_types::Timestamp, _>(now)
            .execute(pg)?;
        logged.push(seq);
    }
    revoked.logged = logged;
    Ok(())
}

/// How long the log keeps an entry: far longer than a cache entry lives, so an instance that was
/// cut off reads everything it missed or finds a gap and clears its cache.
pub const LOG_KEPT: time::Duration = time::Duration::days(1);

/// The log's entries after `seq`, oldest first (at most `limit`): one read of its primary key.
pub fn log_after(conn: &mut DbConn, seq: i64, limit: i64) -> QueryResult<Vec<(i64, String)>> {
    use crate::schema::revocation_log;
    revocation_log::table
        .filter(revocation_log::seq.gt(seq))
        .order(revocation_log::seq)
        .limit(limit)
        .select((revocation_log::seq, revocation_log::key_id))
        .load(conn)
}

/// The last number in the log (0 when empty).
pub fn log_head(conn: &mut DbConn) -> QueryResult<i64> {
    use crate::schema::revocation_log;
    Ok(revocation_log::table
        .select(diesel::dsl::max(revocation_log::seq))
        .first::<Option<i64>>(conn)?
        .unwrap_or(0))
}

/// Drops entries older than `LOG_KEPT` (any instance may; it is idempotent).
pub fn prune_log(conn: &mut DbConn) -> QueryResult<usize> {
    use crate::schema::revocation_log;
    diesel::delete(revocation_log::table.filter(revocation_log::at.lt(db::now() - LOG_KEPT)))
        .execute(conn)
}
