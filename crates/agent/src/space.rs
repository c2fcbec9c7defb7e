//! The connector space: a small SQLite database (`DATA_DIR/connector-space.db`) of what the
//! cloud last accepted from each connector, keyed by source anchor, with a hash of the exported
//! form; the delta cookie per connector; a DN → anchor index for group members; the DNs of OUs
//! (to notice an OU moved or renamed); and the batch in flight, so a crash between the cloud's
//! answer and the local commit replays exactly that batch.

use std::path::Path;
use std::str::FromStr;

use proto::sync::{ObjectKind, SyncBatch, SyncObject, SyncRun};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions};
use sqlx::Row;

use crate::sync::map::hash;
use crate::sync::scope::dn_key;
use crate::AgentError;

const SCHEMA: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS objects (
        connector TEXT NOT NULL, anchor TEXT NOT NULL, kind TEXT NOT NULL, dn TEXT NOT NULL,
        hash TEXT NOT NULL, exported TEXT NOT NULL, last_seen_run TEXT, updated_at INTEGER NOT NULL,
        PRIMARY KEY (connector, anchor))",
    "CREATE TABLE IF NOT EXISTS cookies (
        connector TEXT PRIMARY KEY, cookie BLOB NOT NULL, updated_at INTEGER NOT NULL)",
    "CREATE TABLE IF NOT EXISTS dn_index (
        connector TEXT NOT NULL, dn_key TEXT NOT NULL, anchor TEXT NOT NULL,
        PRIMARY KEY (connector, dn_key))",
    "CREATE INDEX IF NOT EXISTS dn_index_anchor ON dn_index (connector, anchor)",
    "CREATE TABLE IF NOT EXISTS containers (
        connector TEXT NOT NULL, guid TEXT NOT NULL, dn TEXT NOT NULL,
        PRIMARY KEY (connector, guid))",
    "CREATE TABLE IF NOT EXISTS inflight (
        connector TEXT PRIMARY KEY, batch TEXT NOT NULL, started_at INTEGER NOT NULL)",
    "CREATE TABLE IF NOT EXISTS runs (
        connector TEXT PRIMARY KEY, run TEXT NOT NULL)",
];

/// One object as last accepted by the cloud.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpaceObject {
    pub anchor: String,
    pub kind: ObjectKind,
    pub dn: String,
    pub hash: String,
    pub exported: SyncObject,
}

#[derive(Debug, Clone)]
pub struct Space {
    pool: SqlitePool,
}

fn kind_text(k: ObjectKind) -> &'static str {
    match k {
        ObjectKind::User => "user",
        ObjectKind::Group => "group",
    }
}

