//! Access policies: the catalogue (embedded TOML, synced into the database at start-up), the rule
//! language `METHOD /path/pattern`, and the matching of a request against rules. The API catalogue —
//! the BMS APIs that exist — lives in the same file, so `/docs/apis` can say which policies grant each.

use std::collections::HashSet;

use diesel::prelude::*;
use serde::Deserialize;
use time::PrimitiveDateTime;

use crate::db::{self, DbConn};
use crate::schema::policies;

/// The catalogue shipped in the binary.
pub const EMBEDDED_CATALOGUE: &str = include_str!("../policies.toml");

/// A policy as stored.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = policies)]
pub struct Policy {
    pub name: String,
    pub description: String,
    pub rules: String,
    pub position: i32,
    pub retired: bool,
    pub updated_at: PrimitiveDateTime,
}

impl Policy {
    /// The parsed rules (the stored text was validated when the catalogue was loaded).
    pub fn parsed_rules(&self) -> Vec<Rule> {
        self.rules
            .lines()
            .filter_map(|l| Rule::parse(l).ok())
            .collect()
    }
}

/// One BMS API of the catalogue.
#[derive(Debug, Clone, Deserialize)]
pub struct ApiEntry {
    pub method: String,
    pub path: String,
    pub name: String,
    pub description: String,
}

#[derive(Debug, Clone, Deserialize)]
struct PolicyEntry {
    name: String,
    description: String,
    rules: Vec<String>,
}

/// The parsed catalogue file.
#[derive(Debug, Clone, Deserialize)]
pub struct Catalogue {
    #[serde(rename = "policy", default)]
    policies: Vec<PolicyEntry>,
    #[serde(rename = "api", default)]
    pub apis: Vec<ApiEntry>,
}

