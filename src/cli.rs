//! The command line: `serve`, `worker start`, `db upgrade`, `db prune`.

use clap::{Parser, Subcommand};

/// EventFlow: durable event ingest, streaming and processing.
#[derive(Debug, Parser)]
#[command(name = "eventflow", version, about, after_help = eventflow::config::settings_help())]
pub struct Cli {
    /// What to run.
    #[command(subcommand)]
    pub command: Command,
}

/// Top-level commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the HTTP API (and, unless --no-worker, a worker in the same process).
    Serve {
        /// Run only the API; workers run elsewhere (`eventflow worker start`).
        #[arg(long)]
        no_worker: bool,
    },
    /// Worker processes.
    Worker {
        /// What to do.
        #[command(subcommand)]
        action: WorkerAction,
    },
    /// Database schema.
    Db {
        /// What to do.
        #[command(subcommand)]
        action: DbAction,
    },
}

/// `eventflow worker …`
#[derive(Debug, Subcommand)]
pub enum WorkerAction {
    /// Join the consumer group and process events until SIGTERM/SIGINT.
    Start,
}

/// `eventflow db …`
#[derive(Debug, Subcommand)]
pub enum DbAction {
    /// Create or migrate the schema to the latest version (idempotent).
    Upgrade,
    /// Delete what is older than RETENTION_DAYS now: events, finished deliveries, dead letters,
    /// stream entries (workers also do it every ten minutes).
    Prune {
        /// Only count the events that would be deleted.
        #[arg(long)]
        dry_run: bool,
    },
}
