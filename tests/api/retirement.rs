//! Rotation: an old access code retires by itself once its services have moved to the new one (or at a
//! chosen time) — under a continuous request stream no request fails, the schedule lives in the
//! database, and however many instances sweep, a code retires once.

use std::time::{Duration, Instant};

use actix_web::http::StatusCode;
use serde_json::{Value, json};

use crate::both_backends;
use crate::helpers::{Browser, TestApp, TestResponse, audit_actions, key_with_code};
use crate::paths;

const MANAGER: &[&str] = &["api-keys.manage", "ads.read"];

async fn call(
    client: &Browser,
    method: &str,
    path: &str,
    secret: &str,
    body: Option<Value>,
) -> TestResponse {
    client
        .request(
            method,
            path,
            &[("x-api-key", secret), ("content-type", "application/json")],
            body.map(|b| b.to_string()),
        )
        .await
}

fn json_of(res: &TestResponse) -> Value {
    serde_json::from_str(&res.body).unwrap_or_else(|_| panic!("{} {}", res.status, res.body))
}

/// A managing code, and a key (ads.read) with two codes: (account, key, old code, old secret, new secret).
async fn rotating(app: &TestApp) -> (Browser, String, String, String, String, String, String) {
    let (owner, acc) = app.signed_in_owner("ana@example.com", "Shop").await;
    let (_, _, manager) = key_with_code(&owner, &acc, "Automation", MANAGER).await;
    let client = app.browser();
    let b = format!("/api/v1/accounts/{acc}");
    let key = json_of(
        &call(
            &client,
            "POST",
            &format!("{b}/api-keys"),
            &manager,
            Some(json!({"name": "Job", "policies": ["ads.read"]})),
        )
        .await,
    )["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let old = json_of(
        &call(
            &client,
            "POST",
            &format!("{b}/api-keys/{key}/access-codes"),
            &manager,
            Some(json!({"description": "v1"})),
        )
        .await,
    );
    let new = json_of(
        &call(
            &client,
            "POST",
            &format!("{b}/api-keys/{key}/access-codes"),
            &manager,
            Some(json!({"description": "v2"})),
        )
        .await,
    );
    (
        client,
        acc,
        manager,
        key,
        old["id"].as_str().unwrap().to_owned(),
        old["secret"].as_str().unwrap().to_owned(),
        new["secret"].as_str().unwrap().to_owned(),
    )
}

