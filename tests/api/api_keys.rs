//! The API Keys page: list, create, link existing, edit, delete, roles, staff, audit.

use actix_web::http::StatusCode;
use bms_keys::ids::ApiKeyId;
use bms_keys::users::Role;

use crate::both_backends;
use crate::helpers::{PASSWORD, audit_actions, escaped, key_with_code};
use crate::paths;

both_backends! {
    async fn an_owner_creates_a_key_with_tags_and_policies(app) {
        let (browser, acc) = app.signed_in_owner("ana@example.com", "Shop").await;
        let csrf = browser.csrf_token_of(&paths::new_key(&acc, "create")).await;
        let res = browser
            .post_form(&paths::keys(&acc), &[
                ("csrf_token", &csrf), ("mode", "create"), ("name", "Zapier ads"),
                ("tags", " Zapier, prod ,zapier"), ("policy", "ads.read"), ("policy", "drive-files.read"),
            ])
            .await;
        assert_eq!(res.status, StatusCode::SEE_OTHER, "{}", res.body);
        let key_url = res.location().to_owned();
        assert!(key_url.starts_with(&format!("{}/key_", paths::keys(&acc))));
        let page = browser.get(&key_url).await;
        assert!(page.body.contains("API key &#34;Zapier ads&#34; created."), "flash");
        // The next step is a link on the saved key, until the key has a code.
        let key = key_url.rsplit('/').next().unwrap().to_owned();
        let next = format!(r#"href="{}#create-access-code">Create an access code</a>"#, paths::codes(&acc, &key));
        assert!(page.body.contains(&next), "{}", page.body);
        assert!(page.body.contains("value=\"prod, zapier\""), "tags normalised, shown sorted");
        let list = browser.get(&paths::keys(&acc)).await;
        assert!(list.body.contains(">Zapier ads</a>"));
        assert!(list.body.contains("<span class=\"tag\">prod</span><span class=\"tag\">zapier</span>"));
        assert!(list.body.contains("ads.read") && list.body.contains("drive-files.read"));
        assert!(list.body.contains("0 / 2"), "no codes yet");
        let actions = audit_actions(&app, &acc);
        assert_eq!(actions[0].0, "api_key.created");
        assert!(actions[0].2.contains("policies: ads.read, drive-files.read"), "{:?}", actions[0]);
        browser.create_code(&acc, &key, "first").await;
        assert!(!browser.get(&key_url).await.body.contains("Next: create an access code"), "gone once there is a code");
    }

    async fn a_key_without_policies_is_allowed_and_says_it_grants_nothing(app) {
        let (browser, acc) = app.signed_in_owner("ana@example.com", "Shop").await;
        let key = browser.create_key(&acc, "Later", "", &[]).await;
        let page = browser.get(&paths::key(&acc, &key)).await;
        assert!(page.body.contains("grants access to nothing yet"));
    }

    async fn an_invalid_key_form_comes_back_with_messages_and_input(app) {
        let (browser, acc) = app.signed_in_owner("ana@example.com", "Shop").await;
        let csrf = browser.csrf_token_of(&paths::new_key(&acc, "create")).await;
        let long = "n".repeat(101);
        for (name, tags, policy, message) in [
            ("", "ok", "ads.read", "Enter a name for the API key."),
            (long.as_str(), "", "ads.read", "Use at most 100 characters."),
            ("Fine", "ok, Bad tag!, x/y", "ads.read", "&#34;Bad tag!&#34; cannot contain a space, &#34;!&#34;; &#34;x/y&#34; cannot contain &#34;/&#34;"),
            ("Fine", "", "no.such.policy", "One of the selected policies does not exist."),
        ] {
            let res = browser
                .post_form(&paths::keys(&acc), &[("csrf_token", &csrf), ("mode", "create"), ("name", name), ("tags", tags), ("policy", policy)])
                .await;
            assert_eq!(res.status, StatusCode::UNPROCESSABLE_ENTITY, "{message}");
            assert!(res.body.contains(message), "missing {message:?}");
            assert!(res.body.contains(&format!("value=\"{}\"", escaped(tags))), "tags kept");
        }
        let res = browser
            .post_form(&paths::keys(&acc), &[("csrf_token", &csrf), ("mode", "create"), ("name", "<script>alert(1)</script>"), ("tags", "bad tag")])
            .await;
        assert!(res.body.contains(&escaped("<script>alert(1)</script>")) && !res.body.contains("<script>alert(1)"));
        let list = browser.get(&paths::keys(&acc)).await;
        assert!(list.body.contains("No API keys yet"), "nothing was created");
    }

    async fn a_key_named_like_html_is_shown_as_text(app) {
        let (browser, acc) = app.signed_in_owner("ana@example.com", "Shop").await;
        browser.create_key(&acc, "<script>alert('x')</script>", "", &[]).await;
        let list = browser.get(&paths::keys(&acc)).await;
        assert!(list.body.contains(&escaped("<script>alert('x')</script>")));
        assert!(!list.body.contains("<script>alert"));
    }

    async fn linking_a_key_of_another_account_needs_a_policy_and_shows_its_origin(app) {
        let (alice, acc_a) = app.signed_in_owner("alice@example.com", "Alpha").await;
        let source = alice.create_key(&acc_a, "Shared with Beta", "", &["ads.read"]).await;
        let (bob, acc_b) = app.signed_in_owner("bob@example.com", "Beta").await;

        let res = bob.link_key(&acc_b, &source, "", &[]).await;
        assert_eq!(res.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(res.body.contains("Select at least one policy"));
        assert!(res.body.contains(&format!("value=\"{source}\"")), "the id is kept");

        let res = bob.link_key(&acc_b, &source, "From Alpha", &["metrics.read"]).await;
        assert_eq!(res.status, StatusCode::SEE_OTHER, "{}", res.body);
        let link_page = bob.get(res.location()).await;
        assert!(link_page.body.contains("This is a linked API key."));
        assert!(link_page.body.contains("tab-disabled"), "the Access Codes tab is disabled");
        let list = bob.get(&paths::keys(&acc_b)).await;
        assert!(list.body.contains("Linked from Alpha"));
        assert!(audit_actions(&app, &acc_b)[0].0 == "api_key.linked");

        // The link's page names each id once, by what it is.
        let link = res.location().rsplit('/').next().unwrap().to_owned();
        assert!(link_page.body.contains(&format!(r#"ID <code class="key-id" id="api-key-id">{link}</code>"#)), "{}", link_page.body);
        assert!(link_page.body.contains(&format!(r#"source key <code class="key-id">{source}</code>"#)));
        assert!(link_page.body.contains("Linked from Alpha"));

        // Without a name, the source key's name names the link, never its id (a second `key_` id).
        let other = alice.create_key(&acc_a, "Second", "", &[]).await;
        let res = bob.link_key(&acc_b, &other, "", &["ads.read"]).await;
        assert_eq!(res.status, StatusCode::SEE_OTHER);
        let list = bob.get(&paths::keys(&acc_b)).await;
        assert!(list.body.contains(">Second</a>") && !list.body.contains(&format!(">{other}</a>")));
    }

    async fn linking_refuses_bad_ids_with_messages_that_reveal_nothing(app) {
        let (alice, acc_a) = app.signed_in_owner("alice@example.com", "Alpha").await;
        let source = alice.create_key(&acc_a, "Source", "", &[]).await;
        let (bob, acc_b) = app.signed_in_owner("bob@example.com", "Beta").await;
        let own = bob.create_key(&acc_b, "Bob's own", "", &[]).await;
        let res = bob.link_key(&acc_b, &source, "", &["ads.read"]).await;
        assert_eq!(res.status, StatusCode::SEE_OTHER);
        let bobs_link = res.location().rsplit('/').next().unwrap().to_owned();
        // Carol links a key too; Bob's link id is a linked key in another account from Carol's view.
        let (carol, acc_c) = app.signed_in_owner("carol@example.com", "Gamma").await;

        let cannot = "No API key with this ID can be linked.";
        for (account, browser, id, message) in [
            (&acc_b, &bob, "", "Enter the ID of the API key to link."),
            (&acc_b, &bob, "not-a-key", "This is not an API key ID."),
            (&acc_b, &bob, "key_0000000000000000", cannot),
            (&acc_b, &bob, own.as_str(), "This API key belongs to this account"),
            (&acc_b, &bob, source.as_str(), "already linked in this account"),
            (&acc_b, &bob, bobs_link.as_str(), "linked in this account already"),
            (&acc_c, &carol, bobs_link.as_str(), cannot),
        ] {
            let res = browser.link_key(account, id, "", &["ads.read"]).await;
            assert_eq!(res.status, StatusCode::UNPROCESSABLE_ENTITY, "{id}");
            assert!(res.body.contains(message), "{id}: expected {message:?}");
            assert!(!res.body.contains("Alpha") && !res.body.contains("Beta&") , "{id}: no other account is named");
            assert!(!res.body.contains("Enter a name for the API key."), "{id}: the name is optional when linking");
        }
        assert_eq!(audit_actions(&app, &acc_c).iter().filter(|a| a.0 == "api_key.linked").count(), 0);
    }

    async fn an_owner_edits_name_tags_and_policies(app) {
        let (browser, acc) = app.signed_in_owner("ana@example.com", "Shop").await;
        let key = browser.create_key(&acc, "Reports", "old", &["metrics.read"]).await;
        let url = paths::key(&acc, &key);
        let csrf = browser.csrf_token_of(&url).await;
        let res = browser
            .post_form(&url, &[("csrf_token", &csrf), ("name", "Reports v2"), ("tags", "new, Team:BI"), ("policy", "ads.read"), ("policy", "metrics.read")])
            .await;
        assert_eq!(res.status, StatusCode::SEE_OTHER, "{}", res.body);
        let page = browser.get(&url).await;
        assert!(page.body.contains("Changes to &#34;Reports v2&#34; saved."));
        assert!(page.body.contains("value=\"new, team:bi\""));
        let (action, staff, details) = audit_actions(&app, &acc)[0].clone();
        assert_eq!(action, "api_key.updated");
        assert!(!staff);
        assert!(details.contains("before: name: Reports; tags: old; policies: metrics.read"), "{details}");
        assert!(details.contains("after: name: Reports v2; tags: new, team:bi; policies: ads.read, metrics.read"), "{details}");

        let res = browser.post_form(&url, &[("csrf_token", &csrf), ("name", ""), ("tags", "x y")]).await;
        assert_eq!(res.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(res.body.contains("Enter a name for the API key.") && res.body.contains("value=\"x y\""));
        assert!(browser.get(&url).await.body.contains("value=\"Reports v2\""), "unchanged");
    }

    async fn a_linked_key_cannot_lose_its_last_policy(app) {
        let (alice, acc_a) = app.signed_in_owner("alice@example.com", "Alpha").await;
        let source = alice.create_key(&acc_a, "Source", "", &[]).await;
        let (bob, acc_b) = app.signed_in_owner("bob@example.com", "Beta").await;
        let link = bob.link_key(&acc_b, &source, "L", &["ads.read"]).await.location().to_owned();
        let csrf = bob.csrf_token_of(&link).await;
        let res = bob.post_form(&link, &[("csrf_token", &csrf), ("name", "L"), ("tags", "")]).await;
        assert_eq!(res.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(res.body.contains("Select at least one policy"));
    }

    async fn deleting_a_key_asks_first_then_removes_it_and_its_links_show_it(app) {
        let (alice, acc_a) = app.signed_in_owner("alice@example.com", "Alpha").await;
        let source = alice.create_key(&acc_a, "Going away", "", &[]).await;
        let (bob, acc_b) = app.signed_in_owner("bob@example.com", "Beta").await;
        assert_eq!(bob.link_key(&acc_b, &source, "Mine", &["ads.read"]).await.status, StatusCode::SEE_OTHER);

        let delete_url = paths::delete_key(&acc_a, &source);
        let confirm = alice.get(&delete_url).await;
        assert_eq!(confirm.status, StatusCode::OK);
        assert!(confirm.body.contains("This cannot be undone.") && confirm.body.contains("stops working"));
        let res = alice.post_form(&delete_url, &[("csrf_token", &confirm.csrf_token())]).await;
        assert_eq!(res.status, StatusCode::SEE_OTHER);
        assert_eq!(res.location(), paths::keys(&acc_a));
        let list = alice.get(&paths::keys(&acc_a)).await;
        assert!(list.body.contains("API key &#34;Going away&#34; deleted."));
        assert!(list.body.contains("No API keys yet"));
        assert_eq!(alice.get(&paths::key(&acc_a, &source)).await.status, StatusCode::NOT_FOUND);
        assert_eq!(audit_actions(&app, &acc_a)[0].0, "api_key.deleted");

        let bobs = bob.get(&paths::keys(&acc_b)).await;
        assert!(bobs.body.contains("Linked — source key deleted"));
    }

    async fn the_source_owner_sees_the_accounts_linking_a_key_and_can_remove_a_link(app) {
        let (alice, acc_a) = app.signed_in_owner("alice@example.com", "Alpha").await;
        let (source, _code, secret) = key_with_code(&alice, &acc_a, "Shared", &["ads.read"]).await;
        let source_page = alice.get(&paths::key(&acc_a, &source)).await;
        assert!(source_page.body.contains("No other account links this key."));
        let (bob, acc_b) = app.signed_in_owner("bob@example.com", "Beta").await;
        let res = bob.link_key(&acc_b, &source, "From Alpha", &["ads.read", "metrics.read"]).await;
        assert_eq!(res.status, StatusCode::SEE_OTHER);
        let link = res.location().rsplit('/').next().unwrap().to_owned();
        let client = app.browser();
        let ads = paths::api(&acc_b, "ads");
        assert_eq!(client.api("GET", &ads, &secret).await.status, StatusCode::OK, "the link grants");

        // The source key's page lists the linking account with what it granted.
        let source_page = alice.get(&paths::key(&acc_a, &source)).await;
        assert!(source_page.body.contains("Linked by other accounts"));
        assert!(source_page.body.contains("<td>Beta</td>"), "{}", source_page.body);
        assert!(source_page.body.contains(">ads.read</span>") && source_page.body.contains(">metrics.read</span>"));
        let remove = paths::remove_link(&acc_a, &source, &link);
        assert!(source_page.body.contains(&format!("href=\"{remove}\"")));

        // Nobody else can remove it: not the linking account, not a viewer, not another key's owner.
        assert_eq!(bob.get(&paths::remove_link(&acc_b, &source, &link)).await.status, StatusCode::NOT_FOUND);
        app.add_user("vic@example.com", PASSWORD, "Alpha", Role::Viewer, false);
        let vic = app.browser();
        vic.log_in("vic@example.com", PASSWORD).await;
        let viewer_page = vic.get(&paths::key(&acc_a, &source)).await;
        assert!(viewer_page.body.contains("<td>Beta</td>") && !viewer_page.body.contains(&remove), "a viewer sees, cannot remove");
        let csrf = vic.csrf_token_of(&paths::keys(&acc_a)).await;
        assert_eq!(vic.post_form(&remove, &[("csrf_token", &csrf)]).await.status, StatusCode::FORBIDDEN);
        let other = alice.create_key(&acc_a, "Other", "", &[]).await;
        assert_eq!(alice.get(&paths::remove_link(&acc_a, &other, &link)).await.status, StatusCode::NOT_FOUND);
        assert_eq!(client.api("GET", &ads, &secret).await.status, StatusCode::OK, "refusals changed nothing");

        // The owner confirms, and the link stops granting at once.
        let confirm = alice.get(&remove).await;
        assert_eq!(confirm.status, StatusCode::OK);
        assert!(confirm.body.contains("Remove Beta’s link to “Shared”?") && confirm.body.contains("Cancel"));
        let res = alice.post_form(&remove, &[("csrf_token", &confirm.csrf_token())]).await;
        assert_eq!(res.status, StatusCode::SEE_OTHER);
        assert_eq!(res.location(), paths::key(&acc_a, &source));
        let after = alice.get(res.location()).await;
        assert!(after.body.contains("Link removed") && after.body.contains("No other account links this key."));
        let refused = client.api("GET", &ads, &secret).await;
        assert_eq!(refused.status, StatusCode::FORBIDDEN, "{}", refused.body);
        assert_eq!(client.api("GET", &paths::api(&acc_a, "ads"), &secret).await.status, StatusCode::OK, "the key still works at home");

        // Both audit logs say so; Beta's names Alpha, not Alice.
        let (action, _, details) = audit_actions(&app, &acc_a)[0].clone();
        assert_eq!(action, "api_key.link_removed");
        assert!(details.contains(&link) && details.contains("Beta"), "{details}");
        let (action, _, details) = audit_actions(&app, &acc_b)[0].clone();
        assert_eq!(action, "api_key.link_removed");
        assert!(details.contains(&source), "{details}");
        let log = bob.get(&paths::audit(&acc_b)).await;
        assert!(log.body.contains("An owner of Alpha") && !log.body.contains("alice@example.com"));

        // Beta's key says what happened, and the key cannot be linked again, even after deleting it.
        let bobs = bob.get(&paths::key(&acc_b, &link)).await;
        assert!(bobs.body.contains("The owner of the source key removed this link"), "{}", bobs.body);
        assert!(bobs.body.contains(&format!("source key <code class=\"key-id\">{source}</code>")));
        assert!(bob.get(&paths::keys(&acc_b)).await.body.contains("link removed by the source"));
        let again = bob.link_key(&acc_b, &source, "", &["ads.read"]).await;
        assert_eq!(again.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(again.body.contains("removed this account&#39;s link to it"), "{}", again.body);
        let csrf = bob.csrf_token_of(&paths::keys(&acc_b)).await;
        assert_eq!(bob.post_form(&paths::delete_key(&acc_b, &link), &[("csrf_token", &csrf)]).await.status, StatusCode::SEE_OTHER);
        assert_eq!(bob.link_key(&acc_b, &source, "", &["ads.read"]).await.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(client.api("GET", &ads, &secret).await.status, StatusCode::FORBIDDEN);

        // Removing it twice: the link is gone.
        let csrf = alice.csrf_token_of(&paths::keys(&acc_a)).await;
        assert_eq!(alice.post_form(&remove, &[("csrf_token", &csrf)]).await.status, StatusCode::NOT_FOUND);
    }

    async fn the_editor_mode_is_create_or_link_and_anything_else_is_refused(app) {
        let (browser, acc) = app.signed_in_owner("ana@example.com", "Shop").await;
        let link = browser.get(&paths::new_key(&acc, "link")).await;
        assert!(link.body.contains("Link an existing API key") && link.body.contains(r#"name="mode" value="link""#));
        let missing = browser.get(&paths::editor(&acc)).await;
        assert!(missing.body.contains("Create an API key") && missing.body.contains(r#"name="mode" value="create""#));
        for mode in ["LINK", "delete", "link%00"] {
            let res = browser.get(&paths::new_key(&acc, mode)).await;
            assert_eq!(res.status, StatusCode::BAD_REQUEST, "GET mode={mode}");
        }
        let csrf = browser.csrf_token_of(&paths::editor(&acc)).await;
        for mode in ["Create", "rotate", ""] {
            let res = browser
                .post_form(&paths::keys(&acc), &[("csrf_token", &csrf), ("mode", mode), ("name", "Odd mode"), ("policy", "ads.read")])
                .await;
            assert_eq!(res.status, StatusCode::BAD_REQUEST, "POST mode={mode:?}");
        }
        let res = browser.post_form(&paths::keys(&acc), &[("csrf_token", &csrf), ("name", "No mode"), ("policy", "ads.read")]).await;
        assert_eq!(res.status, StatusCode::SEE_OTHER, "a form without mode creates");
        let list = browser.get(&paths::keys(&acc)).await;
        assert!(list.body.contains("No mode") && !list.body.contains("Odd mode"));
    }

    async fn an_unknown_stored_kind_role_or_action_is_refused_or_an_error_never_a_default(app) {
        use diesel::prelude::*;
        let (browser, acc) = app.signed_in_owner("ana@example.com", "Shop").await;
        let key = browser.create_key(&acc, "Odd", "", &["ads.read"]).await;
        let mut conn = app.conn();
        // Kind and role: the database itself refuses a value the code does not know.
        for sql in [
            format!("UPDATE api_keys SET kind = 'borrowed' WHERE id = '{key}'"),
            format!("UPDATE memberships SET role = 'admin' WHERE account_id = '{acc}'"),
        ] {
            let err = diesel::sql_query(&sql).execute(&mut conn).expect_err(&sql);
            assert!(format!("{err:?}").contains("CheckViolation"), "{sql}: {err:?}");
        }
        // Audit actions are open-ended text in the table: reading one the code does not know is an error.
        diesel::sql_query(format!(
            "INSERT INTO audit_events (account_id, actor_email, actor_is_staff, action, target, client_ip, details, occurred_at) \
             SELECT account_id, actor_email, actor_is_staff, 'api_key.borrowed', target, client_ip, details, occurred_at \
             FROM audit_events WHERE account_id = '{acc}' LIMIT 1"
        ))
        .execute(&mut conn)
        .unwrap();
        let err = bms_keys::audit::AuditEvent::list_for_account(&mut conn, &acc, 0, 10).expect_err("an unknown action");
        assert!(err.to_string().contains(r#"unknown audit action "api_key.borrowed""#), "{err}");
        let key = bms_keys::api_keys::find_in_account(&mut conn, &acc, &ApiKeyId::parse(&key).unwrap()).unwrap();
        assert_eq!(key.kind, bms_keys::api_keys::Kind::Own);
    }

    async fn viewers_see_keys_but_cannot_change_them(app) {
        let (owner, acc) = app.signed_in_owner("ana@example.com", "Shop").await;
        let key = owner.create_key(&acc, "Existing", "", &["ads.read"]).await;
        app.add_user("vic@example.com", PASSWORD, "Shop", Role::Viewer, false);
        let viewer = app.browser();
        viewer.log_in("vic@example.com", PASSWORD).await;
        let list = viewer.get(&paths::keys(&acc)).await;
        assert_eq!(list.status, StatusCode::OK);
        assert!(list.body.contains("Existing"));
        assert!(!list.body.contains("Create API key") && !list.body.contains(">Delete<") && !list.body.contains(">Edit<"));
        let page = viewer.get(&paths::key(&acc, &key)).await;
        assert!(!page.body.contains("Save changes") && page.body.contains("only owners can change API keys"));
        assert_eq!(viewer.get(&paths::new_key(&acc, "create")).await.status, StatusCode::FORBIDDEN);
        assert_eq!(viewer.get(&paths::delete_key(&acc, &key)).await.status, StatusCode::FORBIDDEN);

        let csrf = viewer.csrf_token_of(&paths::keys(&acc)).await;
        let create = viewer.post_form(&paths::keys(&acc), &[("csrf_token", &csrf), ("mode", "create"), ("name", "Sneaky")]).await;
        let update = viewer.post_form(&paths::key(&acc, &key), &[("csrf_token", &csrf), ("name", "Renamed")]).await;
        let delete = viewer.post_form(&paths::delete_key(&acc, &key), &[("csrf_token", &csrf)]).await;
        for res in [create, update, delete] {
            assert_eq!(res.status, StatusCode::FORBIDDEN);
        }
        let list = owner.get(&paths::keys(&acc)).await;
        assert!(list.body.contains("Existing") && !list.body.contains("Sneaky") && !list.body.contains("Renamed"));
    }

    async fn support_staff_act_as_owners_and_are_marked_in_the_audit_log(app) {
        let (_, acc) = app.signed_in_owner("ana@example.com", "Customer").await;
        app.add_user("sam@bms.example", PASSWORD, "BMS Support", Role::Owner, true);
        let staff = app.browser();
        staff.log_in("sam@bms.example", PASSWORD).await;
        let key = staff.create_key(&acc, "Made by support", "", &[]).await;
        let page = staff.get(&paths::key(&acc, &key)).await;
        assert!(page.body.contains("Support staff view of <strong>Customer</strong>"));
        let audit = staff.get(&paths::audit(&acc)).await;
        assert!(audit.body.contains("sam@bms.example <span class=\"badge warning\">staff</span>"));
        let (action, is_staff, _) = audit_actions(&app, &acc)[0].clone();
        assert_eq!(action, "api_key.created");
        assert!(is_staff);
    }

    async fn keys_of_another_account_are_not_found(app) {
        let (alice, acc_a) = app.signed_in_owner("alice@example.com", "Alpha").await;
        let key_a = alice.create_key(&acc_a, "Alpha's", "", &[]).await;
        let (bob, acc_b) = app.signed_in_owner("bob@example.com", "Beta").await;
        let csrf = bob.csrf_token_of(&paths::keys(&acc_b)).await;
        // Through Alpha's URLs, and through Bob's own account URL with Alpha's key id.
        for acc in [&acc_a, &acc_b] {
            for path in [paths::key(acc, &key_a), paths::delete_key(acc, &key_a)] {
                assert_eq!(bob.get(&path).await.status, StatusCode::NOT_FOUND, "{path}");
                assert_eq!(bob.post_form(&path, &[("csrf_token", &csrf), ("name", "x")]).await.status, StatusCode::NOT_FOUND, "{path}");
            }
        }
        for path in [paths::keys(&acc_a), paths::new_key(&acc_a, "create"), paths::audit(&acc_a)] {
            assert_eq!(bob.get(&path).await.status, StatusCode::NOT_FOUND, "{path}");
        }
        let res = bob.post_form(&paths::keys(&acc_a), &[("csrf_token", &csrf), ("mode", "create"), ("name", "x")]).await;
        assert_eq!(res.status, StatusCode::NOT_FOUND);
        assert!(alice.get(&paths::key(&acc_a, &key_a)).await.body.contains("Alpha&#39;s"));
    }

    async fn key_changes_without_the_csrf_token_are_refused(app) {
        let (browser, acc) = app.signed_in_owner("ana@example.com", "Shop").await;
        let key = browser.create_key(&acc, "Keep", "", &[]).await;
        let key_url = paths::key(&acc, &key);
        for (path, fields) in [
            (paths::keys(&acc), vec![("mode", "create"), ("name", "New")]),
            (key_url.clone(), vec![("name", "Changed")]),
            (paths::delete_key(&acc, &key), vec![]),
        ] {
            let res = browser.post_form(&path, &fields).await;
            assert_eq!(res.status, StatusCode::FORBIDDEN, "{path}");
            let mut forged = fields.clone();
            forged.push(("csrf_token", "forged"));
            assert_eq!(browser.post_form(&path, &forged).await.status, StatusCode::FORBIDDEN, "{path}");
        }
        let list = browser.get(&paths::keys(&acc)).await;
        assert!(list.body.contains(">Keep</a>") && !list.body.contains(">New</a>"));
    }

    async fn the_list_searches_filters_by_tag_and_paginates(app) {
        let (browser, acc) = app.signed_in_owner("ana@example.com", "Shop").await;
        let mut ids = Vec::new();
        for i in 0..27 {
            let tag = if i % 3 == 0 { "even3" } else { "other" };
            ids.push(browser.create_key(&acc, &format!("Key {i:02}"), tag, &[]).await);
        }
        let first = browser.get(&paths::keys(&acc)).await;
        assert!(first.body.contains("27 keys"));
        assert!(first.body.contains(">Key 26</a>") && !first.body.contains(">Key 01</a>"), "newest first, 25 per page");
        assert!(first.body.contains("rel=\"next\""));
        let second = browser.get(&format!("{}?page=2", paths::keys(&acc))).await;
        assert!(second.body.contains(">Key 01</a>") && second.body.contains(">Key 00</a>") && !second.body.contains(">Key 26</a>"));
        for weird in ["999999999999", "-5", "abc", "0"] {
            let res = browser.get(&format!("{}?page={weird}", paths::keys(&acc))).await;
            assert_eq!(res.status, StatusCode::OK, "page={weird}");
        }
        let search = browser.get(&format!("{}?q=key%2012", paths::keys(&acc))).await;
        assert!(search.body.contains(">Key 12</a>") && search.body.contains("1 key<"));
        let by_id = browser.get(&format!("{}?q={}", paths::keys(&acc), ids[5])).await;
        assert!(by_id.body.contains(">Key 05</a>") && by_id.body.contains("1 key<"));
        let tagged = browser.get(&format!("{}?tag=even3", paths::keys(&acc))).await;
        assert!(tagged.body.contains("9 keys"));
        let none = browser.get(&format!("{}?q=%25_%5C", paths::keys(&acc))).await;
        assert!(none.body.contains("No API key matches"), "LIKE wildcards are literal");
    }

    async fn the_audit_log_lists_changes_newest_first(app) {
        let (browser, acc) = app.signed_in_owner("ana@example.com", "Shop").await;
        let key = browser.create_key(&acc, "First", "", &[]).await;
        let csrf = browser.csrf_token_of(&paths::keys(&acc)).await;
        browser.post_form(&paths::delete_key(&acc, &key), &[("csrf_token", &csrf)]).await;
        let page = browser.get(&paths::audit(&acc)).await;
        assert_eq!(page.status, StatusCode::OK);
        let deleted = page.body.find("api_key.deleted").expect("deleted event");
        let created = page.body.find("api_key.created").expect("created event");
        let login = page.body.find("login.succeeded").expect("sign-in event");
        assert!(deleted < created && created < login, "newest first");
        assert!(page.body.contains("ana@example.com") && page.body.contains("127.0.0.1"));
    }

    async fn the_api_catalogue_lists_every_api_and_the_policies_granting_it(app) {
        let page = app.browser().get(paths::API_DOCS).await;
        assert_eq!(page.status, StatusCode::OK);
        for text in ["/api/v1/accounts/{account}/ads", "/api/v1/accounts/{account}/metrics", "/api/v1/accounts/{account}/drive-files", "ads.write", "full-access"] {
            assert!(page.body.contains(&escaped(text)), "{text}");
        }
    }

    async fn a_policy_removed_from_the_catalogue_shows_as_retired(app) {
        let (browser, acc) = app.signed_in_owner("ana@example.com", "Shop").await;
        browser.create_key(&acc, "Old grants", "", &["ads.read", "metrics.read"]).await;
        let smaller = bms_keys::policies::EMBEDDED_CATALOGUE.replace("name = \"ads.read\"", "name = \"ads.read-v2\"");
        let catalogue = bms_keys::policies::Catalogue::parse(&smaller).unwrap();
        catalogue.sync(&mut app.conn()).unwrap();
        let list = browser.get(&paths::keys(&acc)).await;
        assert!(list.body.contains("ads.read (retired)"), "{}", list.body);
        let editor = browser.get(&paths::new_key(&acc, "create")).await;
        assert!(editor.body.contains("value=\"ads.read-v2\"") && !editor.body.contains("value=\"ads.read\""));
    }
}
