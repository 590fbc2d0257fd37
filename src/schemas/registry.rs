//! [`SchemaRegistry`]: the registered types as one API process enforces them, each version's
//! schema compiled once. A background task reloads them from the store every second, so a change
//! made elsewhere is enforced within a second, and a change through this process at once; ingest
//! only reads what was loaded and never waits for the store (while the store is unreachable the
//! last list loaded stays in force). Reloading on the request path instead would make one request
//! a second wait for a round trip to the database.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::{EventTypeStore, compile, parse_schema_url, schema_url, violations};
use crate::events::http_binding::is_json_media_type;
use crate::events::{Event, Violation};
use crate::insights::{Metric, Tally};
use crate::observability::metrics;
use crate::store::StoreError;

/// How often the registered types are read again.
const REFRESH: Duration = Duration::from_secs(1);

/// What ingest does with an event whose type is not registered (UNKNOWN_EVENT_TYPES).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnknownTypes {
    /// Stored as it comes (the default).
    Accept,
    /// Refused with 422, naming the type and how to register it.
    Reject,
}

/// A version's compiled schema.
struct Compiled {
    version: u32,
    validator: jsonschema::Validator,
}

/// The latest version of each registered type, by name.
type Latest = Arc<HashMap<String, Arc<Compiled>>>;

/// Why an event could not be checked.
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    /// The event breaks its type's contract.
    #[error("the event breaks its type's schema")]
    Invalid(Vec<Violation>),
    /// The registry could not be read.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The registry of one process; see the module documentation.
pub struct SchemaRegistry {
    store: Arc<dyn EventTypeStore>,
    unknown: UnknownTypes,
    loaded: RwLock<Option<Latest>>,
    /// Every version compiled so far, by (type, version): versions never change.
    compiled: Mutex<HashMap<(String, u32), Arc<Compiled>>>,
    /// One reload at a time.
    reloading: tokio::sync::Mutex<()>,
    /// Where refused events are counted, by type.
    counts: Tally,
}

impl SchemaRegistry {
    /// A registry of `store`'s types, loaded on first use.
    pub fn new(store: Arc<dyn EventTypeStore>, unknown: UnknownTypes, counts: Tally) -> Self {
        Self {
            store,
            unknown,
            counts,
            loaded: RwLock::new(None),
            compiled: Mutex::new(HashMap::new()),
            reloading: tokio::sync::Mutex::new(()),
        }
    }

    /// Reads every registered type again (compiling only new versions): called after a change
    /// through this process, and every second by [`SchemaRegistry::spawn_refresh`].
    pub async fn reload(&self) -> Result<(), StoreError> {
        let _one = self.reloading.lock().await;
        let mut latest = HashMap::new();
        for event_type in self.store.event_types().await? {
            let key = (event_type.name.clone(), event_type.version);
            if let Some(compiled) = self.compiled_version(&key, &event_type.schema) {
                latest.insert(event_type.name, compiled);
            }
        }
        *self.loaded.write().unwrap_or_else(|e| e.into_inner()) = Some(Arc::new(latest));
        Ok(())
    }

