//! Users of the console, their passwords (argon2id) and their memberships in accounts.

use std::sync::LazyLock;

use argon2::Argon2;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use diesel::prelude::*;
use time::PrimitiveDateTime;

use crate::accounts::Account;
use crate::db::{self, DbConn};
use crate::error::AppError;
use crate::ids::{self, IdKind};
use crate::schema::{accounts, memberships, users};

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = users)]
pub struct User {
    pub id: String,
    pub email: String,
    pub display_name: String,
    pub password_hash: String,
    pub is_staff: bool,
    pub created_at: PrimitiveDateTime,
    pub updated_at: PrimitiveDateTime,
}

crate::text_enum! {
    /// What a member may do in an account.
    pub enum Role("role") {
        /// Manages keys, codes and secrets.
        Owner = "owner",
        /// Reads lists and details; never sees secrets; changes nothing.
        Viewer = "viewer",
    }
}

/// Shortest password accepted (NIST SP 800-63B asks for at least 8; we ask a little more).
pub const MIN_PASSWORD_LEN: usize = 10;
/// Longest password accepted: bounds the work an attacker can make argon2 do.
pub const MAX_PASSWORD_LEN: usize = 256;

/// Emails are unique case-insensitively: stored and looked up trimmed and lower-cased.
pub fn normalize_email(email: &str) -> String {
    email.trim().to_lowercase()
}

/// Why an email is refused, or `None`.
pub fn email_problem(email: &str) -> Option<&'static str> {
    let email = email.trim();
    let Some((local, domain)) = email.split_once('@') else {
        return Some("Enter an email address like name@example.com.");
    };
    if local.is_empty() || domain.is_empty() || !domain.contains('.') || email.len() > 254 {
        return Some("Enter an email address like name@example.com.");
    }
    if email.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Some("An email address cannot contain spaces.");
    }
    None
}

/// Why a new password is refused, or `None`.
pub fn password_problem(password: &str) -> Option<&'static str> {
    let len = password.chars().count();
    if len < MIN_PASSWORD_LEN {
        Some("Use at least 10 characters.")
    } else if len > MAX_PASSWORD_LEN {
        Some("Use at most 256 characters.")
    } else {
        None
    }
}

/// Why a display name is refused, or `None`.
pub fn display_name_problem(name: &str) -> Option<&'static str> {
    if name.trim().is_empty() {
        Some("Enter your name.")
    } else if name.chars().count() > 100 {
        Some("Use at most 100 characters.")
    } else if name.chars().any(char::is_control) {
        Some("Use letters, digits, spaces and punctuation only.")
    } else {
        None
    }
}

/// argon2id with the OWASP parameters (19 MiB, 2 passes, 1 lane: `Argon2::default()`), random salt.
/// Slow on purpose: call it off the async workers.
pub fn hash_password(password: &str) -> Result<String, AppError> {
    let password = password.to_owned();
    crate::hashing::run(move || {
        Argon2::default()
            .hash_password(password.as_bytes())
            .map(|hash| hash.to_string())
    })
    .ok_or_else(|| AppError::internal("the password hashing thread failed"))?
    .map_err(|e| AppError::internal(format!("cannot hash a password: {e}")))
}

/// A hash of a random password, checked when the email is unknown, so that both paths cost one argon2
/// run with the same parameters and the response time does not tell whether an account exists.
static DUMMY_HASH: LazyLock<String> =
    LazyLock::new(|| hash_password(&crate::ids::random_base62(24)).unwrap_or_default());

/// Computes the unknown-email hash now, in the background, so that the first sign-in with an unknown
/// email does not pay for it (and take longer than a wrong password would).
pub fn prepare_sign_in() {
    let _ = std::thread::Builder::new()
        .name("bms-dummy-hash".to_owned())
        .spawn(|| LazyLock::force(&DUMMY_HASH).len());
}

fn password_matches(hash: &str, password: &str) -> bool {
    let (hash, password) = (hash.to_owned(), password.to_owned());
    crate::hashing::run(move || {
        Argon2::default()
            .verify_password(password.as_bytes(), hash.as_str())
            .is_ok()
    })
    .unwrap_or(false)
}

/// The data needed to create a user.
pub struct NewUser<'a> {
    pub email: &'a str,
    pub display_name: &'a str,
    pub password: &'a str,
    pub is_staff: bool,
}

