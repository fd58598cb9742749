//! `bakehouse evolve`: changes a running lake without rewriting it. Tables are brought to
//! their current definitions (new columns, widened types: [`Lakehouse::create_tables`]),
//! partition specs change on request (new files use the new spec, old files keep theirs), and
//! a column new to a bronze table is filled, for the rows ingested before it existed, from
//! their raw payload, exactly once. Every request is checked before anything is written.

use std::sync::Mutex;

use arrow_array::{Array, RecordBatch, StringArray};
use serde::Serialize;
use tracing::info;

use super::Deps;
use crate::adapters::iceberg::{
    CommitPlan, DEFAULT_TARGET_FILE_SIZE, Grain, Lakehouse, LiveFile, Operation, TableDef, tables,
};
use crate::domain::dataset::Dataset;
use crate::domain::records::Lineage;
use crate::domain::validate::{Decoded, RawRecord, validate};
use crate::error::{HandlerError, StorageError};

/// A table to partition at a new granularity (`namespace.table=grain`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PartitionChange {
    pub table: TableDef,
    pub grain: Grain,
}

impl PartitionChange {
    /// Parses `namespace.table=hour|day|month`, checking that the table accepts the grain.
    ///
    /// # Errors
    /// A message naming what is wrong and what is accepted.
    pub fn parse(text: &str) -> Result<Self, String> {
        let (name, grain) = text
            .split_once('=')
            .ok_or_else(|| format!("{text:?}: expected TABLE=GRAIN, e.g. silver.sales=hour"))?;
        let table = find_table(name)?;
        let grain = Grain::parse(grain).ok_or_else(|| {
            format!(
                "{text:?}: unknown granularity {grain:?} (accepted: {})",
                Grain::NAMES
            )
        })?;
        let accepted: Vec<&str> = table.accepted_grains().iter().map(|g| g.name()).collect();
        if !table.accepted_grains().contains(&grain) {
            return Err(match accepted.as_slice() {
                [] => format!("{name} is not partitioned (a small table rewritten whole)"),
                _ => format!(
                    "{name} cannot be partitioned by {} (accepted: {})",
                    grain.name(),
                    accepted.join(", ")
                ),
            });
        }
        Ok(PartitionChange { table, grain })
    }
}

/// A bronze column to fill from the payload of the rows written before it existed
/// (`bronze.table.column`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ColumnFill {
    pub table: TableDef,
    pub dataset: Dataset,
    pub column: &'static str,
}

/// Lineage and payload columns: what the pipeline stamps, not what a payload holds.
const NOT_FROM_PAYLOAD: [&str; 4] = ["payload", "source", "source_ref", "ingestion_time"];

impl ColumnFill {
    /// Parses `bronze.table.column` for a string column of a bronze event or reference table.
    ///
    /// # Errors
    /// A message naming what is wrong and what is accepted.
    pub fn parse(text: &str) -> Result<Self, String> {
        let (name, column) = text.rsplit_once('.').ok_or_else(|| {
            format!("{text:?}: expected TABLE.COLUMN, e.g. bronze.sales_events.channel")
        })?;
        let table = find_table(name)?;
        let dataset = Dataset::ALL
            .into_iter()
            .find(|d| TableDef::bronze(*d) == table)
            .ok_or_else(|| {
                format!(
                    "{name} is not a bronze table of a dataset: only bronze rows keep a payload"
                )
            })?;
        let column = table
            .columns
            .iter()
            .find(|(c, _)| *c == column && !NOT_FROM_PAYLOAD.contains(c))
            .ok_or_else(|| format!("{name} has no column {column:?} read from the payload"))?;
        if column.1 != tables::Col::Str {
            return Err(format!(
                "{name}.{}: only string columns can be filled from the payload",
                column.0
            ));
        }
        Ok(ColumnFill {
            table,
            dataset,
            column: column.0,
        })
    }
}

fn find_table(name: &str) -> Result<TableDef, String> {
    TableDef::find(name).ok_or_else(|| {
        format!("unknown table {name:?} (`bakehouse sql \"SHOW TABLES\"` lists them)")
    })
}

/// What a fill did.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct FillOutcome {
    pub table: String,
    pub column: String,
    /// Data files rewritten (each keeps its rows' sequence numbers: no hop sees them as new).
    pub files: usize,
    /// Rows that got a value from their payload.
    pub filled: u64,
    /// Rows whose payload has no value for the column.
    pub absent: u64,
    /// Rows whose payload's value validation refuses today (left null), with the first reason.
    pub refused: u64,
    pub first_refusal: Option<String>,
}

/// What `evolve` did.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct EvolveReport {
    /// Tables created (the others were brought to their current definitions).
    pub created: Vec<String>,
    /// Partition changes made (`table=grain`); those already in place are left out.
    pub partitioned: Vec<String>,
    pub fills: Vec<FillOutcome>,
}

/// Files a fill rewrites per commit: bounds a commit's memory and a lost race's rework.
const FILES_PER_COMMIT: usize = 8;

