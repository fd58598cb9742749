//! The ingest hop: Kafka batches and `landing/` objects → validated bronze rows and
//! quarantine rows. Idempotent per table: each commit records the Kafka offsets and object
//! digests it holds, and a redelivery skips what the table already has.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use sha2::{Digest, Sha256};
use tracing::{info, instrument};

use super::{
    Deps, PROP_INGESTED_OBJECTS, PROP_KAFKA_OFFSETS, PROP_REFERENCE_OBJECT, PROP_REFERENCE_TIME,
};
use crate::adapters::events::{IngestEvent, KafkaMessage, kafka_messages, s3_objects};
use crate::adapters::iceberg::{CommitOutcome, CommitPlan, Lakehouse, Operation, TableDef, tables};
use crate::adapters::objects::read_object;
use crate::domain::dataset::Dataset;
use crate::domain::records::*;
use crate::domain::time::{date_of, now_micros};
use crate::domain::validate::{
    BronzeRecord, Decoded, RawRecord, RejectCode, Rejection, decode_csv, decode_jsonl,
    quarantine_row, validate,
};
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
        IngestEvent::Kafka(event) => ingest_kafka(deps, &kafka_messages(&event)).await?,
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
    }

    fn record_commit(&mut self, table: &TableDef, outcome: Option<CommitOutcome>) {
        match outcome {
            Some(o) => {
                *self.committed.entry(table.qualified()).or_default() += o.added_records;
                self.commits += 1;
            }
            None => self.already_committed += 1,
        }
    }
}

/// Where a staged row came from: the unit its table's idempotency record tracks.
#[derive(Clone, Debug, PartialEq)]
enum Origin {
    Kafka { partition: String, offset: i64 },
    Object { digest: String },
}

/// Validated rows of one input, by table.
#[derive(Default)]
struct Staging {
    sales: Vec<(Origin, BronzeSale)>,
    readings: Vec<(Origin, BronzeReading)>,
    inventory: Vec<(Origin, BronzeInventory)>,
    stores: Vec<(Origin, BronzeStore)>,
    products: Vec<(Origin, BronzeProduct)>,
    customers: Vec<(Origin, BronzeCustomer)>,
    equipment: Vec<(Origin, BronzeEquipment)>,
    quarantine: Vec<(Origin, QuarantineRow)>,
}

