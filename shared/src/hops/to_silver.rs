//! The bronze → silver hop: reads the bronze rows committed since the checkpoint kept in the
//! silver table's snapshot summary, batch by batch, drops ids silver already holds (first
//! ingested wins, across all time; looked up in the partitions the rows touch only), scores
//! and derives, and appends — checkpoint and rows in one commit.

use std::collections::BTreeMap;
use std::sync::{Mutex, PoisonError};

use arrow_array::RecordBatch;
use arrow_array::cast::AsArray;
use arrow_array::types::Int64Type;
use arrow_schema::{DataType, SchemaRef};
use aws_lambda_events::event::s3::S3Event;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tracing::{debug, info, instrument};

use super::reference::load_reference;
use super::{Deps, checkpoint, checkpoint_properties, new_source_files};
use crate::adapters::events::changed_tables;
use crate::adapters::lakehouse::{
    Columns, CommitOutcome, CommitPlan, DEFAULT_TARGET_FILE_SIZE, KeyProbe, Lakehouse, LiveFile,
    LookupStats, Table, TableDef, arrow_schema, batches_by_day, tables, write_produced,
};
use crate::domain::dataset::Dataset;
use crate::domain::records::*;
use crate::domain::reference::ReferenceIndex;
use crate::domain::reports::{Assessed, RowFigures};
use crate::domain::silver::{
    IdSet, SilverPolicy, dedupe_first, inventory_to_silver, reading_to_silver, sale_to_silver,
};
use crate::domain::time::date_of;
use crate::error::{HandlerError, StorageError};

/// The silver tables and the bronze table each is refined from.
pub const SILVER: [(TableDef, TableDef); 4] = [
    (tables::SILVER_SALES, tables::BRONZE_SALES),
    (
        tables::SILVER_EQUIPMENT_METRICS,
        tables::BRONZE_EQUIPMENT_METRICS,
    ),
    (tables::SILVER_INVENTORY, tables::BRONZE_INVENTORY),
    (tables::SILVER_WEATHER, tables::BRONZE_WEATHER),
];

/// The datasets refined into silver: those of [`SILVER`]'s bronze tables.
fn refined() -> Vec<Dataset> {
    SILVER
        .iter()
        .filter_map(|(_, bronze)| {
            Dataset::ALL
                .into_iter()
                .find(|d| TableDef::bronze(*d) == *bronze)
        })
        .collect()
}

/// Handles a wake-up: an S3 notification of bronze commits (or none: process everything).
///
/// # Errors
/// Storage errors.
#[instrument(skip_all)]
pub async fn handle(
    deps: &Deps,
    event: Option<&S3Event>,
) -> Result<Vec<CommitOutcome>, HandlerError> {
    let changed = event.map(changed_tables).unwrap_or_default();
    let datasets: Vec<Dataset> = refined()
        .into_iter()
        .filter(|d| changed.is_empty() || changed.contains(&format!("bronze.{}", d.bronze_table())))
        .collect();
    // A notification about other tables (a reference snapshot, say) still wakes every dataset.
    let datasets = if datasets.is_empty() {
        refined()
    } else {
        datasets
    };
    let mut outcomes = Vec::new();
    for dataset in datasets {
        outcomes.extend(process(deps, dataset).await?);
    }
    info!(
        commits = outcomes.len(),
        rows = outcomes.iter().map(|o| o.added_records).sum::<u64>(),
        "Silver caught up."
    );
    Ok(outcomes)
}

/// Brings the silver table of one dataset up to date with bronze.
///
/// # Errors
/// Storage errors.
pub async fn process(deps: &Deps, dataset: Dataset) -> Result<Option<CommitOutcome>, StorageError> {
    match dataset {
        Dataset::SalesEvents => {
            let how = Refining {
                id_column: "event_id",
                id_of: |b: &BronzeSale| &b.event_id,
                derive: sale_to_silver,
                partition_of: |s: &SilverSale| s.business_date,
            };
            refine(deps, &tables::BRONZE_SALES, &tables::SILVER_SALES, how).await
        }
        Dataset::EquipmentMetrics => {
            let how = Refining {
                id_column: "metric_id",
                id_of: |b: &BronzeReading| &b.metric_id,
                derive: reading_to_silver,
                partition_of: |s: &SilverReading| s.business_date,
            };
            let (bronze, silver) = (
                &tables::BRONZE_EQUIPMENT_METRICS,
                &tables::SILVER_EQUIPMENT_METRICS,
            );
            refine(deps, bronze, silver, how).await
        }
        Dataset::InventoryUpdates => {
            let how = Refining {
                id_column: "update_id",
                id_of: |b: &BronzeInventory| &b.update_id,
                derive: inventory_to_silver,
                partition_of: |s: &SilverInventory| s.business_date,
            };
            refine(
                deps,
                &tables::BRONZE_INVENTORY,
                &tables::SILVER_INVENTORY,
                how,
            )
            .await
        }
        Dataset::Weather => super::weather::refine(deps).await,
        // Reference snapshots go to the dimensions (maintenance), not to silver.
        Dataset::Stores | Dataset::Products | Dataset::Customers | Dataset::Equipment => Ok(None),
    }
}

