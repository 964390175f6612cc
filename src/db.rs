//! The data layer over both backends: one connection type chosen at run time by the database URL, an
//! r2d2 pool of it, the embedded migrations, and the few helpers where SQLite and PostgreSQL differ.

use std::time::Duration;

use diesel::connection::{AnsiTransactionManager, SimpleConnection, TransactionManager};
use diesel::prelude::*;
use diesel::r2d2::R2D2Connection;
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};
use time::{OffsetDateTime, PrimitiveDateTime};

const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/sqlite");
const POSTGRES_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/postgres");

/// A connection to either backend; every query in the crate is written once against it.
#[derive(diesel::MultiConnection)]
pub enum DbConn {
    Sqlite(diesel::SqliteConnection),
    Postgres(diesel::PgConnection),
}

pub type Pool = r2d2::Pool<ConnectionManager>;
pub type PooledConn = r2d2::PooledConnection<ConnectionManager>;

/// Which database a URL names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    /// `postgres://` and `postgresql://` are PostgreSQL; anything else is a SQLite path (optionally
    /// `sqlite://`-prefixed). Choosing by scheme, rather than trying each driver in turn, makes a bad
    /// PostgreSQL URL report PostgreSQL's error instead of silently creating a SQLite file.
    pub fn of_url(url: &str) -> Self {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Backend::Postgres
        } else {
            Backend::Sqlite
        }
    }
}

/// Prepares the PostgreSQL client library; call it before anything touches PostgreSQL (idempotent).
///
/// libpq uses OpenSSL, and OpenSSL frees its state in an exit handler — while a pool thread may still
/// be opening a connection in the background, which then crashed the process on its way out
/// (SIGSEGV inside `exit`, seen in the CLI and the test binary). Initialising OpenSSL first, without
/// that exit handler (what `openssl_sys::init` does), removes the race; the OS reclaims the memory.
pub fn init_postgres_client() {
    openssl_sys::init();
}

/// The r2d2 manager: opens the right backend and sets SQLite's per-connection pragmas.
#[derive(Debug, Clone)]
pub struct ConnectionManager {
    url: String,
    backend: Backend,
}

impl ConnectionManager {
    pub fn new(url: &str) -> Self {
        let backend = Backend::of_url(url);
        let url = match backend {
            Backend::Sqlite => url.strip_prefix("sqlite://").unwrap_or(url).to_owned(),
            Backend::Postgres => {
                init_postgres_client();
                url.to_owned()
            }
        };
        Self { url, backend }
    }
}

/// Durability first (`synchronous=FULL`: an acknowledged write survives power loss), WAL so readers never
/// wait for the writer, and foreign keys, which SQLite leaves off unless asked per connection.
const SQLITE_PRAGMAS: &str = "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; \
     PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 5000;";

impl r2d2::ManageConnection for ConnectionManager {
    type Connection = DbConn;
    type Error = diesel::r2d2::Error;

    fn connect(&self) -> Result<DbConn, Self::Error> {
        use diesel::r2d2::Error;
        match self.backend {
            Backend::Sqlite => {
                let mut conn = diesel::SqliteConnection::establish(&self.url)
                    .map_err(Error::ConnectionError)?;
                conn.batch_execute(SQLITE_PRAGMAS)
                    .map_err(Error::QueryError)?;
                Ok(DbConn::Sqlite(conn))
            }
            Backend::Postgres => diesel::PgConnection::establish(&self.url)
                .map(DbConn::Postgres)
                .map_err(Error::ConnectionError),
        }
    }

    fn is_valid(&self, conn: &mut DbConn) -> Result<(), Self::Error> {
        conn.ping().map_err(diesel::r2d2::Error::QueryError)
    }

    fn has_broken(&self, conn: &mut DbConn) -> bool {
        conn.is_broken()
    }
}

/// Errors from setting up the database.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error("cannot connect to the database: {0}")]
    Pool(#[from] r2d2::Error),
    #[error("cannot run the database migrations: {0}")]
    Migrations(String),
}

