//! The agent's outbound WebSocket for what the cloud pushes (`proto::sync::AGENT_WS_PATH`): the
//! upgrade request is signed like every agent request (GET, empty body). [`listen`] keeps the
//! socket open, reconnecting with capped exponential backoff (1 s → 60 s), and forwards
//! `SyncNow` and `Writeback` to the service loop (a writeback request is never dropped). A socket error never stops the agent: it becomes the event
//! `agent.push.disconnected`.

use std::time::Duration;

use futures_util::StreamExt;
use proto::sync::{AgentPush, AGENT_WS_PATH};
use serde_json::json;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::events::EventLog;
use crate::link::{Link, LinkError};

/// An open push socket.
pub type PushSocket = WebSocketStream<MaybeTlsStream<TcpStream>>;

const FIRST_BACKOFF: Duration = Duration::from_secs(1);
const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// The push socket URL for the cloud at `base` (`http` → `ws`, `https` → `wss`).
pub fn ws_url(base: &str) -> Result<String, LinkError> {
    let base = base.trim_end_matches('/');
    let rest = if let Some(r) = base.strip_prefix("https://") {
        format!("wss://{r}")
    } else if let Some(r) = base.strip_prefix("http://") {
        format!("ws://{r}")
    } else {
        return Err(LinkError::Protocol(format!(
            "the cloud URL {base} must start with https:// or http://"
        )));
    };
    Ok(format!("{rest}{AGENT_WS_PATH}"))
}

/// Opens the signed push socket.
pub async fn connect(link: &Link) -> Result<PushSocket, LinkError> {
    let url = ws_url(link.base())?;
    let mut req = url
        .as_str()
        .into_client_request()
        .map_err(|e| LinkError::Protocol(e.to_string()))?;
    for (k, v) in link.sign(&reqwest::Method::GET, AGENT_WS_PATH, b"") {
        let v = HeaderValue::from_str(&v).map_err(|e| LinkError::Protocol(e.to_string()))?;
        req.headers_mut().insert(k, v);
    }
    // Nagle off: pushes and their acknowledgements are small and latency-bound.
    let connecting = tokio_tungstenite::connect_async_with_config(req, None, true);
    match tokio::time::timeout(Duration::from_secs(30), connecting).await {
        Err(_) => Err(LinkError::Unreachable {
            url: link.base().to_string(),
            reason: "the WebSocket handshake timed out".into(),
        }),
        Ok(Ok((socket, _))) => Ok(socket),
        Ok(Err(WsError::Http(resp))) => {
            let status = resp.status().as_u16();
            let text = resp
                .body()
                .as_deref()
                .map(|b| String::from_utf8_lossy(b).into_owned())
                .unwrap_or_default();
            let v: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
            let message = v["error"]["message"]
                .as_str()
                .map(String::from)
                .unwrap_or_else(|| text.chars().take(200).collect());
            Err(match status {
                403 if message.to_ascii_lowercase().contains("revoked") => LinkError::Revoked,
                401 => LinkError::Unauthorized { message },
                s if s >= 500 => LinkError::Server { status: s, message },
                s => LinkError::Refused {
                    status: s,
                    code: v["error"]["code"].as_str().unwrap_or("").to_string(),
                    message,
                },
            })
        }
        Ok(Err(e)) => Err(LinkError::Unreachable {
            url: link.base().to_string(),
            reason: e.to_string(),
        }),
    }
}

/// With no message (the cloud pings every 30 s) for this long, the socket is taken as dead.
const SILENCE_LIMIT: Duration = Duration::from_secs(90);

