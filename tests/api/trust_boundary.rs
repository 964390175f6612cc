//! The trust boundary, attacked directly: path tricks on every BMS API and both delegation endpoints,
//! every combination of gateway headers, spoofed client addresses, the failure limiter, sign-in
//! redirects, cookies and HSTS over HTTPS, sessions after a failed sign-in, slow request bodies, and
//! secrets in encoded URLs kept out of the logs. (Through real gateways: `gateways.rs`.)

use actix_web::http::StatusCode;

use crate::both_backends;
use crate::gateways::path_tricks;
use crate::helpers::{Browser, TestApp, captured_logs, key_with_code};
use crate::paths;
use crate::raw_http::{self, authority};

/// Non-canonical spellings that an upstream may resolve to `path` (`/api/v1/accounts/{acc}/{api}`).
fn spellings_of(acc: &str, api: &str) -> Vec<String> {
    let base = format!("/api/v1/accounts/{acc}");
    let (first, rest) = api.split_at(1);
    vec![
        format!("{base}/x/../{api}"),
        format!("{base}/./{api}"),
        format!("{base}/x/%2e%2e/{api}"),
        format!("{base}/x/%2E%2E/{api}"),
        format!("{base}/x/.%2e/{api}"),
        format!("{base}/x/%252e%252e/{api}"),
        format!("{base}/x/..%2f{api}"),
        format!("{base}/x/..%5c{api}"),
        format!("{base}/x/..\\{api}"),
        format!("{base}//{api}"),
        format!("/{base}/{api}"),
        format!("{base}/{api};jsessionid=1"),
        format!("{base}/%{:02x}{rest}", first.as_bytes()[0]),
        format!("{base}/{api}%00"),
        format!("{base}/{api}%"),
        format!("{base}/{api}/.."),
        format!("{base}/{api}/."),
    ]
}

async fn verify(client: &Browser, key: &str, method: &str, path: &str) -> (StatusCode, String) {
    let body = serde_json::json!({ "key": key, "method": method, "path": path }).to_string();
    let res = client
        .request(
            "POST",
            paths::VERIFY,
            &[("content-type", "application/json")],
            Some(body),
        )
        .await;
    let code = serde_json::from_str::<serde_json::Value>(&res.body)
        .map(|v| {
            v["code"]
                .as_str()
                .or(v["code"].as_str())
                .unwrap_or("")
                .to_owned()
        })
        .unwrap_or_default();
    (res.status, code)
}

