//! Change notification: long-lived searches that tell the caller "something changed below this
//! root", so a delta cycle can run at once instead of waiting for the schedule. The signal
//! carries no data: the delta mechanisms ([`crate::ad`] DirSync, [`crate::openldap`] syncrepl
//! refreshOnly) stay the only source of what changed.
//!
//! * OpenLDAP: one syncrepl search per root in refreshAndPersist mode (RFC 4533), asking for no
//!   attributes. It starts from a cookie fetched just before with a refreshOnly search that
//!   matches nothing, so the refresh phase carries only what changed in between (never the
//!   whole tree, which would also run into slapd's size limits); an entry there is a change.
//!   After the refresh phase ends (a Sync Info message with `refreshDone`), every entry or Sync
//!   Info message is a change. Needs the `syncprov` overlay on the database; without it slapd
//!   answers `unavailableCriticalExtension` and the watcher reports
//!   [`NotifyError::Unsupported`].
//! * Active Directory / Samba AD: one search with the LDAP_SERVER_NOTIFICATION_OID control on
//!   the naming context (subtree scope is only allowed there on Windows), filter
//!   `(objectClass=*)` (the only filter Windows documents; Samba also insists on a presence
//!   filter), no attributes, with the show-deleted control so deletes (tombstones move to
//!   `CN=Deleted Objects`) are seen too. Changes outside the roots are dropped here. Samba
//!   evaluates pending notifications when a write arrives through the same LDAP server process
//!   and otherwise every 5 seconds.
//!
//! Changes to the bound account itself (logon bookkeeping a bind may cause) are ignored, so a
//! delta cycle cannot wake itself up.
//!
//! Each root runs in its own task with its own connection: connect, bind, search, wait; when the
//! connection drops or the server ends the search, it reconnects with exponential backoff and
//! says so ([`WatchEvent::Disconnected`], then [`WatchEvent::Watching`] with `reconnected`), and
//! a periodic root DSE read on the same connection detects a connection that died silently.
//! A refusal of the mechanism itself ends that root's task with [`WatchEvent::Unsupported`]:
//! the caller falls back to polling.
//!
//! OpenLDAP, a root that no longer exists (renamed, moved or deleted): the watcher never runs a
//! syncrepl search on a missing base. Each session first reads the root (a plain base search);
//! the persistent search also matches the root entry itself by its `entryUUID`, so the root's
//! rename or delete ends the session at once, and the periodic liveness read is of the root.
//! Then [`WatchEvent::RootMissing`] is reported and the root is only read again, with a hard
//! backoff ([`WatchOptions::missing_backoff`], 30 s doubling to 15 minutes), until it is back.
//! Seen on slapd 2.5.13 (issue 21): with a persistent search open on an OU that was renamed
//! away and back, and further syncrepl searches on the missing base, slapd hung every later
//! write (a modrdn blocked in syncprov, abandons from closing connections queued behind it).
//! A session that ended soon after it was established does not reset the backoff either, so
//! no connect–search–drop cycle ever runs in a tight loop.

use std::fmt;
use std::time::Duration;

use ldap3::controls::RawControl;
use ldap3::Scope;
use secrecy::SecretString;
use thiserror::Error;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::connection::{ConnectOptions, Connection};
use crate::controls::{self, SyncInfo, SyncMode};
use crate::error::{from_ldap3, from_result, LdapError};

/// AD's change notification control (no value, critical).
pub const NOTIFICATION_OID: &str = "1.2.840.113556.1.4.528";
/// AD's show-deleted control: tombstones are returned too.
pub const SHOW_DELETED_OID: &str = "1.2.840.113556.1.4.417";
/// The result code slapd ends a persistent search with when the consumer must refresh again
/// (e-syncRefreshRequired, RFC 4533).
const SYNC_REFRESH_REQUIRED: u32 = 4096;
/// A filter no entry matches: a refreshOnly search with it only yields the current cookie.
const NOTHING_FILTER: &str =
    "(&(objectClass=organizationalUnit)(!(objectClass=organizationalUnit)))";