/// Reads pushes from an open socket until it closes or stays silent past [`SILENCE_LIMIT`]:
/// `SyncNow` and `Writeback` go to `out`, pings are ignored. Returns why it stopped.
pub async fn read(socket: &mut PushSocket, out: &tokio::sync::mpsc::Sender<AgentPush>) -> String {
    loop {
        let next = tokio::select! {
            next = tokio::time::timeout(SILENCE_LIMIT, socket.next()) => next,
            _ = out.closed() => return "the agent is stopping".into(),
        };
        let msg = match next {
            Err(_) => {
                return format!(
                    "nothing received for {}s, not even a ping",
                    SILENCE_LIMIT.as_secs()
                )
            }
            Ok(None) => return "the connection ended".into(),
            Ok(Some(msg)) => msg,
        };
        match msg {
            Ok(Message::Text(text)) => match serde_json::from_str::<AgentPush>(&text) {
                Ok(AgentPush::Ping) => {}
                Ok(push @ AgentPush::Writeback { .. }) => {
                    // Each one is a person waiting: wait for room rather than drop it.
                    if out.send(push).await.is_err() {
                        return "the agent is stopping".into();
                    }
                }
                Ok(push) => {
                    // A full queue already holds a request to sync: this one adds nothing.
                    let _ = out.try_send(push);
                }
                Err(e) => tracing::warn!(error = %e, "unknown push message ignored"),
            },
            Ok(Message::Close(_)) => return "the cloud closed the socket".into(),
            Ok(_) => {}
            Err(e) => return e.to_string(),
        }
    }
}

/// Keeps the push socket open forever, forwarding pushes to `out`; stops only when `out` is
/// closed (the service loop ended).
pub async fn listen(link: Link, events: EventLog, out: tokio::sync::mpsc::Sender<AgentPush>) {
    let mut backoff = FIRST_BACKOFF;
    loop {
        let reason = match connect(&link).await {
            Ok(mut socket) => {
                backoff = FIRST_BACKOFF;
                tracing::info!("push socket connected");
                read(&mut socket, &out).await
            }
            Err(e) => e.to_string(),
        };
        if out.is_closed() {
            return;
        }
        events.warn(
            "agent.push.disconnected",
            format!(
                "the push socket to the cloud is down ({reason}); reconnecting in {}s",
                backoff.as_secs()
            ),
            json!({ "retryInSecs": backoff.as_secs() }),
        );
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            _ = out.closed() => return,
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_socket_url_follows_the_cloud_scheme() {
        assert_eq!(
            ws_url("https://cloud.example/").unwrap(),
            "wss://cloud.example/api/v1/agent/ws"
        );
        assert_eq!(
            ws_url("http://127.0.0.1:8080").unwrap(),
            "ws://127.0.0.1:8080/api/v1/agent/ws"
        );
        assert!(ws_url("ftp://x").is_err());
    }

    #[tokio::test]
    async fn a_dropped_socket_is_an_event_and_is_reconnected() {
        use futures_util::SinkExt;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move {
            // The first connection is dropped at once; the second gets a push.
            let (tcp, _) = listener.accept().await.unwrap();
            let ws = tokio_tungstenite::accept_async(tcp).await.unwrap();
            drop(ws);
            let (tcp, _) = listener.accept().await.unwrap();
            let mut ws = tokio_tungstenite::accept_async(tcp).await.unwrap();
            let push = serde_json::to_string(&AgentPush::SyncNow { full: true }).unwrap();
            ws.send(Message::Text(push.into())).await.unwrap();
            std::future::pending::<()>().await;
        });
        let dir = tempfile::tempdir().unwrap();
        let events = EventLog::open(dir.path());
        let key = ed25519_dalek::SigningKey::from_bytes(&[3u8; 32]);
        let link = Link::new(&base, "agent-1", key).unwrap();
        let (tx, mut rx) = tokio::sync::mpsc::channel(4);
        let task = tokio::spawn(listen(link, events.clone(), tx));
        let push = tokio::time::timeout(Duration::from_secs(20), rx.recv())
            .await
            .expect("a push after reconnecting");
        assert_eq!(push, Some(AgentPush::SyncNow { full: true }));
        let logged = events.read(None).unwrap();
        assert!(
            logged.iter().any(|e| e.code == "agent.push.disconnected"),
            "{logged:?}"
        );
        drop(rx);
        tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .expect("the listener stops when the service loop is gone")
            .unwrap();
    }

    #[test]
    fn pushes_have_the_documented_wire_form() {
        assert_eq!(
            serde_json::to_value(AgentPush::SyncNow { full: true }).unwrap(),
            json!({"type": "syncNow", "full": true})
        );
        assert_eq!(
            serde_json::from_value::<AgentPush>(json!({"type": "ping"})).unwrap(),
            AgentPush::Ping
        );
    }
}
