//! Bringing people in: the first owner through the one-time setup link, and `bms-keys user add`.

use crate::accounts::{self, Account};
use crate::audit::{Actor, AuditAction, AuditEvent};
use crate::db::{self, DbConn};
use crate::error::AppError;
use crate::users::{self, Membership, NewUser, Role, User};

/// What the setup form and `user add` ask for.
#[derive(Debug, Clone, Default)]
pub struct NewMember {
    pub email: String,
    pub display_name: String,
    pub password: String,
    pub account_name: String,
    pub role: Option<Role>,
    pub is_staff: bool,
}

/// Field-by-field problems with a new member, in the order the setup form shows its fields.
pub fn problems(new: &NewMember) -> Vec<(&'static str, &'static str)> {
    let mut found = Vec::new();
    let checks = [
        ("account_name", accounts::name_problem(&new.account_name)),
        (
            "display_name",
            users::display_name_problem(&new.display_name),
        ),
        ("email", users::email_problem(&new.email)),
        ("password", users::password_problem(&new.password)),
    ];
    for (field, problem) in checks {
        if let Some(p) = problem {
            found.push((field, p));
        }
    }
    found
}

/// The outcome of `add_member`.
#[derive(Debug)]
pub struct Added {
    pub user: User,
    pub account: Account,
    pub created_user: bool,
    pub created_account: bool,
}

/// Adds a member to the account named `account_name`, creating the account when none has that name,
/// and the user when none has that email (an existing user keeps their password). One transaction.
pub fn add_member(conn: &mut DbConn, new: &NewMember, actor_ip: &str) -> Result<Added, AppError> {
    db::write_transaction(conn, |conn| {
        let (account, created_account) = match Account::find_by_name(conn, &new.account_name)? {
            Some(account) => (account, false),
            None => (Account::create(conn, &new.account_name)?, true),
        };
        let (user, created_user) = match User::find_by_email(conn, &new.email)? {
            Some(user) => (user, false),
            None => {
                let user = User::create(
                    conn,
                    &NewUser {
                        email: &new.email,
                        display_name: &new.display_name,
                        password: &new.password,
                        is_staff: new.is_staff,
                    },
                )?;
                (user, true)
            }
        };
        let role = new.role.unwrap_or(Role::Owner);
        Membership::grant(conn, &user.id, &account.id, role)?;
        let actor = Actor {
            user_id: None,
            email: "bms-keys command line".to_owned(),
            is_staff: false,
            client_ip: actor_ip.to_owned(),
        };
        if created_account {
            AuditEvent::record(
                conn,
                &actor,
                Some(&account.id),
                AuditAction::AccountCreated,
                &account.id,
                &account.name,
            )?;
        }
        AuditEvent::record(
            conn,
            &actor,
            Some(&account.id),
            AuditAction::MemberAdded,
            &user.email,
            &format!("role: {}", role.as_str()),
        )?;
        Ok(Added {
            user,
            account,
            created_user,
            created_account,
        })
    })
}

/// The first run: creates the first owner and their account, only while no user exists at all.
pub fn complete_first_run(
    conn: &mut DbConn,
    new: &NewMember,
    client_ip: &str,
) -> Result<Added, AppError> {
    db::write_transaction(conn, |conn| {
        if User::count(conn)? > 0 {
            return Err(AppError::conflict(
                "Setup has already been completed. Sign in instead.",
            ));
        }
        let account = Account::create(conn, &new.account_name)?;
        let user = User::create(
            conn,
            &NewUser {
                email: &new.email,
                display_name: &new.display_name,
                password: &new.password,
                is_staff: false,
            },
        )?;
        Membership::grant(conn, &user.id, &account.id, Role::Owner)?;
        let actor = Actor {
            user_id: Some(user.id.clone()),
            email: user.email.clone(),
            is_staff: false,
            client_ip: client_ip.to_owned(),
        };
        AuditEvent::record(
            conn,
            &actor,
            Some(&account.id),
            AuditAction::AccountCreated,
            &account.id,
            &account.name,
        )?;
        Ok(Added {
            user,
            account,
            created_user: true,
            created_account: true,
        })
    })
}
