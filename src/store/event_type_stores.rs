//! [`EventTypeStore`] on both stores: connection handling only; the statements are in
//! [`super::event_types_sql`].

use async_trait::async_trait;
use sqlx::{Postgres, Sqlite};

use super::event_types_sql::EventTypeSql;
use super::postgres::bounded;
use super::{PgStore, SqliteStore, StoreError};
use crate::schemas::{EventType, EventTypeStore, SchemaVersion};

#[async_trait]
impl EventTypeStore for SqliteStore {
    async fn event_types(&self) -> Result<Vec<EventType>, StoreError> {
        let mut conn = self.db().reader.acquire().await?;
        EventTypeSql::<Sqlite>(&mut conn).event_types().await
    }

    async fn event_type(&self, name: &str) -> Result<Option<EventType>, StoreError> {
        let mut conn = self.db().reader.acquire().await?;
        EventTypeSql::<Sqlite>(&mut conn).event_type(name).await
    }

    async fn schema_version(
        &self,
        name: &str,
        version: u32,
    ) -> Result<Option<SchemaVersion>, StoreError> {
        let mut conn = self.db().reader.acquire().await?;
        EventTypeSql::<Sqlite>(&mut conn)
            .schema_version(name, version)
            .await
    }

    async fn latest_version(&self, name: &str) -> Result<u32, StoreError> {
        let mut conn = self.db().reader.acquire().await?;
        EventTypeSql::<Sqlite>(&mut conn).latest_version(name).await
    }

    async fn save_event_type(
        &self,
        event_type: &EventType,
        new_version: bool,
    ) -> Result<(), StoreError> {
        let mut tx = self.db().writer.begin().await?;
        EventTypeSql::<Sqlite>(&mut tx)
            .save(event_type, new_version)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn delete_event_type(&self, name: &str) -> Result<bool, StoreError> {
        let mut conn = self.db().writer.acquire().await?;
        EventTypeSql::<Sqlite>(&mut conn).delete(name).await
    }
}

#[async_trait]
impl EventTypeStore for PgStore {
    async fn event_types(&self) -> Result<Vec<EventType>, StoreError> {
        bounded(async {
            let mut conn = self.pool().acquire().await?;
            EventTypeSql::<Postgres>(&mut conn).event_types().await
        })
        .await
    }

    async fn event_type(&self, name: &str) -> Result<Option<EventType>, StoreError> {
        bounded(async {
            let mut conn = self.pool().acquire().await?;
            EventTypeSql::<Postgres>(&mut conn).event_type(name).await
        })
        .await
    }

    async fn schema_version(
        &self,
        name: &str,
        version: u32,
    ) -> Result<Option<SchemaVersion>, StoreError> {
        bounded(async {
            let mut conn = self.pool().acquire().await?;
            EventTypeSql::<Postgres>(&mut conn)
                .schema_version(name, version)
                .await
        })
        .await
    }

    async fn latest_version(&self, name: &str) -> Result<u32, StoreError> {
        bounded(async {
            let mut conn = self.pool().acquire().await?;
            EventTypeSql::<Postgres>(&mut conn)
                .latest_version(name)
                .await
        })
        .await
    }

    async fn save_event_type(
        &self,
        event_type: &EventType,
        new_version: bool,
    ) -> Result<(), StoreError> {
        bounded(async {
            let mut tx = self.pool().begin().await?;
            EventTypeSql::<Postgres>(&mut tx)
                .save(event_type, new_version)
                .await?;
            tx.commit().await?;
            Ok(())
        })
        .await
    }

    async fn delete_event_type(&self, name: &str) -> Result<bool, StoreError> {
        bounded(async {
            let mut conn = self.pool().acquire().await?;
            EventTypeSql::<Postgres>(&mut conn).delete(name).await
        })
        .await
    }
}
