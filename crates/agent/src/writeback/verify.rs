//! Pass-through sign-in on the agent ([`WritebackOperation::Verify`]): find the user by anchor
//! as the service account, then a simple bind **as the user** on a connection of its own (the
//! service account's connection is never re-bound), over LDAPS or StartTLS as the connector's
//! URL says. OpenLDAP binds carry the ppolicy request control, so a locked, expired or
//! must-change account is told apart from a wrong password.
//!
//! Work is split in two so the caller can overlap the slow, harmless part with the claim:
//! [`prepare`] connects both connections at once (two TLS handshakes in parallel), binds the
//! service account and finds the user; [`finish`] binds as the user — the only step the
//! directory counts (a wrong password raises AD's `badPwdCount` and ppolicy's failure count),
//! so it runs only after the cloud said proceed.
//!
//! Connections are kept warm between sign-ins (see [`Warm`]): the service account's bound
//! connection is reused for the next lookup, and a spare, never-bound TLS connection is opened
//! in the background for the next user's bind, so a sign-in does not wait for TLS handshakes or
//! the service bind. A spare is used for one bind only and then closed: the user's bind is
//! always on a connection nobody else bound.
//!
//! One event per attempt (34001 succeeded, 34002 refused by the directory, 34003 could not be
//! checked) with the tracking id, the connector, the user (DN when found, else the anchor) and
//! the outcome. Never the password.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use ldap::{BindProblem, ConnectOptions, Connection, LdapError};
use proto::writeback::{events as ids, person_message, OperationKind, Outcome, WritebackResult};
use secrecy::{ExposeSecret, SecretString};
use serde_json::json;
use sha2::{Digest, Sha256};

use super::failure::{classify, failure_result, find, Failure, Step};
use crate::connector::{ConnectorConfig, DirectoryKind};
use crate::events::{EventLog, Level};

/// A pooled connection is dropped once idle this long (servers close idle connections; a
/// fresh one is cheaper than a failed reuse).
const IDLE_MAX: Duration = Duration::from_secs(60);
/// Most warm connections of each kind kept per connector.
const PER_CONNECTOR: usize = 4;

/// Connections kept between sign-ins, per connector (its name, URL, CA file, service account
/// and the SHA-256 of that account's password, so a changed connector never reuses an old
/// connection): `service` are bound as the service account (lookups only); `spare` were never
/// bound (each serves one user's bind, then is closed).
#[derive(Default)]
struct Warm {
    service: HashMap<String, Vec<(Instant, Connection)>>,
    spare: HashMap<String, Vec<(Instant, Connection)>>,
}

#[derive(Clone, Copy)]
enum Kind {
    Service,
    Spare,
}

fn warm() -> &'static Mutex<Warm> {
    static WARM: OnceLock<Mutex<Warm>> = OnceLock::new();
    WARM.get_or_init(Mutex::default)
}

fn warm_key(config: &ConnectorConfig, password: &SecretString) -> String {
    let mut h = Sha256::new();
    for part in [
        config.name.as_bytes(),
        config.url.as_bytes(),
        config.ca_file.as_os_str().as_encoded_bytes(),
        config.bind_dn.as_bytes(),
        password.expose_secret().as_bytes(),
    ] {
        h.update((part.len() as u64).to_be_bytes());
        h.update(part);
    }
    hex::encode(h.finalize())
}

fn take(kind: Kind, key: &str) -> Option<Connection> {
    let mut w = warm().lock().unwrap_or_else(|p| p.into_inner());
    let map = match kind {
        Kind::Service => &mut w.service,
        Kind::Spare => &mut w.spare,
    };
    let list = map.get_mut(key)?;
    while let Some((at, conn)) = list.pop() {
        if at.elapsed() < IDLE_MAX {
            return Some(conn);
        }
    }
    None
}

/// Keeps `conn` for the next sign-in; false (and `conn` dropped) when enough are kept.
fn put(kind: Kind, key: &str, conn: Connection) -> bool {
    let mut w = warm().lock().unwrap_or_else(|p| p.into_inner());
    let map = match kind {
        Kind::Service => &mut w.service,
        Kind::Spare => &mut w.spare,
    };
    let list = map.entry(key.to_string()).or_default();
    list.retain(|(at, _)| at.elapsed() < IDLE_MAX);
    if list.len() >= PER_CONNECTOR {
        return false;
    }
    list.push((tenant::clock::monotonic(), conn));
    true
}

fn spares(key: &str) -> usize {
    let w = warm().lock().unwrap_or_else(|p| p.into_inner());
    w.spare.get(key).map_or(0, Vec::len)
}

