//! Directory sync decisions: what a batch from an agent does to the tenant's directory (hard
//! and soft matching, validation, memberships, deletes), the sync settings and their rules,
//! registration token lifetimes and an agent's health. No I/O: the caller loads the objects a
//! batch may touch, gets back a [`Plan`], and writes it in one transaction.

use std::collections::{BTreeSet, HashMap, HashSet};

use proto::sync::{
    AgentHealth, AgentSyncSettings, BatchResult, ObjectKind, RunOutcome, SyncBatch, SyncObject,
    SyncObjectError, SyncSettingsPatch,
};
use proto::{Epoch, Group, MemberKind, MemberRef, OnPremises, Source, Tenant, User};

use crate::refusal::Refusal;
use crate::{country, secrets, validate};

pub const DEFAULT_DELETION_THRESHOLD: u32 = 500;
pub use proto::sync::DEFAULT_DELETION_WINDOW_SECS;
pub const MIN_DELETION_WINDOW_SECS: u32 = 60;
pub const MAX_DELETION_WINDOW_SECS: u32 = 7 * 86_400;
pub const DEFAULT_DELTA_INTERVAL_SECS: u32 = 15;
pub const DEFAULT_FULL_INTERVAL_SECS: u32 = 86_400;
pub const MIN_DELTA_INTERVAL_SECS: u32 = 5;
pub const MIN_FULL_INTERVAL_SECS: u32 = 3_600;
/// How often an agent is expected to send a heartbeat.
pub const HEARTBEAT_INTERVAL_SECS: i64 = 60;
/// Missed heartbeats after which an agent is unreachable.
pub const MISSED_HEARTBEATS: i64 = 3;
/// How long the answer to a batch is kept for replays: far longer than any agent retries.
pub const BATCH_REPLAY_WINDOW_SECS: i64 = 7 * 86_400;
pub const DEFAULT_TOKEN_LIFETIME_SECS: i64 = 3_600;
pub const MIN_TOKEN_LIFETIME_SECS: i64 = 60;
pub const MAX_TOKEN_LIFETIME_SECS: i64 = 86_400;

/// Settings of a tenant that never changed them.
pub fn default_settings() -> AgentSyncSettings {
    AgentSyncSettings {
        deletion_threshold: DEFAULT_DELETION_THRESHOLD,
        deletion_window_secs: DEFAULT_DELETION_WINDOW_SECS,
        allow_deletes_once: false,
        staging: false,
        delta_interval_secs: DEFAULT_DELTA_INTERVAL_SECS,
        full_interval_secs: DEFAULT_FULL_INTERVAL_SECS,
    }
}

/// `current` with the patch applied, or a refusal naming the field and its rule.
pub fn patch_settings(
    current: &AgentSyncSettings,
    patch: &SyncSettingsPatch,
) -> Result<AgentSyncSettings, Refusal> {
    let mut s = current.clone();
    if patch.deletion_threshold.is_none()
        && patch.deletion_window_secs.is_none()
        && patch.staging.is_none()
        && patch.delta_interval_secs.is_none()
        && patch.full_interval_secs.is_none()
    {
        return Err(Refusal::validation(
            "The patch changes nothing: send at least one of deletionThreshold, deletionWindowSecs, staging, deltaIntervalSecs, fullIntervalSecs.",
        ));
    }
    if let Some(n) = patch.deletion_threshold {
        if n == 0 {
            return Err(Refusal::validation(
                "deletionThreshold: must be at least 1 (the number of deletes the agent may export within the deletion window before it stops)",
            ));
        }
        s.deletion_threshold = n;
    }
    if let Some(n) = patch.deletion_window_secs {
        if !(MIN_DELETION_WINDOW_SECS..=MAX_DELETION_WINDOW_SECS).contains(&n) {
            return Err(Refusal::validation(format!(
                "deletionWindowSecs: {n} is out of range; give {MIN_DELETION_WINDOW_SECS} to {MAX_DELETION_WINDOW_SECS} seconds (default {DEFAULT_DELETION_WINDOW_SECS}: deletes of every run within it count together toward the threshold)"
            )));
        }
        s.deletion_window_secs = n;
    }
    if let Some(b) = patch.staging {
        s.staging = b;
    }
    if let Some(n) = patch.delta_interval_secs {
        if n < MIN_DELTA_INTERVAL_SECS {
            return Err(Refusal::validation(format!(
                "deltaIntervalSecs: {n} is too short; the minimum is {MIN_DELTA_INTERVAL_SECS} seconds"
            )));
        }
        s.delta_interval_secs = n;
    }
    if let Some(n) = patch.full_interval_secs {
        if n < MIN_FULL_INTERVAL_SECS {
            return Err(Refusal::validation(format!(
                "fullIntervalSecs: {n} is too short; the minimum is {MIN_FULL_INTERVAL_SECS} seconds (one hour)"
            )));
        }
        s.full_interval_secs = n;
    }
    Ok(s)
}