/// How one dataset's bronze rows become silver rows.
struct Refining<B, S> {
    /// The natural id: first ingested wins.
    id_column: &'static str,
    id_of: fn(&B) -> &str,
    derive: fn(B, &ReferenceIndex, &SilverPolicy) -> S,
    /// The business date (the silver partition).
    partition_of: fn(&S) -> i32,
}

impl<B, S> Clone for Refining<B, S> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<B, S> Copy for Refining<B, S> {}

async fn refine<B, S>(
    deps: &Deps,
    bronze_def: &TableDef,
    silver_def: &TableDef,
    how: Refining<B, S>,
) -> Result<Option<CommitOutcome>, StorageError>
where
    B: DeserializeOwned + Send + 'static,
    S: Serialize + Assessed + Send + 'static,
{
    let lake = &deps.lake;
    let (policy, min_score) = (deps.config.silver, deps.config.gold.min_quality_score);
    // The figures of the attempt that committed (each attempt replaces them).
    let figures = &Mutex::new(None);
    let outcome = lake
        .commit_with(silver_def, move |silver| async move {
            // In commit order: "first ingested wins" across the bronze commits of one run too.
            let Some((bronze, new_files)) =
                new_source_files(lake, bronze_def, checkpoint(&silver)).await?
            else {
                return Ok(None);
            };
            // Boxed: the lookup's futures nested in the hop's overflow the compiler's layout depth.
            let held = held_already(lake, &bronze, &silver, &new_files, how.id_column);
            let mut seen = Box::pin(held).await?;
            // Room for every new id up front: no rehashing of a million ids mid-run. (Ids are
            // some 30 bytes; room reserved and not used is never touched, so costs no memory.)
            let ids: u64 = new_files.iter().map(LiveFile::record_count).sum();
            let ids = usize::try_from(ids).unwrap_or(0);
            seen.reserve(ids, ids.saturating_mul(32));
            // Batch by batch, so a hop holds a few batches of rows, not the whole input: this
            // task reads and decodes bronze (without payload: silver keeps none, and it is the
            // bulk of a bronze file) and encodes silver; the refinery's thread does the rest.
            let mut rows = lake.stream_batches(&bronze, new_files, Columns::except(&["payload"]));
            let (sender, receiver) = tokio::sync::mpsc::channel(1);
            let refinery = Refinery {
                bronze: receiver,
                how,
                seen,
                reference: load_reference(lake).await?,
                policy,
                min_score,
                schema: arrow_schema(&silver)?,
                table: silver_def.qualified(),
                figures: RowFigures::default(),
                ready: Vec::new().into_iter(),
            };
            let read = async move {
                // Decoded into row structs here: it balances the two threads' work.
                while let Some(batch) = rows.next_rows::<B>().await? {
                    if sender.send(batch).await.is_err() {
                        break; // the refinery stopped: the writer failed
                    }
                }
                Ok::<_, StorageError>(())
            };
            let written = write_produced(&silver, DEFAULT_TARGET_FILE_SIZE, 1, refinery);
            let (read, written) = tokio::join!(read, written);
            read?;
            let (add, refinery) = written?;
            *figures.lock().unwrap_or_else(PoisonError::into_inner) = Some(refinery.figures);
            Ok(Some(CommitPlan::append(
                add,
                checkpoint_properties(&bronze),
            )))
        })
        .await?;
    Ok(outcome.map(|o| CommitOutcome {
        figures: figures
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take(),
        ..o
    }))
}

