use super::*;
use proto::{ErrorCode, Source};

const DAY: i64 = 86_400;
const T0: Epoch = 1_735_689_600; // 2025-01-01

fn user(id: &str, loc: Option<&str>) -> User {
    User {
        id: id.into(),
        tenant_id: "t1".into(),
        user_principal_name: format!("{id}@contoso.com"),
        display_name: id.into(),
        given_name: None,
        surname: None,
        mail: None,
        mobile_phone: None,
        office_phone: None,
        usage_location: loc.map(Into::into),
        account_enabled: true,
        source: Source::Cloud,
        roles: vec![],
        on_premises: None,
        created_at: 0,
        updated_at: 0,
    }
}

fn tenant(default_loc: Option<&str>) -> Tenant {
    Tenant {
        id: "t1".into(),
        name: "contoso".into(),
        initial_domain: "contoso.dirbridge.test".into(),
        domains: vec!["contoso.dirbridge.test".into()],
        default_usage_location: default_loc.map(Into::into),
        soft_match_enabled: false,
        created_at: 0,
    }
}

fn sub(units: u32, starts_at: Epoch, ends_at: Epoch) -> Subscription {
    Subscription {
        id: format!("s{starts_at}-{units}"),
        tenant_id: "t1".into(),
        sku_id: PREMIUM_SKU.into(),
        kind: SubscriptionKind::Purchased,
        units,
        starts_at,
        ends_at,
        created_at: starts_at,
    }
}

fn assignment(
    user_id: &str,
    source: AssignmentSource,
    state: AssignmentState,
) -> LicenseAssignment {
    LicenseAssignment {
        tenant_id: "t1".into(),
        user_id: user_id.into(),
        sku_id: PREMIUM_SKU.into(),
        source,
        state,
        error: None,
        effective_usage_location: Some("US".into()),
        updated_at: 0,
    }
}

fn direct(user_id: &str) -> LicenseAssignment {
    assignment(user_id, AssignmentSource::Direct, AssignmentState::Active)
}

fn via(user_id: &str, group: &str) -> LicenseAssignment {
    assignment(
        user_id,
        AssignmentSource::Group(group.into()),
        AssignmentState::Active,
    )
}

fn member_user(group: &str, user: &str) -> (String, MemberRef) {
    (
        group.into(),
        MemberRef {
            kind: MemberKind::User,
            id: user.into(),
        },
    )
}

fn member_group(group: &str, child: &str) -> (String, MemberRef) {
    (
        group.into(),
        MemberRef {
            kind: MemberKind::Group,
            id: child.into(),
        },
    )
}

fn group_license(group: &str) -> GroupLicense {
    GroupLicense {
        tenant_id: "t1".into(),
        group_id: group.into(),
        sku_id: PREMIUM_SKU.into(),
        created_at: 0,
    }
}

// ------------------------------------------------------------------ catalogue

#[test]
fn catalogue_has_free_and_premium_with_writeback_only_in_premium() {
    let c = catalogue();
    let free = c.iter().find(|s| s.id == FREE_SKU).unwrap();
    let premium = c.iter().find(|s| s.id == PREMIUM_SKU).unwrap();
    assert!(free.free && !premium.free);
    assert!(!free.service_plans.iter().any(|p| p == SSPR_WRITEBACK));
    for plan in ["SSPR", SSPR_WRITEBACK, "PASSWORD_CHANGE"] {
        assert!(premium.service_plans.iter().any(|p| p == plan), "{plan}");
    }
}

#[test]
fn sku_lookup_is_case_insensitive_and_returns_the_canonical_id() {
    assert_eq!(sku("dirbridge_premium").unwrap().id, PREMIUM_SKU);
    assert!(sku("ENTERPRISEPACK").is_none());
}

// ------------------------------------------------------------------ states

