//! Data files: listing the live files of a table's current snapshot, writing rows or Arrow
//! batches as Parquet data files split by partition (all at once, or streamed through a
//! [`TableWriter`]), and reading them back.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use arrow_array::{Array, RecordBatch};
use futures::StreamExt;
use futures::future::try_join_all;
use iceberg::arrow::{ArrowFileReader, schema_to_arrow_schema};
use iceberg::spec::{
    DataFile, DataFileFormat, Literal, ManifestFile, PartitionKey, PartitionSpec, PrimitiveLiteral,
    Struct, Transform,
};
use iceberg::table::Table;
use iceberg::writer::base_writer::data_file_writer::{DataFileWriter, DataFileWriterBuilder};
use iceberg::writer::file_writer::ParquetWriterBuilder;
use iceberg::writer::file_writer::location_generator::{
    DefaultFileNameGenerator, DefaultLocationGenerator,
};
use iceberg::writer::file_writer::rolling_writer::RollingFileWriterBuilder;
use iceberg::writer::{IcebergWriter, IcebergWriterBuilder};
use parquet::arrow::async_reader::ParquetRecordBatchStream;
use parquet::arrow::{ParquetRecordBatchStreamBuilder, ProjectionMask};
use parquet::basic::Compression;
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::schema::types::ColumnPath;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::Lakehouse;
use crate::error::StorageError;

/// A data file that the current snapshot holds, with the sequence numbers it was added under.
#[derive(Clone, Debug)]
pub struct LiveFile {
    pub data_file: DataFile,
    /// The snapshot that added the file.
    pub snapshot_id: i64,
    /// Data sequence number: the commit order in which its rows were added.
    pub sequence_number: i64,
    pub file_sequence_number: Option<i64>,
    /// The dates its partition covers, first and last (days since the epoch): one date for a
    /// file partitioned by date, day or hour, a month's for one partitioned by month; `None`
    /// for an unpartitioned file.
    pub days: Option<(i32, i32)>,
    /// The partition spec it was written under.
    pub spec_id: i32,
}

impl LiveFile {
    /// The rows the file holds.
    pub fn record_count(&self) -> u64 {
        self.data_file.record_count()
    }

    /// The nulls in `column` as the file's manifest entry counts them (no data read); `None`
    /// when the table has no such column, or the file was written before the column existed
    /// (then every row reads null) or without the count.
    pub fn null_count(&self, table: &Table, column: &str) -> Option<u64> {
        let field = table.metadata().current_schema().field_by_name(column)?;
        self.data_file.null_value_counts().get(&field.id).copied()
    }

    /// The file's path.
    pub fn path(&self) -> &str {
        self.data_file.file_path()
    }

    /// Whether its partition holds `day` (an unpartitioned file holds every day).
    pub fn holds(&self, day: i32) -> bool {
        self.days
            .is_none_or(|(first, last)| (first..=last).contains(&day))
    }

    /// The dates its partition covers (none for an unpartitioned file).
    pub fn dates(&self) -> impl Iterator<Item = i32> + use<> {
        self.days.into_iter().flat_map(|(first, last)| first..=last)
    }

    /// Whether its partition holds any of `days`.
    pub fn holds_any(&self, days: &BTreeSet<i32>) -> bool {
        self.days
            .is_none_or(|(first, last)| days.range(first..=last).next().is_some())
    }
}

/// The dates (first, last; days since the epoch) that the value of a table's partition
/// field covers under `spec` (partitioned by one date, or `hour`/`day`/`month` of a
/// timestamp or date); `None` for an unpartitioned spec or another transform.
fn partition_days(spec: &PartitionSpec, value: i32) -> Option<(i32, i32)> {
    match spec.fields().first()?.transform {
        Transform::Identity | Transform::Day => Some((value, value)),
        Transform::Hour => {
            let day = value.div_euclid(24);
            Some((day, day))
        }
        Transform::Month => {
            let first_of = |month: i32| {
                chrono::NaiveDate::from_ymd_opt(
                    1970 + month.div_euclid(12),
                    month.rem_euclid(12) as u32 + 1,
                    1,
                )
                .map(crate::domain::time::days_from_date)
            };
            Some((first_of(value)?, first_of(value + 1)? - 1))
        }
        _ => None,
    }
}

/// The partition value of a data file (a table partitioned by one field of an integer or
/// date value: the date itself under a `day` spec); `None` for an unpartitioned file.
pub fn partition_value(data_file: &DataFile) -> Option<i32> {
    match data_file.partition().fields().first()? {
        Some(Literal::Primitive(PrimitiveLiteral::Int(value))) => Some(*value),
        _ => None,
    }
}

/// Data files roll over past this size (Iceberg's `write.target-file-size-bytes` default).
pub const DEFAULT_TARGET_FILE_SIZE: usize = 512 * 1024 * 1024;

