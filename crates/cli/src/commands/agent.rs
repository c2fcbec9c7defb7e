//! `dirbridge agent …` (being built).

use clap::Subcommand;

use super::Ctx;

#[derive(Debug, Subcommand)]
pub enum AgentCommand {
    /// Not built yet.
    Todo,
}

pub async fn run(cmd: AgentCommand, _ctx: &Ctx) -> anyhow::Result<()> {
    match cmd {
        AgentCommand::Todo => anyhow::bail!("not built yet"),
    }
}
