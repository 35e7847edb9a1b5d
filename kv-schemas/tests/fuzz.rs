//! Fuzz harnesses for every parser of the contract crate (docs/fuzzing.md), seeded from the
//! vectors in `testdata/`. Each runs `KEZ_FUZZ_ITERS` executions (2 000 by default) and checks:
//! never a panic; an accepted input is canonical (re-serialising gives the same bytes); a single
//! flipped bit of accepted signed bytes is rejected. Signed objects are also mutated as JSON and
//! re-signed, so the mutations reach the checks that run after the signature.
//!
//! Long run: `KEZ_FUZZ_ITERS=1000000 cargo test --release -p kv-schemas --test fuzz -- --nocapture`.
#![allow(clippy::unwrap_used)]

#[path = "common/mod.rs"]
mod common;
#[path = "fuzzkit/mod.rs"]
mod fuzzkit;
#[path = "sealkit/mod.rs"]
mod sealkit;

use ed25519_dalek::SigningKey;
use fuzzkit::{Rng, for_bit_flips, harvest, mutate_bytes, mutate_json, run};
use kv_schemas::encoding::{b64_decode, b64_encode, hex_decode_fixed};
use kv_schemas::error::{ErrorCode, KezError};
use kv_schemas::handle::Handle;
use kv_schemas::jcs::{canonicalize_text, parse_canonical, parse_profile};
use kv_schemas::keys::PublicKey;
use kv_schemas::sig::Purpose;
use kv_schemas::{envelope, files, manifest, nonce, register, sigchain};
use serde_json::{Map, Value, json};

/// JCS of a JSON value: a `serde_json::Value` has no NaN or infinity, so this cannot fail.
fn canonicalize(v: &Value) -> Vec<u8> {
    kv_schemas::jcs::canonicalize(v).unwrap()
}

/// Signs an object from the harness's own values (strings, integers): cannot fail.
fn sign_object(signer: &SigningKey, purpose: Purpose, m: Map<String, Value>) -> Map<String, Value> {
    kv_schemas::sig::sign_object(signer, purpose, m).unwrap()
}

fn load(file: &str) -> Value {
    let text = std::fs::read_to_string(common::testdata_dir().join(file)).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn cases<'a>(v: &'a Value, array: &str) -> &'a [Value] {
    v[array].as_array().map(Vec::as_slice).unwrap_or_default()
}

fn strings(v: &Value, array: &str, field: &str) -> Vec<Vec<u8>> {
    cases(v, array).iter().filter_map(|c| c[field].as_str()).map(|s| s.as_bytes().to_vec()).collect()
}

fn seed_key(hex: &str) -> SigningKey {
    SigningKey::from_bytes(&hex_decode_fixed::<32>(hex, "seed").unwrap())
}

/// Every error is typed: a known code and a message.
fn typed<T>(r: Result<T, KezError>) -> Result<T, KezError> {
    if let Err(e) = &r {
        assert!(ErrorCode::ALL.contains(&e.code), "unknown code {:?}", e.code);
        assert!(!e.message.is_empty());
    }
    r
}

/// Mutator for signed objects: byte mutations, or a JSON mutation that is either re-signed with
/// `signer` (reaching post-signature checks) or re-serialised with its old signature.
fn signed_mutator(
    corpus: Vec<Vec<u8>>,
    signer: SigningKey,
    purpose: Purpose,
) -> impl FnMut(&mut Rng, &[u8]) -> Vec<u8> {
    let mut dict = vec![];
    for c in &corpus {
        if let Ok(v) = serde_json::from_slice::<Value>(c) {
            harvest(&v, &mut dict);
        }
    }
    let mut bytes = fuzzkit::byte_mutator(corpus);
    move |rng, base| {
        let Ok(mut v) = serde_json::from_slice::<Value>(base) else {
            return bytes(rng, base);
        };
        match rng.below(3) {
            0 => bytes(rng, base),
            1 => {
                mutate_json(rng, &mut v, &dict);
                canonicalize(&v)
            }
            _ => {
                for _ in 0..1 + rng.below(2) {
                    mutate_json(rng, &mut v, &dict);
                }
                resign(&signer, purpose, v)
            }
        }
    }
}

