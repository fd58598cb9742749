//! The silver → gold hop: brings each fact up to date with the silver rows committed since
//! the checkpoint — appended line items, daily sums added to the groups they touch, the
//! other facts recomputed for the dates they touch — facts and checkpoint in one commit, so
//! the work follows the batch, not the history. A backfill recomputes a range of dates, and
//! can take their too-late rows in for good. Either way gold equals a recompute of silver.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use arrow_array::{Array, BooleanArray, Date32Array, RecordBatch};
use arrow_schema::{ArrowError, SchemaRef};
use aws_lambda_events::event::s3::S3Event;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tracing::{info, instrument};

use super::reference::{self, surrogate_keys};
use super::{Deps, PROP_TOO_LATE_TAKEN_IN, checkpoint, checkpoint_properties, new_source_files};
use crate::adapters::events::changed_tables;
use crate::adapters::lakehouse::{
    CommitOutcome, CommitPlan, DEFAULT_TARGET_FILE_SIZE, KeyProbe, Lakehouse, LiveFile, Table,
    TableDef, arrow_schema, batch_to_rows, batches_by_day, tables, write_produced,
};
use crate::domain::time::{date_from_days, days_from_date};
use crate::domain::{gold, weather};
use crate::error::{HandlerError, StorageError};

/// A gold table this hop keeps from one silver table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fact {
    Sales,
    SalesDaily,
    Inventory,
    EquipmentPerformance,
    Weather,
}

impl Fact {
    pub const ALL: [Fact; 5] = [
        Fact::Sales,
        Fact::SalesDaily,
        Fact::Inventory,
        Fact::EquipmentPerformance,
        Fact::Weather,
    ];

    /// The gold table.
    pub const fn table(self) -> TableDef {
        match self {
            Fact::Sales => tables::FACT_SALES,
            Fact::SalesDaily => tables::FACT_SALES_DAILY,
            Fact::Inventory => tables::FACT_INVENTORY,
            Fact::EquipmentPerformance => tables::FACT_EQUIPMENT_PERFORMANCE,
            Fact::Weather => tables::DIM_WEATHER,
        }
    }

    /// The silver table it is computed from.
    pub const fn silver(self) -> TableDef {
        match self {
            Fact::Sales | Fact::SalesDaily => tables::SILVER_SALES,
            Fact::Inventory => tables::SILVER_INVENTORY,
            Fact::EquipmentPerformance => tables::SILVER_EQUIPMENT_METRICS,
            Fact::Weather => tables::SILVER_WEATHER,
        }
    }
}

/// The gold facts and the silver table each is computed from.
pub const FACTS: [(TableDef, TableDef); 5] = {
    let mut pairs = [(tables::FACT_SALES, tables::SILVER_SALES); 5];
    let mut i = 0;
    while i < Fact::ALL.len() {
        pairs[i] = (Fact::ALL[i].table(), Fact::ALL[i].silver());
        i += 1;
    }
    pairs
};

/// Handles a wake-up: an S3 notification of silver commits (or none: every fact).
///
/// # Errors
/// Storage errors, or a daily revenue that overflows its column.
#[instrument(skip_all)]
pub async fn handle(
    deps: &Deps,
    event: Option<&S3Event>,
) -> Result<Vec<CommitOutcome>, HandlerError> {
    let changed = event.map(changed_tables).unwrap_or_default();
    let wanted: Vec<Fact> = Fact::ALL
        .into_iter()
        .filter(|fact| changed.contains(&fact.silver().qualified()))
        .collect();
    let facts = if wanted.is_empty() {
        Fact::ALL.to_vec()
    } else {
        wanted
    };
    let mut outcomes: Vec<CommitOutcome> = catch_up(deps, &facts, None)
        .await?
        .into_iter()
        .flatten()
        .collect();
    // The demand features read the facts just written.
    outcomes.extend(super::features::refresh(deps).await?);
    info!(
        commits = outcomes.len(),
        rows = outcomes.iter().map(|o| o.added_records).sum::<u64>(),
        "Gold caught up."
    );
    Ok(outcomes)
}

