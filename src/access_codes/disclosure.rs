//! Disclosing a code's secret after creation: the secret view and the `.txt` download, by an owner or by
//! support staff who give a reason. Each disclosure is one audit event; nothing is revoked.

use crate::access::AccountAccess;
use crate::api_keys::ApiKey;
use crate::audit::{Actor, AuditAction, AuditEvent};
use crate::db::{self, DbConn};
use crate::error::AppError;
use crate::ids::{AccessCodeId, ApiKeyId};
use crate::revocation::Changed;
use crate::secrets::KeyMaterial;

use super::{AccessCode, find, own_key};

/// The longest reason: one line in the audit log.
pub const MAX_REASON_LEN: usize = 300;
/// The shortest reason support staff may give: enough for a ticket number and a few words.
pub const MIN_REASON_LEN: usize = 10;

/// Support staff must say why they reveal a secret; the reason goes into the audit log.
fn check_staff_reason(access: &AccountAccess, reason: Option<&str>) -> Result<String, AppError> {
    if !access.via_staff {
        return Ok(String::new());
    }
    let reason = reason.unwrap_or("").trim();
    if reason.is_empty() {
        return Err(AppError::invalid(
            "reason",
            "Support staff must give a reason before viewing a secret; it is recorded in the audit log.",
        ));
    }
    if reason.chars().count() < MIN_REASON_LEN {
        return Err(AppError::invalid(
            "reason",
            "Give a reason of at least 10 characters, such as the ticket number and what the customer asked.",
        ));
    }
    if reason.chars().count() > MAX_REASON_LEN || reason.chars().any(char::is_control) {
        return Err(AppError::invalid(
            "reason",
            "Use at most 300 characters, on one line.",
        ));
    }
    Ok(reason.to_owned())
}

/// What reveal and download show: the key, the code and its secret.
pub struct Revealed {
    pub key: ApiKey,
    pub code: AccessCode,
    pub secret: String,
}

/// How a secret is being disclosed, for the audit log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disclosure {
    /// Shown on the secret view (right after creation, or later from the code's row).
    Viewed,
    /// Downloaded as a `.txt` file.
    Downloaded,
}

/// Which secret to disclose, how, and (support staff only) why.
#[derive(Debug, Clone, Copy)]
pub struct RevealRequest<'a> {
    pub key_id: &'a ApiKeyId,
    pub code_id: &'a AccessCodeId,
    pub how: Disclosure,
    pub reason: Option<&'a str>,
}

/// Opens a code's secret for an owner (or support staff giving a reason), recording it in the audit log.
pub fn reveal(
    conn: &mut DbConn,
    access: &AccountAccess,
    actor: &Actor,
    keys: &KeyMaterial,
    request: RevealRequest<'_>,
) -> Result<Changed<Revealed>, AppError> {
    if !access.can_manage() {
        return Err(AppError::forbidden(
            "Only owners of this account can see access code secrets.",
        ));
    }
    let RevealRequest {
        key_id,
        code_id,
        how,
        reason,
    } = request;
    let reason = check_staff_reason(access, reason)?;
    db::write_transaction(conn, |conn| {
        let key = own_key(conn, access, key_id)?;
        let code = find(conn, &key.id, code_id)?;
        let secret = keys
            .open(&code.sealed_secret, &code.id)
            .map_err(AppError::internal)?;
        let action = match how {
            Disclosure::Viewed => AuditAction::AccessCodeSecretViewed,
            Disclosure::Downloaded => AuditAction::AccessCodeDownloaded,
        };
        let details = if reason.is_empty() {
            format!("key {}", key.id)
        } else {
            format!("key {}; reason: {reason}", key.id)
        };
        AuditEvent::record(
            conn,
            actor,
            Some(&access.account.id),
            action,
            &code.id,
            &details,
        )?;
        Ok(Changed::nothing_revoked(Revealed { key, code, secret }))
    })
}
