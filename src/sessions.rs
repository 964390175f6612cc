//! Console sessions, kept server-side: the cookie carries a random 256-bit token, the database only its
//! SHA-256, so a leaked database row cannot be replayed as a cookie. Each session has its CSRF token.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use diesel::prelude::*;
use sha2::{Digest, Sha256};
use time::{Duration, PrimitiveDateTime};

use crate::audit::{Actor, AuditAction, AuditEvent};
use crate::db::{self, DbConn};
use crate::ids;
use crate::schema::{sessions, users};
use crate::users::User;

/// A session unused for this long is over.
pub const IDLE_TIMEOUT: Duration = Duration::hours(1);
/// A session is over this long after sign-in, however active.
pub const ABSOLUTE_TIMEOUT: Duration = Duration::hours(12);
/// `last_seen_at` is written at most this often, so that browsing is not a write per page.
const TOUCH_INTERVAL: Duration = Duration::minutes(1);

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = sessions)]
pub struct Session {
    pub id: String,
    pub user_id: String,
    pub csrf_token: String,
    pub created_at: PrimitiveDateTime,
    pub last_seen_at: PrimitiveDateTime,
    pub expires_at: PrimitiveDateTime,
    pub client_ip: String,
    pub user_agent: String,
}

/// A random token in URL-safe base64 (256 bits), for cookies and CSRF tokens.
pub fn new_token() -> String {
    URL_SAFE_NO_PAD.encode(ids::random_bytes_32())
}

/// The stored form of a cookie token.
fn token_digest(token: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(token.as_bytes()))
}

