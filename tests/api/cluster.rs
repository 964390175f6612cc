//! Many instances, one truth: three real `bms-keys serve` processes on one PostgreSQL database and
//! one Redis, behind nginx (the load balancer of `scripts/cluster/nginx.conf`, as `scripts/cluster.sh`
//! runs it). Per-key limits, the sign-in throttle and the failure limiter count across instances;
//! revocations reach every instance with the listeners working and with them killed; Redis going
//! away and coming back, and an instance killed, cost no request a 5xx.
//!
//! PostgreSQL only (SQLite is the one-machine default). Runs when `BMS_TEST_POSTGRES_URL`,
//! `BMS_TEST_REDIS` (the `redis-server` binary) and `BMS_TEST_NGINX` are set (`.ci/run` installs and
//! sets them); otherwise reported as ignored. The in-process tests at the end need PostgreSQL only.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use actix_web::http::StatusCode;

use crate::helpers::{
    Backend, Browser, PASSWORD, TestApp, free_port, key_with_code, serve_with_cli, wait_for_port,
};
use crate::paths;

/// Instances in the cluster.
const INSTANCES: usize = 3;

/// A `redis-server` of the test's own on a loopback port, without persistence.
struct Redis {
    child: Option<Child>,
    port: u16,
}

impl Redis {
    fn start() -> Redis {
        let mut redis = Redis {
            child: None,
            port: free_port(),
        };
        redis.restart();
        redis
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// Starts it (again) on its port; returns once it accepts connections.
    fn restart(&mut self) {
        let binary = std::env::var("BMS_TEST_REDIS").expect("BMS_TEST_REDIS names redis-server");
        let child = Command::new(&binary)
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--loglevel", "warning"])
            .stdout(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {binary}: {e}"));
        self.child = Some(child);
        wait_for_port(self.port, "redis-server");
    }

    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Three instances behind nginx, on the database of an in-process app (the console the tests drive).
struct Cluster {
    app: TestApp,
    redis: Redis,
    instances: Vec<(Child, u16)>,
    nginx: Option<Child>,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for (child, _) in &mut self.instances {
            let _ = child.kill();
            let _ = child.wait();
        }
        if let Some(nginx) = &mut self.nginx {
            let _ = nginx.kill();
            let _ = nginx.wait();
        }
    }
}

impl Cluster {
    /// Starts Redis, the instances (with `extra` flags) and nginx in front of them.
    async fn start(extra: &[&str]) -> Cluster {
        let app = TestApp::spawn(Backend::Postgres).await;
        let redis = Redis::start();
        let redis_url = redis.url();
        let database_url = app.database_url.clone();
        let mut flags = vec![
            "--database-url",
            &database_url,
            "--redis-url",
            &redis_url,
            "--trusted-proxies",
            "127.0.0.1",
            "--workers",
            "1",
        ];
        flags.extend_from_slice(extra);
        let data_dir = app.state.settings.data_dir.clone();
        // Owned by the cluster as soon as each starts: a failure further on stops them all.
        let mut cluster = Cluster {
            app,
            redis,
            instances: Vec::new(),
            nginx: None,
            port: free_port(),
            _dir: tempfile::tempdir().unwrap(),
        };
        for _ in 0..INSTANCES {
            let port = free_port();
            cluster
                .instances
                .push((serve_with_cli(&data_dir, port, &flags), port));
        }
        let (dir, port) = (cluster._dir.path(), cluster.port);
        let upstreams: String = cluster
            .instances
            .iter()
            .map(|(_, p)| format!("    server 127.0.0.1:{p} max_fails=0;\n"))
            .collect();
        let conf = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/scripts/cluster/nginx.conf"
        ))
        .unwrap()
        .replace("@DIR@", &dir.display().to_string())
        .replace("@PORT@", &port.to_string())
        .replace("@UPSTREAMS@", upstreams.trim_end());
        let conf_path = dir.join("nginx.conf");
        std::fs::write(&conf_path, conf).unwrap();
        let binary = std::env::var("BMS_TEST_NGINX").expect("BMS_TEST_NGINX names nginx");
        let nginx = Command::new(&binary)
            .arg("-p")
            .arg(dir)
            .arg("-e")
            .arg(dir.join("error.log"))
            .arg("-c")
            .arg(&conf_path)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {binary}: {e}"));
        cluster.nginx = Some(nginx);
        wait_for_port(port, "nginx");
        cluster
    }

