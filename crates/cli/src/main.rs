//! The `dirbridge` binary: parses the command line, calls the cloud crate or the REST API, prints.
//! It wires; the decisions live in `tenant` and the HTTP surface in `cloud`.

mod api;
mod args;
mod commands;
mod credentials;
mod output;
mod password;
mod time;

use clap::Parser;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = args::Cli::parse();
    if !long_running(&cli) {
        // Rust ignores SIGPIPE, so printing into a closed pipe (`dirbridge … | head`) would
        // panic; a command-line tool should just stop. The services keep ignoring it: their
        // sockets must never kill them.
        // SAFETY: setting a signal's disposition to the default has no preconditions.
        unsafe {
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        }
    }
    match commands::run(cli).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            match err.downcast_ref::<commands::Exit>() {
                Some(exit) => std::process::ExitCode::from(exit.code),
                None => std::process::ExitCode::FAILURE,
            }
        }
    }
}

/// `cloud serve` and `agent run`.
fn long_running(cli: &args::Cli) -> bool {
    matches!(
        &cli.command,
        args::Command::Cloud(args::CloudCommand::Serve(_))
            | args::Command::Agent(commands::agent::AgentCommand::Run { .. })
    )
}
