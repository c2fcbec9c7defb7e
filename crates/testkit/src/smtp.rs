//! A real SMTP server for tests: Debian's `python3-aiosmtpd` (`python3 -m aiosmtpd`) on a free
//! loopback port, storing every message it accepts in a Maildir that tests read back.
//!
//! ```no_run
//! let smtp = testkit::smtp::Smtp::start().unwrap();
//! // point the code under test at smtp.host() / smtp.port(), then:
//! let mail = smtp.wait_for("ada@contoso.com", 0, std::time::Duration::from_secs(10)).unwrap();
//! assert!(mail.body.contains("code"));
//! ```

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use base64::Engine as _;

use crate::process::{self, ServerProcess};

/// One message the server received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mail {
    /// Envelope recipients (`RCPT TO`), lower-cased.
    pub recipients: Vec<String>,
    /// Envelope sender (`MAIL FROM`).
    pub sender: String,
    pub subject: String,
    /// The text body, transfer encoding (quoted-printable, base64) undone.
    pub body: String,
    /// The message as stored.
    pub raw: String,
}

impl Mail {
    /// The first run of exactly `len` ASCII digits in the body: the one-time code of a
    /// verification mail.
    pub fn code(&self, len: usize) -> Option<String> {
        let chars: Vec<char> = self.body.chars().collect();
        chars
            .windows(len)
            .enumerate()
            .find(|(i, w)| {
                w.iter().all(char::is_ascii_digit)
                    && !(*i > 0 && chars[i - 1].is_ascii_digit())
                    && !chars.get(i + len).is_some_and(char::is_ascii_digit)
            })
            .map(|(_, w)| w.iter().collect())
    }
}

/// A running aiosmtpd. Stopped (and its Maildir removed) when dropped.
pub struct Smtp {
    port: u16,
    maildir: PathBuf,
    process: ServerProcess,
    _dir: tempfile::TempDir,
}

/// The Debian Python that has `aiosmtpd` (not a pyenv or venv shim that may lack it).
fn python() -> Result<PathBuf> {
    let candidates = [
        PathBuf::from("/usr/bin/python3"),
        process::find_program("python3")?,
    ];
    for p in candidates {
        let ok = p.is_file()
            && Command::new(&p)
                .args(["-c", "import aiosmtpd"])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .map(|s| s.success())
                .unwrap_or(false);
        if ok {
            return Ok(p);
        }
    }
    bail!("the SMTP test server needs aiosmtpd: install the Debian package python3-aiosmtpd (scripts/deps.sh does)")
}

impl Smtp {
    /// Starts a server on a free port of 127.0.0.1 and waits (with a deadline) until it
    /// accepts connections.
    pub fn start() -> Result<Smtp> {
        let python = python()?;
        let dir = process::instance_dir("smtp")?;
        let maildir = dir.path().join("Maildir");
        for sub in ["cur", "new", "tmp"] {
            std::fs::create_dir_all(maildir.join(sub))
                .with_context(|| format!("creating {}", maildir.display()))?;
        }
        let log = std::fs::File::create(dir.path().join("aiosmtpd.log"))?;
        let ip = Ipv4Addr::LOCALHOST;
        let port = process::free_port(ip)?;
        let mut cmd = Command::new(python);
        cmd.args(["-m", "aiosmtpd", "-n", "-l"])
            .arg(format!("{ip}:{port}"))
            .args(["-c", "aiosmtpd.handlers.Mailbox"])
            .arg(&maildir)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        let child = process::spawn_server(cmd).context("starting aiosmtpd")?;
        let mut process = ServerProcess::new("aiosmtpd", child);
        let addr = SocketAddr::from((ip, port));
        let log_path = dir.path().join("aiosmtpd.log");
        process::wait_until(
            "aiosmtpd to accept connections",
            Duration::from_secs(20),
            || {
                process
                    .ensure_running()
                    .with_context(|| std::fs::read_to_string(&log_path).unwrap_or_default())?;
                Ok(process::port_open(addr))
            },
        )?;
        Ok(Smtp {
            port,
            maildir,
            process,
            _dir: dir,
        })
    }

    pub fn host(&self) -> &'static str {
        "127.0.0.1"
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The Maildir the messages are stored in.
    pub fn maildir(&self) -> &Path {
        &self.maildir
    }

    pub fn pid(&self) -> u32 {
        self.process.pid()
    }

    /// Every message received so far, oldest first.
    pub fn messages(&self) -> Result<Vec<Mail>> {
        let mut files: Vec<(std::time::SystemTime, String, PathBuf)> = Vec::new();
        for sub in ["new", "cur"] {
            for entry in std::fs::read_dir(self.maildir.join(sub))? {
                let entry = entry?;
                let modified = entry.metadata()?.modified()?;
                files.push((
                    modified,
                    entry.file_name().to_string_lossy().into_owned(),
                    entry.path(),
                ));
            }
        }
        files.sort();
        files
            .into_iter()
            .map(|(_, _, path)| {
                let raw = std::fs::read_to_string(&path)
                    .with_context(|| format!("reading {}", path.display()))?;
                Ok(parse(&raw))
            })
            .collect()
    }

