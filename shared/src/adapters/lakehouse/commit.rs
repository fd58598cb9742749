//! Our Iceberg commit: append, overwrite and replace in one protocol, with compare-and-swap
//! on the catalog pointer and re-planning on conflict (NOTES.md explains why the crate's own
//! `Transaction` is not enough). Steps: reuse untouched manifests, rewrite those holding a
//! removed file, add a manifest for new files, write the manifest list, the snapshot and the
//! next metadata file, then swap the catalog pointer only if it still names the metadata the
//! plan was made from (`pointer.rs`). A lost swap deletes what the attempt wrote and re-plans
//! from the newer table; a catalog error leaves everything in place (the outcome is unknown).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::str::FromStr;
use std::time::Duration;

use iceberg::MetadataLocation;
use iceberg::spec::{
    DataFile, MAIN_BRANCH, ManifestContentType, ManifestFile, ManifestListWriter, ManifestWriter,
    ManifestWriterBuilder, Snapshot, Summary, TableMetadata,
};
use iceberg::table::Table;
use tracing::{debug, warn};

use super::files::LiveFile;
use super::{Lakehouse, TableDef};
use crate::domain::reports::RowFigures;
use crate::error::StorageError;

/// Summary properties with this prefix are checkpoints, copied into every later snapshot.
pub const CHECKPOINT_PREFIX: &str = "bakehouse.";
/// Summary property of a snapshot: how many of its added files are rewrites keeping their
/// rows' sequence numbers (no reader takes their rows for new ones).
pub(super) const REWRITTEN_DATA_FILES: &str = "bakehouse-rewritten-data-files";

/// The snapshot operation a commit records.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Operation {
    /// Only adds files.
    Append,
    /// Replaces the rows of some partitions (gold recomputation).
    Overwrite,
    /// Rewrites files without changing rows (compaction).
    Replace,
}

impl Operation {
    fn to_iceberg(self) -> iceberg::spec::Operation {
        match self {
            Operation::Append => iceberg::spec::Operation::Append,
            Operation::Overwrite => iceberg::spec::Operation::Overwrite,
            Operation::Replace => iceberg::spec::Operation::Replace,
        }
    }
}

/// What one commit changes: files added and removed, and the properties (checkpoints) the new
/// snapshot's summary carries. Properties are complete, never a delta.
#[derive(Debug)]
pub struct CommitPlan {
    pub operation: Operation,
    pub add: Vec<DataFile>,
    /// Files that rewrite removed ones (compaction), each with the data sequence number its
    /// rows keep — so readers that track sequence numbers do not see old rows as new.
    pub add_rewritten: Vec<(DataFile, i64)>,
    pub remove: Vec<LiveFile>,
    pub properties: HashMap<String, String>,
    /// The files of `add` were written once, before planning, and every attempt reuses them:
    /// a lost race must not delete them (otherwise an attempt's files are its own, and go).
    pub keep_added_on_conflict: bool,
    /// The partition spec every added file (`add` and `add_rewritten`) was written under, when
    /// not the planned table's default (files written before planning, while a partition
    /// evolution landed): their manifest uses it.
    pub added_spec: Option<i32>,
}

impl CommitPlan {
    /// An append of `add` (written by this attempt) with the snapshot's checkpoint `properties`.
    pub fn append(add: Vec<DataFile>, properties: HashMap<String, String>) -> Self {
        CommitPlan {
            operation: Operation::Append,
            add,
            add_rewritten: Vec::new(),
            remove: Vec::new(),
            properties,
            keep_added_on_conflict: false,
            added_spec: None,
        }
    }

    /// An overwrite: `remove` (the gold files of some partitions) replaced by `add` (written by
    /// this attempt), with the snapshot's checkpoint `properties`.
    pub fn overwrite(
        add: Vec<DataFile>,
        remove: Vec<LiveFile>,
        properties: HashMap<String, String>,
    ) -> Self {
        CommitPlan {
            operation: Operation::Overwrite,
            remove,
            ..CommitPlan::append(add, properties)
        }
    }

