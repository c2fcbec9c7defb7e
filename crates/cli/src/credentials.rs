//! The stored sign-in: `credentials.json` in `$DIRBRIDGE_CONFIG_DIR` (or the user's configuration
//! directory + `dirbridge/`), readable by the owner only (0600, directory 0700).

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use serde::{Deserialize, Serialize};

const FILE_NAME: &str = "credentials.json";

/// What `dirbridge login` keeps. A local file format, not an API body.
#[derive(Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Credentials {
    pub cloud: String,
    pub access_token: String,
    pub token_id: String,
    pub expires_at: i64,
    pub user_principal_name: String,
    pub tenant_id: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("cloud", &self.cloud)
            .field("access_token", &"[redacted]")
            .field("token_id", &self.token_id)
            .field("expires_at", &self.expires_at)
            .field("user_principal_name", &self.user_principal_name)
            .field("tenant_id", &self.tenant_id)
            .finish()
    }
}

/// Where credentials live: `$DIRBRIDGE_CONFIG_DIR`, else `<config dir>/dirbridge`.
pub fn config_dir() -> anyhow::Result<PathBuf> {
    if let Some(dir) = std::env::var_os("DIRBRIDGE_CONFIG_DIR").filter(|d| !d.is_empty()) {
        return Ok(PathBuf::from(dir));
    }
    match dirs::config_dir() {
        Some(base) => Ok(base.join("dirbridge")),
        None => bail!("cannot find your configuration directory; set DIRBRIDGE_CONFIG_DIR to a directory for dirbridge's credentials"),
    }
}

pub fn path_in(dir: &Path) -> PathBuf {
    dir.join(FILE_NAME)
}

/// The stored sign-in, or `None` when there is none.
pub fn load(dir: &Path) -> anyhow::Result<Option<Credentials>> {
    let path = path_in(dir);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    };
    let creds = serde_json::from_str(&text).with_context(|| {
        format!(
            "{} is damaged; delete it and run dirbridge login again",
            path.display()
        )
    })?;
    Ok(Some(creds))
}

/// Writes the file with mode 0600 (through a private temporary file and a rename, so a reader never
/// sees half a file and an old file with looser permissions is replaced, not reused).
pub fn save(dir: &Path, creds: &Credentials) -> anyhow::Result<PathBuf> {
    create_private_dir(dir)?;
    let path = path_in(dir);
    let tmp = dir.join(format!(".{FILE_NAME}.{}", std::process::id()));
    let body = serde_json::to_vec_pretty(creds)?;
    let write = || -> std::io::Result<()> {
        let _ = std::fs::remove_file(&tmp);
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options.open(&tmp)?;
        file.write_all(&body)?;
        file.write_all(b"\n")?;
        file.sync_all()?;
        std::fs::rename(&tmp, &path)
    };
    write()
        .inspect_err(|_| {
            let _ = std::fs::remove_file(&tmp);
        })
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(path)
}

/// Removes the stored sign-in; `false` when there was none.
pub fn delete(dir: &Path) -> anyhow::Result<bool> {
    let path = path_in(dir);
    match std::fs::remove_file(&path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e).with_context(|| format!("cannot delete {}", path.display())),
    }
}

fn create_private_dir(dir: &Path) -> anyhow::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder
        .create(dir)
        .with_context(|| format!("cannot create the directory {}", dir.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Credentials {
        Credentials {
            cloud: "http://127.0.0.1:8080".into(),
            access_token: "secret-token".into(),
            token_id: "t1".into(),
            expires_at: 1_714_564_800,
            user_principal_name: "admin@contoso.dirbridge.internal".into(),
            tenant_id: "ten".into(),
        }
    }

    #[test]
    fn saves_loads_and_deletes() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("nested/dirbridge");
        assert_eq!(load(&dir).unwrap(), None);
        save(&dir, &sample()).unwrap();
        assert_eq!(load(&dir).unwrap(), Some(sample()));
        let text = std::fs::read_to_string(path_in(&dir)).unwrap();
        assert!(text.contains("\"accessToken\"") && text.contains("\"userPrincipalName\""));
        assert!(delete(&dir).unwrap());
        assert!(!delete(&dir).unwrap());
    }

    #[cfg(unix)]
    #[test]
    fn file_is_private_even_when_an_old_one_was_not() {
        use std::os::unix::fs::PermissionsExt;
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("cfg");
        save(&dir, &sample()).unwrap();
        assert_eq!(
            std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777,
            0o700
        );
        std::fs::set_permissions(path_in(&dir), std::fs::Permissions::from_mode(0o644)).unwrap();
        save(&dir, &sample()).unwrap();
        assert_eq!(
            std::fs::metadata(path_in(&dir))
                .unwrap()
                .permissions()
                .mode()
                & 0o777,
            0o600
        );
    }

    #[test]
    fn debug_hides_the_token() {
        assert!(!format!("{:?}", sample()).contains("secret-token"));
    }
}
