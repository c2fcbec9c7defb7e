//! The provider's endpoints under `/t/{domain}`: discovery, JWKS, authorize (sign-in and
//! consent pages on the portal's session and CSRF), token, userinfo, introspection (RFC 7662),
//! revocation (RFC 7009) and RP-initiated logout. Errors are the specs' own: a request whose
//! client or redirect URI is not registered gets a page and is never redirected; every other
//! authorization error goes back to the registered redirect URI; the token endpoint answers
//! `{"error","error_description"}`.

use askama::Template;
use axum::body::Bytes;
use axum::extract::{Path, Query, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine as _;
use proto::oidc::{App, ClientType};
use proto::{AuditResult, Tenant, TokenRequest, User};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use store::{AppTokenRecord, CodeRecord, CodeUse, PendingRequest};
use tenant::oidc::keys::Alg;
use tenant::oidc::{self as rules, Authorization, AuthorizationError, AuthorizationParams, Step};
use tenant::secrets;

use super::{issuer, keys, tenant_at};
use crate::app::caller::Caller;
use crate::app::{self, Ctx};
use crate::audit::record;
use crate::error::{tracking_id, ApiResult, AppError};
use crate::portal::session::{self, Cookies};
use crate::portal::{error_page, render, status_of, SignInPage};
use crate::state::AppState;

const CODE_PREFIX: &str = "dbc_";
const ACCESS_PREFIX: &str = "dboa_";
const REFRESH_PREFIX: &str = "dbor_";

pub fn routes() -> Router<AppState> {
    let pages = Router::new()
        .route(
            "/t/{domain}/oauth2/authorize",
            get(authorize_get).post(authorize_post),
        )
        .route("/t/{domain}/oauth2/continue", get(continue_request))
        .route("/t/{domain}/oauth2/signin", post(sign_in))
        .route("/t/{domain}/oauth2/consent", post(consent))
        .route(
            "/t/{domain}/oauth2/logout",
            get(logout).post(logout_confirmed),
        )
        .layer(axum::middleware::from_fn(page_headers));
    let api = Router::new()
        .route(
            "/t/{domain}/.well-known/openid-configuration",
            get(discovery),
        )
        .route("/t/{domain}/oauth2/jwks", get(jwks))
        .route("/t/{domain}/oauth2/token", post(token))
        .route("/t/{domain}/oauth2/userinfo", get(userinfo).post(userinfo))
        .route("/t/{domain}/oauth2/introspect", post(introspect))
        .route("/t/{domain}/oauth2/revoke", post(revoke))
        .layer(axum::middleware::from_fn(no_store));
    pages.merge(api)
}

// ---------------------------------------------------------------- headers

/// The origin a page's form may end up at after redirects (the app's redirect URI), added to
/// the portal's `form-action 'self'` (browsers apply it to the redirects after a POST).
#[derive(Clone)]
struct FormAction(String);

async fn page_headers(req: Request, next: Next) -> Response {
    let mut resp = next.run(req).await;
    crate::portal::set_page_headers(&mut resp);
    if let Some(FormAction(origin)) = resp.extensions().get::<FormAction>().cloned() {
        let csp = crate::portal::CSP.replace(
            "form-action 'self'",
            &format!("form-action 'self' {origin}"),
        );
        if let Ok(v) = HeaderValue::from_str(&csp) {
            resp.headers_mut()
                .insert(header::CONTENT_SECURITY_POLICY, v);
        }
    }
    resp
}

async fn no_store(req: Request, next: Next) -> Response {
    let mut resp = next.run(req).await;
    let h = resp.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    resp
}

/// `scheme://authority` of an http(s) URI, `scheme:` of any other.
fn origin_of(uri: &str) -> String {
    match uri.split_once("://") {
        Some((scheme, rest)) => {
            let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
            format!("{scheme}://{authority}")
        }
        None => format!("{}:", uri.split(':').next().unwrap_or("")),
    }
}

fn with_form_action(mut resp: Response, uri: &str) -> Response {
    resp.extensions_mut().insert(FormAction(origin_of(uri)));
    resp
}

fn with_query(uri: &str, params: &[(&str, &str)]) -> String {
    let q = serde_urlencoded::to_string(params).unwrap_or_default();
    let sep = if uri.contains('?') { '&' } else { '?' };
    format!("{uri}{sep}{q}")
}

fn page_error(e: AppError) -> Response {
    error_page(status_of(&e), &e)
}

// ---------------------------------------------------------------- discovery and keys

async fn discovery(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(domain): Path<String>,
) -> ApiResult<Json<Value>> {
    tenant_at(&state, &domain).await?;
    let iss = issuer(&state, &headers, &domain);
    Ok(Json(json!({
        "issuer": iss,
        "authorization_endpoint": format!("{iss}/oauth2/authorize"),
        "token_endpoint": format!("{iss}/oauth2/token"),
        "userinfo_endpoint": format!("{iss}/oauth2/userinfo"),
        "jwks_uri": format!("{iss}/oauth2/jwks"),
        "end_session_endpoint": format!("{iss}/oauth2/logout"),
        "revocation_endpoint": format!("{iss}/oauth2/revoke"),
        "introspection_endpoint": format!("{iss}/oauth2/introspect"),
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": ["authorization_code", "refresh_token"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": Alg::ALL.map(Alg::name),
        "scopes_supported": rules::SUPPORTED_SCOPES,
        "claims_supported": ["sub", "iss", "aud", "exp", "iat", "auth_time", "nonce", "at_hash", "azp",
            "name", "given_name", "family_name", "preferred_username", "updated_at", "email", "groups"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
        "revocation_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
        "introspection_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "code_challenge_methods_supported": ["S256"],
        "prompt_values_supported": ["none", "login", "consent"],
        "authorization_response_iss_parameter_supported": true,
        "claims_parameter_supported": false,
        "request_parameter_supported": false,
        "request_uri_parameter_supported": false,
    })))
}

async fn jwks(State(state): State<AppState>, Path(domain): Path<String>) -> ApiResult<Json<Value>> {
    let tenant = tenant_at(&state, &domain).await?;
    Ok(Json(
        json!({"keys": keys::published(&state, &tenant.id).await?}),
    ))
}

// ---------------------------------------------------------------- authorize

/// What a pending request remembers beyond the checked parameters.
#[derive(Serialize, Deserialize)]
struct Pending {
    auth: Authorization,
    /// The session a sign-in for this request made (its token id): what `prompt=login` wants.
    #[serde(default)]
    signed_in: Option<String>,
}

/// What a code carries to the token endpoint.
#[derive(Serialize, Deserialize)]
struct CodeGrant {
    auth: Authorization,
    auth_time: i64,
}

async fn authorize_get(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(domain): Path<String>,
    Query(p): Query<AuthorizationParams>,
) -> Response {
    authorize(state, headers, domain, p).await
}

async fn authorize_post(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(domain): Path<String>,
    body: Bytes,
) -> Response {
    match serde_urlencoded::from_bytes::<AuthorizationParams>(&body) {
        Ok(p) => authorize(state, headers, domain, p).await,
        Err(_) => page_error(AppError::bad_request(
            "The app sent a malformed sign-in request. Tell the app's administrator.",
        )),
    }
}

async fn authorize(
    state: AppState,
    headers: HeaderMap,
    domain: String,
    p: AuthorizationParams,
) -> Response {
    let found = async {
        let tenant = tenant_at(&state, &domain).await?;
        let app = match &p.client_id {
            Some(id) => state.store.get_app(&tenant.id, id).await?,
            None => None,
        };
        Ok::<_, AppError>((tenant, app))
    }
    .await;
    let (tenant, app) = match found {
        Ok(x) => x,
        Err(e) => return page_error(e),
    };
    let iss = issuer(&state, &headers, &domain);
    let auth = match rules::check_authorization(app.as_ref(), &p) {
        Ok(a) => a,
        Err(AuthorizationError::Unsafe(msg)) => return page_error(AppError::bad_request(msg)),
        Err(AuthorizationError::Redirect { error, description }) => {
            let uri = p.redirect_uri.clone().unwrap_or_default();
            return error_redirect(&uri, error, &description, p.state.as_deref(), &iss);
        }
    };
    let Some(app) = app else {
        return page_error(AppError::internal());
    };
    let now = state.now();
    let pending = PendingRequest {
        id: secrets::new_prefixed_token("").0,
        tenant_id: tenant.id.clone(),
        app_id: app.id.clone(),
        request: match serde_json::to_string(&Pending {
            auth: auth.clone(),
            signed_in: None,
        }) {
            Ok(s) => s,
            Err(_) => return page_error(AppError::internal()),
        },
        created_at: now,
        expires_at: now + rules::REQUEST_SECS,
    };
    if let Err(e) = state.store.insert_pending_request(&pending).await {
        return page_error(e.into());
    }
    let cookies = Cookies::new(&state, &headers);
    proceed(
        &state, &cookies, &tenant, &domain, &iss, &app, &pending, auth, None,
    )
    .await
}

fn error_redirect(
    redirect_uri: &str,
    error: &str,
    description: &str,
    state_param: Option<&str>,
    iss: &str,
) -> Response {
    let mut q = vec![("error", error), ("error_description", description)];
    if let Some(s) = state_param {
        q.push(("state", s));
    }
    q.push(("iss", iss));
    Redirect::to(&with_query(redirect_uri, &q)).into_response()
}

/// The browser's portal session in this tenant: the caller and when the password was entered.
async fn session_in(state: &AppState, cookies: &Cookies, tenant: &Tenant) -> Option<(Caller, i64)> {
    let token = cookies.session()?;
    let caller = Caller::from_token(state, token).await.ok()?;
    if caller.tenant.id != tenant.id {
        return None;
    }
    let rec = state
        .store
        .token_by_hash(&secrets::token_hash(token))
        .await
        .ok()??;
    Some((caller, rec.created_at))
}

/// A pending request of the tenant that has not run out, with its app and checked parameters.
/// The tenant at `domain` and its pending request `id`, for a page handler; an error is the
/// page to answer with.
async fn page_request(
    state: &AppState,
    domain: &str,
    id: &str,
) -> Result<(Tenant, PendingRequest, App, Authorization), Response> {
    let loaded = async {
        let tenant = tenant_at(state, domain).await?;
        let (p, app, auth) = load_pending(state, &tenant, id).await?;
        Ok::<_, AppError>((tenant, p, app, auth))
    }
    .await;
    loaded.map_err(page_error)
}

async fn load_pending(
    state: &AppState,
    tenant: &Tenant,
    id: &str,
) -> ApiResult<(PendingRequest, App, Authorization)> {
    let (p, app, pending) = load_pending_full(state, tenant, id).await?;
    Ok((p, app, pending.auth))
}

async fn load_pending_full(
    state: &AppState,
    tenant: &Tenant,
    id: &str,
) -> ApiResult<(PendingRequest, App, Pending)> {
    let gone = || {
        AppError::bad_request(
            "This sign-in has expired or was already finished. Go back to the app and sign in again.",
        )
    };
    let p = state
        .store
        .get_pending_request(&tenant.id, id)
        .await?
        .filter(|p| p.expires_at > state.now())
        .ok_or_else(gone)?;
    let app = state
        .store
        .get_app(&tenant.id, &p.app_id)
        .await?
        .ok_or_else(gone)?;
    let pending = serde_json::from_str::<Pending>(&p.request).map_err(|_| AppError::internal())?;
    Ok((p, app, pending))
}

/// The next page, or the code, for a pending request. `sign_in_error` is shown on the sign-in
/// page when a sign-in was just refused.
#[allow(clippy::too_many_arguments)]
async fn proceed(
    state: &AppState,
    cookies: &Cookies,
    tenant: &Tenant,
    domain: &str,
    iss: &str,
    app: &App,
    pending: &PendingRequest,
    auth: Authorization,
    sign_in_error: Option<(StatusCode, String, String)>,
) -> Response {
    let now = state.now();
    let session = session_in(state, cookies, tenant).await;
    let (allowed, consented) = match &session {
        Some((caller, _)) => {
            let allowed = match allowed_to_use(state, app, &caller.user).await {
                Ok(a) => a,
                Err(e) => return page_error(e),
            };
            let consented = match state
                .store
                .get_consent(&tenant.id, &caller.user.id, &app.id)
                .await
            {
                Ok(c) => c.is_some_and(|g| rules::consent_covers(&g, &auth.scopes)),
                Err(e) => return page_error(e.into()),
            };
            (allowed, consented)
        }
        None => (false, false),
    };
    let facts = session
        .as_ref()
        .map(|(_, t)| rules::SessionFacts { auth_time: *t });
    let signed_in_for_it = match (&session, serde_json::from_str::<Pending>(&pending.request)) {
        (Some((caller, _)), Ok(p)) => p.signed_in.as_deref() == Some(caller.token_id.as_str()),
        _ => false,
    };
    let step = if sign_in_error.is_some() {
        Step::SignIn
    } else {
        rules::next_step(
            &auth,
            facts,
            signed_in_for_it,
            now,
            allowed,
            consented,
            app.skip_consent,
        )
    };
    match step {
        Step::SignIn => {
            let (status, username, error) =
                sign_in_error.unwrap_or((StatusCode::OK, String::new(), String::new()));
            let (csrf, set_cookie) = cookies.anonymous_csrf();
            let page = SignInPage {
                tracking_id: tracking_id(),
                csrf,
                username: &username,
                error: (!error.is_empty()).then_some(error),
                action: format!("/t/{domain}/oauth2/signin"),
                request: Some(pending.id.clone()),
                app_name: Some(app.name.clone()),
            };
            let mut resp = render(status, &page);
            if let Some(c) = set_cookie {
                resp.headers_mut().append(header::SET_COOKIE, c);
            }
            with_form_action(resp, &auth.redirect_uri)
        }
        Step::Consent => {
            let Some((caller, _)) = session else {
                return page_error(AppError::internal());
            };
            let page = ConsentPage {
                tracking_id: tracking_id(),
                csrf: session::csrf_for_session(cookies.session().unwrap_or_default()),
                action: format!("/t/{domain}/oauth2/consent"),
                request: pending.id.clone(),
                app_name: app.name.clone(),
                user: caller.user.user_principal_name.clone(),
                scopes: auth.scopes.iter().map(|s| describe_scope(s)).collect(),
            };
            with_form_action(render(StatusCode::OK, &page), &auth.redirect_uri)
        }
        Step::Issue => {
            let Some((caller, auth_time)) = session else {
                return page_error(AppError::internal());
            };
            issue_code(
                state,
                tenant,
                iss,
                app,
                pending,
                auth,
                &caller.user,
                auth_time,
            )
            .await
        }
        Step::Fail(error) => {
            let _ = state
                .store
                .take_pending_request(&tenant.id, &pending.id)
                .await;
            if let Some((caller, _)) = &session {
                record(
                    state,
                    &tenant.id,
                    &caller.user.user_principal_name,
                    "app.signIn",
                    Some(app.name.clone()),
                    AuditResult::Failure,
                    Some(format!("{error} (app {})", app.id)),
                )
                .await;
            }
            let description = match error {
                "access_denied" => "the user may not use this app",
                "login_required" => "the user is not signed in",
                _ => "the user has not consented",
            };
            error_redirect(
                &auth.redirect_uri,
                error,
                description,
                auth.state.as_deref(),
                iss,
            )
        }
    }
}

fn describe_scope(s: &str) -> String {
    match s {
        "openid" => "Sign you in with your organisation account".into(),
        "profile" => "Your name and user name".into(),
        "email" => "Your email address".into(),
        "groups" => "The groups you are a member of".into(),
        "offline_access" => "Stay signed in when you are not using the app".into(),
        other => other.into(),
    }
}

async fn allowed_to_use(state: &AppState, app: &App, user: &User) -> ApiResult<bool> {
    if !user.account_enabled {
        return Ok(false);
    }
    if app.access_group_id.is_none() {
        return Ok(true);
    }
    let memberships = state.store.list_memberships(&app.tenant_id).await?;
    Ok(rules::may_use(app, &memberships, &user.id))
}

#[allow(clippy::too_many_arguments)]
async fn issue_code(
    state: &AppState,
    tenant: &Tenant,
    iss: &str,
    app: &App,
    pending: &PendingRequest,
    auth: Authorization,
    user: &User,
    auth_time: i64,
) -> Response {
    let issued = async {
        if !state
            .store
            .take_pending_request(&tenant.id, &pending.id)
            .await?
        {
            return Err(AppError::bad_request(
                "This sign-in was already finished. Go back to the app and sign in again.",
            ));
        }
        let (code, hash) = secrets::new_prefixed_token(CODE_PREFIX);
        let now = state.now();
        let lifetime = state
            .config
            .oidc
            .code_lifetime_secs
            .unwrap_or(rules::CODE_SECS)
            .clamp(1, 600);
        let request = serde_json::to_string(&CodeGrant {
            auth: auth.clone(),
            auth_time,
        })
        .map_err(|_| AppError::internal())?;
        state
            .store
            .insert_code(&CodeRecord {
                hash,
                tenant_id: tenant.id.clone(),
                app_id: app.id.clone(),
                user_id: user.id.clone(),
                grant_id: secrets::new_id(),
                request,
                created_at: now,
                expires_at: now + lifetime,
            })
            .await?;
        Ok(code)
    }
    .await;
    let code = match issued {
        Ok(c) => c,
        Err(e) => return page_error(e),
    };
    record(
        state,
        &tenant.id,
        &user.user_principal_name,
        "app.signIn",
        Some(app.name.clone()),
        AuditResult::Success,
        Some(format!("app {}; scopes {}", app.id, auth.scopes.join(" "))),
    )
    .await;
    let mut q = vec![("code", code.as_str())];
    if let Some(s) = auth.state.as_deref() {
        q.push(("state", s));
    }
    q.push(("iss", iss));
    Redirect::to(&with_query(&auth.redirect_uri, &q)).into_response()
}

#[derive(Deserialize)]
struct RequestQuery {
    request: String,
}

/// `GET /t/{domain}/oauth2/continue?request=…` — where the sign-in form sends the browser:
/// the request goes on with the session it now has.
async fn continue_request(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(domain): Path<String>,
    Query(q): Query<RequestQuery>,
) -> Response {
    let (tenant, pending, app, auth) = match page_request(&state, &domain, &q.request).await {
        Ok(x) => x,
        Err(page) => return page,
    };
    let iss = issuer(&state, &headers, &domain);
    let cookies = Cookies::new(&state, &headers);
    proceed(
        &state, &cookies, &tenant, &domain, &iss, &app, &pending, auth, None,
    )
    .await
}

#[derive(Deserialize)]
struct SignInForm {
    csrf: String,
    username: String,
    password: String,
    request: String,
}

/// `POST /t/{domain}/oauth2/signin` — the portal's sign-in (same throttles, same pass-through
/// for synced users, same messages) for an app's pending request; then on to consent or the app.
async fn sign_in(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(domain): Path<String>,
    axum::Form(form): axum::Form<SignInForm>,
) -> Response {
    let (tenant, pending, app, auth) = match page_request(&state, &domain, &form.request).await {
        Ok(x) => x,
        Err(page) => return page,
    };
    let iss = issuer(&state, &headers, &domain);
    let cookies = Cookies::new(&state, &headers);
    let refuse = |status: StatusCode, message: String| {
        Some((status, form.username.trim().to_string(), message))
    };
    if !cookies.anonymous_csrf_matches(&form.csrf) {
        let e = refuse(
            StatusCode::FORBIDDEN,
            "This form had expired or did not come from this site, so nothing was done. Sign in again on this page.".into(),
        );
        return proceed(
            &state, &cookies, &tenant, &domain, &iss, &app, &pending, auth, e,
        )
        .await;
    }
    // Only accounts of this organisation sign in here; any other reads as a wrong password.
    let key = form.username.trim().to_lowercase();
    let home = app::sign_in::find_tenant_for_upn(&state, &key)
        .await
        .ok()
        .flatten();
    if home.as_ref().map(|t| &t.id) != Some(&tenant.id) {
        let e = refuse(
            StatusCode::UNAUTHORIZED,
            "The user name or password is incorrect.".into(),
        );
        return proceed(
            &state, &cookies, &tenant, &domain, &iss, &app, &pending, auth, e,
        )
        .await;
    }
    let req = TokenRequest {
        user_principal_name: form.username.clone(),
        password: form.password,
    };
    match app::sign_in::browser_session(&state, &Ctx::of(&state), req).await {
        Ok(token) => {
            // This request has had its sign-in (for prompt=login).
            let marked = serde_json::to_string(&Pending {
                auth: auth.clone(),
                signed_in: Some(token.token_id.clone()),
            })
            .map_err(|_| AppError::internal());
            let marked = match marked {
                Ok(m) => state
                    .store
                    .update_pending_request(&tenant.id, &pending.id, &m)
                    .await
                    .map_err(AppError::from),
                Err(e) => Err(e),
            };
            if let Err(e) = marked {
                return page_error(e);
            }
            let device =
                match crate::limits::device_cookie(&state, &token.user_principal_name).await {
                    Ok(c) => c,
                    Err(e) => return page_error(e),
                };
            let next = format!(
                "/t/{domain}/oauth2/continue?{}",
                serde_urlencoded::to_string([("request", &pending.id)]).unwrap_or_default()
            );
            let mut resp = Redirect::to(&next).into_response();
            let h = resp.headers_mut();
            h.append(header::SET_COOKIE, device);
            h.append(
                header::SET_COOKIE,
                cookies.session_cookie(&token.access_token, token.expires_at - state.now()),
            );
            h.append(header::SET_COOKIE, cookies.clear_anonymous_csrf());
            with_form_action(resp, &auth.redirect_uri)
        }
        Err(e) => {
            let status = status_of(&e);
            proceed(
                &state,
                &cookies,
                &tenant,
                &domain,
                &iss,
                &app,
                &pending,
                auth,
                refuse(status, e.message),
            )
            .await
        }
    }
}

#[derive(Template)]
#[template(path = "consent.html")]
struct ConsentPage {
    tracking_id: String,
    csrf: String,
    action: String,
    request: String,
    app_name: String,
    user: String,
    scopes: Vec<String>,
}

#[derive(Deserialize)]
struct ConsentForm {
    csrf: String,
    request: String,
    decision: String,
}

/// `POST /t/{domain}/oauth2/consent` — the user allows (consent is remembered for these
/// scopes) or refuses (`access_denied` to the app).
async fn consent(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(domain): Path<String>,
    axum::Form(form): axum::Form<ConsentForm>,
) -> Response {
    let (tenant, pending, app, auth) = match page_request(&state, &domain, &form.request).await {
        Ok(x) => x,
        Err(page) => return page,
    };
    let iss = issuer(&state, &headers, &domain);
    let cookies = Cookies::new(&state, &headers);
    let csrf_ok = cookies
        .session()
        .is_some_and(|t| session::csrf_matches_session(t, &form.csrf));
    if !csrf_ok {
        return page_error(AppError::forbidden(
            "This form had expired or did not come from this site, so nothing was done. Go back to the app and sign in again.",
        ));
    }
    let Some((caller, auth_time)) = session_in(&state, &cookies, &tenant).await else {
        return proceed(
            &state, &cookies, &tenant, &domain, &iss, &app, &pending, auth, None,
        )
        .await;
    };
    if form.decision != "allow" {
        let _ = state
            .store
            .take_pending_request(&tenant.id, &pending.id)
            .await;
        record(
            &state,
            &tenant.id,
            &caller.user.user_principal_name,
            "app.signIn",
            Some(app.name.clone()),
            AuditResult::Failure,
            Some(format!("consent refused by the user (app {})", app.id)),
        )
        .await;
        return error_redirect(
            &auth.redirect_uri,
            "access_denied",
            "the user did not allow the app",
            auth.state.as_deref(),
            &iss,
        );
    }
    if let Err(e) = state
        .store
        .put_consent(
            &tenant.id,
            &caller.user.id,
            &app.id,
            &auth.scopes,
            state.now(),
        )
        .await
    {
        return page_error(e.into());
    }
    // Consent is given now: the request goes on as if it had been given before.
    let given = Authorization {
        prompt_consent: false,
        ..auth
    };
    let _ = auth_time;
    proceed(
        &state, &cookies, &tenant, &domain, &iss, &app, &pending, given, None,
    )
    .await
}

// ---------------------------------------------------------------- token endpoint

fn oauth_error(status: StatusCode, error: &str, description: &str) -> Response {
    let mut resp = (
        status,
        Json(json!({"error": error, "error_description": description})),
    )
        .into_response();
    if status == StatusCode::UNAUTHORIZED {
        resp.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Basic realm=\"dirbridge\""),
        );
    }
    resp
}

