//! The audit log: who did what to which object, when, from where. Events are written in the same
//! transaction as the change they record, and never carry a secret.

use diesel::prelude::*;
use time::PrimitiveDateTime;

use crate::db::{self, DbConn};
use crate::schema::audit_events;

/// Who acts: a signed-in user (maybe support staff) or, for failed sign-ins, only a typed email.
#[derive(Debug, Clone)]
pub struct Actor {
    pub user_id: Option<String>,
    pub email: String,
    pub is_staff: bool,
    pub client_ip: String,
}

crate::text_enum! {
    /// What happened, as the audit log stores and shows it.
    pub enum AuditAction("audit action") {
        LoginSucceeded = "login.succeeded",
        LoginFailed = "login.failed",
        SignedOutElsewhere = "sessions.signed_out_elsewhere",
        PasswordChanged = "password.changed",
        AccountCreated = "account.created",
        MemberAdded = "member.added",
        ApiKeyCreated = "api_key.created",
        ApiKeyLinked = "api_key.linked",
        ApiKeyUpdated = "api_key.updated",
        ApiKeyDeleted = "api_key.deleted",
        LinkRemoved = "api_key.link_removed",
        AccessCodeCreated = "access_code.created",
        AccessCodeSecretViewed = "access_code.secret_viewed",
        AccessCodeDownloaded = "access_code.downloaded",
        AccessCodeUpdated = "access_code.updated",
        AccessCodeEnabled = "access_code.enabled",
        AccessCodeDisabled = "access_code.disabled",
        AccessCodeDeleted = "access_code.deleted",
        AccessCodeExposed = "access_code.exposed",
        AccessCodeRetirementScheduled = "access_code.retirement_scheduled",
        AccessCodeRetirementCancelled = "access_code.retirement_cancelled",
        AccessCodeRetired = "access_code.retired",
        WebhookCreated = "webhook.created",
        WebhookUpdated = "webhook.updated",
        WebhookDeleted = "webhook.deleted",
        WebhookSecretRotated = "webhook.secret_rotated",
        WebhookAutoDisabled = "webhook.auto_disabled",
    }
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = audit_events)]
pub struct AuditEvent {
    pub id: i64,
    pub account_id: Option<String>,
    pub actor_user_id: Option<String>,
    pub actor_email: String,
    pub actor_is_staff: bool,
    /// Stored as text; an unknown stored value is an error when the row is read.
    #[diesel(deserialize_as = String)]
    pub action: AuditAction,
    pub target: String,
    pub client_ip: String,
    pub details: String,
    pub occurred_at: PrimitiveDateTime,
}

#[derive(Insertable)]
#[diesel(table_name = audit_events)]
struct NewAuditEvent<'a> {
    account_id: Option<&'a str>,
    actor_user_id: Option<&'a str>,
    actor_email: &'a str,
    actor_is_staff: bool,
    action: &'a str,
    target: &'a str,
    client_ip: &'a str,
    details: &'a str,
    occurred_at: PrimitiveDateTime,
}

/// Database methods
impl AuditEvent {
    /// Records one event. `details` is a short human summary (before → after); never a secret.
    pub fn record(
        conn: &mut DbConn,
        actor: &Actor,
        account_id: Option<&str>,
        action: AuditAction,
        target: &str,
        details: &str,
    ) -> QueryResult<()> {
        diesel::insert_into(audit_events::table)
            .values(&NewAuditEvent {
                account_id,
                actor_user_id: actor.user_id.as_deref(),
                actor_email: &actor.email,
                actor_is_staff: actor.is_staff,
                action: action.as_str(),
                target,
                client_ip: &actor.client_ip,
                details,
                occurred_at: db::now(),
            })
            .execute(conn)?;
        Ok(())
    }

    /// One page of the account's events, newest first, and whether there is a next page.
    pub fn list_for_account(
        conn: &mut DbConn,
        account_id: &str,
        offset: i64,
        limit: i64,
    ) -> QueryResult<(Vec<AuditEvent>, bool)> {
        let mut events: Vec<AuditEvent> = audit_events::table
            .filter(audit_events::account_id.eq(account_id))
            .order(audit_events::id.desc())
            .offset(offset)
            .limit(limit + 1)
            .select(AuditEvent::as_select())
            .load(conn)?;
        let has_more = events.len() as i64 > limit;
        events.truncate(usize::try_from(limit).unwrap_or(0));
        Ok((events, has_more))
    }

    /// Events older than the event `before` (all when `None`), newest first: a keyset page for the
    /// management API. Returns the events and whether more follow.
    pub fn list_before(
        conn: &mut DbConn,
        account_id: &str,
        before: Option<i64>,
        limit: i64,
    ) -> QueryResult<(Vec<AuditEvent>, bool)> {
        let mut query = audit_events::table
            .filter(audit_events::account_id.eq(account_id))
            .into_boxed();
        if let Some(before) = before {
            query = query.filter(audit_events::id.lt(before));
        }
        let mut events: Vec<AuditEvent> = query
            .order(audit_events::id.desc())
            .limit(limit + 1)
            .select(AuditEvent::as_select())
            .load(conn)?;
        let more = events.len() as i64 > limit;
        events.truncate(usize::try_from(limit).unwrap_or(0));
        Ok((events, more))
    }
}
