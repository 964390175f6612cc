//! The HTTP side: the route table (this file, and nothing else), and the modules it routes to — one per
//! resource for the handlers, which extract, call the domain, and render or redirect; `state` (what
//! every worker shares), `render`, `session`, `credentials`, `api_errors`, `middleware` beside them.

pub mod access_codes;
pub mod account;
pub mod api_errors;
pub mod api_keys;
pub mod assets;
pub mod audit;
pub mod auth;
pub mod bms_api;
pub mod body;
pub mod chart;
pub mod client;
pub mod console;
pub mod credentials;
pub mod display;
pub mod docs;
pub mod errors;
pub mod forms;
pub mod layout;
pub mod leaks;
pub mod manage;
pub mod middleware;
pub mod ops;
pub mod render;
pub mod session;
pub mod setup;
pub mod state;
pub mod urls;
pub mod verify_api;
pub mod views;
pub mod webhooks;

use actix_web::web;

/// The route table: the BMS APIs and the verification endpoints first, each scope with only the
/// middleware it needs (the hot path carries no session, flash or page machinery), then the console.
pub fn routes(cfg: &mut web::ServiceConfig) {
    use actix_web::middleware::from_fn;
    // No middleware: the BMS APIs' service writes the API headers into every answer itself.
    cfg.service(bms_api::BmsApis)
        .service(
            web::scope("/v1")
                .wrap(from_fn(body::body_deadline))
                .wrap(middleware::api_headers())
                .configure(verify_routes)
                .default_service(web::to(errors::json_not_found)),
        )
        .service(
            web::scope("")
                .wrap(from_fn(body::body_deadline))
                .wrap(from_fn(middleware::flash_messages))
                .wrap(from_fn(middleware::security_headers))
                .wrap(from_fn(middleware::request_context))
                .configure(console_routes)
                .default_service(web::to(errors::not_found)),
        );
}

/// One registered route (path pattern and method), as the tests see the route table: the CSRF,
/// tenant-isolation and hostile-input sweeps walk these lists, so a route added here cannot be missed.
#[derive(Debug, Clone, Copy)]
pub struct RouteSpec {
    pub method: &'static str,
    pub path: &'static str,
}