fn resign(signer: &SigningKey, purpose: Purpose, v: Value) -> Vec<u8> {
    match v {
        Value::Object(mut m) => {
            m.remove("sig");
            canonicalize(&Value::Object(sign_object(signer, purpose, m)))
        }
        other => canonicalize(&other),
    }
}

/// Accepted bytes are exactly their canonical re-serialisation.
fn assert_canonical(bytes: &[u8]) {
    let v = parse_profile(bytes).unwrap();
    assert_eq!(canonicalize(&v), bytes, "accepted input is not canonical");
}

#[test]
fn fuzz_jcs() {
    let v = load("jcs.json");
    let mut corpus = strings(&v, "canonicalize", "input");
    corpus.extend(strings(&v, "canonicalize_invalid", "input"));
    corpus.extend(strings(&v, "profile", "input"));
    run("jcs", &corpus.clone(), fuzzkit::byte_mutator(corpus), |input| {
        if let Ok(v) = typed(parse_profile(input)) {
            // Canonical form is a fixed point and parses back to the same value.
            let c = canonicalize(&v);
            assert_eq!(parse_canonical(&c).unwrap(), v);
        }
        if typed(parse_canonical(input)).is_ok() {
            assert_canonical(input);
        }
        if let Ok(text) = std::str::from_utf8(input)
            && let Ok(c) = typed(canonicalize_text(text))
        {
            assert_eq!(canonicalize_text(std::str::from_utf8(&c).unwrap()).unwrap(), c);
        }
    });
}

#[test]
fn fuzz_handle() {
    let v = load("handles.json");
    let home = v["home_domain"].as_str().unwrap().to_owned();
    let mut corpus = vec![];
    for a in ["valid", "invalid", "canonical_invalid", "reserved"] {
        corpus.extend(strings(&v, a, "input"));
    }
    run("handle", &corpus.clone(), fuzzkit::byte_mutator(corpus), |input| {
        let s = String::from_utf8_lossy(input);
        if let Ok(h) = typed(Handle::parse_input(&s, &home)) {
            let text = h.to_string();
            assert_eq!(Handle::parse_canonical(&text).unwrap(), h);
            assert_eq!(Handle::parse_input(&text, &home).unwrap(), h);
            assert!(text.is_ascii() && text.len() <= 32 + 1 + 253);
        }
        if let Ok(h) = typed(Handle::parse_canonical(&s)) {
            assert_eq!(h.to_string(), s);
        }
    });
}

#[test]
fn fuzz_nonce() {
    let v = load("nonces.json");
    let corpus = strings(&v, "cases", "nonce");
    run("nonce", &corpus.clone(), fuzzkit::byte_mutator(corpus), |input| {
        let s = String::from_utf8_lossy(input);
        let plain = (12..=24).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"_-".contains(&b));
        assert_eq!(nonce::is_plain_nats_nonce(&s), plain, "{s:?}");
        assert_eq!(typed(nonce::check_nats_nonce(&s)).is_ok(), plain);
    });
}

#[test]
fn fuzz_key_strings() {
    let v = load("ed25519.json");
    let corpus: Vec<Vec<u8>> = cases(&v, "keys")
        .iter()
        .filter_map(|c| c["public_hex"].as_str())
        .map(|h| format!("ed25519:{h}").into_bytes())
        .collect();
    run("key", &corpus.clone(), fuzzkit::byte_mutator(corpus), |input| {
        let s = String::from_utf8_lossy(input);
        if let Ok(k) = typed(s.parse::<PublicKey>()) {
            assert_eq!(k.to_string(), s);
            assert_eq!(PublicKey::from_hex(&k.hex()).unwrap(), k);
        }
        if let Ok(k) = typed(PublicKey::from_hex(&s)) {
            assert_eq!(k.hex(), s);
        }
        let _ = typed(b64_decode(&s, "x")).map(|b| assert_eq!(b64_encode(&b), s));
    });
}

