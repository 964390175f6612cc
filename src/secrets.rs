//! Access-code secrets: their format, and the two forms in which they are stored.
//!
//! A secret is `bms_` + 40 random base62 characters (≈ 238 bits from the OS RNG) + 6 base62 characters
//! of CRC32 over everything before them. Secret scanners recognise `bms_[A-Za-z0-9]{46}`, and a
//! mistyped or truncated secret is refused by its checksum before any storage is touched.
//!
//! It is never stored in plaintext: an HMAC-SHA256 digest under a server pepper is the lookup key (a
//! fast keyed hash suits a 238-bit random secret; a password hash would only slow every request), and
//! an XChaCha20-Poly1305 sealed copy under the master key, bound to the code id, lets the owner reveal
//! and download it later.

use chacha20poly1305::XChaCha20Poly1305;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::ids::{self, BASE62};

pub const PREFIX: &str = "bms_";
const RANDOM_LEN: usize = 40;
const CHECKSUM_LEN: usize = 6;
/// Total length of a secret: 4 + 40 + 6.
pub const SECRET_LEN: usize = PREFIX.len() + RANDOM_LEN + CHECKSUM_LEN;
/// How much of a secret the console shows to tell codes apart (`bms_` + 4).
pub const HINT_LEN: usize = PREFIX.len() + 4;

/// The checksum characters of the text before them.
fn checksum(body: &str) -> [u8; CHECKSUM_LEN] {
    let mut n = u64::from(crc32fast::hash(body.as_bytes()));
    let mut out = [b'0'; CHECKSUM_LEN];
    for slot in out.iter_mut().rev() {
        *slot = BASE62[(n % 62) as usize];
        n /= 62;
    }
    out
}

/// A new secret from the OS RNG.
pub fn generate() -> String {
    let mut secret = String::with_capacity(SECRET_LEN);
    secret.push_str(PREFIX);
    secret.push_str(&ids::random_base62(RANDOM_LEN));
    let sum = checksum(&secret);
    secret.extend(sum.iter().map(|&b| b as char));
    secret
}

/// Why a presented secret is refused without looking it up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Malformed {
    Length,
    Prefix,
    Characters,
    Checksum,
}

/// Checks a presented secret's shape and checksum. Cheap and allocation-free: it runs on every request.
pub fn check_format(secret: &str) -> Result<(), Malformed> {
    if secret.len() != SECRET_LEN {
        return Err(Malformed::Length);
    }
    if !secret.starts_with(PREFIX) {
        return Err(Malformed::Prefix);
    }
    let rest = &secret.as_bytes()[PREFIX.len()..];
    if !rest.iter().all(u8::is_ascii_alphanumeric) {
        return Err(Malformed::Characters);
    }
    let (body, sum) = secret.split_at(SECRET_LEN - CHECKSUM_LEN);
    if checksum(body) != sum.as_bytes() {
        return Err(Malformed::Checksum);
    }
    Ok(())
}

/// The message by a field into which a secret was pasted.
pub const PASTED_SECRET: &str =
    "This looks like an access code secret. Keep secrets out of names, tags and descriptions.";

/// Whether `text` contains something that looks like an access-code secret: the prefix and at least
/// 20 base62 characters after it (a secret, a piece of one, or one with a typo). Names, tags and
/// descriptions refuse such text, so that a pasted secret never lands in the database or the audit
/// log; the access log redacts it (`web::middleware::redacted_target`).
pub fn contains_secret_like(text: &str) -> bool {
    const MIN_RUN: usize = 20;
    text.match_indices(PREFIX).any(|(start, _)| {
        let after = start + PREFIX.len();
        let run = text.as_bytes()[after..]
            .iter()
            .take_while(|b| b.is_ascii_alphanumeric())
            .count();
        run >= MIN_RUN
    })
}

/// The first characters of a secret, shown as `bms_Ab12…`.
pub fn hint(secret: &str) -> String {
    secret.chars().take(HINT_LEN).collect()
}

/// The server's key material: a master key for sealing secrets and a pepper for digests.
#[derive(Clone)]
pub struct KeyMaterial {
    master_key: [u8; 32],
    pepper: [u8; 32],
    /// HMAC keyed with the pepper, padded once: each digest clones it instead of re-keying.
    digest_mac: Hmac<Sha256>,
}

impl std::fmt::Debug for KeyMaterial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KeyMaterial { .. }")
    }
}

/// Sealing or opening failed: wrong key material, or a damaged row.
#[derive(Debug, thiserror::Error)]
#[error("the sealed secret cannot be opened with this key material")]
pub struct SealError;

const NONCE_LEN: usize = 24;

impl KeyMaterial {
    pub fn new(master_key: [u8; 32], pepper: [u8; 32]) -> Self {
        Self {
            digest_mac: Self::mac(&pepper),
            master_key,
            pepper,
        }
    }

    /// Fresh random key material.
    pub fn generate() -> Self {
        Self::new(ids::random_bytes_32(), ids::random_bytes_32())
    }

    pub fn master_key(&self) -> &[u8; 32] {
        &self.master_key
    }

    pub fn pepper(&self) -> &[u8; 32] {
        &self.pepper
    }

    fn mac(key: &[u8; 32]) -> Hmac<Sha256> {
        // HMAC takes keys of any length: a 32-byte key cannot fail.
        #[allow(clippy::expect_used)]
        <Hmac<Sha256> as KeyInit>::new_from_slice(key).expect("HMAC accepts any key length")
    }

