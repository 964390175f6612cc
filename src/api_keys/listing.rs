//! Reading keys for the pages: one page of an account's keys with a search and a tag filter, the
//! details shown beside each key (tags, policies, code counts, link sources) in a few batched queries,
//! and the account's tags.

use std::collections::HashMap;

use diesel::prelude::*;
use time::PrimitiveDateTime;

use crate::db::{self, DbConn};
use crate::schema::{access_codes, accounts, api_key_policies, api_key_tags, api_keys, policies};

use super::ApiKey;

/// Keys per page of the list.
pub const PAGE_SIZE: i64 = 25;

/// A policy as a key holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeldPolicy {
    pub name: String,
    pub retired: bool,
}

/// Where a linked key comes from.
#[derive(Debug, Clone)]
pub enum LinkSource {
    Key {
        key_id: String,
        account_name: String,
    },
    /// The source key's account deleted it.
    Deleted,
    /// The source key's owner removed this link; the source id while that key still exists.
    Removed {
        source_key_id: Option<String>,
        removed_at: PrimitiveDateTime,
    },
}

/// Everything shown about a set of keys besides the key rows, loaded in a few batched queries.
#[derive(Debug, Default)]
pub struct KeyDetails {
    pub tags: HashMap<String, Vec<String>>,
    pub policies: HashMap<String, Vec<HeldPolicy>>,
    pub code_counts: HashMap<String, i64>,
    /// Keys with an enabled code expiring within 30 days (or expired): days left on the soonest
    /// (negative once expired).
    pub expiring: HashMap<String, i64>,
    /// Linked keys only, by the linking key's id.
    pub sources: HashMap<String, LinkSource>,
    /// Keys with a code reported as exposed: the code, when, and by what (the latest report).
    pub exposed: HashMap<String, (String, PrimitiveDateTime, String)>,
}

/// Loads tags, policies, code counts and link sources for `keys` — four queries, whatever their number.
pub fn details_of(conn: &mut DbConn, keys: &[ApiKey]) -> QueryResult<KeyDetails> {
    let ids: Vec<&str> = keys.iter().map(|k| k.id.as_str()).collect();
    let mut details = KeyDetails::default();
    if ids.is_empty() {
        return Ok(details);
    }
    let tags: Vec<(String, String)> = api_key_tags::table
        .filter(api_key_tags::api_key_id.eq_any(&ids))
        .order((api_key_tags::api_key_id, api_key_tags::tag))
        .select((api_key_tags::api_key_id, api_key_tags::tag))
        .load(conn)?;
    for (key, tag) in tags {
        details.tags.entry(key).or_default().push(tag);
    }
    let held: Vec<(String, String, bool)> = api_key_policies::table
        .inner_join(policies::table)
        .filter(api_key_policies::api_key_id.eq_any(&ids))
        .order((api_key_policies::api_key_id, policies::position))
        .select((
            api_key_policies::api_key_id,
            policies::name,
            policies::retired,
        ))
        .load(conn)?;
    for (key, name, retired) in held {
        details
            .policies
            .entry(key)
            .or_default()
            .push(HeldPolicy { name, retired });
    }
    // At most two codes per key: loading them is as cheap as counting, and tells expiry too.
    type CodeRow = (
        String,
        bool,
        PrimitiveDateTime,
        String,
        Option<PrimitiveDateTime>,
        Option<String>,
    );
    let codes: Vec<CodeRow> = access_codes::table
        .filter(access_codes::api_key_id.eq_any(&ids))
        .select((
            access_codes::api_key_id,
            access_codes::enabled,
            access_codes::expires_at,
            access_codes::id,
            access_codes::exposed_at,
            access_codes::exposure_source,
        ))
        .load(conn)?;
    let now = db::now();
    for (key, enabled, expires_at, code_id, exposed_at, source) in codes {
        if let Some(at) = exposed_at {
            let latest = details
                .exposed
                .get(&key)
                .is_none_or(|(_, earlier, _)| *earlier < at);
            if latest {
                let source = source.unwrap_or_default();
                details.exposed.insert(key.clone(), (code_id, at, source));
            }
        }
        *details.code_counts.entry(key.clone()).or_default() += 1;
        let left = expires_at - now;
        if enabled && left <= crate::access_codes::EXPIRY_WARNING {
            let days = left.whole_days();
            let soonest = details.expiring.entry(key).or_insert(days);
            *soonest = (*soonest).min(days);
        }
    }
    let linked: Vec<&str> = keys
        .iter()
        .filter_map(|k| k.linked_key_id.as_deref())
        .collect();
    let source_accounts: HashMap<String, String> = if linked.is_empty() {
        HashMap::new()
    } else {
        api_keys::table
            .inner_join(accounts::table)
            .filter(api_keys::id.eq_any(&linked))
            .select((api_keys::id, accounts::name))
            .load::<(String, String)>(conn)?
            .into_iter()
            .collect()
    };
    let removed_ids: Vec<&str> = keys
        .iter()
        .filter(|k| k.link_removed_at.is_some())
        .map(|k| k.id.as_str())
        .collect();
    let removed_sources = super::links::removed_sources(conn, &removed_ids)?;
    for key in keys.iter().filter(|k| k.is_linked()) {
        if let Some(removed_at) = key.link_removed_at {
            let source_key_id = removed_sources.get(&key.id).cloned();
            let removed = LinkSource::Removed {
                source_key_id,
                removed_at,
            };
            details.sources.insert(key.id.clone(), removed);
            continue;
        }
        let source = key
            .linked_key_id
            .as_ref()
            .and_then(|id| source_accounts.get(id).map(|name| (id, name)))
            .map_or(LinkSource::Deleted, |(id, name)| LinkSource::Key {
                key_id: id.clone(),
                account_name: name.clone(),
            });
        details.sources.insert(key.id.clone(), source);
    }
    Ok(details)
}

