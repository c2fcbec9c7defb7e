//! The cloud half of dirbridge: the HTTP surface (REST API under `/api/v1`, `/openapi.json`,
//! `/healthz`, `/metrics`) over the `tenant` decisions and the `store`. Handlers move bytes and
//! call `tenant` for every decision; they hold no business rules of their own beyond wiring.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]
#![recursion_limit = "256"]

pub mod agent_auth;
pub mod api;
pub mod app;
pub mod audit;
pub mod auth;
pub mod bootstrap;
pub mod config;
pub mod domains;
pub mod error;
pub mod extract;
pub mod limits;
pub mod mail;
pub mod metrics;
pub mod notices;
pub mod oidc;
pub mod openapi;
pub mod portal;
pub mod presence;
pub mod pushes;
pub mod sms;
pub mod state;
#[cfg(feature = "test-util")]
pub mod testing;
pub mod writeback;

use std::future::IntoFuture;
use std::sync::Arc;

use anyhow::Context;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::json;
use tenant::clock::{Clock, SystemClock};

use crate::error::{AppError, TRACKING_ID};
pub use crate::state::AppState;

/// The full application router for `state`.
///
/// Also starts this process's writeback dispatcher (once per state; see [`writeback::start`]),
/// so every server built from a router hands queued writeback requests to its agents.
pub fn router(state: AppState) -> Router {
    use api::*;
    crate::writeback::start(&state);
    let max_body = state.config.max_body_bytes;
    let v1 = Router::new()
        .route("/auth/token", post(auth::sign_in).delete(auth::sign_out))
        .route("/auth/tokens/{id}", axum::routing::delete(auth::revoke))
        .route("/me", get(auth::me))
        .route("/tenant", get(tenant::get).patch(tenant::update))
        .route(
            "/tenant/domains",
            get(tenant::list_domains).post(tenant::add_domain),
        )
        .route(
            "/tenant/domains/{domain}/verify",
            post(tenant::verify_domain),
        )
        .route("/users", get(users::list).post(users::create))
        .route(
            "/users/{user}",
            get(users::get).patch(users::update).delete(users::delete),
        )
        .route("/users/{user}/password", post(users::reset_password))
        .route("/users/{user}/revoke-tokens", post(users::revoke_tokens))
        .route(
            "/users/{user}/licenses",
            get(licenses::user_licenses).post(licenses::assign),
        )
        .route(
            "/users/{user}/licenses/{sku}",
            axum::routing::delete(licenses::unassign),
        )
        .route("/users/{user}/entitlement", get(licenses::entitlement))
        .route("/groups", get(groups::list).post(groups::create))
        .route(
            "/groups/{group}",
            get(groups::get)
                .patch(groups::update)
                .delete(groups::delete),
        )
        .route(
            "/groups/{group}/members",
            get(groups::members).post(groups::add_member),
        )
        .route(
            "/groups/{group}/members/{member}",
            axum::routing::delete(groups::remove_member),
        )
        .route(
            "/groups/{group}/licenses",
            get(licenses::group_licenses).post(licenses::assign_group),
        )
        .route(
            "/groups/{group}/licenses/{sku}",
            axum::routing::delete(licenses::unassign_group),
        )
        .route("/licenses", get(licenses::summary))
        .route("/licenses/skus", get(licenses::skus))
        .route("/licenses/trial", post(licenses::start_trial))
        .route("/licenses/subscriptions", post(licenses::purchase))
        .route("/licenses/errors", get(licenses::errors))
        .route("/policy", get(policy::get).put(policy::put))
        .route("/policy/questions", get(policy::questions))
        .route("/audit", get(api::audit::list))
        .route("/agents", get(agents::list))
        .route("/agents/tokens", post(agents::create_token))
        .route("/agents/register", post(agents::register))
        .route("/agents/{id}", axum::routing::delete(agents::revoke))
        .route("/agent/heartbeat", post(agents::heartbeat))
        .route("/agent/config", get(agents::config))
        .route("/agent/sync/batches", post(sync::apply_batch))
        .route("/agent/sync/runs", post(sync::report_run))
        .route("/agent/ws", get(push::connect))
        .route("/sync/run", post(push::sync_run))
        .route("/sync/errors", get(sync::errors))
        .route("/sync/runs", get(sync::runs))
        .route(
            "/sync/settings",
            get(sync::get_settings).patch(sync::update_settings),
        )
        .route("/sync/allow-deletes", post(sync::allow_deletes))
        .merge(writeback::routes())
        .merge(sspr::routes())
        .merge(crate::oidc::apps::routes());
    Router::new()
        .nest("/api/v1", v1)
        .merge(portal::routes())
        .merge(crate::oidc::routes())
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics::handler))
        .route("/openapi.json", get(openapi::serve))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(max_body))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            limits::enforce,
        ))
        .layer(middleware::from_fn_with_state(
            state.metrics.clone(),
            metrics::track,
        ))
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(|_| {
            AppError::internal().into_response()
        }))
        .layer(middleware::from_fn(hygiene))
        .layer(middleware::from_fn(tracking))
        .with_state(state)
}