fn invalid_grant(description: &str) -> Response {
    oauth_error(StatusCode::BAD_REQUEST, "invalid_grant", description)
}

fn internal(e: impl Into<AppError>) -> Response {
    let e: AppError = e.into();
    oauth_error(
        StatusCode::INTERNAL_SERVER_ERROR,
        "server_error",
        &e.message,
    )
}

#[derive(Deserialize, Default)]
struct TokenForm {
    grant_type: Option<String>,
    code: Option<String>,
    redirect_uri: Option<String>,
    code_verifier: Option<String>,
    client_id: Option<String>,
    client_secret: Option<String>,
    refresh_token: Option<String>,
    scope: Option<String>,
    token: Option<String>,
}

// The error is the answer itself, made once per request: boxing it buys nothing.
#[allow(clippy::result_large_err)]
fn parse_form(body: &Bytes) -> Result<TokenForm, Response> {
    serde_urlencoded::from_bytes(body).map_err(|_| {
        oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "the body must be application/x-www-form-urlencoded",
        )
    })
}

fn percent_decode(s: &str) -> Option<String> {
    serde_urlencoded::from_str::<Vec<(String, String)>>(&format!("v={s}"))
        .ok()?
        .pop()
        .map(|(_, v)| v)
}

/// The client of a token, introspection or revocation request: HTTP Basic or the form's
/// `client_id` / `client_secret`; a public client names itself only (unless `need_secret`).
/// A back-channel request (token, introspection, revocation): its form, the tenant at `domain`
/// and the authenticated client, or the error to answer with.
async fn client_request(
    state: &AppState,
    headers: &HeaderMap,
    domain: &str,
    body: &Bytes,
    need_secret: bool,
) -> Result<(TokenForm, Tenant, App), Response> {
    let form = parse_form(body)?;
    let tenant = tenant_at(state, domain)
        .await
        .map_err(|e| oauth_error(StatusCode::NOT_FOUND, "invalid_request", &e.message))?;
    let app = client(state, &tenant, headers, &form, need_secret).await?;
    Ok((form, tenant, app))
}

