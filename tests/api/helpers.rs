//! The test harness: `TestApp` starts the real application (the same `Application::build` as the
//! binary) on a free loopback port with a fresh database — a new SQLite file, or a new PostgreSQL
//! database created on the server named by `BMS_TEST_POSTGRES_URL` and dropped afterwards.
//! `Browser` is one HTTP client with its own cookie jar.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::sync::Arc;

use actix_web::cookie::Cookie;
use actix_web::http::StatusCode;
use actix_web::http::header::HeaderMap;
use bms_keys::config::Settings;
use bms_keys::db::{DbConn, PooledConn};
use bms_keys::onboarding::{self, NewMember};
use bms_keys::startup::Application;
use bms_keys::users::Role;
use bms_keys::web::state::AppState;
use diesel::{Connection, RunQueryDsl};

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

/// The URL of database `name` on the same server as `url`.
fn with_database(url: &str, name: &str) -> String {
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
            let url = with_database(&admin_url, &name);
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
        let data_dir = self.state.settings.data_dir.clone();
        Self::start(
            self.backend,
            self.database_url.clone(),
            data_dir,
            None,
            |_| {},
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

    /// A browser signed in as a new owner of a new account; returns it and the account id.
    pub async fn signed_in_owner(&self, email: &str, account: &str) -> (Browser, String) {
        let account_id = self.add_user(email, PASSWORD, account, Role::Owner, false);
        let browser = self.browser();
        let res = browser.log_in(email, PASSWORD).await;
        assert_eq!(
            res.status,
            StatusCode::SEE_OTHER,
            "sign-in of {email}: {}",
            res.body
        );
        (browser, account_id)
    }

    /// Runs a closure with a connection (for raw SQL in tests).
    pub fn with_conn<T>(&self, f: impl FnOnce(&mut DbConn) -> T) -> T {
        let mut conn = self.conn();
        f(&mut conn)
    }
}

/// The password every test user gets.
pub const PASSWORD: &str = "correct horse battery staple";

/// A response, read whole.
#[derive(Debug)]
pub struct TestResponse {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: String,
}

impl TestResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn location(&self) -> &str {
        self.header("location").unwrap_or("")
    }

    /// Every `Set-Cookie` header value.
    pub fn set_cookies(&self) -> Vec<String> {
        self.headers
            .get_all("set-cookie")
            .filter_map(|v| v.to_str().ok().map(str::to_owned))
            .collect()
    }

    /// The value of the first hidden `csrf_token` field in the page.
    pub fn csrf_token(&self) -> String {
        hidden_field(&self.body, "csrf_token")
            .unwrap_or_else(|| panic!("no csrf_token in page:\n{}", self.body))
    }
}

/// The value of the first `<input … name="{name}" value="…">` in `html`.
pub fn hidden_field(html: &str, name: &str) -> Option<String> {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html.find(&marker)? + marker.len();
    let end = html[start..].find('"')? + start;
    Some(html[start..end].to_owned())
}

/// One user agent with a cookie jar.
pub struct Browser {
    pub address: String,
    client: awc::Client,
    jar: RefCell<BTreeMap<String, String>>,
}

impl Browser {
    /// A browser pointed at any address (a proxy in front of the app, say).
    pub fn for_address(address: &str) -> Browser {
        Browser {
            address: address.to_owned(),
            client: awc::Client::builder()
                .disable_redirects()
                .timeout(std::time::Duration::from_secs(30))
                .finish(),
            jar: RefCell::new(BTreeMap::new()),
        }
    }

