//! Run-time settings. Every one can be given as a command-line flag or an environment variable:
//!
//! | variable               | flag              | default                   | meaning                                   |
//! |------------------------|-------------------|---------------------------|-------------------------------------------|
//! | `BMS_BIND`             | `--bind`          | `127.0.0.1:8080`          | address and port to listen on             |
//! | `BMS_DATABASE_URL`     | `--database-url`  | `<data dir>/bms.db`       | SQLite path, or `postgres://…`            |
//! | `BMS_DATA_DIR`         | `--data-dir`      | `./data`                  | SQLite file and generated key material    |
//! | `BMS_WORKERS`          | `--workers`       | one per core              | HTTP worker threads                       |
//! | `BMS_PUBLIC_URL`       | `--public-url`    | `http://<bind>`           | URL users reach; `https://` makes cookies `Secure` with the `__Host-` prefix |
//! | `BMS_TRUST_PROXY`      | `--trust-proxy`   | off                       | take the client IP from `X-Forwarded-For` (only behind your own proxy) |
//! | `BMS_POLICY_CATALOGUE` | `--policy-catalogue` | the embedded one    | a policy catalogue TOML file to use instead |
//! | `BMS_MASTER_KEY`       | (environment only) | `<data dir>/key-material.toml` | 32 bytes, base64: seals access-code secrets |
//! | `BMS_PEPPER`           | (environment only) | (the same file)   | 32 bytes, base64: keys the secrets' digests |
//! | `BMS_VERIFY_FAILURES_PER_MINUTE` | `--verify-failures-per-minute` | 120 | failed verifications per client IP per minute before 429 |
//! | `RUST_LOG`             |                   | `info`                    | log filter (tracing `EnvFilter` syntax)   |

use std::path::PathBuf;

use crate::keystore::KeyMaterialSource;

/// Everything the application needs to start; built by the CLI or directly by the tests.
#[derive(Debug, Clone)]
pub struct Settings {
    pub bind: String,
    pub database_url: String,
    pub data_dir: PathBuf,
    pub workers: usize,
    pub public_url: String,
    pub trust_proxy: bool,
    /// A policy catalogue file replacing the embedded one.
    pub policy_catalogue: Option<PathBuf>,
    /// Key material given in the environment; otherwise the key file in the data directory is used.
    pub key_material: KeyMaterialSource,
    /// Failed verifications allowed per client IP per minute before it is answered 429.
    pub verify_failures_per_minute: u32,
}

impl Settings {
    /// The SQLite file used when no database URL is given.
    pub fn default_database_url(data_dir: &std::path::Path) -> String {
        data_dir.join("bms.db").to_string_lossy().into_owned()
    }

    /// Cookies are `Secure` (and `__Host-`-prefixed) when users reach the console over HTTPS.
    pub fn secure_cookies(&self) -> bool {
        self.public_url.starts_with("https://")
    }
}