/// Compares two tokens in time independent of where they differ.
pub fn tokens_equal(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Database methods
impl Session {
    /// Starts a session for the user; returns the token for the cookie and the session.
    pub fn start(
        conn: &mut DbConn,
        user_id: &str,
        client_ip: &str,
        user_agent: &str,
    ) -> QueryResult<(String, Session)> {
        let token = new_token();
        let now = db::now();
        let session = Session {
            id: token_digest(&token),
            user_id: user_id.to_owned(),
            csrf_token: new_token(),
            created_at: now,
            last_seen_at: now,
            expires_at: now + ABSOLUTE_TIMEOUT,
            client_ip: client_ip.to_owned(),
            user_agent: user_agent.chars().take(300).collect(),
        };
        diesel::insert_into(sessions::table)
            .values(&session)
            .execute(conn)?;
        Ok((token, session))
    }

    /// The live session for a cookie token and its user. An idle or expired session is deleted and
    /// `None` returned; a live one has its `last_seen_at` refreshed (at most once a minute).
    pub fn find_active(conn: &mut DbConn, token: &str) -> QueryResult<Option<(Session, User)>> {
        let id = token_digest(token);
        let found: Option<(Session, User)> = sessions::table
            .inner_join(users::table)
            .filter(sessions::id.eq(&id))
            .select((Session::as_select(), User::as_select()))
            .first(conn)
            .optional()?;
        let Some((mut session, user)) = found else {
            return Ok(None);
        };
        let now = db::now();
        if now >= session.expires_at || now - session.last_seen_at >= IDLE_TIMEOUT {
            diesel::delete(sessions::table.find(&id)).execute(conn)?;
            return Ok(None);
        }
        if now - session.last_seen_at >= TOUCH_INTERVAL {
            diesel::update(sessions::table.find(&id))
                .set(sessions::last_seen_at.eq(now))
                .execute(conn)?;
            session.last_seen_at = now;
        }
        Ok(Some((session, user)))
    }

    /// Ends the session of this cookie token.
    pub fn end(conn: &mut DbConn, token: &str) -> QueryResult<()> {
        diesel::delete(sessions::table.find(token_digest(token))).execute(conn)?;
        Ok(())
    }

    /// Ends every session of the user (after a password change, or by an administrator).
    pub fn end_all_for_user(conn: &mut DbConn, user_id: &str) -> QueryResult<usize> {
        diesel::delete(sessions::table.filter(sessions::user_id.eq(user_id))).execute(conn)
    }

    /// How many other live sessions the user has besides `keep` (other browsers, other devices).
    pub fn count_others(conn: &mut DbConn, user_id: &str, keep: &str) -> QueryResult<i64> {
        let now = db::now();
        sessions::table
            .filter(sessions::user_id.eq(user_id))
            .filter(sessions::id.ne(keep))
            .filter(sessions::expires_at.gt(now))
            .filter(sessions::last_seen_at.gt(now - IDLE_TIMEOUT))
            .count()
            .get_result(conn)
    }

    /// Removes sessions past their absolute or idle expiry; run periodically.
    pub fn delete_expired(conn: &mut DbConn) -> QueryResult<usize> {
        let now = db::now();
        diesel::delete(
            sessions::table.filter(
                sessions::expires_at
                    .le(now)
                    .or(sessions::last_seen_at.le(now - IDLE_TIMEOUT)),
            ),
        )
        .execute(conn)
    }
}

/// Signs a user in: checks the password (one argon2 run whether or not the email exists), starts a new
/// session and records `login.succeeded` in each of the user's accounts, in one transaction.
/// Returns the cookie token and the user, or `None` for a wrong email or password.
pub fn sign_in(
    conn: &mut DbConn,
    email: &str,
    password: &str,
    client_ip: &str,
    user_agent: &str,
) -> Result<Option<(String, User)>, crate::error::AppError> {
    let Some(user) = User::authenticate(conn, email, password)? else {
        return Ok(None);
    };
    db::write_transaction(conn, |conn| {
        let (token, _) = Session::start(conn, &user.id, client_ip, user_agent)?;
        record_for_user_accounts(conn, &user, client_ip, AuditAction::LoginSucceeded)?;
        Ok(Some((token, user)))
    })
}

/// Records a failed sign-in in the accounts of the user the email belongs to. Called off the response
/// path; an unknown email is recorded too, in no account and without the text typed (people type
/// passwords into the email field), so that both cases make the same write: otherwise the write a
/// known email causes could be seen in the timing of the next request.
pub fn record_failed_sign_in(conn: &mut DbConn, email: &str, client_ip: &str) -> QueryResult<()> {
    match User::find_by_email(conn, email)? {
        Some(user) => db::write_transaction(conn, |conn| {
            record_for_user_accounts(conn, &user, client_ip, AuditAction::LoginFailed)
        }),
        None => db::write_transaction(conn, |conn| {
            let actor = Actor {
                user_id: None,
                email: String::new(),
                is_staff: false,
                client_ip: client_ip.to_owned(),
            };
            AuditEvent::record(
                conn,
                &actor,
                None,
                AuditAction::LoginFailed,
                "unknown email",
                "",
            )
        }),
    }
}

fn record_for_user_accounts(
    conn: &mut DbConn,
    user: &User,
    client_ip: &str,
    action: AuditAction,
) -> QueryResult<()> {
    let actor = Actor {
        user_id: Some(user.id.clone()),
        email: user.email.clone(),
        is_staff: false,
        client_ip: client_ip.to_owned(),
    };
    for (account, _) in crate::users::Membership::accounts_of(conn, &user.id)? {
        AuditEvent::record(conn, &actor, Some(&account.id), action, &user.email, "")?;
    }
    Ok(())
}

/// Ends every session of the user except `keep` (the browser asking), and records it in their
/// accounts' audit logs. Returns how many ended.
pub fn sign_out_elsewhere(
    conn: &mut DbConn,
    user: &User,
    keep: &str,
    client_ip: &str,
) -> QueryResult<usize> {
    db::write_transaction(conn, |conn| {
        let ended = diesel::delete(
            sessions::table
                .filter(sessions::user_id.eq(&user.id))
                .filter(sessions::id.ne(keep)),
        )
        .execute(conn)?;
        record_for_user_accounts(conn, user, client_ip, AuditAction::SignedOutElsewhere)?;
        Ok(ended)
    })
}

/// Changes a user's password after checking the current one, ends every session of theirs, and
/// starts a new one for the browser that made the change; records it in their accounts' audit logs.
/// Returns the new session's token, or the field errors.
pub fn change_password(
    conn: &mut DbConn,
    user: &User,
    current: &str,
    new: &str,
    client_ip: &str,
    user_agent: &str,
) -> Result<String, crate::error::AppError> {
    use crate::error::{AppError, FieldErrors};
    let mut errors = FieldErrors::new();
    if User::authenticate(conn, &user.email, current)?.is_none() {
        errors.add("current_password", "This is not your current password.");
    }
    errors.check("new_password", crate::users::password_problem(new));
    if !errors.is_empty() {
        return Err(AppError::Invalid(errors));
    }
    db::write_transaction(conn, |conn| {
        User::set_password(conn, &user.id, new)?;
        Session::end_all_for_user(conn, &user.id)?;
        let (token, _) = Session::start(conn, &user.id, client_ip, user_agent)?;
        record_for_user_accounts(conn, user, client_ip, AuditAction::PasswordChanged)?;
        Ok(token)
    })
}
