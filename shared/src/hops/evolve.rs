//! `bakehouse init` and `bakehouse evolve`: the lake's tables brought to their definitions.
//! `init` creates them (and may load the sample reference snapshot). `evolve` changes a
//! running lake without rewriting it: tables are brought to their current definitions (new
//! columns, widened types: [`Lakehouse::create_tables`]), partition specs change on request
//! (new files use the new spec, old files keep theirs), and a column new to a bronze table is
//! filled, for the rows ingested before it existed, from their raw payload, exactly once.
//! Every request is checked before anything is written.

use std::collections::HashSet;
use std::sync::Mutex;

use arrow_array::{Array, RecordBatch, StringArray};
use serde::Serialize;
use tracing::info;

use super::{Deps, ingest};
use crate::adapters::lakehouse::{
    CommitPlan, DEFAULT_TARGET_FILE_SIZE, Grain, Lakehouse, LiveFile, TableDef, tables,
};
use crate::domain::dataset::Dataset;
use crate::domain::decode::{Decoded, RawRecord};
use crate::domain::records::Lineage;
use crate::domain::reference::default_snapshot;
use crate::domain::validate::validate;
use crate::error::{HandlerError, StorageError};

/// What `bakehouse init` did.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct InitReport {
    /// Tables created (the others existed and were brought up to their current definition).
    pub created: Vec<String>,
    /// Reference datasets the sample snapshot was loaded into.
    pub sample_loaded: Vec<&'static str>,
}

/// `bakehouse init`: creates the namespaces and tables, evolves existing tables to their
/// current definitions, and with `sample`, loads the shipped sample reference snapshot into
/// each reference table that has none yet (a user's snapshot is never replaced).
///
/// # Errors
/// Storage errors.
pub async fn init(deps: &Deps, sample: bool) -> Result<InitReport, HandlerError> {
    let mut report = InitReport {
        created: deps.lake.create_tables().await?,
        ..InitReport::default()
    };
    if !sample {
        return Ok(report);
    }
    for dataset in Dataset::REFERENCE {
        let Some(csv) = default_snapshot(dataset) else {
            continue;
        };
        let table = deps.lake.load(&TableDef::bronze(dataset)).await?;
        if Lakehouse::head(&table).is_none() {
            let key = format!("builtin:reference/{}.csv", dataset.name());
            ingest::ingest_bytes(deps, &key, Some(dataset), csv.as_bytes()).await?;
            report.sample_loaded.push(dataset.name());
        }
    }
    Ok(report)
}

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
        table
            .check_grain(grain)
            .map_err(|message| format!("{name} {message}"))?;
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
    /// Data files rewritten with values (each keeps its rows' sequence numbers: no hop sees
    /// them as new); files whose rows had nothing to fill are read, not rewritten.
    pub files: usize,
    pub counts: FillCounts,
}

/// The rows of the files a fill read that had the column null.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct FillCounts {
    /// Rows that got a value from their payload.
    pub filled: u64,
    /// Rows whose payload has no value for the column.
    pub absent: u64,
    /// Rows whose payload's value validation refuses today (left null), with the first reason.
    pub refused: u64,
    pub first_refusal: Option<String>,
}