/// Which notification mechanism a watcher uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mechanism {
    /// OpenLDAP syncrepl refreshAndPersist (the `syncprov` overlay).
    SyncreplPersist,
    /// AD / Samba AD LDAP_SERVER_NOTIFICATION_OID.
    AdNotification,
}

impl fmt::Display for Mechanism {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Mechanism::SyncreplPersist => write!(f, "syncrepl refreshAndPersist"),
            Mechanism::AdNotification => write!(f, "LDAP change notification"),
        }
    }
}

/// Why a watcher cannot work on this server (permanent: the caller falls back to polling).
#[derive(Debug, Error)]
pub enum NotifyError {
    /// The server does not know the control (OpenLDAP without `syncprov`, a server that is not
    /// AD, …).
    #[error("the directory does not support {mechanism} (the control is unavailable)")]
    Unsupported {
        mechanism: Mechanism,
        diagnostic: String,
    },
    /// The server knows the control but refused this search (rights, limits, scope).
    #[error("the directory refused {mechanism}: {source}")]
    Refused {
        mechanism: Mechanism,
        #[source]
        source: LdapError,
    },
}

impl NotifyError {
    /// What an administrator can do about it.
    pub fn fix(&self) -> &'static str {
        match self {
            NotifyError::Unsupported {
                mechanism: Mechanism::SyncreplPersist,
                ..
            } => "load the syncprov overlay on the database that holds the synced entries (cn=config: an olcOverlay=syncprov entry below the olcDatabase, objectClass olcSyncProvConfig; slapd.conf: `overlay syncprov`)",
            NotifyError::Unsupported {
                mechanism: Mechanism::AdNotification,
                ..
            } => "the server does not offer LDAP change notification (1.2.840.113556.1.4.528); check that the connector's URL points at an Active Directory domain controller",
            NotifyError::Refused {
                mechanism: Mechanism::SyncreplPersist,
                ..
            } => "give the service account read access to the synced entries, entryUUID and entryCSN, and check slapd's limits (olcLimits) for persistent searches",
            NotifyError::Refused {
                mechanism: Mechanism::AdNotification,
                ..
            } => "give the service account List Contents and Read Property on the naming context (Authenticated Users have it by default) and check MaxNotificationPerConn in the Default Query Policy",
        }
    }

    /// The server's own text, for the admin event log.
    pub fn diagnostic(&self) -> Option<&str> {
        match self {
            NotifyError::Unsupported { diagnostic, .. } => Some(diagnostic),
            NotifyError::Refused { source, .. } => source.diagnostic(),
        }
    }
}

/// Exponential backoff between reconnects.
#[derive(Clone, Copy, Debug)]
pub struct Backoff {
    pub min: Duration,
    pub max: Duration,
}

impl Default for Backoff {
    fn default() -> Backoff {
        Backoff {
            min: Duration::from_secs(1),
            max: Duration::from_secs(300),
        }
    }
}

impl Backoff {
    /// The wait after `failures` consecutive failed attempts (1 = the first), with up to 20 %
    /// jitter so many agents do not reconnect in step.
    pub fn delay(&self, failures: u32, jitter: f64) -> Duration {
        let exp = 2u32.saturating_pow(failures.saturating_sub(1).min(20));
        let base = self.min.saturating_mul(exp).min(self.max);
        base.mul_f64(1.0 + 0.2 * jitter.clamp(0.0, 1.0))
            .min(self.max)
    }
}

