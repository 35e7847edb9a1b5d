//! The shared JSON test vectors in `kv-schemas/testdata/` (format in its
//! README.md). Each test regenerates its file in memory from fixed inputs
//! and requires the stored file to be byte-identical, and independently reads
//! every stored case and checks that the code produces / accepts it, or fails
//! with the stated code. `KEZ_UPDATE_VECTORS=1` rewrites the files.
#![allow(clippy::unwrap_used, clippy::too_many_lines, clippy::type_complexity)]

#[path = "../common/mod.rs"]
mod common;

use std::collections::BTreeSet;

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Nonce};
use curve25519_dalek::constants::EIGHT_TORSION;
use curve25519_dalek::edwards::{CompressedEdwardsY, EdwardsPoint};
use curve25519_dalek::scalar::Scalar;
use ed25519_dalek::SigningKey;
use hkdf::Hkdf;
use kv_schemas::encoding::{b64_decode, b64_encode, hex_encode};
use kv_schemas::envelope::{self, Body};
use kv_schemas::error::{ErrorCode, KezError};
use kv_schemas::files::{self, Entry, FileMeta, Wrap};
use kv_schemas::handle::{Handle, RESERVED};
use kv_schemas::jcs::{canonicalize, canonicalize_text, parse_canonical, parse_profile};
use kv_schemas::keys::{PublicKey, sign_raw};
use kv_schemas::sig::{Purpose, signing_input};
use kv_schemas::sigchain::{ChainState, IrohRole, endpoint_key, endpoint_seed, parse_link};
use kv_schemas::subjects::DeviceId;
use kv_schemas::{manifest, nonce, register, safety};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256, Sha512};

use common::*;

// One module per vector file; their helpers are shared through these re-exports.
#[path = "ed25519.rs"]
mod ed25519_json;
#[path = "envelopes.rs"]
mod envelopes_json;
#[path = "files.rs"]
mod files_json;
#[path = "handles.rs"]
mod handles_json;
#[path = "iroh_endpoints.rs"]
mod iroh_endpoints_json;
#[path = "jcs.rs"]
mod jcs_json;
#[path = "keys.rs"]
mod keys_json;
#[path = "manifests.rs"]
mod manifests_json;
#[path = "nonces.rs"]
mod nonces_json;
#[path = "register.rs"]
mod register_json;
#[path = "safety.rs"]
mod safety_json;
#[path = "sigchain.rs"]
mod sigchain_json;
#[path = "signatures.rs"]
mod signatures_json;
#[allow(unused_imports)]
pub(crate) use ed25519_json::*;
#[allow(unused_imports)]
pub(crate) use envelopes_json::*;
#[allow(unused_imports)]
pub(crate) use files_json::*;
#[allow(unused_imports)]
pub(crate) use handles_json::*;
#[allow(unused_imports)]
pub(crate) use iroh_endpoints_json::*;
#[allow(unused_imports)]
pub(crate) use jcs_json::*;
#[allow(unused_imports)]
pub(crate) use keys_json::*;
#[allow(unused_imports)]
pub(crate) use manifests_json::*;
#[allow(unused_imports)]
pub(crate) use nonces_json::*;
#[allow(unused_imports)]
pub(crate) use register_json::*;
#[allow(unused_imports)]
pub(crate) use safety_json::*;
#[allow(unused_imports)]
pub(crate) use sigchain_json::*;
#[allow(unused_imports)]
pub(crate) use signatures_json::*;

// ------------------------------------------------------------------ harness

/// Every vector file, and who checks it. A file not listed here fails
/// `every_vector_file_is_handled`.
pub(crate) const FILES: &[&str] = &[
    "keys.json", // checked here (keys) and by kez-client's identity_vectors (mnemonics, nkeys); generated there
    "nonces.json",
    "ed25519.json",
    "signatures.json",
    "jcs.json",
    "handles.json",
    "register.json",
    "sigchain.json",
    "envelopes.json",
    "files.json",
    "manifests.json",
    "safety.json",
    "iroh_endpoints.json",
    "groups.json", // generated and checked by tests/group_vectors.rs
];

pub(crate) const ALICE: [u8; 32] = [1; 32];
pub(crate) const BOB: [u8; 32] = [2; 32];
pub(crate) const CAROL: [u8; 32] = [3; 32];
pub(crate) const NOW: u64 = 1_800_000_000_000;
pub(crate) const DAY: u64 = 86_400_000;
pub(crate) const HOME: &str = "kez.lat";

pub(crate) fn sk(seed: [u8; 32]) -> SigningKey {
    SigningKey::from_bytes(&seed)
}

pub(crate) fn pk(seed: [u8; 32]) -> PublicKey {
    PublicKey::of(&sk(seed))
}

pub(crate) fn seed_of(case: &Value, k: &str) -> SigningKey {
    sk(hx32(case, k))
}

pub(crate) fn key_of(case: &Value, k: &str) -> PublicKey {
    s(case, k).parse().unwrap_or_else(|e| panic!("case {}: {k}: {e}", name(case)))
}

