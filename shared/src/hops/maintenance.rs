//! The scheduled maintenance hop (SPEC §6): SCD Type 2 dimensions from every reference
//! snapshot not yet applied (and `fact_sales` keys looked up again where a change reaches
//! them), the daily quality and late-arrival reports, then compaction, snapshot expiry and
//! orphan removal of every table — reporting per table what it did.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Instant;

use serde::Serialize;
use serde::de::DeserializeOwned;
use tracing::{info, instrument};

use super::reference::{latest_snapshot, read_versions};
use super::{Deps, checkpoint, source_checkpoint, to_silver};
use super::{reference, to_gold};
use crate::adapters::iceberg::{
    ALL_TABLES, CommitOutcome, CommitPlan, DEFAULT_TARGET_FILE_SIZE, FileStats, Lakehouse,
    LiveFile, Operation, TableDef, partition_day, tables,
};
use crate::domain::gold;
use crate::domain::records::*;
use crate::domain::reports::{SilverRows, data_quality_daily, late_arrivals_daily};
use crate::domain::scd2::{Changes, Dimension, apply_snapshot};
use crate::domain::time::date_of;
use crate::error::{HandlerError, StorageError};

/// What maintenance did to one table.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct TableReport {
    pub table: String,
    pub files_before: usize,
    pub bytes_before: u64,
    pub files_after: usize,
    pub bytes_after: u64,
    /// Snapshots committed by maintenance (dimension, report, recomputed facts, compaction).
    pub commits: usize,
    /// Data files rewritten by compaction, and the files they became.
    pub files_compacted: usize,
    pub files_written: usize,
    pub snapshots_expired: usize,
    pub orphans_deleted: usize,
    pub orphan_bytes_deleted: u64,
    pub versions_opened: usize,
    pub versions_closed: usize,
    /// Time maintenance spent on this table.
    pub duration_ms: u64,
}

/// What one maintenance run did.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct MaintenanceReport {
    pub tables: Vec<TableReport>,
    pub commits: usize,
    pub duration_ms: u64,
}

