//! Usage of access codes: when each code and key was last used, and requests per key per day.
//! Counted in memory on the request path (an atomic step on the cached grant, no I/O) and written in
//! batches every few seconds and at shutdown; read back for the key list, the key page's chart and the metrics API.

use std::sync::atomic::Ordering::SeqCst;
use std::sync::atomic::{AtomicI64, AtomicU64};
use std::sync::{Arc, Mutex};

// foldhash rather than SipHash: the keys are ids this server issued (a client cannot choose them to
// collide); foldhash is seeded per process all the same.
use foldhash::HashMap;

use diesel::prelude::*;
use time::{Date, Duration, PrimitiveDateTime};

use crate::db::{self, DbConn};
use crate::schema::{access_codes, api_keys, usage_daily};
use crate::verify::Grant;
use crate::verify::cache::CodeEntry;

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

/// Usage not yet written: the batch the flusher writes.
#[derive(Debug, Default)]
pub struct Pending {
    /// Requests by the key whose policies decided, then by account acted on and day (a key acts on
    /// one or a few accounts: a short list).
    counts: HashMap<Arc<str>, Vec<Count>>,
    /// The last request of each access code. The code's own key is "used" then too (for a linked
    /// key, the link is in `counts`).
    codes_used: HashMap<Arc<str>, PrimitiveDateTime>,
}

impl Pending {
    pub fn is_empty(&self) -> bool {
        self.counts.is_empty() && self.codes_used.is_empty()
    }

    /// Adds `requests` made by `key` on `account` on `day`, the last of them at `last`.
    fn add(
        &mut self,
        key: &Arc<str>,
        account: &Arc<str>,
        day: Date,
        requests: i64,
        last: PrimitiveDateTime,
    ) {
        let counts = self.counts.entry(key.clone()).or_default();
        match counts
            .iter_mut()
            .find(|c| c.day == day && c.account == *account)
        {
            Some(c) => {
                c.requests += requests;
                c.last = c.last.max(last);
            }
            None => counts.push(Count {
                account: account.clone(),
                day,
                requests,
                last,
            }),
        }
    }

    /// Notes a use of the access code at `at`, keeping the latest.
    fn code_used(&mut self, code: &Arc<str>, at: PrimitiveDateTime) {
        let last = self.codes_used.entry(code.clone()).or_insert(at);
        *last = (*last).max(at);
    }

    /// Adds another batch to this one.
    fn merge(&mut self, other: Pending) {
        for (key, counts) in other.counts {
            for c in counts {
                self.add(&key, &c.account, c.day, c.requests, c.last);
            }
        }
        for (code, at) in other.codes_used {
            self.code_used(&code, at);
        }
    }
}

/// How many low bits of a tally's word hold the count; the day (a Julian day number) is above them.
const COUNT_BITS: u32 = 40;
const COUNT_MASK: u64 = (1 << COUNT_BITS) - 1;

/// The requests of one grant (a code's key on its own account, or a link on the linking account) not
/// yet handed to the flusher, kept with the grant in the verification cache: counting a request is
/// an atomic step on a word the verification has just read, not a lock and two map lookups.
///
/// The day and the count share one word (so that a request is counted on its day in one step); zero
/// means nothing counted. The last request's time is beside it.
#[derive(Debug, Default)]
pub struct Tally {
    day_and_count: AtomicU64,
    /// Unix time in nanoseconds of the last request, 0 when none since the last drain.
    last: AtomicI64,
}

impl Tally {
    /// Counts a request made at `now`. When the tally still holds requests of an earlier day (the
    /// first request after midnight), it starts over on `now`'s day and returns the earlier
    /// day's count, for the caller to keep elsewhere.
    fn count(&self, now: PrimitiveDateTime) -> Option<(Date, i64)> {
        let today = now.date();
        let today_word = (today.to_julian_day() as u64) << COUNT_BITS;
        self.last
            .store(unix_nanos(now), std::sync::atomic::Ordering::Relaxed);
        let mut current = self.day_and_count.load(SeqCst);
        loop {
            let (next, displaced) = if current & !COUNT_MASK == today_word {
                (current + 1, None)
            } else {
                (today_word | 1, unpack(current))
            };
            match self
                .day_and_count
                .compare_exchange_weak(current, next, SeqCst, SeqCst)
            {
                Ok(_) => return displaced,
                Err(actual) => current = actual,
            }
        }
    }

    /// Takes what was counted: the day and its requests, and the last request's time.
    fn drain(&self) -> (Option<(Date, i64)>, Option<PrimitiveDateTime>) {
        let counted = unpack(self.day_and_count.swap(0, SeqCst));
        let last = match self.last.swap(0, SeqCst) {
            0 => None,
            nanos => from_unix_nanos(nanos),
        };
        (counted, last)
    }
}

