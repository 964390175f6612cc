//! Per-key rate limits through the real HTTP API: set in the console and the management API (with
//! their refusals), enforced on every way in (BMS APIs, verify, forward-auth, management), reported
//! in the IETF `RateLimit` / `RateLimit-Policy` headers, per key and per link.

use actix_web::http::StatusCode;
use serde_json::{Value, json};

use crate::both_backends;
use bms_keys::users::Role;

use crate::helpers::{Browser, PASSWORD, TestApp, audit_actions, key_with_code};
use crate::paths;

fn ping(acc: &str) -> String {
    format!("/api/v1/accounts/{acc}/ping")
}

/// Saves the Details form of a key with these limits (as typed); returns the response.
async fn set_limits(
    owner: &Browser,
    acc: &str,
    key: &str,
    name: &str,
    per_minute: &str,
    per_day: &str,
) -> crate::helpers::TestResponse {
    let page = paths::key(acc, key);
    let csrf = owner.csrf_token_of(&page).await;
    owner
        .post_form(
            &page,
            &[
                ("csrf_token", &csrf),
                ("name", name),
                ("tags", ""),
                ("policy", "ads.read"),
                ("rate_per_minute", per_minute),
                ("rate_per_day", per_day),
            ],
        )
        .await
}

/// The stored limits of a key.
fn stored(app: &TestApp, key: &str) -> (Option<i32>, Option<i32>) {
    app.with_conn(|c| {
        use bms_keys::schema::api_keys;
        use diesel::{QueryDsl, RunQueryDsl};
        api_keys::table
            .find(key)
            .select((api_keys::rate_per_minute, api_keys::rate_per_day))
            .first(c)
            .unwrap()
    })
}

