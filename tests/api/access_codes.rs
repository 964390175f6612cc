//! Access codes: create (at most two, even under concurrency), reveal, download, describe, disable,
//! delete, expiry, and who may see secrets.

use actix_web::http::StatusCode;
use bms_keys::users::Role;
use diesel::{ExpressionMethods, QueryDsl, RunQueryDsl};

use crate::both_backends;
use crate::helpers::{Browser, PASSWORD, TestApp, audit_actions, secret_in};
use crate::paths;

fn is_secret(s: &str) -> bool {
    s.len() == 50 && s.starts_with("bms_") && s[4..].bytes().all(|b| b.is_ascii_alphanumeric())
}

/// An owner with a key, ready for codes.
async fn owner_with_key(app: &TestApp) -> (Browser, String, String) {
    let (browser, acc) = app.signed_in_owner("ana@example.com", "Shop").await;
    let key = browser.create_key(&acc, "Zapier", "", &["ads.read"]).await;
    (browser, acc, key)
}

fn set_code(
    app: &TestApp,
    code_id: &str,
    enabled: Option<bool>,
    expires_in: Option<time::Duration>,
) {
    use bms_keys::schema::access_codes;
    app.with_conn(|c| {
        if let Some(enabled) = enabled {
            diesel::update(access_codes::table.find(code_id))
                .set(access_codes::enabled.eq(enabled))
                .execute(c)
                .unwrap();
        }
        if let Some(d) = expires_in {
            diesel::update(access_codes::table.find(code_id))
                .set(access_codes::expires_at.eq(bms_keys::db::now() + d))
                .execute(c)
                .unwrap();
        }
    });
}

