//! Who may do what in an account: members by their role, support staff in any account. Every console
//! route under `/accounts/{acc}` starts here, so tenant isolation is decided in one place.

use diesel::prelude::*;

use crate::accounts::Account;
use crate::audit::Actor;
use crate::db::DbConn;
use crate::error::AppError;
use crate::ids::AccountId;
use crate::users::{Membership, Role, User};

/// A user's access to one account, as decided for this request.
#[derive(Debug, Clone)]
pub struct AccountAccess {
    pub account: Account,
    /// The effective role: support staff act as owners.
    pub role: Role,
    /// The user is support staff acting in an account they are not a member of: the banner shows,
    /// and the audit log marks what they do.
    pub via_staff: bool,
}

impl AccountAccess {
    /// The user's access to the account with this id. An account that does not exist and one the user
    /// may not see give the same `NotFound`, so ids of other tenants cannot be probed.
    pub fn load(conn: &mut DbConn, user: &User, account_id: &AccountId) -> Result<Self, AppError> {
        let account = Account::find_by_id(conn, account_id)?.ok_or(AppError::NotFound)?;
        let (role, via_staff) = match (
            Membership::role_of(conn, &user.id, &account.id)?,
            user.is_staff,
        ) {
            (Some(Role::Owner), _) => (Role::Owner, false),
            (_, true) => (Role::Owner, true),
            (Some(role), false) => (role, false),
            (None, false) => return Err(AppError::NotFound),
        };
        Ok(Self {
            account,
            role,
            via_staff,
        })
    }

    pub fn can_manage(&self) -> bool {
        self.role == Role::Owner
    }

    /// Refuses viewers: only owners (and staff) change things.
    pub fn require_owner(&self) -> Result<(), AppError> {
        if self.can_manage() {
            Ok(())
        } else {
            Err(AppError::forbidden(
                "Viewers can look at API keys but not change them. Ask an owner of this account.",
            ))
        }
    }

    /// The audit actor for a change made through this access.
    pub fn actor(&self, user: &User, client_ip: &str) -> Actor {
        Actor {
            user_id: Some(user.id.clone()),
            email: user.email.clone(),
            is_staff: user.is_staff && self.via_staff,
            client_ip: client_ip.to_owned(),
        }
    }
}

/// The account a user lands on after signing in: their first account by name.
pub fn home_account(conn: &mut DbConn, user: &User) -> QueryResult<Option<Account>> {
    Ok(Membership::accounts_of(conn, &user.id)?
        .into_iter()
        .next()
        .map(|(account, _)| account))
}
