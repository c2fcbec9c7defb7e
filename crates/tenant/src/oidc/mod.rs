//! The tenant as an OpenID Connect provider: the rules, without I/O.
//!
//! * app registrations: what a valid registration is ([`new_app`], [`patch_app`]), who may use
//!   an app ([`may_use`]);
//! * the authorization request ([`check_authorization`]): exact redirect-URI matching first, so
//!   an error is only ever sent to a registered URI; then response type, scopes, PKCE, prompt
//!   and max_age; and what happens next for a browser ([`next_step`]);
//! * the token endpoint's checks: PKCE S256 ([`pkce_matches`]);
//! * the claims of ID tokens and userinfo ([`user_claims`], [`id_token_claims`]), with the
//!   groups claim resolved through nested groups ([`groups_of`]);
//! * signing keys and JWTs ([`keys`]).

pub mod keys;

use std::collections::{HashMap, HashSet, VecDeque};

use base64::Engine as _;
use proto::oidc::{App, AppPatch, ClientType, NewApp};
use proto::{MemberKind, MemberRef, User};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

use crate::refusal::Refusal;

/// The scopes the provider knows. `openid` is required in every request.
pub const SUPPORTED_SCOPES: [&str; 5] = ["openid", "profile", "email", "offline_access", "groups"];
/// How long an authorization code may be redeemed after it is issued.
pub const CODE_SECS: i64 = 60;
/// How long a browser has to sign in and consent after the app sent it.
pub const REQUEST_SECS: i64 = 600;
pub const DEFAULT_ACCESS_TOKEN_SECS: i64 = 3600;
pub const DEFAULT_ID_TOKEN_SECS: i64 = 3600;
pub const DEFAULT_REFRESH_TOKEN_SECS: i64 = 30 * 86_400;
/// The longest access or ID token lifetime an app may have; a retired signing key stays
/// published this long, so every token it signed can still be checked until it expires.
pub const MAX_TOKEN_SECS: i64 = 86_400;
pub const MAX_REFRESH_TOKEN_SECS: i64 = 365 * 86_400;
const MAX_URIS: usize = 20;
const MAX_URI_LEN: usize = 2000;

// ---------------------------------------------------------------- registrations

/// A new registration from the admin's request, with the defaults filled in.
pub fn new_app(req: NewApp, id: String, tenant_id: String, now: i64) -> Result<App, Refusal> {
    let app = App {
        id,
        tenant_id,
        name: req.name.trim().to_string(),
        client_type: req.client_type.unwrap_or(ClientType::Confidential),
        redirect_uris: req.redirect_uris,
        post_logout_redirect_uris: req.post_logout_redirect_uris,
        allowed_scopes: req
            .allowed_scopes
            .unwrap_or_else(|| SUPPORTED_SCOPES.iter().map(|s| s.to_string()).collect()),
        access_group_id: req.access_group_id,
        access_token_lifetime_secs: req
            .access_token_lifetime_secs
            .unwrap_or(DEFAULT_ACCESS_TOKEN_SECS),
        id_token_lifetime_secs: req.id_token_lifetime_secs.unwrap_or(DEFAULT_ID_TOKEN_SECS),
        refresh_token_lifetime_secs: req
            .refresh_token_lifetime_secs
            .unwrap_or(DEFAULT_REFRESH_TOKEN_SECS),
        skip_consent: req.skip_consent.unwrap_or(false),
        id_token_signing_alg: req
            .id_token_signing_alg
            .unwrap_or_else(|| keys::Alg::Es256.name().to_string()),
        secrets: Vec::new(),
        created_at: now,
        updated_at: now,
    };
    validate_app(app)
}

/// `app` with the fields of `patch` that are present, checked as a whole.
pub fn patch_app(mut app: App, patch: AppPatch, now: i64) -> Result<App, Refusal> {
    if let Some(v) = patch.name {
        app.name = v.trim().to_string();
    }
    if let Some(v) = patch.redirect_uris {
        app.redirect_uris = v;
    }
    if let Some(v) = patch.post_logout_redirect_uris {
        app.post_logout_redirect_uris = v;
    }
    if let Some(v) = patch.allowed_scopes {
        app.allowed_scopes = v;
    }
    if let Some(v) = patch.access_group_id {
        app.access_group_id = v;
    }
    if let Some(v) = patch.access_token_lifetime_secs {
        app.access_token_lifetime_secs = v;
    }
    if let Some(v) = patch.id_token_lifetime_secs {
        app.id_token_lifetime_secs = v;
    }
    if let Some(v) = patch.refresh_token_lifetime_secs {
        app.refresh_token_lifetime_secs = v;
    }
    if let Some(v) = patch.skip_consent {
        app.skip_consent = v;
    }
    if let Some(v) = patch.id_token_signing_alg {
        app.id_token_signing_alg = v;
    }
    app.updated_at = now;
    validate_app(app)
}