/// Opens a spare connection for the next sign-in in the background, when none is waiting.
fn refill_spare(key: &str, options: &ConnectOptions) {
    if spares(key) > 0 {
        return;
    }
    let (key, options) = (key.to_string(), options.clone());
    tokio::spawn(async move {
        if let Ok(c) = Connection::connect(&options).await {
            put(Kind::Spare, &key, c);
        }
    });
}

/// A closed or broken connection (worth one retry on a new one), as opposed to an answer.
fn is_transport(e: &LdapError) -> bool {
    matches!(e, LdapError::Unreachable { .. } | LdapError::Protocol(_))
}

/// The user found, and a TLS connection ready for the user's bind.
pub(crate) struct Prepared {
    config: ConnectorConfig,
    dn: String,
    disabled: bool,
    user_conn: Connection,
    /// `user_conn` was a warm spare (a broken one is replaced once).
    spare: bool,
    key: String,
    options: ConnectOptions,
}

impl std::fmt::Debug for Prepared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Prepared")
            .field("connector", &self.config.name)
            .field("dn", &self.dn)
            .finish()
    }
}

/// Why a sign-in could not be prepared: the connector tried last and the failure.
#[derive(Debug)]
pub(crate) struct NotPrepared {
    pub(crate) connector: Option<String>,
    pub(crate) failure: Failure,
}

/// Finds the user by `anchor` in the first of `connectors` that has it (the writeback
/// connector first when there is one; several connectors are tried in turn only when the user
/// is not found), with a second connection opened at the same time for the user's bind.
pub(crate) async fn prepare(
    connectors: &[(ConnectorConfig, SecretString)],
    anchor: &str,
) -> Result<Prepared, NotPrepared> {
    let mut last = NotPrepared {
        connector: None,
        failure: Failure::new(
            Outcome::ConfigurationError,
            ids::SIGN_IN_FAILED,
            "this agent has no connector: add one with `dirbridge agent connector add`",
        ),
    };
    for (config, password) in connectors {
        match prepare_one(config, password, anchor).await {
            Ok(p) => return Ok(p),
            Err(failure) => {
                let not_found = failure.outcome == Outcome::UserNotFound;
                last = NotPrepared {
                    connector: Some(config.name.clone()),
                    failure,
                };
                if !not_found {
                    break;
                }
            }
        }
    }
    last.failure.event_id = ids::SIGN_IN_FAILED;
    Err(last)
}

async fn prepare_one(
    config: &ConnectorConfig,
    password: &SecretString,
    anchor: &str,
) -> Result<Prepared, Failure> {
    let options = config.connect_options();
    let key = warm_key(config, password);
    // An answer about the user (found, not found, ambiguous) leaves the connection good.
    let keep = |r: &Result<super::failure::Target, Failure>| match r {
        Ok(_) => true,
        Err(f) => matches!(f.outcome, Outcome::UserNotFound | Outcome::AmbiguousUser),
    };
    let service = async {
        if let Some(mut c) = take(Kind::Service, &key) {
            let found = find(&mut c, config, anchor).await;
            if keep(&found) {
                put(Kind::Service, &key, c);
                return found;
            }
            // Closed by the server meanwhile, most likely: a new connection below.
        }
        let mut c = Connection::connect(&options)
            .await
            .map_err(|e| classify(config, Step::Bind, None, e))?;
        c.simple_bind(&config.bind_dn, password)
            .await
            .map_err(|e| classify(config, Step::Bind, None, e))?;
        let found = find(&mut c, config, anchor).await;
        if keep(&found) {
            // When enough are kept, `put` drops it and its connection closes.
            put(Kind::Service, &key, c);
        }
        found
    };
    let user = async {
        match take(Kind::Spare, &key) {
            Some(c) => Ok((c, true)),
            None => Connection::connect(&options)
                .await
                .map(|c| (c, false))
                .map_err(|e| classify(config, Step::Bind, None, e)),
        }
    };
    let (target, user_conn) = tokio::join!(service, user);
    let target = target?;
    let (user_conn, spare) = user_conn?;
    Ok(Prepared {
        config: config.clone(),
        dn: target.dn,
        disabled: target.state.disabled,
        user_conn,
        spare,
        key,
        options,
    })
}

/// Binds as the user with `password` and classifies the answer. Returns the connector name,
/// the user's DN and the outcome.
pub(crate) async fn finish(
    prepared: Prepared,
    password: &SecretString,
) -> (String, String, Result<(), Failure>) {
    let Prepared {
        config,
        dn,
        disabled,
        user_conn,
        spare,
        key,
        options,
    } = prepared;
    let mut bound = user_bind(&config, user_conn, &dn, password).await;
    if spare && bound.as_ref().is_err_and(is_transport) {
        // The warm spare had been closed by the server: the bind never reached it.
        bound = match Connection::connect(&options).await {
            Ok(c) => user_bind(&config, c, &dn, password).await,
            Err(e) => Err(e),
        };
    }
    refill_spare(&key, &options);
    let result = bound.map_err(|e| classify_bind(&config, &dn, disabled, e));
    (config.name, dn, result)
}

