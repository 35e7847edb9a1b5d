//! File encryption (PROTOCOL.md §7): chunked STREAM content encryption under a
//! fresh per-file key, the per-recipient key wrap, and the encrypted metadata
//! carried in manifest entries and file offers.

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Nonce};
use ed25519_dalek::SigningKey;
use hkdf::Hkdf;
use serde_json::{Value, json};
use sha2::Sha256;
use zeroize::Zeroizing;

use crate::encoding::{b64_decode, b64_decode_fixed, b64_encode, hex_decode_fixed, hex_encode};
use crate::envelope::{aead_open, aead_seal, kem_key_recipient, kem_key_sender};
use crate::error::{ErrorCode, KezError, err};
use crate::jcs::{Fields, canonicalize, parse_canonical};
use crate::keys::PublicKey;

/// Plaintext bytes per chunk.
pub const CHUNK: usize = 64 * 1024;
/// Authentication tag bytes per chunk.
pub const TAG: usize = 16;
/// Bytes of the blob header (the random salt `n16`).
pub const HEADER: usize = 16;
/// Most wraps (recipients) per entry.
pub const MAX_WRAPS: usize = 64;
const WRAP_LABEL: &[u8] = b"kez-v1/file-key";

fn hkdf32(ikm: &[u8], salt: &[u8], info: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    // 32 bytes is far below HKDF-SHA256's 8160-byte limit.
    let _ = Hkdf::<Sha256>::new(Some(salt), ikm).expand(info, &mut out);
    out
}

/// The key commitment stored in the entry: binds the file key to the blob salt.
pub fn commitment(file_key: &[u8; 32], n16: &[u8; 16]) -> [u8; 32] {
    hkdf32(file_key, n16, b"kez-v1/file/commit")
}

fn chunk_nonce(counter: u64, last: bool) -> Nonce {
    let mut n = [0u8; 12];
    n[3..11].copy_from_slice(&counter.to_be_bytes());
    n[11] = u8::from(last);
    Nonce::from(n)
}

/// Streaming encryptor: feed plaintext, collect blob bytes. Memory stays at
/// one chunk whatever the file size.
pub struct Encryptor {
    cipher: ChaCha20Poly1305,
    counter: u64,
    buf: Vec<u8>,
}

impl Encryptor {
    /// Starts a blob; writes the 16-byte header into `out`.
    pub fn new(file_key: &[u8; 32], n16: [u8; 16], out: &mut Vec<u8>) -> Self {
        let kp = Zeroizing::new(hkdf32(file_key, &n16, b"kez-v1/file/payload"));
        out.extend_from_slice(&n16);
        Self { cipher: ChaCha20Poly1305::new((&*kp).into()), counter: 0, buf: Vec::with_capacity(CHUNK * 2) }
    }

    fn seal_chunk(&mut self, plain: &[u8], last: bool, out: &mut Vec<u8>) -> Result<(), KezError> {
        // Chunks are at most CHUNK bytes, far below the AEAD limit; still never emit empty bytes.
        let ct = self
            .cipher
            .encrypt(&chunk_nonce(self.counter, last), Payload { msg: plain, aad: b"" })
            .map_err(|_| err(ErrorCode::TooLarge, "file chunk too large to encrypt"))?;
        out.extend_from_slice(&ct);
        self.counter += 1;
        Ok(())
    }

    /// Adds plaintext; appends every chunk known not to be the last to `out`.
    pub fn update(&mut self, data: &[u8], out: &mut Vec<u8>) -> Result<(), KezError> {
        self.buf.extend_from_slice(data);
        while self.buf.len() > CHUNK {
            let rest = self.buf.split_off(CHUNK);
            let chunk = std::mem::replace(&mut self.buf, rest);
            self.seal_chunk(&chunk, false, out)?;
        }
        Ok(())
    }

    /// Seals the final chunk.
    pub fn finish(mut self, out: &mut Vec<u8>) -> Result<(), KezError> {
        let last = std::mem::take(&mut self.buf);
        self.seal_chunk(&last, true, out)
    }
}

