//! The cold path: everything an access code grants, read from the database by the code's digest.
//! Three indexed queries in one snapshot: the code and its key, the accounts that link the key, and
//! the policies of the key and of those links.

use std::collections::HashMap;
use std::sync::Arc;

use diesel::prelude::*;
use time::PrimitiveDateTime;

use crate::db::DbConn;
use crate::limits::RateLimit;
use crate::policies::Rule;
use crate::schema::{access_codes, api_key_policies, api_keys, policies};
use crate::verify::cache::{CodeEntry, LinkGrant, PolicySet};

/// The entry for the code with this digest, or `None` when no code has it. The three reads see one
/// snapshot (on PostgreSQL a repeatable-read, read-only transaction; SQLite's transaction is one
/// already): a lookup racing a key's deletion must not see the code but not its policies.
pub fn load_entry(conn: &mut DbConn, digest: &[u8; 32]) -> QueryResult<Option<CodeEntry>> {
    conn.transaction(|conn| {
        if let DbConn::Postgres(pg) = conn {
            diesel::sql_query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
                .execute(pg)?;
        }
        read_entry(conn, digest)
    })
}

fn read_entry(conn: &mut DbConn, digest: &[u8; 32]) -> QueryResult<Option<CodeEntry>> {
    type Found = (
        String,
        String,
        String,
        bool,
        PrimitiveDateTime,
        Option<i32>,
        Option<i32>,
    );
    let found: Option<Found> = access_codes::table
        .inner_join(api_keys::table)
        .filter(access_codes::secret_digest.eq(digest.as_slice()))
        .select((
            access_codes::id,
            api_keys::id,
            api_keys::account_id,
            access_codes::enabled,
            access_codes::expires_at,
            api_keys::rate_per_minute,
            api_keys::rate_per_day,
        ))
        .first(conn)
        .optional()?;
    let Some((code_id, key_id, account_id, enabled, expires_at, per_minute, per_day)) = found
    else {
        return Ok(None);
    };
    let links: Vec<(String, String, Option<i32>, Option<i32>)> = api_keys::table
        .filter(api_keys::linked_key_id.eq(&key_id))
        .select((
            api_keys::id,
            api_keys::account_id,
            api_keys::rate_per_minute,
            api_keys::rate_per_day,
        ))
        .load(conn)?;
    let mut ids: Vec<&str> = vec![key_id.as_str()];
    ids.extend(links.iter().map(|(id, ..)| id.as_str()));
    let held: Vec<(String, String, String)> = api_key_policies::table
        .inner_join(policies::table)
        .filter(api_key_policies::api_key_id.eq_any(&ids))
        // Retired policies grant nothing.
        .filter(policies::retired.eq(false))
        .order(policies::position)
        .select((
            api_key_policies::api_key_id,
            policies::name,
            policies::rules,
        ))
        .load(conn)?;
    let mut sets: HashMap<&str, (Vec<String>, Vec<Rule>)> = HashMap::new();
    for (holder, name, rules) in &held {
        let set = sets.entry(holder.as_str()).or_default();
        set.0.push(name.clone());
        set.1
            .extend(rules.lines().filter_map(|l| Rule::parse(l).ok()));
    }
    let mut set_of = |id: &str| {
        let (names, rules) = sets.remove(id).unwrap_or_default();
        PolicySet {
            names: names.into(),
            rules: rules.into(),
        }
    };
    let own = set_of(&key_id);
    let links = links
        .iter()
        .map(|(link_id, link_account, per_minute, per_day)| {
            let account_id: Arc<str> = Arc::from(link_account.as_str());
            let link = LinkGrant {
                account_id: account_id.clone(),
                link_key_id: Arc::from(link_id.as_str()),
                policies: set_of(link_id),
                rate: RateLimit::from_columns(*per_minute, *per_day),
                answer: Default::default(),
            };
            (account_id, Arc::new(link))
        })
        .collect();
    Ok(Some(CodeEntry {
        code_id: code_id.into(),
        key_id: key_id.into(),
        account_id: account_id.into(),
        enabled,
        expires_at,
        own,
        rate: RateLimit::from_columns(per_minute, per_day),
        links,
        own_answer: Default::default(),
    }))
}