fn validate_app(mut app: App) -> Result<App, Refusal> {
    if app.name.is_empty()
        || app.name.chars().count() > 256
        || app.name.chars().any(char::is_control)
    {
        return Err(Refusal::validation(
            "The app needs a name of 1 to 256 characters without control characters.",
        ));
    }
    if app.redirect_uris.is_empty() {
        return Err(Refusal::validation(
            "The app needs at least one redirect URI (redirectUris), the exact address of its sign-in callback, e.g. https://grafana.contoso.com/login/generic_oauth.",
        ));
    }
    for (what, uris) in [
        ("redirectUris", &app.redirect_uris),
        ("postLogoutRedirectUris", &app.post_logout_redirect_uris),
    ] {
        if uris.len() > MAX_URIS {
            return Err(Refusal::validation(format!(
                "{what} holds at most {MAX_URIS} URIs."
            )));
        }
        for uri in uris {
            check_redirect_uri(uri, app.client_type).map_err(|why| {
                Refusal::validation(format!("{what}: {uri:?} cannot be used: {why}"))
            })?;
        }
    }
    let mut scopes: Vec<String> = Vec::new();
    for s in &app.allowed_scopes {
        if !SUPPORTED_SCOPES.contains(&s.as_str()) {
            return Err(Refusal::validation(format!(
                "allowedScopes: {s:?} is not a scope this provider knows; use some of {}.",
                SUPPORTED_SCOPES.join(", ")
            )));
        }
        if !scopes.contains(s) {
            scopes.push(s.clone());
        }
    }
    if !scopes.iter().any(|s| s == "openid") {
        scopes.insert(0, "openid".into());
    }
    app.allowed_scopes = scopes;
    for (what, v, min, max) in [
        (
            "accessTokenLifetimeSecs",
            app.access_token_lifetime_secs,
            60,
            MAX_TOKEN_SECS,
        ),
        (
            "idTokenLifetimeSecs",
            app.id_token_lifetime_secs,
            60,
            MAX_TOKEN_SECS,
        ),
        (
            "refreshTokenLifetimeSecs",
            app.refresh_token_lifetime_secs,
            300,
            MAX_REFRESH_TOKEN_SECS,
        ),
    ] {
        if !(min..=max).contains(&v) {
            return Err(Refusal::validation(format!(
                "{what} must be between {min} and {max} seconds."
            )));
        }
    }
    if keys::Alg::parse(&app.id_token_signing_alg).is_none() {
        return Err(Refusal::validation(
            "idTokenSigningAlg must be ES256 (the default) or RS256.",
        ));
    }
    Ok(app)
}

/// Why `uri` cannot be a redirect URI of a `client_type` app, if it cannot: absolute, no
/// fragment, no wildcard; `https`, or `http` on a loopback host only; a private scheme
/// (`com.example.app:/callback`) only for public (native) apps.
pub fn check_redirect_uri(uri: &str, client_type: ClientType) -> Result<(), &'static str> {
    if uri.is_empty() || uri.len() > MAX_URI_LEN {
        return Err("it must be 1 to 2000 characters long");
    }
    if uri
        .chars()
        .any(|c| c.is_control() || c.is_whitespace() || c == '"' || c == '<' || c == '>')
    {
        return Err("it holds spaces, quotes or control characters");
    }
    if uri.contains('#') {
        return Err("a redirect URI cannot have a fragment (#…)");
    }
    if uri.contains('*') {
        return Err("wildcards are not allowed: URIs are matched exactly");
    }
    let Some((scheme, rest)) = uri.split_once(':') else {
        return Err("it is not an absolute URI (scheme://host/path)");
    };
    let scheme_ok = !scheme.is_empty()
        && scheme.starts_with(|c: char| c.is_ascii_alphabetic())
        && scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c));
    if !scheme_ok {
        return Err("it is not an absolute URI (scheme://host/path)");
    }
    match scheme.to_ascii_lowercase().as_str() {
        "https" | "http" => {
            let Some(authority) = rest.strip_prefix("//") else {
                return Err("it is not an absolute URI (scheme://host/path)");
            };
            let authority = authority.split(['/', '?']).next().unwrap_or("");
            if authority.contains('@') {
                return Err("it cannot hold a user name or password");
            }
            if !authority
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-.:[]".contains(c))
            {
                return Err("its host holds characters a host name cannot have");
            }
            let host = host_of(authority);
            if host.is_empty() {
                return Err("it has no host");
            }
            if scheme.eq_ignore_ascii_case("http") && !is_loopback(host) {
                return Err("plain http is allowed for loopback addresses only (127.0.0.1, [::1], localhost); use https");
            }
            Ok(())
        }
        "javascript" | "data" | "file" | "vbscript" => Err("this scheme is never allowed"),
        _ if client_type == ClientType::Public => Ok(()),
        _ => Err("only public (native) apps may use a private URI scheme; use https"),
    }
}

