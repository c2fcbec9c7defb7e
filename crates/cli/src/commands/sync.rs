//! `dirbridge sync …` (being built).

use clap::Subcommand;

use super::Ctx;

#[derive(Debug, Subcommand)]
pub enum SyncCommand {
    /// Not built yet.
    Todo,
}

pub async fn run(cmd: SyncCommand, _ctx: &Ctx) -> anyhow::Result<()> {
    match cmd {
        SyncCommand::Todo => anyhow::bail!("not built yet"),
    }
}
