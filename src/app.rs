//! Wiring: opens the backends, starts the API, producer and worker a process's role asks for,
//! and shuts them down in order (stop accepting, commit what was accepted, finish in-flight
//! events, close the store).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::api::{self, Access, ApiContext, Probes, RateLimiter, RequestLimits};
use crate::broker::{Broker, BrokerError, EmbeddedBroker, RedisBroker};
use crate::config::{Config, is_postgres_url, redact_url};
use crate::delivery::{
    DeliveryStore, Dispatcher, DispatcherSettings, DispatcherTasks, SubscriptionDirectory,
    WebhookFanout,
};
use crate::events::StreamRouter;
use crate::insights::{CountStore, Tally, sample_dead_letters};
use crate::observability::metrics;
use crate::operations::{Operations, watch_dead_letters};
use crate::producer::{Producer, ProducerSettings};
use crate::reliability::{BreakerBoard, BreakerConfig, RetryConfig};
use crate::replay::{ReplayRunner, ReplayStore, ReplayTasks};
use crate::retention::Retention;
use crate::schemas::{EventTypeStore, SchemaRegistry, register_built_in};
use crate::sqlite::SqliteDb;
use crate::store::{EventStore, PgStore, SqliteStore};
use crate::worker::{Handler, Worker, WorkerSettings, consumer_name};

/// How often a worker counts the dead letters, for DLQ_ALERT_THRESHOLD.
const DEAD_LETTER_CHECK: Duration = Duration::from_secs(5);
/// Entries a worker reads at once.
const READ_COUNT: usize = 256;
/// First and longest pause between schema upgrade attempts while the database is unreachable.
const SCHEMA_RETRY: (Duration, Duration) = (Duration::from_millis(500), Duration::from_secs(10));