/// Runs every maintenance task once, at `now_micros` (the clock for expiry and orphan ages).
///
/// # Errors
/// Storage errors.
#[instrument(skip_all)]
pub async fn handle(deps: &Deps, now_micros: i64) -> Result<MaintenanceReport, HandlerError> {
    let run_started = Instant::now();
    let lake = &deps.lake;
    let policy = deps.config.maintenance;
    let mut reports: BTreeMap<String, TableReport> = BTreeMap::new();
    for def in &ALL_TABLES {
        let before = lake.file_stats(def).await?;
        reports.insert(
            def.qualified(),
            TableReport {
                table: def.qualified(),
                files_before: before.files,
                bytes_before: before.bytes,
                ..TableReport::default()
            },
        );
    }

    // 1. Dimensions; then fact_sales keys the changes reach.
    let mut changes = KeyChanges::default();
    for (index, (dim, reference)) in [
        (tables::DIM_STORE, tables::BRONZE_STORES),
        (tables::DIM_PRODUCT, tables::BRONZE_PRODUCTS),
        (tables::DIM_CUSTOMER, tables::BRONZE_CUSTOMERS),
    ]
    .into_iter()
    .enumerate()
    {
        let started = Instant::now();
        let (outcome, applied, earliest) = match dim.name {
            "dim_store" => update_dimension::<DimStore>(lake, &dim, &reference).await?,
            "dim_product" => update_dimension::<DimProduct>(lake, &dim, &reference).await?,
            _ => update_dimension::<DimCustomer>(lake, &dim, &reference).await?,
        };
        if let Some(r) = record(&mut reports, &dim, started, outcome) {
            r.versions_opened = applied.opened;
            r.versions_closed = applied.closed;
        }
        changes.opened[index] = applied.opened > 0;
        if let Some(t) = earliest {
            changes.earliest = Some(changes.earliest.map_or(t, |c: i64| c.min(t)));
        }
    }
    let started = Instant::now();
    let outcome = update_equipment(lake).await?;
    record(&mut reports, &tables::DIM_EQUIPMENT, started, outcome);
    let started = Instant::now();
    let outcome = rekey_sales(lake, &changes).await?;
    record(&mut reports, &tables::FACT_SALES, started, outcome);

    // 2. Daily reports.
    for report in [tables::DATA_QUALITY_DAILY, tables::LATE_ARRIVALS_DAILY] {
        let started = Instant::now();
        let outcome = update_report(deps, &report).await?;
        record(&mut reports, &report, started, outcome);
    }

    // 3. Compaction, expiry and orphan removal of every table.
    for def in &ALL_TABLES {
        let started = Instant::now();
        let processed = processed_by_readers(lake, def).await?;
        let compacted = lake.compact(def, &policy, processed).await?;
        let (removed, added) = compacted
            .as_ref()
            .map_or((0, 0), |o| (o.removed_files, o.added_files));
        if let Some(r) = record(&mut reports, def, started, compacted) {
            r.files_compacted = removed;
            r.files_written = added;
        }
        let started = Instant::now();
        let expired = lake.expire_snapshots(def, &policy, now_micros).await?;
        let orphans = lake.remove_orphans(def, &policy, now_micros).await?;
        let after: FileStats = lake.file_stats(def).await?;
        if let Some(r) = reports.get_mut(&def.qualified()) {
            r.snapshots_expired = expired;
            r.orphans_deleted = orphans.files;
            r.orphan_bytes_deleted = orphans.bytes;
            r.files_after = after.files;
            r.bytes_after = after.bytes;
            r.duration_ms += started.elapsed().as_millis() as u64;
        }
    }
    let tables: Vec<TableReport> = reports.into_values().collect();
    let report = MaintenanceReport {
        commits: tables.iter().map(|t| t.commits).sum(),
        tables,
        duration_ms: run_started.elapsed().as_millis() as u64,
    };
    info!(
        commits = report.commits,
        expired = report
            .tables
            .iter()
            .map(|t| t.snapshots_expired)
            .sum::<usize>(),
        orphans = report
            .tables
            .iter()
            .map(|t| t.orphans_deleted)
            .sum::<usize>(),
        duration_ms = report.duration_ms,
        "Maintenance done."
    );
    Ok(report)
}

/// The source sequence number every hop reading `def` incrementally has processed (the
/// lowest of their checkpoints), or `None` when no hop reads it so. Compaction rewrites only
/// files below it: a rewritten file keeps its inputs' highest sequence number, and a reader
/// must not take rows it has processed for new ones.
async fn processed_by_readers(
    lake: &Lakehouse,
    def: &TableDef,
) -> Result<Option<i64>, StorageError> {
    let readers: Vec<TableDef> = to_silver::SILVER
        .iter()
        .chain(&to_gold::FACTS)
        .filter(|(_, source)| source == def)
        .map(|(reader, _)| *reader)
        .collect();
    let mut processed = None;
    for reader in &readers {
        let done = checkpoint(&lake.load(reader).await?);
        processed = Some(processed.map_or(done, |p: i64| p.min(done)));
    }
    Ok(processed)
}

/// Adds a step's time to its table's report, and counts its commit if it made one (then
/// returns the report to fill in).
fn record<'r>(
    reports: &'r mut BTreeMap<String, TableReport>,
    def: &TableDef,
    started: Instant,
    outcome: Option<CommitOutcome>,
) -> Option<&'r mut TableReport> {
    let report = reports.get_mut(&def.qualified())?;
    report.duration_ms += started.elapsed().as_millis() as u64;
    outcome?;
    report.commits += 1;
    Some(report)
}

/// `fact_sales`' checkpoint for its keys: the sequence number through which its files' keys
/// were checked against the dimensions.
const PROP_KEYS_CHECKED: &str = "bakehouse.keys-checked-through";

