//! The first run: the one-time setup link creates the first owner and account.

use actix_web::http::StatusCode;

use crate::both_backends;
use crate::helpers::{TestApp, escaped};
use crate::paths;

fn setup_path(app: &TestApp) -> String {
    let token = app
        .state
        .setup
        .token()
        .expect("a setup token while no user exists");
    paths::setup(&token)
}

both_backends! {
    async fn the_setup_link_creates_the_first_owner_and_signs_them_in(app) {
        let path = setup_path(&app);
        let browser = app.browser();
        let page = browser.get(&path).await;
        assert_eq!(page.status, StatusCode::OK);
        assert!(page.body.contains("Welcome to BMS"));
        let res = browser
            .post_form(&path, &[
                ("csrf_token", &page.csrf_token()),
                ("account_name", "Acme Ads"),
                ("display_name", "Ana Owner"),
                ("email", "ana@acme.example"),
                ("password", "a long enough password"),
                ("password_confirm", "a long enough password"),
            ])
            .await;
        assert_eq!(res.status, StatusCode::SEE_OTHER, "{}", res.body);
        assert!(res.location().ends_with("/permissions/api-keys"), "{}", res.location());
        let landing = browser.get(res.location()).await;
        assert_eq!(landing.status, StatusCode::OK);
        assert!(landing.body.contains("Welcome! Your account Acme Ads is ready."));
        assert!(landing.body.contains("Acme Ads"));

        // One time only: the link is gone, and the owner signs in normally.
        assert_eq!(app.browser().get(&path).await.status, StatusCode::NOT_FOUND);
        assert!(app.state.setup.token().is_none());
        let again = app.browser().log_in("ana@acme.example", "a long enough password").await;
        assert_eq!(again.status, StatusCode::SEE_OTHER);
    }

    async fn the_setup_page_needs_the_right_token(app) {
        let browser = app.browser();
        assert_eq!(browser.get(paths::SETUP).await.status, StatusCode::NOT_FOUND);
        assert_eq!(browser.get(&paths::setup("wrong")).await.status, StatusCode::NOT_FOUND);
        let res = browser.post_form(&paths::setup("wrong"), &[("email", "x@example.com")]).await;
        assert_eq!(res.status, StatusCode::NOT_FOUND);
    }

    async fn an_invalid_setup_form_is_shown_again_with_messages_and_input(app) {
        let path = setup_path(&app);
        let browser = app.browser();
        let page = browser.get(&path).await;
        let res = browser
            .post_form(&path, &[
                ("csrf_token", &page.csrf_token()),
                ("account_name", "<script>alert(1)</script>"),
                ("display_name", ""),
                ("email", "not-an-email"),
                ("password", "short"),
                ("password_confirm", "different"),
            ])
            .await;
        assert_eq!(res.status, StatusCode::UNPROCESSABLE_ENTITY);
        for message in [
            "Enter your name.",
            "Enter an email address like name@example.com.",
            "Use at least 10 characters.",
            "The two passwords do not match.",
        ] {
            assert!(res.body.contains(message), "missing {message:?}");
        }
        assert!(res.body.contains("value=\"not-an-email\""), "input kept");
        assert!(res.body.contains(&escaped("<script>alert(1)</script>")), "escaped, not executed");
        assert!(!res.body.contains("<script>alert(1)"));
        assert!(!res.body.contains("value=\"short\""), "passwords are never echoed back");
        assert!(app.state.setup.token().is_some(), "nothing was created");
    }

    async fn the_setup_form_checks_its_csrf_token(app) {
        let path = setup_path(&app);
        let browser = app.browser();
        browser.get(&path).await;
        let res = browser
            .post_form(&path, &[
                ("csrf_token", "forged"),
                ("account_name", "Acme"),
                ("display_name", "Ana"),
                ("email", "ana@acme.example"),
                ("password", "a long enough password"),
                ("password_confirm", "a long enough password"),
            ])
            .await;
        assert_eq!(res.status, StatusCode::FORBIDDEN);
        assert!(app.state.setup.token().is_some());
    }
}

#[actix_web::test]
async fn no_setup_link_exists_once_a_user_does() {
    let first = TestApp::spawn(crate::helpers::Backend::Sqlite).await;
    first.add_user(
        "ana@example.com",
        crate::helpers::PASSWORD,
        "Shop",
        bms_keys::users::Role::Owner,
        false,
    );
    // A restart of the same database: users exist, so no link is offered.
    let settings = bms_keys::config::Settings::local(
        first.database_url.clone(),
        std::path::PathBuf::from(&first.database_url)
            .parent()
            .expect("dir")
            .to_path_buf(),
    );
    let second = bms_keys::startup::Application::build(settings).expect("restart");
    assert!(second.state().setup.token().is_none());
}
