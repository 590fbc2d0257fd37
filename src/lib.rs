//! EventFlow: an event-driven backend. Producers POST events over HTTP; EventFlow stores them
//! durably, streams them through consumer groups, and workers process them.
//!
//! The pieces, in the order an event meets them: [`api`] parses and validates ([`events`]),
//! the [`producer`] group-commits into the [`store`] and hands events to the [`broker`], and the
//! [`worker`] runs [`worker::Handler`]s on them with [`reliability`] patterns. [`app`] wires it
//! all from [`config`].

pub mod api;
pub mod app;
pub mod broker;
pub mod cesql;
pub mod config;
pub mod delivery;
pub mod demo;
pub mod dice;
pub mod events;
pub mod insights;
pub mod observability;
pub mod operations;
pub mod producer;
pub mod reliability;
pub mod replay;
pub mod retention;
pub mod schemas;
pub mod server;
pub mod sqlite;
pub mod store;
pub mod worker;
