//! A management API request's caller: an access code acting on an account through its key (or that
//! account's link to it), with the policies it holds there. The API's routes are allowed by those
//! policies like every BMS API; the rules here keep a caller from giving any key more than it holds.

use std::collections::BTreeSet;

use crate::access::AccountAccess;
use crate::accounts::Account;
use crate::audit::Actor;
use crate::db::DbConn;
use crate::error::AppError;
use crate::users::Role;
use crate::verify::Grant;

/// Who calls the management API, as decided by the verification path.
#[derive(Debug, Clone)]
pub struct ApiCaller {
    /// The account acted on, with owner rights: the route's policy already allowed the request.
    pub access: AccountAccess,
    pub actor: Actor,
    /// The key whose policies decided (the code's own key, or this account's link to it).
    pub key_id: String,
    /// The key the calling access code belongs to.
    pub source_key_id: String,
    pub access_code_id: String,
    pub policies: BTreeSet<String>,
}

impl ApiCaller {
    /// The caller of a verified request; `NotFound` if the account is gone since.
    pub fn load(conn: &mut DbConn, grant: &Grant, client_ip: &str) -> Result<Self, AppError> {
        let account = Account::find_by_id(conn, grant.account_id())?.ok_or(AppError::NotFound)?;
        let actor = Actor {
            user_id: None,
            email: format!(
                "API key {} (access code {})",
                grant.api_key_id(),
                grant.access_code_id()
            ),
            is_staff: false,
            client_ip: client_ip.to_owned(),
        };
        Ok(ApiCaller {
            access: AccountAccess {
                account,
                role: Role::Owner,
                via_staff: false,
            },
            actor,
            key_id: grant.api_key_id().to_string(),
            source_key_id: grant.source_key_id().to_string(),
            access_code_id: grant.access_code_id().to_string(),
            policies: grant.policies().iter().cloned().collect(),
        })
    }

    /// Whether `key_id` is the calling key (its own key, or the link it calls through).
    pub fn is_itself(&self, key_id: &str) -> bool {
        key_id == self.key_id || key_id == self.source_key_id
    }

    /// A key may end up with `policies` only if the caller holds every one of them on this account:
    /// else 403 `escalation`, naming those it lacks.
    pub fn may_grant<'a>(
        &self,
        policies: impl IntoIterator<Item = &'a str>,
    ) -> Result<(), AppError> {
        let lacking: Vec<&str> = policies
            .into_iter()
            .filter(|p| !self.policies.contains(*p))
            .collect();
        if lacking.is_empty() {
            Ok(())
        } else {
            Err(AppError::Escalation(format!(
                "The calling key does not hold {}, so it cannot give it to a key.",
                lacking.join(", ")
            )))
        }
    }

    /// The codes of a key, and their secrets, are its power: a caller may create, change, reveal or
    /// re-enable them only on keys that hold nothing the caller lacks.
    pub fn may_use_codes_of<'a>(
        &self,
        key_policies: impl IntoIterator<Item = &'a str>,
    ) -> Result<(), AppError> {
        self.may_grant(key_policies).map_err(|_| {
            AppError::Escalation(
                "This key holds policies the calling key does not: its access codes are out of reach."
                    .to_owned(),
            )
        })
    }

    /// A key cannot delete itself (nor the link it calls through).
    pub fn may_delete(&self, key_id: &str) -> Result<(), AppError> {
        if self.is_itself(key_id) {
            Err(AppError::Escalation(
                "An API key cannot delete itself. Use another key or the console.".to_owned(),
            ))
        } else {
            Ok(())
        }
    }
}