async fn client(
    state: &AppState,
    tenant: &Tenant,
    headers: &HeaderMap,
    form: &TokenForm,
    need_secret: bool,
) -> Result<App, Response> {
    let unauthorized = || {
        oauth_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "client authentication failed",
        )
    };
    let basic = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "));
    let (id, secret) = match basic {
        Some(b64) => {
            if form.client_secret.is_some() {
                return Err(oauth_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_request",
                    "use one client authentication method",
                ));
            }
            let raw = base64::engine::general_purpose::STANDARD
                .decode(b64.trim())
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .ok_or_else(unauthorized)?;
            let (i, s) = raw.split_once(':').ok_or_else(unauthorized)?;
            let id = percent_decode(i).ok_or_else(unauthorized)?;
            if form.client_id.as_deref().is_some_and(|f| f != id) {
                return Err(unauthorized());
            }
            (id, Some(percent_decode(s).ok_or_else(unauthorized)?))
        }
        None => (
            form.client_id.clone().ok_or_else(unauthorized)?,
            form.client_secret.clone(),
        ),
    };
    let app = state
        .store
        .get_app(&tenant.id, &id)
        .await
        .map_err(internal)?
        .ok_or_else(unauthorized)?;
    match (app.client_type, secret) {
        (ClientType::Confidential, Some(s)) => {
            let ok = state
                .store
                .app_secret_matches(&app.id, &secrets::token_hash(&s))
                .await
                .map_err(internal)?;
            if ok {
                Ok(app)
            } else {
                Err(unauthorized())
            }
        }
        (ClientType::Public, None) if !need_secret => Ok(app),
        _ => Err(unauthorized()),
    }
}