fn host_of(authority: &str) -> &str {
    if let Some(v6) = authority.strip_prefix('[') {
        return v6.split(']').next().unwrap_or("");
    }
    authority.rsplit_once(':').map_or(authority, |(h, _)| h)
}

fn is_loopback(host: &str) -> bool {
    let h = host.to_ascii_lowercase();
    h == "localhost" || h == "::1" || h.starts_with("127.")
}

/// Whether `user_id` may sign in to `app`: every user, or members (direct or nested) of the
/// app's group. `memberships` are all (group id, member) pairs of the tenant.
pub fn may_use(app: &App, memberships: &[(String, MemberRef)], user_id: &str) -> bool {
    match &app.access_group_id {
        None => true,
        Some(g) => crate::sspr::is_member(memberships, user_id, g),
    }
}

/// The ids of every group `user_id` is in, directly or through nested groups, sorted.
pub fn groups_of(memberships: &[(String, MemberRef)], user_id: &str) -> Vec<String> {
    let mut parents: HashMap<(&str, bool), Vec<&str>> = HashMap::new();
    for (g, m) in memberships {
        parents
            .entry((m.id.as_str(), m.kind == MemberKind::Group))
            .or_default()
            .push(g.as_str());
    }
    let mut found = HashSet::new();
    let mut queue: VecDeque<&str> = parents
        .get(&(user_id, false))
        .into_iter()
        .flatten()
        .copied()
        .collect();
    while let Some(g) = queue.pop_front() {
        if found.insert(g) {
            queue.extend(parents.get(&(g, true)).into_iter().flatten().copied());
        }
    }
    let mut out: Vec<String> = found.into_iter().map(str::to_string).collect();
    out.sort();
    out
}

// ---------------------------------------------------------------- the authorization request

/// The query of `GET /authorize` as sent.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct AuthorizationParams {
    pub client_id: Option<String>,
    pub redirect_uri: Option<String>,
    pub response_type: Option<String>,
    pub scope: Option<String>,
    pub state: Option<String>,
    pub nonce: Option<String>,
    pub code_challenge: Option<String>,
    pub code_challenge_method: Option<String>,
    pub prompt: Option<String>,
    pub max_age: Option<String>,
    pub response_mode: Option<String>,
    pub request: Option<String>,
    pub request_uri: Option<String>,
}

/// A checked authorization request: what the code will carry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Authorization {
    pub client_id: String,
    pub redirect_uri: String,
    pub scopes: Vec<String>,
    pub state: Option<String>,
    pub nonce: Option<String>,
    pub code_challenge: Option<String>,
    pub prompt_none: bool,
    pub prompt_login: bool,
    pub prompt_consent: bool,
    pub max_age: Option<i64>,
}

/// A refused authorization request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthorizationError {
    /// The client or redirect URI is unknown: tell the user, never redirect (RFC 6749 §4.1.2.1).
    Unsafe(String),
    /// Sent back to the (registered) redirect URI as `error` and `error_description`.
    Redirect {
        error: &'static str,
        description: String,
    },
}

fn redirect_err(error: &'static str, description: impl Into<String>) -> AuthorizationError {
    AuthorizationError::Redirect {
        error,
        description: description.into(),
    }
}

/// The client and redirect URI a request names, checked against the app (`None`: no such app).
/// Only when this succeeds may anything be sent to the redirect URI.
fn unknown_client() -> AuthorizationError {
    AuthorizationError::Unsafe(
        "The app that sent you here is not registered with this organisation (unknown client_id). Tell the app's administrator.".into(),
    )
}

pub fn check_client_and_redirect(
    app: Option<&App>,
    p: &AuthorizationParams,
) -> Result<String, AuthorizationError> {
    let Some(app) = app else {
        return Err(unknown_client());
    };
    match p.redirect_uri.as_deref() {
        Some(uri) if app.redirect_uris.iter().any(|r| r == uri) => Ok(uri.to_string()),
        Some(_) => Err(AuthorizationError::Unsafe(format!(
            "The app {:?} asked to return you to an address that is not registered for it (redirect_uri mismatch), so the sign-in was stopped. Its administrator must register the exact address.",
            app.name
        ))),
        None => Err(AuthorizationError::Unsafe(format!(
            "The app {:?} did not say where to return you (redirect_uri is missing), so the sign-in was stopped.",
            app.name
        ))),
    }
}