/// A tally's word as its day and count, if it counts anything.
fn unpack(word: u64) -> Option<(Date, i64)> {
    let count = (word & COUNT_MASK) as i64;
    let day = Date::from_julian_day((word >> COUNT_BITS) as i32).ok()?;
    (count > 0).then_some((day, count))
}

fn unix_nanos(at: PrimitiveDateTime) -> i64 {
    // Within i64 until the year 2262.
    at.assume_utc().unix_timestamp_nanos() as i64
}

fn from_unix_nanos(nanos: i64) -> Option<PrimitiveDateTime> {
    let at = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(nanos)).ok()?;
    Some(PrimitiveDateTime::new(at.date(), at.time()))
}

/// Counts the requests the verification path allows, and hands them to the flusher in batches.
///
/// A request is counted on its grant's `Tally`; the first request of a cache entry since the last
/// flush also queues the entry (its `usage_queued` flag says whether it is queued), so that the
/// flusher drains exactly the entries with something to write, even ones the cache has dropped
/// since. Counts that cannot live in a tally (an earlier day's, a batch the database refused) wait
/// in `spilled`.
#[derive(Debug, Default)]
pub struct UsageRecorder {
    queued: Mutex<Vec<Arc<CodeEntry>>>,
    spilled: Mutex<Pending>,
}

impl UsageRecorder {
    /// Counts one allowed request, made at `now`.
    pub fn record(&self, grant: &Grant, now: PrimitiveDateTime) {
        if let Some((day, requests)) = grant.tally().count(now) {
            // The first request after midnight: yesterday's count moves aside.
            let last = day.with_hms(23, 59, 59).map_or(now, |t| t.min(now));
            lock(&self.spilled).add(grant.api_key_id(), grant.account_id(), day, requests, last);
        }
        // SeqCst with the flusher's reset of the flag (`take`): if this sees the entry queued, the
        // flusher's drain comes after the count above.
        let entry = grant.entry();
        if !entry.usage_queued.load(SeqCst) && !entry.usage_queued.swap(true, SeqCst) {
            lock(&self.queued).push(entry.clone());
        }
    }

    /// Takes what is pending, leaving an empty batch.
    pub fn take(&self) -> Pending {
        let mut batch = std::mem::take(&mut *lock(&self.spilled));
        let queued = std::mem::take(&mut *lock(&self.queued));
        for entry in queued {
            // Before the drain: a request counted after the drain queues the entry again.
            entry.usage_queued.store(false, SeqCst);
            let tallies = std::iter::once((&entry.key_id, &entry.account_id, &entry.own_tally))
                .chain(
                    entry
                        .links
                        .values()
                        .map(|l| (&l.link_key_id, &l.account_id, &l.tally)),
                );
            let mut code_last = None;
            for (key, account, tally) in tallies {
                let (counted, last) = tally.drain();
                if let Some((day, requests)) = counted {
                    let last = last.unwrap_or_else(|| day.midnight());
                    batch.add(key, account, day, requests, last);
                }
                code_last = code_last.max(last);
            }
            if let Some(at) = code_last {
                batch.code_used(&entry.code_id, at);
            }
        }
        batch
    }

    /// Puts back a batch that could not be written (the database was away), to try again later.
    pub fn restore(&self, batch: Pending) {
        lock(&self.spilled).merge(batch);
    }
}

