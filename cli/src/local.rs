//! `bakehouse local`: the local stand-in for Lambda's event sources, invoking the same
//! handlers the functions run:
//! - a Kafka poller (consumer group) building AWS-shaped `KafkaEvent` batches of at most
//!   `--batch-size` records or `--batch-window-ms` (the template's: 10,000 records, 1 s),
//!   invoking `ingest`, and committing the offsets only after it succeeded (a failed batch is
//!   retried with backoff, never skipped);
//! - object-created wake-ups: new objects under `landing/` (found by listing) invoke `ingest`;
//!   a new metadata file of a bronze or silver table (found through the catalog pointer, the
//!   object an S3 notification would announce) invokes `bronze-to-silver` or `silver-to-gold`.
//!   A commit made in this process wakes the next hop at once (ingest wakes bronze-to-silver,
//!   which wakes silver-to-gold), as S3 would notify it; the catalog pointers are also polled
//!   every `--poll-ms` for commits made by other processes;
//! - the maintenance schedule;
//! - a status line per interval, and a graceful stop on Ctrl-C / SIGTERM after the current batch.
//!
//! Every failure is classed (`Stats::failed`): retryable ones (a server down, a commit
//! conflict) are expected during an outage and logged as warnings; permanent ones need a fix
//! and are logged as errors. Both are retried — nothing is skipped — and both are counted.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use bakehouse::adapters::events::object_created_event;
use bakehouse::adapters::lakehouse::TableDef;
use bakehouse::adapters::objects::list_objects;
use bakehouse::domain::time::{format_timestamp, now_micros};
use bakehouse::error::{HandlerError, StorageError};
use bakehouse::hops::ingest::{ObjectInput, ingest_object};
use bakehouse::hops::{Deps, to_gold, to_silver};
use base64::Engine;
use lambda_runtime::{Context as LambdaContext, LambdaEvent};
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use serde_json::{Value, json};
use tokio::sync::{Notify, watch};
use tracing::{error, warn};

/// How the emulator runs.
#[derive(Clone, Debug, clap::Args)]
pub struct LocalArgs {
    /// Kafka bootstrap servers
    #[arg(
        long,
        env = "KAFKA_BOOTSTRAP_SERVERS",
        default_value = "127.0.0.1:19092"
    )]
    pub bootstrap_servers: String,
    /// Prefix of the topic names (e.g. `test1.`)
    #[arg(long, default_value = "")]
    pub topic_prefix: String,
    /// Consumer group of the ingest poller
    #[arg(long, default_value = "bakehouse-ingest")]
    pub group: String,
    /// Records per Kafka batch, at most (the template's `KafkaBatchSize`)
    #[arg(long, default_value_t = 10_000)]
    pub batch_size: usize,
    /// Batching window in milliseconds (the template's `KafkaBatchWindowSeconds`)
    #[arg(long, default_value_t = 1_000)]
    pub batch_window_ms: u64,
    /// Where files land: s3://bucket/landing or file:///path [default: `landing` next to the warehouse]
    #[arg(long, env = "BAKEHOUSE_LANDING")]
    pub landing: Option<String>,
    /// How often to look for new objects and commits, in milliseconds
    #[arg(long, default_value_t = 1000)]
    pub poll_ms: u64,
    /// Seconds between maintenance runs, the first at start (0: never)
    #[arg(long, default_value_t = 3600)]
    pub maintenance_every: u64,
    /// Seconds between status lines
    #[arg(long, default_value_t = 10)]
    pub status_every: u64,
    /// Stop after this many seconds
    #[arg(long)]
    pub duration: Option<u64>,
    /// Stop once caught up: no Kafka lag, no new objects, every hop done
    #[arg(long)]
    pub until_idle: bool,
    /// Do not poll Kafka (objects and commits only)
    #[arg(long)]
    pub no_kafka: bool,
}

