//! Run-time settings. Every one can be given as a command-line flag or an environment variable:
//!
//! | variable               | flag              | default                   | meaning                                   |
//! |------------------------|-------------------|---------------------------|-------------------------------------------|
//! | `BMS_BIND`             | `--bind`          | `127.0.0.1:8080`          | address and port to listen on             |
//! | `BMS_DATABASE_URL`     | `--database-url`  | `<data dir>/bms.db`       | SQLite path, or `postgres://…`            |
//! | `BMS_DATA_DIR`         | `--data-dir`      | `./data`                  | SQLite file and generated key material    |
//! | `BMS_WORKERS`          | `--workers`       | one per core              | HTTP worker threads                       |
//! | `BMS_PUBLIC_URL`       | `--public-url`    | `http://<bind>`           | URL users reach; `https://` makes cookies `Secure` with the `__Host-` prefix |
//! | `BMS_TRUSTED_PROXIES`  | `--trusted-proxies` | none                    | your proxies' addresses or networks (`127.0.0.1,10.0.0.0/8`): only from them is the client taken from `X-Forwarded-For` (right-most untrusted entry) |
//! | `BMS_BODY_TIMEOUT`     | `--body-timeout`  | `10`                      | seconds to send a request body before 408 and the connection closed |
//! | `BMS_MAX_CONNECTIONS_PER_WORKER` | `--max-connections-per-worker` | 5000 | open connections per worker; more wait in the listen queue |
//! | `BMS_POLICY_CATALOGUE` | `--policy-catalogue` | the embedded one    | a policy catalogue TOML file to use instead |
//! | `BMS_MASTER_KEY`       | (environment only) | `<data dir>/key-material.toml` | 32 bytes, base64: seals access-code secrets |
//! | `BMS_PEPPER`           | (environment only) | (the same file)   | 32 bytes, base64: keys the secrets' digests |
//! | `BMS_VERIFY_FAILURES_PER_MINUTE` | `--verify-failures-per-minute` | 120 | failed verifications per client per minute before its cache misses go through the slow lane |
//! | `BMS_REDIS_URL`        | `--redis-url`     | none                      | a Redis-protocol server where instances share rate limits and throttles |
//! | `BMS_RATE_LIMIT_BURST` | `--rate-limit-burst` | `0.25`                 | share of a key's per-minute limit that may come at once |
//! | `BMS_NO_REVOCATION_LISTENER` | `--no-revocation-listener` | off      | PostgreSQL: revocations by the log alone (for PgBouncer in transaction mode) |
//! | `RUST_LOG`             |                   | `info`                    | log filter (tracing `EnvFilter` syntax)   |

use std::path::PathBuf;

use std::time::Duration;

use crate::keystore::KeyMaterialSource;
use crate::trusted_proxies::TrustedProxies;

/// How long a client may take to send a request body, by default.
pub const BODY_TIMEOUT_SECONDS: u64 = 10;
/// Open connections per worker, by default: bounds what slow clients can hold.
pub const MAX_CONNECTIONS_PER_WORKER: usize = 5000;

/// Everything the application needs to start; built by the CLI or directly by the tests.
#[derive(Debug, Clone)]
pub struct Settings {
    pub bind: String,
    pub database_url: String,
    pub data_dir: PathBuf,
    pub workers: usize,
    pub public_url: String,
    /// The peers trusted to report the client's address in `X-Forwarded-For`.
    pub trusted_proxies: TrustedProxies,
    /// How long a client may take to send a request body before 408.
    pub body_timeout: Duration,
    pub max_connections_per_worker: usize,
    /// A policy catalogue file replacing the embedded one.
    pub policy_catalogue: Option<PathBuf>,
    /// Key material given in the environment; otherwise the key file in the data directory is used.
    pub key_material: KeyMaterialSource,
    /// Failed verifications per client per minute before its cache misses go through the slow lane.
    pub verify_failures_per_minute: u32,
    /// GitHub's secret-scanning public keys (the JSON GitHub serves); without it the secret-scanning
    /// endpoint answers 404.
    pub github_keys: Option<crate::secret_scanning::KeySource>,
    /// How webhooks are delivered: where to (the SSRF guard's allowances), retries, timeouts.
    pub webhooks: crate::webhooks::DeliverySettings,
    /// The shared store for limits and throttles; without it each instance counts alone.
    pub redis_url: Option<String>,
    /// The share of a key's per-minute limit that may come at once.
    pub rate_limit_burst: f64,
    /// Whether to `LISTEN` for revocations on PostgreSQL (the revocation log is read either way).
    pub revocation_listener: bool,
}

impl Settings {
    /// The defaults for a server on loopback with this database and data directory: one worker, no
    /// trusted proxies, the embedded catalogue, key material from the data directory.
    pub fn local(database_url: String, data_dir: PathBuf) -> Self {
        Self {
            bind: "127.0.0.1:0".to_owned(),
            database_url,
            data_dir,
            workers: 1,
            public_url: "http://127.0.0.1".to_owned(),
            trusted_proxies: TrustedProxies::default(),
            body_timeout: Duration::from_secs(BODY_TIMEOUT_SECONDS),
            max_connections_per_worker: MAX_CONNECTIONS_PER_WORKER,
            policy_catalogue: None,
            key_material: KeyMaterialSource::default(),
            verify_failures_per_minute: crate::verify::FAILURES_PER_IP_PER_MINUTE,
            github_keys: None,
            webhooks: crate::webhooks::DeliverySettings::default(),
            redis_url: None,
            rate_limit_burst: crate::limits::DEFAULT_BURST_SHARE,
            revocation_listener: true,
        }
    }

    /// The SQLite file used when no database URL is given.
    pub fn default_database_url(data_dir: &std::path::Path) -> String {
        data_dir.join("bms.db").to_string_lossy().into_owned()
    }

    /// Cookies are `Secure` (and `__Host-`-prefixed) when users reach the console over HTTPS.
    pub fn secure_cookies(&self) -> bool {
        self.public_url.starts_with("https://")
    }
}