/// The ids of the new bronze rows that silver holds already: only the silver partitions the
/// rows' event dates touch are looked in (a duplicate carries its original's event time, so
/// it lands in the same partition), and in them only the files and row groups whose bounds,
/// statistics and bloom filters admit one of the rows' ids and times. The cost follows the
/// batch, not the history.
async fn held_already(
    lake: &Lakehouse,
    bronze: &Table,
    silver: &Table,
    new_files: &[LiveFile],
    id_column: &str,
) -> Result<IdSet, StorageError> {
    if Lakehouse::head(silver).is_none() {
        return Ok(IdSet::default());
    }
    let mut probes: BTreeMap<i32, KeyProbe> = BTreeMap::new();
    let mut rows = lake.stream_batches(
        bronze,
        new_files.to_vec(),
        Columns::only(&[id_column, EVENT_TIME]),
    );
    let read = |e: String| {
        StorageError::data(format!("read {id_column} of {}", Lakehouse::name(bronze)))(e)
    };
    while let Some(batch) = rows.next().await? {
        let (Some(ids), Some(times)) = (
            batch.column_by_name(id_column),
            batch.column_by_name(EVENT_TIME),
        ) else {
            return Err(read("missing column".to_string()));
        };
        let ids = arrow_cast::cast(ids, &DataType::Utf8).map_err(|e| read(e.to_string()))?;
        let times = arrow_cast::cast(times, &DataType::Int64).map_err(|e| read(e.to_string()))?;
        let times = times.as_primitive::<Int64Type>();
        for (id, time) in ids.as_string::<i32>().iter().zip(times.iter()) {
            if let (Some(id), Some(time)) = (id, time) {
                let probe = probes.entry(date_of(time)).or_default();
                probe.keys.insert(id);
                probe.times.get_or_insert_with(Vec::new).push(time);
            }
        }
    }
    let silver_files = lake
        .files_of_days(silver, &probes.keys().copied().collect())
        .await?;
    let mut held = IdSet::default();
    let mut stats = LookupStats::default();
    for (day, mut probe) in probes {
        let files: Vec<LiveFile> = silver_files
            .iter()
            .filter(|f| f.holds(day))
            .cloned()
            .collect();
        if files.is_empty() {
            continue;
        }
        if let Some(times) = &mut probe.times {
            times.sort_unstable();
            times.dedup();
        }
        let (found, of_day) = lake
            .find_keys(silver, &files, id_column, EVENT_TIME, &probe, &[id_column])
            .await?;
        stats += of_day;
        for batch in found {
            if let Some(ids) = batch
                .column_by_name(id_column)
                .and_then(|c| c.as_string_opt::<i32>())
            {
                ids.iter().flatten().for_each(|id| {
                    held.insert(id);
                });
            }
        }
    }
    debug!(
        table = %Lakehouse::name(silver),
        files = stats.files,
        files_opened = stats.files_opened,
        row_groups = stats.row_groups,
        row_groups_read = stats.row_groups_read,
        held = held.len(),
        "Ids looked up."
    );
    Ok(held)
}

/// The event time column of every event dataset (bronze and silver).
const EVENT_TIME: &str = "event_time";

/// The CPU side of a refinement, on its own thread: batches of bronze rows in, in commit
/// order; the fresh silver rows out as (business date, Arrow batch), counted as they pass.
struct Refinery<B, S> {
    bronze: tokio::sync::mpsc::Receiver<Vec<B>>,
    how: Refining<B, S>,
    /// The ids silver holds, and those refined so far.
    seen: IdSet,
    reference: ReferenceIndex,
    policy: SilverPolicy,
    min_score: i32,
    schema: SchemaRef,
    /// The silver table's name, for errors.
    table: String,
    figures: RowFigures,
    /// Batches of the last bronze batch not handed out yet.
    ready: std::vec::IntoIter<RecordBatch>,
}

impl<B, S: Serialize + Assessed> Refinery<B, S> {
    fn refine(&mut self, rows: Vec<B>) -> Result<Vec<RecordBatch>, StorageError> {
        let read = rows.len();
        let (how, reference, policy) = (self.how, &self.reference, &self.policy);
        let fresh: Vec<S> = dedupe_first(rows, how.id_of, &mut self.seen)
            .map(|b| (how.derive)(b, reference, policy))
            .collect();
        self.figures
            .add(RowFigures::of(read, &fresh, self.min_score));
        batches_by_day(&self.table, &self.schema, &fresh, how.partition_of)
    }
}

impl<B, S: Serialize + Assessed> Iterator for Refinery<B, S> {
    type Item = Result<RecordBatch, StorageError>;

    /// Blocks for the reader's next batch: call on a blocking thread.
    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(ready) = self.ready.next() {
                return Some(Ok(ready));
            }
            let rows = self.bronze.blocking_recv()?;
            match self.refine(rows) {
                Ok(ready) => self.ready = ready.into_iter(),
                Err(e) => return Some(Err(e)),
            }
        }
    }
}
