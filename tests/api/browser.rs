//! The console in a real headless Chromium, driven over WebDriver: the user guide's journey with a
//! screenshot of every screen, the policy modal by keyboard alone, and the journey without JavaScript.
//! Runs when `BMS_TEST_CHROMEDRIVER` names chromedriver (`.ci/run` installs Debian's chromium and
//! chromium-driver and sets it); otherwise reported as ignored. Screenshots go to
//! `target/screenshots/<test>/`, printed by each test.

use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use actix_web::http::StatusCode;
use bms_keys::users::Role;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::json;

use crate::helpers::{Backend, Browser, PASSWORD, TestApp, free_port, key_with_code};
use crate::paths;

/// A Chromium session with its chromedriver, closed (and killed) when the test ends.
pub(crate) struct Session {
    pub(crate) client: Client,
    driver: Child,
    base: String,
    shots: PathBuf,
    taken: usize,
    _profile: tempfile::TempDir,
}

impl Drop for Session {
    /// Kills chromedriver's whole process group: Chromium's processes too, which would otherwise
    /// outlive the test (and keep a core busy for the rest of the run).
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.driver.id())])
            .status();
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

pub(crate) const ENTER: &str = "\u{E007}";
pub(crate) const TAB: &str = "\u{E004}";
pub(crate) const ESCAPE: &str = "\u{E00C}";

impl Session {
    pub(crate) async fn start(app: &TestApp, test: &str, javascript: bool) -> Session {
        let chromedriver = std::env::var("BMS_TEST_CHROMEDRIVER")
            .expect("BMS_TEST_CHROMEDRIVER names chromedriver");
        let chromium =
            std::env::var("BMS_TEST_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".to_owned());
        let port = free_port();
        // A zone with a half-hour offset: the console's times must show in it, not in UTC.
        let driver = Command::new(&chromedriver)
            .arg(format!("--port={port}"))
            // Its own process group, with every Chromium process it starts: killed as one.
            .process_group(0)
            .env("TZ", "Asia/Kolkata")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {chromedriver}: {e}"));
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(15),
                "chromedriver did not start"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        let profile = tempfile::tempdir().unwrap();
        // This machine has no outside network: Chromium must not try to reach Google's services.
        let args = vec![
            "--headless".to_owned(),
            "--no-sandbox".to_owned(),
            "--disable-gpu".to_owned(),
            "--disable-quic".to_owned(),
            "--no-first-run".to_owned(),
            "--disable-background-networking".to_owned(),
            "--disable-component-update".to_owned(),
            "--disable-sync".to_owned(),
            "--disable-dev-shm-usage".to_owned(),
            format!("--user-data-dir={}", profile.path().display()),
            "--window-size=1280,900".to_owned(),
        ];
        let mut options = json!({ "binary": chromium, "args": args });
        if !javascript {
            options["prefs"] = json!({ "profile.managed_default_content_settings.javascript": 2 });
        }
        let mut caps = serde_json::Map::new();
        caps.insert("browserName".into(), json!("chrome"));
        caps.insert("goog:chromeOptions".into(), options);
        let client = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(caps)
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
            .expect("a Chromium session");
        let shots = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("target/screenshots")
            .join(test);
        let _ = std::fs::remove_dir_all(&shots);
        std::fs::create_dir_all(&shots).unwrap();
        println!("screenshots of {test}: {}", shots.display());
        Session {
            client,
            driver,
            base: app.address.clone(),
            shots,
            taken: 0,
            _profile: profile,
        }
    }

    pub(crate) async fn goto(&self, path: &str) {
        self.client
            .goto(&format!("{}{path}", self.base))
            .await
            .unwrap();
    }

    pub(crate) async fn shot(&mut self, name: &str) {
        self.taken += 1;
        let png = self.client.screenshot().await.unwrap();
        std::fs::write(
            self.shots.join(format!("{:02}-{name}.png", self.taken)),
            png,
        )
        .unwrap();
    }

