//! The ingest hop: Kafka batches and `landing/` objects → validated bronze rows and
//! quarantine rows. Idempotent per table: each commit records the Kafka offsets and object
//! digests it holds, and a redelivery skips what the table already has.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};

use arrow_array::RecordBatch;
use arrow_array::cast::AsArray;
use bytes::Bytes;
use serde::Serialize;
use sha2::{Digest, Sha256};
use tracing::{info, instrument};

use super::{
    Deps, PROP_INGESTED_OBJECTS, PROP_KAFKA_OFFSETS, PROP_REDRIVEN_BATCHES, PROP_REFERENCE_OBJECT,
    PROP_REFERENCE_TIME,
};
use crate::adapters::events::{FailedBatch, IngestEvent, KafkaMessage, s3_objects};
use crate::adapters::lakehouse::{
    CommitOutcome, CommitPlan, DEFAULT_TARGET_FILE_SIZE, DataFile, KeyProbe, Lakehouse, LiveFile,
    Table, TableDef, TableWriter, rows_to_batch, tables,
};
use crate::adapters::objects::ObjectReader;
use crate::config::ENV_MAX_OBJECT_BYTES;
use crate::domain::dataset::Dataset;
use crate::domain::decode::{Decoded, RawRecord, decode_csv, decode_jsonl};
use crate::domain::records::*;
use crate::domain::rejection::{RejectCode, Rejection};
use crate::domain::time::{date_of, now_micros};
use crate::domain::validate::{BronzeRecord, quarantine_row, validate};
use crate::error::{HandlerError, StorageError};

/// What one ingest invocation did.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct IngestSummary {
    /// Records read from the input.
    pub records: usize,
    /// Rows committed per bronze table (`bronze.x`), quarantine included.
    pub committed: BTreeMap<String, u64>,
    /// Quarantined records by error code.
    pub quarantined: BTreeMap<String, usize>,
    /// Tables whose part of this input was already committed (redelivery).
    pub already_committed: usize,
    pub commits: usize,
    /// Commit attempts lost to a concurrent writer and retried.
    pub commit_retries: u32,
}

/// An input object for the file-ingest path.
#[derive(Clone, Debug, PartialEq)]
pub struct ObjectInput {
    /// Where to read it: local path, `file:///…` or `s3://bucket/key`.
    pub location: String,
    /// Its key for lineage: the S3 key, or the local path.
    pub key: String,
    /// The dataset; `None` to take it from a `landing/<dataset>/…` key.
    pub dataset: Option<Dataset>,
}

/// Handles one ingest invocation (Kafka batch or S3 notification).
///
/// # Errors
/// Storage errors (retryable) — never a bad record, which is quarantined.
#[instrument(skip_all)]
pub async fn handle(deps: &Deps, event: IngestEvent) -> Result<IngestSummary, HandlerError> {
    let summary = match event {
        IngestEvent::S3Test => IngestSummary::default(),
        IngestEvent::Kafka(messages) => ingest_kafka(deps, messages).await?,
        IngestEvent::S3(event) => {
            let mut summary = IngestSummary::default();
            for object in s3_objects(&event) {
                let location = match &deps.config.object_root {
                    // The embedded stand-in for buckets must not read outside its folder.
                    Some(_) if object.key.split('/').any(|segment| segment == "..") => {
                        let rejection = Rejection::new(
                            RejectCode::UnsupportedFile,
                            format!(
                                "key {:?} has a `..` segment: not read under the object root",
                                object.key
                            ),
                        );
                        summary.merge(reject_object(deps, &object.key, rejection).await?);
                        continue;
                    }
                    Some(root) => format!("{root}/{}/{}", object.bucket, object.key),
                    None => object.url(),
                };
                let input = ObjectInput {
                    location,
                    key: object.key.clone(),
                    dataset: None,
                };
                summary.merge(ingest_object(deps, &input).await?);
            }
            summary
        }
    };
    info!(
        records = summary.records,
        quarantined = summary.quarantined.values().sum::<usize>(),
        commits = summary.commits,
        already_committed = summary.already_committed,
        "Ingest done."
    );
    Ok(summary)
}

impl IngestSummary {
    fn merge(&mut self, other: IngestSummary) {
        self.records += other.records;
        for (k, v) in other.committed {
            *self.committed.entry(k).or_default() += v;
        }
        for (k, v) in other.quarantined {
            *self.quarantined.entry(k).or_default() += v;
        }
        self.already_committed += other.already_committed;
        self.commits += other.commits;
        self.commit_retries += other.commit_retries;
    }

