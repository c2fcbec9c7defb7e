//! Password writeback, agent side: opening the requests the cloud sealed to this agent.
//!
//! A [`SealedRequest`] is HPKE (RFC 9180, mode base, DHKEM(X25519, HKDF-SHA256) / HKDF-SHA256 /
//! ChaCha20-Poly1305) sealed to the agent's X25519 sealing key (`keys/sealing.key`, the same 32
//! bytes as HPKE's X25519 private key), with the version, tenant, agent, tracking id and expiry
//! bound as associated data ([`proto::writeback::associated_data`]). [`Opener::open`] refuses a
//! request for another agent or tenant, an expired one, a replayed one, and anything that does
//! not decrypt (event 32004, "decryption error (key mismatch)").
//!
//! The plaintext exists only in zeroizing buffers and is never logged. (serde_json may use an
//! unwiped scratch buffer while decoding a string that contains JSON escapes; the cloud's
//! encoder escapes only control characters, `"` and `\`.)
//!
//! The replay guard: tracking ids are remembered until their request expires, at most
//! [`MAX_REMEMBERED`] at once. [`Opener::open_persisted`] keeps them in the agent's SQLite
//! space ([`Space::remember_tracking_id`]), so a replay after a restart is refused too;
//! [`Opener::open`] keeps them in memory (one process).
//!
//! Running an opened operation against the directory is [`execute`]; the service glue
//! (open → claim → execute → report) is [`handle`]. A pass-through sign-in
//! ([`WritebackOperation::Verify`]) comes the same way and is run by [`verify`]: a bind as the
//! user, on any agent of the tenant (it does not need writeback enabled).

mod execute;
mod failure;
mod handle;
pub mod must_change;
mod protected;
mod verify;

pub use execute::{execute, ExecPolicy};
pub use handle::{handle, load_settings, sign_in_connectors, WritebackSettings, SETTINGS_FILE};
pub use verify::verify;

use std::collections::HashMap;
use std::ops::Deref;
use std::sync::Mutex;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use hpke::{Deserializable as _, OpModeR};
use proto::writeback::{associated_data, is_header_id, SealedRequest, WritebackOperation};
use proto::Epoch;
use x25519_dalek::StaticSecret;
use zeroize::{Zeroize, Zeroizing};

use crate::identity::Identity;
use crate::space::{RememberOutcome, Space};
use crate::AgentError;

type Kem = hpke::kem::X25519HkdfSha256;
type Kdf = hpke::kdf::HkdfSha256;
type Aead = hpke::aead::ChaCha20Poly1305;
type PrivateKey = <Kem as hpke::Kem>::PrivateKey;
type EncappedKey = <Kem as hpke::Kem>::EncappedKey;

/// Most tracking ids the replay guard remembers at once; beyond that, requests are refused
/// (fail closed) until older ones expire.
pub const MAX_REMEMBERED: usize = 10_000;

/// A request may not expire later than this many seconds after it is opened: the cloud gives
/// requests a lifetime of seconds to minutes, and the replay guard must not fill up with ids
/// that never expire.
pub const MAX_LIFETIME_SECS: i64 = 900;

/// Event id of a request that does not decrypt (REFERENCE.md, "Password writeback").
pub const EVENT_DECRYPTION_ERROR: u32 = 32004;

/// Why a sealed request was refused. Never carries plaintext.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OpenError {
    #[error("writeback request version {0} is not supported")]
    UnsupportedVersion(u8),
    #[error("writeback request is for agent {0}, not this one")]
    WrongAgent(String),
    #[error("writeback request is for tenant {0}, not this agent's tenant")]
    WrongTenant(String),
    #[error("writeback request expired at {0}")]
    Expired(Epoch),
    #[error("writeback request expires at {0}, too far in the future")]
    LifetimeTooLong(Epoch),
    #[error("writeback request {0} was already received")]
    Replayed(String),
    #[error("too many writeback requests in flight; try again shortly")]
    ReplayGuardFull,
    /// Any AEAD or decapsulation failure: tampered ciphertext or header, or sealed to another
    /// key. Event 32004.
    #[error("decryption error (key mismatch): the writeback request could not be opened with this agent's sealing key")]
    DecryptionFailed,
    #[error("malformed writeback request: {0}")]
    Malformed(&'static str),
}

impl OpenError {
    /// The PasswordResetService event id for this refusal, where REFERENCE.md defines one.
    pub fn event_id(&self) -> Option<u32> {
        match self {
            OpenError::DecryptionFailed => Some(EVENT_DECRYPTION_ERROR),
            _ => None,
        }
    }
}

