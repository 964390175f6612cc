//! Rotation: retiring a key's old access code once its services have moved to the new one. The owner
//! schedules the retirement — **when idle** (another code of the key has been used and this one has seen
//! no request for a quiet period) or **at** a time — and a sweep on every instance disables the code
//! when due. The schedule is a row in the database: it survives restarts, and the row is deleted in the
//! transaction that disables the code, so however many instances sweep, a code is retired once.

use diesel::prelude::*;
use time::{Duration, PrimitiveDateTime};

use crate::access::AccountAccess;
use crate::audit::{Actor, AuditAction, AuditEvent};
use crate::db::{self, DbConn};
use crate::error::AppError;
use crate::ids::{AccessCodeId, ApiKeyId};
use crate::revocation::{Changed, Revoked};
use crate::schema::{access_codes, code_retirements};

use super::{AccessCode, find, own_key};

/// The shortest quiet period: longer than the interval at which instances write a code's last use
/// (2 s), so that a code still in use never looks idle.
pub const MIN_QUIET: Duration = Duration::seconds(10);
/// The longest: a week.
pub const MAX_QUIET: Duration = Duration::days(7);

/// When a code retires.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum When {
    /// Once another code of the key has been used and this one has seen no request for this long.
    Idle(Duration),
    At(PrimitiveDateTime),
}

/// A scheduled retirement.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = code_retirements)]
pub struct Retirement {
    pub code_id: String,
    pub api_key_id: String,
    pub account_id: String,
    pub mode: String,
    pub quiet_seconds: Option<i32>,
    pub retire_at: Option<PrimitiveDateTime>,
    pub scheduled_at: PrimitiveDateTime,
}

impl Retirement {
    pub fn when(&self) -> When {
        match (self.mode.as_str(), self.retire_at) {
            ("at", Some(at)) => When::At(at),
            _ => When::Idle(Duration::seconds(i64::from(
                self.quiet_seconds.unwrap_or(900),
            ))),
        }
    }

    /// "when idle for 15 min", "at 2026-12-24 09:00 UTC".
    pub fn describe(&self) -> String {
        match self.when() {
            When::Idle(quiet) => format!("when idle for {}", human(quiet)),
            When::At(at) => format!("at {}", db::rfc3339(&at)),
        }
    }
}

fn human(d: Duration) -> String {
    let s = d.whole_seconds();
    match s {
        s if s % 3600 == 0 => format!("{} h", s / 3600),
        s if s % 60 == 0 => format!("{} min", s / 60),
        s => format!("{s} s"),
    }
}

/// Schedules (or reschedules) the retirement of a code. The key must have another enabled code that
/// its services can move to; the code must be enabled.
pub fn schedule(
    conn: &mut DbConn,
    access: &AccountAccess,
    actor: &Actor,
    key_id: &ApiKeyId,
    code_id: &AccessCodeId,
    when: When,
) -> Result<Changed<Retirement>, AppError> {
    access.require_owner()?;
    let now = db::now();
    db::write_transaction(conn, |conn| {
        let key = own_key(conn, access, key_id)?;
        let code = find(conn, &key.id, code_id)?;
        // The rules on the schedule come after the lookups: another account's ids are a 404 first.
        match when {
            When::Idle(quiet) if quiet < MIN_QUIET || quiet > MAX_QUIET => {
                return Err(AppError::invalid(
                    "quiet_seconds",
                    "Choose a quiet period from 10 seconds to 7 days.",
                ));
            }
            When::At(at) if at <= now => {
                return Err(AppError::invalid("at", "Choose a time in the future."));
            }
            _ => {}
        }
        if !code.in_use_at(now) {
            return Err(AppError::conflict(
                "This access code is not in use: there is nothing to retire.",
            ));
        }
        if !has_successor(&code.id, &super::list_for_key(conn, &key.id)?, now) {
            return Err(AppError::conflict(
                "Create the key's second access code first: retiring its only code would stop every service using the key.",
            ));
        }
        let (mode, quiet_seconds, retire_at) = match when {
            When::Idle(quiet) => ("idle", i32::try_from(quiet.whole_seconds()).ok(), None),
            When::At(at) => ("at", None, Some(at)),
        };
        diesel::delete(code_retirements::table.find(&code.id)).execute(conn)?;
        diesel::insert_into(code_retirements::table)
            .values((
                code_retirements::code_id.eq(&code.id),
                code_retirements::api_key_id.eq(&key.id),
                code_retirements::account_id.eq(&access.account.id),
                code_retirements::mode.eq(mode),
                code_retirements::quiet_seconds.eq(quiet_seconds),
                code_retirements::retire_at.eq(retire_at),
                code_retirements::scheduled_at.eq(now),
            ))
            .execute(conn)?;
        let retirement = Retirement {
            code_id: code.id.clone(),
            api_key_id: key.id.clone(),
            account_id: access.account.id.clone(),
            mode: mode.to_owned(),
            quiet_seconds,
            retire_at,
            scheduled_at: now,
        };
        AuditEvent::record(
            conn,
            actor,
            Some(&access.account.id),
            AuditAction::AccessCodeRetirementScheduled,
            &code.id,
            &format!("key {}; retires {}", key.id, retirement.describe()),
        )?;
        Ok(Changed::nothing_revoked(retirement))
    })
}

