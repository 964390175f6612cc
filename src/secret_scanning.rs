//! GitHub secret scanning's partner contract: GitHub posts the `bms_` tokens it found in public code,
//! signed with ECDSA P-256 / SHA-256 over the raw body (`Github-Public-Key-Signature`, base64 DER) by the
//! key named in `Github-Public-Key-Identifier`, from the key set GitHub publishes (its JSON, from a
//! file or fetched from its URL). A verified, first-seen alert revokes the codes like any leak report
//! (`crate::exposure`); the answer labels each token for GitHub.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Mutex, RwLock};
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use diesel::prelude::*;
use p256::ecdsa::signature::Verifier as _;
use p256::ecdsa::{Signature, VerifyingKey};
use p256::pkcs8::DecodePublicKey;
use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::db::{self, DbConn};
use crate::schema::secret_scanning_alerts;

/// How long a processed alert is remembered (a replay within it is refused).
pub const REPLAY_WINDOW: time::Duration = time::Duration::days(30);

#[derive(Deserialize)]
struct KeySetFile {
    public_keys: Vec<PublicKeyEntry>,
}

#[derive(Deserialize)]
struct PublicKeyEntry {
    key_identifier: String,
    key: String,
}

/// Where GitHub's key set comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    /// A file holding the JSON (kept up to date by the operator).
    File(PathBuf),
    /// GitHub's URL for it (`https://api.github.com/meta/public_keys/secret_scanning`), fetched at
    /// start-up and again for a key id not seen yet — at most once a minute, so forged alerts with
    /// made-up key ids cannot make us hammer it.
    Url(String),
}

/// The shortest time between two fetches of the key set from its URL.
const REFETCH_INTERVAL: Duration = Duration::from_secs(60);
/// How long fetching the key set may take.
const FETCH_TIMEOUT: Duration = Duration::from_secs(10);

/// GitHub's signing keys, by identifier, from the configured source (read again when an alert names a
/// key it does not have: GitHub rotates its keys).
#[derive(Debug)]
pub struct GithubKeys {
    source: KeySource,
    keys: RwLock<HashMap<String, VerifyingKey>>,
    last_read: Mutex<Instant>,
}

impl GithubKeys {
    /// Reads the key set; an unreadable source or key is an error at start-up, not a silent empty set.
    pub fn load(source: &KeySource) -> Result<Self, String> {
        let keys = read(source)?;
        Ok(GithubKeys {
            source: source.clone(),
            keys: RwLock::new(keys),
            last_read: Mutex::new(Instant::now()),
        })
    }

    /// Reads the set again, unless it was fetched from its URL less than a minute ago.
    fn refresh(&self) {
        let Ok(mut last) = self.last_read.lock() else {
            return;
        };
        if matches!(self.source, KeySource::Url(_)) && last.elapsed() < REFETCH_INTERVAL {
            return;
        }
        *last = Instant::now();
        match read(&self.source) {
            Ok(fresh) => {
                if let Ok(mut keys) = self.keys.write() {
                    *keys = fresh;
                }
            }
            Err(e) => tracing::warn!("GitHub key set not refreshed: {e}"),
        }
    }

    /// Whether `signature` (base64 of a DER ECDSA signature) over `body` is valid for the key
    /// `key_id`.
    pub fn verify(&self, key_id: &str, signature: &str, body: &[u8]) -> bool {
        let Ok(der) = STANDARD.decode(signature.trim()) else {
            return false;
        };
        let Ok(signature) = Signature::from_der(&der) else {
            return false;
        };
        let known = self.key(key_id).or_else(|| {
            // A key we do not know yet: the set may have been rotated since it was read.
            self.refresh();
            self.key(key_id)
        });
        known.is_some_and(|key| key.verify(body, &signature).is_ok())
    }

    fn key(&self, key_id: &str) -> Option<VerifyingKey> {
        self.keys.read().ok()?.get(key_id).copied()
    }
}

fn read(source: &KeySource) -> Result<HashMap<String, VerifyingKey>, String> {
    let (text, name) = match source {
        KeySource::File(path) => (
            std::fs::read_to_string(path)
                .map_err(|e| format!("cannot read the GitHub key set {}: {e}", path.display()))?,
            path.display().to_string(),
        ),
        KeySource::Url(url) => (fetch(url)?, url.clone()),
    };
    let file: KeySetFile = serde_json::from_str(&text)
        .map_err(|e| format!("the GitHub key set {name} is not its JSON: {e}"))?;
    file.public_keys
        .into_iter()
        .map(|entry| {
            VerifyingKey::from_public_key_pem(&entry.key)
                .map(|key| (entry.key_identifier.clone(), key))
                .map_err(|e| format!("GitHub key {}: {e}", entry.key_identifier))
        })
        .collect()
}

/// Fetches the key set from its URL, with a timeout; redirects are not followed.
fn fetch(url: &str) -> Result<String, String> {
    let tls = native_tls::TlsConnector::new().map_err(|e| format!("no TLS client: {e}"))?;
    let agent = ureq::AgentBuilder::new()
        .timeout(FETCH_TIMEOUT)
        .redirects(0)
        .tls_connector(std::sync::Arc::new(tls))
        .build();
    agent
        .get(url)
        .set("accept", "application/json")
        .call()
        .map_err(|e| format!("cannot fetch the GitHub key set {url}: {e}"))?
        .into_string()
        .map_err(|e| format!("cannot read the GitHub key set {url}: {e}"))
}

/// Records a verified alert's body; `false` if it was seen within the replay window (a replay). In the
/// transaction that acts on it.
pub fn first_sighting(conn: &mut DbConn, body: &[u8]) -> QueryResult<bool> {
    let now = db::now();
    diesel::delete(
        secret_scanning_alerts::table
            .filter(secret_scanning_alerts::received_at.lt(now - REPLAY_WINDOW)),
    )
    .execute(conn)?;
    let hash: String = Sha256::digest(body)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    // Per backend (the two-backend connection has no upsert): a concurrent copy of the same alert
    // waits for this transaction, then inserts nothing — and is a replay.
    macro_rules! record_on {
        ($c:expr) => {
            diesel::insert_into(secret_scanning_alerts::table)
                .values((
                    secret_scanning_alerts::body_sha256.eq(&hash),
                    secret_scanning_alerts::received_at.eq(now),
                ))
                .on_conflict_do_nothing()
                .execute($c)?
        };
    }
    let inserted = match conn {
        DbConn::Sqlite(c) => record_on!(c),
        DbConn::Postgres(c) => record_on!(c),
    };
    Ok(inserted == 1)
}
