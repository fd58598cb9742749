//! `bakehouse`: the command line. Every command runs the same handlers the Lambda functions
//! run; this file only parses flags and dispatches.

/// `println!` that ends the process quietly when stdout is closed (`bakehouse status | head`).
macro_rules! say {
    () => { say!("") };
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        if writeln!(std::io::stdout(), $($arg)*).is_err() {
            std::process::exit(0);
        }
    }};
}

/// `value` as pretty JSON for `--json` output, with every date as `YYYY-MM-DD`: tables hold
/// dates as days since 1970, and a field named `business_date` (or ending in `_date`) with a
/// number is such a day.
fn to_json(value: &impl serde::Serialize) -> Result<String> {
    fn iso_dates(value: &mut serde_json::Value) {
        match value {
            serde_json::Value::Object(fields) => {
                for (name, field) in fields.iter_mut() {
                    match field.as_i64() {
                        // Days within ±9999 years of 1970: a date, never an overflow.
                        Some(day) if name.ends_with("_date") && day.abs() < 3_650_000 => {
                            if let Ok(day) = i32::try_from(day) {
                                *field = bakehouse::domain::time::date_from_days(day)
                                    .to_string()
                                    .into();
                            }
                        }
                        _ => iso_dates(field),
                    }
                }
            }
            serde_json::Value::Array(items) => items.iter_mut().for_each(iso_dates),
            _ => {}
        }
    }
    let mut value = serde_json::to_value(value)?;
    iso_dates(&mut value);
    Ok(serde_json::to_string_pretty(&value)?)
}

mod demo;
mod invoke;
mod kafka;
mod local;
mod produce;
mod repair;
mod report;
mod sql;
mod status;

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use bakehouse::config::{Config, Overrides};
use bakehouse::domain::dataset::Dataset;
use bakehouse::domain::time::now_micros;
use bakehouse::hops::ingest::{IngestSummary, ObjectInput, ingest_object};
use bakehouse::hops::maintenance::{self, MaintenanceReport};
use bakehouse::hops::{Deps, to_gold, to_silver};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "bakehouse",
    version,
    about = "A serverless lakehouse for a bakery chain"
)]
struct Cli {
    /// Warehouse: file:///absolute/path or s3://bucket/prefix [default: ./.bakehouse/warehouse]
    #[arg(long, global = true, env = "BAKEHOUSE_WAREHOUSE")]
    warehouse: Option<String>,
    /// Catalog: sqlite:///path, postgres://… or glue [default: ./.bakehouse/catalog.db]
    // Its value may hold a password: `--help` names the variable, never its value.
    #[arg(long, global = true, env = "BAKEHOUSE_CATALOG", hide_env_values = true)]
    catalog: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// The whole pipeline on a generated day, embedded (no servers), with a summary
    Demo {
        /// Seed of the generated day
        #[arg(long, default_value_t = 7)]
        seed: u64,
        /// Folder of the demo's warehouse and catalog (wiped first)
        #[arg(long, default_value = ".bakehouse/demo")]
        home: PathBuf,
    },
    /// Create namespaces and tables (and bring existing ones to their current schema)
    Init {
        /// Also load the sample reference snapshot (5 stores, 10 products, 8 customers, 7
        /// pieces of equipment) into reference tables that have none: for trying things out,
        /// never for a production lake
        #[arg(long)]
        sample: bool,
    },
    /// Evolve a running lake without rewriting it: bring every table to its current definition
    /// (new columns, widened types), change partition specs, fill new bronze columns of older
    /// rows from their payload. Checked whole before anything is written
    Evolve {
        /// TABLE=GRAIN: partition TABLE by hour, day or month from now on (repeatable, or
        /// comma-separated); files written before keep their spec
        #[arg(
            long = "partition",
            env = "BAKEHOUSE_PARTITIONS",
            value_delimiter = ','
        )]
        partitions: Vec<String>,
        /// TABLE.COLUMN: fill a bronze string column for the rows ingested before it existed,
        /// from their payload, exactly once (repeatable), e.g. bronze.sales_events.channel
        #[arg(long = "fill")]
        fills: Vec<String>,
        /// Print the report as JSON
        #[arg(long)]
        json: bool,
    },
    /// Ingest files (JSON lines or CSV) into bronze, as the S3 trigger does
    Ingest {
        /// Dataset of the files; default: the `<dataset>` folder of `…/landing/<dataset>/file`
        #[arg(long)]
        dataset: Option<String>,
        /// Local paths, file:///… or s3://bucket/key
        #[arg(required = true)]
        files: Vec<String>,
    },
    /// Run bronze → silver and silver → gold until caught up
    Process,
    /// SCD2 dimensions, daily reports, compaction, snapshot expiry and orphan removal
    Maintenance {
        /// Print the report as JSON
        #[arg(long)]
        json: bool,
    },
    /// Run one function's handler on an AWS event document, as `sam local invoke` would
    Invoke {
        /// The function whose handler runs
        #[arg(value_enum)]
        function: invoke::Function,
        /// The event document (KafkaEvent, S3Event, scheduled event)
        #[arg(long)]
        event: PathBuf,
        /// Move a KafkaEvent's records' `event_time`s so that the latest is now (their spacing
        /// kept): the shipped fixtures' events are otherwise past the allowed lateness
        #[arg(long)]
        recent: bool,
    },
    /// Realistic events to the Kafka topics (by count, or rate and duration), with flaws
    Produce(produce::ProduceArgs),
    /// The local event-source emulator: Kafka batches, object-created wake-ups and the
    /// maintenance schedule, invoking the same handlers as the Lambda functions
    Local(local::LocalArgs),
    /// A SQL query over the catalog's tables (DataFusion)
    Sql {
        /// The query, e.g. "SELECT count(*) FROM gold.fact_sales"
        query: String,
    },
    /// Recompute gold for a range of business dates (optionally with their too-late rows)
    Backfill(repair::BackfillArgs),
    /// Pull each store's daily weather from the weather API into landing/weather/ and ingest
    /// it (the scheduled weather function's work; dates give a backfill)
    FetchWeather {
        /// First day, YYYY-MM-DD [default: today − BAKEHOUSE_WEATHER_DAYS_BACK]
        #[arg(long)]
        from: Option<chrono::NaiveDate>,
        /// Last day, YYYY-MM-DD [default: today + BAKEHOUSE_WEATHER_DAYS_AHEAD]
        #[arg(long)]
        to: Option<chrono::NaiveDate>,
    },
    /// Re-validate quarantined records and move those that pass into bronze, exactly once
    Replay(repair::ReplayArgs),
    /// Re-ingest Kafka batches that failed every retry (the mappings' on-failure records in
    /// S3), exactly once
    Redrive(repair::RedriveArgs),
    /// A self-contained HTML page with the daily charts (revenue, products, quality, lateness,
    /// equipment)
    Report(report::ReportArgs),
    /// Tables, hop checkpoints, Kafka lag, and the latest quality and late-arrival figures
    Status(status::StatusArgs),
}

