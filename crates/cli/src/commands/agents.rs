//! `dirbridge agents …`: registration tokens for new sync agents, the agent list with health,
//! and revocation.

use clap::Subcommand;
use proto::sync::{Agent, NewRegistrationToken, RegistrationToken};

use super::Ctx;
use crate::api::seg;
use crate::output::{opt, wire, Table};
use crate::time::format_rfc3339;

#[derive(Debug, Subcommand)]
pub enum AgentsCommand {
    /// One-time registration tokens for new agents.
    #[command(subcommand)]
    Token(TokenCommand),

    /// The registered agents, their health (from heartbeats and the last run) and status.
    #[command(
        after_help = "Examples:\n  dirbridge agents list\n  dirbridge agents list --output json"
    )]
    List,

    /// Revoke an agent: the cloud refuses its requests from now on.
    #[command(
        after_help = "Example:\n  dirbridge agents revoke 0b6c2a4e-3f1d-4c55-9a7e-2f0e8d1c9b11"
    )]
    Revoke {
        /// Agent id (from `dirbridge agents list`).
        id: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create a one-time token that registers one agent (Global Administrator).
    #[command(
        after_help = "Examples:\n  dirbridge agents token create\n  dirbridge agents token create --lifetime 600 --output json\n\nGive the token to the agent host, in a file readable only by the agent's account:\n  dirbridge agent register --token-file F"
    )]
    Create {
        /// How long the token stays valid, in seconds (60 to 86400; default 3600).
        #[arg(long, value_name = "SECS")]
        lifetime: Option<i64>,
    },
}

pub async fn run(cmd: AgentsCommand, ctx: &Ctx) -> anyhow::Result<()> {
    let api = ctx.api()?;
    match cmd {
        AgentsCommand::Token(TokenCommand::Create { lifetime }) => {
            let v = api
                .post(
                    "/api/v1/agents/tokens",
                    &NewRegistrationToken {
                        lifetime_secs: lifetime,
                    },
                )
                .await?;
            ctx.out.data(v, |t: RegistrationToken| {
                format!(
                    "{}\n\nThis token registers one agent and expires at {}. Put it in a file on the agent host \
                     (readable only by the agent's account) and give it to `dirbridge agent register --token-file F`.",
                    t.token,
                    format_rfc3339(t.expires_at)
                )
            })
        }
        AgentsCommand::List => {
            let v = api.get("/api/v1/agents", &[]).await?;
            ctx.out.data(v, |agents: Vec<Agent>| {
                let mut t = Table::new(&[
                    "name",
                    "health",
                    "version",
                    "last heartbeat",
                    "status",
                    "id",
                ])
                .empty("No agents are registered. Create a token with `dirbridge agents token create`.");
                for a in agents {
                    t.row(vec![
                        a.name,
                        wire(&a.health),
                        a.version,
                        a.last_heartbeat_at
                            .map(format_rfc3339)
                            .unwrap_or_else(|| "never".into()),
                        opt(&a.status),
                        a.id,
                    ]);
                }
                t.render()
            })
        }
        AgentsCommand::Revoke { id } => {
            api.delete(&format!("/api/v1/agents/{}", seg(&id))).await?;
            ctx.out.done(&format!(
                "Revoked agent {id}. Its requests are refused from now on; to reconnect it, register it again with a new token."
            ));
            Ok(())
        }
    }
}