    pub(crate) async fn find(&self, css: &str) -> fantoccini::elements::Element {
        self.client
            .wait()
            .at_most(Duration::from_secs(10))
            .for_element(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("no {css}: {e}"))
    }

    pub(crate) async fn click(&self, css: &str) {
        self.find(css)
            .await
            .click()
            .await
            .unwrap_or_else(|e| panic!("cannot click {css}: {e}"));
    }

    pub(crate) async fn click_link(&self, text: &str) {
        let link = self
            .client
            .wait()
            .at_most(Duration::from_secs(10))
            .for_element(Locator::LinkText(text))
            .await
            .unwrap_or_else(|e| panic!("no link {text:?}: {e}"));
        link.click().await.unwrap();
    }

    pub(crate) async fn type_into(&self, css: &str, text: &str) {
        let field = self.find(css).await;
        field.clear().await.unwrap();
        field.send_keys(text).await.unwrap();
    }

    /// Waits until the page contains `text` (after a navigation or a script).
    pub(crate) async fn wait_text(&self, text: &str) -> String {
        let started = Instant::now();
        loop {
            let source = self.client.source().await.unwrap();
            if source.contains(text) {
                return source;
            }
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "page never showed {text:?}:\n{source}"
            );
            actix_web::rt::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub(crate) async fn js(&self, script: &str) -> serde_json::Value {
        self.client.execute(script, vec![]).await.unwrap()
    }

    pub(crate) async fn sign_in(&self, email: &str) {
        self.goto(paths::LOGIN).await;
        self.type_into("#email", email).await;
        self.type_into("#password", PASSWORD).await;
        self.click("form button[type=submit]").await;
        // Account members land on their API Keys, support staff on the account picker.
        self.wait_text("<details class=\"account-menu\">").await;
    }

    pub(crate) async fn sign_out(&self) {
        self.click("details.account-menu summary").await;
        self.click(".menu-form button").await;
        self.wait_text("You have signed out.").await;
    }

    /// The browser's cookies as a `Cookie` header, to fetch what a link points at.
    pub(crate) async fn cookie_header(&self) -> String {
        self.client
            .get_all_cookies()
            .await
            .unwrap()
            .iter()
            .map(|c| format!("{}={}", c.name(), c.value()))
            .collect::<Vec<_>>()
            .join("; ")
    }
}

/// The owner every browser test signs in as at some point.
pub(crate) const OLIVIA: &str = "olivia@acme.example";

/// The app on a fresh SQLite database with Olivia, owner of Acme Ads; returns it and Acme's id.
pub(crate) async fn app_with_acme() -> (TestApp, String) {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let acme = app.add_user(OLIVIA, PASSWORD, "Acme Ads", Role::Owner, false);
    (app, acme)
}

#[actix_web::test]
#[cfg_attr(
    not(bms_browser_tests),
    ignore = "browser: set BMS_TEST_CHROMEDRIVER to chromedriver to run"
)]
async fn the_user_guide_journey_in_chromium() {
    let (app, acme) = app_with_acme().await;
    let partner = app.add_user(
        "pat@partner.example",
        PASSWORD,
        "Partner Co",
        Role::Owner,
        false,
    );
    let mut s = Session::start(&app, "journey", true).await;

    s.goto(paths::LOGIN).await;
    s.shot("sign-in").await;
    s.sign_in(OLIVIA).await;
    s.shot("api-keys-empty").await;
    // The account's name top right → Permissions → API Keys.
    s.click("details.account-menu summary").await;
    s.shot("account-menu").await;
    s.click_link("Permissions").await;
    s.wait_text("No API keys yet").await;

    s.click_link("+ Create API key").await;
    s.type_into("#name", "Zapier — ads from Drive").await;
    s.type_into("#tags", "zapier, prod").await;
    s.click("[data-open-policies]").await;
    assert_eq!(
        s.js("return document.querySelector('[data-policy-dialog]').open")
            .await,
        json!(true)
    );
    s.type_into("[data-policy-filter]", "ads").await;
    assert_eq!(s.js("return [...document.querySelectorAll('[data-policy-option]')].filter(o => o.offsetParent !== null).length").await, json!(4), "only ads.read, ads.write, drive-files.read (\"build ads\") and full-access are shown");
    s.shot("policy-modal-filtered").await;
    s.click("[data-dialog-policy][value='ads.read']").await;
    s.click("[data-dialog-policy][value='ads.write']").await;
    s.click("[data-confirm-policies]").await;
    let chips = s.find("[data-policy-chips]").await.text().await.unwrap();
    assert!(
        chips.contains("ads.read") && chips.contains("ads.write"),
        "{chips}"
    );
    s.shot("editor-with-policies").await;
    s.click("form.editor button[type=submit]").await;
    s.wait_text("Next: create an access code.").await;
    s.shot("key-details").await;
    let key_id = s.find("#api-key-id").await.text().await.unwrap();

    // The next step is one click from the saved key.
    s.click_link("Create an access code").await;
    s.wait_text("No access code yet").await;
    s.shot("access-codes-empty").await;
    s.type_into("#description", "Zapier production").await;
    s.click("#create-access-code button[type=submit]").await;
    s.wait_text("Access code created.").await;
    assert_eq!(
        s.js("return document.getElementById('access-code-secret').classList.contains('masked')")
            .await,
        json!(true),
        "masked until Reveal"
    );
    s.shot("secret-masked").await;
    s.click("[data-reveal]").await;
    assert_eq!(
        s.js("return document.getElementById('access-code-secret').classList.contains('masked')")
            .await,
        json!(false)
    );
    let secret = s.find("#access-code-secret").await.text().await.unwrap();
    assert!(secret.starts_with("bms_") && secret.len() == 50, "{secret}");
    // Copy buttons: record what they hand the clipboard.
    s.js("window.__copied = []; navigator.clipboard.writeText = (t) => { window.__copied.push(t); return Promise.resolve(); }; return true").await;
    s.click("[data-secret] ~ .actions [data-copy], .secret-box [data-copy]")
        .await;
    for button in s
        .client
        .find_all(Locator::Css(".copy-row [data-copy]"))
        .await
        .unwrap()
    {
        button.click().await.unwrap();
    }
    // Screen readers hear it: the polite live region says what the button did.
    s.wait_text("Copied to the clipboard").await;
    let copied = s.js("return window.__copied").await;
    assert_eq!(
        copied,
        json!([
            secret.clone(),
            format!("x-api-key: {secret}"),
            format!(
                "{}/api/v1/accounts/{acme}/ping?apiKey={secret}",
                app.state.settings.public_url
            )
        ])
    );
    s.click("details.qr summary").await;
    assert!(s.find(".qr-code svg").await.is_displayed().await.unwrap());
    s.shot("secret-revealed-with-qr").await;
    // The download link: fetch it with the browser's session, keep the file next to the screenshots.
    let href = s
        .find("a[download]")
        .await
        .attr("href")
        .await
        .unwrap()
        .unwrap();
    let http = Browser::for_address(&app.address);
    let file = http
        .request("GET", &href, &[("cookie", &s.cookie_header().await)], None)
        .await;
    assert_eq!(file.status, StatusCode::OK);
    assert!(file.body.contains(&secret) && file.body.contains("Zapier production"));
    std::fs::write(s.shots.join("downloaded.txt"), &file.body).unwrap();

    // The code at work, with an HTTP client: allowed and forbidden APIs.
    let api = |rest: &str| format!("/api/v1/accounts/{acme}/{rest}");
    assert_eq!(
        http.api("GET", &api("ads"), &secret).await.status,
        StatusCode::OK
    );
    assert_eq!(
        http.api("GET", &api("metrics"), &secret).await.status,
        StatusCode::FORBIDDEN
    );

    s.click_link("← Back to the access codes").await;
    s.wait_text("Zapier production").await;
    s.click("button.switch").await;
    s.wait_text("Access code disabled").await;
    assert_eq!(
        s.find("button.switch")
            .await
            .attr("aria-checked")
            .await
            .unwrap()
            .as_deref(),
        Some("false")
    );
    s.shot("code-disabled").await;
    assert_eq!(
        http.api("GET", &api("ads"), &secret).await.status,
        StatusCode::UNAUTHORIZED
    );
    s.click("td a.danger-text").await;
    s.wait_text("Delete this access code?").await;
    s.shot("delete-code-confirmation").await;
    s.click("button.danger").await;
    s.wait_text("Access code deleted.").await;
    s.shot("code-deleted").await;

    // A second account links the key: refused without a policy, accepted with one.
    s.sign_out().await;
    s.sign_in("pat@partner.example").await;
    s.click_link("Link existing API key").await;
    s.type_into("#linked_key_id", &key_id).await;
    s.click("form.editor button[type=submit]").await;
    s.wait_text("Select at least one policy").await;
    s.shot("link-refused-without-policy").await;
    s.click("[data-open-policies]").await;
    s.click("[data-dialog-policy][value='metrics.read']").await;
    s.click("[data-confirm-policies]").await;
    s.click("form.editor button[type=submit]").await;
    s.wait_text("linked. Its creator").await;
    s.shot("key-linked").await;
    s.goto(&paths::audit(&partner)).await;
    s.wait_text("api_key.linked").await;
    s.shot("audit-partner").await;

    s.sign_out().await;
    s.sign_in(OLIVIA).await;
    s.goto(&paths::audit(&acme)).await;
    let audit = s.wait_text("access_code.deleted").await;
    for action in [
        "api_key.created",
        "access_code.created",
        "access_code.secret_viewed",
        "access_code.downloaded",
        "access_code.disabled",
        "login.succeeded",
    ] {
        assert!(audit.contains(action), "{action} in the audit log");
    }
    s.shot("audit-owner").await;
    // The same list on a phone and on a wide screen, with a key that has no tags.
    let other_tab = app.browser();
    other_tab.log_in(OLIVIA, PASSWORD).await;
    other_tab
        .create_key(&acme, "No tags", "", &["ads.read"])
        .await;
    s.goto(&paths::keys(&acme)).await;
    for (width, height, name) in [(375, 812, "api-keys-375px"), (1440, 900, "api-keys-1440px")] {
        s.client.set_window_size(width, height).await.unwrap();
        s.wait_text("Zapier").await;
        s.shot(name).await;
        // On a phone each cell shows its column's name as a label: never a label with nothing after it.
        let bare_labels = s
            .js("return Array.from(document.querySelectorAll('td[data-label]')).filter(td => td.getClientRects().length > 0 && td.textContent.trim() === '').map(td => td.dataset.label)")
            .await;
        if width == 375 {
            assert_eq!(
                bare_labels,
                serde_json::json!([]),
                "labels with nothing after them at {width}px"
            );
        }
    }
    s.client.clone().close().await.unwrap();
}

