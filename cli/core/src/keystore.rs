//! The local key store: the identity seed encrypted under a passphrase in a
//! small versioned JSON file.
//!
//! # Format (version 1)
//!
//! ```text
//! {"checksum":"<hex>","cipher":{"alg":"xchacha20poly1305","nonce":"<b64url 24 bytes>"},
//!  "ct":"<b64url 48 bytes>","format":"kez-keystore",
//!  "kdf":{"alg":"argon2id","m_kib":65536,"p":1,"salt":"<b64url 16 bytes>","t":3,"version":19},
//!  "key":"ed25519:<hex>","version":1}
//! ```
//!
//! * `header` = RFC 8785 JSON of the object without `ct` and `checksum`
//!   (so `format`, `version`, `key`, `kdf`, `cipher`).
//! * `kek` = Argon2id(passphrase UTF-8 bytes as given, `salt`, m/t/p from the
//!   file, 32-byte output). The passphrase is not Unicode-normalised.
//! * `ct` = XChaCha20-Poly1305(`kek`, `nonce`, aad = `"kez-keystore-v1" 0x00 header`, seed).
//!   Every header field is authenticated, including the KDF parameters, so a
//!   downgrade of the parameters makes the file fail to open.
//! * `checksum` = hex SHA-256(`header` 0x00 `ct` bytes). It is *not* a security
//!   mechanism (anyone can recompute it); it only lets accidental damage be
//!   reported as [`KeystoreError::Corrupt`] rather than as a wrong passphrase.
//! * `key` is the public key, readable without the passphrase
//!   ([`read_public_key`]); after decryption it must match the seed.
//!
//! Files are written atomically (temporary file in the same folder created
//! with mode 0600 before any byte is written, fsync, rename, fsync of the
//! folder). The seed never touches the disk unencrypted.
//!
//! # Why there is no OS keychain backend
//!
//! The `keyring` crate's Linux backends do not fit this platform: the
//! synchronous Secret Service backend links libdbus (needs `libdbus-1-dev`
//! and `pkg-config` to build on Debian), the pure-Rust asynchronous one pulls
//! in a D-Bus stack and an async runtime and only works with a running Secret
//! Service daemon (absent on headless servers and in CI, so it could not be
//! tested here), and the kernel keyutils backend does not survive a reboot.
//! The passphrase-encrypted file is therefore the one real, tested store; a
//! keychain can later hold the *passphrase* without changing this format.

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};

use argon2::{Algorithm, Argon2, Params, Version};
use chacha20poly1305::aead::{AeadInOut, KeyInit};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use kv_schemas::PublicKey;
use kv_schemas::encoding::{b64_decode_fixed, b64_encode};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::identity::Identity;

const FORMAT: &str = "kez-keystore";
const VERSION: u64 = 1;
const KDF_ALG: &str = "argon2id";
const CIPHER_ALG: &str = "xchacha20poly1305";
const AAD_LABEL: &[u8] = b"kez-keystore-v1\0";
/// Largest key file accepted (a real one is about 400 bytes).
const MAX_FILE_BYTES: u64 = 16 * 1024;

/// Errors of the key store.
#[derive(Debug, thiserror::Error)]
pub enum KeystoreError {
    /// The passphrase does not open the file (or its encrypted part was
    /// deliberately modified; the two cannot be told apart).
    #[error("wrong passphrase (or the key file was modified)")]
    WrongPassphrase,
    /// The file is damaged, truncated or not a key file.
    #[error("key file is damaged or not a kez key file: {0}")]
    Corrupt(String),
    /// A key file from a newer version of kez.
    #[error("key file version {0} is not supported by this version of kez")]
    UnsupportedVersion(u64),
    /// Refusing to protect a key with an empty passphrase.
    #[error("the passphrase must not be empty")]
    EmptyPassphrase,
    /// Reading or writing the file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
    /// The key derivation failed (parameters out of range).
    #[error("key derivation failed: {0}")]
    Kdf(String),
}

/// Argon2id cost parameters.
///
/// Only two constructors exist: the default and an explicitly named
/// test-only weak setting. There is deliberately no way to build other
/// values from user input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KdfParams {
    m_kib: u32,
    t: u32,
    p: u32,
}

impl KdfParams {
    /// m = 64 MiB, t = 3, p = 1.
    pub const DEFAULT: KdfParams = KdfParams { m_kib: 64 * 1024, t: 3, p: 1 };

