//! The application under test: `TestApp` starts the real application (the same `Application::build` as
//! the binary) on a free loopback port with a fresh database — a new SQLite file, or a new PostgreSQL
//! database created on the server named by `BMS_TEST_POSTGRES_URL` and dropped afterwards — and gives
//! the test its database for arranging and checking state; `both_backends!` runs a test on each.

use std::sync::Arc;

use bms_keys::config::Settings;
use bms_keys::db::{DbConn, PooledConn};
use bms_keys::onboarding::{self, NewMember};
use bms_keys::startup::Application;
use bms_keys::users::Role;
use bms_keys::web::state::AppState;
use diesel::{Connection, RunQueryDsl};

use super::Browser;

/// Which database a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Runs the test body once on SQLite and once on PostgreSQL, as two tests named `<test>::sqlite` and
/// `<test>::postgres`. Without `BMS_TEST_POSTGRES_URL` at build time the PostgreSQL one is ignored
/// with the reason shown.
///
/// `async fn name(app) settings(|s| …) { … }` starts the app with adjusted settings.
#[macro_export]
macro_rules! both_backends {
    ($(async fn $name:ident($app:ident) $(settings($adjust:expr))? $body:block)*) => {$(
        mod $name {
            #[allow(unused_imports)]
            use super::*;
            async fn run($app: $crate::helpers::TestApp) $body

            #[allow(unused_variables)] // without `settings(…)` there is nothing to adjust
            fn adjust(settings: &mut bms_keys::config::Settings) {
                $(($adjust)(settings);)?
            }

            #[actix_web::test]
            async fn sqlite() {
                run($crate::helpers::TestApp::spawn_with($crate::helpers::Backend::Sqlite, adjust).await).await
            }

            #[actix_web::test]
            #[cfg_attr(not(bms_pg_tests), ignore = "PostgreSQL: set BMS_TEST_POSTGRES_URL to run")]
            async fn postgres() {
                run($crate::helpers::TestApp::spawn_with($crate::helpers::Backend::Postgres, adjust).await).await
            }
        }
    )*};
}

/// A fresh database, removed when dropped.
enum TestDb {
    Sqlite(#[allow(dead_code)] tempfile::TempDir),
    Postgres { admin_url: String, name: String },
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let TestDb::Postgres { admin_url, name } = self
            && let Ok(mut conn) = diesel::PgConnection::establish(admin_url)
        {
            let _ = diesel::sql_query(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                .execute(&mut conn);
        }
    }
}

fn new_database(backend: Backend) -> (String, TestDb, std::path::PathBuf) {
    let dir = tempfile::tempdir().expect("temporary directory");
    let data_dir = dir.path().to_path_buf();
    match backend {
        Backend::Sqlite => {
            let url = data_dir.join("bms.db").to_string_lossy().into_owned();
            (url, TestDb::Sqlite(dir), data_dir)
        }
        Backend::Postgres => {
            let admin_url = std::env::var("BMS_TEST_POSTGRES_URL")
                .expect("BMS_TEST_POSTGRES_URL must name a PostgreSQL server the tests may create databases on");
            let name = format!(
                "bms_test_{}",
                bms_keys::ids::random_base62(12).to_lowercase()
            );
            bms_keys::db::init_postgres_client();
            let mut conn = diesel::PgConnection::establish(&admin_url)
                .unwrap_or_else(|e| panic!("cannot connect to BMS_TEST_POSTGRES_URL: {e}"));
            diesel::sql_query(format!("CREATE DATABASE {name}"))
                .execute(&mut conn)
                .expect("create the test database");
            let url = bms_keys::db::with_database(&admin_url, &name);
            // Keep the temporary directory alive for the key material: leak it into the data dir path.
            let data_dir = dir.keep();
            (url, TestDb::Postgres { admin_url, name }, data_dir)
        }
    }
}

/// The running application of one test.
#[allow(dead_code)] // not every field is used by every test module yet
pub struct TestApp {
    pub address: String,
    pub backend: Backend,
    pub state: Arc<AppState>,
    pub database_url: String,
    /// The database this app created (and drops); `None` for a second instance on another's database.
    _db: Option<TestDb>,
}

impl TestApp {
    pub async fn spawn(backend: Backend) -> TestApp {
        Self::spawn_with(backend, |_| {}).await
    }

    /// Starts the app with settings adjusted by `adjust`.
    pub async fn spawn_with(backend: Backend, adjust: impl FnOnce(&mut Settings)) -> TestApp {
        let (database_url, db, data_dir) = new_database(backend);
        Self::start(backend, database_url, data_dir, Some(db), adjust).await
    }

    /// The app on a database the test provides (a PostgreSQL cluster of its own, say), which it
    /// neither creates nor drops.
    pub async fn spawn_on(backend: Backend, database_url: String) -> TestApp {
        let data_dir = tempfile::tempdir().expect("temporary directory").keep();
        Self::start(backend, database_url, data_dir, None, |_| {}).await
    }

