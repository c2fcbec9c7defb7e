//! Signing keys of the tenant's provider and the JWTs they sign.
//!
//! ES256 (P-256) by default, RS256 (2048-bit) because OpenID Connect requires providers to
//! offer it. The private half only leaves memory sealed ([`seal`]: ChaCha20-Poly1305 under the
//! cloud's key-encryption key, with the tenant and key id as associated data, so a sealed key
//! copied to another row or tenant does not open).

use base64::Engine as _;
use ring::rand::{SecureRandom, SystemRandom};
use ring::signature::{self, EcdsaKeyPair, KeyPair, RsaKeyPair};
use serde_json::{json, Value};
use zeroize::Zeroizing;

use super::b64;
use crate::refusal::Refusal;

/// A JWS algorithm the provider signs with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Alg {
    Es256,
    Rs256,
}

impl Alg {
    pub const ALL: [Alg; 2] = [Alg::Es256, Alg::Rs256];
    pub fn name(self) -> &'static str {
        match self {
            Alg::Es256 => "ES256",
            Alg::Rs256 => "RS256",
        }
    }
    pub fn parse(s: &str) -> Option<Alg> {
        Alg::ALL.into_iter().find(|a| a.name() == s)
    }
}

/// A freshly made key pair: its id, public JWK and PKCS#8 private key.
pub struct NewKey {
    pub kid: String,
    pub alg: Alg,
    pub public_jwk: Value,
    pub private_pkcs8: Zeroizing<Vec<u8>>,
}

fn internal(what: &str) -> Refusal {
    Refusal::new(
        proto::ErrorCode::Internal,
        format!("The signing key could not be {what}; quote the tracking id to your operator."),
    )
}

#[allow(clippy::expect_used)] // the system's random source failing is not recoverable
fn random(n: usize) -> Vec<u8> {
    let mut b = vec![0u8; n];
    // The system's random source failing is not recoverable.
    SystemRandom::new()
        .fill(&mut b)
        .expect("the system random number generator works");
    b
}

/// Makes a new key pair for `alg`.
pub fn generate(alg: Alg) -> Result<NewKey, Refusal> {
    let kid = b64(&random(12));
    let rng = SystemRandom::new();
    let (pkcs8, jwk) = match alg {
        Alg::Es256 => {
            let doc =
                EcdsaKeyPair::generate_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
                    .map_err(|_| internal("made"))?;
            let pkcs8 = Zeroizing::new(doc.as_ref().to_vec());
            let pair =
                EcdsaKeyPair::from_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, &pkcs8, &rng)
                    .map_err(|_| internal("made"))?;
            let point = pair.public_key().as_ref();
            // Uncompressed point: 0x04 ‖ x (32 bytes) ‖ y (32 bytes).
            let jwk = json!({
                "kty": "EC", "crv": "P-256",
                "x": b64(&point[1..33]), "y": b64(&point[33..65]),
            });
            (pkcs8, jwk)
        }
        Alg::Rs256 => {
            use rsa::pkcs8::EncodePrivateKey;
            let key = rsa::RsaPrivateKey::new(&mut rand::rngs::OsRng, 2048)
                .map_err(|_| internal("made"))?;
            let der = key.to_pkcs8_der().map_err(|_| internal("made"))?;
            let pkcs8 = Zeroizing::new(der.as_bytes().to_vec());
            let pair = RsaKeyPair::from_pkcs8(&pkcs8).map_err(|_| internal("made"))?;
            let parts: ring::rsa::PublicKeyComponents<Vec<u8>> = pair.public().into();
            let jwk = json!({"kty": "RSA", "n": b64(&parts.n), "e": b64(&parts.e)});
            (pkcs8, jwk)
        }
    };
    let mut jwk = jwk;
    jwk["kid"] = json!(kid);
    jwk["alg"] = json!(alg.name());
    jwk["use"] = json!("sig");
    Ok(NewKey {
        kid,
        alg,
        public_jwk: jwk,
        private_pkcs8: pkcs8,
    })
}

/// A new key-encryption key (32 random bytes).
pub fn new_kek() -> Zeroizing<Vec<u8>> {
    Zeroizing::new(random(32))
}

fn aead_key(kek: &[u8]) -> Result<ring::aead::LessSafeKey, Refusal> {
    ring::aead::UnboundKey::new(&ring::aead::CHACHA20_POLY1305, kek)
        .map(ring::aead::LessSafeKey::new)
        .map_err(|_| internal("sealed (the key-encryption key is not 32 bytes)"))
}

fn aad(tenant_id: &str, kid: &str) -> Vec<u8> {
    format!("dirbridge-oidc-key\n{tenant_id}\n{kid}").into_bytes()
}