    /// Through the load balancer.
    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// One instance, directly.
    fn instance(&self, i: usize) -> String {
        format!("http://127.0.0.1:{}", self.instances[i].1)
    }
}

/// A plain client: a request that cannot be sent is counted, not a panic.
fn client() -> awc::Client {
    awc::Client::builder()
        .timeout(Duration::from_secs(10))
        .finish()
}

/// The status of `GET url` with the code, or `None` when no answer came.
async fn status_of(client: &awc::Client, url: &str, secret: &str) -> Option<u16> {
    match client
        .get(url)
        .insert_header(("x-api-key", secret))
        .send()
        .await
    {
        Ok(mut res) => {
            let _ = res.body().await;
            Some(res.status().as_u16())
        }
        Err(_) => None,
    }
}

/// Percentiles of a sample, in milliseconds: (p50, p99, max).
fn percentiles(samples: &mut [Duration]) -> (f64, f64, f64) {
    samples.sort();
    let at = |q: f64| {
        let i = ((samples.len() as f64 - 1.0) * q).round() as usize;
        samples[i].as_secs_f64() * 1000.0
    };
    (at(0.5), at(0.99), at(1.0))
}

macro_rules! cluster_test {
    ($(async fn $name:ident() $body:block)*) => {$(
        #[actix_web::test]
        #[cfg_attr(
            not(all(bms_pg_tests, bms_redis_tests, bms_nginx_tests)),
            ignore = "cluster: set BMS_TEST_POSTGRES_URL, BMS_TEST_REDIS and BMS_TEST_NGINX to run"
        )]
        async fn $name() $body
    )*};
}

