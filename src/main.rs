//! The `eventflow` binary: parse the command line and configuration, run, exit cleanly.

mod cli;
mod remote;

use anyhow::Context;
use chrono::SecondsFormat;
use clap::Parser;
use eventflow::app::{self, Backends, Role};
use eventflow::config::{Config, redact_url};
use eventflow::observability::logging;

use cli::{Cli, Command, DbAction, RemoteArgs, WorkerAction};

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
    if let Err(err) = run(cli.command, config).await {
        tracing::error!(error = format!("{err:#}"), "eventflow failed");
        eprintln!("eventflow: {err:#}");
        std::process::exit(1);
    }
}

async fn run(command: Command, config: Config) -> anyhow::Result<()> {
    // Operator commands print their answer and do not log.
    if !matches!(
        command,
        Command::Events { .. }
            | Command::Dlq { .. }
            | Command::Types { .. }
            | Command::Demo { .. }
            | Command::Replay { .. }
            | Command::Bench { .. }
    ) {
        logging::init(&config.log_level, config.log_format);
    }
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
        Command::Db {
            action: DbAction::Prune { dry_run },
        } => return prune(&config, dry_run).await,
        Command::Events { remote, action } => {
            return remote::events(&client(&remote, &config)?, action).await;
        }
        Command::Dlq { remote, action } => {
            return remote::dlq(&client(&remote, &config)?, action).await;
        }
        Command::Types { remote, action } => {
            return remote::types(&client(&remote, &config)?, action).await;
        }
        Command::Bench { remote, args } => {
            return remote::bench(&client(&remote, &config)?, args).await;
        }
        Command::Replay {
            remote,
            request,
            action,
        } => {
            return remote::replay(&client(&remote, &config)?, request, action).await;
        }
        Command::Demo {
            remote,
            count,
            rate,
            seed,
        } => {
            let events = eventflow::demo::events(count, seed);
            return remote::demo(&client(&remote, &config)?, events, rate).await;
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

/// The client of the API named by `--url`, or by API_HOST and API_PORT.
fn client(args: &RemoteArgs, config: &Config) -> anyhow::Result<remote::Remote> {
    let url = args.url.clone().unwrap_or_else(|| {
        let host = match config.api_host {
            std::net::IpAddr::V4(ip) if ip.is_unspecified() => "127.0.0.1".to_string(),
            std::net::IpAddr::V6(ip) if ip.is_unspecified() => "[::1]".to_string(),
            std::net::IpAddr::V6(ip) => format!("[{ip}]"),
            ip => ip.to_string(),
        };
        format!("http://{host}:{}", config.api_port)
    });
    let api_key = args
        .api_key
        .clone()
        .or_else(|| std::env::var("EVENTFLOW_API_KEY").ok())
        .filter(|key| !key.is_empty())
        // The server's own keys go only to a server on this machine.
        .or_else(|| {
            let key = config.api_keys.for_client().filter(|_| is_loopback(&url))?;
            Some(key.secret().to_string())
        });
    remote::Remote::new(&url, args.json, api_key)
}

/// True when `url` names this machine (localhost or a loopback address).
fn is_loopback(url: &str) -> bool {
    match url::Url::parse(url)
        .ok()
        .and_then(|u| u.host().map(|h| h.to_owned()))
    {
        Some(url::Host::Domain(name)) => name == "localhost",
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

/// `db prune`: deletes (or with `dry_run` counts) what RETENTION_DAYS no longer keeps.
async fn prune(config: &Config, dry_run: bool) -> anyhow::Result<()> {
    let Some(keep) = config.retention else {
        println!("RETENTION_DAYS=0: everything is kept; nothing to prune");
        return Ok(());
    };
    let backends = Backends::open(config).await?;
    let result = async {
        backends.upgrade_schema().await?;
        let retention = backends.retention(keep, &config.default_stream);
        let cutoff = retention
            .cutoff()
            .to_rfc3339_opts(SecondsFormat::Secs, true);
        if dry_run {
            let events = retention.count().await?;
            println!("{events} events from before {cutoff} would be deleted (dry run)");
        } else {
            let report = retention.prune().await?;
            println!(
                "deleted {} events, {} delivery records and {} stream entries from before {cutoff}",
                report.events, report.delivery_records, report.stream_entries
            );
        }
        anyhow::Ok(())
    }
    .await;
    backends.close().await;
    result
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
