//! Leaked access codes. Anyone who finds a code can report it (the credential revocation API), as can
//! a secret scanner; each reported code that exists is disabled at once — on every instance, through
//! the write path — marked as exposed, and audited in its account. Nothing tells the reporter which
//! codes existed.

use diesel::prelude::*;

use crate::audit::{Actor, AuditAction, AuditEvent};
use crate::db::{self, DbConn};
use crate::error::AppError;
use crate::revocation::{Changed, Revoked};
use crate::schema::{access_codes, api_keys};
use crate::secrets::{self, KeyMaterial};

/// The most codes one report to the credential revocation API may carry.
pub const MAX_REPORTED: usize = 100;

/// Who reported, as the audit log shows it.
#[derive(Debug, Clone)]
pub struct Report<'a> {
    /// "credential revocation API", "GitHub secret scanning", …
    pub source: &'a str,
    pub client_ip: &'a str,
}

/// One reported secret, and where it was found if the reporter said (a URL).
#[derive(Debug, Clone)]
pub struct Reported {
    pub secret: String,
    pub location: Option<String>,
}

/// Disables every reported code that exists and records its exposure; returns, per reported secret,
/// whether it is a code of ours (for the log, and for an authenticated scanner's feedback — never for
/// an anonymous reporter). One write transaction.
pub fn revoke_reported(
    conn: &mut DbConn,
    keys: &KeyMaterial,
    reported: &[Reported],
    report: &Report<'_>,
) -> Result<Changed<Vec<bool>>, AppError> {
    db::write_transaction(conn, |conn| {
        let now = db::now();
        let actor = Actor {
            user_id: None,
            email: format!("outside report ({})", report.source),
            is_staff: false,
            client_ip: report.client_ip.to_owned(),
        };
        let mut revoked: Vec<String> = Vec::new();
        let mut found = Vec::with_capacity(reported.len());
        for item in reported {
            let secret = item.secret.as_str();
            found.push(false);
            if secrets::check_format(secret).is_err() {
                continue;
            }
            let digest = keys.digest(secret);
            let Some((code_id, key_id, account_id, exposed_at)) = access_codes::table
                .inner_join(api_keys::table)
                .filter(access_codes::secret_digest.eq(digest.as_slice()))
                .select((
                    access_codes::id,
                    api_keys::id,
                    api_keys::account_id,
                    access_codes::exposed_at,
                ))
                .first::<(String, String, String, Option<time::PrimitiveDateTime>)>(conn)
                .optional()?
            else {
                continue;
            };
            if let Some(last) = found.last_mut() {
                *last = true;
            }
            if exposed_at.is_some() {
                continue; // reported before: already disabled and recorded
            }
            diesel::update(access_codes::table.find(&code_id))
                .set((
                    access_codes::enabled.eq(false),
                    access_codes::exposed_at.eq(Some(now)),
                    access_codes::exposure_source.eq(Some(report.source)),
                ))
                .execute(conn)?;
            // A reporter's text never carries a secret into the audit log.
            let location = item
                .location
                .as_deref()
                .filter(|l| !secrets::contains_secret_like(l));
            let details = match location {
                Some(location) => format!(
                    "disabled after an outside report ({}), found at {location}; key {key_id}",
                    report.source
                ),
                None => format!(
                    "disabled after an outside report ({}); key {key_id}",
                    report.source
                ),
            };
            AuditEvent::record(
                conn,
                &actor,
                Some(&account_id),
                AuditAction::AccessCodeExposed,
                &code_id,
                &details,
            )?;
            crate::webhooks::emit(
                conn,
                &account_id,
                crate::webhooks::EventType::AccessCodeExposed,
                &crate::webhooks::code_data(&account_id, &key_id, &code_id),
            )?;
            revoked.push(key_id);
        }
        Ok(Changed::revoking(
            found,
            Revoked::keys(revoked.iter().map(String::as_str)),
        ))
    })
}