/// What this run's dimension updates changed, as far as `fact_sales`' keys are concerned.
#[derive(Clone, Copy, Debug, Default)]
struct KeyChanges {
    /// The earliest time a version opened or closed: keys of later events may move.
    earliest: Option<i64>,
    /// Per dimension, in [`gold::KEY_COLUMNS`]' order: whether a version opened, so a key
    /// unresolved until now may resolve (a new member's first version covers all earlier time).
    opened: [bool; 3],
}

/// Looks `fact_sales`' keys up again where they may have changed, and rewrites the files whose
/// keys did: the files of every date from the earliest dimension change on; the files whose
/// statistics show keys unresolved for a known id (nulls in a key column beyond those of its
/// id column) — every such file when its dimension opened a version, else those added since
/// the last check. So a fact that arrived before its store, product or customer was known
/// gets its key at the next maintenance, and a lake keyed by older rules is fixed whole once.
/// The rows stay as they are; only the three key columns change.
async fn rekey_sales(
    lake: &Lakehouse,
    changes: &KeyChanges,
) -> Result<Option<CommitOutcome>, StorageError> {
    let keys = &reference::surrogate_keys(lake).await?;
    let from_day = changes.earliest.map(date_of);
    lake.commit_with(&tables::FACT_SALES, move |table| async move {
        let checked: i64 = Lakehouse::snapshot_property(&table, PROP_KEYS_CHECKED)
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let head = table
            .metadata()
            .current_snapshot()
            .map_or(0, |s| s.sequence_number());
        let has_column = |name: &str| {
            table
                .metadata()
                .current_schema()
                .field_by_name(name)
                .is_some()
        };
        let unresolved =
            |file: &LiveFile, (key, id): (&str, &str)| match file.null_count(&table, key) {
                Some(nulls) => nulls > file.null_count(&table, id).unwrap_or(0),
                None => has_column(key), // written before the key column existed
            };
        let candidates: Vec<LiveFile> = lake
            .live_files(&table)
            .await?
            .into_iter()
            .filter(|file| {
                let day = partition_day(&file.data_file);
                from_day.is_some_and(|from| day.is_some_and(|d| d >= from))
                    || gold::KEY_COLUMNS
                        .iter()
                        .zip(changes.opened)
                        .any(|(&columns, opened)| {
                            (opened || file.sequence_number > checked) && unresolved(file, columns)
                        })
            })
            .collect();
        // Files read for the first time: the checkpoint moves past them even if none changes.
        let first_check = candidates.iter().any(|f| f.sequence_number > checked);
        let (mut add, mut remove) = (Vec::new(), Vec::new());
        for file in candidates {
            let batches = lake
                .read_batches(&table, std::slice::from_ref(&file), None)
                .await?;
            let mut rewritten = Vec::with_capacity(batches.len());
            let mut changed = false;
            for batch in batches {
                let rekeyed =
                    gold::rekeyed_sales(&batch, keys).map_err(|e| StorageError::Data {
                        context: format!("re-key {}", file.path()),
                        message: e.to_string(),
                    })?;
                changed |= rekeyed.is_some();
                rewritten.push(rekeyed.unwrap_or(batch));
            }
            if changed {
                let day = partition_day(&file.data_file);
                add.extend(
                    lake.write_batches(&table, vec![(day, rewritten)], DEFAULT_TARGET_FILE_SIZE)
                        .await?,
                );
                remove.push(file);
            }
        }
        if remove.is_empty() && !first_check {
            return Ok(None);
        }
        let properties = HashMap::from([(PROP_KEYS_CHECKED.to_string(), (head + 1).to_string())]);
        Ok(Some(CommitPlan::overwrite(add, remove, properties)))
    })
    .await
}

