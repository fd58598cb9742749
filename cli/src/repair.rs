//! The operator's repairs: `bakehouse backfill` (recompute gold for a range of business dates,
//! optionally taking their too-late rows in), `bakehouse replay` (move quarantined records
//! that pass validation now into bronze, exactly once) and `bakehouse redrive` (re-ingest the
//! Kafka batches Lambda gave up on, exactly once).

use anyhow::{Context, Result, bail};
use bakehouse::adapters::events::parse_failed_batch;
use bakehouse::adapters::objects::{ObjectReader, list_objects};
use bakehouse::domain::time::days_from_date;
use bakehouse::hops::ingest::redrive_kafka;
use bakehouse::hops::replay::{ReplayFilter, event_dataset, replay};
use bakehouse::hops::to_gold::{Backfill, Fact, catch_up};
use bakehouse::hops::{Deps, to_silver};
use chrono::NaiveDate;
use clap::Args;

#[derive(Args, Debug)]
pub struct BackfillArgs {
    /// First business date to recompute (YYYY-MM-DD)
    #[arg(long)]
    pub from: NaiveDate,
    /// Last business date to recompute (YYYY-MM-DD, inclusive)
    #[arg(long)]
    pub to: NaiveDate,
    /// Also take those dates' too-late rows into gold (kept by every later recompute)
    #[arg(long)]
    pub include_too_late: bool,
}

#[derive(Args, Debug)]
pub struct ReplayArgs {
    /// Only records of this dataset (sales-events, equipment-metrics, inventory-updates)
    #[arg(long)]
    pub dataset: Option<String>,
    /// Only records quarantined with this error code (e.g. missing_field)
    #[arg(long)]
    pub reason: Option<String>,
    /// Then run bronze → silver → gold, so the moved records reach gold
    #[arg(long)]
    pub process: bool,
}

#[derive(Args, Debug)]
pub struct RedriveArgs {
    /// On-failure records of the Kafka mappings: s3://bucket/key, a prefix ending in `/`
    /// (every record under it), or local files
    #[arg(required = true)]
    pub records: Vec<String>,
}

/// Re-ingests each failed Kafka batch named (a record at a time, in name order); a batch
/// re-driven before, or partly committed by an earlier attempt, adds only what is missing.
pub async fn redrive(deps: &Deps, args: &RedriveArgs) -> Result<()> {
    let mut locations = Vec::new();
    for record in &args.records {
        if record.ends_with('/') {
            let listed = list_objects(&deps.lake, record).await?;
            if listed.is_empty() {
                bail!("no failed-batch records under {record}");
            }
            locations.extend(listed.into_iter().map(|o| o.location));
        } else {
            locations.push(record.clone());
        }
    }
    for location in &locations {
        let mut reader = ObjectReader::open(&deps.lake, location).await?;
        let text = String::from_utf8(reader.read_rest().await?)
            .with_context(|| format!("{location} is not UTF-8 text"))?;
        let batch = parse_failed_batch(&text).map_err(|e| anyhow::anyhow!("{location}: {e}"))?;
        let summary = redrive_kafka(deps, batch).await?;
        say!("{location}: {}", crate::describe(&summary));
    }
    Ok(())
}

/// Recomputes every fact table for the dates (after catching silver up).
pub async fn backfill(deps: &Deps, args: &BackfillArgs) -> Result<()> {
    if args.from > args.to {
        bail!("--from {} is after --to {}", args.from, args.to);
    }
    to_silver::handle(deps, None).await?;
    let range = Backfill {
        from: days_from_date(args.from),
        to: days_from_date(args.to),
        too_late: args.include_too_late,
    };
    let outcomes = catch_up(deps, &Fact::ALL, Some(range)).await?;
    for (fact, outcome) in Fact::ALL.iter().zip(outcomes) {
        match outcome {
            Some(o) => say!(
                "{:<34} {:>8} rows written, {:>8} replaced",
                o.table,
                o.added_records,
                o.removed_records
            ),
            None => say!(
                "{:<34} no silver rows on those dates",
                fact.table().qualified()
            ),
        }
    }
    if let Some(o) = bakehouse::hops::features::refresh(deps).await? {
        say!(
            "{:<34} {:>8} rows written, {:>8} replaced",
            o.table,
            o.added_records,
            o.removed_records
        );
    }
    Ok(())
}

/// Replays the quarantined records the flags select.
pub async fn run_replay(deps: &Deps, args: &ReplayArgs) -> Result<()> {
    let dataset = match &args.dataset {
        Some(name) => match event_dataset(name) {
            Some(d) => Some(d),
            None => bail!(
                "--dataset {name:?} is not an event dataset; accepted: sales-events, \
                 equipment-metrics, inventory-updates"
            ),
        },
        None => None,
    };
    let filter = ReplayFilter {
        dataset,
        error_code: args.reason.clone(),
    };
    let summary = replay(deps, &filter).await?;
    say!("{}", crate::to_json(&summary)?);
    if args.process {
        let commits = crate::process(deps).await?;
        say!("Caught up: {commits} commits.");
    }
    Ok(())
}
