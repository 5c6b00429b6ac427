//! `ringmq passwd FILE USER`: add, update or delete a user in a Mosquitto-format password file,
//! as `mosquitto_passwd` does (`-c` create, `-b` batch, `-D` delete).
//!
//! Owns: the command's arguments, the line edit (every other line is kept byte for byte) and the
//! atomic replace of the file (a temporary file in the same directory, mode 0600, fsynced, renamed
//! over the old one, then the directory fsynced). Never: runs inside the broker, prints a
//! password or a hash, or leaves a half-written file behind.

use super::password::{self, PBKDF2_ITERATIONS_DEFAULT};
use std::io::Write;
use std::path::{Path, PathBuf};

/// Which hash `ringmq passwd` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum HashKind {
    /// `$argon2id$`: memory-hard; read by ringmq and Mosquitto 2.1.
    Argon2id,
    /// `$7$` PBKDF2-SHA512 with a 12-byte salt: read by ringmq and Mosquitto 2.0 and 2.1.
    #[value(alias = "sha512-pbkdf2")]
    Pbkdf2,
}

/// Add or update USER in FILE (argon2id unless `--hash pbkdf2`), or delete it with -D.
#[derive(Clone, clap::Args)]
pub struct PasswdArgs {
    /// Create a new password file, replacing an existing one.
    #[arg(short = 'c', long = "create")]
    pub create: bool,
    /// Delete USER instead of adding or updating it.
    #[arg(short = 'D', long = "delete", conflicts_with_all = ["create", "batch"])]
    pub delete: bool,
    /// Batch mode: take the password from the command line (other local users can see it in the
    /// process list) instead of prompting twice.
    #[arg(short = 'b', long = "batch")]
    pub batch: bool,
    /// Hash to write: argon2id, or pbkdf2 (`$7$`) for files Mosquitto 2.0 must read too.
    #[arg(short = 'H', long = "hash", value_enum, default_value_t = HashKind::Argon2id)]
    pub hash: HashKind,
    /// PBKDF2 iterations for `--hash pbkdf2`.
    #[arg(long, default_value_t = PBKDF2_ITERATIONS_DEFAULT,
          value_parser = clap::value_parser!(u32).range(1..=i64::from(password::PBKDF2_ITERATIONS_MAX)))]
    pub iterations: u32,
    /// The password file.
    pub file: PathBuf,
    /// The user name.
    pub user: String,
    /// The password (only with -b).
    pub password: Option<String>,
}

impl std::fmt::Debug for PasswdArgs {
    // A derived Debug would print the batch-mode password.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PasswdArgs")
            .field("create", &self.create)
            .field("delete", &self.delete)
            .field("batch", &self.batch)
            .field("hash", &self.hash)
            .field("file", &self.file)
            .field("user", &self.user)
            .finish_non_exhaustive()
    }
}

/// Run the command: prompt if needed, edit, write. Errors are for the user to read.
pub fn run(args: &PasswdArgs) -> Result<(), String> {
    check_user(&args.user)?;
    if args.password.is_some() && !args.batch {
        return Err("a password on the command line needs -b (batch mode)".into());
    }
    let existing = if args.create {
        String::new()
    } else {
        match std::fs::read_to_string(&args.file) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(format!(
                    "{} does not exist (use -c to create it)",
                    args.file.display()
                ))
            }
            Err(e) => return Err(format!("reading {}: {e}", args.file.display())),
        }
    };
    let new_text = if args.delete {
        let (text, found) = edit(&existing, &args.user, None);
        if !found {
            eprintln!("Warning: user {} not found in password file.", args.user);
            return Ok(());
        }
        text
    } else {
        let pw = match (&args.password, args.batch) {
            (Some(p), _) => p.clone(),
            (None, true) => return Err("-b needs the password as the last argument".into()),
            (None, false) => prompt_twice()?,
        };
        let hash = match args.hash {
            HashKind::Argon2id => password::hash_argon2id(pw.as_bytes())?,
            HashKind::Pbkdf2 => password::hash_pbkdf2(pw.as_bytes(), args.iterations),
        };
        edit(&existing, &args.user, Some(&hash)).0
    };
    write_atomic(&args.file, &new_text)
}