    /// Cheap parameters (m = 64 KiB, t = 1) that make tests fast.
    /// **Never** use them for a real key.
    pub const fn insecure_for_tests() -> Self {
        KdfParams { m_kib: 64, t: 1, p: 1 }
    }

    /// Memory cost in KiB.
    pub fn m_kib(&self) -> u32 {
        self.m_kib
    }

    /// Time cost (passes).
    pub fn t(&self) -> u32 {
        self.t
    }

    /// Parallelism.
    pub fn p(&self) -> u32 {
        self.p
    }

    /// Bounds applied to parameters read from a file, so a planted file
    /// cannot make `load` allocate much memory or spin for long: at most 1 GiB,
    /// 16 passes, and 4 GiB of memory passes in all (the default is 192 MiB,
    /// so about 20× its work at most: seconds, not hours).
    fn check_loaded(&self) -> Result<(), KeystoreError> {
        const MAX_M_KIB: u32 = 1024 * 1024;
        const MAX_WORK_KIB: u64 = 4 * 1024 * 1024;
        let ok = (1..=16).contains(&self.p)
            && (8 * self.p..=MAX_M_KIB).contains(&self.m_kib)
            && (1..=16).contains(&self.t)
            && u64::from(self.m_kib) * u64::from(self.t) <= MAX_WORK_KIB;
        if ok { Ok(()) } else { Err(KeystoreError::Corrupt("unreasonable key-derivation parameters".into())) }
    }
}

impl Default for KdfParams {
    fn default() -> Self {
        Self::DEFAULT
    }
}

#[derive(Serialize, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
struct KdfHeader {
    alg: String,
    version: u32,
    m_kib: u32,
    t: u32,
    p: u32,
    salt: String,
}

#[derive(Serialize, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
struct CipherHeader {
    alg: String,
    nonce: String,
}

#[derive(Serialize, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
struct Header {
    format: String,
    version: u64,
    key: String,
    kdf: KdfHeader,
    cipher: CipherHeader,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileV1 {
    #[serde(flatten)]
    header: Header,
    ct: String,
    checksum: String,
}

impl Header {
    fn canonical(&self) -> Result<Vec<u8>, KeystoreError> {
        let v = serde_json::to_value(self).map_err(|e| KeystoreError::Corrupt(e.to_string()))?;
        kv_schemas::jcs::canonicalize(&v).map_err(|e| KeystoreError::Corrupt(e.to_string()))
    }

    fn aad(&self) -> Result<Vec<u8>, KeystoreError> {
        let mut aad = AAD_LABEL.to_vec();
        aad.extend_from_slice(&self.canonical()?);
        Ok(aad)
    }
}

fn checksum(header: &[u8], ct: &[u8]) -> String {
    let mut h = Sha256::new();
    h.update(header);
    h.update([0u8]);
    h.update(ct);
    hex::encode(h.finalize())
}

fn derive_kek(passphrase: &str, salt: &[u8], params: &KdfParams) -> Result<Zeroizing<[u8; 32]>, KeystoreError> {
    let p = Params::new(params.m_kib, params.t, params.p, Some(32)).map_err(|e| KeystoreError::Kdf(e.to_string()))?;
    let mut kek = Zeroizing::new([0u8; 32]);
    Argon2::new(Algorithm::Argon2id, Version::V0x13, p)
        .hash_password_into(passphrase.as_bytes(), salt, &mut *kek)
        .map_err(|e| KeystoreError::Kdf(e.to_string()))?;
    Ok(kek)
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> KeystoreError + '_ {
    move |source| KeystoreError::Io { path: path.to_path_buf(), source }
}

/// A passphrase-encrypted file key store with fixed KDF parameters for new files.
#[derive(Debug, Clone, Copy, Default)]
pub struct Keystore {
    params: KdfParams,
}

impl Keystore {
    /// A store that writes with [`KdfParams::DEFAULT`].
    pub fn new() -> Self {
        Self { params: KdfParams::DEFAULT }
    }

    /// A store that writes with the given parameters (tests use
    /// [`KdfParams::insecure_for_tests`]). Loading always uses the
    /// parameters recorded in the file.
    pub fn with_params(params: KdfParams) -> Self {
        Self { params }
    }