/// Streaming decryptor: feed blob bytes (header first), collect plaintext.
pub struct Decryptor {
    file_key: Zeroizing<[u8; 32]>,
    expected_commit: [u8; 32],
    cipher: Option<ChaCha20Poly1305>,
    counter: u64,
    buf: Vec<u8>,
}

impl Decryptor {
    /// Prepares to decrypt a blob whose entry carries `commit`.
    pub fn new(file_key: [u8; 32], commit: [u8; 32]) -> Self {
        Self { file_key: Zeroizing::new(file_key), expected_commit: commit, cipher: None, counter: 0, buf: Vec::new() }
    }

    fn open_chunk(&mut self, ct: &[u8], last: bool, out: &mut Vec<u8>) -> Result<(), KezError> {
        let cipher = self.cipher.as_ref().ok_or_else(|| err(ErrorCode::DecryptFailed, "blob header missing"))?;
        let pt = cipher
            .decrypt(&chunk_nonce(self.counter, last), Payload { msg: ct, aad: b"" })
            .map_err(|_| err(ErrorCode::DecryptFailed, format!("file chunk {} does not decrypt", self.counter)))?;
        if last && pt.is_empty() && self.counter > 0 {
            return Err(err(ErrorCode::DecryptFailed, "empty final chunk after data"));
        }
        out.extend_from_slice(&pt);
        self.counter += 1;
        Ok(())
    }

    /// Adds blob bytes; appends the plaintext of every complete non-final chunk.
    pub fn update(&mut self, data: &[u8], out: &mut Vec<u8>) -> Result<(), KezError> {
        self.buf.extend_from_slice(data);
        if self.cipher.is_none() {
            if self.buf.len() < HEADER {
                return Ok(());
            }
            let rest = self.buf.split_off(HEADER);
            let n16: [u8; 16] = self.buf.as_slice().try_into().unwrap_or([0; 16]);
            self.buf = rest;
            if commitment(&self.file_key, &n16) != self.expected_commit {
                return Err(err(ErrorCode::DecryptFailed, "file key does not match the entry's commitment"));
            }
            let kp = Zeroizing::new(hkdf32(&*self.file_key, &n16, b"kez-v1/file/payload"));
            self.cipher = Some(ChaCha20Poly1305::new((&*kp).into()));
        }
        while self.buf.len() > CHUNK + TAG {
            let rest = self.buf.split_off(CHUNK + TAG);
            let chunk = std::mem::replace(&mut self.buf, rest);
            self.open_chunk(&chunk, false, out)?;
        }
        Ok(())
    }

    /// Opens the final chunk; fails on truncation.
    pub fn finish(mut self, out: &mut Vec<u8>) -> Result<(), KezError> {
        if self.cipher.is_none() || self.buf.len() < TAG {
            return Err(err(ErrorCode::DecryptFailed, "blob is truncated"));
        }
        let last = std::mem::take(&mut self.buf);
        self.open_chunk(&last, true, out)
    }
}

/// Encrypts a whole buffer (small files and vectors); returns the blob.
pub fn encrypt_bytes(file_key: &[u8; 32], n16: [u8; 16], plaintext: &[u8]) -> Result<Vec<u8>, KezError> {
    let mut out = Vec::with_capacity(HEADER + plaintext.len() + (plaintext.len() / CHUNK + 1) * TAG);
    let mut e = Encryptor::new(file_key, n16, &mut out);
    e.update(plaintext, &mut out)?;
    e.finish(&mut out)?;
    Ok(out)
}

/// Decrypts a whole blob.
pub fn decrypt_bytes(file_key: [u8; 32], commit: [u8; 32], blob: &[u8]) -> Result<Vec<u8>, KezError> {
    let mut out = Vec::with_capacity(blob.len());
    let mut d = Decryptor::new(file_key, commit);
    d.update(blob, &mut out)?;
    d.finish(&mut out)?;
    Ok(out)
}