    /// A second instance on this app's database and key material (as behind a load balancer).
    pub async fn second_instance(&self) -> TestApp {
        self.another_instance(|_| {}).await
    }

    /// Another instance on this app's database and key material, with settings adjusted by `adjust`.
    pub async fn another_instance(&self, adjust: impl FnOnce(&mut Settings)) -> TestApp {
        let data_dir = self.state.settings.data_dir.clone();
        Self::start(
            self.backend,
            self.database_url.clone(),
            data_dir,
            None,
            adjust,
        )
        .await
    }

    async fn start(
        backend: Backend,
        database_url: String,
        data_dir: std::path::PathBuf,
        db: Option<TestDb>,
        adjust: impl FnOnce(&mut Settings),
    ) -> TestApp {
        let mut settings = Settings {
            workers: 2,
            ..Settings::local(database_url.clone(), data_dir)
        };
        adjust(&mut settings);
        let app = Application::build(settings).expect("the application starts");
        let address = format!("http://127.0.0.1:{}", app.port());
        let state = app.state();
        actix_web::rt::spawn(app.run_until_stopped());
        TestApp {
            address,
            backend,
            state,
            database_url,
            _db: db,
        }
    }

    /// A new browser (empty cookie jar) pointed at this app.
    pub fn browser(&self) -> Browser {
        Browser::for_address(&self.address)
    }

    /// A connection to the app's database, for arranging and checking state directly.
    pub fn conn(&self) -> PooledConn {
        self.state.db.pool.get().expect("a database connection")
    }

    /// Adds a user (created with `password`) to the account named `account`, creating it if needed.
    /// Returns the account id.
    pub fn add_user(
        &self,
        email: &str,
        password: &str,
        account: &str,
        role: Role,
        staff: bool,
    ) -> String {
        let mut conn = self.conn();
        let added = onboarding::add_member(
            &mut conn,
            &NewMember {
                email: email.to_owned(),
                display_name: email.split('@').next().unwrap_or("user").to_owned(),
                password: password.to_owned(),
                account_name: account.to_owned(),
                role: Some(role),
                is_staff: staff,
            },
            "test",
        )
        .expect("add the user");
        added.account.id
    }

    /// Runs a closure with a connection (for raw SQL in tests).
    pub fn with_conn<T>(&self, f: impl FnOnce(&mut DbConn) -> T) -> T {
        let mut conn = self.conn();
        f(&mut conn)
    }
}

/// The password every test user gets.
pub const PASSWORD: &str = "correct horse battery staple";

/// The audit actions recorded for an account, newest first.
pub fn audit_actions(app: &TestApp, account_id: &str) -> Vec<(String, bool, String)> {
    let mut conn = app.conn();
    let (events, _) = bms_keys::audit::AuditEvent::list_for_account(&mut conn, account_id, 0, 500)
        .expect("audit events");
    events
        .into_iter()
        .map(|e| (e.action.to_string(), e.actor_is_staff, e.details))
        .collect()
}

/// Everything the application logs during the test run, at debug level and above. The first call
/// installs the capturing subscriber for the whole test binary.
pub fn captured_logs() -> std::sync::Arc<std::sync::Mutex<Vec<u8>>> {
    use std::sync::{Arc, Mutex, OnceLock};
    static LOGS: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOGS.get_or_init(|| {
        let buffer = Arc::new(Mutex::new(Vec::new()));
        let writer = buffer.clone();
        let _ = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::DEBUG)
            .with_ansi(false)
            .with_writer(move || CaptureWriter(writer.clone()))
            .try_init();
        buffer
    })
    .clone()
}

struct CaptureWriter(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for CaptureWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend_from_slice(data);
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A loopback port that was free a moment ago (for the programs the tests start: nginx, chromedriver,
/// a second server process).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind a free port")
        .local_addr()
        .expect("its address")
        .port()
}

/// A webhook endpoint of the account, written straight to the database (the sweeps need one in every
/// account; the console's own form is tested in `webhooks.rs`). It points at a public address that is
/// never reached and receives only `link.removed`.
pub fn add_webhook(app: &TestApp, account_id: &str) -> String {
    use bms_keys::schema::webhook_endpoints as e;
    use diesel::ExpressionMethods;
    let id = bms_keys::ids::WebhookEndpointId::generate()
        .as_str()
        .to_owned();
    app.with_conn(|conn| {
        diesel::insert_into(e::table)
            .values((
                e::id.eq(&id),
                e::account_id.eq(account_id),
                e::url.eq("https://93.184.216.34/hook"),
                e::description.eq(""),
                e::events.eq("link.removed"),
                e::enabled.eq(true),
                e::sealed_secret.eq(vec![0u8; 8]),
                e::created_at.eq(bms_keys::db::now()),
            ))
            .execute(conn)
            .expect("a webhook endpoint");
    });
    id
}
