//! `dirbridge agents …` (being built).

use clap::Subcommand;

use super::Ctx;

#[derive(Debug, Subcommand)]
pub enum AgentsCommand {
    /// Not built yet.
    Todo,
}

pub async fn run(cmd: AgentsCommand, _ctx: &Ctx) -> anyhow::Result<()> {
    match cmd {
        AgentsCommand::Todo => anyhow::bail!("not built yet"),
    }
}
