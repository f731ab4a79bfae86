//! Where the agent's encryption keys come from, kept off the command line
//! when asked: `--key BASE64` (visible to every local user in the process
//! list, so it warns), `--key-file PATH` (read once), `--keyring-file PATH`
//! (read, and rewritten when `vinery keys` changes the keyring) or the
//! `VINERY_KEY` environment variable (readable only by the same user and
//! root).
//!
//! Key files are read up to [`MAX_KEY_FILE`] bytes, so that a wrong path
//! (`/dev/zero`) fails at once rather than filling memory, and the keyring
//! is written as a fresh 0600 file renamed over the old one: never through
//! a file someone else made, and never readable by others, whatever the
//! umask or a stale temporary file say.

use std::io::{self, Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use vinery::security::SecretKey;

/// The environment variable holding the agent's keys: base64 keys
/// separated by commas or whitespace, the primary first.
pub const KEY_ENV: &str = "VINERY_KEY";

/// The largest key file read, in bytes: room for a thousand keys with
/// comments.
pub const MAX_KEY_FILE: u64 = 64 << 10;

/// The keys of the flags given (at most one of `--key`, `--key-file`,
/// `--keyring-file`; clap enforces it), or else of `VINERY_KEY`, which is
/// then removed from the environment so that `--answer-cmd` commands do
/// not inherit it. None of them: no keys (plaintext).
pub fn agent_keys(
    key: Vec<SecretKey>,
    key_file: Option<&Path>,
    keyring_file: Option<&Path>,
) -> Result<Vec<SecretKey>, String> {
    let from_env = std::env::var_os(KEY_ENV);
    // Before any thread starts (the caller's contract), so that changing
    // the environment races with nothing.
    std::env::remove_var(KEY_ENV);
    let flag = match (key.is_empty(), key_file, keyring_file) {
        (false, _, _) => {
            log::warn!(
                "--key puts the key in the process list, readable by every local user; \
                 prefer --key-file, --keyring-file or {KEY_ENV}"
            );
            Some(("--key", key))
        }
        (true, Some(path), _) => Some(("--key-file", read_keys(path, "--key-file")?)),
        (true, None, Some(path)) => Some(("--keyring-file", read_keys(path, "--keyring-file")?)),
        (true, None, None) => None,
    };
    match (flag, from_env) {
        (Some((flag, keys)), Some(_)) => {
            log::info!("{flag} given: {KEY_ENV} ignored");
            Ok(keys)
        }
        (Some((_, keys)), None) => Ok(keys),
        (None, Some(text)) => {
            let text = text
                .into_string()
                .map_err(|_| format!("{KEY_ENV}: not UTF-8"))?;
            let keys = text
                .split(|c: char| c == ',' || c.is_whitespace())
                .filter(|k| !k.is_empty())
                .enumerate()
                .map(|(i, k)| {
                    SecretKey::from_base64(k).map_err(|e| format!("{KEY_ENV}: key {}: {e}", i + 1))
                })
                .collect::<Result<Vec<_>, _>>()?;
            if keys.is_empty() {
                return Err(format!("{KEY_ENV}: set but holds no key"));
            }
            Ok(keys)
        }
        (None, None) => Ok(Vec::new()),
    }
}

/// Reads a key file given as `flag`: one base64 key per line, the primary
/// first; blank lines and `#` comments skipped. Warns if others may read
/// it.
pub fn read_keys(path: &Path, flag: &str) -> Result<Vec<SecretKey>, String> {
    let shown = path.display();
    let file = std::fs::File::open(path).map_err(|e| format!("{flag} {shown}: {e}"))?;
    if let Ok(meta) = file.metadata() {
        if meta.is_file() && meta.permissions().mode() & 0o077 != 0 {
            log::warn!("{flag} {shown} is accessible to other users (chmod 600 it)");
        }
    }
    let mut bytes = Vec::new();
    file.take(MAX_KEY_FILE + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("{flag} {shown}: {e}"))?;
    if bytes.len() as u64 > MAX_KEY_FILE {
        return Err(format!(
            "{flag} {shown}: longer than {MAX_KEY_FILE} bytes: not a key file"
        ));
    }
    let text = String::from_utf8(bytes).map_err(|_| format!("{flag} {shown}: not UTF-8 text"))?;
    let mut keys = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let key = SecretKey::from_base64(line)
            .map_err(|e| format!("{flag} {shown} line {}: {e}", i + 1))?;
        keys.push(key);
    }
    if keys.is_empty() {
        return Err(format!("{flag} {shown}: no key in it"));
    }
    Ok(keys)
}

/// Replaces the keyring file with `keys`, mode 0600: written to a file
/// this call creates (never one that was there) and renamed over the old
/// one, so a crash leaves one or the other, never half.
pub fn write_keyring(path: &Path, keys: &[SecretKey]) -> io::Result<()> {
    let mut text = String::from(
        "# vinery keyring, primary first (rewritten by the agent when `vinery keys` changes it)\n",
    );
    for k in keys {
        text.push_str(&k.to_base64());
        text.push('\n');
    }
    let (tmp, mut file) = create_private_beside(path)?;
    let written = file
        .write_all(text.as_bytes())
        .and_then(|()| file.sync_all())
        .and_then(|()| std::fs::rename(&tmp, path));
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written
}

/// A new file next to `path`, created by this call with mode 0600 (set
/// again after creation: the umask may have taken bits off, and the owner
/// must read it back).
fn create_private_beside(path: &Path) -> io::Result<(PathBuf, std::fs::File)> {
    let mut attempt = 0u32;
    loop {
        let mut name = path.as_os_str().to_owned();
        name.push(format!(".{}.{attempt}.new", std::process::id()));
        let tmp = PathBuf::from(name);
        let created = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp);
        match created {
            Ok(file) => {
                file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
                return Ok((tmp, file));
            }
            // Left by an earlier run with the same process id: not ours to
            // reuse (nor to trust its mode).
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists && attempt < 100 => attempt += 1,
            Err(e) => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("vinery-keyfile-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn the_keyring_is_rewritten_private_past_a_stale_temporary_file() {
        let dir = scratch("rewrite");
        let path = dir.join("ring");
        std::fs::write(&path, "old\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let stale = dir.join("ring.new");
        std::fs::write(&stale, "stale\n").unwrap();
        std::fs::set_permissions(&stale, std::fs::Permissions::from_mode(0o644)).unwrap();
        let keys = [
            SecretKey::from_bytes([3; 32]),
            SecretKey::from_bytes([4; 32]),
        ];
        write_keyring(&path, &keys).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(read_keys(&path, "--keyring-file").unwrap(), keys);
        assert_eq!(std::fs::read_to_string(&stale).unwrap(), "stale\n");
        let names: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 2, "{names:?}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn key_files_are_read_up_to_a_bound() {
        let error = read_keys(Path::new("/dev/zero"), "--key-file").unwrap_err();
        assert!(
            error.starts_with("--key-file /dev/zero: longer than"),
            "{error}"
        );
        let dir = scratch("empty");
        let path = dir.join("k");
        std::fs::write(&path, "# nothing\n\n").unwrap();
        let error = read_keys(&path, "--key-file").unwrap_err();
        assert!(error.ends_with("no key in it"), "{error}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