both_backends! {
    async fn every_non_canonical_path_is_refused_on_every_api_and_both_delegation_endpoints(app) {
        let (owner, acc) = app.signed_in_owner("ana@example.com", "Shop").await;
        let (_, acc_b) = app.signed_in_owner("bob@example.com", "Other").await;
        let (_, _, full) = key_with_code(&owner, &acc, "Full", &["full-access", "api-keys.read", "audit.read"]).await;
        let (_, _, metrics) = key_with_code(&owner, &acc, "Metrics", &["metrics.read"]).await;
        let client = app.browser();
        let direct = authority(&app.address).to_owned();
        // Each API right under the account (the management API's deeper paths are attacked in
        // `management.rs`), but creating a key, whose body differs.
        let mut apis: Vec<(String, String)> = app.state.catalogue.apis.iter()
            .filter(|api| api.path.matches('/').count() == 5 && !(api.method == "POST" && api.path.ends_with("/api-keys")))
            .map(|api| (api.method.clone(), api.path.rsplit('/').next().unwrap().to_owned()))
            .collect();
        apis.push(("GET".into(), "ping".into()));
        let mut refused = 0;
        for (method, api) in &apis {
            // The control: the canonical path with a code allowed everything passes everywhere.
            let path = format!("/api/v1/accounts/{acc}/{api}");
            let body = (method == "POST").then_some(r#"{"name":"Sale","daily_budget_cents":100}"#);
            let res = raw_http::send(&direct, method, &path, &[("x-api-key", &full), ("content-type", "application/json")], body).await;
            assert!((200..300).contains(&res.status), "{method} {path}: {res:?}");
            assert_eq!(verify(&client, &full, method, &path).await, (StatusCode::OK, "ok".into()));
            let res = client.request("GET", paths::FORWARD_AUTH, &[("x-forwarded-uri", &path), ("x-forwarded-method", method), ("x-api-key", &full)], None).await;
            assert_eq!(res.status, StatusCode::OK, "{method} {path}");

            for trick in spellings_of(&acc, api) {
                let res = raw_http::send(&direct, method, &trick, &[("x-api-key", &full), ("content-type", "application/json")], body).await;
                if trick.starts_with("/api/v1/accounts/") {
                    // A request target the HTTP parser itself refuses has no JSON body; every other is ours.
                    assert_eq!(res.status, 400, "{method} {trick} direct: {res:?}");
                    assert!(res.body.contains("bad_path") || !res.head.contains("application/json"), "{trick}: {res:?}");
                } else {
                    assert_eq!(res.status, 404, "{method} {trick} is no API: {res:?}");
                }
                assert_eq!(verify(&client, &full, method, &trick).await, (StatusCode::BAD_REQUEST, "bad_path".into()), "{method} {trick} verify");
                let res = client.request("GET", paths::FORWARD_AUTH, &[("x-forwarded-uri", &trick), ("x-forwarded-method", method), ("x-api-key", &full)], None).await;
                assert_eq!((res.status, Browser::error_code(&res)), (StatusCode::BAD_REQUEST, "bad_path".into()), "{method} {trick} forward");
                refused += 3;
            }
        }
        // The issue's own examples, with a metrics-only code: never valid, anywhere.
        for trick in path_tricks(&acc, &acc_b) {
            assert_eq!(verify(&client, &metrics, "GET", &trick).await.0, StatusCode::BAD_REQUEST, "{trick}");
            let res = client.request("GET", paths::FORWARD_AUTH, &[("x-original-uri", &trick), ("x-original-method", "GET"), ("x-api-key", &metrics)], None).await;
            assert_eq!(res.status, StatusCode::BAD_REQUEST, "{trick}");
            refused += 2;
        }
        // A fragment or a control character in the query is no request either.
        for uri in [format!("/api/v1/accounts/{acc}/metrics#x"), format!("/api/v1/accounts/{acc}/metrics?a=\tb")] {
            let res = client.request("GET", paths::FORWARD_AUTH, &[("x-forwarded-uri", &uri), ("x-forwarded-method", "GET"), ("x-api-key", &metrics)], None).await;
            assert_eq!((res.status, Browser::error_code(&res)), (StatusCode::BAD_REQUEST, "bad_path".into()), "{uri:?}");
        }
        println!("non-canonical paths refused: {refused}");
    }

    async fn forged_gateway_headers_never_turn_a_refusal_into_an_allow(app) {
        let (owner, acc) = app.signed_in_owner("ana@example.com", "Shop").await;
        let (_, acc_b) = app.signed_in_owner("bob@example.com", "Other").await;
        let (_, _, reader) = key_with_code(&owner, &acc, "Reader", &["ads.read"]).await;
        let client = app.browser();
        let ads = paths::api(&acc, "ads");
        // (what the gateway saw, what the client forged): each truth is refused, each forgery allowed.
        let cases = [
            (("GET", paths::api(&acc, "metrics")), ("GET", ads.clone())),
            (("GET", paths::api(&acc_b, "ads")), ("GET", ads.clone())),
            (("POST", ads.clone()), ("GET", ads.clone())),
        ];
        let names = ["x-forwarded-uri", "x-original-uri", "x-forwarded-method", "x-original-method"];
        let mut tried = 0;
        for ((true_method, true_uri), (forged_method, forged_uri)) in &cases {
            // Each header absent, the gateway's value, or the client's forgery: 3^4 combinations.
            for combination in 0..81u32 {
                let choice = |n: u32| (combination / 3u32.pow(n)) % 3;
                let mut headers: Vec<(&str, &str)> = vec![("x-api-key", &reader)];
                for (n, name) in names.iter().enumerate() {
                    let (truth, forged) = if n < 2 { (true_uri.as_str(), forged_uri.as_str()) } else { (*true_method, *forged_method) };
                    match choice(n as u32) {
                        1 => headers.push((name, truth)),
                        2 => headers.push((name, forged)),
                        _ => {}
                    }
                }
                let res = client.request("GET", paths::FORWARD_AUTH, &headers, None).await;
                tried += 1;
                // The values each pair holds (the model compares text: a forged GET equals a true GET).
                let values = |from: usize| headers[1..].iter().filter(|(n, _)| names[from..from + 2].contains(n)).map(|(_, v)| *v).collect::<Vec<_>>();
                let (uris, methods) = (values(0), values(2));
                let agrees = |v: &Vec<&str>| !v.is_empty() && v.iter().all(|x| *x == v[0]);
                if !agrees(&uris) || !agrees(&methods) {
                    assert_eq!(res.status, StatusCode::BAD_REQUEST, "{headers:?}: {}", res.body);
                    continue;
                }
                // A gateway that sets its values (under either name of each pair), as the recipes do:
                // whatever the client adds, the refused request stays refused.
                let gateway_set_both = (choice(0) == 1 || choice(1) == 1) && (choice(2) == 1 || choice(3) == 1);
                if gateway_set_both {
                    assert_ne!(res.status, StatusCode::OK, "a forgery beside the gateway's values got through: {headers:?}");
                }
                // Whatever was decided is the decision for exactly the (method, URI) the endpoint read.
                let (method, uri) = (methods[0], uris[0]);
                let direct = client.request(method, uri, &[("x-api-key", &reader), ("content-type", "application/json")], (method == "POST").then(|| "{}".to_owned())).await;
                assert_eq!(res.status == StatusCode::OK, direct.status.is_success(), "{headers:?} vs direct {method} {uri}");
            }
        }
        // A key only in a forged URI, none sent: refused as soon as the gateway's own value is there.
        let smuggled = format!("/api/v1/accounts/{acc}/ping?apiKey={reader}");
        let other = paths::api(&acc_b, "ads");
        let res = client.request("GET", paths::FORWARD_AUTH, &[("x-original-uri", &other), ("x-original-method", "GET"), ("x-forwarded-uri", &smuggled), ("x-forwarded-method", "GET")], None).await;
        assert_eq!(res.status, StatusCode::BAD_REQUEST);
        // A header repeated with two values is two values.
        let res = client.request("GET", paths::FORWARD_AUTH, &[("x-forwarded-uri", &other), ("x-forwarded-uri", &ads), ("x-forwarded-method", "GET"), ("x-api-key", &reader)], None).await;
        assert_eq!((res.status, Browser::error_code(&res)), (StatusCode::BAD_REQUEST, "conflicting_headers".into()));
        // Two different codes, in two headers or two parameters, are refused; the same one twice is fine.
        let other_code = bms_keys::secrets::generate();
        let res = client.request("GET", &ads, &[("x-api-key", &reader), ("x-api-key", &other_code)], None).await;
        assert_eq!(Browser::error_code(&res), "conflicting_keys");
        let res = client.get(&format!("{ads}?apiKey={reader}&apiKey={other_code}")).await;
        assert_eq!(Browser::error_code(&res), "conflicting_keys");
        let res = client.get(&format!("{ads}?apiKey={reader}&ap%69Key={reader}")).await;
        assert_eq!(res.status, StatusCode::OK);
        let res = client.get(&format!("{ads}?ap%69Key={other_code}&apiKey={reader}")).await;
        assert_eq!(Browser::error_code(&res), "conflicting_keys", "an encoded name is the same parameter");
        println!("gateway header combinations tried: {tried}");
    }

    async fn a_spoofed_forwarded_for_does_not_escape_the_sign_in_limit(app)
        settings(|s: &mut bms_keys::config::Settings| s.trusted_proxies = "127.0.0.1".parse().unwrap())
    {
        app.add_user("ana@example.com", "a long password here", "Shop", bms_keys::users::Role::Owner, false);
        let browser = app.browser();
        let token = browser.get(paths::LOGIN).await.csrf_token();
        let mut limited = 0;
        for n in 0..24 {
            // What nginx's $proxy_add_x_forwarded_for makes of a client at 203.0.113.9 that sent its
            // own rotating header: the client's text first, the address nginx saw last.
            let xff = format!("10.7.0.{n}, 203.0.113.9");
            let body = serde_html_form::to_string([("email", "ana@example.com"), ("password", "wrong password"), ("csrf_token", &token)]).unwrap();
            let res = browser.request("POST", paths::LOGIN, &[("content-type", "application/x-www-form-urlencoded"), ("x-forwarded-for", &xff)], Some(body)).await;
            if res.status == StatusCode::TOO_MANY_REQUESTS {
                limited += 1;
            }
        }
        assert!(limited >= 4, "the per-IP limit (20) held against a rotating X-Forwarded-For: {limited} of 24 limited");
        // The audit log records the address the trusted proxy saw, not the client's text.
        let ips: Vec<String> = app.with_conn(|c| {
            use bms_keys::schema::audit_events::dsl::*;
            use diesel::{ExpressionMethods, QueryDsl, RunQueryDsl};
            audit_events.filter(action.eq("login.failed")).select(client_ip).load(c).unwrap()
        });
        assert!(!ips.is_empty() && ips.iter().all(|ip| ip == "203.0.113.9"), "{ips:?}");
    }

    async fn without_trusted_proxies_forwarded_for_is_ignored(app) {
        let (owner, acc) = app.signed_in_owner("ana@example.com", "Shop").await;
        let client = app.browser();
        let ads = paths::api(&acc, "ads");
        for n in 0..bms_keys::verify::FAILURES_PER_IP_PER_MINUTE {
            let xff = format!("10.8.{}.{}", n / 250, n % 250);
            client.request("GET", &ads, &[("x-api-key", "bms_guess"), ("x-forwarded-for", &xff)], None).await;
        }
        let res = client.request("GET", &ads, &[("x-api-key", "bms_guess"), ("x-forwarded-for", "10.99.0.1")], None).await;
        assert_eq!(res.status, StatusCode::TOO_MANY_REQUESTS, "the limit counts the peer");
        let (_, _, secret) = key_with_code(&owner, &acc, "Reader", &["ads.read"]).await;
        assert_eq!(client.api("GET", &ads, &secret).await.status, StatusCode::OK, "a valid code still verifies");
    }

    async fn sign_in_sends_the_user_on_only_to_a_console_page(app) {
        app.add_user("ana@example.com", "a long password here", "Shop", bms_keys::users::Role::Owner, false);
        let cases = [
            (paths::ACCOUNTS, paths::ACCOUNTS),
            (paths::API_DOCS, paths::API_DOCS),
            (paths::PASSWORD, paths::PASSWORD),
            ("/accounts/acc_x/permissions/api-keys?q=a", "/accounts/acc_x/permissions/api-keys?q=a"),
            ("/\t/evil.example", "/"),
            ("/%09/evil.example", "/"),
            ("//evil.example", "/"),
            ("/\\evil.example", "/"),
            ("https://evil.example/", "/"),
            ("/accounts//evil.example", "/"),
            ("/unknown/page", "/"),
            ("/accounts\r\nSet-Cookie: x=1", "/"),
            ("/accounts\n", "/"),
            ("/accounts\0", "/"),
            ("", "/"),
        ];
        for (next, expected) in cases {
            let browser = app.browser();
            let page = browser.get(&format!("/login?next={}", percent_encoding::utf8_percent_encode(next, percent_encoding::NON_ALPHANUMERIC))).await;
            assert_eq!(page.status, StatusCode::OK, "{next:?}");
            let res = browser.post_form(paths::LOGIN, &[("email", "ana@example.com"), ("password", "a long password here"), ("csrf_token", &page.csrf_token()), ("next", next)]).await;
            assert_eq!(res.status, StatusCode::SEE_OTHER, "{next:?}: {}", res.body);
            assert_eq!(res.location(), expected, "{next:?}");
        }
    }

    async fn a_failed_sign_in_leaves_the_current_session_alone(app) {
        let (owner, acc) = app.signed_in_owner("ana@example.com", "Shop").await;
        let page = owner.get(paths::LOGIN).await;
        let res = owner.post_form(paths::LOGIN, &[("email", "ana@example.com"), ("password", "not the password"), ("csrf_token", &page.csrf_token())]).await;
        assert_eq!(res.status, StatusCode::UNAUTHORIZED);
        let res = owner.get(&paths::keys(&acc)).await;
        assert_eq!(res.status, StatusCode::OK, "still signed in after a mistyped password");
    }

    async fn over_https_every_cookie_is_secure_and_host_only_and_hsts_is_sent(app)
        settings(|s: &mut bms_keys::config::Settings| s.public_url = "https://console.example".into())
    {
        app.add_user("ana@example.com", "a long password here", "Shop", bms_keys::users::Role::Owner, false);
        let browser = app.browser();
        let page = browser.get(paths::LOGIN).await;
        assert_eq!(page.header("strict-transport-security"), Some("max-age=63072000; includeSubDomains"));
        let res = browser.post_form(paths::LOGIN, &[("email", "ana@example.com"), ("password", "a long password here"), ("csrf_token", &page.csrf_token())]).await;
        assert_eq!(res.status, StatusCode::SEE_OTHER);
        let home = browser.get_following("/").await;
        let csrf = home.csrf_token();
        let res = browser.post_form(paths::LOGOUT, &[("csrf_token", &csrf)]).await;
        let mut cookies = page.set_cookies();
        cookies.extend(res.set_cookies());
        let names: Vec<&str> = cookies.iter().map(|c| c.split('=').next().unwrap()).collect();
        for wanted in ["__Host-bms_login_csrf", "__Host-bms_session", "__Host-bms_flash"] {
            assert!(names.contains(&wanted), "{wanted} in {cookies:?}");
        }
        for cookie in &cookies {
            assert!(cookie.starts_with("__Host-"), "{cookie}");
            assert!(cookie.contains("Secure") && cookie.contains("Path=/") && !cookie.contains("Domain"), "{cookie}");
        }
    }

    async fn over_http_there_is_no_hsts(app) {
        let page = app.browser().get(paths::LOGIN).await;
        assert_eq!(page.header("strict-transport-security"), None);
    }

    async fn a_request_body_that_does_not_arrive_in_time_gets_408_and_the_connection_closed(app)
        settings(|s: &mut bms_keys::config::Settings| s.body_timeout = std::time::Duration::from_secs(1))
    {
        let direct = authority(&app.address).to_owned();
        for (target, content_type) in [
            (paths::LOGIN.to_owned(), "application/x-www-form-urlencoded"),
            (paths::VERIFY.to_owned(), "application/json"),
        ] {
            let started = std::time::Instant::now();
            // Announces 100 bytes, sends 6, then waits.
            let head = format!("POST {target} HTTP/1.1\r\nHost: x\r\nContent-Type: {content_type}\r\nContent-Length: 100\r\n\r\nemail=");
            let res = raw_http::send_stalled(&direct, head).await;
            assert_eq!(res.status, 408, "{target}: {res:?}");
            assert!(res.header("connection").is_some_and(|v| v.eq_ignore_ascii_case("close")), "{res:?}");
            let waited = started.elapsed();
            assert!(waited < std::time::Duration::from_secs(10), "closed after {waited:?}, not at the client's pace");
        }
    }

    async fn a_slow_body_on_an_api_is_cut_off_too(app)
        settings(|s: &mut bms_keys::config::Settings| s.body_timeout = std::time::Duration::from_secs(1))
    {
        let (owner, acc) = app.signed_in_owner("ana@example.com", "Shop").await;
        let (_, _, writer) = key_with_code(&owner, &acc, "Writer", &["ads.write"]).await;
        let direct = authority(&app.address).to_owned();
        let target = paths::api(&acc, "ads");
        let head = format!("POST {target} HTTP/1.1\r\nHost: x\r\nx-api-key: {writer}\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"na");
        let res = raw_http::send_stalled(&direct, head).await;
        assert_eq!(res.status, 408, "{res:?}");
        assert!(res.body.contains("request_timeout"), "{res:?}");
    }

    async fn secrets_in_encoded_urls_never_reach_the_logs(app) {
        let logs = captured_logs();
        let (owner, acc) = app.signed_in_owner("ana@example.com", "Shop").await;
        let (_, _, secret) = key_with_code(&owner, &acc, "Reader", &["ads.read"]).await;
        let encode_all = |s: &str| s.bytes().map(|b| format!("%{b:02X}")).collect::<String>();
        let spellings = [
            secret.replacen('_', "%5F", 1),
            format!("{}%{:02X}{}", &secret[..20], secret.as_bytes()[20], &secret[21..]),
            encode_all(&secret),
            encode_all(&secret).replace('%', "%25"),
        ];
        let keys = paths::keys(&acc);
        for spelling in &spellings {
            owner.get(&format!("{keys}?q={spelling}")).await;
            owner.get(&format!("{keys}/{spelling}")).await;
            app.browser().get(&format!("/login?next=%2Faccounts%2F{spelling}")).await;
            app.browser().get(&format!("/no/such/{spelling}")).await;
        }
        let text = String::from_utf8_lossy(&logs.lock().unwrap()).into_owned();
        assert!(text.contains("[REDACTED]"), "the requests were logged, redacted");
        let core = &secret[4..30];
        assert!(!text.contains(core), "a secret reached the logs");
        for spelling in &spellings {
            assert!(!text.contains(&spelling[..24]), "an encoded secret reached the logs: {}", &spelling[..24]);
        }
    }
}

#[actix_web::test]
async fn a_valid_code_is_never_refused_however_many_failures_its_client_had() {
    // The slow lane: a flood of unknown codes from one address, racing a valid code never used before.
    let app = TestApp::spawn(crate::helpers::Backend::Sqlite).await;
    let (owner, acc) = app.signed_in_owner("ana@example.com", "Shop").await;
    let (_, _, fresh) = key_with_code(&owner, &acc, "Fresh", &["ads.read"]).await;
    let client = app.browser();
    let ads = paths::api(&acc, "ads");
    for _ in 0..200 {
        client
            .api("GET", &ads, &bms_keys::secrets::generate())
            .await;
    }
    let flood = futures_util::future::join_all((0..64).map(|_| {
        let (client, ads) = (&client, &ads);
        async move {
            client
                .api("GET", ads, &bms_keys::secrets::generate())
                .await
                .status
        }
    }));
    let (statuses, valid) =
        futures_util::future::join(flood, client.api("GET", &ads, &fresh)).await;
    assert_eq!(valid.status, StatusCode::OK, "{}", valid.body);
    assert!(
        statuses
            .iter()
            .all(|s| *s == StatusCode::UNAUTHORIZED || *s == StatusCode::TOO_MANY_REQUESTS)
    );
}
