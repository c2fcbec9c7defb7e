//! Users: UPN unique per tenant ignoring case, immutableId (source anchor) unique per tenant and
//! case-sensitive. The password hash lives on the user's row but is only ever read by
//! [`Store::password_hash`].

use proto::{OnPremises, Page, PageRequest, Role, User, UserFilter};

use crate::db::{args, Row};
use crate::{
    enum_name, fold, from_json, into_page, like_literal, page_limit, parse_enum, prefix_bound,
    to_json, Params, Result, Store, StoreError, LIKE_ESCAPE,
};

pub(crate) const COLS: &str = "tenant_id, id, upn, display_name, given_name, surname, mail, mobile_phone, office_phone, \
                    usage_location, account_enabled, source, roles, immutable_id, on_prem_dn, sam_account_name, \
                    last_sync_at, owned_attributes, created_at, updated_at";

/// Reads the on-premises columns shared by users and groups: present when `immutable_id` is set.
pub(crate) fn on_premises_from(r: &dyn Row) -> Result<Option<OnPremises>> {
    let Some(immutable_id) = r.opt_text("immutable_id")? else {
        return Ok(None);
    };
    let owned_attributes = match r.opt_text("owned_attributes")? {
        Some(json) => from_json(&json, "owned attribute list")?,
        None => Vec::new(),
    };
    Ok(Some(OnPremises {
        immutable_id,
        distinguished_name: r.opt_text("on_prem_dn")?,
        sam_account_name: r.opt_text("sam_account_name")?,
        last_sync_at: r.opt_int("last_sync_at")?,
        owned_attributes,
    }))
}

/// The five on-premises column values (immutable_id, on_prem_dn, sam_account_name,
/// last_sync_at, owned_attributes), all NULL for a cloud object.
pub(crate) fn on_premises_args(p: &Option<OnPremises>) -> Result<[crate::db::Arg; 5]> {
    Ok(match p {
        Some(p) => args![
            Some(p.immutable_id.clone()),
            &p.distinguished_name,
            &p.sam_account_name,
            p.last_sync_at,
            Some(to_json(&p.owned_attributes)?),
        ],
        None => args![
            None::<String>,
            None::<String>,
            None::<String>,
            None::<i64>,
            None::<String>
        ],
    })
}

/// `list_users` filtered by a SKU held by at most this many times (page size + 1) assignments
/// starts from the holders and sorts them; with more, it walks users in UPN order, where a page
/// fills after about (page size × users / holders) rows. 50 keeps both under a few milliseconds
/// at 100,000 users.
const FEW_HOLDERS_PER_ROW: i64 = 50;

pub(crate) fn user_from(r: &dyn Row) -> Result<User> {
    Ok(User {
        id: r.text("id")?,
        tenant_id: r.text("tenant_id")?,
        user_principal_name: r.text("upn")?,
        display_name: r.text("display_name")?,
        given_name: r.opt_text("given_name")?,
        surname: r.opt_text("surname")?,
        mail: r.opt_text("mail")?,
        mobile_phone: r.opt_text("mobile_phone")?,
        office_phone: r.opt_text("office_phone")?,
        usage_location: r.opt_text("usage_location")?,
        account_enabled: r.flag("account_enabled")?,
        source: parse_enum(&r.text("source")?, "user source")?,
        roles: from_json::<Vec<Role>>(&r.text("roles")?, "role list")?,
        on_premises: on_premises_from(r)?,
        created_at: r.int("created_at")?,
        updated_at: r.int("updated_at")?,
    })
}

/// Column values $1.. in the order of the INSERT below (password hash excluded).
pub(crate) fn user_args(u: &User) -> Result<Vec<crate::db::Arg>> {
    let mut a = Vec::from(args![
        &u.tenant_id,
        &u.id,
        &u.user_principal_name,
        fold(&u.user_principal_name),
        &u.display_name,
        fold(&u.display_name),
        &u.given_name,
        &u.surname,
        &u.mail,
        &u.mobile_phone,
        &u.office_phone,
        &u.usage_location,
        u.account_enabled,
        enum_name(&u.source)?,
        to_json(&u.roles)?,
    ]);
    a.extend(on_premises_args(&u.on_premises)?);
    a.extend(args![u.created_at, u.updated_at]);
    Ok(a)
}

/// Insert with [`user_args`] followed by the password hash.
pub(crate) const INSERT_USER: &str = "INSERT INTO users (tenant_id, id, upn, upn_key, display_name, display_name_key, given_name, \
                   surname, mail, mobile_phone, office_phone, usage_location, account_enabled, source, roles, \
                   immutable_id, on_prem_dn, sam_account_name, last_sync_at, owned_attributes, created_at, \
                   updated_at, password_hash) \
                   VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, \
                   $20, $21, $22, $23)";

