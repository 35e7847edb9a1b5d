//! Fuzz harnesses for the identity parsers (docs/fuzzing.md): the 24-word mnemonic, the NATS
//! nkey forms (`U…`, `SU…`) and nonce signing, seeded from `kv-schemas/testdata/keys.json` and
//! `nonces.json`. `KEZ_FUZZ_ITERS` sets the executions per harness.
#![allow(clippy::unwrap_used)]

#[path = "../../../kv-schemas/tests/common/mod.rs"]
mod common;
#[path = "../../../kv-schemas/tests/fuzzkit/mod.rs"]
mod fuzzkit;

use fuzzkit::{Rng, mutate_bytes, run};
use kez_client::Identity;
use kez_client::identity::{MnemonicError, mnemonic_to_seed, normalize_mnemonic, seed_to_mnemonic};
use serde_json::Value;

fn load(file: &str) -> Value {
    serde_json::from_str(&std::fs::read_to_string(common::testdata_dir().join(file)).unwrap()).unwrap()
}

fn field(v: &Value, array: &str, f: &str) -> Vec<Vec<u8>> {
    v[array].as_array().unwrap().iter().filter_map(|c| c[f].as_str()).map(|s| s.as_bytes().to_vec()).collect()
}

/// Word-level mutations on top of the byte-level ones: swap, drop, duplicate, replace by a word
/// of another phrase, change case (ASCII and non-ASCII look-alikes).
fn mnemonic_mutator(corpus: Vec<Vec<u8>>) -> impl FnMut(&mut Rng, &[u8]) -> Vec<u8> {
    let words: Vec<String> = corpus.iter().flat_map(|c| normalize_mnemonic(&String::from_utf8_lossy(c))).collect();
    move |rng, base| {
        let text = String::from_utf8_lossy(base).into_owned();
        let mut ws: Vec<String> = text.split(' ').map(str::to_owned).collect();
        match rng.below(6) {
            0 => {
                let (i, j) = (rng.below(ws.len()), rng.below(ws.len()));
                ws.swap(i, j);
            }
            1 => {
                let i = rng.below(ws.len());
                ws[i] = rng.pick(&words).clone();
            }
            2 => {
                let i = rng.below(ws.len());
                ws[i] = ws[i].to_uppercase().replace('K', "\u{212a}");
            }
            3 => {
                let i = rng.below(ws.len());
                ws.remove(i);
            }
            4 => {
                let i = rng.below(ws.len());
                ws[i] = ws[i].to_ascii_uppercase();
            }
            _ => {
                let mut b = base.to_vec();
                for _ in 0..1 + rng.below(3) {
                    mutate_bytes(rng, &mut b, &corpus);
                }
                return b;
            }
        }
        let sep = *rng.pick(&[" ", "  ", "\t", "\n", "\r\n", "\u{b}", "\u{a0}"]);
        ws.join(sep).into_bytes()
    }
}

#[test]
fn fuzz_mnemonic() {
    let v = load("keys.json");
    let mut corpus = field(&v, "identities", "mnemonic");
    corpus.extend(field(&v, "mnemonic_inputs", "input"));
    corpus.extend(field(&v, "invalid_mnemonics", "input"));
    let mut accepted = 0u64;
    run("mnemonic", &corpus.clone(), mnemonic_mutator(corpus), |input| {
        let text = String::from_utf8_lossy(input);
        let words = normalize_mnemonic(&text);
        // Normalisation is idempotent and ASCII-only: no word holds ASCII whitespace or
        // an ASCII capital, and non-ASCII characters are kept as they are.
        assert_eq!(normalize_mnemonic(&words.join(" ")), words);
        assert!(
            words
                .iter()
                .all(|w| !w.is_empty() && !w.bytes().any(|b| b.is_ascii_whitespace() || b.is_ascii_uppercase()))
        );
        match mnemonic_to_seed(&text) {
            Ok(seed) => {
                accepted += 1;
                // Accept ⇒ the canonical phrase is the normalised input, and it round-trips.
                assert_eq!(*seed_to_mnemonic(&seed), words.join(" "));
                assert!(text.is_ascii() || words.iter().all(|w| w.is_ascii()));
                assert_eq!(*Identity::from_mnemonic(&text).unwrap().seed(), *seed);
            }
            Err(MnemonicError::WordCount { got }) => assert_eq!(got, words.len()),
            Err(MnemonicError::UnknownWord { position, word }) => {
                assert_eq!(words.len(), 24);
                assert_eq!(words[position - 1], word);
            }
            Err(MnemonicError::Checksum) => assert_eq!(words.len(), 24),
        }
    });
    assert!(accepted > 0);
}

#[test]
fn fuzz_nkeys() {
    let v = load("keys.json");
    let mut corpus = field(&v, "identities", "nkey_public");
    corpus.extend(field(&v, "identities", "nkey_seed"));
    let ids = v["identities"].as_array().unwrap().clone();
    run("nkey", &corpus.clone(), fuzzkit::byte_mutator(corpus), |input| {
        let s = String::from_utf8_lossy(input);
        if let Ok((prefix, raw)) = nkeys::from_public_key(&s) {
            // A decodable user nkey is exactly one of the vectors' keys re-encoded.
            if s.starts_with('U') && nkeys::KeyPairType::from(prefix) == nkeys::KeyPairType::User {
                let id = ids.iter().find(|i| i["nkey_public"] == s.as_ref());
                if let Some(id) = id {
                    assert_eq!(hex::encode(raw), id["public"].as_str().unwrap());
                }
            }
        }
        if let Ok(kp) = nkeys::KeyPair::from_seed(&s) {
            // Accept ⇒ the seed re-encodes to the same text (the encoding is canonical).
            assert_eq!(kp.seed().unwrap(), s);
            let (prefix, raw) = nkeys::decode_seed(&s).unwrap();
            if s.starts_with("SU") {
                // The `SU` prefix carries the user type; the 32 bytes are our identity seed.
                assert_eq!(nkeys::KeyPairType::from(prefix), nkeys::KeyPairType::User);
                let id = Identity::from_seed(raw);
                assert_eq!(id.nkey_seed().unwrap().as_str(), s);
                assert_eq!(id.nkey_public().unwrap(), kp.public_key());
            }
        }
    });
}

#[test]
fn fuzz_nonce_signing() {
    let v = load("nonces.json");
    let corpus = field(&v, "cases", "nonce");
    let id = Identity::from_seed(hex::decode(v["seed"].as_str().unwrap()).unwrap().try_into().unwrap());
    run("nonce_signing", &corpus.clone(), fuzzkit::byte_mutator(corpus), |input| {
        let s = String::from_utf8_lossy(input);
        match id.sign_nats_nonce_raw(&s) {
            Ok(sig) => {
                assert!(kv_schemas::nonce::is_plain_nats_nonce(&s));
                id.public_key().verify_strict(s.as_bytes(), &sig).unwrap();
            }
            Err(e) => assert!(!kv_schemas::nonce::is_plain_nats_nonce(&s), "{e}"),
        }
    });
}
