//! Messages for agents' push sockets, through the database: whichever cloud instance an admin
//! asks, the instance holding the agent's socket takes the message and sends it.

use crate::db::args;
use crate::{Result, Store};

impl Store {
    /// Queues `push` (JSON) for each `(message id, agent id)` of `to`, at `now_ms`.
    pub async fn queue_agent_pushes(
        &self,
        to: &[(String, String)],
        push: &str,
        now_ms: i64,
    ) -> Result<()> {
        for (id, agent) in to {
            self.inner
                .exec(
                    "INSERT INTO agent_pushes (id, agent_id, push, created_ms) VALUES ($1, $2, $3, $4)",
                    &args![id, agent, push, now_ms],
                )
                .await?;
        }
        Ok(())
    }

    /// Takes (deletes and returns, oldest first) the queued messages of `agent_ids`, as
    /// `(agent_id, push)`. A message is taken once, by one instance.
    pub async fn take_agent_pushes(&self, agent_ids: &[String]) -> Result<Vec<(String, String)>> {
        if agent_ids.is_empty() {
            return Ok(Vec::new());
        }
        let marks: Vec<String> = (1..=agent_ids.len()).map(|i| format!("${i}")).collect();
        let sql = format!(
            "DELETE FROM agent_pushes WHERE agent_id IN ({}) RETURNING agent_id, push, created_ms",
            marks.join(", ")
        );
        let args: Vec<crate::db::Arg> = agent_ids.iter().map(crate::db::Arg::from).collect();
        let mut taken = self
            .inner
            .all(&sql, &args, |r| {
                Ok((r.int("created_ms")?, r.text("agent_id")?, r.text("push")?))
            })
            .await?;
        taken.sort();
        Ok(taken.into_iter().map(|(_, a, p)| (a, p)).collect())
    }

    /// Deletes messages queued before `before_ms` (their agent never took them).
    pub async fn forget_agent_pushes(&self, before_ms: i64) -> Result<u64> {
        self.inner
            .exec(
                "DELETE FROM agent_pushes WHERE created_ms < $1",
                &args![before_ms],
            )
            .await
    }
}