/// Update with [`user_args`] less its element 20 (`created_at`).
pub(crate) const UPDATE_USER: &str = "UPDATE users SET upn = $3, upn_key = $4, display_name = $5, display_name_key = $6, \
                   given_name = $7, surname = $8, mail = $9, mobile_phone = $10, office_phone = $11, \
                   usage_location = $12, account_enabled = $13, source = $14, roles = $15, immutable_id = $16, \
                   on_prem_dn = $17, sam_account_name = $18, last_sync_at = $19, owned_attributes = $20, \
                   updated_at = $21 \
                   WHERE tenant_id = $1 AND id = $2";

impl Store {
    /// Conflict naming the UPN or immutableId that is already taken in the tenant; NotFound if
    /// the tenant does not exist.
    pub async fn insert_user(&self, u: &User, password_hash: Option<&str>) -> Result<()> {
        let sql = INSERT_USER;
        let mut a = user_args(u)?;
        a.extend(args![password_hash]);
        match self.inner.exec(sql, &a).await {
            Err(StoreError::Conflict(_)) => Err(self.user_conflict(u, false).await),
            other => other.map(|_| ()),
        }
    }

    pub async fn get_user(&self, tenant_id: &str, id: &str) -> Result<Option<User>> {
        let sql = format!("SELECT {COLS} FROM users WHERE tenant_id = $1 AND id = $2");
        self.inner.opt(&sql, &args![tenant_id, id], user_from).await
    }

    /// Case-insensitive.
    pub async fn get_user_by_upn(&self, tenant_id: &str, upn: &str) -> Result<Option<User>> {
        let sql = format!("SELECT {COLS} FROM users WHERE tenant_id = $1 AND upn_key = $2");
        self.inner
            .opt(&sql, &args![tenant_id, fold(upn)], user_from)
            .await
    }

    /// Case-sensitive: source anchors are base64.
    pub async fn get_user_by_immutable_id(
        &self,
        tenant_id: &str,
        immutable_id: &str,
    ) -> Result<Option<User>> {
        let sql = format!("SELECT {COLS} FROM users WHERE tenant_id = $1 AND immutable_id = $2");
        self.inner
            .opt(&sql, &args![tenant_id, immutable_id], user_from)
            .await
    }

    /// Replaces every field but the ids and `created_at` (the password is left alone).
    /// NotFound; Conflict when the new UPN or immutableId belongs to another user.
    pub async fn update_user(&self, u: &User) -> Result<()> {
        let sql = UPDATE_USER;
        let mut a = user_args(u)?;
        a.remove(20); // created_at is never rewritten

        match self.inner.exec(sql, &a).await {
            Ok(0) => Err(StoreError::NotFound),
            Ok(_) => Ok(()),
            Err(StoreError::Conflict(_)) => Err(self.user_conflict(u, true).await),
            Err(e) => Err(e),
        }
    }

    /// Deletes the user with its memberships, licence assignments, tokens and password.
    /// `false` if there was no such user.
    pub async fn delete_user(&self, tenant_id: &str, id: &str) -> Result<bool> {
        let mut tx = self.inner.begin().await?;
        let a = args![tenant_id, id];
        tx.exec(
            "DELETE FROM group_members WHERE tenant_id = $1 AND member_kind = 'user' AND member_id = $2",
            &a,
        )
        .await?;
        tx.exec(
            "DELETE FROM license_assignments WHERE tenant_id = $1 AND user_id = $2",
            &a,
        )
        .await?;
        tx.exec(
            "DELETE FROM api_tokens WHERE tenant_id = $1 AND user_id = $2",
            &a,
        )
        .await?;
        let n = tx
            .exec("DELETE FROM users WHERE tenant_id = $1 AND id = $2", &a)
            .await?;
        tx.commit().await?;
        Ok(n > 0)
    }

