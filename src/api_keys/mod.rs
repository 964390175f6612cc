//! API keys: an account's own keys and the keys it links from other accounts, with their tags and
//! policies. This file holds the model and the commands — creating, linking, editing and deleting,
//! each in one transaction with its audit event, returning what it revoked (`crate::revocation`);
//! `input` checks what the editor submits, `listing` reads keys for the pages.

mod input;
mod links;
mod listing;

use std::collections::BTreeSet;

use diesel::prelude::*;
use time::PrimitiveDateTime;

use crate::access::AccountAccess;
use crate::audit::{Actor, AuditAction, AuditEvent};
use crate::db::{self, DbConn};
use crate::error::{AppError, FieldErrors};
use crate::ids::{self, ApiKeyId, IdKind};
use crate::limits::RateLimit;
use crate::policies::Policy;
use crate::revocation::{Changed, Revoked};
use crate::schema::{access_codes, api_key_policies, api_key_tags, api_keys};

pub use input::{KeyInput, MAX_NAME_LEN, MAX_TAG_LEN, MAX_TAGS, name_problem, parse_tags};
use input::{ValidKey, validate};
pub use links::{LinkingAccount, RemovedLink, find_link, links_to, remove_link};
pub use listing::{
    HeldPolicy, KeyDetails, KeyPage, LinkSource, ListFilter, PAGE_SIZE, account_has_keys,
    details_of, list_after, list_for_account, tags_in_account,
};

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = api_keys)]
pub struct ApiKey {
    pub id: String,
    pub account_id: String,
    pub name: String,
    /// Stored as text; an unknown stored value is an error when the row is read, never a default.
    #[diesel(deserialize_as = String, serialize_as = String)]
    pub kind: Kind,
    pub linked_key_id: Option<String>,
    pub created_at: PrimitiveDateTime,
    pub updated_at: PrimitiveDateTime,
    pub last_used_at: Option<PrimitiveDateTime>,
    /// Set when the source key's owner removed this link (`links::remove_link`).
    pub link_removed_at: Option<PrimitiveDateTime>,
    /// Requests per minute and per day (`None`: no limit); see `rate_limit`.
    pub rate_per_minute: Option<i32>,
    pub rate_per_day: Option<i32>,
}

crate::text_enum! {
    /// Own keys have access codes; linked keys use the codes of the key they link.
    pub enum Kind("API key kind") {
        Own = "own",
        Linked = "linked",
    }
}

impl ApiKey {
    /// A new key of the account: own, or linking `linked_key_id` (another account's key).
    fn new(account_id: &str, valid: &ValidKey, linked_key_id: Option<&str>) -> ApiKey {
        let now = db::now();
        let kind = if linked_key_id.is_some() {
            Kind::Linked
        } else {
            Kind::Own
        };
        let (rate_per_minute, rate_per_day) = valid.rate.columns();
        ApiKey {
            id: ids::new_id(IdKind::ApiKey),
            account_id: account_id.to_owned(),
            name: valid.name.clone(),
            kind,
            linked_key_id: linked_key_id.map(str::to_owned),
            created_at: now,
            updated_at: now,
            last_used_at: None,
            link_removed_at: None,
            rate_per_minute,
            rate_per_day,
        }
    }

    /// The key's rate limits (a link's are the linking account's own).
    pub fn rate_limit(&self) -> RateLimit {
        RateLimit::from_columns(self.rate_per_minute, self.rate_per_day)
    }

    pub fn is_linked(&self) -> bool {
        self.kind == Kind::Linked
    }