#[test]
fn subscription_state_walks_enabled_warning_suspended_locked_out() {
    let s = sub(10, T0, T0 + 10 * DAY);
    let end = s.ends_at;
    assert_eq!(subscription_state(&s, T0 - DAY), SubscriptionState::Enabled);
    assert_eq!(subscription_state(&s, end - 1), SubscriptionState::Enabled);
    assert_eq!(subscription_state(&s, end), SubscriptionState::Warning);
    assert_eq!(
        subscription_state(&s, end + 30 * DAY - 1),
        SubscriptionState::Warning
    );
    assert_eq!(
        subscription_state(&s, end + 30 * DAY),
        SubscriptionState::Suspended
    );
    assert_eq!(
        subscription_state(&s, end + 120 * DAY - 1),
        SubscriptionState::Suspended
    );
    assert_eq!(
        subscription_state(&s, end + 120 * DAY),
        SubscriptionState::LockedOut
    );
}

#[test]
fn subscription_state_does_not_overflow() {
    let s = sub(1, 0, i64::MAX - 5);
    assert_eq!(
        subscription_state(&s, i64::MAX - 1),
        SubscriptionState::Warning
    );
    let _ = subscription_state(&s, i64::MAX);
    let s = sub(1, 0, i64::MIN);
    assert_eq!(subscription_state(&s, 0), SubscriptionState::LockedOut);
}

// ------------------------------------------------------------------ trials and purchases

#[test]
fn trial_gives_100_units_for_90_days() {
    let t = start_trial("t1", "dirbridge_premium", &[], T0).unwrap();
    assert_eq!(t.sku_id, PREMIUM_SKU);
    assert_eq!(t.kind, SubscriptionKind::Trial);
    assert_eq!(t.units, 100);
    assert_eq!(
        (t.starts_at, t.ends_at, t.created_at),
        (T0, T0 + 90 * DAY, T0)
    );
    assert_eq!(t.tenant_id, "t1");
}

#[test]
fn second_trial_is_a_conflict_naming_the_date_even_after_expiry() {
    let first = start_trial("t1", PREMIUM_SKU, &[], T0).unwrap();
    let e = start_trial("t1", PREMIUM_SKU, &[first], T0 + 400 * DAY).unwrap_err();
    assert_eq!(e.code, ErrorCode::Conflict);
    assert_eq!(
        e.message,
        "A trial of DIRBRIDGE_PREMIUM was already started on 2025-01-01; add a purchased subscription instead."
    );
}

#[test]
fn purchased_subscriptions_do_not_block_a_trial() {
    let bought = sub(5, T0, T0 + DAY);
    assert!(start_trial("t1", PREMIUM_SKU, &[bought], T0).is_ok());
}

#[test]
fn free_and_unknown_skus_have_no_trial() {
    let e = start_trial("t1", FREE_SKU, &[], T0).unwrap_err();
    assert_eq!(e.code, ErrorCode::Validation);
    let e = start_trial("t1", "NOPE", &[], T0).unwrap_err();
    assert_eq!(e.code, ErrorCode::NotFound);
    assert!(
        e.message.contains("'NOPE'") && e.message.contains(PREMIUM_SKU),
        "{}",
        e.message
    );
}

#[test]
fn purchase_checks_sku_units_and_term() {
    let req = |sku: &str, units, term_days| NewSubscription {
        sku_id: sku.into(),
        units,
        term_days,
    };
    let s = purchase("t1", &req("dirbridge_premium", 25, 365), T0).unwrap();
    assert_eq!(
        (s.units, s.kind, s.sku_id.as_str()),
        (25, SubscriptionKind::Purchased, PREMIUM_SKU)
    );
    assert_eq!(s.ends_at, T0 + 365 * DAY);
    assert!(purchase("t1", &req(PREMIUM_SKU, 1_000_000, 3650), T0).is_ok());
    for (r, field) in [
        (req(PREMIUM_SKU, 0, 30), "units: 0"),
        (req(PREMIUM_SKU, 1_000_001, 30), "units: 1000001"),
        (req(PREMIUM_SKU, 1, 0), "termDays: 0"),
        (req(PREMIUM_SKU, 1, 3651), "termDays: 3651"),
        (req(FREE_SKU, 1, 30), "skuId:"),
    ] {
        let e = purchase("t1", &r, T0).unwrap_err();
        assert_eq!(e.code, ErrorCode::Validation);
        assert!(e.message.starts_with(field), "{}", e.message);
    }
    assert_eq!(
        purchase("t1", &req("X", 1, 1), T0).unwrap_err().code,
        ErrorCode::NotFound
    );
}

