//! The policy rule parser and matcher: never panic, and every rule that parses matches a request
//! built from its own pattern (placeholders filled in), and no request for another account.
#![no_main]

use bms_keys::policies::Rule;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut lines = text.splitn(4, '\n');
    let (rule_text, method, path, account) = (
        lines.next().unwrap_or(""),
        lines.next().unwrap_or(""),
        lines.next().unwrap_or(""),
        lines.next().unwrap_or(""),
    );
    let Ok(rule) = Rule::parse(rule_text) else {
        return;
    };
    let _ = rule.matches(method, path, account);
    // The request the rule describes.
    let mut words = rule_text.split_whitespace();
    let (Some(rule_method), Some(pattern)) = (words.next(), words.next()) else {
        panic!("a parsed rule has a method and a path");
    };
    let method = if rule_method == "*" { "GET" } else { rule_method };
    let concrete: Vec<&str> = pattern
        .split('/')
        .map(|s| match s {
            "{account}" => "acc_fuzz",
            "*" | "**" => "x",
            s => s,
        })
        .collect();
    let concrete = concrete.join("/");
    assert!(rule.matches(method, &concrete, "acc_fuzz"), "{rule_text} vs {method} {concrete}");
    if pattern.contains("{account}") {
        assert!(!rule.matches(method, &concrete, "acc_other"), "{rule_text}: another account");
    }
});
