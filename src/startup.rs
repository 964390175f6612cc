//! Building the application from settings — the one path used by the binary and by the tests (so the
//! tests exercise exactly what runs in production).

use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::Server;
use actix_web::{App, HttpServer};

use crate::config::Settings;
use crate::db::{self, Pool};
use crate::error::AppError;
use crate::keystore;
use crate::policies::Catalogue;
use crate::sessions::{self, Session};
use crate::users::User;
use crate::web::state::AppState;

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error(transparent)]
    Database(#[from] db::SetupError),
    #[error("cannot prepare the data directory {path}: {source}")]
    DataDir {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot listen on {bind}: {source}")]
    Bind {
        bind: String,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    KeyMaterial(#[from] crate::keystore::KeyError),
    #[error(transparent)]
    Catalogue(#[from] crate::policies::CatalogueError),
    #[error("cannot read the database: {0}")]
    Query(#[from] diesel::result::Error),
    #[error("{0}")]
    GithubKeys(String),
    #[error("{0}")]
    SharedStore(String),
}

/// Opens the database named by the settings (creating the data directory, which holds the key material
/// on either backend and the SQLite file) and brings its schema up to date.
pub fn open_database(settings: &Settings) -> Result<Pool, StartupError> {
    create_private_dir(&settings.data_dir)?;
    if db::Backend::of_url(&settings.database_url) == db::Backend::Sqlite
        && let Some(parent) = std::path::Path::new(&settings.database_url).parent()
        && !parent.as_os_str().is_empty()
    {
        create_private_dir(parent)?;
    }
    let pool = db::connect(&settings.database_url)?;
    let mut conn = pool.get().map_err(db::SetupError::from)?;
    db::run_migrations(&mut conn)?;
    Ok(pool)
}

/// Creates a directory readable by its owner only (it holds the database and the key material).
fn create_private_dir(path: &std::path::Path) -> Result<(), StartupError> {
    let error = |source| StartupError::DataDir {
        path: path.display().to_string(),
        source,
    };
    if path.exists() {
        return Ok(());
    }
    std::fs::create_dir_all(path).map_err(error)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o700)).map_err(error)?;
    }
    Ok(())
}

/// A built, bound, not yet awaited server.
pub struct Application {
    port: u16,
    server: Server,
    state: Arc<AppState>,
}

impl Application {
    /// Opens the database, binds the listener and builds the server. Binding to port 0 picks a free
    /// port (the tests do this); `port()` tells which.
    pub fn build(settings: Settings) -> Result<Self, StartupError> {
        let pool = open_database(&settings)?;
        let catalogue = Catalogue::load(settings.policy_catalogue.as_deref())?;
        let (no_users, keys) = {
            let mut conn = pool.get().map_err(db::SetupError::from)?;
            catalogue.sync(&mut conn)?;
            let keys = keystore::load(&mut conn, &settings.data_dir, &settings.key_material)?;
            (User::count(&mut conn)? == 0, keys)
        };
        crate::users::prepare_sign_in();
        let setup_token = no_users.then(sessions::new_token);
        let listener = TcpListener::bind(&settings.bind).map_err(|source| StartupError::Bind {
            bind: settings.bind.clone(),
            source,
        })?;
        let port = listener
            .local_addr()
            .map_err(|source| StartupError::Bind {
                bind: settings.bind.clone(),
                source,
            })?
            .port();
        let workers = settings.workers;
        let max_connections = settings.max_connections_per_worker;
        let github_keys = settings
            .github_keys
            .as_ref()
            .map(crate::secret_scanning::GithubKeys::load)
            .transpose()
            .map_err(StartupError::GithubKeys)?;
        let shared = settings
            .redis_url
            .as_deref()
            .map(crate::limits::shared::SharedStore::new)
            .transpose()
            .map_err(StartupError::SharedStore)?
            .map(std::sync::Arc::new);
        let state = AppState::new(
            settings,
            pool,
            setup_token,
            catalogue,
            keys,
            github_keys,
            shared,
        );
        if let Some(store) = &state.shared {
            crate::limits::shared::spawn_sync(
                store.clone(),
                crate::limits::shared::Synced {
                    keys: std::sync::Arc::downgrade(&state.verifier.limiter),
                    failures: std::sync::Arc::downgrade(&state.verifier.failures),
                    failure_window: crate::verify::FAILURE_WINDOW,
                },
            );
        }
        spawn_retirement_sweep(
            state.db.pool.clone(),
            std::sync::Arc::downgrade(&state.verifier),
        );
        crate::webhooks::delivery::spawn_worker(
            state.db.pool.clone(),
            state.keys.clone(),
            state.settings.webhooks.clone(),
            std::sync::Arc::downgrade(&state.verifier),
        );
        if db::Backend::of_url(&state.settings.database_url) == db::Backend::Postgres {
            crate::verify::listener::spawn_listener(
                state.settings.database_url.clone(),
                state.settings.revocation_listener,
                state.db.pool.clone(),
                std::sync::Arc::downgrade(&state.verifier),
            );
        }
        let data = crate::web::state::State::from(state.clone());
        let server = HttpServer::new(move || {
            crate::web::bms_api::FastLane::new(
                data.clone(),
                App::new()
                    .app_data(data.clone())
                    .app_data(actix_web::web::PayloadConfig::new(
                        crate::web::forms::FORM_LIMIT,
                    ))
                    .app_data(
                        actix_web::web::JsonConfig::default()
                            .limit(16 * 1024)
                            .error_handler(|e, _| {
                                AppError::bad_request(format!("Invalid JSON body: {e}")).into()
                            }),
                    )
                    .app_data(
                        actix_web::web::QueryConfig::default().error_handler(|_, _| {
                            AppError::bad_request("Invalid query string.").into()
                        }),
                    )
                    .app_data(
                        actix_web::web::PathConfig::default()
                            .error_handler(|_, _| AppError::NotFound.into()),
                    )
                    .configure(crate::web::routes),
            )
        })
        .workers(workers)
        .max_connections(max_connections)
        .shutdown_timeout(10)
        .listen(listener)
        .map_err(|source| StartupError::Bind {
            bind: format!("port {port}"),
            source,
        })?
        .run();
        Ok(Self {
            port,
            server,
            state,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The state the server shares; the tests read the setup token and reach the database through it.
    pub fn state(&self) -> Arc<AppState> {
        self.state.clone()
    }

    /// Serves until the process is told to stop, sweeping expired sessions and writing usage in the
    /// background; pending usage is written once more at shutdown.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let flusher = self.state.clone();
        actix_web::rt::spawn(async move {
            let mut every = actix_web::rt::time::interval(crate::usage::FLUSH_EVERY);
            loop {
                every.tick().await;
                flush_usage(&flusher).await;
            }
        });
        let db = self.state.db.clone();
        actix_web::rt::spawn(async move {
            let mut every = actix_web::rt::time::interval(Duration::from_secs(600));
            loop {
                every.tick().await;
                match db.run(|conn| Ok(Session::delete_expired(conn)?)).await {
                    Ok(n) if n > 0 => tracing::info!(sessions = n, "expired sessions removed"),
                    Ok(_) => {}
                    Err(e) => tracing::warn!("could not remove expired sessions: {e}"),
                }
            }
        });
        let result = self.server.await;
        flush_usage(&self.state).await;
        result
    }
}

/// Writes the usage counted since the last flush; on failure keeps it for the next try.
async fn flush_usage(state: &Arc<AppState>) {
    let batch = state.verifier.usage.take();
    if batch.is_empty() {
        return;
    }
    let verifier = state.verifier.clone();
    let pool = state.db.pool.clone();
    let result = actix_web::web::block(move || {
        let written = pool
            .get()
            .map_err(|e| e.to_string())
            .and_then(|mut conn| crate::usage::flush(&mut conn, &batch).map_err(|e| e.to_string()));
        match written {
            Ok(()) => Ok(()),
            Err(e) => {
                verifier.usage.restore(batch);
                Err(e)
            }
        }
    })
    .await;
    match result {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::warn!("usage not written yet, will retry: {e}"),
        Err(e) => tracing::warn!("usage flush did not run: {e}"),
    }
}

/// How often each instance looks for access codes due to retire.
const RETIREMENT_SWEEP: std::time::Duration = std::time::Duration::from_secs(1);

/// Every instance retires the codes whose scheduled retirement is due (`access_codes::rotation`),
/// through the write path. Each second it reads the schedules; it opens a write transaction (which on
/// SQLite takes the database's one write lock) only when one is due, not for every second a schedule
/// waits. Stops by itself once the verifier is dropped (the server has shut down).
fn spawn_retirement_sweep(pool: db::Pool, verifier: std::sync::Weak<crate::verify::Verifier>) {
    let spawned = std::thread::Builder::new()
        .name("bms-retirements".to_owned())
        .spawn(move || {
            loop {
                std::thread::sleep(RETIREMENT_SWEEP);
                let Some(verifier) = verifier.upgrade() else {
                    return;
                };
                let Ok(mut conn) = pool.get() else { continue };
                let due = crate::access_codes::rotation::due(&mut conn, db::now());
                if due.map_or(true, |due| due.is_empty()) {
                    continue;
                }
                match crate::revocation::commit(&mut conn, |conn| {
                    crate::access_codes::rotation::retire_due(conn, db::now())
                }) {
                    Ok(changed) => {
                        verifier.forget(&changed.revoked);
                        for code in &changed.value {
                            tracing::info!(code, "access code retired as scheduled");
                        }
                    }
                    Err(e) => tracing::warn!("retirement sweep: {e}"),
                }
            }
        });
    if let Err(e) = spawned {
        tracing::error!("cannot start the retirement sweep: {e}");
    }
}