/// Why EventFlow could not start or stopped with an error (the cause is the error's source).
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// The event store could not be opened or its schema brought up to date.
    #[error("cannot open the event store at {url}")]
    Store {
        /// DATABASE_URL, without its password.
        url: String,
        /// The cause.
        source: sqlx::Error,
    },
    /// The broker's URL is unusable.
    #[error("cannot use the broker")]
    Broker(#[source] BrokerError),
    /// The API address could not be bound.
    #[error("cannot listen on {addr}")]
    Bind {
        /// API_HOST:API_PORT.
        addr: SocketAddr,
        /// The cause.
        source: std::io::Error,
    },
    /// The HTTP client for webhooks could not be built.
    #[error("cannot set up the webhook HTTP client")]
    WebhookClient(#[source] reqwest::Error),
    /// The HTTP server failed.
    #[error("HTTP server error")]
    Serve(#[source] std::io::Error),
    /// A task of this process panicked.
    #[error("{part} panicked")]
    Panicked {
        /// Which part.
        part: &'static str,
        /// The panic.
        source: tokio::task::JoinError,
    },
}

/// Which parts a process runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Role {
    /// The HTTP API and the producer.
    pub api: bool,
    /// A consumer-group worker.
    pub worker: bool,
}

/// The store and broker chosen by configuration.
pub struct Backends {
    /// The event store.
    pub store: Arc<dyn EventStore>,
    /// Subscriptions, delivery jobs and dead letters, in the same database.
    pub deliveries: Arc<dyn DeliveryStore>,
    /// Replay jobs, in the same database.
    pub replays: Arc<dyn ReplayStore>,
    /// The schema registry, in the same database.
    pub event_types: Arc<dyn EventTypeStore>,
    /// The insights' counts, in the same database.
    pub counts: Arc<dyn CountStore>,
    /// The broker.
    pub broker: Arc<dyn Broker>,
    database: Database,
    database_url: String,
}

/// The database behind the store, for schema upgrades and closing.
enum Database {
    Sqlite(SqliteDb),
    Postgres(PgStore),
}

impl Backends {
    /// Opens the backends of `config`. An SQLite file is opened and its schema brought up to date
    /// at once; PostgreSQL and Redis are connected on first use (see [`Backends::upgrade_schema`]).
    pub async fn open(config: &Config) -> Result<Self, AppError> {
        let database_url = redact_url(&config.database_url);
        let store_error = |source| AppError::Store {
            url: database_url.clone(),
            source,
        };
        let redis = config
            .redis_url
            .as_deref()
            .map(|url| RedisBroker::connect_lazy(url, config.stream_max_len))
            .transpose()
            .map_err(AppError::Broker)?;
        if is_postgres_url(&config.database_url) {
            let store = PgStore::connect_lazy(&config.database_url, config.database_pool_size)
                .map_err(store_error)?;
            let broker = redis.ok_or_else(|| {
                store_error(sqlx::Error::Configuration(
                    "a PostgreSQL event store needs REDIS_URL".into(),
                ))
            })?;
            let database = Database::Postgres(store.clone());
            return Ok(Self::assemble(store, broker, database, database_url));
        }
        let db = SqliteDb::open(&config.database_url)
            .await
            .map_err(store_error)?;
        let database = Database::Sqlite(db.clone());
        Ok(match redis {
            Some(broker) => Self::assemble(SqliteStore::new(db), broker, database, database_url),
            None => {
                // Store and broker share the file: each event is streamed in its append
                // transaction.
                let broker = EmbeddedBroker::new(db.clone());
                let store = SqliteStore::streaming_to(db, broker.clone());
                Self::assemble(store, broker, database, database_url)
            }
        })
    }

    /// The backends of one store (events and deliveries in one database) and a broker.
    fn assemble<S, B>(store: S, broker: B, database: Database, database_url: String) -> Self
    where
        S: EventStore + DeliveryStore + ReplayStore + EventTypeStore + CountStore + Clone,
        B: Broker,
    {
        Self {
            store: Arc::new(store.clone()),
            deliveries: Arc::new(store.clone()),
            replays: Arc::new(store.clone()),
            event_types: Arc::new(store.clone()),
            counts: Arc::new(store),
            broker: Arc::new(broker),
            database,
            database_url,
        }
    }

    /// Brings the store's schema up to date (versioned, idempotent migrations).
    pub async fn upgrade_schema(&self) -> Result<(), AppError> {
        match &self.database {
            // Migrated when opened.
            Database::Sqlite(_) => Ok(()),
            Database::Postgres(store) => store.migrate().await.map_err(|err| AppError::Store {
                url: self.database_url.clone(),
                source: match err {
                    sqlx::migrate::MigrateError::Execute(source)
                    | sqlx::migrate::MigrateError::ExecuteMigration(source, _) => source,
                    other => sqlx::Error::Migrate(Box::new(other)),
                },
            }),
        }
    }

    /// Upgrades the schema, or, while the database cannot be reached, keeps trying in the
    /// background so that the process serves (503 until then) and recovers by itself.
    async fn upgrade_schema_or_retry(
        self: &Arc<Self>,
        shutdown: CancellationToken,
    ) -> Result<(), AppError> {
        match self.upgrade_schema().await {
            Err(AppError::Store { source, .. }) if crate::store::is_transient(&source) => {
                tracing::warn!(error = %source, "event store unreachable; upgrading its schema once it answers");
                let backends = self.clone();
                tokio::spawn(async move {
                    let mut pause = SCHEMA_RETRY.0;
                    loop {
                        tokio::select! {
                            _ = tokio::time::sleep(pause) => {}
                            _ = shutdown.cancelled() => return,
                        }
                        match backends.upgrade_schema().await {
                            Ok(()) => {
                                tracing::info!("event store schema is up to date");
                                return;
                            }
                            Err(err) => {
                                let cause = std::error::Error::source(&err)
                                    .map(ToString::to_string)
                                    .unwrap_or_default();
                                tracing::warn!(error = %err, cause, "schema upgrade failed; retrying")
                            }
                        }
                        pause = (pause * 2).min(SCHEMA_RETRY.1);
                    }
                });
                Ok(())
            }
            other => other,
        }
    }

    /// The retention policy keeping `keep` of these backends' data, on every stream of events.
    pub fn retention(&self, keep: Duration, default_stream: &str) -> Retention {
        Retention {
            store: self.store.clone(),
            deliveries: self.deliveries.clone(),
            broker: self.broker.clone(),
            streams: StreamRouter::new(default_stream).all_streams(),
            keep,
        }
    }

    /// Closes connections.
    pub async fn close(&self) {
        match &self.database {
            Database::Sqlite(db) => db.close().await,
            Database::Postgres(store) => store.close().await,
        }
    }
}

/// A started EventFlow process.
pub struct Running {
    /// Where the HTTP server listens: the API, or a worker process's probes and metrics.
    pub addr: SocketAddr,
    /// The producer behind the API, for in-process producers (when this process runs the API).
    pub producer: Option<Producer>,
    shutdown: CancellationToken,
    task: JoinHandle<Result<(), AppError>>,
}

impl Running {
    /// Cancelling this token shuts the process down gracefully.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// Waits until the process has shut down (after the token is cancelled).
    pub async fn wait(self) -> Result<(), AppError> {
        match self.task.await {
            Ok(result) => result,
            Err(err) => {
                tracing::error!(error = %err, "EventFlow task failed");
                Ok(())
            }
        }
    }

    /// Shuts down gracefully and waits for it.
    pub async fn stop(self) -> Result<(), AppError> {
        self.shutdown.cancel();
        self.wait().await
    }
}

/// Starts the parts of `role`, with `handlers` run by the worker on every event.
pub async fn start(
    config: &Config,
    role: Role,
    handlers: Vec<Arc<dyn Handler>>,
) -> Result<Running, AppError> {
    let backends = Arc::new(Backends::open(config).await?);
    let shutdown = CancellationToken::new();
    backends.upgrade_schema_or_retry(shutdown.clone()).await?;
    // The producer stops only after the API has answered every request it accepted.
    let producer_stop = CancellationToken::new();
    let router = StreamRouter::new(config.default_stream.clone());

    let directory = Arc::new(SubscriptionDirectory::new(backends.deliveries.clone()));
    let breakers = BreakerBoard::new(BreakerConfig {
        failure_threshold: config.breaker_failure_threshold,
        recovery_timeout: config.breaker_recovery_timeout,
        half_open_max_calls: config.breaker_half_open_max_calls,
    });
    let probes = Probes {
        app_name: config.app_name.clone(),
        app_env: config.app_env,
        store: backends.store.clone(),
        broker: backends.broker.clone(),
        metrics: metrics::install(),
        runs_worker: role.worker,
        metrics_key: Arc::new(config.metrics_api_key.clone()),
    };
    let limits = RequestLimits {
        max_body_bytes: config.max_body_bytes,
        timeout: config.http_request_timeout,
        access_log: config.access_log,
    };
    // Counts are taken until the producer has stopped; then they are added to the store.
    let tally_stop = CancellationToken::new();
    let (counts, count_flusher) = Tally::spawn(backends.counts.clone(), tally_stop.clone());
    // Every process has a producer: the API's events, and every process's operational events.
    let (producer, producer_tasks) = Producer::spawn(
        backends.store.clone(),
        backends.broker.clone(),
        Some(directory.clone()),
        ProducerSettings {
            batch_size: config.batch_size,
            batch_timeout: config.batch_timeout,
            counts: counts.clone(),
        },
        producer_stop.clone(),
    );
    // The reporter stops once the worker and the API no longer report, before the producer.
    let reporter_stop = CancellationToken::new();
    let (operations, reporter) = Operations::spawn(
        producer.clone(),
        backends.deliveries.clone(),
        directory.clone(),
        reporter_stop.clone(),
    );
    // An API process serves the API (and enforces the schema registry, loaded before it serves);
    // a worker process its health probes and metrics.
    let app = if role.api {
        let schemas = Arc::new(SchemaRegistry::new(
            backends.event_types.clone(),
            config.unknown_event_types,
            counts.clone(),
        ));
        match register_built_in(backends.event_types.as_ref()).await {
            Ok(registered) if !registered.is_empty() => {
                tracing::info!(event_types = ?registered, "registered the built-in event types");
            }
            Ok(_) => {}
            Err(err) => tracing::warn!(error = %err, "cannot register the built-in event types"),
        }
        if let Err(err) = schemas.reload().await {
            tracing::warn!(error = %err, "cannot load the event types yet; they load on first use");
        }
        schemas.clone().spawn_refresh(shutdown.clone());
        metrics::register_ingest(&router.all_streams(), &api::documented_routes());
        let ctx = ApiContext {
            producer: producer.clone(),
            operations: operations.clone(),
            event_types: backends.event_types.clone(),
            schemas: schemas.clone(),
            counts: backends.counts.clone(),
            store: backends.store.clone(),
            deliveries: backends.deliveries.clone(),
            replays: backends.replays.clone(),
            replay_max_window: config.replay_max_window,
            rotation_overlap: config.rotation_overlap,
            broker: backends.broker.clone(),
            directory: directory.clone(),
            router: router.clone(),
            consumer_group: config.consumer_group.clone(),
            breakers: breakers.clone(),
            live_streams: Arc::new(tokio::sync::Semaphore::new(config.live_stream_max_clients)),
            shutdown: shutdown.clone(),
            max_batch_events: config.max_batch_events,
            allow_private_webhooks: config.webhook_allow_private_networks,
        };
        let access = Access {
            keys: config.api_keys.clone(),
            limiter: config
                .rate_limit
                .map(|(per_second, burst)| RateLimiter::new(per_second, burst)),
        };
        if access.keys.is_empty() {
            tracing::warn!(
                "API_KEYS is not set: the API is open to anyone who can reach it (allowed outside production)"
            );
        }
        api::router(ctx, access, probes, limits)
    } else {
        api::probe_router(probes, limits)
    };
    let listen = config.listen_addr();
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|source| AppError::Bind {
            addr: listen,
            source,
        })?;
    let addr = listener.local_addr().map_err(AppError::Serve)?;
    tracing::info!(%addr, api = role.api, "listening");
    let http_task = tokio::spawn(crate::server::serve(
        listener,
        app,
        config.http_idle_timeout,
        shutdown.clone(),
    ));

    // Workers keep storage bounded (every worker may; the batches do not conflict).
    let retention = config.retention.filter(|_| role.worker).map(|keep| {
        backends
            .retention(keep, &config.default_stream)
            .spawn(shutdown.clone())
    });
    let worker = if role.worker {
        let started = start_worker(
            config,
            &backends,
            Shared {
                directory,
                breakers,
                operations,
                counts,
            },
            handlers,
            &router,
            &shutdown,
        );
        // Without its worker the process must not run on: stop the server just started.
        Some(started.inspect_err(|_| shutdown.cancel())?)
    } else {
        None
    };

    let task = tokio::spawn(async move {
        let mut result = match http_task.await {
            Ok(()) => Ok(()),
            Err(source) => Err(AppError::Panicked {
                part: "the HTTP server",
                source,
            }),
        };
        if let Some(tasks) = worker {
            if let Err(source) = tasks.worker.await {
                result = result.and(Err(AppError::Panicked {
                    part: "the worker",
                    source,
                }));
            }
            tasks.replays.finished().await;
            tasks.dispatcher.finished().await;
            if let Some(watch) = tasks.dead_letter_watch {
                watch.await.ok();
            }
            tasks.dead_letter_samples.await.ok();
        }
        reporter_stop.cancel();
        reporter.finished().await;
        producer_stop.cancel();
        producer_tasks.finished().await;
        tally_stop.cancel();
        count_flusher.finished().await;
        if let Some(retention) = retention {
            retention.await.ok();
        }
        backends.close().await;
        tracing::info!("EventFlow stopped");
        result
    });
    Ok(Running {
        addr,
        producer: role.api.then_some(producer),
        shutdown,
        task,
    })
}

