//! Accessibility and small screens, judged by outside tools in a real Chromium: axe-core (installed
//! from the npm registry by `.ci/run`, injected through WebDriver, never copied into the repository)
//! on every page and state of the guide's journey — signed in as owner, viewer and support staff, at
//! 1440 px and 375 px, the policy modal open, forms with errors — with zero violations of the WCAG
//! 2.2 A/AA rules; no page wider than a 375 px screen; every control reachable with Tab alone, with a
//! visible focus ring. Screenshots of every page at both widths go to `target/screenshots/a11y/`.
//!
//! Runs with the other browser tests (`BMS_TEST_CHROMEDRIVER`); needs `BMS_TEST_AXE`, the path of
//! axe-core's `axe.min.js` (`npm install axe-core` puts it in `node_modules/axe-core/`).

use bms_keys::users::Role;
use fantoccini::actions::{InputSource, KeyAction, KeyActions};
use serde_json::json;

use crate::browser::{OLIVIA, Session, app_with_acme};
use crate::helpers::{PASSWORD, TestApp, key_with_code};
use crate::paths;

/// The Tab key, as WebDriver names it.
const TAB: char = '\u{E004}';

/// The axe-core rule tags of WCAG 2.0, 2.1 and 2.2, levels A and AA.
const WCAG_TAGS: &str = r#"["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa"]"#;

/// One walk through pages: what was checked, and every problem found (reported together at the end).
struct Audit {
    session: Session,
    axe_source: String,
    width: u32,
    checked: usize,
    problems: Vec<String>,
}

impl Audit {
    async fn start(app: &TestApp) -> Audit {
        let path = std::env::var("BMS_TEST_AXE").expect(
            "BMS_TEST_AXE names axe-core's axe.min.js (npm install axe-core; .ci/run does it)",
        );
        let axe_source = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("cannot read axe-core at {path}: {e}"));
        Audit {
            session: Session::start(app, "a11y", true).await,
            axe_source,
            width: 1440,
            checked: 0,
            problems: Vec::new(),
        }
    }

    async fn set_width(&mut self, width: u32) {
        self.width = width;
        self.session
            .client
            .set_window_size(width, 900)
            .await
            .unwrap();
    }

    /// The current page or state: axe-core, horizontal overflow, a screenshot.
    async fn check(&mut self, label: &str) {
        let s = &self.session;
        s.client
            .execute(&format!("{}\nreturn true;", self.axe_source), vec![])
            .await
            .expect("axe-core loads");
        let script = format!(
            r#"const done = arguments[arguments.length - 1];
            axe.run(document, {{ runOnly: {{ type: "tag", values: {WCAG_TAGS} }}, resultTypes: ["violations"] }})
              .then((r) => done(r.violations.map((v) => `${{v.id}} (${{v.impact}}): ${{v.help}} — ` +
                 v.nodes.slice(0, 3).map((n) => n.target.join(" ")).join(" | "))))
              .catch((e) => done([`axe failed: ${{e}}`]));"#
        );
        let violations = s.client.execute_async(&script, vec![]).await.unwrap();
        for v in violations.as_array().into_iter().flatten() {
            self.problems.push(format!(
                "{label} at {} px: {}",
                self.width,
                v.as_str().unwrap_or("?")
            ));
        }
        let sizes = s
            .js("return [document.documentElement.scrollWidth, window.innerWidth]")
            .await;
        let (scroll, inner) = (sizes[0].as_i64().unwrap(), sizes[1].as_i64().unwrap());
        if scroll > inner {
            let wide = s.js(WIDEST).await;
            self.problems.push(format!(
                "{label} at {} px: the page is {scroll} px wide in a {inner} px window ({wide})",
                self.width
            ));
        }
        let misaligned = s.js(MISALIGNED_TABLES).await;
        for table in misaligned.as_array().into_iter().flatten() {
            self.problems.push(format!(
                "{label} at {} px: the headings of {} do not line up with its columns",
                self.width,
                table.as_str().unwrap_or("?")
            ));
        }
        let name = format!("{}-{}", self.width, label);
        self.session.shot(&name).await;
        self.checked += 1;
    }

    /// Every visible control of the page is reached with Tab, in turn, and shows a focus ring.
    async fn keyboard(&mut self, label: &str) {
        let s = &self.session;
        let count = s.js(MARK_FOCUSABLE).await.as_u64().unwrap();
        let mut reached = std::collections::BTreeSet::new();
        for _ in 0..count + 3 {
            let tab = KeyActions::new("keyboard".to_owned())
                .then(KeyAction::Down { value: TAB })
                .then(KeyAction::Up { value: TAB });
            s.client.perform_actions(tab).await.unwrap();
            let focused = s.js(FOCUSED).await;
            if focused.is_null() {
                continue;
            }
            let (index, ring, html) = (&focused[0], &focused[1], &focused[2]);
            if let Some(index) = index.as_str() {
                reached.insert(index.parse::<u64>().unwrap());
            }
            if ring != &json!(true) {
                self.problems
                    .push(format!("{label}: no visible focus ring on {html}"));
            }
        }
        for missing in (0..count).filter(|i| !reached.contains(i)) {
            let html = s
                .js(&format!(
                    "return document.querySelector('[data-kb=\"{missing}\"]').outerHTML.slice(0, 120)"
                ))
                .await;
            self.problems.push(format!(
                "{label}: Tab never reaches {}",
                html.as_str().unwrap_or("?")
            ));
        }
    }

    async fn visit(&mut self, path: &str, label: &str) {
        self.session.goto(path).await;
        self.check(label).await;
    }

    fn finish(self, at_least: usize) {
        println!("accessibility: {} page states checked", self.checked);
        assert!(
            self.problems.is_empty(),
            "{} problem(s):\n{}",
            self.problems.len(),
            self.problems.join("\n")
        );
        assert!(self.checked >= at_least, "{} checked", self.checked);
    }
}