/// `POST /t/{domain}/oauth2/token` — `authorization_code` and `refresh_token` grants.
async fn token(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(domain): Path<String>,
    body: Bytes,
) -> Response {
    let (form, tenant, app) = match client_request(&state, &headers, &domain, &body, false).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let iss = issuer(&state, &headers, &domain);
    match form.grant_type.as_deref() {
        Some("authorization_code") => code_grant(&state, &tenant, &iss, &app, &form).await,
        Some("refresh_token") => refresh_grant(&state, &tenant, &iss, &app, &form).await,
        None => oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "grant_type is missing",
        ),
        Some(_) => oauth_error(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            "only authorization_code and refresh_token are supported",
        ),
    }
}

async fn code_grant(
    state: &AppState,
    tenant: &Tenant,
    iss: &str,
    app: &App,
    form: &TokenForm,
) -> Response {
    let Some(code) = form.code.as_deref() else {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "code is missing",
        );
    };
    let rec = match state.store.consume_code(&secrets::token_hash(code)).await {
        Ok(CodeUse::Fresh(r)) => r,
        Ok(CodeUse::Reused(r)) => {
            // A code used twice may have been stolen: what it gave is taken back.
            if r.tenant_id == tenant.id && r.app_id == app.id {
                if let Err(e) = state.store.revoke_grant(&r.grant_id).await {
                    return internal(e);
                }
                replay_audited(
                    state,
                    tenant,
                    app,
                    &r.user_id,
                    "an authorization code was used twice",
                )
                .await;
            }
            return invalid_grant("the authorization code was already used");
        }
        Ok(CodeUse::Unknown) => return invalid_grant("the authorization code is not valid"),
        Err(e) => return internal(e),
    };
    if rec.tenant_id != tenant.id || rec.app_id != app.id {
        return invalid_grant("the authorization code was issued to another client");
    }
    if rec.expires_at <= state.now() {
        return invalid_grant("the authorization code has expired");
    }
    let Ok(grant) = serde_json::from_str::<CodeGrant>(&rec.request) else {
        return internal(AppError::internal());
    };
    if form.redirect_uri.as_deref() != Some(grant.auth.redirect_uri.as_str()) {
        return invalid_grant("redirect_uri does not match the authorization request");
    }
    match (&grant.auth.code_challenge, form.code_verifier.as_deref()) {
        (Some(challenge), Some(v)) if rules::pkce_matches(v, challenge) => {}
        (Some(_), _) => return invalid_grant("the PKCE code_verifier does not match"),
        (None, Some(_)) => {
            return invalid_grant(
                "code_verifier sent, but the authorization request had no code_challenge",
            )
        }
        (None, None) => {}
    }
    let user = match active_user(state, tenant, &rec.user_id).await {
        Ok(Some(u)) => u,
        Ok(None) => return invalid_grant("the account is disabled or no longer exists"),
        Err(e) => return internal(e),
    };
    match issue_tokens(
        state,
        tenant,
        iss,
        app,
        &user,
        &rec.grant_id,
        &grant.auth.scopes,
        grant.auth_time,
        grant.auth.nonce.as_deref(),
    )
    .await
    {
        Ok(v) => Json(v).into_response(),
        Err(e) => internal(e),
    }
}

