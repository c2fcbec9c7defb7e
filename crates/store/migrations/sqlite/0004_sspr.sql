-- Self-service password reset (SQLite). Keep in step with ../postgres/0004_sspr.sql.
-- Nothing here holds a password, a one-time code or a security answer in clear.

-- The authentication methods a user registered. Answers are Argon2id hashes of the normalised
-- answer, inside the JSON list [{question, answerHash}].
CREATE TABLE auth_methods (
    tenant_id       TEXT    NOT NULL,
    user_id         TEXT    NOT NULL,
    email           TEXT,
    mobile_phone    TEXT,
    office_phone    TEXT,
    questions       TEXT    NOT NULL,
    updated_at      BIGINT  NOT NULL,
    PRIMARY KEY (tenant_id, user_id),
    FOREIGN KEY (tenant_id, user_id) REFERENCES users (tenant_id, id) ON DELETE CASCADE
);

-- Reset sessions, keyed by the SHA-256 of the session secret. A decoy session (unknown or
-- ineligible user) has no user_id and can never verify.
CREATE TABLE sspr_sessions (
    id_hash          TEXT    NOT NULL PRIMARY KEY,
    tenant_id        TEXT,
    user_id          TEXT,
    subject          TEXT    NOT NULL,            -- whose throttles apply (user or typed UPN)
    created_at       BIGINT  NOT NULL,
    expires_at       BIGINT  NOT NULL,
    methods_required BIGINT  NOT NULL,
    questions        TEXT    NOT NULL,            -- JSON list of the questions asked
    verified         TEXT    NOT NULL,            -- JSON list of the methods verified
    code_mac         TEXT,                        -- HMAC of the one-time code, keyed by the session secret
    code_expires_at  BIGINT,
    used_at          BIGINT,
    result           TEXT                         -- the last WritebackResult, JSON (no password)
);
CREATE INDEX sspr_sessions_expires ON sspr_sessions (expires_at);

-- Throttle events per subject: failed verifications, failed identity proofs, emails sent.
CREATE TABLE sspr_events (
    subject     TEXT    NOT NULL,
    kind        TEXT    NOT NULL,
    at          BIGINT  NOT NULL
);
CREATE INDEX sspr_events_subject ON sspr_events (subject, kind, at);

CREATE TABLE sspr_lockouts (
    subject     TEXT    NOT NULL PRIMARY KEY,
    until       BIGINT  NOT NULL
);

-- Server-side keys of the SSPR flow (the decoy key), created once.
CREATE TABLE sspr_keys (
    name        TEXT    NOT NULL PRIMARY KEY,
    value       TEXT    NOT NULL
);
