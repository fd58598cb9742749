//! `bakehouse produce`: realistic events to the three Kafka topics (keys as SPEC §2: store_id,
//! equipment_id, store_id), by count, or by rate and duration, with chosen fractions of
//! duplicate, invalid, rule-failing, late and too-late records; a progress bar, then a summary.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use bakehouse::domain::dataset::Dataset;
use bakehouse::domain::time::now_micros;
use bakehouse_simulate::{DayPlan, generate_day};
use indicatif::{ProgressBar, ProgressStyle};
use rdkafka::ClientConfig;
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};

/// Events generated (and sent) per chunk of the stream.
const CHUNK: usize = 1_000;

/// What to send.
#[derive(Clone, Debug, clap::Args)]
pub struct ProduceArgs {
    /// Events to send (with --rate: at that pace)
    #[arg(long)]
    pub count: Option<usize>,
    /// Seconds to send for (with --rate; default rate 100/s)
    #[arg(long)]
    pub duration: Option<u64>,
    /// Events per second (default: as fast as the broker takes them)
    #[arg(long)]
    pub rate: Option<f64>,
    /// Fraction of events sent twice (same id)
    #[arg(long, default_value_t = 0.02)]
    pub duplicate: f64,
    /// Fraction of schema-invalid records
    #[arg(long, default_value_t = 0.015)]
    pub invalid: f64,
    /// Fraction of records failing a business rule
    #[arg(long, default_value_t = 0.04)]
    pub rule_failing: f64,
    /// Fraction of records 25–47 h late
    #[arg(long, default_value_t = 0.03)]
    pub late: f64,
    /// Fraction of records 50–96 h late (too late for gold)
    #[arg(long, default_value_t = 0.01)]
    pub too_late: f64,
    /// Seed (default: from the clock, so every run has new ids)
    #[arg(long)]
    pub seed: Option<u64>,
    /// Prefix of the topic names (e.g. `test1.`)
    #[arg(long, default_value = "")]
    pub topic_prefix: String,
    /// Kafka bootstrap servers
    #[arg(
        long,
        env = "KAFKA_BOOTSTRAP_SERVERS",
        default_value = "127.0.0.1:19092"
    )]
    pub bootstrap_servers: String,
}

impl ProduceArgs {
    fn validate(&self) -> Result<()> {
        for (flag, value) in [
            ("--duplicate", self.duplicate),
            ("--invalid", self.invalid),
            ("--rule-failing", self.rule_failing),
            ("--late", self.late),
            ("--too-late", self.too_late),
        ] {
            if !(0.0..=1.0).contains(&value) {
                bail!("{flag} {value}: accepted: a fraction from 0 to 1");
            }
        }
        if self.rate.is_some_and(|r| !(r > 0.0 && r.is_finite())) {
            bail!("--rate: accepted: a positive number of events per second");
        }
        if self.count.is_none() && self.duration.is_none() {
            bail!("give --count N, or --duration SECONDS (with --rate)");
        }
        Ok(())
    }
}

/// The key of a record: the SPEC §2 key field, when the line is JSON with it.
fn key_of(dataset: Dataset, line: &str) -> Option<String> {
    let field = match dataset {
        Dataset::EquipmentMetrics => "equipment_id",
        _ => "store_id",
    };
    let value: serde_json::Value = serde_json::from_str(line).ok()?;
    match value.get(field)? {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Null => None,
        other => Some(other.to_string()),
    }
}

/// One chunk of the stream, in a mixed order of the three datasets.
fn chunk(args: &ProduceArgs, seed: u64, size: usize) -> Vec<(Dataset, String)> {
    let plan = DayPlan {
        seed,
        end_micros: now_micros(),
        window_hours: 0.05,
        sales: size * 7 / 10,
        readings: size * 2 / 10,
        inventory: size - size * 7 / 10 - size * 2 / 10,
        duplicate: args.duplicate,
        invalid: args.invalid,
        rule_failing: args.rule_failing,
        late: args.late,
        too_late: args.too_late,
    };
    let day = generate_day(&plan);
    let mut lines: Vec<(Dataset, String)> = Vec::new();
    let lists: Vec<(Dataset, &[String])> = Dataset::EVENTS
        .iter()
        .map(|d| (*d, day.lines(*d)))
        .collect();
    let longest = lists.iter().map(|(_, l)| l.len()).max().unwrap_or(0);
    for i in 0..longest {
        for (dataset, list) in &lists {
            if let Some(line) = list.get(i) {
                lines.push((*dataset, line.clone()));
            }
        }
    }
    lines
}