pub(crate) fn code_of<T>(r: Result<T, KezError>) -> String {
    match r {
        Ok(_) => "ok".into(),
        Err(e) => e.code.as_str().into(),
    }
}

/// Asserts the stored `error` of a case is a known code and is what `r` gives.
pub(crate) fn expect_code<T>(case: &Value, r: Result<T, KezError>) {
    let want = s(case, "error");
    assert!(ErrorCode::parse(want).is_some(), "case {}: unknown code {want}", name(case));
    let got = match r {
        Ok(_) => "ok".to_string(),
        Err(e) => {
            if e.code.as_str() != want {
                panic!("case {}: expected {want}, got {} ({})", name(case), e.code, e.message);
            }
            return;
        }
    };
    panic!("case {}: expected {want}, got {got}", name(case));
}

/// At generation time: the construction must fail exactly as intended.
pub(crate) fn intend<T>(what: &str, r: Result<T, KezError>, code: &str) -> String {
    let got = code_of(r);
    assert_eq!(got, code, "generator: case {what} does not fail as intended");
    got
}

pub(crate) fn text(bytes: &[u8]) -> String {
    String::from_utf8(bytes.to_vec()).unwrap()
}

pub(crate) fn obj(v: Value) -> Map<String, Value> {
    v.as_object().cloned().unwrap()
}

/// Signs `unsigned` (which carries its own `type`) for `purpose` with `signer`
/// and returns the canonical bytes. Unlike `sig::sign_object` it leaves `type`
/// alone, so wrong-type objects can be built.
pub(crate) fn sign_as(signer: &SigningKey, purpose: Purpose, unsigned: &Map<String, Value>) -> Vec<u8> {
    let sig = sign_raw(signer, &signing_input(purpose, unsigned).unwrap());
    let mut m = unsigned.clone();
    m.insert("sig".into(), Value::String(b64_encode(&sig)));
    canonicalize(&Value::Object(m)).unwrap()
}

pub(crate) fn run(file: &str, generate: fn() -> Value, check: fn(&Value)) {
    let generated = generate();
    if updating() {
        write_or_compare(file, &generated);
    }
    let stored = read(file);
    check_common(file, &stored);
    check(&stored);
    write_or_compare(file, &generated);
}

/// Every file: a description, and unique case names in every array of cases.
pub(crate) fn check_common(file: &str, v: &Value) {
    assert!(v.get("description").and_then(Value::as_str).is_some_and(|d| !d.is_empty()), "{file}: description");
    for (k, x) in v.as_object().unwrap() {
        if let Some(a) = x.as_array()
            && a.iter().all(Value::is_object)
        {
            unique_names(a, &format!("{file}/{k}"));
        }
    }
}

#[test]
pub(crate) fn every_vector_file_is_handled() {
    let on_disk: BTreeSet<String> = std::fs::read_dir(testdata_dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".json"))
        .collect();
    let listed: BTreeSet<String> = FILES.iter().map(|s| s.to_string()).collect();
    assert_eq!(
        on_disk, listed,
        "every *.json in testdata/ must be generated and checked (and every listed file must exist)"
    );
    let readme = std::fs::read_to_string(testdata_dir().join("README.md")).unwrap();
    for f in FILES {
        assert!(readme.contains(&format!("## {f}")), "README.md does not document {f}");
    }
}

#[test]
pub(crate) fn printer_is_deterministic_and_round_trips() {
    let v = json!({"b": [1, "x\u{2028}\n\"é"], "a": {"z": null, "y": []}, "c": {}});
    let p = pretty(&v);
    assert_eq!(serde_json::from_str::<Value>(&p).unwrap(), v);
    assert!(p.find("\"a\"").unwrap() < p.find("\"b\"").unwrap());
}

// -------------------------------------------- KEM, written out independently

pub(crate) fn hkdf32(ikm: &[u8], salt: &[u8], info: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    Hkdf::<Sha256>::new(Some(salt), ikm).expand(info, &mut out).unwrap();
    out
}

/// X25519 secret of a seed: clamp(SHA-512(seed)[0..32]) (StaticSecret clamps).
pub(crate) fn x_secret(seed: &[u8; 32]) -> x25519_dalek::StaticSecret {
    let h = Sha512::digest(seed);
    let mut a = [0u8; 32];
    a.copy_from_slice(&h[..32]);
    x25519_dalek::StaticSecret::from(a)
}

/// Sender side of §6/§7.2: (E, ss, key).
pub(crate) fn kem(eph: [u8; 32], recipient: &PublicKey, label: &[u8], extra: &[u8]) -> ([u8; 32], [u8; 32], [u8; 32]) {
    let e = x25519_dalek::StaticSecret::from(eph);
    let big_e = x25519_dalek::PublicKey::from(&e).to_bytes();
    let x_r = recipient.x25519();
    let ss = e.diffie_hellman(&x25519_dalek::PublicKey::from(x_r)).to_bytes();
    assert_ne!(ss, [0; 32]);
    let info = [label, &[0], recipient.as_bytes(), extra].concat();
    (big_e, ss, hkdf32(&ss, &[big_e, x_r].concat(), &info))
}

