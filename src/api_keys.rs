//! API keys: an account's own keys and the keys it links from other accounts, with their tags and
//! policies. Creating, linking, editing and deleting, each in one transaction with its audit event.

use std::collections::{BTreeSet, HashMap};

use diesel::prelude::*;
use time::PrimitiveDateTime;

use crate::access::AccountAccess;
use crate::audit::{Actor, AuditEvent};
use crate::db::{self, DbConn};
use crate::error::{AppError, FieldErrors};
use crate::ids::{self, IdKind};
use crate::policies::Policy;
use crate::revocation::{Changed, Revoked};
use crate::schema::{access_codes, accounts, api_key_policies, api_key_tags, api_keys, policies};

pub const MAX_NAME_LEN: usize = 100;
pub const MAX_TAGS: usize = 20;
pub const MAX_TAG_LEN: usize = 32;
/// Keys per page of the list.
pub const PAGE_SIZE: i64 = 25;

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = api_keys)]
pub struct ApiKey {
    pub id: String,
    pub account_id: String,
    pub name: String,
    pub kind: String,
    pub linked_key_id: Option<String>,
    pub created_at: PrimitiveDateTime,
    pub updated_at: PrimitiveDateTime,
    pub last_used_at: Option<PrimitiveDateTime>,
}

/// Own keys have access codes; linked keys use the codes of the key they link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Own,
    Linked,
}

impl Kind {
    pub const fn as_str(self) -> &'static str {
        match self {
            Kind::Own => "own",
            Kind::Linked => "linked",
        }
    }
}

impl ApiKey {
    /// A new key of the account: own, or linking `linked_key_id` (another account's key).
    fn new(account_id: &str, name: &str, linked_key_id: Option<&str>) -> ApiKey {
        let now = db::now();
        let kind = if linked_key_id.is_some() {
            Kind::Linked
        } else {
            Kind::Own
        };
        ApiKey {
            id: ids::new_id(IdKind::ApiKey),
            account_id: account_id.to_owned(),
            name: name.to_owned(),
            kind: kind.as_str().to_owned(),
            linked_key_id: linked_key_id.map(str::to_owned),
            created_at: now,
            updated_at: now,
            last_used_at: None,
        }
    }

    pub fn kind(&self) -> Kind {
        if self.kind == "linked" {
            Kind::Linked
        } else {
            Kind::Own
        }
    }

    pub fn is_linked(&self) -> bool {
        self.kind() == Kind::Linked
    }

    /// The keys whose cached grants a change to this key can alter: itself, and for a link the key
    /// it links (whose cache entries list the links to it).
    pub fn affected_key_ids(&self) -> Vec<&str> {
        std::iter::once(self.id.as_str())
            .chain(self.linked_key_id.as_deref())
            .collect()
    }
}

/// What the editor submits, as typed.
#[derive(Debug, Clone, Default)]
pub struct KeyInput {
    pub name: String,
    /// Comma-separated.
    pub tags: String,
    pub policies: Vec<String>,
    /// Link mode only.
    pub linked_key_id: String,
}

/// Why a key name is refused, or `None`.
pub fn name_problem(name: &str) -> Option<&'static str> {
    let name = name.trim();
    if name.is_empty() {
        Some("Enter a name for the API key.")
    } else if name.chars().count() > MAX_NAME_LEN {
        Some("Use at most 100 characters.")
    } else if name.chars().any(char::is_control) {
        Some("Use letters, digits, spaces and punctuation only.")
    } else if crate::secrets::contains_secret_like(name) {
        Some(crate::secrets::PASTED_SECRET)
    } else {
        None
    }
}

/// Tags from the comma-separated field: trimmed, lower-cased, de-duplicated, in the order typed.
pub fn parse_tags(raw: &str) -> Result<Vec<String>, String> {
    if crate::secrets::contains_secret_like(raw) {
        return Err(crate::secrets::PASTED_SECRET.to_owned());
    }
    let mut tags: Vec<String> = Vec::new();
    for tag in raw
        .split(',')
        .map(|t| t.trim().to_lowercase())
        .filter(|t| !t.is_empty())
    {
        if tag.chars().count() > MAX_TAG_LEN {
            return Err(format!(
                "The tag \"{tag}\" is too long: use at most 32 characters per tag."
            ));
        }
        if !tag
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-_.:".contains(&b))
        {
            return Err(format!(
                "The tag \"{tag}\" has characters tags cannot use: use a-z, 0-9, and - _ . : only."
            ));
        }
        if !tags.contains(&tag) {
            tags.push(tag);
        }
    }
    if tags.len() > MAX_TAGS {
        return Err("Use at most 20 tags.".to_owned());
    }
    Ok(tags)
}