    fn record_commit(&mut self, table: &TableDef, outcome: Option<CommitOutcome>) {
        match outcome {
            Some(o) => {
                *self.committed.entry(table.qualified()).or_default() += o.added_records;
                self.commits += 1;
                self.commit_retries += o.attempts.saturating_sub(1);
            }
            None => self.already_committed += 1,
        }
    }
}

/// The Kafka offset a staged row came from: the unit a bronze table's checkpoint tracks.
#[derive(Clone, Debug, PartialEq)]
struct KafkaOrigin {
    partition: String,
    offset: i64,
}

/// Validated rows by table, each with its origin `O`: a [`KafkaOrigin`], or `()` for a piece of
/// an object (the object is the unit of idempotency).
struct Staging<O> {
    sales: Vec<(O, BronzeSale)>,
    readings: Vec<(O, BronzeReading)>,
    inventory: Vec<(O, BronzeInventory)>,
    stores: Vec<(O, BronzeStore)>,
    products: Vec<(O, BronzeProduct)>,
    customers: Vec<(O, BronzeCustomer)>,
    equipment: Vec<(O, BronzeEquipment)>,
    weather: Vec<(O, BronzeWeather)>,
    quarantine: Vec<(O, QuarantineRow)>,
}

impl<O> Default for Staging<O> {
    fn default() -> Self {
        Staging {
            sales: Vec::new(),
            readings: Vec::new(),
            inventory: Vec::new(),
            stores: Vec::new(),
            products: Vec::new(),
            customers: Vec::new(),
            equipment: Vec::new(),
            weather: Vec::new(),
            quarantine: Vec::new(),
        }
    }
}

impl<O> Staging<O> {
    /// Room for `rows` rows of `dataset`, the table nearly all of an object's rows go to.
    fn with_capacity(dataset: Option<Dataset>, rows: usize) -> Self {
        let mut staging = Staging::default();
        match dataset {
            Some(Dataset::SalesEvents) => staging.sales.reserve(rows),
            Some(Dataset::EquipmentMetrics) => staging.readings.reserve(rows),
            Some(Dataset::InventoryUpdates) => staging.inventory.reserve(rows),
            _ => {}
        }
        staging
    }

    fn add(
        &mut self,
        dataset: Option<Dataset>,
        dataset_name: &str,
        record: &RawRecord,
        lineage: &Lineage,
        origin: O,
    ) {
        let validated = match dataset {
            Some(d) => validate(d, record, lineage),
            None => Err(match &record.decoded {
                Decoded::Rejected(r) => r.clone(),
                _ => Rejection::new(
                    RejectCode::UnknownDataset,
                    format!(
                        "unknown dataset {dataset_name:?}; accepted: {}",
                        Dataset::accepted_names()
                    ),
                ),
            }),
        };
        match validated {
            Ok(BronzeRecord::Sale(r)) => self.sales.push((origin, r)),
            Ok(BronzeRecord::Reading(r)) => self.readings.push((origin, r)),
            Ok(BronzeRecord::Inventory(r)) => self.inventory.push((origin, r)),
            Ok(BronzeRecord::Store(r)) => self.stores.push((origin, r)),
            Ok(BronzeRecord::Product(r)) => self.products.push((origin, r)),
            Ok(BronzeRecord::Customer(r)) => self.customers.push((origin, r)),
            Ok(BronzeRecord::Equipment(r)) => self.equipment.push((origin, r)),
            Ok(BronzeRecord::Weather(r)) => self.weather.push((origin, r)),
            Err(rejection) => {
                self.quarantine.push((
                    origin,
                    quarantine_row(dataset_name, record, &rejection, lineage),
                ));
            }
        }
    }

    fn quarantined_by_code(&self) -> BTreeMap<String, usize> {
        let mut counts = BTreeMap::new();
        for (_, q) in &self.quarantine {
            *counts.entry(q.error_code.clone()).or_default() += 1;
        }
        counts
    }
}

/// What a Kafka batch's rows at or below a table's offset checkpoint are.
#[derive(Clone, Copy)]
enum Redelivery<'a> {
    /// Already in the table: Lambda delivers each partition in offset order, so a row at or
    /// below the checkpoint is a redelivery of one committed before.
    Committed,
    /// Perhaps in the table: the batch is one Lambda gave up on, re-driven after later batches
    /// moved the checkpoint past it.
    LookUp(Redrive<'a>),
}

/// A batch being re-driven: a table whose [`PROP_REDRIVEN_BATCHES`] holds `digest` has had it
/// re-driven already; otherwise its rows at or below the checkpoint are looked up by
/// `source_ref` in the ingestion dates `days`, where an earlier attempt would have written them.
#[derive(Clone, Copy)]
struct Redrive<'a> {
    digest: &'a str,
    days: &'a BTreeSet<i32>,
}

