-- Self-service password reset (PostgreSQL). Keep in step with ../sqlite/0004_sspr.sql.
-- Nothing here holds a password, a one-time code or a security answer in clear.

-- The authentication methods a user registered. Answers are Argon2id hashes of the normalised
-- answer, inside the JSON list [{question, answerHash}].
CREATE TABLE auth_methods (
    tenant_id       TEXT COLLATE "C" NOT NULL,
    user_id         TEXT COLLATE "C" NOT NULL,
    email           TEXT COLLATE "C",
    mobile_phone    TEXT COLLATE "C",
    office_phone    TEXT COLLATE "C",
    questions       TEXT COLLATE "C" NOT NULL,
    updated_at      BIGINT  NOT NULL,
    PRIMARY KEY (tenant_id, user_id),
    FOREIGN KEY (tenant_id, user_id) REFERENCES users (tenant_id, id) ON DELETE CASCADE
);

-- Reset sessions, keyed by the SHA-256 of the session secret. A decoy session (unknown or
-- ineligible user) has no user_id and can never verify.
CREATE TABLE sspr_sessions (
    id_hash          TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    tenant_id        TEXT COLLATE "C",
    user_id          TEXT COLLATE "C",
    subject          TEXT COLLATE "C" NOT NULL,            -- whose throttles apply (user or typed UPN)
    created_at       BIGINT  NOT NULL,
    expires_at       BIGINT  NOT NULL,
    methods_required BIGINT  NOT NULL,
    questions        TEXT COLLATE "C" NOT NULL,            -- JSON list of the questions asked
    verified         TEXT COLLATE "C" NOT NULL,            -- JSON list of the methods verified
    code_mac         TEXT COLLATE "C",                        -- HMAC of the one-time code, keyed by the session secret
    code_expires_at  BIGINT,
    used_at          BIGINT,
    result           TEXT COLLATE "C"                         -- the last WritebackResult, JSON (no password)
);
CREATE INDEX sspr_sessions_expires ON sspr_sessions (expires_at);

-- Throttle events per subject: failed verifications, failed identity proofs, emails sent.
CREATE TABLE sspr_events (
    subject     TEXT COLLATE "C" NOT NULL,
    kind        TEXT COLLATE "C" NOT NULL,
    at          BIGINT  NOT NULL
);
CREATE INDEX sspr_events_subject ON sspr_events (subject, kind, at);

CREATE TABLE sspr_lockouts (
    subject     TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    until       BIGINT  NOT NULL
);

-- Server-side keys of the SSPR flow (the decoy key), created once.
CREATE TABLE sspr_keys (
    name        TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    value       TEXT COLLATE "C" NOT NULL
);