impl Staging {
    fn add(
        &mut self,
        dataset: Option<Dataset>,
        dataset_name: &str,
        record: &RawRecord,
        lineage: &Lineage,
        origin: Origin,
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

    /// Commits every table that has rows (and, for a reference object, its table even when
    /// empty: an empty full snapshot is still the latest snapshot).
    async fn commit(
        self,
        lake: &Lakehouse,
        progress: &Progress,
        summary: &mut IngestSummary,
    ) -> Result<(), StorageError> {
        let snapshot_of = |d: Dataset| progress.reference == Some(d);
        let (p, s) = (progress, summary);
        commit_rows(lake, &tables::BRONZE_SALES, &self.sales, p, false, s).await?;
        commit_rows(
            lake,
            &tables::BRONZE_EQUIPMENT_METRICS,
            &self.readings,
            p,
            false,
            s,
        )
        .await?;
        commit_rows(
            lake,
            &tables::BRONZE_INVENTORY,
            &self.inventory,
            p,
            false,
            s,
        )
        .await?;
        commit_rows(
            lake,
            &tables::BRONZE_STORES,
            &self.stores,
            p,
            snapshot_of(Dataset::Stores),
            s,
        )
        .await?;
        commit_rows(
            lake,
            &tables::BRONZE_PRODUCTS,
            &self.products,
            p,
            snapshot_of(Dataset::Products),
            s,
        )
        .await?;
        commit_rows(
            lake,
            &tables::BRONZE_CUSTOMERS,
            &self.customers,
            p,
            snapshot_of(Dataset::Customers),
            s,
        )
        .await?;
        commit_rows(
            lake,
            &tables::BRONZE_EQUIPMENT,
            &self.equipment,
            p,
            snapshot_of(Dataset::Equipment),
            s,
        )
        .await?;
        commit_rows(lake, &tables::QUARANTINE, &self.quarantine, p, false, s).await
    }
}

/// The idempotency units one input covers, and the reference snapshot it is, if any.
struct Progress {
    /// Highest offset per `topic/partition` in this batch.
    offsets: BTreeMap<String, i64>,
    /// Digest of the object, for file input.
    object: Option<String>,
    /// For a reference object: its dataset, key and ingestion time.
    reference: Option<Dataset>,
    reference_key: String,
    ingestion_time: i64,
}

/// Commits `rows` to `def`, skipping those whose origin the table already holds, and notes
/// the outcome in `summary`. A reference snapshot commits even without rows.
async fn commit_rows<T: Serialize + Ingested + Sync>(
    lake: &Lakehouse,
    def: &TableDef,
    rows: &[(Origin, T)],
    progress: &Progress,
    commit_even_if_empty: bool,
    summary: &mut IngestSummary,
) -> Result<(), StorageError> {
    if rows.is_empty() && !commit_even_if_empty {
        return Ok(());
    }
    let outcome = lake
        .commit_with(def, move |table| async move {
            let offsets: BTreeMap<String, i64> =
                Lakehouse::snapshot_property(&table, PROP_KAFKA_OFFSETS)
                    .and_then(|v| serde_json::from_str(v).ok())
                    .unwrap_or_default();
            let objects: BTreeSet<String> =
                Lakehouse::snapshot_property(&table, PROP_INGESTED_OBJECTS)
                    .map(|v| {
                        v.split(',')
                            .filter(|d| !d.is_empty())
                            .map(str::to_string)
                            .collect()
                    })
                    .unwrap_or_default();
            if progress
                .object
                .as_ref()
                .is_some_and(|d| objects.contains(d))
            {
                return Ok(None);
            }
            let fresh: Vec<&T> = rows
                .iter()
                .filter(|(origin, _)| match origin {
                    Origin::Kafka { partition, offset } => {
                        offsets.get(partition).is_none_or(|done| offset > done)
                    }
                    Origin::Object { .. } => true,
                })
                .map(|(_, row)| row)
                .collect();
            if fresh.is_empty() && !commit_even_if_empty {
                return Ok(None);
            }
            let add = lake
                .write_rows(&table, &fresh, |r| date_of(r.ingestion_time()))
                .await?;
            let mut properties = std::collections::HashMap::new();
            if !progress.offsets.is_empty() {
                let mut merged = offsets;
                for (partition, offset) in &progress.offsets {
                    let entry = merged.entry(partition.clone()).or_insert(*offset);
                    *entry = (*entry).max(*offset);
                }
                properties.insert(
                    PROP_KAFKA_OFFSETS.to_string(),
                    serde_json::to_string(&merged).unwrap_or_default(),
                );
            }
            if let Some(digest) = &progress.object {
                let mut all = objects;
                all.insert(digest.clone());
                properties.insert(
                    PROP_INGESTED_OBJECTS.to_string(),
                    all.into_iter().collect::<Vec<_>>().join(","),
                );
            }
            if commit_even_if_empty {
                properties.insert(
                    PROP_REFERENCE_OBJECT.to_string(),
                    progress.reference_key.clone(),
                );
                properties.insert(
                    PROP_REFERENCE_TIME.to_string(),
                    progress.ingestion_time.to_string(),
                );
            }
            Ok(Some(CommitPlan {
                operation: Operation::Append,
                add,
                add_rewritten: Vec::new(),
                remove: Vec::new(),
                properties,
            }))
        })
        .await?;
    summary.record_commit(def, outcome);
    Ok(())
}

/// Ingests one Kafka batch (records of any topics).
///
/// # Errors
/// Storage errors only.
pub async fn ingest_kafka(
    deps: &Deps,
    messages: &[KafkaMessage],
) -> Result<IngestSummary, HandlerError> {
    let ingestion_time = now_micros();
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
            Origin::Kafka {
                partition,
                offset: m.offset,
            },
        );
    }
    let mut summary = IngestSummary {
        records: messages.len(),
        quarantined: staging.quarantined_by_code(),
        ..Default::default()
    };
    let progress = Progress {
        offsets,
        object: None,
        reference: None,
        reference_key: String::new(),
        ingestion_time,
    };
    staging.commit(&deps.lake, &progress, &mut summary).await?;
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
    let bytes = read_object(&deps.lake, &input.location).await?;
    ingest_bytes(deps, &input.key, input.dataset, &bytes).await
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
    let (dataset, dataset_name) = match dataset {
        Some(d) => (Some(d), d.name().to_string()),
        None => {
            let name = landing_dataset_name(key);
            (name.parse::<Dataset>().ok(), name)
        }
    };
    let format = file_format(key);
    let records = match (dataset, format) {
        (Some(_), Some(FileFormat::JsonLines)) => decode_jsonl(bytes, key),
        (Some(d), Some(FileFormat::Csv)) => decode_csv(bytes, key, d),
        (dataset, format) => {
            // The whole object is one quarantined record: unknown dataset or file type.
            let rejection = match (dataset, format) {
                (None, _) => Rejection::new(
                    RejectCode::UnknownDataset,
                    format!(
                        "unknown dataset {dataset_name:?} in key {:?}; accepted: {}",
                        key,
                        Dataset::accepted_names()
                    ),
                ),
                _ => Rejection::new(
                    RejectCode::UnsupportedFile,
                    format!("{:?} is neither .jsonl/.json/.ndjson nor .csv", key),
                ),
            };
            vec![RawRecord {
                source_ref: format!("{}:0", key),
                bytes: bytes.to_vec(),
                decoded: Decoded::Rejected(rejection),
            }]
        }
    };
    let target = dataset.filter(|_| format.is_some());
    let reference = target.filter(|d| d.is_reference());
    commit_object(
        deps,
        key,
        target,
        &dataset_name,
        reference,
        &records,
        object_digest(key, bytes),
    )
    .await
}