cluster_test! {
    async fn a_key_limit_is_shared_by_every_instance() {
        // 600 a minute, a tenth at once: a burst of 60, then 10 a second.
        let cluster = Cluster::start(&["--rate-limit-burst", "0.1"]).await;
        let (owner, acc) = cluster.app.signed_in_owner("ana@example.com", "Shop").await;
        let csrf = owner.csrf_token_of(&paths::new_key(&acc, "create")).await;
        let res = owner.post_form(&paths::keys(&acc), &[("csrf_token", &csrf), ("mode", "create"), ("name", "Limited"), ("tags", ""), ("rate_per_minute", "600")]).await;
        assert_eq!(res.status, StatusCode::SEE_OTHER, "{}", res.body);
        let key = res.location().rsplit('/').next().unwrap().to_owned();
        let (_, secret) = owner.create_code(&acc, &key, "").await;
        let url = format!("{}/api/v1/accounts/{acc}/ping", cluster.url());
        // Four clients, round robin over the instances, for three seconds.
        let started = Instant::now();
        let flood = |_| {
            let (url, secret) = (url.clone(), secret.clone());
            async move {
                let client = client();
                let (mut ok, mut limited, mut other) = (0u32, 0u32, 0u32);
                while started.elapsed() < Duration::from_secs(3) {
                    match status_of(&client, &url, &secret).await {
                        Some(200) => ok += 1,
                        Some(429) => limited += 1,
                        _ => other += 1,
                    }
                }
                (ok, limited, other)
            }
        };
        let results = futures_util::future::join_all((0..4).map(flood)).await;
        let elapsed = started.elapsed().as_secs_f64();
        let ok: u32 = results.iter().map(|r| r.0).sum();
        let limited: u32 = results.iter().map(|r| r.1).sum();
        let other: u32 = results.iter().map(|r| r.2).sum();
        assert_eq!(other, 0, "every answer is 200 or 429");
        // One limiter would let in the burst and the rate; each instance counts locally between
        // syncs (every 100 ms), so N instances may overshoot by (N−1)·burst + N·(rate·0.1 s).
        let one_limiter = 60.0 + 10.0 * elapsed;
        let bound = one_limiter + 2.0 * 60.0 + 3.0 * 1.0;
        println!("cluster rate limit: {ok} allowed, {limited} refused in {elapsed:.2}s; one limiter: {one_limiter:.0}, overshoot {:.0} (bound {:.0})", f64::from(ok) - one_limiter, bound - one_limiter);
        assert!(f64::from(ok) <= bound, "{ok} allowed, bound {bound:.0}");
        assert!(f64::from(ok) >= 60.0, "the burst at least: {ok}");
        assert!(limited > 0);
        // Three separate limiters would have let in three times one limiter's share.
        assert!(f64::from(ok) < 3.0 * one_limiter);
    }

    async fn the_sign_in_throttle_counts_every_instance() {
        let cluster = Cluster::start(&[]).await;
        cluster.app.add_user("ana@example.com", PASSWORD, "Shop", bms_keys::users::Role::Owner, false);
        // Five wrong passwords, spread over the instances…
        for attempt in 0..5 {
            let browser = Browser::for_address(&cluster.instance(attempt % INSTANCES));
            let res = browser.log_in("ana@example.com", "wrong password").await;
            assert_eq!(res.status, StatusCode::UNAUTHORIZED, "attempt {attempt}");
        }
        // …and the sixth, on the third instance, is refused before the password is even checked.
        let browser = Browser::for_address(&cluster.instance(2));
        let res = browser.log_in("ana@example.com", PASSWORD).await;
        assert_eq!(res.status, StatusCode::TOO_MANY_REQUESTS, "{}", res.body);
        assert!(res.header("retry-after").is_some());
    }

    async fn the_failure_limiter_counts_every_instance() {
        let cluster = Cluster::start(&["--verify-failures-per-minute", "30"]).await;
        let (owner, acc) = cluster.app.signed_in_owner("ana@example.com", "Shop").await;
        let (_, _, secret) = key_with_code(&owner, &acc, "Reader", &["ads.read"]).await;
        let client = client();
        let mut failures = 0;
        let first_refusal = loop {
            let i = failures % INSTANCES;
            let url = format!("{}/api/v1/accounts/{acc}/ping", cluster.instance(i));
            match status_of(&client, &url, "bms_malformed").await {
                Some(401) => failures += 1,
                Some(429) => break failures,
                other => panic!("{other:?}"),
            }
            assert!(failures < 200, "never limited");
            tokio::time::sleep(Duration::from_millis(5)).await;
        };
        println!("failure limiter: first 429 after {first_refusal} failures (limit 30, 3 instances)");
        // Three instances counting alone would allow 3 × 30 failures.
        assert!((30..60).contains(&first_refusal), "{first_refusal}");
        // A valid code from the same client still gets through.
        let url = format!("{}/api/v1/accounts/{acc}/ping", cluster.url());
        assert_eq!(status_of(&client, &url, &secret).await, Some(200));
    }

    async fn revocations_reach_every_instance_even_with_the_listeners_killed() {
        let cluster = Cluster::start(&[]).await;
        let (owner, acc) = cluster.app.signed_in_owner("ana@example.com", "Shop").await;
        let (key, code, secret) = key_with_code(&owner, &acc, "Reader", &["ads.read"]).await;
        let rounds: usize = std::env::var("BMS_CLUSTER_REVOCATIONS").ok().and_then(|v| v.parse().ok()).unwrap_or(25);
        let csrf = owner.csrf_token_of(&paths::keys(&acc)).await;
        let urls: Vec<String> = (0..INSTANCES).map(|i| format!("{}/api/v1/accounts/{acc}/ping", cluster.instance(i))).collect();
        for killing in [false, true] {
            let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
            let killer = killing.then(|| {
                let (stop, url) = (stop.clone(), cluster.app.database_url.clone());
                std::thread::spawn(move || kill_listeners_until(&url, &stop))
            });
            let mut latencies: Vec<Duration> = Vec::new();
            for _ in 0..rounds {
                // Every instance has the code cached and allowed…
                for url in &urls {
                    wait_for_status(url, &secret, 200).await;
                }
                // …the console disables it, and from its answer on, each instance is timed.
                owner.set_code_enabled(&acc, &key, &code, &csrf, false).await;
                let answered = Instant::now();
                let secret = secret.as_str();
                let refused = futures_util::future::join_all(urls.iter().map(|url| async move {
                    wait_for_status(url, secret, 401).await;
                    answered.elapsed()
                }))
                .await;
                latencies.extend(refused);
                owner.set_code_enabled(&acc, &key, &code, &csrf, true).await;
            }
            stop.store(true, std::sync::atomic::Ordering::Relaxed);
            let killed = killer.map(|k| k.join().unwrap()).unwrap_or(0);
            let (p50, p99, max) = percentiles(&mut latencies);
            println!("revocation ({} refusals, listeners killed {killed} times): p50 {p50:.0} ms, p99 {p99:.0} ms, max {max:.0} ms", latencies.len());
            assert!(max < 2000.0, "every instance refuses within the promise: max {max:.0} ms");
            if killing {
                assert!(killed > 0, "the listeners were killed during the run");
            }
        }
    }

    async fn redis_and_an_instance_going_away_cost_no_request_a_5xx() {
        let mut cluster = Cluster::start(&[]).await;
        let (owner, acc) = cluster.app.signed_in_owner("ana@example.com", "Shop").await;
        let csrf = owner.csrf_token_of(&paths::new_key(&acc, "create")).await;
        let res = owner.post_form(&paths::keys(&acc), &[("csrf_token", &csrf), ("mode", "create"), ("name", "Limited"), ("tags", ""), ("policy", "ads.read"), ("rate_per_minute", "1000000")]).await;
        assert_eq!(res.status, StatusCode::SEE_OTHER, "{}", res.body);
        let key = res.location().rsplit('/').next().unwrap().to_owned();
        let (_, secret) = owner.create_code(&acc, &key, "").await;
        let url = format!("{}/api/v1/accounts/{acc}/ads", cluster.url());
        let started = Instant::now();
        let load = |_| {
            let (url, secret) = (url.clone(), secret.clone());
            async move {
                let client = client();
                let mut seen: std::collections::BTreeMap<Option<u16>, u32> = Default::default();
                while started.elapsed() < Duration::from_secs(5) {
                    *seen.entry(status_of(&client, &url, &secret).await).or_default() += 1;
                }
                seen
            }
        };
        let load = futures_util::future::join_all((0..4).map(load));
        let events = async {
            tokio::time::sleep(Duration::from_millis(1000)).await;
            cluster.redis.stop();
            // Sign-in keeps working on local counts while the store is away.
            let browser = Browser::for_address(&cluster.url());
            let res = browser.log_in("ana@example.com", "wrong password").await;
            assert_eq!(res.status, StatusCode::UNAUTHORIZED);
            tokio::time::sleep(Duration::from_millis(1000)).await;
            let metrics = Browser::for_address(&cluster.instance(0)).get("/metrics").await.body;
            cluster.redis.restart();
            tokio::time::sleep(Duration::from_millis(500)).await;
            let (mut child, _) = cluster.instances.remove(2);
            child.kill().unwrap();
            child.wait().unwrap();
            metrics
        };
        let (results, metrics_while_down) = tokio::join!(load, events);
        let mut total: std::collections::BTreeMap<Option<u16>, u32> = Default::default();
        for seen in results {
            for (status, n) in seen {
                *total.entry(status).or_default() += n;
            }
        }
        println!("under load with Redis stopped and restarted and an instance killed: {total:?}");
        assert_eq!(total.keys().copied().collect::<Vec<_>>(), vec![Some(200)], "only 200s: {total:?}");
        assert!(metrics_while_down.contains("bms_shared_store_up 0"), "{metrics_while_down}");
        // Back to shared counting once Redis is back.
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let metrics = Browser::for_address(&cluster.instance(0)).get("/metrics").await.body;
        assert!(metrics.contains("bms_shared_store_up 1"), "{metrics}");
        assert!(!metrics.contains("bms_shared_store_fallbacks_total 0\n"), "{metrics}");
    }
}

