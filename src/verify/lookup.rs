//! The cold path: everything an access code grants, read from the database by the code's digest — the
//! code and its key, every key that decides for it (the key itself and the accounts' links to it), and
//! their policies, as rows of one shape (one per holder and policy), read in one snapshot (a lookup
//! racing a key's deletion cannot see the code but not its policies).
//!
//! On PostgreSQL that is one statement: one round trip, where three queries in a repeatable-read
//! transaction took six (`benches/cold_lookup.rs`, a million codes: a miss's p99 1.73 ms then, 0.32 ms
//! now). SQLite runs in-process, with no round trip to save: there three short statements in one
//! transaction are cheaper than the compound one (p50 0.026 ms against 0.092 ms).

use std::collections::HashMap;
use std::sync::Arc;

use diesel::prelude::*;
use time::PrimitiveDateTime;

use crate::db::DbConn;
use crate::limits::RateLimit;
use crate::policies::Rule;
use crate::schema::{access_codes, api_key_policies, api_keys, policies};
use crate::verify::cache::{CodeEntry, LinkGrant, PolicySet};

/// One row of the lookup: the code and its key, one holder (the key, or a link to it), and one of
/// the holder's policies with its position (none: `None`, the holder's only row).
type Row = (
    (String, String, String, bool, PrimitiveDateTime),
    (Option<i32>, Option<i32>),
    (String, String, Option<i32>, Option<i32>),
    Option<(i32, String, String)>,
);

/// The code and its key, as every row starts: read the same way by both backends' queries.
const CODE: (
    access_codes::id,
    api_keys::id,
    api_keys::account_id,
    access_codes::enabled,
    access_codes::expires_at,
) = (
    access_codes::id,
    api_keys::id,
    api_keys::account_id,
    access_codes::enabled,
    access_codes::expires_at,
);
/// The key's own rate limits.
const KEY_RATES: (api_keys::rate_per_minute, api_keys::rate_per_day) =
    (api_keys::rate_per_minute, api_keys::rate_per_day);

/// The entry for the code with this digest, or `None` when no code has it.
pub fn load_entry(conn: &mut DbConn, digest: &[u8; 32]) -> QueryResult<Option<CodeEntry>> {
    let mut rows = match conn {
        DbConn::Postgres(pg) => rows_in_one_statement(pg, digest)?,
        DbConn::Sqlite(sqlite) => sqlite.transaction(|c| rows_in_three_reads(c, digest))?,
    };
    // By holder (each one's rows together), then policy position (the order policies are listed).
    rows.sort_by(|a, b| {
        (&a.2.0, a.3.as_ref().map(|p| p.0)).cmp(&(&b.2.0, b.3.as_ref().map(|p| p.0)))
    });
    Ok(entry_from_rows(rows))
}

/// Two selects in one statement (`UNION ALL`): the key's own policies, and its links' — each
/// through an index from the code's digest.
fn rows_in_one_statement(
    conn: &mut diesel::PgConnection,
    digest: &[u8; 32],
) -> QueryResult<Vec<Row>> {
    let holders = diesel::alias!(api_keys as holders);
    // What both selects share besides `CODE`: the policy columns, and which policies count.
    let policy = (policies::position, policies::name, policies::rules).nullable();
    // Retired policies grant nothing.
    let active = policies::name
        .eq(api_key_policies::policy_name)
        .and(policies::retired.eq(false));
    let by_digest = access_codes::secret_digest.eq(digest.as_slice());
    let own = access_codes::table
        .inner_join(api_keys::table)
        .left_join(api_key_policies::table.on(api_key_policies::api_key_id.eq(api_keys::id)))
        .left_join(policies::table.on(active))
        .filter(by_digest)
        .select((
            CODE,
            KEY_RATES,
            (
                api_keys::id,
                api_keys::account_id,
                api_keys::rate_per_minute,
                api_keys::rate_per_day,
            ),
            policy,
        ));
    let links = access_codes::table
        .inner_join(api_keys::table)
        .inner_join(
            holders.on(holders
                .field(api_keys::linked_key_id)
                .eq(api_keys::id.nullable())),
        )
        .left_join(
            api_key_policies::table
                .on(api_key_policies::api_key_id.eq(holders.field(api_keys::id))),
        )
        .left_join(policies::table.on(active))
        .filter(by_digest)
        .select((
            CODE,
            KEY_RATES,
            (
                holders.field(api_keys::id),
                holders.field(api_keys::account_id),
                holders.field(api_keys::rate_per_minute),
                holders.field(api_keys::rate_per_day),
            ),
            policy,
        ));
    // On PostgreSQL's own connection: diesel's multi-backend connection has no `UNION`.
    own.union_all(links).load(conn)
}