// ------------------------------------------------------------------ counting

#[test]
fn available_units_count_enabled_and_warning_only() {
    let subs = vec![
        sub(10, T0, T0 + 100 * DAY),            // enabled
        sub(5, T0 - 200 * DAY, T0 - DAY),       // warning
        sub(7, T0 - 300 * DAY, T0 - 60 * DAY),  // suspended
        sub(3, T0 - 900 * DAY, T0 - 800 * DAY), // locked out
    ];
    assert_eq!(available_units(PREMIUM_SKU, &subs, T0), 15);
    assert_eq!(available_units("dirbridge_premium", &subs, T0), 15);
    assert_eq!(available_units(FREE_SKU, &subs, T0), 0);
}

#[test]
fn summary_counts_units_per_state_and_distinct_active_users() {
    let subs = vec![
        sub(10, T0, T0 + 100 * DAY),
        sub(5, T0 - 200 * DAY, T0 - DAY),
        sub(7, T0 - 300 * DAY, T0 - 60 * DAY),
        sub(3, T0 - 900 * DAY, T0 - 800 * DAY),
    ];
    let assignments = vec![
        direct("u1"),
        via("u1", "g1"), // same user again: one seat
        via("u2", "g1"),
        assignment("u3", AssignmentSource::Direct, AssignmentState::Error),
    ];
    let sum = summarize(&subs, &assignments, T0);
    assert_eq!(sum.len(), 2);
    assert_eq!(sum[0].sku_id, FREE_SKU);
    assert_eq!(sum[0].consumed_units, 0);
    assert!(sum[0].subscriptions.is_empty());
    let p = &sum[1];
    assert_eq!(p.sku_id, PREMIUM_SKU);
    assert_eq!(
        (
            p.enabled_units,
            p.warning_units,
            p.suspended_units,
            p.locked_out_units,
            p.consumed_units
        ),
        (10, 5, 7, 3, 2)
    );
    assert_eq!(p.subscriptions.len(), 4);
    assert_eq!(
        p.subscriptions[0].state,
        SubscriptionState::LockedOut,
        "oldest first"
    );
}

#[test]
fn summary_without_subscriptions_lists_only_the_free_sku() {
    let sum = summarize(&[], &[], T0);
    assert_eq!(sum.len(), 1);
    assert_eq!(sum[0].sku_id, FREE_SKU);
}

// ------------------------------------------------------------------ direct assignment

#[test]
fn direct_assignment_checks_run_in_order() {
    let subs = vec![sub(1, T0, T0 + DAY)];
    let no_loc = user("u1", None);

    // Unknown SKU first, even without a usage location.
    assert_eq!(
        check_direct_assignment(&no_loc, "NOPE", &subs, &[], T0)
            .unwrap_err()
            .code,
        ErrorCode::NotFound
    );

    // Usage location before anything about subscriptions, with the incumbent's exact error.
    for loc in [None, Some("USA"), Some(""), Some("XK")] {
        let e = check_direct_assignment(&user("u1", loc), PREMIUM_SKU, &[], &[], T0).unwrap_err();
        assert_eq!(e.code, ErrorCode::BadRequest);
        assert_eq!(
            e.message,
            "License assignment cannot be done for user with invalid usage location."
        );
        assert_eq!(e.http_status(), 400);
    }
    // Even the free SKU needs a usage location for direct assignment.
    assert!(check_direct_assignment(&no_loc, FREE_SKU, &[], &[], T0).is_err());
    assert!(check_direct_assignment(&user("u1", Some("no")), FREE_SKU, &[], &[], T0).is_ok());
}

#[test]
fn direct_assignment_without_subscription_says_how_to_get_one() {
    let e =
        check_direct_assignment(&user("u1", Some("US")), PREMIUM_SKU, &[], &[], T0).unwrap_err();
    assert_eq!(e.code, ErrorCode::LicenseUnavailable);
    assert_eq!(
        e.message,
        "Subscription with SKU DIRBRIDGE_PREMIUM does not exist in this tenant. Start a trial (dirbridge licenses trial) or add a subscription."
    );
}

