//! The table of every environment variable EventFlow reads: the one list that feeds
//! `eventflow --help`, `.env.example` and the README's configuration table (a test keeps the
//! last two in step with it).

/// One environment variable EventFlow reads: its name, default and meaning.
pub struct Setting {
    /// Environment variable name.
    pub name: &'static str,
    /// Default when unset (empty: unset means "off" or "not used").
    pub default: &'static str,
    /// What it controls.
    pub description: &'static str,
}

/// Every variable EventFlow reads, in the order of the README's configuration table.
pub const SETTINGS: &[Setting] = &[
    Setting {
        name: "APP_NAME",
        default: "eventflow",
        description: "Application name, shown in logs and /health",
    },
    Setting {
        name: "APP_ENV",
        default: "development",
        description: "Environment: development, staging or production",
    },
    Setting {
        name: "DEBUG",
        default: "false",
        description: "Debug mode: lowers the default log level to debug",
    },
    Setting {
        name: "API_HOST",
        default: "127.0.0.1",
        description: "Address the HTTP API listens on (0.0.0.0 for all interfaces)",
    },
    Setting {
        name: "API_PORT",
        default: "8000",
        description: "Port the HTTP API listens on (a worker process: its health probes and metrics)",
    },
    Setting {
        name: "HTTP_IDLE_TIMEOUT",
        default: "30",
        description: "Seconds a connection may take to send a request's headers, or stay idle between requests, before it is closed",
    },
    Setting {
        name: "HTTP_REQUEST_TIMEOUT",
        default: "30",
        description: "Seconds to receive a request's body and answer it (408 beyond)",
    },
    Setting {
        name: "API_KEYS",
        default: "",
        description: "API keys, comma-separated: KEY, NAME=KEY or NAME=KEY[SCOPE+SCOPE] with scopes events:write, events:read, admin (required with APP_ENV=production; unset: the API is open)",
    },
    Setting {
        name: "METRICS_API_KEY",
        default: "",
        description: "Bearer token /metrics asks for (unset: /metrics is open)",
    },
    Setting {
        name: "RATE_LIMIT_PER_SEC",
        default: "0",
        description: "Requests per second each API key may make (0: no limit)",
    },
    Setting {
        name: "RATE_LIMIT_BURST",
        default: "",
        description: "Requests an API key may make at once above its rate (default: twice RATE_LIMIT_PER_SEC)",
    },
    Setting {
        name: "DATABASE_URL",
        default: "sqlite://eventflow.db",
        description: "Event store: sqlite://PATH (embedded, WAL) or postgresql://USER@HOST:PORT/DB",
    },
    Setting {
        name: "DATABASE_POOL_SIZE",
        default: "16",
        description: "PostgreSQL connections each process opens and keeps (a fixed-size pool); unused with SQLite",
    },
    Setting {
        name: "REDIS_URL",
        default: "",
        description: "Broker: redis://HOST:PORT for Redis Streams (required with PostgreSQL); unset for the embedded broker in the SQLite file",
    },
    Setting {
        name: "LOG_LEVEL",
        default: "info",
        description: "Log level or tracing filter (error, warn, info, debug, trace)",
    },
    Setting {
        name: "LOG_FORMAT",
        default: "json",
        description: "Log format: json or console",
    },
    Setting {
        name: "ACCESS_LOG",
        default: "true",
        description: "One INFO log line per answered request (method, route, status, latency, correlation id, key name); false turns it off",
    },
    Setting {
        name: "BATCH_SIZE",
        default: "100",
        description: "Most events committed in one group commit",
    },
    Setting {
        name: "BATCH_TIMEOUT_MS",
        default: "1000",
        description: "Longest a buffered (library enqueue) event waits for its group commit",
    },
    Setting {
        name: "CONSUMER_GROUP",
        default: "eventflow-workers",
        description: "Consumer group the workers join",
    },
    Setting {
        name: "MAX_RETRIES",
        default: "3",
        description: "Retries after the first failed attempt before an event is dead-lettered",
    },
    Setting {
        name: "RETRY_BASE_DELAY",
        default: "1.0",
        description: "First retry delay in seconds (fractions allowed); doubles each retry",
    },
    Setting {
        name: "RETRY_MAX_DELAY",
        default: "60.0",
        description: "Longest retry delay in seconds",
    },
    Setting {
        name: "MAX_BODY_BYTES",
        default: "1048576",
        description: "Largest request body accepted; larger is 413",
    },
    Setting {
        name: "MAX_BATCH_EVENTS",
        default: "1000",
        description: "Most events in one batch request",
    },
    Setting {
        name: "LIVE_STREAM_MAX_CLIENTS",
        default: "256",
        description: "Live streams (GET /api/v1/events/stream) open at once per API process; more get 503",
    },
    Setting {
        name: "UNKNOWN_EVENT_TYPES",
        default: "accept",
        description: "accept: events of types not in the schema registry are stored unchecked; reject: they are refused with 422",
    },
    Setting {
        name: "DLQ_ALERT_THRESHOLD",
        default: "1000",
        description: "Dead letters beyond which eventflow.dlq.threshold_exceeded is published (once, until the queue is back at or below it); 0 for never",
    },
    Setting {
        name: "DEFAULT_STREAM",
        default: "events:default",
        description: "Stream for event types outside the user/system/business/analytics families",
    },
    Setting {
        name: "WORKER_CONCURRENCY",
        default: "32",
        description: "Events a worker processes at once (one lane per partition key hash)",
    },
    Setting {
        name: "CLAIM_IDLE_MS",
        default: "30000",
        description: "Idle time after which another consumer claims a pending entry",
    },
    Setting {
        name: "STREAM_MAX_LEN",
        default: "1000000",
        description: "Approximate cap on each Redis stream's length (XADD MAXLEN ~); the store keeps every event",
    },
    Setting {
        name: "RETENTION_DAYS",
        default: "30",
        description: "Days events are kept after they are stored (with their deliveries, dead letters and stream entries); 0 keeps everything",
    },
    Setting {
        name: "REPLAY_RATE",
        default: "1000",
        description: "Events per second each replay hands to delivery (0: as fast as the store allows)",
    },
    Setting {
        name: "REPLAY_MAX_WINDOW",
        default: "7d",
        description: "Longest time window one replay may cover (seconds, or with a unit: 90m, 24h, 7d)",
    },
    Setting {
        name: "WEBHOOK_TIMEOUT_MS",
        default: "10000",
        description: "Connect and total timeout of one webhook request",
    },
    Setting {
        name: "WEBHOOK_ALLOW_PRIVATE_NETWORKS",
        default: "",
        description: "Allow webhook URLs on loopback, private and link-local addresses (default: only with APP_ENV=development)",
    },
    Setting {
        name: "ROTATION_OVERLAP",
        default: "24h",
        description: "How long a rotated-out webhook secret keeps signing deliveries next to the new one (seconds, or 90m, 24h, 7d; 0: not at all)",
    },
    Setting {
        name: "BREAKER_FAILURE_THRESHOLD",
        default: "5",
        description: "Consecutive failed deliveries that open a subscription's circuit breaker",
    },
    Setting {
        name: "BREAKER_RECOVERY_TIMEOUT",
        default: "30.0",
        description: "Seconds an open circuit waits before trial deliveries",
    },
    Setting {
        name: "BREAKER_HALF_OPEN_MAX_CALLS",
        default: "3",
        description: "Trial deliveries at once while half-open; that many successes close the circuit",
    },
];

/// The `--help` appendix: every variable with its default.
pub fn settings_help() -> String {
    let mut text = String::from("Environment variables (also read from .env):\n");
    for setting in SETTINGS {
        let default = if setting.default.is_empty() {
            "unset"
        } else {
            setting.default
        };
        text.push_str(&format!(
            "  {:<20} {} [default: {}]\n",
            setting.name, setting.description, default
        ));
    }
    text
}

#[cfg(test)]
mod documentation_tests {
    use super::SETTINGS;

    #[test]
    fn every_setting_is_documented_in_env_example_and_readme() {
        let env_example = include_str!("../../.env.example");
        let readme = include_str!("../../README.md");
        for setting in SETTINGS {
            assert!(
                env_example.contains(&format!("{}=", setting.name)),
                "{} missing from .env.example",
                setting.name
            );
            assert!(
                readme.contains(&format!("| `{}` |", setting.name)),
                "{} missing from README",
                setting.name
            );
        }
    }
}