/// A lock that a panic elsewhere does not make unusable: the counts are plain data.
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verify::cache::{CodeEntry, LinkGrant, PolicySet};
    use time::macros::datetime;

    fn entry(links: &[(&str, &str)]) -> Arc<CodeEntry> {
        Arc::new(CodeEntry {
            code_id: Arc::from("code_1"),
            key_id: Arc::from("key_own"),
            account_id: Arc::from("acc_own"),
            enabled: true,
            expires_at: datetime!(2030-01-01 0:00),
            own: PolicySet::default(),
            rate: crate::limits::RateLimit::NONE,
            links: links
                .iter()
                .map(|&(account, key)| {
                    let link = LinkGrant {
                        account_id: Arc::from(account),
                        link_key_id: Arc::from(key),
                        policies: PolicySet::default(),
                        rate: crate::limits::RateLimit::NONE,
                        answer: Default::default(),
                        tally: Tally::default(),
                    };
                    (Arc::from(account), Arc::new(link))
                })
                .collect(),
            own_answer: Default::default(),
            own_tally: Tally::default(),
            usage_queued: Default::default(),
        })
    }

    fn own(entry: &Arc<CodeEntry>, at: PrimitiveDateTime) -> Grant {
        Grant::for_test(entry.clone(), None, at)
    }

    /// The batch as (key, account, day, requests, last) rows, sorted, and the codes' last uses.
    type Rows = Vec<(String, String, Date, i64, PrimitiveDateTime)>;
    fn rows(batch: &Pending) -> (Rows, Vec<(String, PrimitiveDateTime)>) {
        let mut counts: Rows = batch
            .counts
            .iter()
            .flat_map(|(key, counts)| {
                counts.iter().map(|c| {
                    (
                        key.to_string(),
                        c.account.to_string(),
                        c.day,
                        c.requests,
                        c.last,
                    )
                })
            })
            .collect();
        counts.sort();
        let mut codes: Vec<_> = batch
            .codes_used
            .iter()
            .map(|(code, at)| (code.to_string(), *at))
            .collect();
        codes.sort();
        (counts, codes)
    }

    #[test]
    fn requests_are_counted_per_key_account_and_day_and_drained_once() {
        let recorder = UsageRecorder::default();
        let e = entry(&[("acc_other", "key_link")]);
        let link = e.links.get("acc_other").unwrap().clone();
        let t = datetime!(2026-12-06 10:00);
        for i in 0..3 {
            recorder.record(&own(&e, t + Duration::seconds(i)), t + Duration::seconds(i));
        }
        let later = t + Duration::minutes(1);
        recorder.record(&Grant::for_test(e.clone(), Some(link), later), later);
        let (counts, codes) = rows(&recorder.take());
        assert_eq!(
            counts,
            vec![
                ("key_link".into(), "acc_other".into(), t.date(), 1, later),
                (
                    "key_own".into(),
                    "acc_own".into(),
                    t.date(),
                    3,
                    t + Duration::seconds(2)
                ),
            ]
        );
        assert_eq!(
            codes,
            vec![("code_1".into(), later)],
            "the code's last use, own or linked"
        );
        assert!(recorder.take().is_empty(), "drained once");
        // Counted again after a drain: the entry is queued anew.
        recorder.record(&own(&e, later), later);
        assert_eq!(rows(&recorder.take()).0.len(), 1);
    }

    #[test]
    fn an_entry_the_cache_dropped_is_still_written() {
        let recorder = UsageRecorder::default();
        let t = datetime!(2026-12-06 10:00);
        {
            let e = entry(&[]);
            recorder.record(&own(&e, t), t);
        }
        let (counts, _) = rows(&recorder.take());
        assert_eq!(
            counts,
            vec![("key_own".into(), "acc_own".into(), t.date(), 1, t)]
        );
    }

    #[test]
    fn requests_around_midnight_count_on_their_own_days() {
        let recorder = UsageRecorder::default();
        let e = entry(&[]);
        let before = datetime!(2026-12-06 23:59:58);
        let after = datetime!(2026-12-07 0:00:01);
        recorder.record(&own(&e, before), before);
        recorder.record(&own(&e, before), before);
        recorder.record(&own(&e, after), after);
        let (counts, codes) = rows(&recorder.take());
        assert_eq!(
            counts.iter().map(|c| (c.2, c.3)).collect::<Vec<_>>(),
            vec![(before.date(), 2), (after.date(), 1)]
        );
        assert_eq!(codes, vec![("code_1".into(), after)]);
    }

    #[test]
    fn a_batch_put_back_is_written_with_the_next() {
        let recorder = UsageRecorder::default();
        let e = entry(&[]);
        let t = datetime!(2026-12-06 10:00);
        recorder.record(&own(&e, t), t);
        let failed = recorder.take();
        recorder.record(&own(&e, t), t);
        recorder.restore(failed);
        let (counts, _) = rows(&recorder.take());
        assert_eq!(
            counts,
            vec![("key_own".into(), "acc_own".into(), t.date(), 2, t)]
        );
    }

    #[test]
    fn no_request_is_lost_to_a_concurrent_flush() {
        let recorder = Arc::new(UsageRecorder::default());
        let e = entry(&[]);
        let t = datetime!(2026-12-06 10:00);
        let counters: Vec<_> = (0..4)
            .map(|_| {
                let (recorder, e) = (recorder.clone(), e.clone());
                std::thread::spawn(move || {
                    for _ in 0..20_000 {
                        recorder.record(&own(&e, t), t);
                    }
                })
            })
            .collect();
        let mut total = 0;
        while counters.iter().any(|c| !c.is_finished()) {
            total += rows(&recorder.take()).0.iter().map(|c| c.3).sum::<i64>();
        }
        total += rows(&recorder.take()).0.iter().map(|c| c.3).sum::<i64>();
        assert_eq!(total, 80_000);
    }
}
