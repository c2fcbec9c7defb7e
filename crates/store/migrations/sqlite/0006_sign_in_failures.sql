-- Failed sign-ins per account (SQLite). Keep in step with ../postgres/0006_sign_in_failures.sql.
-- In the database, not in a process's memory, so every cloud instance counts the same
-- attempts and no table can fill up: rows of ended windows are deleted as new attempts come.

CREATE TABLE sign_in_failures (
    account_key   TEXT    NOT NULL PRIMARY KEY,  -- SHA-256 (hex) of the lower-cased UPN as typed
    failures      BIGINT  NOT NULL,                  -- attempts counted in the window
    window_start  BIGINT  NOT NULL                   -- the window's first counted attempt
);
CREATE INDEX sign_in_failures_window ON sign_in_failures (window_start);
