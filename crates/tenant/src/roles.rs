//! Who may do what: the admin roles and the operations they allow, plus the rule protecting
//! privileged accounts from less privileged admins.

use proto::Role;

use crate::refusal::Refusal;

/// Everything an API caller can ask for that needs a role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Operation {
    ReadDirectory,
    CreateUser,
    UpdateUser,
    DeleteUser,
    ResetPassword,
    SetUsageLocation,
    ManageGroups,
    ReadLicenses,
    ManageLicenses,
    ManageSubscriptions,
    ReadPolicy,
    ManagePolicy,
    ReadAudit,
    AssignRoles,
    ManageTenant,
    RevokeTokens,
    ManageApps,
}

use Operation::*;
use Role::*;

impl Operation {
    pub const ALL: [Operation; 17] = [
        ReadDirectory,
        CreateUser,
        UpdateUser,
        DeleteUser,
        ResetPassword,
        SetUsageLocation,
        ManageGroups,
        ReadLicenses,
        ManageLicenses,
        ManageSubscriptions,
        ReadPolicy,
        ManagePolicy,
        ReadAudit,
        AssignRoles,
        ManageTenant,
        RevokeTokens,
        ManageApps,
    ];

    /// The operation in words, for messages.
    pub fn describe(self) -> &'static str {
        match self {
            ReadDirectory => "read users and groups",
            CreateUser => "create users",
            UpdateUser => "update users",
            DeleteUser => "delete users",
            ResetPassword => "reset passwords",
            SetUsageLocation => "set usage locations",
            ManageGroups => "manage groups and members",
            ReadLicenses => "read licences and subscriptions",
            ManageLicenses => "assign and remove licences",
            ManageSubscriptions => "start trials and add subscriptions",
            ReadPolicy => "read the password reset policy",
            ManagePolicy => "change the password reset policy",
            ReadAudit => "read the audit log",
            AssignRoles => "assign administrator roles",
            ManageTenant => "change tenant settings",
            RevokeTokens => "revoke sign-in sessions",
            ManageApps => "register apps that sign users in (OpenID Connect)",
        }
    }

    /// The roles that allow this operation, most privileged first.
    pub fn allowed_roles(self) -> &'static [Role] {
        match self {
            ReadDirectory => &[
                GlobalAdministrator,
                UserAdministrator,
                PasswordAdministrator,
                LicenseAdministrator,
            ],
            CreateUser | UpdateUser | DeleteUser | ManageGroups | ReadAudit | RevokeTokens => {
                &[GlobalAdministrator, UserAdministrator]
            }
            ResetPassword => &[
                GlobalAdministrator,
                UserAdministrator,
                PasswordAdministrator,
            ],
            // As in Entra, the reset policy is not a Password Administrator's to read: it
            // resets passwords, whatever the policy says about self-service.
            ReadPolicy => &[GlobalAdministrator, UserAdministrator],
            SetUsageLocation | ReadLicenses => {
                &[GlobalAdministrator, UserAdministrator, LicenseAdministrator]
            }
            ManageLicenses => &[GlobalAdministrator, LicenseAdministrator],
            ManageSubscriptions | ManagePolicy | AssignRoles | ManageTenant | ManageApps => {
                &[GlobalAdministrator]
            }
        }
    }

    /// Operations on another user that are restricted when the target is privileged.
    fn touches_target_account(self) -> bool {
        matches!(
            self,
            UpdateUser | DeleteUser | ResetPassword | SetUsageLocation | RevokeTokens
        )
    }
}