#[actix_web::test]
#[cfg_attr(
    not(bms_browser_tests),
    ignore = "browser: set BMS_TEST_CHROMEDRIVER to chromedriver to run"
)]
async fn viewers_and_support_staff_in_chromium() {
    let (app, acme) = app_with_acme().await;
    app.add_user(
        "victor@acme.example",
        PASSWORD,
        "Acme Ads",
        Role::Viewer,
        false,
    );
    app.add_user(
        "sam@bms.example",
        PASSWORD,
        "BMS Support",
        Role::Owner,
        true,
    );
    let mut s = Session::start(&app, "roles", true).await;
    s.sign_in("victor@acme.example").await;
    let page = s.wait_text("Viewer").await;
    assert!(
        !page.contains("+ Create API key"),
        "no change buttons for viewers"
    );
    s.shot("viewer-api-keys").await;
    // Any user manages their own sessions: one more, elsewhere, then signed out from here.
    let elsewhere = app.browser();
    assert_eq!(
        elsewhere
            .log_in("victor@acme.example", PASSWORD)
            .await
            .status,
        actix_web::http::StatusCode::SEE_OTHER
    );
    s.click("details.account-menu summary").await;
    s.click_link("Password and sessions").await;
    s.wait_text("You are also signed in in 1 other browser.")
        .await;
    s.shot("password-and-sessions").await;
    s.click("form[action='/account/sessions/sign-out-elsewhere'] button")
        .await;
    s.wait_text("Signed out of 1 other session.").await;
    s.shot("signed-out-elsewhere").await;
    assert_eq!(
        elsewhere.get(paths::ACCOUNTS).await.location(),
        paths::LOGIN
    );
    s.sign_out().await;
    s.sign_in("sam@bms.example").await;
    // Staff land on the account picker, told what they are — not in their own empty account.
    let landing = s.wait_text("You are signed in as BMS support staff.").await;
    assert!(landing.contains("Open a customer account") && landing.contains(">Staff</span>"));
    s.shot("staff-landing").await;
    s.goto(&paths::keys(&acme)).await;
    s.wait_text("Support staff view of").await;
    s.shot("staff-banner").await;
    // Staff open a secret only with a reason, typed into a POST form: never in the URL.
    let olivia = app.browser();
    olivia.log_in(OLIVIA, PASSWORD).await;
    let (key, code, secret) = key_with_code(&olivia, &acme, "Support case", &["ads.read"]).await;
    let code_url = paths::code(&acme, &key, &code);
    s.goto(&paths::code_secret(&acme, &key, &code)).await;
    let ask = s.wait_text("Reason required").await;
    assert!(!ask.contains(&secret));
    s.type_into("#reason", "Ticket 4711: customer lost the secret")
        .await;
    s.shot("staff-reason").await;
    s.click(&format!(
        "form[action='{code_url}/secret'] button[type=submit]"
    ))
    .await;
    let shown = s.wait_text("access-code-secret").await;
    assert!(shown.contains(&secret));
    let url = s.client.current_url().await.unwrap();
    assert!(
        !url.as_str().contains("reason") && !url.as_str().contains("4711"),
        "{url}"
    );
    s.shot("staff-secret").await;
    s.client.clone().close().await.unwrap();
}