/// The table's current schema as Arrow (with Iceberg field ids).
///
/// # Errors
/// The schema has a type Arrow cannot hold.
pub fn arrow_schema(table: &Table) -> Result<Arc<arrow_schema::Schema>, StorageError> {
    schema_to_arrow_schema(table.metadata().current_schema())
        .map(Arc::new)
        .map_err(StorageError::iceberg(table.identifier().to_string()))
}

/// Rows as one Arrow batch in `schema` (the table's Arrow schema; `name` for errors).
///
/// # Errors
/// A row does not fit the schema.
pub fn rows_to_batch<T: Serialize>(
    name: &str,
    schema: &Arc<arrow_schema::Schema>,
    rows: &[T],
) -> Result<RecordBatch, StorageError> {
    let convert = |e: String| StorageError::data(format!("convert rows of {name}"))(e);
    let batch =
        serde_arrow::to_record_batch(schema.fields(), &rows).map_err(|e| convert(e.to_string()))?;
    RecordBatch::try_new(schema.clone(), batch.columns().to_vec())
        .map_err(|e| convert(e.to_string()))
}

/// Rows as one Arrow batch per date (`day_of`), in date order, each date's rows in their
/// order: rows of a date are written together, whatever the table's partition spec.
///
/// # Errors
/// A row does not fit the schema.
pub fn batches_by_day<T: Serialize>(
    name: &str,
    schema: &Arc<arrow_schema::Schema>,
    rows: &[T],
    day_of: impl Fn(&T) -> i32,
) -> Result<Vec<RecordBatch>, StorageError> {
    let mut groups: BTreeMap<i32, Vec<&T>> = BTreeMap::new();
    for row in rows {
        groups.entry(day_of(row)).or_default().push(row);
    }
    groups
        .into_values()
        .map(|group| rows_to_batch(name, schema, &group))
        .collect()
}

/// A batch as rows of `T` (the inverse of [`rows_to_batch`]; `context` for errors).
///
/// # Errors
/// The batch does not match `T`.
pub fn batch_to_rows<T: DeserializeOwned>(
    context: &str,
    batch: &RecordBatch,
) -> Result<Vec<T>, StorageError> {
    serde_arrow::from_record_batch(batch).map_err(|e| StorageError::Data {
        context: context.to_string(),
        message: e.to_string(),
    })
}

/// Rows made into one Arrow batch at a time by [`Lakehouse::write_rows`], so that a write holds
/// its rows and one batch of their columns, not every column of every row besides.
const ROWS_PER_BATCH: usize = 8192;

/// Encoded bytes per Parquet row group: a writer buffers a whole group, and its memory is a
/// multiple of this (measured: ~60 MB more at 128k bronze rows, ~12 MB encoded, than at 16k).
const ROW_GROUP_BYTES: usize = 4 * 1024 * 1024;

/// Columns of long, nearly unique text (raw records, JSON documents): a dictionary or min/max
/// statistics of them cost time and help no reader, so they are written without.
const FREE_TEXT_COLUMNS: [&str; 4] = ["payload", "raw", "readings", "error_message"];

/// Columns whose values are (nearly) all distinct: a dictionary of them never pays.
/// (`transaction_id` repeats only over a sale's few line items; event times are in
/// milliseconds or finer.)
const UNIQUE_COLUMNS: [&str; 7] = [
    "source_ref",
    "event_id",
    "sale_id",
    "transaction_id",
    "metric_id",
    "update_id",
    "event_time",
];

/// Rows per row group of a file with bloom filters: a filter is sized for this many keys
/// (then folded down to what its row group holds), so it must bound the group.
const BLOOM_ROWS_PER_GROUP: usize = 128 * 1024;

/// The columns a table's properties ask bloom filters for (Iceberg's
/// `write.parquet.bloom-filter-enabled.column.<name>`), each with its false-positive
/// probability (`write.parquet.bloom-filter-fpp.column.<name>`, default
/// [`DEFAULT_BLOOM_FILTER_FPP`]).
fn bloom_filter_columns(properties: &HashMap<String, String>) -> Vec<(&str, f64)> {
    properties
        .iter()
        .filter(|(_, enabled)| enabled.as_str() == "true")
        .filter_map(|(key, _)| key.strip_prefix(BLOOM_FILTER_ENABLED))
        .map(|column| {
            let fpp = properties
                .get(&format!("{BLOOM_FILTER_FPP}{column}"))
                .and_then(|v| v.parse().ok())
                .filter(|p: &f64| *p > 0.0 && *p < 1.0)
                .unwrap_or(DEFAULT_BLOOM_FILTER_FPP);
            (column, fpp)
        })
        .collect()
}

/// Iceberg's table property prefix that enables a column's Parquet bloom filter.
pub const BLOOM_FILTER_ENABLED: &str = "write.parquet.bloom-filter-enabled.column.";
/// Iceberg's table property prefix of a column's bloom filter false-positive probability.
pub const BLOOM_FILTER_FPP: &str = "write.parquet.bloom-filter-fpp.column.";
/// The false-positive probability of our lookup columns' filters: a lookup probes a row group
/// with each of a batch's keys (10,000 for a 10k batch), so one in 100,000 keeps nine in ten
/// row groups without a match unread. About 30 bits a key, folded to what a group holds.
pub const DEFAULT_BLOOM_FILTER_FPP: f64 = 0.00001;