fn role_list(roles: &[Role]) -> String {
    if roles.is_empty() {
        "none".to_string()
    } else {
        let mut sorted = roles.to_vec();
        sorted.sort();
        sorted.dedup();
        sorted
            .iter()
            .map(|r| r.display_name())
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// Whether any of `actor_roles` allows `op`; the refusal names the roles that would.
pub fn authorize(actor_roles: &[Role], op: Operation) -> Result<(), Refusal> {
    let allowed = op.allowed_roles();
    if actor_roles.iter().any(|r| allowed.contains(r)) {
        return Ok(());
    }
    Err(Refusal::forbidden(format!(
        "This operation ({}) needs one of these roles: {}. You have: {}.",
        op.describe(),
        role_list(allowed),
        role_list(actor_roles)
    )))
}

/// Roles whose holders only a Global Administrator may update, delete, reset or sign out.
pub const PRIVILEGED_ROLES: [Role; 3] =
    [GlobalAdministrator, UserAdministrator, LicenseAdministrator];

/// [`authorize`], then the target rule: a user holding Global, User or License Administrator
/// may only be updated, deleted, have their password reset, usage location set or sessions
/// revoked by a Global Administrator. User and Password Administrators may act on Password
/// Administrators and on users without an admin role.
pub fn authorize_on_target(
    actor_roles: &[Role],
    target_roles: &[Role],
    op: Operation,
) -> Result<(), Refusal> {
    authorize(actor_roles, op)?;
    if !op.touches_target_account() || actor_roles.contains(&GlobalAdministrator) {
        return Ok(());
    }
    let mut privileged: Vec<Role> = target_roles
        .iter()
        .copied()
        .filter(|r| PRIVILEGED_ROLES.contains(r))
        .collect();
    if privileged.is_empty() {
        return Ok(());
    }
    privileged.sort();
    privileged.dedup();
    Err(Refusal::forbidden(format!(
        "Only a Global Administrator may {} for a user who holds the {} role. You have: {}.",
        op.describe(),
        role_list(&privileged),
        role_list(actor_roles)
    )))
}

/// Whether an account holds any administrator role. Administrators get the stricter
/// self-service password reset rules (two methods, no security questions).
pub fn is_administrator(roles: &[Role]) -> bool {
    !roles.is_empty()
}

/// Whether the holder of `actor_roles` may revoke one sign-in token: their own (`own`) always,
/// any other of the tenant only as a Global Administrator.
pub fn authorize_token_revocation(actor_roles: &[Role], own: bool) -> Result<(), Refusal> {
    if own || actor_roles.contains(&GlobalAdministrator) {
        return Ok(());
    }
    Err(Refusal::forbidden(
        "Only a Global Administrator can revoke another token. To sign out, revoke your own (dirbridge logout).",
    ))
}

/// The operation a change of a user's fields (by their API names) needs: setting only the usage
/// location is [`Operation::SetUsageLocation`] (licence administrators may), anything else
/// [`Operation::UpdateUser`]; a change of `roles` needs [`Operation::AssignRoles`] as well.
pub fn patch_operation(fields: &[&str]) -> Operation {
    if fields == ["usageLocation"] {
        SetUsageLocation
    } else {
        UpdateUser
    }
}

/// The rule that keeps a tenant with a Global Administrator: nobody removes that role from
/// their own account (`self_target`), another Global Administrator must.
pub fn check_own_roles_change(
    self_target: bool,
    current: &[Role],
    new: &[Role],
) -> Result<(), Refusal> {
    if self_target && current.contains(&GlobalAdministrator) && !new.contains(&GlobalAdministrator)
    {
        return Err(Refusal::validation(
            "You cannot remove your own Global Administrator role; another Global Administrator must do it, so the tenant always keeps one.",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proto::ErrorCode;

    #[test]
    fn any_role_makes_an_administrator() {
        assert!(!is_administrator(&[]));
        assert!(is_administrator(&[PasswordAdministrator]));
    }

    #[test]
    fn a_token_is_revoked_by_its_owner_or_a_global_administrator() {
        assert!(authorize_token_revocation(&[], true).is_ok());
        assert!(authorize_token_revocation(&[GlobalAdministrator], false).is_ok());
        let e = authorize_token_revocation(&[UserAdministrator], false).unwrap_err();
        assert_eq!(e.code, ErrorCode::Forbidden);
        assert!(e.message.contains("revoke your own"), "{}", e.message);
    }

    #[test]
    fn only_a_usage_location_patch_is_set_usage_location() {
        assert_eq!(patch_operation(&["usageLocation"]), SetUsageLocation);
        assert_eq!(patch_operation(&["usageLocation", "mail"]), UpdateUser);
        assert_eq!(patch_operation(&["displayName"]), UpdateUser);
        assert_eq!(patch_operation(&[]), UpdateUser);
    }

    #[test]
    fn nobody_drops_their_own_global_administrator_role() {
        let g = [GlobalAdministrator];
        assert!(check_own_roles_change(true, &g, &[]).is_err());
        assert!(check_own_roles_change(true, &g, &g).is_ok());
        assert!(check_own_roles_change(false, &g, &[]).is_ok());
        assert!(check_own_roles_change(true, &[UserAdministrator], &[]).is_ok());
    }

    #[test]
    fn global_administrator_may_do_everything() {
        for op in Operation::ALL {
            assert!(authorize(&[GlobalAdministrator], op).is_ok(), "{op:?}");
        }
    }

    #[test]
    fn no_role_may_do_nothing() {
        for op in Operation::ALL {
            let e = authorize(&[], op).unwrap_err();
            assert_eq!(e.code, ErrorCode::Forbidden);
            assert!(e.message.ends_with("You have: none."), "{}", e.message);
        }
    }

    fn allowed_ops(role: Role) -> Vec<Operation> {
        Operation::ALL
            .into_iter()
            .filter(|op| authorize(&[role], *op).is_ok())
            .collect()
    }

    #[test]
    fn user_administrator_matrix() {
        assert_eq!(
            allowed_ops(UserAdministrator),
            vec![
                ReadDirectory,
                CreateUser,
                UpdateUser,
                DeleteUser,
                ResetPassword,
                SetUsageLocation,
                ManageGroups,
                ReadLicenses,
                ReadPolicy,
                ReadAudit,
                RevokeTokens
            ]
        );
    }

    #[test]
    fn password_administrator_matrix() {
        assert_eq!(
            allowed_ops(PasswordAdministrator),
            vec![ReadDirectory, ResetPassword]
        );
    }

    #[test]
    fn license_administrator_matrix() {
        assert_eq!(
            allowed_ops(LicenseAdministrator),
            vec![
                ReadDirectory,
                SetUsageLocation,
                ReadLicenses,
                ManageLicenses
            ]
        );
    }

    #[test]
    fn refusal_names_the_roles_that_would_allow_it() {
        let e = authorize(&[PasswordAdministrator], CreateUser).unwrap_err();
        assert_eq!(
            e.message,
            "This operation (create users) needs one of these roles: Global Administrator, \
             User Administrator. You have: Password Administrator."
        );
        let e = authorize(&[UserAdministrator], ManagePolicy).unwrap_err();
        assert!(e
            .message
            .contains("needs one of these roles: Global Administrator."));
    }

    #[test]
    fn several_roles_combine() {
        assert!(authorize(
            &[PasswordAdministrator, LicenseAdministrator],
            ManageLicenses
        )
        .is_ok());
    }

    #[test]
    fn only_global_may_touch_privileged_targets() {
        for target in PRIVILEGED_ROLES {
            for op in [UpdateUser, DeleteUser, ResetPassword, RevokeTokens] {
                let e = authorize_on_target(&[UserAdministrator], &[target], op).unwrap_err();
                assert_eq!(e.code, ErrorCode::Forbidden);
                assert!(
                    e.message.starts_with("Only a Global Administrator"),
                    "{}",
                    e.message
                );
                assert!(e.message.contains(target.display_name()));
                assert!(authorize_on_target(&[GlobalAdministrator], &[target], op).is_ok());
            }
            assert!(
                authorize_on_target(&[PasswordAdministrator], &[target], ResetPassword).is_err()
            );
            assert!(
                authorize_on_target(&[LicenseAdministrator], &[target], SetUsageLocation).is_err()
            );
        }
    }

    #[test]
    fn password_and_user_admins_may_reset_password_admins_and_plain_users() {
        for actor in [PasswordAdministrator, UserAdministrator] {
            assert!(authorize_on_target(&[actor], &[], ResetPassword).is_ok());
            assert!(authorize_on_target(&[actor], &[PasswordAdministrator], ResetPassword).is_ok());
        }
        assert!(
            authorize_on_target(&[UserAdministrator], &[PasswordAdministrator], UpdateUser).is_ok()
        );
    }

    #[test]
    fn target_check_runs_after_the_role_check() {
        let e = authorize_on_target(&[PasswordAdministrator], &[], DeleteUser).unwrap_err();
        assert!(
            e.message.starts_with("This operation (delete users)"),
            "{}",
            e.message
        );
    }

    #[test]
    fn licence_assignment_to_an_admin_is_not_a_target_restriction() {
        assert!(authorize_on_target(
            &[LicenseAdministrator],
            &[GlobalAdministrator],
            ManageLicenses
        )
        .is_ok());
    }
}
