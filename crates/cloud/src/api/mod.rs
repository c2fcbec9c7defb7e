//! REST handlers under `/api/v1`, one module per resource.

pub mod audit;
pub mod groups;
pub mod licenses;
pub mod policy;
pub mod tenant;
pub mod users;