/// A registration token's lifetime: the default when absent, else within 60..=86400 seconds.
pub fn token_lifetime(requested: Option<i64>) -> Result<i64, Refusal> {
    match requested {
        None => Ok(DEFAULT_TOKEN_LIFETIME_SECS),
        Some(n) if (MIN_TOKEN_LIFETIME_SECS..=MAX_TOKEN_LIFETIME_SECS).contains(&n) => Ok(n),
        Some(n) => Err(Refusal::validation(format!(
            "lifetimeSecs: {n} is out of range; give {MIN_TOKEN_LIFETIME_SECS} to {MAX_TOKEN_LIFETIME_SECS} seconds (default {DEFAULT_TOKEN_LIFETIME_SECS})"
        ))),
    }
}

/// A public key sent by an agent: base64 (standard alphabet) of exactly 32 bytes.
pub fn public_key(field: &str, input: &str) -> Result<[u8; 32], Refusal> {
    use base64::Engine;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(input.trim())
        .map_err(|_| {
            Refusal::validation(format!(
                "{field}: is not base64; send the 32-byte public key in standard base64"
            ))
        })?;
    <[u8; 32]>::try_from(bytes.as_slice()).map_err(|_| {
        Refusal::validation(format!(
            "{field}: is {} bytes; a public key is 32 bytes",
            bytes.len()
        ))
    })
}

/// An agent's health at `now`: revoked; unreachable after [`MISSED_HEARTBEATS`] intervals
/// without a heartbeat (counted from registration when it never sent one); degraded when the
/// last run failed or stopped; healthy otherwise.
pub fn health(
    now: Epoch,
    revoked: bool,
    registered_at: Epoch,
    last_heartbeat_at: Option<Epoch>,
    last_outcome: Option<RunOutcome>,
) -> AgentHealth {
    if revoked {
        return AgentHealth::Revoked;
    }
    let last = last_heartbeat_at.unwrap_or(registered_at);
    if now - last > HEARTBEAT_INTERVAL_SECS * MISSED_HEARTBEATS {
        return AgentHealth::Unreachable;
    }
    match last_outcome {
        Some(RunOutcome::Failed | RunOutcome::StoppedDeletionThreshold) => AgentHealth::Degraded,
        _ => AgentHealth::Healthy,
    }
}

/// Whether a reported run lets the `allow_deletes_once` switch go back off: it exported deletes
/// and was not stopped by the threshold.
pub fn run_consumes_allow_deletes(outcome: RunOutcome, deleted: u32) -> bool {
    outcome != RunOutcome::StoppedDeletionThreshold && deleted > 0
}

// ---------------------------------------------------------------- batches

/// A per-object error with the object's DN, for the sync error list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedError {
    pub error: SyncObjectError,
    pub distinguished_name: Option<String>,
}

/// What a batch changes. Apply deletes, then user updates and inserts, then groups, then
/// memberships.
#[derive(Debug, Clone, Default)]
pub struct Plan {
    pub result: BatchResult,
    pub delete_users: Vec<String>,
    pub delete_groups: Vec<String>,
    pub insert_users: Vec<User>,
    pub update_users: Vec<User>,
    pub insert_groups: Vec<Group>,
    pub update_groups: Vec<Group>,
    pub set_members: Vec<(String, Vec<MemberRef>)>,
    pub errors: Vec<PlannedError>,
    /// Anchors that applied cleanly (their earlier sync errors go away).
    pub cleared: Vec<String>,
}

/// The anchors, UPNs and mail addresses whose objects the caller must load before [`plan`]:
/// every upsert's and delete's anchor and every member anchor; each user's UPN; and, when soft
/// match is on, each user's mail.
pub fn lookups(tenant: &Tenant, batch: &SyncBatch) -> (Vec<String>, Vec<String>, Vec<String>) {
    let mut anchors: BTreeSet<String> = batch.deletes.iter().cloned().collect();
    let mut upns = BTreeSet::new();
    let mut mails = BTreeSet::new();
    for o in &batch.upserts {
        anchors.insert(o.anchor.clone());
        anchors.extend(o.members.iter().cloned());
        if o.kind == ObjectKind::User {
            if let Some(u) = &o.attributes.user_principal_name {
                upns.insert(u.trim().to_string());
            }
            if tenant.soft_match_enabled {
                if let Some(m) = &o.attributes.mail {
                    mails.insert(m.trim().to_string());
                }
            }
        }
    }
    (
        anchors.into_iter().collect(),
        upns.into_iter().collect(),
        mails.into_iter().collect(),
    )
}

/// Attributes the directory owns on a synced user (API spelling).
fn owned_user_attributes(country_given: bool) -> Vec<String> {
    let mut v = vec![
        "userPrincipalName",
        "displayName",
        "givenName",
        "surname",
        "mail",
        "mobilePhone",
        "officePhone",
    ];
    if country_given {
        v.push("usageLocation");
    }
    v.push("accountEnabled");
    v.into_iter().map(String::from).collect()
}

