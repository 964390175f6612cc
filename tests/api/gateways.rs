//! Real gateways in front of bms-keys — nginx `auth_request` and Caddy `forward_auth` — each
//! configured by the recipe block copied out of README.md at test time, so the documentation cannot
//! drift from what is tested. Through each: what the policies allow gets through; a refusal by policy,
//! another account, a disabled code, no code, every path trick and every client-sent copy of the
//! gateway headers is refused; the upstream learns the caller only from bms-keys; the failure limiter
//! counts the end client and still lets a valid code through.
//!
//! Run when `BMS_TEST_NGINX` / `BMS_TEST_CADDY` name the binaries (`.ci/run` installs and sets both);
//! otherwise reported as ignored.

use std::process::{Child, Command};
use std::time::{Duration, Instant};

use crate::helpers::{Backend, TestApp, free_port, key_with_code};
use crate::paths;
use crate::raw_http::{self, RawResponse};

/// A gateway process on a loopback port, stopped when dropped.
struct Gateway {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
    /// nginx turns every subrequest answer but 2xx, 401 and 403 into a 500.
    refusals_become_500: bool,
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Gateway {
    fn authority(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn wait_until_listening(&self, log: &str) {
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(15),
                "the gateway did not start: {}",
                std::fs::read_to_string(self.dir.path().join(log)).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// The fenced block after `<!-- gateway-recipe: NAME -->` in README.md, as it stands.
fn readme_recipe(name: &str) -> String {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"))
        .expect("README.md");
    let marker = format!("<!-- gateway-recipe: {name} -->");
    let after = readme
        .split_once(&marker)
        .unwrap_or_else(|| panic!("README.md has no {marker}"))
        .1;
    let fence_start = after.find("```").expect("a fenced block") + 3;
    let body = &after[fence_start..];
    let body = &body[body.find('\n').expect("a fence line") + 1..];
    body[..body.find("```").expect("the closing fence")].to_owned()
}

fn bms_port(app: &TestApp) -> u16 {
    app.address.rsplit(':').next().unwrap().parse().unwrap()
}

fn start_nginx(app: &TestApp) -> Gateway {
    let binary = std::env::var("BMS_TEST_NGINX").expect("BMS_TEST_NGINX names the nginx binary");
    let dir = tempfile::tempdir().unwrap();
    let (port, upstream) = (free_port(), free_port());
    let upstream_pool = readme_recipe("nginx-http")
        .replace("127.0.0.1:8080", &format!("127.0.0.1:{}", bms_port(app)));
    let recipe = readme_recipe("nginx")
        .replace(
            "http://your-upstream",
            &format!("http://127.0.0.1:{upstream}"),
        )
        .replace("127.0.0.1:8080", &format!("127.0.0.1:{}", bms_port(app)));
    let d = dir.path().display();
    let conf = format!(
        r#"
worker_processes 1;
master_process off;
daemon off;
pid {d}/nginx.pid;
error_log {d}/error.log;
events {{ worker_connections 256; }}
http {{
  access_log off;
  client_body_temp_path {d}/body; proxy_temp_path {d}/proxy; fastcgi_temp_path {d}/fastcgi;
  uwsgi_temp_path {d}/uwsgi; scgi_temp_path {d}/scgi;
{upstream_pool}
  # The upstream: says whom bms-keys told it the caller is.
  server {{
    listen 127.0.0.1:{upstream};
    location / {{ return 200 "upstream ok for $http_x_bms_account\n"; }}
  }}
  server {{
    listen 127.0.0.1:{port};
{recipe}
  }}
}}
"#
    );
    let path = dir.path().join("nginx.conf");
    std::fs::write(&path, conf).unwrap();
    let child = Command::new(&binary)
        .arg("-p")
        .arg(dir.path())
        .arg("-e")
        .arg(dir.path().join("error.log"))
        .arg("-c")
        .arg(&path)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {binary}: {e}"));
    let gateway = Gateway {
        child,
        port,
        dir,
        refusals_become_500: true,
    };
    gateway.wait_until_listening("error.log");
    gateway
}

fn start_caddy(app: &TestApp) -> Gateway {
    let binary = std::env::var("BMS_TEST_CADDY").expect("BMS_TEST_CADDY names the caddy binary");
    let dir = tempfile::tempdir().unwrap();
    let (port, upstream) = (free_port(), free_port());
    let recipe = readme_recipe("caddy")
        .replace("api.example.com", &format!("http://127.0.0.1:{port}"))
        .replace("your-upstream:8000", &format!("127.0.0.1:{upstream}"))
        .replace("127.0.0.1:8080", &format!("127.0.0.1:{}", bms_port(app)));
    let d = dir.path().display();
    let conf = format!(
        r#"{{
    admin off
    auto_https off
    storage file_system {d}/data
}}

{recipe}

# The upstream: says whom bms-keys told it the caller is.
http://127.0.0.1:{upstream} {{
    respond "upstream ok for {{http.request.header.X-Bms-Account}}" 200
}}
"#
    );
    let path = dir.path().join("Caddyfile");
    std::fs::write(&path, conf).unwrap();
    let log = std::fs::File::create(dir.path().join("caddy.log")).unwrap();
    let child = Command::new(&binary)
        .args(["run", "--adapter", "caddyfile", "--config"])
        .arg(&path)
        .env("HOME", dir.path())
        .env("XDG_DATA_HOME", dir.path())
        .env("XDG_CONFIG_HOME", dir.path())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {binary}: {e}"));
    let gateway = Gateway {
        child,
        port,
        dir,
        refusals_become_500: false,
    };
    gateway.wait_until_listening("caddy.log");
    gateway
}