/// Counters shared by the pollers and the status line.
#[derive(Default)]
struct Stats {
    records: AtomicU64,
    batches: AtomicU64,
    objects: AtomicU64,
    hop_runs: AtomicU64,
    retryable_failures: AtomicU64,
    permanent_failures: AtomicU64,
    lag: AtomicU64,
    last_commit_micros: AtomicU64,
    /// Consecutive idle passes of each poller (reset by any work).
    kafka_idle: AtomicUsize,
    objects_idle: AtomicUsize,
    /// Consecutive passes of each hop that found no new source commit (reset by a wake-up).
    hop_idle: [AtomicUsize; 2],
    kafka_ready: AtomicBool,
}

impl Stats {
    /// The status line's figures after the elapsed time, with the record `rate` since the last.
    fn progress(&self, rate: f64) -> String {
        let last = self.last_commit_micros.load(Ordering::Relaxed);
        format!(
            "{} records in {} batches ({rate:.0}/s), lag {}, {} objects, {} hop runs, {}, last commit {}",
            self.records.load(Ordering::Relaxed),
            self.batches.load(Ordering::Relaxed),
            self.lag.load(Ordering::Relaxed),
            self.objects.load(Ordering::Relaxed),
            self.hop_runs.load(Ordering::Relaxed),
            self.failures(),
            if last == 0 {
                "never".to_string()
            } else {
                format_timestamp(last as i64)
            },
        )
    }

    /// Every poller and hop found nothing to do twice in a row (after Kafka's first poll).
    fn caught_up(&self) -> bool {
        self.kafka_ready.load(Ordering::Relaxed)
            && self.kafka_idle.load(Ordering::Relaxed) >= 2
            && self.objects_idle.load(Ordering::Relaxed) >= 2
            && self
                .hop_idle
                .iter()
                .all(|idle| idle.load(Ordering::Relaxed) >= 2)
    }

    fn committed(&self) {
        self.last_commit_micros
            .store(now_micros().max(0) as u64, Ordering::Relaxed);
    }

    /// Counts and logs a failure with its class; the caller retries it either way.
    fn failed(&self, what: &str, error: &anyhow::Error) {
        if is_retryable(error) {
            self.retryable_failures.fetch_add(1, Ordering::Relaxed);
            warn!(class = "retryable", error = %format!("{error:#}"), "{what}; retrying.");
        } else {
            self.permanent_failures.fetch_add(1, Ordering::Relaxed);
            error!(class = "permanent", error = %format!("{error:#}"), "{what}; this needs a fix, retrying.");
        }
    }

    fn failures(&self) -> String {
        let retryable = self.retryable_failures.load(Ordering::Relaxed);
        let permanent = self.permanent_failures.load(Ordering::Relaxed);
        format!(
            "{} failures ({retryable} retryable, {permanent} permanent)",
            retryable + permanent
        )
    }
}

/// The hops `local` wakes, in pipeline order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Hop {
    BronzeToSilver,
    SilverToGold,
}

impl Hop {
    const ALL: [Hop; 2] = [Hop::BronzeToSilver, Hop::SilverToGold];

    fn name(self) -> &'static str {
        match self {
            Hop::BronzeToSilver => "bronze-to-silver",
            Hop::SilverToGold => "silver-to-gold",
        }
    }

    fn index(self) -> usize {
        self as usize
    }

    /// The hop whose sources this hop's commits write.
    fn next(self) -> Option<Hop> {
        match self {
            Hop::BronzeToSilver => Some(Hop::SilverToGold),
            Hop::SilverToGold => None,
        }
    }

    /// The tables whose commits wake the hop: its sources, as the hop itself declares them.
    fn sources(self) -> Vec<TableDef> {
        let pairs: &[(TableDef, TableDef)] = match self {
            Hop::BronzeToSilver => &to_silver::SILVER,
            Hop::SilverToGold => &to_gold::FACTS,
        };
        let mut sources: Vec<TableDef> = pairs.iter().map(|(_, source)| *source).collect();
        sources.dedup();
        sources
    }
}

