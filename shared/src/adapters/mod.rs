//! Adapters to the outside world: the Iceberg lakehouse, input objects, AWS event documents.

pub mod events;
pub mod lakehouse;
pub mod objects;