/// The input after validation.
#[derive(Debug, Clone)]
struct ValidKey {
    name: String,
    tags: Vec<String>,
    policies: Vec<String>,
}

/// Checks name, tags and policies. `allowed` are the policy names that may be chosen; `need_policy`
/// is set for linked keys, which must have at least one.
fn validate(
    input: &KeyInput,
    allowed: &BTreeSet<String>,
    need_policy: bool,
    errors: &mut FieldErrors,
) -> Option<ValidKey> {
    errors.check("name", name_problem(&input.name));
    let tags = parse_tags(&input.tags)
        .map_err(|e| errors.add("tags", e))
        .ok();
    let mut chosen: Vec<String> = Vec::new();
    for name in &input.policies {
        if !allowed.contains(name) {
            errors.add(
                "policy",
                "One of the selected policies does not exist. Reload the page and choose again.",
            );
        } else if !chosen.contains(name) {
            chosen.push(name.clone());
        }
    }
    if need_policy && chosen.is_empty() && input.policies.is_empty() {
        errors.add(
            "policy",
            "Select at least one policy: a linked key grants only what its policies allow.",
        );
    }
    match (errors.is_empty(), tags) {
        (true, Some(tags)) => Some(ValidKey {
            name: input.name.trim().to_owned(),
            tags,
            policies: chosen,
        }),
        _ => None,
    }
}

fn active_policy_names(conn: &mut DbConn) -> QueryResult<BTreeSet<String>> {
    Ok(Policy::list_active(conn)?
        .into_iter()
        .map(|p| p.name)
        .collect())
}

/// Row by row: the two-backend connection has no multi-row `INSERT` (SQLite's batch form differs), and
/// a key has at most 20 tags and a handful of policies.
fn insert_tags_and_policies(conn: &mut DbConn, key: &ApiKey, valid: &ValidKey) -> QueryResult<()> {
    let key_id = key.id.as_str();
    for tag in &valid.tags {
        diesel::insert_into(api_key_tags::table)
            .values((
                api_key_tags::api_key_id.eq(key_id),
                api_key_tags::account_id.eq(&key.account_id),
                api_key_tags::tag.eq(tag),
            ))
            .execute(conn)?;
    }
    for policy in &valid.policies {
        diesel::insert_into(api_key_policies::table)
            .values((
                api_key_policies::api_key_id.eq(key_id),
                api_key_policies::policy_name.eq(policy),
            ))
            .execute(conn)?;
    }
    Ok(())
}

fn summary(valid: &ValidKey) -> String {
    format!(
        "name: {}; tags: {}; policies: {}",
        valid.name,
        list_or_none(&valid.tags),
        list_or_none(&valid.policies)
    )
}

fn list_or_none(items: &[String]) -> String {
    if items.is_empty() {
        "none".to_owned()
    } else {
        items.join(", ")
    }
}

/// Creates an own API key.
pub fn create(
    conn: &mut DbConn,
    access: &AccountAccess,
    actor: &Actor,
    input: &KeyInput,
) -> Result<Changed<ApiKey>, AppError> {
    access.require_owner()?;
    db::write_transaction(conn, |conn| {
        let mut errors = FieldErrors::new();
        let allowed = active_policy_names(conn)?;
        let valid =
            validate(input, &allowed, false, &mut errors).ok_or(AppError::Invalid(errors))?;
        let key = ApiKey::new(&access.account.id, &valid.name, None);
        diesel::insert_into(api_keys::table)
            .values(&key)
            .execute(conn)?;
        insert_tags_and_policies(conn, &key, &valid)?;
        AuditEvent::record(
            conn,
            actor,
            Some(&key.account_id),
            "api_key.created",
            &key.id,
            &summary(&valid),
        )?;
        // A new key has no codes: nothing cached depends on it yet.
        Ok(Changed::nothing_revoked(key))
    })
}

/// The message for every id that cannot be linked for a reason that concerns another account, so the
/// answer says nothing about other accounts beyond "this id can be linked".
const CANNOT_LINK: &str =
    "No API key with this ID can be linked. Check the ID with the key's creator.";

