//! `sluis user add NAME --role ROLE --file USERS`: a local account for the reviewers' web
//! interface. The password is read from standard input; a new TOTP secret is made and printed
//! once (as base32 and as an otpauth:// URI for an authenticator app), and the line is
//! appended to the users file (`web.users_file`, created mode 0600).

use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;

use clap::Subcommand;

use sluis::review::users::{Role, Users, totp, valid_name};

use super::out;

#[derive(Subcommand)]
pub enum UserCommand {
    /// Add a local account; prints its TOTP secret once.
    Add {
        name: String,
        /// reviewer, auditor or admin.
        #[arg(long)]
        role: String,
        /// The users file (`web.users_file`).
        #[arg(long)]
        file: PathBuf,
    },
}

pub fn user(command: UserCommand) -> anyhow::Result<()> {
    let UserCommand::Add { name, role, file } = command;
    if !valid_name(&name) {
        anyhow::bail!("{name:?}: a name is 1 to 64 of A-Z a-z 0-9 . _ - @");
    }
    let role = Role::parse(&role)
        .ok_or_else(|| anyhow::anyhow!("--role {role:?}: reviewer, auditor or admin"))?;
    if file.exists() {
        let text = std::fs::read_to_string(&file)?;
        // The file must stay loadable, and a name may be there once.
        Users::load(&file)?;
        if text
            .lines()
            .any(|l| l.split(':').next() == Some(name.as_str()))
        {
            anyhow::bail!("{}: {name:?} is there already", file.display());
        }
    }
    let mut password = String::new();
    std::io::stdin().read_to_string(&mut password)?;
    let password = password.trim_end_matches(['\r', '\n']);
    if password.chars().count() < 12 {
        anyhow::bail!("the password (standard input) must have at least 12 characters");
    }
    let hash = sluis::smtp::auth::hash_password(password)
        .map_err(|e| anyhow::anyhow!("cannot hash: {e}"))?;
    let mut secret = [0u8; 20];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut secret)
        .map_err(|_| anyhow::anyhow!("no randomness"))?;
    let t = totp(&secret, &name).map_err(|e| anyhow::anyhow!("TOTP: {e}"))?;
    let b32 = totp_rs::Secret::from(secret).to_base32();
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(&file)?;
    writeln!(f, "{name}:{}:{hash}:{b32}", role.name())?;
    f.sync_all()?;
    out!("added {name} ({}) to {}", role.name(), file.display());
    out!("TOTP secret (enter it in an authenticator app, or use the URI): {b32}");
    out!("{}", t.to_url().map_err(|e| anyhow::anyhow!("TOTP: {e}"))?);
    Ok(())
}
