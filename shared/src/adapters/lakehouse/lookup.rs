//! Finding rows by key: the rows of some data files whose key column holds one of a set of
//! keys, reading as little as the files allow. A file is skipped when its manifest bounds
//! (key, and time when matches must share it) hold none of the keys; a row group when its
//! time statistics hold none of the times or its key's bloom filter none of the keys; only
//! the remaining row groups' wanted columns are decoded. Silver's lookup columns carry bloom
//! filters (`TableDef::lookup_columns`), so a batch's dedupe costs its own keys, not history.

use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::{BooleanArray, RecordBatch};
use arrow_select::filter::filter_record_batch;
use futures::StreamExt;
use iceberg::arrow::ArrowFileReader;
use iceberg::spec::{Datum, PrimitiveLiteral};
use iceberg::table::Table;
use parquet::arrow::{ParquetRecordBatchStreamBuilder, ProjectionMask};
use parquet::file::statistics::Statistics;

use super::Lakehouse;
use super::files::{LiveFile, conform, projected_schema};
use crate::domain::silver::IdSet;
use crate::error::StorageError;

/// The keys to look up, and the times a match must have (sorted), when matches share them.
#[derive(Default)]
pub struct KeyProbe {
    pub keys: IdSet,
    /// Sorted event times; `None` when a match may have any time.
    pub times: Option<Vec<i64>>,
}

impl KeyProbe {
    /// Whether a key of the probe can lie in `[lower, upper]` (bytes; `None`: unbounded).
    fn keys_within(&self, lower: Option<&[u8]>, upper: Option<&[u8]>) -> bool {
        if lower.is_none() && upper.is_none() {
            return true;
        }
        self.keys
            .iter()
            .any(|k| lower.is_none_or(|l| l <= k) && upper.is_none_or(|u| k <= u))
    }

    /// Whether a time of the probe can lie in `[lower, upper]` (`None`: unbounded).
    fn times_within(&self, lower: Option<i64>, upper: Option<i64>) -> bool {
        let Some(times) = &self.times else {
            return true;
        };
        let first = times.partition_point(|t| lower.is_some_and(|l| *t < l));
        times
            .get(first)
            .is_some_and(|t| upper.is_none_or(|u| *t <= u))
    }
}

/// How much of the files a lookup read (for logs and tests).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LookupStats {
    pub files: usize,
    /// Files whose footer was read (the others were ruled out by their manifest bounds).
    pub files_opened: usize,
    pub row_groups: usize,
    /// Row groups decoded (the others were ruled out by statistics or bloom filters).
    pub row_groups_read: usize,
}

impl std::ops::AddAssign for LookupStats {
    fn add_assign(&mut self, other: Self) {
        self.files += other.files;
        self.files_opened += other.files_opened;
        self.row_groups += other.row_groups;
        self.row_groups_read += other.row_groups_read;
    }
}

/// Files a lookup opens at once (each open is a footer read, a request on S3).
const OPEN_AT_ONCE: usize = 8;

fn string_bound(datum: Option<&Datum>) -> Option<&[u8]> {
    match datum?.literal() {
        PrimitiveLiteral::String(s) => Some(s.as_bytes()),
        _ => None,
    }
}

fn long_bound(datum: Option<&Datum>) -> Option<i64> {
    match datum?.literal() {
        PrimitiveLiteral::Long(v) => Some(*v),
        _ => None,
    }
}

impl Lakehouse {
    /// The rows of `files` whose `key` column holds a key of `probe`, with only `columns`
    /// (which must include `key`; in the table's order and current types) decoded, in no
    /// particular order. When the probe has times, a file or row group whose `time` column
    /// cannot hold one of them is not read.
    ///
    /// # Errors
    /// A file cannot be read or has no such column.
    pub async fn find_keys(
        &self,
        table: &Table,
        files: &[LiveFile],
        key: &str,
        time: &str,
        probe: &KeyProbe,
        columns: &[&str],
    ) -> Result<(Vec<RecordBatch>, LookupStats), StorageError> {
        let schema = table.metadata().current_schema();
        let key_id = schema.field_by_name(key).map(|f| f.id);
        let time_id = schema.field_by_name(time).map(|f| f.id);
        let candidates: Vec<&LiveFile> = files
            .iter()
            .filter(|file| {
                let data = &file.data_file;
                let bounds = |id: Option<i32>| {
                    id.map_or((None, None), |id| {
                        (data.lower_bounds().get(&id), data.upper_bounds().get(&id))
                    })
                };
                let (key_low, key_high) = bounds(key_id);
                let (time_low, time_high) = bounds(time_id);
                probe.keys_within(string_bound(key_low), string_bound(key_high))
                    && probe.times_within(long_bound(time_low), long_bound(time_high))
            })
            .collect();
        let mut stats = LookupStats {
            files: files.len(),
            files_opened: candidates.len(),
            ..LookupStats::default()
        };
        // The futures made up front, not by a closure of the stream: a stream holding such a
        // closure across awaits makes the hop's future not `Send` for every lifetime. Boxed:
        // Parquet's reader futures nested in a hop's would overflow the compiler's layout depth.
        let reads: Vec<_> = candidates
            .into_iter()
            .map(|file| Box::pin(self.find_in_file(table, file, key, time, probe, columns)))
            .collect();
        let mut reads = futures::stream::iter(reads).buffer_unordered(OPEN_AT_ONCE);
        let mut found = Vec::new();
        while let Some(read) = reads.next().await {
            let (batches, file_stats) = read?;
            found.extend(batches);
            stats += file_stats;
        }
        Ok((found, stats))
    }

