//! Wire types shared by the cloud, the agent and the CLI: API bodies, error codes, roles,
//! licensing and policy documents. Serde only; no logic beyond trivial helpers.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

use serde::{Deserialize, Serialize};

pub mod error;
pub mod oidc;
pub mod sync;
pub mod writeback;
pub use error::{ApiError, ErrorBody, ErrorCode};

/// Seconds since the Unix epoch (UTC). Every time on the wire and in the store is this.
pub type Epoch = i64;

// ---------------------------------------------------------------- tenants and administrators

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Tenant {
    pub id: String,
    pub name: String,
    /// `NAME.<suffix>`, always present in `domains`.
    pub initial_domain: String,
    /// The verified domains (the initial one first); claimed, unproven ones are only in
    /// `GET /api/v1/tenant/domains`.
    pub domains: Vec<String>,
    /// ISO 3166-1 alpha-2; group-based licensing falls back to it for members without one.
    pub default_usage_location: Option<String>,
    /// Soft match of new synced objects onto cloud users by UPN / mail (the sync issue uses it).
    pub soft_match_enabled: bool,
    pub created_at: Epoch,
}

/// One of a tenant's domains and whether it is proven (`GET /api/v1/tenant/domains`). Only a
/// verified domain carries UPNs, soft match and sign-in routing; [`Tenant::domains`] lists
/// just those.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TenantDomain {
    pub domain: String,
    pub verified: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verified_at: Option<Epoch>,
    /// While unverified: the DNS record that proves the domain.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verification: Option<DomainChallenge>,
}

/// Publish a TXT record `value` at `name`, then ask for verification.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DomainChallenge {
    pub record_type: String,
    pub name: String,
    pub value: String,
}

#[derive(
    Debug,
    Clone,
    Copy,
    Serialize,
    Deserialize,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    utoipa::ToSchema,
)]
#[serde(rename_all = "camelCase")]
pub enum Role {
    GlobalAdministrator,
    UserAdministrator,
    PasswordAdministrator,
    LicenseAdministrator,
}

impl Role {
    pub const ALL: [Role; 4] = [
        Role::GlobalAdministrator,
        Role::UserAdministrator,
        Role::PasswordAdministrator,
        Role::LicenseAdministrator,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            Role::GlobalAdministrator => "globalAdministrator",
            Role::UserAdministrator => "userAdministrator",
            Role::PasswordAdministrator => "passwordAdministrator",
            Role::LicenseAdministrator => "licenseAdministrator",
        }
    }
    pub fn display_name(self) -> &'static str {
        match self {
            Role::GlobalAdministrator => "Global Administrator",
            Role::UserAdministrator => "User Administrator",
            Role::PasswordAdministrator => "Password Administrator",
            Role::LicenseAdministrator => "License Administrator",
        }
    }
    pub fn parse(s: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| {
            r.as_str().eq_ignore_ascii_case(s) || r.display_name().eq_ignore_ascii_case(s)
        })
    }
}

// ---------------------------------------------------------------- users and groups

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub enum Source {
    /// Created in the cloud.
    Cloud,
    /// Synced from an on-premises directory by an agent.
    OnPremises,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Cloud => "cloud",
            Source::OnPremises => "onPremises",
        }
    }
    pub fn parse(s: &str) -> Option<Source> {
        match s {
            "cloud" => Some(Source::Cloud),
            "onPremises" => Some(Source::OnPremises),
            _ => None,
        }
    }
}

/// What sync knows about an object that came from on-premises. Filled by the sync issue.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OnPremises {
    /// Base64 source anchor (objectGUID, ms-DS-ConsistencyGuid or entryUUID). Case-sensitive.
    pub immutable_id: String,
    pub distinguished_name: Option<String>,
    pub sam_account_name: Option<String>,
    pub last_sync_at: Option<Epoch>,
    /// Attribute names (API spelling) that the directory owns and the cloud may not change.
    pub owned_attributes: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct User {
    pub id: String,
    pub tenant_id: String,
    pub user_principal_name: String,
    pub display_name: String,
    pub given_name: Option<String>,
    pub surname: Option<String>,
    pub mail: Option<String>,
    pub mobile_phone: Option<String>,
    pub office_phone: Option<String>,
    pub usage_location: Option<String>,
    pub account_enabled: bool,
    pub source: Source,
    pub roles: Vec<Role>,
    pub on_premises: Option<OnPremises>,
    pub created_at: Epoch,
    pub updated_at: Epoch,
}

