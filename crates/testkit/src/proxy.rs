//! A TCP forwarder on loopback whose open connections a test can cut, as a network failure
//! would (the server stays up; new connections still go through). Needs a Tokio runtime.

use std::sync::{Arc, Mutex};

use tokio::task::JoinHandle;

pub struct CutProxy {
    /// The loopback port to connect to instead of the target's.
    pub port: u16,
    conns: Arc<Mutex<Vec<JoinHandle<()>>>>,
    accept: JoinHandle<()>,
}

impl CutProxy {
    /// Forwards `127.0.0.1:<new port>` to `127.0.0.1:target`.
    pub async fn start(target: u16) -> std::io::Result<CutProxy> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let port = listener.local_addr()?.port();
        let conns = Arc::new(Mutex::new(Vec::new()));
        let held = conns.clone();
        let accept = tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                let task = tokio::spawn(async move {
                    if let Ok(mut outbound) =
                        tokio::net::TcpStream::connect(("127.0.0.1", target)).await
                    {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
                held.lock().unwrap_or_else(|p| p.into_inner()).push(task);
            }
        });
        Ok(CutProxy {
            port,
            conns,
            accept,
        })
    }

    /// Drops every open connection.
    pub fn cut(&self) {
        for t in self
            .conns
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .drain(..)
        {
            t.abort();
        }
    }
}

impl Drop for CutProxy {
    fn drop(&mut self) {
        self.cut();
        self.accept.abort();
    }
}