/// Checks an authorization request for `app`, in the order of the specs: client and redirect
/// URI (never redirected), then everything else (redirected with an OAuth error code).
pub fn check_authorization(
    app: Option<&App>,
    p: &AuthorizationParams,
) -> Result<Authorization, AuthorizationError> {
    let redirect_uri = check_client_and_redirect(app, p)?;
    let Some(app) = app else {
        return Err(unknown_client());
    };
    if p.request.is_some() {
        return Err(redirect_err(
            "request_not_supported",
            "request objects are not supported",
        ));
    }
    if p.request_uri.is_some() {
        return Err(redirect_err(
            "request_uri_not_supported",
            "request_uri is not supported",
        ));
    }
    if p.response_mode.as_deref().is_some_and(|m| m != "query") {
        return Err(redirect_err(
            "invalid_request",
            "only response_mode=query is supported",
        ));
    }
    match p.response_type.as_deref() {
        Some("code") => {}
        None => return Err(redirect_err("invalid_request", "response_type is missing")),
        Some(_) => {
            return Err(redirect_err(
                "unsupported_response_type",
                "only response_type=code is supported",
            ))
        }
    }
    let scopes = parse_scopes(p.scope.as_deref().unwrap_or(""));
    if !scopes.iter().any(|s| s == "openid") {
        return Err(redirect_err(
            "invalid_scope",
            "the openid scope is required",
        ));
    }
    if let Some(s) = scopes.iter().find(|s| !app.allowed_scopes.contains(s)) {
        return Err(redirect_err(
            "invalid_scope",
            format!("the scope {s} is not allowed for this app"),
        ));
    }
    let code_challenge = match (
        p.code_challenge.as_deref(),
        p.code_challenge_method.as_deref(),
    ) {
        (None, None) => None,
        (None, Some(_)) => {
            return Err(redirect_err(
                "invalid_request",
                "code_challenge_method without code_challenge",
            ))
        }
        (Some(c), Some("S256")) if is_s256_challenge(c) => Some(c.to_string()),
        (Some(_), Some("S256")) => {
            return Err(redirect_err(
                "invalid_request",
                "code_challenge is not a base64url SHA-256 (43 characters)",
            ))
        }
        (Some(_), _) => {
            return Err(redirect_err(
                "invalid_request",
                "only code_challenge_method=S256 is supported",
            ))
        }
    };
    if app.client_type == ClientType::Public && code_challenge.is_none() {
        return Err(redirect_err(
            "invalid_request",
            "public clients must use PKCE (code_challenge with code_challenge_method=S256)",
        ));
    }
    let prompts: Vec<&str> = p
        .prompt
        .as_deref()
        .unwrap_or("")
        .split(' ')
        .filter(|s| !s.is_empty())
        .collect();
    if let Some(x) = prompts
        .iter()
        .find(|x| !["none", "login", "consent", "select_account"].contains(x))
    {
        return Err(redirect_err(
            "invalid_request",
            format!("unknown prompt value {x}"),
        ));
    }
    let prompt_none = prompts.contains(&"none");
    if prompt_none && prompts.len() > 1 {
        return Err(redirect_err(
            "invalid_request",
            "prompt=none cannot be combined with other values",
        ));
    }
    let max_age = match p.max_age.as_deref() {
        None | Some("") => None,
        Some(v) => match v.parse::<i64>() {
            Ok(n) if n >= 0 => Some(n),
            _ => {
                return Err(redirect_err(
                    "invalid_request",
                    "max_age must be a number of seconds",
                ))
            }
        },
    };
    if p.state.as_deref().is_some_and(|s| s.len() > 2048)
        || p.nonce.as_deref().is_some_and(|n| n.len() > 512)
    {
        return Err(redirect_err(
            "invalid_request",
            "state or nonce is too long",
        ));
    }
    Ok(Authorization {
        client_id: app.id.clone(),
        redirect_uri,
        scopes,
        state: p.state.clone().filter(|s| !s.is_empty()),
        nonce: p.nonce.clone().filter(|s| !s.is_empty()),
        code_challenge,
        prompt_none,
        prompt_login: prompts.contains(&"login"),
        prompt_consent: prompts.contains(&"consent"),
        max_age,
    })
}