both_backends! {
    async fn a_limit_set_in_the_console_refuses_the_request_over_it(app) {
        let (owner, acc) = app.signed_in_owner("ana@example.com", "Shop").await;
        let (key, _, secret) = key_with_code(&owner, &acc, "Reader", &["ads.read"]).await;
        let (_, _, other) = key_with_code(&owner, &acc, "Other", &["ads.read"]).await;
        let client = app.browser();
        // No limit: no rate-limit fields on the answer.
        let res = client.api("GET", &ping(&acc), &secret).await;
        assert_eq!(res.status, StatusCode::OK);
        assert_eq!(res.header("ratelimit-policy"), None);

        let res = set_limits(&owner, &acc, &key, "Reader", "60", "").await;
        assert_eq!(res.status, StatusCode::SEE_OTHER, "{}", res.body);
        assert_eq!(stored(&app, &key), (Some(60), None));
        let page = owner.get(&paths::key(&acc, &key)).await;
        assert!(page.body.contains("value=\"60\""), "the form shows the limit");
        let audit = audit_actions(&app, &acc);
        assert!(audit.iter().any(|(a, _, d)| a == "api_key.updated" && d.contains("rate limit: 60 per minute")), "{audit:?}");

        // A quarter of 60 may come at once; each answer counts down.
        for left in (0..15).rev() {
            let res = client.api("GET", &ping(&acc), &secret).await;
            assert_eq!(res.status, StatusCode::OK, "{}", res.body);
            assert_eq!(res.header("ratelimit-policy"), Some("\"minute\";q=60;w=60"));
            let limit = res.header("ratelimit").unwrap();
            assert!(limit.starts_with(&format!("\"minute\";r={left};t=")), "{limit}");
        }
        let res = client.api("GET", &ping(&acc), &secret).await;
        assert_eq!(res.status, StatusCode::TOO_MANY_REQUESTS, "{}", res.body);
        assert_eq!(Browser::error_code(&res), "rate_limited");
        assert_eq!(res.header("retry-after"), Some("1"));
        assert!(res.header("ratelimit").unwrap().starts_with("\"minute\";r=0;"));
        assert!(res.body.contains("rate limit of 60 requests per minute"), "{}", res.body);
        // Another key is not affected, and a second later one more request is allowed.
        assert_eq!(client.api("GET", &ping(&acc), &other).await.status, StatusCode::OK);
        tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
        assert_eq!(client.api("GET", &ping(&acc), &secret).await.status, StatusCode::OK);

        // Removing the limit takes effect at once.
        let res = set_limits(&owner, &acc, &key, "Reader", "", "").await;
        assert_eq!(res.status, StatusCode::SEE_OTHER);
        for _ in 0..20 {
            assert_eq!(client.api("GET", &ping(&acc), &secret).await.status, StatusCode::OK);
        }
    }

    async fn a_day_limit_counts_every_way_in_and_waits_for_the_next_day(app) {
        let (owner, acc) = app.signed_in_owner("ana@example.com", "Shop").await;
        let (key, _, secret) = key_with_code(&owner, &acc, "Reader", &["ads.read"]).await;
        assert_eq!(set_limits(&owner, &acc, &key, "Reader", "", "3").await.status, StatusCode::SEE_OTHER);
        let client = app.browser();
        let res = client.api("GET", &format!("/api/v1/accounts/{acc}/ads"), &secret).await;
        assert_eq!(res.status, StatusCode::OK);
        assert_eq!(res.header("ratelimit-policy"), Some("\"day\";q=3;w=86400"));
        let verify = json!({ "key": secret, "method": "GET", "path": format!("/api/v1/accounts/{acc}/ads") });
        let res = client.request("POST", "/v1/keys/verify", &[("content-type", "application/json")], Some(verify.to_string())).await;
        assert_eq!(res.status, StatusCode::OK);
        assert!(res.header("ratelimit").unwrap().starts_with("\"day\";r=1;"), "{:?}", res.header("ratelimit"));
        let forward = [("x-forwarded-method", "GET"), ("x-forwarded-uri", &*format!("/api/v1/accounts/{acc}/ads")), ("x-api-key", &*secret)];
        let res = client.request("GET", "/v1/auth/forward", &forward, None).await;
        assert_eq!(res.status, StatusCode::OK);
        assert!(res.header("ratelimit").unwrap().starts_with("\"day\";r=0;"));
        // The fourth, by any way in, is refused until the UTC day ends.
        let res = client.request("GET", "/v1/auth/forward", &forward, None).await;
        assert_eq!(res.status, StatusCode::TOO_MANY_REQUESTS);
        let res = client.request("POST", "/v1/keys/verify", &[("content-type", "application/json")], Some(verify.to_string())).await;
        assert_eq!(res.status, StatusCode::TOO_MANY_REQUESTS);
        let body: Value = serde_json::from_str(&res.body).unwrap();
        assert_eq!((body["code"].as_str(), body["valid"].as_bool()), (Some("rate_limited"), Some(false)));
        let res = client.api("GET", &ping(&acc), &secret).await;
        assert_eq!(res.status, StatusCode::TOO_MANY_REQUESTS);
        let wait: u32 = res.header("retry-after").unwrap().parse().unwrap();
        let now = time::OffsetDateTime::now_utc().time();
        let to_midnight = 86_400 - (u32::from(now.hour()) * 3600 + u32::from(now.minute()) * 60 + u32::from(now.second()));
        assert!(wait.abs_diff(to_midnight) <= 2, "{wait} vs {to_midnight}");
        assert!(res.body.contains("3 requests per day"), "{}", res.body);
    }

    async fn bad_limits_are_refused_by_the_field_and_change_nothing(app) {
        let (owner, acc) = app.signed_in_owner("ana@example.com", "Shop").await;
        let (key, _, _) = key_with_code(&owner, &acc, "Reader", &["ads.read"]).await;
        assert_eq!(set_limits(&owner, &acc, &key, "Reader", "100", "5000").await.status, StatusCode::SEE_OTHER);
        for (per_minute, per_day, field, message) in [
            ("0", "", "rate_per_minute", "Enter at least 1"),
            ("ten", "", "rate_per_minute", "whole number"),
            ("100000001", "", "rate_per_minute", "at most 100000000"),
            ("-3", "", "rate_per_minute", "whole number"),
            ("", "1.5", "rate_per_day", "whole number"),
            ("", "99999999999999999999", "rate_per_day", "at most 2000000000"),
            ("", "2000000001", "rate_per_day", "at most 2000000000"),
        ] {
            let res = set_limits(&owner, &acc, &key, "Renamed", per_minute, per_day).await;
            assert_eq!(res.status, StatusCode::UNPROCESSABLE_ENTITY, "{per_minute}/{per_day}");
            assert!(res.body.contains(&format!("id=\"{field}-error\"")), "{field}: {}", res.body);
            assert!(res.body.contains(message), "{message}");
            assert!(res.body.contains(&format!("value=\"{}\"", if per_minute.is_empty() { per_day } else { per_minute })), "the input is shown again");
            assert_eq!(stored(&app, &key), (Some(100), Some(5000)), "nothing changed");
        }
        // The editor for a new key takes them too, and refuses likewise.
        let csrf = owner.csrf_token_of(&paths::new_key(&acc, "create")).await;
        let res = owner.post_form(&paths::keys(&acc), &[("csrf_token", &csrf), ("mode", "create"), ("name", "Limited"), ("tags", ""), ("rate_per_minute", "0")]).await;
        assert_eq!(res.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(res.body.contains("Requests per minute"));
        let res = owner.post_form(&paths::keys(&acc), &[("csrf_token", &csrf), ("mode", "create"), ("name", "Limited"), ("tags", ""), ("rate_per_minute", "1,200"), ("rate_per_day", " 50000 ")]).await;
        assert_eq!(res.status, StatusCode::SEE_OTHER, "{}", res.body);
        let new_key = res.location().rsplit('/').next().unwrap().to_owned();
        assert_eq!(stored(&app, &new_key), (Some(1200), Some(50_000)));
    }

    async fn a_link_has_its_own_limit_in_the_linking_account(app) {
        let (owner, acc) = app.signed_in_owner("ana@example.com", "Shop").await;
        let (key, _, secret) = key_with_code(&owner, &acc, "Shared", &["ads.read"]).await;
        let (partner, partner_acc) = app.signed_in_owner("bo@example.com", "Agency").await;
        let csrf = partner.csrf_token_of(&paths::new_key(&partner_acc, "link")).await;
        let res = partner.post_form(&paths::keys(&partner_acc), &[("csrf_token", &csrf), ("mode", "link"), ("name", ""), ("linked_key_id", &key), ("tags", ""), ("policy", "ads.read"), ("rate_per_minute", "4")]).await;
        assert_eq!(res.status, StatusCode::SEE_OTHER, "{}", res.body);
        let client = app.browser();
        // A quarter of 4 is one at once in the linking account…
        assert_eq!(client.api("GET", &ping(&partner_acc), &secret).await.status, StatusCode::OK);
        let res = client.api("GET", &ping(&partner_acc), &secret).await;
        assert_eq!(res.status, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(res.header("retry-after"), Some("15"));
        // …while the key's own account is not limited by it.
        for _ in 0..5 {
            assert_eq!(client.api("GET", &ping(&acc), &secret).await.status, StatusCode::OK);
        }
    }

    async fn the_management_api_reads_and_sets_limits(app) {
        let (owner, acc) = app.signed_in_owner("ana@example.com", "Shop").await;
        let (_, _, manager) = key_with_code(&owner, &acc, "Manager", &["api-keys.manage", "ads.read"]).await;
        let client = app.browser();
        let keys = format!("/api/v1/accounts/{acc}/api-keys");
        let call = async |method: &str, path: String, body: Option<Value>| {
            client.request(method, &path, &[("x-api-key", &manager), ("content-type", "application/json")], body.map(|b| b.to_string())).await
        };
        let res = call("POST", keys.clone(), Some(json!({ "name": "Limited", "policies": ["ads.read"], "rate_limit": { "requests_per_minute": 120 } }))).await;
        assert_eq!(res.status, StatusCode::CREATED, "{}", res.body);
        let created: Value = serde_json::from_str(&res.body).unwrap();
        assert_eq!(created["rate_limit"], json!({ "requests_per_minute": 120, "requests_per_day": null }));
        let id = created["id"].as_str().unwrap().to_owned();
        assert_eq!(stored(&app, &id), (Some(120), None));
        // A PATCH without rate_limit keeps it; with it, replaces both.
        let res = call("PATCH", format!("{keys}/{id}"), Some(json!({ "name": "Renamed" }))).await;
        assert_eq!(res.status, StatusCode::OK, "{}", res.body);
        assert_eq!(stored(&app, &id), (Some(120), None));
        let res = call("PATCH", format!("{keys}/{id}"), Some(json!({ "rate_limit": { "requests_per_day": 9000 } }))).await;
        assert_eq!(res.status, StatusCode::OK, "{}", res.body);
        assert_eq!(stored(&app, &id), (None, Some(9000)));
        // Refusals name the field and change nothing.
        for (bad, status) in [
            (json!({ "rate_limit": { "requests_per_minute": 0 } }), StatusCode::UNPROCESSABLE_ENTITY),
            (json!({ "rate_limit": { "requests_per_minute": 200_000_000 } }), StatusCode::UNPROCESSABLE_ENTITY),
            (json!({ "rate_limit": { "requests_per_minute": -1 } }), StatusCode::BAD_REQUEST),
            (json!({ "rate_limit": { "per_minute": 5 } }), StatusCode::BAD_REQUEST),
            (json!({ "rate_limit": "fast" }), StatusCode::BAD_REQUEST),
        ] {
            let res = call("PATCH", format!("{keys}/{id}"), Some(bad.clone())).await;
            assert_eq!(res.status, status, "{bad}: {}", res.body);
            if status == StatusCode::UNPROCESSABLE_ENTITY {
                let problem: Value = serde_json::from_str(&res.body).unwrap();
                assert_eq!(problem["errors"][0]["field"], "rate_limit.requests_per_minute", "{problem}");
            }
            assert_eq!(stored(&app, &id), (None, Some(9000)), "{bad}");
        }
        let res = call("GET", format!("{keys}/{id}"), None).await;
        let got: Value = serde_json::from_str(&res.body).unwrap();
        assert_eq!(got["rate_limit"], json!({ "requests_per_minute": null, "requests_per_day": 9000 }));
    }

    async fn a_viewer_sees_the_limit_and_no_form(app) {
        let (owner, acc) = app.signed_in_owner("ana@example.com", "Shop").await;
        let (key, _, _) = key_with_code(&owner, &acc, "Reader", &["ads.read"]).await;
        assert_eq!(set_limits(&owner, &acc, &key, "Reader", "600", "100000").await.status, StatusCode::SEE_OTHER);
        app.add_user("vi@example.com", PASSWORD, "Shop", Role::Viewer, false);
        let viewer = app.browser();
        viewer.log_in("vi@example.com", PASSWORD).await;
        let page = viewer.get(&paths::key(&acc, &key)).await;
        assert_eq!(page.status, StatusCode::OK);
        assert!(page.body.contains("600 per minute, 100000 per day"), "{}", page.body);
        assert!(!page.body.contains("name=\"rate_per_minute\""));
    }
}
