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

/// A TCP forwarder on loopback in front of several servers, as a load balancer with health
/// checks would be: each new connection goes to the first target that accepts it, so once a
/// server dies its clients' retries reach the next. It can also lose a server's answers on
/// purpose: after [`Failover::lose_answers_after`]'s pattern was forwarded to the first target,
/// nothing that target sends comes through any more (the request ran there; its answer is
/// lost), which together with a kill of that server is a crash in the middle of a request.
pub struct Failover {
    /// The loopback port to connect to.
    pub port: u16,
    pattern: Arc<Mutex<Option<Vec<u8>>>>,
    lost: Arc<std::sync::atomic::AtomicBool>,
    accept: JoinHandle<()>,
}

impl Failover {
    /// Forwards `127.0.0.1:<new port>` to the first of `127.0.0.1:targets` that accepts.
    pub async fn start(targets: Vec<u16>) -> std::io::Result<Failover> {
        use std::sync::atomic::{AtomicBool, Ordering};
        use tokio::io::{AsyncReadExt, AsyncWriteExt};

        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let port = listener.local_addr()?.port();
        let pattern: Arc<Mutex<Option<Vec<u8>>>> = Arc::new(Mutex::new(None));
        let lost = Arc::new(AtomicBool::new(false));
        let (p, l) = (pattern.clone(), lost.clone());
        let accept = tokio::spawn(async move {
            while let Ok((inbound, _)) = listener.accept().await {
                let (targets, pattern, lost) = (targets.clone(), p.clone(), l.clone());
                tokio::spawn(async move {
                    let mut upstream = None;
                    for (i, t) in targets.iter().enumerate() {
                        if let Ok(s) = tokio::net::TcpStream::connect(("127.0.0.1", *t)).await {
                            upstream = Some((i, s));
                            break;
                        }
                    }
                    let Some((index, outbound)) = upstream else {
                        return;
                    };
                    let (mut in_r, mut in_w) = inbound.into_split();
                    let (mut out_r, mut out_w) = outbound.into_split();
                    let watch = (index == 0).then(|| (pattern.clone(), lost.clone()));
                    let requests = async move {
                        let mut buf = vec![0u8; 16 * 1024];
                        loop {
                            let n = match in_r.read(&mut buf).await {
                                Ok(0) | Err(_) => break,
                                Ok(n) => n,
                            };
                            if out_w.write_all(&buf[..n]).await.is_err() {
                                break;
                            }
                            if let Some((pattern, lost)) = &watch {
                                let hit = pattern
                                    .lock()
                                    .unwrap_or_else(|p| p.into_inner())
                                    .as_ref()
                                    .is_some_and(|p| buf[..n].windows(p.len()).any(|w| w == p));
                                if hit {
                                    lost.store(true, Ordering::SeqCst);
                                }
                            }
                        }
                    };
                    let first = index == 0;
                    let answers = async move {
                        let mut buf = vec![0u8; 16 * 1024];
                        loop {
                            let n = match out_r.read(&mut buf).await {
                                Ok(0) | Err(_) => break,
                                Ok(n) => n,
                            };
                            if first && lost.load(Ordering::SeqCst) {
                                continue;
                            }
                            if in_w.write_all(&buf[..n]).await.is_err() {
                                break;
                            }
                        }
                    };
                    // Either side ending ends the connection (as a server's death does).
                    tokio::select! {
                        _ = requests => {}
                        _ = answers => {}
                    }
                });
            }
        });
        Ok(Failover {
            port,
            pattern,
            lost,
            accept,
        })
    }

    /// From the first forwarded request to the first target containing `pattern` (e.g.
    /// `POST /api/v1/agent/sync/batches`), that target's answers are lost.
    pub fn lose_answers_after(&self, pattern: &str) {
        *self.pattern.lock().unwrap_or_else(|p| p.into_inner()) = Some(pattern.as_bytes().to_vec());
    }

    /// Whether answers are being lost (the pattern went through).
    pub fn losing(&self) -> bool {
        self.lost.load(std::sync::atomic::Ordering::SeqCst)
    }
}

impl Drop for Failover {
    fn drop(&mut self) {
        self.accept.abort();
    }
}