/// Reference snapshots by (ingestion time, object): each a dimension's (id, attributes) rows.
type Snapshots<D> =
    BTreeMap<(i64, String), Vec<(<D as Dimension>::Id, <D as Dimension>::Attributes)>>;

/// Applies every full snapshot of a bronze reference table, oldest first, to an SCD2
/// dimension (those already applied change nothing), and rewrites the dimension when that
/// opened or closed a version. Returns the commit, the changes, and the earliest change time.
async fn update_dimension<D>(
    lake: &Lakehouse,
    dim: &TableDef,
    reference: &TableDef,
) -> Result<(Option<CommitOutcome>, Changes, Option<i64>), StorageError>
where
    D: Dimension + Serialize + DeserializeOwned + Send + Sync,
    D::Reference: DeserializeOwned + Ingested + Send,
    D::Id: Send + Sync,
    D::Attributes: Send + Sync,
{
    let bronze = lake.load(reference).await?;
    let files = lake.live_files(&bronze).await?;
    let rows: Vec<D::Reference> = lake.read_rows(&bronze, &files).await?;
    // One snapshot = the rows of one object ingested at one time, in file line order.
    let mut snapshots: Snapshots<D> = BTreeMap::new();
    for row in &rows {
        let object = row
            .source_ref()
            .rsplit_once(':')
            .map_or(row.source_ref(), |(object, _)| object);
        snapshots
            .entry((row.ingestion_time(), object.to_string()))
            .or_default()
            .push(D::entry(row));
    }
    let (snapshots, result) = (
        &snapshots,
        &std::sync::Mutex::new((Changes::default(), None)),
    );
    let outcome = lake
        .commit_with(dim, |table| async move {
            let mut versions = read_versions::<D>(lake, &table).await?;
            let mut changes = Changes::default();
            let mut earliest = None;
            for ((at, _), entries) in snapshots {
                let applied = apply_snapshot(&mut versions, entries.iter().cloned(), *at);
                if !applied.is_empty() {
                    earliest.get_or_insert(*at);
                }
                changes += applied;
            }
            if let Ok(mut slot) = result.lock() {
                *slot = (changes, earliest);
            }
            if changes.is_empty() {
                return Ok(None);
            }
            let dim_rows: Vec<D> = versions.into_iter().map(D::from_version).collect();
            let add = lake.write_rows(&table, &dim_rows, |_| 0).await?;
            Ok(Some(CommitPlan {
                operation: Operation::Overwrite,
                add,
                add_rewritten: Vec::new(),
                remove: lake.live_files(&table).await?,
                properties: HashMap::new(),
                keep_added_on_conflict: false,
            }))
        })
        .await?;
    let (changes, earliest) = result.lock().map(|r| *r).unwrap_or_default();
    Ok((outcome, changes, earliest))
}

/// `dim_equipment` (type 1): rewritten as the latest equipment snapshot when they differ.
async fn update_equipment(lake: &Lakehouse) -> Result<Option<CommitOutcome>, StorageError> {
    let latest: Vec<BronzeEquipment> = latest_snapshot(lake, &tables::BRONZE_EQUIPMENT).await?;
    let mut wanted: Vec<DimEquipment> = latest
        .into_iter()
        .map(|e| DimEquipment {
            equipment_id: e.equipment_id,
            store_id: e.store_id,
            equipment_type: e.equipment_type,
            name: e.name,
        })
        .collect();
    wanted.sort_by_key(|e| e.equipment_id);
    wanted.dedup_by_key(|e| e.equipment_id);
    let wanted = &wanted;
    lake.commit_with(&tables::DIM_EQUIPMENT, move |table| async move {
        let files = lake.live_files(&table).await?;
        let mut current: Vec<DimEquipment> = lake.read_rows(&table, &files).await?;
        current.sort_by_key(|e| e.equipment_id);
        if current == *wanted {
            return Ok(None);
        }
        Ok(Some(CommitPlan {
            operation: Operation::Overwrite,
            add: lake.write_rows(&table, wanted, |_| 0).await?,
            add_rewritten: Vec::new(),
            remove: files,
            properties: HashMap::new(),
            keep_added_on_conflict: false,
        }))
    })
    .await
}

