//! Licensing: the SKU catalogue, trials and purchased subscriptions, their unit states over
//! time, seat counting, direct and group-based assignment, and the single entitlement check
//! ("may this user use SSPR with writeback now?").
//!
//! Callers pass the tenant's rows (subscriptions, assignments, memberships) and `now`; nothing
//! here reads a clock or a store. SKU ids are compared case-insensitively and returned in the
//! catalogue's spelling.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use proto::{
    AssignmentSource, AssignmentState, Entitlement, Epoch, GroupLicense, LicenseAssignment,
    LicenseErrorKind, MemberKind, MemberRef, NewSubscription, Sku, SkuSummary, Subscription,
    SubscriptionKind, SubscriptionState, SubscriptionView, Tenant, User,
};

use crate::clock::{days, iso_date};
use crate::country;
use crate::refusal::Refusal;
use crate::secrets;

pub const FREE_SKU: &str = "DIRBRIDGE_FREE";
pub const PREMIUM_SKU: &str = "DIRBRIDGE_PREMIUM";
/// The service plan that SSPR with on-prem writeback needs.
pub const SSPR_WRITEBACK: &str = "SSPR_WRITEBACK";

pub const TRIAL_UNITS: u32 = 100;
pub const TRIAL_DAYS: u32 = 90;
/// Days after the end during which units are in the warning state (still usable).
pub const GRACE_DAYS: u32 = 30;
/// Days after the grace period during which units are suspended (not usable), before lockedOut.
pub const SUSPENDED_DAYS: u32 = 90;

pub const MAX_UNITS: u32 = 1_000_000;
pub const MAX_TERM_DAYS: u32 = 3650;

/// Every SKU dirbridge knows.
pub fn catalogue() -> Vec<Sku> {
    vec![
        Sku {
            id: FREE_SKU.into(),
            name: "dirbridge Free".into(),
            service_plans: vec!["DIRECTORY_BASIC".into(), "SSO_BASIC".into()],
            free: true,
        },
        Sku {
            id: PREMIUM_SKU.into(),
            name: "dirbridge Premium".into(),
            service_plans: vec![
                "SSPR".into(),
                SSPR_WRITEBACK.into(),
                "PASSWORD_CHANGE".into(),
            ],
            free: false,
        },
    ]
}

/// The catalogue entry for `id`, matched case-insensitively.
pub fn sku(id: &str) -> Option<Sku> {
    catalogue()
        .into_iter()
        .find(|s| s.id.eq_ignore_ascii_case(id.trim()))
}

fn same_sku(a: &str, b: &str) -> bool {
    a.eq_ignore_ascii_case(b)
}

fn unknown_sku(id: &str) -> Refusal {
    let known: Vec<String> = catalogue().into_iter().map(|s| s.id).collect();
    Refusal::not_found(format!(
        "SKU '{}' does not exist; known SKUs: {}.",
        crate::validate::shown(id),
        known.join(", ")
    ))
}

/// The unit state of `sub` at `now`: enabled until `ends_at`, then warning for
/// [`GRACE_DAYS`], then suspended for [`SUSPENDED_DAYS`], then lockedOut.
pub fn subscription_state(sub: &Subscription, now: Epoch) -> SubscriptionState {
    let warning_until = sub.ends_at.saturating_add(days(GRACE_DAYS));
    let suspended_until = warning_until.saturating_add(days(SUSPENDED_DAYS));
    if now < sub.ends_at {
        SubscriptionState::Enabled
    } else if now < warning_until {
        SubscriptionState::Warning
    } else if now < suspended_until {
        SubscriptionState::Suspended
    } else {
        SubscriptionState::LockedOut
    }
}

fn usable(state: SubscriptionState) -> bool {
    matches!(
        state,
        SubscriptionState::Enabled | SubscriptionState::Warning
    )
}

