//! The `eventflow` binary: parse the command line and configuration, run, exit cleanly.

mod cli;

use anyhow::Context;
use clap::Parser;
use eventflow::app::{self, Backends, Role};
use eventflow::config::{Config, redact_url};
use eventflow::observability::logging;

use cli::{Cli, Command, DbAction, WorkerAction};

#[tokio::main]
async fn main() {
    let cli = Cli::parse();
    let config = match Config::from_env() {
        Ok(config) => config,
        Err(err) => {
            eprintln!("eventflow: {err}");
            std::process::exit(2);
        }
    };
    logging::init(&config.log_level, config.log_format);
    if let Err(err) = run(cli.command, config).await {
        tracing::error!(error = format!("{err:#}"), "eventflow failed");
        eprintln!("eventflow: {err:#}");
        std::process::exit(1);
    }
}

async fn run(command: Command, config: Config) -> anyhow::Result<()> {
    let role = match command {
        Command::Serve { no_worker } => Role {
            api: true,
            worker: !no_worker,
        },
        Command::Worker {
            action: WorkerAction::Start,
        } => Role {
            api: false,
            worker: true,
        },
        Command::Db {
            action: DbAction::Upgrade,
        } => {
            let backends = Backends::open(&config).await?;
            let upgraded = backends.upgrade_schema().await;
            backends.close().await;
            upgraded?;
            println!(
                "schema of {} is up to date",
                redact_url(&config.database_url)
            );
            return Ok(());
        }
    };
    let running = app::start(&config, role, Vec::new()).await?;
    let shutdown = running.shutdown_token();
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!("shutdown requested");
        shutdown.cancel();
    });
    running
        .wait()
        .await
        .context("EventFlow stopped with an error")
}

/// Resolves on SIGINT or SIGTERM.
async fn wait_for_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut terminate =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(signal) => signal,
                Err(_) => return std::future::pending().await,
            };
        tokio::select! {
            _ = interrupt => {}
            _ = terminate.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = interrupt.await;
}
