//! A small HTTP/1.1 receiver on loopback that keeps every request it gets and answers each with
//! the status and body set by the test: the stand-in for an SMS or voice gateway. A real TCP
//! server (one thread per connection, `Connection: close`), so the code under test goes through
//! its real HTTP client.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Result};

/// One request received.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    /// The path and query, as sent.
    pub target: String,
    /// Header names lower-cased.
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Request {
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }
}

struct Shared {
    requests: Vec<Request>,
    status: u16,
    body: String,
}

/// The running receiver; it stops accepting when dropped.
pub struct HttpSink {
    addr: SocketAddr,
    shared: Arc<Mutex<Shared>>,
}

impl HttpSink {
    /// Starts on a free loopback port, answering `200` with `{"status":"queued"}`.
    pub fn start() -> Result<HttpSink> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Mutex::new(Shared {
            requests: Vec::new(),
            status: 200,
            body: r#"{"status":"queued"}"#.into(),
        }));
        let weak = Arc::downgrade(&shared);
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Some(shared) = weak.upgrade() else { break };
                let Ok(stream) = stream else { continue };
                std::thread::spawn(move || {
                    let _ = serve(stream, &shared);
                });
            }
        });
        Ok(HttpSink { addr, shared })
    }

    /// `http://127.0.0.1:PORT` followed by `path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// What the next requests are answered with.
    pub fn answer(&self, status: u16, body: &str) {
        let mut s = self.shared.lock().unwrap();
        s.status = status;
        s.body = body.to_string();
    }

    pub fn requests(&self) -> Vec<Request> {
        self.shared.lock().unwrap().requests.clone()
    }

    /// Waits (polling, with a deadline) until request number `seen` (from 0) has arrived.
    pub fn wait_for(&self, seen: usize, timeout: Duration) -> Result<Request> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(r) = self.requests().get(seen) {
                return Ok(r.clone());
            }
            if Instant::now() > deadline {
                bail!("no request number {} within {timeout:?}", seen + 1);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for HttpSink {
    fn drop(&mut self) {
        // Wake the accept loop so it sees the sink is gone.
        let _ = TcpStream::connect(self.addr);
    }
}

fn serve(stream: TcpStream, shared: &Mutex<Shared>) -> Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or_default().to_string();
    let target = parts.next().unwrap_or_default().to_string();
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h)? == 0 || h == "\r\n" || h == "\n" {
            break;
        }
        if let Some((n, v)) = h.split_once(':') {
            headers.push((n.trim().to_ascii_lowercase(), v.trim().to_string()));
        }
    }
    let len: usize = headers
        .iter()
        .find(|(n, _)| n == "content-length")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0u8; len];
    reader.read_exact(&mut body)?;
    let (status, answer) = {
        let mut s = shared.lock().unwrap();
        s.requests.push(Request {
            method,
            target,
            headers,
            body: String::from_utf8_lossy(&body).into_owned(),
        });
        (s.status, s.body.clone())
    };
    let mut out = stream;
    write!(
        out,
        "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{answer}",
        answer.len()
    )?;
    out.flush()?;
    Ok(())
}