/// What to watch and how.
#[derive(Clone, Debug)]
pub struct WatchOptions {
    pub connect: ConnectOptions,
    pub bind_dn: String,
    pub password: SecretString,
    pub mechanism: Mechanism,
    /// The synced roots (include OUs, or the base).
    pub roots: Vec<String>,
    /// AD: the naming context the single notification search runs on.
    pub naming_context: String,
    /// OpenLDAP: the sync filter (AD always uses `(objectClass=*)`).
    pub filter: String,
    pub backoff: Backoff,
    /// How often the connection is checked with a read (the root DSE; OpenLDAP: the root).
    pub liveness_interval: Duration,
    /// OpenLDAP: how often a root that no longer exists is read again.
    pub missing_backoff: Backoff,
}

impl WatchOptions {
    pub fn new(
        connect: ConnectOptions,
        bind_dn: impl Into<String>,
        password: SecretString,
        mechanism: Mechanism,
        roots: Vec<String>,
    ) -> WatchOptions {
        let naming_context = roots.first().cloned().unwrap_or_default();
        WatchOptions {
            connect,
            bind_dn: bind_dn.into(),
            password,
            mechanism,
            roots,
            naming_context,
            filter: "(objectClass=*)".into(),
            backoff: Backoff::default(),
            liveness_interval: Duration::from_secs(60),
            missing_backoff: Backoff {
                min: Duration::from_secs(30),
                max: Duration::from_secs(900),
            },
        }
    }
}

/// What a watcher reports.
#[derive(Debug)]
pub enum WatchEvent {
    /// The search on `root` is established (after a reconnect: `reconnected`; changes made
    /// while disconnected were not seen, so treat it as a change too).
    Watching { root: String, reconnected: bool },
    /// Something changed below `root`.
    Changed { root: String },
    /// The connection for `root` failed or dropped; the next attempt is in `retry_in`.
    Disconnected {
        root: String,
        error: LdapError,
        retry_in: Duration,
    },
    /// The server will not notify on `root`; this root is no longer watched.
    Unsupported { root: String, error: NotifyError },
    /// `root` no longer exists (renamed, moved or deleted): it is not watched, only read again
    /// in `retry_in`; once it is back, [`WatchEvent::Watching`] follows with `reconnected`.
    RootMissing { root: String, retry_in: Duration },
}

/// What an administrator can do about a synced root that no longer exists.
pub const ROOT_MISSING_FIX: &str = "if the OU was renamed or moved, add the connector again with its new DN (`dirbridge agent connector add … --include-ou <new DN>`) and restart `dirbridge agent run`; if it comes back, watching resumes by itself";

/// How long a session must have been established for the reconnect backoff to start over.
const STEADY: Duration = Duration::from_secs(60);

/// A running watcher; dropping it stops every search.
pub struct Watcher {
    rx: mpsc::Receiver<WatchEvent>,
    tasks: Vec<JoinHandle<()>>,
}

impl Watcher {
    /// Starts watching (one task per root; on AD one task for the naming context).
    pub fn start(options: WatchOptions) -> Watcher {
        let (tx, rx) = mpsc::channel(64);
        let targets: Vec<String> = match options.mechanism {
            Mechanism::AdNotification => vec![options.naming_context.clone()],
            Mechanism::SyncreplPersist => outermost(&options.roots),
        };
        let tasks = targets
            .into_iter()
            .map(|target| tokio::spawn(watch_root(options.clone(), target, tx.clone())))
            .collect();
        Watcher { rx, tasks }
    }

