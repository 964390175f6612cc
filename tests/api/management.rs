//! The management API through real HTTP: every route with a managing key, every refusal (validation,
//! other tenants, policies, escalation, conflicts), keyset pages under concurrent inserts, idempotent
//! retries and their race, and problem documents for every refusal.

use actix_web::http::StatusCode;
use serde_json::{Value, json};

use crate::both_backends;
use crate::helpers::{Browser, TestApp, TestResponse, audit_actions, key_with_code};
use crate::paths;

/// Every management policy and the data policies a test key may hand on.
const MANAGER: &[&str] = &[
    "api-keys.manage",
    "access-codes.reveal",
    "audit.read",
    "ads.read",
    "metrics.read",
];

fn base(acc: &str) -> String {
    format!("/api/v1/accounts/{acc}")
}

/// A request to the management API with `secret`, a JSON body, and extra headers.
async fn call(
    client: &Browser,
    method: &str,
    path: &str,
    secret: &str,
    body: Option<Value>,
    extra: &[(&str, &str)],
) -> TestResponse {
    let mut headers = vec![("x-api-key", secret), ("content-type", "application/json")];
    headers.extend_from_slice(extra);
    client
        .request(method, path, &headers, body.map(|b| b.to_string()))
        .await
}

fn body(res: &TestResponse) -> Value {
    serde_json::from_str(&res.body).unwrap_or_else(|_| panic!("JSON: {} {}", res.status, res.body))
}

/// The problem's code, after checking it is an RFC 9457 problem document.
fn problem(res: &TestResponse) -> String {
    assert_eq!(
        res.header("content-type"),
        Some("application/problem+json"),
        "{} {}",
        res.status,
        res.body
    );
    let p = body(res);
    assert_eq!(p["status"], res.status.as_u16(), "{p}");
    assert!(
        p["type"].is_string() && p["title"].is_string() && p["detail"].is_string(),
        "{p}"
    );
    p["code"].as_str().expect("code").to_owned()
}

/// A refusal to check: method, path, body, the secret sent, and the status and code expected.
type Case<'a> = (&'a str, String, Option<Value>, &'a str, StatusCode, &'a str);

/// An owner, their account, a managing key's secret and a client without cookies.
async fn manager(app: &TestApp) -> (Browser, String, String, String, Browser) {
    let (owner, acc) = app.signed_in_owner("ana@example.com", "Shop").await;
    let (key, _, secret) = key_with_code(&owner, &acc, "Automation", MANAGER).await;
    (owner, acc, key, secret, app.browser())
}

