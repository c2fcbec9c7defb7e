-- dirbridge store, initial schema (SQLite). Keep in step with ../postgres/0001_initial.sql:
-- same tables, columns and indexes. Ids are TEXT (UUIDs), times BIGINT epoch seconds, lists and
-- documents TEXT JSON. `*_key` columns hold the lower-cased form used for case-insensitive
-- lookups, uniqueness and ordering (computed by the store in Rust, identically on both backends).

CREATE TABLE tenants (
    id                     TEXT    NOT NULL PRIMARY KEY,
    name                   TEXT    NOT NULL,
    name_key               TEXT    NOT NULL,
    initial_domain         TEXT    NOT NULL,
    initial_domain_key     TEXT    NOT NULL,
    domains                TEXT    NOT NULL,          -- JSON array of strings
    default_usage_location TEXT,
    soft_match_enabled     BOOLEAN NOT NULL,
    created_at             BIGINT  NOT NULL
);
CREATE UNIQUE INDEX tenants_name_key ON tenants (name_key);
CREATE UNIQUE INDEX tenants_initial_domain_key ON tenants (initial_domain_key);

CREATE TABLE users (
    tenant_id           TEXT    NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    id                  TEXT    NOT NULL,
    upn                 TEXT    NOT NULL,
    upn_key             TEXT    NOT NULL,             -- lower(upn): uniqueness, lookups, paging
    display_name        TEXT    NOT NULL,
    display_name_key    TEXT    NOT NULL,             -- lower(display_name): substring filter
    given_name          TEXT,
    surname             TEXT,
    mail                TEXT,
    mobile_phone        TEXT,
    office_phone        TEXT,
    usage_location      TEXT,
    account_enabled     BOOLEAN NOT NULL,
    source              TEXT    NOT NULL,             -- 'cloud' | 'onPremises'
    roles               TEXT    NOT NULL,             -- JSON array of role names
    -- on-premises (set when the user came from a directory; immutable_id NULL otherwise)
    immutable_id        TEXT,                         -- source anchor, case-sensitive
    on_prem_dn          TEXT,
    sam_account_name    TEXT,
    last_sync_at        BIGINT,
    owned_attributes    TEXT,                         -- JSON array of attribute names
    password_hash       TEXT,                         -- PHC string (Argon2id); never selected with the user
    created_at          BIGINT  NOT NULL,
    updated_at          BIGINT  NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
CREATE UNIQUE INDEX users_upn_key ON users (tenant_id, upn_key);
CREATE UNIQUE INDEX users_immutable_id ON users (tenant_id, immutable_id);
CREATE INDEX users_source ON users (tenant_id, source, upn_key);

CREATE TABLE api_tokens (
    id          TEXT    NOT NULL PRIMARY KEY,
    tenant_id   TEXT    NOT NULL,
    user_id     TEXT    NOT NULL,
    hash        TEXT    NOT NULL,                     -- sha256 hex of the token
    created_at  BIGINT  NOT NULL,
    expires_at  BIGINT  NOT NULL,
    revoked     BOOLEAN NOT NULL,
    FOREIGN KEY (tenant_id, user_id) REFERENCES users (tenant_id, id) ON DELETE CASCADE
);
CREATE UNIQUE INDEX api_tokens_hash ON api_tokens (hash);
CREATE INDEX api_tokens_user ON api_tokens (tenant_id, user_id);

CREATE TABLE directory_groups (
    tenant_id           TEXT    NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    id                  TEXT    NOT NULL,
    display_name        TEXT    NOT NULL,
    display_name_key    TEXT    NOT NULL,
    description         TEXT,
    source              TEXT    NOT NULL,
    immutable_id        TEXT,
    on_prem_dn          TEXT,
    sam_account_name    TEXT,
    last_sync_at        BIGINT,
    owned_attributes    TEXT,
    created_at          BIGINT  NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
CREATE UNIQUE INDEX groups_immutable_id ON directory_groups (tenant_id, immutable_id);
CREATE INDEX groups_name_key ON directory_groups (tenant_id, display_name_key);

CREATE TABLE group_members (
    tenant_id   TEXT NOT NULL,
    group_id    TEXT NOT NULL,
    member_kind TEXT NOT NULL,                        -- 'user' | 'group'
    member_id   TEXT NOT NULL,
    PRIMARY KEY (tenant_id, group_id, member_kind, member_id),
    FOREIGN KEY (tenant_id, group_id) REFERENCES directory_groups (tenant_id, id) ON DELETE CASCADE
);
CREATE INDEX group_members_member ON group_members (tenant_id, member_kind, member_id);

CREATE TABLE subscriptions (
    id          TEXT   NOT NULL PRIMARY KEY,
    tenant_id   TEXT   NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    sku_id      TEXT   NOT NULL,
    kind        TEXT   NOT NULL,                      -- 'trial' | 'purchased'
    units       BIGINT NOT NULL,
    starts_at   BIGINT NOT NULL,
    ends_at     BIGINT NOT NULL,
    created_at  BIGINT NOT NULL
);
CREATE INDEX subscriptions_tenant ON subscriptions (tenant_id, sku_id);

CREATE TABLE license_assignments (
    tenant_id                TEXT   NOT NULL,
    user_id                  TEXT   NOT NULL,
    sku_id                   TEXT   NOT NULL,
    source_type              TEXT   NOT NULL,         -- 'direct' | 'group'
    source_group_id          TEXT   NOT NULL,         -- '' for direct
    state                    TEXT   NOT NULL,         -- 'active' | 'error'
    error                    TEXT,                    -- LicenseErrorKind
    effective_usage_location TEXT,
    updated_at               BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, user_id, sku_id, source_type, source_group_id),
    FOREIGN KEY (tenant_id, user_id) REFERENCES users (tenant_id, id) ON DELETE CASCADE
);
CREATE INDEX license_assignments_sku ON license_assignments (tenant_id, sku_id, state, user_id);
CREATE INDEX license_assignments_source ON license_assignments (tenant_id, source_type, source_group_id);

CREATE TABLE group_licenses (
    tenant_id   TEXT   NOT NULL,
    group_id    TEXT   NOT NULL,
    sku_id      TEXT   NOT NULL,
    created_at  BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, group_id, sku_id),
    FOREIGN KEY (tenant_id, group_id) REFERENCES directory_groups (tenant_id, id) ON DELETE CASCADE
);

CREATE TABLE sspr_policies (
    tenant_id   TEXT NOT NULL PRIMARY KEY REFERENCES tenants (id) ON DELETE CASCADE,
    policy      TEXT NOT NULL                         -- SsprPolicy as JSON
);

-- Append-only. No foreign key: an audit record must never be refused.
CREATE TABLE audit_log (
    id          TEXT   NOT NULL PRIMARY KEY,
    tenant_id   TEXT   NOT NULL,
    occurred_at BIGINT NOT NULL,
    actor       TEXT   NOT NULL,
    action      TEXT   NOT NULL,
    target      TEXT,
    result      TEXT   NOT NULL,                      -- 'success' | 'failure'
    tracking_id TEXT   NOT NULL,
    details     TEXT
);
CREATE INDEX audit_log_time ON audit_log (tenant_id, occurred_at, id);
CREATE INDEX audit_log_actor ON audit_log (tenant_id, actor, occurred_at, id);
CREATE INDEX audit_log_action ON audit_log (tenant_id, action, occurred_at, id);
CREATE INDEX audit_log_target ON audit_log (tenant_id, target, occurred_at, id);
CREATE INDEX audit_log_tracking ON audit_log (tenant_id, tracking_id);
