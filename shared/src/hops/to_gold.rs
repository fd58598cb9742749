//! The silver → gold hop: finds the business dates that silver rows committed since the
//! checkpoint touch, recomputes those dates' facts from every silver row of the date, and
//! replaces the dates' gold partitions — facts and checkpoint in one overwrite commit. A
//! backfill recomputes a range of dates too, and can take their too-late rows in for good.

use std::collections::{BTreeSet, HashMap};

use aws_lambda_events::event::s3::S3Event;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tracing::{info, instrument};

use super::maintenance::surrogate_keys;
use super::{Deps, PROP_TOO_LATE_TAKEN_IN, checkpoint, checkpoint_properties};
use crate::adapters::events::changed_tables;
use crate::adapters::iceberg::{
    CommitOutcome, CommitPlan, Operation, TableDef, partition_day, tables,
};
use crate::domain::gold;
use crate::domain::records::*;
use crate::domain::reports::Assessed;
use crate::domain::time::{date_from_days, days_from_date};
use crate::error::{HandlerError, StorageError};

/// The gold facts and the silver table each is computed from.
pub const FACTS: [(TableDef, TableDef); 4] = [
    (tables::FACT_SALES, tables::SILVER_SALES),
    (tables::FACT_SALES_DAILY, tables::SILVER_SALES),
    (tables::FACT_INVENTORY, tables::SILVER_INVENTORY),
    (
        tables::FACT_EQUIPMENT_PERFORMANCE,
        tables::SILVER_EQUIPMENT_METRICS,
    ),
];

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
    let wanted: Vec<&TableDef> = FACTS
        .iter()
        .filter(|(_, silver)| changed.contains(&silver.qualified()))
        .map(|(fact, _)| fact)
        .collect();
    let mut outcomes = Vec::new();
    for (fact, _) in &FACTS {
        if wanted.is_empty() || wanted.contains(&fact) {
            outcomes.extend(process(deps, fact, None).await?);
        }
    }
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

/// Brings one fact table up to date with its silver table; with a backfill, its dates are
/// recomputed too.
///
/// # Errors
/// Storage errors, or a daily revenue that overflows its column.
pub async fn process(
    deps: &Deps,
    fact: &TableDef,
    also: Option<Backfill>,
) -> Result<Option<CommitOutcome>, StorageError> {
    let policy = deps.config.gold;
    match fact.name {
        "fact_sales" => {
            let keys = surrogate_keys(&deps.lake).await?;
            recompute(
                deps,
                fact,
                &tables::SILVER_SALES,
                also,
                |rows: &[SilverSale]| Ok(gold::fact_sales(rows, &policy, &keys)),
                |f: &FactSale| f.business_date,
            )
            .await
        }
        "fact_sales_daily" => {
            recompute(
                deps,
                fact,
                &tables::SILVER_SALES,
                also,
                |rows: &[SilverSale]| {
                    gold::fact_sales_daily(rows, &policy).map_err(|e| e.to_string())
                },
                |f: &FactSalesDaily| f.business_date,
            )
            .await
        }
        "fact_inventory" => {
            recompute(
                deps,
                fact,
                &tables::SILVER_INVENTORY,
                also,
                |rows: &[SilverInventory]| Ok(gold::fact_inventory(rows, &policy)),
                |f: &FactInventory| f.business_date,
            )
            .await
        }
        "fact_equipment_performance" => {
            recompute(
                deps,
                fact,
                &tables::SILVER_EQUIPMENT_METRICS,
                also,
                |rows: &[SilverReading]| Ok(gold::fact_equipment_performance(rows, &policy)),
                |f: &FactEquipmentPerformance| f.business_date,
            )
            .await
        }
        _ => Ok(None),
    }
}

async fn recompute<S, F>(
    deps: &Deps,
    fact_def: &TableDef,
    silver_def: &TableDef,
    also: Option<Backfill>,
    aggregate: impl Fn(&[S]) -> Result<Vec<F>, String> + Sync,
    partition_of: impl Fn(&F) -> i32 + Copy + Sync,
) -> Result<Option<CommitOutcome>, StorageError>
where
    S: DeserializeOwned + Assessed + Send,
    F: Serialize + Send + Sync,
{
    let (lake, aggregate) = (&deps.lake, &aggregate);
    lake.commit_with(fact_def, move |gold_table| async move {
        let done = checkpoint(&gold_table);
        let silver = lake.load(silver_def).await?;
        let Some(head) = silver.metadata().current_snapshot() else {
            return Ok(None);
        };
        if head.sequence_number() <= done && also.is_none() {
            return Ok(None);
        }
        let silver_files = lake.live_files(&silver).await?;
        let gold_files = lake.live_files(&gold_table).await?;
        let dates: BTreeSet<i32> = silver_files
            .iter()
            .filter(|f| f.sequence_number > done)
            .filter_map(|f| partition_day(&f.data_file))
            .chain(
                silver_files
                    .iter()
                    .chain(&gold_files)
                    .filter_map(|f| partition_day(&f.data_file))
                    .filter(|d| also.is_some_and(|b| b.contains(*d))),
            )
            .collect();
        if dates.is_empty() {
            // Only rewritten files (compaction) since the checkpoint: nothing to recompute.
            return Ok(None);
        }
        let touched: Vec<_> = silver_files
            .into_iter()
            .filter(|f| partition_day(&f.data_file).is_some_and(|d| dates.contains(&d)))
            .collect();
        let mut taken_in = taken_in_dates(&gold_table);
        let before = taken_in.len();
        if let Some(b) = also.filter(|b| b.too_late) {
            taken_in.extend(dates.iter().filter(|d| b.contains(**d)));
        }
        let mut rows: Vec<S> = lake.read_rows(&silver, &touched).await?;
        for row in rows.iter_mut() {
            if taken_in.contains(&row.business_date()) {
                row.take_in_late();
            }
        }
        let mut properties = checkpoint_properties(head);
        if taken_in.len() > before {
            properties.extend(taken_in_property(&taken_in));
        }
        let facts = aggregate(&rows).map_err(StorageError::data(format!(
            "aggregate {}",
            fact_def.qualified()
        )))?;
        let remove: Vec<_> = gold_files
            .into_iter()
            .filter(|f| partition_day(&f.data_file).is_some_and(|d| dates.contains(&d)))
            .collect();
        let add = lake.write_rows(&gold_table, &facts, partition_of).await?;
        Ok(Some(CommitPlan {
            operation: Operation::Overwrite,
            add,
            add_rewritten: Vec::new(),
            remove,
            properties,
            keep_added_on_conflict: false,
        }))
    })
    .await
}

/// The business dates whose too-late rows a backfill took into this fact table.
pub fn taken_in_dates(fact: &iceberg::table::Table) -> BTreeSet<i32> {
    crate::adapters::iceberg::Lakehouse::snapshot_property(fact, PROP_TOO_LATE_TAKEN_IN)
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
