//! Usage of access codes: when each code and key was last used, and requests per key per day.
//! Counted in memory on the request path (a map update, no I/O) and written in batches every few
//! seconds and at shutdown; read back for the key list, the key page's chart and the metrics API.

use std::sync::{Arc, Mutex};

// foldhash rather than SipHash: counting is on every allowed request, and the keys are ids this
// server issued (a client cannot choose them to collide); foldhash is seeded per process all the same.
use foldhash::HashMap;

use diesel::prelude::*;
use time::{Date, Duration, PrimitiveDateTime};

use crate::db::{self, DbConn};
use crate::schema::{access_codes, api_keys, usage_daily};
use crate::verify::Grant;

/// How often pending usage is written.
pub const FLUSH_EVERY: std::time::Duration = std::time::Duration::from_secs(2);

/// One key's requests on one account and day, and the last one's time.
#[derive(Debug, Clone)]
struct Count {
    account: Arc<str>,
    day: Date,
    requests: i64,
    last: PrimitiveDateTime,
}

/// Usage not yet written.
#[derive(Debug, Default)]
pub struct Pending {
    /// Requests by the key whose policies decided, then by account acted on and day (a key acts on
    /// one or a few accounts: a short list). Looked up by the key's id as a `&str`, so counting a
    /// request clones nothing.
    counts: HashMap<Arc<str>, Vec<Count>>,
    /// The last request of each access code. The code's own key is "used" then too (for a linked
    /// key, the link is in `counts`).
    codes_used: HashMap<Arc<str>, PrimitiveDateTime>,
}

impl Pending {
    pub fn is_empty(&self) -> bool {
        self.counts.is_empty() && self.codes_used.is_empty()
    }
}

#[derive(Debug, Default)]
pub struct UsageRecorder {
    pending: Mutex<Pending>,
}

impl UsageRecorder {
    /// Counts one allowed request, made at `now`.
    pub fn record(&self, grant: &Grant, now: PrimitiveDateTime) {
        let day = now.date();
        let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        let counts = match pending.counts.get_mut(grant.api_key_id()) {
            Some(counts) => counts,
            None => pending
                .counts
                .entry(grant.api_key_id().clone())
                .or_default(),
        };
        match counts
            .iter_mut()
            .find(|c| c.day == day && c.account == *grant.account_id())
        {
            Some(count) => {
                count.requests += 1;
                count.last = now;
            }
            None => counts.push(Count {
                account: grant.account_id().clone(),
                day,
                requests: 1,
                last: now,
            }),
        }
        match pending.codes_used.get_mut(grant.access_code_id()) {
            Some(last) => *last = now,
            None => {
                pending
                    .codes_used
                    .insert(grant.access_code_id().clone(), now);
            }
        }
    }

    /// Takes what is pending, leaving an empty batch.
    pub fn take(&self) -> Pending {
        std::mem::take(&mut *self.pending.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// Puts back a batch that could not be written (the database was away), to try again later.
    pub fn restore(&self, batch: Pending) {
        let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        for (key, restored) in batch.counts {
            let counts = pending.counts.entry(key).or_default();
            for r in restored {
                match counts
                    .iter_mut()
                    .find(|c| c.day == r.day && c.account == r.account)
                {
                    Some(c) => c.requests += r.requests,
                    None => counts.push(r),
                }
            }
        }
        for (k, t) in batch.codes_used {
            pending.codes_used.entry(k).or_insert(t);
        }
    }
}

/// Adds `n` requests to a day's counter. Upserts differ between the dialects, hence one statement
/// per backend; a key deleted since the request was counted is skipped.
fn add_requests(
    conn: &mut DbConn,
    key_id: &str,
    account_id: &str,
    day: Date,
    n: i64,
) -> QueryResult<()> {
    macro_rules! upsert {
        ($c:expr) => {
            diesel::insert_into(usage_daily::table)
                .values((
                    usage_daily::api_key_id.eq(key_id),
                    usage_daily::account_id.eq(account_id),
                    usage_daily::day.eq(day),
                    usage_daily::requests.eq(n),
                ))
                .on_conflict((usage_daily::api_key_id, usage_daily::day))
                .do_update()
                .set(usage_daily::requests.eq(usage_daily::requests + n))
                .execute($c)
        };
    }
    let exists: bool =
        diesel::select(diesel::dsl::exists(api_keys::table.find(key_id))).get_result(conn)?;
    if !exists {
        return Ok(());
    }
    match conn {
        DbConn::Sqlite(c) => upsert!(c)?,
        DbConn::Postgres(c) => upsert!(c)?,
    };
    Ok(())
}

/// Writes a batch in one transaction.
pub fn flush(conn: &mut DbConn, batch: &Pending) -> QueryResult<()> {
    db::write_transaction(conn, |conn| {
        for (key, counts) in &batch.counts {
            for c in counts {
                add_requests(conn, key, &c.account, c.day, c.requests)?;
            }
            if let Some(last) = counts.iter().map(|c| c.last).max() {
                diesel::update(api_keys::table.find(&**key))
                    .set(api_keys::last_used_at.eq(last))
                    .execute(conn)?;
            }
        }
        for (code, at) in &batch.codes_used {
            diesel::update(access_codes::table.find(&**code))
                .set(access_codes::last_used_at.eq(at))
                .execute(conn)?;
            // The code's own key (for a linked request, the link was updated above).
            diesel::update(
                api_keys::table.filter(
                    api_keys::id.eq_any(
                        access_codes::table
                            .filter(access_codes::id.eq(&**code))
                            .select(access_codes::api_key_id),
                    ),
                ),
            )
            .set(api_keys::last_used_at.eq(at))
            .execute(conn)?;
        }
        Ok(())
    })
}

/// Requests per day for the key over the last `days` days, oldest first, zero-filled.
pub fn daily_for_key(conn: &mut DbConn, key_id: &str, days: i64) -> QueryResult<Vec<(Date, i64)>> {
    let today = db::now().date();
    let first = today - Duration::days(days - 1);
    let rows: Vec<(Date, i64)> = usage_daily::table
        .filter(usage_daily::api_key_id.eq(key_id))
        .filter(usage_daily::day.ge(first))
        .select((usage_daily::day, usage_daily::requests))
        .load(conn)?;
    let by_day: HashMap<Date, i64> = rows.into_iter().collect();
    Ok((0..days)
        .map(|i| {
            let day = first + Duration::days(i);
            (day, by_day.get(&day).copied().unwrap_or(0))
        })
        .collect())
}

/// The account's requests per key per day over the last `days` days: (key id, key name, day, requests).
pub fn for_account(
    conn: &mut DbConn,
    account_id: &str,
    days: i64,
) -> QueryResult<Vec<(String, String, Date, i64)>> {
    let first = db::now().date() - Duration::days(days - 1);
    usage_daily::table
        .inner_join(api_keys::table)
        .filter(usage_daily::account_id.eq(account_id))
        .filter(usage_daily::day.ge(first))
        .order((usage_daily::day.asc(), api_keys::name.asc()))
        .select((
            api_keys::id,
            api_keys::name,
            usage_daily::day,
            usage_daily::requests,
        ))
        .load(conn)
}