const OWNED_GROUP_ATTRIBUTES: [&str; 2] = ["displayName", "description"];

#[derive(Clone, Copy, PartialEq, Eq)]
enum Fate {
    New,
    Updated,
}

/// The tenant's objects as the batch goes, with lookups by anchor, UPN and mail.
#[derive(Default)]
struct Index {
    users: HashMap<String, User>,
    user_by_anchor: HashMap<String, String>,
    user_by_upn: HashMap<String, String>,
    users_by_mail: HashMap<String, Vec<String>>,
    groups: HashMap<String, Group>,
    group_by_anchor: HashMap<String, String>,
    members: HashMap<String, BTreeSet<MemberRef>>,
    user_fate: HashMap<String, Fate>,
    group_fate: HashMap<String, Fate>,
}

impl Index {
    fn add_user(&mut self, u: User) {
        if let Some(p) = &u.on_premises {
            self.user_by_anchor
                .insert(p.immutable_id.clone(), u.id.clone());
        }
        self.user_by_upn.insert(
            crate::validate::upn_key(&u.user_principal_name),
            u.id.clone(),
        );
        if let Some(m) = &u.mail {
            self.users_by_mail
                .entry(m.to_ascii_lowercase())
                .or_default()
                .push(u.id.clone());
        }
        self.users.insert(u.id.clone(), u);
    }

    fn remove_user(&mut self, id: &str) -> Option<User> {
        let u = self.users.remove(id)?;
        if let Some(p) = &u.on_premises {
            self.user_by_anchor.remove(&p.immutable_id);
        }
        let key = crate::validate::upn_key(&u.user_principal_name);
        if self.user_by_upn.get(&key).map(String::as_str) == Some(id) {
            self.user_by_upn.remove(&key);
        }
        if let Some(m) = &u.mail {
            if let Some(ids) = self.users_by_mail.get_mut(&m.to_ascii_lowercase()) {
                ids.retain(|x| x != id);
            }
        }
        let gone = MemberRef {
            kind: MemberKind::User,
            id: id.to_string(),
        };
        for set in self.members.values_mut() {
            set.remove(&gone);
        }
        Some(u)
    }

    fn add_group(&mut self, g: Group) {
        if let Some(p) = &g.on_premises {
            self.group_by_anchor
                .insert(p.immutable_id.clone(), g.id.clone());
        }
        self.groups.insert(g.id.clone(), g);
    }
}

fn object_error(o: &SyncObject, code: &str, message: impl Into<String>) -> PlannedError {
    PlannedError {
        error: SyncObjectError {
            anchor: o.anchor.clone(),
            code: code.to_string(),
            message: message.into(),
        },
        distinguished_name: Some(o.attributes.distinguished_name.clone()).filter(|d| !d.is_empty()),
    }
}