/// Links another account's key into this account, with this account's policies (at least one).
pub fn link(
    conn: &mut DbConn,
    access: &AccountAccess,
    actor: &Actor,
    input: &KeyInput,
) -> Result<Changed<ApiKey>, AppError> {
    access.require_owner()?;
    db::write_transaction(conn, |conn| {
        let mut errors = FieldErrors::new();
        let source_id = input.linked_key_id.trim();
        let mut input = input.clone();
        if input.name.trim().is_empty() {
            // The name is optional when linking; the id stands in for it.
            input.name = source_id.to_owned();
        }
        let allowed = active_policy_names(conn)?;
        let valid = validate(&input, &allowed, true, &mut errors);
        let source = match check_link_source(conn, &access.account.id, source_id)? {
            Ok(source) => Some(source),
            Err(message) => {
                errors.add("linked_key_id", message);
                None
            }
        };
        let (Some(valid), Some(source)) = (valid, source) else {
            return Err(AppError::Invalid(errors));
        };
        let key = ApiKey::new(&access.account.id, &valid.name, Some(&source.id));
        match diesel::insert_into(api_keys::table)
            .values(&key)
            .execute(conn)
        {
            Ok(_) => {}
            // Two owners linking the same key at once: the unique index decides.
            Err(diesel::result::Error::DatabaseError(
                diesel::result::DatabaseErrorKind::UniqueViolation,
                _,
            )) => {
                return Err(AppError::invalid(
                    "linked_key_id",
                    "This API key is already linked in this account.",
                ));
            }
            Err(e) => return Err(e.into()),
        }
        insert_tags_and_policies(conn, &key, &valid)?;
        AuditEvent::record(
            conn,
            actor,
            Some(&key.account_id),
            "api_key.linked",
            &key.id,
            &format!("links {}; {}", source.id, summary(&valid)),
        )?;
        // The source key's codes now reach this account.
        let revoked = Revoked::keys(key.affected_key_ids());
        Ok(Changed::revoking(key, revoked))
    })
}

/// The key `source_id` names if this account may link it, else the message to show by the field.
fn check_link_source(
    conn: &mut DbConn,
    account_id: &str,
    source_id: &str,
) -> QueryResult<Result<ApiKey, &'static str>> {
    if source_id.is_empty() {
        return Ok(Err("Enter the ID of the API key to link."));
    }
    if !ids::is_well_formed(IdKind::ApiKey, source_id) {
        return Ok(Err(
            "This is not an API key ID. IDs look like key_ followed by 16 letters and digits.",
        ));
    }
    let Some(source) = api_keys::table
        .find(source_id)
        .select(ApiKey::as_select())
        .first(conn)
        .optional()?
    else {
        return Ok(Err(CANNOT_LINK));
    };
    if source.account_id == account_id {
        return Ok(Err(if source.is_linked() {
            "This ID is a key linked in this account already. Link the original key's ID instead."
        } else {
            "This API key belongs to this account: there is no need to link it."
        }));
    }
    if source.is_linked() {
        return Ok(Err(CANNOT_LINK));
    }
    let already: i64 = api_keys::table
        .filter(api_keys::account_id.eq(account_id))
        .filter(api_keys::linked_key_id.eq(source_id))
        .count()
        .get_result(conn)?;
    if already > 0 {
        return Ok(Err("This API key is already linked in this account."));
    }
    Ok(Ok(source))
}

