//! Table metadata, manifest lists and manifests read once per process. All three are immutable
//! once written (a commit writes new ones, never changes old ones), so a path names its content
//! for good; a warm function or a long-running `bakehouse local` reads each from storage once
//! instead of at every invocation. Manifests and lists are bounded by bytes, the oldest entry
//! evicted first; of a table's metadata only the latest version this process loaded or
//! committed is kept.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, PoisonError};

use iceberg::TableIdent;
use iceberg::spec::{Manifest, ManifestFile, SnapshotRef};
use iceberg::table::Table;

use crate::error::StorageError;

/// What the cache holds at most (manifests by their length, lists by an estimate per entry).
const CACHE_BYTES: u64 = 64 * 1024 * 1024;

/// The estimated size of one manifest list entry (a manifest's path and summaries).
const LIST_ENTRY_BYTES: u64 = 256;

#[derive(Clone)]
enum Cached {
    List(Arc<Vec<ManifestFile>>),
    Manifest(Arc<Manifest>),
}

#[derive(Default)]
struct Entries {
    by_path: HashMap<String, Cached>,
    /// Paths in insertion order, with their sizes.
    order: VecDeque<(String, u64)>,
    bytes: u64,
}

/// The process's cache of manifest lists and manifests, by path, and of each table's latest
/// version this process loaded or committed.
#[derive(Default)]
pub(super) struct MetadataCache {
    entries: Mutex<Entries>,
    tables: Mutex<HashMap<TableIdent, Table>>,
}

impl MetadataCache {
    /// The table as kept, if that version's metadata file is `location`; a version the pointer
    /// has moved past is dropped (so that two versions are never held while the next is read).
    pub(super) fn table_at(&self, ident: &TableIdent, location: &str) -> Option<Table> {
        let mut tables = self.tables.lock().unwrap_or_else(PoisonError::into_inner);
        let current = tables.get(ident)?.metadata_location() == Some(location);
        if current {
            tables.get(ident).cloned()
        } else {
            tables.remove(ident);
            None
        }
    }

    /// Keeps `table` as the table's latest version, unless a later one is kept already.
    pub(super) fn keep_table(&self, table: &Table) {
        let mut tables = self.tables.lock().unwrap_or_else(PoisonError::into_inner);
        let sequence = |t: &Table| t.metadata().last_sequence_number();
        if tables
            .get(table.identifier())
            .is_none_or(|kept| sequence(kept) <= sequence(table))
        {
            tables.insert(table.identifier().clone(), table.clone());
        }
    }

    fn get(&self, path: &str) -> Option<Cached> {
        let entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        entries.by_path.get(path).cloned()
    }

    fn put(&self, path: &str, item: Cached, size: u64) {
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        if size > CACHE_BYTES || entries.by_path.contains_key(path) {
            return;
        }
        while entries.bytes + size > CACHE_BYTES {
            let Some((old, old_size)) = entries.order.pop_front() else {
                break;
            };
            entries.by_path.remove(&old);
            entries.bytes -= old_size;
        }
        entries.by_path.insert(path.to_string(), item);
        entries.order.push_back((path.to_string(), size));
        entries.bytes += size;
    }

    /// The manifest list of `snapshot`.
    pub(super) async fn manifest_list(
        &self,
        table: &Table,
        snapshot: &SnapshotRef,
    ) -> Result<Arc<Vec<ManifestFile>>, StorageError> {
        let path = snapshot.manifest_list();
        if let Some(Cached::List(list)) = self.get(path) {
            return Ok(list);
        }
        let list = table
            .manifest_list_reader(snapshot)
            .load()
            .await
            .map_err(StorageError::iceberg("read manifest list"))?;
        let list = Arc::new(list.consume_entries().into_iter().collect::<Vec<_>>());
        let size = list.len() as u64 * LIST_ENTRY_BYTES;
        self.put(path, Cached::List(list.clone()), size);
        Ok(list)
    }

    /// The manifest `file` points to.
    pub(super) async fn manifest(
        &self,
        table: &Table,
        file: &ManifestFile,
    ) -> Result<Arc<Manifest>, StorageError> {
        if let Some(Cached::Manifest(manifest)) = self.get(&file.manifest_path) {
            return Ok(manifest);
        }
        let manifest = Arc::new(
            file.load_manifest(table.file_io())
                .await
                .map_err(StorageError::iceberg("read manifest"))?,
        );
        let size = u64::try_from(file.manifest_length).unwrap_or(0);
        self.put(
            &file.manifest_path,
            Cached::Manifest(manifest.clone()),
            size,
        );
        Ok(manifest)
    }
}