type DataWriter =
    DataFileWriter<ParquetWriterBuilder, DefaultLocationGenerator, DefaultFileNameGenerator>;

/// Writes Arrow batches of one table as they come, as Parquet data files of the table's
/// current partition spec, rolling over past a target size: each row goes to the partition
/// its partition column gives under that spec (a batch of one partition is written whole, a
/// batch spanning several is split). Nothing is committed.
pub struct TableWriter {
    name: String,
    table: Table,
    schema: Arc<arrow_schema::Schema>,
    properties: WriterProperties,
    target_file_size: usize,
    /// The partition column's index in `schema` and the spec's transform of it; `None` for an
    /// unpartitioned table.
    partition: Option<(usize, iceberg::transform::BoxedTransformFunction)>,
    writers: BTreeMap<Option<i32>, DataWriter>,
}

impl TableWriter {
    /// A writer for `table` under its current schema and partition spec.
    ///
    /// # Errors
    /// The table's schema or partition spec cannot be used.
    pub async fn open(table: &Table, target_file_size: usize) -> Result<Self, StorageError> {
        let name = table.identifier().to_string();
        let metadata = table.metadata();
        let schema = metadata.current_schema();
        let mut properties = WriterProperties::builder()
            .set_compression(Compression::SNAPPY)
            .set_max_row_group_bytes(Some(ROW_GROUP_BYTES));
        for column in FREE_TEXT_COLUMNS {
            if schema.field_by_name(column).is_some() {
                properties = properties
                    .set_column_dictionary_enabled(ColumnPath::from(column), false)
                    .set_column_statistics_enabled(
                        ColumnPath::from(column),
                        EnabledStatistics::None,
                    );
            }
        }
        for column in UNIQUE_COLUMNS {
            if schema.field_by_name(column).is_some() {
                properties =
                    properties.set_column_dictionary_enabled(ColumnPath::from(column), false);
            }
        }
        for (column, fpp) in bloom_filter_columns(metadata.properties()) {
            properties = properties
                .set_max_row_group_row_count(Some(BLOOM_ROWS_PER_GROUP))
                .set_column_bloom_filter_enabled(ColumnPath::from(column), true)
                .set_column_bloom_filter_fpp(ColumnPath::from(column), fpp)
                .set_column_bloom_filter_ndv(ColumnPath::from(column), BLOOM_ROWS_PER_GROUP as u64);
        }
        let arrow = arrow_schema(table)?;
        let partition = match metadata.default_partition_spec().fields().first() {
            None => None,
            Some(field) => {
                let source = schema
                    .field_by_id(field.source_id)
                    .and_then(|f| arrow.index_of(&f.name).ok())
                    .ok_or_else(|| {
                        StorageError::data(&name)(format!(
                            "no column for partition field {}",
                            field.name
                        ))
                    })?;
                let transform = iceberg::transform::create_transform_function(&field.transform)
                    .map_err(StorageError::iceberg(&name))?;
                Some((source, transform))
            }
        };
        Ok(TableWriter {
            name,
            table: table.clone(),
            schema: arrow,
            properties: properties.build(),
            target_file_size,
            partition,
            writers: BTreeMap::new(),
        })
    }

    /// The Arrow schema batches must have.
    pub fn schema(&self) -> &Arc<arrow_schema::Schema> {
        &self.schema
    }

    /// The partition spec its files are written under.
    pub fn spec_id(&self) -> i32 {
        self.table.metadata().default_partition_spec_id()
    }

    /// Writes one batch (in [`TableWriter::schema`]).
    ///
    /// # Errors
    /// A row has no partition value, or encoding or writing fails.
    pub async fn write(&mut self, batch: RecordBatch) -> Result<(), StorageError> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        for (value, part) in self.split(batch)? {
            let writer = match self.writers.entry(value) {
                std::collections::btree_map::Entry::Occupied(e) => e.into_mut(),
                std::collections::btree_map::Entry::Vacant(e) => e.insert(
                    open_data_writer(&self.table, &self.properties, self.target_file_size, value)
                        .await?,
                ),
            };
            writer
                .write(part)
                .await
                .map_err(StorageError::iceberg(format!("write {}", self.name)))?;
        }
        Ok(())
    }

    /// `batch` by partition value (`None`: unpartitioned), in value order.
    fn split(&self, batch: RecordBatch) -> Result<Vec<(Option<i32>, RecordBatch)>, StorageError> {
        let Some((source, transform)) = &self.partition else {
            return Ok(vec![(None, batch)]);
        };
        let failed = |message: String| StorageError::Data {
            context: format!("partition rows of {}", self.name),
            message,
        };
        let values = transform
            .transform(batch.column(*source).clone())
            .map_err(|e| failed(e.to_string()))?;
        let values = arrow_cast::cast(&values, &arrow_schema::DataType::Int32)
            .map_err(|e| failed(e.to_string()))?;
        let values = values
            .as_any()
            .downcast_ref::<arrow_array::Int32Array>()
            .ok_or_else(|| failed("partition values are not integers".to_string()))?;
        if values.null_count() > 0 {
            return Err(failed(format!(
                "{} row(s) without a partition value",
                values.null_count()
            )));
        }
        let first = values.value(0);
        if values.values().iter().all(|v| *v == first) {
            return Ok(vec![(Some(first), batch)]);
        }
        let mut rows: BTreeMap<i32, Vec<u32>> = BTreeMap::new();
        for (row, value) in values.values().iter().enumerate() {
            rows.entry(*value).or_default().push(row as u32);
        }
        rows.into_iter()
            .map(|(value, indices)| {
                let indices = arrow_array::UInt32Array::from(indices);
                arrow_select::take::take_record_batch(&batch, &indices)
                    .map(|part| (Some(value), part))
                    .map_err(|e| failed(e.to_string()))
            })
            .collect()
    }

    /// Finishes the files and returns them, ready to commit.
    ///
    /// # Errors
    /// Writing fails.
    pub async fn close(self) -> Result<Vec<DataFile>, StorageError> {
        let mut files = Vec::new();
        for mut writer in self.writers.into_values() {
            files.extend(
                writer
                    .close()
                    .await
                    .map_err(StorageError::iceberg(format!("write {}", self.name)))?,
            );
        }
        Ok(files)
    }
}

