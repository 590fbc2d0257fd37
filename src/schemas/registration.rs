//! [`register`]: the one way a type is registered or changed, used by the API's PUT (and its dry
//! run, [`prepare`]) and by the built-in types at first start, so that all follow the same
//! versioning rule.

use chrono::Utc;

use super::{EventType, EventTypeSpec, EventTypeStore};
use crate::events::Violation;
use crate::store::StoreError;

/// Why a declaration was not registered.
#[derive(Debug, thiserror::Error)]
pub enum RegisterError {
    /// The declaration is not valid: every problem, as pointers into it.
    #[error("the event type declaration is not valid")]
    Invalid(Vec<Violation>),
    /// The store could not save it (or another process saved the same version first).
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What [`register`] did, or [`prepare`] would do.
#[derive(Debug)]
pub struct Registered {
    /// The type as saved, at its latest version.
    pub event_type: EventType,
    /// True when the type was not registered before (a new type, or one deleted since).
    pub created: bool,
    /// True when its schema is a new version.
    pub new_version: bool,
}

/// Checks `spec` and works out what saving it as `name` makes: a changed schema becomes
/// version N+1 (N the highest version ever registered for the name), an unchanged one keeps its
/// version. Saves nothing: a dry run, and the first half of [`register`].
pub async fn prepare(
    store: &dyn EventTypeStore,
    name: &str,
    spec: EventTypeSpec,
) -> Result<Registered, RegisterError> {
    spec.check(name).map_err(RegisterError::Invalid)?;
    let previous = store.event_type(name).await?;
    let latest = match &previous {
        Some(previous) => previous.version,
        None => store.latest_version(name).await?,
    };
    let (event_type, new_version) = spec.apply(name, previous.as_ref(), latest, Utc::now());
    Ok(Registered {
        event_type,
        created: previous.is_none(),
        new_version,
    })
}

/// Registers or changes `name` as [`prepare`] works it out.
pub async fn register(
    store: &dyn EventTypeStore,
    name: &str,
    spec: EventTypeSpec,
) -> Result<Registered, RegisterError> {
    let registered = prepare(store, name, spec).await?;
    store
        .save_event_type(&registered.event_type, registered.new_version)
        .await?;
    Ok(registered)
}