/// In-process wake-ups of the hops: a commit made here wakes the hop that reads the committed
/// table at once, instead of at its next poll. A wake-up carries no data: the woken hop reads
/// its sources' catalog pointers, as after a poll, and wake-ups that arrive while it runs make
/// one more pass (a `Notify` keeps one permit), so none is lost and none is run twice.
#[derive(Default)]
struct Wakeups {
    hops: [Notify; 2],
}

impl Wakeups {
    fn wake(&self, hop: Hop, stats: &Stats) {
        // Not idle from the commit on, before the hop even looks: `--until-idle` must not
        // stop between a commit and the run it wakes.
        stats.hop_idle[hop.index()].store(0, Ordering::Relaxed);
        self.hops[hop.index()].notify_one();
    }
}

/// Whether a failure may pass by itself: the library's own classes for handler and storage
/// errors; for Kafka, everything but fatal, authentication and authorization errors.
fn is_retryable(error: &anyhow::Error) -> bool {
    if let Some(e) = error.downcast_ref::<HandlerError>() {
        return e.is_retryable();
    }
    if let Some(e) = error.downcast_ref::<StorageError>() {
        return e.is_retryable();
    }
    if let Some(e) = error.downcast_ref::<KafkaError>() {
        use rdkafka::types::RDKafkaErrorCode as Code;
        return !matches!(e, KafkaError::MessageConsumptionFatal(_))
            && !matches!(
                e.rdkafka_error_code(),
                Some(
                    Code::Fatal
                        | Code::Authentication
                        | Code::SaslAuthenticationFailed
                        | Code::TopicAuthorizationFailed
                        | Code::GroupAuthorizationFailed
                        | Code::ClusterAuthorizationFailed
                )
            );
    }
    false
}

/// Runs the emulator until stopped.
pub async fn run(deps: Deps, args: LocalArgs) -> Result<()> {
    let deps = Arc::new(deps);
    bakehouse::hops::init(&deps, false).await?;
    let landing = args
        .landing
        .clone()
        .unwrap_or_else(|| deps.config.landing.clone());
    let stats = Arc::new(Stats::default());
    let (stop_tx, stop) = watch::channel(false);
    let kafka = (!args.no_kafka)
        .then(|| format!(", Kafka {} (group {})", args.bootstrap_servers, args.group));
    let warehouse = deps.lake.warehouse();
    say!(
        "bakehouse local: warehouse {warehouse}, landing {landing}{}",
        kafka.unwrap_or_default()
    );

    let wakeups = Arc::new(Wakeups::default());
    let mut tasks = Vec::new();
    if !args.no_kafka {
        crate::kafka::check_topics(
            &args.bootstrap_servers,
            crate::kafka::event_topics(&args.topic_prefix),
        )
        .await?;
        let consumer = kafka_consumer(&args)?;
        tasks.push(tokio::spawn(kafka_poller(
            deps.clone(),
            consumer,
            args.clone(),
            stats.clone(),
            wakeups.clone(),
            stop.clone(),
        )));
    } else {
        stats.kafka_ready.store(true, Ordering::Relaxed);
        stats.kafka_idle.store(usize::MAX / 2, Ordering::Relaxed);
    }
    tasks.push(tokio::spawn(object_poller(
        deps.clone(),
        landing,
        args.clone(),
        stats.clone(),
        wakeups.clone(),
        stop.clone(),
    )));
    for hop in Hop::ALL {
        tasks.push(tokio::spawn(hop_runner(
            hop,
            deps.clone(),
            args.clone(),
            stats.clone(),
            wakeups.clone(),
            stop.clone(),
        )));
    }

    let started = Instant::now();
    let mut status = tokio::time::interval(Duration::from_secs(args.status_every.max(1)));
    let mut check = tokio::time::interval(Duration::from_millis(200));
    let mut last_records = 0;
    let mut last_status = Instant::now();
    let reason = loop {
        tokio::select! {
            _ = shutdown_signal() => break "signal",
            _ = status.tick() => {
                let records = stats.records.load(Ordering::Relaxed);
                let rate = (records - last_records) as f64 / last_status.elapsed().as_secs_f64().max(1e-3);
                (last_records, last_status) = (records, Instant::now());
                say!("[{:>6.0} s] {}", started.elapsed().as_secs_f64(), stats.progress(rate));
            }
            _ = check.tick() => {
                if args.duration.is_some_and(|d| started.elapsed() >= Duration::from_secs(d)) {
                    break "duration reached";
                }
                if args.until_idle && stats.caught_up() {
                    break "caught up";
                }
            }
        }
    };
    say!("Stopping ({reason}) after the current batch…");
    let _ = stop_tx.send(true);
    for task in tasks {
        match task.await {
            Ok(Err(e)) => warn!(error = %e, "A poller ended with an error."),
            Err(e) => warn!(error = %e, "A poller panicked."),
            Ok(Ok(())) => {}
        }
    }
    say!(
        "Stopped: {} records in {} batches, {} objects, {} hop runs, {}.",
        stats.records.load(Ordering::Relaxed),
        stats.batches.load(Ordering::Relaxed),
        stats.objects.load(Ordering::Relaxed),
        stats.hop_runs.load(Ordering::Relaxed),
        stats.failures()
    );
    Ok(())
}

/// Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(term) => term,
                Err(_) => return std::future::pending().await,
            };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

fn kafka_consumer(args: &LocalArgs) -> Result<StreamConsumer> {
    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", &args.bootstrap_servers)
        .set("group.id", &args.group)
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("session.timeout.ms", "6000")
        // Bounds a rebalance's wait for a member that vanished mid-join (default 5 min).
        .set("max.poll.interval.ms", "30000")
        .create()
        .context("cannot create the Kafka consumer")?;
    let topics = crate::kafka::event_topics(&args.topic_prefix);
    let topics: Vec<&str> = topics.iter().map(String::as_str).collect();
    consumer
        .subscribe(&topics)
        .context("cannot subscribe to the topics")?;
    Ok(consumer)
}

/// One Kafka record, as Lambda's Kafka event source delivers it.
fn kafka_record(message: &rdkafka::message::BorrowedMessage<'_>) -> Value {
    let b64 = |bytes: &[u8]| base64::engine::general_purpose::STANDARD.encode(bytes);
    let mut record = json!({
        "topic": message.topic(),
        "partition": message.partition(),
        "offset": message.offset(),
        "timestamp": message.timestamp().to_millis().unwrap_or(0),
        "timestampType": "CREATE_TIME",
        "headers": [],
    });
    if let Some(key) = message.key() {
        record["key"] = json!(b64(key));
    }
    if let Some(value) = message.payload() {
        record["value"] = json!(b64(value));
    }
    record
}