/// A rolling Parquet writer for one partition (`value` under the table's default spec;
/// `None`: unpartitioned).
async fn open_data_writer(
    table: &Table,
    properties: &WriterProperties,
    target_file_size: usize,
    value: Option<i32>,
) -> Result<DataWriter, StorageError> {
    let name = table.identifier().to_string();
    let metadata = table.metadata();
    let schema = metadata.current_schema().clone();
    let location = DefaultLocationGenerator::new(metadata).map_err(StorageError::iceberg(&name))?;
    let names = DefaultFileNameGenerator::new(
        uuid::Uuid::new_v4().to_string(),
        None,
        DataFileFormat::Parquet,
    );
    let rolling = RollingFileWriterBuilder::new(
        ParquetWriterBuilder::new(properties.clone(), schema.clone()),
        target_file_size,
        table.file_io().clone(),
        location,
        names,
    );
    let key = value.map(|value| {
        PartitionKey::new(
            metadata.default_partition_spec().as_ref().clone(),
            schema.clone(),
            Struct::from_iter([Some(Literal::int(value))]),
        )
    });
    DataFileWriterBuilder::new(rolling)
        .build(key)
        .await
        .map_err(StorageError::iceberg(&name))
}

/// Writes the batches `produce` yields into `table` ([`TableWriter`]). `produce` runs on a
/// blocking thread, making the next batch while the writers encode the previous ones. With
/// `lanes` > 1 the batches are dealt in turn to that many writers, each encoding on its own
/// task into its own files: a partition with more batches than one is then split over several
/// files (each sorted as the batches came), and the encoding — the larger share of a hop that
/// only gathers rows — runs on every core. Returns the files (nothing
/// committed) and the spent iterator, which holds whatever it counted.
///
/// # Errors
/// An item is an error, or opening, encoding or writing fails.
pub async fn write_produced<P>(
    table: &Table,
    target_file_size: usize,
    lanes: usize,
    produce: P,
) -> Result<(Vec<DataFile>, P), StorageError>
where
    P: Iterator<Item = Result<RecordBatch, StorageError>> + Send + 'static,
{
    let (sender, mut receiver) = tokio::sync::mpsc::channel(1);
    let producer = tokio::task::spawn_blocking(move || {
        let mut produce = produce;
        for item in produce.by_ref() {
            if sender.blocking_send(item).is_err() {
                break; // the writers failed and stopped listening
            }
        }
        produce
    });
    let (mut senders, mut lane_tasks) = (Vec::new(), Vec::new());
    for _ in 0..lanes.max(1) {
        let (lane, mut batches) = tokio::sync::mpsc::channel::<RecordBatch>(1);
        let mut writer = TableWriter::open(table, target_file_size).await?;
        lane_tasks.push(tokio::spawn(async move {
            while let Some(batch) = batches.recv().await {
                writer.write(batch).await?;
            }
            writer.close().await
        }));
        senders.push(lane);
    }
    let mut failed = None;
    for turn in (0..senders.len()).cycle() {
        match receiver.recv().await {
            None => break,
            Some(Err(e)) => {
                failed = Some(e);
                break;
            }
            Some(Ok(item)) => {
                if senders[turn].send(item).await.is_err() {
                    break; // the lane failed: its task has the error
                }
            }
        }
    }
    drop((senders, receiver));
    let context = format!("write {}", table.identifier());
    let mut files = Vec::new();
    for task in lane_tasks {
        let written = task.await.map_err(|e| StorageError::Data {
            context: context.clone(),
            message: format!("a writer failed: {e}"),
        })?;
        files.extend(written?);
    }
    if let Some(e) = failed {
        return Err(e);
    }
    // A producer that panicked ends the stream early: what it sent must not be taken as all.
    let produce = producer.await.map_err(|e| StorageError::Data {
        context,
        message: format!("the thread producing the rows failed: {e}"),
    })?;
    Ok((files, produce))
}

