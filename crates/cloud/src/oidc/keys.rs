//! The tenant's token signing keys: made on first use, the private half sealed under this
//! cloud's key-encryption key before it reaches the database, rotated on request with the old
//! key still published until every token it signed has expired.

use std::path::PathBuf;

use serde_json::Value;
use store::SigningKeyRecord;
use tenant::oidc::keys::{self, Alg};
use zeroize::Zeroizing;

use crate::error::{tracking_id, ApiResult, AppError};
use crate::state::AppState;

fn key_file(state: &AppState) -> PathBuf {
    state
        .config
        .oidc
        .key_file
        .clone()
        .unwrap_or_else(|| state.config.data_dir.join("oidc-kek"))
}

/// The key-encryption key, read once per process; created (mode 0600) when the file does not
/// exist yet.
pub(crate) async fn kek(state: &AppState) -> ApiResult<&Zeroizing<Vec<u8>>> {
    state
        .oidc_kek
        .get_or_try_init(|| async {
            let path = key_file(state);
            tokio::task::spawn_blocking(move || read_or_create(&path))
                .await
                .map_err(|_| AppError::internal())?
        })
        .await
}

fn read_or_create(path: &std::path::Path) -> ApiResult<Zeroizing<Vec<u8>>> {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let fail = |e: std::io::Error| {
        tracing::error!(tracking_id = %tracking_id(), path = %path.display(), error = %e, "cannot read or create the OIDC key-encryption key file");
        AppError::internal()
    };
    match std::fs::read_to_string(path) {
        Ok(text) => {
            let key = Zeroizing::new(b64.decode(text.trim()).unwrap_or_default());
            if key.len() != 32 {
                tracing::error!(tracking_id = %tracking_id(), path = %path.display(), "the OIDC key-encryption key file does not hold 32 base64url bytes");
                return Err(AppError::internal());
            }
            Ok(key)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            // A cloud on PostgreSQL keeps nothing else in its data directory, so it may not
            // exist yet: made as a private directory.
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                let mut b = std::fs::DirBuilder::new();
                b.recursive(true);
                #[cfg(unix)]
                std::os::unix::fs::DirBuilderExt::mode(&mut b, 0o700);
                b.create(dir).map_err(fail)?;
            }
            let key = keys::new_kek();
            let mut opts = std::fs::OpenOptions::new();
            opts.write(true).create_new(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
            match opts.open(path) {
                Ok(mut f) => {
                    use std::io::Write;
                    f.write_all(Zeroizing::new(b64.encode(&*key)).as_bytes())
                        .and_then(|_| f.sync_all())
                        .map_err(fail)?;
                    Ok(key)
                }
                // Another request of this process made it meanwhile: use that one.
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => read_or_create(path),
                Err(e) => Err(fail(e)),
            }
        }
        Err(e) => Err(fail(e)),
    }
}

fn from_refusal(r: tenant::Refusal) -> AppError {
    tracing::error!(tracking_id = %tracking_id(), error = %r.message, "OIDC signing key");
    AppError::from(r)
}

async fn create(state: &AppState, tenant_id: &str, alg: Alg) -> ApiResult<SigningKeyRecord> {
    let kek = kek(state).await?;
    let new = tokio::task::spawn_blocking(move || keys::generate(alg))
        .await
        .map_err(|_| AppError::internal())?
        .map_err(from_refusal)?;
    let rec = SigningKeyRecord {
        tenant_id: tenant_id.to_string(),
        kid: new.kid.clone(),
        alg: alg.name().to_string(),
        public_jwk: new.public_jwk.to_string(),
        sealed_private: keys::seal(kek, tenant_id, &new.kid, &new.private_pkcs8)
            .map_err(from_refusal)?,
        created_at: state.now(),
        retired_at: None,
        publish_until: None,
    };
    state.store.insert_signing_key(&rec).await?;
    Ok(rec)
}

/// The tenant's current key record for `alg`, made now if it has none.
async fn current(state: &AppState, tenant_id: &str, alg: Alg) -> ApiResult<SigningKeyRecord> {
    let current = state
        .store
        .list_signing_keys(tenant_id)
        .await?
        .into_iter()
        .find(|k| k.retired_at.is_none() && k.alg == alg.name());
    match current {
        Some(k) => Ok(k),
        None => create(state, tenant_id, alg).await,
    }
}

/// Makes sure the tenant has a published key for `alg` before any app is told to expect
/// tokens signed with it: a relying party that fetched the JWKS at discovery must find the
/// key of the first token it gets (called when an app is registered or changed).
pub async fn ensure(state: &AppState, tenant_id: &str, alg: Alg) -> ApiResult<()> {
    current(state, tenant_id, alg).await.map(|_| ())
}

/// The tenant's current key for `alg` (made now if it has none): its id and PKCS#8 private key.
pub async fn signing_key(
    state: &AppState,
    tenant_id: &str,
    alg: Alg,
) -> ApiResult<(String, Zeroizing<Vec<u8>>)> {
    let rec = current(state, tenant_id, alg).await?;
    let private = keys::open(kek(state).await?, tenant_id, &rec.kid, &rec.sealed_private)
        .map_err(from_refusal)?;
    Ok((rec.kid, private))
}

/// The public keys to publish: current ones and retired ones whose tokens may still be valid.
/// A tenant without keys gets its ES256 key now.
pub async fn published(state: &AppState, tenant_id: &str) -> ApiResult<Vec<Value>> {
    let now = state.now();
    let mut all = state.store.list_signing_keys(tenant_id).await?;
    if all.is_empty() {
        all.push(create(state, tenant_id, Alg::Es256).await?);
    }
    Ok(all
        .into_iter()
        .filter(|k| k.retired_at.is_none() || k.publish_until.is_some_and(|u| u > now))
        .filter_map(|k| serde_json::from_str(&k.public_jwk).ok())
        .collect())
}

/// New keys for every algorithm the tenant signs with (ES256 at least); the old ones sign no
/// more and stay published for the longest token lifetime. The new keys' ids.
pub async fn rotate(state: &AppState, tenant_id: &str) -> ApiResult<Vec<String>> {
    let mut algs = vec![Alg::Es256];
    for k in state.store.list_signing_keys(tenant_id).await? {
        if let Some(a) = Alg::parse(&k.alg) {
            if k.retired_at.is_none() && !algs.contains(&a) {
                algs.push(a);
            }
        }
    }
    let mut kids = Vec::new();
    for alg in algs {
        kids.push(create(state, tenant_id, alg).await?.kid);
    }
    let now = state.now();
    state
        .store
        .retire_signing_keys(tenant_id, &kids, now, now + tenant::oidc::MAX_TOKEN_SECS)
        .await?;
    Ok(kids)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_file_is_made_with_its_directory_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        // As for a cloud on PostgreSQL whose data directory was never made.
        let path = dir.path().join("never-made/cloud/oidc-kek");
        let made = read_or_create(&path).ok().unwrap();
        assert_eq!(made.len(), 32);
        let again = read_or_create(&path).ok().unwrap();
        assert_eq!(*made, *again);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode =
                |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode(&path), 0o600);
            assert_eq!(mode(path.parent().unwrap()), 0o700);
        }
    }
}
