//! The OpenAPI 3.1 document served at `/openapi.json`, built from one table of operations so the
//! document and the router are checked against each other by a test. The OpenID Connect
//! endpoints under `/t/{domain}` are described by their own discovery document instead.

use serde_json::{json, Map, Value};

pub use crate::api::Operation;

pub const OPERATIONS: &[Operation] = &[
    (
        "post",
        "/api/v1/auth/token",
        "signIn",
        "Sign in with UPN and password; returns an expiring bearer token. A user synced from on-premises is checked by pass-through (an agent binds to the directory as the user): 401 for a wrong password or an on-prem refusal (disabled, locked out, password expired or must change, account expired, logon hours) with what to do next, 429 when the account's sign-in throttle is exhausted (nothing reaches the directory then), 503 when no agent could check the password",
        Some("TokenRequest"),
        200,
    ),
    (
        "delete",
        "/api/v1/auth/token",
        "signOut",
        "Revoke the calling token",
        None,
        204,
    ),
    (
        "delete",
        "/api/v1/auth/tokens/{tokenId}",
        "revokeToken",
        "Revoke a token (own, or any as Global Administrator)",
        None,
        204,
    ),
    ("get", "/api/v1/me", "me", "The signed-in user", None, 200),
    (
        "get",
        "/api/v1/tenant",
        "getTenant",
        "Tenant settings and domains",
        None,
        200,
    ),
    (
        "patch",
        "/api/v1/tenant",
        "updateTenant",
        "Change default usage location or soft matching",
        Some("TenantPatch"),
        200,
    ),
    (
        "post",
        "/api/v1/tenant/domains",
        "addDomain",
        "Claim a domain, unverified; answers the TXT record that proves it",
        Some("DomainBody"),
        201,
    ),
    (
        "get",
        "/api/v1/tenant/domains",
        "listDomains",
        "The tenant's domains, verified or not",
        None,
        200,
    ),
    (
        "post",
        "/api/v1/tenant/domains/{domain}/verify",
        "verifyDomain",
        "Look up the domain's TXT record and verify it",
        None,
        200,
    ),
    (
        "get",
        "/api/v1/users",
        "listUsers",
        "List users (keyset paging; filters upnPrefix, displayName, skuId, source)",
        None,
        200,
    ),
    (
        "post",
        "/api/v1/users",
        "createUser",
        "Create a cloud user",
        Some("NewUser"),
        201,
    ),
    (
        "get",
        "/api/v1/users/{user}",
        "getUser",
        "One user by id or UPN",
        None,
        200,
    ),
    (
        "patch",
        "/api/v1/users/{user}",
        "updateUser",
        "Change a user (absent = unchanged, null = clear)",
        Some("UserPatch"),
        200,
    ),
    (
        "delete",
        "/api/v1/users/{user}",
        "deleteUser",
        "Delete a user",
        None,
        204,
    ),
    (
        "post",
        "/api/v1/users/{user}/password",
        "resetPassword",
        "Admin reset: a cloud user's password (204), or a synced user's on-prem password through writeback, body {password, mustChange?, unlock?} (200, WritebackResult)",
        Some("AdminResetBody"),
        200,
    ),
    (
        "post",
        "/api/v1/users/{user}/revoke-tokens",
        "revokeUserTokens",
        "Revoke all of a user's tokens",
        None,
        200,
    ),
    (
        "get",
        "/api/v1/users/{user}/licenses",
        "userLicenses",
        "A user's licence assignments",
        None,
        200,
    ),
    (
        "post",
        "/api/v1/users/{user}/licenses",
        "assignLicense",
        "Assign a licence directly",
        Some("SkuBody"),
        201,
    ),
    (
        "delete",
        "/api/v1/users/{user}/licenses/{skuId}",
        "removeLicense",
        "Remove a direct licence assignment",
        None,
        204,
    ),
    (
        "get",
        "/api/v1/users/{user}/entitlement",
        "entitlement",
        "May this user use SSPR with writeback now?",
        None,
        200,
    ),
    (
        "get",
        "/api/v1/groups",
        "listGroups",
        "List groups",
        None,
        200,
    ),
    (
        "post",
        "/api/v1/groups",
        "createGroup",
        "Create a group",
        Some("NewGroup"),
        201,
    ),
    (
        "get",
        "/api/v1/groups/{group}",
        "getGroup",
        "One group",
        None,
        200,
    ),
    (
        "patch",
        "/api/v1/groups/{group}",
        "updateGroup",
        "Rename or describe a group",
        Some("GroupPatch"),
        200,
    ),
    (
        "delete",
        "/api/v1/groups/{group}",
        "deleteGroup",
        "Delete a group",
        None,
        204,
    ),
    (
        "get",
        "/api/v1/groups/{group}/members",
        "listMembers",
        "Direct members",
        None,
        200,
    ),
    (
        "post",
        "/api/v1/groups/{group}/members",
        "addMember",
        "Add a user or a nested group",
        Some("MemberRef"),
        201,
    ),
    (
        "delete",
        "/api/v1/groups/{group}/members/{member}",
        "removeMember",
        "Remove a direct member",
        None,
        204,
    ),
    (
        "get",
        "/api/v1/groups/{group}/licenses",
        "groupLicenses",
        "Licences assigned to a group",
        None,
        200,
    ),
    (
        "post",
        "/api/v1/groups/{group}/licenses",
        "assignGroupLicense",
        "Assign a licence to a group (reaches nested members)",
        Some("SkuBody"),
        201,
    ),
    (
        "delete",
        "/api/v1/groups/{group}/licenses/{skuId}",
        "removeGroupLicense",
        "Remove a group's licence",
        None,
        204,
    ),
    (
        "get",
        "/api/v1/licenses/skus",
        "listSkus",
        "The SKU catalogue",
        None,
        200,
    ),
    (
        "get",
        "/api/v1/licenses",
        "licenseSummary",
        "Per SKU: units by state and consumed units",
        None,
        200,
    ),
    (
        "post",
        "/api/v1/licenses/trial",
        "startTrial",
        "Start the premium trial (100 units, 90 days, once)",
        Some("TrialBody"),
        201,
    ),
    (
        "post",
        "/api/v1/licenses/subscriptions",
        "addSubscription",
        "Add a purchased subscription",
        Some("NewSubscription"),
        201,
    ),
    (
        "get",
        "/api/v1/licenses/errors",
        "licenseErrors",
        "Group-based licence errors per user",
        None,
        200,
    ),
    (
        "get",
        "/api/v1/policy",
        "getPolicy",
        "The password reset policy",
        None,
        200,
    ),
    (
        "put",
        "/api/v1/policy",
        "putPolicy",
        "Replace the password reset policy (validated)",
        Some("SsprPolicy"),
        200,
    ),
    (
        "get",
        "/api/v1/policy/questions",
        "predefinedQuestions",
        "Predefined security questions",
        None,
        200,
    ),
    (
        "get",
        "/api/v1/audit",
        "listAudit",
        "The audit log, newest first",
        None,
        200,
    ),
    (
        "get",
        "/api/v1/agents",
        "listAgents",
        "Registered sync agents with their health",
        None,
        200,
    ),
    (
        "post",
        "/api/v1/agents/tokens",
        "createAgentToken",
        "A one-time agent registration token (Global Administrator)",
        Some("NewRegistrationToken"),
        201,
    ),
    (
        "post",
        "/api/v1/agents/register",
        "registerAgent",
        "Register an agent with a registration token (no bearer)",
        Some("AgentRegistration"),
        201,
    ),
    (
        "delete",
        "/api/v1/agents/{agentId}",
        "revokeAgent",
        "Revoke an agent (Global Administrator)",
        None,
        204,
    ),
    (
        "post",
        "/api/v1/agent/heartbeat",
        "agentHeartbeat",
        "Agent heartbeat (signed agent request)",
        Some("Heartbeat"),
        204,
    ),
    (
        "get",
        "/api/v1/agent/config",
        "agentConfig",
        "The agent's sync settings (signed agent request)",
        None,
        200,
    ),
    (
        "post",
        "/api/v1/agent/sync/batches",
        "applySyncBatch",
        "Apply a batch of synced objects, idempotent by (agent, runId, seq) (signed agent request)",
        Some("SyncBatch"),
        200,
    ),
    (
        "post",
        "/api/v1/agent/sync/runs",
        "reportSyncRun",
        "Report a sync run (signed agent request)",
        Some("SyncRun"),
        204,
    ),
    (
        "get",
        "/api/v1/agent/ws",
        "agentPushSocket",
        "WebSocket on which the cloud pushes {\"type\":\"syncNow\",\"full\":bool} and {\"type\":\"ping\"} (signed agent request, empty body)",
        None,
        101,
    ),
    (
        "get",
        "/api/v1/sync/errors",
        "listSyncErrors",
        "Objects the last sync could not apply, and why",
        None,
        200,
    ),
    (
        "get",
        "/api/v1/sync/runs",
        "listSyncRuns",
        "Sync run history, newest first (?limit=)",
        None,
        200,
    ),
    (
        "get",
        "/api/v1/sync/settings",
        "getSyncSettings",
        "Deletion threshold, staging mode and intervals",
        None,
        200,
    ),
    (
        "patch",
        "/api/v1/sync/settings",
        "updateSyncSettings",
        "Change sync settings (Global Administrator)",
        Some("SyncSettingsPatch"),
        200,
    ),
    (
        "post",
        "/api/v1/sync/allow-deletes",
        "allowSyncDeletes",
        "Let the next run export its deletes above the threshold, once (Global Administrator)",
        None,
        200,
    ),
    (
        "post",
        "/api/v1/sync/run",
        "runSyncNow",
        "Ask every agent connected to any cloud instance on the database to sync now, body {\"full\": bool} optional; 409 when none is connected (Global Administrator)",
        None,
        200,
    ),
];

