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

/// A stored timestamp (UTC by convention) as RFC 3339 text, e.g. `2026-11-27T07:31:00.123456Z`.
pub fn rfc3339(t: &PrimitiveDateTime) -> String {
    t.assume_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// `#[serde(serialize_with = "crate::db::serialize_utc")]` for stored timestamps in JSON.
pub fn serialize_utc<S: serde::Serializer>(t: &PrimitiveDateTime, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&rfc3339(t))
}