    /// The next event; None once every root's task has ended.
    pub async fn next(&mut self) -> Option<WatchEvent> {
        self.rx.recv().await
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// The roots with every root that lies below another one left out.
fn outermost(roots: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for r in roots {
        if roots
            .iter()
            .any(|other| other != r && is_below(r, other) && norm_dn(other) != norm_dn(r))
        {
            continue;
        }
        if !out.iter().any(|o| norm_dn(o) == norm_dn(r)) {
            out.push(r.clone());
        }
    }
    out
}

/// A DN in a comparable form: lower case, no spaces around `,` and `=`.
fn norm_dn(dn: &str) -> String {
    let mut out = String::with_capacity(dn.len());
    let mut chars = dn.trim().chars().peekable();
    while let Some(c) = chars.next() {
        if c == ',' || c == '=' {
            while out.ends_with(' ') {
                out.pop();
            }
            out.push(c);
            while chars.peek() == Some(&' ') {
                chars.next();
            }
        } else {
            out.extend(c.to_lowercase());
        }
    }
    out
}

/// `dn` is `root` or below it.
fn is_below(dn: &str, root: &str) -> bool {
    let (dn, root) = (norm_dn(dn), norm_dn(root));
    dn == root || dn.ends_with(&format!(",{root}"))
}

/// Whether a change notified for `dn` matters: below a root (or a tombstone, which AD moves to
/// `CN=Deleted Objects`), and not the bound account itself.
fn relevant(dn: &str, options: &WatchOptions) -> bool {
    if norm_dn(dn) == norm_dn(&options.bind_dn) {
        return false;
    }
    if options.mechanism == Mechanism::SyncreplPersist {
        return true;
    }
    let n = norm_dn(dn);
    n.contains("\\0adel:")
        || n.contains(",cn=deleted objects,")
        || options.roots.iter().any(|r| is_below(dn, r))
}

/// Why one session on a root ended.
enum SessionEnd {
    /// Permanent: report and stop.
    Refused(NotifyError),
    /// Transient: reconnect. `established` says whether the search had been running (the
    /// backoff starts over then).
    Failed { error: LdapError, established: bool },
    /// OpenLDAP: the root does not exist (any more).
    RootMissing,
    /// The caller is gone.
    Closed,
}

async fn watch_root(options: WatchOptions, root: String, tx: mpsc::Sender<WatchEvent>) {
    let mut failures = 0u32;
    let mut missing = 0u32;
    let mut reconnected = false;
    loop {
        let started = tokio::time::Instant::from_std(tenant::clock::monotonic());
        match session(&options, &root, &tx, reconnected).await {
            SessionEnd::Closed => return,
            SessionEnd::RootMissing => {
                missing += 1;
                failures = 0;
                let retry_in = options
                    .missing_backoff
                    .delay(missing, rand::random::<f64>());
                let sent = tx
                    .send(WatchEvent::RootMissing {
                        root: root.clone(),
                        retry_in,
                    })
                    .await;
                if sent.is_err() {
                    return;
                }
                tokio::time::sleep(retry_in).await;
                reconnected = true;
            }
            SessionEnd::Refused(error) => {
                let _ = tx
                    .send(WatchEvent::Unsupported {
                        root: root.clone(),
                        error,
                    })
                    .await;
                return;
            }
            SessionEnd::Failed { error, established } => {
                missing = 0;
                // Only a watch that ran steadily starts the backoff over: one that the server
                // ends right after it began must not turn into a tight reconnect loop.
                failures = if established && started.elapsed() >= STEADY {
                    1
                } else {
                    failures + 1
                };
                let retry_in = options.backoff.delay(failures, rand::random::<f64>());
                let sent = tx
                    .send(WatchEvent::Disconnected {
                        root: root.clone(),
                        error,
                        retry_in,
                    })
                    .await;
                if sent.is_err() {
                    return;
                }
                tokio::time::sleep(retry_in).await;
                reconnected = true;
            }
        }
    }
}

/// Maps the result that ended (or refused) a notification search.
fn classify(mechanism: Mechanism, error: LdapError, established: bool) -> SessionEnd {
    match error {
        LdapError::NoSuchObject { .. } if mechanism == Mechanism::SyncreplPersist => {
            SessionEnd::RootMissing
        }
        LdapError::Unsupported { diagnostic } => SessionEnd::Refused(NotifyError::Unsupported {
            mechanism,
            diagnostic,
        }),
        e @ (LdapError::UnwillingToPerform { .. }
        | LdapError::InsufficientAccess { .. }
        | LdapError::Other { code: 11, .. }) => SessionEnd::Refused(NotifyError::Refused {
            mechanism,
            source: e,
        }),
        error => SessionEnd::Failed { error, established },
    }
}

async fn session(
    options: &WatchOptions,
    root: &str,
    tx: &mpsc::Sender<WatchEvent>,
    reconnected: bool,
) -> SessionEnd {
    let failed = |error| SessionEnd::Failed {
        error,
        established: false,
    };
    let mut conn = match Connection::connect(&options.connect).await {
        Ok(c) => c,
        Err(e) => return failed(e),
    };
    if let Err(e) = conn.simple_bind(&options.bind_dn, &options.password).await {
        return failed(e);
    }
    let url = conn.url.clone();
    let mut probe = conn.ldap.clone();
    // Ask before sending a critical control the server may not know: Samba answers an unknown
    // one with an ExtendedResponse that ldap3 cannot match to the search.
    let oid = match options.mechanism {
        Mechanism::AdNotification => NOTIFICATION_OID,
        Mechanism::SyncreplPersist => controls::SYNC_REQUEST_OID,
    };
    match supported_controls(&mut probe, Duration::from_secs(30)).await {
        Ok(list) if !list.is_empty() && !list.iter().any(|c| c == oid) => {
            return SessionEnd::Refused(NotifyError::Unsupported {
                mechanism: options.mechanism,
                diagnostic: format!("the root DSE does not list {oid} in supportedControl"),
            });
        }
        Ok(_) => {}
        Err(e) => return failed(from_ldap3(e, &url)),
    }
    // OpenLDAP: the root must exist (never a syncrepl search on a missing base), and its
    // entryUUID lets the persistent search see the root's own rename or delete.
    let mut root_uuid = None;
    if options.mechanism == Mechanism::SyncreplPersist {
        match conn.read(root, &["entryUUID"]).await {
            Ok(e) => root_uuid = e.text("entryUUID").map(str::to_string),
            // The parent exists, the root does not: renamed, moved or deleted.
            Err(LdapError::NoSuchObject { matched, .. }) if !matched.is_empty() => {
                return SessionEnd::RootMissing
            }
            // Nothing of the DN is known (or visible): the refresh's own answer decides,
            // e.g. a database without syncprov (Unsupported); a plain noSuchObject there is
            // RootMissing too.
            Err(LdapError::NoSuchObject { .. }) => {}
            Err(e) => return classify(options.mechanism, e, false),
        }
    }
    let root_uuid_bytes = root_uuid.as_deref().and_then(uuid_bytes);
    // OpenLDAP: the current cookie, from a refresh that matches nothing.
    let mut cookie = None;
    if options.mechanism == Mechanism::SyncreplPersist {
        match conn
            .openldap_sync_refresh(root, NOTHING_FILTER, &["entryUUID"], None)
            .await
        {
            Ok(r) => cookie = r.cookie,
            Err(e) => return classify(options.mechanism, e, false),
        }
    }
    let (ctrls, filter) = match options.mechanism {
        Mechanism::AdNotification => (
            vec![
                RawControl {
                    ctype: NOTIFICATION_OID.into(),
                    crit: true,
                    val: None,
                },
                RawControl {
                    ctype: SHOW_DELETED_OID.into(),
                    crit: false,
                    val: None,
                },
            ],
            "(objectClass=*)".to_string(),
        ),
        Mechanism::SyncreplPersist => (
            vec![controls::sync_request(
                SyncMode::RefreshAndPersist,
                cookie.as_deref(),
                false,
            )],
            match &root_uuid {
                Some(u) => format!("(|(entryUUID={u}){})", options.filter),
                None => options.filter.clone(),
            },
        ),
    };
    let stream = conn
        .ldap
        .with_controls(ctrls)
        .streaming_search(root, Scope::Subtree, &filter, vec!["1.1".to_string()])
        .await;
    let mut stream = match stream {
        Ok(s) => s,
        Err(e) => return classify(options.mechanism, from_ldap3(e, &url), false),
    };
    let mut established = false;
    // OpenLDAP: something arrived during the refresh phase (a change since the cookie).
    let mut changed_while_refreshing = false;
    if options.mechanism == Mechanism::AdNotification {
        // AD sends nothing until something changes, and a refusal comes back at once: a round
        // trip on the same connection after the search proves the search was accepted.
        if let Err(e) = read_root_dse(&mut probe, Duration::from_secs(30)).await {
            return failed(from_ldap3(e, &url));
        }
        match tokio::time::timeout(Duration::ZERO, stream.next()).await {
            Err(_) => {}
            Ok(Ok(Some(_))) => {
                // A change already: established, and worth a cycle.
                if tx
                    .try_send(WatchEvent::Changed {
                        root: root.to_string(),
                    })
                    .is_err()
                    && tx.is_closed()
                {
                    return SessionEnd::Closed;
                }
            }
            Ok(Ok(None)) => {
                let res = stream.finish().await;
                let e = if res.rc == 0 {
                    LdapError::Protocol("the notification search ended at once".into())
                } else {
                    from_result(&res)
                };
                return classify(options.mechanism, e, false);
            }
            Ok(Err(e)) => return failed(from_ldap3(e, &url)),
        }
        established = true;
        let watching = WatchEvent::Watching {
            root: root.to_string(),
            reconnected,
        };
        if tx.send(watching).await.is_err() {
            return SessionEnd::Closed;
        }
    }
    let mut liveness = tokio::time::interval(options.liveness_interval);
    liveness.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    liveness.tick().await;
    loop {
        let item = tokio::select! {
            item = stream.next() => item,
            _ = liveness.tick() => {
                if options.mechanism == Mechanism::SyncreplPersist {
                    match root_exists(&mut probe, root, Duration::from_secs(30)).await {
                        Ok(true) => {}
                        Ok(false) => return SessionEnd::RootMissing,
                        Err(e) => {
                            return SessionEnd::Failed { error: from_ldap3(e, &url), established }
                        }
                    }
                } else if let Err(e) = read_root_dse(&mut probe, Duration::from_secs(30)).await {
                    return SessionEnd::Failed { error: from_ldap3(e, &url), established };
                }
                continue;
            }
            _ = tx.closed() => return SessionEnd::Closed,
        };
        let item = match item {
            Ok(Some(item)) => item,
            Ok(None) => {
                let res = stream.finish().await;
                let e = if res.rc == 0 || res.rc == SYNC_REFRESH_REQUIRED {
                    LdapError::Unavailable {
                        code: res.rc,
                        diagnostic: "the directory ended the persistent search".into(),
                    }
                } else {
                    from_result(&res)
                };
                return classify(options.mechanism, e, established);
            }
            Err(e) => {
                return SessionEnd::Failed {
                    error: from_ldap3(e, &url),
                    established,
                }
            }
        };
        let mut changed = false;
        if item.is_intermediate() {
            let Some(value) = intermediate_value(&item.0) else {
                continue;
            };
            let info = match controls::parse_sync_info(&value) {
                Ok(i) => i,
                Err(e) => {
                    return SessionEnd::Failed {
                        error: LdapError::Protocol(format!("sync info: {e}")),
                        established,
                    }
                }
            };
            let refresh_done = match info {
                SyncInfo::RefreshDelete { refresh_done, .. }
                | SyncInfo::RefreshPresent { refresh_done, .. } => refresh_done,
                SyncInfo::NewCookie(_) => false,
                SyncInfo::SyncIdSet {
                    uuids,
                    refresh_deletes,
                    ..
                } => {
                    // Deleted entries count; a "present" list (no session log) does not.
                    changed_while_refreshing |=
                        !established && refresh_deletes && !uuids.is_empty();
                    false
                }
            };
            if !established && refresh_done {
                established = true;
                let watching = WatchEvent::Watching {
                    root: root.to_string(),
                    reconnected,
                };
                if tx.send(watching).await.is_err() {
                    return SessionEnd::Closed;
                }
                // What changed between the cookie and now counts too.
                changed = changed_while_refreshing;
            } else {
                changed = established;
            }
        } else if !item.is_ref() {
            let state = controls::find(&item.1, controls::SYNC_STATE_OID)
                .and_then(|v| controls::parse_sync_state(v).ok());
            // The root itself left the search's scope (renamed, moved, deleted): end the
            // persistent search now, before the root can come back under it.
            if let (Some(st), Some(uuid)) = (&state, &root_uuid_bytes) {
                if st.entry_uuid == *uuid && st.state == controls::SyncStateKind::Delete {
                    return SessionEnd::RootMissing;
                }
            }
            let relevant = relevant(&entry_dn(&item.0), options);
            // In the refresh phase, an entry merely reported present is no change.
            let present = state
                .as_ref()
                .is_some_and(|st| st.state == controls::SyncStateKind::Present);
            changed_while_refreshing |= !established && relevant && !present;
            changed = established && relevant;
        }
        if changed {
            // A full queue already holds a wake-up: this one adds nothing.
            let sent = tx.try_send(WatchEvent::Changed {
                root: root.to_string(),
            });
            if let Err(mpsc::error::TrySendError::Closed(_)) = sent {
                return SessionEnd::Closed;
            }
        }
    }
}

/// Whether `root` exists (a base search asking for no attributes).
async fn root_exists(
    ldap: &mut ldap3::Ldap,
    root: &str,
    timeout: Duration,
) -> Result<bool, ldap3::LdapError> {
    let res = ldap
        .with_timeout(timeout)
        .search(root, Scope::Base, "(objectClass=*)", vec!["1.1"])
        .await?;
    match res.1.rc {
        32 => Ok(false),
        _ => res.success().map(|_| true),
    }
}

/// The 16 bytes of an `entryUUID` in its text form (`8-4-4-4-12`).
fn uuid_bytes(text: &str) -> Option<Vec<u8>> {
    let hex: String = text.chars().filter(|c| *c != '-').collect();
    if hex.len() != 32 {
        return None;
    }
    (0..16)
        .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).ok())
        .collect()
}

