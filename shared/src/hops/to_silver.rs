//! The bronze → silver hop: reads the bronze rows committed since the checkpoint kept in the
//! silver table's snapshot summary, batch by batch, drops ids silver already holds (first
//! ingested wins, across all time), scores and derives, and appends — checkpoint and rows in
//! one commit.

use std::sync::{Mutex, PoisonError};

use aws_lambda_events::event::s3::S3Event;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tracing::{info, instrument};

use super::{Deps, PROP_REFERENCE_OBJECT, PROP_REFERENCE_TIME, checkpoint, checkpoint_properties};
use crate::adapters::events::changed_tables;
use crate::adapters::iceberg::{
    Columns, CommitOutcome, CommitPlan, DEFAULT_TARGET_FILE_SIZE, Lakehouse, PartitionWriters,
    TableDef, batches_by_day, partition_day, tables,
};
use crate::domain::dataset::Dataset;
use crate::domain::records::*;
use crate::domain::reference::ReferenceIndex;
use crate::domain::reports::{Assessed, RowFigures};
use crate::domain::silver::{
    IdSet, dedupe_first, inventory_to_silver, reading_to_silver, sale_to_silver,
};
use crate::domain::time::date_of;
use crate::error::{HandlerError, StorageError};

/// The silver tables and the bronze table each is refined from.
pub const SILVER: [(TableDef, TableDef); 3] = [
    (tables::SILVER_SALES, tables::BRONZE_SALES),
    (
        tables::SILVER_EQUIPMENT_METRICS,
        tables::BRONZE_EQUIPMENT_METRICS,
    ),
    (tables::SILVER_INVENTORY, tables::BRONZE_INVENTORY),
];

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
    let datasets: Vec<Dataset> = Dataset::EVENTS
        .into_iter()
        .filter(|d| changed.is_empty() || changed.contains(&format!("bronze.{}", d.bronze_table())))
        .collect();
    // A notification about other tables (a reference snapshot, say) still wakes every dataset.
    let datasets = if datasets.is_empty() {
        Dataset::EVENTS.to_vec()
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

/// Brings the silver table of one event dataset up to date with bronze.
///
/// # Errors
/// Storage errors.
pub async fn process(deps: &Deps, dataset: Dataset) -> Result<Option<CommitOutcome>, StorageError> {
    let policy = deps.config.silver;
    match dataset {
        Dataset::SalesEvents => {
            refine(
                deps,
                &tables::BRONZE_SALES,
                &tables::SILVER_SALES,
                "event_id",
                |b: &BronzeSale| &b.event_id,
                |b, r| sale_to_silver(b, r, &policy),
                |s: &SilverSale| s.business_date,
            )
            .await
        }
        Dataset::EquipmentMetrics => {
            refine(
                deps,
                &tables::BRONZE_EQUIPMENT_METRICS,
                &tables::SILVER_EQUIPMENT_METRICS,
                "metric_id",
                |b: &BronzeReading| &b.metric_id,
                |b, r| reading_to_silver(b, r, &policy),
                |s: &SilverReading| s.business_date,
            )
            .await
        }
        Dataset::InventoryUpdates => {
            refine(
                deps,
                &tables::BRONZE_INVENTORY,
                &tables::SILVER_INVENTORY,
                "update_id",
                |b: &BronzeInventory| &b.update_id,
                |b, r| inventory_to_silver(b, r, &policy),
                |s: &SilverInventory| s.business_date,
            )
            .await
        }
        _ => Ok(None),
    }
}

async fn refine<B, S>(
    deps: &Deps,
    bronze_def: &TableDef,
    silver_def: &TableDef,
    id_column: &str,
    id_of: impl Fn(&B) -> &str + Sync,
    derive: impl Fn(B, &ReferenceIndex) -> S + Sync,
    partition_of: impl Fn(&S) -> i32 + Copy + Sync,
) -> Result<Option<CommitOutcome>, StorageError>
where
    B: DeserializeOwned + Send,
    S: Serialize + Assessed + Send + Sync,
{
    let (lake, id_of, derive) = (&deps.lake, &id_of, &derive);
    let min_score = deps.config.gold.min_quality_score;
    // The figures of the attempt that committed (each attempt replaces them).
    let figures = &Mutex::new(None);
    let outcome = lake
        .commit_with(silver_def, move |silver| async move {
            let done = checkpoint(&silver);
            let bronze = lake.load(bronze_def).await?;
            let Some(head) = bronze.metadata().current_snapshot() else {
                return Ok(None);
            };
            if head.sequence_number() <= done {
                return Ok(None);
            }
            let mut new_files: Vec<_> = lake
                .live_files(&bronze)
                .await?
                .into_iter()
                .filter(|f| f.sequence_number > done)
                .collect();
            // In commit order, whatever the manifests' order: "first ingested wins" across the
            // bronze commits of one run too.
            new_files.sort_by_key(|f| f.sequence_number);
            if new_files.is_empty() {
                // Only rewritten files (compaction) since the checkpoint: nothing new.
                return Ok(None);
            }
            let silver_files = lake.live_files(&silver).await?;
            let mut seen: IdSet = lake
                .read_strings(&silver, &silver_files, id_column)
                .await?
                .into_iter()
                .collect();
            // Room for every new row's id up front: no rehashing of a million ids mid-run.
            let incoming: u64 = new_files.iter().map(|f| f.data_file.record_count()).sum();
            seen.reserve(usize::try_from(incoming).unwrap_or(0));
            let reference = load_reference(lake).await?;
            // Batch by batch, so a hop holds one batch of rows, not the whole input. Silver keeps
            // no payload: it is not decoded (the bulk of a bronze file).
            let mut rows = lake.stream_batches(&bronze, new_files, Columns::except(&["payload"]));
            let mut writers = PartitionWriters::new(&silver, DEFAULT_TARGET_FILE_SIZE);
            let schema = writers.schema()?;
            let mut committed = RowFigures::default();
            while let Some(batch) = rows.next_rows::<B>().await? {
                let read = batch.len();
                let fresh: Vec<S> = dedupe_first(batch, id_of, &mut seen)
                    .map(|b| derive(b, &reference))
                    .collect();
                committed.add(RowFigures::of(read, &fresh, min_score));
                for (day, batch) in
                    batches_by_day(&silver_def.qualified(), &schema, &fresh, partition_of)?
                {
                    writers.write(day, batch).await?;
                }
            }
            *figures.lock().unwrap_or_else(PoisonError::into_inner) = Some(committed);
            let add = writers.close().await?;
            Ok(Some(CommitPlan::append(add, checkpoint_properties(head))))
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

/// The ids of the current reference snapshots ("known" in SPEC §4).
///
/// # Errors
/// Storage errors.
pub async fn load_reference(lake: &Lakehouse) -> Result<ReferenceIndex, StorageError> {
    let stores: Vec<BronzeStore> = latest_snapshot(lake, &tables::BRONZE_STORES).await?;
    let products: Vec<BronzeProduct> = latest_snapshot(lake, &tables::BRONZE_PRODUCTS).await?;
    let equipment: Vec<BronzeEquipment> = latest_snapshot(lake, &tables::BRONZE_EQUIPMENT).await?;
    Ok(ReferenceIndex::new(&stores, &products, &equipment))
}

/// The rows of the latest full snapshot ingested into a bronze reference table.
///
/// # Errors
/// Storage errors.
pub async fn latest_snapshot<T: DeserializeOwned + Ingested>(
    lake: &Lakehouse,
    def: &TableDef,
) -> Result<Vec<T>, StorageError> {
    let table = lake.load(def).await?;
    let (Some(object), Some(time)) = (
        Lakehouse::snapshot_property(&table, PROP_REFERENCE_OBJECT).map(str::to_string),
        Lakehouse::snapshot_property(&table, PROP_REFERENCE_TIME)
            .and_then(|v| v.parse::<i64>().ok()),
    ) else {
        return Ok(Vec::new());
    };
    let files: Vec<_> = lake
        .live_files(&table)
        .await?
        .into_iter()
        .filter(|f| partition_day(&f.data_file).is_none_or(|d| d == date_of(time)))
        .collect();
    let prefix = format!("{object}:");
    let rows: Vec<T> = lake.read_rows(&table, &files).await?;
    Ok(rows
        .into_iter()
        .filter(|r| r.ingestion_time() == time && r.source_ref().starts_with(&prefix))
        .collect())
}