async fn refresh_grant(
    state: &AppState,
    tenant: &Tenant,
    iss: &str,
    app: &App,
    form: &TokenForm,
) -> Response {
    let Some(token) = form.refresh_token.as_deref() else {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "refresh_token is missing",
        );
    };
    let hash = secrets::token_hash(token);
    let rec = match state.store.app_token_by_hash(&hash).await {
        Ok(Some(r)) if r.kind == "refresh" && r.tenant_id == tenant.id && r.app_id == app.id => r,
        Ok(_) => return invalid_grant("the refresh token is not valid"),
        Err(e) => return internal(e),
    };
    if rec.expires_at <= state.now() {
        return invalid_grant("the refresh token has expired");
    }
    // Rotation: the token is spent now. Spent before (a replay or a race): the whole grant is
    // revoked, as the token may have been stolen.
    let fresh = !rec.revoked
        && match state.store.use_refresh_token(&hash).await {
            Ok(f) => f,
            Err(e) => return internal(e),
        };
    if !fresh {
        if let Err(e) = state.store.revoke_grant(&rec.grant_id).await {
            return internal(e);
        }
        replay_audited(
            state,
            tenant,
            app,
            &rec.user_id,
            "a spent or revoked refresh token was presented",
        )
        .await;
        return invalid_grant("the refresh token was revoked or already used");
    }
    let scopes = match form.scope.as_deref() {
        None => rec.scopes.clone(),
        Some(s) => {
            let asked = rules::parse_scopes(s);
            if !rules::consent_covers(&rec.scopes, &asked) {
                return oauth_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_scope",
                    "a refresh can only narrow the scopes of the sign-in",
                );
            }
            asked
        }
    };
    let user = match active_user(state, tenant, &rec.user_id).await {
        Ok(Some(u)) => u,
        Ok(None) => {
            let _ = state.store.revoke_grant(&rec.grant_id).await;
            return invalid_grant("the account is disabled or no longer exists");
        }
        Err(e) => return internal(e),
    };
    match issue_tokens(
        state,
        tenant,
        iss,
        app,
        &user,
        &rec.grant_id,
        &scopes,
        rec.auth_time,
        None,
    )
    .await
    {
        Ok(v) => Json(v).into_response(),
        Err(e) => internal(e),
    }
}