/// Names a password file cannot carry: `:` ends the name, line breaks end the line, and
/// surrounding blanks are trimmed by every reader (so the user could never log in).
pub fn check_user(user: &str) -> Result<(), String> {
    if user.is_empty() {
        return Err("empty user name".into());
    }
    if user.contains(':') || user.contains('\n') || user.contains('\r') {
        return Err("a user name cannot contain ':' or a line break".into());
    }
    if user.trim() != user || user.starts_with('#') {
        return Err("a user name cannot start with '#' or start or end with blanks".into());
    }
    Ok(())
}

pub fn prompt_twice() -> Result<String, String> {
    let first = rpassword::prompt_password("Password: ").map_err(|e| e.to_string())?;
    let again = rpassword::prompt_password("Reenter password: ").map_err(|e| e.to_string())?;
    if first != again {
        return Err("passwords do not match".into());
    }
    Ok(first)
}

/// Replace (`Some(hash)`) or remove (`None`) `user`'s line; every other line, comments and lines
/// this version cannot parse included, is kept as it was. A new user is appended. Returns the new
/// text and whether the user was there.
pub fn edit(text: &str, user: &str, hash: Option<&str>) -> (String, bool) {
    let mut out = String::with_capacity(text.len() + 128);
    let mut found = false;
    for line in text.split_inclusive('\n') {
        let is_user = matches!(password::split_line(line), Ok(Some((u, _))) if u == user)
            // A line whose hash is missing is still this user's (replace it, don't duplicate).
            || line.split_once(':').is_some_and(|(u, _)| u.trim() == user);
        if !is_user {
            out.push_str(line);
            continue;
        }
        if !found {
            if let Some(h) = hash {
                out.push_str(&format!("{user}:{h}\n"));
            }
        }
        found = true;
    }
    if !found {
        if let Some(h) = hash {
            if !out.is_empty() && !out.ends_with('\n') {
                out.push('\n');
            }
            out.push_str(&format!("{user}:{h}\n"));
        }
    }
    (out, found)
}

/// Write `text` to `path` atomically: readers see the old file or the new one, never a mix.
pub fn write_atomic(path: &Path, text: &str) -> Result<(), String> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let err = |what: &str, e: std::io::Error| format!("{what} {}: {e}", path.display());
    // NamedTempFile is created 0600 on Unix, so the hashes are never readable by others, even
    // for the moment before the rename.
    let mut tmp = tempfile::Builder::new()
        .prefix(".ringmq-passwd.")
        .tempfile_in(&dir)
        .map_err(|e| err("creating a temporary file beside", e))?;
    set_mode_0600(tmp.as_file()).map_err(|e| err("setting mode 0600 for", e))?;
    tmp.write_all(text.as_bytes())
        .map_err(|e| err("writing", e))?;
    tmp.as_file().sync_all().map_err(|e| err("syncing", e))?;
    tmp.persist(path).map_err(|e| err("replacing", e.error))?;
    // The rename is durable only once the directory is.
    if let Ok(d) = std::fs::File::open(&dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

#[cfg(unix)]
fn set_mode_0600(f: &std::fs::File) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    f.set_permissions(std::fs::Permissions::from_mode(0o600))
}