/// Decides what `batch` does to the tenant, given the objects `lookups` asked for (`users`,
/// `groups` and the direct `memberships` of those groups). Per-object problems become errors in
/// the plan; the rest of the batch applies.
pub fn plan(
    tenant: &Tenant,
    batch: &SyncBatch,
    users: &[User],
    groups: &[Group],
    memberships: &[(String, MemberRef)],
    now: Epoch,
) -> Plan {
    let mut ix = Index::default();
    for u in users {
        ix.add_user(u.clone());
    }
    for g in groups {
        ix.add_group(g.clone());
    }
    for (gid, m) in memberships {
        ix.members.entry(gid.clone()).or_default().insert(m.clone());
    }
    let mut plan = Plan::default();

    // Deletes first, so a UPN freed on-prem can be taken by another object in the same batch.
    for anchor in &batch.deletes {
        if let Some(id) = ix.user_by_anchor.get(anchor).cloned() {
            if ix.users[&id].source == Source::OnPremises {
                ix.remove_user(&id);
                if ix.user_fate.remove(&id) != Some(Fate::New) {
                    plan.delete_users.push(id);
                }
                plan.result.deleted += 1;
            }
        } else if let Some(id) = ix.group_by_anchor.get(anchor).cloned() {
            if ix.groups[&id].source == Source::OnPremises {
                ix.groups.remove(&id);
                ix.group_by_anchor.remove(anchor);
                ix.members.remove(&id);
                let gone = MemberRef {
                    kind: MemberKind::Group,
                    id: id.clone(),
                };
                for set in ix.members.values_mut() {
                    set.remove(&gone);
                }
                plan.delete_groups.push(id);
                plan.result.deleted += 1;
            }
        }
        plan.cleared.push(anchor.clone());
    }

    let mut seen: HashSet<&str> = HashSet::new();
    let mut user_objects = Vec::new();
    let mut group_objects = Vec::new();
    for o in &batch.upserts {
        if !seen.insert(o.anchor.as_str()) {
            plan.errors.push(object_error(
                o,
                "duplicateAnchor",
                "Another object in the same batch has this source anchor; only the first was applied. Check the directory for two objects sharing one objectGUID / ms-DS-ConsistencyGuid / entryUUID.",
            ));
            continue;
        }
        match o.kind {
            ObjectKind::User => user_objects.push(o),
            ObjectKind::Group => group_objects.push(o),
        }
    }

    let mut unchanged_users = 0u32;
    for o in user_objects {
        match plan_user(tenant, &mut ix, o, now) {
            Ok(changed) => {
                if !changed {
                    unchanged_users += 1;
                }
                plan.cleared.push(o.anchor.clone());
            }
            Err(e) => plan.errors.push(e),
        }
    }
    plan.result.unchanged += unchanged_users;

    // Groups: attributes first, then memberships once every group of the batch exists.
    let mut pending = Vec::new();
    for o in group_objects {
        match plan_group(tenant, &mut ix, o, now) {
            Ok((id, changed)) => pending.push((o, id, changed)),
            Err(e) => plan.errors.push(e),
        }
    }
    for (o, id, mut changed) in pending {
        let mut wanted = BTreeSet::new();
        let mut unknown = Vec::new();
        for a in &o.members {
            if let Some(uid) = ix.user_by_anchor.get(a) {
                wanted.insert(MemberRef {
                    kind: MemberKind::User,
                    id: uid.clone(),
                });
            } else if let Some(gid) = ix.group_by_anchor.get(a).filter(|g| **g != id) {
                wanted.insert(MemberRef {
                    kind: MemberKind::Group,
                    id: gid.clone(),
                });
            } else if *a != o.anchor {
                unknown.push(a.clone());
            }
        }
        let current = ix.members.get(&id).cloned().unwrap_or_default();
        if current != wanted || ix.group_fate.get(&id) == Some(&Fate::New) {
            if current != wanted {
                changed = true;
            }
            plan.set_members
                .push((id.clone(), wanted.iter().cloned().collect()));
            ix.members.insert(id.clone(), wanted);
        }
        if changed && !ix.group_fate.contains_key(&id) {
            ix.group_fate.insert(id.clone(), Fate::Updated);
        }
        if !changed {
            plan.result.unchanged += 1;
        }
        if unknown.is_empty() {
            plan.cleared.push(o.anchor.clone());
        } else {
            let shown: Vec<&str> = unknown.iter().take(5).map(String::as_str).collect();
            plan.errors.push(object_error(
                o,
                "unresolvedMember",
                format!(
                    "{} member(s) of this group are not synced (anchors: {}{}); the group was applied without them. Bring them into the sync scope or remove them from the group.",
                    unknown.len(),
                    shown.join(", "),
                    if unknown.len() > 5 { ", …" } else { "" }
                ),
            ));
        }
    }

    for (id, fate) in &ix.user_fate {
        let u = ix.users[id].clone();
        match fate {
            Fate::New => {
                plan.result.added += 1;
                plan.insert_users.push(u);
            }
            Fate::Updated => {
                plan.result.updated += 1;
                plan.update_users.push(u);
            }
        }
    }
    for (id, fate) in &ix.group_fate {
        let g = ix.groups[id].clone();
        match fate {
            Fate::New => {
                plan.result.added += 1;
                plan.insert_groups.push(g);
            }
            Fate::Updated => {
                plan.result.updated += 1;
                plan.update_groups.push(g);
            }
        }
    }
    // Stable order: the plan is written in this order, and tests compare it.
    plan.insert_users.sort_by(|a, b| a.id.cmp(&b.id));
    plan.update_users.sort_by(|a, b| a.id.cmp(&b.id));
    plan.insert_groups.sort_by(|a, b| a.id.cmp(&b.id));
    plan.update_groups.sort_by(|a, b| a.id.cmp(&b.id));
    plan.result.errors = plan.errors.iter().map(|e| e.error.clone()).collect();
    plan
}

fn invalid(o: &SyncObject, r: Refusal) -> PlannedError {
    object_error(o, "invalidValue", r.message)
}

