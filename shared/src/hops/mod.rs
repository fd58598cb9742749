//! The hops — one module per Lambda handler — and what they share: the dependencies built
//! once per process and the checkpoint properties kept in snapshot summaries.

pub mod evolve;
pub mod features;
pub mod ingest;
pub mod maintenance;
pub mod reference;
pub mod replay;
pub mod to_gold;
pub mod to_silver;
pub mod weather;

pub use evolve::{InitReport, init};

use std::collections::HashMap;

use crate::adapters::lakehouse::{Lakehouse, LiveFile, Table, TableDef};
use crate::config::Config;
use crate::error::StorageError;

/// Kafka offsets ingested into a table: JSON `{"topic/partition": highest offset}`.
pub const PROP_KAFKA_OFFSETS: &str = "bakehouse.kafka-offsets";
/// Objects ingested into a table: sorted, comma-separated digests of key and content hash.
pub const PROP_INGESTED_OBJECTS: &str = "bakehouse.ingested-objects";
/// Kafka batches re-driven into a table (`bakehouse redrive`): sorted, comma-separated digests
/// of their on-failure records.
pub const PROP_REDRIVEN_BATCHES: &str = "bakehouse.redriven-batches";
/// A downstream table's checkpoint: the source table's sequence number it has processed.
pub const PROP_SOURCE_SEQUENCE: &str = "bakehouse.source-sequence-number";
/// The source snapshot id matching [`PROP_SOURCE_SEQUENCE`] (for people and `status`).
pub const PROP_SOURCE_SNAPSHOT: &str = "bakehouse.source-snapshot-id";
/// A fact table's business dates (`YYYY-MM-DD`, comma-separated) whose too-late silver rows a
/// backfill took in: every later recompute of those dates keeps them.
pub const PROP_TOO_LATE_TAKEN_IN: &str = "bakehouse.too-late-taken-in";
/// A reference table's latest full snapshot: the object it came from.
pub const PROP_REFERENCE_OBJECT: &str = "bakehouse.reference-object";
/// A reference table's latest full snapshot: its ingestion time (UTC microseconds).
pub const PROP_REFERENCE_TIME: &str = "bakehouse.reference-ingestion-time";

/// The source sequence number a downstream table has processed up to (0: nothing yet).
pub fn checkpoint(table: &Table) -> i64 {
    sequence_property(table, PROP_SOURCE_SEQUENCE)
}

/// A sequence-number checkpoint kept in the current snapshot's summary (0: none yet).
fn sequence_property(table: &Table, key: &str) -> i64 {
    Lakehouse::snapshot_property(table, key)
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// What changed in one source of a table computed from several (a daily report, the demand
/// features), since the checkpoint the table keeps for it (a snapshot summary property).
struct SourceChanges {
    /// The source table as loaded.
    table: Table,
    /// The partition days of its files added since the checkpoint (compaction adds none).
    days: std::collections::BTreeSet<i32>,
    /// The checkpoint to commit with what is computed from it: the source's head.
    checkpoint: (String, String),
}

/// The changes of `source` since `target`'s checkpoint for it.
async fn source_changes(
    lake: &Lakehouse,
    target: &Table,
    source: &TableDef,
) -> Result<SourceChanges, StorageError> {
    let table = lake.load(source).await?;
    let key = format!("{PROP_SOURCE_SEQUENCE}.{}", source.qualified());
    let done = sequence_property(target, &key);
    let head = Lakehouse::head_sequence(&table);
    let days = if head > done {
        let files = lake.files_since(&table, done).await?;
        files.iter().flat_map(LiveFile::dates).collect()
    } else {
        std::collections::BTreeSet::new()
    };
    Ok(SourceChanges {
        table,
        days,
        checkpoint: (key, head.to_string()),
    })
}

/// The checkpoint a downstream commit records: the source table's current snapshot, which it
/// has read up to (none before the source's first commit).
fn checkpoint_properties(source: &Table) -> HashMap<String, String> {
    let Some(head) = Lakehouse::head(source) else {
        return HashMap::new();
    };
    HashMap::from([
        (PROP_SOURCE_SEQUENCE.to_string(), head.sequence.to_string()),
        (
            PROP_SOURCE_SNAPSHOT.to_string(),
            head.snapshot_id.to_string(),
        ),
    ])
}

/// The source table of a downstream hop and its data files added since the checkpoint `done`
/// (in commit order), or `None` when there are none: nothing committed since, or only
/// compaction's rewrites.
async fn new_source_files(
    lake: &Lakehouse,
    source: &TableDef,
    done: i64,
) -> Result<Option<(Table, Vec<LiveFile>)>, StorageError> {
    let table = lake.load(source).await?;
    if Lakehouse::head_sequence(&table) <= done {
        return Ok(None);
    }
    let files = lake.files_since(&table, done).await?;
    Ok((!files.is_empty()).then_some((table, files)))
}

/// What every handler needs, built once per process (Lambda init or CLI start).
#[derive(Debug)]
pub struct Deps {
    pub lake: Lakehouse,
    pub config: Config,
}

impl Deps {
    /// Opens the lakehouse described by `config`.
    ///
    /// # Errors
    /// The catalog or warehouse cannot be reached.
    pub async fn open(config: Config) -> Result<Self, StorageError> {
        Ok(Deps {
            lake: Lakehouse::open(&config).await?,
            config,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_send<T: Send>(_: &T) {}

    /// Compile-time check: handler futures can be spawned on a multi-threaded runtime (the
    /// local event-source emulator and concurrent tests need that).
    #[test]
    fn handler_futures_are_send() {
        fn check(deps: &Deps, event: crate::adapters::events::IngestEvent) {
            assert_send(&ingest::handle(deps, event));
            assert_send(&to_silver::handle(deps, None));
            assert_send(&to_gold::handle(deps, None));
            assert_send(&init(deps, true));
            assert_send(&maintenance::handle(deps, 0));
        }
        let _ = check;
    }
}
