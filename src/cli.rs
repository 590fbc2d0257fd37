//! The command line: `serve`, `worker start`, `db upgrade|prune`, and the operator commands
//! `demo`, `events`, `dlq` and `replay` against a running EventFlow.

use clap::{Args, Parser, Subcommand};

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
    /// Stored events, read from a running EventFlow.
    Events {
        /// Where EventFlow runs, and how to print.
        #[command(flatten)]
        remote: RemoteArgs,
        /// What to do.
        #[command(subcommand)]
        action: EventsAction,
    },
    /// Send realistic demo events of all 15 known types to a running EventFlow.
    Demo {
        /// Where EventFlow runs, and how to print.
        #[command(flatten)]
        remote: RemoteArgs,
        /// How many events.
        #[arg(long, default_value_t = 500)]
        count: usize,
        /// Events per second, one per request (default: as fast as batches of 100 go).
        #[arg(long)]
        rate: Option<u32>,
        /// Seed of the story (the same seed sends the same users and events).
        #[arg(long, default_value_t = 42)]
        seed: u64,
    },
    /// The dead-letter queue of a running EventFlow.
    Dlq {
        /// Where EventFlow runs, and how to print.
        #[command(flatten)]
        remote: RemoteArgs,
        /// What to do.
        #[command(subcommand)]
        action: DlqAction,
    },
    /// The schema registry of a running EventFlow: event types and their JSON Schemas.
    Types {
        /// Where EventFlow runs, and how to print.
        #[command(flatten)]
        remote: RemoteArgs,
        /// What to do.
        #[command(subcommand)]
        action: TypesAction,
    },
    /// Load a running EventFlow and report throughput, latency percentiles and errors.
    Bench {
        /// Where EventFlow runs, and how to print.
        #[command(flatten)]
        remote: RemoteArgs,
        /// What to load, and how.
        #[command(flatten)]
        args: BenchArgs,
    },
    /// Deliver stored events again: queue a replay and follow it until it ends (Ctrl-C stops
    /// following, not the replay); or list, show and cancel replays.
    #[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
    Replay {
        /// Where EventFlow runs, and how to print.
        #[command(flatten)]
        remote: RemoteArgs,
        /// What to replay.
        #[command(flatten)]
        request: ReplayArgs,
        /// List, show or cancel instead.
        #[command(subcommand)]
        action: Option<ReplayAction>,
    },
}

/// `eventflow bench …`
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// `health` (GET /health/live, the HTTP ceiling), `ingest` (one event per POST), `batch`
    /// (POST /api/v1/events/batch), `e2e` (POST to webhook receipt) or `replay` (a replay of
    /// stored events).
    #[arg(value_enum)]
    pub kind: BenchKind,
    /// Connections sending at once.
    #[arg(long, default_value_t = 16)]
    pub connections: u32,
    /// Seconds to run.
    #[arg(long, default_value_t = 10)]
    pub duration: u64,
    /// Requests per second over all connections (open loop); default: as fast as answered.
    #[arg(long)]
    pub rate: Option<u32>,
    /// Events per batch request.
    #[arg(long, default_value_t = 100)]
    pub batch_size: usize,
    /// Events `replay` stores and then replays.
    #[arg(long, default_value_t = 100_000)]
    pub events: u64,
}

/// What `eventflow bench` loads.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum BenchKind {
    /// GET /health/live: what the server's HTTP layer can answer, the ceiling of `ingest`.
    Health,
    /// Single-event POSTs.
    Ingest,
    /// Batches of events.
    Batch,
    /// POST-to-webhook latency through a receiver of the benchmark's own (open loop at
    /// `--rate`, default 1000 events/s).
    E2e,
    /// A replay of `--events` events stored for it, timed by the server's clock (the server's
    /// REPLAY_RATE paces replays: set it to 0 to measure the replay itself).
    Replay,
}