/// Declares a route table once, producing both the function that registers it and the list of what
/// it registers.
macro_rules! route_table {
    ($(#[$doc:meta])* fn $register:ident, const $list:ident, resource = $resource:path;
     $($path:literal => $($method:ident($handler:path)),+;)*) => {
        $(#[$doc])*
        pub const $list: &[RouteSpec] = &[$($(RouteSpec {
            method: route_table!(@method $method),
            path: $path,
        },)+)*];

        fn $register(cfg: &mut web::ServiceConfig) {
            $(cfg.service($resource($path)$(.$method($handler))+);)*
        }
    };
    (@method get) => { "GET" };
    (@method post) => { "POST" };
}

route_table! {
    /// The verification endpoints under `/v1`.
    fn verify_routes, const VERIFY_ROUTES, resource = api_resource;
    "/keys/verify" => post(verify_api::verify_key);
    "/auth/forward" => get(verify_api::forward_auth);
    "/credentials/revoke" => post(leaks::revoke_credentials);
    "/secret-scanning/github" => post(leaks::github_alert);
}

route_table! {
    /// Every console page, and the operational endpoints.
    fn console_routes, const CONSOLE_ROUTES, resource = page;
    "/login" => get(auth::show_login), post(auth::log_in);
    "/logout" => post(auth::log_out);
    "/setup" => get(setup::show_setup), post(setup::complete_setup);
    "/" => get(console::home);
    "/accounts" => get(console::pick_account);
    "/account/password" => get(account::show_password_form), post(account::change_password);
    "/account/sessions/sign-out-elsewhere" => post(account::sign_out_elsewhere);
    "/accounts/{acc}/permissions/api-keys" =>
        get(api_keys::list_api_keys), post(api_keys::create_api_key);
    "/accounts/{acc}/permissions/api-keys/new" => get(api_keys::new_api_key);
    // Before `…/api-keys/{key}`, which would take "webhooks" for a key id.
    "/accounts/{acc}/permissions/api-keys/webhooks" =>
        get(webhooks::list_webhooks), post(webhooks::create_webhook);
    "/accounts/{acc}/permissions/api-keys/webhooks/{hook}" =>
        get(webhooks::show_webhook), post(webhooks::update_webhook);
    "/accounts/{acc}/permissions/api-keys/webhooks/{hook}/enabled" =>
        post(webhooks::set_webhook_enabled);
    "/accounts/{acc}/permissions/api-keys/webhooks/{hook}/secret" =>
        post(webhooks::rotate_webhook_secret);
    "/accounts/{acc}/permissions/api-keys/webhooks/{hook}/test" =>
        post(webhooks::send_test_webhook);
    "/accounts/{acc}/permissions/api-keys/webhooks/{hook}/deliveries/{msg}/redeliver" =>
        post(webhooks::redeliver_webhook);
    "/accounts/{acc}/permissions/api-keys/webhooks/{hook}/delete" =>
        get(webhooks::confirm_delete_webhook), post(webhooks::delete_webhook);
    "/accounts/{acc}/permissions/api-keys/{key}" =>
        get(api_keys::show_api_key), post(api_keys::update_api_key);
    "/accounts/{acc}/permissions/api-keys/{key}/delete" =>
        get(api_keys::confirm_delete_api_key), post(api_keys::delete_api_key);
    "/accounts/{acc}/permissions/api-keys/{key}/links/{link}/remove" =>
        get(api_keys::links::confirm_remove_link), post(api_keys::links::remove_link);
    "/accounts/{acc}/permissions/api-keys/{key}/access-codes" =>
        get(access_codes::list_access_codes), post(access_codes::create_access_code);
    "/accounts/{acc}/permissions/api-keys/{key}/access-codes/{code}" =>
        post(access_codes::update_access_code);
    "/accounts/{acc}/permissions/api-keys/{key}/access-codes/{code}/secret" =>
        get(access_codes::secret::show_secret), post(access_codes::secret::reveal_secret);
    "/accounts/{acc}/permissions/api-keys/{key}/access-codes/{code}/download" =>
        get(access_codes::secret::download_secret), post(access_codes::secret::download_secret_with_reason);
    "/accounts/{acc}/permissions/api-keys/{key}/access-codes/{code}/enabled" =>
        post(access_codes::set_access_code_enabled);
    "/accounts/{acc}/permissions/api-keys/{key}/access-codes/{code}/retire" =>
        post(access_codes::retire_access_code);
    "/accounts/{acc}/permissions/api-keys/{key}/access-codes/{code}/retire/cancel" =>
        post(access_codes::cancel_access_code_retirement);
    "/accounts/{acc}/permissions/api-keys/{key}/access-codes/{code}/delete" =>
        get(access_codes::confirm_delete_access_code), post(access_codes::delete_access_code);
    "/accounts/{acc}/audit" => get(audit::list_audit_events);
    "/docs/apis" => get(docs::list_apis);
    "/docs/api-keys" => get(docs::api_keys_help);
    "/docs/api" => get(docs::management_api);
    "/api/openapi.json" => get(manage::openapi::serve_document);
    "/metrics" => get(ops::prometheus);
    "/healthz" => get(ops::healthz);
    "/readyz" => get(ops::readyz);
    "/static/{hash}/{file:.*}" => get(assets::serve_asset);
}

/// A console resource: a method it does not take gets a 405 page, not actix's empty answer.
fn page(path: &str) -> actix_web::Resource {
    web::resource(path).default_service(web::to(errors::method_not_allowed))
}

/// A JSON resource: a method it does not take gets a JSON 405.
fn api_resource(path: &str) -> actix_web::Resource {
    web::resource(path).default_service(web::to(errors::json_method_not_allowed))
}