    /// HMAC-SHA256(pepper, secret): the stored lookup key.
    pub fn digest(&self, secret: &str) -> [u8; 32] {
        let mut mac = self.digest_mac.clone();
        mac.update(secret.as_bytes());
        mac.finalize().into_bytes().into()
    }

    /// A fingerprint of this key material, stored in the database so that a server started with other
    /// key material refuses to run instead of failing every request.
    pub fn fingerprint(&self) -> [u8; 32] {
        let mut mac = Self::mac(&self.master_key);
        mac.update(b"bms-keys key material fingerprint v1");
        mac.update(&self.pepper);
        mac.finalize().into_bytes().into()
    }

    fn cipher(&self) -> XChaCha20Poly1305 {
        XChaCha20Poly1305::new(&self.master_key.into())
    }

    /// Seals the secret, bound to `code_id` (associated data): random 24-byte nonce ‖ ciphertext ‖ tag.
    pub fn seal(&self, secret: &str, code_id: &str) -> Result<Vec<u8>, SealError> {
        let mut nonce = [0u8; NONCE_LEN];
        ids::fill_random(&mut nonce);
        let sealed = self
            .cipher()
            .encrypt(
                &nonce.into(),
                Payload {
                    msg: secret.as_bytes(),
                    aad: code_id.as_bytes(),
                },
            )
            .map_err(|_| SealError)?;
        let mut out = Vec::with_capacity(NONCE_LEN + sealed.len());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        Ok(out)
    }

    /// Opens a sealed secret of `code_id`.
    pub fn open(&self, sealed: &[u8], code_id: &str) -> Result<String, SealError> {
        if sealed.len() <= NONCE_LEN {
            return Err(SealError);
        }
        let (nonce, body) = sealed.split_at(NONCE_LEN);
        let nonce: [u8; NONCE_LEN] = nonce.try_into().map_err(|_| SealError)?;
        let plain = self
            .cipher()
            .decrypt(
                &nonce.into(),
                Payload {
                    msg: body,
                    aad: code_id.as_bytes(),
                },
            )
            .map_err(|_| SealError)?;
        String::from_utf8(plain).map_err(|_| SealError)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_secrets_have_the_documented_shape() {
        for _ in 0..200 {
            let s = generate();
            assert_eq!(s.len(), 50);
            assert!(s.starts_with("bms_"));
            assert!(s[4..].bytes().all(|b| b.is_ascii_alphanumeric()));
            assert_eq!(check_format(&s), Ok(()));
        }
    }

    #[test]
    fn secret_like_text_is_found() {
        let s = generate();
        assert!(contains_secret_like(&s));
        assert!(contains_secret_like(&format!("pasted {s} here")));
        assert!(contains_secret_like(&s[..30]), "a piece of one");
        assert!(!contains_secret_like("bms_short and bms_"));
        assert!(!contains_secret_like("Zapier ads (bms_Ab12…)"));
        // Found by the fuzz target secret_format: a prefix inside a run.
        let overlapping = "bms_mbmcCCcCCCCCCCCCCCCCCCbms_mbmcCCCCCCCCCCCmcCCcCCCCCCCCCCCCCC";
        assert!(contains_secret_like(overlapping));
    }

    #[test]
    fn any_one_character_change_is_detected() {
        // Property: replacing any single character after the prefix by any other base62 character
        // breaks the checksum (CRC32 detects every single-symbol error).
        for _ in 0..20 {
            let s = generate();
            for i in PREFIX.len()..SECRET_LEN {
                for &c in BASE62 {
                    if s.as_bytes()[i] == c {
                        continue;
                    }
                    let mut bytes = s.clone().into_bytes();
                    bytes[i] = c;
                    let changed = String::from_utf8(bytes).unwrap();
                    assert!(check_format(&changed).is_err(), "{changed} passed");
                }
            }
        }
    }

    #[test]
    fn malformed_secrets_say_why() {
        let s = generate();
        assert_eq!(check_format(&s[..49]), Err(Malformed::Length));
        assert_eq!(
            check_format(&format!("xms_{}", &s[4..])),
            Err(Malformed::Prefix)
        );
        assert_eq!(
            check_format(&format!("bms_{}!", &s[4..49])),
            Err(Malformed::Characters)
        );
        assert_eq!(check_format(""), Err(Malformed::Length));
        assert_eq!(check_format(&"é".repeat(25)), Err(Malformed::Prefix));
    }

    #[test]
    fn sealing_round_trips_and_is_bound_to_the_code_id() {
        let keys = KeyMaterial::generate();
        let secret = generate();
        let sealed = keys.seal(&secret, "code_a").unwrap();
        assert!(
            !sealed
                .windows(10)
                .any(|w| secret.as_bytes().windows(10).any(|x| x == w))
        );
        assert_eq!(keys.open(&sealed, "code_a").unwrap(), secret);
        assert!(
            keys.open(&sealed, "code_b").is_err(),
            "another code's id does not open it"
        );
        assert!(
            KeyMaterial::generate().open(&sealed, "code_a").is_err(),
            "other keys do not"
        );
        let mut damaged = sealed.clone();
        damaged[30] ^= 1;
        assert!(keys.open(&damaged, "code_a").is_err());
    }

    #[test]
    fn digests_depend_on_the_pepper() {
        let a = KeyMaterial::generate();
        let b = KeyMaterial::generate();
        let s = generate();
        assert_eq!(a.digest(&s), a.digest(&s));
        assert_ne!(a.digest(&s), b.digest(&s));
        assert_ne!(a.fingerprint(), b.fingerprint());
    }
}