    /// An overwrite of `remove` by files rewritten from them, each with the data sequence
    /// number its rows keep (`add_rewritten`): the rows change (a column filled or re-keyed)
    /// but no incremental reader takes them for new ones. Compaction, which changes no row,
    /// makes it a [`Operation::Replace`].
    pub fn rewrite(
        add_rewritten: Vec<(DataFile, i64)>,
        remove: Vec<LiveFile>,
        properties: HashMap<String, String>,
    ) -> Self {
        CommitPlan {
            add_rewritten,
            ..CommitPlan::overwrite(Vec::new(), remove, properties)
        }
    }
}

/// What a committed plan did.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct CommitOutcome {
    pub table: String,
    pub snapshot_id: i64,
    pub sequence_number: i64,
    pub added_files: usize,
    pub removed_files: usize,
    pub added_records: u64,
    pub removed_records: u64,
    /// Attempts it took (1 = no conflict).
    pub attempts: u32,
    /// What the committed rows look like (set by the silver hop, for its metrics).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub figures: Option<RowFigures>,
}

/// Why one attempt did not land.
enum AttemptError {
    /// Another writer moved the table on (or a file to remove is gone): re-plan.
    Conflict,
    Failed(StorageError),
}

impl From<StorageError> for AttemptError {
    fn from(e: StorageError) -> Self {
        AttemptError::Failed(e)
    }
}

impl Lakehouse {
    /// Commits to `def` with optimistic concurrency: `plan` is called with the freshly loaded
    /// table (owned, so the planning future borrows nothing from this loop and stays `Send`
    /// when its captures are), returns what to commit (or `None` when there is nothing to do), and is called
    /// again on a newer table after every lost race, so checkpoints and dedupe are always
    /// computed from the state the commit lands on.
    ///
    /// # Errors
    /// The planner's error, a storage error, or [`StorageError::ConflictsExhausted`].
    pub async fn commit_with<F, P>(
        &self,
        def: &TableDef,
        mut plan: F,
    ) -> Result<Option<CommitOutcome>, StorageError>
    where
        F: FnMut(Table) -> P,
        P: Future<Output = Result<Option<CommitPlan>, StorageError>>,
    {
        for attempt in 1..=self.commit_attempts {
            let table = self.load(def).await?;
            let Some(commit_plan) = plan(table.clone()).await? else {
                return Ok(None);
            };
            match self.try_commit(&table, commit_plan).await {
                Ok(mut outcome) => {
                    outcome.attempts = attempt;
                    return Ok(Some(outcome));
                }
                Err(AttemptError::Conflict) => {
                    debug!(table = %def.qualified(), attempt, "Commit conflict, re-planning.");
                    tokio::time::sleep(backoff(attempt)).await;
                }
                Err(AttemptError::Failed(e)) => return Err(e),
            }
        }
        warn!(table = %def.qualified(), attempts = self.commit_attempts, "Commit conflicts exhausted.");
        Err(StorageError::ConflictsExhausted {
            table: def.qualified(),
            attempts: self.commit_attempts,
        })
    }

    async fn try_commit(
        &self,
        table: &Table,
        plan: CommitPlan,
    ) -> Result<CommitOutcome, AttemptError> {
        let own_added = if plan.keep_added_on_conflict {
            &[][..]
        } else {
            &plan.add[..]
        };
        let mut written: Vec<String> = own_added
            .iter()
            .chain(plan.add_rewritten.iter().map(|(f, _)| f))
            .map(|f| f.file_path().to_string())
            .collect();
        match self.write_and_swap(table, &plan, &mut written).await {
            Err(AttemptError::Conflict) => {
                // Nobody references what this attempt wrote: remove it.
                super::delete_uncommitted(table.file_io(), written.iter().map(String::as_str))
                    .await;
                Err(AttemptError::Conflict)
            }
            other => other,
        }
    }

