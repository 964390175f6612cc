//! Reading pages and bodies the way a user or a script would: form fields, escaped text, the secret on
//! the secret view, a JSON refusal's code.

use super::{Browser, TestResponse};

/// The value of the first `<input … name="{name}" value="…">` in `html`.
pub fn hidden_field(html: &str, name: &str) -> Option<String> {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html.find(&marker)? + marker.len();
    let end = html[start..].find('"')? + start;
    Some(html[start..end].to_owned())
}

/// `s` as the templates escape it (Askama: `"` `&` `'` `<` `>` as numeric references).
pub fn escaped(s: &str) -> String {
    s.replace('&', "&#38;")
        .replace('"', "&#34;")
        .replace('\'', "&#39;")
        .replace('<', "&#60;")
        .replace('>', "&#62;")
}

/// The secret shown in `<code id="access-code-secret" …>`.
pub fn secret_in(html: &str) -> String {
    let start = html
        .find("id=\"access-code-secret\"")
        .expect("a secret on the page");
    let rest = &html[start..];
    let open = rest.find('>').expect("tag end") + 1;
    let close = rest.find("</code>").expect("closing tag");
    rest[open..close].to_owned()
}

impl Browser {
    /// The JSON body's `error.code`.
    pub fn error_code(res: &TestResponse) -> String {
        serde_json::from_str::<serde_json::Value>(&res.body)
            .ok()
            .and_then(|v| v["code"].as_str().map(str::to_owned))
            .unwrap_or_default()
    }
}