/// Starts the one trial a tenant gets per SKU: [`TRIAL_UNITS`] units for [`TRIAL_DAYS`] days.
/// `existing` is the tenant's subscriptions (all of them, expired ones included).
pub fn start_trial(
    tenant_id: &str,
    sku_id: &str,
    existing: &[Subscription],
    now: Epoch,
) -> Result<Subscription, Refusal> {
    let sku = sku(sku_id).ok_or_else(|| unknown_sku(sku_id))?;
    if sku.free {
        return Err(Refusal::validation(format!(
            "skuId: {} is free and needs no trial or subscription; start a trial of {PREMIUM_SKU} instead.",
            sku.id
        )));
    }
    if let Some(earlier) = existing
        .iter()
        .filter(|s| s.kind == SubscriptionKind::Trial && same_sku(&s.sku_id, &sku.id))
        .min_by_key(|s| s.created_at)
    {
        return Err(Refusal::conflict(format!(
            "A trial of {} was already started on {}; add a purchased subscription instead.",
            sku.id,
            iso_date(earlier.created_at)
        )));
    }
    Ok(Subscription {
        id: secrets::new_id(),
        tenant_id: tenant_id.to_string(),
        sku_id: sku.id,
        kind: SubscriptionKind::Trial,
        units: TRIAL_UNITS,
        starts_at: now,
        ends_at: now.saturating_add(days(TRIAL_DAYS)),
        created_at: now,
    })
}

/// A purchased subscription starting now: 1 to 1,000,000 units for 1 to 3650 days of a known,
/// non-free SKU.
pub fn purchase(
    tenant_id: &str,
    req: &NewSubscription,
    now: Epoch,
) -> Result<Subscription, Refusal> {
    let sku = sku(&req.sku_id).ok_or_else(|| unknown_sku(&req.sku_id))?;
    if sku.free {
        return Err(Refusal::validation(format!(
            "skuId: {} is free and needs no subscription.",
            sku.id
        )));
    }
    if !(1..=MAX_UNITS).contains(&req.units) {
        return Err(Refusal::validation(format!(
            "units: {} is out of range; a subscription has 1 to {MAX_UNITS} units.",
            req.units
        )));
    }
    if !(1..=MAX_TERM_DAYS).contains(&req.term_days) {
        return Err(Refusal::validation(format!(
            "termDays: {} is out of range; a term is 1 to {MAX_TERM_DAYS} days.",
            req.term_days
        )));
    }
    Ok(Subscription {
        id: secrets::new_id(),
        tenant_id: tenant_id.to_string(),
        sku_id: sku.id,
        kind: SubscriptionKind::Purchased,
        units: req.units,
        starts_at: now,
        ends_at: now.saturating_add(days(req.term_days)),
        created_at: now,
    })
}

/// Distinct users holding `sku_id` in the Active state, from any source.
fn active_holders<'a>(sku_id: &str, assignments: &'a [LicenseAssignment]) -> HashSet<&'a str> {
    assignments
        .iter()
        .filter(|a| a.state == AssignmentState::Active && same_sku(&a.sku_id, sku_id))
        .map(|a| a.user_id.as_str())
        .collect()
}

