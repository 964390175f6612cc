//! Canonical request paths: the one spelling of a path on which an access decision may be made.
//!
//! A gateway's upstream may resolve `..`, decode `%2f`, drop `;params` or merge `//` — each server in
//! its own way — so a decision made on the text of a path that is not already in its one canonical
//! form could be about another resource than the one the upstream serves. Such a path is therefore
//! **refused** (`400 bad_path`), never normalised: for a canonical path, every usual normalisation
//! (RFC 3986 dot-segment removal, percent-decoding unreserved characters, merging slashes, stripping
//! path parameters, backslash as slash) gives back the same path, so the decision and the upstream
//! agree on what is asked for.
//!
//! Canonical: starts with `/`; only RFC 3986 path characters (unreserved, sub-delims but `;`, `:`,
//! `@`, `/`) and well-formed percent-escapes; no `.` or `..` segment; no empty segment but a trailing
//! slash; no escape of an unreserved character (`%61`, `%2e`), of `/` or `\`, of a control character,
//! or of `%` followed by hex digits (double encoding); at most `MAX_LEN` bytes. The check reads the
//! bytes once and allocates nothing.

/// The longest path considered (longer ones are refused: no BMS API has such paths).
pub const MAX_LEN: usize = 2048;

/// Why a path is not canonical (for the refusal's message; the code is always `bad_path`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BadPath {
    NotAbsolute,
    TooLong,
    /// A character that has no place in a path, raw: control, space, `\`, `;`, `#`, `?`, non-ASCII…
    Character,
    /// `%` not followed by two hex digits.
    InvalidEscape,
    /// A needless or dangerous escape: unreserved characters, `/`, `\`, controls, double encoding.
    Escape,
    /// A `.` or `..` segment.
    DotSegment,
    /// `//` inside the path.
    EmptySegment,
}

impl BadPath {
    pub fn message(self) -> &'static str {
        match self {
            BadPath::NotAbsolute => "The path must start with /.",
            BadPath::TooLong => "The path is too long.",
            BadPath::Character => {
                "The path contains a character that must not appear in it (a control character, a space, \\, ;, # or ? among them)."
            }
            BadPath::InvalidEscape => "The path contains an invalid percent-escape.",
            BadPath::Escape => {
                "The path percent-encodes a character that must be sent as it is (a letter, a digit, - . _ ~), or /, \\, a control character or %."
            }
            BadPath::DotSegment => "The path contains a . or .. segment.",
            BadPath::EmptySegment => "The path contains an empty segment (//).",
        }
    }
}

/// A path that passed [`canonical`]: the only thing accounts and policy rules are matched on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CanonicalPath<'a>(&'a str);

impl<'a> CanonicalPath<'a> {
    /// A path that was canonical when it was checked (a copy of one kept across an await).
    pub(super) fn already_checked(path: &'a str) -> Self {
        debug_assert!(canonical(path).is_ok());
        Self(path)
    }

    pub fn as_str(&self) -> &'a str {
        self.0
    }

    /// The account a BMS API path targets: the segment after the first `accounts` segment.
    pub fn account(&self) -> Option<&'a str> {
        let mut segments = self.0.split('/');
        segments.find(|s| *s == "accounts")?;
        segments.next().filter(|s| !s.is_empty())
    }
}

/// `path` if it is canonical, else why not.
pub fn canonical(path: &str) -> Result<CanonicalPath<'_>, BadPath> {
    let bytes = path.as_bytes();
    if bytes.first() != Some(&b'/') {
        return Err(BadPath::NotAbsolute);
    }
    if bytes.len() > MAX_LEN {
        return Err(BadPath::TooLong);
    }
    // Where the current segment started (just after its `/`).
    let mut segment_start = 1;
    let mut i = 1;
    while i < bytes.len() {
        // Most bytes of a path are plain: one table load decides them.
        if PLAIN[usize::from(bytes[i])] {
            i += 1;
            continue;
        }
        match bytes[i] {
            b'/' => {
                check_segment(&bytes[segment_start..i], false)?;
                segment_start = i + 1;
            }
            b'%' => {
                let (Some(hi), Some(lo)) = (
                    bytes.get(i + 1).and_then(|b| hex(*b)),
                    bytes.get(i + 2).and_then(|b| hex(*b)),
                ) else {
                    return Err(BadPath::InvalidEscape);
                };
                let decoded = hi << 4 | lo;
                let double_encoded = decoded == b'%'
                    && bytes.get(i + 3).and_then(|b| hex(*b)).is_some()
                    && bytes.get(i + 4).and_then(|b| hex(*b)).is_some();
                if is_unreserved(decoded)
                    || matches!(decoded, b'/' | b'\\')
                    || decoded < 0x20
                    || decoded == 0x7f
                    || double_encoded
                {
                    return Err(BadPath::Escape);
                }
                i += 2;
            }
            _ => return Err(BadPath::Character),
        }
        i += 1;
    }
    check_segment(&bytes[segment_start..], true)?;
    Ok(CanonicalPath(path))
}

