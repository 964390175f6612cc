//! The verification path, through the real HTTP API: header and query forms, refusals with distinct
//! codes, policies, linked keys, immediate revocation, verify and forward-auth endpoints, rate
//! limiting, usage, redaction.

use actix_web::http::StatusCode;

use crate::both_backends;
use crate::helpers::{Browser, TestApp, captured_logs, key_with_code};
use crate::paths;

fn api(acc: &str, rest: &str) -> String {
    format!("/api/v1/accounts/{acc}/{rest}")
}

both_backends! {
    async fn a_code_works_in_the_header_and_in_the_query_string(app) {
        let (owner, acc) = app.signed_in_owner("ana@example.com", "Shop").await;
        let (_, _, secret) = key_with_code(&owner, &acc, "Reader", &["ads.read"]).await;
        let client = app.browser();
        let res = client.api("GET", &api(&acc, "ads"), &secret).await;
        assert_eq!(res.status, StatusCode::OK, "{}", res.body);
        assert!(res.body.contains("\"ads\":[]"));
        assert_eq!(res.header("referrer-policy"), Some("no-referrer"));
        let res = client.get(&format!("{}?apiKey={secret}", api(&acc, "ads"))).await;
        assert_eq!(res.status, StatusCode::OK);
        let res = client.request("GET", &format!("{}?apiKey={secret}", api(&acc, "ads")), &[("x-api-key", &secret)], None).await;
        assert_eq!(res.status, StatusCode::OK, "the same code twice is fine");
        let other = bms_keys::secrets::generate();
        let res = client.request("GET", &format!("{}?apiKey={other}", api(&acc, "ads")), &[("x-api-key", &secret)], None).await;
        assert_eq!(res.status, StatusCode::BAD_REQUEST);
        assert_eq!(Browser::error_code(&res), "conflicting_keys");
    }

    async fn bad_codes_are_refused_with_distinct_codes_and_messages(app) {
        let (owner, acc) = app.signed_in_owner("ana@example.com", "Shop").await;
        let (key, code, secret) = key_with_code(&owner, &acc, "Reader", &["ads.read"]).await;
        let client = app.browser();
        let url = api(&acc, "ads");
        let res = client.get(&url).await;
        assert_eq!((res.status, Browser::error_code(&res)), (StatusCode::UNAUTHORIZED, "missing".into()));
        let mut typo = secret.clone().into_bytes();
        typo[10] = if typo[10] == b'a' { b'b' } else { b'a' };
        for bad in [String::from_utf8(typo).unwrap(), "bms_short".into(), "x".repeat(5000), format!("{secret}x")] {
            let res = client.api("GET", &url, &bad).await;
            assert_eq!((res.status, Browser::error_code(&res)), (StatusCode::UNAUTHORIZED, "malformed".into()), "{bad}");
        }
        let unknown = bms_keys::secrets::generate();
        let res = client.api("GET", &url, &unknown).await;
        assert_eq!((res.status, Browser::error_code(&res)), (StatusCode::UNAUTHORIZED, "unknown".into()));

        let csrf = owner.csrf_token_of(&paths::keys(&acc)).await;
        owner.post_form(&paths::code_enabled(&acc, &key, &code), &[("csrf_token", &csrf), ("enabled", "false")]).await;
        let res = client.api("GET", &url, &secret).await;
        assert_eq!((res.status, Browser::error_code(&res)), (StatusCode::UNAUTHORIZED, "disabled".into()));
        assert!(res.body.contains("disabled"));

        // A code that expired: refused, and the message says to create a new one.
        let (_, old_code, old_secret) = key_with_code(&owner, &acc, "Old", &["ads.read"]).await;
        app.with_conn(|c| {
            use bms_keys::schema::access_codes;
            use diesel::{ExpressionMethods, QueryDsl, RunQueryDsl};
            diesel::update(access_codes::table.find(&old_code))
                .set(access_codes::expires_at.eq(bms_keys::db::now() - time::Duration::minutes(1)))
                .execute(c)
                .unwrap();
        });
        let res = client.api("GET", &url, &old_secret).await;
        assert_eq!((res.status, Browser::error_code(&res)), (StatusCode::UNAUTHORIZED, "expired".into()));
        assert!(res.body.contains("Create a new access code"));
    }

    async fn each_catalogue_policy_allows_exactly_its_apis(app) {
        let (owner, acc) = app.signed_in_owner("ana@example.com", "Shop").await;
        let client = app.browser();
        let calls = [("GET", "metrics"), ("GET", "ads"), ("POST", "ads"), ("GET", "drive-files"), ("GET", "ping")];
        // What each policy allows, in the order of `calls`.
        let expected: [(&str, [bool; 5]); 6] = [
            ("metrics.read", [true, false, false, false, true]),
            ("ads.read", [false, true, false, false, true]),
            ("ads.write", [false, true, true, false, true]),
            ("drive-files.read", [false, false, false, true, true]),
            ("full-access", [true, true, true, true, true]),
            ("", [false, false, false, false, true]),
        ];
        for (policy, allowed) in expected {
            let policies: Vec<&str> = if policy.is_empty() { vec![] } else { vec![policy] };
            let (_, _, secret) = key_with_code(&owner, &acc, &format!("Key {policy}"), &policies).await;
            for ((method, rest), allow) in calls.iter().zip(allowed) {
                let res = client.api(method, &api(&acc, rest), &secret).await;
                if allow {
                    assert!(res.status.is_success(), "{policy}: {method} {rest} → {} {}", res.status, res.body);
                } else {
                    assert_eq!(res.status, StatusCode::FORBIDDEN, "{policy}: {method} {rest}");
                    assert_eq!(Browser::error_code(&res), "forbidden");
                }
            }
        }
        // A refusal names the policies that would allow the request.
        let (_, _, reader) = key_with_code(&owner, &acc, "Reader", &["ads.read"]).await;
        let res = client.api("POST", &api(&acc, "ads"), &reader).await;
        assert!(res.body.contains("Policies that would: ads.write, full-access."), "{}", res.body);
        // ads.write really creates the ad.
        let (_, _, writer) = key_with_code(&owner, &acc, "Writer", &["ads.write"]).await;
        let res = client.api("POST", &api(&acc, "ads"), &writer).await;
        assert_eq!(res.status, StatusCode::CREATED);
        assert!(res.body.contains("\"name\":\"Spring sale\""));
        let list = client.api("GET", &api(&acc, "ads"), &writer).await;
        assert!(list.body.contains("Spring sale"));
        let bad = client.request("POST", &api(&acc, "ads"), &[("x-api-key", &writer), ("content-type", "application/json")], Some(r#"{"name":"","daily_budget_cents":1}"#.into())).await;
        assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    }

    async fn ping_tells_an_integrator_what_their_code_is(app) {
        let (owner, acc) = app.signed_in_owner("ana@example.com", "Shop").await;
        let (key, code, secret) = key_with_code(&owner, &acc, "No policy yet", &[]).await;
        let res = app.browser().api("GET", &api(&acc, "ping"), &secret).await;
        assert_eq!(res.status, StatusCode::OK);
        let body: serde_json::Value = serde_json::from_str(&res.body).unwrap();
        assert_eq!(body["ok"], true);
        assert_eq!(body["account_id"], acc.as_str());
        assert_eq!(body["api_key_id"], key.as_str());
        assert_eq!(body["access_code_id"], code.as_str());
        assert!(body["expires_at"].as_str().unwrap().starts_with(&(time::OffsetDateTime::now_utc().year() + 1).to_string()));
        assert!(!res.body.contains(&secret), "the answer never echoes the secret");
        assert_eq!(body["policies"], serde_json::json!([]));
        // The answer is rendered once per cached grant: a change to the key shows in the very next one.
        let key_url = paths::key(&acc, &key);
        let csrf = owner.csrf_token_of(&key_url).await;
        owner.post_form(&key_url, &[("csrf_token", &csrf), ("name", "No policy yet"), ("policy", "ads.read")]).await;
        let body: serde_json::Value = serde_json::from_str(&app.browser().api("GET", &api(&acc, "ping"), &secret).await.body).unwrap();
        assert_eq!(body["policies"], serde_json::json!(["ads.read"]));
    }

    async fn a_linked_key_grants_the_linking_accounts_policies_on_its_apis_only(app) {
        let (alice, acc_a) = app.signed_in_owner("alice@example.com", "Alpha").await;
        let (source, _, secret) = key_with_code(&alice, &acc_a, "Shared", &["ads.read"]).await;
        let (bob, acc_b) = app.signed_in_owner("bob@example.com", "Beta").await;
        let (_, acc_c) = app.signed_in_owner("carol@example.com", "Gamma").await;
        let client = app.browser();
        // Before the link, Beta's APIs are out of reach.
        let res = client.api("GET", &api(&acc_b, "metrics"), &secret).await;
        assert_eq!((res.status, Browser::error_code(&res)), (StatusCode::FORBIDDEN, "no_access".into()));

        let res = bob.link_key(&acc_b, &source, "From Alpha", &["metrics.read"]).await;
        let link = res.location().rsplit('/').next().unwrap().to_owned();
        // The very next request sees the link.
        let res = client.api("GET", &api(&acc_b, "metrics"), &secret).await;
        assert_eq!(res.status, StatusCode::OK, "{}", res.body);
        let ping: serde_json::Value = serde_json::from_str(&client.api("GET", &api(&acc_b, "ping"), &secret).await.body).unwrap();
        assert_eq!(ping["api_key_id"], link.as_str());
        assert_eq!(ping["linked"], true);
        assert_eq!(client.api("GET", &api(&acc_b, "ads"), &secret).await.status, StatusCode::FORBIDDEN, "Beta gave metrics only");
        assert_eq!(client.api("GET", &api(&acc_a, "ads"), &secret).await.status, StatusCode::OK, "Alpha's own policies still apply at Alpha");
        assert_eq!(client.api("GET", &api(&acc_a, "metrics"), &secret).await.status, StatusCode::FORBIDDEN);
        let res = client.api("GET", &api(&acc_c, "ping"), &secret).await;
        assert_eq!((res.status, Browser::error_code(&res)), (StatusCode::FORBIDDEN, "no_access".into()));

        // Beta changes the link's policies: effective at once.
        let link_url = paths::key(&acc_b, &link);
        let csrf = bob.csrf_token_of(&link_url).await;
        bob.post_form(&link_url, &[("csrf_token", &csrf), ("name", "From Alpha"), ("policy", "ads.read")]).await;
        assert_eq!(client.api("GET", &api(&acc_b, "metrics"), &secret).await.status, StatusCode::FORBIDDEN);
        assert_eq!(client.api("GET", &api(&acc_b, "ads"), &secret).await.status, StatusCode::OK);
        let ping: serde_json::Value = serde_json::from_str(&client.api("GET", &api(&acc_b, "ping"), &secret).await.body).unwrap();
        assert_eq!(ping["policies"], serde_json::json!(["ads.read"]), "the link's answer follows its policies");
        // Beta deletes the link.
        bob.post_form(&paths::delete_key(&acc_b, &link), &[("csrf_token", &csrf)]).await;
        assert_eq!(client.api("GET", &api(&acc_b, "ads"), &secret).await.status, StatusCode::FORBIDDEN);
        assert_eq!(client.api("GET", &api(&acc_a, "ads"), &secret).await.status, StatusCode::OK);
    }

    async fn when_the_source_key_is_deleted_its_links_grant_nothing(app) {
        let (alice, acc_a) = app.signed_in_owner("alice@example.com", "Alpha").await;
        let (source, _, secret) = key_with_code(&alice, &acc_a, "Shared", &["ads.read"]).await;
        let (bob, acc_b) = app.signed_in_owner("bob@example.com", "Beta").await;
        bob.link_key(&acc_b, &source, "", &["ads.read"]).await;
        let client = app.browser();
        assert_eq!(client.api("GET", &api(&acc_b, "ads"), &secret).await.status, StatusCode::OK);
        let csrf = alice.csrf_token_of(&paths::keys(&acc_a)).await;
        alice.post_form(&paths::delete_key(&acc_a, &source), &[("csrf_token", &csrf)]).await;
        let res = client.api("GET", &api(&acc_b, "ads"), &secret).await;
        assert_eq!((res.status, Browser::error_code(&res)), (StatusCode::UNAUTHORIZED, "unknown".into()));
    }

    async fn every_revocation_takes_effect_on_the_next_request(app) {
        let (owner, acc) = app.signed_in_owner("ana@example.com", "Shop").await;
        let (key, code, secret) = key_with_code(&owner, &acc, "Reader", &["ads.read", "metrics.read"]).await;
        let client = app.browser();
        let ads = api(&acc, "ads");
        assert_eq!(client.api("GET", &ads, &secret).await.status, StatusCode::OK, "warm the cache");
        let csrf = owner.csrf_token_of(&paths::keys(&acc)).await;
        let key_url = paths::key(&acc, &key);
        // A policy removed.
        owner.post_form(&key_url, &[("csrf_token", &csrf), ("name", "Reader"), ("policy", "metrics.read")]).await;
        assert_eq!(client.api("GET", &ads, &secret).await.status, StatusCode::FORBIDDEN);
        owner.post_form(&key_url, &[("csrf_token", &csrf), ("name", "Reader"), ("policy", "ads.read")]).await;
        assert_eq!(client.api("GET", &ads, &secret).await.status, StatusCode::OK);
        // Disabled, enabled, disabled and deleted.
        let enabled = paths::code_enabled(&acc, &key, &code);
        owner.post_form(&enabled, &[("csrf_token", &csrf), ("enabled", "false")]).await;
        assert_eq!(client.api("GET", &ads, &secret).await.status, StatusCode::UNAUTHORIZED);
        owner.post_form(&enabled, &[("csrf_token", &csrf), ("enabled", "true")]).await;
        assert_eq!(client.api("GET", &ads, &secret).await.status, StatusCode::OK);
        owner.post_form(&enabled, &[("csrf_token", &csrf), ("enabled", "false")]).await;
        owner.post_form(&paths::delete_code(&acc, &key, &code), &[("csrf_token", &csrf)]).await;
        let res = client.api("GET", &ads, &secret).await;
        assert_eq!(Browser::error_code(&res), "unknown");
        // The key deleted with a live code.
        let (key2, _, secret2) = key_with_code(&owner, &acc, "Second", &["ads.read"]).await;
        assert_eq!(client.api("GET", &ads, &secret2).await.status, StatusCode::OK);
        owner.post_form(&paths::delete_key(&acc, &key2), &[("csrf_token", &csrf)]).await;
        assert_eq!(client.api("GET", &ads, &secret2).await.status, StatusCode::UNAUTHORIZED);
    }

    async fn the_verify_endpoint_answers_for_other_services(app) {
        let (owner, acc) = app.signed_in_owner("ana@example.com", "Shop").await;
        let (key, code, secret) = key_with_code(&owner, &acc, "Reader", &["ads.read"]).await;
        let client = app.browser();
        let ask = |key: &str, method: &str, path: &str| serde_json::json!({ "key": key, "method": method, "path": path }).to_string();
        let post = |body: String| client.request("POST", paths::VERIFY, &[("content-type", "application/json")], Some(body));
        let res = post(ask(&secret, "GET", &api(&acc, "ads"))).await;
        assert_eq!(res.status, StatusCode::OK);
        let v: serde_json::Value = serde_json::from_str(&res.body).unwrap();
        assert_eq!(v["valid"], true);
        assert_eq!(v["code"], "ok");
        assert_eq!(v["account_id"], acc.as_str());
        assert_eq!(v["api_key_id"], key.as_str());
        assert_eq!(v["access_code_id"], code.as_str());
        assert_eq!(v["policies"], serde_json::json!(["ads.read"]));
        assert!(v["expires_at"].is_string());
        let v: serde_json::Value = serde_json::from_str(&post(ask(&secret, "POST", &api(&acc, "ads"))).await.body).unwrap();
        assert_eq!((v["valid"].clone(), v["code"].clone()), (false.into(), "forbidden".into()));
        let v: serde_json::Value = serde_json::from_str(&post(ask("nope", "GET", &api(&acc, "ads"))).await.body).unwrap();
        assert_eq!(v["code"], "malformed");
        let v: serde_json::Value = serde_json::from_str(&post(ask(&secret, "GET", &api(&acc, "ping"))).await.body).unwrap();
        assert_eq!(v["valid"], true);
        assert_eq!(post(ask(&secret, "get", "/x")).await.status, StatusCode::BAD_REQUEST);
        let res = post(ask(&secret, "GET", "no-slash")).await;
        assert_eq!((res.status, Browser::error_code(&res)), (StatusCode::BAD_REQUEST, "bad_path".into()));
        let no_method = serde_json::json!({ "key": secret, "path": api(&acc, "ads") }).to_string();
        assert_eq!(post(no_method).await.status, StatusCode::BAD_REQUEST, "no default method");
        assert_eq!(post("{not json".into()).await.status, StatusCode::BAD_REQUEST);
        assert_eq!(post(r#"{"key":1}"#.into()).await.status, StatusCode::BAD_REQUEST);
        assert!(!post(ask(&secret, "GET", &api(&acc, "ads"))).await.body.contains(&secret));
    }

    async fn the_forward_endpoint_serves_gateways(app) {
        let (owner, acc) = app.signed_in_owner("ana@example.com", "Shop").await;
        let (key, _, secret) = key_with_code(&owner, &acc, "Reader", &["ads.read"]).await;
        let client = app.browser();
        let ads = api(&acc, "ads");
        let res = client.request("GET", paths::FORWARD_AUTH, &[("x-original-uri", &ads), ("x-original-method", "GET"), ("x-api-key", &secret)], None).await;
        assert_eq!(res.status, StatusCode::OK);
        assert_eq!(res.header("x-bms-account"), Some(acc.as_str()));
        assert_eq!(res.header("x-bms-api-key"), Some(key.as_str()));
        let with_query = format!("{ads}?apiKey={secret}&page=2");
        let res = client.request("GET", paths::FORWARD_AUTH, &[("x-forwarded-uri", &with_query), ("x-forwarded-method", "GET")], None).await;
        assert_eq!(res.status, StatusCode::OK);
        let res = client.request("GET", paths::FORWARD_AUTH, &[("x-forwarded-uri", &ads), ("x-forwarded-method", "POST"), ("x-api-key", &secret)], None).await;
        assert_eq!(res.status, StatusCode::FORBIDDEN);
        let res = client.request("GET", paths::FORWARD_AUTH, &[("x-forwarded-uri", &ads), ("x-forwarded-method", "GET")], None).await;
        assert_eq!((res.status, Browser::error_code(&res)), (StatusCode::UNAUTHORIZED, "missing".into()));
        let res = client.request("GET", paths::FORWARD_AUTH, &[("x-forwarded-uri", "no-slash"), ("x-forwarded-method", "GET"), ("x-api-key", &secret)], None).await;
        assert_eq!((res.status, Browser::error_code(&res)), (StatusCode::BAD_REQUEST, "bad_path".into()));
        // Never a default: no method, or no URI, is the gateway's mistake, not a GET of "/".
        let res = client.request("GET", paths::FORWARD_AUTH, &[("x-forwarded-uri", &ads), ("x-api-key", &secret)], None).await;
        assert_eq!((res.status, Browser::error_code(&res)), (StatusCode::BAD_REQUEST, "bad_request".into()));
        let res = client.request("GET", paths::FORWARD_AUTH, &[("x-forwarded-method", "GET"), ("x-api-key", &secret)], None).await;
        assert_eq!((res.status, Browser::error_code(&res)), (StatusCode::BAD_REQUEST, "bad_request".into()));
    }

    async fn a_client_over_its_failure_limit_still_gets_its_valid_codes_through(app) {
        let (owner, acc) = app.signed_in_owner("ana@example.com", "Shop").await;
        let (_, _, used) = key_with_code(&owner, &acc, "Used before", &["ads.read"]).await;
        let (_, _, fresh) = key_with_code(&owner, &acc, "Never used", &["ads.read"]).await;
        let client = app.browser();
        let ads = api(&acc, "ads");
        assert_eq!(client.api("GET", &ads, &used).await.status, StatusCode::OK, "cached now");
        // 1,000 failures from this address: malformed guesses and well-formed unknown codes.
        let unknown = bms_keys::secrets::generate();
        for n in 0..1_000 {
            let guess = if n % 10 == 0 { unknown.clone() } else { format!("bms_guess{n}") };
            let res = client.api("GET", &ads, &guess).await;
            assert!(res.status == StatusCode::UNAUTHORIZED || res.status == StatusCode::TOO_MANY_REQUESTS, "{}", res.status);
        }
        // Over the limit: a malformed code is told to slow down, a known-unknown one is refused from
        // memory, and valid codes verify — the one in the cache and the one that never was.
        let res = client.api("GET", &ads, "bms_guess").await;
        assert_eq!((res.status, Browser::error_code(&res)), (StatusCode::TOO_MANY_REQUESTS, "rate_limited".into()));
        assert!(res.header("retry-after").unwrap_or("0").parse::<u64>().unwrap() > 0);
        let res = client.api("GET", &ads, &unknown).await;
        assert_eq!((res.status, Browser::error_code(&res)), (StatusCode::UNAUTHORIZED, "unknown".into()));
        assert_eq!(client.api("GET", &ads, &used).await.status, StatusCode::OK, "cached valid code");
        let res = client.api("GET", &ads, &fresh).await;
        assert_eq!(res.status, StatusCode::OK, "a valid code never looked up before: {}", res.body);
        // The same through the delegation endpoints.
        let res = client.request("GET", paths::FORWARD_AUTH, &[("x-forwarded-uri", &ads), ("x-forwarded-method", "GET"), ("x-api-key", &fresh)], None).await;
        assert_eq!(res.status, StatusCode::OK);
        let body = serde_json::json!({ "key": used, "method": "GET", "path": ads }).to_string();
        let res = client.request("POST", paths::VERIFY, &[("content-type", "application/json")], Some(body)).await;
        assert!(res.body.contains(r#""valid":true"#), "{}", res.body);
    }

    async fn usage_is_recorded_shown_and_served(app) {
        let (owner, acc) = app.signed_in_owner("ana@example.com", "Shop").await;
        let (key, _, secret) = key_with_code(&owner, &acc, "Counter", &["ads.read", "metrics.read"]).await;
        let client = app.browser();
        for _ in 0..3 {
            assert_eq!(client.api("GET", &api(&acc, "ads"), &secret).await.status, StatusCode::OK);
        }
        // Written in batches off the request path: wait for the flush.
        let mut metrics = serde_json::Value::Null;
        for _ in 0..50 {
            actix_web::rt::time::sleep(std::time::Duration::from_millis(200)).await;
            metrics = serde_json::from_str(&client.api("GET", &api(&acc, "metrics"), &secret).await.body).unwrap();
            if metrics["days"].as_array().is_some_and(|d| !d.is_empty()) {
                break;
            }
        }
        let day = &metrics["days"][0];
        assert_eq!(day["api_key_id"], key.as_str());
        assert!(day["requests"].as_i64().unwrap() >= 3, "{metrics}");
        let list = owner.get(&paths::keys(&acc)).await;
        assert!(!list.body.contains(">Never<"), "last used is shown");
        let page = owner.get(&paths::key(&acc, &key)).await;
        assert!(page.body.contains(r#"<svg class="chart-bars""#) && page.body.contains("requests in the last 30 days"));
        let today = time::OffsetDateTime::now_utc().date();
        assert!(page.body.contains(&format!("<title>{today}: ")), "today's bar has its title");
        let unused = owner.create_key(&acc, "Unused", "", &[]).await;
        let empty = owner.get(&paths::key(&acc, &unused)).await;
        assert!(empty.body.contains("No requests between") && !empty.body.contains("chart-bars"), "a real empty state");
        let tab = owner.get(&paths::codes(&acc, &key)).await;
        assert!(!tab.body.contains(">Never<"), "the code's last use is shown");
    }

    async fn secrets_never_reach_the_logs(app) {
        let logs = captured_logs();
        let (owner, acc) = app.signed_in_owner("ana@example.com", "Shop").await;
        let (_, _, secret) = key_with_code(&owner, &acc, "Logged", &["ads.read"]).await;
        let client = app.browser();
        client.get(&format!("{}?apiKey={secret}", api(&acc, "ads"))).await;
        client.get(&format!("{}?apiKey={secret}", api(&acc, "metrics"))).await;
        client.get(&format!("/v1/auth/forward?apiKey={secret}")).await;
        client.api("GET", &api(&acc, "ads"), &format!("{secret}x")).await;
        // Console pages log one line per request: a secret pasted into a URL there is redacted too.
        client.get(&format!("/docs/apis?apiKey={secret}&%61piKey={secret}")).await;
        // Management API answers and leak reports carry secrets in bodies, never in log lines.
        let created = client.request("POST", &format!("/api/v1/accounts/{acc}/api-keys/{}/access-codes", "key_0000000000000000"), &[("x-api-key", &secret)], None).await;
        assert!(created.status.is_client_error());
        client.request("POST", "/v1/credentials/revoke", &[("content-type", "application/json")], Some(format!(r#"{{"credentials": ["{secret}"]}}"#))).await;
        let text = String::from_utf8_lossy(&logs.lock().unwrap()).into_owned();
        assert!(text.contains("apiKey=[REDACTED]"), "the request lines are there, redacted");
        assert!(!text.contains(&secret[4..]), "the secret is not in the logs");
    }

    async fn prometheus_metrics_count_outcomes(app) {
        let (owner, acc) = app.signed_in_owner("ana@example.com", "Shop").await;
        let (_, _, secret) = key_with_code(&owner, &acc, "Reader", &["ads.read"]).await;
        let client = app.browser();
        client.api("GET", &api(&acc, "ads"), &secret).await;
        client.api("GET", &api(&acc, "ads"), &secret).await;
        client.api("GET", &api(&acc, "ads"), "bms_bad").await;
        let res = client.get("/metrics").await;
        assert_eq!(res.status, StatusCode::OK);
        assert!(res.header("content-type").unwrap_or_default().starts_with("text/plain"));
        assert!(res.body.contains("bms_verifications_total{outcome=\"ok\"} 2"), "{}", res.body);
        assert!(res.body.contains("bms_verifications_total{outcome=\"malformed\"} 1"));
        assert!(res.body.contains("bms_verification_seconds_count 3"));
        assert!(res.body.contains("bms_db_pool_connections{state=\"max\"}"));
        // Two lookups (a malformed code never reaches the cache), the second from memory — unless,
        // on PostgreSQL, the listener hears of the key's creation only after the first lookup and
        // drops its answer. Then a later one is answered from memory.
        let cache = |body: &str, result: &str| -> u64 {
            let line = format!("bms_verification_cache_requests_total{{result=\"{result}\"}} ");
            body.lines().find_map(|l| l.strip_prefix(&line)).and_then(|n| n.parse().ok()).unwrap_or_else(|| panic!("{body}"))
        };
        assert_eq!(cache(&res.body, "hit") + cache(&res.body, "miss"), 2, "{}", res.body);
        let mut hits = cache(&res.body, "hit");
        for _ in 0..50 {
            if hits > 0 {
                break;
            }
            client.api("GET", &api(&acc, "ads"), &secret).await;
            hits = cache(&client.get("/metrics").await.body, "hit");
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        assert!(hits > 0, "a cached code is answered from memory");
    }
}

/// Two instances behind a load balancer on one PostgreSQL database: a code disabled through one is
/// refused by the other within a second.
#[actix_web::test]
#[cfg_attr(
    not(bms_pg_tests),
    ignore = "PostgreSQL: set BMS_TEST_POSTGRES_URL to run"
)]
async fn a_disable_on_one_instance_is_refused_by_another_within_a_second() {
    let first = TestApp::spawn(crate::helpers::Backend::Postgres).await;
    let second = first.second_instance().await;
    let (owner, acc) = first.signed_in_owner("ana@example.com", "Shop").await;
    let (key, code, secret) = key_with_code(&owner, &acc, "Shared", &["ads.read"]).await;
    let client = second.browser();
    assert_eq!(
        client.api("GET", &api(&acc, "ads"), &secret).await.status,
        StatusCode::OK,
        "cached on the second instance"
    );
    let csrf = owner.csrf_token_of(&paths::keys(&acc)).await;
    let disabled_at = std::time::Instant::now();
    owner
        .post_form(
            &paths::code_enabled(&acc, &key, &code),
            &[("csrf_token", &csrf), ("enabled", "false")],
        )
        .await;
    let mut refused_after = None;
    while disabled_at.elapsed() < std::time::Duration::from_secs(3) {
        if client.api("GET", &api(&acc, "ads"), &secret).await.status == StatusCode::UNAUTHORIZED {
            refused_after = Some(disabled_at.elapsed());
            break;
        }
        actix_web::rt::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let after = refused_after.expect("the second instance refuses the disabled code");
    println!(
        "second instance refused the disabled code after {} ms",
        after.as_millis()
    );
    assert!(after < std::time::Duration::from_secs(1), "took {after:?}");
}

both_backends! {
    async fn once_a_delete_has_returned_no_request_gets_through(app)
        // Hundreds of refusals from one address: lift the rate limit, which would answer 429 instead.
        settings(|s: &mut bms_keys::config::Settings| s.verify_failures_per_minute = 100_000)
    {
        let (owner, acc) = app.signed_in_owner("ana@example.com", "Shop").await;
        let csrf = owner.csrf_token_of(&paths::keys(&acc)).await;
        let client = app.browser();
        let ads = api(&acc, "ads");
        for round in 0..20 {
            let (key, code, secret) = key_with_code(&owner, &acc, &format!("Race {round}"), &["ads.read"]).await;
            assert_eq!(client.api("GET", &ads, &secret).await.status, StatusCode::OK, "cached");
            owner.post_form(&paths::code_enabled(&acc, &key, &code), &[("csrf_token", &csrf), ("enabled", "false")]).await;
            owner.post_form(&paths::code_enabled(&acc, &key, &code), &[("csrf_token", &csrf), ("enabled", "true")]).await;
            assert_eq!(client.api("GET", &ads, &secret).await.status, StatusCode::OK, "cached again");
            // Verifications racing the key's deletion: any may pass before it returns, none after.
            let racing = futures_util::future::join_all((0..16).map(|_| client.api("GET", &ads, &secret)));
            let delete_url = paths::delete_key(&acc, &key);
            let delete_form = [("csrf_token", csrf.as_str())];
            let deletion = owner.post_form(&delete_url, &delete_form);
            let (during, deleted) = futures_util::future::join(racing, deletion).await;
            assert_eq!(deleted.status, StatusCode::SEE_OTHER);
            // Racing the delete, a request passes, is refused, or (on a loaded machine, when its lookup
            // waits too long for the database) fails closed with 503: never anything else.
            let statuses: Vec<StatusCode> = during.iter().map(|r| r.status).collect();
            assert!(
                statuses.iter().all(|s| [StatusCode::OK, StatusCode::UNAUTHORIZED, StatusCode::SERVICE_UNAVAILABLE].contains(s)),
                "round {round}: {statuses:?}"
            );
            for _ in 0..20 {
                let res = client.api("GET", &ads, &secret).await;
                assert_eq!(res.status, StatusCode::UNAUTHORIZED, "round {round}: a deleted key's code got through");
            }
        }
        println!("delete races: 20 rounds of 16 verifications racing a delete; 400 requests after it, all refused");
    }
}
