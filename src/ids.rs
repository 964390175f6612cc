//! Public identifiers (`acc_…`, `usr_…`, `key_…`, `code_…`) and the random base62 text they and the
//! access-code secrets are made of. Everything random here comes from the operating system's RNG.

/// The 62 characters of base62, in the order the checksum encoding also uses.
pub const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// Fills `buf` from the OS RNG. The OS RNG failing is not something the program can recover from.
pub fn fill_random(buf: &mut [u8]) {
    #[allow(clippy::expect_used)]
    getrandom::fill(buf).expect("the operating system's random number generator failed");
}

/// `len` uniformly random base62 characters. Bytes ≥ 248 are rejected so that `b % 62` has no bias.
pub fn random_base62(len: usize) -> String {
    let mut out = String::with_capacity(len);
    let mut buf = [0u8; 64];
    while out.len() < len {
        fill_random(&mut buf);
        for &b in &buf {
            if b < 248 && out.len() < len {
                out.push(BASE62[usize::from(b % 62)] as char);
            }
        }
    }
    out
}

/// 32 random bytes, for session tokens and generated keys.
pub fn random_bytes_32() -> [u8; 32] {
    let mut buf = [0u8; 32];
    fill_random(&mut buf);
    buf
}

/// Prefixes of the public ids, one per kind of object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdKind {
    Account,
    User,
    ApiKey,
    AccessCode,
    Ad,
    DriveFile,
    WebhookEndpoint,
    WebhookMessage,
}

impl IdKind {
    pub const fn prefix(self) -> &'static str {
        match self {
            IdKind::Account => "acc_",
            IdKind::User => "usr_",
            IdKind::ApiKey => "key_",
            IdKind::AccessCode => "code_",
            IdKind::Ad => "ad_",
            IdKind::DriveFile => "file_",
            IdKind::WebhookEndpoint => "hook_",
            IdKind::WebhookMessage => "msg_",
        }
    }
}

/// Length of the random part of every id: 16 base62 characters ≈ 95 bits, unguessable.
const ID_RANDOM_LEN: usize = 16;

/// A new id of the given kind, e.g. `key_3kTq9ZbWm1xYc0Pa`.
pub fn new_id(kind: IdKind) -> String {
    format!("{}{}", kind.prefix(), random_base62(ID_RANDOM_LEN))
}

/// Whether `s` has the shape of an id of `kind` (prefix + 16 base62 characters). Used to refuse
/// malformed ids with a clear message before any database access.
pub fn is_well_formed(kind: IdKind, s: &str) -> bool {
    s.strip_prefix(kind.prefix()).is_some_and(|rest| {
        rest.len() == ID_RANDOM_LEN && rest.bytes().all(|b| b.is_ascii_alphanumeric())
    })
}

/// An id that is not of the expected kind and shape.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a well-formed {0} id")]
pub struct MalformedId(&'static str);

/// Declares an id type that can only hold a well-formed id of its kind: parsed once, where it enters
/// (a path, a form), so nothing behind it checks again. Derefs to `str` for queries.
macro_rules! typed_id {
    ($(#[$doc:meta])* $name:ident, $kind:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Deserialize)]
        #[serde(try_from = "String")]
        pub struct $name(String);

        impl $name {
            /// A new random id of this kind.
            pub fn generate() -> Self {
                Self(new_id($kind))
            }

            pub fn parse(s: &str) -> Result<Self, MalformedId> {
                if is_well_formed($kind, s) {
                    Ok(Self(s.to_owned()))
                } else {
                    Err(MalformedId($kind.prefix()))
                }
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = MalformedId;

            fn try_from(s: String) -> Result<Self, MalformedId> {
                if is_well_formed($kind, &s) {
                    Ok(Self(s))
                } else {
                    Err(MalformedId($kind.prefix()))
                }
            }
        }

        impl std::ops::Deref for $name {
            type Target = str;

            fn deref(&self) -> &str {
                &self.0
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

typed_id!(
    /// `acc_…`: an account.
    AccountId,
    IdKind::Account
);
typed_id!(
    /// `key_…`: an API key (own or linked).
    ApiKeyId,
    IdKind::ApiKey
);
typed_id!(
    /// `code_…`: an access code.
    AccessCodeId,
    IdKind::AccessCode
);
typed_id!(
    /// `hook_…`: a webhook endpoint.
    WebhookEndpointId,
    IdKind::WebhookEndpoint
);
typed_id!(
    /// `msg_…`: one webhook message to one endpoint (its `webhook-id`).
    WebhookMessageId,
    IdKind::WebhookMessage
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typed_ids_hold_only_well_formed_ids_of_their_kind() {
        let key = ApiKeyId::generate();
        assert_eq!(ApiKeyId::parse(key.as_str()), Ok(key.clone()));
        assert!(AccessCodeId::parse(key.as_str()).is_err());
        assert!(AccountId::parse("acc_short").is_err());
        assert!(AccountId::try_from("acc_0000000000000000".to_owned()).is_ok());
        assert!(serde_json::from_str::<ApiKeyId>("\"key_..\"").is_err());
    }

    #[test]
    fn ids_have_their_prefix_and_shape() {
        let id = new_id(IdKind::ApiKey);
        assert!(id.starts_with("key_"));
        assert!(is_well_formed(IdKind::ApiKey, &id));
        assert!(!is_well_formed(IdKind::AccessCode, &id));
        assert!(!is_well_formed(IdKind::ApiKey, "key_short"));
        assert!(!is_well_formed(IdKind::ApiKey, "key_!!!!!!!!!!!!!!!!"));
    }

    #[test]
    fn random_base62_uses_every_character_and_only_those() {
        let s = random_base62(20_000);
        assert_eq!(s.len(), 20_000);
        for c in BASE62 {
            assert!(s.as_bytes().contains(c), "missing {}", *c as char);
        }
        assert!(s.bytes().all(|b| BASE62.contains(&b)));
    }
}