    /// Encrypts an identity into key-file bytes (fresh salt and nonce).
    pub fn encrypt(&self, id: &Identity, passphrase: &str) -> Result<Vec<u8>, KeystoreError> {
        if passphrase.is_empty() {
            return Err(KeystoreError::EmptyPassphrase);
        }
        let salt: [u8; 16] = kv_schemas::random_bytes();
        let nonce: [u8; 24] = kv_schemas::random_bytes();
        let header = Header {
            format: FORMAT.into(),
            version: VERSION,
            key: id.key_string(),
            kdf: KdfHeader {
                alg: KDF_ALG.into(),
                version: 0x13,
                m_kib: self.params.m_kib,
                t: self.params.t,
                p: self.params.p,
                salt: b64_encode(&salt),
            },
            cipher: CipherHeader { alg: CIPHER_ALG.into(), nonce: b64_encode(&nonce) },
        };
        let kek = derive_kek(passphrase, &salt, &self.params)?;
        let cipher = XChaCha20Poly1305::new((&*kek).into());
        let mut buf = Zeroizing::new(Vec::with_capacity(48));
        buf.extend_from_slice(&*id.seed());
        cipher
            .encrypt_in_place(&XNonce::from(nonce), &header.aad()?, &mut *buf)
            .map_err(|_| KeystoreError::Kdf("encryption failed".into()))?;
        let ct: Vec<u8> = buf.to_vec();
        let file = FileV1 { checksum: checksum(&header.canonical()?, &ct), header, ct: b64_encode(&ct) };
        let v = serde_json::to_value(&file).map_err(|e| KeystoreError::Corrupt(e.to_string()))?;
        let mut out = kv_schemas::jcs::canonicalize(&v).map_err(|e| KeystoreError::Corrupt(e.to_string()))?;
        out.push(b'\n');
        Ok(out)
    }

    /// Decrypts key-file bytes.
    pub fn decrypt(bytes: &[u8], passphrase: &str) -> Result<Identity, KeystoreError> {
        let file = parse_file(bytes)?;
        let h = &file.header;
        let params = KdfParams { m_kib: h.kdf.m_kib, t: h.kdf.t, p: h.kdf.p };
        params.check_loaded()?;
        let salt = b64_decode_fixed::<16>(&h.kdf.salt, "salt").map_err(|e| KeystoreError::Corrupt(e.message))?;
        let nonce = b64_decode_fixed::<24>(&h.cipher.nonce, "nonce").map_err(|e| KeystoreError::Corrupt(e.message))?;
        let ct = b64_decode_fixed::<48>(&file.ct, "ct").map_err(|e| KeystoreError::Corrupt(e.message))?;
        if checksum(&h.canonical()?, &ct) != file.checksum {
            return Err(KeystoreError::Corrupt("checksum mismatch (the file was damaged)".into()));
        }
        let kek = derive_kek(passphrase, &salt, &params)?;
        let cipher = XChaCha20Poly1305::new((&*kek).into());
        let mut buf = Zeroizing::new(ct.to_vec());
        cipher
            .decrypt_in_place(&XNonce::from(nonce), &h.aad()?, &mut *buf)
            .map_err(|_| KeystoreError::WrongPassphrase)?;
        let mut seed = Zeroizing::new([0u8; 32]);
        if buf.len() != 32 {
            return Err(KeystoreError::Corrupt("decrypted seed has the wrong length".into()));
        }
        seed.copy_from_slice(&buf);
        let id = Identity::from_seed(*seed);
        if id.key_string() != h.key {
            return Err(KeystoreError::Corrupt("the stored public key does not match the seed".into()));
        }
        Ok(id)
    }

    /// Writes `id` to `path` encrypted under `passphrase`, atomically, mode 0600.
    pub fn save(&self, path: &Path, id: &Identity, passphrase: &str) -> Result<(), KeystoreError> {
        let bytes = self.encrypt(id, passphrase)?;
        kez_private_file::write(path, &bytes).map_err(io_err(path))
    }

    /// Reads and decrypts the identity at `path`.
    pub fn load(&self, path: &Path, passphrase: &str) -> Result<Identity, KeystoreError> {
        Self::decrypt(&read_bounded(path)?, passphrase)
    }

