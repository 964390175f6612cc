//! Access codes: up to two per own API key, each valid for 365 days. Creating one makes a secret that
//! is stored only as a digest and a sealed copy; owners can reveal or download it later (support staff
//! with a recorded reason; `disclosure`); codes are disabled before they can be deleted.

use diesel::prelude::*;
use time::{Duration, PrimitiveDateTime};

use crate::access::AccountAccess;
use crate::api_keys::{self, ApiKey};
use crate::audit::{Actor, AuditAction, AuditEvent};
use crate::db::{self, DbConn};
use crate::error::AppError;
use crate::ids::{self, AccessCodeId, ApiKeyId, IdKind};
use crate::revocation::{Changed, Revoked};
use crate::schema::{access_codes, api_keys as api_keys_table};
use crate::secrets::{self, KeyMaterial};

mod disclosure;
pub mod rotation;
pub use disclosure::{Disclosure, MAX_REASON_LEN, MIN_REASON_LEN, RevealRequest, Revealed, reveal};

/// Codes an API key may have at once; the database holds it (`UNIQUE(api_key_id, slot)`, slot 1 or 2).
pub const MAX_PER_KEY: i64 = 2;
/// How long a code is valid.
pub const VALIDITY: Duration = Duration::days(365);
/// Codes expiring within this are flagged, so a second code is made in time.
pub const EXPIRY_WARNING: Duration = Duration::days(30);
pub const MAX_DESCRIPTION_LEN: usize = 200;
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = access_codes)]
pub struct AccessCode {
    pub id: String,
    pub api_key_id: String,
    pub slot: i32,
    pub description: String,
    pub enabled: bool,
    pub secret_digest: Vec<u8>,
    pub sealed_secret: Vec<u8>,
    pub secret_hint: String,
    pub created_at: PrimitiveDateTime,
    pub expires_at: PrimitiveDateTime,
    pub last_used_at: Option<PrimitiveDateTime>,
    /// When the code was reported as exposed (and so disabled), and by what.
    pub exposed_at: Option<PrimitiveDateTime>,
    pub exposure_source: Option<String>,
}

/// A code's state as users see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Active,
    /// Enabled, and expiring within 30 days: the number of days left (0 = today).
    ExpiringSoon(i64),
    Disabled,
    Expired,
}

impl AccessCode {
    pub fn is_expired_at(&self, now: PrimitiveDateTime) -> bool {
        now >= self.expires_at
    }

    /// Enabled and not expired: requests with it pass.
    pub fn in_use_at(&self, now: PrimitiveDateTime) -> bool {
        self.enabled && !self.is_expired_at(now)
    }

    pub fn status_at(&self, now: PrimitiveDateTime) -> Status {
        if self.is_expired_at(now) {
            Status::Expired
        } else if !self.enabled {
            Status::Disabled
        } else if self.expires_at - now <= EXPIRY_WARNING {
            Status::ExpiringSoon((self.expires_at - now).whole_days())
        } else {
            Status::Active
        }
    }
}

/// Why a description is refused, or `None`.
pub fn description_problem(description: &str) -> Option<&'static str> {
    if description.chars().count() > MAX_DESCRIPTION_LEN {
        Some("Use at most 200 characters.")
    } else if description.chars().any(char::is_control) {
        Some("Use letters, digits, spaces and punctuation only.")
    } else if crate::secrets::contains_secret_like(description) {
        Some(crate::secrets::PASTED_SECRET)
    } else {
        None
    }
}

/// The own key with this id in this account; linked keys have no access codes.
fn own_key(
    conn: &mut DbConn,
    access: &AccountAccess,
    key_id: &ApiKeyId,
) -> Result<ApiKey, AppError> {
    let key = api_keys::find_in_account(conn, &access.account.id, key_id)?;
    if key.is_linked() {
        return Err(AppError::conflict(
            "Linked API keys have no access codes of their own: use the access code of the key they link, which its creator can give you.",
        ));
    }
    Ok(key)
}

/// The code with this id under this key.
fn find(conn: &mut DbConn, key_id: &str, code_id: &AccessCodeId) -> Result<AccessCode, AppError> {
    access_codes::table
        .find(code_id.as_str())
        .filter(access_codes::api_key_id.eq(key_id))
        .select(AccessCode::as_select())
        .first(conn)
        .optional()?
        .ok_or(AppError::NotFound)
}

