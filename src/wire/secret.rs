//! Secrets Sluis keeps in files of its own (the portal's server secret, the sender links'
//! key): 32 random bytes, made at the first start (mode 0600, fsync'd), read as they are after.
//! Every instance of a deployment must have the same file.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

pub const LEN: usize = 32;

/// The secret in `path`, made when there is none; `what` names it in the warning that asks
/// for a backup.
pub fn load_or_make(path: &Path, what: &str) -> std::io::Result<[u8; LEN]> {
    match std::fs::read(path) {
        Ok(bytes) => bytes.as_slice().try_into().map_err(|_| {
            std::io::Error::other(format!(
                "{}: not a {what} ({LEN} bytes expected, {} found)",
                path.display(),
                bytes.len()
            ))
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let mut secret = [0u8; LEN];
            ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut secret)
                .map_err(|_| std::io::Error::other("no randomness"))?;
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(path)?;
            f.write_all(&secret)?;
            f.sync_all()?;
            tracing::warn!(file = %path.display(), "made a new {what}: back it up with the store, and give every instance the same one");
            Ok(secret)
        }
        Err(e) => Err(e),
    }
}
