//! The scheduled maintenance hop (SPEC §6): SCD Type 2 dimensions from every reference
//! snapshot not yet applied (and `fact_sales` keys looked up again where a change reaches
//! them), the daily quality and late-arrival reports, then compaction, snapshot expiry and
//! orphan removal of every table — reporting per table what it did.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Instant;

use futures::FutureExt;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tracing::{info, instrument, warn};

use super::reference::{latest_snapshot, read_versions};
use super::{Deps, checkpoint, sequence_property, source_changes, to_silver};
use super::{reference, to_gold};
use crate::adapters::lakehouse::{
    ALL_TABLES, CommitOutcome, CommitPlan, DEFAULT_TARGET_FILE_SIZE, DataFile, FileStats,
    Lakehouse, LiveFile, Table, TableDef, tables,
};
use crate::config::MaintenancePolicy;
use crate::domain::gold;
use crate::domain::records::*;
use crate::domain::reports::{SilverRows, data_quality_daily, late_arrivals_daily};
use crate::domain::scd2::{Changes, Dimension, SurrogateKeys, apply_snapshot};
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
    let mut reports = Reports::new();
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
    update_dimensions(lake, &mut reports).await?;

    // 2. Daily reports.
    for report in [tables::DATA_QUALITY_DAILY, tables::LATE_ARRIVALS_DAILY] {
        let started = Instant::now();
        let outcome = update_report(deps, &report).await?;
        record(&mut reports, &report, started, outcome);
    }

    // 3. Compaction, expiry and orphan removal of every table.
    for def in &ALL_TABLES {
        tidy(lake, def, &policy, now_micros, &mut reports).await?;
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

/// What maintenance did per table.
type Reports = BTreeMap<String, TableReport>;

/// SCD2 of the dimensions from the reference snapshots not yet applied, then the `fact_sales`
/// keys the changes reach.
async fn update_dimensions(lake: &Lakehouse, reports: &mut Reports) -> Result<(), StorageError> {
    let dimensions = [
        (tables::DIM_STORE, tables::BRONZE_STORES),
        (tables::DIM_PRODUCT, tables::BRONZE_PRODUCTS),
        (tables::DIM_CUSTOMER, tables::BRONZE_CUSTOMERS),
    ];
    let [store, product, customer] = &dimensions;
    for (dim, update) in [
        (
            &store.0,
            update_dimension::<DimStore>(lake, &store.0, &store.1).boxed(),
        ),
        (
            &product.0,
            update_dimension::<DimProduct>(lake, &product.0, &product.1).boxed(),
        ),
        (
            &customer.0,
            update_dimension::<DimCustomer>(lake, &customer.0, &customer.1).boxed(),
        ),
    ] {
        let started = Instant::now();
        let (outcome, applied) = update.await?;
        if let Some(r) = record(reports, dim, started, outcome) {
            r.versions_opened = applied.opened;
            r.versions_closed = applied.closed;
        }
    }
    let started = Instant::now();
    let outcome = update_equipment(lake).await?;
    record(reports, &tables::DIM_EQUIPMENT, started, outcome);
    let started = Instant::now();
    // A re-key that fails (a conflict storm, a timeout) is taken up by the next run: what it
    // has to do is recorded in fact_sales, not in this process.
    match rekey_sales(lake).await {
        Ok(outcomes) => {
            for outcome in outcomes {
                record(reports, &tables::FACT_SALES, started, Some(outcome));
            }
        }
        Err(e) => warn!(error = %e, "Re-keying fact_sales failed; the next run resumes it."),
    }
    Ok(())
}

/// Compaction, snapshot expiry and orphan removal of one table.
async fn tidy(
    lake: &Lakehouse,
    def: &TableDef,
    policy: &MaintenancePolicy,
    now_micros: i64,
    reports: &mut Reports,
) -> Result<(), StorageError> {
    let started = Instant::now();
    let processed = processed_by_readers(lake, def).await?;
    let compacted = lake.compact(def, policy, processed).await?;
    let (removed, added) = compacted
        .as_ref()
        .map_or((0, 0), |o| (o.removed_files, o.added_files));
    if let Some(r) = record(reports, def, started, compacted) {
        r.files_compacted = removed;
        r.files_written = added;
    }
    let started = Instant::now();
    let expired = lake.expire_snapshots(def, policy, now_micros).await?;
    let orphans = lake.remove_orphans(def, policy, now_micros).await?;
    let after: FileStats = lake.file_stats(def).await?;
    if let Some(r) = reports.get_mut(&def.qualified()) {
        r.snapshots_expired = expired;
        r.orphans_deleted = orphans.files;
        r.orphan_bytes_deleted = orphans.bytes;
        r.files_after = after.files;
        r.bytes_after = after.bytes;
        r.duration_ms += started.elapsed().as_millis() as u64;
    }
    Ok(())
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
    reports: &'r mut Reports,
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

/// Files one re-key commit rewrites at most: a large pass lands in steps, each a short commit
/// that a concurrent append forces to re-plan only its own step.
const REKEY_FILES_PER_COMMIT: usize = 32;

/// Looks `fact_sales`' keys up again where the dimensions changed since the state its keys
/// reflect (`bakehouse.keys-as-of`, lowered by any writer that keyed rows with an older state),
/// and rewrites the files whose keys move — only their key columns; each rewritten file keeps
/// its rows' sequence number. The files looked at: every file of the dates from the earliest
/// change on, and the files whose statistics show a key unresolved for a present id (nulls in
/// a key column beyond those of its id column) — all of them when that dimension gained a
/// member (its first version covers all earlier time), else those added since the last check
/// (`bakehouse.keys-checked-through`). No data file is read to choose them. Without a recorded
/// state (a new lake, or one written before keys were tracked) every file with an unresolved
/// key is looked at once.
async fn rekey_sales(lake: &Lakehouse) -> Result<Vec<CommitOutcome>, StorageError> {
    let keys = &reference::surrogate_keys(lake).await?;
    let current = keys.as_of();
    let table = lake.load(&tables::FACT_SALES).await?;
    let recorded = reference::keys_as_of(&table);
    let checked = sequence_property(&table, PROP_KEYS_CHECKED);
    let head = Lakehouse::head_sequence(&table);
    let (earliest, gained) = match recorded {
        Some(state) => keys.changes_since(state),
        None => (None, [true; 3]),
    };
    let from_day = earliest.map(date_of);
    let unresolved = |file: &LiveFile, (key, id): (&str, &str)| match file.null_count(&table, key) {
        Some(nulls) => nulls > file.null_count(&table, id).unwrap_or(0),
        None => Lakehouse::has_column(&table, key), // written before the key column existed
    };
    let candidates: Vec<LiveFile> = lake
        .live_files(&table)
        .await?
        .into_iter()
        .filter(|file| {
            from_day.is_some_and(|from| file.days.is_some_and(|(_, last)| last >= from))
                || gold::KEY_COLUMNS
                    .iter()
                    .zip(gained)
                    .any(|(&columns, gained)| {
                        (gained || file.sequence_number > checked) && unresolved(file, columns)
                    })
        })
        .collect();
    if candidates.is_empty() && recorded == Some(current) {
        return Ok(Vec::new());
    }
    let steps: Vec<&[LiveFile]> = if candidates.is_empty() {
        vec![&[]]
    } else {
        candidates.chunks(REKEY_FILES_PER_COMMIT).collect()
    };
    let last = steps.len() - 1;
    let mut outcomes = Vec::new();
    for (index, step) in steps.into_iter().enumerate() {
        let outcome = lake
            .commit_with(&tables::FACT_SALES, move |table| async move {
                let live: std::collections::HashSet<String> = lake
                    .live_files(&table)
                    .await?
                    .iter()
                    .map(|f| f.path().to_string())
                    .collect();
                let (mut add_rewritten, mut remove) = (Vec::new(), Vec::new());
                for file in step.iter().filter(|f| live.contains(f.path())) {
                    if let Some(rewritten) = rekey_file(lake, &table, file, keys).await? {
                        add_rewritten
                            .extend(rewritten.into_iter().map(|f| (f, file.sequence_number)));
                        remove.push(file.clone());
                    }
                }
                let mut properties = HashMap::new();
                if index == last {
                    // The keys now reflect `current` — unless a writer recorded an older state
                    // meanwhile: its rows were not looked at, so that state stays for next time.
                    if reference::keys_as_of(&table) == recorded {
                        properties.extend([reference::keys_as_of_value(current)]);
                    }
                    properties.insert(PROP_KEYS_CHECKED.to_string(), head.to_string());
                }
                if remove.is_empty() && properties.is_empty() {
                    return Ok(None);
                }
                Ok(Some(CommitPlan::rewrite(add_rewritten, remove, properties)))
            })
            .await?;
        outcomes.extend(outcome);
    }
    Ok(outcomes)
}

/// One `fact_sales` file with its keys looked up in `keys`, written anew; `None` when no key
/// moves.
async fn rekey_file(
    lake: &Lakehouse,
    table: &Table,
    file: &LiveFile,
    keys: &SurrogateKeys,
) -> Result<Option<Vec<DataFile>>, StorageError> {
    let batches = lake
        .read_batches(table, std::slice::from_ref(file), None)
        .await?;
    let mut rewritten = Vec::with_capacity(batches.len());
    let mut changed = false;
    for batch in batches {
        let rekeyed = gold::rekeyed_sales(&batch, keys).map_err(|e| StorageError::Data {
            context: format!("re-key {}", file.path()),
            message: e.to_string(),
        })?;
        changed |= rekeyed.is_some();
        rewritten.push(rekeyed.unwrap_or(batch));
    }
    if !changed {
        return Ok(None);
    }
    let files = lake
        .write_batches(table, rewritten, DEFAULT_TARGET_FILE_SIZE)
        .await?;
    Ok(Some(files))
}

/// Reference snapshots by (ingestion time, object): each a dimension's (id, attributes) rows.
type Snapshots<D> =
    BTreeMap<(i64, String), Vec<(<D as Dimension>::Id, <D as Dimension>::Attributes)>>;

/// Applies every full snapshot of a bronze reference table, oldest first, to an SCD2
/// dimension (those already applied change nothing), and rewrites the dimension when that
/// opened or closed a version. Returns the commit and the changes.
async fn update_dimension<D>(
    lake: &Lakehouse,
    dim: &TableDef,
    reference: &TableDef,
) -> Result<(Option<CommitOutcome>, Changes), StorageError>
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
    let (snapshots, result) = (&snapshots, &std::sync::Mutex::new(Changes::default()));
    let outcome = lake
        .commit_with(dim, |table| async move {
            let mut versions = read_versions::<D>(lake, &table).await?;
            let mut changes = Changes::default();
            for ((at, _), entries) in snapshots {
                changes += apply_snapshot(&mut versions, entries.iter().cloned(), *at);
            }
            if let Ok(mut slot) = result.lock() {
                *slot = changes;
            }
            if changes.is_empty() {
                return Ok(None);
            }
            let dim_rows: Vec<D> = versions.into_iter().map(D::from_version).collect();
            let add = lake.write_rows(&table, &dim_rows).await?;
            let remove = lake.live_files(&table).await?;
            Ok(Some(CommitPlan::overwrite(add, remove, HashMap::new())))
        })
        .await?;
    let changes = result.lock().map(|r| *r).unwrap_or_default();
    Ok((outcome, changes))
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
        let add = lake.write_rows(&table, wanted).await?;
        Ok(Some(CommitPlan::overwrite(add, files, HashMap::new())))
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
        let mut changes = Vec::with_capacity(sources.len());
        for source in sources {
            changes.push(source_changes(lake, &table, source).await?);
        }
        let dates: BTreeSet<i32> = changes
            .iter()
            .flat_map(|c| c.days.iter().copied())
            .collect();
        if dates.is_empty() {
            return Ok(None);
        }
        let properties: HashMap<String, String> =
            changes.iter().map(|c| c.checkpoint.clone()).collect();
        // Every file of the touched dates, of every source (also those unchanged).
        let mut files_by_source = Vec::new();
        for change in changes {
            let files = lake.files_of_days(&change.table, &dates).await?;
            files_by_source.push((change.table, files));
        }
        let [sales, readings, inventory, rest @ ..] = files_by_source.as_slice() else {
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
        let mut add = if let Some((quarantine_table, quarantine_files)) = rest.first() {
            let quarantine: Vec<QuarantineRow> =
                lake.read_rows(quarantine_table, quarantine_files).await?;
            let mut rows = data_quality_daily(&silver, &quarantine, &policy);
            rows.retain(|r| in_dates(r.business_date));
            lake.write_rows(&table, &rows).await?
        } else {
            let mut rows = late_arrivals_daily(&silver);
            rows.retain(|r| in_dates(r.business_date));
            lake.write_rows(&table, &rows).await?
        };
        let (remove, kept) = lake.replace_days(&table, &dates).await?;
        add.extend(kept);
        Ok(Some(CommitPlan::overwrite(add, remove, properties)))
    })
    .await
}