    fn cookie_header(&self) -> String {
        self.jar
            .borrow()
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    fn url(&self, path: &str) -> String {
        format!("{}{}", self.address, path)
    }

    async fn finish(
        &self,
        res: Result<awc::ClientResponse, awc::error::SendRequestError>,
    ) -> TestResponse {
        let mut res = match res {
            Ok(r) => r,
            Err(e) => panic!("request failed: {e}"),
        };
        let body = res
            .body()
            .limit(16 * 1024 * 1024)
            .await
            .expect("response body");
        let headers = res.headers().clone();
        for value in headers.get_all("set-cookie") {
            let Ok(text) = value.to_str() else { continue };
            let Ok(cookie) = Cookie::parse(text.to_owned()) else {
                continue;
            };
            let removed = cookie
                .max_age()
                .is_some_and(|age| age.is_zero() || age.is_negative());
            if removed || cookie.value().is_empty() {
                self.jar.borrow_mut().remove(cookie.name());
            } else {
                self.jar
                    .borrow_mut()
                    .insert(cookie.name().to_owned(), cookie.value().to_owned());
            }
        }
        TestResponse {
            status: res.status(),
            headers,
            body: String::from_utf8_lossy(&body).into_owned(),
        }
    }

    pub async fn get(&self, path: &str) -> TestResponse {
        let req = self
            .client
            .get(self.url(path))
            .insert_header(("cookie", self.cookie_header()));
        let res = req.send().await;
        self.finish(res).await
    }

    /// Follows redirects (GET) until a non-redirect answer, at most 5 hops.
    pub async fn get_following(&self, path: &str) -> TestResponse {
        let mut res = self.get(path).await;
        for _ in 0..5 {
            if !res.status.is_redirection() {
                break;
            }
            let next = res.location().to_owned();
            res = self.get(&next).await;
        }
        res
    }

    /// POSTs a form body given as name/value pairs (repeat a name for repeated fields).
    pub async fn post_form(&self, path: &str, fields: &[(&str, &str)]) -> TestResponse {
        let body = serde_html_form::to_string(fields).expect("encode form");
        self.post_raw(path, "application/x-www-form-urlencoded", body.into_bytes())
            .await
    }

    /// POSTs a form; `None` when the server could not be reached (it was killed, say).
    pub async fn post_form_result(
        &self,
        path: &str,
        fields: &[(&str, &str)],
    ) -> Option<TestResponse> {
        let body = serde_html_form::to_string(fields).expect("encode form");
        let mut res = self
            .client
            .post(self.url(path))
            .insert_header(("cookie", self.cookie_header()))
            .insert_header(("content-type", "application/x-www-form-urlencoded"))
            .send_body(body)
            .await
            .ok()?;
        let body = res.body().limit(16 * 1024 * 1024).await.ok()?;
        Some(TestResponse {
            status: res.status(),
            headers: res.headers().clone(),
            body: String::from_utf8_lossy(&body).into_owned(),
        })
    }

    /// POSTs any body with any content type.
    pub async fn post_raw(&self, path: &str, content_type: &str, body: Vec<u8>) -> TestResponse {
        let req = self
            .client
            .post(self.url(path))
            .insert_header(("cookie", self.cookie_header()))
            .insert_header(("content-type", content_type));
        let res = req.send_body(body).await;
        self.finish(res).await
    }

    /// Sends a request with extra headers (for API calls).
    #[allow(dead_code)]
    pub async fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<String>,
    ) -> TestResponse {
        let method = actix_web::http::Method::from_bytes(method.as_bytes()).expect("method");
        let mut req = self
            .client
            .request(method, self.url(path))
            .insert_header(("cookie", self.cookie_header()));
        // Appended, so that a test can send a header twice.
        for (name, value) in headers {
            req = req.append_header((*name, *value));
        }
        let res = match body {
            Some(b) => req.send_body(b).await,
            None => req.send().await,
        };
        self.finish(res).await
    }

    /// Opens the sign-in page (for its CSRF cookie and token) and signs in.
    pub async fn log_in(&self, email: &str, password: &str) -> TestResponse {
        let page = self.get("/login").await;
        assert_eq!(page.status, StatusCode::OK);
        let token = page.csrf_token();
        self.post_form(
            "/login",
            &[
                ("email", email),
                ("password", password),
                ("csrf_token", &token),
            ],
        )
        .await
    }

    /// The cookie's current value in the jar.
    pub fn cookie(&self, name: &str) -> Option<String> {
        self.jar.borrow().get(name).cloned()
    }

    /// Replaces the jar's value of a cookie (to replay an old session, say).
    pub fn set_cookie(&self, name: &str, value: &str) {
        self.jar
            .borrow_mut()
            .insert(name.to_owned(), value.to_owned());
    }

    /// The CSRF token of the page at `path` (every console page has one, in the sign-out form).
    pub async fn csrf_token_of(&self, path: &str) -> String {
        self.get(path).await.csrf_token()
    }
}

/// `s` as the templates escape it (Askama: `"` `&` `'` `<` `>` as numeric references).
pub fn escaped(s: &str) -> String {
    s.replace('&', "&#38;")
        .replace('"', "&#34;")
        .replace('\'', "&#39;")
        .replace('<', "&#60;")
        .replace('>', "&#62;")
}