/// Database methods
impl User {
    /// Creates a user. The caller validates the fields; a taken email is a `Conflict`.
    pub fn create(conn: &mut DbConn, new: &NewUser<'_>) -> Result<User, AppError> {
        let now = db::now();
        let user = User {
            id: ids::new_id(IdKind::User),
            email: normalize_email(new.email),
            display_name: new.display_name.trim().to_owned(),
            password_hash: hash_password(new.password)?,
            is_staff: new.is_staff,
            created_at: now,
            updated_at: now,
        };
        match diesel::insert_into(users::table)
            .values(&user)
            .execute(conn)
        {
            Ok(_) => Ok(user),
            Err(diesel::result::Error::DatabaseError(
                diesel::result::DatabaseErrorKind::UniqueViolation,
                _,
            )) => Err(AppError::conflict("A user with this email already exists.")),
            Err(e) => Err(e.into()),
        }
    }

    pub fn find_by_id(conn: &mut DbConn, id: &str) -> QueryResult<Option<User>> {
        users::table
            .find(id)
            .select(User::as_select())
            .first(conn)
            .optional()
    }

    pub fn find_by_email(conn: &mut DbConn, email: &str) -> QueryResult<Option<User>> {
        users::table
            .filter(users::email.eq(normalize_email(email)))
            .select(User::as_select())
            .first(conn)
            .optional()
    }

    pub fn count(conn: &mut DbConn) -> QueryResult<i64> {
        users::table.count().get_result(conn)
    }

    /// The user with this email and password, or `None` — the same answer, after the same work, for an
    /// unknown email and a wrong password.
    pub fn authenticate(
        conn: &mut DbConn,
        email: &str,
        password: &str,
    ) -> QueryResult<Option<User>> {
        let user = if password.chars().count() > MAX_PASSWORD_LEN {
            None
        } else {
            User::find_by_email(conn, email)?
        };
        let hash = user
            .as_ref()
            .map_or(DUMMY_HASH.as_str(), |u| u.password_hash.as_str());
        let matches = password_matches(hash, password);
        Ok(user.filter(|_| matches))
    }

    pub fn set_password(conn: &mut DbConn, user_id: &str, password: &str) -> Result<(), AppError> {
        let hash = hash_password(password)?;
        diesel::update(users::table.find(user_id))
            .set((
                users::password_hash.eq(hash),
                users::updated_at.eq(db::now()),
            ))
            .execute(conn)?;
        Ok(())
    }
}

/// A user's membership of an account.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = memberships)]
pub struct Membership {
    pub user_id: String,
    pub account_id: String,
    /// Stored as text; an unknown stored value is an error when the row is read.
    #[diesel(deserialize_as = String, serialize_as = String)]
    pub role: Role,
    pub created_at: PrimitiveDateTime,
}

/// Database methods
impl Membership {
    /// Adds the user to the account, or changes their role if already a member.
    pub fn grant(
        conn: &mut DbConn,
        user_id: &str,
        account_id: &str,
        role: Role,
    ) -> QueryResult<()> {
        let updated = diesel::update(memberships::table.find((user_id, account_id)))
            .set(memberships::role.eq(role.as_str()))
            .execute(conn)?;
        if updated == 0 {
            diesel::insert_into(memberships::table)
                .values(Membership {
                    user_id: user_id.to_owned(),
                    account_id: account_id.to_owned(),
                    role,
                    created_at: db::now(),
                })
                .execute(conn)?;
        }
        Ok(())
    }

    /// The user's role in the account, if they are a member.
    pub fn role_of(
        conn: &mut DbConn,
        user_id: &str,
        account_id: &str,
    ) -> QueryResult<Option<Role>> {
        let membership = memberships::table
            .find((user_id, account_id))
            .select(Membership::as_select())
            .first(conn)
            .optional()?;
        Ok(membership.map(|m| m.role))
    }

    /// The accounts the user belongs to, by name, with their role in each.
    pub fn accounts_of(conn: &mut DbConn, user_id: &str) -> QueryResult<Vec<(Account, Role)>> {
        let rows: Vec<(Account, Membership)> = memberships::table
            .inner_join(accounts::table)
            .filter(memberships::user_id.eq(user_id))
            .order((accounts::name.asc(), accounts::id.asc()))
            .select((Account::as_select(), Membership::as_select()))
            .load(conn)?;
        Ok(rows
            .into_iter()
            .map(|(account, m)| (account, m.role))
            .collect())
    }
}
