//! What a table's metadata says, for the hops and the CLI: its head (the current snapshot, which
//! a downstream checkpoint records), the summary properties kept with it, its columns, and its
//! snapshot history.

use super::commit::REWRITTEN_DATA_FILES;
use super::{Lakehouse, Table};

/// A table's current snapshot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Head {
    pub sequence: i64,
    pub snapshot_id: i64,
    pub timestamp_ms: i64,
}

/// One snapshot of a table's history.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SnapshotFacts {
    pub sequence: i64,
    pub timestamp_ms: i64,
    /// Compaction: existing rows rewritten into fewer files, none changed.
    pub compaction: bool,
    /// Whether readers downstream find new rows in it: not after compaction, nor after a fill
    /// or re-key, whose files keep their rows' sequence numbers.
    pub brings_new_rows: bool,
    /// Rows the snapshot added (0 when its summary does not say).
    pub added_records: u64,
}

impl Lakehouse {
    /// The table's qualified name (`namespace.table`).
    pub fn name(table: &Table) -> String {
        table.identifier().to_string()
    }

    /// The table's current snapshot (`None` before its first commit).
    pub fn head(table: &Table) -> Option<Head> {
        table.metadata().current_snapshot().map(|s| Head {
            sequence: s.sequence_number(),
            snapshot_id: s.snapshot_id(),
            timestamp_ms: s.timestamp_ms(),
        })
    }

    /// The sequence number of the table's current snapshot (0 before the first commit).
    pub fn head_sequence(table: &Table) -> i64 {
        Lakehouse::head(table).map_or(0, |head| head.sequence)
    }

    /// The highest sequence number the table has given out.
    pub fn last_sequence(table: &Table) -> i64 {
        table.metadata().last_sequence_number()
    }

    /// A summary property of the table's current snapshot (a checkpoint).
    pub fn snapshot_property<'t>(table: &'t Table, key: &str) -> Option<&'t str> {
        table
            .metadata()
            .current_snapshot()
            .and_then(|s| s.summary().additional_properties.get(key))
            .map(String::as_str)
    }

    /// Whether the table's current schema has the column `name`.
    pub fn has_column(table: &Table, name: &str) -> bool {
        table
            .metadata()
            .current_schema()
            .field_by_name(name)
            .is_some()
    }

    /// Every snapshot the table keeps, in commit order.
    pub fn snapshots(table: &Table) -> Vec<SnapshotFacts> {
        let mut snapshots: Vec<SnapshotFacts> = table
            .metadata()
            .snapshots()
            .map(|s| {
                let summary = s.summary();
                let number = |key: &str| -> u64 {
                    let value = summary.additional_properties.get(key);
                    value.and_then(|n| n.parse().ok()).unwrap_or(0)
                };
                let only_rewritten = number(REWRITTEN_DATA_FILES) > 0
                    && number(REWRITTEN_DATA_FILES) == number("added-data-files");
                let compaction = summary.operation == iceberg::spec::Operation::Replace;
                SnapshotFacts {
                    sequence: s.sequence_number(),
                    timestamp_ms: s.timestamp_ms(),
                    compaction,
                    brings_new_rows: !compaction && !only_rewritten,
                    added_records: number("added-records"),
                }
            })
            .collect();
        snapshots.sort_by_key(|s| s.sequence);
        snapshots
    }
}