/// The bytes that stand for themselves in a canonical path: unreserved or a sub-delimiter, `:` or
/// `@` (everything but `/` and `%`, which the loop looks at).
static PLAIN: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 256 {
        table[b] = is_unreserved(b as u8) || is_path_delimiter(b as u8);
        b += 1;
    }
    table
};

/// One segment between slashes: not a dot segment, not empty (but the last, for a trailing slash).
fn check_segment(segment: &[u8], last: bool) -> Result<(), BadPath> {
    match segment {
        b"." | b".." => Err(BadPath::DotSegment),
        b"" if !last => Err(BadPath::EmptySegment),
        _ => Ok(()),
    }
}

/// RFC 3986 §2.3: ALPHA / DIGIT / "-" / "." / "_" / "~".
const fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

/// The RFC 3986 `pchar` characters besides unreserved and escapes — sub-delims without `;` (path
/// parameters, which Tomcat, Jetty and Spring strip before routing), `:` and `@`.
const fn is_path_delimiter(b: u8) -> bool {
    matches!(
        b,
        b'!' | b'$' | b'&' | b'\'' | b'(' | b')' | b'*' | b'+' | b',' | b'=' | b':' | b'@'
    )
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const A: &str = "/api/v1/accounts/acc_A/metrics";

    #[test]
    fn ordinary_paths_are_canonical() {
        for path in [
            "/",
            A,
            "/api/v1/accounts/acc_A/ads/",
            "/api/v1/accounts/acc_A/drive-files/a%20b%C3%A9",
            "/api/v1/accounts/acc_A/x:y@z!$&'()*+,=~",
            "/api/v1/accounts/acc_A/...",
            "/api/v1/accounts/acc_A/%25zz",
            "/api/v1/accounts/acc_A/%3B%3F%23",
        ] {
            assert_eq!(canonical(path).map(|p| p.as_str()), Ok(path), "{path}");
        }
        assert_eq!(canonical(A).unwrap().account(), Some("acc_A"));
    }

    #[test]
    fn every_spelling_of_a_trick_is_refused() {
        let tricks: &[(&str, BadPath)] = &[
            ("", BadPath::NotAbsolute),
            ("api/v1", BadPath::NotAbsolute),
            ("/a/../b", BadPath::DotSegment),
            ("/a/./b", BadPath::DotSegment),
            ("/a/..", BadPath::DotSegment),
            ("/a/.", BadPath::DotSegment),
            ("/a/%2e%2e/b", BadPath::Escape),
            ("/a/%2E%2E/b", BadPath::Escape),
            ("/a/.%2e/b", BadPath::Escape),
            ("/a/%2e./b", BadPath::Escape),
            ("/a/%252e%252e/b", BadPath::Escape),
            ("/a/..%2fb", BadPath::Escape),
            ("/a/..%2Fb", BadPath::Escape),
            ("/a/..%5cb", BadPath::Escape),
            ("/a/..\\b", BadPath::Character),
            ("/a//b", BadPath::EmptySegment),
            ("//a", BadPath::EmptySegment),
            ("/a/b;c", BadPath::Character),
            ("/a/..;/b", BadPath::Character),
            ("/a/\tb", BadPath::Character),
            ("/a/\0b", BadPath::Character),
            ("/a/%00b", BadPath::Escape),
            ("/a/%0d%0ab", BadPath::Escape),
            ("/a/%7fb", BadPath::Escape),
            ("/a/%61ds", BadPath::Escape),
            ("/a/%7E", BadPath::Escape),
            ("/a/%", BadPath::InvalidEscape),
            ("/a/%4", BadPath::InvalidEscape),
            ("/a/%zz", BadPath::InvalidEscape),
            ("/a/b#frag", BadPath::Character),
            ("/a/b?q", BadPath::Character),
            ("/a/b c", BadPath::Character),
            ("/a/é", BadPath::Character),
            ("/a/<b>", BadPath::Character),
        ];
        for (path, why) in tricks {
            assert_eq!(canonical(path), Err(*why), "{path:?}");
        }
        assert_eq!(
            canonical(&format!("/{}", "a".repeat(MAX_LEN))),
            Err(BadPath::TooLong)
        );
    }

    /// What a path means to a server: its segments, each decoded once.
    fn meaning(path: &str) -> Vec<Vec<u8>> {
        path.split('/')
            .map(|s| percent_encoding::percent_decode_str(s).collect())
            .collect()
    }

    /// What an upstream may do to a path before serving it: each of these, applied to a canonical
    /// path, must leave its meaning unchanged.
    fn upstream_views(path: &str) -> Vec<String> {
        let decoded_once = decode_unreserved_and_slashes(path);
        vec![
            remove_dot_segments(path),
            remove_dot_segments(&decoded_once),
            remove_dot_segments(&decode_unreserved_and_slashes(&decoded_once)),
            remove_dot_segments(&path.replace('\\', "/")),
            merge_slashes(path),
            strip_parameters(path),
        ]
    }

    /// RFC 3986 §5.2.4, on `/`-separated segments.
    fn remove_dot_segments(path: &str) -> String {
        let mut out: Vec<&str> = Vec::new();
        let segments: Vec<&str> = path.split('/').skip(1).collect();
        for (n, segment) in segments.iter().enumerate() {
            let last = n + 1 == segments.len();
            match *segment {
                "." => {
                    if last {
                        out.push("");
                    }
                }
                ".." => {
                    out.pop();
                    if last {
                        out.push("");
                    }
                }
                s => out.push(s),
            }
        }
        format!("/{}", out.join("/"))
    }

    /// Decodes escapes of unreserved characters, `/`, `\` and `%` (what a lenient server does).
    fn decode_unreserved_and_slashes(path: &str) -> String {
        let b = path.as_bytes();
        let mut out = Vec::new();
        let mut i = 0;
        while i < b.len() {
            if b[i] == b'%'
                && let (Some(h), Some(l)) = (
                    b.get(i + 1).and_then(|c| hex(*c)),
                    b.get(i + 2).and_then(|c| hex(*c)),
                )
            {
                let d = h << 4 | l;
                if is_unreserved(d) || matches!(d, b'/' | b'\\' | b'%') {
                    out.push(if d == b'\\' { b'/' } else { d });
                    i += 3;
                    continue;
                }
            }
            out.push(b[i]);
            i += 1;
        }
        String::from_utf8_lossy(&out).into_owned()
    }

    fn merge_slashes(path: &str) -> String {
        let mut out = String::new();
        for c in path.chars() {
            if !(c == '/' && out.ends_with('/')) {
                out.push(c);
            }
        }
        out
    }

    fn strip_parameters(path: &str) -> String {
        path.split('/')
            .map(|s| s.split(';').next().unwrap_or(""))
            .collect::<Vec<_>>()
            .join("/")
    }

    /// Paths made of the pieces attacks are made of.
    fn tricky_path() -> impl Strategy<Value = String> {
        let piece = prop_oneof![
            Just("/".to_owned()),
            Just(".".to_owned()),
            Just("..".to_owned()),
            Just("%2e".to_owned()),
            Just("%2E".to_owned()),
            Just("%252e".to_owned()),
            Just("%2f".to_owned()),
            Just("%5c".to_owned()),
            Just("\\".to_owned()),
            Just(";".to_owned()),
            Just("%61".to_owned()),
            Just("%25".to_owned()),
            Just("%00".to_owned()),
            Just("%".to_owned()),
            Just("accounts".to_owned()),
            Just("acc_A".to_owned()),
            Just("acc_B".to_owned()),
            Just("metrics".to_owned()),
            Just("ads".to_owned()),
            "[a-z0-9_~:@-]{1,4}",
        ];
        prop::collection::vec(piece, 0..12).prop_map(|pieces| format!("/{}", pieces.concat()))
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(5_000))]

        /// The property the decision rests on: a path accepted as canonical is the path every
        /// upstream serves, so a decision on it is a decision on what the upstream will serve.
        #[test]
        fn an_accepted_path_is_what_every_upstream_serves(path in tricky_path()) {
            if canonical(&path).is_ok() {
                for view in upstream_views(&path) {
                    prop_assert_eq!(meaning(&view), meaning(&path), "{} served as {}", path, view);
                }
            }
        }

        #[test]
        fn any_input_is_decided_without_panicking(path in ".{0,64}") {
            let _ = canonical(&path);
        }
    }
}
