//! Durability on SQLite: `kill -9` the server during a stream of creates; after a restart, every create
//! that had been answered exists.

use std::process::Command;
use std::time::Duration;

use actix_web::http::StatusCode;

use crate::helpers::{Browser, PASSWORD, add_user_with_cli, free_port, serve_with_cli};
use crate::paths;

#[actix_web::test]
async fn every_answered_create_survives_kill_dash_nine() {
    let dir = tempfile::tempdir().unwrap();
    add_user_with_cli(dir.path(), "ana@example.com", "Durable");

    let port = free_port();
    let mut server = serve_with_cli(dir.path(), port, &["--workers", "2"]);
    let browser = Browser::for_address(&format!("http://127.0.0.1:{port}"));
    assert_eq!(
        browser.log_in("ana@example.com", PASSWORD).await.status,
        StatusCode::SEE_OTHER
    );
    let keys_url = browser.get(paths::HOME).await.location().to_owned();
    let csrf = browser.csrf_token_of(&keys_url).await;

    // Creates in a stream; the server is killed without warning while they run.
    let mut answered = Vec::new();
    let killer = std::thread::spawn({
        let pid = server.id();
        move || {
            std::thread::sleep(Duration::from_millis(1500));
            let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
        }
    });
    for i in 0..10_000 {
        let name = format!("durable-{i}");
        let req = browser
            .post_form_result(
                &keys_url,
                &[("csrf_token", &csrf), ("mode", "create"), ("name", &name)],
            )
            .await;
        match req {
            Some(res) if res.status == StatusCode::SEE_OTHER => answered.push(name),
            _ => break,
        }
    }
    killer.join().unwrap();
    let _ = server.wait();
    assert!(
        answered.len() > 5,
        "some creates were answered before the kill ({})",
        answered.len()
    );

    // Restart on the same files: every answered create is there.
    let port = free_port();
    let mut server = serve_with_cli(dir.path(), port, &["--workers", "2"]);
    let browser = Browser::for_address(&format!("http://127.0.0.1:{port}"));
    browser.log_in("ana@example.com", PASSWORD).await;
    let pool = bms_keys::db::connect(&dir.path().join("bms.db").to_string_lossy()).unwrap();
    let mut conn = pool.get().unwrap();
    use diesel::{QueryDsl, RunQueryDsl};
    let names: Vec<String> = bms_keys::schema::api_keys::table
        .select(bms_keys::schema::api_keys::name)
        .load(&mut conn)
        .unwrap();
    for name in &answered {
        assert!(
            names.contains(name),
            "{name} was answered but is gone after kill -9"
        );
    }
    println!(
        "creates answered before kill -9: {}, all {} present after restart",
        answered.len(),
        answered.len()
    );
    let _ = server.kill();
    let _ = server.wait();
}
