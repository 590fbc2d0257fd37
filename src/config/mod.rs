//! Settings from the environment (and `.env`), validated once at start-up.
//!
//! Every variable is described in [`SETTINGS`], which also feeds `eventflow --help` and
//! `.env.example`, so the three can never drift apart.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::Duration;

use crate::api::keys::ApiKeys;

mod parse;
mod settings;

use parse::{Vars, invalid, millis, parse_bool, seconds};
pub use parse::{is_postgres_url, parse_duration, redact_url};
pub use settings::{SETTINGS, Setting, settings_help};

/// A configuration value that cannot be used; the message names the variable and the expected form.
#[derive(Debug, thiserror::Error, PartialEq)]
#[error("invalid configuration: {name}={value:?}: expected {expected}")]
pub struct ConfigError {
    /// The environment variable at fault.
    pub name: &'static str,
    /// The value it had.
    pub value: String,
    /// What a valid value looks like.
    pub expected: String,
}

/// Deployment environment; production is stricter in later features.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppEnv {
    /// Local development.
    Development,
    /// Pre-production.
    Staging,
    /// Production.
    Production,
}

impl AppEnv {
    /// The lower-case name, as in APP_ENV.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Development => "development",
            Self::Staging => "staging",
            Self::Production => "production",
        }
    }
}

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// One JSON object per line, for log shippers.
    Json,
    /// Human-readable lines, for a terminal.
    Console,
}

/// Validated settings for every part of EventFlow.
#[derive(Debug, Clone)]
pub struct Config {
    /// Application name.
    pub app_name: String,
    /// Deployment environment.
    pub app_env: AppEnv,
    /// Debug mode.
    pub debug: bool,
    /// Listen address.
    pub api_host: IpAddr,
    /// Listen port (0 picks a free one).
    pub api_port: u16,
    /// Event store URL.
    pub database_url: String,
    /// PostgreSQL connections each process opens and keeps.
    pub database_pool_size: u32,
    /// Redis Streams broker URL; `None` for the embedded broker.
    pub redis_url: Option<String>,
    /// Tracing filter directive.
    pub log_level: String,
    /// Log format.
    pub log_format: LogFormat,
    /// Group commit size.
    pub batch_size: usize,
    /// Group commit linger for buffered events.
    pub batch_timeout: Duration,
    /// Worker consumer group.
    pub consumer_group: String,
    /// Retries after the first attempt.
    pub max_retries: u32,
    /// First retry delay.
    pub retry_base_delay: Duration,
    /// Longest retry delay.
    pub retry_max_delay: Duration,
    /// Request body limit in bytes.
    pub max_body_bytes: usize,
    /// Batch request length limit.
    pub max_batch_events: usize,
    /// LIVE_STREAM_MAX_CLIENTS.
    pub live_stream_max_clients: usize,
    /// UNKNOWN_EVENT_TYPES: whether events of types not in the schema registry are stored.
    pub unknown_event_types: crate::schemas::UnknownTypes,
    /// DLQ_ALERT_THRESHOLD: dead letters beyond which `eventflow.dlq.threshold_exceeded` is
    /// published; 0 for never.
    pub dlq_alert_threshold: u64,
    /// Stream for types outside the known families.
    pub default_stream: String,
    /// Worker lanes.
    pub worker_concurrency: usize,
    /// Idle time before a pending entry is claimed.
    pub claim_idle: Duration,
    /// Approximate cap on each Redis stream's length.
    pub stream_max_len: usize,
    /// How long events are kept; `None` keeps everything.
    pub retention: Option<Duration>,
    /// Events a second each replay hands to delivery; `None` for as fast as the store allows.
    pub replay_rate: Option<u32>,
    /// Longest window one replay may cover.
    pub replay_max_window: Duration,
    /// How long a connection may take to send a request's headers, or idle between requests.
    pub http_idle_timeout: Duration,
    /// How long receiving a request's body and answering it may take.
    pub http_request_timeout: Duration,
    /// Whether every answered request gets an INFO log line.
    pub access_log: bool,
    /// Who may call the API (API_KEYS); none leaves it open.
    pub api_keys: ApiKeys,
    /// The token `/metrics` asks for (METRICS_API_KEY); none leaves it open.
    pub metrics_api_key: ApiKeys,
    /// Requests a second and burst per API key; `None` for no limit.
    pub rate_limit: Option<(u32, u32)>,
    /// Connect and total timeout of a webhook request.
    pub webhook_timeout: Duration,
    /// Whether webhook URLs may lead to non-public addresses.
    pub webhook_allow_private_networks: bool,
    /// How long a rotated-out webhook secret keeps signing.
    pub rotation_overlap: Duration,
    /// Failures that open a subscription's circuit.
    pub breaker_failure_threshold: u32,
    /// How long an open circuit waits.
    pub breaker_recovery_timeout: Duration,
    /// Trial calls while half-open.
    pub breaker_half_open_max_calls: u32,
}