async fn kafka_poller(
    deps: Arc<Deps>,
    consumer: StreamConsumer,
    args: LocalArgs,
    stats: Arc<Stats>,
    wakeups: Arc<Wakeups>,
    mut stop: watch::Receiver<bool>,
) -> Result<()> {
    let window = Duration::from_millis(args.batch_window_ms);
    while !*stop.borrow() {
        // Wait for a first record (or notice a stop), then fill the batch until the window
        // closes or it is full.
        let first = tokio::select! {
            _ = stop.changed() => break,
            received = tokio::time::timeout(Duration::from_millis(args.poll_ms), consumer.recv()) => received,
        };
        let first = match first {
            Err(_) => {
                note_idle(&consumer, &stats);
                continue;
            }
            Ok(Err(e)) => {
                stats.failed("Kafka receive failed", &e.into());
                tokio::time::sleep(Duration::from_millis(500)).await;
                continue;
            }
            Ok(Ok(message)) => message,
        };
        stats.kafka_idle.store(0, Ordering::Relaxed);
        let mut records: BTreeMap<String, Vec<Value>> = BTreeMap::new();
        let mut next_offsets: HashMap<(String, i32), i64> = HashMap::new();
        let mut add = |m: &rdkafka::message::BorrowedMessage<'_>| {
            records
                .entry(format!("{}-{}", m.topic(), m.partition()))
                .or_default()
                .push(kafka_record(m));
            let next = next_offsets
                .entry((m.topic().to_string(), m.partition()))
                .or_insert(0);
            *next = (*next).max(m.offset() + 1);
        };
        add(&first);
        drop(first);
        let mut count = 1;
        let deadline = tokio::time::Instant::now() + window;
        while count < args.batch_size {
            match tokio::time::timeout_at(deadline, consumer.recv()).await {
                Ok(Ok(m)) => {
                    add(&m);
                    count += 1;
                }
                Ok(Err(e)) => stats.failed("Kafka receive failed inside a batch", &e.into()),
                Err(_) => break,
            }
        }
        let event = serde_json::value::to_raw_value(&json!({
            "eventSource": "SelfManagedKafka",
            "bootstrapServers": args.bootstrap_servers,
            "records": records,
        }))?;
        if !ingest_until_done(&deps, &event, &stats, &mut stop).await {
            break;
        }
        wakeups.wake(Hop::BronzeToSilver, &stats);
        let mut offsets = TopicPartitionList::new();
        for ((topic, partition), next) in &next_offsets {
            offsets
                .add_partition_offset(topic, *partition, Offset::Offset(*next))
                .context("cannot build the offsets to commit")?;
        }
        // Offsets of an ingested batch: a failed commit means a redelivery, which ingest skips.
        if let Err(e) = consumer.commit(&offsets, CommitMode::Sync) {
            stats.failed(
                "Kafka offset commit failed (the batch is redelivered, and ingest skips it)",
                &e.into(),
            );
        }
        stats.records.fetch_add(count as u64, Ordering::Relaxed);
        stats.batches.fetch_add(1, Ordering::Relaxed);
        stats.committed();
    }
    Ok(())
}

/// Invokes ingest on a Kafka batch until it succeeds (never skipping a batch), backing off
/// between attempts; `false` when stopped meanwhile: the offsets stay uncommitted and the batch
/// is delivered again on the next start.
async fn ingest_until_done(
    deps: &Deps,
    event: &serde_json::value::RawValue,
    stats: &Stats,
    stop: &mut watch::Receiver<bool>,
) -> bool {
    let mut attempt = 0u32;
    loop {
        let invocation = LambdaEvent::new(event.to_owned(), LambdaContext::default());
        match ingest::handler(deps, invocation).await {
            Ok(_) => return true,
            Err(e) => {
                attempt += 1;
                stats.failed(
                    &format!("Ingest failed on a Kafka batch (attempt {attempt})"),
                    &e.into(),
                );
                let pause = Duration::from_millis((250u64 << attempt.min(6)).min(10_000));
                tokio::select! {
                    _ = stop.changed() => return false,
                    _ = tokio::time::sleep(pause) => {}
                }
            }
        }
    }
}

/// After an empty poll: measure the lag and count an idle pass when there is none.
fn note_idle(consumer: &StreamConsumer, stats: &Stats) {
    let lag = tokio::task::block_in_place(|| consumer_lag(consumer));
    match lag {
        Some(lag) => {
            stats.lag.store(lag, Ordering::Relaxed);
            stats.kafka_ready.store(true, Ordering::Relaxed);
            if lag == 0 {
                stats.kafka_idle.fetch_add(1, Ordering::Relaxed);
            } else {
                stats.kafka_idle.store(0, Ordering::Relaxed);
            }
        }
        None => stats.kafka_idle.store(0, Ordering::Relaxed),
    }
}