/// Why a catalogue file is refused at start-up.
#[derive(Debug, thiserror::Error)]
pub enum CatalogueError {
    #[error("the policy catalogue is not valid TOML: {0}")]
    Toml(#[from] toml::de::Error),
    #[error("policy {policy:?}: {problem}")]
    Invalid { policy: String, problem: String },
    #[error("cannot read the policy catalogue {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

impl Catalogue {
    /// Parses and checks a catalogue: names unique and well-formed, every rule valid.
    pub fn parse(text: &str) -> Result<Catalogue, CatalogueError> {
        let catalogue: Catalogue = toml::from_str(text)?;
        let mut seen = HashSet::new();
        for p in &catalogue.policies {
            let invalid = |problem: String| CatalogueError::Invalid {
                policy: p.name.clone(),
                problem,
            };
            if !is_policy_name(&p.name) {
                return Err(invalid(
                    "names are 1–64 characters of a-z 0-9 . _ - :".into(),
                ));
            }
            if !seen.insert(p.name.clone()) {
                return Err(invalid("listed twice".into()));
            }
            if p.rules.is_empty() {
                return Err(invalid("has no rules".into()));
            }
            for rule in &p.rules {
                Rule::parse(rule).map_err(|e| invalid(format!("rule {rule:?}: {e}")))?;
            }
        }
        Ok(catalogue)
    }

    /// The embedded catalogue, or the file at `path`.
    pub fn load(path: Option<&std::path::Path>) -> Result<Catalogue, CatalogueError> {
        match path {
            None => Catalogue::parse(EMBEDDED_CATALOGUE),
            Some(path) => {
                let text =
                    std::fs::read_to_string(path).map_err(|source| CatalogueError::Read {
                        path: path.display().to_string(),
                        source,
                    })?;
                Catalogue::parse(&text)
            }
        }
    }

    /// Each policy's name with its parsed rules, for naming the policies that would allow a request.
    pub fn compiled_rules(&self) -> Vec<(String, Vec<Rule>)> {
        self.policies
            .iter()
            .map(|p| {
                let rules = p.rules.iter().filter_map(|r| Rule::parse(r).ok()).collect();
                (p.name.clone(), rules)
            })
            .collect()
    }

    /// Each policy's name, description and rules, in catalogue order.
    pub fn policy_entries(&self) -> impl Iterator<Item = (&str, &str, &[String])> {
        self.policies
            .iter()
            .map(|p| (p.name.as_str(), p.description.as_str(), p.rules.as_slice()))
    }

    /// Names of the catalogue's policies whose rules allow `method path` (the API's own path, with its
    /// `{account}` placeholder standing for the target account).
    pub fn policies_granting(&self, method: &str, path: &str) -> Vec<String> {
        let path = path.replace("{account}", "acc_example");
        self.policies
            .iter()
            .filter(|p| {
                p.rules
                    .iter()
                    .filter_map(|r| Rule::parse(r).ok())
                    .any(|r| r.matches(method, &path, "acc_example"))
            })
            .map(|p| p.name.clone())
            .collect()
    }

    /// Writes the catalogue into the database: inserts new policies, updates changed ones, and marks
    /// those no longer listed as retired. One transaction.
    pub fn sync(&self, conn: &mut DbConn) -> QueryResult<()> {
        db::write_transaction(conn, |conn| {
            let now = db::now();
            let existing: Vec<Policy> = policies::table.select(Policy::as_select()).load(conn)?;
            for (position, entry) in self.policies.iter().enumerate() {
                let policy = Policy {
                    name: entry.name.clone(),
                    description: entry.description.clone(),
                    rules: entry.rules.join("\n"),
                    position: i32::try_from(position).unwrap_or(i32::MAX),
                    retired: false,
                    updated_at: now,
                };
                match existing.iter().find(|p| p.name == entry.name) {
                    Some(old)
                        if old.description == policy.description
                            && old.rules == policy.rules
                            && old.position == policy.position
                            && !old.retired => {}
                    Some(_) => {
                        diesel::update(policies::table.find(&policy.name))
                            .set((
                                policies::description.eq(&policy.description),
                                policies::rules.eq(&policy.rules),
                                policies::position.eq(policy.position),
                                policies::retired.eq(false),
                                policies::updated_at.eq(now),
                            ))
                            .execute(conn)?;
                    }
                    None => {
                        diesel::insert_into(policies::table)
                            .values(&policy)
                            .execute(conn)?;
                    }
                }
            }
            let names: Vec<&str> = self.policies.iter().map(|p| p.name.as_str()).collect();
            diesel::update(
                policies::table
                    .filter(policies::name.ne_all(names))
                    .filter(policies::retired.eq(false)),
            )
            .set((policies::retired.eq(true), policies::updated_at.eq(now)))
            .execute(conn)?;
            Ok(())
        })
    }
}

/// Policy names: 1–64 characters of `a-z 0-9 . _ - :`.
pub fn is_policy_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-:".contains(&b))
}

/// Database methods
impl Policy {
    /// The active (not retired) policies, in catalogue order: what the editor offers.
    pub fn list_active(conn: &mut DbConn) -> QueryResult<Vec<Policy>> {
        policies::table
            .filter(policies::retired.eq(false))
            .order(policies::position.asc())
            .select(Policy::as_select())
            .load(conn)
    }

    /// Every policy, retired ones included: for showing what keys hold.
    pub fn list_all(conn: &mut DbConn) -> QueryResult<Vec<Policy>> {
        policies::table
            .order((policies::retired.asc(), policies::position.asc()))
            .select(Policy::as_select())
            .load(conn)
    }
}

/// One segment of a path pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Literal(String),
    /// `{account}`: must equal the account the request targets.
    Account,
    /// `*`: any one segment.
    Any,
    /// `**` (last only): any number of segments, none included.
    Rest,
}

/// A parsed rule: `METHOD /path/pattern`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// `None` for `*` (any method).
    method: Option<String>,
    segments: Vec<Segment>,
}