/// The token's user if the account still exists and is enabled. A disabled account's app
/// tokens are revoked here, at their first use after it was disabled, so enabling it again does
/// not bring them back.
/// A replayed code or refresh token (it may have been stolen): the admin sees it in the audit
/// log as `app.tokenReplay`, against the user, with what was revoked.
async fn replay_audited(state: &AppState, tenant: &Tenant, app: &App, user_id: &str, what: &str) {
    let upn = match state.store.get_user(&tenant.id, user_id).await {
        Ok(Some(u)) => u.user_principal_name,
        _ => user_id.to_string(),
    };
    record(
        state,
        &tenant.id,
        &upn,
        "app.tokenReplay",
        Some(app.name.clone()),
        AuditResult::Failure,
        Some(format!(
            "{what} (app {}); every token of that sign-in was revoked",
            app.id
        )),
    )
    .await;
}

async fn active_user(state: &AppState, tenant: &Tenant, user_id: &str) -> ApiResult<Option<User>> {
    match state.store.get_user(&tenant.id, user_id).await? {
        Some(u) if u.account_enabled => Ok(Some(u)),
        Some(_) => {
            state
                .store
                .revoke_user_app_tokens(&tenant.id, user_id)
                .await?;
            Ok(None)
        }
        None => Ok(None),
    }
}