/// Space-separated scopes, each once, in the order given.
pub fn parse_scopes(s: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for x in s.split(' ').filter(|x| !x.is_empty()) {
        if !out.iter().any(|o| o == x) {
            out.push(x.to_string());
        }
    }
    out
}

/// What the browser sees next for an authorization request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    SignIn,
    Consent,
    Issue,
    /// Redirect with this OAuth error.
    Fail(&'static str),
}

/// The browser's session, if it has one: when the user last entered a password.
#[derive(Debug, Clone, Copy)]
pub struct SessionFacts {
    pub auth_time: i64,
}

/// The next step of a checked request: sign in (no session yet; with `prompt=login`, none
/// made by a sign-in for this very request (`signed_in_for_it`); or one older than `max_age`),
/// consent (not given for these scopes, or `prompt=consent`, unless the admin skipped it for
/// the app), or issue the code. `prompt=none` turns the first two into errors.
pub fn next_step(
    a: &Authorization,
    session: Option<SessionFacts>,
    signed_in_for_it: bool,
    now: i64,
    allowed: bool,
    consented: bool,
    skip_consent: bool,
) -> Step {
    let fresh = session.is_some_and(|s| {
        (!a.prompt_login || signed_in_for_it) && a.max_age.is_none_or(|m| now - s.auth_time <= m)
    });
    if !fresh {
        return if a.prompt_none {
            Step::Fail("login_required")
        } else {
            Step::SignIn
        };
    }
    if !allowed {
        return Step::Fail("access_denied");
    }
    if !skip_consent && (!consented || a.prompt_consent) {
        return if a.prompt_none {
            Step::Fail("consent_required")
        } else {
            Step::Consent
        };
    }
    Step::Issue
}

/// Whether the scopes a user agreed to cover the ones asked for now.
pub fn consent_covers(granted: &[String], asked: &[String]) -> bool {
    asked.iter().all(|s| granted.contains(s))
}

// ---------------------------------------------------------------- PKCE

fn is_s256_challenge(c: &str) -> bool {
    c.len() == 43
        && c.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Whether `verifier` (RFC 7636: 43 to 128 unreserved characters) hashes to `challenge`.
pub fn pkce_matches(verifier: &str, challenge: &str) -> bool {
    let well_formed = (43..=128).contains(&verifier.len())
        && verifier
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b));
    well_formed && crate::sspr::constant_time_eq(&b64(&Sha256::digest(verifier)), challenge)
}

pub(crate) fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

// ---------------------------------------------------------------- claims

/// The claims about `user` that `scopes` release (userinfo and the ID token): `sub` always;
/// `profile`: names and user name; `email`; `groups`: the display names of every group the
/// user is in, nested groups resolved.
pub fn user_claims(user: &User, scopes: &[String], groups: &[String]) -> Map<String, Value> {
    let has = |s: &str| scopes.iter().any(|x| x == s);
    let mut c = Map::new();
    c.insert("sub".into(), json!(user.id));
    if has("profile") {
        c.insert("name".into(), json!(user.display_name));
        c.insert("preferred_username".into(), json!(user.user_principal_name));
        if let Some(g) = &user.given_name {
            c.insert("given_name".into(), json!(g));
        }
        if let Some(f) = &user.surname {
            c.insert("family_name".into(), json!(f));
        }
        c.insert("updated_at".into(), json!(user.updated_at));
    }
    if has("email") {
        if let Some(m) = &user.mail {
            c.insert("email".into(), json!(m));
        }
    }
    if has("groups") {
        c.insert("groups".into(), json!(groups));
    }
    c
}

/// What an ID token says beside the user claims.
pub struct IdTokenFacts<'a> {
    pub issuer: &'a str,
    pub client_id: &'a str,
    pub nonce: Option<&'a str>,
    pub auth_time: i64,
    pub now: i64,
    pub lifetime: i64,
    /// The access token issued with it (for `at_hash`).
    pub access_token: &'a str,
}

pub fn id_token_claims(user_claims: Map<String, Value>, f: &IdTokenFacts) -> Value {
    let mut c = user_claims;
    c.insert("iss".into(), json!(f.issuer));
    c.insert("aud".into(), json!(f.client_id));
    c.insert("azp".into(), json!(f.client_id));
    c.insert("iat".into(), json!(f.now));
    c.insert("exp".into(), json!(f.now + f.lifetime));
    c.insert("auth_time".into(), json!(f.auth_time));
    if let Some(n) = f.nonce {
        c.insert("nonce".into(), json!(n));
    }
    let digest = Sha256::digest(f.access_token.as_bytes());
    c.insert("at_hash".into(), json!(b64(&digest[..16])));
    Value::Object(c)
}

#[cfg(test)]
mod tests;