/// Body of `POST /api/v1/users`. `Debug` hides the password.
#[derive(Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NewUser {
    #[schema(
        pattern = r"^[A-Za-z0-9'_!#^~-]+(\.[A-Za-z0-9'_!#^~-]+)*@[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+$",
        max_length = 113
    )]
    pub user_principal_name: String,
    #[schema(
        min_length = 1,
        max_length = 256,
        pattern = r"^[^\x00-\x1f\x7f-\x9f\u00ad\u061c\u180e\u200b-\u200f\u202a-\u202e\u2060-\u206f\ufeff\ufff9-\ufffb]*[^\s\x00-\x1f\x7f-\x9f\u00ad\u061c\u180e\u200b-\u200f\u202a-\u202e\u2060-\u206f\ufeff\ufff9-\ufffb][^\x00-\x1f\x7f-\x9f\u00ad\u061c\u180e\u200b-\u200f\u202a-\u202e\u2060-\u206f\ufeff\ufff9-\ufffb]*$"
    )]
    pub display_name: String,
    #[serde(default)]
    pub given_name: Option<String>,
    #[serde(default)]
    pub surname: Option<String>,
    #[serde(default)]
    pub mail: Option<String>,
    #[serde(default)]
    pub mobile_phone: Option<String>,
    #[serde(default)]
    pub office_phone: Option<String>,
    #[serde(default)]
    pub usage_location: Option<String>,
    #[serde(default = "yes")]
    pub account_enabled: bool,
    /// Initial password for cloud sign-in. Optional: a user without one cannot sign in.
    #[serde(default)]
    #[schema(format = Password)]
    pub password: Option<String>,
    #[serde(default)]
    pub roles: Vec<Role>,
}

fn yes() -> bool {
    true
}

/// Body of `PATCH /api/v1/users/{id}`. Absent field: unchanged. `null`: cleared.
#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UserPatch {
    #[schema(
        pattern = r"^[A-Za-z0-9'_!#^~-]+(\.[A-Za-z0-9'_!#^~-]+)*@[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+$",
        max_length = 113
    )]
    #[serde(
        default,
        deserialize_with = "crate::present::deserialize",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(nullable = false)]
    pub user_principal_name: Option<String>,
    #[schema(
        min_length = 1,
        max_length = 256,
        pattern = r"^[^\x00-\x1f\x7f-\x9f\u00ad\u061c\u180e\u200b-\u200f\u202a-\u202e\u2060-\u206f\ufeff\ufff9-\ufffb]*[^\s\x00-\x1f\x7f-\x9f\u00ad\u061c\u180e\u200b-\u200f\u202a-\u202e\u2060-\u206f\ufeff\ufff9-\ufffb][^\x00-\x1f\x7f-\x9f\u00ad\u061c\u180e\u200b-\u200f\u202a-\u202e\u2060-\u206f\ufeff\ufff9-\ufffb]*$"
    )]
    #[serde(
        default,
        deserialize_with = "crate::present::deserialize",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(nullable = false)]
    pub display_name: Option<String>,
    #[serde(
        default,
        with = "double_option",
        skip_serializing_if = "Option::is_none"
    )]
    pub given_name: Option<Option<String>>,
    #[serde(
        default,
        with = "double_option",
        skip_serializing_if = "Option::is_none"
    )]
    pub surname: Option<Option<String>>,
    #[serde(
        default,
        with = "double_option",
        skip_serializing_if = "Option::is_none"
    )]
    pub mail: Option<Option<String>>,
    #[serde(
        default,
        with = "double_option",
        skip_serializing_if = "Option::is_none"
    )]
    pub mobile_phone: Option<Option<String>>,
    #[serde(
        default,
        with = "double_option",
        skip_serializing_if = "Option::is_none"
    )]
    pub office_phone: Option<Option<String>>,
    #[serde(
        default,
        with = "double_option",
        skip_serializing_if = "Option::is_none"
    )]
    pub usage_location: Option<Option<String>>,
    #[serde(
        default,
        deserialize_with = "crate::present::deserialize",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(nullable = false)]
    pub account_enabled: Option<bool>,
    #[serde(
        default,
        deserialize_with = "crate::present::deserialize",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(nullable = false)]
    pub roles: Option<Vec<Role>>,
}

