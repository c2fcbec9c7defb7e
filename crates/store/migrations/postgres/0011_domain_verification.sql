-- Domain verification (PostgreSQL). Keep in step with ../sqlite/0011_domain_verification.sql.
-- A domain is trusted (UPNs, soft match, sign-in routing) only once its owner proved it with a
-- DNS TXT record, or an operator marked it verified on the host. Unproven claims no longer hold
-- a domain for the whole installation: several tenants may claim one, and the database lets one
-- tenant at most hold it verified (the partial unique index). Domains added before this
-- migration were trusted already and stay verified; see docs/operations.md to review them.

ALTER TABLE tenant_domains ADD COLUMN verified_at BIGINT;
ALTER TABLE tenant_domains ADD COLUMN challenge TEXT;
UPDATE tenant_domains SET verified_at = EXTRACT(EPOCH FROM now())::BIGINT;
ALTER TABLE tenant_domains DROP CONSTRAINT tenant_domains_pkey;
ALTER TABLE tenant_domains ADD PRIMARY KEY (tenant_id, domain_key);
CREATE UNIQUE INDEX tenant_domains_verified ON tenant_domains (domain_key) WHERE verified_at IS NOT NULL;