#[test]
fn fuzz_registration() {
    let v = load("register.json");
    let domain = v["domain"].as_str().unwrap().to_owned();
    let valid = cases(&v, "valid");
    let now = valid[0]["now"].as_u64().unwrap();
    let signer = seed_key(valid[0]["seed"].as_str().unwrap());
    let mut corpus = strings(&v, "valid", "bytes");
    corpus.extend(strings(&v, "invalid", "bytes"));
    let mut flips = Rng::new(fuzzkit::seed());
    let mut accepted = 0u64;
    run("registration", &corpus.clone(), signed_mutator(corpus, signer, Purpose::Register), |input| {
        if let Ok(r) = typed(register::verify(input, &domain, now)) {
            accepted += 1;
            assert_canonical(input);
            assert_eq!(r.handle.domain(), domain);
            assert!(!r.handle.is_reserved());
            for_bit_flips(&mut flips, input, Some(8), |flipped, bit| {
                assert!(register::verify(flipped, &domain, now).is_err(), "bit {bit} flipped still verifies");
            });
        }
    });
    assert!(accepted > 0, "no mutation was accepted: the harness never reaches the end of verify");
}

#[test]
fn fuzz_sigchain_link() {
    let v = load("sigchain.json");
    let mut corpus = vec![];
    for c in cases(&v, "chains") {
        corpus.extend(c["links"].as_array().unwrap().iter().map(|l| l["bytes"].as_str().unwrap().as_bytes().to_vec()));
    }
    for c in cases(&v, "invalid_chains") {
        corpus.extend(c["links"].as_array().unwrap().iter().filter_map(|l| l.as_str()).map(|s| s.as_bytes().to_vec()));
    }
    let alice = SigningKey::from_bytes(&[1; 32]);
    let mut flips = Rng::new(fuzzkit::seed());
    run("sigchain_link", &corpus.clone(), signed_mutator(corpus, alice, Purpose::SigchainLink), |input| {
        if let Ok(link) = typed(sigchain::parse_link(input)) {
            assert_canonical(input);
            assert_eq!(link.bytes, input);
            assert_eq!(PublicKey::from_hex(&link.chain.hex()).unwrap(), link.chain);
            assert!(link.seqno >= 1 && (link.seqno == 1) == link.prev.is_none());
            for_bit_flips(&mut flips, input, Some(8), |flipped, bit| {
                assert!(sigchain::parse_link(flipped).is_err(), "bit {bit} flipped still verifies");
            });
        }
    });
}

#[test]
fn fuzz_sigchain_chain() {
    let v = load("sigchain.json");
    let alice = SigningKey::from_bytes(&[1; 32]);
    let key = PublicKey::of(&alice);
    // A chain is fuzzed as its JSON array: links dropped, duplicated, swapped, mutated and
    // re-signed, and whole-chain byte mutations.
    let mut corpus = vec![];
    for c in cases(&v, "chains") {
        let links: Vec<Value> = c["links"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| serde_json::from_str(l["bytes"].as_str().unwrap()).unwrap())
            .collect();
        corpus.push(serde_json::to_vec(&links).unwrap());
    }
    for c in cases(&v, "invalid_chains") {
        let links: Vec<Value> = c["links"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|l| l.as_str().and_then(|s| serde_json::from_str(s).ok()))
            .collect();
        corpus.push(serde_json::to_vec(&links).unwrap());
    }
    let mut link_mut = signed_mutator(corpus.clone(), alice.clone(), Purpose::SigchainLink);
    let mutate = move |rng: &mut Rng, base: &[u8]| -> Vec<u8> {
        let Ok(Value::Array(mut links)) = serde_json::from_slice::<Value>(base) else {
            let mut b = base.to_vec();
            mutate_bytes(rng, &mut b, &[]);
            return b;
        };
        if links.is_empty() || rng.one_in(3) {
            let mut whole = Value::Array(links);
            mutate_json(rng, &mut whole, &[]);
            return serde_json::to_vec(&whole).unwrap();
        }
        let i = rng.below(links.len());
        let bytes = link_mut(rng, &canonicalize(&links[i]));
        match serde_json::from_slice(&bytes) {
            Ok(l) => links[i] = l,
            Err(_) => links[i] = Value::String(String::from_utf8_lossy(&bytes).into_owned()),
        }
        serde_json::to_vec(&links).unwrap()
    };
    run("sigchain_chain", &corpus, mutate, |input| {
        let Ok(Value::Array(links)) = serde_json::from_slice::<Value>(input) else { return };
        if let Ok((state, parsed)) = typed(sigchain::verify_chain(&key, &links)) {
            assert_eq!(state.seqno, links.len() as u64);
            assert_eq!(parsed.len(), links.len());
            assert_eq!(state.tail, parsed.last().map(|l| l.link_id.clone()));
            for (i, l) in parsed.iter().enumerate() {
                assert_eq!(l.seqno, i as u64 + 1);
                let pin = sigchain::PinnedTail { seqno: l.seqno, link_id: l.link_id.clone() };
                sigchain::check_extends(&parsed, &pin).unwrap();
                assert!(sigchain::check_extends(&parsed[..i], &pin).is_err(), "rollback not detected");
            }
            // Re-applying the derived links one by one gives the same state.
            let mut again = sigchain::ChainState::empty(key);
            parsed.iter().for_each(|l| again.apply(l).unwrap());
            assert_eq!(again, state);
        }
    });
}