impl FillCounts {
    fn add(&mut self, other: FillCounts) {
        self.filled += other.filled;
        self.absent += other.absent;
        self.refused += other.refused;
        self.first_refusal = self.first_refusal.take().or(other.first_refusal);
    }
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

/// Fills `fill.column` where it is null, from each row's payload as validation reads it today:
/// the files holding a null in the column (by their manifest's null count; every file when the
/// column has no count) are read, and those where a row gets a value are rewritten and
/// committed as an overwrite keeping their sequence numbers, [`FILES_PER_COMMIT`] at a time. A
/// value comes from the row's own payload, so filling a row again gives it the same value: a
/// second run, or one after an interruption, changes nothing twice; each run reads a file at
/// most once (a file it wrote, or found with nothing to fill, is not read again), and a file a
/// concurrent compaction replaced makes the commit re-plan.
///
/// # Errors
/// Storage errors.
pub async fn fill_from_payload(
    lake: &Lakehouse,
    fill: &ColumnFill,
) -> Result<FillOutcome, StorageError> {
    let mut outcome = FillOutcome {
        table: fill.table.qualified(),
        column: fill.column.to_string(),
        ..FillOutcome::default()
    };
    // Files read in this run that need nothing more, and what their rows were.
    let settled: Mutex<(HashSet<String>, FillCounts)> = Mutex::default();
    // The planned commit's counts and the files it writes (the last attempt's).
    let planned: Mutex<(FillCounts, Vec<String>)> = Mutex::default();
    loop {
        let (settled, planned) = (&settled, &planned);
        let committed = lake
            .commit_with(&fill.table, move |table| async move {
                let candidates: Vec<LiveFile> = lake
                    .live_files(&table)
                    .await?
                    .into_iter()
                    .filter(|f| f.null_count(&table, fill.column).is_none_or(|n| n > 0))
                    .filter(|f| !lock(settled).0.contains(f.path()))
                    .collect();
                let (mut remove, mut add_rewritten, mut counts) =
                    (Vec::new(), Vec::new(), FillCounts::default());
                for file in candidates {
                    if remove.len() == FILES_PER_COMMIT {
                        break;
                    }
                    let mut file_counts = FillCounts::default();
                    let filled = lake
                        .read_batches(&table, std::slice::from_ref(&file), None)
                        .await?
                        .iter()
                        .map(|batch| fill_batch(batch, fill, &mut file_counts))
                        .collect::<Result<Vec<_>, _>>()?;
                    if file_counts.filled == 0 {
                        let mut settled = lock(settled);
                        settled.0.insert(file.path().to_string());
                        settled.1.add(file_counts);
                        continue;
                    }
                    let written = lake
                        .write_batches(&table, filled, DEFAULT_TARGET_FILE_SIZE)
                        .await?;
                    add_rewritten.extend(written.into_iter().map(|f| (f, file.sequence_number)));
                    counts.add(file_counts);
                    remove.push(file);
                }
                if remove.is_empty() {
                    return Ok(None);
                }
                let written = add_rewritten
                    .iter()
                    .map(|(f, _)| f.file_path().to_string())
                    .collect();
                *lock(planned) = (counts, written);
                Ok(Some(CommitPlan::rewrite(
                    add_rewritten,
                    remove,
                    Default::default(),
                )))
            })
            .await?;
        let Some(commit) = committed else {
            break;
        };
        let (counts, written) = std::mem::take(&mut *lock(planned));
        outcome.files += commit.removed_files;
        outcome.counts.add(counts);
        lock(settled).0.extend(written);
    }
    let (_, read) = std::mem::take(&mut *lock(&settled));
    outcome.counts.add(read);
    info!(table = %outcome.table, column = %outcome.column, files = outcome.files, filled = outcome.counts.filled, "Column filled from the payload.");
    Ok(outcome)
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// `batch` with `fill.column` set, where null, from the row's payload (validated as the
/// dataset's record); the counts are of those rows.
fn fill_batch(
    batch: &RecordBatch,
    fill: &ColumnFill,
    counts: &mut FillCounts,
) -> Result<RecordBatch, StorageError> {
    let failed = |message: String| StorageError::Data {
        context: format!("fill {}.{}", fill.table.qualified(), fill.column),
        message,
    };
    let string_column = |name: &str| {
        batch
            .column_by_name(name)
            .and_then(|c| c.as_any().downcast_ref::<StringArray>())
    };
    let (Some(index), Some(current), Some(payload)) = (
        batch.schema().index_of(fill.column).ok(),
        string_column(fill.column),
        string_column("payload"),
    ) else {
        return Err(failed("no payload or target string column".to_string()));
    };
    let lineage = Lineage {
        source: String::new(),
        source_ref: String::new(),
        ingestion_time: 0,
    };
    let values: StringArray = (0..batch.num_rows())
        .map(|row| {
            if current.is_valid(row) {
                return Some(current.value(row).to_string());
            }
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