/// Why [`Opener::open_persisted`] refused: the request, or the replay guard's database.
#[derive(Debug, thiserror::Error)]
pub enum OpenPersistedError {
    #[error(transparent)]
    Refused(#[from] OpenError),
    #[error("the writeback replay guard could not be read or written: {0}")]
    Guard(#[from] AgentError),
}

/// An opened operation. Its passwords are wiped when the surrounding [`Zeroizing`] drops;
/// `Debug` redacts them.
#[derive(Debug)]
pub struct OpenedOperation(WritebackOperation);

impl Deref for OpenedOperation {
    type Target = WritebackOperation;
    fn deref(&self) -> &WritebackOperation {
        &self.0
    }
}

impl Zeroize for OpenedOperation {
    fn zeroize(&mut self) {
        match &mut self.0 {
            WritebackOperation::Reset {
                anchor,
                new_password,
            } => {
                anchor.zeroize();
                new_password.zeroize();
            }
            WritebackOperation::Change {
                anchor,
                old_password,
                new_password,
            } => {
                anchor.zeroize();
                old_password.zeroize();
                new_password.zeroize();
            }
            WritebackOperation::Unlock { anchor } => anchor.zeroize(),
            WritebackOperation::AdminReset {
                anchor,
                new_password,
                must_change,
            } => {
                anchor.zeroize();
                new_password.zeroize();
                *must_change = false;
            }
            WritebackOperation::Verify { anchor, password } => {
                anchor.zeroize();
                password.zeroize();
            }
        }
    }
}

/// Opens the writeback requests sealed to this agent.
pub struct Opener {
    /// HPKE's X25519 private key (x25519-dalek inside, wiped on drop).
    key: PrivateKey,
    tenant_id: String,
    agent_id: String,
    /// tracking id → expiry of the request that carried it.
    seen: Mutex<HashMap<String, Epoch>>,
}

impl std::fmt::Debug for Opener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Opener")
            .field("tenant_id", &self.tenant_id)
            .field("agent_id", &self.agent_id)
            .field("key", &"[redacted]")
            .finish()
    }
}

impl Opener {
    /// An opener for the agent whose X25519 sealing key is `sealing`.
    pub fn new(sealing: &StaticSecret, tenant_id: &str, agent_id: &str) -> Opener {
        let bytes = Zeroizing::new(sealing.to_bytes());
        Opener {
            key: private_key(&bytes),
            tenant_id: tenant_id.to_string(),
            agent_id: agent_id.to_string(),
            seen: Mutex::new(HashMap::new()),
        }
    }

    /// An opener for a registered agent.
    pub fn from_identity(identity: &Identity) -> Opener {
        Opener::new(
            &identity.sealing,
            &identity.config.tenant_id,
            &identity.config.agent_id,
        )
    }

    /// Checks and opens `req` at time `now`. Each tracking id opens once per process.
    pub fn open(
        &self,
        req: &SealedRequest,
        now: Epoch,
    ) -> Result<Zeroizing<OpenedOperation>, OpenError> {
        let op = self.decrypt(req, now)?;
        // Only authentic requests are remembered, so forged ones cannot burn tracking ids.
        self.remember(&req.tracking_id, req.expires_at, now)?;
        Ok(op)
    }

    /// As [`Opener::open`], with the replay guard in the agent's SQLite `space`: a tracking id
    /// opens once, across restarts too.
    pub async fn open_persisted(
        &self,
        req: &SealedRequest,
        now: Epoch,
        space: &Space,
    ) -> Result<Zeroizing<OpenedOperation>, OpenPersistedError> {
        let op = self.decrypt(req, now)?;
        match space
            .remember_tracking_id(&req.tracking_id, req.expires_at, now, MAX_REMEMBERED)
            .await?
        {
            RememberOutcome::New => Ok(op),
            RememberOutcome::Replayed => Err(OpenError::Replayed(req.tracking_id.clone()).into()),
            RememberOutcome::Full => Err(OpenError::ReplayGuardFull.into()),
        }
    }

