//! `dirbridge sync …`: what the agents could not sync, run history, the sync settings, and the
//! one-time permission to export deletes above the threshold, and asking the agents to sync now.

use clap::Subcommand;
use proto::sync::{AgentSyncSettings, SyncErrorRecord, SyncRunRow, SyncSettingsPatch};

use super::Ctx;
use crate::output::{fields, opt, wire, yes_no, Table};
use crate::time::format_rfc3339;

#[derive(Debug, Subcommand)]
pub enum SyncCommand {
    /// Objects the agents could not apply in the cloud, and why.
    #[command(
        after_help = "Examples:\n  dirbridge sync errors\n  dirbridge sync errors --output json"
    )]
    Errors,

    /// Sync run history, newest first.
    #[command(after_help = "Examples:\n  dirbridge sync runs\n  dirbridge sync runs --limit 5")]
    Runs {
        /// How many runs to show (1 to 1000).
        #[arg(long, value_name = "N", default_value_t = 20)]
        limit: u32,
    },

    /// Deletion threshold, staging mode and sync intervals.
    #[command(subcommand)]
    Settings(SettingsCommand),

    /// Let the next run export its deletes even above the deletion threshold, once
    /// (Global Administrator).
    #[command(after_help = "Example:\n  dirbridge sync allow-deletes")]
    AllowDeletes,

    /// Ask every connected agent to sync now instead of at its next interval
    /// (Global Administrator).
    #[command(after_help = "Examples:\n  dirbridge sync run\n  dirbridge sync run --full")]
    Run {
        /// A full sync (re-read the whole directory) rather than a delta.
        #[arg(long)]
        full: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum SettingsCommand {
    /// Show the sync settings.
    #[command(after_help = "Example:\n  dirbridge sync settings show")]
    Show,

    /// Change sync settings (Global Administrator).
    #[command(
        after_help = "Examples:\n  dirbridge sync settings set --deletion-threshold 1000\n  dirbridge sync settings set --deletion-window 7200\n  dirbridge sync settings set --staging true\n  dirbridge sync settings set --delta-interval 60 --full-interval 43200"
    )]
    Set {
        /// Most deletes the agent may export within the deletion window (all runs together)
        /// before it stops and waits for `dirbridge sync allow-deletes`.
        #[arg(long, value_name = "N")]
        deletion_threshold: Option<u32>,
        /// Seconds over which deletes count together toward the threshold (60 to 604800,
        /// default 3600).
        #[arg(long, value_name = "SECS")]
        deletion_window: Option<u32>,
        /// Staging mode: import and compute, export nothing.
        #[arg(long, value_name = "true|false")]
        staging: Option<bool>,
        /// Seconds between delta syncs (at least 5).
        #[arg(long, value_name = "SECS")]
        delta_interval: Option<u32>,
        /// Seconds between full syncs (at least 3600).
        #[arg(long, value_name = "SECS")]
        full_interval: Option<u32>,
    },
}

pub async fn run(cmd: SyncCommand, ctx: &Ctx) -> anyhow::Result<()> {
    let api = ctx.api()?;
    match cmd {
        SyncCommand::Errors => {
            let v = api.get("/api/v1/sync/errors", &[]).await?;
            ctx.out.data(v, |errors: Vec<SyncErrorRecord>| {
                let mut t = Table::new(&["code", "object", "message", "last seen", "anchor"])
                    .empty("No sync errors.");
                for e in errors {
                    t.row(vec![
                        e.code,
                        opt(&e.distinguished_name),
                        e.message,
                        format_rfc3339(e.last_seen_at),
                        e.anchor,
                    ]);
                }
                t.render()
            })
        }
        SyncCommand::Runs { limit } => {
            let v = api
                .get("/api/v1/sync/runs", &[("limit", limit.to_string())])
                .await?;
            ctx.out.data(v, |runs: Vec<SyncRunRow>| {
                let mut t = Table::new(&[
                    "started",
                    "runs",
                    "duration",
                    "kind",
                    "outcome",
                    "added",
                    "updated",
                    "deleted",
                    "errors",
                    "pending deletes",
                    "connector",
                    "message",
                ])
                .empty("No sync runs yet.");
                for row in runs {
                    let r = row.run;
                    // Consecutive delta runs that changed nothing: one line, the latest's
                    // times, the count, and since when.
                    let message = match row.first_started_at {
                        Some(first) if row.runs > 1 => Some(format!(
                            "{} delta runs changed nothing since {}",
                            row.runs,
                            format_rfc3339(first)
                        )),
                        _ => r.message,
                    };
                    t.row(vec![
                        format_rfc3339(r.started_at),
                        row.runs.to_string(),
                        r.finished_at
                            .map(|f| format!("{} s", (f - r.started_at).max(0)))
                            .unwrap_or_else(|| "running".into()),
                        wire(&r.kind),
                        wire(&r.outcome),
                        r.added.to_string(),
                        r.updated.to_string(),
                        r.deleted.to_string(),
                        r.errors.to_string(),
                        r.pending_deletes.to_string(),
                        r.connector,
                        opt(&message),
                    ]);
                }
                t.render()
            })
        }
        SyncCommand::Settings(SettingsCommand::Show) => {
            let v = api.get("/api/v1/sync/settings", &[]).await?;
            ctx.out.data(v, |s: AgentSyncSettings| render_settings(&s))
        }
        SyncCommand::Settings(SettingsCommand::Set {
            deletion_threshold,
            deletion_window,
            staging,
            delta_interval,
            full_interval,
        }) => {
            let patch = SyncSettingsPatch {
                deletion_threshold,
                deletion_window_secs: deletion_window,
                staging,
                delta_interval_secs: delta_interval,
                full_interval_secs: full_interval,
            };
            if patch == SyncSettingsPatch::default() {
                anyhow::bail!("nothing to change: give --deletion-threshold N, --deletion-window SECS, --staging true|false, --delta-interval SECS or --full-interval SECS");
            }
            let v = api.patch("/api/v1/sync/settings", &patch).await?;
            ctx.out.data(v, |s: AgentSyncSettings| render_settings(&s))
        }
        SyncCommand::Run { full } => {
            let v = api
                .post("/api/v1/sync/run", &serde_json::json!({ "full": full }))
                .await?;
            ctx.out.data(v, |a: serde_json::Value| {
                let n = a["agents"].as_u64().unwrap_or(0);
                let kind = if full { "full" } else { "delta" };
                let agents = if n == 1 { "agent" } else { "agents" };
                format!("Asked {n} connected {agents} to run a {kind} sync now; `dirbridge sync runs` shows the result.")
            })
        }
        SyncCommand::AllowDeletes => {
            let v = api.post_empty("/api/v1/sync/allow-deletes").await?;
            ctx.out.data(v, |s: AgentSyncSettings| {
                format!(
                    "The next sync run may export its deletes even above the threshold ({}), once.",
                    s.deletion_threshold
                )
            })
        }
    }
}

fn render_settings(s: &AgentSyncSettings) -> String {
    fields(&[
        ("Deletion threshold", s.deletion_threshold.to_string()),
        ("Deletion window", format!("{} s", s.deletion_window_secs)),
        ("Allow deletes once", yes_no(s.allow_deletes_once)),
        ("Staging", yes_no(s.staging)),
        ("Delta interval", format!("{} s", s.delta_interval_secs)),
        ("Full interval", format!("{} s", s.full_interval_secs)),
    ])
}
