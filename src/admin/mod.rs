//! `ringmq admin add-user | delete-user | list-users`: the admin users of the HTTP API, in a
//! Mosquitto-format file of argon2id hashes (`[http] admin_users_file`, by default
//! `<data_dir>/admin-users`). A running broker notices the change at its next API call.
//!
//! Owns: the commands. The line edit and the atomic rewrite are `ringmq passwd`'s
//! ([`crate::auth::passwd_cmd`]). Never: prints a password or a hash, or runs in the broker.

pub mod ctl;

use crate::auth::passwd_cmd;
use crate::auth::password::{self, PasswordFile};
use crate::config::Config;
use std::io::BufRead;
use std::path::{Path, PathBuf};

/// `ringmq admin ...` (give the broker's `--config` or `--data-dir` before `admin` so the file
/// is the broker's).
#[derive(Debug, Clone, clap::Subcommand)]
pub enum AdminCommand {
    /// Add an admin user, or give an existing one a new password (prompted twice).
    AddUser {
        name: String,
        /// Read the password from the first line of standard input instead of prompting.
        #[arg(long)]
        password_stdin: bool,
    },
    /// Delete an admin user (its tokens stop working at its next API call).
    DeleteUser { name: String },
    /// List the admin users.
    ListUsers,
}

/// Read one line from standard input, without its line ending.
pub fn password_from_stdin() -> Result<String, String> {
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .map_err(|e| format!("reading the password from standard input: {e}"))?;
    let pw = line.trim_end_matches(['\n', '\r']).to_owned();
    if pw.is_empty() {
        return Err("empty password on standard input".into());
    }
    Ok(pw)
}

fn read_or_empty(path: &Path) -> Result<String, String> {
    match std::fs::read_to_string(path) {
        Ok(t) => Ok(t),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(String::new()),
        Err(e) => Err(format!("reading {}: {e}", path.display())),
    }
}

/// Run an admin command against `cfg`'s admin users file; what to print on success.
pub fn run(cmd: &AdminCommand, cfg: &Config) -> Result<String, String> {
    let path: PathBuf = cfg.admin_users_file();
    match cmd {
        AdminCommand::AddUser {
            name,
            password_stdin,
        } => {
            passwd_cmd::check_user(name)?;
            let pw = if *password_stdin {
                password_from_stdin()?
            } else {
                passwd_cmd::prompt_twice()?
            };
            let text = read_or_empty(&path)?;
            let existed = PasswordFile::parse(&text)
                .map_err(|e| format!("{}: {e}", path.display()))?
                .contains(name);
            let hash = password::hash_argon2id(pw.as_bytes())?;
            let (new_text, _) = passwd_cmd::edit(&text, name, Some(&hash));
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir)
                    .map_err(|e| format!("creating {}: {e}", dir.display()))?;
            }
            passwd_cmd::write_atomic(&path, &new_text)?;
            Ok(format!(
                "admin user {name} {} in {}",
                if existed { "updated" } else { "added" },
                path.display()
            ))
        }
        AdminCommand::DeleteUser { name } => {
            let text = read_or_empty(&path)?;
            let (new_text, found) = passwd_cmd::edit(&text, name, None);
            if !found {
                return Err(format!("no admin user {name} in {}", path.display()));
            }
            passwd_cmd::write_atomic(&path, &new_text)?;
            Ok(format!("admin user {name} deleted from {}", path.display()))
        }
        AdminCommand::ListUsers => {
            let text = read_or_empty(&path)?;
            let f = PasswordFile::parse(&text).map_err(|e| format!("{}: {e}", path.display()))?;
            let mut names: Vec<&str> = f.users().collect();
            names.sort_unstable();
            if names.is_empty() {
                return Ok(format!(
                    "no admin users in {} (the admin API is closed)",
                    path.display()
                ));
            }
            Ok(names.join("\n"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delete_and_list_edit_the_file_add_user_wrote() {
        let dir = tempfile::tempdir().expect("tempdir");
        let cfg = Config {
            data_dir: dir.path().join("data"),
            ..Config::default()
        };
        let path = cfg.admin_users_file();
        assert_eq!(path, dir.path().join("data/admin-users"));
        assert!(run(&AdminCommand::ListUsers, &cfg)
            .expect("lists")
            .contains("closed"));
        std::fs::create_dir_all(dir.path().join("data")).expect("mkdir");
        let h = password::hash_argon2id(b"pw").expect("hash");
        passwd_cmd::write_atomic(&path, &format!("a:{h}\nb:{h}\n")).expect("write");
        assert_eq!(run(&AdminCommand::ListUsers, &cfg).expect("lists"), "a\nb");
        run(&AdminCommand::DeleteUser { name: "a".into() }, &cfg).expect("deletes");
        assert_eq!(run(&AdminCommand::ListUsers, &cfg).expect("lists"), "b");
        assert!(run(&AdminCommand::DeleteUser { name: "a".into() }, &cfg).is_err());
    }
}
