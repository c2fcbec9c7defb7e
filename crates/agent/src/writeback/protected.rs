//! Accounts writeback refuses by design (docs/writeback.md "Protected accounts"): on AD every
//! account with `adminCount=1` or whose `tokenGroups` holds a protected group (Domain Admins and
//! the rest of AdminSDHolder's list, [`ldap::ad::protected_sid`]); on OpenLDAP the connector's
//! `[protected]` DNs and groups, and the database's rootdn where `cn=config` is readable.

use ldap::Connection;
use proto::writeback::{events as ids, Outcome};

use super::failure::{classify, Failure, Step, Target};
use crate::connector::{ConnectorConfig, DirectoryKind};
use crate::sync::scope::dn_key;

/// How many group levels up nested membership is followed on OpenLDAP.
const MAX_NESTING: usize = 8;

/// Refuses `target` (`ProtectedAccount`, event 33004) if it is protected.
pub(crate) async fn refuse_protected(
    c: &mut Connection,
    config: &ConnectorConfig,
    target: &Target,
) -> Result<(), Failure> {
    let dn = &target.dn;
    let why = if target.state.protected {
        Some(
            "adminCount=1: a member, now or once, of a protected group such as Domain Admins"
                .to_string(),
        )
    } else {
        match config.kind {
            DirectoryKind::Ad => ad_protection(c, config, dn).await?,
            DirectoryKind::Openldap => openldap_protection(c, config, dn).await?,
        }
    };
    match why {
        Some(why) => Err(Failure::new(
            Outcome::ProtectedAccount,
            ids::PERMISSIONS,
            format!("{dn} is a protected account ({why}); writeback refuses it by design. Reset it on-prem."),
        )),
        None => Ok(()),
    }
}

async fn ad_protection(
    c: &mut Connection,
    config: &ConnectorConfig,
    dn: &str,
) -> Result<Option<String>, Failure> {
    if let Some(why) = listed_dn(config, dn) {
        return Ok(Some(why));
    }
    let (own, groups) = c.ad_token_groups(dn).await.map_err(|e| match e {
        ldap::LdapError::InsufficientAccess { .. } => Failure::new(
            Outcome::AccessDenied,
            ids::PERMISSIONS,
            format!(
                "the service account {} may not read tokenGroups of {dn}, so writeback cannot tell whether it is a member of a protected group and refuses it; grant the account read access to tokenGroups on users (add it to the Windows Authorization Access Group, or `dsacls \"<OU>\" /I:S /G \"DOMAIN\\account:RP;tokenGroups;user\"`)",
                config.bind_dn
            ),
        ),
        e => classify(config, Step::Lookup, Some(dn), e),
    })?;
    Ok(ldap::ad::protection(&own, &groups).map(|p| {
        format!(
            "member of {} ({}), directly or through another group",
            p.name, p.sid
        )
    }))
}

/// A DN listed in the connector's `[protected] dns`.
fn listed_dn(config: &ConnectorConfig, dn: &str) -> Option<String> {
    let key = dn_key(dn);
    config
        .protected
        .dns
        .iter()
        .any(|p| dn_key(p) == key)
        .then(|| "listed in the connector's protected DNs".to_string())
}

async fn openldap_protection(
    c: &mut Connection,
    config: &ConnectorConfig,
    dn: &str,
) -> Result<Option<String>, Failure> {
    if let Some(why) = listed_dn(config, dn) {
        return Ok(Some(why));
    }
    if let Some(root) = c.openldap_root_dn(&config.base_dn).await {
        if dn_key(&root) == dn_key(dn) {
            return Ok(Some("the database's rootdn".into()));
        }
    }
    if config.protected.groups.is_empty() {
        return Ok(None);
    }
    let lookup = |e| classify(config, Step::Lookup, Some(dn), e);
    let uid = c
        .read(dn, &["uid"])
        .await
        .map_err(lookup)?
        .text("uid")
        .map(str::to_owned);
    let groups = c
        .openldap_groups_of(&config.base_dn, dn, uid.as_deref(), MAX_NESTING)
        .await
        .map_err(lookup)?;
    Ok(groups.iter().find_map(|g| {
        config
            .protected
            .groups
            .iter()
            .find(|p| dn_key(p) == dn_key(g))
            .map(|p| {
                format!("member of the protected group {p}, directly or through another group")
            })
    }))
}