impl Staging<KafkaOrigin> {
    /// Commits every table that has rows.
    async fn commit(
        self,
        lake: &Lakehouse,
        offsets: &BTreeMap<String, i64>,
        redelivery: Redelivery<'_>,
        summary: &mut IngestSummary,
    ) -> Result<(), StorageError> {
        let (o, r, s) = (offsets, redelivery, summary);
        commit_kafka_rows(lake, &tables::BRONZE_SALES, &self.sales, o, r, s).await?;
        commit_kafka_rows(
            lake,
            &tables::BRONZE_EQUIPMENT_METRICS,
            &self.readings,
            o,
            r,
            s,
        )
        .await?;
        commit_kafka_rows(lake, &tables::BRONZE_INVENTORY, &self.inventory, o, r, s).await?;
        commit_kafka_rows(lake, &tables::BRONZE_STORES, &self.stores, o, r, s).await?;
        commit_kafka_rows(lake, &tables::BRONZE_PRODUCTS, &self.products, o, r, s).await?;
        commit_kafka_rows(lake, &tables::BRONZE_CUSTOMERS, &self.customers, o, r, s).await?;
        commit_kafka_rows(lake, &tables::BRONZE_EQUIPMENT, &self.equipment, o, r, s).await?;
        commit_kafka_rows(lake, &tables::BRONZE_WEATHER, &self.weather, o, r, s).await?;
        commit_kafka_rows(lake, &tables::QUARANTINE, &self.quarantine, o, r, s).await
    }
}

impl Staging<()> {
    /// The rows as Arrow batches, by table, in the schemas the object's writers take.
    fn into_batches(
        self,
        writers: &[WriterSchema],
    ) -> Result<Vec<(usize, RecordBatch)>, StorageError> {
        let mut out = Vec::new();
        batch_of(&mut out, &tables::BRONZE_SALES, self.sales, writers)?;
        batch_of(
            &mut out,
            &tables::BRONZE_EQUIPMENT_METRICS,
            self.readings,
            writers,
        )?;
        batch_of(&mut out, &tables::BRONZE_INVENTORY, self.inventory, writers)?;
        batch_of(&mut out, &tables::BRONZE_STORES, self.stores, writers)?;
        batch_of(&mut out, &tables::BRONZE_PRODUCTS, self.products, writers)?;
        batch_of(&mut out, &tables::BRONZE_CUSTOMERS, self.customers, writers)?;
        batch_of(&mut out, &tables::BRONZE_EQUIPMENT, self.equipment, writers)?;
        batch_of(&mut out, &tables::BRONZE_WEATHER, self.weather, writers)?;
        batch_of(&mut out, &tables::QUARANTINE, self.quarantine, writers)?;
        Ok(out)
    }
}

/// A table an object's rows may go to, and the Arrow schema its writer takes.
struct WriterSchema {
    table: String,
    schema: Arc<arrow_schema::Schema>,
}

/// Appends the batch of `rows` for `def` (with the index of its writer), if there are rows.
fn batch_of<T: Serialize>(
    out: &mut Vec<(usize, RecordBatch)>,
    def: &TableDef,
    rows: Vec<((), T)>,
    writers: &[WriterSchema],
) -> Result<(), StorageError> {
    if rows.is_empty() {
        return Ok(());
    }
    let name = def.qualified();
    let index = writers
        .iter()
        .position(|w| w.table == name)
        .ok_or_else(|| {
            StorageError::data(format!("ingest into {name}"))("no writer".to_string())
        })?;
    let rows: Vec<T> = rows.into_iter().map(|(_, row)| row).collect();
    out.push((index, rows_to_batch(&name, &writers[index].schema, &rows)?));
    Ok(())
}

