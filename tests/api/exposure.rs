//! Leak response: anyone who finds an access code can revoke it through the credential revocation API;
//! the code is disabled at once, marked exposed, audited, and shown on its key's pages, while the answer
//! says nothing about which codes existed.

use actix_web::http::StatusCode;
use serde_json::json;

use crate::both_backends;
use crate::helpers::{Browser, audit_actions, key_with_code};
use crate::paths;

const REVOKE: &str = "/v1/credentials/revoke";

async fn report(client: &Browser, credentials: serde_json::Value) -> crate::helpers::TestResponse {
    client
        .request(
            "POST",
            REVOKE,
            &[("content-type", "application/json")],
            Some(json!({ "credentials": credentials }).to_string()),
        )
        .await
}

both_backends! {
    async fn anyone_can_revoke_a_leaked_code_and_learns_nothing_about_it(app) {
        let (owner, acc) = app.signed_in_owner("ana@example.com", "Shop").await;
        let (key, code, leaked) = key_with_code(&owner, &acc, "Leaky", &["ads.read"]).await;
        let (_, _, kept) = key_with_code(&owner, &acc, "Kept", &["ads.read"]).await;
        let stranger = app.browser();
        let ads = paths::api(&acc, "ads");
        assert_eq!(stranger.api("GET", &ads, &leaked).await.status, StatusCode::OK, "warm in the cache");

        let mixed = report(&stranger, json!([leaked, "bms_not-a-code", "hello", format!("{}x", &kept[..kept.len() - 1])])).await;
        let junk = report(&stranger, json!(["bms_0000", "", "hello", "x"])).await;
        assert_eq!((mixed.status, junk.status), (StatusCode::ACCEPTED, StatusCode::ACCEPTED));
        assert_eq!(mixed.body, junk.body, "the same answer for real and made-up codes: no oracle");

        let refused = stranger.api("GET", &ads, &leaked).await;
        assert_eq!((refused.status, Browser::error_code(&refused)), (StatusCode::UNAUTHORIZED, "disabled".to_owned()), "disabled at once");
        assert_eq!(stranger.api("GET", &ads, &kept).await.status, StatusCode::OK, "only the reported code");

        let (action, _, details) = audit_actions(&app, &acc)[0].clone();
        assert_eq!(action, "access_code.exposed");
        assert!(details.contains("credential revocation API") && details.contains(&key) && !details.contains(&leaked), "{details}");
        let page = owner.get(&paths::key(&acc, &key)).await;
        assert!(page.body.contains("An access code of this key was exposed.") && page.body.contains(&code), "{}", page.body);
        let tab = owner.get(&paths::codes(&acc, &key)).await;
        assert!(tab.body.contains(">Exposed</span>") && tab.body.contains("An access code of this key was exposed."));

        // Reported again: nothing more happens.
        let before = audit_actions(&app, &acc).len();
        assert_eq!(report(&stranger, json!([leaked])).await.status, StatusCode::ACCEPTED);
        assert_eq!(audit_actions(&app, &acc).len(), before);

        // At most 100 per report; a body that is not the contract is a problem, never a 5xx.
        let many: Vec<String> = (0..101).map(|i| format!("x{i}")).collect();
        let res = report(&stranger, json!(many)).await;
        assert_eq!((res.status, Browser::error_code(&res)), (StatusCode::UNPROCESSABLE_ENTITY, "invalid".to_owned()));
        let res = stranger.request("POST", REVOKE, &[("content-type", "application/json")], Some("[1,2]".into())).await;
        assert_eq!(res.status, StatusCode::BAD_REQUEST, "{}", res.body);
    }

    async fn reports_are_rate_limited_per_client(app) {
        let client = app.browser();
        let mut statuses = vec![];
        for _ in 0..32 {
            statuses.push(report(&client, json!(["bms_x"])).await);
        }
        assert!(statuses[..30].iter().all(|r| r.status == StatusCode::ACCEPTED));
        let limited = &statuses[30];
        assert_eq!((limited.status, Browser::error_code(limited)), (StatusCode::TOO_MANY_REQUESTS, "rate_limited".to_owned()));
        assert!(limited.header("retry-after").is_some());
    }
}
