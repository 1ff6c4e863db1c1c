//! `sluis passwd USER`: a credentials-file line, the password read from standard input.

use std::io::Read;

use super::out;

pub fn passwd(user: &str) -> anyhow::Result<()> {
    if user.is_empty() || user.contains(':') || user.contains(char::is_whitespace) {
        anyhow::bail!("user names may not be empty or contain ':' or white space");
    }
    let mut password = String::new();
    std::io::stdin().read_to_string(&mut password)?;
    let password = password.trim_end_matches(['\r', '\n']);
    if password.is_empty() {
        anyhow::bail!("empty password on standard input");
    }
    let hash = sluis::smtp::auth::hash_password(password)
        .map_err(|e| anyhow::anyhow!("cannot hash: {e}"))?;
    out!("{user}:{hash}");
    Ok(())
}