#[cfg(not(unix))]
fn set_mode_0600(_f: &std::fs::File) -> std::io::Result<()> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::password::PasswordFile;

    fn args(file: &Path, user: &str, pw: Option<&str>) -> PasswdArgs {
        PasswdArgs {
            create: false,
            delete: false,
            batch: pw.is_some(),
            hash: HashKind::Argon2id,
            iterations: 1000,
            file: file.to_path_buf(),
            user: user.into(),
            password: pw.map(String::from),
        }
    }

    #[test]
    fn edit_keeps_other_lines_and_replaces_in_place() {
        let text = "# head\nalice:$6$x$y\n\nbob:$7$1$a$b\r\nnot a line\ncarol:$6$a$b";
        let (t, found) = edit(text, "bob", Some("NEW"));
        assert!(found);
        assert_eq!(
            t,
            "# head\nalice:$6$x$y\n\nbob:NEW\nnot a line\ncarol:$6$a$b"
        );
        let (t, found) = edit(text, "dave", Some("D"));
        assert!(!found);
        assert_eq!(t, format!("{text}\ndave:D\n"));
        let (t, found) = edit(text, "alice", None);
        assert!(found);
        assert_eq!(t, "# head\n\nbob:$7$1$a$b\r\nnot a line\ncarol:$6$a$b");
        let (t, _) = edit("", "u", Some("H"));
        assert_eq!(t, "u:H\n");
        // Duplicates collapse to one.
        let (t, _) = edit("u:a\nu:b\n", "u", Some("H"));
        assert_eq!(t, "u:H\n");
    }

    #[test]
    fn create_update_delete_round_trip() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("pw");
        let mut a = args(&p, "alice", Some("one"));
        assert!(run(&a).is_err(), "no file and no -c");
        a.create = true;
        run(&a).expect("create");
        let mut b = args(&p, "bob", Some("two"));
        b.hash = HashKind::Pbkdf2;
        run(&b).expect("add");
        let f = PasswordFile::load(&p).expect("parses");
        assert!(f.verify("alice", b"one") && f.verify("bob", b"two"));
        let text = std::fs::read_to_string(&p).expect("read");
        assert!(text.contains("alice:$argon2id$") && text.contains("bob:$7$1000$"));
        run(&args(&p, "alice", Some("three"))).expect("update");
        let f = PasswordFile::load(&p).expect("parses");
        assert!(f.verify("alice", b"three") && !f.verify("alice", b"one"));
        let mut d = args(&p, "alice", None);
        d.delete = true;
        run(&d).expect("delete");
        let f = PasswordFile::load(&p).expect("parses");
        assert!(!f.contains("alice") && f.contains("bob"));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&p).expect("stat").permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        // No temporary files left behind.
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .expect("ls")
            .filter_map(|e| e.ok())
            .map(|e| e.file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("pw")]);
    }

    #[test]
    fn refuses_names_a_file_cannot_hold() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("pw");
        for bad in ["", "a:b", "a\nb", " a", "a ", "#a"] {
            let mut a = args(&p, bad, Some("x"));
            a.create = true;
            assert!(run(&a).is_err(), "{bad:?}");
        }
        let mut a = args(&p, "u", None);
        a.password = Some("x".into());
        a.batch = false;
        assert!(run(&a).is_err(), "password without -b");
    }

    #[test]
    fn cli_parses_like_mosquitto_passwd() {
        use crate::config::{Cli, Command};
        use clap::Parser;
        let cli = Cli::parse_from(["ringmq", "passwd", "-c", "-b", "f", "u", "p"]);
        let Some(Command::Passwd(a)) = cli.command else {
            panic!("passwd subcommand");
        };
        assert!(a.create && a.batch && !a.delete);
        assert_eq!((a.user.as_str(), a.password.as_deref()), ("u", Some("p")));
        assert_eq!(a.hash, HashKind::Argon2id);
        let cli = Cli::parse_from([
            "ringmq",
            "passwd",
            "-H",
            "sha512-pbkdf2",
            "-b",
            "f",
            "u",
            "p",
        ]);
        let Some(Command::Passwd(a)) = cli.command else {
            panic!("passwd subcommand");
        };
        assert_eq!(a.hash, HashKind::Pbkdf2);
        assert!(Cli::try_parse_from(["ringmq", "passwd", "-D", "-b", "f", "u"]).is_err());
        // No subcommand: the broker's flags as before.
        let cli = Cli::parse_from(["ringmq", "--bind", "127.0.0.1:1999"]);
        assert!(cli.command.is_none());
        assert!(!format!(
            "{:?}",
            Cli::parse_from(["ringmq", "passwd", "-b", "f", "u", "sekrit"])
        )
        .contains("sekrit"));
    }
}
