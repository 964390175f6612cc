//! Accounts (tenants): the `acc_…` id and a name. Every other object belongs to one.

use diesel::prelude::*;
use time::PrimitiveDateTime;

use crate::db::{self, DbConn};
use crate::ids::{self, IdKind};
use crate::schema::accounts;

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = accounts)]
pub struct Account {
    pub id: String,
    pub name: String,
    pub created_at: PrimitiveDateTime,
}

/// Longest account name accepted.
pub const MAX_NAME_LEN: usize = 100;

/// Why an account name is refused, or `None` when it is fine.
pub fn name_problem(name: &str) -> Option<&'static str> {
    let len = name.chars().count();
    if name.trim().is_empty() {
        Some("Enter a name for the account.")
    } else if len > MAX_NAME_LEN {
        Some("Use at most 100 characters.")
    } else if name.chars().any(char::is_control) {
        Some("Use letters, digits, spaces and punctuation only.")
    } else {
        None
    }
}

/// Database methods
impl Account {
    pub fn create(conn: &mut DbConn, name: &str) -> QueryResult<Account> {
        let account = Account {
            id: ids::new_id(IdKind::Account),
            name: name.trim().to_owned(),
            created_at: db::now(),
        };
        diesel::insert_into(accounts::table)
            .values(&account)
            .execute(conn)?;
        Ok(account)
    }

    pub fn find_by_id(conn: &mut DbConn, id: &str) -> QueryResult<Option<Account>> {
        accounts::table
            .find(id)
            .select(Account::as_select())
            .first(conn)
            .optional()
    }

    pub fn find_by_name(conn: &mut DbConn, name: &str) -> QueryResult<Option<Account>> {
        accounts::table
            .filter(accounts::name.eq(name.trim()))
            .select(Account::as_select())
            .first(conn)
            .optional()
    }

    /// Accounts whose name contains `q` (any case) or whose id is `q`, by name: the support staff's
    /// account picker. An empty `q` lists every account.
    pub fn search(conn: &mut DbConn, q: &str, limit: i64) -> QueryResult<Vec<Account>> {
        let q = q.trim();
        accounts::table
            .filter(
                db::lower(accounts::name)
                    .like(db::contains_pattern(q))
                    .escape('\\')
                    .or(accounts::id.eq(q)),
            )
            .order((accounts::name.asc(), accounts::id.asc()))
            .limit(limit)
            .select(Account::as_select())
            .load(conn)
    }
}