/// The key's codes, oldest first.
pub fn list_for_key(conn: &mut DbConn, key_id: &str) -> QueryResult<Vec<AccessCode>> {
    access_codes::table
        .filter(access_codes::api_key_id.eq(key_id))
        .order((access_codes::created_at.asc(), access_codes::id.asc()))
        .select(AccessCode::as_select())
        .load(conn)
}

/// One try at taking a slot.
enum Attempt {
    /// A concurrent create took the slot first: look again.
    SlotTaken,
    Failed(AppError),
}

impl From<diesel::result::Error> for Attempt {
    fn from(e: diesel::result::Error) -> Self {
        match e {
            diesel::result::Error::DatabaseError(
                diesel::result::DatabaseErrorKind::UniqueViolation,
                _,
            ) => Attempt::SlotTaken,
            other => Attempt::Failed(other.into()),
        }
    }
}

impl From<AppError> for Attempt {
    fn from(e: AppError) -> Self {
        Attempt::Failed(e)
    }
}

const LIMIT_REACHED: &str = "This API key already has 2 access codes, the most it can have. Delete one \
     (after disabling it) to create another.";

/// Creates a code for an own key; returns it and its secret (shown once, then only revealed again by
/// opening the sealed copy).
pub fn create(
    conn: &mut DbConn,
    access: &AccountAccess,
    actor: &Actor,
    keys: &KeyMaterial,
    key_id: &ApiKeyId,
    description: &str,
) -> Result<Changed<(AccessCode, String)>, AppError> {
    access.require_owner()?;
    if let Some(problem) = description_problem(description) {
        return Err(AppError::invalid("description", problem));
    }
    // A concurrent create may take the free slot between our read and our insert: the unique index
    // refuses the loser, whose transaction is rolled back whole; it then looks again.
    for _ in 0..3 {
        let attempt = db::write_transaction(conn, |conn| -> Result<_, Attempt> {
            let key = own_key(conn, access, key_id)?;
            let taken: Vec<i32> = access_codes::table
                .filter(access_codes::api_key_id.eq(&key.id))
                .select(access_codes::slot)
                .load(conn)?;
            let Some(slot) = (1..=MAX_PER_KEY as i32).find(|s| !taken.contains(s)) else {
                return Err(AppError::conflict(LIMIT_REACHED).into());
            };
            let id = ids::new_id(IdKind::AccessCode);
            let secret = secrets::generate();
            let now = db::now();
            let code = AccessCode {
                secret_digest: keys.digest(&secret).to_vec(),
                sealed_secret: keys.seal(&secret, &id).map_err(AppError::internal)?,
                secret_hint: secrets::hint(&secret),
                id,
                api_key_id: key.id.clone(),
                slot,
                description: description.trim().to_owned(),
                enabled: true,
                created_at: now,
                expires_at: now + VALIDITY,
                last_used_at: None,
                exposed_at: None,
                exposure_source: None,
            };
            diesel::insert_into(access_codes::table)
                .values(&code)
                .execute(conn)?;
            AuditEvent::record(
                conn,
                actor,
                Some(&access.account.id),
                AuditAction::AccessCodeCreated,
                &code.id,
                &format!(
                    "key {}; description: {}",
                    key.id,
                    or_none(&code.description)
                ),
            )
            .map_err(|e| Attempt::Failed(e.into()))?;
            crate::webhooks::emit(
                conn,
                &access.account.id,
                crate::webhooks::EventType::AccessCodeCreated,
                &crate::webhooks::code_data(&access.account.id, &key.id, &code.id),
            )
            .map_err(|e| Attempt::Failed(e.into()))?;
            Ok((code, secret, key.id))
        });
        match attempt {
            // The new code's digest may be cached as unknown: forgetting the key forgets those too.
            Ok((code, secret, key_id)) => {
                return Ok(Changed::revoking(
                    (code, secret),
                    Revoked::keys([key_id.as_str()]),
                ));
            }
            Err(Attempt::SlotTaken) => continue,
            Err(Attempt::Failed(e)) => return Err(e),
        }
    }
    Err(AppError::conflict(LIMIT_REACHED))
}

fn or_none(text: &str) -> &str {
    if text.is_empty() { "(none)" } else { text }
}