/// The display names of every group the user is in (nested resolved), sorted.
async fn group_names(state: &AppState, tenant: &Tenant, user: &User) -> ApiResult<Vec<String>> {
    let memberships = state.store.list_memberships(&tenant.id).await?;
    let mut names = Vec::new();
    for id in rules::groups_of(&memberships, &user.id) {
        if let Some(g) = state.store.get_group(&tenant.id, &id).await? {
            names.push(g.display_name);
        }
    }
    names.sort();
    Ok(names)
}

async fn claims_of(
    state: &AppState,
    tenant: &Tenant,
    user: &User,
    scopes: &[String],
) -> ApiResult<serde_json::Map<String, Value>> {
    let groups = if scopes.iter().any(|s| s == "groups") {
        group_names(state, tenant, user).await?
    } else {
        Vec::new()
    };
    Ok(rules::user_claims(user, scopes, &groups))
}

#[allow(clippy::too_many_arguments)]
async fn issue_tokens(
    state: &AppState,
    tenant: &Tenant,
    iss: &str,
    app: &App,
    user: &User,
    grant_id: &str,
    scopes: &[String],
    auth_time: i64,
    nonce: Option<&str>,
) -> ApiResult<Value> {
    let now = state.now();
    let record = |kind: &str, hash: String, lifetime: i64| AppTokenRecord {
        hash,
        id: secrets::new_id(),
        tenant_id: tenant.id.clone(),
        app_id: app.id.clone(),
        user_id: user.id.clone(),
        grant_id: grant_id.to_string(),
        kind: kind.to_string(),
        scopes: scopes.to_vec(),
        auth_time,
        created_at: now,
        expires_at: now + lifetime,
        revoked: false,
    };
    let (access, hash) = secrets::new_prefixed_token(ACCESS_PREFIX);
    state
        .store
        .insert_app_token(&record("access", hash, app.access_token_lifetime_secs))
        .await?;
    let mut out = json!({
        "access_token": access,
        "token_type": "Bearer",
        "expires_in": app.access_token_lifetime_secs,
        "scope": scopes.join(" "),
    });
    if scopes.iter().any(|s| s == "offline_access") {
        let (refresh, hash) = secrets::new_prefixed_token(REFRESH_PREFIX);
        state
            .store
            .insert_app_token(&record("refresh", hash, app.refresh_token_lifetime_secs))
            .await?;
        out["refresh_token"] = json!(refresh);
    }
    let alg = Alg::parse(&app.id_token_signing_alg).unwrap_or(Alg::Es256);
    let (kid, private) = keys::signing_key(state, &tenant.id, alg).await?;
    let claims = rules::id_token_claims(
        claims_of(state, tenant, user, scopes).await?,
        &rules::IdTokenFacts {
            issuer: iss,
            client_id: &app.id,
            nonce,
            auth_time,
            now,
            lifetime: app.id_token_lifetime_secs,
            access_token: &access,
        },
    );
    out["id_token"] = json!(tenant::oidc::keys::sign_jwt(alg, &kid, &private, &claims)?);
    Ok(out)
}

// ---------------------------------------------------------------- userinfo, introspection, revocation

/// A valid access token of this tenant, with its user.
async fn access_token(
    state: &AppState,
    tenant: &Tenant,
    token: &str,
) -> ApiResult<Option<(AppTokenRecord, User)>> {
    let Some(rec) = state
        .store
        .app_token_by_hash(&secrets::token_hash(token))
        .await?
    else {
        return Ok(None);
    };
    if rec.tenant_id != tenant.id || rec.revoked || rec.expires_at <= state.now() {
        return Ok(None);
    }
    Ok(active_user(state, tenant, &rec.user_id)
        .await?
        .map(|u| (rec, u)))
}

/// `GET|POST /t/{domain}/oauth2/userinfo` with `Authorization: Bearer <access token>`.
async fn userinfo(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(domain): Path<String>,
) -> Response {
    let invalid = || {
        let mut r = StatusCode::UNAUTHORIZED.into_response();
        r.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer error=\"invalid_token\""),
        );
        r
    };
    let Some(token) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
    else {
        return invalid();
    };
    let tenant = match tenant_at(&state, &domain).await {
        Ok(t) => t,
        Err(_) => return invalid(),
    };
    let found = match access_token(&state, &tenant, token).await {
        Ok(f) => f,
        Err(e) => return internal(e),
    };
    let Some((rec, user)) = found.filter(|(r, _)| r.kind == "access") else {
        return invalid();
    };
    match claims_of(&state, &tenant, &user, &rec.scopes).await {
        Ok(c) => Json(Value::Object(c)).into_response(),
        Err(e) => internal(e),
    }
}

/// `POST /t/{domain}/oauth2/introspect` (RFC 7662, confidential clients): active only for the
/// client's own valid tokens.
async fn introspect(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(domain): Path<String>,
    body: Bytes,
) -> Response {
    let (form, tenant, app) = match client_request(&state, &headers, &domain, &body, true).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let Some(token) = form.token.as_deref() else {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "token is missing",
        );
    };
    let found = match access_token(&state, &tenant, token).await {
        Ok(f) => f.filter(|(r, _)| r.app_id == app.id),
        Err(e) => return internal(e),
    };
    let Some((rec, user)) = found else {
        return Json(json!({"active": false})).into_response();
    };
    Json(json!({
        "active": true,
        "scope": rec.scopes.join(" "),
        "client_id": app.id,
        "username": user.user_principal_name,
        "token_type": if rec.kind == "access" { "Bearer" } else { "refresh_token" },
        "exp": rec.expires_at,
        "iat": rec.created_at,
        "sub": user.id,
        "aud": app.id,
        "iss": issuer(&state, &headers, &domain),
    }))
    .into_response()
}

