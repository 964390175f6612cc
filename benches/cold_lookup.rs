//! Benchmark: a cold verification lookup (cache miss) with 1,000,000 access codes stored in SQLite
//! (DESIGN.md: p99 ≤ 1 ms).
//!
//! `cargo bench --bench cold_lookup` — seeds a fresh SQLite database with 500,000 keys (each with a
//! policy) and 1,000,000 codes, plus 1,000 codes whose secrets are known, then times
//! `Verifier::load` — pool checkout, the three indexed queries, the cache insert — for digests not in
//! the cache. Prints p50/p99/max over 20,000 lookups, then criterion's estimate.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use bms_keys::config::Settings;
use bms_keys::db::DbConn;
use bms_keys::secrets::{self, KeyMaterial};
use bms_keys::startup;
use bms_keys::verify::Verifier;
use criterion::{Criterion, criterion_group, criterion_main};
use diesel::RunQueryDsl;

const KEYS: u32 = 500_000;
const KNOWN: usize = 1_000;
const SAMPLES: usize = 20_000;

fn exec(conn: &mut DbConn, sql: &str) {
    diesel::sql_query(sql)
        .execute(conn)
        .unwrap_or_else(|e| panic!("{e}: {sql}"));
}

/// Seeds the database; returns the digests of the known codes.
fn seed(conn: &mut DbConn, keys: &KeyMaterial) -> Vec<[u8; 32]> {
    let started = Instant::now();
    let now = "'2026-11-01 00:00:00'";
    let later = "'2027-11-01 00:00:00'";
    exec(conn, "BEGIN");
    exec(
        conn,
        &format!(
            "INSERT INTO accounts (id, name, created_at) VALUES ('acc_benchbenchbench', 'Bench', {now})"
        ),
    );
    exec(
        conn,
        &format!(
            "WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < {last}) \
         INSERT INTO api_keys (id, account_id, name, kind, linked_key_id, created_at, updated_at, last_used_at) \
         SELECT printf('key_%016d', i), 'acc_benchbenchbench', 'Key ' || i, 'own', NULL, {now}, {now}, NULL FROM n",
            last = KEYS + KNOWN as u32 - 1
        ),
    );
    exec(
        conn,
        &format!(
            "WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < {last}) \
         INSERT INTO api_key_policies (api_key_id, policy_name) SELECT printf('key_%016d', i), 'ads.read' FROM n",
            last = KEYS + KNOWN as u32 - 1
        ),
    );
    exec(
        conn,
        &format!(
            "WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < {last}) \
         INSERT INTO access_codes (id, api_key_id, slot, description, enabled, secret_digest, sealed_secret, \
           secret_hint, created_at, expires_at, last_used_at) \
         SELECT printf('code_%016d', i), printf('key_%016d', i / 2), i % 2 + 1, '', 1, randomblob(32), \
           randomblob(90), 'bms_xxxx', {now}, {later}, NULL FROM n",
            last = 2 * KEYS - 1
        ),
    );
    let mut digests = Vec::with_capacity(KNOWN);
    for j in 0..KNOWN {
        let secret = secrets::generate();
        let digest = keys.digest(&secret);
        let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
        exec(
            conn,
            &format!(
                "INSERT INTO access_codes (id, api_key_id, slot, description, enabled, secret_digest, sealed_secret, \
               secret_hint, created_at, expires_at, last_used_at) \
             VALUES (printf('code_k%015d', {j}), printf('key_%016d', {key}), 1, '', 1, x'{hex}', x'00', 'bms_xxxx', {now}, {later}, NULL)",
                key = KEYS as usize + j
            ),
        );
        digests.push(digest);
    }
    exec(conn, "COMMIT");
    exec(conn, "ANALYZE");
    let codes: i64 = diesel::select(diesel::dsl::sql::<diesel::sql_types::BigInt>(
        "(SELECT COUNT(*) FROM access_codes)",
    ))
    .get_result(conn)
    .unwrap();
    eprintln!(
        "seeded {codes} access codes in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    digests
}

fn cold_lookup(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let settings = Settings::local(
        dir.path().join("bms.db").to_string_lossy().into_owned(),
        dir.path().to_path_buf(),
    );
    let pool = startup::open_database(&settings).unwrap();
    let catalogue = bms_keys::policies::Catalogue::load(None).unwrap();
    let keys = KeyMaterial::generate();
    let digests = {
        let mut conn = pool.get().unwrap();
        catalogue.sync(&mut conn).unwrap();
        seed(&mut conn, &keys)
    };
    let verifier = Verifier::new(
        keys,
        pool,
        catalogue.compiled_rules(),
        120,
        bms_keys::limits::DEFAULT_BURST_SHARE,
    );

    let mut times: Vec<Duration> = Vec::with_capacity(SAMPLES);
    for i in 0..SAMPLES {
        verifier.cache.clear();
        let digest = digests[(i * 7919) % KNOWN];
        let started = Instant::now();
        let cached = verifier.load(digest).unwrap();
        times.push(started.elapsed());
        assert!(matches!(cached, bms_keys::verify::cache::Cached::Found(_)));
    }
    times.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "cold lookup with 1,000,000+ codes in SQLite, {SAMPLES} lookups: p50 {:.3} ms, p99 {:.3} ms, max {:.3} ms (bar: p99 <= 1 ms)",
        ms(times[SAMPLES / 2]),
        ms(times[SAMPLES * 99 / 100]),
        ms(times[SAMPLES - 1])
    );

    let mut next = 0usize;
    c.bench_function("cold lookup (1M codes, SQLite)", |b| {
        b.iter(|| {
            verifier.cache.clear();
            next = (next + 1) % KNOWN;
            verifier.load(digests[next]).unwrap()
        })
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(200).measurement_time(Duration::from_secs(5));
    targets = cold_lookup
}
criterion_main!(benches);