/// Builds the pool. SQLite serialises writers anyway, so its pool stays small; PostgreSQL gets more.
/// The short connection timeout makes a database outage answer 503 quickly instead of queueing requests.
pub fn connect(url: &str) -> Result<Pool, SetupError> {
    let manager = ConnectionManager::new(url);
    let max_size = match manager.backend {
        Backend::Sqlite => 8,
        Backend::Postgres => 16,
    };
    let pool = r2d2::Pool::builder()
        .max_size(max_size)
        .min_idle(Some(1))
        .connection_timeout(Duration::from_secs(3))
        .build(manager)?;
    Ok(pool)
}

/// Applies the embedded migrations of the connection's backend.
pub fn run_migrations(conn: &mut DbConn) -> Result<(), SetupError> {
    let result = match conn {
        DbConn::Sqlite(c) => c.run_pending_migrations(SQLITE_MIGRATIONS).map(|_| ()),
        DbConn::Postgres(c) => c.run_pending_migrations(POSTGRES_MIGRATIONS).map(|_| ()),
    };
    result.map_err(|e| SetupError::Migrations(e.to_string()))
}

/// Reverts every migration, then applies them again: used by the test that proves the down migrations.
pub fn redo_all_migrations(conn: &mut DbConn) -> Result<(), SetupError> {
    let result = match conn {
        DbConn::Sqlite(c) => c.revert_all_migrations(SQLITE_MIGRATIONS).map(|_| ()),
        DbConn::Postgres(c) => c.revert_all_migrations(POSTGRES_MIGRATIONS).map(|_| ()),
    };
    result.map_err(|e| SetupError::Migrations(e.to_string()))?;
    run_migrations(conn)
}

/// Runs `f` in a transaction that takes the write lock up front.
///
/// On SQLite a plain (deferred) transaction that reads and then writes can fail with `SQLITE_BUSY` at the
/// upgrade without waiting for `busy_timeout`; `BEGIN IMMEDIATE` queues writers instead. PostgreSQL's
/// default transaction is already right.
pub fn write_transaction<T, E, F>(conn: &mut DbConn, f: F) -> Result<T, E>
where
    F: FnOnce(&mut DbConn) -> Result<T, E>,
    E: From<diesel::result::Error>,
{
    let nested = <DbConn as Connection>::TransactionManager::transaction_manager_status_mut(conn)
        .transaction_depth()?
        .is_some();
    match conn {
        // Inside a transaction already (which holds the lock if it is ours): a savepoint.
        _ if nested => conn.transaction(f),
        DbConn::Postgres(_) => conn.transaction(f),
        DbConn::Sqlite(inner) => {
            AnsiTransactionManager::begin_transaction_sql(inner, "BEGIN IMMEDIATE")?;
            match f(conn) {
                Ok(value) => {
                    <DbConn as Connection>::TransactionManager::commit_transaction(conn)?;
                    Ok(value)
                }
                Err(error) => {
                    <DbConn as Connection>::TransactionManager::rollback_transaction(conn)?;
                    Err(error)
                }
            }
        }
    }
}

/// The current time as stored: UTC, truncated to whole microseconds so that a value read back from
/// PostgreSQL (µs precision) equals the one written (`time` keeps nanoseconds).
pub fn now() -> PrimitiveDateTime {
    let now = OffsetDateTime::now_utc();
    let micros = now.microsecond();
    let now = now.replace_microsecond(micros).unwrap_or(now);
    PrimitiveDateTime::new(now.date(), now.time())
}

diesel::define_sql_function! {
    /// SQL `lower()`, the same on both backends (PostgreSQL's `LIKE` is case-sensitive, SQLite's is not).
    fn lower(x: diesel::sql_types::Text) -> diesel::sql_types::Text;
}