/// The ciphertext size of a plaintext of `len` bytes.
pub fn blob_size(len: u64) -> u64 {
    let chunks = if len == 0 { 1 } else { len.div_ceil(CHUNK as u64) };
    HEADER as u64 + len + chunks * TAG as u64
}

/// Plaintext bytes below which every file is padded to the same size.
pub const MIN_PADDED: u64 = 256;

/// The length a plaintext of `len` bytes is padded to before encryption
/// (PROTOCOL.md §7.1): at least 256, above that Padmé — `len` rounded up to a
/// multiple of `2^(E − S)` with `E = ⌊log2 len⌋`, `S = ⌊log2 E⌋ + 1` — so the
/// public `ct_size` reveals O(log log len) bits of the size at ≤ 1/16 overhead.
pub fn padded_len(len: u64) -> u64 {
    if len <= MIN_PADDED {
        return MIN_PADDED;
    }
    let e = 63 - u64::from(len.leading_zeros());
    let s = 64 - u64::from(e.leading_zeros());
    let mask = (1u64 << (e - s)) - 1;
    len.checked_add(mask).map_or(u64::MAX, |v| v & !mask)
}

/// The receiver's side of padding: passes on the first `size` plaintext bytes
/// (the file), requires every byte after them to be zero, and at the end that
/// the decrypted length is `padded_len(size)` — or exactly `size` (blobs made
/// before padding).
#[derive(Debug, Clone)]
pub struct Unpadder {
    size: u64,
    seen: u64,
}

impl Unpadder {
    /// For a file of `size` bytes (from the verified metadata).
    pub fn new(size: u64) -> Self {
        Self { size, seen: 0 }
    }

    /// The part of `plain` (the next decrypted bytes) that belongs to the file.
    pub fn take<'a>(&mut self, plain: &'a [u8]) -> Result<&'a [u8], KezError> {
        let keep = self.size.saturating_sub(self.seen).min(plain.len() as u64) as usize;
        let (file, pad) = plain.split_at(keep);
        self.seen += plain.len() as u64;
        if pad.iter().any(|&b| b != 0) || self.seen > padded_len(self.size).max(self.size) {
            return Err(err(ErrorCode::DecryptFailed, "the file's padding is not zeros up to its size class"));
        }
        Ok(file)
    }

    /// Checks the total length once the stream is done.
    pub fn finish(self) -> Result<(), KezError> {
        if self.seen == self.size || self.seen == padded_len(self.size) {
            Ok(())
        } else {
            Err(err(ErrorCode::DecryptFailed, "the decrypted length does not match the file's size"))
        }
    }
}

/// A file key wrapped for one recipient.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wrap {
    /// Ephemeral X25519 public key, b64url.
    pub enc: String,
    /// Wrapped key (48 bytes), b64url.
    pub ct: String,
}

fn wrap_extra(owner: &PublicKey, blob_hash: &[u8; 32]) -> Vec<u8> {
    let mut extra = owner.as_bytes().to_vec();
    extra.extend_from_slice(blob_hash);
    extra
}

/// Wraps `file_key` for `recipient` with explicit randomness.
pub fn wrap_with(
    eph_secret: [u8; 32],
    recipient: &PublicKey,
    owner: &PublicKey,
    blob_hash: &[u8; 32],
    file_key: &[u8; 32],
) -> Result<Wrap, KezError> {
    let (eph_pub, key) = kem_key_sender(eph_secret, recipient, WRAP_LABEL, &wrap_extra(owner, blob_hash))?;
    let ct = aead_seal(&key, WRAP_LABEL, file_key)?;
    Ok(Wrap { enc: b64_encode(&eph_pub), ct: b64_encode(&ct) })
}