/// Brings a daily report up to date: the business dates that silver (and, for the quality
/// report, quarantine) files committed since its checkpoints touch are recomputed from every
/// row of those dates, and their partitions replaced.
async fn update_report(
    deps: &Deps,
    report: &TableDef,
) -> Result<Option<CommitOutcome>, StorageError> {
    let lake = &deps.lake;
    let policy = deps.config.gold;
    let mut sources = vec![
        tables::SILVER_SALES,
        tables::SILVER_EQUIPMENT_METRICS,
        tables::SILVER_INVENTORY,
    ];
    if *report == tables::DATA_QUALITY_DAILY {
        sources.push(tables::QUARANTINE);
    }
    let sources = &sources;
    lake.commit_with(report, move |table| async move {
        let mut loaded = Vec::new();
        let mut dates: BTreeSet<i32> = BTreeSet::new();
        let mut properties = HashMap::new();
        for source in sources {
            let source_table = lake.load(source).await?;
            let key = source_checkpoint(source);
            let done: i64 = Lakehouse::snapshot_property(&table, &key)
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            let head = source_table
                .metadata()
                .current_snapshot()
                .map_or(0, |s| s.sequence_number());
            properties.insert(key, head.to_string());
            let files = if head > done {
                lake.live_files(&source_table).await?
            } else {
                Vec::new()
            };
            dates.extend(
                files
                    .iter()
                    .filter(|f| f.sequence_number > done)
                    .filter_map(|f| partition_day(&f.data_file)),
            );
            loaded.push((source_table, files));
        }
        if dates.is_empty() {
            return Ok(None);
        }
        // Every file of the touched dates, of every source (also those unchanged).
        let mut rows_of = Vec::new();
        for (source_table, files) in loaded {
            let files = if files.is_empty() {
                lake.live_files(&source_table).await?
            } else {
                files
            };
            let of_dates: Vec<_> = files
                .into_iter()
                .filter(|f| partition_day(&f.data_file).is_some_and(|d| dates.contains(&d)))
                .collect();
            rows_of.push((source_table, of_dates));
        }
        let [sales, readings, inventory, rest @ ..] = rows_of.as_slice() else {
            return Ok(None);
        };
        let sales: Vec<SilverSale> = lake.read_rows(&sales.0, &sales.1).await?;
        let readings: Vec<SilverReading> = lake.read_rows(&readings.0, &readings.1).await?;
        let inventory: Vec<SilverInventory> = lake.read_rows(&inventory.0, &inventory.1).await?;
        let silver = SilverRows {
            sales: &sales,
            readings: &readings,
            inventory: &inventory,
        };
        let in_dates = |d: i32| dates.contains(&d);
        let add = if let Some((quarantine_table, quarantine_files)) = rest.first() {
            let quarantine: Vec<QuarantineRow> =
                lake.read_rows(quarantine_table, quarantine_files).await?;
            let mut rows = data_quality_daily(&silver, &quarantine, &policy);
            rows.retain(|r| in_dates(r.business_date));
            lake.write_rows(&table, &rows, |r| r.business_date).await?
        } else {
            let mut rows = late_arrivals_daily(&silver);
            rows.retain(|r| in_dates(r.business_date));
            lake.write_rows(&table, &rows, |r| r.business_date).await?
        };
        let remove = lake
            .live_files(&table)
            .await?
            .into_iter()
            .filter(|f| partition_day(&f.data_file).is_some_and(in_dates))
            .collect();
        Ok(Some(CommitPlan {
            operation: Operation::Overwrite,
            add,
            add_rewritten: Vec::new(),
            remove,
            properties,
            keep_added_on_conflict: false,
        }))
    })
    .await
}