    async fn write_and_swap(
        &self,
        table: &Table,
        plan: &CommitPlan,
        written: &mut Vec<String>,
    ) -> Result<CommitOutcome, AttemptError> {
        let name = table.identifier().to_string();
        let ice = |what: &str| StorageError::iceberg(format!("{what} for {name}"));
        let metadata = table.metadata();
        let current_location = table
            .metadata_location_result()
            .map_err(ice("read metadata location"))?
            .to_string();
        let attempt = Attempt {
            table,
            snapshot_id: new_snapshot_id(table),
            sequence_number: metadata.next_sequence_number(),
            commit_id: uuid::Uuid::new_v4(),
        };

        // 1. Keep untouched manifests; merge those that hold a file to remove (and, for a
        //    replace, every data manifest) into one rewritten manifest per partition spec.
        let (mut manifests, removed) = self.merge_manifests(&attempt, plan, written).await?;
        let to_remove: HashSet<&str> = plan.remove.iter().map(LiveFile::path).collect();
        if removed.files != to_remove.len() {
            // A file the plan read is gone: someone else rewrote it. Re-plan.
            return Err(AttemptError::Conflict);
        }

        // 2. One manifest for the new files.
        let (added_manifest, added) = attempt.write_added_manifest(plan, written).await?;
        manifests.splice(0..0, added_manifest);

        // 3. Manifest list and snapshot.
        let list_path = attempt.write_manifest_list(manifests, written).await?;
        let snapshot = Snapshot::builder()
            .with_snapshot_id(attempt.snapshot_id)
            .with_parent_snapshot_id(metadata.current_snapshot_id())
            .with_sequence_number(attempt.sequence_number)
            .with_timestamp_ms(
                chrono::Utc::now()
                    .timestamp_millis()
                    .max(metadata.last_updated_ms() + 1),
            )
            .with_manifest_list(list_path)
            .with_summary(Summary {
                operation: plan.operation.to_iceberg(),
                additional_properties: summary_properties(metadata, plan, added, removed),
            })
            .with_schema_id(metadata.current_schema_id())
            .build();

        // 4. The next metadata file, then the swap.
        let new_metadata = metadata
            .clone()
            .into_builder(Some(current_location))
            .set_branch_snapshot(snapshot, MAIN_BRANCH)
            .and_then(|b| b.build())
            .map_err(ice("build metadata"))?
            .metadata;
        self.swap_metadata(table, new_metadata, written).await?;
        Ok(CommitOutcome {
            table: name,
            snapshot_id: attempt.snapshot_id,
            sequence_number: attempt.sequence_number,
            added_files: added.files,
            removed_files: removed.files,
            added_records: added.records,
            removed_records: removed.records,
            attempts: 1,
            figures: None,
        })
    }