/// Commits the rows of one Kafka batch to `def`, but those the table already holds (those at
/// or below its offset checkpoint, as `redelivery` tells), and notes the outcome in `summary`.
async fn commit_kafka_rows<T: Serialize + Ingested + Sync>(
    lake: &Lakehouse,
    def: &TableDef,
    rows: &[(KafkaOrigin, T)],
    batch_offsets: &BTreeMap<String, i64>,
    redelivery: Redelivery<'_>,
    summary: &mut IngestSummary,
) -> Result<(), StorageError> {
    if rows.is_empty() {
        return Ok(());
    }
    // A redrive's look-up so far (the table's sequence number it covers, the refs found), so an
    // attempt re-planned after a lost race reads only the files committed since.
    let looked_up: Mutex<Option<(i64, HashSet<String>)>> = Mutex::new(None);
    let looked_up = &looked_up;
    let outcome = lake
        .commit_with(def, move |table| async move {
            let mut properties = HashMap::new();
            if let Redelivery::LookUp(redrive) = redelivery {
                let mut redriven = digests(&table, PROP_REDRIVEN_BATCHES);
                if !redriven.insert(redrive.digest.to_string()) {
                    return Ok(None);
                }
                properties.insert(
                    PROP_REDRIVEN_BATCHES.to_string(),
                    redriven.into_iter().collect::<Vec<_>>().join(","),
                );
            }
            let offsets: BTreeMap<String, i64> =
                Lakehouse::snapshot_property(&table, PROP_KAFKA_OFFSETS)
                    .and_then(|v| serde_json::from_str(v).ok())
                    .unwrap_or_default();
            let below = |origin: &KafkaOrigin| {
                offsets
                    .get(&origin.partition)
                    .is_some_and(|done| origin.offset <= *done)
            };
            let held = match redelivery {
                Redelivery::Committed => HashSet::new(),
                Redelivery::LookUp(redrive) => {
                    let mut probe = KeyProbe::default();
                    for (_, row) in rows.iter().filter(|(origin, _)| below(origin)) {
                        probe.keys.insert(row.source_ref());
                    }
                    source_refs_held(lake, &table, redrive.days, &probe, looked_up).await?
                }
            };
            let fresh: Vec<&T> = rows
                .iter()
                .filter(|(origin, row)| match redelivery {
                    Redelivery::Committed => !below(origin),
                    Redelivery::LookUp(_) => !below(origin) || !held.contains(row.source_ref()),
                })
                .map(|(_, row)| row)
                .collect();
            if fresh.is_empty() {
                return Ok(None);
            }
            let add = lake.write_rows(&table, &fresh).await?;
            let mut merged = offsets;
            for (partition, offset) in batch_offsets {
                let entry = merged.entry(partition.clone()).or_insert(*offset);
                *entry = (*entry).max(*offset);
            }
            properties.insert(
                PROP_KAFKA_OFFSETS.to_string(),
                serde_json::to_string(&merged).unwrap_or_default(),
            );
            Ok(Some(CommitPlan::append(add, properties)))
        })
        .await?;
    summary.record_commit(def, outcome);
    Ok(())
}

/// Which source refs of `probe` the table holds in the ingestion dates `days`, by the key
/// lookup on its `source_ref` column. `looked_up` keeps what the commit's earlier attempts
/// found and the sequence number they read up to, so an attempt re-planned after a lost race
/// reads only the files committed since: a ref above an earlier attempt's checkpoint was in
/// no file then.
async fn source_refs_held(
    lake: &Lakehouse,
    table: &Table,
    days: &BTreeSet<i32>,
    probe: &KeyProbe,
    looked_up: &Mutex<Option<(i64, HashSet<String>)>>,
) -> Result<HashSet<String>, StorageError> {
    let earlier = looked_up.lock().ok().and_then(|mut l| l.take());
    let (files, mut held) = match earlier {
        None => (lake.files_of_days(table, days).await?, HashSet::new()),
        Some((sequence, held)) => {
            let in_days = |f: &LiveFile| f.days.is_some() && f.holds_any(days);
            let since = lake.files_since(table, sequence).await?;
            (since.into_iter().filter(in_days).collect(), held)
        }
    };
    if !probe.keys.is_empty() && !files.is_empty() {
        let (found, _) = lake
            .find_keys(
                table,
                &files,
                SOURCE_REF,
                INGESTION_TIME,
                probe,
                &[SOURCE_REF],
            )
            .await?;
        for batch in found {
            if let Some(refs) = batch
                .column_by_name(SOURCE_REF)
                .and_then(|c| c.as_string_opt::<i32>())
            {
                held.extend(refs.iter().flatten().map(str::to_string));
            }
        }
    }
    if let Ok(mut l) = looked_up.lock() {
        *l = Some((Lakehouse::last_sequence(table), held.clone()));
    }
    Ok(held)
}

/// The bronze columns a redrive looks rows up by.
const SOURCE_REF: &str = "source_ref";
const INGESTION_TIME: &str = "ingestion_time";

/// Ingests one Kafka batch (records of any topics). Each message is dropped once staged, so
/// its memory serves the staged rows.
///
/// # Errors
/// Storage errors only.
pub async fn ingest_kafka(
    deps: &Deps,
    messages: Vec<KafkaMessage>,
) -> Result<IngestSummary, HandlerError> {
    ingest_messages(deps, messages, Redelivery::Committed).await
}

/// How long before Lambda gives up on a batch an earlier attempt at it may have run: the
/// longest `MaximumRecordAgeInSeconds` Lambda accepts (7 days), and a day of margin.
const LONGEST_RETRY_DAYS: i32 = 8;