#[test]
fn direct_assignment_with_only_suspended_subscriptions_names_the_expiry() {
    let subs = vec![
        sub(10, T0 - 200 * DAY, T0 - 31 * DAY),
        sub(10, T0 - 400 * DAY, T0 - 300 * DAY),
    ];
    let e =
        check_direct_assignment(&user("u1", Some("US")), PREMIUM_SKU, &subs, &[], T0).unwrap_err();
    assert_eq!(e.code, ErrorCode::LicenseUnavailable);
    assert_eq!(
        e.message,
        "The subscriptions for SKU DIRBRIDGE_PREMIUM are suspended (expired on 2024-12-01); renew or add a subscription before assigning."
    );
}

#[test]
fn warning_units_can_still_be_assigned() {
    let subs = vec![sub(1, T0 - 100 * DAY, T0 - DAY)];
    assert!(check_direct_assignment(&user("u1", Some("US")), PREMIUM_SKU, &subs, &[], T0).is_ok());
}

#[test]
fn seats_run_out_at_the_unit_count() {
    let subs = vec![sub(2, T0, T0 + DAY)];
    let taken = vec![direct("u1"), via("u2", "g1")];
    let e = check_direct_assignment(&user("u3", Some("US")), PREMIUM_SKU, &subs, &taken, T0)
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::LicenseUnavailable);
    assert_eq!(
        e.message,
        "Subscription with SKU DIRBRIDGE_PREMIUM does not have any available licenses."
    );
    // Error-state assignments hold no seat.
    let taken = vec![
        direct("u1"),
        assignment("u2", AssignmentSource::Direct, AssignmentState::Error),
    ];
    assert!(
        check_direct_assignment(&user("u3", Some("US")), PREMIUM_SKU, &subs, &taken, T0).is_ok()
    );
}

#[test]
fn reassigning_or_holding_through_a_group_takes_no_new_seat() {
    let subs = vec![sub(1, T0, T0 + DAY)];
    let u1 = user("u1", Some("US"));
    assert!(check_direct_assignment(&u1, PREMIUM_SKU, &subs, &[direct("u1")], T0).is_ok());
    assert!(check_direct_assignment(&u1, PREMIUM_SKU, &subs, &[via("u1", "g1")], T0).is_ok());
    // An Error group assignment does not count as holding it.
    let errored = vec![
        assignment(
            "u1",
            AssignmentSource::Group("g".into()),
            AssignmentState::Error,
        ),
        direct("u2"),
    ];
    assert!(check_direct_assignment(&u1, PREMIUM_SKU, &subs, &errored, T0).is_err());
}

// ------------------------------------------------------------------ group-based licensing

fn rows_for<'a>(rows: &'a [LicenseAssignment], user_id: &str) -> Vec<&'a LicenseAssignment> {
    rows.iter().filter(|r| r.user_id == user_id).collect()
}

#[test]
fn group_members_get_licences_including_nested_and_cyclic_groups() {
    let users = vec![
        user("a", Some("NO")),
        user("b", Some("US")),
        user("c", Some("SE")),
    ];
    let memberships = vec![
        member_user("g1", "a"),
        member_group("g1", "g2"),
        member_user("g2", "b"),
        member_group("g2", "g3"),
        member_group("g3", "g1"), // cycle
        member_user("g3", "c"),
        member_user("g1", "ghost"), // not a known user: ignored
    ];
    let subs = vec![sub(10, T0, T0 + DAY)];
    let rows = reconcile_groups(
        &tenant(None),
        &users,
        &memberships,
        &[group_license("g1")],
        &subs,
        &[],
        T0,
    );
    assert_eq!(rows.len(), 3);
    for (r, (id, loc)) in rows.iter().zip([("a", "NO"), ("b", "US"), ("c", "SE")]) {
        assert_eq!(r.user_id, id);
        assert_eq!(r.source, AssignmentSource::Group("g1".into()));
        assert_eq!(r.state, AssignmentState::Active);
        assert_eq!(r.error, None);
        assert_eq!(r.effective_usage_location.as_deref(), Some(loc));
        assert_eq!(r.updated_at, T0);
        assert_eq!(r.tenant_id, "t1");
    }
}