/// Marks every visible, enabled control with its place in document order; returns how many.
const MARK_FOCUSABLE: &str = r#"
  const selector = 'a[href], button:not([disabled]), input:not([disabled]):not([type=hidden]), select:not([disabled]), textarea:not([disabled]), summary, [tabindex]:not([tabindex="-1"])';
  // checkVisibility() also sees the content of a closed <details> as hidden.
  const shown = (e) => e.checkVisibility({ visibilityProperty: true })
    && !e.closest("[hidden], dialog:not([open]), [inert]");
  const controls = [...document.querySelectorAll(selector)].filter(shown);
  controls.forEach((e, i) => e.setAttribute("data-kb", String(i)));
  document.activeElement?.blur();
  window.scrollTo(0, 0);
  return controls.length;"#;

/// The focused control: its mark, whether a focus ring shows, its start tag.
const FOCUSED: &str = r#"
  const a = document.activeElement;
  if (!a || a === document.body) return null;
  const s = getComputedStyle(a);
  const ring = (s.outlineStyle !== "none" && parseFloat(s.outlineWidth) >= 2) || s.boxShadow !== "none";
  return [a.getAttribute("data-kb"), ring, a.outerHTML.slice(0, 100)];"#;

/// Tables whose visible headings do not start where their first row's cells start.
const MISALIGNED_TABLES: &str = r#"
  const out = [];
  for (const table of document.querySelectorAll("table")) {
    const heads = [...table.querySelectorAll("thead th")];
    const cells = [...(table.querySelector("tbody tr")?.children ?? [])];
    if (!heads.length || !heads[0].checkVisibility() || heads.length !== cells.length) continue;
    if (heads.some((h, i) => Math.abs(h.getBoundingClientRect().left - cells[i].getBoundingClientRect().left) > 1)) {
      out.push(`table.${table.className}`);
    }
  }
  return out;"#;

/// The element that sticks out furthest on the right, to say what overflows.
const WIDEST: &str = r#"
  let widest = null, right = 0;
  for (const e of document.querySelectorAll("body *")) {
    const r = e.getBoundingClientRect();
    if (r.right > right) { right = r.right; widest = e; }
  }
  return widest ? `${widest.tagName.toLowerCase()}.${widest.className} ends at ${Math.round(right)} px` : "";"#;

