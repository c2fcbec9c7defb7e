//! Getting a password from a person without it ever being a command-line argument: a file, one
//! line of standard input, or a prompt on the terminal. Kept in `SecretString`.

use std::io::{BufRead, IsTerminal};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use clap::Args;
use secrecy::SecretString;
use zeroize::Zeroizing;

/// Where a password comes from when one is needed. Never from an argument.
#[derive(Debug, Clone, Default, Args)]
pub struct PasswordSource {
    /// Read the password from this file (its first line).
    #[arg(long, value_name = "FILE", conflicts_with = "password_stdin")]
    pub password_file: Option<PathBuf>,

    /// Read the password from the first line of standard input (e.g. a pipe).
    #[arg(long)]
    pub password_stdin: bool,
}

/// Password of a new user: optional, so nothing is asked unless one of these is given.
#[derive(Debug, Clone, Default, Args)]
pub struct NewUserPassword {
    /// Read the user's initial password from this file (its first line).
    #[arg(long, value_name = "FILE", conflicts_with_all = ["password_stdin", "password_prompt"])]
    pub password_file: Option<PathBuf>,

    /// Read the user's initial password from the first line of standard input.
    #[arg(long, conflicts_with = "password_prompt")]
    pub password_stdin: bool,

    /// Ask for the user's initial password (twice) in the terminal.
    #[arg(long)]
    pub password_prompt: bool,
}

/// Whether a prompted password is typed once (signing in) or twice (choosing a new one).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Prompt {
    Once,
    Twice,
}

/// The password from `--password-file`, `--password-stdin`, or a prompt when standard input is a
/// terminal.
pub fn obtain(source: &PasswordSource, prompt: &str, mode: Prompt) -> anyhow::Result<SecretString> {
    if let Some(file) = &source.password_file {
        return from_file(file);
    }
    if source.password_stdin {
        return from_stdin();
    }
    if !std::io::stdin().is_terminal() {
        bail!("no password given and standard input is not a terminal: pass --password-stdin (and pipe the password in) or --password-file FILE");
    }
    from_prompt(prompt, mode)
}

/// The initial password of a new user, if one of the flags asks for it.
pub fn obtain_optional(
    source: &NewUserPassword,
    prompt: &str,
) -> anyhow::Result<Option<SecretString>> {
    if source.password_prompt {
        if !std::io::stdin().is_terminal() {
            bail!("--password-prompt needs a terminal; use --password-stdin or --password-file FILE instead");
        }
        return from_prompt(prompt, Prompt::Twice).map(Some);
    }
    let plain = PasswordSource {
        password_file: source.password_file.clone(),
        password_stdin: source.password_stdin,
    };
    if plain.password_file.is_none() && !plain.password_stdin {
        return Ok(None);
    }
    obtain(&plain, prompt, Prompt::Twice).map(Some)
}

fn from_file(path: &Path) -> anyhow::Result<SecretString> {
    let text = Zeroizing::new(
        std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the password file {}", path.display()))?,
    );
    first_line(&text).with_context(|| format!("the password file {} is empty", path.display()))
}

fn from_stdin() -> anyhow::Result<SecretString> {
    let mut line = Zeroizing::new(String::new());
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .context("cannot read the password from standard input")?;
    first_line(&line).context("--password-stdin was given but standard input held no password")
}

fn from_prompt(prompt: &str, mode: Prompt) -> anyhow::Result<SecretString> {
    let first = Zeroizing::new(
        rpassword::prompt_password(format!("{prompt}: "))
            .context("cannot read the password from the terminal")?,
    );
    if first.is_empty() {
        bail!("the password is empty");
    }
    if mode == Prompt::Twice {
        let again = Zeroizing::new(
            rpassword::prompt_password("Type it again: ")
                .context("cannot read the password from the terminal")?,
        );
        if *first != *again {
            bail!("the two passwords differ; nothing was changed");
        }
    }
    Ok(SecretString::from(first.as_str()))
}

/// The first line without its line ending; `None` when it is empty.
fn first_line(text: &str) -> Option<SecretString> {
    let line = text.split('\n').next().unwrap_or("");
    let line = line.strip_suffix('\r').unwrap_or(line);
    (!line.is_empty()).then(|| SecretString::from(line))
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;

    #[test]
    fn first_line_strips_line_endings_and_keeps_spaces() {
        assert_eq!(
            first_line("s3cret pass\r\nsecond").unwrap().expose_secret(),
            "s3cret pass"
        );
        assert_eq!(first_line(" x \n").unwrap().expose_secret(), " x ");
        assert!(first_line("\n").is_none());
        assert!(first_line("").is_none());
    }

    #[test]
    fn reads_the_password_file() {
        let tmp = tempfile::tempdir().unwrap();
        let file = tmp.path().join("pw");
        std::fs::write(&file, "Correct-Horse-1\n").unwrap();
        let src = PasswordSource {
            password_file: Some(file.clone()),
            password_stdin: false,
        };
        assert_eq!(
            obtain(&src, "Password", Prompt::Once)
                .unwrap()
                .expose_secret(),
            "Correct-Horse-1"
        );
        std::fs::write(&file, "").unwrap();
        assert!(
            format!("{:#}", obtain(&src, "Password", Prompt::Once).unwrap_err())
                .contains("is empty")
        );
    }

    #[test]
    fn new_user_without_password_flags_gets_none() {
        assert!(obtain_optional(&NewUserPassword::default(), "Password")
            .unwrap()
            .is_none());
    }
}
