-- The deletion threshold counts the deletes of every run within this window (seconds), so that
-- quick delta cycles cannot slice a mass delete under it.
ALTER TABLE sync_settings ADD COLUMN deletion_window_secs BIGINT NOT NULL DEFAULT 3600;
