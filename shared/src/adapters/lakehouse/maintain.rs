//! Table maintenance (SPEC §6): compaction of small data files, snapshot expiry, and removal
//! of files that no live snapshot references.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::SystemTime;

use iceberg::table::Table;
use serde::Serialize;
use tracing::{info, warn};

use super::files::LiveFile;
use super::{CommitOutcome, CommitPlan, Lakehouse, Operation, TableDef, partition_value};
use crate::adapters::objects::{ListedObject, list_objects};
use crate::config::MaintenancePolicy;
use crate::error::StorageError;

/// Data files of a table's current snapshot.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct FileStats {
    pub files: usize,
    pub bytes: u64,
}

/// Files removed because no live snapshot references them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct OrphanStats {
    pub files: usize,
    pub bytes: u64,
}

impl Lakehouse {
    /// Counts the live data files and their bytes.
    ///
    /// # Errors
    /// Storage errors.
    pub async fn file_stats(&self, def: &TableDef) -> Result<FileStats, StorageError> {
        let table = self.load(def).await?;
        let files = self.live_files(&table).await?;
        Ok(FileStats {
            files: files.len(),
            bytes: files.iter().map(|f| f.data_file.file_size_in_bytes()).sum(),
        })
    }

    /// Compacts a table: per partition, the data files under the small-file size are bin-packed
    /// in ingestion order into files near the target size, and committed as a `replace` that
    /// removes exactly the files read (a file a concurrent writer adds meanwhile makes the swap
    /// fail, and the plan is made again on the newer table). Each new file keeps the highest
    /// data sequence number of its inputs, so incremental readers do not take old rows for new
    /// ones — which holds only if every reader has processed the inputs: with `processed`,
    /// files of a higher data sequence number (not yet read by every incremental reader) are
    /// left for a later run. A small file written under an older partition spec is rewritten
    /// into the current one even alone: a table converges on one spec. `None` when no partition
    /// has two small files and no small file has an older spec.
    ///
    /// # Errors
    /// Storage errors, or conflicts exhausted.
    pub async fn compact(
        &self,
        def: &TableDef,
        policy: &MaintenancePolicy,
        processed: Option<i64>,
    ) -> Result<Option<CommitOutcome>, StorageError> {
        let (small, target) = (policy.small_file_bytes(), policy.target_file_bytes);
        self.commit_with(def, move |table| async move {
            // By partition under the current spec; files of an older spec by the dates they
            // cover (rewritten, they land in the current spec's partitions of those dates).
            let current_spec = table.metadata().default_partition_spec_id();
            type Partition = (Option<(i32, i32)>, Option<i32>);
            let mut partitions: BTreeMap<Partition, Vec<LiveFile>> = BTreeMap::new();
            for file in self.live_files(&table).await? {
                if file.data_file.file_size_in_bytes() < small
                    && processed.is_none_or(|p| file.sequence_number <= p)
                {
                    let value = (file.spec_id == current_spec)
                        .then(|| partition_value(&file.data_file))
                        .flatten();
                    partitions.entry((file.days, value)).or_default().push(file);
                }
            }
            let mut add_rewritten = Vec::new();
            let mut remove = Vec::new();
            for files in partitions.into_values() {
                for bin in bin_pack(files, target) {
                    // A lone small file is rewritten only to bring it into the current spec.
                    if bin.len() < 2 && bin.iter().all(|f| f.spec_id == current_spec) {
                        continue;
                    }
                    let batches = self.read_batches(&table, &bin, None).await?;
                    let sequence = bin.iter().map(|f| f.sequence_number).max().unwrap_or(0);
                    let written = self.write_batches(&table, batches, target as usize).await?;
                    add_rewritten.extend(written.into_iter().map(|f| (f, sequence)));
                    remove.extend(bin);
                }
            }
            if remove.is_empty() {
                return Ok(None);
            }
            Ok(Some(CommitPlan {
                operation: Operation::Replace,
                ..CommitPlan::rewrite(add_rewritten, remove, HashMap::new())
            }))
        })
        .await
    }

    /// Expires snapshots older than the policy's age, always keeping the newest
    /// `snapshots_kept` and the current one. Returns how many were expired.
    ///
    /// # Errors
    /// Storage errors, or conflicts exhausted.
    pub async fn expire_snapshots(
        &self,
        def: &TableDef,
        policy: &MaintenancePolicy,
        now_micros: i64,
    ) -> Result<usize, StorageError> {
        let cutoff_ms = (now_micros - policy.snapshot_max_age_micros) / 1_000;
        let expired = self
            .update_metadata_with(def, |table| {
                let metadata = table.metadata();
                let current = metadata.current_snapshot_id();
                let mut snapshots: Vec<_> = metadata.snapshots().collect();
                snapshots.sort_by_key(|s| std::cmp::Reverse(s.timestamp_ms()));
                let expire: Vec<i64> = snapshots
                    .iter()
                    .skip(policy.snapshots_kept)
                    .filter(|s| s.timestamp_ms() < cutoff_ms && Some(s.snapshot_id()) != current)
                    .map(|s| s.snapshot_id())
                    .collect();
                if expire.is_empty() {
                    return Ok(None);
                }
                let location = table
                    .metadata_location_result()
                    .map_err(StorageError::iceberg("read metadata location"))?
                    .to_string();
                let next = metadata
                    .clone()
                    .into_builder(Some(location))
                    .remove_snapshots(&expire)
                    .build()
                    .map_err(StorageError::iceberg(format!(
                        "expire snapshots of {}",
                        def.qualified()
                    )))?
                    .metadata;
                Ok(Some((next, expire.len())))
            })
            .await?;
        Ok(expired.unwrap_or(0))
    }