    /// Messages for `recipient` (case-insensitive), oldest first.
    pub fn messages_to(&self, recipient: &str) -> Result<Vec<Mail>> {
        let want = recipient.to_lowercase();
        Ok(self
            .messages()?
            .into_iter()
            .filter(|m| m.recipients.contains(&want))
            .collect())
    }

    /// Waits until `recipient` has more than `seen` messages and returns message number `seen`
    /// (0-based), polling until `timeout`.
    pub fn wait_for(&self, recipient: &str, seen: usize, timeout: Duration) -> Result<Mail> {
        let mut found = None;
        process::wait_until(
            &format!("message {} for {recipient}", seen + 1),
            timeout,
            || {
                let list = self.messages_to(recipient)?;
                found = list.into_iter().nth(seen);
                Ok(found.is_some())
            },
        )?;
        found.context("message vanished")
    }
}

/// Splits a stored message into headers and body and undoes the transfer encoding.
fn parse(raw: &str) -> Mail {
    let normalised = raw.replace("\r\n", "\n");
    let (head, body) = normalised
        .split_once("\n\n")
        .unwrap_or((normalised.as_str(), ""));
    // Unfold continuation lines.
    let mut headers: Vec<(String, String)> = Vec::new();
    for line in head.lines() {
        if line.starts_with([' ', '\t']) {
            if let Some(last) = headers.last_mut() {
                last.1.push(' ');
                last.1.push_str(line.trim());
            }
        } else if let Some((k, v)) = line.split_once(':') {
            headers.push((k.trim().to_lowercase(), v.trim().to_string()));
        }
    }
    let header = |name: &str| {
        headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    let recipients = header("x-rcptto")
        .split(',')
        .map(|r| r.trim().to_lowercase())
        .filter(|r| !r.is_empty())
        .collect();
    let encoding = header("content-transfer-encoding").to_lowercase();
    let body = match encoding.as_str() {
        "base64" => base64::engine::general_purpose::STANDARD
            .decode(body.split_whitespace().collect::<String>())
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_else(|_| body.to_string()),
        "quoted-printable" => decode_qp(body),
        _ => body.to_string(),
    };
    Mail {
        recipients,
        sender: header("x-mailfrom"),
        subject: header("subject"),
        body,
        raw: raw.to_string(),
    }
}

fn decode_qp(s: &str) -> String {
    let s = s.replace("=\n", "");
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'=' && i + 2 < bytes.len() {
            let hex = |b: u8| (b as char).to_digit(16);
            if let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_code_is_a_whole_run_of_digits_of_its_length() {
        let mail = |body: &str| parse(&format!("Subject: s\r\n\r\n{body}"));
        assert_eq!(
            mail("Your code: 12345678.").code(8).as_deref(),
            Some("12345678")
        );
        assert_eq!(
            mail("ref 1234567890 then 87654321").code(8).as_deref(),
            Some("87654321")
        );
        assert_eq!(mail("no code 1234567").code(8), None);
    }

    #[test]
    fn parses_headers_and_undoes_encodings() {
        let raw = "X-Peer: ('127.0.0.1', 1)\r\nX-MailFrom: a@b\r\nX-RcptTo: Ada@Contoso.com\r\nSubject: Your\r\n code\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\nCode =3D 12345678=\r\n!\r\n";
        let m = parse(raw);
        assert_eq!(m.recipients, vec!["ada@contoso.com"]);
        assert_eq!(m.sender, "a@b");
        assert_eq!(m.subject, "Your code");
        assert_eq!(m.body.trim(), "Code = 12345678!");
        let b64 = "X-RcptTo: x@y\nContent-Transfer-Encoding: base64\n\naGVsbG8=\n";
        assert_eq!(parse(b64).body, "hello");
    }

    #[test]
    fn a_message_sent_over_smtp_lands_in_the_maildir() {
        use std::io::{BufRead, BufReader, Write};
        let smtp = Smtp::start().unwrap();
        assert!(smtp.messages().unwrap().is_empty());
        let stream = std::net::TcpStream::connect((smtp.host(), smtp.port())).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let mut reader = BufReader::new(stream.try_clone().unwrap());
        let mut writer = stream;
        let mut expect = |code: &str| loop {
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            assert!(line.starts_with(code), "expected {code}, got {line:?}");
            if line.as_bytes().get(3) != Some(&b'-') {
                break;
            }
        };
        expect("220");
        for (cmd, code) in [
            ("EHLO test\r\n", "250"),
            ("MAIL FROM:<from@test>\r\n", "250"),
            ("RCPT TO:<Ada@Contoso.test>\r\n", "250"),
            ("DATA\r\n", "354"),
            ("Subject: hello\r\n\r\nbody 12345678\r\n.\r\n", "250"),
            ("QUIT\r\n", "221"),
        ] {
            writer.write_all(cmd.as_bytes()).unwrap();
            expect(code);
        }
        let m = smtp
            .wait_for("ada@contoso.test", 0, Duration::from_secs(10))
            .unwrap();
        assert_eq!(m.subject, "hello");
        assert_eq!(m.sender, "from@test");
        assert!(m.body.contains("12345678"));
        assert!(smtp.messages_to("bob@contoso.test").unwrap().is_empty());
    }
}