/// Every documented operation: the table above plus the writeback and SSPR modules' own tables.
pub fn all_operations() -> impl Iterator<Item = &'static Operation> {
    OPERATIONS
        .iter()
        .chain(crate::api::writeback::OPERATIONS)
        .chain(crate::api::sspr::OPERATIONS)
        .chain(crate::oidc::apps::OPERATIONS)
}

pub fn document() -> Value {
    let mut paths: Map<String, Value> = Map::new();
    for (method, path, op_id, summary, body, status) in all_operations() {
        let params: Vec<Value> = path
            .split('/')
            .filter_map(|seg| seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
            .map(|name| json!({"name": name, "in": "path", "required": true, "schema": {"type": "string"}}))
            .collect();
        let mut op = json!({
            "operationId": op_id,
            "summary": summary,
            "parameters": params,
            "responses": {
                status.to_string(): {"description": "success"},
                "default": {"description": "error", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
            }
        });
        let anonymous = (path.ends_with("/auth/token") && *method == "post")
            || path.ends_with("/agents/register")
            || path.starts_with("/api/v1/sspr/");
        if path.starts_with("/api/v1/agent/") {
            op["security"] = json!([{"agentSignature": []}]);
        } else if !anonymous {
            op["security"] = json!([{"bearer": []}]);
        }
        if let Some(schema) = body {
            op["requestBody"] = json!({"required": true, "content": {"application/json": {"schema": {"$ref": format!("#/components/schemas/{schema}")}}}});
        }
        if *op_id == "signIn" {
            let error = |d: &str| json!({"description": d, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}});
            op["responses"]["200"]["content"] = json!({"application/json": {"schema": {"$ref": "#/components/schemas/TokenResponse"}}});
            op["responses"]["200"]["headers"] = json!({"Set-Cookie": {"description": "The known-device cookie `__Host-dirbridge-device` (Secure, HttpOnly, SameSite=Strict, 90 days): a browser sending it back signs in to this account without the per-address limit (never without the per-account one). Clients may ignore it", "schema": {"type": "string"}}});
            op["responses"]["401"] = error("The user name or password is incorrect; or, for a user synced from on-premises, the directory refused the sign-in and the message says what to do next (disabled, locked out, password expired or must be changed: change it at /api/v1/sspr/change, account expired, logon hours)");
            op["responses"]["429"] = error("The account is locked out by the smart lockout (after 10 failed sign-ins for 1 minute, then twice as long after each further failure, up to 1 hour; for a synced user nothing is sent to the directory while it is locked), or too many failed sign-ins from the caller's network address (`[limits] sign_in_per_minute`; the Retry-After header says when to come back)");
            op["responses"]["503"] = error("A synced user's password could not be checked: no agent is connected, the directory is unreachable, or no answer came before the writeback deadline. Try again; an administrator can check `dirbridge agents list`");
        }
        if *op_id == "ssprChange" {
            op["responses"]["429"] = json!({"description": "Locked out: too many failed sign-ins (this check shares the per-account count of /api/v1/auth/token) or wrong current passwords for this account, or too many failed password checks from the caller's network address (`[limits] sign_in_per_minute`, shared with sign-in; the Retry-After header says when to come back)", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}});
        }
        if *op_id == "ssprStart" {
            op["responses"]["429"] = json!({"description": "Too many reset requests from the caller's network address (`[limits] sspr_start_per_minute`; the Retry-After header says when to come back)", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}});
        }
        paths.entry(path.to_string()).or_insert_with(|| json!({}))[method] = op;
    }
    for (path, summary) in [
        ("/healthz", "Liveness and database check"),
        ("/metrics", "Prometheus metrics"),
        ("/openapi.json", "This document"),
    ] {
        paths.insert(
            path.into(),
            json!({"get": {"summary": summary, "responses": {"200": {"description": "success"}}}}),
        );
    }
    let object = |props: Value| json!({"type": "object", "properties": props});
    let mut doc = json!({
        "openapi": "3.1.0",
        "info": {"title": "dirbridge cloud API", "version": env!("CARGO_PKG_VERSION")},
        "paths": paths,
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}, "agentSignature": {"type": "apiKey", "in": "header", "name": proto::sync::HEADER_SIGNATURE, "description": "Ed25519 signature (base64) over proto::sync::signing_input, with x-dirbridge-agent, x-dirbridge-timestamp and x-dirbridge-nonce"}},
            "schemas": {
                "Error": object(json!({"error": object(json!({"code": {"type": "string"}, "message": {"type": "string"}, "trackingId": {"type": "string"}}))})),
                "TokenRequest": object(json!({"userPrincipalName": {"type": "string"}, "password": {"type": "string", "format": "password"}})),
                "TokenResponse": object(json!({"accessToken": {"type": "string"}, "tokenId": {"type": "string"}, "expiresAt": {"type": "integer"}, "userPrincipalName": {"type": "string"}, "tenantId": {"type": "string"}, "roles": {"type": "array", "items": {"type": "string"}}})),
                "TenantPatch": object(json!({"defaultUsageLocation": {"type": ["string", "null"]}, "softMatchEnabled": {"type": "boolean"}})),
                "DomainBody": object(json!({"domain": {"type": "string"}})),
                "NewUser": object(json!({"userPrincipalName": {"type": "string"}, "displayName": {"type": "string"}, "givenName": {"type": "string"}, "surname": {"type": "string"}, "mail": {"type": "string"}, "mobilePhone": {"type": "string"}, "officePhone": {"type": "string"}, "usageLocation": {"type": "string", "pattern": "^[A-Z]{2}$"}, "accountEnabled": {"type": "boolean"}, "password": {"type": "string", "format": "password"}, "roles": {"type": "array", "items": {"type": "string"}}})),
                "UserPatch": object(json!({"userPrincipalName": {"type": "string"}, "displayName": {"type": "string"}, "usageLocation": {"type": ["string", "null"]}, "accountEnabled": {"type": "boolean"}, "roles": {"type": "array", "items": {"type": "string"}}})),
                "PasswordBody": object(json!({"password": {"type": "string", "format": "password"}})),
                "SkuBody": object(json!({"skuId": {"type": "string"}})),
                "TrialBody": object(json!({"skuId": {"type": "string"}})),
                "NewGroup": object(json!({"displayName": {"type": "string"}, "description": {"type": "string"}})),
                "GroupPatch": object(json!({"displayName": {"type": "string"}, "description": {"type": ["string", "null"]}})),
                "MemberRef": object(json!({"kind": {"enum": ["user", "group"]}, "id": {"type": "string"}})),
                "NewSubscription": object(json!({"skuId": {"type": "string"}, "units": {"type": "integer"}, "termDays": {"type": "integer"}})),
                "NewRegistrationToken": object(json!({"lifetimeSecs": {"type": "integer", "minimum": 60, "maximum": 86400}})),
                "AgentRegistration": object(json!({"registrationToken": {"type": "string"}, "name": {"type": "string"}, "version": {"type": "string"}, "signingPublicKey": {"type": "string", "contentEncoding": "base64"}, "sealingPublicKey": {"type": "string", "contentEncoding": "base64"}})),
                "Heartbeat": object(json!({"version": {"type": "string"}, "status": {"type": ["string", "null"]}})),
                "SyncBatch": object(json!({"runId": {"type": "string"}, "seq": {"type": "integer"}, "upserts": {"type": "array", "maxItems": proto::sync::MAX_BATCH_OBJECTS, "items": object(json!({"anchor": {"type": "string"}, "kind": {"enum": ["user", "group"]}, "attributes": {"type": "object"}, "members": {"type": "array", "items": {"type": "string"}}}))}, "deletes": {"type": "array", "items": {"type": "string"}}})),
                "SyncRun": object(json!({"runId": {"type": "string"}, "connector": {"type": "string"}, "kind": {"enum": ["full", "delta"]}, "outcome": {"enum": ["running", "succeeded", "completedWithErrors", "stoppedDeletionThreshold", "staged", "failed"]}, "startedAt": {"type": "integer"}, "finishedAt": {"type": ["integer", "null"]}, "added": {"type": "integer"}, "updated": {"type": "integer"}, "deleted": {"type": "integer"}, "errors": {"type": "integer"}, "pendingDeletes": {"type": "integer"}, "message": {"type": ["string", "null"]}, "runs": {"type": "integer", "description": "listSyncRuns: how many consecutive delta runs that changed nothing this line stands for"}, "firstStartedAt": {"type": ["integer", "null"]}})),
                "SyncSettingsPatch": object(json!({"deletionThreshold": {"type": "integer", "minimum": 1}, "deletionWindowSecs": {"type": "integer", "minimum": 60, "maximum": 604800}, "staging": {"type": "boolean"}, "deltaIntervalSecs": {"type": "integer", "minimum": 5}, "fullIntervalSecs": {"type": "integer", "minimum": 3600}})),
                "SsprPolicy": object(json!({"enabledFor": {"enum": ["none", "group", "all"]}, "groupId": {"type": ["string", "null"]}, "methodsRequired": {"type": "integer", "minimum": 1, "maximum": 2}, "methods": {"type": "array", "items": {"enum": ["email", "mobilePhone", "officePhone", "securityQuestions", "authenticatorApp"]}}, "questionsToRegister": {"type": "integer"}, "questionsToAnswer": {"type": "integer"}, "securityQuestions": {"type": "array", "items": {"type": "string"}}, "requireRegistrationAtSignIn": {"type": "boolean"}, "reconfirmDays": {"type": "integer", "minimum": 0, "maximum": 730}, "notifyUsersOnReset": {"type": "boolean"}, "notifyAdminsOnAdminReset": {"type": "boolean"}, "helpdeskUrl": {"type": ["string", "null"]}, "helpdeskEmail": {"type": ["string", "null"]}, "writebackEnabled": {"type": "boolean"}, "allowUnlockWithoutReset": {"type": "boolean"}}))
            }
        }
    });
    let schemas = &mut doc["components"]["schemas"];
    for (name, schema) in crate::api::writeback::schemas()
        .into_iter()
        .chain(crate::api::sspr::schemas())
        .chain(crate::oidc::apps::schemas())
    {
        schemas[name] = schema;
    }
    doc
}
