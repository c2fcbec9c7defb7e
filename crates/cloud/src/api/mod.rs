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