/// Records not yet consumed by the group, over the assigned partitions (`None`: unknown yet).
fn consumer_lag(consumer: &StreamConsumer) -> Option<u64> {
    let assignment = consumer.assignment().ok()?;
    if assignment.count() == 0 {
        return None;
    }
    let committed = consumer
        .committed_offsets(assignment.clone(), Duration::from_secs(5))
        .ok()?;
    let mut lag = 0u64;
    for element in committed.elements() {
        let (low, high) = consumer
            .fetch_watermarks(element.topic(), element.partition(), Duration::from_secs(5))
            .ok()?;
        let position = match element.offset() {
            Offset::Offset(o) => o,
            _ => low,
        };
        lag += (high - position).max(0) as u64;
    }
    Some(lag)
}

/// Lists `landing/` every `--poll-ms` and ingests each new object; runs the maintenance schedule.
async fn object_poller(
    deps: Arc<Deps>,
    landing: String,
    args: LocalArgs,
    stats: Arc<Stats>,
    wakeups: Arc<Wakeups>,
    mut stop: watch::Receiver<bool>,
) -> Result<()> {
    let mut seen_objects: HashSet<(String, u64)> = HashSet::new();
    // Maintenance runs on the first pass (dimensions and reports from the start), then on schedule.
    let mut last_maintenance: Option<Instant> = None;
    let mut interval = tokio::time::interval(Duration::from_millis(args.poll_ms.max(50)));
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.changed() => return Ok(()),
            _ = interval.tick() => {}
        }
        // A pass with work or with an error is not an idle one.
        let mut worked = false;

        // New objects under landing/: ingest each (a failed one is tried again next pass).
        match list_objects(&deps.lake, &landing).await {
            Ok(objects) => {
                for object in objects {
                    let id = (object.location.clone(), object.size);
                    if seen_objects.contains(&id) {
                        continue;
                    }
                    worked = true;
                    match ingest_landed(&deps, &object.location).await {
                        Ok(()) => {
                            seen_objects.insert(id);
                            stats.objects.fetch_add(1, Ordering::Relaxed);
                            stats.committed();
                            wakeups.wake(Hop::BronzeToSilver, &stats);
                        }
                        Err(e) => stats.failed(
                            &format!("Ingest of the landed object {} failed", object.location),
                            &e,
                        ),
                    }
                }
            }
            Err(e) => {
                stats.objects_idle.store(0, Ordering::Relaxed);
                stats.failed("Cannot list the landing location", &e.into());
                continue;
            }
        }

        // The maintenance schedule.
        if args.maintenance_every > 0
            && last_maintenance
                .is_none_or(|t| t.elapsed() >= Duration::from_secs(args.maintenance_every))
        {
            let event =
                json!({"source": "aws.events", "detail-type": "Scheduled Event", "detail": {}});
            match maintenance::handler(&deps, LambdaEvent::new(event, LambdaContext::default()))
                .await
            {
                Ok(report) => {
                    say!(
                        "Maintenance: {} commits in {} ms.",
                        report.commits,
                        report.duration_ms
                    );
                    last_maintenance = Some(Instant::now());
                    if report.commits > 0 {
                        // Its commits rewrite the hops' sources: let each hop look now.
                        for hop in Hop::ALL {
                            wakeups.wake(hop, &stats);
                        }
                    }
                }
                Err(e) => {
                    worked = true;
                    stats.failed("Maintenance failed (again next pass)", &e.into());
                }
            }
        }

        if worked {
            stats.objects_idle.store(0, Ordering::Relaxed);
        } else {
            stats.objects_idle.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Runs one hop whenever a source table has a new metadata file: woken by a commit of this
/// process at once, and every `--poll-ms` for commits of other processes. A failed run is
/// tried again at the next poll, with the same sources announced.
async fn hop_runner(
    hop: Hop,
    deps: Arc<Deps>,
    args: LocalArgs,
    stats: Arc<Stats>,
    wakeups: Arc<Wakeups>,
    mut stop: watch::Receiver<bool>,
) -> Result<()> {
    let sources = hop.sources();
    let idle = &stats.hop_idle[hop.index()];
    let mut seen_metadata: HashMap<String, String> = HashMap::new();
    let mut interval = tokio::time::interval(Duration::from_millis(args.poll_ms.max(50)));
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.changed() => return Ok(()),
            _ = interval.tick() => {}
            _ = wakeups.hops[hop.index()].notified() => {}
        }
        let mut announced = Vec::new();
        let mut failed = false;
        for def in &sources {
            let table = match deps.lake.load(def).await {
                Ok(table) => table,
                Err(e) => {
                    failed = true;
                    stats.failed(&format!("Cannot load {}", def.qualified()), &e.into());
                    continue;
                }
            };
            let Some(location) = table.metadata_location().map(str::to_string) else {
                continue;
            };
            if seen_metadata.get(&def.qualified()) != Some(&location) {
                announced.push((def.qualified(), location));
            }
        }
        if announced.is_empty() {
            if failed {
                idle.store(0, Ordering::Relaxed);
            } else {
                idle.fetch_add(1, Ordering::Relaxed);
            }
            continue;
        }
        idle.store(0, Ordering::Relaxed);
        let locations: Vec<String> = announced.iter().map(|(_, l)| l.clone()).collect();
        let invocation =
            LambdaEvent::new(object_created_event(&locations), LambdaContext::default());
        let result = match hop {
            Hop::BronzeToSilver => bronze_to_silver::handler(&deps, invocation)
                .await
                .map(|o| o.len()),
            Hop::SilverToGold => silver_to_gold::handler(&deps, invocation)
                .await
                .map(|o| o.len()),
        };
        match result {
            Ok(commits) => {
                stats.hop_runs.fetch_add(1, Ordering::Relaxed);
                if commits > 0 {
                    stats.committed();
                    if let Some(next) = hop.next() {
                        wakeups.wake(next, &stats);
                    }
                }
                seen_metadata.extend(announced);
            }
            Err(e) => stats.failed(
                &format!("{} failed (woken again next pass)", hop.name()),
                &e.into(),
            ),
        }
    }
}