    /// Reloads the registry every second until `shutdown`.
    pub fn spawn_refresh(self: Arc<Self>, shutdown: CancellationToken) -> JoinHandle<()> {
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(REFRESH) => {}
                    _ = shutdown.cancelled() => return,
                }
                if let Err(err) = self.reload().await {
                    tracing::warn!(error = %err, "cannot reload the event types; the last ones loaded stay in force");
                }
            }
        })
    }

    /// Checks `event` against its type's schema and records the version in `dataschema`: the
    /// version a producer's `dataschema` names, else the latest. Events of types not registered
    /// pass or are refused as UNKNOWN_EVENT_TYPES says.
    pub async fn check(&self, event: &mut Event) -> Result<(), CheckError> {
        let checked = self.check_unmetered(event).await;
        if let Err(CheckError::Invalid(_)) = &checked {
            let registered = self
                .loaded()
                .is_some_and(|latest| latest.contains_key(&event.envelope.event_type));
            let key = if registered {
                &event.envelope.event_type
            } else {
                metrics::UNREGISTERED
            };
            metrics::event_invalid(key);
            self.counts
                .add(Metric::Invalid, [(key, event.metadata.received_at)]);
        }
        checked
    }

    async fn check_unmetered(&self, event: &mut Event) -> Result<(), CheckError> {
        let event_type = event.envelope.event_type.clone();
        let named = event
            .envelope
            .dataschema
            .as_deref()
            .and_then(parse_schema_url)
            .filter(|(name, _)| *name == event_type)
            .map(|(_, version)| version);
        let schema = match named {
            Some(version) => match self.version(&event_type, version).await? {
                Some(schema) => schema,
                None => {
                    return Err(CheckError::Invalid(vec![Violation::new(
                        "/dataschema",
                        format!("{event_type} has no schema version {version}"),
                    )]));
                }
            },
            None => match self.latest().await?.get(&event_type) {
                Some(schema) => schema.clone(),
                None if self.unknown == UnknownTypes::Reject => {
                    return Err(CheckError::Invalid(vec![Violation::new(
                        "/type",
                        format!(
                            "{event_type} is not a registered event type (UNKNOWN_EVENT_TYPES=reject): \
                             register it with PUT /api/v1/event-types/{event_type}"
                        ),
                    )]));
                }
                None => return Ok(()),
            },
        };
        // Binary data, or data of another media type, has no JSON to check: say which attribute
        // made it so.
        let not_json = if event.envelope.data_base64.is_some() {
            Some("/data_base64")
        } else {
            event
                .envelope
                .datacontenttype
                .as_deref()
                .filter(|media_type| !is_json_media_type(media_type))
                .map(|_| "/datacontenttype")
        };
        if let Some(pointer) = not_json {
            return Err(CheckError::Invalid(vec![Violation::new(
                pointer,
                format!("{event_type} has a JSON Schema: its data must be JSON"),
            )]));
        }
        let data = event
            .envelope
            .data
            .as_ref()
            .unwrap_or(&serde_json::Value::Null);
        let broken = violations(&schema.validator, data);
        if !broken.is_empty() {
            return Err(CheckError::Invalid(broken));
        }
        event.envelope.dataschema = Some(schema_url(&event_type, schema.version));
        Ok(())
    }

    /// Checks `data` against the latest version of `event_type`, compiled once like ingest's:
    /// the version and every violation, or `None` when the type is not registered.
    pub async fn validate(
        &self,
        event_type: &str,
        data: &serde_json::Value,
    ) -> Result<Option<(u32, Vec<Violation>)>, StoreError> {
        let latest = self.latest().await?;
        Ok(latest
            .get(event_type)
            .map(|schema| (schema.version, violations(&schema.validator, data))))
    }

    /// The latest version of every type, as last loaded (loaded now the first time).
    async fn latest(&self) -> Result<Latest, StoreError> {
        if let Some(loaded) = self.loaded() {
            return Ok(loaded);
        }
        self.reload().await?;
        Ok(self.loaded().unwrap_or_default())
    }

    fn loaded(&self) -> Option<Latest> {
        self.loaded
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// One version, compiled, from the cache or the store.
    async fn version(&self, name: &str, version: u32) -> Result<Option<Arc<Compiled>>, StoreError> {
        let key = (name.to_string(), version);
        if let Some(compiled) = self.lock_compiled().get(&key) {
            return Ok(Some(compiled.clone()));
        }
        let Some(stored) = self.store.schema_version(name, version).await? else {
            return Ok(None);
        };
        Ok(self.compiled_version(&key, &stored.schema))
    }

    /// The compiled schema of `key`, compiling it the first time. A stored schema that no
    /// longer compiles (it was checked when registered) is left out, with an error in the log.
    fn compiled_version(
        &self,
        key: &(String, u32),
        schema: &serde_json::Value,
    ) -> Option<Arc<Compiled>> {
        if let Some(compiled) = self.lock_compiled().get(key) {
            return Some(compiled.clone());
        }
        match compile(schema) {
            Ok(validator) => {
                let compiled = Arc::new(Compiled {
                    version: key.1,
                    validator,
                });
                self.lock_compiled().insert(key.clone(), compiled.clone());
                Some(compiled)
            }
            Err(problems) => {
                tracing::error!(event_type = %key.0, version = key.1, ?problems, "a stored schema does not compile; its events are not checked");
                None
            }
        }
    }

    fn lock_compiled(&self) -> std::sync::MutexGuard<'_, HashMap<(String, u32), Arc<Compiled>>> {
        self.compiled.lock().unwrap_or_else(|e| e.into_inner())
    }
}