/// Tasks decoding one `read_batches` at once (a function has two cores).
const READ_SHARES: usize = 2;

/// The rows of a list of data files, one Arrow batch at a time, reading only the column chunks
/// it decodes (range reads, a row group at a time): a hop holds one row group's columns, not
/// the table nor a whole file.
pub struct BatchStream {
    table: Table,
    files: std::iter::Enumerate<std::vec::IntoIter<LiveFile>>,
    columns: Columns,
    /// Which share of each file's row groups this stream reads: `(k, n)`, the k-th of n.
    share: (usize, usize),
    current: Option<(usize, String, ParquetRecordBatchStream<ArrowFileReader>)>,
}

/// Which columns a read decodes; the others are not even fetched.
#[derive(Clone, Debug)]
pub enum Columns {
    All,
    Only(Vec<String>),
    Except(Vec<String>),
}

impl Columns {
    pub fn only(names: &[&str]) -> Self {
        Columns::Only(names.iter().map(|n| n.to_string()).collect())
    }

    pub fn except(names: &[&str]) -> Self {
        Columns::Except(names.iter().map(|n| n.to_string()).collect())
    }

    fn wants(&self, name: &str) -> bool {
        match self {
            Columns::All => true,
            Columns::Only(names) => names.iter().any(|n| n == name),
            Columns::Except(names) => !names.iter().any(|n| n == name),
        }
    }
}

impl BatchStream {
    /// The next batch, in file order; `None` after the last.
    ///
    /// # Errors
    /// A file cannot be read or decoded.
    pub async fn next(&mut self) -> Result<Option<RecordBatch>, StorageError> {
        Ok(self.next_of_file().await?.map(|(_, batch)| batch))
    }

    /// The next batch with the index of its file in the list.
    async fn next_of_file(&mut self) -> Result<Option<(usize, RecordBatch)>, StorageError> {
        loop {
            if let Some((index, path, reader)) = &mut self.current {
                match reader.next().await {
                    Some(batch) => {
                        return batch.map(|batch| Some((*index, batch))).map_err(|e| {
                            StorageError::Data {
                                context: format!("read {path}"),
                                message: e.to_string(),
                            }
                        });
                    }
                    None => self.current = None,
                }
            }
            let Some((index, file)) = self.files.next() else {
                return Ok(None);
            };
            let path = file.path().to_string();
            let convert = |e: parquet::errors::ParquetError| StorageError::Data {
                context: format!("read {path}"),
                message: e.to_string(),
            };
            let input = self
                .table
                .file_io()
                .new_input(&path)
                .map_err(StorageError::iceberg(&path))?;
            let size = file.data_file.file_size_in_bytes();
            let reader = ArrowFileReader::new(
                iceberg::io::FileMetadata { size },
                input.reader().await.map_err(StorageError::iceberg(&path))?,
            );
            let builder = ParquetRecordBatchStreamBuilder::new(reader)
                .await
                .map_err(convert)?;
            let groups = builder.metadata().num_row_groups();
            let (k, n) = self.share;
            let mine: Vec<usize> = (k * groups / n..(k + 1) * groups / n).collect();
            if mine.is_empty() {
                continue;
            }
            let parquet_schema = builder.parquet_schema();
            let wanted = (0..parquet_schema.num_columns())
                .filter(|c| self.columns.wants(parquet_schema.column(*c).name()));
            let mask = ProjectionMask::leaves(parquet_schema, wanted);
            let stream = builder
                .with_projection(mask)
                .with_row_groups(mine)
                .with_batch_size(8192)
                .build()
                .map_err(convert)?;
            self.current = Some((index, path, stream));
        }
    }

    /// The next batch as rows of `T` (which must default the columns not read).
    ///
    /// # Errors
    /// A file cannot be read or does not match `T`.
    pub async fn next_rows<T: DeserializeOwned>(&mut self) -> Result<Option<Vec<T>>, StorageError> {
        let Some(batch) = self.next().await? else {
            return Ok(None);
        };
        batch_to_rows(&format!("read {}", self.table.identifier()), &batch).map(Some)
    }
}

/// Batches a read holds ahead of its consumer ([`Lakehouse::read_ahead`]).
const READ_AHEAD: usize = 2;

/// The batches of [`Lakehouse::read_ahead`], in file order. A reader that stops before the
/// end (it panicked) is an error, never a short read.
pub struct ReadAhead {
    table: String,
    receiver: tokio::sync::mpsc::Receiver<Result<Option<RecordBatch>, StorageError>>,
    ended: bool,
}

