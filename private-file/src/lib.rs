//! The one private-file writer of kez-chat (`kez-private-file`): secrets, key files, account
//! and device records, nats-server configs, pid files. Everything that writes a file only its
//! owner may read goes through here.
//!
//! A write is a uniquely named temp file in the target's folder (`tempfile`: created 0600
//! before the first byte, so the contents are never readable by others even for a moment),
//! fsynced, moved into place, then the folder fsynced so the new entry survives a crash.
//! Readers see the old file or the new one, never a mix. Two writers never share a temp file.

use std::fs;
use std::io::{self, Write as _};
use std::path::Path;

/// Replaces `path` with `contents` (see the crate docs). A missing folder is created 0700.
pub fn write(path: &Path, contents: &[u8]) -> io::Result<()> {
    let tmp = temp_with(path, contents)?;
    tmp.persist(path).map_err(|e| e.error)?;
    sync_dir(folder(path))
}

/// Creates `path` with `contents` only if it does not exist yet, atomically: `Ok(false)` when
/// it exists (another process may have won the race; its file is left untouched).
pub fn create_new(path: &Path, contents: &[u8]) -> io::Result<bool> {
    let tmp = temp_with(path, contents)?;
    match tmp.persist_noclobber(path) {
        Ok(_) => {
            sync_dir(folder(path))?;
            Ok(true)
        }
        Err(e) if e.error.kind() == io::ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(e.error),
    }
}

/// Creates `dir` and its missing parents with mode 0700 (existing folders keep their mode).
pub fn create_dir(dir: &Path) -> io::Result<()> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)
}

fn folder(path: &Path) -> &Path {
    path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."))
}

fn temp_with(path: &Path, contents: &[u8]) -> io::Result<tempfile::NamedTempFile> {
    let dir = folder(path);
    if !dir.exists() {
        create_dir(dir)?;
    }
    let name = path.file_name().ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "path has no file name"))?;
    let mut prefix = std::ffi::OsString::from(".");
    prefix.push(name);
    prefix.push(".tmp-");
    let mut builder = tempfile::Builder::new();
    builder.prefix(&prefix);
    // tempfile creates files 0600 on unix; say so rather than rely on a default.
    #[cfg(unix)]
    builder.permissions(std::os::unix::fs::PermissionsExt::from_mode(0o600));
    let mut tmp = builder.tempfile_in(dir)?;
    tmp.write_all(contents)?;
    tmp.as_file().sync_all()?;
    Ok(tmp)
}

#[cfg(unix)]
fn sync_dir(dir: &Path) -> io::Result<()> {
    fs::File::open(dir)?.sync_all()
}

#[cfg(not(unix))]
fn sync_dir(_dir: &Path) -> io::Result<()> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt as _;

    fn mode(p: &Path) -> u32 {
        fs::metadata(p).unwrap().permissions().mode() & 0o777
    }

    fn leftovers(dir: &Path) -> Vec<String> {
        fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.contains(".tmp-"))
            .collect()
    }

    #[test]
    fn write_replaces_with_a_private_file_and_leaves_no_temp_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secret.json");
        fs::write(&path, b"old").unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        write(&path, b"new").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"new");
        assert_eq!(mode(&path), 0o600, "a replaced file is private whatever the old one was");
        assert!(leftovers(dir.path()).is_empty());
    }

    #[test]
    fn write_creates_a_missing_folder_0700() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a/b/key.json");
        write(&path, b"k").unwrap();
        assert_eq!(mode(&path), 0o600);
        assert_eq!(mode(&dir.path().join("a/b")), 0o700);
    }

    #[test]
    fn create_new_never_replaces() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secrets.json");
        assert!(create_new(&path, b"first").unwrap());
        assert!(!create_new(&path, b"second").unwrap());
        assert_eq!(fs::read(&path).unwrap(), b"first");
        assert_eq!(mode(&path), 0o600);
        assert!(leftovers(dir.path()).is_empty());
    }

    #[test]
    fn a_path_without_a_file_name_is_refused() {
        assert_eq!(write(Path::new("/"), b"x").unwrap_err().kind(), io::ErrorKind::InvalidInput);
    }
}
