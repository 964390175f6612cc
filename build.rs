//! Tells the test suite whether a PostgreSQL server is available: with `BMS_TEST_POSTGRES_URL` set, the
//! PostgreSQL half of every integration test runs; without it, those tests are reported as *ignored*
//! (with the reason) rather than silently passing.

fn main() {
    println!("cargo::rerun-if-env-changed=BMS_TEST_POSTGRES_URL");
    println!("cargo::rustc-check-cfg=cfg(bms_pg_tests)");
    if std::env::var("BMS_TEST_POSTGRES_URL").is_ok_and(|v| !v.trim().is_empty()) {
        println!("cargo::rustc-cfg=bms_pg_tests");
    }
}
