//! Registration and the signed link against the real cloud in-process.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use agent::link::LinkError;
use common::Cloud;
use dirbridge_agent as agent;
use ldap::SecretString;
use proto::sync::Heartbeat;
use reqwest::Method;

fn mode(p: &std::path::Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

#[tokio::test]
async fn register_keeps_keys_private_and_never_writes_the_token() {
    let cloud = Cloud::start().await;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("agent");
    let token = cloud.registration_token().await;
    let config = agent::identity::register(
        &data,
        &cloud.base,
        &SecretString::from(token.clone()),
        "host1",
    )
    .await
    .unwrap();
    assert!(
        config.domains.iter().any(|d| d == "dirbridge.test"),
        "{config:?}"
    );
    assert_eq!(mode(&data.join("keys")), 0o700);
    assert_eq!(mode(&data.join("keys/signing.key")), 0o600);
    assert_eq!(mode(&data.join("keys/sealing.key")), 0o600);
    for entry in walk(&data) {
        let bytes = std::fs::read(&entry).unwrap();
        assert!(
            !String::from_utf8_lossy(&bytes).contains(&token),
            "the token is in {}",
            entry.display()
        );
    }
    // Signed requests work; the agent shows up for admins.
    let id = agent::identity::load(&data).unwrap();
    let link = id.link().unwrap();
    link.heartbeat(&Heartbeat {
        version: "t".into(),
        status: Some("idle".into()),
    })
    .await
    .unwrap();
    let settings = link.config().await.unwrap();
    assert!(settings.deletion_threshold > 0);
    let agents = cloud.admin(Method::GET, "/api/v1/agents", None).await.ok();
    assert!(agents.to_string().contains(&config.agent_id));

    // The token is single-use, and a registered directory is not registered again.
    let err =
        agent::identity::register(&data, &cloud.base, &SecretString::from(token.clone()), "x")
            .await
            .unwrap_err();
    assert!(
        matches!(err, agent::AgentError::AlreadyRegistered(_)),
        "{err}"
    );
    let err = agent::identity::register(
        &dir.path().join("other"),
        &cloud.base,
        &SecretString::from(token),
        "x",
    )
    .await
    .unwrap_err();
    // A used token is named as such, never as a signature or clock problem.
    assert!(
        matches!(
            err,
            agent::AgentError::Cloud(LinkError::TokenRefused { .. })
        ),
        "{err}"
    );
    assert!(err.to_string().contains("already used"), "{err}");

    // Revoked: a clear, typed error.
    cloud
        .admin(
            Method::DELETE,
            &format!("/api/v1/agents/{}", config.agent_id),
            None,
        )
        .await
        .ok();
    let err = link.config().await.unwrap_err();
    assert!(matches!(err, LinkError::Revoked), "{err}");
    assert!(err.to_string().contains("re-register"));
}

#[tokio::test]
async fn an_unreachable_cloud_is_retried_then_named() {
    let dir = tempfile::tempdir().unwrap();
    let key = ed25519_dalek::SigningKey::from_bytes(&[7u8; 32]);
    // A port nothing listens on.
    let sock = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", sock.local_addr().unwrap());
    drop(sock);
    let link = agent::link::Link::new(&url, "a1", key)
        .unwrap()
        .with_retries(3, Duration::from_millis(10));
    let err = link.config().await.unwrap_err();
    assert!(matches!(err, LinkError::Unreachable { .. }), "{err}");
    assert!(
        err.to_string()
            .contains(&format!("cloud unreachable at {url}")),
        "{err}"
    );
    drop(dir);
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}
