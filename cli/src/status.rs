//! `bakehouse status`: per table its snapshots, rows, files, sizes, last commit and last
//! compaction; per hop its checkpoint and how far behind it is; Kafka consumer lag per
//! topic-partition (when a broker is given); the quality and late-arrival figures of the
//! latest business dates. A readable table, or `--json` for scripts.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use anyhow::{Context, Result};
use bakehouse::adapters::lakehouse::{ALL_TABLES, Lakehouse, Table, TableDef, tables};
use bakehouse::domain::records::{DataQualityDaily, LateArrivalsDaily};
use bakehouse::domain::time::{date_from_days, format_timestamp};
use bakehouse::hops::to_gold::FACTS;
use bakehouse::hops::to_silver::SILVER;
use bakehouse::hops::{Deps, PROP_INGESTED_OBJECTS, PROP_KAFKA_OFFSETS, checkpoint};
use clap::Args;
use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use serde::Serialize;

#[derive(Args, Debug)]
pub struct StatusArgs {
    /// Print one JSON document instead of tables
    #[arg(long)]
    pub json: bool,
    /// Kafka bootstrap servers: adds the consumer lag per topic-partition
    #[arg(long, env = "KAFKA_BOOTSTRAP_SERVERS")]
    pub kafka: Option<String>,
    /// Prefix of the topic names (e.g. `test1.`), as given to `bakehouse local`
    #[arg(long, default_value = "")]
    pub topic_prefix: String,
    /// How many of the latest business dates the quality and late-arrival figures cover
    #[arg(long, default_value_t = 7)]
    pub days: usize,
}

#[derive(Debug, Serialize)]
pub struct Status {
    pub tables: Vec<TableStatus>,
    pub hops: Vec<HopStatus>,
    pub ingested: Vec<IngestedStatus>,
    /// Absent when no broker was given.
    pub kafka_lag: Option<Vec<PartitionLag>>,
    /// From `gold.data_quality_daily` and `gold.late_arrivals_daily` (written by maintenance).
    pub quality: Vec<DataQualityDaily>,
    pub late_arrivals: Vec<LateArrivalsDaily>,
}