#[actix_web::test]
#[cfg_attr(
    not(bms_browser_tests),
    ignore = "browser: set BMS_TEST_CHROMEDRIVER to chromedriver to run"
)]
async fn the_policy_modal_works_with_the_keyboard_alone() {
    let (app, acme) = app_with_acme().await;
    let mut s = Session::start(&app, "keyboard", true).await;
    s.sign_in(OLIVIA).await;
    s.goto(&format!(
        "/accounts/{acme}/permissions/api-keys/new?mode=create"
    ))
    .await;
    let open = s.find("[data-open-policies]").await;
    s.js("document.querySelector('[data-open-policies]').focus(); return true")
        .await;
    open.send_keys(ENTER).await.unwrap();
    assert_eq!(
        s.js("return document.activeElement.id").await,
        json!("policy-filter"),
        "focus moves into the dialog"
    );
    let filter = s.find("#policy-filter").await;
    filter.send_keys("drive").await.unwrap();
    filter.send_keys(TAB).await.unwrap();
    assert_eq!(
        s.js("return document.activeElement.value").await,
        json!("drive-files.read"),
        "Tab reaches the one match"
    );
    s.shot("keyboard-modal").await;
    let active = s.client.active_element().await.unwrap();
    active.send_keys(" ").await.unwrap();
    // Tab on: focus stays inside the modal dialog.
    for _ in 0..6 {
        s.client
            .active_element()
            .await
            .unwrap()
            .send_keys(TAB)
            .await
            .unwrap();
        assert_eq!(s.js("return document.querySelector('[data-policy-dialog]').contains(document.activeElement) || document.activeElement === document.body").await, json!(true), "focus is trapped in the dialog");
    }
    s.js("document.querySelector('[data-confirm-policies]').focus(); return true")
        .await;
    s.client
        .active_element()
        .await
        .unwrap()
        .send_keys(ENTER)
        .await
        .unwrap();
    assert_eq!(
        s.js("return document.querySelector('[data-policy-dialog]').open")
            .await,
        json!(false)
    );
    assert_eq!(
        s.js("return document.activeElement.hasAttribute('data-open-policies')")
            .await,
        json!(true),
        "focus returns to the button"
    );
    assert!(
        s.find("[data-policy-chips]")
            .await
            .text()
            .await
            .unwrap()
            .contains("drive-files.read")
    );
    // Escape closes without changing the choice.
    s.client
        .active_element()
        .await
        .unwrap()
        .send_keys(ENTER)
        .await
        .unwrap();
    assert_eq!(
        s.js("return document.querySelector('[data-policy-dialog]').open")
            .await,
        json!(true)
    );
    s.client
        .active_element()
        .await
        .unwrap()
        .send_keys(ESCAPE)
        .await
        .unwrap();
    assert_eq!(
        s.js("return document.querySelector('[data-policy-dialog]').open")
            .await,
        json!(false)
    );
    assert_eq!(
        s.js("return document.activeElement.hasAttribute('data-open-policies')")
            .await,
        json!(true)
    );
    assert!(
        s.find("[data-policy-chips]")
            .await
            .text()
            .await
            .unwrap()
            .contains("drive-files.read")
    );
    s.client.clone().close().await.unwrap();
}

