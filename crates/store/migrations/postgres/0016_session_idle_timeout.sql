-- Browser sessions end after a while without use (postgres). Keep in step with
-- ../sqlite/0016_session_idle_timeout.sql.
-- idle_timeout: seconds a token may go unused before it stops working (0: no idle limit, as
-- for API and CLI tokens); last_used_at: when it was last used, kept to the minute.
ALTER TABLE api_tokens ADD COLUMN idle_timeout BIGINT NOT NULL DEFAULT 0;
ALTER TABLE api_tokens ADD COLUMN last_used_at BIGINT NOT NULL DEFAULT 0;
