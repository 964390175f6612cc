//! The source side of a link: the accounts that link one of this account's keys (listed on the key's
//! page), and the source owner's removal of such a link. The linking side — creating a link and
//! showing where it comes from — is in `super::link` and `listing`.

use diesel::prelude::*;
use time::PrimitiveDateTime;

use crate::access::AccountAccess;
use crate::audit::{Actor, AuditAction, AuditEvent};
use crate::db::{self, DbConn};
use crate::error::AppError;
use crate::ids::ApiKeyId;
use crate::revocation::{Changed, Revoked};
use crate::schema::{accounts, api_key_policies, api_keys, policies, removed_links};

use super::{ApiKey, HeldPolicy, find_in_account};

/// Another account's link to one of this account's keys, as the source key's page lists it.
#[derive(Debug, Clone)]
pub struct LinkingAccount {
    /// The linking key (in the other account): the id the removal names.
    pub link_key_id: String,
    pub account_name: String,
    pub linked_at: PrimitiveDateTime,
    /// The policies the other account granted its link (what the source key's codes may do there).
    pub policies: Vec<HeldPolicy>,
    pub last_used_at: Option<PrimitiveDateTime>,
}

/// The accounts that link `source`, oldest link first — two queries, whatever their number.
pub fn links_to(conn: &mut DbConn, source: &ApiKey) -> QueryResult<Vec<LinkingAccount>> {
    let rows: Vec<(String, String, PrimitiveDateTime, Option<PrimitiveDateTime>)> = api_keys::table
        .inner_join(accounts::table)
        .filter(api_keys::linked_key_id.eq(&source.id))
        .order((api_keys::created_at, api_keys::id))
        .select((
            api_keys::id,
            accounts::name,
            api_keys::created_at,
            api_keys::last_used_at,
        ))
        .load(conn)?;
    let ids: Vec<&str> = rows.iter().map(|r| r.0.as_str()).collect();
    let held: Vec<(String, String, bool)> = if ids.is_empty() {
        Vec::new()
    } else {
        api_key_policies::table
            .inner_join(policies::table)
            .filter(api_key_policies::api_key_id.eq_any(&ids))
            .order(policies::position)
            .select((
                api_key_policies::api_key_id,
                policies::name,
                policies::retired,
            ))
            .load(conn)?
    };
    Ok(rows
        .into_iter()
        .map(|(link_key_id, account_name, linked_at, last_used_at)| {
            let policies = held
                .iter()
                .filter(|(holder, ..)| *holder == link_key_id)
                .map(|(_, name, retired)| HeldPolicy {
                    name: name.clone(),
                    retired: *retired,
                })
                .collect();
            LinkingAccount {
                link_key_id,
                account_name,
                linked_at,
                policies,
                last_used_at,
            }
        })
        .collect())
}

/// One link of `source`, for the confirmation page; `NotFound` when `link_id` does not link it.
pub fn find_link(
    conn: &mut DbConn,
    source: &ApiKey,
    link_id: &ApiKeyId,
) -> Result<LinkingAccount, AppError> {
    links_to(conn, source)?
        .into_iter()
        .find(|l| l.link_key_id == link_id.as_str())
        .ok_or(AppError::NotFound)
}

/// What a removal did: the source key and the link it cut.
#[derive(Debug)]
pub struct RemovedLink {
    pub source: ApiKey,
    pub link: LinkingAccount,
}

/// The source key's owner removes another account's link to it: the link stops granting at once, stays
/// in the other account as "link removed", and that account cannot link the key again. Audited in
/// both accounts; the other account's log names this account, not the person (their email and
/// address are not the other account's business).
pub fn remove_link(
    conn: &mut DbConn,
    access: &AccountAccess,
    actor: &Actor,
    source_id: &ApiKeyId,
    link_id: &ApiKeyId,
) -> Result<Changed<RemovedLink>, AppError> {
    access.require_owner()?;
    db::write_transaction(conn, |conn| {
        let source = find_in_account(conn, &access.account.id, source_id)?;
        let link = find_link(conn, &source, link_id)?;
        let link_account: String = api_keys::table
            .find(&link.link_key_id)
            .select(api_keys::account_id)
            .first(conn)?;
        let now = db::now();
        diesel::update(api_keys::table.find(&link.link_key_id))
            .set((
                api_keys::linked_key_id.eq(None::<String>),
                api_keys::link_removed_at.eq(Some(now)),
            ))
            .execute(conn)?;
        diesel::insert_into(removed_links::table)
            .values((
                removed_links::source_key_id.eq(&source.id),
                removed_links::account_id.eq(&link_account),
                removed_links::link_key_id.eq(&link.link_key_id),
                removed_links::removed_at.eq(now),
            ))
            .execute(conn)?;
        AuditEvent::record(
            conn,
            actor,
            Some(&source.account_id),
            AuditAction::LinkRemoved,
            &source.id,
            &format!(
                "removed the link {} of account {}",
                link.link_key_id, link.account_name
            ),
        )?;
        let on_their_side = Actor {
            user_id: None,
            email: format!("An owner of {}", access.account.name),
            is_staff: actor.is_staff,
            client_ip: String::new(),
        };
        AuditEvent::record(
            conn,
            &on_their_side,
            Some(&link_account),
            AuditAction::LinkRemoved,
            &link.link_key_id,
            &format!(
                "the owner of source key {} removed this link; it grants nothing now",
                source.id
            ),
        )?;
        let data = serde_json::json!({ "account_id": source.account_id, "api_key_id": source.id, "link_api_key_id": link.link_key_id });
        crate::webhooks::emit(
            conn,
            &source.account_id,
            crate::webhooks::EventType::LinkRemoved,
            &data,
        )?;
        let data = serde_json::json!({ "account_id": link_account, "api_key_id": link.link_key_id, "source_api_key_id": source.id });
        crate::webhooks::emit(
            conn,
            &link_account,
            crate::webhooks::EventType::LinkRemoved,
            &data,
        )?;
        let revoked = Revoked::keys([source.id.as_str(), link.link_key_id.as_str()]);
        Ok(Changed::revoking(RemovedLink { source, link }, revoked))
    })
}

/// Whether the owner of `source_id` removed `account_id`'s link to it (then it cannot be linked again).
pub fn was_removed(conn: &mut DbConn, source_id: &str, account_id: &str) -> QueryResult<bool> {
    diesel::select(diesel::dsl::exists(
        removed_links::table
            .filter(removed_links::source_key_id.eq(source_id))
            .filter(removed_links::account_id.eq(account_id)),
    ))
    .get_result(conn)
}

/// The source keys that removed links came from (while those keys exist), by linking key id.
pub fn removed_sources(
    conn: &mut DbConn,
    link_key_ids: &[&str],
) -> QueryResult<std::collections::HashMap<String, String>> {
    if link_key_ids.is_empty() {
        return Ok(Default::default());
    }
    Ok(removed_links::table
        .filter(removed_links::link_key_id.eq_any(link_key_ids))
        .select((removed_links::link_key_id, removed_links::source_key_id))
        .load::<(String, String)>(conn)?
        .into_iter()
        .collect())
}
