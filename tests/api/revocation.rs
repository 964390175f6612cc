//! Every console write that changes what an access code may do is seen by the very next
//! verification — with the decision cached beforehand, so a write that forgot to go through the write
//! path (and so to clear the cache) fails here. The cases are generated from the route table: a new
//! POST route under an account's permissions fails this test until it is taught what it changes.

use actix_web::http::StatusCode;

use bms_keys::web::CONSOLE_ROUTES;

use crate::both_backends;
use crate::helpers::{Browser, key_with_code};
use crate::paths;

/// What a write route does to verification.
enum Effect {
    /// Changes decisions: each case is run (warm the cache, write, verify at once).
    Changes(&'static [Case]),
    /// Changes nothing a verification can see now (the reason, for the reader).
    Nothing(&'static str),
}

#[derive(Clone, Copy)]
enum Case {
    LinkGrantsTheLinkingAccount,
    OwnKeyPoliciesChange,
    LinkPoliciesChange,
    OwnKeyDeleted,
    LinkDeleted,
    LinkRemovedBySource,
    CodeDisabled,
    CodeDeleted,
}

/// What each write route under `/accounts/{acc}/permissions` does to verification.
fn effect(path: &str) -> Effect {
    let route = path.trim_start_matches("/accounts/{acc}/permissions/api-keys");
    match route {
        "" => Effect::Changes(&[Case::LinkGrantsTheLinkingAccount]),
        "/{key}" => Effect::Changes(&[Case::OwnKeyPoliciesChange, Case::LinkPoliciesChange]),
        "/{key}/delete" => Effect::Changes(&[Case::OwnKeyDeleted, Case::LinkDeleted]),
        "/{key}/links/{link}/remove" => Effect::Changes(&[Case::LinkRemovedBySource]),
        "/{key}/access-codes/{code}/enabled" => Effect::Changes(&[Case::CodeDisabled]),
        "/{key}/access-codes/{code}/delete" => Effect::Changes(&[Case::CodeDeleted]),
        "/{key}/access-codes" => {
            Effect::Nothing("a new code (its secret is unknown until created)")
        }
        "/{key}/access-codes/{code}" => Effect::Nothing("a description"),
        "/{key}/access-codes/{code}/retire" | "/{key}/access-codes/{code}/retire/cancel" => {
            Effect::Nothing("a schedule (the retirement itself: tests/api/retirement.rs)")
        }
        route if route.starts_with("/webhooks") => {
            Effect::Nothing("webhook endpoints (they report changes, they grant nothing)")
        }
        "/{key}/access-codes/{code}/secret" | "/{key}/access-codes/{code}/download" => {
            Effect::Nothing("revealing a secret")
        }
        other => panic!(
            "POST {path}: teach tests/api/revocation.rs what this route changes for verification ({other})"
        ),
    }
}

struct World {
    alice: Browser,
    acc_a: String,
    bob: Browser,
    acc_b: String,
    client: Browser,
}

impl World {
    /// The ads of `account` with `secret`: the status, which the cache now remembers.
    async fn ads(&self, account: &str, secret: &str) -> StatusCode {
        self.client
            .api("GET", &paths::api(account, "ads"), secret)
            .await
            .status
    }

    async fn post(&self, who: &Browser, account: &str, path: &str, fields: &[(&str, &str)]) {
        let csrf = who.csrf_token_of(&paths::keys(account)).await;
        let mut all = vec![("csrf_token", csrf.as_str())];
        all.extend_from_slice(fields);
        let res = who.post_form(path, &all).await;
        assert_eq!(
            res.status,
            StatusCode::SEE_OTHER,
            "POST {path}: {}",
            res.body
        );
    }

    /// Warms the cache with one decision, makes the change, and checks the next decision at once.
    async fn run(&self, case: Case) {
        let (alice, a, bob, b) = (
            &self.alice,
            self.acc_a.as_str(),
            &self.bob,
            self.acc_b.as_str(),
        );
        let (key, code, secret) = key_with_code(alice, a, "Case", &["ads.read"]).await;
        let (before, after) = match case {
            Case::LinkGrantsTheLinkingAccount => {
                let before = self.ads(b, &secret).await;
                let res = bob.link_key(b, &key, "Linked", &["ads.read"]).await;
                assert_eq!(res.status, StatusCode::SEE_OTHER);
                (before, self.ads(b, &secret).await)
            }
            Case::OwnKeyPoliciesChange => {
                let before = self.ads(a, &secret).await;
                self.post(
                    alice,
                    a,
                    &paths::key(a, &key),
                    &[("name", "Case"), ("policy", "metrics.read")],
                )
                .await;
                (before, self.ads(a, &secret).await)
            }
            Case::LinkRemovedBySource => {
                let res = bob.link_key(b, &key, "Linked", &["ads.read"]).await;
                let link = res.location().rsplit('/').next().unwrap().to_owned();
                let before = self.ads(b, &secret).await;
                self.post(alice, a, &paths::remove_link(a, &key, &link), &[])
                    .await;
                (before, self.ads(b, &secret).await)
            }
            Case::LinkPoliciesChange | Case::LinkDeleted => {
                let res = bob.link_key(b, &key, "Linked", &["ads.read"]).await;
                let link = res.location().rsplit('/').next().unwrap().to_owned();
                let before = self.ads(b, &secret).await;
                if matches!(case, Case::LinkPoliciesChange) {
                    self.post(
                        bob,
                        b,
                        &paths::key(b, &link),
                        &[("name", "Linked"), ("policy", "metrics.read")],
                    )
                    .await;
                } else {
                    self.post(bob, b, &paths::delete_key(b, &link), &[]).await;
                }
                (before, self.ads(b, &secret).await)
            }
            Case::OwnKeyDeleted => {
                let before = self.ads(a, &secret).await;
                self.post(alice, a, &paths::delete_key(a, &key), &[]).await;
                (before, self.ads(a, &secret).await)
            }
            Case::CodeDisabled => {
                let before = self.ads(a, &secret).await;
                self.post(
                    alice,
                    a,
                    &paths::code_enabled(a, &key, &code),
                    &[("enabled", "false")],
                )
                .await;
                (before, self.ads(a, &secret).await)
            }
            Case::CodeDeleted => {
                self.post(
                    alice,
                    a,
                    &paths::code_enabled(a, &key, &code),
                    &[("enabled", "false")],
                )
                .await;
                let disabled = self.client.api("GET", &paths::api(a, "ads"), &secret).await;
                assert_eq!(Browser::error_code(&disabled), "disabled");
                self.post(alice, a, &paths::delete_code(a, &key, &code), &[])
                    .await;
                let deleted = self.client.api("GET", &paths::api(a, "ads"), &secret).await;
                assert_eq!(
                    Browser::error_code(&deleted),
                    "unknown",
                    "a deleted code is unknown at once"
                );
                return;
            }
        };
        let expected = match case {
            Case::LinkGrantsTheLinkingAccount => (StatusCode::FORBIDDEN, StatusCode::OK),
            Case::OwnKeyPoliciesChange | Case::LinkPoliciesChange => {
                (StatusCode::OK, StatusCode::FORBIDDEN)
            }
            Case::OwnKeyDeleted => (StatusCode::OK, StatusCode::UNAUTHORIZED),
            Case::LinkDeleted | Case::LinkRemovedBySource => {
                (StatusCode::OK, StatusCode::FORBIDDEN)
            }
            Case::CodeDisabled => (StatusCode::OK, StatusCode::UNAUTHORIZED),
            Case::CodeDeleted => unreachable!(),
        };
        assert_eq!(
            (before, after),
            expected,
            "the next verification did not see the change"
        );
    }
}

both_backends! {
    async fn every_write_that_changes_access_is_seen_by_the_next_verification(app) {
        let (alice, acc_a) = app.signed_in_owner("alice@example.com", "Alpha").await;
        let (bob, acc_b) = app.signed_in_owner("bob@example.com", "Beta").await;
        let world = World { alice, acc_a, bob, acc_b, client: app.browser() };
        let mut cases = 0;
        for route in CONSOLE_ROUTES.iter().filter(|r| r.method == "POST") {
            if !route.path.starts_with("/accounts/{acc}/permissions") {
                continue; // sign-in, sessions, setup: nothing a code can do changes
            }
            match effect(route.path) {
                Effect::Changes(list) => {
                    for case in list {
                        world.run(*case).await;
                        cases += 1;
                    }
                }
                Effect::Nothing(_why) => {}
            }
        }
        assert_eq!(cases, 8, "every case ran");
    }
}