/// Re-ingests a Kafka batch Lambda gave up on (`bakehouse redrive`), exactly once. A table
/// that records the batch's digest has it already (a repeated or concurrent redrive). Else
/// rows above the table's checkpoint are new to it, and rows at or below it (later batches
/// moved it on) are looked up by their `source_ref` in the ingestion dates an earlier attempt
/// could have written them to — from [`LONGEST_RETRY_DAYS`] before the batch failed to the day
/// after — and only those the table lacks are written, with the digest. All of it is checked
/// inside the commit.
///
/// # Errors
/// Storage errors only.
pub async fn redrive_kafka(deps: &Deps, batch: FailedBatch) -> Result<IngestSummary, HandlerError> {
    let failed_day = date_of(batch.failed_at);
    let days: BTreeSet<i32> = (failed_day - LONGEST_RETRY_DAYS..=failed_day + 1).collect();
    let redrive = Redrive {
        digest: &batch.digest,
        days: &days,
    };
    ingest_messages(deps, batch.messages, Redelivery::LookUp(redrive)).await
}

async fn ingest_messages(
    deps: &Deps,
    messages: Vec<KafkaMessage>,
    redelivery: Redelivery<'_>,
) -> Result<IngestSummary, HandlerError> {
    let ingestion_time = now_micros();
    let records = messages.len();
    let mut staging = Staging::default();
    let mut offsets = BTreeMap::new();
    for m in messages {
        let partition = format!("{}/{}", m.topic, m.partition);
        let entry = offsets.entry(partition.clone()).or_insert(m.offset);
        *entry = (*entry).max(m.offset);
        let dataset = Dataset::of_topic(&m.topic);
        let lineage = Lineage {
            source: "kafka".to_string(),
            source_ref: m.record.source_ref.clone(),
            ingestion_time,
        };
        staging.add(
            dataset,
            &m.topic,
            &m.record,
            &lineage,
            KafkaOrigin {
                partition,
                offset: m.offset,
            },
        );
    }
    let mut summary = IngestSummary {
        records,
        quarantined: staging.quarantined_by_code(),
        ..Default::default()
    };
    staging
        .commit(&deps.lake, &offsets, redelivery, &mut summary)
        .await?;
    Ok(summary)
}

/// Ingests one object: a JSON-lines or CSV file of one dataset.
///
/// # Errors
/// The object cannot be read, or a storage error.
pub async fn ingest_object(
    deps: &Deps,
    input: &ObjectInput,
) -> Result<IngestSummary, HandlerError> {
    let reader = ObjectReader::open(&deps.lake, &input.location).await?;
    ingest_reader(deps, &input.key, input.dataset, reader, None).await
}

/// Ingests the content of one object named `key` (see [`ingest_object`]).
///
/// # Errors
/// Storage errors.
pub async fn ingest_bytes(
    deps: &Deps,
    key: &str,
    dataset: Option<Dataset>,
    bytes: &[u8],
) -> Result<IngestSummary, HandlerError> {
    let reader = ObjectReader::Memory(Some(Bytes::copy_from_slice(bytes)));
    ingest_reader(deps, key, dataset, reader, None).await
}

/// Bytes per piece of a JSON-lines object validated at a time: bounds memory (a piece's rows
/// take several times its size) while keeping per-piece overheads small.
const PIECE_BYTES: usize = 2 * 1024 * 1024;

/// The first piece's size; each next piece doubles up to `PIECE_BYTES`, so the writer starts
/// on a small object's first rows while the rest are validated on the other core.
const FIRST_PIECE_BYTES: usize = 256 * 1024;

/// Pieces validated (on blocking threads) ahead of the one being written: with the writer this
/// keeps two cores busy; more only adds memory (measured in docs/performance.md).
const PIECES_AHEAD: usize = 1;

/// What every piece of one object shares.
struct ObjectContext {
    key: String,
    dataset: Option<Dataset>,
    dataset_name: String,
    ingestion_time: i64,
    writers: Vec<WriterSchema>,
}

/// The validated rows of one piece, as batches per writer.
struct StagedPiece {
    records: usize,
    quarantined: BTreeMap<String, usize>,
    batches: Vec<(usize, RecordBatch)>,
}

/// What one blocking thread decodes and validates.
enum PieceInput {
    /// JSON lines, as parts with the number of their first line.
    Lines(Vec<(Bytes, usize)>),
    /// Records decoded already (a CSV object, or an object quarantined whole).
    Records(Vec<RawRecord>),
}