#[test]
fn missing_usage_location_inherits_the_tenant_default_or_errors() {
    let users = vec![user("a", None), user("b", Some("bogus"))];
    let m = vec![member_user("g1", "a"), member_user("g1", "b")];
    let subs = vec![sub(10, T0, T0 + DAY)];
    let rows = reconcile_groups(
        &tenant(Some("no")),
        &users,
        &m,
        &[group_license("g1")],
        &subs,
        &[],
        T0,
    );
    assert!(rows.iter().all(|r| r.state == AssignmentState::Active));
    assert!(rows
        .iter()
        .all(|r| r.effective_usage_location.as_deref() == Some("NO")));

    let rows = reconcile_groups(
        &tenant(None),
        &users,
        &m,
        &[group_license("g1")],
        &subs,
        &[],
        T0,
    );
    assert_eq!(rows.len(), 2);
    for r in &rows {
        assert_eq!(r.state, AssignmentState::Error);
        assert_eq!(
            r.error,
            Some(LicenseErrorKind::ProhibitedInUsageLocationViolation)
        );
        assert_eq!(r.effective_usage_location, None);
    }
}

#[test]
fn users_without_location_take_no_seat() {
    let users = vec![user("a", None), user("b", Some("US"))];
    let m = vec![member_user("g1", "a"), member_user("g1", "b")];
    let subs = vec![sub(1, T0, T0 + DAY)];
    let rows = reconcile_groups(
        &tenant(None),
        &users,
        &m,
        &[group_license("g1")],
        &subs,
        &[],
        T0,
    );
    assert_eq!(rows_for(&rows, "b")[0].state, AssignmentState::Active);
}

#[test]
fn seats_go_to_existing_holders_first_then_by_user_id() {
    let users = vec![
        user("a", Some("US")),
        user("b", Some("US")),
        user("c", Some("US")),
        user("d", Some("US")),
    ];
    let m: Vec<_> = ["a", "b", "c", "d"]
        .iter()
        .map(|u| member_user("g1", u))
        .collect();
    let subs = vec![sub(3, T0, T0 + DAY)];
    // c already holds a group seat, d holds the SKU directly: a and b compete for the last seat.
    let mut held_c = via("c", "g1");
    held_c.updated_at = 42;
    let current = vec![held_c, direct("d")];
    let rows = reconcile_groups(
        &tenant(None),
        &users,
        &m,
        &[group_license("g1")],
        &subs,
        &current,
        T0,
    );
    let state = |u: &str| rows_for(&rows, u)[0].clone();
    assert_eq!(state("c").state, AssignmentState::Active);
    assert_eq!(
        state("c").updated_at,
        42,
        "unchanged rows keep their timestamp"
    );
    assert_eq!(
        state("d").state,
        AssignmentState::Active,
        "direct holder takes no extra seat"
    );
    assert_eq!(state("a").state, AssignmentState::Active);
    assert_eq!(state("b").state, AssignmentState::Error);
    assert_eq!(state("b").error, Some(LicenseErrorKind::CountViolation));
    assert_eq!(state("b").updated_at, T0);
}

#[test]
fn seat_allocation_is_stable_across_runs() {
    let users = vec![user("a", Some("US")), user("z", Some("US"))];
    let subs = vec![sub(1, T0, T0 + DAY)];
    // z got the seat earlier (a joined later).
    let current = vec![via("z", "g1")];
    let m = vec![member_user("g1", "a"), member_user("g1", "z")];
    let rows = reconcile_groups(
        &tenant(None),
        &users,
        &m,
        &[group_license("g1")],
        &subs,
        &current,
        T0,
    );
    assert_eq!(rows_for(&rows, "z")[0].state, AssignmentState::Active);
    assert_eq!(rows_for(&rows, "a")[0].state, AssignmentState::Error);
    // Running again on its own output changes nothing.
    let again = reconcile_groups(
        &tenant(None),
        &users,
        &m,
        &[group_license("g1")],
        &subs,
        &rows,
        T0 + 100,
    );
    assert_eq!(again, rows);
}