    /// Re-encrypts the file under a new passphrase (fresh salt and nonce,
    /// this store's parameters), atomically.
    pub fn change_passphrase(&self, path: &Path, old: &str, new: &str) -> Result<(), KeystoreError> {
        let id = self.load(path, old)?;
        self.save(path, &id, new)
    }
}

fn parse_file(bytes: &[u8]) -> Result<FileV1, KeystoreError> {
    let v: serde_json::Value = serde_json::from_slice(bytes).map_err(|e| KeystoreError::Corrupt(e.to_string()))?;
    if v.get("format").and_then(|f| f.as_str()) != Some(FORMAT) {
        return Err(KeystoreError::Corrupt("not a kez key file".into()));
    }
    match v.get("version").and_then(|f| f.as_u64()) {
        Some(VERSION) => {}
        Some(other) => return Err(KeystoreError::UnsupportedVersion(other)),
        None => return Err(KeystoreError::Corrupt("missing version".into())),
    }
    let file: FileV1 = serde_json::from_value(v).map_err(|e| KeystoreError::Corrupt(e.to_string()))?;
    if file.header.kdf.alg != KDF_ALG || file.header.kdf.version != 0x13 || file.header.cipher.alg != CIPHER_ALG {
        return Err(KeystoreError::Corrupt("unknown key-derivation or cipher algorithm".into()));
    }
    Ok(file)
}

fn read_bounded(path: &Path) -> Result<Vec<u8>, KeystoreError> {
    use std::io::Read as _;
    let f = File::open(path).map_err(io_err(path))?;
    let mut bytes = Vec::new();
    f.take(MAX_FILE_BYTES + 1).read_to_end(&mut bytes).map_err(io_err(path))?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(KeystoreError::Corrupt("file is too large to be a key file".into()));
    }
    Ok(bytes)
}

/// The public key recorded in a key file (no passphrase needed; not
/// authenticated until the file is opened).
pub fn read_public_key(path: &Path) -> Result<PublicKey, KeystoreError> {
    let file = parse_file(&read_bounded(path)?)?;
    file.header.key.parse().map_err(|e: kv_schemas::KezError| KeystoreError::Corrupt(e.message))
}

/// [`Keystore::save`] with the default parameters.
pub fn save(path: &Path, id: &Identity, passphrase: &str) -> Result<(), KeystoreError> {
    Keystore::new().save(path, id, passphrase)
}

/// [`Keystore::load`].
pub fn load(path: &Path, passphrase: &str) -> Result<Identity, KeystoreError> {
    Keystore::new().load(path, passphrase)
}

/// [`Keystore::change_passphrase`] with the default parameters.
pub fn change_passphrase(path: &Path, old: &str, new: &str) -> Result<(), KeystoreError> {
    Keystore::new().change_passphrase(path, old, new)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn store() -> Keystore {
        Keystore::with_params(KdfParams::insecure_for_tests())
    }

    #[test]
    fn header_is_authenticated_and_params_are_bounded() {
        let id = Identity::from_seed([9u8; 32]);
        let bytes = store().encrypt(&id, "pw").unwrap();
        let mut v: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        // Raise t and fix the checksum: the AEAD (header as AAD) must catch it.
        v["kdf"]["t"] = 2.into();
        let header: Header = serde_json::from_value({
            let mut h = v.clone();
            h.as_object_mut().unwrap().remove("ct");
            h.as_object_mut().unwrap().remove("checksum");
            h
        })
        .unwrap();
        let ct = b64_decode_fixed::<48>(v["ct"].as_str().unwrap(), "ct").unwrap();
        v["checksum"] = checksum(&header.canonical().unwrap(), &ct).into();
        let forged = serde_json::to_vec(&v).unwrap();
        assert!(matches!(Keystore::decrypt(&forged, "pw"), Err(KeystoreError::WrongPassphrase)));
        // Absurd memory cost is refused before any allocation.
        v["kdf"]["m_kib"] = (u32::MAX).into();
        let huge = serde_json::to_vec(&v).unwrap();
        assert!(matches!(Keystore::decrypt(&huge, "pw"), Err(KeystoreError::Corrupt(_))));
    }

    /// A planted file must not make unlock run for minutes: what the checks allow
    /// is bounded in memory and in total work (checked without running the KDF).
    #[test]
    fn loaded_params_bound_memory_and_work() {
        let p = |m_kib, t, p| KdfParams { m_kib, t, p }.check_loaded().is_ok();
        assert!(p(KdfParams::DEFAULT.m_kib, KdfParams::DEFAULT.t, 1), "the default loads");
        assert!(p(64, 1, 1), "test parameters load");
        assert!(p(1024 * 1024, 4, 1), "1 GiB × 4 is the most work allowed");
        assert!(!p(1024 * 1024, 5, 1), "more total work");
        assert!(!p(4 * 1024 * 1024, 1, 1), "4 GiB of memory");
        assert!(!p(2 * 1024 * 1024, 64, 1), "2 GiB × 64 passes");
        assert!(!p(64 * 1024, 17, 1), "17 passes");
        assert!(!p(64 * 1024, 3, 17), "parallelism 17");
        assert!(!p(64, 3, 16), "less memory than 8 KiB per lane");
    }
}