/// Business dates (in days since the epoch) recomputed besides those with new silver rows.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Backfill {
    pub from: i32,
    pub to: i32,
    /// Take the range's too-late silver rows into gold, in this and every later recompute.
    pub too_late: bool,
}

impl Backfill {
    /// Every date from `from` on (after a dimension change).
    pub fn from(from: i32) -> Self {
        Backfill {
            from,
            to: i32::MAX,
            too_late: false,
        }
    }

    fn contains(&self, day: i32) -> bool {
        (self.from..=self.to).contains(&day)
    }
}

/// Brings `facts` up to date with their silver tables at once, each in its own commit; with
/// a backfill, its dates are recomputed too. Every fact is tried; the outcomes are in `facts`'
/// order.
///
/// # Errors
/// The first fact's error: storage errors, or a daily revenue that overflows its column.
pub async fn catch_up(
    deps: &Deps,
    facts: &[Fact],
    also: Option<Backfill>,
) -> Result<Vec<Option<CommitOutcome>>, StorageError> {
    let runs = facts.iter().map(|fact| process(deps, *fact, also));
    futures::future::join_all(runs).await.into_iter().collect()
}

/// Brings one fact table up to date with its silver table (see [`catch_up`]). Without a
/// backfill the work follows the new silver rows: `fact_sales` appends their facts (a fact
/// row depends on its silver row alone), `fact_sales_daily` adds their sums to the groups
/// they touch, and the other two facts recompute the dates the new rows touch. A backfill
/// recomputes every date it names and every date with new rows.
async fn process(
    deps: &Deps,
    fact: Fact,
    also: Option<Backfill>,
) -> Result<Option<CommitOutcome>, StorageError> {
    let policy = deps.config.gold;
    let (def, silver) = (&fact.table(), &fact.silver());
    let name = def.qualified();
    let scope = match also {
        Some(_) => Scope::Dates(also),
        None => Scope::NewRows,
    };
    match fact {
        Fact::Sales => {
            let keys = Arc::new(surrogate_keys(&deps.lake).await?);
            let keyed_with = Some(keys.as_of());
            let columns = Some(&gold::FACT_SALES_SILVER_COLUMNS[..]);
            refresh(
                deps,
                def,
                silver,
                columns,
                scope,
                keyed_with,
                move |silver, schema| {
                    let (schema, keys, name) = (schema.clone(), keys.clone(), name.clone());
                    let facts = silver.map(move |batch| {
                        batch.and_then(|batch| {
                            gold::sales_facts(&batch, &schema, &policy, &keys)
                                .map_err(|e| failed(&name, e))
                        })
                    });
                    Ok(Box::new(facts) as FactBatches)
                },
            )
            .await
        }
        Fact::SalesDaily if also.is_none() => add_daily_sales(deps, def).await,
        Fact::SalesDaily => {
            let columns = Some(&gold::DAILY_SALES_SILVER_COLUMNS[..]);
            refresh(
                deps,
                def,
                silver,
                columns,
                scope,
                None,
                move |silver, schema| {
                    let facts = daily_sales(silver, &policy, &name)?
                        .finish()
                        .map_err(|e| failed(&name, e))?;
                    by_date(schema, &facts, |f| f.business_date)
                },
            )
            .await
        }
        Fact::Inventory => {
            recompute_dates(deps, def, silver, also, gold::fact_inventory, |f| {
                f.business_date
            })
            .await
        }
        Fact::EquipmentPerformance => {
            let aggregate = gold::fact_equipment_performance;
            recompute_dates(deps, def, silver, also, aggregate, |f| f.business_date).await
        }
        Fact::Weather => {
            recompute_dates(deps, def, silver, also, weather::dim_weather, |d| {
                d.business_date
            })
            .await
        }
    }
}