    async fn find_in_file(
        &self,
        table: &Table,
        file: &LiveFile,
        key: &str,
        time: &str,
        probe: &KeyProbe,
        columns: &[&str],
    ) -> Result<(Vec<RecordBatch>, LookupStats), StorageError> {
        let path = file.path();
        let convert = |e: parquet::errors::ParquetError| StorageError::Data {
            context: format!("look up {key} in {path}"),
            message: e.to_string(),
        };
        let input = table
            .file_io()
            .new_input(path)
            .map_err(StorageError::iceberg(path))?;
        let reader = ArrowFileReader::new(
            iceberg::io::FileMetadata {
                size: file.data_file.file_size_in_bytes(),
            },
            input.reader().await.map_err(StorageError::iceberg(path))?,
        );
        let mut builder = ParquetRecordBatchStreamBuilder::new(reader)
            .await
            .map_err(convert)?;
        let metadata = Arc::clone(builder.metadata());
        let parquet_schema = builder.parquet_schema();
        let leaf = |name: &str| {
            (0..parquet_schema.num_columns()).find(|c| parquet_schema.column(*c).name() == name)
        };
        let key_leaf = leaf(key).ok_or_else(|| {
            convert(parquet::errors::ParquetError::General(format!(
                "no column {key}"
            )))
        })?;
        let time_leaf = leaf(time);
        let mask = ProjectionMask::leaves(
            parquet_schema,
            (0..parquet_schema.num_columns())
                .filter(|c| columns.contains(&parquet_schema.column(*c).name())),
        );
        let mut stats = LookupStats {
            row_groups: metadata.num_row_groups(),
            ..LookupStats::default()
        };
        let mut groups = Vec::new();
        for (index, group) in metadata.row_groups().iter().enumerate() {
            if let Some(Statistics::Int64(times)) =
                time_leaf.and_then(|c| group.column(c).statistics())
                && !probe.times_within(times.min_opt().copied(), times.max_opt().copied())
            {
                continue;
            }
            if let Some(bloom) = builder
                .get_row_group_column_bloom_filter(index, key_leaf)
                .await
                .map_err(convert)?
                && !probe.keys.iter().any(|k| bloom.check(k))
            {
                continue;
            }
            groups.push(index);
        }
        stats.row_groups_read = groups.len();
        if groups.is_empty() {
            return Ok((Vec::new(), stats));
        }
        let target = projected_schema(table, Some(columns))?;
        let mut stream = builder
            .with_projection(mask)
            .with_row_groups(groups)
            .with_batch_size(8192)
            .build()
            .map_err(convert)?;
        let mut found = Vec::new();
        while let Some(batch) = stream.next().await {
            let matched =
                matching_rows(&batch.map_err(convert)?, key, probe).map_err(|message| {
                    StorageError::Data {
                        context: format!("look up {key} in {path}"),
                        message,
                    }
                })?;
            if matched.num_rows() > 0 {
                found.push(conform(table, &target, &matched)?);
            }
        }
        Ok((found, stats))
    }
}

/// The rows of `batch` whose `key` column holds one of the probe's keys.
fn matching_rows(batch: &RecordBatch, key: &str, probe: &KeyProbe) -> Result<RecordBatch, String> {
    let keys = batch
        .column_by_name(key)
        .and_then(|c| c.as_string_opt::<i32>())
        .ok_or_else(|| format!("{key} is not a string column"))?;
    let matches: BooleanArray = keys
        .iter()
        .map(|k| Some(k.is_some_and(|k| probe.keys.contains(k.as_bytes()))))
        .collect();
    filter_record_batch(batch, &matches).map_err(|e| e.to_string())
}