/// The code and its key, then the links to the key, then the policies of all of them.
fn rows_in_three_reads(
    conn: &mut diesel::SqliteConnection,
    digest: &[u8; 32],
) -> QueryResult<Vec<Row>> {
    type Code = (
        (String, String, String, bool, PrimitiveDateTime),
        (Option<i32>, Option<i32>),
    );
    let found: Option<Code> = access_codes::table
        .inner_join(api_keys::table)
        .filter(access_codes::secret_digest.eq(digest.as_slice()))
        .select((CODE, KEY_RATES))
        .first(conn)
        .optional()?;
    let Some((code, rates)) = found else {
        return Ok(Vec::new());
    };
    let mut holders: Vec<(String, String, Option<i32>, Option<i32>)> = api_keys::table
        .filter(api_keys::linked_key_id.eq(&code.1))
        .select((
            api_keys::id,
            api_keys::account_id,
            api_keys::rate_per_minute,
            api_keys::rate_per_day,
        ))
        .load(conn)?;
    holders.push((code.1.clone(), code.2.clone(), rates.0, rates.1));
    let ids: Vec<&str> = holders.iter().map(|(id, ..)| id.as_str()).collect();
    let held: Vec<(String, i32, String, String)> = api_key_policies::table
        .inner_join(policies::table)
        .filter(api_key_policies::api_key_id.eq_any(&ids))
        // Retired policies grant nothing.
        .filter(policies::retired.eq(false))
        .select((
            api_key_policies::api_key_id,
            policies::position,
            policies::name,
            policies::rules,
        ))
        .load(conn)?;
    let mut rows = Vec::with_capacity(held.len() + holders.len());
    for holder in holders {
        let before = rows.len();
        for (_, position, name, rules) in held.iter().filter(|(id, ..)| *id == holder.0) {
            let policy = Some((*position, name.clone(), rules.clone()));
            rows.push((code.clone(), rates, holder.clone(), policy));
        }
        if rows.len() == before {
            rows.push((code.clone(), rates, holder, None));
        }
    }
    Ok(rows)
}

/// Folds the rows (ordered by holder, then policy position) into the entry.
fn entry_from_rows(rows: Vec<Row>) -> Option<CodeEntry> {
    let ((code_id, key_id, account_id, enabled, expires_at), (per_minute, per_day)) = {
        let (code, rates, ..) = rows.first()?;
        (code.clone(), *rates)
    };
    /// A holder's policies: names to report, rules to match.
    type Held = (Vec<String>, Vec<Rule>);
    let mut own: Held = Default::default();
    let mut links: Vec<(String, String, RateLimit, Held)> = Vec::new();
    for (_, _, (holder, holder_account, minute, day), policy) in rows {
        let set = if holder == key_id {
            &mut own
        } else {
            if links.last().is_none_or(|(id, ..)| *id != holder) {
                let rate = RateLimit::from_columns(minute, day);
                links.push((holder, holder_account, rate, Default::default()));
            }
            match links.last_mut() {
                Some((.., set)) => set,
                None => continue,
            }
        };
        if let Some((_, name, rules)) = policy {
            set.0.push(name);
            set.1
                .extend(rules.lines().filter_map(|l| Rule::parse(l).ok()));
        }
    }
    let set = |(names, rules): Held| PolicySet {
        names: names.into(),
        rules: rules.into(),
    };
    let links: HashMap<Arc<str>, Arc<LinkGrant>> = links
        .into_iter()
        .map(|(link_id, link_account, rate, policies)| {
            let account_id: Arc<str> = Arc::from(link_account);
            let link = LinkGrant {
                account_id: account_id.clone(),
                link_key_id: Arc::from(link_id),
                policies: set(policies),
                rate,
                answer: Default::default(),
                tally: Default::default(),
            };
            (account_id, Arc::new(link))
        })
        .collect();
    Some(CodeEntry {
        code_id: code_id.into(),
        key_id: key_id.into(),
        account_id: account_id.into(),
        enabled,
        expires_at,
        own: set(own),
        rate: RateLimit::from_columns(per_minute, per_day),
        links,
        own_answer: Default::default(),
        own_tally: Default::default(),
        usage_queued: Default::default(),
    })
}