fn count(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// One line per catalogue SKU that has subscriptions, plus the free SKU always, in catalogue
/// order: units per state and consumed units (distinct users with an Active assignment).
pub fn summarize(
    subs: &[Subscription],
    assignments: &[LicenseAssignment],
    now: Epoch,
) -> Vec<SkuSummary> {
    catalogue()
        .into_iter()
        .filter_map(|sku| {
            let mut views: Vec<SubscriptionView> = subs
                .iter()
                .filter(|s| same_sku(&s.sku_id, &sku.id))
                .map(|s| SubscriptionView {
                    subscription: s.clone(),
                    state: subscription_state(s, now),
                })
                .collect();
            if views.is_empty() && !sku.free {
                return None;
            }
            views.sort_by(|a, b| {
                (a.subscription.starts_at, &a.subscription.id)
                    .cmp(&(b.subscription.starts_at, &b.subscription.id))
            });
            let units_in = |state: SubscriptionState| {
                views
                    .iter()
                    .filter(|v| v.state == state)
                    .fold(0u32, |acc, v| acc.saturating_add(v.subscription.units))
            };
            Some(SkuSummary {
                enabled_units: units_in(SubscriptionState::Enabled),
                warning_units: units_in(SubscriptionState::Warning),
                suspended_units: units_in(SubscriptionState::Suspended),
                locked_out_units: units_in(SubscriptionState::LockedOut),
                consumed_units: count(active_holders(&sku.id, assignments).len()),
                sku_id: sku.id,
                name: sku.name,
                subscriptions: views,
            })
        })
        .collect()
}

/// Units that can be assigned for `sku_id`: the sum over its Enabled and Warning
/// subscriptions. The free SKU has no subscriptions (so 0 here) and no seat limit; callers check
/// [`Sku::free`] first, as [`check_direct_assignment`] does.
pub fn available_units(sku_id: &str, subs: &[Subscription], now: Epoch) -> u32 {
    subs.iter()
        .filter(|s| same_sku(&s.sku_id, sku_id) && usable(subscription_state(s, now)))
        .fold(0u32, |acc, s| acc.saturating_add(s.units))
}

/// The usage location a user's own attribute gives, if it is a valid code.
fn own_usage_location(user: &User) -> Option<String> {
    user.usage_location
        .as_deref()
        .map(|l| l.trim().to_ascii_uppercase())
        .filter(|l| country::is_alpha2(l))
}

/// The exact message admins of the incumbent know.
pub const INVALID_USAGE_LOCATION: &str =
    "License assignment cannot be done for user with invalid usage location.";

/// Whether `sku_id` may be assigned directly to `user` now. Checks, in order: the SKU exists;
/// the user has a valid usage location; free SKU (always fine); a subscription exists; not all
/// subscriptions are suspended or locked out; already assigned directly (idempotent); a seat
/// is free (a user already holding the SKU through a group takes no new seat).
pub fn check_direct_assignment(
    user: &User,
    sku_id: &str,
    subs: &[Subscription],
    assignments: &[LicenseAssignment],
    now: Epoch,
) -> Result<(), Refusal> {
    let sku = sku(sku_id).ok_or_else(|| unknown_sku(sku_id))?;
    if own_usage_location(user).is_none() {
        return Err(Refusal::bad_request(INVALID_USAGE_LOCATION));
    }
    if sku.free {
        return Ok(());
    }
    let sku_subs: Vec<&Subscription> = subs
        .iter()
        .filter(|s| same_sku(&s.sku_id, &sku.id))
        .collect();
    if sku_subs.is_empty() {
        return Err(Refusal::license_unavailable(format!(
            "Subscription with SKU {} does not exist in this tenant. Start a trial (dirbridge licenses trial) or add a subscription.",
            sku.id
        )));
    }
    if !sku_subs.iter().any(|s| usable(subscription_state(s, now))) {
        let last_end = sku_subs.iter().map(|s| s.ends_at).max().unwrap_or(now);
        return Err(Refusal::license_unavailable(format!(
            "The subscriptions for SKU {} are suspended (expired on {}); renew or add a subscription before assigning.",
            sku.id,
            iso_date(last_end)
        )));
    }
    let mine = assignments.iter().filter(|a| {
        a.user_id == user.id && same_sku(&a.sku_id, &sku.id) && a.state == AssignmentState::Active
    });
    let mut holds_via_group = false;
    for a in mine {
        match a.source {
            AssignmentSource::Direct => return Ok(()),
            AssignmentSource::Group(_) => holds_via_group = true,
        }
    }
    if holds_via_group {
        return Ok(());
    }
    let consumed = count(active_holders(&sku.id, assignments).len());
    if consumed >= available_units(&sku.id, subs, now) {
        return Err(Refusal::license_unavailable(format!(
            "Subscription with SKU {} does not have any available licenses.",
            sku.id
        )));
    }
    Ok(())
}

/// Users reachable from `group_id` through memberships, following nested groups; each group is
/// visited once, so cycles end.
fn transitive_users<'a>(
    group_id: &'a str,
    children: &HashMap<&'a str, Vec<&'a MemberRef>>,
) -> BTreeSet<&'a str> {
    let mut users = BTreeSet::new();
    let mut seen: HashSet<&str> = HashSet::from([group_id]);
    let mut queue = vec![group_id];
    while let Some(g) = queue.pop() {
        for m in children.get(g).into_iter().flatten() {
            match m.kind {
                MemberKind::User => {
                    users.insert(m.id.as_str());
                }
                MemberKind::Group => {
                    if seen.insert(m.id.as_str()) {
                        queue.push(m.id.as_str());
                    }
                }
            }
        }
    }
    users
}