/// Decodes and validates one piece (on a blocking thread).
fn stage_piece(context: &ObjectContext, input: PieceInput) -> Result<StagedPiece, StorageError> {
    let records: Vec<RawRecord> = match input {
        PieceInput::Lines(parts) => parts
            .into_iter()
            .flat_map(|(bytes, first_line)| decode_jsonl(bytes, &context.key, first_line))
            .collect(),
        PieceInput::Records(records) => records,
    };
    let mut staging = Staging::with_capacity(context.dataset, records.len());
    let count = records.len();
    for mut record in records {
        let lineage = Lineage {
            source: "file".to_string(),
            source_ref: std::mem::take(&mut record.source_ref),
            ingestion_time: context.ingestion_time,
        };
        staging.add(
            context.dataset,
            &context.dataset_name,
            &record,
            &lineage,
            (),
        );
    }
    Ok(StagedPiece {
        records: count,
        quarantined: staging.quarantined_by_code(),
        batches: staging.into_batches(&context.writers)?,
    })
}

/// Validates and writes an object piece by piece — JSON lines as they are read, any other
/// content whole — then commits each table it wrote to once (by the object's digest). A
/// `refused` object is one quarantined record with that reason.
async fn ingest_reader(
    deps: &Deps,
    key: &str,
    dataset: Option<Dataset>,
    mut reader: ObjectReader,
    refused: Option<Rejection>,
) -> Result<IngestSummary, HandlerError> {
    let lake = &deps.lake;
    let (dataset, dataset_name) = match dataset {
        Some(d) => (Some(d), d.name().to_string()),
        None => {
            let name = landing_dataset_name(key);
            (name.parse::<Dataset>().ok(), name)
        }
    };
    let format = file_format(key);
    let target = dataset.filter(|_| format.is_some() && refused.is_none());
    let ingestion_time = now_micros();
    let mut defs = vec![tables::QUARANTINE];
    defs.extend(target.map(TableDef::bronze));
    let tables = futures::future::try_join_all(defs.iter().map(|def| lake.load(def))).await?;
    let mut writers = Vec::with_capacity(defs.len());
    for table in &tables {
        writers.push(TableWriter::open(table, DEFAULT_TARGET_FILE_SIZE).await?);
    }
    let context = Arc::new(ObjectContext {
        key: key.to_string(),
        dataset: target,
        dataset_name: dataset_name.clone(),
        ingestion_time,
        writers: defs
            .iter()
            .zip(&writers)
            .map(|(def, w)| WriterSchema {
                table: def.qualified(),
                schema: w.schema().clone(),
            })
            .collect(),
    });
    let stage = |input: PieceInput| {
        let context = context.clone();
        tokio::task::spawn_blocking(move || stage_piece(&context, input))
    };

    let mut content = Sha256::new();
    let mut summary = IngestSummary::default();
    let mut pending = VecDeque::new();
    if target.is_some() && format == Some(FileFormat::JsonLines) {
        let mut lines = LineSplitter::default();
        let mut piece_bytes = FIRST_PIECE_BYTES;
        while let Some(bytes) = reader.next(piece_bytes).await? {
            piece_bytes = (piece_bytes * 2).min(PIECE_BYTES);
            content.update(&bytes);
            let parts = lines.push(bytes);
            if !parts.is_empty() {
                pending.push_back(stage(PieceInput::Lines(parts)));
            }
            if pending.len() > PIECES_AHEAD
                && let Some(handle) = pending.pop_front()
            {
                write_piece(&mut writers, handle, key, &mut summary).await?;
            }
        }
        let last = lines.finish();
        if !last.is_empty() {
            pending.push_back(stage(PieceInput::Lines(last)));
        }
    } else {
        let csv = target.filter(|_| format == Some(FileFormat::Csv));
        let rejection = refused.unwrap_or_else(|| object_rejection(key, &dataset_name, dataset));
        let cap = deps.config.max_object_bytes;
        let records = read_whole(lake, &mut reader, key, csv, rejection, cap, &mut content).await?;
        pending.push_back(stage(PieceInput::Records(records)));
    }
    while let Some(handle) = pending.pop_front() {
        write_piece(&mut writers, handle, key, &mut summary).await?;
    }

    let digest = object_digest(key, &content.finalize());
    let reference = target.filter(|d| d.is_reference());
    for (def, writer) in defs.iter().zip(writers) {
        let spec_id = writer.spec_id();
        let files = writer.close().await?;
        let snapshot = reference.is_some() && *def != tables::QUARANTINE;
        let reference_properties = snapshot.then(|| (key.to_string(), ingestion_time));
        commit_object_files(
            lake,
            def,
            (files, spec_id),
            &digest,
            reference_properties,
            &mut summary,
        )
        .await?;
    }
    info!(key = %key, records = summary.records, "Object ingested.");
    Ok(summary)
}