/// Changes a code's description.
pub fn update_description(
    conn: &mut DbConn,
    access: &AccountAccess,
    actor: &Actor,
    key_id: &ApiKeyId,
    code_id: &AccessCodeId,
    description: &str,
) -> Result<Changed<AccessCode>, AppError> {
    access.require_owner()?;
    if let Some(problem) = description_problem(description) {
        return Err(AppError::invalid("description", problem));
    }
    db::write_transaction(conn, |conn| {
        let key = own_key(conn, access, key_id)?;
        let code = find(conn, &key.id, code_id)?;
        let description = description.trim().to_owned();
        diesel::update(access_codes::table.find(&code.id))
            .set(access_codes::description.eq(&description))
            .execute(conn)?;
        AuditEvent::record(
            conn,
            actor,
            Some(&access.account.id),
            AuditAction::AccessCodeUpdated,
            &code.id,
            &format!(
                "description: {} → {}",
                or_none(&code.description),
                or_none(&description)
            ),
        )?;
        Ok(Changed::nothing_revoked(AccessCode {
            description,
            ..code
        }))
    })
}

/// Enables or disables a code. An expired code cannot be enabled again: it needs replacing.
pub fn set_enabled(
    conn: &mut DbConn,
    access: &AccountAccess,
    actor: &Actor,
    key_id: &ApiKeyId,
    code_id: &AccessCodeId,
    enabled: bool,
) -> Result<Changed<AccessCode>, AppError> {
    access.require_owner()?;
    db::write_transaction(conn, |conn| {
        let key = own_key(conn, access, key_id)?;
        let code = find(conn, &key.id, code_id)?;
        if enabled && code.is_expired_at(db::now()) {
            return Err(AppError::conflict(
                "This access code has expired and cannot be enabled again. Create a new access code instead.",
            ));
        }
        if code.enabled != enabled {
            diesel::update(access_codes::table.find(&code.id))
                .set(access_codes::enabled.eq(enabled))
                .execute(conn)?;
            let action = if enabled {
                AuditAction::AccessCodeEnabled
            } else {
                AuditAction::AccessCodeDisabled
            };
            AuditEvent::record(
                conn,
                actor,
                Some(&access.account.id),
                action,
                &code.id,
                &format!("key {}", key.id),
            )?;
            if !enabled {
                crate::webhooks::emit(
                    conn,
                    &access.account.id,
                    crate::webhooks::EventType::AccessCodeDisabled,
                    &crate::webhooks::code_data(&access.account.id, &key.id, &code.id),
                )?;
            }
        }
        Ok(Changed::revoking(
            AccessCode { enabled, ..code },
            Revoked::keys([key.id.as_str()]),
        ))
    })
}

/// Deletes a code, which must be disabled (or expired) first so that deleting is never the first click.
pub fn delete(
    conn: &mut DbConn,
    access: &AccountAccess,
    actor: &Actor,
    key_id: &ApiKeyId,
    code_id: &AccessCodeId,
) -> Result<Changed<AccessCode>, AppError> {
    access.require_owner()?;
    db::write_transaction(conn, |conn| {
        let key = own_key(conn, access, key_id)?;
        let code = find(conn, &key.id, code_id)?;
        if code.enabled && !code.is_expired_at(db::now()) {
            return Err(AppError::conflict(
                "Disable this access code before deleting it. Deleting cannot be undone, and every service using the code stops working.",
            ));
        }
        diesel::delete(access_codes::table.find(&code.id)).execute(conn)?;
        AuditEvent::record(
            conn,
            actor,
            Some(&access.account.id),
            AuditAction::AccessCodeDeleted,
            &code.id,
            &format!(
                "key {}; description: {}",
                key.id,
                or_none(&code.description)
            ),
        )?;
        crate::webhooks::emit(
            conn,
            &access.account.id,
            crate::webhooks::EventType::AccessCodeDeleted,
            &crate::webhooks::code_data(&access.account.id, &key.id, &code.id),
        )?;
        Ok(Changed::revoking(code, Revoked::keys([key.id.as_str()])))
    })
}

/// An account's enabled codes that expire within 30 days (or have expired in the last 30), with their
/// key, soonest first: the API Keys page's banner.
pub fn expiring_in_account(
    conn: &mut DbConn,
    account_id: &str,
) -> QueryResult<Vec<(ApiKey, AccessCode)>> {
    let now = db::now();
    api_keys_table::table
        .inner_join(access_codes::table)
        .filter(api_keys_table::account_id.eq(account_id))
        .filter(access_codes::enabled.eq(true))
        .filter(access_codes::expires_at.le(now + EXPIRY_WARNING))
        .filter(access_codes::expires_at.gt(now - EXPIRY_WARNING))
        .order(access_codes::expires_at.asc())
        .limit(20)
        .select((ApiKey::as_select(), AccessCode::as_select()))
        .load(conn)
}