#[derive(Debug, Serialize)]
pub struct TableStatus {
    pub table: String,
    pub snapshots: usize,
    pub rows: u64,
    pub files: u64,
    pub bytes: u64,
    pub avg_file_bytes: u64,
    /// UTC, RFC 3339; null before the first commit.
    pub last_commit: Option<String>,
    /// The last snapshot that rewrote files (compaction), if still in the history.
    pub last_compaction: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct HopStatus {
    pub source: String,
    pub target: String,
    /// The source sequence number the target has processed up to.
    pub checkpoint: i64,
    pub source_head: i64,
    /// Source snapshots with new rows (not compactions) committed after the checkpoint.
    pub snapshots_behind: usize,
    /// The rows those snapshots added.
    pub rows_behind: u64,
}

#[derive(Debug, Serialize)]
pub struct IngestedStatus {
    pub table: String,
    pub objects: usize,
    /// Highest offset ingested per `topic/partition`.
    pub kafka_offsets: BTreeMap<String, i64>,
}

#[derive(Debug, Serialize)]
pub struct PartitionLag {
    pub topic: String,
    pub partition: i32,
    /// The broker's next offset (high watermark).
    pub end_offset: i64,
    /// Highest offset committed to bronze, if any.
    pub ingested_offset: Option<i64>,
    /// Records on the broker not yet in bronze.
    pub lag: i64,
}

/// Gathers the status and prints it.
pub async fn run(deps: &Deps, args: &StatusArgs) -> Result<()> {
    let status = gather(deps, args).await?;
    if args.json {
        say!("{}", crate::to_json(&status)?);
    } else {
        print(&status);
    }
    Ok(())
}

/// The status of the lakehouse (and of the broker, when `args.kafka` is set).
pub async fn gather(deps: &Deps, args: &StatusArgs) -> Result<Status> {
    let lake = &deps.lake;
    let mut table_status = Vec::new();
    for def in ALL_TABLES {
        table_status.push(table_line(&lake.load(&def).await?, &def));
    }
    let mut hops = Vec::new();
    for (target, source) in SILVER.iter().chain(FACTS.iter()) {
        let (target_table, source_table) = (lake.load(target).await?, lake.load(source).await?);
        let done = checkpoint(&target_table);
        // A rewrite (compaction, a fill) brings nothing new to process.
        let pending: Vec<_> = Lakehouse::snapshots(&source_table)
            .into_iter()
            .filter(|s| s.sequence > done && s.brings_new_rows)
            .collect();
        hops.push(HopStatus {
            source: source.qualified(),
            target: target.qualified(),
            checkpoint: done,
            source_head: Lakehouse::head_sequence(&source_table),
            snapshots_behind: pending.len(),
            rows_behind: pending.iter().map(|s| s.added_records).sum(),
        });
    }
    let mut ingested = Vec::new();
    for def in ALL_TABLES.iter().filter(|d| d.namespace == "bronze") {
        let table = lake.load(def).await?;
        ingested.push(IngestedStatus {
            table: def.qualified(),
            objects: Lakehouse::snapshot_property(&table, PROP_INGESTED_OBJECTS)
                .map_or(0, |v| v.split(',').filter(|d| !d.is_empty()).count()),
            kafka_offsets: Lakehouse::snapshot_property(&table, PROP_KAFKA_OFFSETS)
                .and_then(|v| serde_json::from_str(v).ok())
                .unwrap_or_default(),
        });
    }
    let kafka_lag = match &args.kafka {
        Some(servers) => Some(kafka_lag(servers, &args.topic_prefix, &ingested).await?),
        None => None,
    };
    let quality: Vec<DataQualityDaily> = lake.read_table(&tables::DATA_QUALITY_DAILY).await?;
    let late_arrivals: Vec<LateArrivalsDaily> =
        lake.read_table(&tables::LATE_ARRIVALS_DAILY).await?;
    let recent = |dates: BTreeSet<i32>| -> BTreeSet<i32> {
        dates.into_iter().rev().take(args.days).collect()
    };
    let quality_days = recent(quality.iter().map(|r| r.business_date).collect());
    let late_days = recent(late_arrivals.iter().map(|r| r.business_date).collect());
    Ok(Status {
        tables: table_status,
        hops,
        ingested,
        kafka_lag,
        quality: quality
            .into_iter()
            .filter(|r| quality_days.contains(&r.business_date))
            .collect(),
        late_arrivals: late_arrivals
            .into_iter()
            .filter(|r| late_days.contains(&r.business_date))
            .collect(),
    })
}

fn table_line(table: &Table, def: &TableDef) -> TableStatus {
    let number = |key: &str| {
        Lakehouse::snapshot_property(table, key)
            .and_then(|v| v.parse().ok())
            .unwrap_or(0u64)
    };
    let (files, bytes) = (number("total-data-files"), number("total-files-size"));
    let snapshots = Lakehouse::snapshots(table);
    let time = |ms: i64| format_timestamp(ms * 1000);
    TableStatus {
        table: def.qualified(),
        snapshots: snapshots.len(),
        rows: number("total-records"),
        files,
        bytes,
        avg_file_bytes: bytes.checked_div(files).unwrap_or(0),
        last_commit: Lakehouse::head(table).map(|head| time(head.timestamp_ms)),
        last_compaction: snapshots
            .iter()
            .filter(|s| s.compaction)
            .map(|s| s.timestamp_ms)
            .max()
            .map(time),
    }
}

/// The lag of every partition of the event topics (`prefix` + dataset name, and every topic
/// bronze has offsets of): the broker's end offset against the highest offset in bronze.
async fn kafka_lag(
    servers: &str,
    prefix: &str,
    ingested: &[IngestedStatus],
) -> Result<Vec<PartitionLag>> {
    // A partition's records are spread over the bronze tables (quarantine too): its
    // position is the highest offset any of them holds.
    let mut committed: BTreeMap<String, i64> = BTreeMap::new();
    for (partition, offset) in ingested.iter().flat_map(|i| &i.kafka_offsets) {
        let highest = committed.entry(partition.clone()).or_insert(*offset);
        *highest = (*highest).max(*offset);
    }
    let mut topics: BTreeSet<String> = crate::kafka::event_topics(prefix).into_iter().collect();
    topics.extend(
        committed
            .keys()
            .filter_map(|k| k.rsplit_once('/').map(|(t, _)| t.to_string())),
    );
    let servers = servers.to_string();
    tokio::task::spawn_blocking(move || -> Result<Vec<PartitionLag>> {
        let timeout = Duration::from_secs(10);
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &servers)
            .create()
            .context("cannot create the Kafka client")?;
        let metadata = consumer
            .fetch_metadata(None, timeout)
            .with_context(|| format!("cannot read the topics of the Kafka broker {servers}"))?;
        let mut lags = Vec::new();
        for topic in metadata
            .topics()
            .iter()
            .filter(|t| topics.contains(t.name()))
        {
            for partition in topic.partitions() {
                let (_, end) = consumer
                    .fetch_watermarks(topic.name(), partition.id(), timeout)
                    .with_context(|| format!("offsets of {}/{}", topic.name(), partition.id()))?;
                let ingested_offset = committed
                    .get(&format!("{}/{}", topic.name(), partition.id()))
                    .copied();
                lags.push(PartitionLag {
                    topic: topic.name().to_string(),
                    partition: partition.id(),
                    end_offset: end,
                    ingested_offset,
                    lag: (end - ingested_offset.map_or(0, |o| o + 1)).max(0),
                });
            }
        }
        lags.sort_by(|a, b| (&a.topic, a.partition).cmp(&(&b.topic, b.partition)));
        Ok(lags)
    })
    .await?
}