impl Browser {
    /// Creates an own key through the editor form; returns its id.
    pub async fn create_key(
        &self,
        account_id: &str,
        name: &str,
        tags: &str,
        policies: &[&str],
    ) -> String {
        let keys = format!("/accounts/{account_id}/permissions/api-keys");
        let csrf = self.csrf_token_of(&format!("{keys}/new?mode=create")).await;
        let mut fields = vec![
            ("csrf_token", csrf.as_str()),
            ("mode", "create"),
            ("name", name),
            ("tags", tags),
        ];
        fields.extend(policies.iter().map(|p| ("policy", *p)));
        let res = self.post_form(&keys, &fields).await;
        assert_eq!(
            res.status,
            StatusCode::SEE_OTHER,
            "create key {name}: {}",
            res.body
        );
        res.location()
            .rsplit('/')
            .next()
            .expect("key id")
            .to_owned()
    }

    /// Submits the link form; returns the response.
    pub async fn link_key(
        &self,
        account_id: &str,
        source_id: &str,
        name: &str,
        policies: &[&str],
    ) -> TestResponse {
        let keys = format!("/accounts/{account_id}/permissions/api-keys");
        let csrf = self.csrf_token_of(&format!("{keys}/new?mode=link")).await;
        let mut fields = vec![
            ("csrf_token", csrf.as_str()),
            ("mode", "link"),
            ("name", name),
            ("linked_key_id", source_id),
            ("tags", ""),
        ];
        fields.extend(policies.iter().map(|p| ("policy", *p)));
        self.post_form(&keys, &fields).await
    }
}

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

impl Browser {
    /// Creates an access code through the tab's form; returns its id and secret (read from the secret
    /// view it redirects to).
    pub async fn create_code(
        &self,
        account_id: &str,
        key_id: &str,
        description: &str,
    ) -> (String, String) {
        let tab = format!("/accounts/{account_id}/permissions/api-keys/{key_id}/access-codes");
        let csrf = self.csrf_token_of(&tab).await;
        let res = self
            .post_form(&tab, &[("csrf_token", &csrf), ("description", description)])
            .await;
        assert_eq!(
            res.status,
            StatusCode::SEE_OTHER,
            "create code: {}",
            res.body
        );
        let location = res.location().to_owned();
        let code_id = location
            .trim_end_matches("/secret")
            .rsplit('/')
            .next()
            .expect("code id")
            .to_owned();
        let page = self.get(&location).await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.body);
        (code_id, secret_in(&page.body))
    }
}

/// The secret shown in `<code id="access-code-secret" …>`.
pub fn secret_in(html: &str) -> String {
    let start = html
        .find("id=\"access-code-secret\"")
        .expect("a secret on the page");
    let rest = &html[start..];
    let open = rest.find('>').expect("tag end") + 1;
    let close = rest.find("</code>").expect("closing tag");
    rest[open..close].to_owned()
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

/// A key with the given policies and one access code: (key id, code id, secret).
pub async fn key_with_code(
    browser: &Browser,
    account_id: &str,
    name: &str,
    policies: &[&str],
) -> (String, String, String) {
    let key = browser.create_key(account_id, name, "", policies).await;
    let (code, secret) = browser.create_code(account_id, &key, "").await;
    (key, code, secret)
}

impl Browser {
    /// Calls a BMS API with the access code in the `x-api-key` header.
    pub async fn api(&self, method: &str, path: &str, secret: &str) -> TestResponse {
        let body = (method == "POST")
            .then(|| r#"{"name":"Spring sale","daily_budget_cents":5000}"#.to_owned());
        self.request(
            method,
            path,
            &[("x-api-key", secret), ("content-type", "application/json")],
            body,
        )
        .await
    }

    /// The JSON body's `error.code`.
    pub fn error_code(res: &TestResponse) -> String {
        serde_json::from_str::<serde_json::Value>(&res.body)
            .ok()
            .and_then(|v| v["error"]["code"].as_str().map(str::to_owned))
            .unwrap_or_default()
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

/// The ids put into a route's path parameters.
pub struct Ids<'a> {
    pub acc: &'a str,
    pub key: &'a str,
    pub code: &'a str,
}

/// A route of the route table (`web::CONSOLE_ROUTES`…) with its path parameters filled in, for the
/// sweeps that walk the table. A parameter not known here fails the test until it is taught.
pub fn route_path(route: &bms_keys::web::RouteSpec, ids: &Ids<'_>) -> String {
    let path = route
        .path
        .replace("{acc}", ids.acc)
        .replace("{key}", ids.key)
        .replace("{code}", ids.code)
        .replace("{hash}", "0000")
        .replace("{file:.*}", "app.css");
    assert!(
        !path.contains('{'),
        "{} {} has a path parameter the sweeps do not know: teach `helpers::route_path` what to put there",
        route.method,
        route.path
    );
    path
}
