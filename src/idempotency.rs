//! `Idempotency-Key` on the management API's POSTs: the first answer is stored (sealed) in the same
//! transaction as the change it answers, so a retry with the same key and the same request replays it
//! and never acts twice — across instances, since the store is the database. Concurrent requests with
//! one key are serialised by the primary key: the second waits for the first's commit, then replays.

use diesel::prelude::*;
use sha2::{Digest, Sha256};
use time::Duration;

use crate::db::{self, DbConn};
use crate::schema::idempotency_keys;
use crate::secrets::KeyMaterial;

/// How long an answer is replayed.
pub const RETENTION: Duration = Duration::hours(24);
/// The longest key accepted.
pub const MAX_KEY_LEN: usize = 255;

/// A request made with an idempotency key.
#[derive(Debug, Clone)]
pub struct Keyed {
    pub account_id: String,
    pub access_code_id: String,
    pub key: String,
    pub request_hash: String,
}

/// A stored answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub status: u16,
    pub location: Option<String>,
    pub body: String,
}

/// What an earlier request with the same key means for this one.
#[derive(Debug)]
pub enum Earlier {
    /// None: this request has claimed the key and acts (its answer is stored by `store`).
    None,
    Replay(Answer),
    /// The same key with another request.
    Mismatch,
    /// Claimed by a request that has not finished (only seen if a claim outlived its transaction).
    InProgress,
}

/// Whether a header value is usable as a key: 1–255 visible ASCII characters.
pub fn valid_key(key: &str) -> bool {
    (1..=MAX_KEY_LEN).contains(&key.len()) && key.bytes().all(|b| b.is_ascii_graphic())
}

/// The fingerprint of a request: method, path and body.
pub fn request_hash(method: &str, path: &str, body: &[u8]) -> String {
    let mut hash = Sha256::new();
    hash.update(method.as_bytes());
    hash.update(b" ");
    hash.update(path.as_bytes());
    hash.update(b"\n");
    hash.update(body);
    hash.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

fn seal_context(k: &Keyed) -> String {
    format!(
        "idempotency:{}:{}:{}",
        k.account_id, k.access_code_id, k.key
    )
}

/// Claims the key for this request, or finds what an earlier one answered. Call first in the change's
/// write transaction: the claim (a row with no answer yet) makes a concurrent request with the same key
/// wait for this transaction's end, then see its answer.
pub fn claim(conn: &mut DbConn, keys: &KeyMaterial, k: &Keyed) -> QueryResult<Earlier> {
    let now = db::now();
    diesel::delete(
        idempotency_keys::table.filter(idempotency_keys::created_at.lt(now - RETENTION)),
    )
    .execute(conn)?;
    // `ON CONFLICT DO NOTHING` is per backend (the two-backend connection has no upsert): it waits for
    // a concurrent claim's transaction, then inserts nothing.
    macro_rules! claim_on {
        ($c:expr) => {
            diesel::insert_into(idempotency_keys::table)
                .values((
                    idempotency_keys::account_id.eq(&k.account_id),
                    idempotency_keys::access_code_id.eq(&k.access_code_id),
                    idempotency_keys::idempotency_key.eq(&k.key),
                    idempotency_keys::request_hash.eq(&k.request_hash),
                    idempotency_keys::status.eq(0),
                    idempotency_keys::location.eq(None::<String>),
                    idempotency_keys::sealed_body.eq(Vec::<u8>::new()),
                    idempotency_keys::created_at.eq(now),
                ))
                .on_conflict_do_nothing()
                .execute($c)?
        };
    }
    let claimed = match conn {
        DbConn::Sqlite(c) => claim_on!(c),
        DbConn::Postgres(c) => claim_on!(c),
    };
    if claimed == 1 {
        return Ok(Earlier::None);
    }
    let (hash, status, location, sealed): (String, i32, Option<String>, Vec<u8>) =
        idempotency_keys::table
            .find((&k.account_id, &k.access_code_id, &k.key))
            .select((
                idempotency_keys::request_hash,
                idempotency_keys::status,
                idempotency_keys::location,
                idempotency_keys::sealed_body,
            ))
            .first(conn)?;
    if hash != k.request_hash {
        return Ok(Earlier::Mismatch);
    }
    if status == 0 {
        return Ok(Earlier::InProgress);
    }
    match keys.open(&sealed, &seal_context(k)) {
        Ok(body) => Ok(Earlier::Replay(Answer {
            status: u16::try_from(status).unwrap_or(500),
            location,
            body,
        })),
        // Sealed under other key material: it cannot be replayed, and acting again would act twice.
        Err(_) => Ok(Earlier::InProgress),
    }
}

/// Stores the answer on the claimed key. In the change's transaction, after `claim` returned `None`.
pub fn store(conn: &mut DbConn, keys: &KeyMaterial, k: &Keyed, answer: &Answer) -> QueryResult<()> {
    let sealed = keys
        .seal(&answer.body, &seal_context(k))
        .map_err(|_| diesel::result::Error::RollbackTransaction)?;
    diesel::update(idempotency_keys::table.find((&k.account_id, &k.access_code_id, &k.key)))
        .set((
            idempotency_keys::status.eq(i32::from(answer.status)),
            idempotency_keys::location.eq(&answer.location),
            idempotency_keys::sealed_body.eq(sealed),
        ))
        .execute(conn)?;
    Ok(())
}
