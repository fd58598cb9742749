//! Bakehouse: a serverless lakehouse for a bakery chain. Layers read top-down with no arrow
//! back up: `hops` (the Lambda handlers) → `adapters` (Iceberg, objects, AWS events) →
//! `domain` (pure logic).

pub mod adapters;
pub mod config;
pub mod domain;
pub mod error;
pub mod hops;
pub mod simulate;