#[test]
fn a_user_in_two_licensed_groups_gets_two_rows_and_one_seat() {
    let users = vec![user("a", Some("US")), user("b", Some("US"))];
    let m = vec![
        member_user("g1", "a"),
        member_user("g2", "a"),
        member_user("g2", "b"),
    ];
    let subs = vec![sub(2, T0, T0 + DAY)];
    let gls = vec![
        group_license("g1"),
        group_license("g2"),
        group_license("g2"),
    ];
    let rows = reconcile_groups(&tenant(None), &users, &m, &gls, &subs, &[], T0);
    assert_eq!(rows.len(), 3, "duplicate group licences collapse");
    assert!(
        rows.iter().all(|r| r.state == AssignmentState::Active),
        "{rows:?}"
    );
    assert_eq!(rows_for(&rows, "a").len(), 2);
}

#[test]
fn suspended_or_missing_subscriptions_give_count_violations() {
    let users = vec![user("a", Some("US"))];
    let m = vec![member_user("g1", "a")];
    for subs in [vec![], vec![sub(10, T0 - 300 * DAY, T0 - 60 * DAY)]] {
        let rows = reconcile_groups(
            &tenant(None),
            &users,
            &m,
            &[group_license("g1")],
            &subs,
            &[direct("a")],
            T0,
        );
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].state, AssignmentState::Error);
        assert_eq!(rows[0].error, Some(LicenseErrorKind::CountViolation));
    }
}

#[test]
fn free_sku_groups_need_no_subscription() {
    let users = vec![user("a", Some("US"))];
    let m = vec![member_user("g1", "a")];
    let mut gl = group_license("g1");
    gl.sku_id = "dirbridge_free".into();
    let rows = reconcile_groups(&tenant(None), &users, &m, &[gl], &[], &[], T0);
    assert_eq!(rows[0].state, AssignmentState::Active);
    assert_eq!(rows[0].sku_id, FREE_SKU);
}

#[test]
fn removed_members_and_unlicensed_groups_drop_out() {
    let users = vec![user("a", Some("US"))];
    let subs = vec![sub(10, T0, T0 + DAY)];
    let current = vec![via("a", "g1")];
    let rows = reconcile_groups(
        &tenant(None),
        &users,
        &[],
        &[group_license("g1")],
        &subs,
        &current,
        T0,
    );
    assert!(rows.is_empty());
    let rows = reconcile_groups(
        &tenant(None),
        &users,
        &[member_user("g1", "a")],
        &[],
        &subs,
        &current,
        T0,
    );
    assert!(rows.is_empty());
}

#[test]
fn changed_rows_get_now() {
    let users = vec![user("a", Some("NO"))];
    let subs = vec![sub(10, T0, T0 + DAY)];
    let mut old = via("a", "g1");
    old.updated_at = 7;
    old.effective_usage_location = Some("US".into()); // location changed since
    let rows = reconcile_groups(
        &tenant(None),
        &users,
        &[member_user("g1", "a")],
        &[group_license("g1")],
        &subs,
        &[old],
        T0,
    );
    assert_eq!(rows[0].updated_at, T0);
    assert_eq!(rows[0].effective_usage_location.as_deref(), Some("NO"));
}

// ------------------------------------------------------------------ entitlement

#[test]
fn entitled_with_an_active_premium_licence_and_a_usable_subscription() {
    let u = user("a", Some("US"));
    for a in [direct("a"), via("a", "g1")] {
        let e = entitlement(&u, &[a], &[sub(1, T0, T0 + DAY)], T0);
        assert_eq!(
            e,
            Entitlement {
                allowed: true,
                reason: None,
                sku_id: Some(PREMIUM_SKU.into())
            }
        );
    }
    // Warning (grace) still counts.
    let e = entitlement(&u, &[direct("a")], &[sub(1, T0 - 10 * DAY, T0 - DAY)], T0);
    assert!(e.allowed);
}

