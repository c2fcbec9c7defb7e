//! Password writeback, cloud side: sealing a [`WritebackOperation`] to one agent.
//!
//! HPKE (RFC 9180), mode base, DHKEM(X25519, HKDF-SHA256) / HKDF-SHA256 / ChaCha20-Poly1305,
//! to the agent's X25519 sealing key (registered with the agent). The associated data is
//! [`proto::writeback::associated_data`] over the version, tenant, agent, tracking id and expiry,
//! so the agent can trust those header fields once the request opens. The plaintext JSON lives
//! only in a zeroizing buffer.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use hpke::{Deserializable as _, OpModeS, Serializable as _};
use proto::writeback::{associated_data, is_header_id, SealedRequest, WritebackOperation};
use proto::Epoch;
use zeroize::Zeroizing;

use crate::Refusal;

/// The HPKE suite of writeback requests; the agent opens with the same three.
pub type Kem = hpke::kem::X25519HkdfSha256;
pub type Kdf = hpke::kdf::HkdfSha256;
pub type Aead = hpke::aead::ChaCha20Poly1305;

/// Room for the serialized operation, so the zeroizing buffer never reallocates (which would
/// leave an unwiped copy behind) for any realistic password.
const PLAINTEXT_CAPACITY: usize = 2048;

/// Parses an agent's base64 X25519 sealing public key (as registered).
pub fn parse_public_key(
    agent_public_key_b64: &str,
) -> Result<<Kem as hpke::Kem>::PublicKey, Refusal> {
    let bad = || {
        Refusal::validation(
            "the agent's sealing key is not a base64 X25519 public key; register the agent again",
        )
    };
    let bytes = B64.decode(agent_public_key_b64.trim()).map_err(|_| bad())?;
    if bytes.len() != 32 {
        return Err(bad());
    }
    <Kem as hpke::Kem>::PublicKey::from_bytes(&bytes).map_err(|_| bad())
}

/// Seals `op` to the agent whose sealing public key is `agent_public_key_b64`. The tenant, agent,
/// tracking id and expiry are sent in clear and bound as associated data.
pub fn seal_request(
    agent_public_key_b64: &str,
    tenant_id: &str,
    agent_id: &str,
    tracking_id: &str,
    expires_at: Epoch,
    op: &WritebackOperation,
) -> Result<SealedRequest, Refusal> {
    for (what, id) in [
        ("tenant id", tenant_id),
        ("agent id", agent_id),
        ("tracking id", tracking_id),
    ] {
        if !is_header_id(id) {
            return Err(Refusal::validation(format!(
                "the writeback {what} must be 1 to 256 bytes with no control characters"
            )));
        }
    }
    let public_key = parse_public_key(agent_public_key_b64)?;
    let version = proto::writeback::VERSION;
    let aad = associated_data(version, tenant_id, agent_id, tracking_id, expires_at);

    let mut plaintext = Zeroizing::new(Vec::with_capacity(PLAINTEXT_CAPACITY));
    serde_json::to_writer(&mut *plaintext, op)
        .map_err(|_| Refusal::new(proto::ErrorCode::Internal, "could not encode the request"))?;

    let (encapsulated, ciphertext) = hpke::single_shot_seal::<Aead, Kdf, Kem>(
        &OpModeS::Base,
        &public_key,
        proto::writeback::INFO,
        &plaintext,
        aad.as_bytes(),
    )
    .map_err(|_| {
        Refusal::validation(
            "the request could not be sealed to the agent's key; register the agent again",
        )
    })?;

    Ok(SealedRequest {
        version,
        tenant_id: tenant_id.to_string(),
        agent_id: agent_id.to_string(),
        tracking_id: tracking_id.to_string(),
        expires_at,
        encapsulated_key: B64.encode(encapsulated.to_bytes()),
        ciphertext: B64.encode(ciphertext),
    })
}

// ---------------------------------------------------------------- availability

/// Whether password writeback can work for a tenant, checked in the order an administrator
/// fixes it: the premium SKU with a usable (enabled or warning) subscription at `now`, the
/// policy's writeback switch, then at least one agent with writeback enabled (not revoked).
/// The refusal says what to run next. Pass-through sign-in does not ask this: checking a
/// password writes nothing.
pub fn availability(
    subscriptions: &[proto::Subscription],
    policy_writeback_enabled: bool,
    enabled_agents: usize,
    now: Epoch,
) -> Result<(), Refusal> {
    if crate::licensing::available_units(crate::licensing::PREMIUM_SKU, subscriptions, now) == 0 {
        return Err(premium_refusal());
    }
    if !policy_writeback_enabled {
        return Err(Refusal::conflict(
            "Password writeback is turned off in the password reset policy. Turn it on with `dirbridge policy set --writeback true`.",
        ));
    }
    if enabled_agents == 0 {
        return Err(Refusal::conflict(
            "No agent has password writeback enabled. On an agent host, run `dirbridge agent writeback enable --data-dir DIR`.",
        ));
    }
    Ok(())
}