/// The tasks of a worker process, to wait for at shutdown.
struct WorkerTasks {
    /// Consumes the streams.
    worker: JoinHandle<()>,
    /// Sends deliveries.
    dispatcher: DispatcherTasks,
    /// Runs replays.
    replays: ReplayTasks,
    /// Watches the dead-letter queue's size (when DLQ_ALERT_THRESHOLD is set).
    dead_letter_watch: Option<JoinHandle<()>>,
    /// Samples the dead-letter queue's size for the insights.
    dead_letter_samples: JoinHandle<()>,
}

/// What the worker of a process shares with its API.
struct Shared {
    /// The subscriptions, as cached in this process.
    directory: Arc<SubscriptionDirectory>,
    /// The endpoints' circuit breakers in this process (the API shows their state).
    breakers: BreakerBoard,
    /// Where happenings are reported as operational events.
    operations: Operations,
    /// Where deliveries are counted for the insights.
    counts: Tally,
}

/// Starts the worker with the webhook fan-out ahead of `handlers`, the dispatcher that delivers
/// what the fan-out creates, and the replay runner.
fn start_worker(
    config: &Config,
    backends: &Backends,
    shared: Shared,
    handlers: Vec<Arc<dyn Handler>>,
    router: &StreamRouter,
    shutdown: &CancellationToken,
) -> Result<WorkerTasks, AppError> {
    let retry = RetryConfig {
        max_retries: config.max_retries,
        base_delay: config.retry_base_delay,
        max_delay: config.retry_max_delay,
        exponential_base: 2.0,
        jitter: true,
    };
    let Shared {
        directory,
        breakers,
        operations,
        counts,
    } = shared;
    let consumer = consumer_name();
    let (dispatcher, dispatcher_tasks) = Dispatcher::spawn(
        backends.deliveries.clone(),
        backends.store.clone(),
        directory.clone(),
        DispatcherSettings {
            retry: retry.clone(),
            breakers,
            timeout: config.webhook_timeout,
            allow_private: config.webhook_allow_private_networks,
            process: consumer.clone(),
            operations: operations.clone(),
            counts: counts.clone(),
        },
        shutdown.clone(),
    )
    .map_err(AppError::WebhookClient)?;
    let replays = ReplayRunner::new(
        backends.replays.clone(),
        backends.store.clone(),
        directory.clone(),
        config.replay_rate,
    )
    .reporting_to(operations.clone())
    .spawn(shutdown.clone());
    let dead_letter_watch = (config.dlq_alert_threshold > 0).then(|| {
        watch_dead_letters(
            backends.deliveries.clone(),
            operations,
            config.dlq_alert_threshold,
            DEAD_LETTER_CHECK,
            shutdown.clone(),
        )
    });
    let dead_letter_samples =
        sample_dead_letters(backends.deliveries.clone(), counts, shutdown.clone());
    let fanout = WebhookFanout::new(directory, backends.deliveries.clone(), dispatcher);
    let mut all_handlers: Vec<Arc<dyn Handler>> = vec![Arc::new(fanout)];
    all_handlers.extend(handlers);
    metrics::register_worker(&router.all_streams());
    let settings = WorkerSettings {
        group: config.consumer_group.clone(),
        consumer,
        streams: router.all_streams(),
        concurrency: config.worker_concurrency,
        read_count: READ_COUNT,
        claim_idle: config.claim_idle,
        retry,
    };
    let worker = Worker::new(
        backends.broker.clone(),
        backends.deliveries.clone(),
        all_handlers,
        settings,
    )
    .remembering_processed(backends.store.clone());
    Ok(WorkerTasks {
        worker: tokio::spawn(worker.run(shutdown.clone())),
        dispatcher: dispatcher_tasks,
        replays,
        dead_letter_watch,
        dead_letter_samples,
    })
}