    /// Every check but the replay guard, and the decryption.
    fn decrypt(
        &self,
        req: &SealedRequest,
        now: Epoch,
    ) -> Result<Zeroizing<OpenedOperation>, OpenError> {
        if req.version != proto::writeback::VERSION {
            return Err(OpenError::UnsupportedVersion(req.version));
        }
        if !is_header_id(&req.tenant_id)
            || !is_header_id(&req.agent_id)
            || !is_header_id(&req.tracking_id)
        {
            return Err(OpenError::Malformed("bad tenant, agent or tracking id"));
        }
        if req.agent_id != self.agent_id {
            return Err(OpenError::WrongAgent(req.agent_id.clone()));
        }
        if req.tenant_id != self.tenant_id {
            return Err(OpenError::WrongTenant(req.tenant_id.clone()));
        }
        if now > req.expires_at {
            return Err(OpenError::Expired(req.expires_at));
        }
        if req.expires_at > now.saturating_add(MAX_LIFETIME_SECS) {
            return Err(OpenError::LifetimeTooLong(req.expires_at));
        }

        let enc = B64
            .decode(&req.encapsulated_key)
            .map_err(|_| OpenError::Malformed("encapsulated key is not base64"))?;
        let enc = EncappedKey::from_bytes(&enc)
            .map_err(|_| OpenError::Malformed("encapsulated key is not 32 bytes"))?;
        let ciphertext = B64
            .decode(&req.ciphertext)
            .map_err(|_| OpenError::Malformed("ciphertext is not base64"))?;
        let aad = associated_data(
            req.version,
            &req.tenant_id,
            &req.agent_id,
            &req.tracking_id,
            req.expires_at,
        );
        let plaintext = Zeroizing::new(
            hpke::single_shot_open::<Aead, Kdf, Kem>(
                &OpModeR::Base,
                &self.key,
                &enc,
                proto::writeback::INFO,
                &ciphertext,
                aad.as_bytes(),
            )
            .map_err(|_| OpenError::DecryptionFailed)?,
        );
        Ok(Zeroizing::new(OpenedOperation(
            serde_json::from_slice(&plaintext)
                .map_err(|_| OpenError::Malformed("sealed operation is not valid"))?,
        )))
    }

    /// Records `tracking_id` until `expires_at`; refuses one already recorded.
    fn remember(&self, tracking_id: &str, expires_at: Epoch, now: Epoch) -> Result<(), OpenError> {
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        if seen.contains_key(tracking_id) {
            return Err(OpenError::Replayed(tracking_id.to_string()));
        }
        if seen.len() >= MAX_REMEMBERED {
            seen.retain(|_, exp| *exp >= now);
            if seen.len() >= MAX_REMEMBERED {
                return Err(OpenError::ReplayGuardFull);
            }
        }
        seen.insert(tracking_id.to_string(), expires_at);
        Ok(())
    }

    /// How many tracking ids the replay guard holds (expired ones may linger until it fills).
    pub fn remembered(&self) -> usize {
        self.seen.lock().unwrap_or_else(|e| e.into_inner()).len()
    }
}

