//! (being written) see docs/writeback.md.

use axum::Router;
use serde_json::Value;

use crate::openapi::Operation;
use crate::state::AppState;

/// This module's operations in the OpenAPI document (checked against the router by a test).
pub const OPERATIONS: &[Operation] = &[];

/// This module's request schemas in the OpenAPI document.
pub fn schemas() -> Vec<(&'static str, Value)> {
    Vec::new()
}

/// This module's routes, relative to `/api/v1`.
pub fn routes() -> Router<AppState> {
    Router::new()
}
