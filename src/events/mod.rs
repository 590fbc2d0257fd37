//! Events: the CloudEvents envelope, the catalog of known types, parsing and the factory.

mod attributes;
mod builder;
pub mod catalog;
mod envelope;
mod fields;
pub mod http_binding;
pub mod ingest;
mod invalid;
pub mod routing;
pub mod trace;

pub use attributes::{CloudEventJson, DATA_PATH_PREFIX, EventAttributes};
pub use builder::EventBuilder;
pub use catalog::KnownPayload;
pub use envelope::{CloudEvent, Event, Metadata, Priority, REPLAY_EXTENSION, SPEC_VERSION};
pub use invalid::{InvalidEvent, Violation};
pub use routing::StreamRouter;