/// `eventflow replay --stream S --since T [--until T] …`
#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// The stream to replay, such as `events:user`.
    #[arg(long, required = true)]
    pub stream: Option<String>,
    /// Start of the window: an RFC 3339 time (2024-01-01T00:00:00Z) or a duration ago (90m, 24h, 7d).
    #[arg(long, required = true)]
    pub since: Option<String>,
    /// End of the window, in the same forms, or `now` (the default).
    #[arg(long, default_value = "now")]
    pub until: String,
    /// Only these event types (exact or a prefix such as `order.*`); repeat for more.
    #[arg(long = "event-type")]
    pub event_types: Vec<String>,
    /// Only to this subscription.
    #[arg(long)]
    pub subscription: Option<String>,
    /// Only count what would be replayed.
    #[arg(long)]
    pub dry_run: bool,
    /// Print the queued replay and return instead of following it.
    #[arg(long)]
    pub detach: bool,
}

/// `eventflow replay …`
#[derive(Debug, Subcommand)]
pub enum ReplayAction {
    /// Replays, newest first.
    List {
        /// Page size and position.
        #[command(flatten)]
        page: PageArgs,
    },
    /// One replay: status and counts.
    Show {
        /// The replay's id.
        id: String,
    },
    /// Stop a queued or running replay; deliveries it has not made yet are dropped.
    Cancel {
        /// The replay's id.
        id: String,
    },
}

/// Options of the commands that talk to a running EventFlow.
#[derive(Debug, Args)]
pub struct RemoteArgs {
    /// The EventFlow API (default: http://API_HOST:API_PORT, 127.0.0.1 when API_HOST is 0.0.0.0).
    #[arg(long, global = true)]
    pub url: Option<String>,
    /// Print JSON instead of tables.
    #[arg(long, global = true)]
    pub json: bool,
    /// The API key to send (default: EVENTFLOW_API_KEY, else, for a server on this machine, the
    /// first full-access key of API_KEYS).
    #[arg(long, global = true)]
    pub api_key: Option<String>,
}

/// Paging of the listing commands.
#[derive(Debug, Args)]
pub struct PageArgs {
    /// Page size (1 to 1000; the API's default when absent).
    #[arg(long)]
    pub limit: Option<u32>,
    /// Continue after a previous page (its `more: --cursor` hint).
    #[arg(long)]
    pub cursor: Option<String>,
}

impl PageArgs {
    /// The query parameters of the page.
    pub fn query(self) -> [(&'static str, Option<String>); 2] {
        [
            ("limit", self.limit.map(|n| n.to_string())),
            ("cursor", self.cursor),
        ]
    }
}

/// `eventflow events …`
#[derive(Debug, Subcommand)]
pub enum EventsAction {
    /// One event, by id.
    Get {
        /// The event id.
        id: String,
    },
    /// Events, newest first, with the API's filters.
    List {
        /// Exact type, or a prefix such as `order.*`.
        #[arg(long)]
        event_type: Option<String>,
        /// Exact source.
        #[arg(long)]
        source: Option<String>,
        /// Stream, such as `events:user`.
        #[arg(long)]
        stream: Option<String>,
        /// Exact correlation id.
        #[arg(long)]
        correlation_id: Option<String>,
        /// Page size and position.
        #[command(flatten)]
        page: PageArgs,
    },
}

/// `eventflow dlq …`
#[derive(Debug, Subcommand)]
pub enum DlqAction {
    /// Dead letters, oldest first.
    List {
        /// Only `webhook` deliveries or `handler` failures.
        #[arg(long)]
        kind: Option<String>,
        /// Only deliveries to this subscription.
        #[arg(long)]
        subscription: Option<String>,
        /// Page size and position.
        #[command(flatten)]
        page: PageArgs,
    },
    /// One dead letter, whole.
    Show {
        /// The dead letter's id.
        id: String,
    },
    /// Put a dead letter back into processing.
    Retry {
        /// The dead letter's id.
        id: String,
    },
    /// Drop a dead letter for good.
    Delete {
        /// The dead letter's id.
        id: String,
    },
}

/// `eventflow types …`
#[derive(Debug, Subcommand)]
pub enum TypesAction {
    /// Every registered type, with its latest version.
    List,
    /// One type, whole: its latest schema, examples and description.
    Show {
        /// The event type, such as invoice.paid.
        event_type: String,
    },
    /// Register or change the types a JSON or YAML file declares: one type
    /// (`{type, schema, description?, examples?, deprecated?}`), a list of them, or
    /// `{event_types: [...]}`. A changed schema becomes a new version; an unchanged one does not.
    Apply {
        /// The file; `-` for standard input.
        file: String,
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