/// Distinguishes "absent" (outer None) from "null" (Some(None)). Pair with
/// `skip_serializing_if = "Option::is_none"` so "absent" is not sent as `null`.
pub mod double_option {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};
    pub fn serialize<S: Serializer, T: Serialize>(
        v: &Option<Option<T>>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        match v {
            None => s.serialize_none(),
            Some(inner) => inner.serialize(s),
        }
    }
    pub fn deserialize<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
        d: D,
    ) -> Result<Option<Option<T>>, D::Error> {
        Option::<T>::deserialize(d).map(Some)
    }
}

/// For a PATCH field that may be absent (unchanged) but not `null`: `null` is refused as the
/// wrong type instead of being read as "absent". Use with `#[serde(default, deserialize_with =
/// "proto::present::deserialize")]` and `#[schema(nullable = false)]`.
pub mod present {
    use serde::{Deserialize, Deserializer};
    pub fn deserialize<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
        d: D,
    ) -> Result<Option<T>, D::Error> {
        T::deserialize(d).map(Some)
    }
}

/// Filters for listing users. All present filters must match.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UserFilter {
    /// Case-insensitive prefix of the UPN.
    pub upn_prefix: Option<String>,
    /// Case-insensitive substring of the display name.
    pub display_name: Option<String>,
    /// Users holding this SKU (directly or through a group), in the active state.
    pub sku_id: Option<String>,
    pub source: Option<Source>,
}

/// Keyset paging: results ordered by a stable key; `after` is the `next` of the previous page.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct PageRequest {
    pub after: Option<String>,
    pub limit: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// Pass as `after` to get the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Group {
    pub id: String,
    pub tenant_id: String,
    pub display_name: String,
    pub description: Option<String>,
    pub source: Source,
    pub on_premises: Option<OnPremises>,
    pub created_at: Epoch,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NewGroup {
    #[schema(
        min_length = 1,
        max_length = 256,
        pattern = r"^[^\x00-\x1f\x7f-\x9f\u00ad\u061c\u180e\u200b-\u200f\u202a-\u202e\u2060-\u206f\ufeff\ufff9-\ufffb]*[^\s\x00-\x1f\x7f-\x9f\u00ad\u061c\u180e\u200b-\u200f\u202a-\u202e\u2060-\u206f\ufeff\ufff9-\ufffb][^\x00-\x1f\x7f-\x9f\u00ad\u061c\u180e\u200b-\u200f\u202a-\u202e\u2060-\u206f\ufeff\ufff9-\ufffb]*$"
    )]
    pub display_name: String,
    #[serde(default)]
    pub description: Option<String>,
}

#[derive(
    Debug,
    Clone,
    Copy,
    Serialize,
    Deserialize,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    utoipa::ToSchema,
)]
#[serde(rename_all = "camelCase")]
pub enum MemberKind {
    User,
    Group,
}

#[derive(
    Debug, Clone, Serialize, Deserialize, PartialEq, Eq, Hash, PartialOrd, Ord, utoipa::ToSchema,
)]
#[serde(rename_all = "camelCase")]
pub struct MemberRef {
    pub kind: MemberKind,
    pub id: String,
}