/// Plans one user; `Ok(true)` if it is new or changed.
fn plan_user(
    tenant: &Tenant,
    ix: &mut Index,
    o: &SyncObject,
    now: Epoch,
) -> Result<bool, PlannedError> {
    let a = &o.attributes;
    if ix.group_by_anchor.contains_key(&o.anchor) {
        return Err(object_error(
            o,
            "invalidValue",
            "This source anchor belongs to a synced group, not a user.",
        ));
    }
    let raw_upn = a
        .user_principal_name
        .as_deref()
        .map(str::trim)
        .unwrap_or("");
    if raw_upn.is_empty() {
        return Err(object_error(
            o,
            "invalidUpn",
            "The object has no userPrincipalName; set one in the directory (name@a tenant domain).",
        ));
    }
    if let Some((_, domain)) = raw_upn.rsplit_once('@') {
        if !tenant
            .domains
            .iter()
            .any(|d| d.eq_ignore_ascii_case(domain))
        {
            return Err(object_error(
                o,
                "upnSuffixNotVerified",
                format!(
                    "The UPN suffix '{}' is not a verified domain of this tenant ({}). Add the domain to the tenant and verify it (dirbridge tenant add-domain DOMAIN, then dirbridge tenant verify-domain DOMAIN) or change the user's UPN suffix in the directory.",
                    domain.chars().take(64).collect::<String>(),
                    tenant.domains.join(", ")
                ),
            ));
        }
    }
    let upn = validate::upn(raw_upn, &tenant.domains)
        .map_err(|r| object_error(o, "invalidUpn", r.message))?;
    let local = upn.split('@').next().unwrap_or(&upn).to_string();
    let display_name = match a.display_name.as_deref().map(str::trim) {
        Some(d) if !d.is_empty() => validate::display_name(d).map_err(|r| invalid(o, r))?,
        _ => local,
    };
    let given_name = validate::optional_text("givenName", a.given_name.as_deref(), 64)
        .map_err(|r| invalid(o, r))?;
    let surname =
        validate::optional_text("surname", a.surname.as_deref(), 64).map_err(|r| invalid(o, r))?;
    let mail = match a.mail.as_deref().map(str::trim).filter(|m| !m.is_empty()) {
        Some(m) => Some(validate::mail("mail", m).map_err(|r| invalid(o, r))?),
        None => None,
    };
    let phone = |field: &str, v: &Option<String>| -> Result<Option<String>, PlannedError> {
        match v.as_deref().map(str::trim).filter(|p| !p.is_empty()) {
            Some(p) => Ok(Some(validate::phone(field, p).map_err(|r| invalid(o, r))?)),
            None => Ok(None),
        }
    };
    let mobile_phone = phone("mobilePhone", &a.mobile_phone)?;
    let office_phone = phone("officePhone", &a.office_phone)?;
    let country = a
        .country
        .as_deref()
        .map(|c| c.trim().to_ascii_uppercase())
        .filter(|c| country::is_alpha2(c));

    // Hard match, then soft match for a new anchor.
    let mut existing = ix.user_by_anchor.get(&o.anchor).cloned();
    if existing.is_none() && tenant.soft_match_enabled {
        let by_upn = ix
            .user_by_upn
            .get(&crate::validate::upn_key(&upn))
            .filter(|id| ix.users[*id].source == Source::Cloud)
            .cloned();
        let by_mail = || {
            let m = mail.as_ref()?.to_ascii_lowercase();
            let ids: Vec<&String> = ix
                .users_by_mail
                .get(&m)?
                .iter()
                .filter(|id| ix.users[*id].source == Source::Cloud)
                .collect();
            // A mail address shared by several cloud users matches none of them.
            (ids.len() == 1).then(|| ids[0].clone())
        };
        if let Some(id) = by_upn.or_else(by_mail) {
            let target = &ix.users[&id];
            if !target.roles.is_empty() {
                return Err(object_error(
                    o,
                    "softMatchRefusedAdmin",
                    format!(
                        "The cloud user {} holds an administrator role, so it is never matched to an on-premises object. Remove the role first, or give the on-premises object another UPN and mail.",
                        target.user_principal_name
                    ),
                ));
            }
            existing = Some(id);
        }
    }
    if let Some(owner) = ix.user_by_upn.get(&crate::validate::upn_key(&upn)) {
        if existing.as_ref() != Some(owner) {
            return Err(object_error(
                o,
                "duplicateUpn",
                format!(
                    "Another user already has the UPN {upn}. Give one of them another UPN{}.",
                    if tenant.soft_match_enabled {
                        ""
                    } else {
                        ", or enable soft match (dirbridge tenant set --soft-match true) to link a cloud user to this object"
                    }
                ),
            ));
        }
    }

    let before = existing.as_ref().map(|id| ix.users[id].clone());
    let mut u = before.clone().unwrap_or_else(|| User {
        // Ordered by creation: a bulk load appends to the users' primary-key index instead of
        // writing it at random places.
        id: secrets::ordered_id(),
        tenant_id: tenant.id.clone(),
        user_principal_name: String::new(),
        display_name: String::new(),
        given_name: None,
        surname: None,
        mail: None,
        mobile_phone: None,
        office_phone: None,
        usage_location: None,
        account_enabled: false,
        source: Source::OnPremises,
        roles: Vec::new(),
        on_premises: None,
        created_at: now,
        updated_at: now,
    });
    u.user_principal_name = upn;
    u.display_name = display_name;
    u.given_name = given_name;
    u.surname = surname;
    u.mail = mail;
    u.mobile_phone = mobile_phone;
    u.office_phone = office_phone;
    if let Some(c) = &country {
        u.usage_location = Some(c.clone());
    }
    u.account_enabled = a.account_enabled;
    u.source = Source::OnPremises;
    u.on_premises = Some(OnPremises {
        immutable_id: o.anchor.clone(),
        distinguished_name: Some(a.distinguished_name.clone()).filter(|d| !d.is_empty()),
        sam_account_name: a.sam_account_name.clone(),
        last_sync_at: before
            .as_ref()
            .and_then(|b| b.on_premises.as_ref())
            .and_then(|p| p.last_sync_at),
        owned_attributes: owned_user_attributes(country.is_some()),
    });
    let changed = before.as_ref() != Some(&u);
    if !changed {
        return Ok(false);
    }
    u.updated_at = now;
    if let Some(p) = u.on_premises.as_mut() {
        p.last_sync_at = Some(now);
    }
    let fate = match &before {
        None => Fate::New,
        Some(_) => *ix.user_fate.get(&u.id).unwrap_or(&Fate::Updated),
    };
    ix.user_fate.insert(u.id.clone(), fate);
    if let Some(b) = &before {
        ix.remove_user(&b.id);
    }
    ix.add_user(u);
    Ok(true)
}