/// Tries to unwrap a file key with the reader's seed; `None` if it is not for them.
pub fn unwrap(wrap: &Wrap, me: &SigningKey, owner: &PublicKey, blob_hash: &[u8; 32]) -> Option<[u8; 32]> {
    let eph_pub = b64_decode_fixed::<32>(&wrap.enc, "enc").ok()?;
    let ct = b64_decode(&wrap.ct, "ct").ok()?;
    if ct.len() != 48 {
        return None;
    }
    let key = kem_key_recipient(me, &eph_pub, WRAP_LABEL, &wrap_extra(owner, blob_hash))?;
    aead_open(&key, WRAP_LABEL, &ct).ok()?.try_into().ok()
}

/// What the metadata of a shared file says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileMeta {
    /// File name (no path).
    pub name: String,
    /// Plaintext size in bytes.
    pub size: u64,
    /// BLAKE3 hex of the plaintext.
    pub hash: String,
}

fn meta_key(file_key: &[u8; 32]) -> [u8; 32] {
    hkdf32(file_key, b"", b"kez-v1/file/meta")
}

fn meta_aad(blob_hash: &[u8; 32]) -> Vec<u8> {
    let mut aad = b"kez-v1/file/meta\0".to_vec();
    aad.extend_from_slice(blob_hash);
    aad
}

/// Names Windows reserves for devices, with or without an extension (`nul.txt` too).
const WINDOWS_RESERVED: [&str; 4] = ["con", "prn", "aux", "nul"];

/// Checks a file name is safe to write into a folder on every platform
/// (PROTOCOL.md §7.3): 1–255 bytes; no `/`, `\`, `:` or NUL (paths, drive letters,
/// NTFS streams); not `.` or `..`; no trailing `.` or space (Windows strips them,
/// so two names could land on one file); not a Windows device name.
pub fn check_file_name(name: &str) -> Result<(), KezError> {
    if name.is_empty()
        || name.len() > 255
        || name.contains(['/', '\\', ':', '\0'])
        || name.ends_with(['.', ' '])
        || is_windows_device(name)
    {
        return Err(err(
            ErrorCode::InvalidManifest,
            "file name must be 1-255 bytes without '/', '\\', ':' or NUL, not end in '.' or space, and not be a device name",
        ));
    }
    Ok(())
}

/// `CON`, `PRN`, `AUX`, `NUL`, `COM0`–`COM9`, `LPT0`–`LPT9` in any ASCII case, alone
/// or before the first `.`, trailing spaces of that part ignored (as Windows does).
fn is_windows_device(name: &str) -> bool {
    let stem = name.split('.').next().unwrap_or("").trim_end_matches(' ').to_ascii_lowercase();
    if WINDOWS_RESERVED.contains(&stem.as_str()) {
        return true;
    }
    let b = stem.as_bytes();
    b.len() == 4 && (b.starts_with(b"com") || b.starts_with(b"lpt")) && b[3].is_ascii_digit()
}

/// Encrypts file metadata under the file key.
pub fn seal_meta(file_key: &[u8; 32], blob_hash: &[u8; 32], meta: &FileMeta) -> Result<String, KezError> {
    let plain = canonicalize(&json!({ "name": meta.name, "size": meta.size, "hash": meta.hash }))?;
    Ok(b64_encode(&aead_seal(&meta_key(file_key), &meta_aad(blob_hash), &plain)?))
}

/// Decrypts and validates file metadata.
pub fn open_meta(file_key: &[u8; 32], blob_hash: &[u8; 32], meta: &str) -> Result<FileMeta, KezError> {
    let ct = b64_decode(meta, "meta")?;
    let plain = aead_open(&meta_key(file_key), &meta_aad(blob_hash), &ct)?;
    let v = parse_canonical(&plain)?;
    let f = Fields::exact(&v, "file meta", &["name", "size", "hash"], &[])?;
    let name = f.str("name")?;
    check_file_name(name)?;
    let hash = f.str("hash")?;
    hex_decode_fixed::<32>(hash, "hash")?;
    Ok(FileMeta { name: name.into(), size: f.u64("size")?, hash: hash.into() })
}

