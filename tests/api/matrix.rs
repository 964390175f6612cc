//! The CSRF and tenant-isolation matrices, generated from the application's own route table
//! (`web::CONSOLE_ROUTES`, `web::VERIFY_ROUTES`) and API catalogue: a route added there is walked
//! here without anyone writing a line, and a route with a path parameter this file does not know
//! fails the test until it is taught what to put there.

use actix_web::http::StatusCode;
use bms_keys::users::Role;
use bms_keys::web::{CONSOLE_ROUTES, RouteSpec, VERIFY_ROUTES};
use diesel::prelude::*;

use crate::both_backends;
use crate::helpers::{Browser, Ids, PASSWORD, TestApp, add_webhook, key_with_code, route_path};
use crate::paths;

/// `route`'s path with the ids filled in; `None` for routes that belong to no account.
fn fill(route: &RouteSpec, ids: &Ids<'_>) -> Option<String> {
    route.path.contains("{acc}").then(|| route_path(route, ids))
}

/// Every field any console form takes, with values that would be accepted: if a check were missing,
/// the request would change something, and the snapshot would show it.
fn every_field(csrf: Option<&str>) -> Vec<(&str, &str)> {
    let mut fields = vec![
        ("mode", "create"),
        ("name", "Changed by the matrix"),
        ("tags", "matrix"),
        ("policy", "full-access"),
        ("linked_key_id", ""),
        ("description", "changed by the matrix"),
        ("enabled", "true"),
        ("current_password", PASSWORD),
        ("new_password", "a brand new long password"),
        ("new_password_confirm", "a brand new long password"),
        ("email", "ana@example.com"),
        ("password", PASSWORD),
        ("password_confirm", PASSWORD),
        ("account_name", "Matrix"),
        ("display_name", "Matrix"),
        ("url", "https://93.184.216.34/matrix"),
        ("events", "access_code.created"),
    ];
    if let Some(token) = csrf {
        fields.push(("csrf_token", token));
    }
    fields
}

/// Everything a forged or misdirected request could change, as comparable text.
fn snapshot(app: &TestApp) -> String {
    use bms_keys::schema::*;
    app.with_conn(|conn| {
        let keys: Vec<(String, String, String)> = api_keys::table
            .select((api_keys::id, api_keys::account_id, api_keys::name))
            .order(api_keys::id)
            .load(conn)
            .unwrap();
        let tags: Vec<(String, String)> = api_key_tags::table
            .select((api_key_tags::api_key_id, api_key_tags::tag))
            .order((api_key_tags::api_key_id, api_key_tags::tag))
            .load(conn)
            .unwrap();
        let policies: Vec<(String, String)> = api_key_policies::table
            .select((api_key_policies::api_key_id, api_key_policies::policy_name))
            .order((api_key_policies::api_key_id, api_key_policies::policy_name))
            .load(conn)
            .unwrap();
        let codes: Vec<(String, String, bool)> = access_codes::table
            .select((
                access_codes::id,
                access_codes::description,
                access_codes::enabled,
            ))
            .order(access_codes::id)
            .load(conn)
            .unwrap();
        let users: Vec<(String, String)> = users::table
            .select((users::id, users::password_hash))
            .order(users::id)
            .load(conn)
            .unwrap();
        let accounts: i64 = accounts::table.count().get_result(conn).unwrap();
        let events: i64 = audit_events::table.count().get_result(conn).unwrap();
        let hooks: Vec<(String, String, String, bool, Vec<u8>)> = webhook_endpoints::table
            .select((
                webhook_endpoints::id,
                webhook_endpoints::url,
                webhook_endpoints::events,
                webhook_endpoints::enabled,
                webhook_endpoints::sealed_secret,
            ))
            .order(webhook_endpoints::id)
            .load(conn)
            .unwrap();
        let deliveries: Vec<(String, String, i32)> = webhook_deliveries::table
            .select((webhook_deliveries::id, webhook_deliveries::state, webhook_deliveries::attempts))
            .order(webhook_deliveries::id)
            .load(conn)
            .unwrap();
        let sessions: i64 = sessions::table.count().get_result(conn).unwrap();
        format!(
            "keys {keys:?}\ntags {tags:?}\npolicies {policies:?}\ncodes {codes:?}\nusers {users:?}\n\
             hooks {hooks:?}\ndeliveries {deliveries:?}\naccounts {accounts} events {events} sessions {sessions}"
        )
    })
}