    /// The keys whose cached grants a change to this key can alter: itself, and for a link the key
    /// it links (whose cache entries list the links to it).
    pub fn affected_key_ids(&self) -> Vec<&str> {
        std::iter::once(self.id.as_str())
            .chain(self.linked_key_id.as_deref())
            .collect()
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
        "name: {}; tags: {}; policies: {}; rate limit: {}",
        valid.name,
        list_or_none(&valid.tags),
        list_or_none(&valid.policies),
        valid.rate.describe()
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
        let key = ApiKey::new(&access.account.id, &valid, None);
        diesel::insert_into(api_keys::table)
            .values(key.clone())
            .execute(conn)?;
        insert_tags_and_policies(conn, &key, &valid)?;
        AuditEvent::record(
            conn,
            actor,
            Some(&key.account_id),
            AuditAction::ApiKeyCreated,
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
        let source = match check_link_source(conn, &access.account.id, source_id)? {
            Ok(source) => Some(source),
            Err(message) => {
                errors.add("linked_key_id", message);
                None
            }
        };
        let mut input = input.clone();
        if input.name.trim().is_empty() {
            // The name is optional when linking: the source key's name stands in for it (never its
            // id, which would show as a second `key_` id beside the link's own). Without a usable
            // source, the one message is by the ID field, never also by the optional name.
            input.name = source
                .as_ref()
                .map_or_else(|| "(no source)".to_owned(), |s| s.name.clone());
        }
        let allowed = active_policy_names(conn)?;
        let valid = validate(&input, &allowed, true, &mut errors);
        let (Some(valid), Some(source)) = (valid, source) else {
            return Err(AppError::Invalid(errors));
        };
        let key = ApiKey::new(&access.account.id, &valid, Some(&source.id));
        match diesel::insert_into(api_keys::table)
            .values(key.clone())
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
            AuditAction::ApiKeyLinked,
            &key.id,
            &format!("links {}; {}", source.id, summary(&valid)),
        )?;
        let mine = serde_json::json!({ "account_id": key.account_id, "api_key_id": key.id, "source_api_key_id": source.id });
        crate::webhooks::emit(
            conn,
            &key.account_id,
            crate::webhooks::EventType::LinkCreated,
            &mine,
        )?;
        let theirs = serde_json::json!({ "account_id": source.account_id, "api_key_id": source.id, "link_api_key_id": key.id });
        crate::webhooks::emit(
            conn,
            &source.account_id,
            crate::webhooks::EventType::LinkCreated,
            &theirs,
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
    let Ok(source_id) = ApiKeyId::parse(source_id) else {
        return Ok(Err(
            "This is not an API key ID. IDs look like key_ followed by 16 letters and digits.",
        ));
    };
    let Some(source) = api_keys::table
        .find(source_id.as_str())
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
    if links::was_removed(conn, &source.id, account_id)? {
        return Ok(Err(
            "The owner of this API key removed this account's link to it, so it cannot be linked \
             again. Ask them for the ID of another key.",
        ));
    }
    let already: i64 = api_keys::table
        .filter(api_keys::account_id.eq(account_id))
        .filter(api_keys::linked_key_id.eq(source_id.as_str()))
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
    key_id: &ApiKeyId,
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
        let (rate_per_minute, rate_per_day) = valid.rate.columns();
        diesel::update(api_keys::table.find(&key.id))
            .set((
                api_keys::name.eq(&valid.name),
                api_keys::updated_at.eq(now),
                api_keys::rate_per_minute.eq(rate_per_minute),
                api_keys::rate_per_day.eq(rate_per_day),
            ))
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
            rate: key.rate_limit(),
        };
        AuditEvent::record(
            conn,
            actor,
            Some(&key.account_id),
            AuditAction::ApiKeyUpdated,
            &key.id,
            &format!("before: {} → after: {}", summary(&old), summary(&valid)),
        )?;
        let revoked = Revoked::keys(key.affected_key_ids());
        let key = ApiKey {
            name: valid.name,
            updated_at: now,
            rate_per_minute,
            rate_per_day,
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
    key_id: &ApiKeyId,
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
            AuditAction::ApiKeyDeleted,
            &key.id,
            &format!(
                "name: {}; {} access code(s) deleted with it",
                key.name, codes
            ),
        )?;
        let data = serde_json::json!({ "account_id": key.account_id, "api_key_id": key.id });
        crate::webhooks::emit(
            conn,
            &key.account_id,
            crate::webhooks::EventType::ApiKeyDeleted,
            &data,
        )?;
        // A deleted link is a link removed, for the source key's account.
        if let Some(source_id) = &key.linked_key_id {
            let source_account: Option<String> = api_keys::table
                .find(source_id)
                .select(api_keys::account_id)
                .first(conn)
                .optional()?;
            if let Some(source_account) = source_account {
                let data = serde_json::json!({ "account_id": source_account, "api_key_id": source_id, "link_api_key_id": key.id });
                crate::webhooks::emit(
                    conn,
                    &source_account,
                    crate::webhooks::EventType::LinkRemoved,
                    &data,
                )?;
            }
        }
        let revoked = Revoked::keys(key.affected_key_ids());
        Ok(Changed::revoking(key, revoked))
    })
}

/// The key with this id in this account; `NotFound` for a key of another account or a malformed id.
pub fn find_in_account(
    conn: &mut DbConn,
    account_id: &str,
    key_id: &ApiKeyId,
) -> Result<ApiKey, AppError> {
    api_keys::table
        .find(key_id.as_str())
        .filter(api_keys::account_id.eq(account_id))
        .select(ApiKey::as_select())
        .first(conn)
        .optional()?
        .ok_or(AppError::NotFound)
}