#[test]
fn fuzz_envelope_outer() {
    let v = load("envelopes.json");
    let mut corpus = strings(&v, "valid", "outer");
    corpus.extend(strings(&v, "invalid", "outer"));
    let mut flips = Rng::new(fuzzkit::seed());
    run("envelope_outer", &corpus.clone(), fuzzkit::byte_mutator(corpus), |input| {
        if let Ok(o) = typed(envelope::parse_outer(input)) {
            assert_canonical(input);
            assert_eq!(b64_encode(&o.enc), o.enc_text);
            let back = canonicalize(&json!({"v": 1, "enc": o.enc_text, "ct": b64_encode(&o.ct)}));
            assert_eq!(back, input);
            // Any flipped bit either breaks the outer form or changes enc/ct.
            for_bit_flips(&mut flips, input, Some(4), |flipped, _| {
                if let Ok(p) = envelope::parse_outer(flipped) {
                    assert!(p.enc != o.enc || p.ct != o.ct);
                }
            });
        }
    });
}

/// A valid vector's inner bytes, sender, recipient, ephemeral secret, `now` and window.
type InnerCase = (Vec<u8>, SigningKey, SigningKey, [u8; 32], u64, u64);

#[test]
fn fuzz_envelope_inner() {
    let v = load("envelopes.json");
    let valid = cases(&v, "valid");
    // The inner objects of the valid vectors, mutated as JSON or bytes, re-signed by their sender
    // and sealed to their recipient with the vector's ephemeral secret: every step of §6 is hit.
    let inners: Vec<InnerCase> = valid
        .iter()
        .map(|c| {
            (
                c["inner"].as_str().unwrap().as_bytes().to_vec(),
                seed_key(c["sender_seed"].as_str().unwrap()),
                seed_key(c["recipient_seed"].as_str().unwrap()),
                hex_decode_fixed::<32>(c["eph_secret"].as_str().unwrap(), "eph").unwrap(),
                c["now"].as_u64().unwrap(),
                c["window_ms"].as_u64().unwrap(),
            )
        })
        .collect();
    let mut dict = vec![];
    for (inner, ..) in &inners {
        harvest(&serde_json::from_slice(inner).unwrap(), &mut dict);
    }
    let plain: Vec<Vec<u8>> = inners.iter().map(|i| i.0.clone()).collect();
    // An input is the index of its vector, then the inner bytes.
    let corpus: Vec<Vec<u8>> = plain.iter().enumerate().map(|(i, p)| [&[i as u8][..], p].concat()).collect();
    let mut flips = Rng::new(fuzzkit::seed());
    let mut accepted = 0u64;
    let mutate = |rng: &mut Rng, base: &[u8]| -> Vec<u8> {
        let (inner, sender, ..) = &inners[base[0] as usize];
        let bytes = match rng.below(3) {
            0 => {
                let mut b = inner.clone();
                for _ in 0..1 + rng.below(3) {
                    mutate_bytes(rng, &mut b, &plain);
                }
                b
            }
            _ => {
                let mut v: Value = serde_json::from_slice(inner).unwrap();
                for _ in 0..1 + rng.below(2) {
                    mutate_json(rng, &mut v, &dict);
                }
                if rng.one_in(4) { canonicalize(&v) } else { resign(sender, Purpose::Msg, v) }
            }
        };
        [vec![base[0]], bytes].concat()
    };
    run("envelope_inner", &corpus, mutate, |input| {
        let (_, _, recipient, eph, now, window) = &inners[input[0] as usize];
        let me = PublicKey::of(recipient);
        let outer = sealkit::seal_inner_raw(*eph, &input[1..], &me);
        if let Ok(opened) = typed(envelope::open(recipient, &outer, *now, *window)) {
            accepted += 1;
            // Opening strips the padding, so the accepted inner has no trailing zeros.
            let inner = &input[1..];
            let trimmed = &inner[..inner.iter().rposition(|&b| b != 0).map_or(0, |p| p + 1)];
            assert_canonical(trimmed);
            let v = parse_profile(trimmed).unwrap();
            assert_eq!(v["from"].as_str(), Some(opened.from.to_string().as_str()));
            assert_eq!(v["to"].as_str(), Some(me.to_string().as_str()));
            assert_eq!(v["kind"].as_str(), Some(opened.body.kind()));
            assert_eq!(opened.body.to_value(), v["body"]);
            for_bit_flips(&mut flips, &outer, Some(4), |flipped, bit| {
                assert!(envelope::open(recipient, flipped, *now, *window).is_err(), "bit {bit} flipped still opens");
            });
        }
    });
    assert!(accepted > 0, "no mutation was accepted: the harness never reaches the end of open");
}