async fn read_root_dse(ldap: &mut ldap3::Ldap, timeout: Duration) -> Result<(), ldap3::LdapError> {
    ldap.with_timeout(timeout)
        .search("", Scope::Base, "(objectClass=*)", vec!["1.1"])
        .await?
        .success()
        .map(|_| ())
}

/// The root DSE's `supportedControl` values (empty when the server does not publish them).
async fn supported_controls(
    ldap: &mut ldap3::Ldap,
    timeout: Duration,
) -> Result<Vec<String>, ldap3::LdapError> {
    let (entries, _) = ldap
        .with_timeout(timeout)
        .search("", Scope::Base, "(objectClass=*)", vec!["supportedControl"])
        .await?
        .success()?;
    Ok(entries
        .into_iter()
        .next()
        .map(|e| {
            let e = ldap3::SearchEntry::construct(e);
            e.attrs
                .into_iter()
                .filter(|(k, _)| k.eq_ignore_ascii_case("supportedControl"))
                .flat_map(|(_, v)| v)
                .collect()
        })
        .unwrap_or_default())
}

/// The DN of a SearchResultEntry (`[APPLICATION 4] { objectName, attributes }`).
fn entry_dn(tag: &ldap3::asn1::StructureTag) -> String {
    use ldap3::asn1::PL;
    let PL::C(parts) = &tag.payload else {
        return String::new();
    };
    match parts.first().map(|t| &t.payload) {
        Some(PL::P(bytes)) => String::from_utf8_lossy(bytes).into_owned(),
        _ => String::new(),
    }
}

