//! PostgreSQL going away under a running server: verification fails closed within a second for what
//! it cannot decide from memory, the console shows an error page, and both come back on their own
//! when the database does. The test makes a cluster of its own (`initdb` on a free port in a
//! temporary directory) so that stopping it disturbs no other test.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use actix_web::http::StatusCode;

use crate::helpers::{Backend, Browser, TestApp, TestResponse, free_port, key_with_code};
use crate::paths;

/// A throwaway PostgreSQL cluster, stopped and removed when dropped.
struct OwnCluster {
    bindir: PathBuf,
    dir: tempfile::TempDir,
    port: u16,
    /// PostgreSQL refuses to run as root: then every command runs as the `postgres` user.
    as_postgres: bool,
}

impl OwnCluster {
    fn create() -> OwnCluster {
        let bindir = PathBuf::from(
            std::env::var("BMS_TEST_PG_BINDIR")
                .expect("BMS_TEST_PG_BINDIR names the directory of initdb and pg_ctl"),
        );
        let uid = Command::new("id").arg("-u").output().expect("id -u");
        let as_postgres = String::from_utf8_lossy(&uid.stdout).trim() == "0";
        let dir = tempfile::tempdir().expect("temporary directory");
        if as_postgres {
            let chown = Command::new("chown")
                .args(["postgres:", &dir.path().to_string_lossy()])
                .status()
                .expect("chown");
            assert!(chown.success(), "chown the cluster directory to postgres");
        }
        let cluster = OwnCluster {
            bindir,
            dir,
            port: free_port(),
            as_postgres,
        };
        let data = cluster.data();
        cluster.run(
            "initdb",
            &[
                "-D",
                &data,
                "-U",
                "bms",
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--no-sync",
            ],
        );
        cluster.start();
        cluster
    }

    fn data(&self) -> String {
        self.dir.path().join("data").to_string_lossy().into_owned()
    }

    /// One of PostgreSQL's tools with its arguments, as the `postgres` user when we are root.
    fn command(&self, program: &str, args: &[&str]) -> Command {
        let program = self.bindir.join(program);
        let mut command = if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&program);
            c
        } else {
            Command::new(&program)
        };
        command.args(args);
        command
    }

    fn run(&self, program: &str, args: &[&str]) {
        let output = self
            .command(program, args)
            .output()
            .expect("run a PostgreSQL tool");
        assert!(
            output.status.success(),
            "{program} {args:?}: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }

    fn start(&self) {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
            self.port,
            self.dir.path().display()
        );
        let log = self.dir.path().join("server.log");
        self.run(
            "pg_ctl",
            &[
                "-D",
                &self.data(),
                "-l",
                &log.to_string_lossy(),
                "-o",
                &options,
                "-w",
                "start",
            ],
        );
    }

    fn stop(&self) {
        self.run("pg_ctl", &["-D", &self.data(), "-m", "fast", "-w", "stop"]);
    }

    fn url(&self) -> String {
        format!("postgres://bms@127.0.0.1:{}/postgres", self.port)
    }
}

impl Drop for OwnCluster {
    fn drop(&mut self) {
        let data = self.data();
        let _ = self
            .command("pg_ctl", &["-D", &data, "-m", "immediate", "stop"])
            .output();
    }
}

/// Asks the verify endpoint whether `secret` may list the account's ads.
async fn verify(client: &Browser, account: &str, secret: &str) -> TestResponse {
    let body =
        serde_json::json!({ "key": secret, "method": "GET", "path": paths::api(account, "ads") });
    client
        .request(
            "POST",
            paths::VERIFY,
            &[("content-type", "application/json")],
            Some(body.to_string()),
        )
        .await
}

/// The verdict's `valid` and `code`.
fn verdict(res: &TestResponse) -> (bool, String) {
    let v: serde_json::Value = serde_json::from_str(&res.body).unwrap_or_default();
    (
        v["valid"].as_bool().unwrap_or(false),
        v["code"].as_str().unwrap_or_default().to_owned(),
    )
}

/// Whether the verify endpoint lets `secret` list the account's ads.
async fn allowed(client: &Browser, account: &str, secret: &str) -> bool {
    let res = verify(client, account, secret).await;
    res.status == StatusCode::OK && verdict(&res).0
}

/// Polls `check` every 50 ms until it holds; the time it took, or a failure after 30 s.
async fn time_until<F, Fut>(what: &str, mut check: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = Instant::now();
    while !check().await {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "{what}: not back after 30 s"
        );
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
    }
    started.elapsed()
}

