//! Bakehouse: a serverless lakehouse for a bakery chain. Layers read top-down with no arrow
//! back up: `metrics` (what an invocation did, as CloudWatch metrics) → `hops` (the Lambda
//! handlers) → `adapters` (Iceberg, objects, AWS events) → `domain` (pure logic).

pub mod adapters;
pub mod config;
pub mod domain;
pub mod error;
pub mod hops;
pub mod metrics;

/// The allocator of every Bakehouse binary (functions, CLI, tests): ingest validates on several
/// threads with many small allocations, where mimalloc is ~35 % faster than glibc's malloc and
/// does not fragment per-thread arenas (docs/performance.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
