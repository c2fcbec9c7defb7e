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
    match commands::run(cli).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
