//! A real nginx in front of a tiny upstream, asking bms-keys through `auth_request` and the forward
//! endpoint (the configuration the README documents). Runs when `BMS_TEST_NGINX` names the nginx
//! binary (`.ci/run` installs and sets it); otherwise it is reported as ignored.

use std::process::{Child, Command};
use std::time::{Duration, Instant};

use actix_web::http::StatusCode;

use crate::helpers::{Backend, TestApp, free_port, key_with_code};

/// The nginx process, stopped when dropped.
struct Nginx(Child);

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The README's nginx configuration, on free loopback ports, with a one-line upstream.
fn config(dir: &std::path::Path, port: u16, upstream: u16, bms: u16) -> String {
    let d = dir.display();
    format!(
        r#"
worker_processes 1;
# One process, so that stopping the test stops all of nginx.
master_process off;
daemon off;
pid {d}/nginx.pid;
error_log {d}/error.log;
events {{ worker_connections 64; }}
http {{
  access_log off;
  client_body_temp_path {d}/body; proxy_temp_path {d}/proxy; fastcgi_temp_path {d}/fastcgi;
  uwsgi_temp_path {d}/uwsgi; scgi_temp_path {d}/scgi;

  # The tiny upstream: says who nginx told it the caller is.
  server {{
    listen 127.0.0.1:{upstream};
    location / {{ return 200 "upstream ok for $http_x_bms_account\n"; }}
  }}

  server {{
    listen 127.0.0.1:{port};

    location /api/ {{
      auth_request /_bms_auth;
      auth_request_set $bms_account $upstream_http_x_bms_account;
      auth_request_set $bms_api_key $upstream_http_x_bms_api_key;
      proxy_set_header X-Bms-Account $bms_account;
      proxy_set_header X-Bms-Api-Key $bms_api_key;
      proxy_pass http://127.0.0.1:{upstream};
    }}

    location = /_bms_auth {{
      internal;
      proxy_pass http://127.0.0.1:{bms}/v1/auth/forward;
      proxy_pass_request_body off;
      proxy_set_header Content-Length "";
      proxy_set_header X-Original-URI $request_uri;
      proxy_set_header X-Original-Method $request_method;
    }}
  }}
}}
"#
    )
}

fn start_nginx(app: &TestApp) -> (Nginx, u16, tempfile::TempDir) {
    let binary = std::env::var("BMS_TEST_NGINX").expect("BMS_TEST_NGINX names the nginx binary");
    let dir = tempfile::tempdir().unwrap();
    let (port, upstream) = (free_port(), free_port());
    let bms = app
        .address
        .rsplit(':')
        .next()
        .unwrap()
        .parse::<u16>()
        .unwrap();
    let conf = dir.path().join("nginx.conf");
    std::fs::write(&conf, config(dir.path(), port, upstream, bms)).unwrap();
    let child = Command::new(&binary)
        .arg("-p")
        .arg(dir.path())
        .arg("-e")
        .arg(dir.path().join("error.log"))
        .arg("-c")
        .arg(&conf)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {binary}: {e}"));
    let nginx = Nginx(child);
    let started = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "nginx did not start: {}",
            std::fs::read_to_string(dir.path().join("error.log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    (nginx, port, dir)
}

#[actix_web::test]
#[cfg_attr(
    not(bms_nginx_tests),
    ignore = "nginx: set BMS_TEST_NGINX to the nginx binary to run"
)]
async fn nginx_lets_through_exactly_what_the_policies_allow() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let (owner, acc) = app.signed_in_owner("ana@example.com", "Shop").await;
    let (key, code, secret) = key_with_code(&owner, &acc, "Through nginx", &["ads.read"]).await;
    let (_nginx, port, _dir) = start_nginx(&app);
    let through = crate::helpers::Browser::for_address(&format!("http://127.0.0.1:{port}"));
    let ads = format!("/api/v1/accounts/{acc}/ads");

    let allowed = through
        .request("GET", &ads, &[("x-api-key", &secret)], None)
        .await;
    assert_eq!(allowed.status, StatusCode::OK, "{}", allowed.body);
    assert_eq!(allowed.body.trim(), format!("upstream ok for {acc}"));
    let by_query = through.get(&format!("{ads}?apiKey={secret}")).await;
    assert_eq!(by_query.status, StatusCode::OK);

    assert_eq!(
        through.get(&ads).await.status,
        StatusCode::UNAUTHORIZED,
        "no code"
    );
    let forbidden = through
        .request("POST", &ads, &[("x-api-key", &secret)], Some("{}".into()))
        .await;
    assert_eq!(
        forbidden.status,
        StatusCode::FORBIDDEN,
        "ads.read does not allow POST"
    );
    let other = through
        .request(
            "GET",
            &format!("/api/v1/accounts/{acc}/metrics"),
            &[("x-api-key", &secret)],
            None,
        )
        .await;
    assert_eq!(other.status, StatusCode::FORBIDDEN);

    // Revoked in the console: refused through nginx on the next request.
    let csrf = owner
        .csrf_token_of(&format!("/accounts/{acc}/permissions/api-keys"))
        .await;
    let res = owner
        .post_form(
            &format!("/accounts/{acc}/permissions/api-keys/{key}/access-codes/{code}/enabled"),
            &[("csrf_token", &csrf), ("enabled", "false")],
        )
        .await;
    assert_eq!(res.status, StatusCode::SEE_OTHER);
    let revoked = through
        .request("GET", &ads, &[("x-api-key", &secret)], None)
        .await;
    assert_eq!(revoked.status, StatusCode::UNAUTHORIZED);
}
