//! The schema registry's statements, the same in SQLite and PostgreSQL and so written once,
//! generic over the database: the two schemas differ only in the column types their dialects
//! name (times are microseconds, schemas and examples JSON text, in both).

use chrono::DateTime;
use serde_json::Value;
use sqlx::{ColumnIndex, Database, Decode, Encode, Executor, IntoArguments, Type};

use super::StoreError;
use crate::schemas::{EventType, SchemaVersion, schema_url};

/// Each type with its latest version's schema.
const SELECT_TYPES: &str = "SELECT t.name, t.description, t.version, t.examples, t.deprecated, \
     t.created_us, t.updated_us, v.schema FROM event_types t \
     JOIN event_type_versions v ON v.name = t.name AND v.version = t.version";

const UPSERT_TYPE: &str = "INSERT INTO event_types \
         (name, description, version, examples, deprecated, created_us, updated_us) \
     VALUES ($1, $2, $3, $4, $5, $6, $7) \
     ON CONFLICT (name) DO UPDATE SET description = $2, version = $3, examples = $4, \
         deprecated = $5, updated_us = $7";

const INSERT_VERSION: &str =
    "INSERT INTO event_type_versions (name, version, schema, created_us) VALUES ($1, $2, $3, $4)";

const SELECT_VERSION: &str =
    "SELECT schema, created_us FROM event_type_versions WHERE name = $1 AND version = $2";

const LATEST_VERSION: &str =
    "SELECT COALESCE(MAX(version), 0) FROM event_type_versions WHERE name = $1";

const DELETE_TYPE: &str = "DELETE FROM event_types WHERE name = $1 RETURNING name";

/// A row of [`SELECT_TYPES`].
type TypeRow = (String, Option<String>, i64, String, bool, i64, i64, String);

/// The registry's statements, run on one connection of database `DB` (in the caller's
/// transaction when it has one).
pub(super) struct EventTypeSql<'c, DB: Database>(pub &'c mut DB::Connection);

impl<DB> EventTypeSql<'_, DB>
where
    DB: Database,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
    for<'q> String: Decode<'q, DB> + Type<DB>,
    for<'q> Option<String>: Decode<'q, DB> + Encode<'q, DB> + Type<DB>,
    for<'q> i64: Encode<'q, DB> + Decode<'q, DB> + Type<DB>,
    for<'q> bool: Encode<'q, DB> + Decode<'q, DB> + Type<DB>,
    usize: ColumnIndex<DB::Row>,
{
    /// Every registered type, by name.
    pub(super) async fn event_types(self) -> Result<Vec<EventType>, StoreError> {
        let rows: Vec<TypeRow> =
            sqlx::query_as::<DB, TypeRow>(&format!("{SELECT_TYPES} ORDER BY t.name"))
                .fetch_all(&mut *self.0)
                .await?;
        rows.into_iter().map(decode_type).collect()
    }

    /// One registered type.
    pub(super) async fn event_type(self, name: &str) -> Result<Option<EventType>, StoreError> {
        let row: Option<TypeRow> =
            sqlx::query_as::<DB, TypeRow>(&format!("{SELECT_TYPES} WHERE t.name = $1"))
                .bind(name)
                .fetch_optional(&mut *self.0)
                .await?;
        row.map(decode_type).transpose()
    }

    /// One version of a type's schema.
    pub(super) async fn schema_version(
        self,
        name: &str,
        version: u32,
    ) -> Result<Option<SchemaVersion>, StoreError> {
        let row: Option<(String, i64)> = sqlx::query_as::<DB, (String, i64)>(SELECT_VERSION)
            .bind(name)
            .bind(i64::from(version))
            .fetch_optional(&mut *self.0)
            .await?;
        row.map(|(schema, created_us)| {
            Ok(SchemaVersion {
                event_type: name.to_string(),
                version,
                schema: json(name, &schema)?,
                dataschema: schema_url(name, version),
                created_at: DateTime::from_timestamp_micros(created_us).unwrap_or_default(),
            })
        })
        .transpose()
    }

    /// The highest version ever registered for `name`, 0 for none.
    pub(super) async fn latest_version(self, name: &str) -> Result<u32, StoreError> {
        let (latest,): (i64,) = sqlx::query_as::<DB, (i64,)>(LATEST_VERSION)
            .bind(name)
            .fetch_one(&mut *self.0)
            .await?;
        Ok(u32::try_from(latest).unwrap_or(u32::MAX))
    }

    /// Writes the type, and its schema as a version when `new_version` (in the caller's
    /// transaction).
    pub(super) async fn save(
        self,
        event_type: &EventType,
        new_version: bool,
    ) -> Result<(), StoreError> {
        let version = i64::from(event_type.version);
        if new_version {
            sqlx::query::<DB>(INSERT_VERSION)
                .bind(event_type.name.as_str())
                .bind(version)
                .bind(event_type.schema.to_string().as_str())
                .bind(event_type.updated_at.timestamp_micros())
                .execute(&mut *self.0)
                .await?;
        }
        let examples = Value::from(event_type.examples.clone()).to_string();
        sqlx::query::<DB>(UPSERT_TYPE)
            .bind(event_type.name.as_str())
            .bind(event_type.description.clone())
            .bind(version)
            .bind(examples.as_str())
            .bind(event_type.deprecated)
            .bind(event_type.created_at.timestamp_micros())
            .bind(event_type.updated_at.timestamp_micros())
            .execute(&mut *self.0)
            .await?;
        Ok(())
    }

    /// Unregisters a type; false when it was not registered.
    pub(super) async fn delete(self, name: &str) -> Result<bool, StoreError> {
        let deleted: Option<(String,)> = sqlx::query_as::<DB, (String,)>(DELETE_TYPE)
            .bind(name)
            .fetch_optional(&mut *self.0)
            .await?;
        Ok(deleted.is_some())
    }
}

fn decode_type(row: TypeRow) -> Result<EventType, StoreError> {
    let (name, description, version, examples, deprecated, created_us, updated_us, schema) = row;
    let version = u32::try_from(version).unwrap_or_default();
    let examples = match json(&name, &examples)? {
        Value::Array(examples) => examples,
        _ => Vec::new(),
    };
    Ok(EventType {
        schema: json(&name, &schema)?,
        dataschema: schema_url(&name, version),
        description,
        version,
        examples,
        deprecated,
        created_at: DateTime::from_timestamp_micros(created_us).unwrap_or_default(),
        updated_at: DateTime::from_timestamp_micros(updated_us).unwrap_or_default(),
        name,
    })
}

fn json(name: &str, text: &str) -> Result<Value, StoreError> {
    serde_json::from_str(text).map_err(|err| StoreError::Corrupt {
        id: name.to_string(),
        reason: format!("stored JSON does not parse: {err}"),
    })
}