/// The refusal when the premium SKU is missing (`licenseUnavailable`).
pub fn premium_refusal() -> Refusal {
    Refusal::license_unavailable(format!(
        "Password writeback needs the {} SKU with an active (enabled or warning) subscription. Start a trial with `dirbridge licenses trial` or buy one with `dirbridge licenses purchase`.",
        crate::licensing::PREMIUM_SKU
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use hpke::{Kem as _, OpModeR};

    const MARKER: &str = "Marker-Pa55word-7f3c";

    fn op() -> WritebackOperation {
        WritebackOperation::Reset {
            anchor: "AQIDBA==".into(),
            new_password: MARKER.into(),
        }
    }

    fn keypair() -> (<Kem as hpke::Kem>::PrivateKey, String) {
        let (sk, pk) = Kem::gen_keypair();
        (sk, B64.encode(pk.to_bytes()))
    }

    fn open(sk: &<Kem as hpke::Kem>::PrivateKey, r: &SealedRequest) -> Option<Vec<u8>> {
        let enc =
            <Kem as hpke::Kem>::EncappedKey::from_bytes(&B64.decode(&r.encapsulated_key).unwrap())
                .unwrap();
        let aad = associated_data(
            r.version,
            &r.tenant_id,
            &r.agent_id,
            &r.tracking_id,
            r.expires_at,
        );
        hpke::single_shot_open::<Aead, Kdf, Kem>(
            &OpModeR::Base,
            sk,
            &enc,
            proto::writeback::INFO,
            &B64.decode(&r.ciphertext).unwrap(),
            aad.as_bytes(),
        )
        .ok()
    }

    #[test]
    fn sealed_request_opens_with_the_private_key_and_hides_the_password() {
        let (sk, pk) = keypair();
        let r = seal_request(&pk, "t1", "a1", "trk-1", 1_000, &op()).unwrap();
        assert_eq!(r.version, 1);
        assert_eq!(
            (
                r.tenant_id.as_str(),
                r.agent_id.as_str(),
                r.tracking_id.as_str()
            ),
            ("t1", "a1", "trk-1")
        );
        let json = serde_json::to_string(&r).unwrap();
        assert!(!json.contains(MARKER));
        assert!(!format!("{r:?}").contains(MARKER));
        let plain = open(&sk, &r).unwrap();
        let back: WritebackOperation = serde_json::from_slice(&plain).unwrap();
        assert_eq!(back, op());
    }

    #[test]
    fn every_header_field_is_bound() {
        let (sk, pk) = keypair();
        let r = seal_request(&pk, "t1", "a1", "trk-1", 1_000, &op()).unwrap();
        let mut variants = vec![r.clone(); 4];
        variants[0].tenant_id = "t2".into();
        variants[1].agent_id = "a2".into();
        variants[2].tracking_id = "trk-2".into();
        variants[3].expires_at = 2_000;
        for v in variants {
            assert!(open(&sk, &v).is_none(), "{v:?}");
        }
    }

    #[test]
    fn two_seals_of_the_same_operation_differ() {
        let (_, pk) = keypair();
        let a = seal_request(&pk, "t", "a", "k", 1, &op()).unwrap();
        let b = seal_request(&pk, "t", "a", "k", 1, &op()).unwrap();
        assert_ne!(a.encapsulated_key, b.encapsulated_key);
        assert_ne!(a.ciphertext, b.ciphertext);
    }

    #[test]
    fn bad_keys_and_ids_are_refused_without_secrets_in_the_message() {
        let (_, pk) = keypair();
        for key in ["", "not base64!", &B64.encode([7u8; 31])] {
            let e = seal_request(key, "t", "a", "k", 1, &op()).unwrap_err();
            assert_eq!(e.code, proto::ErrorCode::Validation);
            assert!(!e.message.contains(MARKER));
        }
        for (t, a, k) in [("", "a", "k"), ("t", "a\nx", "k"), ("t", "a", "k\r")] {
            let e = seal_request(&pk, t, a, k, 1, &op()).unwrap_err();
            assert_eq!(e.code, proto::ErrorCode::Validation);
        }
    }

    // ------------------------------------------------------------ availability

    mod availability {
        use super::super::*;
        use crate::clock::{days, Clock, ManualClock};
        use crate::licensing::{self, PREMIUM_SKU};
        use proto::ErrorCode;

        fn premium(clock: &ManualClock) -> Vec<proto::Subscription> {
            vec![licensing::start_trial("t", PREMIUM_SKU, &[], clock.now()).unwrap()]
        }

        #[test]
        fn each_gate_is_checked_in_order_and_says_what_to_do() {
            let clock = ManualClock::new(1_800_000_000);
            let e = availability(&[], true, 1, clock.now()).unwrap_err();
            assert_eq!(e.code, ErrorCode::LicenseUnavailable);
            assert!(
                e.message.contains("dirbridge licenses trial"),
                "{}",
                e.message
            );
            let subs = premium(&clock);
            let e = availability(&subs, false, 1, clock.now()).unwrap_err();
            assert_eq!(e.code, ErrorCode::Conflict);
            assert!(e.message.contains("--writeback true"), "{}", e.message);
            let e = availability(&subs, true, 0, clock.now()).unwrap_err();
            assert_eq!(e.code, ErrorCode::Conflict);
            assert!(
                e.message.contains("agent writeback enable"),
                "{}",
                e.message
            );
            assert_eq!(availability(&subs, true, 1, clock.now()), Ok(()));
            // The SKU comes first, whatever else is missing.
            assert_eq!(
                availability(&[], false, 0, clock.now()).unwrap_err(),
                premium_refusal()
            );
        }

        #[test]
        fn writeback_stops_when_the_trial_is_over() {
            let clock = ManualClock::new(1_800_000_000);
            let subs = premium(&clock);
            assert!(availability(&subs, true, 1, clock.now()).is_ok());
            clock.advance(days(400));
            let e = availability(&subs, true, 1, clock.now()).unwrap_err();
            assert_eq!(e.code, ErrorCode::LicenseUnavailable);
        }
    }
}
