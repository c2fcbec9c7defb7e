//! The agent link: enrolment, signed agent requests, sync batches and run reports.
//! See docs/sync.md for the protocol in words.

use serde::{Deserialize, Serialize};

use crate::Epoch;

/// Header names of a signed agent request.
pub const HEADER_AGENT: &str = "x-dirbridge-agent";
pub const HEADER_TIMESTAMP: &str = "x-dirbridge-timestamp";
pub const HEADER_NONCE: &str = "x-dirbridge-nonce";
pub const HEADER_SIGNATURE: &str = "x-dirbridge-signature";
/// A signed request older or newer than this (seconds) is refused.
pub const MAX_CLOCK_SKEW_SECS: i64 = 300;

/// The bytes an agent signs with its Ed25519 key (signature sent base64 in `HEADER_SIGNATURE`):
/// `DIRBRIDGE-AGENT-V1\n{METHOD}\n{path with query}\n{timestamp}\n{nonce}\n{sha256 hex of body}`.
pub fn signing_input(
    method: &str,
    path_and_query: &str,
    timestamp: Epoch,
    nonce: &str,
    body_sha256_hex: &str,
) -> String {
    format!(
        "DIRBRIDGE-AGENT-V1\n{}\n{path_and_query}\n{timestamp}\n{nonce}\n{body_sha256_hex}",
        method.to_ascii_uppercase()
    )
}

// ---------------------------------------------------------------- enrolment

/// `POST /api/v1/agents/tokens` (Global Administrator) → a one-time registration token.
#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NewRegistrationToken {
    /// Lifetime in seconds, 60..=86400; default 3600.
    #[serde(default)]
    #[schema(minimum = 60, maximum = 86400)]
    pub lifetime_secs: Option<i64>,
}

/// A registration token. `Debug` hides it.
#[derive(Clone, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RegistrationToken {
    /// Shown once; the cloud keeps only its SHA-256.
    pub token: String,
    pub expires_at: Epoch,
}

/// `POST /api/v1/agents/register` (no bearer; the registration token is the credential).
/// `Debug` hides the registration token.
#[derive(Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AgentRegistration {
    #[schema(min_length = 1, format = Password)]
    pub registration_token: String,
    #[schema(
        min_length = 1,
        max_length = 256,
        pattern = r"^[^\x00-\x1f\x7f-\x9f\u00ad\u061c\u180e\u200b-\u200f\u202a-\u202e\u2060-\u206f\ufeff\ufff9-\ufffb]*[^\s\x00-\x1f\x7f-\x9f\u00ad\u061c\u180e\u200b-\u200f\u202a-\u202e\u2060-\u206f\ufeff\ufff9-\ufffb][^\x00-\x1f\x7f-\x9f\u00ad\u061c\u180e\u200b-\u200f\u202a-\u202e\u2060-\u206f\ufeff\ufff9-\ufffb]*$"
    )]
    pub name: String,
    #[schema(
        min_length = 1,
        max_length = 64,
        pattern = r"^[^\x00-\x1f\x7f-\x9f\u00ad\u061c\u180e\u200b-\u200f\u202a-\u202e\u2060-\u206f\ufeff\ufff9-\ufffb]*[^\s\x00-\x1f\x7f-\x9f\u00ad\u061c\u180e\u200b-\u200f\u202a-\u202e\u2060-\u206f\ufeff\ufff9-\ufffb][^\x00-\x1f\x7f-\x9f\u00ad\u061c\u180e\u200b-\u200f\u202a-\u202e\u2060-\u206f\ufeff\ufff9-\ufffb]*$"
    )]
    pub version: String,
    /// Ed25519 public key, base64 (32 bytes): verifies the agent's signed requests.
    #[schema(pattern = r"^[A-Za-z0-9+/]{43}=$", content_encoding = "base64")]
    pub signing_public_key: String,
    /// X25519 public key, base64 (32 bytes): writeback payloads are sealed to it.
    #[schema(pattern = r"^[A-Za-z0-9+/]{43}=$", content_encoding = "base64")]
    pub sealing_public_key: String,
}

impl std::fmt::Debug for RegistrationToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegistrationToken")
            .field("token", &crate::REDACTED)
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