/// The complete desired set of group-sourced assignments for the tenant: one row per (user,
/// SKU, licensed group) for every user who is a member of the group, directly or through nested
/// groups. Rows are sorted by user id, SKU id and group id.
///
/// * Usage location: the user's own if valid, else `tenant.default_usage_location`; with
///   neither, the row is Error / ProhibitedInUsageLocationViolation (no seat taken).
/// * Seats, per SKU: users holding the SKU directly and actively already have one; then users
///   whose group assignment is Active today keep theirs (in user id order); then new users in
///   user id order; a user in several licensed groups takes one seat. When none is left the rows
///   are Error / CountViolation, as they are when the SKU has no usable subscription (or is not
///   in the catalogue).
/// * `updated_at` is `now` for new or changed rows and unchanged otherwise.
pub fn reconcile_groups(
    tenant: &Tenant,
    users: &[User],
    memberships: &[(String, MemberRef)],
    group_licenses: &[GroupLicense],
    subs: &[Subscription],
    current: &[LicenseAssignment],
    now: Epoch,
) -> Vec<LicenseAssignment> {
    let users_by_id: HashMap<&str, &User> = users.iter().map(|u| (u.id.as_str(), u)).collect();
    let mut children: HashMap<&str, Vec<&MemberRef>> = HashMap::new();
    for (group, member) in memberships {
        children.entry(group.as_str()).or_default().push(member);
    }
    let default_location = tenant
        .default_usage_location
        .as_deref()
        .map(|l| l.trim().to_ascii_uppercase())
        .filter(|l| country::is_alpha2(l));

    // sku (catalogue spelling) -> user id -> licensed groups that give it to them.
    let mut wanted: BTreeMap<String, BTreeMap<&str, BTreeSet<&str>>> = BTreeMap::new();
    for gl in group_licenses {
        let sku_id = sku(&gl.sku_id)
            .map(|s| s.id)
            .unwrap_or_else(|| gl.sku_id.clone());
        let per_user = wanted.entry(sku_id).or_default();
        for user_id in transitive_users(gl.group_id.as_str(), &children) {
            if users_by_id.contains_key(user_id) {
                per_user
                    .entry(user_id)
                    .or_default()
                    .insert(gl.group_id.as_str());
            }
        }
    }

    let mut out = Vec::new();
    for (sku_id, per_user) in &wanted {
        let known = sku(sku_id);
        let free = known.as_ref().is_some_and(|s| s.free);
        let available = if known.is_some() {
            available_units(sku_id, subs, now)
        } else {
            0
        };

        // Who needs a seat, and in which order.
        let mut located: Vec<(&str, Option<String>)> = Vec::new();
        for user_id in per_user.keys() {
            let user = users_by_id[user_id];
            let location = own_usage_location(user).or_else(|| default_location.clone());
            located.push((user_id, location));
        }
        let direct_holders: HashSet<&str> = current
            .iter()
            .filter(|a| {
                a.source == AssignmentSource::Direct
                    && a.state == AssignmentState::Active
                    && same_sku(&a.sku_id, sku_id)
            })
            .map(|a| a.user_id.as_str())
            .collect();
        let had_group_seat: HashSet<&str> = current
            .iter()
            .filter(|a| {
                matches!(a.source, AssignmentSource::Group(_))
                    && a.state == AssignmentState::Active
                    && same_sku(&a.sku_id, sku_id)
            })
            .map(|a| a.user_id.as_str())
            .collect();
        let mut seat_order: Vec<&str> = located
            .iter()
            .filter(|(u, loc)| loc.is_some() && !direct_holders.contains(u))
            .map(|(u, _)| *u)
            .collect();
        // Stable sort: earlier seat holders first, user id order within each part.
        seat_order.sort_by_key(|u| !had_group_seat.contains(u));
        let usable_now = free || available > 0;
        let mut consumed = count(direct_holders.len());
        let mut seated: HashSet<&str> = HashSet::new();
        for u in seat_order {
            if free || (usable_now && consumed < available) {
                seated.insert(u);
                consumed = consumed.saturating_add(1);
            }
        }

        for (user_id, location) in located {
            let (state, error) = match &location {
                None => (
                    AssignmentState::Error,
                    Some(LicenseErrorKind::ProhibitedInUsageLocationViolation),
                ),
                Some(_) if !usable_now => (
                    AssignmentState::Error,
                    Some(LicenseErrorKind::CountViolation),
                ),
                Some(_) if direct_holders.contains(user_id) || seated.contains(user_id) => {
                    (AssignmentState::Active, None)
                }
                Some(_) => (
                    AssignmentState::Error,
                    Some(LicenseErrorKind::CountViolation),
                ),
            };
            for group_id in &per_user[user_id] {
                let source = AssignmentSource::Group((*group_id).to_string());
                let previous = current.iter().find(|a| {
                    a.user_id == user_id && same_sku(&a.sku_id, sku_id) && a.source == source
                });
                let updated_at = match previous {
                    Some(p)
                        if p.state == state
                            && p.error == error
                            && p.effective_usage_location == location
                            && p.tenant_id == tenant.id
                            && p.sku_id == *sku_id =>
                    {
                        p.updated_at
                    }
                    _ => now,
                };
                out.push(LicenseAssignment {
                    tenant_id: tenant.id.clone(),
                    user_id: user_id.to_string(),
                    sku_id: sku_id.clone(),
                    source,
                    state,
                    error,
                    effective_usage_location: location.clone(),
                    updated_at,
                });
            }
        }
    }
    out.sort_by(|a, b| {
        let key = |x: &LicenseAssignment| {
            (
                x.user_id.clone(),
                x.sku_id.clone(),
                match &x.source {
                    AssignmentSource::Direct => String::new(),
                    AssignmentSource::Group(g) => g.clone(),
                },
            )
        };
        key(a).cmp(&key(b))
    });
    out
}