both_backends! {
    async fn a_rotation_under_a_request_stream_loses_no_request(app) {
        let (client, acc, manager, key, old_id, old, new) = rotating(&app).await;
        let code_url = format!("/api/v1/accounts/{acc}/api-keys/{key}/access-codes/{old_id}");
        let scheduled = call(&client, "POST", &format!("{code_url}/retire"), &manager, Some(json!({"when": "idle", "quiet_seconds": 10}))).await;
        assert_eq!(scheduled.status, StatusCode::OK, "{}", scheduled.body);
        assert_eq!(json_of(&scheduled)["when"], "idle");

        let ads = paths::api(&acc, "ads");
        let started = Instant::now();
        let (mut sent, mut failed) = (0, 0);
        let mut last_old_use = started;
        let mut retired_at = None;
        while started.elapsed() < Duration::from_secs(30) {
            // The client switches to the new code after 3 s of the old one.
            let switched = started.elapsed() > Duration::from_secs(3);
            let secret = if switched { &new } else { &old };
            let res = client.api("GET", &ads, secret).await;
            sent += 1;
            if res.status != StatusCode::OK {
                failed += 1;
            }
            if !switched {
                last_old_use = Instant::now();
            }
            if switched && sent % 10 == 0 {
                let status = json_of(&call(&client, "GET", &code_url, &manager, None).await)["status"].clone();
                if status == "disabled" {
                    retired_at = Some(Instant::now());
                    break;
                }
            }
            actix_web::rt::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(failed, 0, "{failed} of {sent} requests failed");
        let retired_at = retired_at.expect("the old code retired");
        let after = retired_at - last_old_use;
        println!("rotation: {sent} requests, 0 failed; old code retired {after:?} after its last use (quiet period 10 s)");
        assert!(after >= Duration::from_secs(10) && after <= Duration::from_secs(15), "{after:?}");
        assert_eq!(client.api("GET", &ads, &old).await.status, StatusCode::UNAUTHORIZED, "refused once retired");
        let actions: Vec<String> = audit_actions(&app, &acc).into_iter().map(|a| a.0).collect();
        assert_eq!(actions.iter().filter(|a| *a == "access_code.retired").count(), 1);
        assert!(actions.contains(&"access_code.retirement_scheduled".to_owned()));
    }

    async fn a_retirement_is_a_database_schedule_carried_out_once_by_any_instance(app) {
        let (client, acc, manager, key, old_id, old, _new) = rotating(&app).await;
        let code_url = format!("/api/v1/accounts/{acc}/api-keys/{key}/access-codes/{old_id}");
        let at = (time::OffsetDateTime::now_utc() + time::Duration::seconds(2)).format(&time::format_description::well_known::Rfc3339).unwrap();
        let res = call(&client, "POST", &format!("{code_url}/retire"), &manager, Some(json!({"at": at}))).await;
        assert_eq!(res.status, StatusCode::OK, "{}", res.body);
        // Instances started after the schedule was made (as after a restart) carry it out too.
        let second = app.second_instance().await;
        let third = app.second_instance().await;
        let ads = paths::api(&acc, "ads");
        let started = Instant::now();
        while second.browser().api("GET", &ads, &old).await.status == StatusCode::OK {
            assert!(started.elapsed() < Duration::from_secs(8), "not retired at its time");
            actix_web::rt::time::sleep(Duration::from_millis(100)).await;
        }
        actix_web::rt::time::sleep(Duration::from_millis(2500)).await;
        let retired = audit_actions(&app, &acc).into_iter().filter(|a| a.0 == "access_code.retired").count();
        assert_eq!(retired, 1, "three instances sweep, the code retires once");
        drop(third);
    }

    async fn retirements_refuse_what_would_break_a_service(app) {
        let (client, acc, manager, key, old_id, _old, _new) = rotating(&app).await;
        let base = format!("/api/v1/accounts/{acc}/api-keys/{key}/access-codes/{old_id}/retire");
        for (body, status, field) in [
            (json!({"when": "idle", "quiet_seconds": 5}), StatusCode::UNPROCESSABLE_ENTITY, "quiet_seconds"),
            (json!({"at": "2001-01-01T00:00:00Z"}), StatusCode::UNPROCESSABLE_ENTITY, "at"),
            (json!({"at": "soon"}), StatusCode::UNPROCESSABLE_ENTITY, "at"),
            (json!({"when": "later"}), StatusCode::UNPROCESSABLE_ENTITY, "when"),
        ] {
            let res = call(&client, "POST", &base, &manager, Some(body.clone())).await;
            assert_eq!(res.status, status, "{body}: {}", res.body);
            assert_eq!(json_of(&res)["errors"][0]["field"], field, "{body}");
        }
        assert_eq!(call(&client, "DELETE", &base, &manager, None).await.status, StatusCode::NOT_FOUND, "nothing to cancel");
        assert_eq!(call(&client, "POST", &base, &manager, Some(json!({"when": "idle"}))).await.status, StatusCode::OK);
        assert_eq!(call(&client, "DELETE", &base, &manager, None).await.status, StatusCode::NO_CONTENT);
        let actions: Vec<String> = audit_actions(&app, &acc).into_iter().map(|a| a.0).collect();
        assert_eq!(actions[0], "access_code.retirement_cancelled");

        // The only code of a key cannot be scheduled to retire: every service would stop.
        let single = json_of(&call(&client, "POST", &format!("/api/v1/accounts/{acc}/api-keys"), &manager, Some(json!({"name": "Single", "policies": ["ads.read"]}))).await)["id"].as_str().unwrap().to_owned();
        let only = json_of(&call(&client, "POST", &format!("/api/v1/accounts/{acc}/api-keys/{single}/access-codes"), &manager, None).await)["id"].as_str().unwrap().to_owned();
        let res = call(&client, "POST", &format!("/api/v1/accounts/{acc}/api-keys/{single}/access-codes/{only}/retire"), &manager, Some(json!({"when": "idle"}))).await;
        assert_eq!((res.status, Browser::error_code(&res)), (StatusCode::CONFLICT, "conflict".to_owned()));
    }

    async fn owners_schedule_and_cancel_a_retirement_in_the_console(app) {
        let (owner, acc) = app.signed_in_owner("ana@example.com", "Shop").await;
        let key = owner.create_key(&acc, "Job", "", &["ads.read"]).await;
        let (first, _) = owner.create_code(&acc, &key, "v1").await;
        let tab = owner.get(&paths::codes(&acc, &key)).await;
        assert!(!tab.body.contains("Retire when idle"), "the only code cannot retire");
        owner.create_code(&acc, &key, "v2").await;
        let tab = owner.get(&paths::codes(&acc, &key)).await;
        assert_eq!(tab.body.matches("Retire when idle…").count(), 2);
        let retire = format!("{}/retire", paths::code(&acc, &key, &first));
        let csrf = tab.csrf_token();
        let res = owner.post_form(&retire, &[("csrf_token", &csrf), ("quiet_seconds", "900")]).await;
        assert_eq!(res.status, StatusCode::SEE_OTHER, "{}", res.body);
        let tab = owner.get(res.location()).await;
        assert!(tab.body.contains("retires when idle for 15 min, once the other code is in use."), "flash");
        assert!(tab.body.contains("Retires when idle for 15 min.") && tab.body.contains("Cancel retirement"));
        let bad = owner.post_form(&retire, &[("csrf_token", &csrf), ("quiet_seconds", "5")]).await;
        assert_eq!(bad.status, StatusCode::BAD_REQUEST);
        assert!(bad.body.contains("quiet period from 10 seconds to 7 days"), "{}", bad.body);
        let res = owner.post_form(&format!("{retire}/cancel"), &[("csrf_token", &csrf)]).await;
        assert_eq!(res.status, StatusCode::SEE_OTHER);
        let tab = owner.get(res.location()).await;
        assert!(tab.body.contains("Retirement cancelled") && !tab.body.contains("Retires when idle"));
        let actions: Vec<String> = audit_actions(&app, &acc).into_iter().map(|a| a.0).collect();
        assert_eq!(&actions[..2], ["access_code.retirement_cancelled", "access_code.retirement_scheduled"]);
    }
}