    /// The current snapshot's manifests, those holding a file `plan` removes (every data
    /// manifest for a replace) merged into one rewritten manifest per partition spec, with the
    /// removed files marked deleted; and what was removed.
    async fn merge_manifests(
        &self,
        attempt: &Attempt<'_>,
        plan: &CommitPlan,
        written: &mut Vec<String>,
    ) -> Result<(Vec<ManifestFile>, Totals), AttemptError> {
        let table = attempt.table;
        let metadata = table.metadata();
        let remove: HashSet<&str> = plan.remove.iter().map(LiveFile::path).collect();
        let merge_all = plan.operation == Operation::Replace;
        let mut removed = Totals::default();
        let mut removed_paths: HashSet<String> = HashSet::new();
        let mut manifests: Vec<ManifestFile> = Vec::new();
        let mut rewritten: BTreeMap<i32, ManifestWriter> = BTreeMap::new();
        let Some(current) = metadata.current_snapshot() else {
            return Ok((manifests, removed));
        };
        let list = self.cache.manifest_list(table, current).await?;
        for manifest_file in list.iter().cloned() {
            if manifest_file.content != ManifestContentType::Data
                || (remove.is_empty() && !merge_all)
            {
                manifests.push(manifest_file);
                continue;
            }
            let manifest = self.cache.manifest(table, &manifest_file).await?;
            if !merge_all
                && !manifest
                    .entries()
                    .iter()
                    .any(|e| e.is_alive() && remove.contains(e.file_path()))
            {
                manifests.push(manifest_file);
                continue;
            }
            let spec_id = manifest_file.partition_spec_id;
            let writer = match rewritten.entry(spec_id) {
                std::collections::btree_map::Entry::Occupied(w) => w.into_mut(),
                std::collections::btree_map::Entry::Vacant(slot) => {
                    slot.insert(attempt.manifest_writer(spec_id, spec_id as usize + 1, written)?)
                }
            };
            for entry in manifest.entries().iter().filter(|e| e.is_alive()) {
                let data_file = entry.data_file().clone();
                let seq = entry.sequence_number().unwrap_or(0);
                let file_seq = entry.file_sequence_number.or(Some(seq));
                if remove.contains(entry.file_path()) {
                    removed_paths.insert(entry.file_path().to_string());
                    removed.add(&data_file);
                    writer
                        .add_delete_file(data_file, seq, file_seq)
                        .map_err(attempt.ice("write manifest"))?;
                } else {
                    let added_by = entry.snapshot_id().unwrap_or(attempt.snapshot_id);
                    writer
                        .add_existing_file(data_file, added_by, seq, file_seq)
                        .map_err(attempt.ice("write manifest"))?;
                }
            }
        }
        for writer in rewritten.into_values() {
            manifests.push(
                writer
                    .write_manifest_file()
                    .await
                    .map_err(attempt.ice("write manifest"))?,
            );
        }
        removed.files = removed_paths.len();
        Ok((manifests, removed))
    }

    /// Writes `new_metadata` as the table's next metadata file and swaps the catalog pointer to
    /// it if the pointer still names the metadata `table` was loaded from.
    async fn swap_metadata(
        &self,
        table: &Table,
        new_metadata: TableMetadata,
        written: &mut Vec<String>,
    ) -> Result<(), AttemptError> {
        let name = table.identifier().to_string();
        let ice = |what: &str| StorageError::iceberg(format!("{what} for {name}"));
        let current_location = table
            .metadata_location_result()
            .map_err(ice("read metadata location"))?
            .to_string();
        let new_location = MetadataLocation::from_str(&current_location)
            .map_err(ice("parse metadata location"))?
            .with_next_version();
        written.push(new_location.to_string());
        new_metadata
            .write_to(table.file_io(), &new_location)
            .await
            .map_err(ice("write metadata"))?;
        match self
            .pointer
            .swap(
                table.identifier(),
                &current_location,
                &new_location.to_string(),
            )
            .await
        {
            Ok(true) => {
                // The version just committed: the next load of the table reads nothing.
                let ident = table.identifier().clone();
                let location = new_location.to_string();
                if let Ok(committed) =
                    super::table_version(table.file_io(), ident, location, new_metadata)
                {
                    self.cache.keep_table(&committed);
                }
                Ok(())
            }
            Ok(false) => Err(AttemptError::Conflict),
            Err(e) => {
                // Unknown outcome: the swap may have landed. Delete nothing.
                written.clear();
                Err(AttemptError::Failed(e))
            }
        }
    }