/// The records of an object read whole (adding its bytes to `content`): a CSV file's rows
/// (`csv`: its dataset), or else the object as one record rejected with `rejection`. An
/// object over `cap` bytes is never read: one record rejected for its size, the digest
/// covering its key, size and version (ETag or modification time), so that new content at the
/// same key is quarantined again.
async fn read_whole(
    lake: &Lakehouse,
    reader: &mut ObjectReader,
    key: &str,
    csv: Option<Dataset>,
    rejection: Rejection,
    cap: u64,
    content: &mut Sha256,
) -> Result<Vec<RawRecord>, StorageError> {
    if let Some(size) = reader.size().filter(|size| *size > cap) {
        let version = reader.version(lake).await?.unwrap_or_default();
        content.update(format!("unread object of {size} bytes, version {version}"));
        return Ok(vec![RawRecord {
            source_ref: format!("{key}:0"),
            decoded: Decoded::Rejected(oversized_object(size, cap)),
            bytes: Bytes::new(),
        }]);
    }
    let bytes = reader.read_rest().await?;
    content.update(&bytes);
    Ok(match csv {
        Some(dataset) => decode_csv(&bytes, key, dataset),
        None => vec![RawRecord {
            source_ref: format!("{key}:0"),
            decoded: Decoded::Rejected(rejection),
            bytes: bytes.into(),
        }],
    })
}

/// Waits for a staged piece and writes its batches.
async fn write_piece(
    writers: &mut [TableWriter],
    handle: tokio::task::JoinHandle<Result<StagedPiece, StorageError>>,
    key: &str,
    summary: &mut IngestSummary,
) -> Result<(), StorageError> {
    let piece = handle
        .await
        .map_err(|e| StorageError::data(format!("validate {key}"))(e.to_string()))??;
    summary.records += piece.records;
    for (code, n) in piece.quarantined {
        *summary.quarantined.entry(code).or_default() += n;
    }
    for (index, batch) in piece.batches {
        writers[index].write(batch).await?;
    }
    Ok(())
}

/// Splits JSON lines read in pieces at line ends, numbering lines across pieces. Only the line
/// that spans two pieces is copied; the rest are slices of the pieces.
#[derive(Default)]
struct LineSplitter {
    /// The unfinished last line of the pieces so far.
    carry: Vec<u8>,
    /// Lines handed out so far.
    lines: usize,
}

impl LineSplitter {
    /// The complete lines up to the last line end of `carry + piece`, as parts with the number
    /// of their first line (none when no line ended in this piece).
    fn push(&mut self, piece: Bytes) -> Vec<(Bytes, usize)> {
        let Some(last_end) = memchr::memrchr(b'\n', &piece) else {
            self.carry.extend_from_slice(&piece);
            return Vec::new();
        };
        let mut parts = Vec::with_capacity(2);
        let mut rest = 0;
        if !self.carry.is_empty() {
            let first_end = memchr::memchr(b'\n', &piece).unwrap_or(last_end);
            let mut spanning = std::mem::take(&mut self.carry);
            spanning.extend_from_slice(&piece[..=first_end]);
            parts.push(self.hand_out(spanning.into()));
            rest = first_end + 1;
        }
        if rest <= last_end {
            parts.push(self.hand_out(piece.slice(rest..=last_end)));
        }
        self.carry.extend_from_slice(&piece[last_end + 1..]);
        parts
    }

    /// The last line, when the object does not end with a line end.
    fn finish(&mut self) -> Vec<(Bytes, usize)> {
        let rest = std::mem::take(&mut self.carry);
        if rest.is_empty() {
            Vec::new()
        } else {
            vec![self.hand_out(rest.into())]
        }
    }

    fn hand_out(&mut self, lines: Bytes) -> (Bytes, usize) {
        let first = self.lines + 1;
        self.lines += memchr::memchr_iter(b'\n', &lines).count();
        (lines, first)
    }
}

/// Why an object whose dataset or file type is unknown is quarantined (whole, as one record).
fn object_rejection(key: &str, dataset_name: &str, dataset: Option<Dataset>) -> Rejection {
    match dataset {
        None => Rejection::new(
            RejectCode::UnknownDataset,
            format!(
                "unknown dataset {dataset_name:?} in key {key:?}; accepted: {}",
                Dataset::accepted_names()
            ),
        ),
        Some(_) => Rejection::new(
            RejectCode::UnsupportedFile,
            format!("{key:?} is neither .jsonl/.json/.ndjson nor .csv"),
        ),
    }
}

/// Why an object too large to read whole is quarantined by its key alone.
fn oversized_object(size: u64, cap: u64) -> Rejection {
    Rejection::new(
        RejectCode::TooLarge,
        format!(
            "object of {size} bytes is over {ENV_MAX_OBJECT_BYTES}={cap}, the most read whole \
             (a CSV file, or an object quarantined whole): not read; split it, or raise the cap"
        ),
    )
}

