//! What users do, as steps the tests build on: sign in, create and link keys, create codes, call an
//! API with a code. Each goes through the console's real forms and asserts it worked.

use actix_web::http::StatusCode;
use bms_keys::users::Role;

use super::{Browser, PASSWORD, TestApp, TestResponse, secret_in};
use crate::paths;

impl Browser {
    /// Opens the sign-in page (for its CSRF cookie and token) and signs in.
    pub async fn log_in(&self, email: &str, password: &str) -> TestResponse {
        let page = self.get(paths::LOGIN).await;
        assert_eq!(page.status, StatusCode::OK);
        let token = page.csrf_token();
        self.post_form(
            paths::LOGIN,
            &[
                ("email", email),
                ("password", password),
                ("csrf_token", &token),
            ],
        )
        .await
    }
}

impl TestApp {
    /// A browser signed in as a new owner of a new account; returns it and the account id.
    pub async fn signed_in_owner(&self, email: &str, account: &str) -> (Browser, String) {
        let account_id = self.add_user(email, PASSWORD, account, Role::Owner, false);
        let browser = self.browser();
        let res = browser.log_in(email, PASSWORD).await;
        assert_eq!(
            res.status,
            StatusCode::SEE_OTHER,
            "sign-in of {email}: {}",
            res.body
        );
        (browser, account_id)
    }
}

impl Browser {
    /// Creates an own key through the editor form; returns its id.
    pub async fn create_key(
        &self,
        account_id: &str,
        name: &str,
        tags: &str,
        policies: &[&str],
    ) -> String {
        let keys = paths::keys(account_id);
        let csrf = self
            .csrf_token_of(&paths::new_key(account_id, "create"))
            .await;
        let mut fields = vec![
            ("csrf_token", csrf.as_str()),
            ("mode", "create"),
            ("name", name),
            ("tags", tags),
        ];
        fields.extend(policies.iter().map(|p| ("policy", *p)));
        let res = self.post_form(&keys, &fields).await;
        assert_eq!(
            res.status,
            StatusCode::SEE_OTHER,
            "create key {name}: {}",
            res.body
        );
        res.location()
            .rsplit('/')
            .next()
            .expect("key id")
            .to_owned()
    }

    /// Submits the link form; returns the response.
    pub async fn link_key(
        &self,
        account_id: &str,
        source_id: &str,
        name: &str,
        policies: &[&str],
    ) -> TestResponse {
        let keys = paths::keys(account_id);
        let csrf = self
            .csrf_token_of(&paths::new_key(account_id, "link"))
            .await;
        let mut fields = vec![
            ("csrf_token", csrf.as_str()),
            ("mode", "link"),
            ("name", name),
            ("linked_key_id", source_id),
            ("tags", ""),
        ];
        fields.extend(policies.iter().map(|p| ("policy", *p)));
        self.post_form(&keys, &fields).await
    }
}

impl Browser {
    /// Creates an access code through the tab's form; returns its id and secret (read from the secret
    /// view it redirects to).
    pub async fn create_code(
        &self,
        account_id: &str,
        key_id: &str,
        description: &str,
    ) -> (String, String) {
        let tab = paths::codes(account_id, key_id);
        let csrf = self.csrf_token_of(&tab).await;
        let res = self
            .post_form(&tab, &[("csrf_token", &csrf), ("description", description)])
            .await;
        assert_eq!(
            res.status,
            StatusCode::SEE_OTHER,
            "create code: {}",
            res.body
        );
        let location = res.location().to_owned();
        let code_id = location
            .trim_end_matches("/secret")
            .rsplit('/')
            .next()
            .expect("code id")
            .to_owned();
        let page = self.get(&location).await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.body);
        (code_id, secret_in(&page.body))
    }
}

impl Browser {
    /// Disables or enables a code through its switch on the Access Codes tab (`csrf` from any page
    /// of the account), asserting the console accepted it.
    pub async fn set_code_enabled(
        &self,
        account_id: &str,
        key_id: &str,
        code_id: &str,
        csrf: &str,
        enabled: bool,
    ) {
        let res = self
            .post_form(
                &paths::code_enabled(account_id, key_id, code_id),
                &[
                    ("csrf_token", csrf),
                    ("enabled", if enabled { "true" } else { "false" }),
                ],
            )
            .await;
        assert_eq!(res.status, StatusCode::SEE_OTHER, "{}", res.body);
    }
}

/// A key with the given policies and one access code: (key id, code id, secret).
pub async fn key_with_code(
    browser: &Browser,
    account_id: &str,
    name: &str,
    policies: &[&str],
) -> (String, String, String) {
    let key = browser.create_key(account_id, name, "", policies).await;
    let (code, secret) = browser.create_code(account_id, &key, "").await;
    (key, code, secret)
}

impl Browser {
    /// Calls a BMS API with the access code in the `x-api-key` header.
    pub async fn api(&self, method: &str, path: &str, secret: &str) -> TestResponse {
        let body = (method == "POST")
            .then(|| r#"{"name":"Spring sale","daily_budget_cents":5000}"#.to_owned());
        self.request(
            method,
            path,
            &[("x-api-key", secret), ("content-type", "application/json")],
            body,
        )
        .await
    }
}