/// A shared file as listed in a manifest or offered in a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Random id, b64url of 16 bytes.
    pub id: String,
    /// BLAKE3 hex of the blob.
    pub blob: String,
    /// Blob size in bytes.
    pub ct_size: u64,
    /// Key commitment, hex.
    pub commit: String,
    /// Encrypted metadata, b64url.
    pub meta: String,
    /// One wrap per recipient.
    pub wraps: Vec<Wrap>,
}

impl Entry {
    /// The entry as JSON.
    pub fn to_value(&self) -> Value {
        json!({
            "id": self.id,
            "blob": self.blob,
            "ct_size": self.ct_size,
            "commit": self.commit,
            "meta": self.meta,
            "wraps": self.wraps.iter().map(|w| json!({"enc": w.enc, "ct": w.ct})).collect::<Vec<_>>(),
        })
    }

    /// The blob hash as bytes.
    pub fn blob_hash(&self) -> [u8; 32] {
        hex_decode_fixed::<32>(&self.blob, "blob").unwrap_or([0; 32])
    }

    /// The commitment as bytes.
    pub fn commit_bytes(&self) -> [u8; 32] {
        hex_decode_fixed::<32>(&self.commit, "commit").unwrap_or([0; 32])
    }

    /// Opens the entry for `me`: the file key and metadata, or `None` when no
    /// wrap is for this reader.
    pub fn open_for(&self, me: &SigningKey, owner: &PublicKey) -> Result<Option<([u8; 32], FileMeta)>, KezError> {
        let blob_hash = self.blob_hash();
        for w in &self.wraps {
            if let Some(k) = unwrap(w, me, owner, &blob_hash) {
                let meta = open_meta(&k, &blob_hash, &self.meta)?;
                return Ok(Some((k, meta)));
            }
        }
        Ok(None)
    }
}

/// Validates the shape and bounds of an entry.
pub fn parse_entry(v: &Value) -> Result<Entry, KezError> {
    let bad = |m: &str| err(ErrorCode::InvalidManifest, m.to_string());
    let f = Fields::exact(v, "entry", &["id", "blob", "ct_size", "commit", "meta", "wraps"], &[])?;
    let id = f.str("id")?;
    b64_decode_fixed::<16>(id, "id")?;
    let blob = f.str("blob")?;
    hex_decode_fixed::<32>(blob, "blob")?;
    let commit = f.str("commit")?;
    hex_decode_fixed::<32>(commit, "commit")?;
    let meta = f.str("meta")?;
    b64_decode(meta, "meta")?;
    if meta.len() > 2048 {
        return Err(bad("entry meta is too large"));
    }
    let wraps_v = f.array("wraps")?;
    if wraps_v.is_empty() || wraps_v.len() > MAX_WRAPS {
        return Err(bad("an entry has 1 to 64 wraps"));
    }
    let mut wraps = Vec::with_capacity(wraps_v.len());
    for w in wraps_v {
        let g = Fields::exact(w, "wrap", &["enc", "ct"], &[])?;
        let enc = g.str("enc")?;
        b64_decode_fixed::<32>(enc, "enc")?;
        let ct = g.str("ct")?;
        b64_decode_fixed::<48>(ct, "ct")?;
        wraps.push(Wrap { enc: enc.into(), ct: ct.into() });
    }
    Ok(Entry {
        id: id.into(),
        blob: blob.into(),
        ct_size: f.u64("ct_size")?,
        commit: commit.into(),
        meta: meta.into(),
        wraps,
    })
}

