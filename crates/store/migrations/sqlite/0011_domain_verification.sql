-- Domain verification (SQLite). Keep in step with ../postgres/0011_domain_verification.sql.
-- A domain is trusted (UPNs, soft match, sign-in routing) only once its owner proved it with a
-- DNS TXT record, or an operator marked it verified on the host. Unproven claims no longer hold
-- a domain for the whole installation: several tenants may claim one, and the database lets one
-- tenant at most hold it verified (the partial unique index). Domains added before this
-- migration were trusted already and stay verified; see docs/operations.md to review them.

CREATE TABLE tenant_domains_v2 (
    domain_key   TEXT    NOT NULL,
    domain       TEXT    NOT NULL,
    tenant_id    TEXT    NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    position     BIGINT  NOT NULL,            -- order within the tenant's list
    verified_at  BIGINT,                      -- NULL: claimed, not proven yet
    challenge    TEXT,                        -- the TXT value to publish while unverified
    PRIMARY KEY (tenant_id, domain_key)
);

INSERT INTO tenant_domains_v2 (domain_key, domain, tenant_id, position, verified_at, challenge)
    SELECT domain_key, domain, tenant_id, position, CAST(strftime('%s', 'now') AS INTEGER), NULL
    FROM tenant_domains;

DROP TABLE tenant_domains;
ALTER TABLE tenant_domains_v2 RENAME TO tenant_domains;
CREATE INDEX tenant_domains_tenant ON tenant_domains (tenant_id, position);
CREATE UNIQUE INDEX tenant_domains_verified ON tenant_domains (domain_key) WHERE verified_at IS NOT NULL;