/// Validates the records of one object and commits them, once per table (by `digest`).
async fn commit_object(
    deps: &Deps,
    key: &str,
    dataset: Option<Dataset>,
    dataset_name: &str,
    reference: Option<Dataset>,
    records: &[RawRecord],
    digest: String,
) -> Result<IngestSummary, HandlerError> {
    let ingestion_time = now_micros();
    let mut staging = Staging::default();
    for record in records {
        let lineage = Lineage {
            source: "file".to_string(),
            source_ref: record.source_ref.clone(),
            ingestion_time,
        };
        staging.add(
            dataset,
            dataset_name,
            record,
            &lineage,
            Origin::Object {
                digest: digest.clone(),
            },
        );
    }
    let mut summary = IngestSummary {
        records: records.len(),
        quarantined: staging.quarantined_by_code(),
        ..Default::default()
    };
    let progress = Progress {
        offsets: BTreeMap::new(),
        object: Some(digest),
        reference,
        reference_key: key.to_string(),
        ingestion_time,
    };
    staging.commit(&deps.lake, &progress, &mut summary).await?;
    info!(key = %key, records = summary.records, "Object ingested.");
    Ok(summary)
}

/// Quarantines an object as one record without reading it, once (by its key).
async fn reject_object(
    deps: &Deps,
    key: &str,
    rejection: Rejection,
) -> Result<IngestSummary, HandlerError> {
    let record = RawRecord {
        source_ref: format!("{key}:0"),
        bytes: Vec::new(),
        decoded: Decoded::Rejected(rejection),
    };
    commit_object(
        deps,
        key,
        None,
        &landing_dataset_name(key),
        None,
        &[record],
        object_digest(key, b""),
    )
    .await
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

/// The idempotency digest of an object: its key and content, hashed (16 bytes, hex).
fn object_digest(key: &str, content: &[u8]) -> String {
    let content_hash = Sha256::digest(content);
    let mut hasher = Sha256::new();
    hasher.update(key.as_bytes());
    hasher.update([0]);
    hasher.update(content_hash);
    hex::encode(&hasher.finalize()[..16])
}
