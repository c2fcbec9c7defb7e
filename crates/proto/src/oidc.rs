//! Wire types of app registrations (`/api/v1/apps`): the applications that sign the tenant's
//! users in through its OpenID Connect provider.

use serde::{Deserialize, Serialize};

use crate::Epoch;

/// How an app proves who it is at the token endpoint.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub enum ClientType {
    /// A server-side app holding a client secret (`client_secret_basic` / `client_secret_post`).
    Confidential,
    /// A browser or native app that cannot keep a secret: PKCE (S256) is required instead.
    Public,
}

/// An app registration as the API shows it. Secrets are never shown again after creation.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct App {
    /// The app's id, which is also its OAuth `client_id`.
    pub id: String,
    pub tenant_id: String,
    pub name: String,
    pub client_type: ClientType,
    /// Where the provider may send the browser back to: compared exactly, character for character.
    pub redirect_uris: Vec<String>,
    /// Where RP-initiated logout may send the browser afterwards (exact).
    pub post_logout_redirect_uris: Vec<String>,
    /// Scopes the app may ask for (`openid` always among them).
    pub allowed_scopes: Vec<String>,
    /// Only members (direct or nested) of this group may sign in to the app; `null`: everyone.
    pub access_group_id: Option<String>,
    pub access_token_lifetime_secs: i64,
    pub id_token_lifetime_secs: i64,
    pub refresh_token_lifetime_secs: i64,
    /// The admin agreed for every user: no consent page.
    pub skip_consent: bool,
    /// `ES256` (default) or `RS256`.
    pub id_token_signing_alg: String,
    /// Ids and creation times of the app's client secrets (never the secrets).
    pub secrets: Vec<AppSecretInfo>,
    pub created_at: Epoch,
    pub updated_at: Epoch,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AppSecretInfo {
    pub id: String,
    pub created_at: Epoch,
}

/// Body of `POST /api/v1/apps`. Absent settings take the defaults.
#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NewApp {
    pub name: String,
    pub client_type: Option<ClientType>,
    pub redirect_uris: Vec<String>,
    #[serde(default)]
    pub post_logout_redirect_uris: Vec<String>,
    #[serde(default)]
    pub allowed_scopes: Option<Vec<String>>,
    #[serde(default)]
    pub access_group_id: Option<String>,
    #[serde(default)]
    pub access_token_lifetime_secs: Option<i64>,
    #[serde(default)]
    pub id_token_lifetime_secs: Option<i64>,
    #[serde(default)]
    pub refresh_token_lifetime_secs: Option<i64>,
    #[serde(default)]
    pub skip_consent: Option<bool>,
    #[serde(default)]
    pub id_token_signing_alg: Option<String>,
}

/// Body of `PATCH /api/v1/apps/{id}`. Absent field: unchanged; `accessGroupId: null`: everyone.
#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AppPatch {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redirect_uris: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub post_logout_redirect_uris: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed_scopes: Option<Vec<String>>,
    #[serde(
        default,
        with = "crate::double_option",
        skip_serializing_if = "Option::is_none"
    )]
    pub access_group_id: Option<Option<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_token_lifetime_secs: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id_token_lifetime_secs: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_token_lifetime_secs: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skip_consent: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id_token_signing_alg: Option<String>,
}

/// Answer of `POST /api/v1/apps` and `POST /api/v1/apps/{id}/secrets`: the app, and for a
/// confidential app the new client secret — shown this once, stored only as a hash.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AppCreated {
    pub app: App,
    /// The issuer apps are configured with (discovery at `{issuer}/.well-known/openid-configuration`).
    pub issuer: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_secret: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_secret_id: Option<String>,
}

/// Answer of `POST /api/v1/apps/keys/rotate`: the new signing keys' ids.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct KeysRotated {
    pub key_ids: Vec<String>,
}