impl std::fmt::Debug for AgentRegistration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgentRegistration")
            .field("registration_token", &crate::REDACTED)
            .field("name", &self.name)
            .field("version", &self.version)
            .field("signing_public_key", &self.signing_public_key)
            .field("sealing_public_key", &self.sealing_public_key)
            .finish()
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AgentRegistered {
    pub agent_id: String,
    pub tenant_id: String,
    pub tenant_domains: Vec<String>,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub enum AgentHealth {
    /// Heartbeat within 3 intervals and the last run did not fail.
    Healthy,
    /// Heartbeat within 3 intervals, but the last run failed or stopped.
    Degraded,
    /// No heartbeat for 3 intervals.
    Unreachable,
    Revoked,
}

/// One line of `dirbridge agents list`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Agent {
    pub id: String,
    pub tenant_id: String,
    pub name: String,
    pub version: String,
    pub registered_at: Epoch,
    pub last_heartbeat_at: Option<Epoch>,
    pub revoked: bool,
    pub health: AgentHealth,
    /// Short words on the last run or problem, for admins.
    pub status: Option<String>,
}

/// `POST /api/v1/agent/heartbeat` (signed).
#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Heartbeat {
    pub version: String,
    /// Words for admins: "idle", "delta sync", "stopped: deletion threshold"…
    pub status: Option<String>,
}

/// Sync settings an admin controls in the cloud, read by the agent (`GET /api/v1/agent/config`)
/// at every cycle.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AgentSyncSettings {
    /// Most deletes the agent exports within [`AgentSyncSettings::deletion_window_secs`] (all
    /// runs of that window together) before it stops.
    pub deletion_threshold: u32,
    /// The window, in seconds, over which deletes count toward the threshold, so that quick
    /// delta cycles (change notification) cannot slice a mass delete under it.
    #[serde(default = "default_deletion_window_secs")]
    pub deletion_window_secs: u32,
    /// Set by `dirbridge sync allow-deletes`; lets the next run export its deletes once.
    pub allow_deletes_once: bool,
    /// Import and compute, export nothing.
    pub staging: bool,
    pub delta_interval_secs: u32,
    pub full_interval_secs: u32,
}

/// The deletion window of a cloud that does not send one: one hour.
pub const DEFAULT_DELETION_WINDOW_SECS: u32 = 3_600;

fn default_deletion_window_secs() -> u32 {
    DEFAULT_DELETION_WINDOW_SECS
}

// ---------------------------------------------------------------- sync

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Hash, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub enum ObjectKind {
    User,
    Group,
}

/// What the agent exports for one on-prem object. Absent optional attributes are cleared in the
/// cloud (the directory owns them).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq, Hash, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SyncAttributes {
    pub user_principal_name: Option<String>,
    pub display_name: Option<String>,
    pub given_name: Option<String>,
    pub surname: Option<String>,
    pub mail: Option<String>,
    pub mobile_phone: Option<String>,
    pub office_phone: Option<String>,
    /// AD/OpenLDAP `c`, becomes the usage location when it is a valid ISO 3166-1 alpha-2 code.
    pub country: Option<String>,
    pub account_enabled: bool,
    pub distinguished_name: String,
    pub sam_account_name: Option<String>,
    pub description: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SyncObject {
    /// Base64 source anchor (objectGUID / ms-DS-ConsistencyGuid / entryUUID). Case-sensitive.
    pub anchor: String,
    pub kind: ObjectKind,
    pub attributes: SyncAttributes,
    /// Groups only: anchors of direct members (users and groups) in scope.
    #[serde(default)]
    pub members: Vec<String>,
}

/// `POST /api/v1/agent/sync/batches` (signed). Applied atomically; `(agent, run_id, seq)` makes a
/// replay return the first answer and change nothing.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SyncBatch {
    pub run_id: String,
    pub seq: u32,
    pub upserts: Vec<SyncObject>,
    /// Anchors of objects deleted on-prem or gone out of scope.
    pub deletes: Vec<String>,
}

/// Most objects (upserts + deletes) in a batch that every cloud accepts: an agent's first
/// batch of a run is never larger.
pub const MAX_BATCH_OBJECTS: usize = 500;

/// Most objects (upserts + deletes) in a batch of a cloud whose answers say so
/// ([`BatchResult::max_batch_objects`]). A bulk load commits a tenth as often: each commit of
/// a large directory rewrites index pages all over the users table, so fewer and larger
/// commits write far less (docs/benchmarks.md).
pub const BULK_BATCH_OBJECTS: usize = 5_000;