/// Commands that do not open the lake: `--warehouse` and `--catalog` are hidden from their help
/// and refused on their command line (`demo` runs in its own `--home`, `produce` only talks to
/// Kafka).
const WITHOUT_LAKE: [&str; 2] = ["demo", "produce"];

/// The command line, parsed (exits with clap's message on a bad one).
fn parse_command_line() -> Cli {
    use clap::{Arg, CommandFactory, FromArgMatches};
    let mut command = Cli::command();
    for name in WITHOUT_LAKE {
        // An argument of the subcommand's own, hidden, takes the place of the global one.
        command = command.mut_subcommand(name, |sub| {
            ["warehouse", "catalog"].into_iter().fold(sub, |sub, flag| {
                sub.arg(Arg::new(flag).long(flag).hide(true).num_args(1))
            })
        });
    }
    let matches = command.get_matches();
    if let Some((name, sub)) = matches.subcommand()
        && WITHOUT_LAKE.contains(&name)
    {
        for flag in ["warehouse", "catalog"] {
            if sub.value_source(flag) == Some(clap::parser::ValueSource::CommandLine) {
                clap::Error::raw(
                    clap::error::ErrorKind::ArgumentConflict,
                    format!("--{flag} does not apply to `{name}`: it does not open a lake\n"),
                )
                .exit();
            }
        }
    }
    Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit())
}

