//! [`EventTypeStore`]: where registered event types and every version of their schemas are kept.
//! Both event stores implement it, in the same database as the events.

use async_trait::async_trait;

use super::{EventType, SchemaVersion};
use crate::store::StoreError;

/// Durable storage of the schema registry.
#[async_trait]
pub trait EventTypeStore: Send + Sync + 'static {
    /// Every registered type with its latest version, by name.
    async fn event_types(&self) -> Result<Vec<EventType>, StoreError>;

    /// One registered type with its latest version.
    async fn event_type(&self, name: &str) -> Result<Option<EventType>, StoreError>;

    /// One version of a type's schema (also of a type deleted since).
    async fn schema_version(
        &self,
        name: &str,
        version: u32,
    ) -> Result<Option<SchemaVersion>, StoreError>;

    /// The highest version ever registered for `name`; 0 when none was.
    async fn latest_version(&self, name: &str) -> Result<u32, StoreError>;

    /// Saves `event_type`, with its schema as a new version when `new_version`, in one
    /// transaction; fails, changing nothing, when another process registered the same version
    /// at the same time (the version's key is unique).
    async fn save_event_type(
        &self,
        event_type: &EventType,
        new_version: bool,
    ) -> Result<(), StoreError>;

    /// Unregisters a type, keeping its versions; false when it was not registered.
    async fn delete_event_type(&self, name: &str) -> Result<bool, StoreError>;
}
