-- Tenant domains (SQLite). Keep in step with ../postgres/0005_tenant_domains.sql.
-- One row per domain, keyed by its lower-cased form: a domain belongs to one tenant at most,
-- whatever two requests or two cloud instances do at once. It replaces the JSON list
-- tenants.domains, whose entries move here in order; a domain two tenants held (possible before
-- this table) stays with the tenant created first.

CREATE TABLE tenant_domains (
    domain_key  TEXT    NOT NULL PRIMARY KEY,
    domain      TEXT    NOT NULL,
    tenant_id   TEXT    NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    position    BIGINT  NOT NULL                  -- order within the tenant's list
);
CREATE INDEX tenant_domains_tenant ON tenant_domains (tenant_id, position);

INSERT OR IGNORE INTO tenant_domains (domain_key, domain, tenant_id, position)
    SELECT lower(j.value), j.value, t.id, j.key
    FROM tenants t, json_each(t.domains) j
    ORDER BY t.created_at, t.id, j.key;

ALTER TABLE tenants DROP COLUMN domains;