fn private_key(bytes: &[u8; 32]) -> PrivateKey {
    // Any 32 bytes are a valid X25519 private key (clamped on use), so this cannot fail.
    match PrivateKey::from_bytes(bytes) {
        Ok(k) => k,
        Err(_) => unreachable!("HPKE X25519 accepts any 32-byte private key"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::OsRng;
    use x25519_dalek::PublicKey;

    const MARKER: &str = "Marker-Pa55word-7f3c";
    const NOW: Epoch = 1_800_000_000;

    /// A key pair made the way `identity::register` makes it.
    fn agent_key() -> (StaticSecret, String) {
        let sealing = StaticSecret::random_from_rng(OsRng);
        let public = B64.encode(PublicKey::from(&sealing).to_bytes());
        (sealing, public)
    }

    fn reset() -> WritebackOperation {
        WritebackOperation::Reset {
            anchor: "AQIDBA==".into(),
            new_password: MARKER.into(),
        }
    }

    fn seal(public: &str, tracking: &str, op: &WritebackOperation) -> SealedRequest {
        tenant::writeback::seal_request(public, "tenant-1", "agent-1", tracking, NOW + 60, op)
            .unwrap()
    }

    fn setup() -> (Opener, String) {
        let (secret, public) = agent_key();
        (Opener::new(&secret, "tenant-1", "agent-1"), public)
    }

    #[test]
    fn round_trip_with_a_key_made_like_the_agent_makes_it() {
        let (opener, public) = setup();
        for (i, op) in [
            reset(),
            WritebackOperation::Change {
                anchor: "a".into(),
                old_password: "old-".to_string() + MARKER,
                new_password: MARKER.into(),
            },
            WritebackOperation::Unlock { anchor: "a".into() },
            WritebackOperation::AdminReset {
                anchor: "a".into(),
                new_password: MARKER.into(),
                must_change: true,
            },
        ]
        .into_iter()
        .enumerate()
        {
            let req = seal(&public, &format!("trk-{i}"), &op);
            let opened = opener.open(&req, NOW).unwrap();
            assert_eq!(**opened, op);
        }
        assert_eq!(opener.remembered(), 4);
    }

    #[test]
    fn hpke_derives_the_same_public_key_as_the_registered_one() {
        use hpke::{Kem as _, Serializable as _};
        let (secret, public) = agent_key();
        let opener = Opener::new(&secret, "tenant-1", "agent-1");
        let derived = Kem::sk_to_pk(&opener.key).to_bytes();
        assert_eq!(B64.encode(derived.as_slice()), public);
    }

    #[test]
    fn key_loaded_from_the_stored_base64_works() {
        let (secret, public) = agent_key();
        // keys/sealing.key holds the raw 32 bytes, base64; identity::load reads them back.
        let stored = B64.encode(secret.to_bytes());
        let raw: [u8; 32] = B64.decode(stored).unwrap().try_into().unwrap();
        let opener = Opener::new(&StaticSecret::from(raw), "tenant-1", "agent-1");
        let opened = opener.open(&seal(&public, "t", &reset()), NOW).unwrap();
        assert_eq!(opened.anchor(), "AQIDBA==");
    }

    #[test]
    fn another_agent_is_refused_before_decrypting() {
        let (secret, public) = agent_key();
        let other = Opener::new(&secret, "tenant-1", "agent-2");
        let req = seal(&public, "t", &reset());
        assert_eq!(
            other.open(&req, NOW).unwrap_err(),
            OpenError::WrongAgent("agent-1".into())
        );
        // Rewriting the header to name the other agent breaks the AEAD instead.
        let mut swapped = req.clone();
        swapped.agent_id = "agent-2".into();
        assert_eq!(
            other.open(&swapped, NOW).unwrap_err(),
            OpenError::DecryptionFailed
        );
    }

    #[test]
    fn another_tenant_is_refused() {
        let (secret, public) = agent_key();
        let other = Opener::new(&secret, "tenant-2", "agent-1");
        let req = seal(&public, "t", &reset());
        assert_eq!(
            other.open(&req, NOW).unwrap_err(),
            OpenError::WrongTenant("tenant-1".into())
        );
        let mut swapped = req;
        swapped.tenant_id = "tenant-2".into();
        assert_eq!(
            other.open(&swapped, NOW).unwrap_err(),
            OpenError::DecryptionFailed
        );
    }

    #[test]
    fn expired_is_refused_and_the_last_second_is_accepted() {
        let (opener, public) = setup();
        let req = seal(&public, "t", &reset());
        assert_eq!(
            opener.open(&req, NOW + 61).unwrap_err(),
            OpenError::Expired(NOW + 60)
        );
        assert!(opener.open(&req, NOW + 60).is_ok());
    }

    #[test]
    fn a_lifetime_past_the_cap_is_refused() {
        let (opener, public) = setup();
        let req = tenant::writeback::seal_request(
            &public,
            "tenant-1",
            "agent-1",
            "t",
            NOW + MAX_LIFETIME_SECS + 1,
            &reset(),
        )
        .unwrap();
        assert!(matches!(
            opener.open(&req, NOW),
            Err(OpenError::LifetimeTooLong(_))
        ));
    }

    #[test]
    fn replay_is_refused_the_second_time() {
        let (opener, public) = setup();
        let req = seal(&public, "trk-replay", &reset());
        assert!(opener.open(&req, NOW).is_ok());
        assert_eq!(
            opener.open(&req, NOW + 1).unwrap_err(),
            OpenError::Replayed("trk-replay".into())
        );
        // A fresh seal under the same tracking id is a replay too.
        let again = seal(&public, "trk-replay", &reset());
        assert!(matches!(
            opener.open(&again, NOW),
            Err(OpenError::Replayed(_))
        ));
    }

    #[test]
    fn forged_requests_do_not_burn_tracking_ids() {
        let (opener, public) = setup();
        let req = seal(&public, "trk", &reset());
        let mut forged = req.clone();
        let mut ct = B64.decode(&forged.ciphertext).unwrap();
        ct[0] ^= 1;
        forged.ciphertext = B64.encode(ct);
        assert_eq!(
            opener.open(&forged, NOW).unwrap_err(),
            OpenError::DecryptionFailed
        );
        assert!(opener.open(&req, NOW).is_ok());
    }

    #[test]
    fn flipped_ciphertext_bytes_fail_decryption() {
        let (opener, public) = setup();
        let req = seal(&public, "t", &reset());
        let len = B64.decode(&req.ciphertext).unwrap().len();
        for i in [0, len / 2, len - 1] {
            let mut bad = req.clone();
            let mut ct = B64.decode(&bad.ciphertext).unwrap();
            ct[i] ^= 0x80;
            bad.ciphertext = B64.encode(ct);
            let e = opener.open(&bad, NOW).unwrap_err();
            assert_eq!(e, OpenError::DecryptionFailed);
            assert_eq!(e.event_id(), Some(32004));
        }
        let mut bad = req;
        let mut enc = B64.decode(&bad.encapsulated_key).unwrap();
        enc[3] ^= 1;
        bad.encapsulated_key = B64.encode(enc);
        assert_eq!(
            opener.open(&bad, NOW).unwrap_err(),
            OpenError::DecryptionFailed
        );
    }

    #[test]
    fn changed_header_fields_fail_decryption() {
        let (opener, public) = setup();
        let req = seal(&public, "trk", &reset());
        let mut extended = req.clone();
        extended.expires_at += 300;
        let mut retracked = req.clone();
        retracked.tracking_id = "trk-other".into();
        for bad in [extended, retracked] {
            assert_eq!(
                opener.open(&bad, NOW).unwrap_err(),
                OpenError::DecryptionFailed
            );
        }
        assert!(opener.open(&req, NOW).is_ok());
    }

    #[test]
    fn sealed_to_another_key_fails_decryption() {
        let (opener, _) = setup();
        let (_, other_public) = agent_key();
        let req = seal(&other_public, "t", &reset());
        assert_eq!(
            opener.open(&req, NOW).unwrap_err(),
            OpenError::DecryptionFailed
        );
    }

    #[test]
    fn unsupported_version_and_malformed_fields_are_refused() {
        let (opener, public) = setup();
        let req = seal(&public, "t", &reset());
        let mut v2 = req.clone();
        v2.version = 2;
        assert_eq!(
            opener.open(&v2, NOW).unwrap_err(),
            OpenError::UnsupportedVersion(2)
        );
        let mut bad_enc = req.clone();
        bad_enc.encapsulated_key = "!!".into();
        let mut short_enc = req.clone();
        short_enc.encapsulated_key = B64.encode([1u8; 16]);
        let mut bad_ct = req.clone();
        bad_ct.ciphertext = "not base64".into();
        let mut bad_id = req.clone();
        bad_id.tracking_id = "a\nb".into();
        for bad in [bad_enc, short_enc, bad_ct, bad_id] {
            assert!(matches!(
                opener.open(&bad, NOW),
                Err(OpenError::Malformed(_))
            ));
        }
    }

    #[test]
    fn the_replay_guard_is_bounded_and_prunes_expired_ids() {
        let (opener, _) = setup();
        for i in 0..MAX_REMEMBERED {
            opener.remember(&format!("t{i}"), NOW, NOW).unwrap();
        }
        assert_eq!(
            opener.remember("one-more", NOW + 10, NOW),
            Err(OpenError::ReplayGuardFull)
        );
        // Once those expire they are pruned and new ids fit again.
        opener.remember("later", NOW + 20, NOW + 1).unwrap();
        assert_eq!(opener.remembered(), 1);
    }

    #[test]
    fn nothing_shows_the_password() {
        let (opener, public) = setup();
        let op = WritebackOperation::Change {
            anchor: "a".into(),
            old_password: MARKER.into(),
            new_password: MARKER.into(),
        };
        let req = seal(&public, "t", &op);
        assert!(!serde_json::to_string(&req).unwrap().contains(MARKER));
        assert!(!format!("{req:?}").contains(MARKER));
        assert!(!format!("{op:?}").contains(MARKER));
        let opened = opener.open(&req, NOW).unwrap();
        assert!(!format!("{opened:?} {:?}", *opened).contains(MARKER));
        assert!(!format!("{opener:?}").contains(MARKER));
        let mut wiped = opened;
        wiped.zeroize();
        assert_eq!(
            **wiped,
            WritebackOperation::Change {
                anchor: String::new(),
                old_password: String::new(),
                new_password: String::new(),
            }
        );
    }
}