/// One bind as the user, then the connection is closed (never used again).
async fn user_bind(
    config: &ConnectorConfig,
    mut c: Connection,
    dn: &str,
    password: &SecretString,
) -> Result<(), LdapError> {
    let bound = match config.kind {
        DirectoryKind::Ad => c.simple_bind(dn, password).await,
        DirectoryKind::Openldap => c.openldap_bind_with_ppolicy(dn, password).await,
    };
    let _ = c.unbind().await;
    bound
}

/// The directory's answer to the user's bind as a sign-in outcome.
pub(crate) fn classify_bind(
    config: &ConnectorConfig,
    dn: &str,
    disabled: bool,
    e: LdapError,
) -> Failure {
    let diagnostic = e.diagnostic().map(str::to_string);
    let refused = |outcome: Outcome, why: &str| {
        Failure::new(
            outcome,
            ids::SIGN_IN_REFUSED,
            format!("{dn}: the directory refused the sign-in: {why}"),
        )
    };
    let mut f = match &e {
        LdapError::InvalidCredentials { problem, .. } => match problem {
            BindProblem::AccountDisabled => refused(Outcome::AccountDisabled, "the account is disabled (AD data 533)"),
            BindProblem::AccountLocked => refused(Outcome::AccountLockedOut, "the account is locked out (AD data 775); it unlocks after the lockout duration, or unlock it on-prem"),
            BindProblem::PasswordExpired => refused(Outcome::PasswordExpired, "the password has expired (AD data 532 / ppolicy passwordExpired); the person can change it with self-service change"),
            BindProblem::MustChangePassword => refused(Outcome::MustChangePassword, "the password must be changed at next logon (AD data 773, pwdLastSet=0 / ppolicy changeAfterReset); the person can change it with self-service change"),
            BindProblem::AccountExpired => refused(Outcome::AccountExpired, "the account has expired (AD data 701, accountExpires)"),
            BindProblem::LogonRestricted => refused(Outcome::LogonRestricted, "logon hours or workstation restrictions (AD data 530/531)"),
            BindProblem::NoSuchUser => refused(Outcome::WrongPassword, "no such account (AD data 525)"),
            BindProblem::WrongPassword | BindProblem::Unknown => {
                refused(Outcome::WrongPassword, "wrong password (invalidCredentials)")
            }
        },
        // ppolicy's accountLocked: an administrator's permanent lock is how OpenLDAP disables.
        LdapError::AccountLocked { .. } if disabled => refused(
            Outcome::AccountDisabled,
            "the account is disabled (pwdAccountLockedTime 000001010000Z)",
        ),
        LdapError::AccountLocked { .. } => refused(
            Outcome::AccountLockedOut,
            "the account is locked out (ppolicy accountLocked); it unlocks after pwdLockoutDuration, or remove pwdAccountLockedTime",
        ),
        _ => {
            let mut f = classify(config, Step::UserBind, Some(dn), e);
            f.event_id = ids::SIGN_IN_FAILED;
            f
        }
    };
    f.diagnostic = diagnostic;
    f
}

/// Logs the attempt (one event) and builds the result.
pub(crate) fn report(
    events: &EventLog,
    tracking_id: &str,
    connector: Option<&str>,
    user: &str,
    outcome: Result<(), Failure>,
) -> WritebackResult {
    match outcome {
        Ok(()) => {
            events.record(
                Level::Info,
                "signIn.succeeded",
                Some(ids::SIGN_IN_SUCCEEDED),
                Some(tracking_id),
                format!("pass-through sign-in succeeded for {user}"),
                json!({ "connector": connector, "user": user, "outcome": Outcome::Succeeded }),
            );
            WritebackResult {
                tracking_id: tracking_id.to_string(),
                outcome: Outcome::Succeeded,
                policy_reason: None,
                message: person_message(Outcome::Succeeded, None, OperationKind::SignIn),
                event_id: Some(ids::SIGN_IN_SUCCEEDED),
                agent_id: None,
                admin_detail: None,
            }
        }
        Err(f) => {
            let (level, code) = if f.event_id == ids::SIGN_IN_REFUSED {
                (Level::Warning, "signIn.refused")
            } else {
                (Level::Error, "signIn.failed")
            };
            events.record(
                level,
                code,
                Some(f.event_id),
                Some(tracking_id),
                format!("pass-through sign-in for {user}: {}", f.detail),
                json!({
                    "connector": connector,
                    "user": user,
                    "outcome": f.outcome,
                    "diagnostic": f.diagnostic,
                }),
            );
            failure_result(tracking_id, OperationKind::SignIn, f)
        }
    }
}

