-- Password writeback (SQLite). Keep in step with ../postgres/0003_writeback.sql.
-- Times named *_ms are wall-clock Unix milliseconds (the queue's timers, shared by every cloud
-- process on the database); the others are epoch seconds of the tenant clock.

-- The queue. `envelopes` holds ciphertext only ({agentId: SealedRequest} JSON) and is cleared
-- once a request is done or expired; `result` is the WritebackResult JSON (never a password).
-- state: pending -> dispatched -> claimed -> done, or expired; every move is a conditional UPDATE.
CREATE TABLE writeback_requests (
    tracking_id     TEXT    NOT NULL PRIMARY KEY,
    tenant_id       TEXT    NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    user_id         TEXT    NOT NULL,
    kind            TEXT    NOT NULL,                 -- reset | change | unlock | adminReset
    state           TEXT    NOT NULL,
    agent_id        TEXT,                             -- dispatched to / claimed by
    excluded        TEXT    NOT NULL,                 -- JSON array of agent ids that let it lapse
    attempt         BIGINT  NOT NULL,
    envelopes       TEXT,
    result          TEXT,
    created_at      BIGINT  NOT NULL,
    dispatched_ms   BIGINT,
    claimed_ms      BIGINT,
    finished_ms     BIGINT,
    deadline_ms     BIGINT  NOT NULL
);
CREATE INDEX writeback_requests_state ON writeback_requests (state, deadline_ms);
CREATE INDEX writeback_requests_tenant ON writeback_requests (tenant_id, created_at);

-- Which agents take writeback requests. The sealing key itself is agents.sealing_public_key
-- (replaced on every enable).
CREATE TABLE agent_writeback (
    agent_id        TEXT    NOT NULL PRIMARY KEY REFERENCES agents (id) ON DELETE CASCADE,
    tenant_id       TEXT    NOT NULL,
    enabled         BOOLEAN NOT NULL,
    connector       TEXT,
    directory_kind  TEXT,
    checked_roots   TEXT    NOT NULL,                 -- JSON array of DNs
    enabled_at      BIGINT,
    disabled_at     BIGINT,
    key_created_at  BIGINT
);
CREATE INDEX agent_writeback_tenant ON agent_writeback (tenant_id);

-- Which cloud process holds each agent's push socket, refreshed on every ping.
CREATE TABLE agent_presence (
    agent_id        TEXT    NOT NULL,
    instance_id     TEXT    NOT NULL,
    last_seen_ms    BIGINT  NOT NULL,
    PRIMARY KEY (agent_id, instance_id)
);