/// Two accounts, each with a key and an access code; Alpha also has a viewer.
struct World {
    alice: Browser,
    vic: Browser,
    bob: Browser,
    acc_a: String,
    key_a: String,
    code_a: String,
    secret_a: String,
    hook_a: String,
    acc_b: String,
    key_b: String,
    code_b: String,
    hook_b: String,
}

async fn two_accounts(app: &TestApp) -> World {
    let (alice, acc_a) = app.signed_in_owner("ana@example.com", "Alpha").await;
    let (key_a, code_a, secret_a) =
        key_with_code(&alice, &acc_a, "Alpha key", &["full-access"]).await;
    app.add_user("vic@example.com", PASSWORD, "Alpha", Role::Viewer, false);
    let vic = app.browser();
    assert_eq!(
        vic.log_in("vic@example.com", PASSWORD).await.status,
        StatusCode::SEE_OTHER
    );
    let (bob, acc_b) = app.signed_in_owner("bob@example.com", "Beta").await;
    let (key_b, code_b, _) = key_with_code(&bob, &acc_b, "Beta key", &["full-access"]).await;
    let (hook_a, hook_b) = (add_webhook(app, &acc_a), add_webhook(app, &acc_b));
    World {
        alice,
        vic,
        bob,
        acc_a,
        key_a,
        code_a,
        secret_a,
        hook_a,
        acc_b,
        key_b,
        code_b,
        hook_b,
    }
}