/// A table recomputed whole for each date its new silver rows (and a backfill) touch, from
/// those dates' silver rows with `aggregate`.
async fn recompute_dates<S, F>(
    deps: &Deps,
    fact: &TableDef,
    silver: &TableDef,
    also: Option<Backfill>,
    aggregate: fn(&[S], &gold::GoldPolicy) -> Vec<F>,
    date_of: fn(&F) -> i32,
) -> Result<Option<CommitOutcome>, StorageError>
where
    S: DeserializeOwned + 'static,
    F: Serialize + 'static,
{
    let policy = deps.config.gold;
    let scope = Scope::Dates(also);
    refresh(
        deps,
        fact,
        silver,
        None,
        scope,
        None,
        move |silver, schema| by_date(schema, &aggregate(&silver_rows(silver)?, &policy), date_of),
    )
    .await
}

/// Which silver rows a refresh reads and which gold files it replaces.
#[derive(Clone, Copy, Debug)]
enum Scope {
    /// The silver rows committed since the checkpoint; their facts are appended.
    NewRows,
    /// Every silver row of the dates the new rows touch (and of a backfill's dates); those
    /// dates' gold files are replaced.
    Dates(Option<Backfill>),
}

/// The daily sums of silver batches.
fn daily_sales(
    silver: SilverBatches,
    policy: &gold::GoldPolicy,
    name: &str,
) -> Result<gold::DailySales, StorageError> {
    let mut daily = gold::DailySales::default();
    for batch in silver {
        daily.add(&batch?, policy).map_err(|e| failed(name, e))?;
    }
    Ok(daily)
}

/// Writers encoding a fact at once (`write_produced`): encoding is most of a recompute, and a
/// function has two cores. A date of more than one batch is written as two files.
const WRITE_LANES: usize = 2;

/// The silver batches of one recomputation, as they are read (on a blocking thread).
type SilverBatches = Box<dyn Iterator<Item = Result<RecordBatch, StorageError>> + Send>;

/// The fact batches of one recomputation, produced on a blocking thread while the writers
/// encode the previous ones (each writer puts a row in its date's partition).
type FactBatches = Box<dyn Iterator<Item = Result<RecordBatch, StorageError>> + Send>;

/// An error computing `fact` (its qualified name).
fn failed(fact: &str, e: impl std::fmt::Display) -> StorageError {
    StorageError::data(format!("aggregate {fact}"))(e.to_string())
}

/// Silver batches as rows, for the facts computed on rows.
fn silver_rows<S: DeserializeOwned>(batches: SilverBatches) -> Result<Vec<S>, StorageError> {
    let mut rows = Vec::new();
    for batch in batches {
        rows.append(&mut batch_to_rows("silver batch", &batch?)?);
    }
    Ok(rows)
}

/// Fact rows as one batch per business date.
fn by_date<F: Serialize>(
    schema: &SchemaRef,
    facts: &[F],
    date_of: impl Fn(&F) -> i32,
) -> Result<FactBatches, StorageError> {
    let batches = batches_by_day("gold fact", schema, facts, date_of)?;
    Ok(Box::new(batches.into_iter().map(Ok)))
}

/// Clears `too_late` on the rows of the dates a backfill took in, so gold uses them.
fn take_in(batch: RecordBatch, dates: &BTreeSet<i32>) -> Result<RecordBatch, ArrowError> {
    if dates.is_empty() {
        return Ok(batch);
    }
    let (Some(index), Some(day)) = (
        batch.schema().index_of("too_late").ok(),
        batch
            .column_by_name("business_date")
            .and_then(|c| c.as_any().downcast_ref::<Date32Array>()),
    ) else {
        return Ok(batch);
    };
    let Some(too_late) = batch.column(index).as_any().downcast_ref::<BooleanArray>() else {
        return Ok(batch);
    };
    let cleared: BooleanArray = (0..batch.num_rows())
        .map(|i| {
            let taken = day.is_valid(i) && dates.contains(&day.value(i));
            Some(!taken && too_late.is_valid(i) && too_late.value(i))
        })
        .collect();
    let mut columns = batch.columns().to_vec();
    columns[index] = Arc::new(cleared);
    RecordBatch::try_new(batch.schema(), columns)
}