/// Marks the credential headers of every request sensitive, and adds the headers every
/// response carries, whatever produced it: `X-Content-Type-Options: nosniff`
/// everywhere, and `Cache-Control: no-store` on the API (its answers hold tokens, reset session
/// secrets and personal data that no browser or proxy cache may keep). A body refused as too
/// large anywhere (also by an extractor that is not ours) leaves as the JSON error document.
async fn hygiene(mut req: Request, next: Next) -> Response {
    let api = req.uri().path().starts_with("/api/");
    // Credentials in headers are never shown by a `Debug` of the request (`Sensitive`).
    for name in [header::AUTHORIZATION.as_str(), api::sspr::SESSION_HEADER] {
        if let Some(v) = req.headers_mut().get_mut(name) {
            v.set_sensitive(true);
        }
    }
    let mut resp = next.run(req).await;
    let is_json = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if resp.status() == StatusCode::PAYLOAD_TOO_LARGE && !is_json {
        resp = extract::too_large().into_response();
    }
    let h = resp.headers_mut();
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    if api {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    resp
}

/// Gives every request a tracking id: in the task-local for errors and audit records, and in
/// the `x-tracking-id` response header.
async fn tracking(req: Request, next: Next) -> Response {
    let id = tenant::secrets::tracking_id();
    let mut resp = TRACKING_ID.scope(id.clone(), next.run(req)).await;
    if let Ok(v) = HeaderValue::from_str(&id) {
        resp.headers_mut().insert("x-tracking-id", v);
    }
    resp
}

async fn not_found() -> AppError {
    AppError::not_found("There is no such endpoint. The API is described at /openapi.json.")
}

async fn method_not_allowed() -> AppError {
    AppError::new(
        proto::ErrorCode::MethodNotAllowed,
        "This endpoint does not accept that HTTP method; see /openapi.json.",
    )
}

#[utoipa::path(
    get,
    path = "/healthz",
    operation_id = "healthz",
    tag = "meta",
    summary = "Liveness and database check",
    responses(
        (status = 200, description = "The service and its database answer ({status: ok, database})", body = Object),
        (status = 503, description = "The database does not answer", body = Object),
    ),
)]
pub async fn healthz(State(state): State<AppState>) -> Response {
    match state.store.ping().await {
        Ok(()) => {
            Json(json!({"status": "ok", "database": state.store.backend_name()})).into_response()
        }
        Err(e) => {
            tracing::error!(error = %e, "health check: database unreachable");
            (
                axum::http::StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({"status": "unavailable", "database": state.store.backend_name()})),
            )
                .into_response()
        }
    }
}

/// Opens the configured store. For SQLite it creates the data dir readable by the owner only,
/// and keeps the database files (which hold password hashes) that way too.
pub async fn open_store(config: &config::Config) -> anyhow::Result<store::Store> {
    let sqlite = config.database_url.is_none();
    if sqlite {
        std::fs::create_dir_all(&config.data_dir).with_context(|| {
            format!(
                "cannot create the data directory {}",
                config.data_dir.display()
            )
        })?;
        restrict(&config.data_dir, 0o700)?;
    }
    let store = store::Store::open(&config.store_spec())
        .await
        .context("cannot open the database")?;
    if sqlite {
        for suffix in ["", "-wal", "-shm"] {
            let f = config.data_dir.join(format!("dirbridge.db{suffix}"));
            if f.exists() {
                restrict(&f, 0o600)?;
            }
        }
    }
    Ok(store)
}

#[cfg(unix)]
fn restrict(path: &std::path::Path, mode: u32) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .with_context(|| format!("cannot restrict the permissions of {}", path.display()))
}

#[cfg(not(unix))]
fn restrict(_: &std::path::Path, _: u32) -> anyhow::Result<()> {
    Ok(())
}

/// Serves the cloud until Ctrl-C or SIGTERM, then drains ([`serve_on`]).
pub async fn serve(config: config::Config) -> anyhow::Result<()> {
    let store = open_store(&config).await?;
    let listener = tokio::net::TcpListener::bind(&config.listen)
        .await
        .with_context(|| {
            format!(
                "cannot listen on {}: is another process using it?",
                config.listen
            )
        })?;
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    tracing::info!(listen = %config.listen, database = store.backend_name(), "dirbridge cloud serving");
    serve_on(
        listener,
        AppState::new(store, clock, config),
        shutdown_signal(),
    )
    .await
}

/// Serves `state` on `listener` until `shutdown` completes, then drains: no new writeback is
/// taken or dispatched, writebacks in flight get `shutdown_grace_secs` to finish and are
/// answered either way ([`writeback::drain`]), connections then get a moment to deliver their
/// answers, and the function returns — within the grace period plus about a second, whatever
/// sockets (agents' push sockets) are still open.
pub async fn serve_on(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let app = router(state.clone());
    // Answers and pushes are small and latency-bound (a writeback or sign-in crosses this
    // socket several times): never hold a write back for Nagle.
    let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "cannot set TCP_NODELAY on a connection");
        }
    });
    let (drained_tx, drained_rx) = tokio::sync::oneshot::channel::<()>();
    let drain_state = state.clone();
    let stop = async move {
        shutdown.await;
        writeback::drain(&drain_state).await;
        let _ = drained_tx.send(());
    };
    let server = axum::serve(
        listener,
        app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
    .with_graceful_shutdown(stop)
    .into_future();
    tokio::pin!(server);
    tokio::select! {
        r = &mut server => return Ok(r?),
        _ = drained_rx => {}
    }
    // Drained: open requests finish writing their answers; a socket still open after this
    // (an agent's WebSocket, an idle keep-alive) is dropped.
    match tokio::time::timeout(std::time::Duration::from_secs(1), &mut server).await {
        Ok(r) => Ok(r?),
        Err(_) => {
            tracing::info!("shut down with connections still open; they are closed");
            Ok(())
        }
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        {
            s.recv().await;
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
}
