//! `testdata/jcs.json`: generated from fixed inputs, and every stored case checked.

use super::*;

pub(crate) fn gen_jcs() -> Value {
    let general: &[(&str, &str)] = &[
        (
            "rfc8785_example",
            "{\n  \"numbers\": [333333333.33333329, 1E30, 4.50, 2e-3, 0.000000000000000000000000001],\n  \"string\": \"\\u20ac$\\u000F\\u000aA'\\u0042\\u0022\\u005c\\\\\\\"\\/\",\n  \"literals\": [null, true, false]\n}",
        ),
        (
            "rfc8785_key_sorting",
            "{\"\\u20ac\":\"Euro Sign\",\"\\r\":\"Carriage Return\",\"\\ufb33\":\"Hebrew Letter Dalet With Dagesh\",\"1\":\"One\",\"\\ud83d\\ude00\":\"Emoji: Grinning Face\",\"\\u0080\":\"Control\",\"\\u00f6\":\"Latin Small Letter O With Diaeresis\"}",
        ),
        ("utf16_order_emoji_before_ff61", "{\"\\uff61\":3,\"\\ud83d\\ude00\":2,\"a\":1,\"B\":0,\"\\u00e9\":4}"),
        ("numbers_integral_floats", "[1.0, -1.0, 0.0, 100.00, 1e2, 1E+2]"),
        ("numbers_exponent_switch", "[1e20, 1e21, 1e-6, 1e-7, 123e18, 0.000001, 0.0000001]"),
        ("numbers_negative_zero", "[-0, -0.0, 0e5]"),
        (
            "numbers_shortest_round_trip",
            "[0.1, 0.2, 0.30000000000000004, 1.5, -1.5, 3.14159, 5e-324, 1.7976931348623157e308]",
        ),
        (
            "numbers_large_integers",
            "[9007199254740991, 9007199254740992, 9007199254740993, 18446744073709551615, 123456789012345678901234567890, -9007199254740991]",
        ),
        ("escapes_control_characters", "[\"\\u0000\\u0001\\u0007\\u001f\", \"\\b\\f\\n\\r\\t\", \"\\u007f\"]"),
        ("escapes_line_separators_stay_raw", "[\"\\u2028\\u2029\"]"),
        ("escapes_quote_backslash_slash", "[\"\\\"\", \"\\\\\", \"\\/\", \"a/b\"]"),
        ("non_ascii_as_utf8", "[\"\\u00e9\", \"\\u20ac\", \"\\ud83d\\ude00\", \"é€😀\"]"),
        ("nested_and_empty", "{\"b\":[{\"z\":1,\"y\":{\"d\":null,\"c\":[]}}],\"a\":{},\"c\":[[],[{}]]}"),
        ("insignificant_whitespace", " \t\n\r{ \"a\" : [ 1 , 2 ] ,\n\"b\":true } \n"),
        ("top_level_literals", "[true, false, null, \"\", 0]"),
        ("top_level_string", "\"x\""),
    ];
    let canon: Vec<Value> = general
        .iter()
        .map(|(n, input)| json!({"name": n, "input": input, "output": text(&canonicalize_text(input).unwrap())}))
        .collect();
    // Spot checks against RFC 8785's published outputs.
    assert_eq!(
        canon[0]["output"],
        "{\"literals\":[null,true,false],\"numbers\":[333333333.3333333,1e+30,4.5,0.002,1e-27],\"string\":\"€$\\u000f\\nA'B\\\"\\\\\\\\\\\"/\"}"
    );
    assert_eq!(
        canon[1]["output"],
        "{\"\\r\":\"Carriage Return\",\"1\":\"One\",\"\u{80}\":\"Control\",\"ö\":\"Latin Small Letter O With Diaeresis\",\"€\":\"Euro Sign\",\"😀\":\"Emoji: Grinning Face\",\"\u{fb33}\":\"Hebrew Letter Dalet With Dagesh\"}"
    );
    assert_eq!(canon[4]["output"], "[100000000000000000000,1e+21,0.000001,1e-7,123000000000000000000,0.000001,1e-7]");

    let general_invalid: &[(&str, &str)] = &[
        ("duplicate_key", "{\"a\":1,\"a\":2}"),
        ("duplicate_key_nested", "[{\"b\":{\"x\":1,\"x\":1}}]"),
        ("lone_high_surrogate", "[\"\\ud800\"]"),
        ("lone_low_surrogate", "[\"\\udc00x\"]"),
        ("number_overflows_double", "[1e400]"),
        ("nan_literal", "[NaN]"),
        ("leading_zero", "[01]"),
        ("trailing_comma", "[1,]"),
        ("single_quotes", "{'a':1}"),
        ("empty_input", ""),
        ("trailing_garbage", "{\"a\":1}x"),
        ("raw_newline_in_string", "[\"a\nb\"]"),
    ];
    let canon_invalid: Vec<Value> = general_invalid
        .iter()
        .map(|(n, input)| json!({"name": n, "input": input, "error": intend(n, canonicalize_text(input), "invalid_json")}))
        .collect();

    let max_key = "k".repeat(32);
    let long_key = "k".repeat(33);
    let profile_text: Vec<(&str, String)> = vec![
        ("canonical_object", r#"{"a":1,"b":"x","c":[true,false,null],"d":{}}"#.into()),
        ("zero", r#"{"n":0}"#.into()),
        ("max_safe_integer", r#"{"n":9007199254740991}"#.into()),
        ("above_max_safe_integer", r#"{"n":9007199254740992}"#.into()),
        ("u64_overflow", r#"{"n":18446744073709551616}"#.into()),
        ("negative", r#"{"n":-1}"#.into()),
        ("negative_zero", r#"{"n":-0}"#.into()),
        ("fraction", r#"{"n":1.5}"#.into()),
        ("integral_fraction", r#"{"n":1.0}"#.into()),
        ("exponent", r#"{"n":1e2}"#.into()),
        ("zero_exponent", r#"{"n":0e0}"#.into()),
        ("leading_zero", r#"{"n":01}"#.into()),
        ("duplicate_key", r#"{"a":1,"a":1}"#.into()),
        ("duplicate_key_nested_in_array", r#"{"a":[{"b":1},{"c":1,"c":2}]}"#.into()),
        ("uppercase_key", r#"{"A":1}"#.into()),
        ("dash_in_key", r#"{"a-b":1}"#.into()),
        ("dot_in_key", r#"{"a.b":1}"#.into()),
        ("empty_key", r#"{"":1}"#.into()),
        ("key_32_chars", format!(r#"{{"{max_key}":1}}"#)),
        ("key_33_chars", format!(r#"{{"{long_key}":1}}"#)),
        ("non_ascii_key", r#"{"é":1}"#.into()),
        ("nested_bad_key", r#"{"a":{"B":1}}"#.into()),
        ("digits_and_underscore_key", r#"{"_0":1,"a_b_9":2}"#.into()),
        ("whitespace_after_colon", r#"{"a": 1}"#.into()),
        ("leading_whitespace", r#" {"a":1}"#.into()),
        ("trailing_newline", "{\"a\":1}\n".into()),
        ("key_order", r#"{"b":1,"a":2}"#.into()),
        ("unneeded_escape", r#"{"a":"\u0041"}"#.into()),
        ("escaped_slash", r#"{"a":"\/"}"#.into()),
        ("escaped_non_ascii", r#"{"a":"\u00e9"}"#.into()),
        ("escaped_surrogate_pair", r#"{"a":"\ud83d\ude00"}"#.into()),
        ("raw_non_ascii", r#"{"a":"é😀"}"#.into()),
        ("canonical_control_escapes", r#"{"a":"\u001f\n\t\"\\"}"#.into()),
        ("long_form_newline_escape", r#"{"a":"\u000a"}"#.into()),
        ("uppercase_hex_escape", r#"{"a":"\u001F"}"#.into()),
        ("raw_control_character", "{\"a\":\"\u{1}\"}".into()),
        ("lone_high_surrogate", r#"{"a":"\ud800"}"#.into()),
        ("lone_low_surrogate", r#"{"a":"\udc00"}"#.into()),
        ("byte_order_mark", "\u{feff}{\"a\":1}".into()),
        ("trailing_garbage", r#"{"a":1}x"#.into()),
        ("two_values", r#"{"a":1}{"b":2}"#.into()),
        ("empty_input", "".into()),
        ("null_value", r#"{"a":null}"#.into()),
        ("top_level_array", "[1,2]".into()),
        ("top_level_string", r#""x""#.into()),
        ("unclosed_object", r#"{"a":1"#.into()),
    ];
    let mut profile: Vec<Value> = profile_text
        .iter()
        .map(|(n, t)| {
            json!({"name": n, "input": t,
                   "parse_profile": code_of(parse_profile(t.as_bytes())),
                   "parse_canonical": code_of(parse_canonical(t.as_bytes()))})
        })
        .collect();
    let hex_inputs: &[(&str, &str)] = &[
        ("invalid_utf8_byte", "7b2261223a22ff227d"),
        ("overlong_utf8_slash", "7b2261223a22c0af227d"),
        ("utf8_encoded_surrogate", "7b2261223a22eda080227d"),
        ("truncated_utf8_sequence", "7b2261223a22e282227d"),
    ];
    for (n, h) in hex_inputs {
        let b = hex::decode(h).unwrap();
        profile.push(json!({"name": n, "input_hex": h,
            "parse_profile": intend(n, parse_profile(&b), "invalid_json"),
            "parse_canonical": code_of(parse_canonical(&b))}));
    }
    // Intent checks for the profile cases.
    let expect: &[(&str, &str, &str)] = &[
        ("canonical_object", "ok", "ok"),
        ("max_safe_integer", "ok", "ok"),
        ("above_max_safe_integer", "invalid_json", "invalid_json"),
        ("negative_zero", "invalid_json", "invalid_json"),
        ("integral_fraction", "invalid_json", "invalid_json"),
        ("key_32_chars", "ok", "ok"),
        ("key_33_chars", "invalid_json", "invalid_json"),
        ("whitespace_after_colon", "ok", "not_canonical"),
        ("trailing_newline", "ok", "not_canonical"),
        ("key_order", "ok", "not_canonical"),
        ("unneeded_escape", "ok", "not_canonical"),
        ("escaped_surrogate_pair", "ok", "not_canonical"),
        ("raw_non_ascii", "ok", "ok"),
        ("canonical_control_escapes", "ok", "ok"),
        ("uppercase_hex_escape", "ok", "not_canonical"),
        ("lone_high_surrogate", "invalid_json", "invalid_json"),
        ("byte_order_mark", "invalid_json", "invalid_json"),
        ("null_value", "ok", "ok"),
    ];
    for (n, pp, pc) in expect {
        let c = profile.iter().find(|c| c["name"] == *n).unwrap();
        assert_eq!((c["parse_profile"].as_str().unwrap(), c["parse_canonical"].as_str().unwrap()), (*pp, *pc), "{n}");
    }
    json!({
        "description": "RFC 8785 canonical JSON (general) and the KEZ JSON profile (PROTOCOL.md §1.1). See README.md.",
        "canonicalize": canon,
        "canonicalize_invalid": canon_invalid,
        "profile": profile,
    })
}

pub(crate) fn check_jcs(v: &Value) {
    for c in arr(v, "canonicalize") {
        let out = canonicalize_text(s(c, "input")).unwrap_or_else(|e| panic!("case {}: {e}", name(c)));
        assert_eq!(text(&out), s(c, "output"), "case {}", name(c));
        // Canonical output is a fixed point.
        assert_eq!(text(&canonicalize_text(s(c, "output")).unwrap()), s(c, "output"), "case {}", name(c));
    }
    for c in arr(v, "canonicalize_invalid") {
        expect_code(c, canonicalize_text(s(c, "input")));
    }
    for c in arr(v, "profile") {
        let b = bytes_of(c, "input");
        assert_eq!(code_of(parse_profile(&b)), s(c, "parse_profile"), "case {} (parse_profile)", name(c));
        assert_eq!(code_of(parse_canonical(&b)), s(c, "parse_canonical"), "case {} (parse_canonical)", name(c));
        if s(c, "parse_canonical") == "ok" {
            assert_eq!(canonicalize(&parse_profile(&b).unwrap()).unwrap(), b, "case {}", name(c));
        }
    }
}

#[test]
pub(crate) fn jcs_json() {
    run("jcs.json", gen_jcs, check_jcs);
}