// ---------------------------------------------------------------- licensing

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Sku {
    /// Stable id, e.g. `DIRBRIDGE_PREMIUM`.
    pub id: String,
    pub name: String,
    /// Service plans the SKU unlocks, e.g. `SSPR_WRITEBACK`.
    pub service_plans: Vec<String>,
    /// The free tier needs no subscription and has no seat limit.
    pub free: bool,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub enum SubscriptionKind {
    Trial,
    Purchased,
}

/// Unit state of a subscription, derived from the clock: enabled until it ends, then warning
/// (grace), then suspended, then lockedOut.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub enum SubscriptionState {
    Enabled,
    Warning,
    Suspended,
    LockedOut,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Subscription {
    pub id: String,
    pub tenant_id: String,
    pub sku_id: String,
    pub kind: SubscriptionKind,
    pub units: u32,
    pub starts_at: Epoch,
    pub ends_at: Epoch,
    pub created_at: Epoch,
}

/// One line of `dirbridge licenses list`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SkuSummary {
    pub sku_id: String,
    pub name: String,
    pub enabled_units: u32,
    pub warning_units: u32,
    pub suspended_units: u32,
    pub locked_out_units: u32,
    pub consumed_units: u32,
    pub subscriptions: Vec<SubscriptionView>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SubscriptionView {
    #[serde(flatten)]
    pub subscription: Subscription,
    pub state: SubscriptionState,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NewSubscription {
    pub sku_id: String,
    pub units: u32,
    /// Term in days.
    pub term_days: u32,
}

/// How a user holds a licence: assigned directly, or inherited from a group.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, Hash, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", tag = "type", content = "groupId")]
pub enum AssignmentSource {
    Direct,
    Group(String),
}

/// Per-user licence error states, as admins of the incumbent know them.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
pub enum LicenseErrorKind {
    CountViolation,
    MutuallyExclusiveViolation,
    DependencyViolation,
    ProhibitedInUsageLocationViolation,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub enum AssignmentState {
    Active,
    Error,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LicenseAssignment {
    pub tenant_id: String,
    pub user_id: String,
    pub sku_id: String,
    pub source: AssignmentSource,
    pub state: AssignmentState,
    pub error: Option<LicenseErrorKind>,
    /// Usage location that applied (the user's own, or the tenant default for group assignments).
    pub effective_usage_location: Option<String>,
    pub updated_at: Epoch,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct GroupLicense {
    pub tenant_id: String,
    pub group_id: String,
    pub sku_id: String,
    pub created_at: Epoch,
}

/// Answer of the single entitlement check used by SSPR and writeback.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Entitlement {
    pub allowed: bool,
    /// Why not, in words for an admin; `None` when allowed.
    pub reason: Option<String>,
    pub sku_id: Option<String>,
}

// ---------------------------------------------------------------- password reset policy

#[derive(
    Debug,
    Clone,
    Copy,
    Serialize,
    Deserialize,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    utoipa::ToSchema,
)]
#[serde(rename_all = "camelCase")]
pub enum AuthMethod {
    Email,
    MobilePhone,
    OfficePhone,
    SecurityQuestions,
    AuthenticatorApp,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub enum SsprScope {
    None,
    Group,
    All,
}

/// The self-service password reset policy of a tenant. See REFERENCE.md, "Self-service password
/// reset policy"; `tenant::policy::validate` enforces every rule.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SsprPolicy {
    pub enabled_for: SsprScope,
    /// Required when `enabled_for` is `group`.
    #[serde(default)]
    pub group_id: Option<String>,
    pub methods_required: u8,
    pub methods: Vec<AuthMethod>,
    pub questions_to_register: u8,
    pub questions_to_answer: u8,
    /// Questions users choose from: predefined ones and the tenant's own.
    pub security_questions: Vec<String>,
    pub require_registration_at_sign_in: bool,
    /// 0 = never ask users to reconfirm.
    pub reconfirm_days: u16,
    pub notify_users_on_reset: bool,
    pub notify_admins_on_admin_reset: bool,
    #[serde(default)]
    pub helpdesk_url: Option<String>,
    #[serde(default)]
    pub helpdesk_email: Option<String>,
    /// Write passwords back to the on-prem directory (needs an agent with writeback enabled).
    pub writeback_enabled: bool,
    pub allow_unlock_without_reset: bool,
}

/// The policy as the API shows it: the tenant's, plus the fixed stricter one for administrators
/// and whether writeback can work right now.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PolicyView {
    pub policy: SsprPolicy,
    pub admin_policy: AdminPolicy,
    pub writeback_available: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AdminPolicy {
    pub methods_required: u8,
    pub methods: Vec<AuthMethod>,
    pub security_questions_allowed: bool,
}

// ---------------------------------------------------------------- audit

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub enum AuditResult {
    Success,
    Failure,
    /// Nobody knows: a writeback whose agent claimed it and sent no result before the deadline
    /// (`outcomeUnknown`); the password may have changed.
    Unknown,
}

impl AuditResult {
    /// How a writeback's outcome is audited.
    pub fn of_writeback(outcome: writeback::Outcome) -> AuditResult {
        match outcome {
            writeback::Outcome::Succeeded => AuditResult::Success,
            writeback::Outcome::OutcomeUnknown => AuditResult::Unknown,
            _ => AuditResult::Failure,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuditRecord {
    pub id: String,
    pub tenant_id: String,
    pub time: Epoch,
    /// UPN of who acted (or `system`).
    pub actor: String,
    /// Dotted verb, e.g. `user.create`, `license.assign`, `signIn`.
    pub action: String,
    /// What it acted on (a UPN, group name, SKU id…), if anything.
    pub target: Option<String>,
    pub result: AuditResult,
    pub tracking_id: String,
    /// Free-form details for admins; never secrets.
    pub details: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuditFilter {
    pub actor: Option<String>,
    pub action: Option<String>,
    pub target: Option<String>,
    pub since: Option<Epoch>,
    pub until: Option<Epoch>,
    pub tracking_id: Option<String>,
}

// ---------------------------------------------------------------- sign-in

/// Body of `POST /api/v1/auth/token`. `Debug` hides the password.
#[derive(Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TokenRequest {
    #[schema(
        pattern = r"^[A-Za-z0-9'_!#^~-]+(\.[A-Za-z0-9'_!#^~-]+)*@[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+$",
        max_length = 113
    )]
    pub user_principal_name: String,
    #[schema(min_length = 1, max_length = 256, format = Password)]
    pub password: String,
}

/// A sign-in's token. `Debug` hides the token.
#[derive(Clone, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TokenResponse {
    pub access_token: String,
    pub token_id: String,
    pub expires_at: Epoch,
    pub user_principal_name: String,
    pub tenant_id: String,
    pub roles: Vec<Role>,
}

/// What `Debug` prints in place of a password, answer, code or token.
pub const REDACTED: &str = "[redacted]";

impl std::fmt::Debug for NewUser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewUser")
            .field("user_principal_name", &self.user_principal_name)
            .field("display_name", &self.display_name)
            .field("account_enabled", &self.account_enabled)
            .field("password", &self.password.as_ref().map(|_| REDACTED))
            .field("roles", &self.roles)
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for TokenRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenRequest")
            .field("user_principal_name", &self.user_principal_name)
            .field("password", &REDACTED)
            .finish()
    }
}