/// Prepares, binds as the user and logs, in one go (no claim): what `execute` does for a
/// sign-in, and what tests call.
pub async fn verify(
    connectors: &[(ConnectorConfig, SecretString)],
    anchor: &str,
    password: &SecretString,
    events: &EventLog,
    tracking_id: &str,
) -> WritebackResult {
    match prepare(connectors, anchor).await {
        Ok(p) => {
            let (connector, dn, outcome) = finish(p, password).await;
            report(events, tracking_id, Some(&connector), &dn, outcome)
        }
        Err(np) => report(
            events,
            tracking_id,
            np.connector.as_deref(),
            anchor,
            Err(np.failure),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(kind: DirectoryKind) -> ConnectorConfig {
        ConnectorConfig::new(
            "corp",
            kind,
            "ldaps://dc.example:636".into(),
            "/ca.pem".into(),
            "CN=MSOL_x,OU=Service,DC=example,DC=com".into(),
            "DC=example,DC=com".into(),
        )
    }

    fn bind_error(problem: BindProblem) -> LdapError {
        LdapError::InvalidCredentials {
            problem,
            diagnostic: "80090308: LdapErr: DSID-0C09041C, comment: AcceptSecurityContext error"
                .into(),
        }
    }

    #[test]
    fn every_ad_bind_sub_code_has_its_outcome() {
        let c = config(DirectoryKind::Ad);
        for (problem, want) in [
            (BindProblem::WrongPassword, Outcome::WrongPassword),
            (BindProblem::Unknown, Outcome::WrongPassword),
            (BindProblem::NoSuchUser, Outcome::WrongPassword),
            (BindProblem::AccountDisabled, Outcome::AccountDisabled),
            (BindProblem::AccountLocked, Outcome::AccountLockedOut),
            (BindProblem::PasswordExpired, Outcome::PasswordExpired),
            (BindProblem::MustChangePassword, Outcome::MustChangePassword),
            (BindProblem::AccountExpired, Outcome::AccountExpired),
            (BindProblem::LogonRestricted, Outcome::LogonRestricted),
        ] {
            let f = classify_bind(&c, "CN=Ann,DC=example,DC=com", false, bind_error(problem));
            assert_eq!(
                (f.outcome, f.event_id),
                (want, ids::SIGN_IN_REFUSED),
                "{problem:?}"
            );
            assert!(f.detail.contains("CN=Ann"), "{}", f.detail);
            let r = failure_result("t", OperationKind::SignIn, f);
            assert_eq!(r.message, person_message(want, None, OperationKind::SignIn));
            assert!(!r.message.contains("DC=") && !r.message.contains("DSID"));
        }
    }

    #[test]
    fn openldap_lock_is_disabled_only_when_permanent_and_unreachable_is_not_a_refusal() {
        let c = config(DirectoryKind::Openldap);
        let locked = || LdapError::AccountLocked {
            diagnostic: String::new(),
        };
        assert_eq!(
            classify_bind(&c, "uid=a,dc=x", false, locked()).outcome,
            Outcome::AccountLockedOut
        );
        assert_eq!(
            classify_bind(&c, "uid=a,dc=x", true, locked()).outcome,
            Outcome::AccountDisabled
        );
        let f = classify_bind(&c, "uid=a,dc=x", false, LdapError::Timeout);
        assert_eq!(
            (f.outcome, f.event_id),
            (Outcome::DirectoryUnreachable, ids::SIGN_IN_FAILED)
        );
    }

    #[test]
    fn the_event_log_never_holds_the_password() {
        let dir = tempfile::tempdir().unwrap();
        let log = EventLog::open(dir.path());
        let c = config(DirectoryKind::Ad);
        let f = classify_bind(&c, "CN=Ann", false, bind_error(BindProblem::WrongPassword));
        let r = report(&log, "trk-1", Some("corp"), "CN=Ann", Err(f));
        assert_eq!(r.outcome, Outcome::WrongPassword);
        let ev = log.query(None, Some("trk-1")).unwrap();
        assert_eq!(ev.len(), 1);
        assert_eq!(ev[0].event_id, Some(ids::SIGN_IN_REFUSED));
        assert_eq!(ev[0].details["user"], "CN=Ann");
        assert_eq!(ev[0].details["outcome"], "wrongPassword");
    }
}
