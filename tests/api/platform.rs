//! What every page shares: security headers, errors, static assets, health, the schema on both
//! backends, account access rules, and the command line.

use actix_web::http::StatusCode;
use bms_keys::users::Role;

use crate::both_backends;
use crate::helpers::{PASSWORD, escaped};
use crate::paths;

both_backends! {
    async fn every_page_has_the_security_headers(app) {
        let (browser, account_id) = app.signed_in_owner("ana@example.com", "Shop").await;
        for path in [paths::LOGIN.to_owned(), paths::keys(&account_id), "/no/such/page".to_owned()] {
            let res = browser.get(&path).await;
            let csp = res.header("content-security-policy").unwrap_or_default();
            assert!(csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"), "{path}: {csp}");
            assert!(csp.contains("frame-ancestors 'none'"), "{path}");
            assert_eq!(res.header("x-content-type-options"), Some("nosniff"), "{path}");
            assert_eq!(res.header("referrer-policy"), Some("no-referrer"), "{path}");
            assert_eq!(res.header("cache-control"), Some("no-store"), "{path}");
            assert!(res.header("x-request-id").is_some(), "{path}");
        }
    }

    async fn unknown_pages_get_a_plain_404_page_with_a_reference(app) {
        let res = app.browser().get("/definitely/not/here").await;
        assert_eq!(res.status, StatusCode::NOT_FOUND);
        let id = res.header("x-request-id").expect("request id").to_owned();
        assert!(res.body.contains("Page not found"));
        assert!(res.body.contains(&id), "the page shows the request id");
        let api = app.browser().get("/api/v1/nothing").await;
        assert_eq!(api.status, StatusCode::NOT_FOUND);
        let json: serde_json::Value = serde_json::from_str(&api.body).expect("JSON error body");
        assert_eq!(json["code"], "not_found");
        assert!(!res.body.contains("account-menu"), "nobody is signed in");
    }

    async fn a_404_keeps_the_signed_in_users_menu(app) {
        let (browser, acc) = app.signed_in_owner("ana@example.com", "Shop").await;
        let (_, other) = app.signed_in_owner("bob@example.com", "Elsewhere").await;
        for path in ["/definitely/not/here".to_owned(), paths::keys(&other), paths::key(&acc, "key_0000000000000000")] {
            let res = browser.get(&path).await;
            assert_eq!(res.status, StatusCode::NOT_FOUND, "{path}");
            assert!(res.body.contains("Page not found"), "{path}");
            assert!(res.body.contains("<details class=\"account-menu\">") && res.body.contains(">Sign out</button>"), "{path}: the menu stays");
            assert!(res.body.contains(&res.csrf_token()), "{path}: sign out works from here");
            assert!(!res.body.contains("Elsewhere"), "{path}: the other account is not named");
        }
    }

    async fn pages_outside_an_account_keep_permissions_in_the_menu(app) {
        let (browser, _) = app.signed_in_owner("ana@example.com", "Shop").await;
        for path in [paths::API_DOCS, paths::API_KEYS_HELP, paths::PASSWORD, paths::ACCOUNTS] {
            let page = browser.get(path).await;
            assert_eq!(page.status, StatusCode::OK, "{path}");
            assert!(page.body.contains(r#"<a role="menuitem" href="/">Permissions</a>"#), "{path}");
            // The menu's name contains its visible text (WCAG 2.5.3), so no aria-label overrides it.
            assert!(page.body.contains(r#"<span class="visually-hidden">Account menu: </span>"#) && !page.body.contains(r#"aria-label="Account menu""#), "{path}");
        }
    }

    async fn the_help_page_explains_keys_with_examples_and_every_refusal(app) {
        let page = app.browser().get(paths::API_KEYS_HELP).await;
        assert_eq!(page.status, StatusCode::OK, "public, like the API documentation");
        for text in ["x-api-key", "apiKey", "curl -H &#34;x-api-key: $BMS_ACCESS_CODE&#34;", "import os, requests", "await fetch(",
                     "Webhooks by Zapier", "365 days", "Linked keys", "/api/v1/accounts/ACCOUNT_ID/ads"] {
            assert!(page.body.contains(text), "missing {text:?}");
        }
        for code in ["missing", "malformed", "unknown", "disabled", "expired", "no_access", "forbidden", "bad_path", "conflicting_keys", "rate_limited", "unavailable"] {
            assert!(page.body.contains(&format!("<code>{code}</code>")), "refusal {code} is explained");
        }
        // Linked from where people need it: the API Keys page and the secret view.
        let (owner, acc) = app.signed_in_owner("ana@example.com", "Shop").await;
        assert!(owner.get(&paths::keys(&acc)).await.body.contains(&format!(r#"href="{}">Learn more about API keys"#, paths::API_KEYS_HELP)));
        let (key, code, _) = crate::helpers::key_with_code(&owner, &acc, "Helped", &[]).await;
        let secret = owner.get(&paths::code_secret(&acc, &key, &code)).await;
        assert!(secret.body.contains(&format!(r#"href="{}#examples""#, paths::API_KEYS_HELP)));
    }

    async fn health_and_readiness_answer(app) {
        let browser = app.browser();
        assert_eq!(browser.get("/healthz").await.status, StatusCode::OK);
        let ready = browser.get("/readyz").await;
        assert_eq!(ready.status, StatusCode::OK);
        assert!(ready.body.contains("ready"));
    }

    async fn the_stylesheet_and_script_are_served_with_long_caching(app) {
        let page = app.browser().get(paths::LOGIN).await;
        let css = page.body.split("href=\"").nth(1).and_then(|s| s.split('"').next()).expect("stylesheet link").to_owned();
        assert!(css.starts_with("/static/") && css.ends_with("/app.css"), "{css}");
        let res = app.browser().get(&css).await;
        assert_eq!(res.status, StatusCode::OK);
        assert!(res.header("content-type").unwrap_or_default().starts_with("text/css"));
        assert!(res.header("cache-control").unwrap_or_default().contains("immutable"));
        assert!(res.body.contains("--primary"));
        assert_eq!(app.browser().get("/static/x/nothing.css").await.status, StatusCode::NOT_FOUND);
    }

    async fn the_schema_matches_the_code_and_migrations_revert_and_reapply(app) {
        use bms_keys::schema::*;
        use diesel::{QueryDsl, RunQueryDsl};
        let mut conn = app.conn();
        bms_keys::db::redo_all_migrations(&mut conn).expect("down then up");
        // Selecting every column of every table by name proves schema.rs and the migrations agree on
        // names (the row structs' loads elsewhere check the types); every table is empty after the redo.
        macro_rules! check_tables { ($($t:ident),*) => {$(
            $t::table.select($t::all_columns).limit(1).execute(&mut conn).expect(stringify!($t));
            let rows: i64 = $t::table.count().get_result(&mut conn).expect(stringify!($t));
            assert_eq!(rows, 0, "{} is empty after the redo", stringify!($t));
        )*}}
        check_tables!(accounts, users, memberships, sessions, policies, api_keys, api_key_tags, api_key_policies, access_codes, audit_events, usage_daily, ads, drive_files,
            server_settings, removed_links, idempotency_keys, secret_scanning_alerts, code_retirements, webhook_endpoints, webhook_deliveries, expiry_notices);
    }

    async fn a_member_of_one_account_cannot_see_another(app) {
        let (browser, _mine) = app.signed_in_owner("ana@example.com", "Ana's Shop").await;
        let theirs = app.add_user("bob@example.com", PASSWORD, "Bob's Shop", Role::Owner, false);
        let res = browser.get(&paths::keys(&theirs)).await;
        assert_eq!(res.status, StatusCode::NOT_FOUND);
        assert!(!res.body.contains(&escaped("Bob's Shop")) && !res.body.contains("Bob's Shop"));
        // Unknown and malformed account ids look the same.
        assert_eq!(browser.get("/accounts/acc_doesnotexist00/permissions/api-keys").await.status, StatusCode::NOT_FOUND);
        assert_eq!(browser.get("/accounts/%00'--/permissions/api-keys").await.status, StatusCode::NOT_FOUND);
        let picker = browser.get(paths::ACCOUNTS).await;
        assert!(picker.body.contains(&escaped("Ana's Shop")));
        assert!(!picker.body.contains(&escaped("Bob's Shop")));
    }

    async fn a_viewer_sees_the_account_as_a_viewer(app) {
        let account_id = app.add_user("vic@example.com", PASSWORD, "Shop", Role::Viewer, false);
        let browser = app.browser();
        browser.log_in("vic@example.com", PASSWORD).await;
        let page = browser.get(&paths::keys(&account_id)).await;
        assert_eq!(page.status, StatusCode::OK);
        assert!(page.body.contains("Your role: <strong>Viewer</strong>"));
        assert!(!page.body.contains("staff-banner"));
    }

    async fn support_staff_can_open_any_account_under_a_banner(app) {
        let customer = app.add_user("ana@example.com", PASSWORD, "Customer Co", Role::Owner, false);
        app.add_user("sam@bms.example", PASSWORD, "BMS Support", Role::Owner, true);
        let browser = app.browser();
        browser.log_in("sam@bms.example", PASSWORD).await;
        let picker = browser.get("/accounts?q=customer").await;
        assert!(picker.body.contains("Customer Co"));
        assert!(picker.body.contains(&paths::keys(&customer)));
        let page = browser.get(&paths::keys(&customer)).await;
        assert_eq!(page.status, StatusCode::OK);
        assert!(page.body.contains("Support staff view of <strong>Customer Co</strong>"));
        // Staff start at the account picker, marked as staff — not as owner of an empty account.
        let home = browser.get("/").await;
        assert_eq!(home.location(), paths::ACCOUNTS);
        let picker = browser.get(paths::ACCOUNTS).await;
        assert!(picker.body.contains("You are signed in as BMS support staff.") && picker.body.contains(">Staff</span>"));
        assert!(!picker.body.contains("staff-banner"), "{}", picker.body);
    }

    async fn names_that_look_like_html_are_shown_as_text(app) {
        let (browser, account_id) = app.signed_in_owner("ana@example.com", "<img src=x onerror=alert(1)>").await;
        let page = browser.get(&paths::keys(&account_id)).await;
        assert!(page.body.contains(&escaped("<img src=x onerror=alert(1)>")));
        assert!(!page.body.contains("<img src=x"));
    }

    async fn a_form_post_with_the_wrong_content_type_is_a_clear_400(app) {
        let browser = app.browser();
        let res = browser.post_raw(paths::LOGIN, "application/json", br#"{"email":"a"}"#.to_vec()).await;
        assert_eq!(res.status, StatusCode::BAD_REQUEST);
        assert!(res.body.contains("application/x-www-form-urlencoded"));
        let res = browser.post_raw(paths::LOGIN, "application/x-www-form-urlencoded", vec![b'a'; 200 * 1024]).await;
        assert!(res.status.is_client_error(), "{}", res.status);
        let res = browser.post_raw(paths::LOGIN, "application/x-www-form-urlencoded", vec![0xff, 0xfe, b'=', 0x00]).await;
        assert!(res.status.is_client_error(), "{}", res.status);
    }

    async fn user_add_on_the_command_line_creates_a_user_who_can_sign_in(app) {
        use std::io::Write;
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_bms-keys"))
            .args(["--database-url", &app.database_url, "user", "add", "--email", "cli@example.com", "--account", "CLI Co", "--role", "viewer"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("run bms-keys");
        child.stdin.take().expect("stdin").write_all(format!("{PASSWORD}\n").as_bytes()).expect("write");
        let out = child.wait_with_output().expect("wait");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
        assert!(stdout.contains("Created user cli@example.com as viewer of account CLI Co"), "{stdout}");
        let browser = app.browser();
        assert_eq!(browser.log_in("cli@example.com", PASSWORD).await.status, StatusCode::SEE_OTHER);
        let page = browser.get_following("/").await;
        assert!(page.body.contains("CLI Co") && page.body.contains("Viewer"));

        // A short password is refused, and nothing is created.
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_bms-keys"))
            .args(["--database-url", &app.database_url, "user", "add", "--email", "short@example.com", "--account", "CLI Co"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("run bms-keys");
        child.stdin.take().expect("stdin").write_all(b"short\n").expect("write");
        let out = child.wait_with_output().expect("wait");
        assert!(!out.status.success());
        assert!(String::from_utf8_lossy(&out.stderr).contains("at least 10 characters"));
        assert_eq!(app.browser().log_in("short@example.com", "short").await.status, StatusCode::UNAUTHORIZED);
    }
}
