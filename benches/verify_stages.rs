//! Benchmark: what each stage of the warm verification path costs, one by one, in the order a request
//! meets them — reading the code from the headers, the canonical path, format and checksum, the HMAC
//! digest, the cache lookup, the policy match, the rate limiter, the usage and metrics counters, the
//! ping answer with its headers — and the whole decision (`Verifier::start` + its counting) on a warm
//! cache entry, which is everything bms-keys adds to actix-web's own work for a request.
//!
//! `cargo bench --bench verify_stages` (criterion; the README's benchmark section has the figures).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::http::header::{HeaderMap, HeaderName, HeaderValue};
use bms_keys::config::Settings;
use bms_keys::limits::RateLimit;
use bms_keys::limits::keys::{KeyLimiter, Today};
use bms_keys::secrets::{self, KeyMaterial};
use bms_keys::startup;
use bms_keys::verify::cache::{Cached, CodeEntry, PolicySet};
use bms_keys::verify::{Check, Grant, Requirement, Verification, Verifier, canonical};
use bms_keys::web::credentials::{Presented, presented};
use criterion::{Criterion, criterion_group, criterion_main};

const ACCOUNT: &str = "acc_3kTq9ZbWm1xYc0Pa";
const PATH: &str = "/api/v1/accounts/acc_3kTq9ZbWm1xYc0Pa/ads";

/// The headers wrk sends, with the code.
fn request_headers(secret: &str) -> HeaderMap {
    let mut headers = HeaderMap::new();
    for (name, value) in [
        ("host", "127.0.0.1:18710"),
        ("user-agent", "wrk"),
        ("accept", "*/*"),
        ("x-api-key", secret),
    ] {
        headers.insert(
            HeaderName::from_static(name),
            HeaderValue::from_str(value).unwrap(),
        );
    }
    headers
}

/// The `ads.read` policy as the cache holds it.
fn ads_read() -> PolicySet {
    let catalogue = bms_keys::policies::Catalogue::load(None).unwrap();
    let (name, rules) = catalogue
        .compiled_rules()
        .into_iter()
        .find(|(name, _)| name == "ads.read")
        .unwrap();
    PolicySet {
        names: Arc::from(vec![name]),
        rules: Arc::from(rules),
    }
}

fn entry(rate: RateLimit) -> CodeEntry {
    CodeEntry {
        code_id: Arc::from("code_8rPq2LmN4vXz7TbY"),
        key_id: Arc::from("key_5hJk3QwE9rTy1UiO"),
        account_id: Arc::from(ACCOUNT),
        enabled: true,
        expires_at: bms_keys::db::now() + time::Duration::days(365),
        own: ads_read(),
        rate,
        links: Default::default(),
        own_answer: Default::default(),
        own_tally: Default::default(),
        usage_queued: Default::default(),
    }
}

fn stages(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let settings = Settings::local(
        dir.path().join("bms.db").to_string_lossy().into_owned(),
        dir.path().to_path_buf(),
    );
    let pool = startup::open_database(&settings).unwrap();
    let catalogue = bms_keys::policies::Catalogue::load(None).unwrap();
    let keys = KeyMaterial::generate();
    let secret = secrets::generate();
    let digest = keys.digest(&secret);
    let verifier = Arc::new(Verifier::new(
        keys.clone(),
        pool,
        catalogue.compiled_rules(),
        120,
        bms_keys::limits::DEFAULT_BURST_SHARE,
    ));
    // A cache as a busy instance has it: many codes, ours among them.
    for _ in 0..10_000 {
        let other = keys.digest(&secrets::generate());
        let generation = verifier.cache.generation();
        verifier.cache.insert(
            other,
            Cached::Found(Arc::new(entry(RateLimit::NONE))),
            generation,
        );
    }
    let code = Arc::new(entry(RateLimit::NONE));
    let generation = verifier.cache.generation();
    verifier
        .cache
        .insert(digest, Cached::Found(code.clone()), generation);
    let headers = request_headers(&secret);
    let path = canonical(PATH).unwrap();

    let mut group = c.benchmark_group("warm path");
    group.bench_function("1 code from the headers", |b| {
        b.iter(|| match presented(black_box(&headers), black_box("")) {
            Presented::Secret(s) => s.len(),
            _ => 0,
        })
    });
    group.bench_function("2 canonical path", |b| {
        b.iter(|| canonical(black_box(PATH)).is_ok())
    });
    group.bench_function("3 format and checksum", |b| {
        b.iter(|| secrets::check_format(black_box(&secret)).is_ok())
    });
    group.bench_function("4 HMAC digest", |b| {
        b.iter(|| keys.digest(black_box(&secret)))
    });
    group.bench_function("5 cache lookup (10,001 entries)", |b| {
        b.iter(|| {
            verifier
                .cache
                .get(black_box(&digest), Instant::now())
                .is_some()
        })
    });
    group.bench_function("6 policy match", |b| {
        b.iter(|| code.own.allows(black_box("GET"), black_box(PATH), ACCOUNT))
    });
    let limiter = KeyLimiter::new(bms_keys::limits::DEFAULT_BURST_SHARE);
    let limit = RateLimit {
        per_minute: Some(100_000_000),
        per_day: Some(2_000_000_000),
    };
    let today = Today::of(bms_keys::db::now());
    let limited_key: Arc<str> = Arc::from("key_5hJk3QwE9rTy1UiO");
    group.bench_function("7 rate limiter (a key with limits)", |b| {
        b.iter(|| limiter.admit(black_box(&limited_key), limit, today).is_ok())
    });
    let check = Check {
        secret: &secret,
        method: "GET",
        path,
        target_account: Some(ACCOUNT),
        requirement: Requirement::Policy,
        client_ip: Some("127.0.0.1".parse().unwrap()),
    };
    let allowed: Grant = match verifier.start(&check) {
        Verification::Done(Ok(grant)) => grant,
        _ => unreachable!("the code is cached and allowed"),
    };
    group.bench_function("8 usage counter", |b| {
        b.iter(|| {
            verifier
                .usage
                .record(black_box(&allowed), allowed.decided_at)
        })
    });
    group.bench_function("9 metrics (outcome, latency, cache hit)", |b| {
        b.iter(|| {
            verifier.metrics.cache_hit();
            verifier
                .metrics
                .observe(black_box("ok"), black_box(Duration::from_micros(3)))
        })
    });
    // The path reads the monotonic clock twice (start, and elapsed for the histogram); the time of
    // day once a millisecond per worker (`verify::clock`), the third read here.
    group.bench_function("10 clock reads (2 Instants; UTC time, once a ms)", |b| {
        b.iter(|| (Instant::now(), Instant::now(), bms_keys::db::now()))
    });
    group.bench_function("11 ping answer and API headers", |b| {
        b.iter(|| {
            let mut res = bms_keys::web::bms_api::ping(black_box(&allowed));
            bms_keys::web::middleware::add_api_headers(res.headers_mut());
            res
        })
    });
    group.bench_function("the whole decision (stages 3-10)", |b| {
        b.iter(|| match verifier.start(black_box(&check)) {
            Verification::Done(result) => result.is_ok(),
            Verification::Pending(_) => unreachable!("the code is cached"),
        })
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
    targets = stages
}
criterion_main!(benches);
