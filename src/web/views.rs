//! What the key pages show of a key, built once from the model: shared by the key and access-code
//! handlers.

use crate::api_keys::{ApiKey, HeldPolicy, KeyDetails, LinkSource};
use crate::web::display;
use crate::web::urls::AccountUrls;

/// One key as the list and the key page show it.
pub struct KeyView {
    pub id: String,
    pub name: String,
    pub url: String,
    pub linked: bool,
    pub tags: Vec<String>,
    pub policies: Vec<HeldPolicy>,
    /// "Own key", "Linked from Acme", "Linked — source key deleted".
    pub origin: String,
    pub source_deleted: bool,
    pub code_count: i64,
    /// Days left on the soonest-expiring enabled code, when within 30 days.
    pub expiring_in: Option<i64>,
    pub created: String,
    pub last_used: String,
}

impl KeyView {
    pub fn new(key: &ApiKey, details: &KeyDetails, urls: &AccountUrls) -> Self {
        let (origin, source_deleted) = match details.sources.get(&key.id) {
            None => ("Own key".to_owned(), false),
            Some(LinkSource::Key { account_name, .. }) => {
                (format!("Linked from {account_name}"), false)
            }
            Some(LinkSource::Deleted) => ("Linked — source key deleted".to_owned(), true),
        };
        Self {
            id: key.id.clone(),
            name: key.name.clone(),
            url: urls.api_key(&key.id),
            linked: key.is_linked(),
            tags: details.tags.get(&key.id).cloned().unwrap_or_default(),
            policies: details.policies.get(&key.id).cloned().unwrap_or_default(),
            origin,
            source_deleted,
            code_count: details.code_counts.get(&key.id).copied().unwrap_or(0),
            expiring_in: details.expiring.get(&key.id).copied(),
            created: display::date(&key.created_at),
            last_used: display::datetime_or_never(&key.last_used_at),
        }
    }

    /// The linked key's source id, shown on its page.
    pub fn source_id(key: &ApiKey, details: &KeyDetails) -> Option<String> {
        match details.sources.get(&key.id) {
            Some(LinkSource::Key { key_id, .. }) => Some(key_id.clone()),
            _ => None,
        }
    }
}