/// Brings one fact up to date (see [`Scope`]): reads the silver rows in scope (too-late
/// rows of the dates a backfill took in count as on time), makes the fact from them with
/// `aggregate` on a blocking thread, and commits it with the checkpoint — and, for rows keyed
/// with dimension state `keyed_with`, that state ([`reference::keys_as_of_property`]).
async fn refresh(
    deps: &Deps,
    fact_def: &TableDef,
    silver_def: &TableDef,
    columns: Option<&[&str]>,
    scope: Scope,
    keyed_with: Option<[i64; 3]>,
    aggregate: impl Fn(SilverBatches, &SchemaRef) -> Result<FactBatches, StorageError>
    + Send
    + Sync
    + 'static,
) -> Result<Option<CommitOutcome>, StorageError> {
    let aggregate = Arc::new(aggregate);
    let (lake, aggregate) = (&deps.lake, &aggregate);
    lake.commit_with(fact_def, move |gold_table| async move {
        let done = checkpoint(&gold_table);
        let silver = lake.load(silver_def).await?;
        let Some(head) = Lakehouse::head(&silver) else {
            return Ok(None);
        };
        let also = match scope {
            Scope::Dates(also) => also,
            Scope::NewRows => None,
        };
        if head.sequence <= done && also.is_none() {
            return Ok(None);
        }
        let new = lake.files_since(&silver, done).await?;
        let mut taken_in = taken_in_dates(&gold_table);
        let (read, remove) = match scope {
            Scope::NewRows => (new, Vec::new()),
            Scope::Dates(also) => {
                let mut dates: BTreeSet<i32> = new.iter().flat_map(LiveFile::dates).collect();
                if let Some(b) = also {
                    // A backfill names dates, not files: every date either table holds.
                    let all = lake.live_files(&silver).await?.into_iter();
                    let all = all.chain(lake.live_files(&gold_table).await?);
                    dates.extend(all.flat_map(|f| f.dates()).filter(|d| b.contains(*d)));
                }
                if let Some(b) = also.filter(|b| b.too_late) {
                    taken_in.extend(dates.iter().filter(|d| b.contains(**d)));
                }
                (
                    lake.files_of_days(&silver, &dates).await?,
                    lake.files_of_days(&gold_table, &dates).await?,
                )
            }
        };
        if read.is_empty() && remove.is_empty() {
            // Only rewritten files (compaction) since the checkpoint: nothing to do.
            return Ok(None);
        }
        let name = fact_def.qualified();
        let mut properties = checkpoint_properties(&silver);
        let silver = silver_batches(lake, &silver, read, columns, taken_in.clone(), &name)?;
        let schema = arrow_schema(&gold_table)?;
        // On a blocking thread (it waits for silver): the other facts of the run go on
        // meanwhile. A fact made batch by batch is made as it is written.
        let aggregate = Arc::clone(aggregate);
        let facts = tokio::task::spawn_blocking(move || aggregate(silver, &schema))
            .await
            .map_err(|e| failed(&name, e))??;
        if taken_in != taken_in_dates(&gold_table) {
            properties.extend(taken_in_property(&taken_in));
        }
        if let Some(used) = keyed_with {
            properties.extend(reference::keys_as_of_property(&gold_table, used));
        }
        let (add, _) =
            write_produced(&gold_table, DEFAULT_TARGET_FILE_SIZE, WRITE_LANES, facts).await?;
        Ok(Some(match scope {
            Scope::NewRows => CommitPlan::append(add, properties),
            Scope::Dates(_) => CommitPlan::overwrite(add, remove, properties),
        }))
    })
    .await
}