impl Config {
    /// Reads `.env` (when present) and the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        // A missing .env is normal; a malformed one is reported by the values it leaves unset.
        let _ = dotenvy::dotenv();
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Builds settings from explicit values, defaults for the rest: for tests and embedding.
    pub fn from_map(values: &HashMap<&str, &str>) -> Result<Self, ConfigError> {
        Self::from_lookup(|name| values.get(name).map(|v| v.to_string()))
    }

    /// Builds settings from any variable lookup.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let vars = Vars { lookup: &lookup };
        let database_url = vars.raw("DATABASE_URL");
        let postgres = is_postgres_url(&database_url);
        if !postgres && !database_url.starts_with("sqlite:") {
            return Err(invalid(
                "DATABASE_URL",
                &database_url,
                "sqlite://PATH or postgresql://USER@HOST:PORT/DATABASE",
            ));
        }
        let redis_url = Some(vars.raw("REDIS_URL")).filter(|url| !url.is_empty());
        match &redis_url {
            Some(url) if !url.starts_with("redis://") && !url.starts_with("redis+unix://") => {
                return Err(invalid("REDIS_URL", url, "redis://HOST:PORT[/DB]"));
            }
            None if postgres => {
                return Err(invalid(
                    "REDIS_URL",
                    "",
                    "redis://HOST:PORT: a PostgreSQL event store needs Redis as its broker",
                ));
            }
            _ => {}
        }
        if database_url.contains(":memory:") || database_url.contains("mode=memory") {
            // Every connection would open its own empty database.
            return Err(invalid(
                "DATABASE_URL",
                &database_url,
                "a database file, not :memory:",
            ));
        }
        let debug = vars.parse("DEBUG", "true or false", parse_bool)?;
        let mut log_level = vars.raw("LOG_LEVEL");
        if debug && lookup("LOG_LEVEL").is_none() {
            log_level = "debug".into();
        }
        if tracing_subscriber::EnvFilter::try_new(&log_level).is_err() {
            return Err(invalid(
                "LOG_LEVEL",
                &log_level,
                "error, warn, info, debug, trace, or a filter such as eventflow=debug,sqlx=warn",
            ));
        }
        let mut config = Self {
            app_name: vars.non_empty("APP_NAME")?,
            app_env: vars.parse("APP_ENV", "development, staging or production", |v| match v
                .to_ascii_lowercase()
                .as_str()
            {
                "development" | "dev" => Some(AppEnv::Development),
                "staging" => Some(AppEnv::Staging),
                "production" | "prod" => Some(AppEnv::Production),
                _ => None,
            })?,
            debug,
            api_host: vars.parse("API_HOST", "an IP address such as 0.0.0.0", |v| {
                v.parse().ok()
            })?,
            api_port: vars.parse("API_PORT", "a port number from 0 to 65535", |v| {
                v.parse().ok()
            })?,
            database_url,
            database_pool_size: vars.parse(
                "DATABASE_POOL_SIZE",
                "a whole number from 2 to 1000",
                |v| v.parse().ok().filter(|n| (2..=1000).contains(n)),
            )?,
            redis_url,
            log_level,
            log_format: vars.parse("LOG_FORMAT", "json or console", |v| {
                match v.to_ascii_lowercase().as_str() {
                    "json" => Some(LogFormat::Json),
                    "console" | "text" | "pretty" => Some(LogFormat::Console),
                    _ => None,
                }
            })?,
            batch_size: vars.parse("BATCH_SIZE", "a whole number from 1 to 10000", |v| {
                v.parse().ok().filter(|n| (1..=10_000).contains(n))
            })?,
            batch_timeout: vars.parse("BATCH_TIMEOUT_MS", "milliseconds from 1 to 60000", |v| {
                millis(v, 1, 60_000)
            })?,
            consumer_group: vars.non_empty("CONSUMER_GROUP")?,
            max_retries: vars.parse("MAX_RETRIES", "a whole number from 0 to 100", |v| {
                v.parse().ok().filter(|n| *n <= 100)
            })?,
            retry_base_delay: vars.parse(
                "RETRY_BASE_DELAY",
                "seconds, such as 1.0 or 0.25",
                seconds,
            )?,
            retry_max_delay: vars.parse("RETRY_MAX_DELAY", "seconds, such as 60.0", seconds)?,
            max_body_bytes: vars.parse("MAX_BODY_BYTES", "bytes from 1024 to 104857600", |v| {
                v.parse()
                    .ok()
                    .filter(|n| (1024..=100 * 1024 * 1024).contains(n))
            })?,
            max_batch_events: vars.parse(
                "MAX_BATCH_EVENTS",
                "a whole number from 1 to 100000",
                |v| v.parse().ok().filter(|n| (1..=100_000).contains(n)),
            )?,
            live_stream_max_clients: vars.parse(
                "LIVE_STREAM_MAX_CLIENTS",
                "a whole number from 1 to 100000",
                |v| v.parse().ok().filter(|n| (1..=100_000).contains(n)),
            )?,
            unknown_event_types: vars.parse(
                "UNKNOWN_EVENT_TYPES",
                "accept or reject",
                |v| match v.to_ascii_lowercase().as_str() {
                    "accept" => Some(crate::schemas::UnknownTypes::Accept),
                    "reject" => Some(crate::schemas::UnknownTypes::Reject),
                    _ => None,
                },
            )?,
            dlq_alert_threshold: vars.parse(
                "DLQ_ALERT_THRESHOLD",
                "a whole number from 0 (never) to 1000000000",
                |v| v.parse().ok().filter(|n| *n <= 1_000_000_000),
            )?,
            default_stream: vars.parse(
                "DEFAULT_STREAM",
                "a stream name starting with events:",
                |v| (v.starts_with("events:") && v.len() > "events:".len()).then(|| v.to_string()),
            )?,
            worker_concurrency: vars.parse(
                "WORKER_CONCURRENCY",
                "a whole number from 1 to 1024",
                |v| v.parse().ok().filter(|n| (1..=1024).contains(n)),
            )?,
            claim_idle: vars.parse("CLAIM_IDLE_MS", "milliseconds from 100 to 86400000", |v| {
                millis(v, 100, 86_400_000)
            })?,
            stream_max_len: vars.parse(
                "STREAM_MAX_LEN",
                "a whole number from 1000 to 1000000000",
                |v| {
                    v.parse()
                        .ok()
                        .filter(|n| (1000..=1_000_000_000).contains(n))
                },
            )?,
            retention: vars.parse(
                "RETENTION_DAYS",
                "a whole number of days from 0 to 36500",
                |v| {
                    let days: u64 = v.parse().ok().filter(|d| *d <= 36_500)?;
                    Some((days > 0).then(|| Duration::from_secs(days * 86_400)))
                },
            )?,
            replay_rate: vars.parse(
                "REPLAY_RATE",
                "a whole number of events per second from 0 to 1000000",
                |v| {
                    let rate: u32 = v.parse().ok().filter(|r| *r <= 1_000_000)?;
                    Some((rate > 0).then_some(rate))
                },
            )?,
            replay_max_window: vars.parse(
                "REPLAY_MAX_WINDOW",
                "a duration of at least 1s, such as 3600, 90m, 24h or 7d",
                |v| parse_duration(v).filter(|d| !d.is_zero()),
            )?,
            webhook_timeout: vars.parse(
                "WEBHOOK_TIMEOUT_MS",
                "milliseconds from 100 to 300000",
                |v| millis(v, 100, 300_000),
            )?,
            webhook_allow_private_networks: false,
            http_idle_timeout: vars.parse(
                "HTTP_IDLE_TIMEOUT",
                "seconds from 0.1 to 86400, such as 30",
                |v| seconds(v).filter(|d| *d >= Duration::from_millis(100)),
            )?,
            http_request_timeout: vars.parse(
                "HTTP_REQUEST_TIMEOUT",
                "seconds from 0.1 to 86400, such as 30",
                |v| seconds(v).filter(|d| *d >= Duration::from_millis(100)),
            )?,
            access_log: vars.parse("ACCESS_LOG", "true or false", parse_bool)?,
            rotation_overlap: vars.parse(
                "ROTATION_OVERLAP",
                "a duration up to 30d, such as 3600, 90m, 24h or 0",
                |v| parse_duration(v).filter(|d| d.as_secs() <= 30 * 86_400),
            )?,
            api_keys: ApiKeys::parse(&vars.raw("API_KEYS")).map_err(|err| {
                invalid("API_KEYS", "<hidden>", &format!("a list of keys ({err})"))
            })?,
            metrics_api_key: match vars.raw("METRICS_API_KEY").trim() {
                "" => ApiKeys::default(),
                key => ApiKeys::single("metrics", key),
            },
            rate_limit: None,
            breaker_failure_threshold: vars.parse(
                "BREAKER_FAILURE_THRESHOLD",
                "a whole number from 1 to 1000",
                |v| v.parse().ok().filter(|n| (1..=1000).contains(n)),
            )?,
            breaker_recovery_timeout: vars.parse(
                "BREAKER_RECOVERY_TIMEOUT",
                "seconds, such as 30.0",
                seconds,
            )?,
            breaker_half_open_max_calls: vars.parse(
                "BREAKER_HALF_OPEN_MAX_CALLS",
                "a whole number from 1 to 1000",
                |v| v.parse().ok().filter(|n| (1..=1000).contains(n)),
            )?,
        };
        let per_second = vars.parse(
            "RATE_LIMIT_PER_SEC",
            "a whole number of requests per second from 0 to 1000000",
            |v| v.parse::<u32>().ok().filter(|n| *n <= 1_000_000),
        )?;
        if per_second > 0 {
            let burst = match vars.raw("RATE_LIMIT_BURST").trim() {
                "" => per_second.saturating_mul(2),
                _ => vars.parse(
                    "RATE_LIMIT_BURST",
                    "a whole number of requests from 1 to 10000000",
                    |v| {
                        v.parse::<u32>()
                            .ok()
                            .filter(|n| (1..=10_000_000).contains(n))
                    },
                )?,
            };
            config.rate_limit = Some((per_second, burst));
        }
        if config.app_env == AppEnv::Production && config.api_keys.is_empty() {
            return Err(invalid(
                "API_KEYS",
                "",
                "at least one key when APP_ENV=production (the API would be open to anyone)",
            ));
        }
        // Private networks are open to webhooks in development unless the variable says otherwise.
        config.webhook_allow_private_networks =
            match vars.raw("WEBHOOK_ALLOW_PRIVATE_NETWORKS").trim() {
                "" => config.app_env == AppEnv::Development,
                _ => vars.parse(
                    "WEBHOOK_ALLOW_PRIVATE_NETWORKS",
                    "true or false",
                    parse_bool,
                )?,
            };
        if config.retry_base_delay > config.retry_max_delay {
            return Err(invalid(
                "RETRY_BASE_DELAY",
                &vars.raw("RETRY_BASE_DELAY"),
                "at most RETRY_MAX_DELAY",
            ));
        }
        Ok(config)
    }

    /// The socket address the API binds.
    pub fn listen_addr(&self) -> std::net::SocketAddr {
        (self.api_host, self.api_port).into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        let config = Config::from_map(&HashMap::new()).expect("defaults");
        assert_eq!(config.batch_size, 100);
        assert_eq!(config.batch_timeout, Duration::from_millis(1000));
        assert_eq!(config.consumer_group, "eventflow-workers");
        assert_eq!(config.retry_base_delay, Duration::from_secs(1));
        assert_eq!(config.api_port, 8000);
    }

    #[test]
    fn private_webhook_targets_follow_the_environment_unless_set() {
        let allowed = |pairs: &[(&str, &str)]| {
            Config::from_map(&pairs.iter().copied().collect())
                .unwrap()
                .webhook_allow_private_networks
        };
        assert!(allowed(&[]));
        assert!(!allowed(&[("APP_ENV", "production"), ("API_KEYS", "k")]));
        assert!(allowed(&[
            ("APP_ENV", "staging"),
            ("WEBHOOK_ALLOW_PRIVATE_NETWORKS", "true")
        ]));
        assert!(!allowed(&[("WEBHOOK_ALLOW_PRIVATE_NETWORKS", "false")]));
    }

    #[test]
    fn production_needs_api_keys_and_a_bad_list_is_refused_without_showing_it() {
        let err = Config::from_map(&HashMap::from([("APP_ENV", "production")])).unwrap_err();
        assert_eq!(err.name, "API_KEYS");
        assert!(err.to_string().contains("APP_ENV=production"), "{err}");
        let keys = [
            ("APP_ENV", "production"),
            ("API_KEYS", "ops=sk_live_1[root]"),
        ];
        let err = Config::from_map(&keys.into_iter().collect()).unwrap_err();
        assert_eq!(err.name, "API_KEYS");
        assert!(!err.to_string().contains("sk_live_1"), "{err}");
        let keys = [("APP_ENV", "production"), ("API_KEYS", "sk_live_1")];
        let config = Config::from_map(&keys.into_iter().collect()).unwrap();
        assert!(config.api_keys.find("sk_live_1").is_some());
        assert!(
            !format!("{config:?}").contains("sk_live_1"),
            "Debug hides keys"
        );
    }

    #[test]
    fn rate_limits_default_their_burst_to_twice_the_rate() {
        let limited = |pairs: &[(&str, &str)]| {
            Config::from_map(&pairs.iter().copied().collect())
                .unwrap()
                .rate_limit
        };
        assert_eq!(limited(&[]), None);
        assert_eq!(limited(&[("RATE_LIMIT_PER_SEC", "50")]), Some((50, 100)));
        assert_eq!(
            limited(&[("RATE_LIMIT_PER_SEC", "50"), ("RATE_LIMIT_BURST", "5")]),
            Some((50, 5))
        );
    }

    #[test]
    fn durations_are_seconds_or_a_number_with_a_unit() {
        assert_eq!(parse_duration("3600"), Some(Duration::from_secs(3600)));
        assert_eq!(parse_duration("45s"), Some(Duration::from_secs(45)));
        assert_eq!(parse_duration("90m"), Some(Duration::from_secs(5400)));
        assert_eq!(parse_duration("24h"), Some(Duration::from_secs(86_400)));
        assert_eq!(parse_duration("7d"), Some(Duration::from_secs(604_800)));
        for bad in [
            "",
            "d",
            "1.5h",
            "-1h",
            "7 days",
            "1w",
            "99999999999999999999d",
        ] {
            assert_eq!(parse_duration(bad), None, "{bad:?}");
        }
        let config = Config::from_map(&HashMap::from([("REPLAY_RATE", "0")])).unwrap();
        assert_eq!(config.replay_rate, None);
        assert_eq!(config.replay_max_window, Duration::from_secs(7 * 86_400));
    }

    #[test]
    fn bad_value_names_the_variable_and_form() {
        let err = Config::from_map(&HashMap::from([("BATCH_SIZE", "lots")])).unwrap_err();
        assert_eq!(err.name, "BATCH_SIZE");
        assert_eq!(
            err.to_string(),
            "invalid configuration: BATCH_SIZE=\"lots\": expected a whole number from 1 to 10000"
        );
    }

    #[test]
    fn inconsistent_or_unusable_values_are_refused() {
        for (name, value) in [
            ("LOG_LEVEL", "loud=[["),
            ("DATABASE_URL", "sqlite::memory:"),
            ("DATABASE_URL", "mysql://localhost/eventflow"),
            ("REDIS_URL", "localhost:6379"),
            ("STREAM_MAX_LEN", "10"),
            ("RETRY_BASE_DELAY", "90"),
            ("API_HOST", "localhost:80"),
        ] {
            let err = Config::from_map(&HashMap::from([(name, value)])).unwrap_err();
            assert_eq!(err.name, name, "{value}");
        }
    }

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(
            redact_url("postgresql://app:s3cret@db:5432/eventflow"),
            "postgresql://app:***@db:5432/eventflow"
        );
        assert_eq!(redact_url("sqlite://eventflow.db"), "sqlite://eventflow.db");
        assert_eq!(
            redact_url("redis://:p@ss@cache:6379"),
            "redis://:***@cache:6379"
        );
        let err = Config::from_map(&HashMap::from([("REDIS_URL", "rediss://:hunter2@cache")]))
            .unwrap_err();
        assert!(!err.to_string().contains("hunter2"), "{err}");
    }

    #[test]
    fn postgres_needs_redis() {
        let postgres = ("DATABASE_URL", "postgresql://localhost/eventflow");
        let err = Config::from_map(&HashMap::from([postgres])).unwrap_err();
        assert_eq!(err.name, "REDIS_URL");
        let config = Config::from_map(&HashMap::from([
            postgres,
            ("REDIS_URL", "redis://127.0.0.1:6379"),
        ]))
        .unwrap();
        assert_eq!(config.redis_url.as_deref(), Some("redis://127.0.0.1:6379"));
    }

    #[test]
    fn fractional_retry_delay_is_accepted() {
        let config = Config::from_map(&HashMap::from([("RETRY_BASE_DELAY", "0.25")])).unwrap();
        assert_eq!(config.retry_base_delay, Duration::from_millis(250));
    }

    #[test]
    fn debug_lowers_default_log_level_only() {
        let config = Config::from_map(&HashMap::from([("DEBUG", "true")])).unwrap();
        assert_eq!(config.log_level, "debug");
        let config =
            Config::from_map(&HashMap::from([("DEBUG", "true"), ("LOG_LEVEL", "warn")])).unwrap();
        assert_eq!(config.log_level, "warn");
    }
}