#[test]
fn not_entitled_reasons() {
    let subs = vec![sub(1, T0, T0 + DAY)];
    let mut disabled = user("a", Some("US"));
    disabled.account_enabled = false;
    let e = entitlement(&disabled, &[direct("a")], &subs, T0);
    assert!(!e.allowed);
    assert_eq!(e.reason.as_deref(), Some("account is disabled"));

    let u = user("a", Some("US"));
    let e = entitlement(&u, &[direct("someone-else")], &subs, T0);
    assert_eq!(
        e.reason.as_deref(),
        Some("user has no licence that includes SSPR_WRITEBACK")
    );

    let mut free = direct("a");
    free.sku_id = FREE_SKU.into();
    let e = entitlement(&u, &[free], &subs, T0);
    assert_eq!(
        e.reason.as_deref(),
        Some("user has no licence that includes SSPR_WRITEBACK")
    );

    let suspended = vec![sub(1, T0 - 300 * DAY, T0 - 60 * DAY)];
    let e = entitlement(&u, &[direct("a")], &suspended, T0);
    assert!(!e.allowed);
    assert_eq!(
        e.reason.as_deref(),
        Some("the DIRBRIDGE_PREMIUM subscriptions are suspended")
    );
    assert_eq!(e.sku_id.as_deref(), Some(PREMIUM_SKU));

    let mut errored = assignment(
        "a",
        AssignmentSource::Group("g1".into()),
        AssignmentState::Error,
    );
    errored.error = Some(LicenseErrorKind::CountViolation);
    let e = entitlement(&u, &[errored], &subs, T0);
    assert!(!e.allowed);
    assert!(e
        .reason
        .unwrap()
        .contains("error state (no licence was left)"));
}

// ------------------------------------------------------------------ properties

mod properties {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// Whatever the membership graph (cycles included), reconciliation ends, never gives
        /// out more seats than there are, and is a fixed point when run on its own output.
        #[test]
        fn reconcile_never_oversubscribes_and_is_stable(
            edges in prop::collection::vec((0usize..4, 0usize..10, any::<bool>()), 0..30),
            licensed in prop::collection::vec(0usize..4, 1..4),
            units in 0u32..6,
            directs in prop::collection::vec(0usize..6, 0..3),
            locs in prop::collection::vec(any::<bool>(), 6),
        ) {
            let users: Vec<User> = (0..6)
                .map(|i| user(&format!("u{i}"), if locs[i] { Some("US") } else { None }))
                .collect();
            let memberships: Vec<(String, MemberRef)> = edges
                .iter()
                .map(|(g, m, is_group)| {
                    if *is_group {
                        member_group(&format!("g{g}"), &format!("g{}", m % 4))
                    } else {
                        member_user(&format!("g{g}"), &format!("u{}", m % 6))
                    }
                })
                .collect();
            let gls: Vec<GroupLicense> = licensed.iter().map(|g| group_license(&format!("g{g}"))).collect();
            let subs = vec![sub(units, T0, T0 + DAY)];
            let current: Vec<LicenseAssignment> = directs.iter().map(|d| direct(&format!("u{d}"))).collect();
            let rows = reconcile_groups(&tenant(None), &users, &memberships, &gls, &subs, &current, T0);

            let direct_holders: HashSet<&str> = current.iter().map(|a| a.user_id.as_str()).collect();
            let mut seated: HashSet<&str> = rows
                .iter()
                .filter(|r| r.state == AssignmentState::Active)
                .map(|r| r.user_id.as_str())
                .collect();
            for r in &rows {
                if r.effective_usage_location.is_none() {
                    prop_assert_eq!(r.state, AssignmentState::Error);
                    prop_assert_eq!(r.error, Some(LicenseErrorKind::ProhibitedInUsageLocationViolation));
                }
            }
            seated.extend(direct_holders.iter().copied());
            prop_assert!(seated.len() as u32 <= units.max(direct_holders.len() as u32));

            let mut all = current.clone();
            all.extend(rows.iter().cloned());
            let again = reconcile_groups(&tenant(None), &users, &memberships, &gls, &subs, &all, T0 + 5);
            prop_assert_eq!(again, rows);
        }
    }
}

// ------------------------------------------------------------------ incremental

