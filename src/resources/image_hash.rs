//! SHA-256 of a local disk image (`source_image`), remembered across provider processes by the file's identity:
//! Terraform starts a new provider for its plan walk and again for its apply walk, and both need the hash.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::PathBuf;

use sha2::{Digest, Sha256};

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `$XDG_CACHE_HOME/terraform-provider-dify/image-sha256`, else `~/.cache/…`; none when neither is set.
fn cache_dir() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").filter(|v| !v.is_empty()).map(|h| PathBuf::from(h).join(".cache")))?;
    Some(base.join("terraform-provider-dify").join("image-sha256"))
}

/// What a remembered hash is valid for: the file's real path, device, inode, size and modification time (ns).
fn identity(path: &str, meta: &std::fs::Metadata) -> String {
    let real = std::fs::canonicalize(path).map(|p| p.display().to_string()).unwrap_or_else(|_| path.to_string());
    format!("{real}\n{}\n{}\n{}\n{}.{:09}", meta.dev(), meta.ino(), meta.len(), meta.mtime(), meta.mtime_nsec())
}

/// Reads the whole file through SHA-256.
fn hash_file(path: &str) -> Result<String, String> {
    use std::io::Read;
    let mut f = std::fs::File::open(path).map_err(|e| e.to_string())?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).map_err(|e| e.to_string())?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(hex(&h.finalize()))
}

/// The SHA-256 of the image at `path` (whose metadata is `meta`): remembered from an earlier process when the file is
/// the same one, unchanged; else read, and remembered (best effort: a cache that cannot be written costs a rehash).
/// Returns the hash and whether it was remembered.
pub fn sha256(path: &str, meta: &std::fs::Metadata) -> Result<(String, bool), String> {
    let entry = cache_dir().map(|d| d.join(hex(&Sha256::digest(identity(path, meta).as_bytes()))));
    if let Some(known) = entry.as_ref().and_then(|e| std::fs::read_to_string(e).ok()) {
        let known = known.trim();
        if known.len() == 64 && known.chars().all(|c| c.is_ascii_hexdigit()) {
            return Ok((known.to_string(), true));
        }
    }
    let sha = hash_file(path)?;
    if let Some(entry) = entry {
        if let Some(dir) = entry.parent() {
            if std::fs::create_dir_all(dir).is_ok() {
                let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700));
                let partial = entry.with_extension(format!("partial-{}", std::process::id()));
                if std::fs::write(&partial, &sha).is_ok() {
                    let _ = std::fs::rename(&partial, &entry);
                }
            }
        }
    }
    Ok((sha, false))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hash_is_remembered_for_the_same_file_and_forgotten_when_it_changes() {
        let dir = tempfile::tempdir().unwrap();
        std::env::set_var("XDG_CACHE_HOME", dir.path().join("cache"));
        let image = dir.path().join("image.raw");
        std::fs::write(&image, b"first").unwrap();
        let path = image.to_str().unwrap();
        let (first, remembered) = sha256(path, &std::fs::metadata(path).unwrap()).unwrap();
        assert_eq!(first, hex(&Sha256::digest(b"first")));
        assert!(!remembered);
        assert_eq!(sha256(path, &std::fs::metadata(path).unwrap()).unwrap(), (first.clone(), true), "the second process reads it back");
        std::thread::sleep(std::time::Duration::from_millis(20));
        std::fs::write(&image, b"other").unwrap();
        let (second, remembered) = sha256(path, &std::fs::metadata(path).unwrap()).unwrap();
        assert_eq!(second, hex(&Sha256::digest(b"other")), "a changed file is read again");
        assert!(!remembered);
    }
}
