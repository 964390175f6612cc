//! Benchmark: a cold verification lookup (cache miss) with 1,000,000 access codes stored, on SQLite and
//! on PostgreSQL (DESIGN.md: p99 ≤ 1 ms), and the lookup of codes that do not exist (a flood of
//! distinct unknown codes: each is one trip to the database, then a negative cache entry).
//!
//! `cargo bench --bench cold_lookup` — seeds a fresh database with 500,000 keys (each with a policy)
//! and 1,000,000 codes, plus 1,000 codes whose secrets are known, then times `Verifier::load` — pool
//! checkout, the indexed reads in one snapshot, the cache insert — for digests not in the cache, known
//! and unknown. Prints p50/p99/max over 20,000 lookups each, then criterion's estimate. PostgreSQL
//! runs when `BMS_BENCH_POSTGRES_URL` (or `BMS_TEST_POSTGRES_URL`) names a server on which the bench
//! may create (and afterwards drop) a database.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use bms_keys::config::Settings;
use bms_keys::db::DbConn;
use bms_keys::secrets::{self, KeyMaterial};
use bms_keys::startup;
use bms_keys::verify::Verifier;
use bms_keys::verify::cache::Cached;
use criterion::{Criterion, criterion_group, criterion_main};
use diesel::{Connection, RunQueryDsl};

const KEYS: u32 = 500_000;
const KNOWN: usize = 1_000;
const SAMPLES: usize = 20_000;

fn exec(conn: &mut DbConn, sql: &str) {
    diesel::sql_query(sql)
        .execute(conn)
        .unwrap_or_else(|e| panic!("{e}: {sql}"));
}

/// What differs between the two backends' SQL for seeding.
#[derive(Clone, Copy, PartialEq)]
enum Dialect {
    Sqlite,
    Postgres,
}

impl Dialect {
    fn name(self) -> &'static str {
        match self {
            Dialect::Sqlite => "SQLite",
            Dialect::Postgres => "PostgreSQL",
        }
    }

    /// `SELECT … FROM n` over `i` in `0..=last`.
    fn series(self, last: u32) -> String {
        match self {
            Dialect::Sqlite => format!(
                "WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < {last})"
            ),
            Dialect::Postgres => {
                format!("WITH n(i) AS (SELECT generate_series(0, {last}))")
            }
        }
    }

    /// `prefix` followed by `expr` zero-padded to `width` digits.
    fn id(self, prefix: &str, width: u32, expr: &str) -> String {
        match self {
            Dialect::Sqlite => format!("printf('{prefix}%0{width}d', {expr})"),
            Dialect::Postgres => format!("'{prefix}' || lpad(({expr})::text, {width}, '0')"),
        }
    }

    /// 32 bytes, different for each `i` (a stored digest).
    fn digest(self) -> &'static str {
        match self {
            Dialect::Sqlite => "randomblob(32)",
            Dialect::Postgres => "decode(md5(i::text) || md5((-1 - i)::text), 'hex')",
        }
    }

    fn blob(self, hex: &str) -> String {
        match self {
            Dialect::Sqlite => format!("x'{hex}'"),
            Dialect::Postgres => format!("decode('{hex}', 'hex')"),
        }
    }

    fn enabled(self) -> &'static str {
        match self {
            Dialect::Sqlite => "1",
            Dialect::Postgres => "true",
        }
    }
}

/// Seeds the database; returns the digests of the known codes.
fn seed(conn: &mut DbConn, keys: &KeyMaterial, sql: Dialect) -> Vec<[u8; 32]> {
    let started = Instant::now();
    let now = "'2026-11-01 00:00:00'";
    let later = "'2027-11-01 00:00:00'";
    let all_keys = KEYS + KNOWN as u32 - 1;
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
            "{series} INSERT INTO api_keys (id, account_id, name, kind, linked_key_id, created_at, updated_at, last_used_at) \
             SELECT {id}, 'acc_benchbenchbench', 'Key ' || i, 'own', NULL, {now}, {now}, NULL FROM n",
            series = sql.series(all_keys),
            id = sql.id("key_", 16, "i"),
        ),
    );
    exec(
        conn,
        &format!(
            "{series} INSERT INTO api_key_policies (api_key_id, policy_name) SELECT {id}, 'ads.read' FROM n",
            series = sql.series(all_keys),
            id = sql.id("key_", 16, "i"),
        ),
    );
    exec(
        conn,
        &format!(
            "{series} INSERT INTO access_codes (id, api_key_id, slot, description, enabled, secret_digest, \
               sealed_secret, secret_hint, created_at, expires_at, last_used_at) \
             SELECT {code}, {key}, i % 2 + 1, '', {enabled}, {digest}, {sealed}, 'bms_xxxx', {now}, {later}, NULL FROM n",
            series = sql.series(2 * KEYS - 1),
            code = sql.id("code_", 16, "i"),
            key = sql.id("key_", 16, "i / 2"),
            enabled = sql.enabled(),
            digest = sql.digest(),
            sealed = sql.blob(&"00".repeat(90)),
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
                 VALUES ('code_k{j:015}', 'key_{key:016}', 1, '', {enabled}, {digest}, {sealed}, 'bms_xxxx', {now}, {later}, NULL)",
                key = KEYS as usize + j,
                enabled = sql.enabled(),
                digest = sql.blob(&hex),
                sealed = sql.blob("00"),
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
        "{}: seeded {codes} access codes in {:.1} s",
        sql.name(),
        started.elapsed().as_secs_f64()
    );
    digests
}

