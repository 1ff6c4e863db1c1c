//! Where message bodies wait while Sluis decides and relays.
//!
//! In relay mode Sluis has no queue of its own: a body lives only for the length of one SMTP
//! transaction. Small bodies stay in memory; past `limits.memory_buffer` the rest goes to an
//! unlinked temporary file in the spool directory, so memory per session stays bounded whatever
//! the client sends, and a crash leaves nothing behind (the client still holds the message).

mod body;

pub use body::SpooledBody;

use std::path::Path;

/// Creates the spool directory (mode 0700) and proves it is writable.
pub fn prepare(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(dir)?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    tempfile::tempfile_in(dir).map(drop)
}
