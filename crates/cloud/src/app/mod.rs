//! The use cases of the cloud: what a person or an administrator can ask for, decided once for
//! every front end. The JSON API (`crate::api`) and the web pages (`crate::portal`) parse a
//! request, call one function here and render what it returns; neither decides anything.
//!
//! A use case takes the process state it needs (store, configuration, the writeback hub), the
//! signed-in [`caller::Caller`] where there is one, and a [`Ctx`]: the time of the request (from
//! the state's [`tenant::clock::Clock`]) and its tracking id. It returns a typed value or an
//! [`crate::error::AppError`] — a stable [`proto::ErrorCode`] and a sentence saying what to do
//! next — and knows nothing of HTTP (no status codes, headers, cookies or JSON documents).
//! Rules that need no I/O live in `tenant`; this layer loads the rows, asks `tenant`, writes
//! the result and the audit record.

pub mod agents;
pub mod audit;
pub mod caller;
pub mod directory;
pub mod group_licensing;
pub mod licensing;
pub mod lockout;
pub mod policy;
pub mod registration;
pub mod self_service;
pub mod sign_in;
pub mod sspr;
pub mod sync;
pub mod users;
pub mod writeback;

use proto::Epoch;

use crate::state::AppState;

/// The request a use case runs for: its time and its tracking id.
#[derive(Debug, Clone)]
pub struct Ctx {
    /// "Now" for every decision of the request, read once from the state's clock.
    pub now: Epoch,
    /// The tracking id the person sees and the audit log and agent events carry.
    pub tracking_id: String,
}

impl Ctx {
    /// The context of the request being served: the clock's time and the request's tracking id.
    pub fn of(state: &AppState) -> Self {
        Ctx {
            now: state.now(),
            tracking_id: crate::error::tracking_id(),
        }
    }
}