#[actix_web::test]
#[cfg_attr(
    not(bms_browser_tests),
    ignore = "browser: set BMS_TEST_CHROMEDRIVER to chromedriver to run"
)]
async fn the_journey_works_without_javascript() {
    let (app, acme) = app_with_acme().await;
    let mut s = Session::start(&app, "no-javascript", false).await;
    s.sign_in(OLIVIA).await;
    s.goto(&format!(
        "/accounts/{acme}/permissions/api-keys/new?mode=create"
    ))
    .await;
    assert!(
        s.find("[data-policy-list] input[value='ads.read']")
            .await
            .is_displayed()
            .await
            .unwrap(),
        "plain checkboxes"
    );
    s.type_into("#name", "Plain forms").await;
    s.click("[data-policy-list] input[value='ads.read']").await;
    s.shot("no-js-editor").await;
    s.click("form.editor button[type=submit]").await;
    s.wait_text("Next: create an access code.").await;
    s.click(".tabs a[href$='/access-codes']").await;
    s.wait_text("No access code yet").await;
    s.click("#create-access-code button[type=submit]").await;
    s.wait_text("Access code created.").await;
    let secret = s.find("#access-code-secret").await.text().await.unwrap();
    assert!(
        secret.starts_with("bms_"),
        "shown plainly without JavaScript"
    );
    s.shot("no-js-secret").await;
    let href = s
        .find("a[download]")
        .await
        .attr("href")
        .await
        .unwrap()
        .unwrap();
    let file = Browser::for_address(&app.address)
        .request("GET", &href, &[("cookie", &s.cookie_header().await)], None)
        .await;
    assert!(file.body.contains(&secret));
    s.click_link("← Back to the access codes").await;
    s.click("button.switch").await;
    s.wait_text("Access code disabled").await;
    s.click("td a.danger-text").await;
    s.click("button.danger").await;
    s.wait_text("Access code deleted.").await;
    s.shot("no-js-deleted").await;
    s.client.clone().close().await.unwrap();
}