#[actix_web::test]
#[cfg_attr(
    not(bms_pg_fault_tests),
    ignore = "PostgreSQL outage: set BMS_TEST_PG_BINDIR (the directory of initdb and pg_ctl) to run"
)]
async fn postgresql_going_away_fails_closed_and_recovers_without_a_restart() {
    let cluster = OwnCluster::create();
    let app = TestApp::spawn_on(Backend::Postgres, cluster.url()).await;
    let (owner, acc) = app.signed_in_owner("ana@example.com", "Shop").await;
    let (_, _, warm) = key_with_code(&owner, &acc, "Warm", &["ads.read"]).await;
    let (_, _, cold) = key_with_code(&owner, &acc, "Cold", &["ads.read"]).await;
    let client = app.browser();
    // The revocation listener clears the cache when it (re)connects: wait until it listens, so that its
    // first connection (slow on a busy machine) does not forget the code warmed next.
    time_until("the revocation listener", || async {
        app.with_conn(|conn| {
            use diesel::prelude::*;
            #[derive(QueryableByName)]
            struct Listening {
                #[diesel(sql_type = diesel::sql_types::BigInt)]
                n: i64,
            }
            diesel::sql_query(
                "SELECT count(*) AS n FROM pg_stat_activity WHERE query LIKE 'LISTEN %'",
            )
            .get_result::<Listening>(conn)
            .is_ok_and(|l| l.n > 0)
        })
    })
    .await;
    // …and one poll more, so its clear has happened.
    actix_web::rt::time::sleep(Duration::from_millis(300)).await;
    assert!(allowed(&client, &acc, &warm).await);
    let keys_page = paths::keys(&acc);

    cluster.stop();

    // A code the verifier has not seen: it cannot decide, so it refuses, quickly, and says why.
    let started = Instant::now();
    let res = verify(&client, &acc, &cold).await;
    let cold_answer = started.elapsed();
    assert_eq!(res.status, StatusCode::SERVICE_UNAVAILABLE, "{}", res.body);
    assert_eq!(verdict(&res), (false, "unavailable".to_owned()));
    assert!(
        cold_answer < Duration::from_secs(1),
        "the 503 took {cold_answer:?}"
    );
    let res = client.api("GET", &paths::api(&acc, "ads"), &cold).await;
    assert_eq!(res.status, StatusCode::SERVICE_UNAVAILABLE, "{}", res.body);
    assert_eq!(Browser::error_code(&res), "unavailable");
    // A code decided a moment ago is still answered from memory (README: "While the database is away").
    assert!(allowed(&client, &acc, &warm).await);
    // The console says the service is unavailable, on its error page.
    let started = Instant::now();
    let page = owner.get(&keys_page).await;
    let console_answer = started.elapsed();
    assert_eq!(
        page.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        page.body
    );
    assert!(
        page.body.contains("cannot reach its database"),
        "{}",
        page.body
    );
    assert_eq!(
        client.get("/readyz").await.status,
        StatusCode::SERVICE_UNAVAILABLE
    );
    assert_eq!(client.get("/healthz").await.status, StatusCode::OK);

    cluster.start();

    let verification_back = time_until("verification", || async {
        allowed(&client, &acc, &cold).await
    })
    .await;
    let console_back = time_until("the console", || async {
        owner.get(&keys_page).await.status == StatusCode::OK
    })
    .await;
    // And changes work again, reaching the verifier at once.
    let (key, code, fresh) = key_with_code(&owner, &acc, "After", &["ads.read"]).await;
    assert!(allowed(&client, &acc, &fresh).await);
    let csrf = owner.csrf_token_of(&keys_page).await;
    let res = owner
        .post_form(
            &paths::code_enabled(&acc, &key, &code),
            &[("csrf_token", &csrf), ("enabled", "false")],
        )
        .await;
    assert_eq!(res.status, StatusCode::SEE_OTHER, "{}", res.body);
    let res = verify(&client, &acc, &fresh).await;
    assert_eq!(
        verdict(&res),
        (false, "disabled".to_owned()),
        "{}",
        res.body
    );
    println!(
        "PostgreSQL outage: uncached verification answered 503 in {cold_answer:?}, console error page \
         in {console_answer:?}; after the restart verification was back in {verification_back:?} and \
         the console in {console_back:?} more"
    );
}