/// A refused request dressed up, by client-sent gateway headers, as an allowed one.
struct Attack {
    what: &'static str,
    method: &'static str,
    headers: Vec<(&'static str, String)>,
    target: String,
    /// What the client claims the URI is (the method it claims is always GET).
    forged_uri: String,
}

/// Whether the gateway passed the request on to the upstream.
fn reached_upstream(res: &RawResponse) -> bool {
    res.body.contains("upstream ok")
}

/// Everything a gateway must let through, and everything it must refuse, sent through `gateway`.
async fn attack(app: &TestApp, gateway: &Gateway) {
    let (owner, acc) = app.signed_in_owner("ana@example.com", "Shop").await;
    let (_, acc_b) = app.signed_in_owner("bob@example.com", "Other").await;
    let (_, _, reader) = key_with_code(&owner, &acc, "Reader", &["ads.read"]).await;
    let (_, _, metrics) = key_with_code(&owner, &acc, "Metrics", &["metrics.read"]).await;
    let (_, _, nothing) = key_with_code(&owner, &acc, "Nothing", &[]).await;
    let (key, code, revoked) = key_with_code(&owner, &acc, "Revoked", &["ads.read"]).await;
    let gw = gateway.authority();
    let get = |target: String, headers: Vec<(&'static str, String)>| {
        let gw = gw.clone();
        async move {
            let headers: Vec<(&str, &str)> =
                headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
            raw_http::send(&gw, "GET", &target, &headers, None).await
        }
    };
    let ads = paths::api(&acc, "ads");
    let key_header = |secret: &str| vec![("x-api-key", secret.to_owned())];

    // Allowed, by header and by query; the upstream hears the account from bms-keys only.
    let res = get(ads.clone(), key_header(&reader)).await;
    assert_eq!(res.status, 200, "{res:?}");
    assert_eq!(res.body.trim(), format!("upstream ok for {acc}"));
    let res = get(format!("{ads}?apiKey={reader}"), vec![]).await;
    assert_eq!(res.status, 200, "{res:?}");
    let mut forged_identity = key_header(&reader);
    forged_identity.push(("x-bms-account", acc_b.clone()));
    let res = get(ads.clone(), forged_identity).await;
    assert_eq!(
        res.body.trim(),
        format!("upstream ok for {acc}"),
        "a client's X-Bms-Account never reaches the upstream"
    );

    // Refused: by policy, another account, no code, a disabled code, a method the policy lacks.
    let refusals = [
        (paths::api(&acc, "metrics"), key_header(&reader), 403),
        (paths::api(&acc_b, "ads"), key_header(&reader), 403),
        (ads.clone(), vec![], 401),
        (ads.clone(), key_header("bms_not_a_code"), 401),
    ];
    for (target, headers, status) in refusals {
        let res = get(target.clone(), headers).await;
        assert_eq!(res.status, status, "{target}: {res:?}");
        assert!(!reached_upstream(&res));
    }
    let csrf = owner.csrf_token_of(&paths::keys(&acc)).await;
    let res = owner
        .post_form(
            &paths::code_enabled(&acc, &key, &code),
            &[("csrf_token", &csrf), ("enabled", "false")],
        )
        .await;
    assert_eq!(res.status, actix_web::http::StatusCode::SEE_OTHER);
    let res = get(ads.clone(), key_header(&revoked)).await;
    assert_eq!(
        res.status, 401,
        "disabled in the console: refused on the next request"
    );
    let res = raw_http::send(
        &gw,
        "POST",
        &ads,
        &[("x-api-key", &reader), ("content-type", "application/json")],
        Some("{}"),
    )
    .await;
    assert_eq!(res.status, 403, "ads.read does not allow POST: {res:?}");

    // Every combination of client-sent copies of the gateway headers, in four attacks that each try
    // to make a refused request look like an allowed one.
    let ping = paths::api(&acc, "ping");
    let other_ads = paths::api(&acc_b, "ads");
    let attacks = [
        Attack {
            what: "a code with no policy, posing as ping",
            method: "GET",
            headers: key_header(&nothing),
            target: ads.clone(),
            forged_uri: ping.clone(),
        },
        Attack {
            what: "a code of this account, on another's",
            method: "GET",
            headers: key_header(&reader),
            target: other_ads.clone(),
            forged_uri: ads.clone(),
        },
        Attack {
            what: "no code, the code hidden in a forged URI",
            method: "GET",
            headers: vec![],
            target: other_ads.clone(),
            forged_uri: format!("{ping}?apiKey={reader}"),
        },
        Attack {
            what: "a POST posing as a GET",
            method: "POST",
            headers: key_header(&reader),
            target: ads.clone(),
            forged_uri: ads.clone(),
        },
    ];
    let mut sent = 0;
    for attack in &attacks {
        for combination in 0..16u8 {
            let mut headers = attack.headers.clone();
            for (bit, (name, value)) in [
                ("X-Forwarded-Uri", attack.forged_uri.as_str()),
                ("X-Original-URI", attack.forged_uri.as_str()),
                ("X-Forwarded-Method", "GET"),
                ("X-Original-Method", "GET"),
            ]
            .into_iter()
            .enumerate()
            {
                if combination & (1 << bit) != 0 {
                    headers.push((name, value.to_owned()));
                }
            }
            let headers_ref: Vec<(&str, &str)> =
                headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
            let body = (attack.method == "POST").then_some("{}");
            let res = raw_http::send(&gw, attack.method, &attack.target, &headers_ref, body).await;
            sent += 1;
            assert!(
                res.status != 200 && !reached_upstream(&res),
                "{}, forged headers {combination:04b}: let through ({res:?})",
                attack.what
            );
        }
    }

    // Path tricks, sent as written: a metrics-only code must reach nothing but metrics.
    let metrics_path = paths::api(&acc, "metrics");
    let res = get(metrics_path.clone(), key_header(&metrics)).await;
    assert_eq!(
        res.status, 200,
        "the control: metrics with a metrics code {res:?}"
    );
    for trick in path_tricks(&acc, &acc_b) {
        let res = get(trick.clone(), key_header(&metrics)).await;
        sent += 1;
        assert!(
            res.status != 200 && !reached_upstream(&res),
            "{trick}: let through ({res:?})"
        );
        let expected = if gateway.refusals_become_500 {
            [400, 500]
        } else {
            [400, 400]
        };
        assert!(expected.contains(&res.status), "{trick}: {res:?}");
    }

    // The failure limiter counts the end client, whatever X-Forwarded-For it sends, and never
    // refuses a valid code.
    for n in 0..(bms_keys::verify::FAILURES_PER_IP_PER_MINUTE + 5) {
        let spoofed = vec![
            ("x-api-key", "bms_guess".to_owned()),
            ("x-forwarded-for", format!("10.9.{}.{}", n / 250, n % 250)),
        ];
        get(ads.clone(), spoofed).await;
    }
    let limited = get(ads.clone(), key_header("bms_guess")).await;
    let expected = if gateway.refusals_become_500 {
        500
    } else {
        429
    };
    assert_eq!(
        limited.status, expected,
        "rotating X-Forwarded-For does not escape the limit: {limited:?}"
    );
    let res = get(ads.clone(), key_header(&reader)).await;
    assert_eq!(
        res.status, 200,
        "a valid code is never refused by the failure limiter: {res:?}"
    );
    println!("{sent} attacks through the gateway, none let through");
}

/// Non-canonical spellings of paths a metrics-only code must not reach (and of its own path).
pub fn path_tricks(acc: &str, other: &str) -> Vec<String> {
    let base = format!("/api/v1/accounts/{acc}");
    vec![
        format!("{base}/metrics/../ads"),
        format!("{base}/metrics/%2e%2e/ads"),
        format!("{base}/metrics/%2E%2E/ads"),
        format!("{base}/metrics/.%2e/ads"),
        format!("{base}/metrics/%252e%252e/ads"),
        format!("{base}/metrics/..%2fads"),
        format!("{base}/metrics/..%2Fads"),
        format!("{base}/metrics/..%5cads"),
        format!("{base}/metrics/..\\ads"),
        format!("{base}/metrics/../../{other}/metrics"),
        format!("{base}/./metrics"),
        format!("{base}//metrics"),
        format!("{base}/metrics;x=1"),
        format!("{base}/metrics/..;/ads"),
        format!("{base}/%6detrics"),
        format!("{base}/metrics%00"),
        format!("{base}/metrics%"),
        format!("/api/v1/accounts/{other}/../{acc}/metrics"),
    ]
}

/// Starts bms-keys trusting the gateway (on loopback) and sends every attack through `start`'s gateway.
async fn attack_through(start: fn(&TestApp) -> Gateway) {
    let app = TestApp::spawn_with(Backend::Sqlite, |s| {
        s.trusted_proxies = "127.0.0.1".parse().unwrap();
    })
    .await;
    let gateway = start(&app);
    attack(&app, &gateway).await;
}

#[actix_web::test]
#[cfg_attr(
    not(bms_nginx_tests),
    ignore = "nginx: set BMS_TEST_NGINX to the nginx binary to run"
)]
async fn nginx_with_the_readme_recipe_lets_through_exactly_what_the_policies_allow() {
    attack_through(start_nginx).await;
}

#[actix_web::test]
#[cfg_attr(
    not(bms_caddy_tests),
    ignore = "Caddy: set BMS_TEST_CADDY to the caddy binary to run"
)]
async fn caddy_with_the_readme_recipe_lets_through_exactly_what_the_policies_allow() {
    attack_through(start_caddy).await;
}

#[test]
fn the_readme_recipes_overwrite_every_header_the_forward_endpoint_reads() {
    let nginx = readme_recipe("nginx");
    for header in [
        "X-Original-URI",
        "X-Original-Method",
        "X-Forwarded-Uri",
        "X-Forwarded-Method",
        "X-Forwarded-For",
    ] {
        assert!(
            nginx.contains(&format!("proxy_set_header {header} ")),
            "nginx recipe: {header}"
        );
    }
    let caddy = readme_recipe("caddy");
    for header in [
        "X-Forwarded-Method",
        "X-Forwarded-Uri",
        "-X-Original-URI",
        "-X-Original-Method",
        "X-Forwarded-For",
    ] {
        assert!(
            caddy.contains(&format!("header_up {header}")),
            "Caddy recipe: {header}"
        );
    }
}