/// Waits (polling as fast as answers come) until the code gets `status` from `url`.
async fn wait_for_status(url: &str, secret: &str, status: u16) {
    let client = client();
    let started = Instant::now();
    loop {
        if status_of(&client, url, secret).await == Some(status) {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{url} never answered {status}"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// Terminates every revocation listener's connection to the database, again and again, until told to
/// stop; answers how many it killed.
fn kill_listeners_until(database_url: &str, stop: &std::sync::atomic::AtomicBool) -> usize {
    use diesel::{Connection, RunQueryDsl};
    let mut conn = diesel::PgConnection::establish(database_url).unwrap();
    let mut killed = 0;
    #[derive(diesel::QueryableByName)]
    struct Killed {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
        let rows: Vec<Killed> = diesel::sql_query(format!(
            "SELECT count(pg_terminate_backend(pid)) AS n FROM pg_stat_activity \
             WHERE application_name = '{}' AND datname = current_database()",
            bms_keys::verify::listener::LISTENER_NAME
        ))
        .load(&mut conn)
        .unwrap();
        killed += rows
            .first()
            .map_or(0, |r| usize::try_from(r.n).unwrap_or(0));
        std::thread::sleep(Duration::from_millis(150));
    }
    killed
}

/// Without any listener (as behind PgBouncer in transaction mode), the revocation log alone brings a
/// revocation to another instance.
#[actix_web::test]
#[cfg_attr(
    not(bms_pg_tests),
    ignore = "PostgreSQL: set BMS_TEST_POSTGRES_URL to run"
)]
async fn the_revocation_log_alone_reaches_an_instance_that_does_not_listen() {
    let app = TestApp::spawn(Backend::Postgres).await;
    let deaf = app
        .another_instance(|s| s.revocation_listener = false)
        .await;
    let (owner, acc) = app.signed_in_owner("ana@example.com", "Shop").await;
    let (key, code, secret) = key_with_code(&owner, &acc, "Reader", &["ads.read"]).await;
    let url = format!("{}/api/v1/accounts/{acc}/ping", deaf.address);
    wait_for_status(&url, &secret, 200).await;
    let csrf = owner.csrf_token_of(&paths::keys(&acc)).await;
    owner
        .set_code_enabled(&acc, &key, &code, &csrf, false)
        .await;
    let answered = Instant::now();
    wait_for_status(&url, &secret, 401).await;
    let took = answered.elapsed();
    println!("revocation by the log alone: {} ms", took.as_millis());
    // Well inside the cache's minute: it came by the log (read every 250 ms), not by expiry.
    assert!(took < Duration::from_secs(2), "{took:?}");
    // The log holds the key, numbered.
    let logged: Vec<(i64, String)> =
        app.with_conn(|c| bms_keys::revocation::log_after(c, 0, 100).unwrap());
    assert!(logged.iter().any(|(_, k)| *k == key), "{logged:?}");
    assert!(
        logged.windows(2).all(|w| w[1].0 == w[0].0 + 1),
        "numbered without gaps: {logged:?}"
    );
}
