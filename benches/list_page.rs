//! Benchmark: the API Keys list page of an account with 10,000 keys (DESIGN.md: ≤ 20 ms server time).
//!
//! `cargo bench --bench list_page` — builds in release mode, seeds a fresh SQLite database with 10,000
//! keys (tags and policies on each), starts the real server with one worker, signs in, and times
//! sequential GETs of the first page, a deep page, a name search and a tag filter over loopback.
//! Prints p50/p90/p99 per case in milliseconds.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use bms_keys::access::AccountAccess;
use bms_keys::api_keys::{self, KeyInput};
use bms_keys::config::Settings;
use bms_keys::onboarding::{self, NewMember};
use bms_keys::startup::{self, Application};
use bms_keys::users::{Role, User};
use diesel::Connection;

const KEYS: usize = 10_000;
const SAMPLES: usize = 300;
const PASSWORD: &str = "benchmark password";

fn seed(settings: &Settings) -> String {
    let pool = startup::open_database(settings).unwrap();
    let mut conn = pool.get().unwrap();
    bms_keys::policies::Catalogue::load(None)
        .unwrap()
        .sync(&mut conn)
        .unwrap();
    let added = onboarding::add_member(
        &mut conn,
        &NewMember {
            email: "bench@example.com".into(),
            display_name: "Bench".into(),
            password: PASSWORD.into(),
            account_name: "Bench Co".into(),
            role: Some(Role::Owner),
            is_staff: false,
        },
        "bench",
    )
    .unwrap();
    let user = User::find_by_email(&mut conn, "bench@example.com")
        .unwrap()
        .unwrap();
    let account_id = bms_keys::ids::AccountId::parse(&added.account.id).unwrap();
    let access = AccountAccess::load(&mut conn, &user, &account_id).unwrap();
    let actor = access.actor(&user, "127.0.0.1");
    let started = Instant::now();
    conn.transaction::<_, bms_keys::error::AppError, _>(|conn| {
        for i in 0..KEYS {
            let input = KeyInput {
                name: format!("Integration key {i:05}"),
                tags: format!("team-{}, env-{}", i % 10, i % 3),
                policies: vec!["ads.read".into(), "metrics.read".into()],
                linked_key_id: String::new(),
                ..KeyInput::default()
            };
            let _ = bms_keys::revocation::commit(conn, |conn| {
                api_keys::create(conn, &access, &actor, &input)
            })?;
        }
        Ok(())
    })
    .unwrap();
    eprintln!(
        "seeded {KEYS} keys in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    added.account.id
}

/// Times each query of the page on its own, to show where the time goes.
fn breakdown(settings: &Settings, account: &str) {
    let pool = bms_keys::db::connect(&settings.database_url).unwrap();
    let mut conn = pool.get().unwrap();
    let mut time = |label: &str, f: &mut dyn FnMut(&mut bms_keys::db::DbConn)| {
        let mut times: Vec<Duration> = (0..100)
            .map(|_| {
                let started = Instant::now();
                f(&mut conn);
                started.elapsed()
            })
            .collect();
        times.sort();
        println!(
            "  {label:<34} p50 {:>6.2} ms   p99 {:>6.2} ms",
            percentile(&times, 0.5),
            percentile(&times, 0.99)
        );
    };
    println!("Query breakdown (direct, no HTTP):");
    let plain = api_keys::ListFilter {
        q: String::new(),
        tag: String::new(),
        page: 1,
        expiring_only: false,
    };
    let search = api_keys::ListFilter {
        q: "key 0500".into(),
        tag: String::new(),
        page: 1,
        expiring_only: false,
    };
    let tagged = api_keys::ListFilter {
        q: String::new(),
        tag: "team-3".into(),
        page: 1,
        expiring_only: false,
    };
    time("list_for_account (first page)", &mut |c| {
        api_keys::list_for_account(c, account, &plain).unwrap();
    });
    time("list_for_account (name search)", &mut |c| {
        api_keys::list_for_account(c, account, &search).unwrap();
    });
    time("list_for_account (tag filter)", &mut |c| {
        api_keys::list_for_account(c, account, &tagged).unwrap();
    });
    time("tags_in_account", &mut |c| {
        api_keys::tags_in_account(c, account).unwrap();
    });
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1000.0
}

fn cookie_pairs(res: &awc::ClientResponse, jar: &mut Vec<String>) {
    for v in res.headers().get_all("set-cookie") {
        let pair = v.to_str().unwrap().split(';').next().unwrap().to_owned();
        let name = pair.split('=').next().unwrap().to_owned();
        jar.retain(|c| !c.starts_with(&format!("{name}=")));
        jar.push(pair);
    }
}

fn main() {
    let dir = tempfile::tempdir().unwrap();
    let settings = Settings::local(
        dir.path().join("bms.db").to_string_lossy().into_owned(),
        dir.path().to_path_buf(),
    );
    let account = seed(&settings);
    breakdown(&settings, &account);
    actix_web::rt::System::new().block_on(async move {
        let app = Application::build(settings).unwrap();
        let base = format!("http://127.0.0.1:{}", app.port());
        actix_web::rt::spawn(app.run_until_stopped());
        let client = awc::Client::builder().disable_redirects().finish();
        let mut jar = Vec::new();
        let mut res = client.get(format!("{base}/login")).send().await.unwrap();
        cookie_pairs(&res, &mut jar);
        let body = String::from_utf8(res.body().await.unwrap().to_vec()).unwrap();
        let token = body.split("name=\"csrf_token\" value=\"").nth(1).unwrap().split('"').next().unwrap();
        let form = format!("email=bench%40example.com&password=benchmark+password&csrf_token={token}");
        let res = client
            .post(format!("{base}/login"))
            .insert_header(("cookie", jar.join("; ")))
            .insert_header(("content-type", "application/x-www-form-urlencoded"))
            .send_body(form)
            .await
            .unwrap();
        assert_eq!(res.status().as_u16(), 303, "sign-in");
        cookie_pairs(&res, &mut jar);
        let cookie = jar.join("; ");

        let list = format!("{base}/accounts/{account}/permissions/api-keys");
        println!("API Keys list page, {KEYS} keys in the account, {SAMPLES} sequential requests each (ms):");
        println!("{:<28} {:>8} {:>8} {:>8}", "case", "p50", "p90", "p99");
        for (case, url) in [
            ("first page", list.clone()),
            ("page 300 of 400", format!("{list}?page=300")),
            ("name search", format!("{list}?q=key+0500")),
            ("tag filter", format!("{list}?tag=team-3")),
        ] {
            let mut times = Vec::with_capacity(SAMPLES);
            for i in 0..SAMPLES + 20 {
                let started = Instant::now();
                let mut res = client.get(&url).insert_header(("cookie", cookie.as_str())).send().await.unwrap();
                let body = res.body().limit(4 << 20).await.unwrap();
                let elapsed = started.elapsed();
                assert_eq!(res.status().as_u16(), 200, "{case}");
                assert!(body.len() > 1000);
                if i >= 20 {
                    times.push(elapsed); // the first 20 warm the caches
                }
            }
            times.sort();
            println!(
                "{case:<28} {:>8.2} {:>8.2} {:>8.2}",
                percentile(&times, 0.5),
                percentile(&times, 0.9),
                percentile(&times, 0.99)
            );
        }
    });
}