    /// Changes a table's metadata without a new snapshot (snapshot expiry), with the same
    /// compare-and-swap and re-planning as [`Lakehouse::commit_with`]: `plan` gets the freshly
    /// loaded table and returns the new metadata and a value to report, or `None` for nothing
    /// to do.
    ///
    /// # Errors
    /// The planner's error, a storage error, or [`StorageError::ConflictsExhausted`].
    pub async fn update_metadata_with<T>(
        &self,
        def: &TableDef,
        mut plan: impl FnMut(&Table) -> Result<Option<(TableMetadata, T)>, StorageError>,
    ) -> Result<Option<T>, StorageError> {
        for attempt in 1..=self.commit_attempts {
            let table = self.load(def).await?;
            let Some((metadata, value)) = plan(&table)? else {
                return Ok(None);
            };
            let mut written = Vec::new();
            match self.swap_metadata(&table, metadata, &mut written).await {
                Ok(()) => return Ok(Some(value)),
                Err(AttemptError::Conflict) => {
                    let paths = written.iter().map(String::as_str);
                    super::delete_uncommitted(table.file_io(), paths).await;
                    debug!(table = %def.qualified(), attempt, "Metadata conflict, re-planning.");
                    tokio::time::sleep(backoff(attempt)).await;
                }
                Err(AttemptError::Failed(e)) => return Err(e),
            }
        }
        Err(StorageError::ConflictsExhausted {
            table: def.qualified(),
            attempts: self.commit_attempts,
        })
    }
}

/// Files and their rows and bytes, added or removed by a commit.
#[derive(Clone, Copy, Debug, Default)]
struct Totals {
    files: usize,
    records: u64,
    bytes: u64,
}

impl Totals {
    fn add(&mut self, file: &DataFile) {
        self.files += 1;
        self.records += file.record_count();
        self.bytes += file.file_size_in_bytes();
    }
}

/// One commit attempt on a loaded table: the snapshot it makes and where its files go.
struct Attempt<'t> {
    table: &'t Table,
    snapshot_id: i64,
    sequence_number: i64,
    commit_id: uuid::Uuid,
}

impl Attempt<'_> {
    fn ice(&self, what: &str) -> impl FnOnce(iceberg::Error) -> StorageError {
        StorageError::iceberg(format!("{what} for {}", self.table.identifier()))
    }

    /// A data manifest writer for files of partition spec `spec_id`, as the attempt's `n`-th
    /// manifest (recorded in `written`).
    fn manifest_writer(
        &self,
        spec_id: i32,
        n: usize,
        written: &mut Vec<String>,
    ) -> Result<ManifestWriter, StorageError> {
        let metadata = self.table.metadata();
        let spec = metadata.partition_spec_by_id(spec_id).ok_or_else(|| {
            StorageError::data(self.table.identifier().to_string())(format!(
                "unknown partition spec {spec_id}"
            ))
        })?;
        let path = format!(
            "{}/metadata/{}-m{n}.avro",
            metadata.location(),
            self.commit_id
        );
        let output = self
            .table
            .file_io()
            .new_output(&path)
            .map_err(self.ice("create manifest"))?;
        written.push(path);
        Ok(ManifestWriterBuilder::new(
            output,
            Some(self.snapshot_id),
            metadata.current_schema().clone(),
            spec.as_ref().clone(),
        )
        .build_v2_data())
    }

    /// The manifest of `plan`'s new files (under `added_spec`, else the default spec): the
    /// files it adds at this commit's sequence number, those it rewrites at theirs.
    async fn write_added_manifest(
        &self,
        plan: &CommitPlan,
        written: &mut Vec<String>,
    ) -> Result<(Option<ManifestFile>, Totals), StorageError> {
        let added: Vec<(&DataFile, i64)> = plan
            .add
            .iter()
            .map(|f| (f, self.sequence_number))
            .chain(plan.add_rewritten.iter().map(|(f, seq)| (f, *seq)))
            .collect();
        let mut totals = Totals::default();
        if added.is_empty() {
            return Ok((None, totals));
        }
        let spec_id = plan
            .added_spec
            .unwrap_or_else(|| self.table.metadata().default_partition_spec_id());
        let mut writer = self.manifest_writer(spec_id, 0, written)?;
        for (data_file, data_sequence) in added {
            totals.add(data_file);
            writer
                .add_file(data_file.clone(), data_sequence)
                .map_err(self.ice("write manifest"))?;
        }
        let manifest = writer
            .write_manifest_file()
            .await
            .map_err(self.ice("write manifest"))?;
        Ok((Some(manifest), totals))
    }

    /// Writes the snapshot's manifest list; returns its path.
    async fn write_manifest_list(
        &self,
        manifests: Vec<ManifestFile>,
        written: &mut Vec<String>,
    ) -> Result<String, StorageError> {
        let metadata = self.table.metadata();
        let path = format!(
            "{}/metadata/snap-{}-1-{}.avro",
            metadata.location(),
            self.snapshot_id,
            self.commit_id
        );
        let output = self
            .table
            .file_io()
            .new_output(&path)
            .map_err(self.ice("create manifest list"))?;
        written.push(path.clone());
        let mut list = ManifestListWriter::v2(
            output
                .writer()
                .await
                .map_err(self.ice("create manifest list"))?,
            self.snapshot_id,
            metadata.current_snapshot_id(),
            self.sequence_number,
        );
        list.add_manifests(manifests.into_iter())
            .map_err(self.ice("write manifest list"))?;
        list.close()
            .await
            .map_err(self.ice("write manifest list"))?;
        Ok(path)
    }
}

