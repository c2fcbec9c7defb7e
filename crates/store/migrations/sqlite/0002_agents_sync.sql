-- Agents and directory sync (SQLite). Keep in step with ../postgres/0002_agents_sync.sql.

-- One-time registration tokens: only the SHA-256 of the token is kept.
CREATE TABLE agent_registration_tokens (
    hash        TEXT    NOT NULL PRIMARY KEY,
    tenant_id   TEXT    NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    created_by  TEXT    NOT NULL,
    created_at  BIGINT  NOT NULL,
    expires_at  BIGINT  NOT NULL,
    used_at     BIGINT
);

CREATE TABLE agents (
    id                  TEXT    NOT NULL PRIMARY KEY,
    tenant_id           TEXT    NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    name                TEXT    NOT NULL,
    version             TEXT    NOT NULL,
    signing_public_key  TEXT    NOT NULL,             -- Ed25519, base64
    sealing_public_key  TEXT    NOT NULL,             -- X25519, base64
    registered_at       BIGINT  NOT NULL,
    revoked_at          BIGINT,
    last_heartbeat_at   BIGINT,
    status              TEXT,                         -- the agent's own words from its heartbeat
    last_run_outcome    TEXT,                         -- RunOutcome of the last reported run
    last_run_message    TEXT
);
CREATE INDEX agents_tenant ON agents (tenant_id, registered_at);

-- Nonces of signed agent requests seen within the clock-skew window; old rows are pruned.
CREATE TABLE agent_nonces (
    agent_id    TEXT    NOT NULL,
    nonce       TEXT    NOT NULL,
    seen_at     BIGINT  NOT NULL,
    PRIMARY KEY (agent_id, nonce)
);
CREATE INDEX agent_nonces_seen ON agent_nonces (seen_at);

CREATE TABLE sync_settings (
    tenant_id            TEXT    NOT NULL PRIMARY KEY REFERENCES tenants (id) ON DELETE CASCADE,
    deletion_threshold   BIGINT  NOT NULL,
    allow_deletes_once   BOOLEAN NOT NULL,
    staging              BOOLEAN NOT NULL,
    delta_interval_secs  BIGINT  NOT NULL,
    full_interval_secs   BIGINT  NOT NULL
);

-- Applied batches, keyed so a replay is answered with the first answer.
CREATE TABLE sync_batches (
    agent_id    TEXT    NOT NULL,
    run_id      TEXT    NOT NULL,
    seq         BIGINT  NOT NULL,
    tenant_id   TEXT    NOT NULL,
    result      TEXT    NOT NULL,                     -- BatchResult as JSON
    applied_at  BIGINT  NOT NULL,
    PRIMARY KEY (agent_id, run_id, seq)
);
CREATE INDEX sync_batches_applied ON sync_batches (applied_at);

CREATE TABLE sync_runs (
    agent_id        TEXT    NOT NULL,
    run_id          TEXT    NOT NULL,
    tenant_id       TEXT    NOT NULL,
    started_at      BIGINT  NOT NULL,
    run             TEXT    NOT NULL,                 -- SyncRun as JSON
    PRIMARY KEY (agent_id, run_id)
);
CREATE INDEX sync_runs_tenant ON sync_runs (tenant_id, started_at);

CREATE TABLE sync_errors (
    tenant_id       TEXT    NOT NULL,
    agent_id        TEXT    NOT NULL,
    anchor          TEXT    NOT NULL,
    dn              TEXT,
    code            TEXT    NOT NULL,
    message         TEXT    NOT NULL,
    first_seen_at   BIGINT  NOT NULL,
    last_seen_at    BIGINT  NOT NULL,
    PRIMARY KEY (tenant_id, agent_id, anchor)
);

-- Soft match looks cloud users up by mail, ignoring ASCII case.
CREATE INDEX users_mail_lower ON users (tenant_id, lower(mail));
