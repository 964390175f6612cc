//! The state every worker shares: settings, the database pool, the catalogue, the key material, the
//! sign-in throttle and the verifier — and the one way handlers reach the database.

use std::sync::Arc;

use actix_web::web;

use crate::config::Settings;
use crate::db::{DbConn, Pool};
use crate::error::AppError;
use crate::policies::Catalogue;
use crate::secrets::KeyMaterial;
use crate::verify::Verifier;
use crate::web::assets::AssetUrls;
use crate::web::auth::LoginThrottle;
use crate::web::setup::SetupLink;

/// Shared by every worker.
pub struct AppState {
    pub db: Db,
    pub settings: Settings,
    pub login_throttle: LoginThrottle,
    pub setup: SetupLink,
    pub assets: AssetUrls,
    /// The policy and API catalogue in force (already synced into the database).
    pub catalogue: Catalogue,
    /// The key material sealing and digesting access-code secrets.
    pub keys: KeyMaterial,
    /// The verification path, with its cache, usage counters and metrics.
    pub verifier: Arc<Verifier>,
    /// Reports to the credential revocation API per client address: each report counts.
    pub revoke_reports: crate::throttle::FailureThrottle<std::net::IpAddr>,
    /// GitHub's secret-scanning keys, when configured.
    pub github_keys: Option<crate::secret_scanning::GithubKeys>,
    /// Where every instance adds up limits and throttles (`--redis-url`), when configured.
    pub shared: Option<Arc<crate::limits::shared::SharedStore>>,
}

/// Reports a client may send to the credential revocation API per minute.
pub const REVOKE_REPORTS_PER_MINUTE: u32 = 30;

/// The pool, with the one way handlers reach it: on the blocking thread pool, never on an async worker.
#[derive(Clone)]
pub struct Db {
    pub pool: Pool,
}

impl Db {
    /// Runs `f` with a pooled connection on actix's blocking threads.
    pub async fn run<T, F>(&self, f: F) -> Result<T, AppError>
    where
        F: FnOnce(&mut DbConn) -> Result<T, AppError> + Send + 'static,
        T: Send + 'static,
    {
        let pool = self.pool.clone();
        web::block(move || {
            let mut conn = pool.get()?;
            f(&mut conn)
        })
        .await
        .map_err(AppError::internal)?
    }
}

pub type State = web::Data<AppState>;

impl AppState {
    /// The write path for changes no signed-in member makes (leak reports): runs `change` through
    /// `revocation::commit` on the blocking pool, then clears what it revoked from this instance's
    /// cache. Members' changes go through `SignedIn::change_in`, the management API's through its own
    /// `change` (which adds the idempotency claim); both end the same way.
    pub async fn commit<T, F>(&self, change: F) -> Result<T, AppError>
    where
        F: FnOnce(&mut DbConn) -> Result<crate::revocation::Changed<T>, AppError> + Send + 'static,
        T: Send + 'static,
    {
        let changed = self
            .db
            .run(move |conn| crate::revocation::commit(conn, change))
            .await?;
        self.verifier.forget(&changed.revoked);
        Ok(changed.value)
    }
}

impl AppState {
    pub fn new(
        settings: Settings,
        pool: Pool,
        setup_token: Option<String>,
        catalogue: Catalogue,
        keys: KeyMaterial,
        github_keys: Option<crate::secret_scanning::GithubKeys>,
        shared: Option<Arc<crate::limits::shared::SharedStore>>,
    ) -> Arc<Self> {
        let verifier = Arc::new(Verifier::new(
            keys.clone(),
            pool.clone(),
            catalogue.compiled_rules(),
            settings.verify_failures_per_minute,
            settings.rate_limit_burst,
        ));
        Arc::new(Self {
            verifier,
            db: Db { pool },
            settings,
            login_throttle: LoginThrottle::default(),
            setup: SetupLink::new(setup_token),
            assets: AssetUrls::compute(),
            catalogue,
            keys,
            revoke_reports: crate::throttle::FailureThrottle::new(
                REVOKE_REPORTS_PER_MINUTE,
                std::time::Duration::from_secs(60),
            ),
            github_keys,
            shared,
        })
    }
}