/// `private` sealed under `kek` for the key `kid` of `tenant_id`: `v1.` + base64url(nonce ‖
/// ciphertext ‖ tag).
pub fn seal(kek: &[u8], tenant_id: &str, kid: &str, private: &[u8]) -> Result<String, Refusal> {
    let key = aead_key(kek)?;
    let mut nonce_bytes = [0u8; 12];
    nonce_bytes.copy_from_slice(&random(12));
    let mut buf = private.to_vec();
    key.seal_in_place_append_tag(
        ring::aead::Nonce::assume_unique_for_key(nonce_bytes),
        ring::aead::Aad::from(aad(tenant_id, kid)),
        &mut buf,
    )
    .map_err(|_| internal("sealed"))?;
    let mut out = nonce_bytes.to_vec();
    out.extend_from_slice(&buf);
    Ok(format!("v1.{}", b64(&out)))
}

/// Opens what [`seal`] made for the same tenant and key id with the same `kek`.
pub fn open(
    kek: &[u8],
    tenant_id: &str,
    kid: &str,
    sealed: &str,
) -> Result<Zeroizing<Vec<u8>>, Refusal> {
    let refused = || {
        Refusal::new(
            proto::ErrorCode::Internal,
            "A signing key in the database does not open with this cloud's key-encryption key ([oidc] key_file): every instance needs the same key file. Quote the tracking id to your operator.",
        )
    };
    let raw = sealed
        .strip_prefix("v1.")
        .and_then(|s| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(s)
                .ok()
        })
        .filter(|r| r.len() > 12 + 16)
        .ok_or_else(refused)?;
    let (nonce, ct) = raw.split_at(12);
    let key = aead_key(kek)?;
    let mut buf = Zeroizing::new(ct.to_vec());
    let plain = key
        .open_in_place(
            ring::aead::Nonce::try_assume_unique_for_key(nonce).map_err(|_| refused())?,
            ring::aead::Aad::from(aad(tenant_id, kid)),
            &mut buf,
        )
        .map_err(|_| refused())?;
    Ok(Zeroizing::new(plain.to_vec()))
}

/// A compact JWS (`header.payload.signature`) of `claims`, signed with the PKCS#8 key.
pub fn sign_jwt(alg: Alg, kid: &str, pkcs8: &[u8], claims: &Value) -> Result<String, Refusal> {
    let header = json!({"alg": alg.name(), "typ": "JWT", "kid": kid});
    let input = format!(
        "{}.{}",
        b64(header.to_string().as_bytes()),
        b64(claims.to_string().as_bytes())
    );
    let rng = SystemRandom::new();
    let sig = match alg {
        Alg::Es256 => {
            let pair =
                EcdsaKeyPair::from_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8, &rng)
                    .map_err(|_| internal("read"))?;
            pair.sign(&rng, input.as_bytes())
                .map_err(|_| internal("used"))?
                .as_ref()
                .to_vec()
        }
        Alg::Rs256 => {
            let pair = RsaKeyPair::from_pkcs8(pkcs8).map_err(|_| internal("read"))?;
            let mut sig = vec![0u8; pair.public().modulus_len()];
            pair.sign(
                &signature::RSA_PKCS1_SHA256,
                &rng,
                input.as_bytes(),
                &mut sig,
            )
            .map_err(|_| internal("used"))?;
            sig
        }
    };
    Ok(format!("{input}.{}", b64(&sig)))
}

/// The claims of `jwt` if one of `jwks` (public JWKs as published) signed it. Expiry is not
/// checked: the caller decides what an old token may still be used for.
pub fn verify_jwt(jwks: &[Value], jwt: &str) -> Option<Value> {
    let d = |s: &str| {
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(s)
            .ok()
    };
    let mut parts = jwt.split('.');
    let (h, p, s) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    let header: Value = serde_json::from_slice(&d(h)?).ok()?;
    let kid = header["kid"].as_str()?;
    let jwk = jwks.iter().find(|k| k["kid"] == kid)?;
    if header["alg"] != jwk["alg"] {
        return None;
    }
    let sig = d(s)?;
    let msg = format!("{h}.{p}");
    let ok = match Alg::parse(jwk["alg"].as_str()?)? {
        Alg::Es256 => {
            let mut point = vec![4u8];
            point.extend(d(jwk["x"].as_str()?)?);
            point.extend(d(jwk["y"].as_str()?)?);
            signature::UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, point)
                .verify(msg.as_bytes(), &sig)
                .is_ok()
        }
        Alg::Rs256 => ring::rsa::PublicKeyComponents {
            n: d(jwk["n"].as_str()?)?,
            e: d(jwk["e"].as_str()?)?,
        }
        .verify(&signature::RSA_PKCS1_2048_8192_SHA256, msg.as_bytes(), &sig)
        .is_ok(),
    };
    if !ok {
        return None;
    }
    serde_json::from_slice(&d(p)?).ok()
}
