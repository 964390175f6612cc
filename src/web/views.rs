//! What the key pages show of a key, built once from the model: shared by the key and access-code
//! handlers.

use crate::api_keys::{ApiKey, HeldPolicy, KeyDetails, LinkSource, LinkingAccount};
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
    /// "Own key", "Linked from Acme", "Linked — source key deleted", "Linked — link removed".
    pub origin: String,
    /// A linked key's source key, while it is known.
    pub source_id: Option<String>,
    /// Why a linked key grants nothing any more (source deleted, link removed), to show on its page.
    pub broken_link: Option<String>,
    /// A code of this key reported as exposed: what happened, to show on its pages.
    pub exposed: Option<String>,
    pub code_count: i64,
    /// Days left on the soonest-expiring enabled code, when within 30 days.
    pub expiring_in: Option<i64>,
    pub created: display::Moment,
    pub last_used: display::Moment,
    /// The key's rate limits as set (for the form) and described ("600 per minute", "none").
    pub rate: crate::limits::RateLimit,
    pub rate_text: String,
}

impl KeyView {
    pub fn new(key: &ApiKey, details: &KeyDetails, urls: &AccountUrls) -> Self {
        let (origin, source_id, broken_link) = match details.sources.get(&key.id) {
            None => ("Own key".to_owned(), None, None),
            Some(LinkSource::Key {
                account_name,
                key_id,
            }) => (
                format!("Linked from {account_name}"),
                Some(key_id.clone()),
                None,
            ),
            Some(LinkSource::Deleted) => (
                "Linked — source key deleted".to_owned(),
                None,
                Some(
                    "The source key was deleted by its account. This link grants nothing; you can \
                     delete it."
                        .to_owned(),
                ),
            ),
            Some(LinkSource::Removed {
                source_key_id,
                removed_at,
            }) => (
                "Linked — link removed by the source".to_owned(),
                source_key_id.clone(),
                Some(format!(
                    "The owner of the source key removed this link on {} UTC. It grants nothing, \
                     and the key cannot be linked again; you can delete it.",
                    display::datetime(removed_at).trim_end_matches(" UTC")
                )),
            ),
        };
        Self {
            rate: key.rate_limit(),
            rate_text: key.rate_limit().describe(),
            id: key.id.clone(),
            name: key.name.clone(),
            url: urls.api_key(&key.id),
            linked: key.is_linked(),
            tags: details.tags.get(&key.id).cloned().unwrap_or_default(),
            policies: details.policies.get(&key.id).cloned().unwrap_or_default(),
            origin,
            source_id,
            broken_link,
            exposed: details.exposed.get(&key.id).map(|(code, at, source)| {
                format!(
                    "Access code {code} was reported as exposed ({source}) on {} and disabled at once. Create a new code, move your services to it, then delete the exposed one.",
                    display::datetime(at)
                )
            }),
            code_count: details.code_counts.get(&key.id).copied().unwrap_or(0),
            expiring_in: details.expiring.get(&key.id).copied(),
            created: display::Moment::date(&key.created_at),
            last_used: display::Moment::or_never(&key.last_used_at),
        }
    }
}

/// Another account's link to a key, as the source key's page lists it.
pub struct LinkView {
    pub account_name: String,
    pub link_key_id: String,
    pub linked_at: display::Moment,
    pub policies: Vec<HeldPolicy>,
    pub last_used: display::Moment,
    pub remove_url: String,
}

impl LinkView {
    pub fn new(source_key_id: &str, link: &LinkingAccount, urls: &AccountUrls) -> Self {
        Self {
            account_name: link.account_name.clone(),
            link_key_id: link.link_key_id.clone(),
            linked_at: display::Moment::date(&link.linked_at),
            policies: link.policies.clone(),
            last_used: display::Moment::or_never(&link.last_used_at),
            remove_url: urls.remove_link(source_key_id, &link.link_key_id),
        }
    }
}
