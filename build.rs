//! Tells the test suite which optional services it may use: with `BMS_TEST_POSTGRES_URL` set, the
//! PostgreSQL half of every integration test runs; with `BMS_TEST_NGINX` and `BMS_TEST_CADDY` (the
//! nginx and caddy binaries), the tests through a real nginx and a real Caddy; with `BMS_TEST_CHROMEDRIVER`, the browser tests; with `BMS_TEST_PG_BINDIR`
//! (PostgreSQL's `initdb` and `pg_ctl`), the test that stops a cluster of its own under the running
//! server; with `BMS_TEST_WEBHOOK_PYTHON` (a Python with the `standardwebhooks` package), the webhook
//! deliveries checked by the Standard Webhooks library; with `BMS_TEST_REDIS` (the `redis-server`
//! binary) and nginx and PostgreSQL, the cluster tests. Without them those tests are
//! reported as *ignored*, with the reason, rather than silently passing.

fn main() {
    // The stylesheet and script are embedded by a derive macro that cargo cannot see reading them:
    // without this, editing them would not rebuild the binary that serves them.
    println!("cargo::rerun-if-changed=static");
    // Each optional test dependency: the variable that names it, and the cfg that enables its tests.
    for (variable, cfg) in [
        ("BMS_TEST_POSTGRES_URL", "bms_pg_tests"),
        ("BMS_TEST_NGINX", "bms_nginx_tests"),
        ("BMS_TEST_CADDY", "bms_caddy_tests"),
        ("BMS_TEST_CHROMEDRIVER", "bms_browser_tests"),
        ("BMS_TEST_PG_BINDIR", "bms_pg_fault_tests"),
        ("BMS_TEST_WEBHOOK_PYTHON", "bms_webhook_receiver_tests"),
        ("BMS_TEST_REDIS", "bms_redis_tests"),
    ] {
        println!("cargo::rerun-if-env-changed={variable}");
        println!("cargo::rustc-check-cfg=cfg({cfg})");
        if std::env::var(variable).is_ok_and(|v| !v.trim().is_empty()) {
            println!("cargo::rustc-cfg={cfg}");
        }
    }
}
