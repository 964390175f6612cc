//! Drive files: the Google Drive files connected to an account (stored rows; the demo adds some), so
//! that the drive-files API has real data behind its policy.

use diesel::prelude::*;
use serde::Serialize;
use time::PrimitiveDateTime;

use crate::db::{self, DbConn};
use crate::ids::{self, IdKind};
use crate::schema::drive_files;

#[derive(Debug, Clone, Queryable, Selectable, Insertable, Serialize)]
#[diesel(table_name = drive_files)]
pub struct DriveFile {
    pub id: String,
    pub account_id: String,
    pub name: String,
    pub mime_type: String,
    pub size_bytes: i64,
    #[serde(serialize_with = "crate::db::serialize_utc")]
    pub modified_at: PrimitiveDateTime,
}

/// The account's files, by name (at most 500).
pub fn list_for_account(conn: &mut DbConn, account_id: &str) -> QueryResult<Vec<DriveFile>> {
    drive_files::table
        .filter(drive_files::account_id.eq(account_id))
        .order((drive_files::name.asc(), drive_files::id.asc()))
        .limit(500)
        .select(DriveFile::as_select())
        .load(conn)
}

/// Connects a file to the account.
pub fn add(
    conn: &mut DbConn,
    account_id: &str,
    name: &str,
    mime_type: &str,
    size_bytes: i64,
) -> QueryResult<DriveFile> {
    let file = DriveFile {
        id: ids::new_id(IdKind::DriveFile),
        account_id: account_id.to_owned(),
        name: name.to_owned(),
        mime_type: mime_type.to_owned(),
        size_bytes,
        modified_at: db::now(),
    };
    diesel::insert_into(drive_files::table)
        .values(&file)
        .execute(conn)?;
    Ok(file)
}