impl Iterator for ReadAhead {
    type Item = Result<RecordBatch, StorageError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.ended {
            return None;
        }
        let item = match self.receiver.blocking_recv() {
            Some(Ok(Some(batch))) => return Some(Ok(batch)),
            Some(Ok(None)) => None,
            Some(Err(e)) => Some(Err(e)),
            None => Some(Err(StorageError::Data {
                context: format!("read {}", self.table),
                message: "the reader stopped before the last batch".to_string(),
            })),
        };
        self.ended = true;
        item
    }
}

/// The table's current Arrow schema, with only `columns` (in the table's order) if given.
pub(super) fn projected_schema(
    table: &Table,
    columns: Option<&[&str]>,
) -> Result<Arc<arrow_schema::Schema>, StorageError> {
    let schema = arrow_schema(table)?;
    let Some(columns) = columns else {
        return Ok(schema);
    };
    let fields: Vec<_> = schema
        .fields()
        .iter()
        .filter(|f| columns.contains(&f.name().as_str()))
        .cloned()
        .collect();
    Ok(Arc::new(arrow_schema::Schema::new_with_metadata(
        fields,
        schema.metadata().clone(),
    )))
}

/// A batch as read, in `target`: files written under an older schema are cast to the current
/// types, with nulls for columns they lack.
pub(super) fn conform(
    table: &Table,
    target: &Arc<arrow_schema::Schema>,
    batch: &RecordBatch,
) -> Result<RecordBatch, StorageError> {
    target
        .fields()
        .iter()
        .map(|field| match batch.column_by_name(field.name()) {
            Some(column) => arrow_cast::cast(column, field.data_type()),
            None => Ok(arrow_array::new_null_array(
                field.data_type(),
                batch.num_rows(),
            )),
        })
        .collect::<Result<Vec<_>, _>>()
        .and_then(|columns| RecordBatch::try_new(target.clone(), columns))
        .map_err(|e| StorageError::Data {
            context: format!("read {}", table.identifier()),
            message: e.to_string(),
        })
}

impl Lakehouse {
    /// The rows of `files`, batch by batch, decoding only `columns`.
    pub fn stream_batches(
        &self,
        table: &Table,
        files: Vec<LiveFile>,
        columns: Columns,
    ) -> BatchStream {
        BatchStream {
            table: table.clone(),
            files: files.into_iter().enumerate(),
            columns,
            share: (0, 1),
            current: None,
        }
    }

    /// Every row of a table's current snapshot (for small tables: reports, dimensions,
    /// quarantine).
    ///
    /// # Errors
    /// The table, a manifest or a file cannot be read, or a row does not match `T`.
    pub async fn read_table<T: DeserializeOwned>(
        &self,
        def: &super::TableDef,
    ) -> Result<Vec<T>, StorageError> {
        let table = self.load(def).await?;
        let files = self.live_files(&table).await?;
        self.read_rows(&table, &files).await
    }

    /// Every live data file of the table's current snapshot.
    ///
    /// # Errors
    /// A manifest cannot be read.
    pub async fn live_files(&self, table: &Table) -> Result<Vec<LiveFile>, StorageError> {
        match table.metadata().current_snapshot() {
            Some(snapshot) => self.snapshot_files(table, snapshot).await,
            None => Ok(Vec::new()),
        }
    }

    /// The live data files added after sequence number `done` (what an incremental reader
    /// has not read yet). Only manifests written since are read: a manifest's sequence
    /// number is that of the commit that wrote it, and no entry in it is newer.
    ///
    /// # Errors
    /// A manifest cannot be read.
    pub async fn files_since(
        &self,
        table: &Table,
        done: i64,
    ) -> Result<Vec<LiveFile>, StorageError> {
        let Some(snapshot) = table.metadata().current_snapshot() else {
            return Ok(Vec::new());
        };
        self.files_matching(
            table,
            snapshot,
            |m| m.sequence_number > done,
            |f| f.sequence_number > done,
        )
        .await
    }

    /// The live data files whose partitions hold any of the dates `days` (a table partitioned by
    /// a date, or `hour`/`day`/`month` of one, under any of its specs): a file partitioned by
    /// month also holds rows of the month's other dates. Manifests whose partition range holds
    /// none of the days are not read.
    ///
    /// # Errors
    /// A manifest cannot be read.
    pub async fn files_of_days(
        &self,
        table: &Table,
        days: &BTreeSet<i32>,
    ) -> Result<Vec<LiveFile>, StorageError> {
        let Some(snapshot) = table.metadata().current_snapshot() else {
            return Ok(Vec::new());
        };
        if days.is_empty() {
            return Ok(Vec::new());
        }
        let metadata = table.metadata();
        let may_hold = |m: &ManifestFile| {
            let Some(summary) = m.partitions.as_ref().and_then(|p| p.first()) else {
                return true;
            };
            let Some(spec) = metadata.partition_spec_by_id(m.partition_spec_id) else {
                return true;
            };
            // An integer or date's single-value binary form: 4 bytes, little-endian.
            let bound = |b: Option<&[u8]>| {
                b.and_then(|b| <[u8; 4]>::try_from(b).ok())
                    .map(i32::from_le_bytes)
            };
            let low = bound(summary.lower_bound.as_deref().map(|b| b.as_slice()))
                .and_then(|v| partition_days(spec, v))
                .map_or(i32::MIN, |(first, _)| first);
            let high = bound(summary.upper_bound.as_deref().map(|b| b.as_slice()))
                .and_then(|v| partition_days(spec, v))
                .map_or(i32::MAX, |(_, last)| last);
            days.range(low..=high).next().is_some()
        };
        self.files_matching(table, snapshot, may_hold, |f| {
            f.days.is_some() && f.holds_any(days)
        })
        .await
    }

