//! Ads: a small, real BMS API resource stored per account, so that the binary demonstrates policies on
//! its own (`ads.read` lists them, `ads.write` creates them).

use diesel::prelude::*;
use serde::Serialize;
use time::PrimitiveDateTime;

use crate::db::{self, DbConn};
use crate::error::AppError;
use crate::ids::{self, IdKind};
use crate::schema::ads;

#[derive(Debug, Clone, Queryable, Selectable, Insertable, Serialize)]
#[diesel(table_name = ads)]
pub struct Ad {
    pub id: String,
    pub account_id: String,
    pub name: String,
    pub status: String,
    pub daily_budget_cents: i64,
    #[serde(serialize_with = "crate::db::serialize_utc")]
    pub created_at: PrimitiveDateTime,
}

/// Most ads listed at once.
pub const LIST_LIMIT: i64 = 100;

/// The account's ads, newest first.
pub fn list_for_account(conn: &mut DbConn, account_id: &str) -> QueryResult<Vec<Ad>> {
    ads::table
        .filter(ads::account_id.eq(account_id))
        .order((ads::created_at.desc(), ads::id.desc()))
        .limit(LIST_LIMIT)
        .select(Ad::as_select())
        .load(conn)
}

/// Creates a paused ad after checking its fields.
pub fn create(
    conn: &mut DbConn,
    account_id: &str,
    name: &str,
    daily_budget_cents: i64,
) -> Result<Ad, AppError> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 120 || name.chars().any(char::is_control) {
        return Err(AppError::invalid(
            "name",
            "Give the ad a name of 1 to 120 characters.",
        ));
    }
    if !(100..=100_000_000).contains(&daily_budget_cents) {
        return Err(AppError::invalid(
            "daily_budget_cents",
            "The daily budget must be between 100 and 100,000,000 cents.",
        ));
    }
    let ad = Ad {
        id: ids::new_id(IdKind::Ad),
        account_id: account_id.to_owned(),
        name: name.to_owned(),
        status: "paused".to_owned(),
        daily_budget_cents,
        created_at: db::now(),
    };
    diesel::insert_into(ads::table).values(&ad).execute(conn)?;
    Ok(ad)
}