both_backends! {
    async fn creating_a_code_shows_its_secret_and_it_can_be_viewed_again(app) {
        let (browser, acc, key) = owner_with_key(&app).await;
        let tab = browser.get(&paths::codes(&acc, &key)).await;
        assert!(tab.body.contains("No access code yet") && tab.body.contains("Create access code"));
        let csrf = tab.csrf_token();
        let res = browser.post_form(&paths::codes(&acc, &key), &[("csrf_token", &csrf), ("description", "Zapier production")]).await;
        assert_eq!(res.status, StatusCode::SEE_OTHER);
        let secret_url = res.location().to_owned();
        assert!(secret_url.ends_with("/secret") && !secret_url.contains("bms_"), "no secret in the redirect");
        let page = browser.get(&secret_url).await;
        assert_eq!(page.status, StatusCode::OK);
        assert_eq!(page.header("cache-control"), Some("no-store"));
        let secret = secret_in(&page.body);
        assert!(is_secret(&secret), "{secret}");
        assert!(page.body.contains(&format!("x-api-key: {secret}")), "header copy text");
        assert!(page.body.contains(&format!("?apiKey={secret}")), "query string copy text");
        assert!(page.body.contains("Copy x-api-key header") && page.body.contains("Copy ?apiKey= URL"));
        assert!(page.body.contains("<svg"), "QR code");
        assert!(page.body.contains("/download"), "download link");
        assert!(page.body.contains("Headers are safer than URLs"));
        // The banner and the card agree: the secret is not shown only once.
        assert!(page.body.contains("Access code created.") && page.body.contains("you can open it again later"), "banner");
        assert!(!page.body.contains("secret now"), "nothing suggests the secret is shown only once");

        let tab = browser.get(&paths::codes(&acc, &key)).await;
        assert!(tab.body.contains("Zapier production") && tab.body.contains(&format!("{}…", &secret[..8])));
        assert!(tab.body.contains("Active") && !tab.body.contains(&secret), "the list shows only a hint");
        let again = browser.get(&secret_url).await;
        assert_eq!(secret_in(&again.body), secret, "the same secret later");
        let actions: Vec<String> = audit_actions(&app, &acc).into_iter().map(|a| a.0).collect();
        assert_eq!(&actions[..3], ["access_code.secret_viewed", "access_code.secret_viewed", "access_code.created"]);
        for (_, _, details) in audit_actions(&app, &acc) {
            assert!(!details.contains(&secret), "no secret in the audit log");
        }
    }

    async fn secrets_are_stored_only_as_digest_and_sealed_copy(app) {
        let (browser, acc, key) = owner_with_key(&app).await;
        let (code_id, secret) = browser.create_code(&acc, &key, "").await;
        use bms_keys::schema::access_codes;
        let (digest, sealed, hint): (Vec<u8>, Vec<u8>, String) = app.with_conn(|c| {
            access_codes::table.find(&code_id)
                .select((access_codes::secret_digest, access_codes::sealed_secret, access_codes::secret_hint))
                .first(c)
                .unwrap()
        });
        assert_eq!(digest, app.state.keys.digest(&secret).to_vec());
        assert_eq!(app.state.keys.open(&sealed, &code_id).unwrap(), secret);
        assert!(!sealed.windows(12).any(|w| secret.as_bytes().windows(12).any(|s| s == w)));
        assert_eq!(hint, secret[..8]);
        if app.backend == crate::helpers::Backend::Sqlite {
            // Nothing in the database files (main and write-ahead log) contains the secret.
            let db = std::path::PathBuf::from(&app.database_url);
            for path in [db.clone(), db.with_extension("db-wal")] {
                if let Ok(bytes) = std::fs::read(&path) {
                    assert!(!bytes.windows(secret.len()).any(|w| w == secret.as_bytes()), "{}", path.display());
                    assert!(!bytes.windows(20).any(|w| w == &secret.as_bytes()[10..30]), "{}", path.display());
                }
            }
        }
    }

    async fn both_tabs_of_a_key_share_one_header(app) {
        let (browser, acc, key) = owner_with_key(&app).await;
        let header = |body: &str| {
            let start = body.find(r#"<div class="page-header">"#).expect("a page header");
            let end = body[start..].find(r#"<nav class="tabs""#).expect("the tabs") + start;
            body[start..end].to_owned()
        };
        let details = browser.get(&paths::key(&acc, &key)).await;
        let codes = browser.get(&paths::codes(&acc, &key)).await;
        assert_eq!(header(&details.body), header(&codes.body), "the same header on both tabs");
        assert!(header(&codes.body).contains("Delete API key") && header(&codes.body).contains(&format!(r#"id="api-key-id">{key}</code>"#)));
    }

    async fn a_key_has_at_most_two_codes(app) {
        let (browser, acc, key) = owner_with_key(&app).await;
        browser.create_code(&acc, &key, "first").await;
        browser.create_code(&acc, &key, "second").await;
        let tab = browser.get(&paths::codes(&acc, &key)).await;
        assert!(tab.body.contains("already has 2 access codes"));
        assert!(!tab.body.contains("Create access code</button>"), "no form that can only fail");
        let res = browser.post_form(&paths::codes(&acc, &key), &[("csrf_token", &tab.csrf_token()), ("description", "third")]).await;
        assert_eq!(res.status, StatusCode::CONFLICT);
        assert!(res.body.contains("already has 2 access codes"));
        let count: i64 = app.with_conn(|c| bms_keys::schema::access_codes::table.count().get_result(c).unwrap());
        assert_eq!(count, 2);
    }

    async fn concurrent_creates_never_make_a_third_code(app) {
        let (browser, acc, _) = owner_with_key(&app).await;
        let csrf = browser.csrf_token_of(&paths::keys(&acc)).await;
        const ROUNDS: usize = 50;
        for round in 0..ROUNDS {
            let key = browser.create_key(&acc, &format!("Race {round}"), "", &[]).await;
            let url = paths::codes(&acc, &key);
            let fields = [("csrf_token", csrf.as_str()), ("description", "race")];
            let requests = (0..64).map(|_| browser.post_form(&url, &fields));
            let results = futures_util::future::join_all(requests).await;
            let created = results.iter().filter(|r| r.status == StatusCode::SEE_OTHER).count();
            let refused = results.iter().filter(|r| r.status == StatusCode::CONFLICT).count();
            assert_eq!(created, 2, "round {round}: {:?}", results.iter().map(|r| r.status).collect::<Vec<_>>());
            assert_eq!(refused, 62, "every other request gets the limit message");
            let count: i64 = app.with_conn(|c| {
                bms_keys::schema::access_codes::table
                    .filter(bms_keys::schema::access_codes::api_key_id.eq(&key))
                    .count()
                    .get_result(c)
                    .unwrap()
            });
            assert_eq!(count, 2, "round {round}");
        }
        println!("access-code races: {ROUNDS} rounds of 64 concurrent creates, 2 codes each time");
    }

    async fn the_download_is_a_text_file_with_everything_needed(app) {
        let (browser, acc, key) = owner_with_key(&app).await;
        let (code_id, secret) = browser.create_code(&acc, &key, "For Zapier").await;
        let res = browser.get(&paths::code_download(&acc, &key, &code_id)).await;
        assert_eq!(res.status, StatusCode::OK);
        assert_eq!(res.header("content-type"), Some("text/plain; charset=utf-8"));
        assert_eq!(res.header("cache-control"), Some("no-store"));
        let disposition = res.header("content-disposition").unwrap_or_default();
        assert!(disposition.starts_with("attachment") && disposition.contains(&format!("Zapier-{code_id}.txt")), "{disposition}");
        for text in [
            "API key:      Zapier (", key.as_str(), code_id.as_str(), "Description:  For Zapier", "Created:", "Expires:",
            &format!("\n{secret}\n"), &format!("x-api-key: {secret}"), &format!("/api/v1/accounts/{acc}/ping?apiKey={secret}"),
        ] {
            assert!(res.body.contains(text), "missing {text:?} in\n{}", res.body);
        }
        assert_eq!(audit_actions(&app, &acc)[0].0, "access_code.downloaded");
    }

    async fn the_description_can_be_edited_and_is_checked(app) {
        let (browser, acc, key) = owner_with_key(&app).await;
        let (code_id, _) = browser.create_code(&acc, &key, "old").await;
        let csrf = browser.csrf_token_of(&paths::codes(&acc, &key)).await;
        let res = browser.post_form(&paths::code(&acc, &key, &code_id), &[("csrf_token", &csrf), ("description", "new text")]).await;
        assert_eq!(res.status, StatusCode::SEE_OTHER);
        let tab = browser.get(&paths::codes(&acc, &key)).await;
        assert!(tab.body.contains("Description saved.") && tab.body.contains("new text"));
        assert!(audit_actions(&app, &acc)[0].2.contains("description: old → new text"));
        let long = "d".repeat(201);
        let res = browser.post_form(&paths::code(&acc, &key, &code_id), &[("csrf_token", &csrf), ("description", &long)]).await;
        assert_eq!(res.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(res.body.contains("Use at most 200 characters.") && res.body.contains(&long));
        let res = browser.post_form(&paths::codes(&acc, &key), &[("csrf_token", &csrf), ("description", &long)]).await;
        assert_eq!(res.status, StatusCode::UNPROCESSABLE_ENTITY, "on create too");
    }

    async fn a_code_is_disabled_before_it_can_be_deleted(app) {
        let (browser, acc, key) = owner_with_key(&app).await;
        let (code_id, _) = browser.create_code(&acc, &key, "to delete").await;
        let csrf = browser.csrf_token_of(&paths::codes(&acc, &key)).await;

        let res = browser.post_form(&paths::delete_code(&acc, &key, &code_id), &[("csrf_token", &csrf)]).await;
        assert_eq!(res.status, StatusCode::CONFLICT);
        assert!(res.body.contains("Disable this access code before deleting it."));
        assert_eq!(browser.get(&paths::delete_code(&acc, &key, &code_id)).await.status, StatusCode::CONFLICT);
        // While enabled, Delete is a real disabled button that says why, and the switch is named by
        // what it does (its On/Off picture is not its name).
        let tab = browser.get(&paths::codes(&acc, &key)).await;
        assert!(tab.body.contains(r#"<button type="button" class="button secondary small" disabled aria-describedby="delete-rule">Delete</button>"#));
        assert!(tab.body.contains(r#"<span id="delete-rule">To delete a code, first switch it off"#));
        assert!(tab.body.contains(r#"<span class="visually-hidden">Enabled: to delete</span>"#) && !tab.body.contains(r#"aria-label="Enabled"#));

        let res = browser.post_form(&paths::code_enabled(&acc, &key, &code_id), &[("csrf_token", &csrf), ("enabled", "false")]).await;
        assert_eq!(res.status, StatusCode::SEE_OTHER);
        let tab = browser.get(&paths::codes(&acc, &key)).await;
        assert!(tab.body.contains("Access code disabled") && tab.body.contains("aria-checked=\"false\""));
        assert_eq!(audit_actions(&app, &acc)[0].0, "access_code.disabled");

        let confirm = browser.get(&paths::delete_code(&acc, &key, &code_id)).await;
        assert_eq!(confirm.status, StatusCode::OK);
        assert!(confirm.body.contains("This cannot be undone.") && confirm.body.contains("stops working"));
        let res = browser.post_form(&paths::delete_code(&acc, &key, &code_id), &[("csrf_token", &csrf)]).await;
        assert_eq!(res.status, StatusCode::SEE_OTHER);
        let tab = browser.get(&paths::codes(&acc, &key)).await;
        assert!(tab.body.contains("Access code deleted.") && tab.body.contains("No access code yet"));
        assert_eq!(audit_actions(&app, &acc)[0].0, "access_code.deleted");
        assert_eq!(browser.get(&paths::code_secret(&acc, &key, &code_id)).await.status, StatusCode::NOT_FOUND);
    }

    async fn codes_can_be_enabled_again_unless_expired(app) {
        let (browser, acc, key) = owner_with_key(&app).await;
        let (code_id, _) = browser.create_code(&acc, &key, "").await;
        let csrf = browser.csrf_token_of(&paths::codes(&acc, &key)).await;
        browser.post_form(&paths::code_enabled(&acc, &key, &code_id), &[("csrf_token", &csrf), ("enabled", "false")]).await;
        let res = browser.post_form(&paths::code_enabled(&acc, &key, &code_id), &[("csrf_token", &csrf), ("enabled", "true")]).await;
        assert_eq!(res.status, StatusCode::SEE_OTHER);
        assert_eq!(audit_actions(&app, &acc)[0].0, "access_code.enabled");
        let res = browser.post_form(&paths::code_enabled(&acc, &key, &code_id), &[("csrf_token", &csrf), ("enabled", "maybe")]).await;
        assert_eq!(res.status, StatusCode::BAD_REQUEST);

        set_code(&app, &code_id, Some(false), Some(-time::Duration::days(1)));
        let tab = browser.get(&paths::codes(&acc, &key)).await;
        assert!(tab.body.contains(">Expired<"));
        let res = browser.post_form(&paths::code_enabled(&acc, &key, &code_id), &[("csrf_token", &csrf), ("enabled", "true")]).await;
        assert_eq!(res.status, StatusCode::CONFLICT);
        assert!(res.body.contains("expired and cannot be enabled again"));
        // An expired code can be deleted even if it was never switched off.
        set_code(&app, &code_id, Some(true), None);
        let res = browser.post_form(&paths::delete_code(&acc, &key, &code_id), &[("csrf_token", &csrf)]).await;
        assert_eq!(res.status, StatusCode::SEE_OTHER);
    }

    async fn codes_expiring_soon_are_flagged_with_advice(app) {
        let (browser, acc, key) = owner_with_key(&app).await;
        let (code_id, _) = browser.create_code(&acc, &key, "").await;
        let list = browser.get(&paths::keys(&acc)).await;
        assert!(!list.body.contains("Access codes expire soon"));
        set_code(&app, &code_id, None, Some(time::Duration::days(10) + time::Duration::hours(1)));
        let list = browser.get(&paths::keys(&acc)).await;
        assert!(list.body.contains("Access codes expire soon") && list.body.contains("a code expires in 10 days"));
        assert!(list.body.contains("expires in 10 d"), "badge in the row");
        let tab = browser.get(&paths::codes(&acc, &key)).await;
        assert!(tab.body.contains("Expiring soon") && tab.body.contains("expires in 10 days"));
        assert!(tab.body.contains("Create the second code now"));
        // The list filters down to the keys that need a new code.
        let calm = browser.create_key(&acc, "Calm", "", &[]).await;
        browser.create_code(&acc, &calm, "").await;
        let all = browser.get(&paths::keys(&acc)).await;
        assert!(all.body.contains(">Calm</a>") && all.body.contains("?expiring=30\">show only these keys</a>"));
        let soon = browser.get(&format!("{}?expiring=30", paths::keys(&acc))).await;
        assert!(soon.body.contains(">Zapier</a>") && !soon.body.contains(">Calm</a>"), "only the expiring key");
        assert!(soon.body.contains(r#"name="expiring" value="30" checked"#));
    }

    async fn viewers_never_see_secrets_or_change_codes(app) {
        let (owner, acc, key) = owner_with_key(&app).await;
        let (code_id, secret) = owner.create_code(&acc, &key, "").await;
        app.add_user("vic@example.com", PASSWORD, "Shop", Role::Viewer, false);
        let viewer = app.browser();
        viewer.log_in("vic@example.com", PASSWORD).await;
        let tab = viewer.get(&paths::codes(&acc, &key)).await;
        assert_eq!(tab.status, StatusCode::OK);
        assert!(!tab.body.contains("Create access code") && !tab.body.contains("View secret") && !tab.body.contains(&secret));
        let url = paths::code(&acc, &key, &code_id);
        assert_eq!(viewer.get(&paths::code_secret(&acc, &key, &code_id)).await.status, StatusCode::FORBIDDEN);
        assert_eq!(viewer.get(&paths::code_download(&acc, &key, &code_id)).await.status, StatusCode::FORBIDDEN);
        let csrf = tab.csrf_token();
        for (path, fields) in [
            (paths::codes(&acc, &key), vec![("description", "x")]),
            (url.clone(), vec![("description", "x")]),
            (paths::code_enabled(&acc, &key, &code_id), vec![("enabled", "false")]),
            (paths::delete_code(&acc, &key, &code_id), vec![]),
        ] {
            let mut fields = fields;
            fields.push(("csrf_token", &csrf));
            assert_eq!(viewer.post_form(&path, &fields).await.status, StatusCode::FORBIDDEN, "{path}");
        }
        assert!(audit_actions(&app, &acc).iter().all(|a| a.0 != "access_code.secret_viewed" || !a.1));
    }

    async fn support_staff_give_a_reason_before_seeing_a_secret(app) {
        let (owner, acc, key) = owner_with_key(&app).await;
        let (code_id, secret) = owner.create_code(&acc, &key, "").await;
        app.add_user("sam@bms.example", PASSWORD, "BMS Support", Role::Owner, true);
        let staff = app.browser();
        staff.log_in("sam@bms.example", PASSWORD).await;
        let url = paths::code(&acc, &key, &code_id);
        let ask = staff.get(&paths::code_secret(&acc, &key, &code_id)).await;
        assert_eq!(ask.status, StatusCode::OK);
        assert!(ask.body.contains("Reason required") && !ask.body.contains(&secret));
        let csrf = ask.csrf_token();
        assert!(ask.body.contains(r#"method="post""#), "the reason is a POST form, never a URL");
        // A reason in the URL (the old way) reveals nothing: it is not even read.
        let in_url = staff.get(&format!("{url}/secret?reason=Ticket+42%3A+lost+secret")).await;
        assert!(in_url.body.contains("Reason required") && !in_url.body.contains(&secret));
        let reason = |text: &str| vec![("csrf_token", csrf.clone()), ("reason", text.to_owned())];
        let post = |path: String, fields: Vec<(&'static str, String)>| {
            let staff = &staff;
            async move {
                let fields: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
                staff.post_form(&path, &fields).await
            }
        };
        let blank = post(paths::code_secret(&acc, &key, &code_id), reason(" ")).await;
        assert_eq!(blank.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(blank.body.contains("Support staff must give a reason") && !blank.body.contains(&secret));
        let short = post(paths::code_secret(&acc, &key, &code_id), reason("ticket 4")).await;
        assert!(short.body.contains("at least 10 characters") && !short.body.contains(&secret));
        assert!(short.body.contains(r#"value="ticket 4""#), "the form keeps what was typed");
        let forged = post(paths::code_secret(&acc, &key, &code_id), vec![("csrf_token", "forged".into()), ("reason", "Ticket 42: lost secret".into())]).await;
        assert_eq!(forged.status, StatusCode::FORBIDDEN);
        assert!(!forged.body.contains(&secret));
        assert!(audit_actions(&app, &acc).iter().all(|(a, staff, _)| !(*staff && a == "access_code.secret_viewed")), "nothing revealed to staff yet");

        let shown = post(paths::code_secret(&acc, &key, &code_id), reason("Ticket 42: lost secret")).await;
        assert_eq!(secret_in(&shown.body), secret);
        assert!(!shown.body.contains("?reason="), "the download repeats the reason in a form, not a URL");
        let (action, is_staff, details) = audit_actions(&app, &acc)[0].clone();
        assert_eq!(action, "access_code.secret_viewed");
        assert!(is_staff && details.contains("reason: Ticket 42: lost secret"), "{details}");
        let file = post(paths::code_download(&acc, &key, &code_id), reason("Ticket 42: lost secret")).await;
        assert!(file.body.contains(&secret));
        assert_eq!(audit_actions(&app, &acc)[0].0, "access_code.downloaded");
        assert!(staff.get(&paths::code_download(&acc, &key, &code_id)).await.body.contains("Reason required"));
        assert!(!staff.get(&format!("{url}/download?reason=Ticket+42%3A+lost+secret")).await.body.contains(&secret));
    }

    async fn linked_keys_have_no_access_codes(app) {
        let (alice, acc_a) = app.signed_in_owner("alice@example.com", "Alpha").await;
        let source = alice.create_key(&acc_a, "Source", "", &[]).await;
        let (bob, acc_b) = app.signed_in_owner("bob@example.com", "Beta").await;
        let link = bob.link_key(&acc_b, &source, "L", &["ads.read"]).await.location().rsplit('/').next().unwrap().to_owned();
        let tab = bob.get(&paths::codes(&acc_b, &link)).await;
        assert_eq!(tab.status, StatusCode::SEE_OTHER);
        let csrf = bob.csrf_token_of(&paths::keys(&acc_b)).await;
        let res = bob.post_form(&paths::codes(&acc_b, &link), &[("csrf_token", &csrf), ("description", "x")]).await;
        assert_eq!(res.status, StatusCode::SEE_OTHER);
        let count: i64 = app.with_conn(|c| bms_keys::schema::access_codes::table.count().get_result(c).unwrap());
        assert_eq!(count, 0);
    }

    async fn codes_of_another_account_are_not_found(app) {
        let (alice, acc_a, key_a) = owner_with_key(&app).await;
        let (code_a, secret) = alice.create_code(&acc_a, &key_a, "").await;
        let (bob, acc_b) = app.signed_in_owner("bob@example.com", "Beta").await;
        let key_b = bob.create_key(&acc_b, "Bob's", "", &[]).await;
        let csrf = bob.csrf_token_of(&paths::codes(&acc_b, &key_b)).await;
        for (acc, key) in [(&acc_a, &key_a), (&acc_b, &key_b), (&acc_b, &key_a)] {
            let url = paths::code(acc, key, &code_a);
            for get in [paths::codes(acc, key), paths::code_secret(acc, key, &code_a), paths::code_download(acc, key, &code_a), paths::delete_code(acc, key, &code_a)] {
                if acc == &acc_b && key == &key_b && get == paths::codes(acc, key) {
                    continue; // Bob's own tab
                }
                let res = bob.get(&get).await;
                assert_eq!(res.status, StatusCode::NOT_FOUND, "{get}");
                assert!(!res.body.contains(&secret));
            }
            for post in [url.clone(), paths::code_enabled(acc, key, &code_a), paths::delete_code(acc, key, &code_a)] {
                let res = bob.post_form(&post, &[("csrf_token", &csrf), ("enabled", "false"), ("description", "x")]).await;
                assert_eq!(res.status, StatusCode::NOT_FOUND, "{post}");
            }
        }
        assert!(alice.get(&paths::code_secret(&acc_a, &key_a, &code_a)).await.body.contains(&secret), "still there, unchanged");
    }

    async fn code_changes_without_the_csrf_token_are_refused(app) {
        let (browser, acc, key) = owner_with_key(&app).await;
        let (code_id, _) = browser.create_code(&acc, &key, "keep").await;
        let url = paths::code(&acc, &key, &code_id);
        for (path, fields) in [
            (paths::codes(&acc, &key), vec![("description", "x")]),
            (url.clone(), vec![("description", "changed")]),
            (paths::code_enabled(&acc, &key, &code_id), vec![("enabled", "false")]),
            (paths::delete_code(&acc, &key, &code_id), vec![]),
        ] {
            assert_eq!(browser.post_form(&path, &fields).await.status, StatusCode::FORBIDDEN, "{path}");
        }
        let tab = browser.get(&paths::codes(&acc, &key)).await;
        assert!(tab.body.contains("keep") && tab.body.contains("aria-checked=\"true\""));
    }

    async fn a_server_refuses_to_start_with_missing_or_wrong_key_material(app) {
        let (browser, acc, key) = owner_with_key(&app).await;
        browser.create_code(&acc, &key, "").await;
        let settings = |data_dir: std::path::PathBuf, keys: bms_keys::keystore::KeyMaterialSource| bms_keys::config::Settings {
            key_material: keys,
            ..bms_keys::config::Settings::local(app.database_url.clone(), data_dir)
        };
        let empty = tempfile::tempdir().unwrap();
        let missing = bms_keys::startup::Application::build(settings(empty.path().to_path_buf(), Default::default()));
        let message = missing.err().map(|e| e.to_string()).unwrap_or_default();
        assert!(message.contains("the key material is missing"), "{message}");
        assert!(!empty.path().join("key-material.toml").exists(), "no new key generated over existing codes");

        use base64::Engine;
        let other = bms_keys::keystore::KeyMaterialSource {
            master_key: Some(base64::engine::general_purpose::STANDARD.encode([7u8; 32])),
            pepper: Some(base64::engine::general_purpose::STANDARD.encode([8u8; 32])),
        };
        let wrong = bms_keys::startup::Application::build(settings(empty.path().to_path_buf(), other));
        let message = wrong.err().map(|e| e.to_string()).unwrap_or_default();
        assert!(message.contains("does not match this database"), "{message}");
    }
}

#[actix_web::test]
async fn the_generated_key_file_is_private() {
    use std::os::unix::fs::PermissionsExt;
    let app = TestApp::spawn(crate::helpers::Backend::Sqlite).await;
    let path = app.state.settings.data_dir.join("key-material.toml");
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(
        text.contains("master_key = ")
            && text.contains("pepper = ")
            && text.contains("Back this file up")
    );
}