#[test]
fn fuzz_manifest() {
    let v = load("manifests.json");
    let m = &v["manifest"];
    let owner = seed_key(m["owner_seed"].as_str().unwrap());
    let mut corpus = vec![m["bytes"].as_str().unwrap().as_bytes().to_vec()];
    corpus.extend(strings(&v, "invalid", "bytes"));
    let mut flips = Rng::new(fuzzkit::seed());
    let mut accepted = 0u64;
    run("manifest", &corpus.clone(), signed_mutator(corpus, owner, Purpose::Manifest), |input| {
        if let Ok(parsed) = typed(manifest::parse(input)) {
            accepted += 1;
            assert_canonical(input);
            assert_eq!(parsed.hash, manifest::manifest_hash(input));
            assert!(parsed.entries.len() <= manifest::MAX_ENTRIES);
            for e in &parsed.entries {
                assert_eq!(files::parse_entry(&e.to_value()).unwrap(), *e);
            }
            for_bit_flips(&mut flips, input, Some(4), |flipped, bit| {
                assert!(manifest::parse(flipped).is_err(), "bit {bit} flipped still verifies");
            });
        }
    });
    assert!(accepted > 0);
}

#[test]
fn fuzz_manifest_entry_and_wrap() {
    let v = load("files.json");
    let mf = load("manifests.json");
    let readers = mf["manifest"]["readers"].as_array().unwrap();
    let reader = seed_key(readers[0]["seed"].as_str().unwrap());
    let owner: PublicKey = mf["manifest"]["owner"].as_str().unwrap().parse().unwrap();
    let mut corpus: Vec<Vec<u8>> = cases(&v, "entries_invalid").iter().map(|c| canonicalize(&c["entry"])).collect();
    let good = parse_profile(mf["manifest"]["bytes"].as_str().unwrap().as_bytes()).unwrap();
    corpus.extend(good["entries"].as_array().unwrap().iter().map(canonicalize));
    let mut dict = vec![];
    corpus.iter().for_each(|c| harvest(&serde_json::from_slice(c).unwrap(), &mut dict));
    let mut bytes_mut = fuzzkit::byte_mutator(corpus.clone());
    let mutate = move |rng: &mut Rng, base: &[u8]| -> Vec<u8> {
        if rng.one_in(3) {
            return bytes_mut(rng, base);
        }
        let mut v: Value = serde_json::from_slice(base).unwrap();
        mutate_json(rng, &mut v, &dict);
        canonicalize(&v)
    };
    run("manifest_entry", &corpus, mutate, |input| {
        let Ok(v) = parse_profile(input) else { return };
        if let Ok(e) = typed(files::parse_entry(&v)) {
            assert_eq!(e.to_value(), v);
            assert!(!e.wraps.is_empty() && e.wraps.len() <= 64 && e.meta.len() <= 2048);
            // Unwrapping arbitrary (well-formed) wraps and opening the meta never panics.
            let _ = typed(e.open_for(&reader, &owner));
            for w in &e.wraps {
                if let Some(k) = files::unwrap(w, &reader, &owner, &e.blob_hash()) {
                    let _ = typed(files::open_meta(&k, &e.blob_hash(), &e.meta));
                }
            }
        }
    });
}

