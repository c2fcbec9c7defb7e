-- OpenID Connect provider (PostgreSQL). Keep in step with ../sqlite/0010_oidc.sql.
-- Every secret here is stored as a SHA-256 hash (client secrets, authorization codes, access
-- and refresh tokens: all 32 random bytes, so a plain hash is enough) or sealed (signing keys,
-- under the key-encryption key that never enters the database).

-- An application registered to sign its users in with the tenant (an OIDC client).
CREATE TABLE oidc_apps (
    tenant_id                TEXT COLLATE "C"  NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    id                       TEXT COLLATE "C"  NOT NULL PRIMARY KEY,  -- also the client_id
    name                     TEXT COLLATE "C"  NOT NULL,
    client_type              TEXT COLLATE "C"  NOT NULL,              -- confidential | public
    redirect_uris            TEXT COLLATE "C"  NOT NULL,              -- JSON array, matched exactly
    post_logout_redirect_uris TEXT COLLATE "C" NOT NULL,              -- JSON array, matched exactly
    allowed_scopes           TEXT COLLATE "C"  NOT NULL,              -- JSON array
    access_group_id          TEXT COLLATE "C",                        -- NULL: every user of the tenant
    access_token_secs        BIGINT   NOT NULL,
    id_token_secs            BIGINT   NOT NULL,
    refresh_token_secs       BIGINT   NOT NULL,
    skip_consent             BOOLEAN  NOT NULL,
    signing_alg              TEXT COLLATE "C"  NOT NULL,              -- ES256 | RS256
    created_at               BIGINT   NOT NULL,
    updated_at               BIGINT   NOT NULL
);
CREATE INDEX oidc_apps_tenant ON oidc_apps (tenant_id, name);

-- Client secrets of confidential apps (several at once, so a secret can be rolled over).
CREATE TABLE oidc_app_secrets (
    id          TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    app_id      TEXT COLLATE "C" NOT NULL REFERENCES oidc_apps (id) ON DELETE CASCADE,
    hash        TEXT COLLATE "C" NOT NULL,                            -- SHA-256 hex of the secret
    created_at  BIGINT  NOT NULL,
    expires_at  BIGINT                                         -- NULL: until removed
);
CREATE UNIQUE INDEX oidc_app_secrets_hash ON oidc_app_secrets (hash);
CREATE INDEX oidc_app_secrets_app ON oidc_app_secrets (app_id);

-- The tenant's token signing keys. The private half is sealed (ChaCha20-Poly1305) under the
-- key-encryption key; retired keys stay published until every token they signed has expired.
CREATE TABLE oidc_keys (
    tenant_id       TEXT COLLATE "C" NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    kid             TEXT COLLATE "C" NOT NULL,
    alg             TEXT COLLATE "C" NOT NULL,
    public_jwk      TEXT COLLATE "C" NOT NULL,
    sealed_private  TEXT COLLATE "C" NOT NULL,
    created_at      BIGINT  NOT NULL,
    retired_at      BIGINT,
    publish_until   BIGINT,
    PRIMARY KEY (tenant_id, kid)
);

-- Authorization requests waiting for the user to sign in or consent (minutes).
CREATE TABLE oidc_requests (
    id          TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    tenant_id   TEXT COLLATE "C" NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    app_id      TEXT COLLATE "C" NOT NULL REFERENCES oidc_apps (id) ON DELETE CASCADE,
    request     TEXT COLLATE "C" NOT NULL,                            -- JSON
    created_at  BIGINT  NOT NULL,
    expires_at  BIGINT  NOT NULL
);
CREATE INDEX oidc_requests_expiry ON oidc_requests (expires_at);

-- Authorization codes: single use, short-lived, stored hashed.
CREATE TABLE oidc_codes (
    hash        TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    tenant_id   TEXT COLLATE "C" NOT NULL,
    app_id      TEXT COLLATE "C" NOT NULL REFERENCES oidc_apps (id) ON DELETE CASCADE,
    user_id     TEXT COLLATE "C" NOT NULL,
    grant_id    TEXT COLLATE "C" NOT NULL,
    request     TEXT COLLATE "C" NOT NULL,                            -- JSON: redirect URI, scopes, nonce, PKCE
    created_at  BIGINT  NOT NULL,
    expires_at  BIGINT  NOT NULL,
    used        BOOLEAN NOT NULL,
    FOREIGN KEY (tenant_id, user_id) REFERENCES users (tenant_id, id) ON DELETE CASCADE
);
CREATE INDEX oidc_codes_expiry ON oidc_codes (expires_at);

-- Access and refresh tokens handed to apps. A grant is one sign-in's chain of tokens: a
-- reused code or refresh token revokes the whole grant.
CREATE TABLE oidc_tokens (
    hash        TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    id          TEXT COLLATE "C" NOT NULL,
    tenant_id   TEXT COLLATE "C" NOT NULL,
    app_id      TEXT COLLATE "C" NOT NULL REFERENCES oidc_apps (id) ON DELETE CASCADE,
    user_id     TEXT COLLATE "C" NOT NULL,
    grant_id    TEXT COLLATE "C" NOT NULL,
    kind        TEXT COLLATE "C" NOT NULL,                            -- access | refresh
    scopes      TEXT COLLATE "C" NOT NULL,                            -- JSON array
    auth_time   BIGINT  NOT NULL,
    created_at  BIGINT  NOT NULL,
    expires_at  BIGINT  NOT NULL,
    revoked     BOOLEAN NOT NULL,
    FOREIGN KEY (tenant_id, user_id) REFERENCES users (tenant_id, id) ON DELETE CASCADE
);
CREATE INDEX oidc_tokens_grant ON oidc_tokens (grant_id);
CREATE INDEX oidc_tokens_user ON oidc_tokens (tenant_id, user_id);
CREATE INDEX oidc_tokens_expiry ON oidc_tokens (expires_at);

-- What a user agreed an app may have.
CREATE TABLE oidc_consents (
    tenant_id   TEXT COLLATE "C" NOT NULL,
    user_id     TEXT COLLATE "C" NOT NULL,
    app_id      TEXT COLLATE "C" NOT NULL REFERENCES oidc_apps (id) ON DELETE CASCADE,
    scopes      TEXT COLLATE "C" NOT NULL,                            -- JSON array
    granted_at  BIGINT  NOT NULL,
    PRIMARY KEY (tenant_id, user_id, app_id),
    FOREIGN KEY (tenant_id, user_id) REFERENCES users (tenant_id, id) ON DELETE CASCADE
);
