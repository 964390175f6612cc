//! The HTTP side: the route table, the shared state, and the handlers (one module per resource).
//! Handlers extract, call the domain, and render or redirect — nothing else.

pub mod access_codes;
pub mod account;
pub mod api_keys;
pub mod assets;
pub mod audit;
pub mod auth;
pub mod bms_api;
pub mod chart;
pub mod console;
pub mod display;
pub mod docs;
pub mod errors;
pub mod forms;
pub mod layout;
pub mod middleware;
pub mod ops;
pub mod session;
pub mod setup;
pub mod urls;
pub mod verify_api;

use std::sync::Arc;

use actix_web::web;

use crate::config::Settings;
use crate::db::{DbConn, Pool};
use crate::error::AppError;
use crate::policies::Catalogue;
use crate::secrets::KeyMaterial;
use crate::verify::Verifier;

/// Shared by every worker.
pub struct AppState {
    pub db: Db,
    pub settings: Settings,
    pub login_throttle: auth::LoginThrottle,
    pub setup: setup::SetupLink,
    pub assets: assets::AssetUrls,
    /// The policy and API catalogue in force (already synced into the database).
    pub catalogue: Catalogue,
    /// The key material sealing and digesting access-code secrets.
    pub keys: KeyMaterial,
    /// The verification path, with its cache, usage counters and metrics.
    pub verifier: Arc<Verifier>,
}

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
    pub fn new(
        settings: Settings,
        pool: Pool,
        setup_token: Option<String>,
        catalogue: Catalogue,
        keys: KeyMaterial,
    ) -> Arc<Self> {
        let verifier = Arc::new(Verifier::new(
            keys.clone(),
            pool.clone(),
            catalogue.compiled_rules(),
            settings.verify_failures_per_minute,
        ));
        Arc::new(Self {
            verifier,
            db: Db { pool },
            settings,
            login_throttle: auth::LoginThrottle::default(),
            setup: setup::SetupLink::new(setup_token),
            assets: assets::AssetUrls::compute(),
            catalogue,
            keys,
        })
    }
}

/// The route table: the BMS APIs and the verification endpoints first, each scope with only the
/// middleware it needs (the hot path carries no session, flash or page machinery), then the console.
pub fn routes(cfg: &mut web::ServiceConfig) {
    use actix_web::middleware::from_fn;
    cfg.service(
        web::scope("/api/v1/accounts")
            .wrap(middleware::api_headers())
            .default_service(web::to(bms_api::dispatch)),
    )
    .service(
        web::scope("/v1")
            .wrap(middleware::api_headers())
            .route("/keys/verify", web::post().to(verify_api::verify_key))
            .route("/auth/forward", web::get().to(verify_api::forward_auth))
            .default_service(web::to(errors::json_not_found)),
    )
    .service(
        web::scope("")
            .wrap(from_fn(middleware::flash_messages))
            .wrap(from_fn(middleware::security_headers))
            .wrap(from_fn(middleware::request_context))
            .configure(console_routes)
            .default_service(web::to(errors::not_found)),
    );
}

/// Every console page, and the operational endpoints.
fn console_routes(cfg: &mut web::ServiceConfig) {
    const KEYS: &str = "/accounts/{acc}/permissions/api-keys";
    const CODE: &str = "/accounts/{acc}/permissions/api-keys/{key}/access-codes/{code}";
    cfg.service(page("/login").get(auth::show_login).post(auth::log_in))
        .service(page("/logout").post(auth::log_out))
        .service(
            page("/setup")
                .get(setup::show_setup)
                .post(setup::complete_setup),
        )
        .service(page("/").get(console::home))
        .service(page("/accounts").get(console::pick_account))
        .service(
            page("/account/password")
                .get(account::show_password_form)
                .post(account::change_password),
        )
        .service(
            page(KEYS)
                .get(api_keys::list_api_keys)
                .post(api_keys::create_api_key),
        )
        .service(page(format!("{KEYS}/new")).get(api_keys::new_api_key))
        .service(
            page(format!("{KEYS}/{{key}}"))
                .get(api_keys::show_api_key)
                .post(api_keys::update_api_key),
        )
        .service(
            page(format!("{KEYS}/{{key}}/delete"))
                .get(api_keys::confirm_delete_api_key)
                .post(api_keys::delete_api_key),
        )
        .service(
            page(format!("{KEYS}/{{key}}/access-codes"))
                .get(access_codes::list_access_codes)
                .post(access_codes::create_access_code),
        )
        .service(page(CODE).post(access_codes::update_access_code))
        .service(page(format!("{CODE}/secret")).get(access_codes::show_secret))
        .service(page(format!("{CODE}/download")).get(access_codes::download_secret))
        .service(page(format!("{CODE}/enabled")).post(access_codes::set_access_code_enabled))
        .service(
            page(format!("{CODE}/delete"))
                .get(access_codes::confirm_delete_access_code)
                .post(access_codes::delete_access_code),
        )
        .service(page("/accounts/{acc}/audit").get(audit::list_audit_events))
        .service(page("/docs/apis").get(docs::list_apis))
        .service(page("/metrics").get(ops::prometheus))
        .service(page("/healthz").get(ops::healthz))
        .service(page("/readyz").get(ops::readyz))
        .service(page("/static/{hash}/{file:.*}").get(assets::serve_asset));
}

/// A console resource: a method it does not take gets a 405 page, not actix's empty answer.
fn page(path: impl AsRef<str>) -> actix_web::Resource {
    web::resource(path.as_ref()).default_service(web::to(errors::method_not_allowed))
}