    /// Deletes every file under the table's location that the current metadata does not
    /// reach (metadata files in its log, and every live snapshot's manifest list, manifests
    /// and the data files it reads) and that is older than
    /// the policy's safety age, so a writer's not yet committed files are left alone. Refuses
    /// to delete anything if a referenced file is missing from the listing (a path it cannot
    /// map is never taken for an orphan).
    ///
    /// # Errors
    /// Storage errors, or a referenced file missing from the listing.
    pub async fn remove_orphans(
        &self,
        def: &TableDef,
        policy: &MaintenancePolicy,
        now_micros: i64,
    ) -> Result<OrphanStats, StorageError> {
        let table = self.load(def).await?;
        let referenced = self.referenced_files(&table).await?;
        let location = table
            .metadata()
            .location()
            .trim_end_matches('/')
            .to_string();
        let listed: HashMap<String, ListedObject> = list_objects(self, &location)
            .await?
            .into_iter()
            .map(|o| (canonical(&o.location), o))
            .collect();
        let under_table = canonical(&format!("{location}/"));
        if let Some(missing) = referenced
            .iter()
            .find(|r| r.starts_with(&under_table) && !listed.contains_key(*r))
        {
            return Err(StorageError::Object {
                path: missing.clone(),
                message: "referenced by a live snapshot but not found when listing the table; \
                          no orphan was removed"
                    .to_string(),
            });
        }
        let cutoff = SystemTime::UNIX_EPOCH
            + std::time::Duration::from_micros(
                (now_micros - policy.orphan_min_age_micros).max(0) as u64
            );
        let mut stats = OrphanStats::default();
        for (key, object) in listed {
            if referenced.contains(&key) || object.modified.is_none_or(|m| m >= cutoff) {
                continue;
            }
            match self.file_io().delete(&object.location).await {
                Ok(()) => {
                    stats.files += 1;
                    stats.bytes += object.size;
                }
                Err(e) => {
                    warn!(path = object.location, error = %e, "Could not delete an orphan file.")
                }
            }
        }
        if stats.files > 0 {
            info!(table = %def.qualified(), files = stats.files, bytes = stats.bytes, "Removed orphan files.");
        }
        Ok(stats)
    }

    /// Every file the table's current metadata reaches, canonicalised.
    async fn referenced_files(&self, table: &Table) -> Result<HashSet<String>, StorageError> {
        let metadata = table.metadata();
        let mut out: HashSet<String> = HashSet::new();
        if let Some(current) = table.metadata_location() {
            out.insert(canonical(current));
        }
        out.extend(
            metadata
                .metadata_log()
                .iter()
                .map(|m| canonical(&m.metadata_file)),
        );
        let mut manifests_seen: HashSet<String> = HashSet::new();
        for snapshot in metadata.snapshots() {
            out.insert(canonical(snapshot.manifest_list()));
            let list = self.cache.manifest_list(table, snapshot).await?;
            for manifest_file in list.iter() {
                if !manifests_seen.insert(manifest_file.manifest_path.clone()) {
                    continue;
                }
                out.insert(canonical(&manifest_file.manifest_path));
                let manifest = self.cache.manifest(table, manifest_file).await?;
                out.extend(
                    manifest
                        .entries()
                        .iter()
                        .filter(|e| e.is_alive())
                        .map(|e| canonical(e.file_path())),
                );
            }
        }
        Ok(out)
    }
}

/// Splits files (in ingestion order) into consecutive bins of at most `target` bytes each
/// (a single larger file is a bin of its own).
fn bin_pack(files: Vec<LiveFile>, target: u64) -> Vec<Vec<LiveFile>> {
    let mut bins: Vec<Vec<LiveFile>> = Vec::new();
    let mut size = 0u64;
    for file in files {
        let bytes = file.data_file.file_size_in_bytes();
        match bins.last_mut() {
            Some(bin) if size + bytes <= target => bin.push(file),
            _ => {
                bins.push(vec![file]);
                size = 0;
            }
        }
        size += bytes;
    }
    bins
}

/// A location in one spelling: `file:/x`, `file:///x` → `file:///x`; `s3a://` → `s3://`.
fn canonical(location: &str) -> String {
    if let Some(path) = location.strip_prefix("file:") {
        format!("file:///{}", path.trim_start_matches('/'))
    } else if let Some(rest) = location
        .strip_prefix("s3a://")
        .or_else(|| location.strip_prefix("s3n://"))
    {
        format!("s3://{rest}")
    } else {
        location.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_have_one_spelling() {
        assert_eq!(canonical("file:/a/b"), "file:///a/b");
        assert_eq!(canonical("file:///a/b"), "file:///a/b");
        assert_eq!(canonical("s3a://lake/x"), "s3://lake/x");
        assert_eq!(canonical("s3://lake/x"), "s3://lake/x");
    }
}
