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

        // A near miss of the kept code: its last character changed (to one it is not already).
        let near_miss = format!("{}{}", &kept[..kept.len() - 1], if kept.ends_with('x') { 'y' } else { 'x' });
        let mixed = report(&stranger, json!([leaked, "bms_not-a-code", "hello", near_miss])).await;
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

/// A GitHub-style signing key made for the tests, and the key set file naming it `test-key-1`.
fn github_key() -> p256::ecdsa::SigningKey {
    p256::ecdsa::SigningKey::from_bytes(&[7u8; 32].into()).expect("a valid scalar")
}

/// The key set as GitHub serves it, naming the test key `test-key-1`.
fn github_key_set() -> String {
    use p256::pkcs8::{EncodePublicKey, LineEnding};
    let pem = github_key()
        .verifying_key()
        .to_public_key_pem(LineEnding::LF)
        .unwrap();
    json!({ "public_keys": [{ "key_identifier": "test-key-1", "key": pem, "is_current": true }] })
        .to_string()
}

fn github_keys_file(settings: &mut bms_keys::config::Settings) {
    let path = std::env::temp_dir().join(format!("bms-github-keys-{}.json", std::process::id()));
    std::fs::write(&path, github_key_set()).unwrap();
    settings.github_keys = Some(bms_keys::secret_scanning::KeySource::File(path));
}

/// Serves the key set over HTTP on loopback, as GitHub's URL does; counts the fetches.
fn serve_key_set() -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!(
        "http://{}/meta/public_keys/secret_scanning",
        listener.local_addr().unwrap()
    );
    let fetches = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = fetches.clone();
    let body = github_key_set();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut request = [0u8; 4096];
            let _ = stream.read(&mut request);
            counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let answer = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = stream.write_all(answer.as_bytes());
        }
    });
    (url, fetches)
}

/// GitHub's key set fetched from its URL: alerts signed with its key are accepted; alerts naming keys
/// it does not have make it fetch again at most once a minute, however many arrive.
#[actix_web::test]
async fn the_github_key_set_can_come_from_its_url_and_is_not_refetched_on_demand() {
    let (url, fetches) = serve_key_set();
    let app = crate::helpers::TestApp::spawn_with(crate::helpers::Backend::Sqlite, move |s| {
        s.github_keys = Some(bms_keys::secret_scanning::KeySource::Url(url));
    })
    .await;
    assert_eq!(
        fetches.load(std::sync::atomic::Ordering::SeqCst),
        1,
        "fetched at start-up"
    );
    let (owner, acc) = app.signed_in_owner("ana@example.com", "Shop").await;
    let (_, _, leaked) = key_with_code(&owner, &acc, "Leaky", &["ads.read"]).await;
    let github = app.browser();
    let body = alert_body(&[&leaked]);
    for i in 0..5 {
        let res = alert(&github, &body, &format!("made-up-{i}"), &sign(&body)).await;
        assert_eq!(res.status, StatusCode::UNAUTHORIZED);
    }
    assert_eq!(
        fetches.load(std::sync::atomic::Ordering::SeqCst),
        1,
        "no fetch within a minute of the last, whatever key ids alerts name"
    );
    let res = alert(&github, &body, "test-key-1", &sign(&body)).await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.body);
    let refused = github.api("GET", &paths::api(&acc, "ads"), &leaked).await;
    assert_eq!(Browser::error_code(&refused), "disabled");
}