/// Acme's data for the walk: keys with and without codes, links both ways, a disabled code.
struct World {
    acme: String,
    key: String,
    code: String,
    spare_code: String,
    later: String,
    linked: String,
    partner_link: String,
    /// Two enabled codes, the first scheduled to retire when idle.
    rotating: String,
    /// Its code was reported as leaked.
    leaked: String,
    /// A webhook endpoint with a test event in its delivery log.
    hook: String,
}

async fn world(app: &TestApp, acme: &str) -> World {
    let olivia = app.browser();
    olivia.log_in(OLIVIA, PASSWORD).await;
    let (key, code, secret) = key_with_code(
        &olivia,
        acme,
        "Zapier — ads from Drive",
        &["ads.read", "ads.write"],
    )
    .await;
    let client = app.browser();
    for _ in 0..3 {
        client.api("GET", &paths::api(acme, "ads"), &secret).await;
    }
    let (spare_code, _) = olivia.create_code(acme, &key, "Spare, retired soon").await;
    let csrf = olivia.csrf_token_of(&paths::keys(acme)).await;
    olivia
        .post_form(
            &paths::code_enabled(acme, &key, &spare_code),
            &[("csrf_token", &csrf), ("enabled", "false")],
        )
        .await;
    let later = olivia
        .create_key(
            acme,
            "Reporting — marketing-team draft",
            "marketing-team, reporting, q4-2026",
            &[],
        )
        .await;
    let (pat, partner) = app
        .signed_in_owner("pat@partner.example", "Partner Co")
        .await;
    let theirs = pat
        .create_key(&partner, "Partner reporting", "", &["metrics.read"])
        .await;
    let linked = olivia
        .link_key(acme, &theirs, "", &["metrics.read"])
        .await
        .location()
        .rsplit('/')
        .next()
        .unwrap()
        .to_owned();
    let partner_link = pat
        .link_key(&partner, &key, "Acme's ads", &["ads.read"])
        .await
        .location()
        .rsplit('/')
        .next()
        .unwrap()
        .to_owned();
    let rotating = olivia.create_key(acme, "Rotating", "", &["ads.read"]).await;
    let (first, _) = olivia.create_code(acme, &rotating, "v1").await;
    let (_, _) = olivia.create_code(acme, &rotating, "v2").await;
    let csrf = olivia.csrf_token_of(&paths::codes(acme, &rotating)).await;
    let retire = format!("{}/retire", paths::code(acme, &rotating, &first));
    olivia
        .post_form(&retire, &[("csrf_token", &csrf), ("quiet_seconds", "3600")])
        .await;
    let (leaked, _, leaked_secret) = key_with_code(&olivia, acme, "Leaked", &["ads.read"]).await;
    let body = json!({ "credentials": [leaked_secret] }).to_string();
    client
        .request(
            "POST",
            "/v1/credentials/revoke",
            &[("content-type", "application/json")],
            Some(body),
        )
        .await;
    let csrf = olivia.csrf_token_of(&paths::webhooks(acme)).await;
    let added = olivia
        .post_form(
            &paths::webhooks(acme),
            &[
                ("csrf_token", csrf.as_str()),
                ("url", "https://93.184.216.34/bms-events"),
                ("description", "Ops alerts"),
                ("events", "access_code.expiring"),
                ("events", "access_code.exposed"),
            ],
        )
        .await;
    let hook = added
        .body
        .split("ID <code>")
        .nth(1)
        .and_then(|s| s.split("</code>").next())
        .expect("the endpoint id")
        .to_owned();
    olivia
        .post_form(
            &format!("{}/test", paths::webhook(acme, &hook)),
            &[("csrf_token", csrf.as_str())],
        )
        .await;
    World {
        hook,
        rotating,
        leaked,
        acme: acme.to_owned(),
        key,
        code,
        spare_code,
        later,
        linked,
        partner_link,
    }
}