    /// What replacing the rows of the dates `days` removes: the files of those dates
    /// ([`Lakehouse::files_of_days`]), and, written anew, the rows of other dates that a
    /// removed file holds besides (a file partitioned by month), so that they stay. Nothing is
    /// committed: the new files join the replacement rows in the overwrite.
    ///
    /// # Errors
    /// A manifest or file cannot be read, or writing fails.
    pub async fn replace_days(
        &self,
        table: &Table,
        days: &BTreeSet<i32>,
    ) -> Result<(Vec<LiveFile>, Vec<DataFile>), StorageError> {
        let remove = self.files_of_days(table, days).await?;
        let spanning: Vec<LiveFile> = remove
            .iter()
            .filter(|f| f.dates().any(|d| !days.contains(&d)))
            .cloned()
            .collect();
        if spanning.is_empty() {
            return Ok((remove, Vec::new()));
        }
        let column = table
            .metadata()
            .default_partition_spec()
            .fields()
            .first()
            .and_then(|f| table.metadata().current_schema().field_by_id(f.source_id))
            .map(|f| f.name.clone())
            .ok_or_else(|| {
                StorageError::data(table.identifier().to_string())(
                    "no partition column".to_string(),
                )
            })?;
        let failed = |e: arrow_schema::ArrowError| StorageError::Data {
            context: format!("keep the other dates of {}", table.identifier()),
            message: e.to_string(),
        };
        let mut kept = Vec::new();
        for batch in self.read_batches(table, &spanning, None).await? {
            let dates = batch
                .column_by_name(&column)
                .and_then(|c| c.as_any().downcast_ref::<arrow_array::Date32Array>())
                .ok_or_else(|| {
                    StorageError::data(table.identifier().to_string())(format!(
                        "{column} is not a date column"
                    ))
                })?;
            let keep: arrow_array::BooleanArray = dates
                .iter()
                .map(|d| Some(d.is_none_or(|d| !days.contains(&d))))
                .collect();
            kept.push(arrow_select::filter::filter_record_batch(&batch, &keep).map_err(failed)?);
        }
        let add = self
            .write_batches(table, kept, DEFAULT_TARGET_FILE_SIZE)
            .await?;
        Ok((remove, add))
    }

    /// Every data file a snapshot (current or older) reads.
    ///
    /// # Errors
    /// A manifest cannot be read.
    pub async fn snapshot_files(
        &self,
        table: &Table,
        snapshot: &iceberg::spec::SnapshotRef,
    ) -> Result<Vec<LiveFile>, StorageError> {
        self.files_matching(table, snapshot, |_| true, |_| true)
            .await
    }

    /// The live data files of `snapshot` in the data manifests `manifest` keeps that `file`
    /// keeps, in commit order, then path: the order rows were ingested in.
    async fn files_matching(
        &self,
        table: &Table,
        snapshot: &iceberg::spec::SnapshotRef,
        manifest: impl Fn(&ManifestFile) -> bool,
        file: impl Fn(&LiveFile) -> bool,
    ) -> Result<Vec<LiveFile>, StorageError> {
        let list = self.cache.manifest_list(table, snapshot).await?;
        let manifests = try_join_all(
            list.iter()
                .filter(|m| m.content == iceberg::spec::ManifestContentType::Data && manifest(m))
                .map(|m| self.cache.manifest(table, m)),
        )
        .await?;
        let mut files = Vec::new();
        for manifest in manifests {
            let spec = manifest.metadata().partition_spec();
            for entry in manifest.entries().iter().filter(|e| e.is_alive()) {
                let live = LiveFile {
                    spec_id: spec.spec_id(),
                    days: partition_value(entry.data_file())
                        .and_then(|value| partition_days(spec, value)),
                    data_file: entry.data_file().clone(),
                    snapshot_id: entry.snapshot_id().unwrap_or_default(),
                    sequence_number: entry.sequence_number().unwrap_or_default(),
                    file_sequence_number: entry.file_sequence_number,
                };
                if file(&live) {
                    files.push(live);
                }
            }
        }
        files.sort_by(|a, b| (a.sequence_number, a.path()).cmp(&(b.sequence_number, b.path())));
        Ok(files)
    }

