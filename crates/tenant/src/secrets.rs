//! Secret primitives: Argon2id password hashes, API tokens (only their SHA-256 is stored), ids.

use std::sync::OnceLock;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use base64::Engine as _;
use rand::RngCore;
use sha2::{Digest, Sha256};

/// Argon2id memory cost in KiB (OWASP's 19 MiB, 2 passes, 1 lane).
pub const ARGON2_M_KIB: u32 = 19_456;
pub const ARGON2_T: u32 = 2;
pub const ARGON2_P: u32 = 1;

/// Prefix of every API token, so leaked tokens are recognisable by secret scanners.
pub const TOKEN_PREFIX: &str = "dbt_";

// Upper bounds on the cost parameters read back from a stored hash, so a corrupted or hostile
// row cannot make verification allocate gigabytes or spin for minutes.
const MAX_M_KIB: u32 = 262_144;
const MAX_T: u32 = 16;
const MAX_P: u32 = 16;

fn hasher() -> Argon2<'static> {
    // The parameters are constants inside Argon2's accepted ranges, so this cannot fail.
    let params =
        Params::new(ARGON2_M_KIB, ARGON2_T, ARGON2_P, None).unwrap_or_else(|_| Params::default());
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// Argon2id hash of `password` with a fresh random salt, as a PHC string
/// (`$argon2id$v=19$m=19456,t=2,p=1$…`).
#[allow(clippy::expect_used)] // fixed valid salt length and parameters: cannot fail
pub fn hash_password(password: &str) -> String {
    let mut salt = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut salt);
    let salt = SaltString::encode_b64(&salt).expect("16 bytes is a valid salt length");
    hasher()
        .hash_password(password.as_bytes(), &salt)
        .expect("argon2id with fixed valid parameters does not fail")
        .to_string()
}

/// Whether `password` matches the PHC string `phc`. False (never a panic) on anything that is
/// not a well-formed Argon2id hash with sane parameters.
pub fn verify_password(password: &str, phc: &str) -> bool {
    let Ok(parsed) = PasswordHash::new(phc) else {
        return false;
    };
    if parsed.algorithm.as_str() != "argon2id" {
        return false;
    }
    let Ok(params) = Params::try_from(&parsed) else {
        return false;
    };
    if params.m_cost() > MAX_M_KIB || params.t_cost() > MAX_T || params.p_cost() > MAX_P {
        return false;
    }
    Argon2::default()
        .verify_password(password.as_bytes(), &parsed)
        .is_ok()
}

/// Like [`verify_password`], but when there is no stored hash (unknown user, no password set)
/// it still spends the time of one verification and returns false, so response times do not
/// reveal which accounts exist.
pub fn verify_password_or_dummy(password: &str, phc: Option<&str>) -> bool {
    static DUMMY: OnceLock<String> = OnceLock::new();
    match phc {
        Some(phc) => verify_password(password, phc),
        None => {
            let dummy = DUMMY.get_or_init(|| hash_password("dirbridge-dummy-password"));
            let _ = verify_password(password, dummy);
            false
        }
    }
}

/// Whether a stored hash uses other parameters than today's and should be re-hashed at the
/// next successful sign-in.
pub fn needs_rehash(phc: &str) -> bool {
    let Ok(parsed) = PasswordHash::new(phc) else {
        return true;
    };
    let Ok(params) = Params::try_from(&parsed) else {
        return true;
    };
    parsed.algorithm.as_str() != "argon2id"
        || params.m_cost() != ARGON2_M_KIB
        || params.t_cost() != ARGON2_T
        || params.p_cost() != ARGON2_P
}

/// A new API token: `(token to hand out, hash to store)`. The token is `dbt_` followed by the
/// unpadded base64url of 32 random bytes (43 characters); the hash is [`token_hash`] of it.
pub fn new_token() -> (String, String) {
    new_prefixed_token(TOKEN_PREFIX)
}

