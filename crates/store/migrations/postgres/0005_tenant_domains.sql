-- Tenant domains (PostgreSQL). Keep in step with ../sqlite/0005_tenant_domains.sql.
-- One row per domain, keyed by its lower-cased form: a domain belongs to one tenant at most,
-- whatever two requests or two cloud instances do at once. It replaces the JSON list
-- tenants.domains, whose entries move here in order; a domain two tenants held (possible before
-- this table) stays with the tenant created first.

CREATE TABLE tenant_domains (
    domain_key  TEXT COLLATE "C"    NOT NULL PRIMARY KEY,
    domain      TEXT COLLATE "C"    NOT NULL,
    tenant_id   TEXT COLLATE "C"    NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    position    BIGINT              NOT NULL      -- order within the tenant's list
);
CREATE INDEX tenant_domains_tenant ON tenant_domains (tenant_id, position);

INSERT INTO tenant_domains (domain_key, domain, tenant_id, position)
    SELECT lower(j.value), j.value, t.id, j.ord - 1
    FROM tenants t, json_array_elements_text(t.domains::json) WITH ORDINALITY AS j(value, ord)
    ORDER BY t.created_at, t.id, j.ord
    ON CONFLICT (domain_key) DO NOTHING;

ALTER TABLE tenants DROP COLUMN domains;