/// Whether another code of the key (`codes`) is in use to take over from `code_id`: the condition for
/// scheduling its retirement, which the console also uses to offer it.
pub fn has_successor(code_id: &str, codes: &[AccessCode], now: PrimitiveDateTime) -> bool {
    codes.iter().any(|c| c.id != code_id && c.in_use_at(now))
}

/// Cancels a code's scheduled retirement; `NotFound` when none is scheduled.
pub fn cancel(
    conn: &mut DbConn,
    access: &AccountAccess,
    actor: &Actor,
    key_id: &ApiKeyId,
    code_id: &AccessCodeId,
) -> Result<Changed<()>, AppError> {
    access.require_owner()?;
    db::write_transaction(conn, |conn| {
        let key = own_key(conn, access, key_id)?;
        let code = find(conn, &key.id, code_id)?;
        let removed = diesel::delete(code_retirements::table.find(&code.id)).execute(conn)?;
        if removed == 0 {
            return Err(AppError::NotFound);
        }
        AuditEvent::record(
            conn,
            actor,
            Some(&access.account.id),
            AuditAction::AccessCodeRetirementCancelled,
            &code.id,
            &format!("key {}", key.id),
        )?;
        Ok(Changed::nothing_revoked(()))
    })
}

/// The scheduled retirements of a key's codes.
pub fn for_key(conn: &mut DbConn, key_id: &str) -> QueryResult<Vec<Retirement>> {
    code_retirements::table
        .filter(code_retirements::api_key_id.eq(key_id))
        .select(Retirement::as_select())
        .load(conn)
}

/// Whether a retirement is due at `now`, given the codes of its key.
fn is_due(r: &Retirement, codes: &[AccessCode], now: PrimitiveDateTime) -> bool {
    let Some(old) = codes.iter().find(|c| c.id == r.code_id) else {
        return false;
    };
    match r.when() {
        When::At(at) => now >= at,
        When::Idle(quiet) => {
            let new_in_use = codes
                .iter()
                .any(|c| c.id != r.code_id && c.enabled && c.last_used_at.is_some());
            let quiet_since = old
                .last_used_at
                .map_or(r.scheduled_at, |used| used.max(r.scheduled_at));
            new_in_use && now - quiet_since >= quiet
        }
    }
}

/// The scheduled retirements that are due at `now` — a read, for the sweep to decide whether to open a
/// write transaction at all (`retire_due` checks again inside it).
pub fn due(conn: &mut DbConn, now: PrimitiveDateTime) -> QueryResult<Vec<Retirement>> {
    let scheduled: Vec<Retirement> = code_retirements::table
        .select(Retirement::as_select())
        .load(conn)?;
    let mut due = Vec::new();
    for r in scheduled {
        let codes = super::list_for_key(conn, &r.api_key_id)?;
        if is_due(&r, &codes, now) {
            due.push(r);
        }
    }
    Ok(due)
}

/// Retires every code whose time has come; returns their ids. Each retirement claims its row (a
/// delete that only one instance's transaction can make) before disabling the code, so it happens
/// once. Run by every instance's sweep (`startup`), through the write path.
pub fn retire_due(
    conn: &mut DbConn,
    now: PrimitiveDateTime,
) -> Result<Changed<Vec<String>>, AppError> {
    let mut retired = Vec::new();
    let mut revoked_keys = Vec::new();
    for r in due(conn, now)? {
        let claimed = diesel::delete(code_retirements::table.find(&r.code_id)).execute(conn)?;
        if claimed == 0 {
            continue; // another instance retired it just now
        }
        diesel::update(access_codes::table.find(&r.code_id))
            .set(access_codes::enabled.eq(false))
            .execute(conn)?;
        let actor = Actor {
            user_id: None,
            email: "scheduled retirement".to_owned(),
            is_staff: false,
            client_ip: String::new(),
        };
        AuditEvent::record(
            conn,
            &actor,
            Some(&r.account_id),
            AuditAction::AccessCodeRetired,
            &r.code_id,
            &format!("key {}; retired {}", r.api_key_id, r.describe()),
        )?;
        crate::webhooks::emit(
            conn,
            &r.account_id,
            crate::webhooks::EventType::AccessCodeRetired,
            &crate::webhooks::code_data(&r.account_id, &r.api_key_id, &r.code_id),
        )?;
        revoked_keys.push(r.api_key_id.clone());
        retired.push(r.code_id);
    }
    Ok(Changed::revoking(
        retired,
        Revoked::keys(revoked_keys.iter().map(String::as_str)),
    ))
}
