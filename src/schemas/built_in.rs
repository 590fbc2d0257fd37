//! The 15 event types of the system EventFlow replaces, as JSON Schemas registered at first
//! start (version 1). They accept and refuse what the original typed validation did: the same
//! required fields, non-empty identifiers, the same value types, no unknown fields. After that
//! they are types like any other: changed with a PUT, or deleted. The payload structs in
//! [`crate::events::catalog`] remain the Rust event factory; they validate nothing at ingest.
//!
//! "First start" is told by the store, not by a flag: a name that never had a version is
//! registered. Versions outlive a deleted type, so a built-in type an operator deleted stays
//! deleted across restarts, and one changed keeps its change.

use std::collections::BTreeMap;

use super::{EventTypeSpec, EventTypeStore, RegisterError, register};

/// The declarations, keyed by type: the same fields as a PUT's body.
const DECLARATIONS: &str = include_str!("built_in_types.json");

/// Every built-in type's declaration, by name.
pub fn built_in_types() -> BTreeMap<String, EventTypeSpec> {
    // The file is part of the binary and checked by the tests: it always parses.
    serde_json::from_str(DECLARATIONS).unwrap_or_default()
}

/// Registers every built-in type that never had a version; returns the names registered. A
/// process that loses the race to another one starting at the same time leaves the type as the
/// other registered it.
pub async fn register_built_in(store: &dyn EventTypeStore) -> Result<Vec<String>, RegisterError> {
    let mut registered = Vec::new();
    for (name, spec) in built_in_types() {
        if store.latest_version(&name).await? > 0 {
            continue;
        }
        match register(store, &name, spec).await {
            Ok(_) => registered.push(name),
            Err(RegisterError::Store(err)) if store.latest_version(&name).await? > 0 => {
                tracing::debug!(event_type = %name, error = %err, "another process registered this built-in type first");
            }
            Err(err) => return Err(err),
        }
    }
    Ok(registered)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::catalog::KNOWN_TYPES;

    #[test]
    fn every_factory_type_has_a_valid_declaration_with_a_valid_example() {
        let declarations: BTreeMap<String, EventTypeSpec> =
            serde_json::from_str(DECLARATIONS).expect("built_in_types.json parses");
        let names: Vec<&str> = declarations.keys().map(String::as_str).collect();
        let mut known = KNOWN_TYPES.to_vec();
        known.sort_unstable();
        assert_eq!(names, known);
        for (name, spec) in &declarations {
            assert!(!spec.examples.is_empty(), "{name} has no example");
            if let Err(problems) = spec.check(name) {
                panic!("{name}: {problems:?}");
            }
        }
    }
}