/// The new snapshot's summary: the checkpoints carried forward whole (so the current snapshot
/// alone tells the truth), `plan`'s properties over them, and Iceberg's file and record counts.
fn summary_properties(
    metadata: &TableMetadata,
    plan: &CommitPlan,
    added: Totals,
    removed: Totals,
) -> HashMap<String, String> {
    let previous = metadata
        .current_snapshot()
        .map(|s| &s.summary().additional_properties);
    let total = |key: &str| {
        previous
            .and_then(|p| p.get(key))
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    let mut properties: HashMap<String, String> = previous
        .into_iter()
        .flatten()
        .filter(|(k, _)| k.starts_with(CHECKPOINT_PREFIX))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    properties.extend(plan.properties.clone());
    let (added_files, removed_files) = (added.files as u64, removed.files as u64);
    for (key, value) in [
        ("added-data-files", added_files),
        ("added-records", added.records),
        ("added-files-size", added.bytes),
        ("deleted-data-files", removed_files),
        ("deleted-records", removed.records),
        ("removed-files-size", removed.bytes),
        (
            "total-data-files",
            (total("total-data-files") + added_files).saturating_sub(removed_files),
        ),
        (
            "total-records",
            (total("total-records") + added.records).saturating_sub(removed.records),
        ),
        (
            "total-files-size",
            (total("total-files-size") + added.bytes).saturating_sub(removed.bytes),
        ),
        ("total-delete-files", 0),
        ("total-position-deletes", 0),
        ("total-equality-deletes", 0),
    ] {
        properties.insert(key.to_string(), value.to_string());
    }
    if !plan.add_rewritten.is_empty() {
        let rewritten = plan.add_rewritten.len().to_string();
        properties.insert(REWRITTEN_DATA_FILES.to_string(), rewritten);
    }
    properties
}

/// A random positive snapshot id not used by the table.
fn new_snapshot_id(table: &Table) -> i64 {
    loop {
        let (hi, lo) = uuid::Uuid::new_v4().as_u64_pair();
        let id = ((hi ^ lo) >> 1) as i64;
        if id != 0 && table.metadata().snapshot_by_id(id).is_none() {
            return id;
        }
    }
}

/// Exponential backoff with full jitter: up to 20 ms × 2^attempt, capped at 2 s.
fn backoff(attempt: u32) -> Duration {
    let cap_ms = (20u64 << attempt.min(7)).min(2_000);
    let jitter = uuid::Uuid::new_v4().as_u128() as u64 % cap_ms.max(1);
    Duration::from_millis(jitter + 5)
}
