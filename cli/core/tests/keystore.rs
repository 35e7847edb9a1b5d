//! The passphrase-encrypted key file: round trips, wrong passphrase, file
//! mode, tamper and corruption detection, passphrase change.
#![allow(clippy::unwrap_used)]

use std::fs;
use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;

use kez_client::Identity;
use kez_client::keystore::{self, KdfParams, Keystore, KeystoreError, read_public_key};

fn store() -> Keystore {
    Keystore::with_params(KdfParams::insecure_for_tests())
}

fn mode(p: &Path) -> u32 {
    fs::metadata(p).unwrap().permissions().mode() & 0o777
}

#[test]
fn round_trip_mode_and_no_plaintext_on_disk() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sub/identity.json");
    let id = Identity::generate();
    store().save(&path, &id, "correct horse").unwrap();
    assert_eq!(mode(&path), 0o600);
    assert_eq!(mode(path.parent().unwrap()), 0o700, "created folder is private");
    let back = store().load(&path, "correct horse").unwrap();
    assert_eq!(*back.seed(), *id.seed());
    assert_eq!(read_public_key(&path).unwrap(), id.public_key());

    let text = fs::read(&path).unwrap();
    let seed = id.seed();
    assert!(!text.windows(32).any(|w| w == &seed[..]), "raw seed on disk");
    let s = String::from_utf8(text).unwrap();
    assert!(!s.contains(&hex::encode(&seed[..])));
    assert!(!s.contains(&kv_schemas::encoding::b64_encode(&seed[..])));
    assert!(!s.contains(id.mnemonic().split(' ').take(3).collect::<Vec<_>>().join(" ").as_str()));
    // No temporary files are left behind.
    let names: Vec<_> = fs::read_dir(path.parent().unwrap()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(names.len(), 1, "{names:?}");
}

#[test]
fn overwrite_replaces_a_world_readable_file_with_a_private_one() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("id.json");
    fs::write(&path, b"old").unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
    store().save(&path, &Identity::from_seed([1; 32]), "pw").unwrap();
    assert_eq!(mode(&path), 0o600);
}

#[test]
fn wrong_passphrase_is_typed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("id.json");
    store().save(&path, &Identity::from_seed([2; 32]), "right").unwrap();
    assert!(matches!(store().load(&path, "wrong"), Err(KeystoreError::WrongPassphrase)));
    assert!(matches!(store().load(&path, ""), Err(KeystoreError::WrongPassphrase)));
    assert!(matches!(store().load(&path, "Right"), Err(KeystoreError::WrongPassphrase)));
    assert_eq!(KeystoreError::WrongPassphrase.to_string(), "wrong passphrase (or the key file was modified)");
}

#[test]
fn empty_passphrase_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("id.json");
    assert!(matches!(store().save(&path, &Identity::generate(), ""), Err(KeystoreError::EmptyPassphrase)));
    assert!(!path.exists());
}