both_backends! {
    async fn every_management_route_works_for_a_managing_key(app) {
        let (owner, acc, me, secret, client) = manager(&app).await;
        let b = base(&acc);

        let policies = call(&client, "GET", &format!("{b}/policies"), &secret, None, &[]).await;
        assert_eq!(policies.status, StatusCode::OK);
        let ads_read = body(&policies)["data"].as_array().unwrap().iter().find(|p| p["name"] == "ads.read").cloned().unwrap();
        assert_eq!(ads_read["apis"], json!(["GET /api/v1/accounts/{account}/ads"]));

        let created = call(&client, "POST", &format!("{b}/api-keys"), &secret,
            Some(json!({"name": "Reporting bot", "tags": ["Reporting", "q4"], "policies": ["ads.read"]})), &[]).await;
        assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
        let key = body(&created);
        let id = key["id"].as_str().unwrap().to_owned();
        assert_eq!(created.header("location"), Some(format!("{b}/api-keys/{id}").as_str()));
        assert_eq!(key["name"], "Reporting bot");
        assert_eq!(key["tags"], json!(["q4", "reporting"]));
        assert_eq!(key["policies"], json!(["ads.read"]));
        assert_eq!(key["kind"], "own");
        assert_eq!(key["access_code_count"], 0);
        assert!(key["last_used_at"].is_null() && key["created_at"].as_str().unwrap().ends_with('Z'));
        assert!(key.get("source_key_id").is_none());

        let got = call(&client, "GET", &format!("{b}/api-keys/{id}"), &secret, None, &[]).await;
        assert_eq!(body(&got), key);
        let list = call(&client, "GET", &format!("{b}/api-keys?q=report"), &secret, None, &[]).await;
        assert_eq!(body(&list)["data"], json!([key]));
        assert!(body(&list)["next_cursor"].is_null());

        let patched = call(&client, "PATCH", &format!("{b}/api-keys/{id}"), &secret, Some(json!({"name": "Reports"})), &[]).await;
        assert_eq!(patched.status, StatusCode::OK, "{}", patched.body);
        assert_eq!(body(&patched)["name"], "Reports");
        assert_eq!(body(&patched)["tags"], json!(["q4", "reporting"]), "fields not given stay");

        let code = call(&client, "POST", &format!("{b}/api-keys/{id}/access-codes"), &secret, Some(json!({"description": "bot"})), &[]).await;
        assert_eq!(code.status, StatusCode::CREATED, "{}", code.body);
        let code = body(&code);
        let code_id = code["id"].as_str().unwrap().to_owned();
        let new_secret = code["secret"].as_str().unwrap().to_owned();
        assert_eq!(code["status"], "active");
        assert_eq!(client.api("GET", &paths::api(&acc, "ads"), &new_secret).await.status, StatusCode::OK, "the new code works");

        let codes = call(&client, "GET", &format!("{b}/api-keys/{id}/access-codes"), &secret, None, &[]).await;
        let listed = &body(&codes)["data"][0];
        assert_eq!(listed["id"], code_id.as_str());
        assert!(listed.get("secret").is_none() && !codes.body.contains(&new_secret), "a list never carries a secret");
        let one = call(&client, "GET", &format!("{b}/api-keys/{id}/access-codes/{code_id}"), &secret, None, &[]).await;
        assert_eq!(&body(&one), listed);

        let revealed = call(&client, "POST", &format!("{b}/api-keys/{id}/access-codes/{code_id}/reveal"), &secret, None, &[]).await;
        assert_eq!(body(&revealed), json!({"secret": new_secret}));

        let deleting = call(&client, "DELETE", &format!("{b}/api-keys/{id}/access-codes/{code_id}"), &secret, None, &[]).await;
        assert_eq!(deleting.status, StatusCode::CONFLICT, "enabled codes are disabled first");
        assert_eq!(problem(&deleting), "conflict");
        let off = call(&client, "PATCH", &format!("{b}/api-keys/{id}/access-codes/{code_id}"), &secret, Some(json!({"enabled": false, "description": "old bot"})), &[]).await;
        assert_eq!(body(&off)["status"], "disabled");
        assert_eq!(body(&off)["description"], "old bot");
        assert_eq!(client.api("GET", &paths::api(&acc, "ads"), &new_secret).await.status, StatusCode::UNAUTHORIZED, "refused at once");
        let deleted = call(&client, "DELETE", &format!("{b}/api-keys/{id}/access-codes/{code_id}"), &secret, None, &[]).await;
        assert_eq!(deleted.status, StatusCode::NO_CONTENT);
        assert!(deleted.body.is_empty());
        let gone = call(&client, "DELETE", &format!("{b}/api-keys/{id}"), &secret, None, &[]).await;
        assert_eq!(gone.status, StatusCode::NO_CONTENT);
        assert_eq!(call(&client, "GET", &format!("{b}/api-keys/{id}"), &secret, None, &[]).await.status, StatusCode::NOT_FOUND);

        // The audit log names the key and code that acted, through the API and in the console.
        let events = call(&client, "GET", &format!("{b}/audit-events?limit=100"), &secret, None, &[]).await;
        let events = body(&events)["data"].as_array().unwrap().clone();
        let actions: Vec<&str> = events.iter().map(|e| e["action"].as_str().unwrap()).collect();
        for action in ["api_key.created", "api_key.updated", "access_code.created", "access_code.secret_viewed", "access_code.disabled", "access_code.deleted", "api_key.deleted"] {
            assert!(actions.contains(&action), "{action} in {actions:?}");
        }
        let by_api = events.iter().find(|e| e["action"] == "api_key.created").unwrap();
        assert!(by_api["actor"].as_str().unwrap().starts_with(&format!("API key {me} (access code code_")), "{by_api}");
        assert!(!serde_json::to_string(&events).unwrap().contains(&new_secret), "no secret in the log");
        let console = owner.get(&paths::audit(&acc)).await;
        assert!(console.body.contains(&format!("API key {me}")));
    }

    async fn linking_through_the_api_needs_a_policy_the_caller_holds(app) {
        let (_owner, acc, _, secret, client) = manager(&app).await;
        let (bob, acc_b) = app.signed_in_owner("bob@example.com", "Beta").await;
        let source = bob.create_key(&acc_b, "Shared", "", &[]).await;
        let b = base(&acc);
        let none = call(&client, "POST", &format!("{b}/api-keys"), &secret, Some(json!({"link": {"source_key_id": source}})), &[]).await;
        assert_eq!(none.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(body(&none)["errors"][0]["field"], "policies");
        let linked = call(&client, "POST", &format!("{b}/api-keys"), &secret, Some(json!({"link": {"source_key_id": source}, "policies": ["ads.read"]})), &[]).await;
        assert_eq!(linked.status, StatusCode::CREATED, "{}", linked.body);
        let linked = body(&linked);
        assert_eq!((linked["kind"].as_str(), linked["name"].as_str(), linked["source_key_id"].as_str()), (Some("linked"), Some("Shared"), Some(source.as_str())));
        let bad = call(&client, "POST", &format!("{b}/api-keys"), &secret, Some(json!({"link": {"source_key_id": "nope"}, "policies": ["ads.read"]})), &[]).await;
        assert_eq!(body(&bad)["errors"][0]["field"], "link.source_key_id");
    }

    async fn management_refusals_are_problems_and_change_nothing(app) {
        let (owner, acc, me, secret, client) = manager(&app).await;
        let b = base(&acc);
        let (reader_key, _, reader) = key_with_code(&owner, &acc, "Reader", &["api-keys.read"]).await;
        let (strong, strong_code, _) = key_with_code(&owner, &acc, "Strong", &["full-access"]).await;
        let (bob, acc_b) = app.signed_in_owner("bob@example.com", "Beta").await;
        let (bobs_key, bobs_code, bobs_secret) = key_with_code(&bob, &acc_b, "Bob's", MANAGER).await;
        let before = audit_actions(&app, &acc).len();

        let cases: Vec<Case> = vec![
            // Validation: each message by its JSON field.
            ("POST", format!("{b}/api-keys"), Some(json!({"name": "", "policies": []})), secret.as_str(), StatusCode::UNPROCESSABLE_ENTITY, "invalid"),
            ("POST", format!("{b}/api-keys"), Some(json!({"name": "x", "tags": ["bad tag!"]})), &secret, StatusCode::UNPROCESSABLE_ENTITY, "invalid"),
            ("POST", format!("{b}/api-keys"), Some(json!({"name": "x", "tags": ["a,b"]})), &secret, StatusCode::UNPROCESSABLE_ENTITY, "invalid"),
            ("POST", format!("{b}/api-keys"), Some(json!({"name": "x", "policies": ["no.such"]})), &secret, StatusCode::FORBIDDEN, "escalation"),
            ("POST", format!("{b}/api-keys"), Some(json!({"name": 5})), &secret, StatusCode::BAD_REQUEST, "invalid_json"),
            ("POST", format!("{b}/api-keys"), Some(json!({"name": "x", "extra": 1})), &secret, StatusCode::BAD_REQUEST, "invalid_json"),
            ("GET", format!("{b}/api-keys?limit=0"), None, &secret, StatusCode::UNPROCESSABLE_ENTITY, "invalid"),
            ("GET", format!("{b}/api-keys?limit=101"), None, &secret, StatusCode::UNPROCESSABLE_ENTITY, "invalid"),
            ("GET", format!("{b}/api-keys?cursor=bm9wZQ"), None, &secret, StatusCode::UNPROCESSABLE_ENTITY, "invalid"),
            ("GET", format!("{b}/audit-events?cursor=%%%"), None, &secret, StatusCode::UNPROCESSABLE_ENTITY, "invalid"),
            // Other tenants' ids, and ids that are not ids: 404, never a hint.
            ("GET", format!("{b}/api-keys/{bobs_key}"), None, &secret, StatusCode::NOT_FOUND, "not_found"),
            ("PATCH", format!("{b}/api-keys/{bobs_key}"), Some(json!({"name": "mine"})), &secret, StatusCode::NOT_FOUND, "not_found"),
            ("DELETE", format!("{b}/api-keys/{bobs_key}"), None, &secret, StatusCode::NOT_FOUND, "not_found"),
            ("GET", format!("{b}/api-keys/{strong}/access-codes/{bobs_code}"), None, &secret, StatusCode::NOT_FOUND, "not_found"),
            ("POST", format!("{b}/api-keys/{bobs_key}/access-codes/{bobs_code}/reveal"), None, &secret, StatusCode::NOT_FOUND, "not_found"),
            ("GET", format!("{b}/api-keys/not-an-id"), None, &secret, StatusCode::NOT_FOUND, "not_found"),
            ("GET", format!("/api/v1/accounts/{acc_b}/api-keys"), None, &secret, StatusCode::FORBIDDEN, "no_access"),
            ("GET", format!("{b}/api-keys"), None, &bobs_secret, StatusCode::FORBIDDEN, "no_access"),
            // By policy: a reader changes nothing, reveals nothing, reads no audit log.
            ("POST", format!("{b}/api-keys"), Some(json!({"name": "x"})), &reader, StatusCode::FORBIDDEN, "forbidden"),
            ("DELETE", format!("{b}/api-keys/{strong}"), None, &reader, StatusCode::FORBIDDEN, "forbidden"),
            ("POST", format!("{b}/api-keys/{strong}/access-codes/{strong_code}/reveal"), None, &reader, StatusCode::FORBIDDEN, "forbidden"),
            ("GET", format!("{b}/audit-events"), None, &reader, StatusCode::FORBIDDEN, "forbidden"),
            // Escalation: nothing beyond the caller's own policies, and not itself.
            ("POST", format!("{b}/api-keys"), Some(json!({"name": "x", "policies": ["full-access"]})), &secret, StatusCode::FORBIDDEN, "escalation"),
            ("PATCH", format!("{b}/api-keys/{reader_key}"), Some(json!({"policies": ["api-keys.read", "drive-files.read"]})), &secret, StatusCode::FORBIDDEN, "escalation"),
            ("PATCH", format!("{b}/api-keys/{strong}"), Some(json!({"name": "renamed"})), &secret, StatusCode::FORBIDDEN, "escalation"),
            ("PATCH", format!("{b}/api-keys/{me}"), Some(json!({"policies": ["api-keys.manage", "full-access"]})), &secret, StatusCode::FORBIDDEN, "escalation"),
            ("DELETE", format!("{b}/api-keys/{me}"), None, &secret, StatusCode::FORBIDDEN, "escalation"),
            ("POST", format!("{b}/api-keys/{strong}/access-codes"), None, &secret, StatusCode::FORBIDDEN, "escalation"),
            ("POST", format!("{b}/api-keys/{strong}/access-codes/{strong_code}/reveal"), None, &secret, StatusCode::FORBIDDEN, "escalation"),
            ("PATCH", format!("{b}/api-keys/{strong}/access-codes/{strong_code}"), Some(json!({"enabled": false})), &secret, StatusCode::FORBIDDEN, "escalation"),
            // Method and path.
            ("PUT", format!("{b}/api-keys"), None, &secret, StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed"),
            ("GET", format!("{b}/api-keys/{strong}/nothing"), None, &secret, StatusCode::NOT_FOUND, "not_found"),
            // Paths that are not canonical never reach the router, whichever key they aim at.
            ("DELETE", format!("{b}/api-keys/{strong}/access-codes/%2e%2e"), None, &secret, StatusCode::BAD_REQUEST, "bad_path"),
            ("GET", format!("{b}/api-keys//{strong}"), None, &secret, StatusCode::BAD_REQUEST, "bad_path"),
            ("PATCH", format!("{b}/api-keys/{strong};x=1"), Some(json!({"name": "x"})), &secret, StatusCode::BAD_REQUEST, "bad_path"),
            ("GET", format!("{b}/api-keys"), None, "", StatusCode::UNAUTHORIZED, "missing"),
            ("POST", format!("{b}/api-keys"), Some(json!({"name": "x"})), &secret, StatusCode::BAD_REQUEST, "bad_idempotency_key"),
        ];
        for (n, (method, path, json_body, key, status, code)) in cases.into_iter().enumerate() {
            let extra: &[(&str, &str)] = if code == "bad_idempotency_key" { &[("idempotency-key", "has space")] } else { &[] };
            let res = call(&client, method, &path, key, json_body, extra).await;
            assert_eq!(res.status, status, "case {n}: {method} {path}: {}", res.body);
            assert_eq!(problem(&res), code, "case {n}: {method} {path}");
            if code == "invalid" {
                let errors = body(&res)["errors"].as_array().cloned().unwrap_or_default();
                assert!(!errors.is_empty() && errors.iter().all(|e| e["field"].is_string() && e["message"].is_string()), "case {n}: {errors:?}");
            }
        }
        let fields = call(&client, "POST", &format!("{b}/api-keys"), &secret, Some(json!({"name": "", "tags": ["bad tag!"]})), &[]).await;
        let fields = body(&fields);
        let named: Vec<&str> = fields["errors"].as_array().unwrap().iter().map(|e| e["field"].as_str().unwrap()).collect();
        assert_eq!(named, ["name", "tags"]);
        assert_eq!(audit_actions(&app, &acc).len(), before, "no refusal changed anything");
        // A third code: 409.
        for _ in 0..2 {
            assert_eq!(call(&client, "POST", &format!("{b}/api-keys/{reader_key}/access-codes"), &secret, None, &[]).await.status, StatusCode::FORBIDDEN);
        }
        let (spare, _, _) = key_with_code(&owner, &acc, "Spare", &["ads.read"]).await;
        assert_eq!(call(&client, "POST", &format!("{b}/api-keys/{spare}/access-codes"), &secret, None, &[]).await.status, StatusCode::CREATED);
        let third = call(&client, "POST", &format!("{b}/api-keys/{spare}/access-codes"), &secret, None, &[]).await;
        assert_eq!((third.status, problem(&third)), (StatusCode::CONFLICT, "conflict".to_owned()));
    }

    async fn pages_are_stable_while_keys_are_added(app) {
        let (_owner, acc, _, secret, client) = manager(&app).await;
        let b = base(&acc);
        let mut made = vec![];
        for i in 0..23 {
            let res = call(&client, "POST", &format!("{b}/api-keys"), &secret, Some(json!({"name": format!("Bulk {i:02}"), "tags": ["bulk"]})), &[]).await;
            made.push(body(&res)["id"].as_str().unwrap().to_owned());
        }
        let mut seen = vec![];
        let mut cursor: Option<String> = None;
        let mut pages = 0;
        loop {
            let url = match &cursor {
                None => format!("{b}/api-keys?tag=bulk&limit=5"),
                Some(c) => format!("{b}/api-keys?tag=bulk&limit=5&cursor={c}"),
            };
            let page = body(&call(&client, "GET", &url, &secret, None, &[]).await);
            pages += 1;
            seen.extend(page["data"].as_array().unwrap().iter().map(|k| k["id"].as_str().unwrap().to_owned()));
            // Keys added between pages are newer: they never shift the pages still to come.
            call(&client, "POST", &format!("{b}/api-keys"), &secret, Some(json!({"name": format!("Late {pages}"), "tags": ["bulk"]})), &[]).await;
            match page["next_cursor"].as_str() {
                Some(c) => cursor = Some(c.to_owned()),
                None => break,
            }
        }
        made.reverse();
        assert_eq!(seen, made, "every key once, newest first");
        assert_eq!(pages, 5);
        let events = body(&call(&client, "GET", &format!("{b}/audit-events?limit=7"), &secret, None, &[]).await);
        let next = events["next_cursor"].as_str().unwrap();
        let more = body(&call(&client, "GET", &format!("{b}/audit-events?limit=7&cursor={next}"), &secret, None, &[]).await);
        let (first_last, second_first) = (events["data"][6]["id"].as_i64().unwrap(), more["data"][0]["id"].as_i64().unwrap());
        assert!(second_first < first_last, "the next page continues below");
    }

    async fn retries_with_an_idempotency_key_act_once(app) {
        let (_owner, acc, _, secret, client) = manager(&app).await;
        let b = base(&acc);
        let new = json!({"name": "Once", "policies": ["ads.read"]});
        let first = call(&client, "POST", &format!("{b}/api-keys"), &secret, Some(new.clone()), &[("idempotency-key", "create-once-1")]).await;
        let again = call(&client, "POST", &format!("{b}/api-keys"), &secret, Some(new.clone()), &[("idempotency-key", "create-once-1")]).await;
        assert_eq!((first.status, &first.body), (again.status, &again.body), "the same answer");
        assert_eq!(again.header("location"), first.header("location"));
        assert_eq!(again.header("idempotent-replayed"), Some("true"));
        let other = call(&client, "POST", &format!("{b}/api-keys"), &secret, Some(json!({"name": "Twice"})), &[("idempotency-key", "create-once-1")]).await;
        assert_eq!((other.status, problem(&other)), (StatusCode::UNPROCESSABLE_ENTITY, "idempotency_mismatch".to_owned()));
        let list = body(&call(&client, "GET", &format!("{b}/api-keys?q=once"), &secret, None, &[]).await);
        assert_eq!(list["data"].as_array().unwrap().len(), 1);

        // A code's answer replays with the same secret (stored sealed, not in the clear).
        let id = body(&first)["id"].as_str().unwrap().to_owned();
        let code = call(&client, "POST", &format!("{b}/api-keys/{id}/access-codes"), &secret, Some(json!({"description": "x"})), &[("idempotency-key", "code-1")]).await;
        let code_again = call(&client, "POST", &format!("{b}/api-keys/{id}/access-codes"), &secret, Some(json!({"description": "x"})), &[("idempotency-key", "code-1")]).await;
        assert_eq!(code.body, code_again.body);
        let minted = body(&code)["secret"].as_str().unwrap().to_owned();
        let stored: Vec<Vec<u8>> = app.with_conn(|c| {
            use diesel::prelude::*;
            bms_keys::schema::idempotency_keys::table.select(bms_keys::schema::idempotency_keys::sealed_body).load(c).unwrap()
        });
        assert!(stored.iter().all(|b| !b.windows(minted.len()).any(|w| w == minted.as_bytes())), "sealed at rest");

        // Another caller's identical key is theirs alone.
        let (_, _, second) = key_with_code(&_owner, &acc, "Second manager", MANAGER).await;
        let theirs = call(&client, "POST", &format!("{b}/api-keys"), &second, Some(new.clone()), &[("idempotency-key", "create-once-1")]).await;
        assert_eq!(theirs.status, StatusCode::CREATED);
        assert_ne!(body(&theirs)["id"], body(&first)["id"]);

        // 64 concurrent retries of one request: one key, and every answer is that key (or a 409).
        let race = json!({"name": "Raced", "policies": []});
        let url = format!("{b}/api-keys");
        let tries = (0..64).map(|_| call(&client, "POST", &url, &secret, Some(race.clone()), &[("idempotency-key", "race-1")]));
        let answers = futures_util::future::join_all(tries).await;
        let mut ids = std::collections::BTreeSet::new();
        for res in &answers {
            match res.status {
                StatusCode::CREATED => { ids.insert(body(res)["id"].as_str().unwrap().to_owned()); }
                StatusCode::CONFLICT => assert_eq!(problem(res), "idempotency_in_progress"),
                other => panic!("{other}: {}", res.body),
            }
        }
        assert_eq!(ids.len(), 1, "{ids:?}");
        let raced = body(&call(&client, "GET", &format!("{b}/api-keys?q=raced"), &secret, None, &[]).await);
        assert_eq!(raced["data"].as_array().unwrap().len(), 1, "one creation");
    }

    async fn the_readme_script_session_runs_as_written(app) {
        let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
        let section = &readme[readme.find("## Manage keys from a script").expect("the README section")..];
        let start = section.find("```sh\n").expect("a sh block") + 6;
        let script = &section[start..start + section[start..].find("```").unwrap()];
        let (_owner, acc, _, secret, _) = manager(&app).await;
        let out = std::process::Command::new("bash")
            .args(["-euo", "pipefail", "-c", script])
            .env("BMS_URL", &app.address)
            .env("BMS_ACCOUNT", &acc)
            .env("BMS_CODE", &secret)
            .output()
            .expect("bash, curl and jq (.ci/run installs jq)");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
        assert_eq!(stdout.lines().collect::<Vec<_>>(), ["the new code works", "disabled", "1"]);
        let actions: Vec<String> = audit_actions(&app, &acc).into_iter().map(|a| a.0).collect();
        assert!(actions.starts_with(&["access_code.deleted".to_owned(), "access_code.disabled".to_owned()]), "{actions:?}");
    }

    async fn the_openapi_document_describes_exactly_the_routed_api(app) {
        let doc = body(&app.browser().get("/api/openapi.json").await);
        assert_eq!(doc["openapi"], "3.1.0");
        let mut documented = std::collections::BTreeSet::new();
        for (path, item) in doc["paths"].as_object().unwrap() {
            for method in item.as_object().unwrap().keys() {
                documented.insert((method.to_uppercase(), path.clone()));
            }
        }
        let routed: std::collections::BTreeSet<(String, String)> = bms_keys::web::manage::routes()
            .map(|(m, p)| (m.to_owned(), p.to_owned()))
            .collect();
        assert_eq!(documented, routed, "every route documented, every documented path routed");
        // Each operation documents its problems, and they resolve to the Problem schema.
        for (path, item) in doc["paths"].as_object().unwrap() {
            for (method, op) in item.as_object().unwrap() {
                for status in ["400", "401", "403", "404", "422", "503"] {
                    assert_eq!(op["responses"][status]["content"]["application/problem+json"]["schema"]["$ref"], "#/components/schemas/Problem", "{method} {path} {status}");
                }
            }
        }
        // The reference page renders the same document, with an anchor for every problem type.
        let page = app.browser().get(paths::MANAGEMENT_API_DOCS).await;
        assert_eq!(page.status, StatusCode::OK);
        for (method, path) in &routed {
            assert!(page.body.contains(&format!(r#"<span class="method">{method}</span> {path}"#)), "{method} {path}");
        }
        for code in ["invalid", "escalation", "idempotency_mismatch", "malformed", "not_found"] {
            assert!(page.body.contains(&format!(r#"id="problem-{code}""#)), "{code}");
        }
    }
}
