//! The registration interrupt at sign-in (docs/portal.md, "Registration at sign-in"): whether a
//! person who just signed in must register reset methods first, or reconfirm the ones they
//! have, and recording a reconfirmation. Entra's "Require users to register when signing in"
//! and "Number of days before users are asked to reconfirm their authentication information".
//!
//! Only people the policy enables for self-service reset are asked. A person counts as
//! registered when they have at least as many *usable* methods as they must verify at a reset
//! ([`sspr::usable_methods`], [`sspr::methods_required`]: an administrator needs two, never
//! security questions; a phone counts only when its gateway is set up). A reconfirmation is due when the methods were last registered or
//! confirmed `reconfirm_days` or more ago; confirming stamps `updatedAt` of the registration.

use proto::{AuthMethod, Epoch, SsprPolicy};
use tenant::roles;
use tenant::{policy, sspr};

use super::caller::Caller;
use super::Ctx;
use crate::audit::record;
use crate::error::ApiResult;
use crate::state::AppState;

/// What a person who just signed in is asked before they go on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Interrupt {
    /// Nothing: go on.
    None,
    /// Register more methods first (`have` usable of `need`).
    Register { have: usize, need: usize },
    /// Confirm that the registered methods are still right.
    Reconfirm,
}

const DAY: i64 = 86_400;

/// The decision, from what is known about the person: the policy, whether it applies to them,
/// whether they are an administrator, what they registered and when.
pub fn decide(
    p: &SsprPolicy,
    in_scope: bool,
    is_admin: bool,
    registered: &[AuthMethod],
    confirmed_at: Option<Epoch>,
    now: Epoch,
) -> Interrupt {
    if !in_scope {
        return Interrupt::None;
    }
    let need = sspr::methods_required(p, is_admin);
    let have = sspr::usable_methods(p, is_admin, registered).len();
    if have < need {
        return if p.require_registration_at_sign_in {
            Interrupt::Register { have, need }
        } else {
            Interrupt::None
        };
    }
    match confirmed_at {
        Some(at) if p.reconfirm_days > 0 && now - at >= i64::from(p.reconfirm_days) * DAY => {
            Interrupt::Reconfirm
        }
        _ => Interrupt::None,
    }
}

/// Whether the tenant's reset policy applies to `caller` (scope all, or member of its group).
async fn in_scope(state: &AppState, caller: &Caller, p: &SsprPolicy) -> ApiResult<bool> {
    let member = match (&p.enabled_for, &p.group_id) {
        (proto::SsprScope::Group, Some(g)) => {
            let all = state.store.list_memberships(&caller.tenant.id).await?;
            sspr::is_member(&all, &caller.user.id, g)
        }
        _ => false,
    };
    Ok(policy::applies_to(p, |_| member))
}

/// What `caller`, just signed in, is asked first.
pub async fn at_sign_in(state: &AppState, ctx: &Ctx, caller: &Caller) -> ApiResult<Interrupt> {
    let p = state
        .store
        .get_policy(&caller.tenant.id)
        .await?
        .unwrap_or_else(policy::default_policy);
    let scope = in_scope(state, caller, &p).await?;
    let mine = super::sspr::my_methods(state, caller).await?;
    Ok(decide(
        &p,
        scope,
        roles::is_administrator(&caller.user.roles),
        &super::sspr::deliverable_methods(state, &mine.methods),
        mine.updated_at,
        ctx.now,
    ))
}

/// `caller` confirms that their registered methods are still right. Audited.
pub async fn reconfirm(state: &AppState, ctx: &Ctx, caller: &Caller) -> ApiResult<()> {
    let found = state
        .store
        .get_auth_methods(&caller.tenant.id, &caller.user.id)
        .await?;
    if let Some(mut m) = found {
        m.updated_at = ctx.now;
        state.store.put_auth_methods(&m).await?;
        record(
            state,
            &caller.tenant.id,
            caller.upn(),
            "me.authenticationMethods.reconfirm",
            Some(caller.upn().to_string()),
            proto::AuditResult::Success,
            None,
        )
        .await;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use AuthMethod::*;

    fn policy(methods_required: u8, require: bool, reconfirm_days: u16) -> SsprPolicy {
        SsprPolicy {
            methods_required,
            methods: vec![Email, SecurityQuestions],
            require_registration_at_sign_in: require,
            reconfirm_days,
            ..policy::default_policy()
        }
    }

    const NOW: Epoch = 1_800_000_000;

    #[test]
    fn too_few_usable_methods_ask_for_registration_only_when_the_policy_requires_it() {
        let p = policy(2, true, 0);
        assert_eq!(
            decide(&p, true, false, &[Email], Some(NOW), NOW),
            Interrupt::Register { have: 1, need: 2 }
        );
        assert_eq!(
            decide(&policy(2, false, 0), true, false, &[Email], Some(NOW), NOW),
            Interrupt::None
        );
        // A phone the policy does not offer (or no verifier exists for) does not count.
        assert_eq!(
            decide(&policy(1, true, 0), true, false, &[MobilePhone], None, NOW),
            Interrupt::Register { have: 0, need: 1 }
        );
        assert_eq!(
            decide(&p, true, false, &[Email, SecurityQuestions], Some(NOW), NOW),
            Interrupt::None
        );
    }

    #[test]
    fn an_administrator_needs_two_methods_and_questions_do_not_count() {
        let p = policy(1, true, 0);
        assert_eq!(
            decide(&p, true, true, &[Email, SecurityQuestions], Some(NOW), NOW),
            Interrupt::Register { have: 1, need: 2 }
        );
    }

    #[test]
    fn people_out_of_scope_are_never_interrupted() {
        let p = policy(1, true, 1);
        assert_eq!(decide(&p, false, false, &[], None, NOW), Interrupt::None);
    }

    #[test]
    fn reconfirmation_is_due_after_the_policy_days_and_never_with_zero() {
        let p = policy(1, true, 30);
        let day = 86_400;
        assert_eq!(
            decide(&p, true, false, &[Email], Some(NOW - 29 * day), NOW),
            Interrupt::None
        );
        assert_eq!(
            decide(&p, true, false, &[Email], Some(NOW - 30 * day), NOW),
            Interrupt::Reconfirm
        );
        assert_eq!(
            decide(&policy(1, true, 0), true, false, &[Email], Some(0), NOW),
            Interrupt::None
        );
    }
}