#[test]
fn fuzz_file_meta() {
    let v = load("files.json");
    let mut corpus = strings(&v, "meta", "sealed");
    corpus.extend(strings(&v, "meta_invalid", "sealed"));
    let c0 = &cases(&v, "meta")[0];
    let key = hex_decode_fixed::<32>(c0["file_key"].as_str().unwrap(), "k").unwrap();
    let blob = hex_decode_fixed::<32>(c0["blob_hash"].as_str().unwrap(), "b").unwrap();
    run("file_meta", &corpus.clone(), fuzzkit::byte_mutator(corpus), |input| {
        if let Ok(m) = typed(files::open_meta(&key, &blob, &String::from_utf8_lossy(input))) {
            files::check_file_name(&m.name).unwrap();
        }
    });
}

#[test]
fn fuzz_wrap() {
    let v = load("files.json");
    let ws = cases(&v, "wraps");
    let corpus: Vec<Vec<u8>> = ws.iter().map(|w| canonicalize(&json!({"enc": w["enc"], "ct": w["ct"]}))).collect();
    let w0 = &ws[0];
    let me = seed_key(w0["recipient_seed"].as_str().unwrap());
    let owner: PublicKey = w0["owner"].as_str().unwrap().parse().unwrap();
    let blob = hex_decode_fixed::<32>(w0["blob_hash"].as_str().unwrap(), "b").unwrap();
    let file_key = hex_decode_fixed::<32>(w0["file_key"].as_str().unwrap(), "k").unwrap();
    let mut opened = 0u64;
    run("wrap", &corpus.clone(), fuzzkit::byte_mutator(corpus), |input| {
        let Ok(v) = parse_profile(input) else { return };
        let (Some(enc), Some(ct)) = (v["enc"].as_str(), v["ct"].as_str()) else { return };
        let wrap = files::Wrap { enc: enc.into(), ct: ct.into() };
        if let Some(k) = files::unwrap(&wrap, &me, &owner, &blob) {
            opened += 1;
            // AEAD: only the authentic wrap opens, and it gives the file key.
            assert_eq!(k, file_key);
            assert_eq!((enc, ct), (w0["enc"].as_str().unwrap(), w0["ct"].as_str().unwrap()));
        }
    });
    assert!(opened > 0);
}

/// Every single-bit flip of every valid signed vector is rejected (exhaustive, not sampled).
#[test]
fn every_bit_flip_of_signed_vectors_is_rejected() {
    let mut rng = Rng::new(0);
    let r = load("register.json");
    let domain = r["domain"].as_str().unwrap();
    for c in cases(&r, "valid") {
        let (bytes, now) = (c["bytes"].as_str().unwrap().as_bytes(), c["now"].as_u64().unwrap());
        register::verify(bytes, domain, now).unwrap();
        for_bit_flips(&mut rng, bytes, None, |f, bit| {
            assert!(register::verify(f, domain, now).is_err(), "{}: bit {bit}", c["name"]);
        });
    }
    let s = load("sigchain.json");
    let link = cases(&s, "chains")[0]["links"][0]["bytes"].as_str().unwrap().as_bytes();
    sigchain::parse_link(link).unwrap();
    for_bit_flips(&mut rng, link, None, |f, bit| assert!(sigchain::parse_link(f).is_err(), "link bit {bit}"));
    let m = load("manifests.json");
    let mb = m["manifest"]["bytes"].as_str().unwrap().as_bytes();
    manifest::parse(mb).unwrap();
    for_bit_flips(&mut rng, mb, Some(2_000), |f, bit| assert!(manifest::parse(f).is_err(), "manifest bit {bit}"));
    let e = load("envelopes.json");
    let c = &cases(&e, "valid")[0];
    let (outer, rcpt) = (c["outer"].as_str().unwrap().as_bytes(), seed_key(c["recipient_seed"].as_str().unwrap()));
    let (now, w) = (c["now"].as_u64().unwrap(), c["window_ms"].as_u64().unwrap());
    envelope::open(&rcpt, outer, now, w).unwrap();
    for_bit_flips(&mut rng, outer, None, |f, bit| {
        assert!(envelope::open(&rcpt, f, now, w).is_err(), "envelope bit {bit}");
    });
}
