//! REST handlers under `/api/v1`, one module per resource.

pub mod agents;
pub mod audit;
pub mod groups;
pub mod licenses;
pub mod policy;
pub mod push;
pub mod sspr;
pub mod sync;
pub mod tenant;
pub mod users;
pub mod writeback;

/// One operation of the OpenAPI document (`crate::openapi`): (method, path, operation id,
/// summary, request schema, success status). Here, not in `openapi`, so the modules that list
/// their own operations and the document that reads them do not depend on each other.
pub type Operation = (
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    Option<&'static str>,
    u16,
);