/// The owner's pages and states, at the current width.
async fn owner_pages(a: &mut Audit, w: &World) {
    let acc = w.acme.as_str();
    a.visit(&paths::keys(acc), "owner-api-keys").await;
    a.session.click("details.account-menu summary").await;
    a.check("owner-account-menu-open").await;
    a.visit(&paths::new_key(acc, "create"), "owner-new-key")
        .await;
    a.session.click("[data-open-policies]").await;
    a.check("owner-policy-modal-open").await;
    a.session.goto(&paths::new_key(acc, "create")).await;
    a.session.type_into("#tags", "Bad tag!, ok").await;
    a.session.click("form.editor button[type=submit]").await;
    a.session.wait_text("Please correct").await;
    // Focus lands on the first field to fix, which names its message.
    let focused = a
        .session
        .js("const f = document.activeElement; return [f.id, f.getAttribute('aria-describedby')]")
        .await;
    assert_eq!(
        focused,
        json!(["name", "name-hint name-error"]),
        "focus on the first error"
    );
    a.check("owner-new-key-errors").await;
    a.visit(&paths::new_key(acc, "link"), "owner-link-key")
        .await;
    a.visit(&paths::key(acc, &w.key), "owner-key-details").await;
    // Times are shown in the browser's zone (the session runs in Asia/Kolkata), UTC in the tooltip.
    let time = a.session.js("const t = document.querySelector('time[data-local=datetime]'); return [t.textContent, t.title, t.getAttribute('datetime')]").await;
    assert!(time[0].as_str().unwrap().ends_with("GMT+5:30"), "{time}");
    assert!(
        time[1].as_str().unwrap().ends_with(" UTC") && time[2].as_str().unwrap().ends_with('Z'),
        "{time}"
    );
    a.session
        .js("document.querySelector('#links-heading').scrollIntoView(); return true")
        .await;
    a.check("owner-key-links-and-usage").await;
    a.visit(&paths::key(acc, &w.later), "owner-key-without-code")
        .await;
    a.visit(&paths::key(acc, &w.linked), "owner-linked-key")
        .await;
    a.visit(&paths::codes(acc, &w.key), "owner-access-codes")
        .await;
    a.session
        .click(&format!("tr[id='{}'] details.inline-edit summary", w.code))
        .await;
    a.check("owner-access-codes-editing").await;
    // Cancel closes the editor in place and puts the text back; nothing is saved.
    let field = format!("#description-{}", w.code);
    a.session.type_into(&field, "typed, then cancelled").await;
    a.session
        .click(&format!("tr[id='{}'] [data-cancel-edit]", w.code))
        .await;
    let after = a.session.js(&format!("const d = document.querySelector(\"tr[id='{}'] details\"); return [d.open, d.querySelector('input[name=description]').value, location.hash]", w.code)).await;
    assert_eq!(
        after,
        json!([false, "", ""]),
        "closed, restored, no navigation"
    );
    a.visit(&paths::codes(acc, &w.later), "owner-access-codes-empty")
        .await;
    a.visit(
        &paths::codes(acc, &w.rotating),
        "owner-access-codes-rotating",
    )
    .await;
    a.session.click("details.retire summary").await;
    a.check("owner-access-codes-retire-form").await;
    a.visit(&paths::codes(acc, &w.leaked), "owner-access-codes-exposed")
        .await;
    a.visit(&paths::code_secret(acc, &w.key, &w.code), "owner-secret")
        .await;
    a.visit(&paths::delete_key(acc, &w.key), "owner-delete-key")
        .await;
    a.visit(
        &paths::delete_code(acc, &w.key, &w.spare_code),
        "owner-delete-code",
    )
    .await;
    a.visit(
        &paths::remove_link(acc, &w.key, &w.partner_link),
        "owner-remove-link",
    )
    .await;
    a.visit(&paths::webhooks(acc), "owner-webhooks").await;
    a.session.type_into("#url", "http://127.0.0.1/inside").await;
    a.session.click("form.editor button[type=submit]").await;
    a.session.wait_text("Use an https:// URL").await;
    a.check("owner-webhooks-errors").await;
    a.visit(&paths::webhook(acc, &w.hook), "owner-webhook")
        .await;
    a.session.click("form[action$='/secret'] button").await;
    a.session.wait_text("it is not shown again").await;
    a.check("owner-webhook-new-secret").await;
    a.visit(
        &format!("{}/delete", paths::webhook(acc, &w.hook)),
        "owner-delete-webhook",
    )
    .await;
    a.visit(&paths::audit(acc), "owner-audit").await;
    a.visit(paths::API_DOCS, "owner-api-docs").await;
    a.visit(paths::API_KEYS_HELP, "owner-help").await;
    a.session
        .js("document.getElementById('examples').scrollIntoView(); return true")
        .await;
    a.check("owner-help-examples").await;
    a.visit(paths::MANAGEMENT_API_DOCS, "owner-management-api")
        .await;
    a.visit(paths::PASSWORD, "owner-password").await;
    a.visit(paths::ACCOUNTS, "owner-accounts").await;
    a.visit("/no/such/page", "owner-404").await;
}