#[tokio::main]
async fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(
            // opendal warns (with a backtrace) about every retried or cancelled request, such
            // as a query's read-ahead dropped at the end: the command's own error says enough.
            tracing_subscriber::EnvFilter::try_from_env("BAKEHOUSE_LOG")
                .unwrap_or_else(|_| "warn,opendal=error".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    if let Err(error) = run(parse_command_line()).await {
        eprintln!("error: {error:#}");
        std::process::exit(1);
    }
}

async fn run(cli: Cli) -> Result<()> {
    let overrides = Overrides {
        warehouse: cli.warehouse,
        catalog: cli.catalog,
    };
    let command = match cli.command {
        Command::Demo { seed, home } => return demo::run(seed, &home).await,
        Command::Produce(args) => return produce::run(args).await,
        other => other,
    };
    let config = Config::from_env(&overrides)?;
    let deps = Deps::open(config)
        .await
        .context("cannot open the lakehouse")?;
    deps.lake.check_warehouse().await?;
    match command {
        Command::Demo { .. } | Command::Produce(_) => unreachable!("handled above"),
        Command::Local(args) => local::run(deps, args).await?,
        Command::Init { sample } => {
            let report = bakehouse::hops::init(&deps, sample).await?;
            let loaded = match (sample, report.sample_loaded.as_slice()) {
                (false, _) => {
                    "no reference data loaded (`--sample` loads the sample snapshot)".into()
                }
                (true, []) => {
                    "sample reference not loaded: every reference table has a snapshot".into()
                }
                (true, datasets) => format!("sample reference loaded into {}", datasets.join(", ")),
            };
            say!("Created {} tables; {loaded}.", report.created.len());
        }
        Command::Evolve {
            partitions,
            fills,
            json,
        } => evolve(&deps, &partitions, &fills, json).await?,
        Command::Ingest { dataset, files } => {
            let dataset = dataset.map(|d| d.parse::<Dataset>()).transpose()?;
            for file in &files {
                let summary = ingest_file(&deps, file, dataset).await?;
                say!("{file}: {}", describe(&summary));
            }
        }
        Command::Process => {
            let commits = process(&deps).await?;
            say!("Caught up: {commits} commits.");
        }
        Command::Maintenance { json } => {
            let report = maintenance::handle(&deps, now_micros()).await?;
            if json {
                say!("{}", to_json(&report)?);
            } else {
                say!("{}", describe_maintenance(&report));
            }
        }
        Command::Invoke {
            function,
            event,
            recent,
        } => invoke::run(&deps, function, &event, recent).await?,
        Command::Sql { query } => sql::run(&deps, &query).await?,
        Command::Status(args) => status::run(&deps, &args).await?,
        Command::Backfill(args) => repair::backfill(&deps, &args).await?,
        Command::FetchWeather { from, to } => fetch_weather(&deps, from, to).await?,
        Command::Replay(args) => repair::run_replay(&deps, &args).await?,
        Command::Redrive(args) => repair::redrive(&deps, &args).await?,
        Command::Report(args) => report::run(&deps, &args).await?,
    }
    Ok(())
}

/// `bakehouse evolve`: parses every request first (a bad one stops it before any change).
async fn evolve(deps: &Deps, partitions: &[String], fills: &[String], json: bool) -> Result<()> {
    use bakehouse::hops::evolve::{ColumnFill, PartitionChange};
    let partitions = partitions
        .iter()
        .map(|p| PartitionChange::parse(p).map_err(|e| anyhow::anyhow!("invalid --partition: {e}")))
        .collect::<Result<Vec<_>>>()?;
    let fills = fills
        .iter()
        .map(|f| ColumnFill::parse(f).map_err(|e| anyhow::anyhow!("invalid --fill: {e}")))
        .collect::<Result<Vec<_>>>()?;
    let report = bakehouse::hops::evolve::evolve(deps, &partitions, &fills).await?;
    if json {
        say!("{}", to_json(&report)?);
        return Ok(());
    }
    say!(
        "Tables at their current definitions ({} created).",
        report.created.len()
    );
    for change in &partitions {
        let name = change.table.qualified();
        let grain = change.grain.name();
        let now = if report.partitioned.contains(&format!("{name}={grain}")) {
            "from now on"
        } else {
            "already"
        };
        say!("{name}: partitioned by {grain} {now}.");
    }
    for fill in &report.fills {
        say!(
            "{}.{}: {} files rewritten, {} rows filled, {} without a value, {} refused{}.",
            fill.table,
            fill.column,
            fill.files,
            fill.counts.filled,
            fill.counts.absent,
            fill.counts.refused,
            fill.counts
                .first_refusal
                .as_deref()
                .map(|r| format!(" (first: {r})"))
                .unwrap_or_default()
        );
    }
    Ok(())
}

/// `bakehouse fetch-weather`: pulls the days, ingests what landed, and fails naming the stores
/// whose pull failed.
async fn fetch_weather(
    deps: &Deps,
    from: Option<chrono::NaiveDate>,
    to: Option<chrono::NaiveDate>,
) -> Result<()> {
    use bakehouse::domain::time::{date_from_days, date_of, days_from_date};
    use bakehouse::hops::weather;
    let now = now_micros();
    let (first, last) = weather::default_window(&deps.config.weather, date_of(now));
    let (from, to) = (
        from.map_or(first, days_from_date),
        to.map_or(last, days_from_date),
    );
    if from > to {
        bail!(
            "--from {} is after --to {}",
            date_from_days(from),
            date_from_days(to)
        );
    }
    let summary = weather::pull(deps, from, to, now).await?;
    for location in &summary.landed {
        let ingested = ingest_file(deps, location, Some(Dataset::Weather)).await?;
        say!("{location}: {}", describe(&ingested));
    }
    if !summary.stores_without_location.is_empty() {
        say!(
            "Stores without latitude/longitude (not asked): {:?}",
            summary.stores_without_location
        );
    }
    summary.into_result()?;
    Ok(())
}

/// Ingests one file through the file-ingest hop.
pub async fn ingest_file(
    deps: &Deps,
    file: &str,
    dataset: Option<Dataset>,
) -> Result<IngestSummary> {
    let (location, key) = if file.starts_with("s3://") {
        let key = file
            .trim_start_matches("s3://")
            .split_once('/')
            .map(|(_, k)| k.to_string())
            .unwrap_or_default();
        (file.to_string(), key)
    } else {
        let path = std::path::Path::new(file.trim_start_matches("file://"));
        let path = std::fs::canonicalize(path).with_context(|| format!("cannot read {file}"))?;
        (path.display().to_string(), path.display().to_string())
    };
    if dataset.is_none() {
        let folder = key.rsplit('/').nth(1).unwrap_or_default();
        if folder.parse::<Dataset>().is_err() {
            bail!(
                "cannot tell the dataset of {file}: pass --dataset (accepted: {})",
                Dataset::accepted_names()
            );
        }
    }
    Ok(ingest_object(
        deps,
        &ObjectInput {
            location,
            key,
            dataset,
        },
    )
    .await?)
}

/// Runs silver then gold until a pass commits nothing; returns the number of commits.
pub async fn process(deps: &Deps) -> Result<usize> {
    let mut total = 0;
    loop {
        let commits =
            to_silver::handle(deps, None).await?.len() + to_gold::handle(deps, None).await?.len();
        total += commits;
        if commits == 0 {
            return Ok(total);
        }
    }
}

fn describe(summary: &IngestSummary) -> String {
    let committed: Vec<String> = summary
        .committed
        .iter()
        .map(|(t, n)| format!("{n} → {t}"))
        .collect();
    let mut text = format!("{} records", summary.records);
    if !committed.is_empty() {
        text.push_str(&format!("; {}", committed.join(", ")));
    }
    if summary.already_committed > 0 && committed.is_empty() {
        text.push_str("; already ingested, nothing changed");
    }
    text
}

/// One line per table that maintenance touched, then the totals.
pub fn describe_maintenance(report: &MaintenanceReport) -> String {
    let mb = |bytes: u64| bytes as f64 / 1_048_576.0;
    let mut lines = vec![format!(
        "{:<34} {:>13} {:>17} {:>7} {:>9} {:>7} {:>7} {:>9} {:>6}",
        "table", "files", "MiB", "commits", "compacted", "expired", "orphans", "versions", "ms"
    )];
    for t in &report.tables {
        let touched = t.commits + t.snapshots_expired + t.orphans_deleted > 0;
        if !touched {
            continue;
        }
        lines.push(format!(
            "{:<34} {:>6} → {:<4} {:>7.2} → {:<7.2} {:>7} {:>9} {:>7} {:>7} {:>9} {:>6}",
            t.table,
            t.files_before,
            t.files_after,
            mb(t.bytes_before),
            mb(t.bytes_after),
            t.commits,
            t.files_compacted,
            t.snapshots_expired,
            t.orphans_deleted,
            format!("+{}/-{}", t.versions_opened, t.versions_closed),
            t.duration_ms,
        ));
    }
    if lines.len() == 1 {
        lines.push("(nothing to do on any table)".to_string());
    }
    lines.push(format!(
        "Maintenance: {} commits, {} snapshots expired, {} orphan files removed, in {} ms.",
        report.commits,
        report
            .tables
            .iter()
            .map(|t| t.snapshots_expired)
            .sum::<usize>(),
        report
            .tables
            .iter()
            .map(|t| t.orphans_deleted)
            .sum::<usize>(),
        report.duration_ms
    ));
    lines.join("\n")
}