/// The list's search and filter, as given in the URL.
#[derive(Debug, Clone, Default)]
pub struct ListFilter {
    /// Part of a name (any case), or a whole key id.
    pub q: String,
    pub tag: String,
    /// 1-based; out-of-range pages show the nearest page.
    pub page: i64,
    /// Only keys with an enabled code expiring within 30 days (or already expired).
    pub expiring_only: bool,
}

/// One page of keys.
#[derive(Debug)]
pub struct KeyPage {
    pub keys: Vec<ApiKey>,
    pub details: KeyDetails,
    pub total: i64,
    pub page: i64,
    pub pages: i64,
}

type BoxedKeys<'a> = api_keys::BoxedQuery<'a, crate::db::MultiBackend>;

fn filtered<'a>(account_id: &'a str, filter: &'a ListFilter) -> BoxedKeys<'a> {
    let mut query = api_keys::table
        .filter(api_keys::account_id.eq(account_id))
        .into_boxed();
    let q = filter.q.trim();
    if !q.is_empty() {
        query = query.filter(
            db::lower(api_keys::name)
                .like(db::contains_pattern(q))
                .escape('\\')
                .or(api_keys::id.eq(q))
                .or(api_keys::linked_key_id.eq(q)),
        );
    }
    if filter.expiring_only {
        let soon = db::now() + crate::access_codes::EXPIRY_WARNING;
        query = query.filter(
            api_keys::id.eq_any(
                access_codes::table
                    .filter(access_codes::enabled.eq(true))
                    .filter(access_codes::expires_at.le(soon))
                    .select(access_codes::api_key_id),
            ),
        );
    }
    let tag = filter.tag.trim();
    if !tag.is_empty() {
        query = query.filter(
            api_keys::id.eq_any(
                api_key_tags::table
                    .filter(api_key_tags::account_id.eq(account_id))
                    .filter(api_key_tags::tag.eq(tag.to_lowercase()))
                    .select(api_key_tags::api_key_id),
            ),
        );
    }
    query
}

