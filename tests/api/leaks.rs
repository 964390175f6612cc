//! After a whole journey — create, reveal, download, use every way there is, disable, delete, link —
//! no secret and no `apiKey` value is in the log output, the audit log or the stored database.

use actix_web::http::StatusCode;
use diesel::prelude::*;

use crate::both_backends;
use crate::helpers::{Backend, TestApp, captured_logs, key_with_code};
use crate::paths;

/// Everything stored, as text: the SQLite files byte for byte, or every row of every PostgreSQL table.
fn stored(app: &TestApp) -> Vec<u8> {
    match app.backend {
        Backend::Sqlite => {
            let db = std::path::PathBuf::from(&app.database_url);
            [db.clone(), db.with_extension("db-wal")]
                .iter()
                .filter_map(|p| std::fs::read(p).ok())
                .flatten()
                .collect()
        }
        Backend::Postgres => app.with_conn(|conn| {
            #[derive(QueryableByName)]
            struct Line {
                #[diesel(sql_type = diesel::sql_types::Text)]
                text: String,
            }
            let bms_keys::db::DbConn::Postgres(pg) = conn else {
                unreachable!("a PostgreSQL test")
            };
            let tables: Vec<Line> = diesel::sql_query(
                "SELECT table_name::text AS text FROM information_schema.tables WHERE table_schema = 'public'",
            )
            .load(pg)
            .unwrap();
            assert!(tables.len() >= 10, "every table of the schema");
            let mut all = Vec::new();
            for table in tables {
                let rows: Vec<Line> =
                    diesel::sql_query(format!("SELECT t::text AS text FROM \"{}\" t", table.text))
                        .load(pg)
                        .unwrap();
                for row in rows {
                    all.extend_from_slice(row.text.as_bytes());
                    all.push(b'\n');
                }
            }
            all
        }),
    }
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

both_backends! {
    async fn a_whole_journey_leaves_no_secret_in_logs_audit_or_database(app) {
        let logs = captured_logs();
        let (owner, acc) = app.signed_in_owner("ana@example.com", "Shop").await;
        let keys = paths::keys(&acc);
        let (key, code, secret) = key_with_code(&owner, &acc, "Journey", &["full-access"]).await;
        let (_, second_secret) = owner.create_code(&acc, &key, "second").await;
                // Reveal again, download, and use it every way a client can, right and wrong.
        assert_eq!(owner.get(&paths::code_secret(&acc, &key, &code)).await.status, StatusCode::OK);
        assert_eq!(owner.get(&paths::code_download(&acc, &key, &code)).await.status, StatusCode::OK);
        let client = app.browser();
        let ads = paths::api(&acc, "ads");
        assert_eq!(client.api("GET", &ads, &secret).await.status, StatusCode::OK);
        assert_eq!(client.api("POST", &ads, &second_secret).await.status, StatusCode::CREATED);
        assert_eq!(client.get(&format!("{ads}?apiKey={secret}")).await.status, StatusCode::OK);
        client.get(&format!("/api/v1/accounts/acc_0000000000000000/ads?apiKey={secret}")).await;
        client.get(&format!("/v1/auth/forward?apiKey={secret}")).await;
        client.request("GET", paths::FORWARD_AUTH, &[("x-original-uri", &format!("{ads}?apiKey={secret}"))], None).await;
        let body = serde_json::json!({ "key": secret, "method": "GET", "path": ads });
        client.request("POST", paths::VERIFY, &[("content-type", "application/json")], Some(body.to_string())).await;
        let near_miss = format!("{}{}", &secret[..49], if secret.ends_with('A') { 'B' } else { 'A' });
        client.api("GET", &ads, &near_miss).await;
        client.api("GET", &ads, &format!("{secret}x")).await;
        owner.get(&format!("{keys}?q={secret}")).await;
        owner.get(&format!("/docs/apis?apiKey={secret}")).await;
        // Change it every way, then delete it all.
        let csrf = owner.csrf_token_of(&keys).await;
        let post = |path: String, fields: Vec<(&'static str, String)>| {
            let owner = &owner;
            let csrf = csrf.clone();
            async move {
                let mut form: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
                form.push(("csrf_token", &csrf));
                let res = owner.post_form(&path, &form).await;
                assert_eq!(res.status, StatusCode::SEE_OTHER, "{path}: {}", res.body);
            }
        };
        // A secret pasted into a name, tags or a description is refused, with a message by the field.
        let pasted = format!("pasted {secret} by mistake");
        for (path, fields) in [
            (paths::code(&acc, &key, &code), vec![("description", pasted.as_str())]),
            (paths::key(&acc, &key), vec![("name", pasted.as_str()), ("tags", "")]),
            (paths::key(&acc, &key), vec![("name", "Journey"), ("tags", &secret)]),
        ] {
            let mut form = fields.clone();
            form.push(("csrf_token", &csrf));
            let res = owner.post_form(&path, &form).await;
            assert_eq!(res.status, StatusCode::UNPROCESSABLE_ENTITY, "{path}: {}", res.body);
            assert!(res.body.contains("This looks like an access code secret"), "{path}");
        }
        post(paths::code_enabled(&acc, &key, &code), vec![("enabled", "false".into())]).await;
        post(paths::code_enabled(&acc, &key, &code), vec![("enabled", "true".into())]).await;
        post(paths::code_enabled(&acc, &key, &code), vec![("enabled", "false".into())]).await;
        post(paths::delete_code(&acc, &key, &code), vec![]).await;
        let (partner, partner_acc) = app.signed_in_owner("pat@example.com", "Partner").await;
        let linked = partner.link_key(&partner_acc, &key, "From Shop", &["ads.read"]).await;
        assert_eq!(linked.status, StatusCode::SEE_OTHER, "{}", linked.body);
        assert_eq!(partner.api("GET", &paths::api(&partner_acc, "ads"), &second_secret).await.status, StatusCode::OK);
        post(paths::delete_key(&acc, &key), vec![]).await;

        let secrets = [&secret, &second_secret, &near_miss];
        // The log output.
        let log_text = String::from_utf8_lossy(&logs.lock().unwrap()).into_owned();
        assert!(log_text.contains("apiKey=[REDACTED]"), "the console request lines are logged, redacted");
        // The audit log, every field of every event of both accounts.
        let mut audit = String::new();
        for account in [&acc, &partner_acc] {
            let mut conn = app.conn();
            let (events, _) = bms_keys::audit::AuditEvent::list_for_account(&mut conn, account, 0, 1000).unwrap();
            assert!(events.len() >= 10 || account == &partner_acc, "{} events", events.len());
            for e in events {
                audit.push_str(&format!("{e:?}\n"));
            }
        }
        let database = stored(&app);
        for (place, text) in [("the log output", log_text.as_bytes()), ("the audit log", audit.as_bytes()), ("the database", &database)] {
            for s in secrets {
                assert!(!contains(text, s) && !contains(text, &s[4..40]), "a secret in {place}");
            }
            assert!(!contains(text, "apiKey=bms_"), "an apiKey value in {place}");
        }
        println!(
            "leak scan: {} bytes of logs, {} bytes of audit events, {} bytes of stored data; no secret",
            log_text.len(), audit.len(), database.len()
        );
    }
}