/// Prints what was delivered, per topic and partition, and the flaws planned.
fn print_sent(args: &ProduceArgs, sent: &BTreeMap<(String, i32), usize>, elapsed: f64, seed: u64) {
    let delivered: usize = sent.values().sum();
    say!(
        "Sent {delivered} events in {elapsed:.1} s ({:.0}/s) to {} (seed {seed}).",
        delivered as f64 / elapsed.max(1e-9),
        args.bootstrap_servers
    );
    let mut per_topic: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for ((topic, partition), n) in sent {
        per_topic
            .entry(topic)
            .or_default()
            .push(format!("p{partition}: {n}"));
    }
    for (topic, parts) in per_topic {
        say!("  {topic:<32} {}", parts.join(", "));
    }
    say!(
        "Planned flaws: {:.1} % duplicates, {:.1} % invalid, {:.1} % rule-failing, {:.1} % late, {:.1} % too late.",
        args.duplicate * 100.0,
        args.invalid * 100.0,
        args.rule_failing * 100.0,
        args.late * 100.0,
        args.too_late * 100.0
    );
}

/// Sends the stream and prints what was sent.
pub async fn run(args: ProduceArgs) -> Result<()> {
    args.validate()?;
    crate::kafka::check_topics(
        &args.bootstrap_servers,
        crate::kafka::event_topics(&args.topic_prefix),
    )
    .await?;
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &args.bootstrap_servers)
        .set("message.timeout.ms", "30000")
        .set("linger.ms", "5")
        .create()
        .context("cannot create the Kafka producer")?;
    let rate = args
        .rate
        .or(args.duration.map(|_| 100.0))
        .filter(|r| r.is_finite());
    let deadline = args
        .duration
        .map(|s| Instant::now() + Duration::from_secs(s));
    let target = args
        .count
        .or_else(|| Some((rate? * args.duration? as f64).ceil() as usize));
    let bar = match target {
        Some(n) => ProgressBar::new(n as u64),
        None => ProgressBar::new_spinner(),
    };
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} events · {per_sec} · {elapsed}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let seed = args
        .seed
        .unwrap_or_else(|| now_micros().unsigned_abs() % 1_000_000_000);
    let started = Instant::now();
    let mut sent: BTreeMap<(String, i32), usize> = BTreeMap::new();
    let mut failed = 0usize;
    let mut total = 0usize;
    let mut chunk_index = 0u64;
    'stream: loop {
        let remaining = target.map_or(CHUNK, |t| t.saturating_sub(total).min(CHUNK));
        if remaining == 0 {
            break;
        }
        let lines = chunk(&args, seed * 10_000 + chunk_index, remaining);
        chunk_index += 1;
        let mut deliveries = Vec::with_capacity(lines.len());
        for (dataset, line) in lines.into_iter().take(remaining) {
            if deadline.is_some_and(|d| Instant::now() >= d) {
                break 'stream;
            }
            if let Some(rate) = rate {
                let due = started + Duration::from_secs_f64(total as f64 / rate);
                tokio::time::sleep_until(due.into()).await;
            }
            let topic = format!("{}{}", args.topic_prefix, dataset.name());
            let key = key_of(dataset, &line);
            let mut record = FutureRecord::to(&topic).payload(line.as_bytes());
            if let Some(key) = &key {
                record = record.key(key.as_bytes());
            }
            let delivery = producer.send_result(record).map_err(|(e, _)| e);
            deliveries.push((topic.clone(), delivery));
            total += 1;
            bar.inc(1);
        }
        for (topic, delivery) in deliveries {
            match delivery {
                Ok(future) => match future.await {
                    Ok(Ok(delivered)) => {
                        *sent.entry((topic, delivered.partition)).or_default() += 1;
                    }
                    _ => failed += 1,
                },
                Err(_) => failed += 1,
            }
        }
    }
    producer
        .flush(Duration::from_secs(30))
        .context("cannot flush the Kafka producer")?;
    bar.finish_and_clear();
    print_sent(&args, &sent, started.elapsed().as_secs_f64(), seed);
    if failed > 0 {
        bail!("{failed} events were not delivered");
    }
    Ok(())
}