/// The whole tenant recomputed after a change, next to the affected users recomputed alone:
/// the same rows for them, and the others' rows as they were.
fn check_incremental(
    users: &[User],
    memberships: &[(String, MemberRef)],
    licensed: &[GroupLicense],
    subs: &[Subscription],
    before: &[LicenseAssignment],
    affected: &[&str],
) -> Vec<LicenseAssignment> {
    let t = tenant(Some("NO"));
    let full = reconcile_groups(&t, users, memberships, licensed, subs, before, T0 + DAY);
    let affected: HashSet<String> = affected.iter().map(|s| s.to_string()).collect();
    let only = reconcile_groups_of(
        &t,
        &affected,
        users,
        memberships,
        licensed,
        subs,
        before,
        T0 + DAY,
    )
    .expect("seats are plentiful: the affected users alone");
    let (mine, others): (Vec<_>, Vec<_>) = full
        .into_iter()
        .partition(|a| affected.contains(&a.user_id));
    assert_eq!(
        only, mine,
        "the affected users' rows are those of a full run"
    );
    let before_others: Vec<LicenseAssignment> = before
        .iter()
        .filter(|a| matches!(a.source, AssignmentSource::Group(_)))
        .filter(|a| !affected.contains(&a.user_id))
        .cloned()
        .collect();
    assert_eq!(
        others, before_others,
        "a full run leaves the others as they were"
    );
    only
}

#[test]
fn membership_and_group_licence_changes_recompute_only_the_affected_users_with_nesting() {
    let users: Vec<User> = ["a", "b", "c", "d", "e", "x"]
        .iter()
        .map(|id| user(id, if *id == "d" { None } else { Some("SE") }))
        .collect();
    // g1 (licensed) holds a and g2; g2 holds b and g3; g3 holds c and d (no location: the
    // tenant default); g4 (licensed) holds e and a.
    let mut memberships = vec![
        member_user("g1", "a"),
        member_group("g1", "g2"),
        member_user("g2", "b"),
        member_group("g2", "g3"),
        member_user("g3", "c"),
        member_user("g3", "d"),
        member_user("g4", "e"),
        member_user("g4", "a"),
    ];
    let mut licensed = vec![group_license("g1"), group_license("g4")];
    let subs = vec![sub(20, T0, T0 + 30 * DAY)];
    let before = reconcile_groups(
        &tenant(Some("NO")),
        &users,
        &memberships,
        &licensed,
        &subs,
        &[],
        T0,
    );
    assert_eq!(before.len(), 6);

    // x joins g3, two levels below the licensed g1: only x is recomputed.
    memberships.push(member_user("g3", "x"));
    let rows = check_incremental(&users, &memberships, &licensed, &subs, &before, &["x"]);
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].source, AssignmentSource::Group("g1".into()));
    assert_eq!(rows[0].state, AssignmentState::Active);
    let before = reconcile_groups(
        &tenant(Some("NO")),
        &users,
        &memberships,
        &licensed,
        &subs,
        &before,
        T0,
    );

    // g3 leaves g2: its users (c, d, x) lose g1; nobody else is touched.
    memberships.retain(|m| m != &member_group("g2", "g3"));
    assert_eq!(users_in_group("g3", &memberships), ["c", "d", "x"]);
    let rows = check_incremental(
        &users,
        &memberships,
        &licensed,
        &subs,
        &before,
        &["c", "d", "x"],
    );
    assert!(rows.is_empty(), "{rows:?}");
    let before = reconcile_groups(
        &tenant(Some("NO")),
        &users,
        &memberships,
        &licensed,
        &subs,
        &before,
        T0,
    );

    // g2 gets a licence of its own: b (direct) and nothing below it any more.
    licensed.push(group_license("g2"));
    let affected = users_in_group("g2", &memberships);
    assert_eq!(affected, ["b"]);
    let rows = check_incremental(&users, &memberships, &licensed, &subs, &before, &["b"]);
    assert_eq!(rows.len(), 2, "b through g1 and through g2: {rows:?}");

    // With seats short, the affected users cannot be recomputed alone.
    let few = vec![sub(2, T0, T0 + 30 * DAY)];
    let t = tenant(Some("NO"));
    let affected: HashSet<String> = ["b".to_string()].into();
    assert!(reconcile_groups_of(
        &t,
        &affected,
        &users,
        &memberships,
        &licensed,
        &few,
        &before,
        T0
    )
    .is_none());
}
