-- Authenticator app and phone codes for self-service password reset (SQLite). Keep in step with
-- ../postgres/0012_authenticator_and_phone_codes.sql.
-- The TOTP secret is stored only sealed (ChaCha20-Poly1305 under the cloud's key-encryption
-- key, the one that seals OIDC signing keys); the last step a code was accepted for is kept so
-- no code is accepted twice. A registration waits, sealed, until its first code confirms it.

ALTER TABLE auth_methods ADD COLUMN authenticator TEXT;
ALTER TABLE auth_methods ADD COLUMN authenticator_last_step BIGINT;
ALTER TABLE auth_methods ADD COLUMN authenticator_pending TEXT;
ALTER TABLE auth_methods ADD COLUMN authenticator_pending_expires BIGINT;