impl Rule {
    pub fn parse(text: &str) -> Result<Rule, &'static str> {
        let mut parts = text.split_whitespace();
        let (Some(method), Some(path), None) = (parts.next(), parts.next(), parts.next()) else {
            return Err("expected \"METHOD /path\"");
        };
        let method = match method {
            "*" => None,
            m if !m.is_empty() && m.bytes().all(|b| b.is_ascii_uppercase()) => Some(m.to_owned()),
            _ => return Err("the method must be upper-case, like GET, or *"),
        };
        let Some(path) = path.strip_prefix('/') else {
            return Err("the path must start with /");
        };
        let raw: Vec<&str> = path.split('/').collect();
        let mut segments = Vec::with_capacity(raw.len());
        for (i, s) in raw.iter().enumerate() {
            segments.push(match *s {
                "" => return Err("empty path segment"),
                "{account}" => Segment::Account,
                "*" => Segment::Any,
                "**" if i == raw.len() - 1 => Segment::Rest,
                "**" => return Err("** may only end a pattern"),
                s if s.contains(['{', '}', '*']) => return Err("unknown placeholder"),
                s => Segment::Literal(s.to_owned()),
            });
        }
        Ok(Rule { method, segments })
    }

    /// Whether a request `method path`, targeting `account`, is allowed by this rule.
    pub fn matches(&self, method: &str, path: &str, account: &str) -> bool {
        if self.method.as_deref().is_some_and(|m| m != method) {
            return false;
        }
        let Some(path) = path.strip_prefix('/') else {
            return false;
        };
        let mut parts = path.split('/');
        for segment in &self.segments {
            match segment {
                Segment::Rest => return true,
                _ => {
                    let Some(part) = parts.next() else {
                        return false;
                    };
                    let ok = match segment {
                        Segment::Literal(l) => part == l,
                        Segment::Account => part == account,
                        Segment::Any => !part.is_empty(),
                        Segment::Rest => true,
                    };
                    if !ok {
                        return false;
                    }
                }
            }
        }
        parts.next().is_none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(s: &str) -> Rule {
        Rule::parse(s).unwrap()
    }

    #[test]
    fn literal_account_and_rest_segments_match() {
        let r = rule("GET /api/v1/accounts/{account}/ads/**");
        assert!(r.matches("GET", "/api/v1/accounts/acc_1/ads", "acc_1"));
        assert!(r.matches("GET", "/api/v1/accounts/acc_1/ads/ad_9", "acc_1"));
        assert!(!r.matches("POST", "/api/v1/accounts/acc_1/ads", "acc_1"));
        assert!(
            !r.matches("GET", "/api/v1/accounts/acc_2/ads", "acc_1"),
            "other account"
        );
        assert!(!r.matches("GET", "/api/v1/accounts/acc_1/adsx", "acc_1"));
        let exact = rule("GET /api/v1/accounts/{account}/ping");
        assert!(exact.matches("GET", "/api/v1/accounts/a/ping", "a"));
        assert!(!exact.matches("GET", "/api/v1/accounts/a/ping/x", "a"));
        assert!(!exact.matches("GET", "/api/v1/accounts/a", "a"));
        let any = rule("* /x/*/y");
        assert!(any.matches("DELETE", "/x/1/y", "a"));
        assert!(!any.matches("DELETE", "/x//y", "a"));
    }

    #[test]
    fn bad_rules_are_refused() {
        for bad in [
            "GET",
            "get /x",
            "GET x",
            "GET /a/**/b",
            "GET /a//b",
            "GET /{acct}",
            "GET /a b c",
        ] {
            assert!(Rule::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_embedded_catalogue_is_valid_and_grants_as_documented() {
        let c = Catalogue::parse(EMBEDDED_CATALOGUE).unwrap();
        assert_eq!(
            c.policies_granting("POST", "/api/v1/accounts/{account}/ads"),
            vec!["ads.write", "full-access"]
        );
        assert_eq!(
            c.policies_granting("GET", "/api/v1/accounts/{account}/ads"),
            vec!["ads.read", "ads.write", "full-access"]
        );
    }
}