impl Space {
    /// Opens (creating) `DATA_DIR/connector-space.db`.
    pub async fn open(data_dir: &Path) -> Result<Space, AgentError> {
        crate::private_dir(data_dir).map_err(AgentError::io(data_dir))?;
        let path = data_dir.join("connector-space.db");
        let opts = SqliteConnectOptions::from_str(&format!("sqlite://{}", path.display()))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .busy_timeout(std::time::Duration::from_secs(30));
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(opts)
            .await?;
        for stmt in SCHEMA {
            sqlx::query(stmt).execute(&pool).await?;
        }
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let _ = std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600));
        }
        Ok(Space { pool })
    }

    pub async fn cookie(&self, connector: &str) -> Result<Option<Vec<u8>>, AgentError> {
        let row = sqlx::query("SELECT cookie FROM cookies WHERE connector = $1")
            .bind(connector)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|r| r.get::<Vec<u8>, _>(0)))
    }

    /// Stores (or with `None` forgets) the delta cookie.
    pub async fn set_cookie(
        &self,
        connector: &str,
        cookie: Option<&[u8]>,
    ) -> Result<(), AgentError> {
        match cookie {
            Some(c) => {
                sqlx::query(
                    "INSERT INTO cookies (connector, cookie, updated_at) VALUES ($1, $2, $3)
                     ON CONFLICT (connector) DO UPDATE SET cookie = excluded.cookie, updated_at = excluded.updated_at",
                )
                .bind(connector)
                .bind(c)
                .bind(crate::now())
                .execute(&self.pool)
                .await?;
            }
            None => {
                sqlx::query("DELETE FROM cookies WHERE connector = $1")
                    .bind(connector)
                    .execute(&self.pool)
                    .await?;
            }
        }
        Ok(())
    }

    pub async fn get(
        &self,
        connector: &str,
        anchor: &str,
    ) -> Result<Option<SpaceObject>, AgentError> {
        let row = sqlx::query(
            "SELECT anchor, kind, dn, hash, exported FROM objects WHERE connector = $1 AND anchor = $2",
        )
        .bind(connector)
        .bind(anchor)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| {
            let exported: String = r.get(4);
            Ok(SpaceObject {
                anchor: r.get(0),
                kind: if r.get::<String, _>(1) == "group" {
                    ObjectKind::Group
                } else {
                    ObjectKind::User
                },
                dn: r.get(2),
                hash: r.get(3),
                exported: serde_json::from_str(&exported)
                    .map_err(|e| AgentError::Config(format!("connector space row: {e}")))?,
            })
        })
        .transpose()
    }

    /// Marks an object as seen by a full import run.
    pub async fn mark_seen(
        &self,
        connector: &str,
        anchor: &str,
        run_id: &str,
    ) -> Result<(), AgentError> {
        sqlx::query("UPDATE objects SET last_seen_run = $3 WHERE connector = $1 AND anchor = $2")
            .bind(connector)
            .bind(anchor)
            .bind(run_id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Anchors (and DNs) in the space that run `run_id` did not see.
    pub async fn unseen(
        &self,
        connector: &str,
        run_id: &str,
    ) -> Result<Vec<(String, String)>, AgentError> {
        let rows = sqlx::query(
            "SELECT anchor, dn FROM objects WHERE connector = $1 AND (last_seen_run IS NULL OR last_seen_run <> $2) ORDER BY anchor",
        )
        .bind(connector)
        .bind(run_id)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(|r| (r.get(0), r.get(1))).collect())
    }

    /// Every anchor of a connector.
    pub async fn anchors(&self, connector: &str) -> Result<Vec<String>, AgentError> {
        let rows = sqlx::query("SELECT anchor FROM objects WHERE connector = $1")
            .bind(connector)
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.into_iter().map(|r| r.get(0)).collect())
    }

    /// (users, groups) in the space.
    pub async fn counts(&self, connector: &str) -> Result<(u64, u64), AgentError> {
        let rows =
            sqlx::query("SELECT kind, COUNT(*) FROM objects WHERE connector = $1 GROUP BY kind")
                .bind(connector)
                .fetch_all(&self.pool)
                .await?;
        let mut out = (0, 0);
        for r in rows {
            let n: i64 = r.get(1);
            if r.get::<String, _>(0) == "group" {
                out.1 = n as u64;
            } else {
                out.0 = n as u64;
            }
        }
        Ok(out)
    }

    /// The anchor of the object at `dn`, as last read from the directory.
    pub async fn anchor_at(&self, connector: &str, dn: &str) -> Result<Option<String>, AgentError> {
        let row = sqlx::query("SELECT anchor FROM dn_index WHERE connector = $1 AND dn_key = $2")
            .bind(connector)
            .bind(dn_key(dn))
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|r| r.get(0)))
    }

    /// Records that `anchor` is now at `dn` (forgetting where it was).
    pub async fn index_dn(
        &self,
        connector: &str,
        dn: &str,
        anchor: &str,
    ) -> Result<(), AgentError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("DELETE FROM dn_index WHERE connector = $1 AND anchor = $2")
            .bind(connector)
            .bind(anchor)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO dn_index (connector, dn_key, anchor) VALUES ($1, $2, $3)
             ON CONFLICT (connector, dn_key) DO UPDATE SET anchor = excluded.anchor",
        )
        .bind(connector)
        .bind(dn_key(dn))
        .bind(anchor)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn unindex(&self, connector: &str, anchor: &str) -> Result<(), AgentError> {
        sqlx::query("DELETE FROM dn_index WHERE connector = $1 AND anchor = $2")
            .bind(connector)
            .bind(anchor)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// The last known DN of an OU / container.
    pub async fn container(
        &self,
        connector: &str,
        guid: &str,
    ) -> Result<Option<String>, AgentError> {
        let row = sqlx::query("SELECT dn FROM containers WHERE connector = $1 AND guid = $2")
            .bind(connector)
            .bind(guid)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|r| r.get(0)))
    }

    pub async fn set_container(
        &self,
        connector: &str,
        guid: &str,
        dn: Option<&str>,
    ) -> Result<(), AgentError> {
        match dn {
            Some(dn) => {
                sqlx::query(
                    "INSERT INTO containers (connector, guid, dn) VALUES ($1, $2, $3)
                 ON CONFLICT (connector, guid) DO UPDATE SET dn = excluded.dn",
                )
                .bind(connector)
                .bind(guid)
                .bind(dn)
                .execute(&self.pool)
                .await?
            }
            None => {
                sqlx::query("DELETE FROM containers WHERE connector = $1 AND guid = $2")
                    .bind(connector)
                    .bind(guid)
                    .execute(&self.pool)
                    .await?
            }
        };
        Ok(())
    }

    /// The batch sent but not yet committed here, if the last run stopped in between.
    pub async fn inflight(&self, connector: &str) -> Result<Option<SyncBatch>, AgentError> {
        let row = sqlx::query("SELECT batch FROM inflight WHERE connector = $1")
            .bind(connector)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| {
            serde_json::from_str(&r.get::<String, _>(0))
                .map_err(|e| AgentError::Config(format!("in-flight batch: {e}")))
        })
        .transpose()
    }

    /// Remembers `batch` before it is sent.
    pub async fn set_inflight(&self, connector: &str, batch: &SyncBatch) -> Result<(), AgentError> {
        let text = serde_json::to_string(batch).map_err(|e| AgentError::Config(e.to_string()))?;
        sqlx::query(
            "INSERT INTO inflight (connector, batch, started_at) VALUES ($1, $2, $3)
             ON CONFLICT (connector) DO UPDATE SET batch = excluded.batch, started_at = excluded.started_at",
        )
        .bind(connector)
        .bind(text)
        .bind(crate::now())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Writes an accepted batch into the space and clears the in-flight record, in one
    /// transaction; with `cookie`, stores it in the same transaction.
    pub async fn commit_batch(
        &self,
        connector: &str,
        batch: &SyncBatch,
        cookie: Option<&[u8]>,
    ) -> Result<(), AgentError> {
        let mut tx = self.pool.begin().await?;
        let now = crate::now();
        for o in &batch.upserts {
            let exported =
                serde_json::to_string(o).map_err(|e| AgentError::Config(e.to_string()))?;
            sqlx::query(
                "INSERT INTO objects (connector, anchor, kind, dn, hash, exported, last_seen_run, updated_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
                 ON CONFLICT (connector, anchor) DO UPDATE SET kind = excluded.kind, dn = excluded.dn,
                   hash = excluded.hash, exported = excluded.exported,
                   last_seen_run = excluded.last_seen_run, updated_at = excluded.updated_at",
            )
            .bind(connector)
            .bind(&o.anchor)
            .bind(kind_text(o.kind))
            .bind(&o.attributes.distinguished_name)
            .bind(hash(o))
            .bind(exported)
            .bind(&batch.run_id)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        }
        for a in &batch.deletes {
            sqlx::query("DELETE FROM objects WHERE connector = $1 AND anchor = $2")
                .bind(connector)
                .bind(a)
                .execute(&mut *tx)
                .await?;
        }
        sqlx::query("DELETE FROM inflight WHERE connector = $1")
            .bind(connector)
            .execute(&mut *tx)
            .await?;
        if let Some(c) = cookie {
            sqlx::query(
                "INSERT INTO cookies (connector, cookie, updated_at) VALUES ($1, $2, $3)
                 ON CONFLICT (connector) DO UPDATE SET cookie = excluded.cookie, updated_at = excluded.updated_at",
            )
            .bind(connector)
            .bind(c)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Keeps the last run report per connector (for `agent status`).
    pub async fn set_last_run(&self, connector: &str, run: &SyncRun) -> Result<(), AgentError> {
        let text = serde_json::to_string(run).map_err(|e| AgentError::Config(e.to_string()))?;
        sqlx::query(
            "INSERT INTO runs (connector, run) VALUES ($1, $2)
             ON CONFLICT (connector) DO UPDATE SET run = excluded.run",
        )
        .bind(connector)
        .bind(text)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn last_run(&self, connector: &str) -> Result<Option<SyncRun>, AgentError> {
        let row = sqlx::query("SELECT run FROM runs WHERE connector = $1")
            .bind(connector)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.and_then(|r| serde_json::from_str(&r.get::<String, _>(0)).ok()))
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proto::sync::SyncAttributes;

    fn obj(anchor: &str, dn: &str) -> SyncObject {
        SyncObject {
            anchor: anchor.into(),
            kind: ObjectKind::User,
            attributes: SyncAttributes {
                distinguished_name: dn.into(),
                ..Default::default()
            },
            members: vec![],
        }
    }

    #[tokio::test]
    async fn accepted_batches_survive_a_reopen_and_unseen_rows_become_deletes() {
        let dir = tempfile::tempdir().unwrap();
        let s = Space::open(dir.path()).await.unwrap();
        let batch = SyncBatch {
            run_id: "r1".into(),
            seq: 0,
            upserts: vec![obj("a", "CN=A,DC=x"), obj("b", "CN=B,DC=x")],
            deletes: vec![],
        };
        s.set_inflight("c", &batch).await.unwrap();
        assert_eq!(s.inflight("c").await.unwrap(), Some(batch.clone()));
        s.commit_batch("c", &batch, Some(b"cookie1")).await.unwrap();
        assert!(s.inflight("c").await.unwrap().is_none());
        s.close().await;

        let s = Space::open(dir.path()).await.unwrap();
        assert_eq!(
            s.cookie("c").await.unwrap().as_deref(),
            Some(&b"cookie1"[..])
        );
        let a = s.get("c", "a").await.unwrap().unwrap();
        assert_eq!(a.hash, hash(&obj("a", "CN=A,DC=x")));
        s.mark_seen("c", "a", "r2").await.unwrap();
        assert_eq!(
            s.unseen("c", "r2").await.unwrap(),
            vec![("b".to_string(), "CN=B,DC=x".to_string())]
        );
        assert!(s.get("other", "a").await.unwrap().is_none());

        s.index_dn("c", "CN=A,DC=x", "a").await.unwrap();
        s.index_dn("c", "CN=A2, DC=x", "a").await.unwrap();
        assert_eq!(
            s.anchor_at("c", "cn=a2,dc=x").await.unwrap().as_deref(),
            Some("a")
        );
        assert!(s.anchor_at("c", "CN=A,DC=x").await.unwrap().is_none());
    }
}
