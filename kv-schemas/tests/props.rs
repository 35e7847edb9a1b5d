//! Property and fuzz-style tests: every parser takes arbitrary input without
//! panicking and answers with a typed error; builders and parsers round-trip.
//! Case counts are kept small so the suite stays quick in debug builds.
#![allow(clippy::unwrap_used)]

#[path = "sealkit/mod.rs"]
mod sealkit;

use ed25519_dalek::SigningKey;
use kv_schemas::encoding::{b64_decode, b64_encode, hex_decode};
use kv_schemas::envelope::{self, Body};
use kv_schemas::error::{ErrorCode, KezError};
use kv_schemas::files::{self, Decryptor, Encryptor};
use kv_schemas::handle::Handle;
use kv_schemas::jcs::{MAX_SAFE_INTEGER, canonicalize, canonicalize_text, parse_canonical, parse_profile};
use kv_schemas::keys::PublicKey;
use kv_schemas::sigchain::{Endpoint, Op, parse_link};
use kv_schemas::{manifest, register};
use proptest::prelude::*;
use serde_json::{Map, Value, json};

const NOW: u64 = 1_800_000_000_000;
const DAY: u64 = 86_400_000;

fn bob() -> SigningKey {
    SigningKey::from_bytes(&[2; 32])
}

fn alice() -> SigningKey {
    SigningKey::from_bytes(&[1; 32])
}

/// A typed error must carry a known code and a non-empty message.
fn typed<T>(r: Result<T, KezError>) -> Result<T, KezError> {
    if let Err(e) = &r {
        assert!(ErrorCode::ALL.contains(&e.code));
        assert!(!e.message.is_empty());
    }
    r
}