#[actix_web::test]
#[cfg_attr(
    not(bms_browser_tests),
    ignore = "browser: set BMS_TEST_CHROMEDRIVER to chromedriver to run"
)]
async fn every_page_passes_axe_fits_a_phone_and_works_by_keyboard() {
    let (app, acme) = app_with_acme().await;
    let w = world(&app, &acme).await;
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
    let mut a = Audit::start(&app).await;

    a.visit(paths::LOGIN, "sign-in").await;
    a.session.type_into("#email", OLIVIA).await;
    a.session.type_into("#password", "not the password").await;
    a.session.click("form button[type=submit]").await;
    a.session.wait_text("login-error").await;
    a.check("sign-in-error").await;

    a.session.sign_in(OLIVIA).await;
    for width in [1440, 375] {
        a.set_width(width).await;
        owner_pages(&mut a, &w).await;
    }

    // Keyboard alone, at desktop width, on the pages with the most controls.
    a.set_width(1440).await;
    let acc = w.acme.as_str();
    for (path, label) in [
        (paths::keys(acc), "api-keys"),
        (paths::new_key(acc, "create"), "new-key"),
        (paths::key(acc, &w.key), "key-details"),
        (paths::codes(acc, &w.key), "access-codes"),
        (paths::code_secret(acc, &w.key, &w.code), "secret"),
        (paths::audit(acc), "audit"),
        (paths::API_KEYS_HELP.to_owned(), "help"),
        (paths::codes(acc, &w.rotating), "access-codes-rotating"),
        (
            paths::remove_link(acc, &w.key, &w.partner_link),
            "remove-link",
        ),
        (paths::delete_key(acc, &w.key), "delete-key"),
        (paths::MANAGEMENT_API_DOCS.to_owned(), "management-api"),
        (paths::PASSWORD.to_owned(), "password"),
        (paths::ACCOUNTS.to_owned(), "accounts"),
    ] {
        a.session.goto(&path).await;
        a.keyboard(label).await;
    }
    a.session.sign_out().await;

    a.session.sign_in("victor@acme.example").await;
    for width in [1440, 375] {
        a.set_width(width).await;
        a.visit(&paths::keys(acc), "viewer-api-keys").await;
        a.visit(&paths::key(acc, &w.key), "viewer-key-details")
            .await;
        a.visit(&paths::codes(acc, &w.key), "viewer-access-codes")
            .await;
        a.visit(&paths::audit(acc), "viewer-audit").await;
        a.visit(&paths::webhooks(acc), "viewer-webhooks").await;
        a.visit(&paths::webhook(acc, &w.hook), "viewer-webhook")
            .await;
    }
    a.session.sign_out().await;

    a.session.sign_in("sam@bms.example").await;
    for width in [1440, 375] {
        a.set_width(width).await;
        a.visit(paths::ACCOUNTS, "staff-landing").await;
        a.visit(&paths::keys(acc), "staff-api-keys").await;
        a.visit(&paths::code_secret(acc, &w.key, &w.code), "staff-reason")
            .await;
        a.session.type_into("#reason", "short").await;
        a.session.click("form.stack button[type=submit]").await;
        a.session.wait_text("reason-error").await;
        a.check("staff-reason-error").await;
    }
    a.finish(60);
}
