//! `testdata/handles.json`: generated from fixed inputs, and every stored case checked.

use super::*;

pub(crate) fn gen_handles() -> Value {
    let l63 = "a".repeat(63);
    let d253 = format!("{l63}.{}.{}.{}", "b".repeat(63), "c".repeat(63), "d".repeat(61));
    let d254 = format!("{l63}.{}.{}.{}", "b".repeat(63), "c".repeat(63), "d".repeat(62));
    assert_eq!((d253.len(), d254.len()), (253, 254));
    let valid: Vec<(&str, String)> = vec![
        ("bare_local", "alice".into()),
        ("leading_at", "@alice".into()),
        ("mixed_case_full", "Alice@KEZ.lat".into()),
        ("surrounding_whitespace", " \t\r\n\x0calice@kez.lat\n ".into()),
        ("other_domain", "bob@example.org".into()),
        ("subdomain", "carol@chat.sub.example.org".into()),
        ("single_character", "a".into()),
        ("single_digit", "0".into()),
        ("local_32_chars", "a".repeat(32)),
        ("inner_dash_and_underscore", "a_b-c".into()),
        ("double_dash_and_underscore_runs", "a--b__c".into()),
        ("digits_only", "2026".into()),
        ("uppercase_local_only", "ALICE".into()),
        ("at_with_domain", "@Bob@Example.ORG".into()),
        ("domain_label_63", format!("x@{l63}.lat")),
        ("domain_253_chars", format!("x@{d253}")),
        ("domain_with_digits_and_dash", "x@a-1.b2.c".into()),
    ];
    let valid: Vec<Value> = valid
        .iter()
        .map(|(n, i)| json!({"name": n, "input": i, "handle": Handle::parse_input(i, HOME).unwrap().to_string()}))
        .collect();
    let invalid: Vec<(&str, String)> = vec![
        ("empty", "".into()),
        ("only_at", "@".into()),
        ("double_leading_at", "@@alice".into()),
        ("empty_domain", "alice@".into()),
        ("empty_local", "@kez.lat@kez.lat".into()),
        ("two_at_signs", "alice@kez.lat@x.org".into()),
        ("domain_without_dot", "alice@localhost".into()),
        ("leading_dash", "-alice".into()),
        ("trailing_dash", "alice-".into()),
        ("leading_underscore", "_alice".into()),
        ("trailing_underscore", "alice_".into()),
        ("local_33_chars", "a".repeat(33)),
        ("inner_space", "al ice".into()),
        ("dot_in_local", "al.ice".into()),
        ("plus_in_local", "alice+tag".into()),
        ("non_ascii_local", "ålice".into()),
        ("fullwidth_letter", "\u{ff41}lice".into()),
        ("non_ascii_domain", "alice@kéz.lat".into()),
        ("kelvin_sign", "\u{212a}ez".into()),
        ("vertical_tab_is_not_trimmed", "\x0balice".into()),
        ("nbsp_is_not_trimmed", "\u{a0}alice".into()),
        ("empty_domain_label", "alice@kez..lat".into()),
        ("trailing_dot_domain", "alice@kez.lat.".into()),
        ("leading_dot_domain", "alice@.kez.lat".into()),
        ("label_leading_dash", "alice@-kez.lat".into()),
        ("label_trailing_dash", "alice@kez-.lat".into()),
        ("underscore_in_domain", "alice@k_z.lat".into()),
        ("domain_label_64", format!("x@{}.lat", "a".repeat(64))),
        ("domain_254_chars", format!("x@{d254}")),
        ("whitespace_inside", "alice @kez.lat".into()),
    ];
    let invalid: Vec<Value> = invalid
        .iter()
        .map(
            |(n, i)| json!({"name": n, "input": i, "error": intend(n, Handle::parse_input(i, HOME), "invalid_handle")}),
        )
        .collect();
    let canonical_invalid: Vec<Value> = [
        ("uppercase", "Alice@kez.lat"),
        ("no_domain", "alice"),
        ("leading_at", "@alice@kez.lat"),
        ("whitespace", " alice@kez.lat"),
        ("uppercase_domain", "alice@KEZ.lat"),
    ]
    .iter()
    .map(|(n, i)| json!({"name": n, "input": i, "error": intend(n, Handle::parse_canonical(i), "invalid_handle")}))
    .collect();
    let mut reserved: Vec<Value> = RESERVED
        .iter()
        .map(|r| {
            let h = Handle::parse_input(r, HOME).unwrap();
            assert!(h.is_reserved());
            json!({"name": format!("reserved_{r}"), "input": r, "handle": h.to_string(), "reserved": true})
        })
        .collect();
    for (n, i) in [
        ("uppercase_reserved", "Admin"),
        ("reserved_other_domain", "root@example.org"),
        ("not_reserved_prefix", "admins"),
        ("not_reserved_suffix", "myadmin"),
        ("not_reserved_underscore_variant", "no_reply"),
        ("ordinary", "alice"),
    ] {
        let h = Handle::parse_input(i, HOME).unwrap();
        reserved.push(json!({"name": n, "input": i, "handle": h.to_string(), "reserved": h.is_reserved()}));
    }
    let display: Vec<Value> = [
        ("home_domain", "alice@kez.lat"),
        ("other_domain", "bob@example.org"),
        ("subdomain_of_home", "carol@chat.kez.lat"),
    ]
    .iter()
    .map(|(n, h)| json!({"name": n, "handle": h, "display": Handle::parse_canonical(h).unwrap().display(HOME)}))
    .collect();
    json!({
        "description": "Handle parsing, canonical form, reserved names and display (PROTOCOL.md §3). See README.md.",
        "home_domain": HOME,
        "valid": valid,
        "invalid": invalid,
        "canonical_invalid": canonical_invalid,
        "reserved": reserved,
        "display": display,
    })
}

pub(crate) fn check_handles(v: &Value) {
    let home = v["home_domain"].as_str().unwrap();
    for c in arr(v, "valid") {
        let h = Handle::parse_input(s(c, "input"), home).unwrap_or_else(|e| panic!("case {}: {e}", name(c)));
        assert_eq!(h.to_string(), s(c, "handle"), "case {}", name(c));
        // Canonical output parses as canonical and normalisation is idempotent.
        assert_eq!(Handle::parse_canonical(s(c, "handle")).unwrap(), h);
        assert_eq!(Handle::parse_input(s(c, "handle"), home).unwrap(), h);
    }
    for c in arr(v, "invalid") {
        expect_code(c, Handle::parse_input(s(c, "input"), home));
    }
    for c in arr(v, "canonical_invalid") {
        expect_code(c, Handle::parse_canonical(s(c, "input")));
    }
    for c in arr(v, "reserved") {
        let h = Handle::parse_input(s(c, "input"), home).unwrap();
        assert_eq!(h.to_string(), s(c, "handle"), "case {}", name(c));
        assert_eq!(h.is_reserved(), b(c, "reserved"), "case {}", name(c));
    }
    let listed: BTreeSet<&str> = arr(v, "reserved")
        .iter()
        .filter(|c| b(c, "reserved"))
        .map(|c| s(c, "handle").split('@').next().unwrap())
        .collect();
    assert!(RESERVED.iter().all(|r| listed.contains(r)), "every reserved name has a case");
    for c in arr(v, "display") {
        assert_eq!(Handle::parse_canonical(s(c, "handle")).unwrap().display(home), s(c, "display"), "case {}", name(c));
    }
}

#[test]
pub(crate) fn handles_json() {
    run("handles.json", gen_handles, check_handles);
}