/// `POST /t/{domain}/oauth2/revoke` (RFC 7009): revoking a refresh token ends its whole grant.
/// Always 200 for an authenticated client, whether or not the token was known.
async fn revoke(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(domain): Path<String>,
    body: Bytes,
) -> Response {
    let (form, tenant, app) = match client_request(&state, &headers, &domain, &body, false).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let Some(token) = form.token.as_deref() else {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "token is missing",
        );
    };
    let hash = secrets::token_hash(token);
    let result = async {
        if let Some(rec) = state.store.app_token_by_hash(&hash).await? {
            if rec.tenant_id == tenant.id && rec.app_id == app.id {
                if rec.kind == "refresh" {
                    state.store.revoke_grant(&rec.grant_id).await?;
                } else {
                    state.store.revoke_app_token(&hash).await?;
                }
            }
        }
        Ok::<_, store::StoreError>(())
    }
    .await;
    match result {
        Ok(()) => StatusCode::OK.into_response(),
        Err(e) => internal(e),
    }
}

// ---------------------------------------------------------------- logout

#[derive(Deserialize, Default)]
struct LogoutParams {
    id_token_hint: Option<String>,
    client_id: Option<String>,
    post_logout_redirect_uri: Option<String>,
    state: Option<String>,
    csrf: Option<String>,
}

#[derive(Template)]
#[template(path = "logout.html")]
struct LogoutPage {
    tracking_id: String,
    csrf: String,
    action: String,
    user: String,
    app_name: Option<String>,
    client_id: Option<String>,
    post_logout_redirect_uri: Option<String>,
    state: Option<String>,
}

/// The app a logout request names (by `client_id` or the audience of a valid `id_token_hint`)
/// and where to send the browser afterwards (a registered post-logout URI, or the portal).
async fn logout_target(
    state: &AppState,
    tenant: &Tenant,
    p: &LogoutParams,
) -> ApiResult<(Option<App>, String)> {
    let mut client_id = p.client_id.clone();
    if client_id.is_none() {
        if let Some(hint) = &p.id_token_hint {
            let jwks = keys::published(state, &tenant.id).await?;
            client_id = tenant::oidc::keys::verify_jwt(&jwks, hint)
                .and_then(|c| c["aud"].as_str().map(str::to_string));
        }
    }
    let app = match &client_id {
        Some(id) => state.store.get_app(&tenant.id, id).await?,
        None => None,
    };
    let target = match &p.post_logout_redirect_uri {
        None => "/".to_string(),
        Some(uri) => {
            let registered = app
                .as_ref()
                .is_some_and(|a| a.post_logout_redirect_uris.iter().any(|r| r == uri));
            if !registered {
                return Err(AppError::bad_request(
                    "The app asked to send you to an address after sign-out that is not registered for it, so nothing was done. Its administrator must register the exact address (postLogoutRedirectUris).",
                ));
            }
            match &p.state {
                Some(s) => with_query(uri, &[("state", s)]),
                None => uri.clone(),
            }
        }
    };
    Ok((app, target))
}

/// `GET /t/{domain}/oauth2/logout` — RP-initiated logout: a signed-in browser is asked to
/// confirm (a link alone never signs anyone out); one without a session goes straight on.
async fn logout(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(domain): Path<String>,
    Query(p): Query<LogoutParams>,
) -> Response {
    let loaded = async {
        let tenant = tenant_at(&state, &domain).await?;
        let target = logout_target(&state, &tenant, &p).await?;
        Ok::<_, AppError>((tenant, target))
    }
    .await;
    let (tenant, (app, target)) = match loaded {
        Ok(x) => x,
        Err(e) => return page_error(e),
    };
    let cookies = Cookies::new(&state, &headers);
    let Some((caller, _)) = session_in(&state, &cookies, &tenant).await else {
        return Redirect::to(&target).into_response();
    };
    let page = LogoutPage {
        tracking_id: tracking_id(),
        csrf: session::csrf_for_session(cookies.session().unwrap_or_default()),
        action: format!("/t/{domain}/oauth2/logout"),
        user: caller.user.user_principal_name.clone(),
        app_name: app.as_ref().map(|a| a.name.clone()),
        client_id: app.as_ref().map(|a| a.id.clone()),
        post_logout_redirect_uri: p.post_logout_redirect_uri.clone(),
        state: p.state.clone(),
    };
    with_form_action(render(StatusCode::OK, &page), &target)
}

/// `POST /t/{domain}/oauth2/logout` — the confirmed sign-out: the portal session is revoked.
async fn logout_confirmed(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(domain): Path<String>,
    axum::Form(p): axum::Form<LogoutParams>,
) -> Response {
    let loaded = async {
        let tenant = tenant_at(&state, &domain).await?;
        let target = logout_target(&state, &tenant, &p).await?;
        Ok::<_, AppError>((tenant, target))
    }
    .await;
    let (tenant, (_, target)) = match loaded {
        Ok(x) => x,
        Err(e) => return page_error(e),
    };
    let cookies = Cookies::new(&state, &headers);
    let csrf_ok = cookies
        .session()
        .is_some_and(|t| session::csrf_matches_session(t, p.csrf.as_deref().unwrap_or_default()));
    if !csrf_ok {
        return page_error(AppError::forbidden(
            "This form had expired or did not come from this site, so nothing was done. Go back and try again.",
        ));
    }
    if let Some((caller, _)) = session_in(&state, &cookies, &tenant).await {
        if let Err(e) = app::sign_in::sign_out(&state, &caller).await {
            return page_error(e);
        }
    }
    let mut resp = Redirect::to(&target).into_response();
    resp.headers_mut()
        .append(header::SET_COOKIE, cookies.clear_session());
    with_form_action(resp, &target)
}