/// The users `group_id` holds, directly or through nested groups (each once, in id order):
/// the users a change of that group's licences or of its membership in another group affects.
pub fn users_in_group(group_id: &str, memberships: &[(String, MemberRef)]) -> Vec<String> {
    let mut children: HashMap<&str, Vec<&MemberRef>> = HashMap::new();
    for (group, member) in memberships {
        children.entry(group.as_str()).or_default().push(member);
    }
    transitive_users(group_id, &children)
        .into_iter()
        .map(str::to_string)
        .collect()
}

/// [`reconcile_groups`] for the users `affected` only (`users` holds those of them that still
/// exist): the group-sourced rows it would give them, when they do not depend on the other
/// users' — that is, when every SKU with group-sourced rows or licensed groups has a seat for
/// every user who wants one (or is free) and no group-sourced row is short of a seat. The other
/// users' rows then stay as they are (the result of the last recomputation, which any change
/// of their own triggers). `None` when seats are contended (or a SKU is unknown or unusable):
/// then only the whole tenant can be recomputed ([`reconcile_groups`]).
// The inputs of `reconcile_groups` and the scope.
#[allow(clippy::too_many_arguments)]
pub fn reconcile_groups_of(
    tenant: &Tenant,
    affected: &HashSet<String>,
    users: &[User],
    memberships: &[(String, MemberRef)],
    group_licenses: &[GroupLicense],
    subs: &[Subscription],
    current: &[LicenseAssignment],
    now: Epoch,
) -> Option<Vec<LicenseAssignment>> {
    let users: Vec<User> = users
        .iter()
        .filter(|u| affected.contains(&u.id))
        .cloned()
        .collect();
    let rows = reconcile_groups(
        tenant,
        &users,
        memberships,
        group_licenses,
        subs,
        current,
        now,
    );
    let canonical = |id: &str| sku(id).map(|s| s.id).unwrap_or_else(|| id.to_string());
    let mut skus: BTreeSet<String> = group_licenses
        .iter()
        .map(|gl| canonical(&gl.sku_id))
        .collect();
    skus.extend(
        current
            .iter()
            .filter(|a| matches!(a.source, AssignmentSource::Group(_)))
            .map(|a| canonical(&a.sku_id)),
    );
    for sku_id in &skus {
        let known = sku(sku_id)?;
        if known.free {
            continue;
        }
        let group_row = |a: &&LicenseAssignment| {
            matches!(a.source, AssignmentSource::Group(_)) && same_sku(&a.sku_id, sku_id)
        };
        if current
            .iter()
            .filter(group_row)
            .any(|a| a.error == Some(LicenseErrorKind::CountViolation))
        {
            return None;
        }
        let direct: HashSet<&str> = current
            .iter()
            .filter(|a| {
                a.source == AssignmentSource::Direct
                    && a.state == AssignmentState::Active
                    && same_sku(&a.sku_id, sku_id)
            })
            .map(|a| a.user_id.as_str())
            .collect();
        // Who wants a seat through a group: the others as they hold one now, the affected as
        // computed (located, whether or not the restricted count seated them).
        let mut wanting: HashSet<&str> = current
            .iter()
            .filter(group_row)
            .filter(|a| !affected.contains(&a.user_id) && a.state == AssignmentState::Active)
            .map(|a| a.user_id.as_str())
            .collect();
        wanting.extend(
            rows.iter()
                .filter(group_row)
                .filter(|a| a.error != Some(LicenseErrorKind::ProhibitedInUsageLocationViolation))
                .map(|a| a.user_id.as_str()),
        );
        let needed = direct.len() + wanting.iter().filter(|u| !direct.contains(*u)).count();
        let available = available_units(sku_id, subs, now);
        if available == 0 || count(needed) > available {
            return None;
        }
    }
    Some(rows)
}