/// Like [`new_token`] with another prefix, for the other kinds of bearer secret (the
/// provider's codes and tokens, client secrets), so a leaked one says what it is.
pub fn new_prefixed_token(prefix: &str) -> (String, String) {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    let token = format!(
        "{prefix}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    );
    let hash = token_hash(&token);
    (token, hash)
}

/// Lower-case hex SHA-256 of the whole token string (prefix included): what the store keeps
/// and looks tokens up by.
pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// A new object id (UUID v4).
pub fn new_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// A UUID v7 string: sorts by creation time (monotonic within this process), for append-only
/// records such as the audit log whose order matters within one second.
pub fn ordered_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

/// A new tracking id (UUID v4), shown to users and carried through audit and event logs.
pub fn tracking_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

// ---------------------------------------------------------------- known devices

/// How long a browser stays a known device for an account after a successful sign-in.
pub const DEVICE_SECS: i64 = 90 * 86_400;

/// The value of a known-device cookie for the account `upn` (any case), valid until `expires`:
/// `v1.<expires>.<HMAC-SHA256 under the server's device key>`. It names no account; only the
/// server, which holds the key, can make or check one.
pub fn device_token(key: &[u8], upn: &str, expires: i64) -> String {
    format!("v1.{expires}.{}", device_mac(key, upn, expires))
}

/// Whether `token` was made by [`device_token`] for `upn` and has not expired at `now`.
pub fn device_token_valid(key: &[u8], upn: &str, token: &str, now: i64) -> bool {
    let mut parts = token.trim().splitn(3, '.');
    let (Some("v1"), Some(expires), Some(mac)) = (parts.next(), parts.next(), parts.next()) else {
        return false;
    };
    let Ok(expires) = expires.parse::<i64>() else {
        return false;
    };
    expires > now && crate::sspr::constant_time_eq(mac, &device_mac(key, upn, expires))
}

fn device_mac(key: &[u8], upn: &str, expires: i64) -> String {
    let msg = format!("known-device\n{}\n{expires}", upn.trim().to_lowercase());
    crate::sspr::hmac_sha256_hex(key, msg.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_tokens_are_bound_to_the_account_the_key_and_their_expiry() {
        let t = device_token(b"key", "Ada@Contoso.com", 1_000);
        assert!(device_token_valid(b"key", "ada@contoso.com", &t, 999));
        assert!(!device_token_valid(b"key", "ada@contoso.com", &t, 1_000));
        assert!(!device_token_valid(b"key", "bob@contoso.com", &t, 0));
        assert!(!device_token_valid(b"other", "ada@contoso.com", &t, 0));
        let later = t.replacen("v1.1000.", "v1.9999.", 1);
        assert!(!device_token_valid(b"key", "ada@contoso.com", &later, 0));
        for junk in ["", "v1", "v1.x.y", "v2.1000.abc", "v1.1000."] {
            assert!(
                !device_token_valid(b"key", "ada@contoso.com", junk, 0),
                "{junk}"
            );
        }
    }

    #[test]
    fn hash_is_argon2id_with_the_chosen_parameters_and_verifies() {
        let phc = hash_password("Correct-Horse-9");
        assert!(phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{phc}");
        assert!(!phc.contains("Correct-Horse-9"));
        assert!(verify_password("Correct-Horse-9", &phc));
        assert!(!verify_password("correct-horse-9", &phc));
        assert!(!verify_password("", &phc));
        assert!(!needs_rehash(&phc));
    }

    #[test]
    fn same_password_gets_different_salts() {
        assert_ne!(hash_password("x"), hash_password("x"));
    }

    #[test]
    fn verify_is_false_on_malformed_or_foreign_hashes() {
        for phc in [
            "",
            "$",
            "not a hash",
            "$argon2id$",
            "$argon2id$v=19$m=19456,t=2,p=1$",
            "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$",
            "$argon2id$v=19$m=19456,t=2,p=1$!!!$???",
            "$pbkdf2-sha256$i=1000$c2FsdA$aGFzaA",
            "$argon2id$v=19$m=99999999,t=2,p=1$c2FsdHNhbHRzYWx0$YWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWE",
            "$argon2id$v=19$m=19456,t=999,p=1$c2FsdHNhbHRzYWx0$YWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWE",
        ] {
            assert!(!verify_password("pw", phc), "{phc}");
        }
    }

    #[test]
    fn argon2i_hashes_are_not_accepted() {
        let salt = SaltString::encode_b64(b"0123456789abcdef").unwrap();
        let phc = Argon2::new(Algorithm::Argon2i, Version::V0x13, Params::default())
            .hash_password(b"pw", &salt)
            .unwrap()
            .to_string();
        assert!(!verify_password("pw", &phc));
        assert!(needs_rehash(&phc));
    }

    #[test]
    fn old_parameters_need_rehash() {
        let salt = SaltString::encode_b64(b"0123456789abcdef").unwrap();
        let weak = Params::new(8, 1, 1, None).unwrap();
        let phc = Argon2::new(Algorithm::Argon2id, Version::V0x13, weak)
            .hash_password(b"pw", &salt)
            .unwrap()
            .to_string();
        assert!(verify_password("pw", &phc));
        assert!(needs_rehash(&phc));
        assert!(needs_rehash("garbage"));
    }

    #[test]
    fn dummy_verification_is_always_false() {
        assert!(!verify_password_or_dummy("dirbridge-dummy-password", None));
        let phc = hash_password("pw");
        assert!(verify_password_or_dummy("pw", Some(&phc)));
    }

    #[test]
    fn tokens_have_the_prefix_43_url_safe_chars_and_a_matching_hash() {
        let (token, hash) = new_token();
        let body = token.strip_prefix("dbt_").expect("prefix");
        assert_eq!(body.len(), 43);
        assert!(body
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
        assert_eq!(hash, token_hash(&token));
        assert_eq!(hash.len(), 64);
        assert!(!hash.contains(body));
        assert_ne!(new_token().0, token);
    }

    #[test]
    fn token_hash_is_sha256_hex() {
        assert_eq!(
            token_hash("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn ids_are_distinct_uuid_v4() {
        for id in [new_id(), tracking_id()] {
            let u = uuid::Uuid::parse_str(&id).unwrap();
            assert_eq!(u.get_version_num(), 4);
        }
        assert_ne!(new_id(), new_id());
    }
}