/// `fact_sales_daily` brought up to date by adding the new silver rows' sums to the groups
/// they touch: a transaction counts only when no silver row summed before holds it in that
/// group (those rows are looked up by transaction id, in the touched dates only), and the
/// touched dates' gold rows are rewritten with the sums. Equal to a recompute of the dates.
async fn add_daily_sales(
    deps: &Deps,
    fact_def: &TableDef,
) -> Result<Option<CommitOutcome>, StorageError> {
    let (lake, policy) = (&deps.lake, deps.config.gold);
    lake.commit_with(fact_def, move |gold_table| async move {
        let done = checkpoint(&gold_table);
        let Some((silver, new)) = new_source_files(lake, &tables::SILVER_SALES, done).await? else {
            return Ok(None);
        };
        let name = fact_def.qualified();
        let taken_in = taken_in_dates(&gold_table);
        let columns = &gold::DAILY_SALES_SILVER_COLUMNS[..];
        let batches = silver_batches(lake, &silver, new, Some(columns), taken_in.clone(), &name)?;
        let sum_name = name.clone();
        let mut delta =
            tokio::task::spawn_blocking(move || daily_sales(batches, &policy, &sum_name))
                .await
                .map_err(|e| failed(&name, e))??;
        let transactions = delta.transactions_by_date();
        let dates: BTreeSet<i32> = transactions.keys().copied().collect();
        let old = lake.files_of_days(&silver, &dates).await?;
        for (day, keys) in transactions {
            let summed: Vec<_> = old
                .iter()
                .filter(|f| f.sequence_number <= done && f.holds(day))
                .cloned()
                .collect();
            if summed.is_empty() || keys.is_empty() {
                continue;
            }
            let probe = KeyProbe { keys, times: None };
            let (found, _) = lake
                .find_keys(
                    &silver,
                    &summed,
                    "transaction_id",
                    "event_time",
                    &probe,
                    columns,
                )
                .await?;
            for batch in found {
                let batch = take_in(batch, &taken_in).map_err(|e| failed(&name, e))?;
                delta
                    .mark_counted(&batch, &policy)
                    .map_err(|e| failed(&name, e))?;
            }
        }
        let delta = delta.finish().map_err(|e| failed(&name, e))?;
        let remove = lake.files_of_days(&gold_table, &dates).await?;
        let existing = lake.read_rows(&gold_table, &remove).await?;
        let rows = gold::add_daily(existing, delta).map_err(|e| failed(&name, e))?;
        let schema = arrow_schema(&gold_table)?;
        let (add, _) = write_produced(
            &gold_table,
            DEFAULT_TARGET_FILE_SIZE,
            1,
            by_date(&schema, &rows, |f| f.business_date)?,
        )
        .await?;
        Ok(Some(CommitPlan::overwrite(
            add,
            remove,
            checkpoint_properties(&silver),
        )))
    })
    .await
}

/// The rows of silver `files` as they are read, with the too-late rows of the dates
/// `taken_in` cleared for gold (for a blocking thread).
fn silver_batches(
    lake: &Lakehouse,
    silver: &Table,
    files: Vec<LiveFile>,
    columns: Option<&[&str]>,
    taken_in: BTreeSet<i32>,
    fact: &str,
) -> Result<SilverBatches, StorageError> {
    let name = fact.to_string();
    Ok(Box::new(lake.read_ahead(silver, files, columns)?.map(
        move |batch| {
            batch.and_then(|batch| take_in(batch, &taken_in).map_err(|e| failed(&name, e)))
        },
    )))
}

/// The business dates whose too-late rows a backfill took into this fact table.
pub fn taken_in_dates(fact: &Table) -> BTreeSet<i32> {
    Lakehouse::snapshot_property(fact, PROP_TOO_LATE_TAKEN_IN)
        .unwrap_or("")
        .split(',')
        .filter_map(|d| d.parse().ok().map(days_from_date))
        .collect()
}

fn taken_in_property(dates: &BTreeSet<i32>) -> HashMap<String, String> {
    let list: Vec<String> = dates
        .iter()
        .map(|d| date_from_days(*d).to_string())
        .collect();
    HashMap::from([(PROP_TOO_LATE_TAKEN_IN.to_string(), list.join(","))])
}