/// Changes a key's name, tags and policies.
pub fn update(
    conn: &mut DbConn,
    access: &AccountAccess,
    actor: &Actor,
    key_id: &str,
    input: &KeyInput,
) -> Result<Changed<ApiKey>, AppError> {
    access.require_owner()?;
    db::write_transaction(conn, |conn| {
        let key = find_in_account(conn, &access.account.id, key_id)?;
        let before = details_of(conn, std::slice::from_ref(&key))?;
        let held = before.policies.get(&key.id).cloned().unwrap_or_default();
        let mut allowed = active_policy_names(conn)?;
        // A retired policy the key already holds may stay (it grants nothing, but it is visible).
        allowed.extend(held.iter().map(|p| p.name.clone()));
        let mut errors = FieldErrors::new();
        let valid = validate(input, &allowed, key.is_linked(), &mut errors)
            .ok_or(AppError::Invalid(errors))?;
        let now = db::now();
        diesel::update(api_keys::table.find(&key.id))
            .set((api_keys::name.eq(&valid.name), api_keys::updated_at.eq(now)))
            .execute(conn)?;
        diesel::delete(api_key_tags::table.filter(api_key_tags::api_key_id.eq(&key.id)))
            .execute(conn)?;
        diesel::delete(api_key_policies::table.filter(api_key_policies::api_key_id.eq(&key.id)))
            .execute(conn)?;
        insert_tags_and_policies(conn, &key, &valid)?;
        let old = ValidKey {
            name: key.name.clone(),
            tags: before.tags.get(&key.id).cloned().unwrap_or_default(),
            policies: held.iter().map(|p| p.name.clone()).collect(),
        };
        AuditEvent::record(
            conn,
            actor,
            Some(&key.account_id),
            "api_key.updated",
            &key.id,
            &format!("before: {} → after: {}", summary(&old), summary(&valid)),
        )?;
        let revoked = Revoked::keys(key.affected_key_ids());
        let key = ApiKey {
            name: valid.name,
            updated_at: now,
            ..key
        };
        Ok(Changed::revoking(key, revoked))
    })
}

/// Deletes a key with its access codes. Keys linking it elsewhere stay, shown as "source key deleted"
/// and granting nothing.
pub fn delete(
    conn: &mut DbConn,
    access: &AccountAccess,
    actor: &Actor,
    key_id: &str,
) -> Result<Changed<ApiKey>, AppError> {
    access.require_owner()?;
    db::write_transaction(conn, |conn| {
        let key = find_in_account(conn, &access.account.id, key_id)?;
        let codes: i64 = access_codes::table
            .filter(access_codes::api_key_id.eq(&key.id))
            .count()
            .get_result(conn)?;
        diesel::delete(api_keys::table.find(&key.id)).execute(conn)?;
        AuditEvent::record(
            conn,
            actor,
            Some(&key.account_id),
            "api_key.deleted",
            &key.id,
            &format!(
                "name: {}; {} access code(s) deleted with it",
                key.name, codes
            ),
        )?;
        let revoked = Revoked::keys(key.affected_key_ids());
        Ok(Changed::revoking(key, revoked))
    })
}

/// The key with this id in this account; `NotFound` for a key of another account or a malformed id.
pub fn find_in_account(
    conn: &mut DbConn,
    account_id: &str,
    key_id: &str,
) -> Result<ApiKey, AppError> {
    if !ids::is_well_formed(IdKind::ApiKey, key_id) {
        return Err(AppError::NotFound);
    }
    api_keys::table
        .find(key_id)
        .filter(api_keys::account_id.eq(account_id))
        .select(ApiKey::as_select())
        .first(conn)
        .optional()?
        .ok_or(AppError::NotFound)
}

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
    Deleted,
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
    let codes: Vec<(String, bool, PrimitiveDateTime)> = access_codes::table
        .filter(access_codes::api_key_id.eq_any(&ids))
        .select((
            access_codes::api_key_id,
            access_codes::enabled,
            access_codes::expires_at,
        ))
        .load(conn)?;
    let now = db::now();
    for (key, enabled, expires_at) in codes {
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
    for key in keys.iter().filter(|k| k.is_linked()) {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_are_trimmed_lowercased_and_deduplicated() {
        assert_eq!(
            parse_tags(" Zapier, prod ,zapier,, a.b:c-d_e").unwrap(),
            vec!["zapier", "prod", "a.b:c-d_e"]
        );
        assert!(parse_tags("").unwrap().is_empty());
        assert!(parse_tags("no spaces").is_err());
        assert!(parse_tags("ünïcode").is_err());
        assert!(parse_tags(&"x".repeat(33)).is_err());
        let many: Vec<String> = (0..21).map(|i| format!("t{i}")).collect();
        assert!(parse_tags(&many.join(",")).is_err());
        let twenty: Vec<String> = (0..20).map(|i| format!("t{i}")).collect();
        assert_eq!(parse_tags(&twenty.join(",")).unwrap().len(), 20);
    }

    #[test]
    fn names_are_checked() {
        assert!(name_problem("Zapier").is_none());
        assert!(name_problem("  ").is_some());
        assert!(name_problem(&"n".repeat(101)).is_some());
        assert!(name_problem(&"n".repeat(100)).is_none());
        assert!(name_problem("a\0b").is_some());
    }
}