impl std::fmt::Debug for TokenResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenResponse")
            .field("access_token", &REDACTED)
            .field("token_id", &self.token_id)
            .field("expires_at", &self.expires_at)
            .field("user_principal_name", &self.user_principal_name)
            .field("tenant_id", &self.tenant_id)
            .field("roles", &self.roles)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_a_password_or_token() {
        const MARKER: &str = "Marker-Secret-7781";
        let shown = [
            format!(
                "{:?}",
                TokenRequest {
                    user_principal_name: "a@b.example".into(),
                    password: MARKER.into(),
                }
            ),
            format!(
                "{:?}",
                NewUser {
                    user_principal_name: "a@b.example".into(),
                    password: Some(MARKER.into()),
                    ..Default::default()
                }
            ),
            format!(
                "{:?}",
                TokenResponse {
                    access_token: MARKER.into(),
                    token_id: "t".into(),
                    expires_at: 0,
                    user_principal_name: "a@b.example".into(),
                    tenant_id: "x".into(),
                    roles: Vec::new(),
                }
            ),
            format!(
                "{:?}",
                sync::RegistrationToken {
                    token: MARKER.into(),
                    expires_at: 0,
                }
            ),
            format!(
                "{:?}",
                sync::AgentRegistration {
                    registration_token: MARKER.into(),
                    name: "n".into(),
                    version: "v".into(),
                    signing_public_key: "k".into(),
                    sealing_public_key: "k".into(),
                }
            ),
        ];
        for s in shown {
            assert!(!s.contains(MARKER), "{s}");
            assert!(s.contains(REDACTED), "{s}");
            assert!(!s.contains("Marker"), "{s}");
        }
    }

    #[test]
    fn user_patch_keeps_absent_apart_from_null_both_ways() {
        let p = UserPatch {
            mail: Some(None),
            display_name: Some("Ada".into()),
            ..Default::default()
        };
        let text = serde_json::to_string(&p).unwrap();
        assert_eq!(text, r#"{"displayName":"Ada","mail":null}"#);
        let back: UserPatch = serde_json::from_str(&text).unwrap();
        assert_eq!(back.mail, Some(None));
        assert_eq!(back.surname, None);
    }

    #[test]
    fn tenant_is_camel_case_on_the_wire() {
        let t = Tenant {
            id: "t".into(),
            name: "contoso".into(),
            initial_domain: "contoso.example".into(),
            domains: vec![],
            default_usage_location: None,
            soft_match_enabled: true,
            created_at: 0,
        };
        let v = serde_json::to_value(&t).unwrap();
        assert!(v.get("initialDomain").is_some() && v.get("defaultUsageLocation").is_some());
    }
}