/// Commits the files one object wrote to `def` (under the partition spec `spec_id`), unless
/// the table already holds the object (`digest`): then the files are deleted. A reference snapshot (`reference`: its key and
/// ingestion time) commits even without files.
async fn commit_object_files(
    lake: &Lakehouse,
    def: &TableDef,
    (files, spec_id): (Vec<DataFile>, i32),
    digest: &str,
    reference: Option<(String, i64)>,
    summary: &mut IngestSummary,
) -> Result<(), StorageError> {
    if files.is_empty() && reference.is_none() {
        return Ok(());
    }
    let outcome = lake
        .commit_with(def, |table| {
            let add = files.clone();
            let reference = reference.clone();
            async move {
                let mut objects = digests(&table, PROP_INGESTED_OBJECTS);
                if objects.contains(digest) {
                    return Ok(None);
                }
                objects.insert(digest.to_string());
                let mut properties = HashMap::from([(
                    PROP_INGESTED_OBJECTS.to_string(),
                    objects.into_iter().collect::<Vec<_>>().join(","),
                )]);
                if let Some((key, time)) = reference {
                    properties.insert(PROP_REFERENCE_OBJECT.to_string(), key);
                    properties.insert(PROP_REFERENCE_TIME.to_string(), time.to_string());
                }
                // Written before planning: under the spec of that time, which a partition
                // evolution since may have replaced.
                Ok(Some(CommitPlan {
                    keep_added_on_conflict: true,
                    added_spec: Some(spec_id),
                    ..CommitPlan::append(add, properties)
                }))
            }
        })
        .await?;
    if outcome.is_none() {
        // The table holds the object already.
        lake.delete_uncommitted(&files).await;
    }
    summary.record_commit(def, outcome);
    Ok(())
}

/// A comma-separated set of digests kept in a snapshot property (the objects or re-driven
/// batches a table holds).
fn digests(table: &Table, property: &str) -> BTreeSet<String> {
    Lakehouse::snapshot_property(table, property)
        .map(|v| {
            v.split(',')
                .filter(|d| !d.is_empty())
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

/// Quarantines an object as one record without reading it, once (by its key).
async fn reject_object(
    deps: &Deps,
    key: &str,
    rejection: Rejection,
) -> Result<IngestSummary, HandlerError> {
    ingest_reader(deps, key, None, ObjectReader::Memory(None), Some(rejection)).await
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum FileFormat {
    JsonLines,
    Csv,
}

fn file_format(key: &str) -> Option<FileFormat> {
    let lower = key.to_ascii_lowercase();
    if lower.ends_with(".jsonl") || lower.ends_with(".json") || lower.ends_with(".ndjson") {
        Some(FileFormat::JsonLines)
    } else if lower.ends_with(".csv") {
        Some(FileFormat::Csv)
    } else {
        None
    }
}

/// The dataset folder of a `…landing/<dataset>/<name>` key (the folder before the file name).
fn landing_dataset_name(key: &str) -> String {
    let mut parts = key.rsplit('/');
    parts.next();
    parts.next().unwrap_or_default().to_string()
}

/// The idempotency digest of an object: its key and the SHA-256 of its content, hashed
/// (16 bytes, hex).
fn object_digest(key: &str, content_hash: &[u8]) -> String {
    let mut hasher = Sha256::new();
    hasher.update(key.as_bytes());
    hasher.update([0]);
    hasher.update(content_hash);
    hex::encode(&hasher.finalize()[..16])
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (line reference, bytes) of every record decoded from `pieces` read in order.
    fn records_of(pieces: &[&[u8]]) -> Vec<(String, Vec<u8>)> {
        let mut lines = LineSplitter::default();
        let mut parts = Vec::new();
        for piece in pieces {
            parts.extend(lines.push(Bytes::copy_from_slice(piece)));
        }
        parts.extend(lines.finish());
        parts
            .into_iter()
            .flat_map(|(bytes, first)| decode_jsonl(bytes, "k", first))
            .map(|r| (r.source_ref, r.bytes.to_vec()))
            .collect()
    }

    #[test]
    fn pieces_split_anywhere_give_the_lines_of_the_whole() {
        let text: &[u8] = b"\xEF\xBB\xBF{\"a\":1}\r\n\n{\"b\":22}\n  \n{\"c\":333}\n{\"d\":4}";
        let whole = records_of(&[text]);
        assert_eq!(
            whole.iter().map(|(r, _)| r.as_str()).collect::<Vec<_>>(),
            ["k:1", "k:3", "k:5", "k:6"]
        );
        for i in 0..=text.len() {
            for j in i..=text.len() {
                let pieces = [&text[..i], &text[i..j], &text[j..]];
                assert_eq!(records_of(&pieces), whole, "split at {i} and {j}");
            }
        }
    }
}