/// Evolves the tables to their definitions, then makes the partition changes, then the fills.
/// A change Iceberg forbids stops it before anything is written.
///
/// # Errors
/// [`StorageError::Evolution`], or storage errors.
pub async fn evolve(
    deps: &Deps,
    partitions: &[PartitionChange],
    fills: &[ColumnFill],
) -> Result<EvolveReport, HandlerError> {
    let lake = &deps.lake;
    let mut report = EvolveReport {
        created: lake.create_tables().await?,
        ..EvolveReport::default()
    };
    for change in partitions {
        if lake.evolve_partition(&change.table, change.grain).await? {
            info!(table = %change.table.qualified(), grain = change.grain.name(), "Partition spec changed.");
            report.partitioned.push(format!(
                "{}={}",
                change.table.qualified(),
                change.grain.name()
            ));
        }
    }
    for fill in fills {
        report.fills.push(fill_from_payload(lake, fill).await?);
    }
    Ok(report)
}

/// Fills `fill.column` of the rows of the data files written before the column existed (their
/// manifest entries count no nulls for it), from each row's payload as validation reads it
/// today: the files are rewritten with the value and committed as a replace keeping their
/// sequence numbers, [`FILES_PER_COMMIT`] at a time. A file is a candidate only until it is
/// rewritten, so a second run, or one after an interruption, fills nothing twice; a file a
/// concurrent compaction replaced makes the commit re-plan.
///
/// # Errors
/// Storage errors; the column does not exist (run `bakehouse init` first).
pub async fn fill_from_payload(
    lake: &Lakehouse,
    fill: &ColumnFill,
) -> Result<FillOutcome, StorageError> {
    let mut outcome = FillOutcome {
        table: fill.table.qualified(),
        column: fill.column.to_string(),
        ..FillOutcome::default()
    };
    let step = Mutex::new(FillOutcome::default());
    loop {
        let step = &step;
        let committed = lake
            .commit_with(&fill.table, move |table| async move {
                let mut counts = FillOutcome::default();
                if table
                    .metadata()
                    .current_schema()
                    .field_by_name(fill.column)
                    .is_none()
                {
                    return Err(StorageError::Evolution {
                        table: fill.table.qualified(),
                        message: format!(
                            "no column {} yet: run `bakehouse evolve` first",
                            fill.column
                        ),
                    });
                }
                let files: Vec<LiveFile> = lake
                    .live_files(&table)
                    .await?
                    .into_iter()
                    .filter(|f| f.null_count(&table, fill.column).is_none())
                    .take(FILES_PER_COMMIT)
                    .collect();
                if files.is_empty() {
                    return Ok(None);
                }
                let mut add_rewritten = Vec::new();
                for file in &files {
                    let batches = lake
                        .read_batches(&table, std::slice::from_ref(file), None)
                        .await?;
                    let filled = batches
                        .into_iter()
                        .map(|batch| fill_batch(&batch, fill, &mut counts))
                        .collect::<Result<Vec<_>, _>>()?;
                    let written = lake
                        .write_batches(&table, filled, DEFAULT_TARGET_FILE_SIZE)
                        .await?;
                    add_rewritten.extend(written.into_iter().map(|f| (f, file.sequence_number)));
                }
                counts.files = files.len();
                *step
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner) = counts;
                Ok(Some(CommitPlan {
                    operation: Operation::Replace,
                    add: Vec::new(),
                    add_rewritten,
                    remove: files,
                    properties: std::collections::HashMap::new(),
                    keep_added_on_conflict: false,
                    added_spec: None,
                }))
            })
            .await?;
        if committed.is_none() {
            break;
        }
        let counts = std::mem::take(
            &mut *step
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        );
        outcome.files += counts.files;
        outcome.filled += counts.filled;
        outcome.absent += counts.absent;
        outcome.refused += counts.refused;
        outcome.first_refusal = outcome.first_refusal.or(counts.first_refusal);
    }
    info!(table = %outcome.table, column = %outcome.column, files = outcome.files, filled = outcome.filled, "Column filled from the payload.");
    Ok(outcome)
}

/// `batch` with `fill.column` set from each row's payload (validated as the dataset's record).
fn fill_batch(
    batch: &RecordBatch,
    fill: &ColumnFill,
    counts: &mut FillOutcome,
) -> Result<RecordBatch, StorageError> {
    let failed = |message: String| StorageError::Data {
        context: format!("fill {}.{}", fill.table.qualified(), fill.column),
        message,
    };
    let (Some(index), Some(payload)) = (
        batch.schema().index_of(fill.column).ok(),
        batch
            .column_by_name("payload")
            .and_then(|c| c.as_any().downcast_ref::<StringArray>()),
    ) else {
        return Err(failed("no payload or target column".to_string()));
    };
    let lineage = Lineage {
        source: String::new(),
        source_ref: String::new(),
        ingestion_time: 0,
    };
    let values: StringArray = (0..batch.num_rows())
        .map(|row| {
            if payload.is_null(row) {
                counts.absent += 1;
                return None;
            }
            let raw = RawRecord {
                source_ref: String::new(),
                bytes: bytes::Bytes::copy_from_slice(payload.value(row).as_bytes()),
                decoded: Decoded::Json,
            };
            match validate(fill.dataset, &raw, &lineage) {
                Ok(record) => {
                    let value = record.field_text(fill.column);
                    if value.is_some() {
                        counts.filled += 1;
                    } else {
                        counts.absent += 1;
                    }
                    value
                }
                Err(rejection) => {
                    counts.refused += 1;
                    counts.first_refusal.get_or_insert(rejection.message);
                    None
                }
            }
        })
        .collect();
    let mut columns = batch.columns().to_vec();
    columns[index] = std::sync::Arc::new(values);
    RecordBatch::try_new(batch.schema(), columns).map_err(|e| failed(e.to_string()))
}
