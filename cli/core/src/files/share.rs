//! Sharing a file: STREAM-encrypt it (PROTOCOL.md §7.1) with a fresh key into
//! `out/<id>.kez`, hashing plaintext and ciphertext on the way (memory stays at
//! a few chunks whatever the size), build the entry with one wrap per
//! recipient and one for the owner (§7.2–7.3), and record the share.

use std::fs::File;
use std::io::{BufWriter, Write as _};
use std::path::Path;

use ed25519_dalek::SigningKey;
use kv_schemas::PublicKey;
use kv_schemas::files::{CHUNK, Encryptor, Entry, FileMeta, blob_size, check_file_name, make_entry, padded_len};
use zeroize::Zeroizing;

use super::shares::{ShareRecord, Shares};
use super::{FilesError, Result};

/// What [`share_file`] produced.
#[derive(Debug, Clone)]
pub struct ShareOutcome {
    /// The recorded share (already saved in `shares.json`).
    pub record: ShareRecord,
    /// The entry (for the manifest and the offer).
    pub entry: Entry,
}

/// Encrypts `path` for `recipients` (the owner gets a wrap too) and records the
/// share under `files_dir`. Blocking: call from `spawn_blocking` in async code.
pub fn share_file(owner: &SigningKey, files_dir: &Path, path: &Path, recipients: &[PublicKey]) -> Result<ShareOutcome> {
    let owner_pk = PublicKey::of(owner);
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| FilesError::Other(format!("{} has no usable file name", path.display())))?
        .to_string();
    check_file_name(&name)?;
    let mut input = File::open(path).map_err(|e| FilesError::other(&format!("opening {}", path.display()), e))?;
    if !input.metadata()?.is_file() {
        return Err(FilesError::Other(format!("{} is not a regular file", path.display())));
    }

    let mut wraps_for: Vec<PublicKey> = Vec::new();
    for r in recipients.iter().chain(std::iter::once(&owner_pk)) {
        if !wraps_for.contains(r) {
            wraps_for.push(*r);
        }
    }

    let file_key = Zeroizing::new(kv_schemas::random_bytes::<32>());
    let n16: [u8; 16] = kv_schemas::random_bytes();
    let id: [u8; 16] = kv_schemas::random_bytes();
    let id_text = kv_schemas::encoding::b64_encode(&id);

    let out_dir = files_dir.join("out");
    std::fs::create_dir_all(&out_dir)?;
    let rel = Path::new("out").join(format!("{id_text}.kez"));
    let final_path = files_dir.join(&rel);
    let part = out_dir.join(format!(".{id_text}.kez.part"));

    let result = (|| -> Result<(u64, [u8; 32], String)> {
        let mut out = BufWriter::with_capacity(4 * CHUNK, File::create(&part)?);
        let mut plain_hash = blake3::Hasher::new();
        let mut ct_hash = blake3::Hasher::new();
        let mut buf = vec![0u8; CHUNK];
        let mut ct = Vec::with_capacity(2 * CHUNK + 64);
        let mut enc = Encryptor::new(&file_key, n16, &mut ct);
        let mut size = 0u64;
        loop {
            let n = read_full(&mut input, &mut buf)?;
            if n == 0 {
                break;
            }
            size += n as u64;
            plain_hash.update(&buf[..n]);
            enc.update(&buf[..n], &mut ct)?;
            ct_hash.update(&ct);
            out.write_all(&ct)?;
            ct.clear();
        }
        // Zeros up to the size class (PROTOCOL.md §7.1): the public ct_size shows
        // the class, the exact size is only in the encrypted metadata.
        let mut pad = padded_len(size) - size;
        buf.fill(0);
        while pad > 0 {
            let n = pad.min(CHUNK as u64) as usize;
            enc.update(&buf[..n], &mut ct)?;
            ct_hash.update(&ct);
            out.write_all(&ct)?;
            ct.clear();
            pad -= n as u64;
        }
        enc.finish(&mut ct)?;
        ct_hash.update(&ct);
        out.write_all(&ct)?;
        let f = out.into_inner().map_err(|e| e.into_error())?;
        f.sync_all()?;
        if f.metadata()?.len() != blob_size(padded_len(size)) {
            return Err(FilesError::Other("ciphertext size mismatch (file changed while reading?)".into()));
        }
        Ok((size, *ct_hash.finalize().as_bytes(), plain_hash.finalize().to_hex().to_string()))
    })();
    let (size, blob_hash, plain_hex) = match result {
        Ok(v) => v,
        Err(e) => {
            let _ = std::fs::remove_file(&part);
            return Err(e);
        }
    };
    std::fs::rename(&part, &final_path)?;

    let meta = FileMeta { name: name.clone(), size, hash: plain_hex };
    let entry = make_entry(&owner_pk, &file_key, &n16, &blob_hash, blob_size(padded_len(size)), &meta, &wraps_for, id)?;
    let record = ShareRecord {
        id: entry.id.clone(),
        blob: entry.blob.clone(),
        blob_file: rel,
        name,
        size,
        recipients: recipients.iter().filter(|r| **r != owner_pk).map(PublicKey::hex).collect(),
        entry: entry.to_value(),
        ctime: kv_schemas::now_ms(),
    };
    let mut shares = Shares::load(files_dir)?;
    shares.shares.push(record.clone());
    shares.save(files_dir)?;
    Ok(ShareOutcome { record, entry })
}

/// Removes a share from the registry and deletes its ciphertext; returns the
/// removed record (`None` if no share has this id). The caller publishes a new
/// manifest afterwards; a running provider stops serving it on its next reload.
pub fn unshare(files_dir: &Path, id: &str) -> Result<Option<ShareRecord>> {
    let mut shares = Shares::load(files_dir)?;
    let Some(pos) = shares.shares.iter().position(|s| s.id == id) else { return Ok(None) };
    let rec = shares.shares.remove(pos);
    shares.save(files_dir)?;
    if !shares.shares.iter().any(|s| s.blob == rec.blob) {
        let _ = std::fs::remove_file(files_dir.join(&rec.blob_file));
    }
    Ok(Some(rec))
}

/// Reads until `buf` is full or EOF.
fn read_full(r: &mut impl std::io::Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}
