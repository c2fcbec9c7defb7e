-- State several cloud instances on one database must share (SQLite). Keep in step with
-- ../postgres/0009_shared_limits_and_pushes.sql.

-- Smart lockout: an account over the failure limit is locked until `locked_until`, longer with
-- each lockout (`lockouts`); the row is forgotten at `forget_at` (a quiet period after the last
-- attempt or the end of the lock), and with it the failures and the lockouts.
ALTER TABLE sign_in_failures ADD COLUMN locked_until BIGINT NOT NULL DEFAULT 0;
ALTER TABLE sign_in_failures ADD COLUMN lockouts BIGINT NOT NULL DEFAULT 0;
ALTER TABLE sign_in_failures ADD COLUMN forget_at BIGINT NOT NULL DEFAULT 0;
UPDATE sign_in_failures SET forget_at = window_start + 900;
DROP INDEX sign_in_failures_window;
CREATE INDEX sign_in_failures_forget ON sign_in_failures (forget_at);

-- Per-address limits (crates/cloud/src/limits.rs): one row per rule and address, a token bucket
-- kept as its "theoretical arrival time" (GCRA): the bucket is full when `tat_ms` is not in the
-- future, so such rows are deleted.
CREATE TABLE address_limits (
    rule      TEXT    NOT NULL,   -- signIn | ssprStart
    address   TEXT    NOT NULL,   -- IPv4 address, or the /64 of an IPv6 one
    tat_ms    BIGINT  NOT NULL,
    refused   BIGINT  NOT NULL,     -- 1 when the last take found no token
    PRIMARY KEY (rule, address)
);
CREATE INDEX address_limits_tat ON address_limits (tat_ms);

-- Messages for agents' push sockets (`syncNow`), whatever instance holds the socket: the
-- instance that has the agent takes (deletes) them. Untaken ones are deleted after a minute.
CREATE TABLE agent_pushes (
    id          TEXT    NOT NULL PRIMARY KEY,
    agent_id    TEXT    NOT NULL,
    push        TEXT    NOT NULL,   -- the AgentPush as JSON
    created_ms  BIGINT  NOT NULL
);
CREATE INDEX agent_pushes_agent ON agent_pushes (agent_id);
CREATE INDEX agent_pushes_created ON agent_pushes (created_ms);