/// One page of the account's keys, newest first, with their details.
pub fn list_for_account(
    conn: &mut DbConn,
    account_id: &str,
    filter: &ListFilter,
) -> QueryResult<KeyPage> {
    let total: i64 = filtered(account_id, filter).count().get_result(conn)?;
    let pages = ((total + PAGE_SIZE - 1) / PAGE_SIZE).max(1);
    let page = filter.page.clamp(1, pages);
    let keys: Vec<ApiKey> = filtered(account_id, filter)
        .order((api_keys::created_at.desc(), api_keys::id.desc()))
        .offset((page - 1) * PAGE_SIZE)
        .limit(PAGE_SIZE)
        .select(ApiKey::as_select())
        .load(conn)?;
    let details = details_of(conn, &keys)?;
    Ok(KeyPage {
        keys,
        details,
        total,
        page,
        pages,
    })
}

/// One page of keys for the management API: newest first, after the key `after` (its creation time
/// and id, from the previous page's last key) — a keyset page, stable while keys are added, with no
/// OFFSET. Returns the keys, their details, and whether more follow.
pub fn list_after(
    conn: &mut DbConn,
    account_id: &str,
    filter: &ListFilter,
    after: Option<(PrimitiveDateTime, String)>,
    limit: i64,
) -> QueryResult<(Vec<ApiKey>, KeyDetails, bool)> {
    let mut query = filtered(account_id, filter);
    if let Some((created_at, id)) = after {
        query = query.filter(
            api_keys::created_at
                .lt(created_at)
                .or(api_keys::created_at.eq(created_at).and(api_keys::id.lt(id))),
        );
    }
    let mut keys: Vec<ApiKey> = query
        .order((api_keys::created_at.desc(), api_keys::id.desc()))
        .limit(limit + 1)
        .select(ApiKey::as_select())
        .load(conn)?;
    let more = keys.len() as i64 > limit;
    keys.truncate(usize::try_from(limit).unwrap_or(0));
    let details = details_of(conn, &keys)?;
    Ok((keys, details, more))
}

#[derive(QueryableByName)]
struct TagRow {
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Text>)]
    tag: Option<String>,
}

/// The distinct tags used in the account (at most 500), for the tag filter.
///
/// A loose index scan: each step asks the `(account_id, tag)` index for the next tag after the last,
/// so the cost grows with the number of distinct tags, not of keys (a plain `DISTINCT` over an account
/// with 10,000 keys read every tag row). Written per backend for the placeholder syntax.
pub fn tags_in_account(conn: &mut DbConn, account_id: &str) -> QueryResult<Vec<String>> {
    use diesel::sql_types::Text;
    const NEXT_TAG: &str = "WITH RECURSIVE t(tag) AS ( \
            SELECT MIN(tag) FROM api_key_tags WHERE account_id = {a} \
            UNION ALL \
            SELECT (SELECT MIN(tag) FROM api_key_tags WHERE account_id = {a} AND tag > t.tag) \
            FROM t WHERE t.tag IS NOT NULL) \
        SELECT tag FROM t WHERE tag IS NOT NULL LIMIT 500";
    let rows: Vec<TagRow> = match conn {
        DbConn::Sqlite(c) => diesel::sql_query(NEXT_TAG.replace("{a}", "?"))
            .bind::<Text, _>(account_id)
            .bind::<Text, _>(account_id)
            .load(c)?,
        DbConn::Postgres(c) => diesel::sql_query(NEXT_TAG.replace("{a}", "$1"))
            .bind::<Text, _>(account_id)
            .load(c)?,
    };
    Ok(rows.into_iter().filter_map(|r| r.tag).collect())
}

/// Whether the account has any key at all (to tell "no keys yet" from "no match").
pub fn account_has_keys(conn: &mut DbConn, account_id: &str) -> QueryResult<bool> {
    diesel::select(diesel::dsl::exists(
        api_keys::table.filter(api_keys::account_id.eq(account_id)),
    ))
    .get_result(conn)
}