fn print(status: &Status) {
    print_tables_and_hops(status);
    if let Some(lags) = &status.kafka_lag {
        say!();
        say!(
            "{:<28} {:>9} {:>12} {:>12} {:>8}",
            "topic",
            "partition",
            "end offset",
            "ingested",
            "lag"
        );
        for l in lags {
            say!(
                "{:<28} {:>9} {:>12} {:>12} {:>8}",
                l.topic,
                l.partition,
                l.end_offset,
                l.ingested_offset.map_or("-".into(), |o| o.to_string()),
                l.lag
            );
        }
    }
    print_quality(status);
}

/// Each table's size and last commits, each hop's lag behind its source, what bronze ingested.
fn print_tables_and_hops(status: &Status) {
    let time = |t: &Option<String>| t.clone().unwrap_or_else(|| "-".into());
    say!(
        "{:<34} {:>9} {:>10} {:>6} {:>12} {:>10}  {:<27} {:<27}",
        "table",
        "snapshots",
        "rows",
        "files",
        "bytes",
        "avg file",
        "last commit",
        "last compaction"
    );
    for t in &status.tables {
        say!(
            "{:<34} {:>9} {:>10} {:>6} {:>12} {:>10}  {:<27} {:<27}",
            t.table,
            t.snapshots,
            t.rows,
            t.files,
            t.bytes,
            t.avg_file_bytes,
            time(&t.last_commit),
            time(&t.last_compaction)
        );
    }
    say!();
    say!(
        "{:<62} {:>10} {:>11} {:>16} {:>11}",
        "hop",
        "checkpoint",
        "source head",
        "snapshots behind",
        "rows behind"
    );
    for h in &status.hops {
        say!(
            "{:<62} {:>10} {:>11} {:>16} {:>11}",
            format!("{} → {}", h.source, h.target),
            h.checkpoint,
            h.source_head,
            h.snapshots_behind,
            h.rows_behind
        );
    }
    say!();
    for i in status
        .ingested
        .iter()
        .filter(|i| i.objects > 0 || !i.kafka_offsets.is_empty())
    {
        say!(
            "{:<34} objects ingested: {:<5} kafka offsets: {}",
            i.table,
            i.objects,
            serde_json::to_string(&i.kafka_offsets).unwrap_or_default()
        );
    }
}

/// The daily quality and late-arrival figures.
fn print_quality(status: &Status) {
    say!();
    say!(
        "{:<11} {:<18} {:>8} {:>8} {:>11} {:>9} {:>7} {:>5}",
        "date",
        "dataset",
        "records",
        "for gold",
        "quarantined",
        "avg score",
        "perfect",
        "poor"
    );
    for q in &status.quality {
        say!(
            "{:<11} {:<18} {:>8} {:>8} {:>11} {:>9} {:>7} {:>5}",
            date_from_days(q.business_date).to_string(),
            q.dataset,
            q.records,
            q.gold_eligible,
            q.quarantined,
            q.avg_quality_score
                .map_or("-".into(), |s| format!("{s:.1}")),
            q.perfect,
            q.poor
        );
    }
    say!();
    say!(
        "{:<11} {:<18} {:>6} {:>9} {:>10} {:>10}",
        "date",
        "dataset",
        "late",
        "too late",
        "avg late h",
        "max late h"
    );
    let hours = |h: Option<f64>| h.map_or("-".into(), |h| format!("{h:.1}"));
    for l in &status.late_arrivals {
        say!(
            "{:<11} {:<18} {:>6} {:>9} {:>10} {:>10}",
            date_from_days(l.business_date).to_string(),
            l.dataset,
            l.late_records,
            l.too_late_records,
            hours(l.avg_lateness_hours),
            hours(l.max_lateness_hours)
        );
    }
}