fn sign(body: &str) -> String {
    use base64::Engine;
    use p256::ecdsa::signature::Signer;
    let signature: p256::ecdsa::Signature = github_key().sign(body.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(signature.to_der().as_bytes())
}

async fn alert(
    client: &Browser,
    body: &str,
    key_id: &str,
    signature: &str,
) -> crate::helpers::TestResponse {
    client
        .request(
            "POST",
            "/v1/secret-scanning/github",
            &[
                ("content-type", "application/json"),
                ("github-public-key-identifier", key_id),
                ("github-public-key-signature", signature),
            ],
            Some(body.to_owned()),
        )
        .await
}

fn alert_body(tokens: &[&str]) -> String {
    let items: Vec<_> = tokens.iter().map(|t| json!({"token": t, "type": "bms_access_code", "url": "https://github.com/octo/app/blob/main/.env", "source": "content"})).collect();
    serde_json::to_string(&items).unwrap()
}

both_backends! {
    async fn a_signed_github_alert_disables_the_code_and_a_forged_one_changes_nothing(app) settings(github_keys_file) {
        let (owner, acc) = app.signed_in_owner("ana@example.com", "Shop").await;
        let (key, _, leaked) = key_with_code(&owner, &acc, "Leaky", &["ads.read"]).await;
        let github = app.browser();
        let ads = paths::api(&acc, "ads");
        let body = alert_body(&[&leaked, "bms_not_ours"]);
        let good = sign(&body);
        let before = audit_actions(&app, &acc).len();
        let tampered = body.replace("octo", "evil");
        for (label, res) in [
            ("no headers", github.request("POST", "/v1/secret-scanning/github", &[("content-type", "application/json")], Some(body.clone())).await),
            ("unknown key", alert(&github, &body, "test-key-2", &good).await),
            ("tampered body", alert(&github, &tampered, "test-key-1", &good).await),
            ("garbage signature", alert(&github, &body, "test-key-1", "bm90IGEgc2lnbmF0dXJl").await),
        ] {
            assert_eq!((res.status, Browser::error_code(&res)), (StatusCode::UNAUTHORIZED, "bad_signature".to_owned()), "{label}: {}", res.body);
        }
        assert_eq!(github.api("GET", &ads, &leaked).await.status, StatusCode::OK, "forged alerts changed nothing");
        assert_eq!(audit_actions(&app, &acc).len(), before);

        let res = alert(&github, &body, "test-key-1", &good).await;
        assert_eq!(res.status, StatusCode::OK, "{}", res.body);
        let feedback: serde_json::Value = serde_json::from_str(&res.body).unwrap();
        assert_eq!(feedback[0]["label"], "true_positive");
        assert_eq!(feedback[1]["label"], "false_positive");
        assert_eq!(feedback[0]["token_type"], "bms_access_code");
        let refused = github.api("GET", &ads, &leaked).await;
        assert_eq!(Browser::error_code(&refused), "disabled");
        let (action, _, details) = audit_actions(&app, &acc)[0].clone();
        assert_eq!(action, "access_code.exposed");
        assert!(details.contains("GitHub secret scanning") && details.contains("https://github.com/octo/app/blob/main/.env") && details.contains(&key), "{details}");

        // The same alert again is a replay: refused, nothing more recorded.
        let count = audit_actions(&app, &acc).len();
        let replay = alert(&github, &body, "test-key-1", &good).await;
        assert_eq!((replay.status, Browser::error_code(&replay)), (StatusCode::CONFLICT, "replayed_alert".to_owned()));
        assert_eq!(audit_actions(&app, &acc).len(), count);
    }

    async fn without_github_keys_the_scanning_endpoint_does_not_exist(app) {
        let res = alert(&app.browser(), "[]", "k", "s").await;
        assert_eq!(res.status, StatusCode::NOT_FOUND);
    }
}

#[actix_web::test]
#[cfg_attr(
    not(bms_pg_tests),
    ignore = "PostgreSQL: set BMS_TEST_POSTGRES_URL to run"
)]
async fn a_github_alert_reaches_every_instance_within_two_seconds() {
    let a =
        crate::helpers::TestApp::spawn_with(crate::helpers::Backend::Postgres, github_keys_file)
            .await;
    let b = a.second_instance().await;
    let (owner, acc) = a.signed_in_owner("ana@example.com", "Shop").await;
    let (_, _, leaked) = key_with_code(&owner, &acc, "Leaky", &["ads.read"]).await;
    let client_b = b.browser();
    let ads = paths::api(&acc, "ads");
    assert_eq!(
        client_b.api("GET", &ads, &leaked).await.status,
        StatusCode::OK,
        "cached on the second instance"
    );
    let body = alert_body(&[&leaked]);
    let started = std::time::Instant::now();
    assert_eq!(
        alert(&a.browser(), &body, "test-key-1", &sign(&body))
            .await
            .status,
        StatusCode::OK
    );
    loop {
        if client_b.api("GET", &ads, &leaked).await.status == StatusCode::UNAUTHORIZED {
            break;
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(2),
            "still accepted on the second instance after 2 s"
        );
        actix_web::rt::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    println!(
        "GitHub alert → refused on the second instance in {:?}",
        started.elapsed()
    );
}