/// Most member references (all groups' `members` together) an agent puts in one batch, so
/// that a batch of large groups stays a few megabytes (a group larger than this goes alone).
pub const MAX_BATCH_MEMBERS: usize = 100_000;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SyncObjectError {
    pub anchor: String,
    /// `duplicateUpn`, `upnSuffixNotVerified`, `invalidUpn`, `softMatchRefusedAdmin`, `invalidValue`, …
    pub code: String,
    pub message: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BatchResult {
    pub added: u32,
    pub updated: u32,
    pub deleted: u32,
    pub unchanged: u32,
    pub errors: Vec<SyncObjectError>,
    /// Most objects this cloud accepts in the agent's next batches (absent from clouds that
    /// accept only [`MAX_BATCH_OBJECTS`]). Not part of the answer kept for replays.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_batch_objects: Option<u32>,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub enum RunKind {
    Full,
    Delta,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub enum RunOutcome {
    Running,
    Succeeded,
    /// Finished, some objects had errors.
    CompletedWithErrors,
    /// Stopped before export: too many deletes.
    StoppedDeletionThreshold,
    /// Staging mode: computed, nothing exported.
    Staged,
    Failed,
}

/// `POST /api/v1/agent/sync/runs` (signed): the agent reports a run when it ends.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SyncRun {
    pub run_id: String,
    #[serde(default)]
    pub agent_id: String,
    pub connector: String,
    pub kind: RunKind,
    pub outcome: RunOutcome,
    pub started_at: Epoch,
    pub finished_at: Option<Epoch>,
    pub added: u32,
    pub updated: u32,
    pub deleted: u32,
    pub errors: u32,
    /// Staging / threshold: what would have been deleted, counted.
    pub pending_deletes: u32,
    pub message: Option<String>,
}

impl SyncRun {
    /// A delta run that succeeded and changed nothing (the schedule makes one every interval).
    pub fn changed_nothing(&self) -> bool {
        self.kind == RunKind::Delta
            && self.outcome == RunOutcome::Succeeded
            && self.added == 0
            && self.updated == 0
            && self.deleted == 0
            && self.errors == 0
            && self.pending_deletes == 0
    }
}

fn one() -> u32 {
    1
}

/// One line of `dirbridge sync runs` (`GET /api/v1/sync/runs`): a run, or consecutive delta
/// runs of one agent's connector that changed nothing, kept as one line.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SyncRunRow {
    /// The run (for coalesced runs: the latest).
    #[serde(flatten)]
    pub run: SyncRun,
    /// How many runs the line stands for: 1, or the number of consecutive delta runs that
    /// changed nothing.
    #[serde(default = "one")]
    pub runs: u32,
    /// For coalesced runs: when the first of them started.
    #[serde(default)]
    pub first_started_at: Option<Epoch>,
}

/// One line of `dirbridge sync errors` (`GET /api/v1/sync/errors`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SyncErrorRecord {
    pub agent_id: String,
    pub anchor: String,
    pub distinguished_name: Option<String>,
    pub code: String,
    pub message: String,
    pub first_seen_at: Epoch,
    pub last_seen_at: Epoch,
}

// ---------------------------------------------------------------- admin sync control

/// `PATCH /api/v1/sync/settings` (Global Administrator): only the fields present change.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schema(min_properties = 1)]
pub struct SyncSettingsPatch {
    #[serde(
        default,
        deserialize_with = "crate::present::deserialize",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(nullable = false, minimum = 1)]
    pub deletion_threshold: Option<u32>,
    /// At least 60 seconds, at most 7 days.
    #[serde(
        default,
        deserialize_with = "crate::present::deserialize",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(nullable = false, minimum = 60, maximum = 604800)]
    pub deletion_window_secs: Option<u32>,
    #[serde(
        default,
        deserialize_with = "crate::present::deserialize",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(nullable = false)]
    pub staging: Option<bool>,
    /// At least 5.
    #[serde(
        default,
        deserialize_with = "crate::present::deserialize",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(nullable = false, minimum = 5)]
    pub delta_interval_secs: Option<u32>,
    /// At least 3600.
    #[serde(
        default,
        deserialize_with = "crate::present::deserialize",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(nullable = false, minimum = 3600)]
    pub full_interval_secs: Option<u32>,
}

// ---------------------------------------------------------------- push

/// `GET /api/v1/agent/ws` (signed, empty body): the WebSocket the agent dials out to, on which
/// the cloud pushes [`AgentPush`] messages as JSON text frames.
pub const AGENT_WS_PATH: &str = "/api/v1/agent/ws";

/// What the cloud pushes to a connected agent.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum AgentPush {
    /// Run a sync cycle now (`dirbridge sync run [--full]`).
    SyncNow { full: bool },
    /// Run one password writeback request (sealed to this agent). The agent claims it
    /// (`POST /api/v1/agent/writeback/claim`) before touching the directory and reports the
    /// result (`POST /api/v1/agent/writeback/results`). See docs/writeback.md.
    Writeback {
        request: crate::writeback::SealedRequest,
    },
    /// Keep-alive, every 30 seconds.
    Ping,
}