/// Plans one group's attributes; its id and whether it is new or changed.
fn plan_group(
    tenant: &Tenant,
    ix: &mut Index,
    o: &SyncObject,
    now: Epoch,
) -> Result<(String, bool), PlannedError> {
    let a = &o.attributes;
    if ix.user_by_anchor.contains_key(&o.anchor) {
        return Err(object_error(
            o,
            "invalidValue",
            "This source anchor belongs to a synced user, not a group.",
        ));
    }
    let name = a
        .display_name
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .or(a
            .sam_account_name
            .as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty()))
        .unwrap_or(o.anchor.as_str());
    let display_name = validate::display_name(name).map_err(|r| invalid(o, r))?;
    let description = validate::optional_text("description", a.description.as_deref(), 1024)
        .map_err(|r| invalid(o, r))?;
    let existing = ix.group_by_anchor.get(&o.anchor).cloned();
    let before = existing.as_ref().map(|id| ix.groups[id].clone());
    let mut g = before.clone().unwrap_or_else(|| Group {
        id: secrets::ordered_id(),
        tenant_id: tenant.id.clone(),
        display_name: String::new(),
        description: None,
        source: Source::OnPremises,
        on_premises: None,
        created_at: now,
    });
    g.display_name = display_name;
    g.description = description;
    g.source = Source::OnPremises;
    g.on_premises = Some(OnPremises {
        immutable_id: o.anchor.clone(),
        distinguished_name: Some(a.distinguished_name.clone()).filter(|d| !d.is_empty()),
        sam_account_name: a.sam_account_name.clone(),
        last_sync_at: before
            .as_ref()
            .and_then(|b| b.on_premises.as_ref())
            .and_then(|p| p.last_sync_at),
        owned_attributes: OWNED_GROUP_ATTRIBUTES
            .iter()
            .map(|s| s.to_string())
            .collect(),
    });
    let changed = before.as_ref() != Some(&g);
    if changed {
        if let Some(p) = g.on_premises.as_mut() {
            p.last_sync_at = Some(now);
        }
        let fate = if before.is_none() {
            Fate::New
        } else {
            Fate::Updated
        };
        ix.group_fate.insert(g.id.clone(), fate);
    }
    let id = g.id.clone();
    ix.add_group(g);
    Ok((id, changed))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proto::sync::SyncAttributes;
    use proto::Role;

    const NOW: Epoch = 1_795_600_000;

    fn tenant(soft_match: bool) -> Tenant {
        Tenant {
            id: "t1".into(),
            name: "contoso".into(),
            initial_domain: "contoso.example".into(),
            domains: vec!["contoso.example".into()],
            default_usage_location: None,
            soft_match_enabled: soft_match,
            created_at: 0,
        }
    }

    fn user_obj(anchor: &str, upn: &str) -> SyncObject {
        SyncObject {
            anchor: anchor.into(),
            kind: ObjectKind::User,
            attributes: SyncAttributes {
                user_principal_name: Some(upn.into()),
                account_enabled: true,
                distinguished_name: format!("CN={anchor},DC=corp"),
                ..Default::default()
            },
            members: vec![],
        }
    }

    fn group_obj(anchor: &str, members: &[&str]) -> SyncObject {
        SyncObject {
            anchor: anchor.into(),
            kind: ObjectKind::Group,
            attributes: SyncAttributes {
                display_name: Some(format!("group {anchor}")),
                distinguished_name: format!("CN={anchor},DC=corp"),
                ..Default::default()
            },
            members: members.iter().map(|s| s.to_string()).collect(),
        }
    }

    fn batch(upserts: Vec<SyncObject>, deletes: &[&str]) -> SyncBatch {
        SyncBatch {
            run_id: "r".into(),
            seq: 0,
            upserts,
            deletes: deletes.iter().map(|s| s.to_string()).collect(),
        }
    }

    fn cloud_user(upn: &str, mail: Option<&str>, roles: Vec<Role>) -> User {
        User {
            id: format!("id-{upn}"),
            tenant_id: "t1".into(),
            user_principal_name: upn.into(),
            display_name: upn.into(),
            given_name: None,
            surname: None,
            mail: mail.map(String::from),
            mobile_phone: None,
            office_phone: None,
            usage_location: Some("NO".into()),
            account_enabled: true,
            source: Source::Cloud,
            roles,
            on_premises: None,
            created_at: 0,
            updated_at: 0,
        }
    }

    fn codes(p: &Plan) -> Vec<(&str, &str)> {
        p.errors
            .iter()
            .map(|e| (e.error.anchor.as_str(), e.error.code.as_str()))
            .collect()
    }

    #[test]
    fn new_users_are_created_with_owned_attributes_and_display_name_fallback() {
        let mut o = user_obj("A", "ada@CONTOSO.example");
        o.attributes.country = Some("gb".into());
        let p = plan(&tenant(false), &batch(vec![o], &[]), &[], &[], &[], NOW);
        assert_eq!(p.result.added, 1);
        let u = &p.insert_users[0];
        assert_eq!(u.user_principal_name, "ada@contoso.example");
        assert_eq!(u.display_name, "ada");
        assert_eq!(u.usage_location.as_deref(), Some("GB"));
        assert_eq!(u.source, Source::OnPremises);
        let op = u.on_premises.as_ref().unwrap();
        assert!(op.owned_attributes.contains(&"usageLocation".to_string()));
        assert_eq!(op.last_sync_at, Some(NOW));
        assert_eq!(p.cleared, vec!["A".to_string()]);
    }

    #[test]
    fn names_with_invisible_characters_are_refused_per_object() {
        let mut bad_user = user_obj("A", "ada@contoso.example");
        bad_user.attributes.display_name = Some("Ada \u{202E}nimda".into());
        let mut bad_group = group_obj("G", &[]);
        bad_group.attributes.description = Some("Help\u{200B}desk".into());
        let p = plan(
            &tenant(false),
            &batch(
                vec![bad_user, bad_group, user_obj("B", "bob@contoso.example")],
                &[],
            ),
            &[],
            &[],
            &[],
            NOW,
        );
        assert_eq!(
            codes(&p),
            vec![("A", "invalidValue"), ("G", "invalidValue")]
        );
        assert_eq!(
            p.errors[0].error.message,
            "displayName: contains U+202E (RIGHT-TO-LEFT OVERRIDE), an invisible character \
             that can disguise a name; remove it."
        );
        assert!(p.errors[1]
            .error
            .message
            .starts_with("description: contains U+200B (ZERO WIDTH SPACE)"));
        assert_eq!(p.result.added, 1);
        assert_eq!(p.insert_users.len(), 1);
        assert_eq!(p.insert_users[0].user_principal_name, "bob@contoso.example");
        assert!(p.insert_groups.is_empty());
    }

    #[test]
    fn an_unchanged_object_is_not_rewritten() {
        let first = plan(
            &tenant(false),
            &batch(vec![user_obj("A", "ada@contoso.example")], &[]),
            &[],
            &[],
            &[],
            NOW,
        );
        let stored = first.insert_users.clone();
        let again = plan(
            &tenant(false),
            &batch(vec![user_obj("A", "ada@contoso.example")], &[]),
            &stored,
            &[],
            &[],
            NOW + 60,
        );
        assert_eq!(again.result.unchanged, 1);
        assert!(again.update_users.is_empty() && again.insert_users.is_empty());
    }

    #[test]
    fn soft_match_by_mail_links_one_cloud_user_but_never_an_admin() {
        let carol = cloud_user("carol@contoso.example", Some("carol@mail.example"), vec![]);
        let boss = cloud_user(
            "boss@contoso.example",
            None,
            vec![Role::PasswordAdministrator],
        );
        let mut o = user_obj("C", "c.smith@contoso.example");
        o.attributes.mail = Some("CAROL@mail.example".into());
        let b = batch(vec![o, user_obj("B", "boss@contoso.example")], &[]);
        let p = plan(
            &tenant(true),
            &b,
            &[carol.clone(), boss.clone()],
            &[],
            &[],
            NOW,
        );
        assert_eq!(p.update_users.len(), 1);
        assert_eq!(p.update_users[0].id, carol.id);
        assert_eq!(
            p.update_users[0].user_principal_name,
            "c.smith@contoso.example"
        );
        // The cloud-managed usage location stays when the directory gives no country.
        assert_eq!(p.update_users[0].usage_location.as_deref(), Some("NO"));
        assert_eq!(codes(&p), vec![("B", "softMatchRefusedAdmin")]);

        // Soft match off: the UPN clash is an error.
        let p = plan(
            &tenant(false),
            &batch(vec![user_obj("B", "boss@contoso.example")], &[]),
            &[boss],
            &[],
            &[],
            NOW,
        );
        assert_eq!(codes(&p), vec![("B", "duplicateUpn")]);
    }

    #[test]
    fn suffix_upn_and_anchor_problems_are_per_object() {
        let b = batch(
            vec![
                user_obj("A", "ada@corp.local"),
                user_obj("B", "b b@contoso.example"),
                user_obj("C", "c@contoso.example"),
                user_obj("C", "c2@contoso.example"),
                user_obj("D", "c@contoso.example"),
            ],
            &[],
        );
        let p = plan(&tenant(false), &b, &[], &[], &[], NOW);
        assert_eq!(
            codes(&p),
            vec![
                ("C", "duplicateAnchor"),
                ("A", "upnSuffixNotVerified"),
                ("B", "invalidUpn"),
                ("D", "duplicateUpn")
            ]
        );
        assert_eq!(p.result.added, 1);
        assert_eq!(p.result.errors.len(), 4);
    }

    #[test]
    fn members_resolve_across_the_batch_and_unknown_ones_are_reported() {
        let b = batch(
            vec![
                group_obj("G1", &["G2", "U1", "missing"]),
                group_obj("G2", &["U1"]),
                user_obj("U1", "u1@contoso.example"),
            ],
            &[],
        );
        let p = plan(&tenant(false), &b, &[], &[], &[], NOW);
        assert_eq!(p.result.added, 3);
        let g1 = p
            .insert_groups
            .iter()
            .find(|g| g.on_premises.as_ref().unwrap().immutable_id == "G1")
            .unwrap();
        let members = &p.set_members.iter().find(|(id, _)| *id == g1.id).unwrap().1;
        assert_eq!(members.len(), 2);
        assert_eq!(codes(&p), vec![("G1", "unresolvedMember")]);
        assert!(!p.cleared.contains(&"G1".to_string()));
    }

    #[test]
    fn deletes_touch_only_synced_objects_and_free_the_upn_first() {
        let first = plan(
            &tenant(false),
            &batch(vec![user_obj("A", "ada@contoso.example")], &[]),
            &[],
            &[],
            &[],
            NOW,
        );
        let stored = first.insert_users.clone();
        let p = plan(
            &tenant(false),
            &batch(vec![user_obj("B", "ada@contoso.example")], &["A"]),
            &stored,
            &[],
            &[],
            NOW,
        );
        assert_eq!(p.delete_users, vec![stored[0].id.clone()]);
        assert_eq!((p.result.deleted, p.result.added), (1, 1));
        assert!(p.errors.is_empty());
    }

    #[test]
    fn settings_patch_enforces_minimums() {
        let d = default_settings();
        let patch = |f: fn(&mut SyncSettingsPatch)| {
            let mut p = SyncSettingsPatch::default();
            f(&mut p);
            patch_settings(&d, &p)
        };
        assert!(patch(|_| {}).is_err());
        assert!(patch(|p| p.delta_interval_secs = Some(4)).is_err());
        assert!(patch(|p| p.full_interval_secs = Some(3599)).is_err());
        assert!(patch(|p| p.deletion_threshold = Some(0)).is_err());
        assert!(patch(|p| p.deletion_window_secs = Some(59)).is_err());
        assert!(patch(|p| p.deletion_window_secs = Some(7 * 86_400 + 1)).is_err());
        assert_eq!(
            patch(|p| p.deletion_window_secs = Some(7200))
                .unwrap()
                .deletion_window_secs,
            7200
        );
        let s = patch(|p| p.staging = Some(true)).unwrap();
        assert!(s.staging && s.deletion_threshold == 500 && s.deletion_window_secs == 3600);
    }

    #[test]
    fn health_lifetime_and_keys() {
        assert_eq!(
            health(NOW, true, NOW, Some(NOW), None),
            AgentHealth::Revoked
        );
        assert_eq!(
            health(NOW + 180, false, NOW, None, None),
            AgentHealth::Healthy
        );
        assert_eq!(
            health(NOW + 181, false, NOW, None, None),
            AgentHealth::Unreachable
        );
        assert_eq!(
            health(
                NOW,
                false,
                NOW,
                Some(NOW),
                Some(RunOutcome::StoppedDeletionThreshold)
            ),
            AgentHealth::Degraded
        );
        assert_eq!(token_lifetime(None), Ok(3600));
        assert!(token_lifetime(Some(59)).is_err() && token_lifetime(Some(86_401)).is_err());
        assert!(public_key("k", "AAAA").is_err());
        assert!(public_key("k", &"A".repeat(43)).is_err());
        assert!(public_key("k", &format!("{}=", "A".repeat(43))).is_ok());
        assert!(run_consumes_allow_deletes(RunOutcome::Succeeded, 3));
        assert!(!run_consumes_allow_deletes(
            RunOutcome::StoppedDeletionThreshold,
            3
        ));
        assert!(!run_consumes_allow_deletes(RunOutcome::Succeeded, 0));
    }
}
