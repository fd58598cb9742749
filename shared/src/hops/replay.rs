//! `bakehouse replay`: re-validates quarantined event records (after a fix to the validator or
//! to the records' producer's contract) and moves the ones that now pass into their bronze
//! table, exactly once.
//!
//! A moved record keeps its lineage — `source`, `source_ref` and the original
//! `ingestion_time` — so the pair (`source_ref`, `ingestion_time`) identifies it in both tables.
//! Two commits: first the bronze append, which skips records bronze already holds (checked
//! inside the commit, so a concurrent replay cannot double them); then the quarantine rewrite
//! that drops every moved record. A replay stopped between the two finishes the move when run
//! again, without a second copy in bronze.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use base64::Engine;
use serde::Serialize;
use tracing::{info, instrument};

use super::Deps;
use crate::adapters::lakehouse::{
    CommitPlan, DataFile, Lakehouse, LiveFile, Table, TableDef, tables,
};
use crate::domain::dataset::Dataset;
use crate::domain::decode::{Decoded, RawRecord};
use crate::domain::records::{Ingested, Lineage, QuarantineRow};
use crate::domain::time::date_of;
use crate::domain::validate::{BronzeRecord, validate};
use crate::error::StorageError;

/// Which quarantined records to try again (`None`: any).
#[derive(Clone, Debug, Default)]
pub struct ReplayFilter {
    pub dataset: Option<Dataset>,
    pub error_code: Option<String>,
}

/// What a replay did.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct ReplaySummary {
    /// Quarantined event records the filter selected and re-validated.
    pub examined: usize,
    /// Records appended per bronze table.
    pub moved: BTreeMap<String, u64>,
    /// Records that pass but were already in bronze (an interrupted earlier replay).
    pub already_in_bronze: usize,
    /// Records removed from the quarantine table.
    pub removed_from_quarantine: u64,
    /// Records that still fail, by their new error code (they stay in quarantine).
    pub still_failing: BTreeMap<String, usize>,
}

/// A record's identity in bronze and quarantine alike.
type RecordKey = (String, i64);

/// Re-validates the selected quarantined records and moves those that pass.
///
/// # Errors
/// Storage errors (nothing is lost: a rerun completes the move).
#[instrument(skip_all)]
pub async fn replay(deps: &Deps, filter: &ReplayFilter) -> Result<ReplaySummary, StorageError> {
    let lake = &deps.lake;
    let rows: Vec<QuarantineRow> = lake.read_table(&tables::QUARANTINE).await?;
    let mut summary = ReplaySummary::default();
    let mut passing: BTreeMap<Dataset, Vec<BronzeRecord>> = BTreeMap::new();
    for row in &rows {
        let Some(dataset) = event_dataset(&row.dataset) else {
            continue;
        };
        if filter.dataset.is_some_and(|d| d != dataset)
            || filter
                .error_code
                .as_ref()
                .is_some_and(|c| *c != row.error_code)
        {
            continue;
        }
        summary.examined += 1;
        match revalidate(dataset, row) {
            Ok(record) => passing.entry(dataset).or_default().push(record),
            Err(code) => *summary.still_failing.entry(code).or_default() += 1,
        }
    }
    let mut moved: HashSet<RecordKey> = HashSet::new();
    for (dataset, records) in passing {
        let def = TableDef::bronze(dataset);
        moved.extend(records.iter().map(key_of));
        let (appended, present) = append_new(lake, &def, records).await?;
        if appended > 0 {
            summary.moved.insert(def.qualified(), appended);
        }
        summary.already_in_bronze += present;
    }
    if !moved.is_empty() {
        summary.removed_from_quarantine = remove_from_quarantine(lake, &moved).await?;
    }
    info!(
        examined = summary.examined,
        removed = summary.removed_from_quarantine,
        "Replay done."
    );
    Ok(summary)
}

/// The event dataset (the ones replay moves) named `name`.
pub fn event_dataset(name: &str) -> Option<Dataset> {
    name.parse::<Dataset>().ok().filter(|d| !d.is_reference())
}

/// The record a quarantine row holds, validated again; or the code it fails with now.
fn revalidate(dataset: Dataset, row: &QuarantineRow) -> Result<BronzeRecord, String> {
    let bytes = match row.raw_encoding.as_str() {
        "base64" => base64::engine::general_purpose::STANDARD
            .decode(&row.raw)
            .map_err(|_| "bad_base64".to_string())?,
        _ => row.raw.clone().into_bytes(),
    };
    let record = RawRecord {
        source_ref: row.source_ref.clone(),
        bytes: bytes.into(),
        decoded: Decoded::Json,
    };
    let lineage = Lineage {
        source: row.source.clone(),
        source_ref: row.source_ref.clone(),
        ingestion_time: row.ingestion_time,
    };
    validate(dataset, &record, &lineage).map_err(|r| r.code.code().to_string())
}