pub(crate) const MSG_AAD: &[u8] = b"kez-v1/msg\x00\x01";

pub(crate) fn aead(key: &[u8; 32], nonce: [u8; 12], aad: &[u8], pt: &[u8]) -> Vec<u8> {
    ChaCha20Poly1305::new(key.into()).encrypt(&Nonce::from(nonce), Payload { msg: pt, aad }).unwrap()
}

pub(crate) fn aead_open(key: &[u8; 32], nonce: [u8; 12], aad: &[u8], ct: &[u8]) -> Option<Vec<u8>> {
    ChaCha20Poly1305::new(key.into()).decrypt(&Nonce::from(nonce), Payload { msg: ct, aad }).ok()
}

/// Seals arbitrary inner bytes as an envelope (pads with zeros to 256).
pub(crate) fn seal_raw(eph: [u8; 32], recipient: &PublicKey, inner: &[u8]) -> Vec<u8> {
    let (big_e, _, key) = kem(eph, recipient, b"kez-v1/msg", &[]);
    let mut padded = inner.to_vec();
    padded.resize(inner.len().div_ceil(256) * 256, 0);
    let ct = aead(&key, [0; 12], MSG_AAD, &padded);
    canonicalize(&json!({"v": 1, "enc": b64_encode(&big_e), "ct": b64_encode(&ct)})).unwrap()
}

/// Opens an envelope's AEAD layer: the padded plaintext.
pub(crate) fn open_raw(seed: &[u8; 32], outer: &[u8]) -> Vec<u8> {
    let v: Value = serde_json::from_slice(outer).unwrap();
    let big_e: [u8; 32] = b64_decode(v["enc"].as_str().unwrap(), "enc").unwrap().try_into().unwrap();
    let ct = b64_decode(v["ct"].as_str().unwrap(), "ct").unwrap();
    let me = pk(*seed);
    let ss = x_secret(seed).diffie_hellman(&x25519_dalek::PublicKey::from(big_e)).to_bytes();
    let key = hkdf32(&ss, &[big_e, me.x25519()].concat(), &[b"kez-v1/msg".as_slice(), &[0], me.as_bytes()].concat());
    aead_open(&key, [0; 12], MSG_AAD, &ct).unwrap()
}

// -------------------------------------------------------- file fixtures

pub(crate) struct FileSpec {
    id: [u8; 16],
    key: [u8; 32],
    n16: [u8; 16],
    len: usize,
    name: &'static str,
    recipients: Vec<[u8; 32]>,
    ephs: Vec<[u8; 32]>,
}

pub(crate) fn plain(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8).collect()
}

pub(crate) fn build_entry(owner: &PublicKey, f: &FileSpec) -> (Entry, Vec<u8>, FileMeta) {
    let pt = plain(f.len);
    let blob = files::encrypt_bytes(&f.key, f.n16, &pt).unwrap();
    let bh = *blake3::hash(&blob).as_bytes();
    let meta = FileMeta { name: f.name.into(), size: f.len as u64, hash: hex_encode(blake3::hash(&pt).as_bytes()) };
    let wraps = f
        .recipients
        .iter()
        .zip(&f.ephs)
        .map(|(r, e)| files::wrap_with(*e, &pk(*r), owner, &bh, &f.key).unwrap())
        .collect();
    let entry = Entry {
        id: b64_encode(&f.id),
        blob: hex_encode(&bh),
        ct_size: blob.len() as u64,
        commit: hex_encode(&files::commitment(&f.key, &f.n16)),
        meta: files::seal_meta(&f.key, &bh, &meta).unwrap(),
        wraps,
    };
    (entry, blob, meta)
}

pub(crate) struct ManifestFixture {
    files: Vec<FileSpec>,
    entries: Vec<Entry>,
    bytes: Vec<u8>,
    hash: String,
}

pub(crate) fn manifest_files() -> Vec<FileSpec> {
    vec![
        FileSpec {
            id: [0x61; 16],
            key: [0x62; 32],
            n16: [0x63; 16],
            len: 1000,
            name: "notes.txt",
            recipients: vec![BOB],
            ephs: vec![[0x64; 32]],
        },
        FileSpec {
            id: [0x71; 16],
            key: [0x72; 32],
            n16: [0x73; 16],
            len: 70_000,
            name: "photo.jpg",
            recipients: vec![CAROL],
            ephs: vec![[0x74; 32]],
        },
        FileSpec {
            id: [0x81; 16],
            key: [0x82; 32],
            n16: [0x83; 16],
            len: 0,
            name: "empty for both.txt",
            recipients: vec![BOB, CAROL],
            ephs: vec![[0x84; 32], [0x85; 32]],
        },
    ]
}

pub(crate) fn manifest_fixture() -> ManifestFixture {
    let owner = pk(ALICE);
    let files = manifest_files();
    let entries: Vec<Entry> = files.iter().map(|f| build_entry(&owner, f).0).collect();
    let bytes = manifest::build(&sk(ALICE), 1, NOW, &entries).unwrap();
    let hash = manifest::manifest_hash(&bytes);
    ManifestFixture { files, entries, bytes, hash }
}
