//! What the key editor submits, and the checks it must pass: a name, tags, policies, rate limits.

use std::collections::BTreeSet;

use crate::error::FieldErrors;
use crate::limits::{MAX_PER_DAY, MAX_PER_MINUTE, RateLimit, parse_limit};

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
    /// Requests per minute, as typed; empty is no limit.
    pub rate_per_minute: String,
    /// Requests per day, as typed; empty is no limit.
    pub rate_per_day: String,
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

/// Tags from the comma-separated field: trimmed, lower-cased, de-duplicated, in the order typed. A
/// refusal names every tag that cannot be used, as typed, and what is wrong with each.
pub fn parse_tags(raw: &str) -> Result<Vec<String>, String> {
    if crate::secrets::contains_secret_like(raw) {
        return Err(crate::secrets::PASTED_SECRET.to_owned());
    }
    let mut tags: Vec<String> = Vec::new();
    let mut problems: Vec<String> = Vec::new();
    for typed in raw.split(',').map(str::trim).filter(|t| !t.is_empty()) {
        let tag = typed.to_lowercase();
        let length = tag.chars().count();
        if length > MAX_TAG_LEN {
            problems.push(format!(
                "\"{}…\" is {length} characters long (at most {MAX_TAG_LEN})",
                typed.chars().take(MAX_TAG_LEN).collect::<String>()
            ));
            continue;
        }
        let mut unusable: Vec<char> = Vec::new();
        for c in typed
            .chars()
            .filter(|c| !is_tag_char(c.to_ascii_lowercase()))
        {
            if !unusable.contains(&c) {
                unusable.push(c);
            }
        }
        if !unusable.is_empty() {
            let shown: Vec<String> = unusable.iter().map(|c| describe_char(*c)).collect();
            problems.push(format!("\"{typed}\" cannot contain {}", shown.join(", ")));
            continue;
        }
        if !tags.contains(&tag) {
            tags.push(tag);
        }
    }
    if !problems.is_empty() {
        return Err(format!(
            "{}. Tags use a-z, 0-9 and - _ . : only.",
            problems.join("; ")
        ));
    }
    if tags.len() > MAX_TAGS {
        return Err(format!(
            "{} different tags: use at most {MAX_TAGS}.",
            tags.len()
        ));
    }
    Ok(tags)
}

fn is_tag_char(c: char) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit() || "-_.:".contains(c)
}

/// A character as a message can show it: a space or a control character by name, others quoted.
fn describe_char(c: char) -> String {
    match c {
        ' ' => "a space".to_owned(),
        c if c.is_control() || c.is_whitespace() => format!("U+{:04X}", u32::from(c)),
        c => format!("\"{c}\""),
    }
}

/// The input after validation.
#[derive(Debug, Clone)]
pub(super) struct ValidKey {
    pub name: String,
    pub tags: Vec<String>,
    pub policies: Vec<String>,
    pub rate: RateLimit,
}

/// Checks name, tags, policies and rate limits. `allowed` are the policy names that may be chosen; `need_policy`
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
    let per_minute = parse_limit(&input.rate_per_minute, MAX_PER_MINUTE)
        .map_err(|e| errors.add("rate_per_minute", e))
        .ok();
    let per_day = parse_limit(&input.rate_per_day, MAX_PER_DAY)
        .map_err(|e| errors.add("rate_per_day", e))
        .ok();
    if need_policy && chosen.is_empty() && input.policies.is_empty() {
        errors.add(
            "policy",
            "Select at least one policy: a linked key grants only what its policies allow.",
        );
    }
    match (errors.is_empty(), tags, per_minute, per_day) {
        (true, Some(tags), Some(per_minute), Some(per_day)) => Some(ValidKey {
            name: input.name.trim().to_owned(),
            tags,
            policies: chosen,
            rate: RateLimit {
                per_minute,
                per_day,
            },
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
        // Every bad tag is named as typed, with what is wrong with it.
        let err = parse_tags("ok, Bad Tag!, x/y/z, fine, Ünï").unwrap_err();
        assert_eq!(
            err,
            r#""Bad Tag!" cannot contain a space, "!"; "x/y/z" cannot contain "/"; "Ünï" cannot contain "Ü", "ï". Tags use a-z, 0-9 and - _ . : only."#
        );
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
