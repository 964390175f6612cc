//! What the key editor submits, and the checks it must pass: a name, tags, policies.

use std::collections::BTreeSet;

use crate::error::FieldErrors;

pub const MAX_NAME_LEN: usize = 100;
pub const MAX_TAGS: usize = 20;
pub const MAX_TAG_LEN: usize = 32;

/// What the editor submits, as typed.
#[derive(Debug, Clone, Default)]
pub struct KeyInput {
    pub name: String,
    /// Comma-separated.
    pub tags: String,
    pub policies: Vec<String>,
    /// Link mode only.
    pub linked_key_id: String,
}

/// Why a key name is refused, or `None`.
pub fn name_problem(name: &str) -> Option<&'static str> {
    let name = name.trim();
    if name.is_empty() {
        Some("Enter a name for the API key.")
    } else if name.chars().count() > MAX_NAME_LEN {
        Some("Use at most 100 characters.")
    } else if name.chars().any(char::is_control) {
        Some("Use letters, digits, spaces and punctuation only.")
    } else if crate::secrets::contains_secret_like(name) {
        Some(crate::secrets::PASTED_SECRET)
    } else {
        None
    }
}

/// Tags from the comma-separated field: trimmed, lower-cased, de-duplicated, in the order typed.
pub fn parse_tags(raw: &str) -> Result<Vec<String>, String> {
    if crate::secrets::contains_secret_like(raw) {
        return Err(crate::secrets::PASTED_SECRET.to_owned());
    }
    let mut tags: Vec<String> = Vec::new();
    for tag in raw
        .split(',')
        .map(|t| t.trim().to_lowercase())
        .filter(|t| !t.is_empty())
    {
        if tag.chars().count() > MAX_TAG_LEN {
            return Err(format!(
                "The tag \"{tag}\" is too long: use at most 32 characters per tag."
            ));
        }
        if !tag
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-_.:".contains(&b))
        {
            return Err(format!(
                "The tag \"{tag}\" has characters tags cannot use: use a-z, 0-9, and - _ . : only."
            ));
        }
        if !tags.contains(&tag) {
            tags.push(tag);
        }
    }
    if tags.len() > MAX_TAGS {
        return Err("Use at most 20 tags.".to_owned());
    }
    Ok(tags)
}

/// The input after validation.
#[derive(Debug, Clone)]
pub(super) struct ValidKey {
    pub name: String,
    pub tags: Vec<String>,
    pub policies: Vec<String>,
}

/// Checks name, tags and policies. `allowed` are the policy names that may be chosen; `need_policy`
/// is set for linked keys, which must have at least one.
pub(super) fn validate(
    input: &KeyInput,
    allowed: &BTreeSet<String>,
    need_policy: bool,
    errors: &mut FieldErrors,
) -> Option<ValidKey> {
    errors.check("name", name_problem(&input.name));
    let tags = parse_tags(&input.tags)
        .map_err(|e| errors.add("tags", e))
        .ok();
    let mut chosen: Vec<String> = Vec::new();
    for name in &input.policies {
        if !allowed.contains(name) {
            errors.add(
                "policy",
                "One of the selected policies does not exist. Reload the page and choose again.",
            );
        } else if !chosen.contains(name) {
            chosen.push(name.clone());
        }
    }
    if need_policy && chosen.is_empty() && input.policies.is_empty() {
        errors.add(
            "policy",
            "Select at least one policy: a linked key grants only what its policies allow.",
        );
    }
    match (errors.is_empty(), tags) {
        (true, Some(tags)) => Some(ValidKey {
            name: input.name.trim().to_owned(),
            tags,
            policies: chosen,
        }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_are_trimmed_lowercased_and_deduplicated() {
        assert_eq!(
            parse_tags(" Zapier, prod ,zapier,, a.b:c-d_e").unwrap(),
            vec!["zapier", "prod", "a.b:c-d_e"]
        );
        assert!(parse_tags("").unwrap().is_empty());
        assert!(parse_tags("no spaces").is_err());
        assert!(parse_tags("ünïcode").is_err());
        assert!(parse_tags(&"x".repeat(33)).is_err());
        let many: Vec<String> = (0..21).map(|i| format!("t{i}")).collect();
        assert!(parse_tags(&many.join(",")).is_err());
        let twenty: Vec<String> = (0..20).map(|i| format!("t{i}")).collect();
        assert_eq!(parse_tags(&twenty.join(",")).unwrap().len(), 20);
    }

    #[test]
    fn names_are_checked() {
        assert!(name_problem("Zapier").is_none());
        assert!(name_problem("  ").is_some());
        assert!(name_problem(&"n".repeat(101)).is_some());
        assert!(name_problem(&"n".repeat(100)).is_none());
        assert!(name_problem("a\0b").is_some());
    }
}