/// May `user` use SSPR with writeback now? Yes when the account is enabled, the user holds an
/// Active assignment (direct or group) of a SKU whose plans include [`SSPR_WRITEBACK`], and that
/// SKU has at least one Enabled or Warning subscription. Otherwise the reason, in words.
pub fn entitlement(
    user: &User,
    assignments: &[LicenseAssignment],
    subs: &[Subscription],
    now: Epoch,
) -> Entitlement {
    let deny = |reason: String, sku_id: Option<String>| Entitlement {
        allowed: false,
        reason: Some(reason),
        sku_id,
    };
    if !user.account_enabled {
        return deny("account is disabled".into(), None);
    }
    let writeback_skus: Vec<Sku> = catalogue()
        .into_iter()
        .filter(|s| s.service_plans.iter().any(|p| p == SSPR_WRITEBACK))
        .collect();
    let mine: Vec<&LicenseAssignment> = assignments
        .iter()
        .filter(|a| {
            a.user_id == user.id && writeback_skus.iter().any(|s| same_sku(&s.id, &a.sku_id))
        })
        .collect();
    let mut held: Vec<&Sku> = writeback_skus
        .iter()
        .filter(|s| {
            mine.iter()
                .any(|a| a.state == AssignmentState::Active && same_sku(&a.sku_id, &s.id))
        })
        .collect();
    if held.is_empty() {
        if let Some(err) = mine.iter().find(|a| a.state == AssignmentState::Error) {
            let sku_id = sku(&err.sku_id)
                .map(|s| s.id)
                .unwrap_or_else(|| err.sku_id.clone());
            let why = match err.error {
                Some(LicenseErrorKind::ProhibitedInUsageLocationViolation) => {
                    "the user has no usage location and the tenant has no default".to_string()
                }
                Some(LicenseErrorKind::CountViolation) => "no licence was left".to_string(),
                Some(other) => format!("{other:?}"),
                None => "an error".to_string(),
            };
            return deny(
                format!("user's {sku_id} licence is in an error state ({why}); it does not include SSPR_WRITEBACK until fixed"),
                Some(sku_id),
            );
        }
        return deny(
            format!("user has no licence that includes {SSPR_WRITEBACK}"),
            None,
        );
    }
    // Prefer a SKU whose subscriptions are usable.
    held.sort_by_key(|s| {
        !subs
            .iter()
            .any(|x| same_sku(&x.sku_id, &s.id) && usable(subscription_state(x, now)))
    });
    let best = held[0];
    if subs
        .iter()
        .any(|x| same_sku(&x.sku_id, &best.id) && usable(subscription_state(x, now)))
    {
        return Entitlement {
            allowed: true,
            reason: None,
            sku_id: Some(best.id.clone()),
        };
    }
    let reason = if subs.iter().any(|x| same_sku(&x.sku_id, &best.id)) {
        format!("the {} subscriptions are suspended", best.id)
    } else {
        format!("the tenant has no {} subscription", best.id)
    };
    deny(reason, Some(best.id.clone()))
}

#[cfg(test)]
mod tests;