both_backends! {
    async fn no_route_shows_or_changes_another_accounts_objects(app) {
        let w = two_accounts(&app).await;
        let before = snapshot(&app);
        let csrf = w.alice.csrf_token_of(paths::API_DOCS).await;
        // Beta's objects through Beta's account, and smuggled under Alpha's own account and key.
        let targets = [
            Ids { acc: &w.acc_b, key: &w.key_b, code: &w.code_b, hook: &w.hook_b },
            Ids { acc: &w.acc_a, key: &w.key_b, code: &w.code_b, hook: &w.hook_a },
            Ids { acc: &w.acc_a, key: &w.key_a, code: &w.code_b, hook: &w.hook_a },
            Ids { acc: &w.acc_a, key: &w.key_a, code: &w.code_a, hook: &w.hook_b },
        ];
        let mut tried = 0;
        for route in CONSOLE_ROUTES {
            for (i, ids) in targets.iter().enumerate() {
                let Some(path) = fill(route, ids) else { continue };
                // The second and third targets only differ where the path has a key or a code.
                if (i == 1 && !route.path.contains("{key}"))
                    || (i == 2 && !route.path.contains("{code}"))
                    || (i == 3 && !route.path.contains("{hook}"))
                {
                    continue;
                }
                let res = match route.method {
                    "GET" => w.alice.get(&path).await,
                    _ => w.alice.post_form(&path, &every_field(Some(&csrf))).await,
                };
                assert_eq!(res.status, StatusCode::NOT_FOUND, "{} {path}: {}", route.method, res.body);
                assert!(!res.body.contains("Beta"), "{} {path} names the other account", route.method);
                tried += 1;
            }
        }
        // The BMS APIs: Alpha's full-access code on Beta's account.
        for api in &app.state.catalogue.apis {
            let path = api.path.replace("{account}", &w.acc_b).replace("{key}", &w.key_b).replace("{code}", &w.code_b);
            let res = w.alice.api(&api.method, &path, &w.secret_a).await;
            assert_eq!(res.status, StatusCode::FORBIDDEN, "{} {path}: {}", api.method, res.body);
            assert_eq!(Browser::error_code(&res), "no_access", "{} {path}", api.method);
            tried += 1;
        }
        assert_eq!(snapshot(&app), before, "a request across accounts changed something");
        // Beta still sees its own key, so the 404s were not an outage.
        let own = w.bob.get(&paths::key(&w.acc_b, &w.key_b)).await;
        assert_eq!(own.status, StatusCode::OK);
        println!("isolation matrix: {tried} requests across accounts, all refused");
        assert!(tried >= 30, "{tried}");
    }

    async fn a_viewer_can_change_nothing(app) {
        let w = two_accounts(&app).await;
        let before = snapshot(&app);
        let csrf = w.vic.csrf_token_of(paths::API_DOCS).await;
        let own = Ids { acc: &w.acc_a, key: &w.key_a, code: &w.code_a, hook: &w.hook_a };
        let mut tried = 0;
        for route in CONSOLE_ROUTES.iter().filter(|r| r.method == "POST") {
            let Some(path) = fill(route, &own) else { continue };
            let res = w.vic.post_form(&path, &every_field(Some(&csrf))).await;
            assert_eq!(res.status, StatusCode::FORBIDDEN, "POST {path}: {}", res.body);
            tried += 1;
        }
        assert_eq!(snapshot(&app), before, "a viewer's request changed something");
        println!("viewer matrix: {tried} changes refused");
        assert!(tried >= 7, "{tried}");
    }

    async fn every_post_without_the_right_csrf_token_is_refused(app) {
        let w = two_accounts(&app).await;
        // Disable Alpha's code, so that its delete would go through if the token were not checked.
        let csrf = w.alice.csrf_token_of(paths::API_DOCS).await;
        let res = w.alice.post_form(&paths::code_enabled(&w.acc_a, &w.key_a, &w.code_a), &[("csrf_token", &csrf), ("enabled", "false")]).await;
        assert_eq!(res.status, StatusCode::SEE_OTHER);
        let before = snapshot(&app);
        let bobs_token = w.bob.csrf_token_of(paths::API_DOCS).await;
        let anonymous = app.browser();
        let own = Ids { acc: &w.acc_a, key: &w.key_a, code: &w.code_a, hook: &w.hook_a };
        let mut tried = 0;
        let posts = CONSOLE_ROUTES.iter().chain(VERIFY_ROUTES).filter(|r| r.method == "POST");
        for route in posts {
            if VERIFY_ROUTES.iter().any(|r| std::ptr::eq(r, route)) {
                // `/v1` takes no cookies: there is no ambient authority for a forged request to use.
                continue;
            }
            let path = fill(route, &own).unwrap_or_else(|| route.path.to_owned());
            for (who, browser) in [("signed in", &w.alice), ("anonymous", &anonymous)] {
                for (label, token) in [("no token", None), ("a forged token", Some("forged")), ("another session's token", Some(bobs_token.as_str()))] {
                    let res = browser.post_form(&path, &every_field(token)).await;
                    // Without a session, a page that needs one sends the browser to sign in first.
                    let to_sign_in = who == "anonymous"
                        && res.status == StatusCode::SEE_OTHER
                        && res.location().starts_with(paths::LOGIN);
                    // A page that is closed altogether (`/setup` once someone has an account) is a 404
                    // whatever the token; its CSRF check is tested where it is open (tests/api/setup.rs).
                    let closed = res.status == StatusCode::NOT_FOUND
                        && browser.get(&path).await.status == StatusCode::NOT_FOUND;
                    assert!(res.status == StatusCode::FORBIDDEN || to_sign_in || closed, "POST {path} {who} with {label}: {} {}", res.status, res.body);
                    tried += 1;
                }
            }
        }
        assert_eq!(snapshot(&app), before, "a POST without the right token changed something");
        // Alice's session survived the forged sign-out, and the real token still works.
        let page = w.alice.get(&paths::keys(&w.acc_a)).await;
        assert_eq!(page.status, StatusCode::OK);
        let res = w.alice.post_form(&paths::delete_code(&w.acc_a, &w.key_a, &w.code_a), &[("csrf_token", &csrf)]).await;
        assert_eq!(res.status, StatusCode::SEE_OTHER, "{}", res.body);
        println!("CSRF matrix: {tried} forged POSTs refused");
        assert!(tried >= 60, "{tried}");
    }
}
