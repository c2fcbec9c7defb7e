//! The tenant's self-service password reset policy, kept as one JSON document.

use proto::SsprPolicy;

use crate::db::{args, Row};
use crate::{from_json, to_json, Result, Store};

impl Store {
    /// `None` until a policy has been stored for the tenant.
    pub async fn get_policy(&self, tenant_id: &str) -> Result<Option<SsprPolicy>> {
        let sql = "SELECT policy FROM sspr_policies WHERE tenant_id = $1";
        let json = self
            .inner
            .opt(sql, &args![tenant_id], |r: &dyn Row| r.text("policy"))
            .await?;
        json.map(|j| from_json(&j, "password reset policy"))
            .transpose()
    }

    /// Store (replace) the whole policy. NotFound if the tenant does not exist.
    pub async fn put_policy(&self, tenant_id: &str, policy: &SsprPolicy) -> Result<()> {
        let sql = "INSERT INTO sspr_policies (tenant_id, policy) VALUES ($1, $2) \
                   ON CONFLICT (tenant_id) DO UPDATE SET policy = excluded.policy";
        self.inner
            .exec(sql, &args![tenant_id, to_json(policy)?])
            .await
            .map(|_| ())
    }
}