    /// One page of users ordered by lower-cased UPN. `page.after` is the lower-cased UPN of the
    /// last user of the previous page (the `next` it returned). All present filters apply:
    /// `upn_prefix` (case-insensitive prefix), `display_name` (case-insensitive substring),
    /// `sku_id` (an active assignment of that SKU, direct or through a group), `source`.
    pub async fn list_users(
        &self,
        tenant_id: &str,
        filter: &UserFilter,
        page: &PageRequest,
    ) -> Result<Page<User>> {
        let limit = page_limit(page);
        let mut p = Params::default();
        let tenant = p.push(tenant_id);
        let mut from = "users u".to_string();
        let mut conds = vec![format!("u.tenant_id = {tenant}")];
        if let Some(after) = &page.after {
            conds.push(format!("u.upn_key > {}", p.push(after)));
        }
        if let Some(prefix) = filter
            .upn_prefix
            .as_deref()
            .map(fold)
            .filter(|s| !s.is_empty())
        {
            if let Some(bound) = prefix_bound(&prefix) {
                conds.push(format!("u.upn_key < {}", p.push(bound)));
            }
            conds.push(format!("u.upn_key >= {}", p.push(prefix)));
        }
        if let Some(part) = filter
            .display_name
            .as_deref()
            .map(fold)
            .filter(|s| !s.is_empty())
        {
            let pattern = format!("%{}%", like_literal(&part));
            conds.push(format!(
                "u.display_name_key LIKE {} ESCAPE '{LIKE_ESCAPE}'",
                p.push(pattern)
            ));
        }
        if let Some(source) = &filter.source {
            conds.push(format!("u.source = {}", p.push(enum_name(source)?)));
        }
        if let Some(sku) = &filter.sku_id {
            let holders = "SELECT a.user_id FROM license_assignments a WHERE a.tenant_id = $1 AND a.sku_id = $2 \
                           AND a.state = 'active'";
            let counted = format!("SELECT COUNT(*) AS n FROM ({holders} LIMIT $3) x");
            let few = FEW_HOLDERS_PER_ROW * (limit as i64 + 1);
            let n = self
                .inner
                .opt(&counted, &args![tenant_id, sku, few + 1], |r| r.int("n"))
                .await?
                .unwrap_or(0);
            let sku = p.push(sku);
            if n <= few {
                // Few holders: start from them and sort (CROSS JOIN fixes the join order in SQLite;
                // PostgreSQL plans it from its statistics either way).
                from = format!(
                    "(SELECT DISTINCT a.user_id FROM license_assignments a WHERE a.tenant_id = {tenant} \
                     AND a.sku_id = {sku} AND a.state = 'active') h CROSS JOIN users u"
                );
                conds.push("u.id = h.user_id".into());
            } else {
                // Many: walk users in UPN order; a page fills after a short stretch.
                conds.push(format!(
                    "EXISTS (SELECT 1 FROM license_assignments a WHERE a.tenant_id = u.tenant_id \
                     AND a.user_id = u.id AND a.sku_id = {sku} AND a.state = 'active')"
                ));
            }
        }
        let cols = COLS
            .split(", ")
            .map(|c| format!("u.{c}"))
            .collect::<Vec<_>>()
            .join(", ");
        let mut sql = format!("SELECT {cols} FROM {from} WHERE {}", conds.join(" AND "));
        sql += &format!(" ORDER BY u.upn_key LIMIT {}", p.push((limit + 1) as i64));
        let rows = self.inner.all(&sql, &p.args, user_from).await?;
        Ok(into_page(rows, limit, |u| fold(&u.user_principal_name)))
    }

    pub async fn count_users(&self, tenant_id: &str) -> Result<u64> {
        let n = self
            .inner
            .opt(
                "SELECT COUNT(*) AS n FROM users WHERE tenant_id = $1",
                &args![tenant_id],
                |r| r.int("n"),
            )
            .await?;
        Ok(n.unwrap_or(0).max(0) as u64)
    }

    /// The stored hash (PHC string), `None` when the user has no password or does not exist.
    pub async fn password_hash(&self, tenant_id: &str, user_id: &str) -> Result<Option<String>> {
        let sql = "SELECT password_hash FROM users WHERE tenant_id = $1 AND id = $2";
        let found = self
            .inner
            .opt(sql, &args![tenant_id, user_id], |r| {
                r.opt_text("password_hash")
            })
            .await?;
        Ok(found.flatten())
    }

    /// Set or (with `None`) clear the password hash. NotFound if there is no such user.
    pub async fn set_password_hash(
        &self,
        tenant_id: &str,
        user_id: &str,
        hash: Option<&str>,
    ) -> Result<()> {
        let sql = "UPDATE users SET password_hash = $3 WHERE tenant_id = $1 AND id = $2";
        match self
            .inner
            .exec(sql, &args![tenant_id, user_id, hash])
            .await?
        {
            0 => Err(StoreError::NotFound),
            _ => Ok(()),
        }
    }

    /// Say which uniqueness rule `u` broke (looked up after the database refused it).
    async fn user_conflict(&self, u: &User, updating: bool) -> StoreError {
        let upn_owner = self
            .get_user_by_upn(&u.tenant_id, &u.user_principal_name)
            .await;
        if matches!(&upn_owner, Ok(Some(other)) if other.id != u.id) {
            return StoreError::Conflict(format!(
                "a user with UPN {} already exists",
                u.user_principal_name
            ));
        }
        if let Some(p) = &u.on_premises {
            let anchor_owner = self
                .get_user_by_immutable_id(&u.tenant_id, &p.immutable_id)
                .await;
            if matches!(&anchor_owner, Ok(Some(other)) if other.id != u.id) {
                return StoreError::Conflict(format!(
                    "a user with immutableId {} already exists",
                    p.immutable_id
                ));
            }
        }
        if updating {
            StoreError::Conflict(format!(
                "user {} clashes with another user",
                u.user_principal_name
            ))
        } else {
            StoreError::Conflict(format!("a user with id {} already exists", u.id))
        }
    }
}
