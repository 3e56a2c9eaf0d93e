//! `payrules keys new`: a random API key and the config lines that hold its hash;
//! `payrules keys new-master-key`: a master key for the sealed personal data.

use clap::Subcommand;
use std::io::Write;

use payrules::api::auth;
use payrules::config::Role;

#[derive(Subcommand)]
pub enum KeysCommand {
    /// Make a random API key; print it once, with the config lines that hold its hash.
    New {
        /// Who will hold it (what logs and the audit log show).
        #[arg(long)]
        name: String,
        /// Its roles: submitter, operator, auditor.
        #[arg(long = "role", required = true, value_parser = parse_role)]
        roles: Vec<Role>,
    },
    /// Add a new master key at the head of a master key file (made if missing, mode
    /// 0600): from the next start it wraps the store's data keys, and that start wraps
    /// every data key again with it; keep the older key listed until every host has
    /// started so, then drop it.
    NewMasterKey {
        /// The master key file (`personal_data.master_key_file`).
        #[arg(long)]
        key_file: std::path::PathBuf,
    },
}

fn parse_role(text: &str) -> Result<Role, String> {
    Role::ALL
        .into_iter()
        .find(|role| role.name() == text)
        .ok_or_else(|| format!("{text:?} is not a role (submitter, operator, auditor)"))
}

/// Runs a keys command.
pub fn run(command: &KeysCommand) -> anyhow::Result<()> {
    match command {
        KeysCommand::New { name, roles } => keys_new(name, roles),
        KeysCommand::NewMasterKey { key_file } => {
            let id = payrules::store::personal::MasterKeys::add_key(key_file)
                .map_err(super::BadInput)?;
            writeln!(
                std::io::stdout().lock(),
                "added master key {id} at the head of {}: it wraps the data keys from the \
                 next start, which wraps every data key again with it; keep the older keys \
                 listed until every host has started with this file",
                key_file.display()
            )?;
            Ok(())
        }
    }
}

fn keys_new(name: &str, roles: &[Role]) -> anyhow::Result<()> {
    let key = auth::new_key()?;
    let roles: Vec<String> = roles.iter().map(|r| format!("{:?}", r.name())).collect();
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "# The key (shown once; give it to {name}, keep it out of the config):"
    )?;
    writeln!(out, "# {key}")?;
    writeln!(out, "[[api_keys]]")?;
    writeln!(out, "name = {name:?}")?;
    writeln!(out, "sha256 = \"{}\"", auth::key_sha256(&key))?;
    writeln!(out, "roles = [{}]", roles.join(", "))?;
    Ok(())
}