fn key_of(record: &BronzeRecord) -> RecordKey {
    let ingested: &dyn Ingested = match record {
        BronzeRecord::Sale(r) => r,
        BronzeRecord::Reading(r) => r,
        BronzeRecord::Inventory(r) => r,
        BronzeRecord::Store(r) => r,
        BronzeRecord::Product(r) => r,
        BronzeRecord::Customer(r) => r,
        BronzeRecord::Equipment(r) => r,
        BronzeRecord::Weather(r) => r,
    };
    (ingested.source_ref().to_string(), ingested.ingestion_time())
}

/// Appends the records bronze does not hold yet (checked against the table each attempt
/// commits on); returns how many were appended and how many were already there.
async fn append_new(
    lake: &Lakehouse,
    def: &TableDef,
    records: Vec<BronzeRecord>,
) -> Result<(u64, usize), StorageError> {
    let days: BTreeSet<i32> = records.iter().map(|r| date_of(key_of(r).1)).collect();
    let (records, days) = (&records, &days);
    let present = &std::sync::Mutex::new(0usize);
    let outcome = lake
        .commit_with(def, move |table| async move {
            let files = in_days(lake.live_files(&table).await?, days);
            let held: HashSet<RecordKey> = lake
                .read_rows_without::<Lineage>(&table, &files, &["payload"])
                .await?
                .into_iter()
                .map(|l| (l.source_ref, l.ingestion_time))
                .collect();
            let new: Vec<&BronzeRecord> = records
                .iter()
                .filter(|r| !held.contains(&key_of(r)))
                .collect();
            *present
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner) = records.len() - new.len();
            if new.is_empty() {
                return Ok(None);
            }
            let add = write_records(lake, &table, &new).await?;
            Ok(Some(CommitPlan::append(add, Default::default())))
        })
        .await?;
    let present = *present
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    Ok((outcome.map_or(0, |o| o.added_records), present))
}

/// Writes validated records of one event dataset to its bronze table's data files.
async fn write_records(
    lake: &Lakehouse,
    table: &Table,
    records: &[&BronzeRecord],
) -> Result<Vec<DataFile>, StorageError> {
    macro_rules! write_variant {
        ($variant:ident) => {{
            let rows: Vec<_> = records
                .iter()
                .filter_map(|r| match r {
                    BronzeRecord::$variant(row) => Some(row.clone()),
                    _ => None,
                })
                .collect();
            lake.write_rows(table, &rows).await
        }};
    }
    match records.first() {
        Some(BronzeRecord::Sale(_)) => write_variant!(Sale),
        Some(BronzeRecord::Reading(_)) => write_variant!(Reading),
        Some(BronzeRecord::Inventory(_)) => write_variant!(Inventory),
        _ => Ok(Vec::new()),
    }
}

/// Rewrites the quarantine files holding a moved record without it; returns the records
/// removed.
async fn remove_from_quarantine(
    lake: &Lakehouse,
    moved: &HashSet<RecordKey>,
) -> Result<u64, StorageError> {
    let outcome = lake
        .commit_with(&tables::QUARANTINE, move |table| async move {
            let days: BTreeSet<i32> = moved.iter().map(|(_, t)| date_of(*t)).collect();
            let mut remove = Vec::new();
            let mut add = Vec::new();
            for file in in_days(lake.live_files(&table).await?, &days) {
                let rows: Vec<QuarantineRow> =
                    lake.read_rows(&table, std::slice::from_ref(&file)).await?;
                let kept: Vec<&QuarantineRow> = rows
                    .iter()
                    .filter(|r| !moved.contains(&(r.source_ref.clone(), r.ingestion_time)))
                    .collect();
                if kept.len() < rows.len() {
                    add.extend(lake.write_rows(&table, &kept).await?);
                    remove.push(file);
                }
            }
            if remove.is_empty() {
                return Ok(None);
            }
            Ok(Some(CommitPlan::overwrite(add, remove, Default::default())))
        })
        .await?;
    Ok(outcome.map_or(0, |o| o.removed_records.saturating_sub(o.added_records)))
}

/// The files of the partitions (ingestion dates) `days`; unpartitioned files are kept.
fn in_days(files: Vec<LiveFile>, days: &BTreeSet<i32>) -> Vec<LiveFile> {
    files.into_iter().filter(|f| f.holds_any(days)).collect()
}