/// p50, p99 and max of `SAMPLES` timed lookups, in milliseconds.
fn percentiles(mut times: Vec<Duration>) -> String {
    times.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    format!(
        "p50 {:.3} ms, p99 {:.3} ms, max {:.3} ms",
        ms(times[times.len() / 2]),
        ms(times[times.len() * 99 / 100]),
        ms(times[times.len() - 1])
    )
}

/// Seeds a database at `database_url`, prints the lookup percentiles, and runs criterion on it.
fn bench_backend(c: &mut Criterion, database_url: String, sql: Dialect) {
    let dir = tempfile::tempdir().unwrap();
    let settings = Settings::local(database_url, dir.path().to_path_buf());
    let pool = startup::open_database(&settings).unwrap();
    let catalogue = bms_keys::policies::Catalogue::load(None).unwrap();
    let keys = KeyMaterial::generate();
    let digests = {
        let mut conn = pool.get().unwrap();
        catalogue.sync(&mut conn).unwrap();
        seed(&mut conn, &keys, sql)
    };
    let verifier = Verifier::new(
        keys.clone(),
        pool,
        catalogue.compiled_rules(),
        120,
        bms_keys::limits::DEFAULT_BURST_SHARE,
    );

    let mut known = Vec::with_capacity(SAMPLES);
    for i in 0..SAMPLES {
        verifier.cache.clear();
        let digest = digests[(i * 7919) % KNOWN];
        let started = Instant::now();
        let cached = verifier.load(digest).unwrap();
        known.push(started.elapsed());
        assert!(matches!(cached, Cached::Found(_)));
    }
    // Distinct codes that were never issued: each misses the cache, is looked up, and is then
    // remembered as unknown (the negative cache).
    let mut unknown = Vec::with_capacity(SAMPLES);
    for _ in 0..SAMPLES {
        let digest = keys.digest(&secrets::generate());
        let started = Instant::now();
        let cached = verifier.load(digest).unwrap();
        unknown.push(started.elapsed());
        assert!(matches!(cached, Cached::Unknown));
        assert!(matches!(
            verifier.cache.get(&digest, std::time::Instant::now()),
            Some(Cached::Unknown)
        ));
    }
    println!(
        "cold lookup with 1,000,000+ codes in {}, {SAMPLES} lookups: {} (bar: p99 <= 1 ms)",
        sql.name(),
        percentiles(known)
    );
    println!(
        "unknown code lookup in {}, {SAMPLES} distinct codes: {}",
        sql.name(),
        percentiles(unknown)
    );

    let mut next = 0usize;
    c.bench_function(&format!("cold lookup (1M codes, {})", sql.name()), |b| {
        b.iter(|| {
            verifier.cache.clear();
            next = (next + 1) % KNOWN;
            verifier.load(digests[next]).unwrap()
        })
    });
}

fn cold_lookup(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let sqlite = dir.path().join("bms.db").to_string_lossy().into_owned();
    bench_backend(c, sqlite, Dialect::Sqlite);

    let Some(admin_url) = std::env::var("BMS_BENCH_POSTGRES_URL")
        .or_else(|_| std::env::var("BMS_TEST_POSTGRES_URL"))
        .ok()
    else {
        println!("PostgreSQL not measured: set BMS_BENCH_POSTGRES_URL (or BMS_TEST_POSTGRES_URL)");
        return;
    };
    bms_keys::db::init_postgres_client();
    let name = format!(
        "bms_bench_{}",
        bms_keys::ids::random_base62(10).to_lowercase()
    );
    let mut admin = diesel::PgConnection::establish(&admin_url).unwrap();
    diesel::sql_query(format!("CREATE DATABASE {name}"))
        .execute(&mut admin)
        .unwrap();
    bench_backend(
        c,
        bms_keys::db::with_database(&admin_url, &name),
        Dialect::Postgres,
    );
    diesel::sql_query(format!("DROP DATABASE {name} WITH (FORCE)"))
        .execute(&mut admin)
        .unwrap();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(200).measurement_time(Duration::from_secs(5));
    targets = cold_lookup
}
criterion_main!(benches);