/// Ingests one landed object: an S3 object through the ingest handler on its notification, a
/// local file through the same file-ingest hop (an unknown dataset folder is quarantined).
async fn ingest_landed(deps: &Deps, location: &str) -> Result<()> {
    if location.starts_with("s3://") {
        let event =
            serde_json::value::to_raw_value(&object_created_event(&[location.to_string()]))?;
        let invocation = LambdaEvent::new(event, LambdaContext::default());
        ingest::handler(deps, invocation).await?;
    } else {
        let input = ObjectInput {
            location: location.to_string(),
            key: location.trim_start_matches("file://").to_string(),
            dataset: None,
        };
        ingest_object(deps, &input).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rdkafka::types::RDKafkaErrorCode;

    #[test]
    fn failures_are_classed() {
        let transport = KafkaError::MessageConsumption(RDKafkaErrorCode::BrokerTransportFailure);
        assert!(is_retryable(&transport.into()));
        let denied = KafkaError::MessageConsumption(RDKafkaErrorCode::TopicAuthorizationFailed);
        assert!(!is_retryable(&denied.into()));
        let fatal = KafkaError::MessageConsumptionFatal(RDKafkaErrorCode::Fatal);
        assert!(!is_retryable(&fatal.into()));
        let conflicts = StorageError::ConflictsExhausted {
            table: "bronze.sales".into(),
            attempts: 10,
        };
        assert!(is_retryable(&conflicts.into()));
        let wrapped = anyhow::Error::from(HandlerError::from(StorageError::Object {
            path: "s3://lake/x".into(),
            message: "connection refused".into(),
        }))
        .context("ingest");
        assert!(is_retryable(&wrapped));
        assert!(!is_retryable(&HandlerError::Event("not S3".into()).into()));
        assert!(!is_retryable(&anyhow::anyhow!("unknown")));
    }
}