    /// Writes rows as Parquet data files of `table`, one group of files per partition of its
    /// current spec. The rows become Arrow [`ROWS_PER_BATCH`] at a time, each batch encoded
    /// before the next is made: the rows' columns never exist whole. Nothing is committed.
    ///
    /// # Errors
    /// Conversion to Arrow or writing a file fails.
    pub async fn write_rows<T: Serialize>(
        &self,
        table: &Table,
        rows: &[T],
    ) -> Result<Vec<DataFile>, StorageError> {
        let name = table.identifier().to_string();
        let arrow_schema = arrow_schema(table)?;
        let mut writer = TableWriter::open(table, DEFAULT_TARGET_FILE_SIZE).await?;
        for chunk in rows.chunks(ROWS_PER_BATCH) {
            writer
                .write(rows_to_batch(&name, &arrow_schema, chunk)?)
                .await?;
        }
        writer.close().await
    }

    /// Writes Arrow batches (already in the table's Arrow schema) as Parquet data files, one
    /// group of files per partition of its current spec, rolling over to a new file past
    /// `target_file_size` bytes. Nothing is committed.
    ///
    /// # Errors
    /// Writing a file fails.
    pub async fn write_batches(
        &self,
        table: &Table,
        batches: Vec<RecordBatch>,
        target_file_size: usize,
    ) -> Result<Vec<DataFile>, StorageError> {
        let mut writer = TableWriter::open(table, target_file_size).await?;
        for batch in batches {
            writer.write(batch).await?;
        }
        writer.close().await
    }

    /// Reads every row of the given files as Arrow batches in the table's current Arrow schema
    /// (columns cast, so files written by other engines fit), in file order; with `columns`,
    /// only those (in the table's order), the others not even decoded.
    ///
    /// # Errors
    /// A file cannot be read or a column cannot be cast.
    pub async fn read_batches(
        &self,
        table: &Table,
        files: &[LiveFile],
        columns: Option<&[&str]>,
    ) -> Result<Vec<RecordBatch>, StorageError> {
        let target = projected_schema(table, columns)?;
        let wanted = columns.map_or(Columns::All, Columns::only);
        // Decoding is most of a read: each task decodes its share of every file's row groups.
        let shares: Vec<_> = (0..READ_SHARES)
            .map(|k| {
                let mut stream = self.stream_batches(table, files.to_vec(), wanted.clone());
                stream.share = (k, READ_SHARES);
                tokio::spawn(async move {
                    let mut batches = Vec::new();
                    while let Some(batch) = stream.next_of_file().await? {
                        batches.push(batch);
                    }
                    Ok::<_, StorageError>(batches)
                })
            })
            .collect();
        let mut batches = Vec::new();
        for share in shares {
            batches.extend(share.await.map_err(|e| StorageError::Data {
                context: format!("read {}", table.identifier()),
                message: e.to_string(),
            })??);
        }
        // File order; within a file the first share's row groups come first (a stable sort).
        batches.sort_by_key(|(file, _)| *file);
        batches
            .into_iter()
            .map(|(_, batch)| conform(table, &target, &batch))
            .collect()
    }

    /// [`Lakehouse::read_batches`] as they are decoded, for a blocking thread: a task reads
    /// ahead of the consumer by a few batches, so a hop holds a few batches, not the files.
    /// Must be called within the runtime; the iterator must be used off it (`spawn_blocking`).
    ///
    /// # Errors
    /// The table's schema cannot be converted; read errors come through the iterator.
    pub fn read_ahead(
        &self,
        table: &Table,
        files: Vec<LiveFile>,
        columns: Option<&[&str]>,
    ) -> Result<ReadAhead, StorageError> {
        let target = projected_schema(table, columns)?;
        let mut stream =
            self.stream_batches(table, files, columns.map_or(Columns::All, Columns::only));
        let (sender, receiver) = tokio::sync::mpsc::channel(READ_AHEAD);
        let read = table.clone();
        tokio::spawn(async move {
            loop {
                let item = match stream.next().await {
                    Ok(Some(batch)) => conform(&read, &target, &batch).map(Some),
                    other => other,
                };
                let last = !matches!(item, Ok(Some(_)));
                if sender.send(item).await.is_err() || last {
                    break; // the consumer stopped, or this was the end
                }
            }
        });
        Ok(ReadAhead {
            table: table.identifier().to_string(),
            receiver,
            ended: false,
        })
    }

    /// Reads every row of the given files, in file order.
    ///
    /// # Errors
    /// A file cannot be read or does not match `T`.
    pub async fn read_rows<T: DeserializeOwned>(
        &self,
        table: &Table,
        files: &[LiveFile],
    ) -> Result<Vec<T>, StorageError> {
        self.read_rows_without(table, files, &[]).await
    }

    /// [`Lakehouse::read_rows`] without decoding the columns `skip` (`T` must default them).
    ///
    /// # Errors
    /// A file cannot be read or does not match `T`.
    pub async fn read_rows_without<T: DeserializeOwned>(
        &self,
        table: &Table,
        files: &[LiveFile],
        skip: &[&str],
    ) -> Result<Vec<T>, StorageError> {
        let mut stream = self.stream_batches(table, files.to_vec(), Columns::except(skip));
        let mut rows = Vec::new();
        while let Some(mut batch) = stream.next_rows().await? {
            rows.append(&mut batch);
        }
        Ok(rows)
    }
}