/// Builds an entry for `recipients` (owner included by the caller if wanted).
#[allow(clippy::too_many_arguments)]
pub fn make_entry(
    owner: &PublicKey,
    file_key: &[u8; 32],
    n16: &[u8; 16],
    blob_hash: &[u8; 32],
    ct_size: u64,
    meta: &FileMeta,
    recipients: &[PublicKey],
    id: [u8; 16],
) -> Result<Entry, KezError> {
    check_file_name(&meta.name)?;
    if recipients.is_empty() || recipients.len() > MAX_WRAPS {
        return Err(err(ErrorCode::InvalidManifest, "a share has 1 to 64 recipients"));
    }
    let wraps = recipients
        .iter()
        .map(|r| wrap_with(crate::random_bytes(), r, owner, blob_hash, file_key))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Entry {
        id: b64_encode(&id),
        blob: hex_encode(blob_hash),
        ct_size,
        commit: hex_encode(&commitment(file_key, n16)),
        meta: seal_meta(file_key, blob_hash, meta)?,
        wraps,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_round_trips_at_chunk_boundaries() {
        let k = [4u8; 32];
        for len in [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 3 * CHUNK] {
            let plain: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
            let blob = encrypt_bytes(&k, [7; 16], &plain).unwrap();
            assert_eq!(blob.len() as u64, blob_size(len as u64));
            let c = commitment(&k, &[7; 16]);
            assert_eq!(decrypt_bytes(k, c, &blob).unwrap(), plain, "len {len}");
            // Truncating a whole chunk is detected.
            if len > CHUNK {
                let cut = &blob[..HEADER + CHUNK + TAG];
                assert!(decrypt_bytes(k, c, cut).is_err());
            }
            // Any flipped byte is detected.
            let mut t = blob.clone();
            let last = t.len() - 1;
            t[last] ^= 1;
            assert!(decrypt_bytes(k, c, &t).is_err());
        }
    }

    #[test]
    fn padding_classes() {
        assert_eq!(padded_len(0), 256);
        assert_eq!(padded_len(256), 256);
        assert_eq!(padded_len(257), 272, "E = 8, S = 4: multiples of 16");
        assert_eq!(padded_len(1000), 1024, "E = 9, S = 4: multiples of 32");
        assert_eq!(padded_len(65_537), 67_584, "E = 16, S = 5: multiples of 2048");
        for len in [257u64, 1000, 4097, 65_537, 1 << 20, (1 << 30) + 1, u64::MAX / 2, u64::MAX] {
            let p = padded_len(len);
            assert!(p >= len && (p - len) * 16 <= len, "{len} -> {p}");
            assert_eq!(padded_len(p), p, "a class is its own class");
        }
        // Unpadding: the file part, zeros after it, the right total.
        let mut u = Unpadder::new(300);
        assert_eq!(u.take(&[1; 200]).unwrap().len(), 200);
        assert_eq!(u.take(&[1; 100]).unwrap().len(), 100);
        assert!(u.clone().finish().is_ok(), "an unpadded (older) blob");
        assert!(u.clone().take(&[0, 1]).is_err(), "a non-zero padding byte");
        assert!(u.clone().take(&[0; 5]).is_err(), "beyond the class (304)");
        assert!(u.take(&[0; 2]).unwrap().is_empty());
        assert!(u.clone().finish().is_err(), "302 is neither the size nor the class");
        assert!(u.take(&[0; 2]).unwrap().is_empty());
        assert!(u.finish().is_ok(), "padded to its class");
    }

    #[test]
    fn wrap_opens_only_for_its_recipient_and_context() {
        let owner = SigningKey::from_bytes(&[1; 32]);
        let bob = SigningKey::from_bytes(&[2; 32]);
        let carol = SigningKey::from_bytes(&[3; 32]);
        let (o, b) = (PublicKey::of(&owner), PublicKey::of(&bob));
        let w = wrap_with([9; 32], &b, &o, &[5; 32], &[6; 32]).unwrap();
        assert_eq!(unwrap(&w, &bob, &o, &[5; 32]), Some([6; 32]));
        assert_eq!(unwrap(&w, &carol, &o, &[5; 32]), None);
        assert_eq!(unwrap(&w, &bob, &PublicKey::of(&carol), &[5; 32]), None, "owner bound");
        assert_eq!(unwrap(&w, &bob, &o, &[6; 32]), None, "blob bound");
    }
}