/// Arbitrary JSON values (any numbers, any keys).
fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<u64>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_filter("finite", |f| f.is_finite()).prop_map(Value::from),
        ".{0,12}".prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((".{0,8}", inner), 0..6)
                .prop_map(|kv| Value::Object(kv.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

/// Arbitrary values inside the KEZ profile.
fn profile_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        (0..=MAX_SAFE_INTEGER).prop_map(Value::from),
        "\\PC{0,12}".prop_map(Value::String),
        any::<String>().prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec(("[a-z0-9_]{1,32}", inner), 0..6)
                .prop_map(|kv| Value::Object(kv.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

/// Valid signed objects of every kind, as bytes, for mutation.
fn valid_objects() -> Vec<Vec<u8>> {
    let a = alice();
    let ak = PublicKey::of(&a);
    let h = Handle::parse_input("alice", "kez.lat").unwrap();
    let reg = register::build(&a, &h, NOW, [7; 16]).unwrap();
    let link = kv_schemas::sigchain::build_link(&a, 1, None, NOW, &Op::AddEndpoint(Endpoint::iroh_wave1(&ak))).unwrap();
    let env =
        envelope::seal_with(&a, &PublicKey::of(&bob()), &Body::Text("hello".into()), NOW, [3; 16], [4; 32]).unwrap();
    let k = [5u8; 32];
    let blob = files::encrypt_bytes(&k, [6; 16], b"data").unwrap();
    let bh = *blake3::hash(&blob).as_bytes();
    let meta = files::FileMeta { name: "a.txt".into(), size: 4, hash: hex::encode(blake3::hash(b"data").as_bytes()) };
    let entry =
        files::make_entry(&ak, &k, &[6; 16], &bh, blob.len() as u64, &meta, &[PublicKey::of(&bob())], [8; 16]).unwrap();
    let man = manifest::build(&a, 1, NOW, &[entry]).unwrap();
    vec![reg, link, env, man]
}

/// Runs every byte parser on `bytes`; none may panic; errors are typed.
fn all_parsers(bytes: &[u8]) {
    let _ = typed(parse_profile(bytes));
    let _ = typed(parse_canonical(bytes));
    let _ = typed(register::verify(bytes, "kez.lat", NOW));
    let _ = typed(parse_link(bytes));
    let _ = typed(envelope::open(&bob(), bytes, NOW, DAY));
    let _ = typed(manifest::parse(bytes));
    let _ = typed(files::decrypt_bytes([5; 32], [0; 32], bytes));
    if let Ok(s) = std::str::from_utf8(bytes) {
        let _ = typed(canonicalize_text(s));
        let _ = typed(Handle::parse_input(s, "kez.lat"));
        let _ = typed(Handle::parse_canonical(s));
        let _ = typed(s.parse::<PublicKey>());
        let _ = typed(PublicKey::from_hex(s));
        let _ = typed(b64_decode(s, "x"));
        let _ = typed(hex_decode(s, "x"));
    }
    if let Ok(v) = serde_json::from_slice::<Value>(bytes) {
        let _ = typed(files::parse_entry(&v));
    }
}

/// Seals arbitrary inner bytes for bob with a correct KEM key, to reach the
/// inner-message parser.
fn seal_inner_raw(eph: [u8; 32], inner: &[u8]) -> Vec<u8> {
    sealkit::seal_inner_raw(eph, inner, &PublicKey::of(&bob()))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn parsers_never_panic_on_arbitrary_bytes(bytes in prop::collection::vec(any::<u8>(), 0..600)) {
        all_parsers(&bytes);
    }

    #[test]
    fn parsers_never_panic_on_arbitrary_json(v in any_json()) {
        let text = serde_json::to_vec(&v).unwrap();
        all_parsers(&text);
        all_parsers(&canonicalize(&v).unwrap());
        let _ = typed(files::parse_entry(&v));
    }

    #[test]
    fn parsers_never_panic_on_json_shaped_text(s in r#"[\[\]{}":,0-9a-z\\ .eE+-]{0,80}"#) {
        all_parsers(s.as_bytes());
    }

    #[test]
    fn string_parsers_never_panic(s in any::<String>()) {
        all_parsers(s.as_bytes());
        let _ = typed(Handle::parse_input(&s, "kez.lat"));
    }

    #[test]
    fn mutated_valid_objects_fail_typed_or_are_unchanged(
        which in 0usize..4,
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
    ) {
        let mut b = valid_objects()[which].clone();
        let original = b.clone();
        for (i, x) in &edits {
            let i = i.index(b.len());
            b[i] = *x;
        }
        all_parsers(&b);
        if b != original {
            // A changed signed object never verifies as the same kind.
            match which {
                0 => prop_assert!(register::verify(&b, "kez.lat", NOW).is_err()),
                1 => prop_assert!(parse_link(&b).is_err()),
                2 => prop_assert!(envelope::open(&bob(), &b, NOW, DAY).is_err()),
                _ => prop_assert!(manifest::parse(&b).is_err()),
            }
        }
    }

    #[test]
    fn truncated_valid_objects_fail(which in 0usize..4, cut in any::<prop::sample::Index>()) {
        let b = valid_objects()[which].clone();
        let cut = cut.index(b.len());
        let t = &b[..cut];
        all_parsers(t);
        prop_assert!(register::verify(t, "kez.lat", NOW).is_err());
        prop_assert!(parse_link(t).is_err());
        prop_assert!(envelope::open(&bob(), t, NOW, DAY).is_err());
        prop_assert!(manifest::parse(t).is_err());
    }

    #[test]
    fn inner_message_parser_takes_arbitrary_plaintext(inner in prop::collection::vec(any::<u8>(), 0..400), eph in any::<[u8; 32]>()) {
        let r = typed(envelope::open(&bob(), &seal_inner_raw(eph, &inner), NOW, DAY));
        prop_assert!(r.is_err());
    }

    #[test]
    fn inner_message_parser_takes_arbitrary_json(v in any_json(), eph in any::<[u8; 32]>()) {
        let r = typed(envelope::open(&bob(), &seal_inner_raw(eph, &canonicalize(&v).unwrap()), NOW, DAY));
        prop_assert!(r.is_err());
    }

    #[test]
    fn outer_with_random_enc_and_ct_fails_typed(enc in any::<[u8; 32]>(), ct in prop::collection::vec(any::<u8>(), 0..300)) {
        let outer = canonicalize(&json!({"v": 1, "enc": b64_encode(&enc), "ct": b64_encode(&ct)})).unwrap();
        let e = typed(envelope::open(&bob(), &outer, NOW, DAY)).unwrap_err();
        prop_assert_eq!(e.code, ErrorCode::DecryptFailed);
    }

    #[test]
    fn jcs_canonicalize_is_idempotent(v in any_json()) {
        let once = canonicalize(&v).unwrap();
        let text = std::str::from_utf8(&once).unwrap();
        // Keys may collide only if the generator produced duplicates, which a Map cannot hold.
        let twice = canonicalize_text(text).unwrap();
        prop_assert_eq!(&twice, &once);
        prop_assert_eq!(canonicalize_text(std::str::from_utf8(&twice).unwrap()).unwrap(), twice);
    }

    #[test]
    fn profile_values_round_trip_through_canonical_bytes(v in profile_json()) {
        let bytes = canonicalize(&v).unwrap();
        prop_assert_eq!(parse_canonical(&bytes).unwrap(), v.clone());
        prop_assert_eq!(parse_profile(&serde_json::to_vec_pretty(&v).unwrap()).unwrap(), v);
    }

    #[test]
    fn handle_normalisation_is_idempotent(s in "[ \t@]{0,2}[A-Za-z0-9_.@-]{0,40}[ \n]{0,2}") {
        if let Ok(h) = Handle::parse_input(&s, "kez.lat") {
            let canon = h.to_string();
            prop_assert_eq!(Handle::parse_input(&canon, "kez.lat").unwrap(), h.clone());
            prop_assert_eq!(Handle::parse_canonical(&canon).unwrap(), h.clone());
            prop_assert_eq!(canon.clone(), canon.to_ascii_lowercase());
            prop_assert!(canon.contains('@'));
            let display = h.display("kez.lat");
            prop_assert_eq!(Handle::parse_input(&display, "kez.lat").unwrap(), h);
        }
    }

    #[test]
    fn public_key_text_round_trips(bytes in any::<[u8; 32]>()) {
        if let Ok(k) = typed(PublicKey::from_bytes(bytes)) {
            prop_assert_eq!(k.to_string().parse::<PublicKey>().unwrap(), k);
            prop_assert_eq!(PublicKey::from_hex(&k.hex()).unwrap(), k);
            prop_assert!(k.to_string().to_uppercase().parse::<PublicKey>().is_err());
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn seal_open_round_trip(
        text in "\\PC{1,300}",
        ts in (NOW - DAY)..(NOW + 300_000),
        id in any::<[u8; 16]>(),
        eph in any::<[u8; 32]>(),
        from in any::<[u8; 32]>(),
        to in any::<[u8; 32]>(),
    ) {
        let (s, r) = (SigningKey::from_bytes(&from), SigningKey::from_bytes(&to));
        let outer = envelope::seal_with(&s, &PublicKey::of(&r), &Body::Text(text.clone()), ts, id, eph).unwrap();
        let o = envelope::open(&r, &outer, NOW, DAY).unwrap();
        prop_assert_eq!(o.body, Body::Text(text));
        prop_assert_eq!(o.from, PublicKey::of(&s));
        prop_assert_eq!(o.ts, ts);
        prop_assert_eq!(o.id, b64_encode(&id));
        // Nobody else opens it.
        if from != to {
            prop_assert!(envelope::open(&s, &outer, NOW, DAY).is_err());
        }
    }

    #[test]
    fn encrypt_decrypt_round_trip_any_length(
        len in prop_oneof![0usize..4, 65_530usize..65_542, 131_068usize..131_076, 0usize..140_000],
        fill in any::<u8>(),
        key in any::<[u8; 32]>(),
        n16 in any::<[u8; 16]>(),
        splits in prop::collection::vec(1usize..70_000, 1..6),
    ) {
        let plain: Vec<u8> = (0..len).map(|i| (i as u8).wrapping_mul(31).wrapping_add(fill)).collect();
        let blob = files::encrypt_bytes(&key, n16, &plain).unwrap();
        prop_assert_eq!(blob.len() as u64, files::blob_size(len as u64));
        let commit = files::commitment(&key, &n16);
        prop_assert_eq!(&files::decrypt_bytes(key, commit, &blob).unwrap(), &plain);
        // Streaming in arbitrary pieces gives the same bytes both ways.
        let mut out = Vec::new();
        let mut enc = Encryptor::new(&key, n16, &mut out);
        let mut rest: &[u8] = &plain;
        for s in splits.iter().cycle().take(64) {
            if rest.is_empty() { break; }
            let (a, b) = rest.split_at((*s).min(rest.len()));
            enc.update(a, &mut out).unwrap();
            rest = b;
        }
        enc.update(rest, &mut out).unwrap();
        enc.finish(&mut out).unwrap();
        prop_assert_eq!(&out, &blob);
        let mut back = Vec::new();
        let mut dec = Decryptor::new(key, commit);
        let mut rest: &[u8] = &blob;
        for s in splits.iter().cycle().take(64) {
            if rest.is_empty() { break; }
            let (a, b) = rest.split_at((*s).min(rest.len()));
            dec.update(a, &mut back).unwrap();
            rest = b;
        }
        dec.update(rest, &mut back).unwrap();
        dec.finish(&mut back).unwrap();
        prop_assert_eq!(&back, &plain);
    }

    #[test]
    fn any_strict_prefix_of_a_blob_fails(len in 0usize..2_000, cut in any::<prop::sample::Index>(), key in any::<[u8; 32]>()) {
        let plain = vec![0x5a; len];
        let blob = files::encrypt_bytes(&key, [1; 16], &plain).unwrap();
        let commit = files::commitment(&key, &[1; 16]);
        let cut = cut.index(blob.len());
        let e = typed(files::decrypt_bytes(key, commit, &blob[..cut])).unwrap_err();
        prop_assert_eq!(e.code, ErrorCode::DecryptFailed);
    }

    #[test]
    fn wrap_unwrap_round_trip(eph in any::<[u8; 32]>(), r in any::<[u8; 32]>(), o in any::<[u8; 32]>(), bh in any::<[u8; 32]>(), k in any::<[u8; 32]>()) {
        let (rk, ok) = (SigningKey::from_bytes(&r), PublicKey::of(&SigningKey::from_bytes(&o)));
        let w = files::wrap_with(eph, &PublicKey::of(&rk), &ok, &bh, &k).unwrap();
        prop_assert_eq!(files::unwrap(&w, &rk, &ok, &bh), Some(k));
        let mut other = bh;
        other[0] ^= 1;
        prop_assert_eq!(files::unwrap(&w, &rk, &ok, &other), None);
    }

    #[test]
    fn registration_round_trip(seed in any::<[u8; 32]>(), local in "[a-z0-9][a-z0-9_-]{0,30}[a-z0-9]", ts in any::<u32>(), nonce in any::<[u8; 16]>()) {
        let h = Handle::parse_input(&local, "kez.lat").unwrap();
        let s = SigningKey::from_bytes(&seed);
        let ts = NOW + u64::from(ts) % 300_000;
        let bytes = register::build(&s, &h, ts, nonce).unwrap();
        match register::verify(&bytes, "kez.lat", NOW) {
            Ok(r) => { prop_assert_eq!(r.handle, h); prop_assert_eq!(r.key, PublicKey::of(&s)); }
            Err(e) => prop_assert!(h.is_reserved() && e.code == ErrorCode::HandleReserved, "{e}"),
        }
    }
}