/// The responseValue of an IntermediateResponse (`[APPLICATION 25] { [0] name, [1] value }`).
fn intermediate_value(tag: &ldap3::asn1::StructureTag) -> Option<Vec<u8>> {
    use ldap3::asn1::PL;
    let PL::C(parts) = &tag.payload else {
        return None;
    };
    parts
        .iter()
        .find(|t| t.id == 1)
        .and_then(|t| match &t.payload {
            PL::P(bytes) => Some(bytes.clone()),
            PL::C(_) => None,
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::connection::CaBundle;

    fn options(mechanism: Mechanism, roots: &[&str]) -> WatchOptions {
        let mut o = WatchOptions::new(
            ConnectOptions::new("ldaps://127.0.0.1:1", CaBundle::Pem(String::new())),
            "CN=svc,OU=Service Accounts,DC=example,DC=com",
            SecretString::from("x".to_string()),
            mechanism,
            roots.iter().map(|r| r.to_string()).collect(),
        );
        o.naming_context = "DC=example,DC=com".into();
        o
    }

    #[test]
    fn ad_changes_count_below_a_root_or_as_tombstones_never_the_bound_account() {
        let o = options(Mechanism::AdNotification, &["OU=Staff, DC=example,DC=com"]);
        assert!(relevant("CN=Ann,ou=staff,dc=example,dc=com", &o));
        assert!(relevant("OU=Staff,DC=example,DC=com", &o));
        assert!(!relevant("CN=Ann,OU=Other,DC=example,DC=com", &o));
        assert!(!relevant("CN=Ann,OU=NotStaff,DC=example,DC=com", &o));
        assert!(relevant(
            "CN=Ann\\0ADEL:0b4a…,CN=Deleted Objects,DC=example,DC=com",
            &o
        ));
        assert!(!relevant(
            "cn=svc, ou=Service Accounts,dc=example,dc=com",
            &o
        ));
        let all = options(Mechanism::AdNotification, &["DC=example,DC=com"]);
        assert!(relevant("CN=x,CN=Computers,DC=example,DC=com", &all));
        assert!(!relevant(
            "CN=svc,OU=Service Accounts,DC=example,DC=com",
            &all
        ));
    }

    #[test]
    fn nested_roots_are_watched_once() {
        let roots: Vec<String> = ["ou=a,dc=x", "ou=b, ou=a,dc=x", "ou=c,dc=x", "OU=A,DC=X"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(outermost(&roots), vec!["ou=a,dc=x", "ou=c,dc=x"]);
    }

    #[test]
    fn backoff_doubles_up_to_the_maximum() {
        let b = Backoff {
            min: Duration::from_secs(1),
            max: Duration::from_secs(60),
        };
        assert_eq!(b.delay(1, 0.0), Duration::from_secs(1));
        assert_eq!(b.delay(2, 0.0), Duration::from_secs(2));
        assert_eq!(b.delay(4, 0.0), Duration::from_secs(8));
        assert_eq!(b.delay(30, 1.0), Duration::from_secs(60));
        assert!(b.delay(1, 1.0) <= Duration::from_millis(1200));
    }

    #[test]
    fn refusals_are_permanent_and_say_what_to_do() {
        let e = classify(
            Mechanism::SyncreplPersist,
            LdapError::Unsupported {
                diagnostic: "critical extension is unavailable".into(),
            },
            false,
        );
        let SessionEnd::Refused(e) = e else {
            panic!("not permanent")
        };
        assert!(e.fix().contains("syncprov"), "{}", e.fix());
        assert_eq!(e.diagnostic(), Some("critical extension is unavailable"));
        let e = classify(
            Mechanism::AdNotification,
            LdapError::UnwillingToPerform {
                diagnostic: "x".into(),
            },
            false,
        );
        assert!(matches!(
            e,
            SessionEnd::Refused(NotifyError::Refused { .. })
        ));
        let e = classify(
            Mechanism::AdNotification,
            LdapError::Unreachable {
                url: "u".into(),
                reason: "closed".into(),
            },
            true,
        );
        assert!(matches!(
            e,
            SessionEnd::Failed {
                established: true,
                ..
            }
        ));
    }
}