/// A `LIKE` pattern matching `needle` anywhere, lower-cased, with `%`, `_` and `\` taken literally;
/// use it with `.escape('\\')`.
pub fn contains_pattern(needle: &str) -> String {
    let mut pattern = String::with_capacity(needle.len() + 2);
    pattern.push('%');
    for c in needle.to_lowercase().chars() {
        if matches!(c, '%' | '_' | '\\') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push('%');
    pattern
}

/// A stored timestamp (UTC by convention) as RFC 3339 text, e.g. `2026-11-27T07:31:00.123456Z`: the
/// fraction without trailing zeros, none when it is zero — what `time`'s `Rfc3339` writes, written
/// here digit by digit (it is in the hot path's answer; the generic formatter took a third of it).
pub fn rfc3339(t: &PrimitiveDateTime) -> String {
    let year = t.year();
    if !(0..=9999).contains(&year) {
        // Outside RFC 3339's four-digit years: what `time` answers (an error, hence empty).
        return t
            .assume_utc()
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default();
    }
    let (month, day) = (u8::from(t.month()), t.day());
    let (hour, minute, second, nanos) = t.as_hms_nano();
    let mut text = String::with_capacity(30);
    push_digits(&mut text, year.unsigned_abs(), 4);
    text.push('-');
    push_digits(&mut text, month.into(), 2);
    text.push('-');
    push_digits(&mut text, day.into(), 2);
    text.push('T');
    push_digits(&mut text, hour.into(), 2);
    text.push(':');
    push_digits(&mut text, minute.into(), 2);
    text.push(':');
    push_digits(&mut text, second.into(), 2);
    if nanos != 0 {
        let mut width = 9;
        let mut fraction = nanos;
        while fraction % 10 == 0 {
            fraction /= 10;
            width -= 1;
        }
        text.push('.');
        push_digits(&mut text, fraction, width);
    }
    text.push('Z');
    text
}

/// `n`'s last `width` decimal digits, zero-padded.
fn push_digits(out: &mut String, n: u32, width: u32) {
    for place in (0..width).rev() {
        let digit = n / 10u32.pow(place) % 10;
        out.push(char::from(b'0' + digit as u8));
    }
}

/// The PostgreSQL server URL `url` with its database replaced by `name` (query parameters kept): the
/// tests and benches create a database of their own on the server they are given.
pub fn with_database(url: &str, name: &str) -> String {
    let (base, query) = url
        .split_once('?')
        .map_or((url, None), |(b, q)| (b, Some(q)));
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    let base = match base[scheme_end..].find('/') {
        Some(i) => &base[..scheme_end + i],
        None => base,
    };
    match query {
        Some(q) => format!("{base}/{name}?{q}"),
        None => format!("{base}/{name}"),
    }
}

/// `#[serde(serialize_with = "crate::db::serialize_utc")]` for stored timestamps in JSON.
pub fn serialize_utc<S: serde::Serializer>(t: &PrimitiveDateTime, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&rfc3339(t))
}

#[cfg(test)]
mod tests {
    use time::PrimitiveDateTime;
    use time::format_description::well_known::Rfc3339;
    use time::macros::datetime;

    fn by_time(t: PrimitiveDateTime) -> String {
        t.assume_utc().format(&Rfc3339).unwrap_or_default()
    }

    #[test]
    fn timestamps_are_written_as_time_writes_them() {
        let mut cases = vec![
            datetime!(2026-11-27 07:31:00),
            datetime!(2026-11-27 07:31:00.5),
            datetime!(2026-11-27 07:31:00.123456),
            datetime!(2026-11-27 07:31:00.000001),
            datetime!(2026-11-27 07:31:00.120),
            datetime!(2026-11-27 07:31:00.999999999),
            datetime!(0000-01-01 00:00:00),
            datetime!(0999-12-31 23:59:59.1),
            datetime!(9999-12-31 23:59:59.999999),
            datetime!(-0001-12-31 23:59:59),
        ];
        // A spread of instants over four centuries, with every number of fraction digits.
        let mut x: u64 = 0x2545_f491_4f6c_dd1d;
        for _ in 0..5000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let seconds = i64::try_from(x % 12_623_040_000).unwrap_or(0);
            let nanos = u32::try_from((x >> 20) % 1_000_000_000).unwrap_or(0);
            // Rounded to 0-9 trailing zeros.
            let unit = 10u32.pow(u32::try_from(x % 10).unwrap_or(0));
            let nanos = nanos / unit * unit;
            let t = datetime!(1800-01-01 00:00:00)
                + time::Duration::new(seconds, i32::try_from(nanos).unwrap_or(0));
            cases.push(t);
        }
        for t in cases {
            assert_eq!(super::rfc3339(&t), by_time(t), "{t:?}");
        }
        assert_eq!(
            super::rfc3339(&datetime!(2026-11-27 07:31:00.120)),
            "2026-11-27T07:31:00.12Z"
        );
    }
}