#[test]
fn corruption_and_tampering_are_detected() {
    let id = Identity::from_seed([3; 32]);
    let good = store().encrypt(&id, "pw").unwrap();
    Keystore::decrypt(&good, "pw").unwrap();

    // Every truncation is a typed error, never a panic and never an identity.
    for cut in 0..good.len() - 1 {
        match Keystore::decrypt(&good[..cut], "pw") {
            Err(KeystoreError::Corrupt(_)) => {}
            other => panic!("truncated at {cut}: {other:?}"),
        }
    }
    // Every single-byte change is detected (corrupt, wrong passphrase or
    // unsupported version); none yields an identity.
    for i in 0..good.len() {
        let mut t = good.clone();
        t[i] ^= 0x01;
        assert!(Keystore::decrypt(&t, "pw").is_err(), "flip at byte {i} ({:?}) went unnoticed", good[i] as char);
    }
    // A ciphertext change without fixing the checksum reads as damage.
    let mut v: serde_json::Value = serde_json::from_slice(&good).unwrap();
    let mut ct = kv_schemas::encoding::b64_decode(v["ct"].as_str().unwrap(), "ct").unwrap();
    ct[0] ^= 1;
    v["ct"] = kv_schemas::encoding::b64_encode(&ct).into();
    assert!(matches!(Keystore::decrypt(&serde_json::to_vec(&v).unwrap(), "pw"), Err(KeystoreError::Corrupt(_))));
    // Swapping the public key for another one is caught (checksum, then AEAD).
    let mut v: serde_json::Value = serde_json::from_slice(&good).unwrap();
    v["key"] = Identity::from_seed([4; 32]).key_string().into();
    assert!(Keystore::decrypt(&serde_json::to_vec(&v).unwrap(), "pw").is_err());
    // Unknown fields, other versions and other formats.
    let mut v: serde_json::Value = serde_json::from_slice(&good).unwrap();
    v["extra"] = 1.into();
    assert!(matches!(Keystore::decrypt(&serde_json::to_vec(&v).unwrap(), "pw"), Err(KeystoreError::Corrupt(_))));
    let mut v: serde_json::Value = serde_json::from_slice(&good).unwrap();
    v["version"] = 2.into();
    assert!(matches!(
        Keystore::decrypt(&serde_json::to_vec(&v).unwrap(), "pw"),
        Err(KeystoreError::UnsupportedVersion(2))
    ));
    assert!(matches!(Keystore::decrypt(b"not json", "pw"), Err(KeystoreError::Corrupt(_))));
    assert!(matches!(Keystore::decrypt(b"{}", "pw"), Err(KeystoreError::Corrupt(_))));
}

#[test]
fn oversized_and_missing_files() {
    let dir = tempfile::tempdir().unwrap();
    let big = dir.path().join("big.json");
    fs::write(&big, vec![b' '; 64 * 1024]).unwrap();
    assert!(matches!(store().load(&big, "pw"), Err(KeystoreError::Corrupt(_))));
    assert!(matches!(store().load(&dir.path().join("none"), "pw"), Err(KeystoreError::Io { .. })));
}

#[test]
fn change_passphrase_re_encrypts() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("id.json");
    let id = Identity::generate();
    store().save(&path, &id, "old").unwrap();
    let before = fs::read(&path).unwrap();
    assert!(matches!(store().change_passphrase(&path, "nope", "new"), Err(KeystoreError::WrongPassphrase)));
    assert_eq!(fs::read(&path).unwrap(), before, "a failed change leaves the file alone");
    store().change_passphrase(&path, "old", "new").unwrap();
    assert_eq!(mode(&path), 0o600);
    assert!(matches!(store().load(&path, "old"), Err(KeystoreError::WrongPassphrase)));
    assert_eq!(*store().load(&path, "new").unwrap().seed(), *id.seed());
}

#[test]
fn default_parameters_are_recorded_and_used() {
    // One real-cost run (64 MiB, t = 3) to prove the defaults work end to end.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("id.json");
    let id = Identity::from_seed([5; 32]);
    keystore::save(&path, &id, "pw").unwrap();
    let v: serde_json::Value = serde_json::from_slice(&fs::read(&path).unwrap()).unwrap();
    assert_eq!(v["kdf"]["alg"], "argon2id");
    assert_eq!(v["kdf"]["m_kib"], 65536);
    assert_eq!(v["kdf"]["t"], 3);
    assert_eq!(v["kdf"]["p"], 1);
    assert_eq!(v["cipher"]["alg"], "xchacha20poly1305");
    assert_eq!(*keystore::load(&path, "pw").unwrap().seed(), *id.seed());
    assert_eq!(KdfParams::default(), KdfParams::DEFAULT);
}

#[test]
fn two_saves_differ_salt_and_nonce_are_fresh() {
    let id = Identity::from_seed([6; 32]);
    let a = store().encrypt(&id, "pw").unwrap();
    let b = store().encrypt(&id, "pw").unwrap();
    assert_ne!(a, b);
}
