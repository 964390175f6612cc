//! Expiry notices: `access_code.expiring` 30, 7 and 1 days before an enabled code expires, and
//! `access_code.expired` once it has. Every instance sweeps (each minute); a notice is a row in
//! `expiry_notices` inserted in the transaction that emits its event, so each is sent once however
//! many instances sweep. A code that crosses several thresholds while nobody swept (a server that was
//! down) gets the most urgent notice only.

use diesel::prelude::*;
use time::{Duration, PrimitiveDateTime};

use crate::db::{self, DbConn};
use crate::schema::{access_codes, api_keys, expiry_notices};
use crate::webhooks::{EventType, code_data, emit};

/// The notices, least urgent first: name, and how long before expiry it is due.
const NOTICES: [(&str, Duration); 4] = [
    ("30d", Duration::days(30)),
    ("7d", Duration::days(7)),
    ("1d", Duration::days(1)),
    ("expired", Duration::ZERO),
];

/// The most urgent notice due for a code expiring at `expires_at`, as an index into `NOTICES`.
fn due_notice(expires_at: PrimitiveDateTime, now: PrimitiveDateTime) -> Option<usize> {
    NOTICES
        .iter()
        .rposition(|(_, before)| now >= expires_at - *before)
}

/// Emits the notices that are due and not yet sent. Returns how many it sent.
pub fn sweep(conn: &mut DbConn, now: PrimitiveDateTime) -> QueryResult<usize> {
    let horizon = now + NOTICES[0].1;
    let expired_noticed = expiry_notices::table
        .filter(expiry_notices::code_id.eq(access_codes::id))
        .filter(expiry_notices::notice.eq("expired"));
    let candidates: Vec<(String, String, String, PrimitiveDateTime)> = access_codes::table
        .inner_join(api_keys::table)
        .filter(access_codes::enabled.eq(true))
        .filter(access_codes::expires_at.le(horizon))
        .filter(diesel::dsl::not(diesel::dsl::exists(expired_noticed)))
        .select((
            access_codes::id,
            api_keys::id,
            api_keys::account_id,
            access_codes::expires_at,
        ))
        .load(conn)?;
    let mut sent = 0;
    for (code_id, key_id, account_id, expires_at) in candidates {
        let Some(level) = due_notice(expires_at, now) else {
            continue;
        };
        let already: i64 = expiry_notices::table
            .filter(expiry_notices::code_id.eq(&code_id))
            .filter(expiry_notices::notice.eq(NOTICES[level].0))
            .count()
            .get_result(conn)?;
        if already > 0 {
            continue;
        }
        let emitted = db::write_transaction(conn, |conn| {
            // The less urgent notices are recorded too: they are past.
            let mut claimed = false;
            for (i, (notice, _)) in NOTICES.iter().enumerate().take(level + 1) {
                let inserted = insert_notice(conn, &code_id, notice, now)?;
                if i == level {
                    claimed = inserted;
                }
            }
            if !claimed {
                return Ok(false); // another instance sent it
            }
            let mut data = code_data(&account_id, &key_id, &code_id);
            data["expires_at"] = serde_json::Value::String(db::rfc3339(&expires_at));
            let event = if NOTICES[level].0 == "expired" {
                EventType::AccessCodeExpired
            } else {
                data["days_left"] = serde_json::Value::from((expires_at - now).whole_days());
                EventType::AccessCodeExpiring
            };
            emit(conn, &account_id, event, &data)?;
            Ok::<_, diesel::result::Error>(true)
        })?;
        sent += usize::from(emitted);
    }
    Ok(sent)
}

/// Records a notice; `false` if it was recorded already (by another instance).
fn insert_notice(
    conn: &mut DbConn,
    code_id: &str,
    notice: &str,
    now: PrimitiveDateTime,
) -> QueryResult<bool> {
    // Per backend (the two-backend connection has no upsert).
    macro_rules! insert_on {
        ($c:expr) => {
            diesel::insert_into(expiry_notices::table)
                .values((
                    expiry_notices::code_id.eq(code_id),
                    expiry_notices::notice.eq(notice),
                    expiry_notices::sent_at.eq(now),
                ))
                .on_conflict_do_nothing()
                .execute($c)?
        };
    }
    let inserted = match conn {
        DbConn::Sqlite(c) => insert_on!(c),
        DbConn::Postgres(c) => insert_on!(c),
    };
    Ok(inserted == 1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn the_most_urgent_due_notice_is_chosen() {
        let expires = datetime!(2027-01-31 12:00);
        assert_eq!(due_notice(expires, datetime!(2026-12-31 11:00)), None);
        assert_eq!(due_notice(expires, datetime!(2027-01-01 12:00)), Some(0));
        assert_eq!(due_notice(expires, datetime!(2027-01-24 12:00)), Some(1));
        assert_eq!(due_notice(expires, datetime!(2027-01-31 00:00)), Some(2));
        assert_eq!(due_notice(expires, datetime!(2027-01-31 12:00)), Some(3));
        assert_eq!(due_notice(expires, datetime!(2028-01-01 00:00)), Some(3));
    }
}
