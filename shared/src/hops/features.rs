//! `gold.features_demand_daily`, kept by the silver → gold hop after the facts: the dates whose
//! inputs (`fact_sales_daily`, `fact_inventory`, `dim_weather`) changed since the table's
//! checkpoints — for sales also the 27 dates after each (lags and rolling means reach that far)
//! — are recomputed from those inputs and their partitions replaced, so the table always equals
//! a recomputation, and a batch costs its dates' windows, not history.

use std::collections::{BTreeSet, HashMap};

use super::{Deps, source_changes};
use crate::adapters::lakehouse::{CommitOutcome, CommitPlan, TableDef, tables};
use crate::domain::features::{DemandInputs, LOOK_BACK_DAYS, dates_reached, features_demand_daily};
use crate::domain::records::{DimWeather, FactInventory, FactSalesDaily};
use crate::error::StorageError;

/// The tables the features are computed from, in [`DemandInputs`]' order.
pub const SOURCES: [TableDef; 3] = [
    tables::FACT_SALES_DAILY,
    tables::FACT_INVENTORY,
    tables::DIM_WEATHER,
];

/// Brings the features up to date with their sources (see the module header).
///
/// # Errors
/// Storage errors.
pub async fn refresh(deps: &Deps) -> Result<Option<CommitOutcome>, StorageError> {
    let lake = &deps.lake;
    lake.commit_with(&tables::FEATURES_DEMAND_DAILY, move |features| async move {
        // Sales reach the 27 dates after theirs (lags, rolling means); stock counts and weather
        // only their own.
        let (mut sales_changed, mut own_changed) = (BTreeSet::new(), BTreeSet::new());
        let mut properties = HashMap::new();
        let mut sources = Vec::with_capacity(SOURCES.len());
        for source in &SOURCES {
            let changes = source_changes(lake, &features, source).await?;
            if *source == tables::FACT_SALES_DAILY {
                sales_changed.extend(changes.days);
            } else {
                own_changed.extend(changes.days);
            }
            properties.extend([changes.checkpoint]);
            sources.push(changes.table);
        }
        if sales_changed.is_empty() && own_changed.is_empty() {
            return Ok(None);
        }
        let mut dates = dates_reached(&sales_changed);
        dates.extend(own_changed);
        let window: BTreeSet<i32> = dates
            .iter()
            .flat_map(|&d| d - (LOOK_BACK_DAYS - 1)..=d)
            .collect();
        let [sales_table, inventory_table, weather_table] = sources.as_slice() else {
            return Ok(None);
        };
        let sales_files = lake.files_of_days(sales_table, &window).await?;
        let sales: Vec<FactSalesDaily> = lake.read_rows(sales_table, &sales_files).await?;
        let inventory_files = lake.files_of_days(inventory_table, &dates).await?;
        let inventory: Vec<FactInventory> =
            lake.read_rows(inventory_table, &inventory_files).await?;
        let weather_files = lake.files_of_days(weather_table, &dates).await?;
        let weather: Vec<DimWeather> = lake.read_rows(weather_table, &weather_files).await?;
        let inputs = DemandInputs {
            sales: &sales,
            inventory: &inventory,
            weather: &weather,
        };
        let rows = features_demand_daily(&dates, &inputs);
        let mut add = lake.write_rows(&features, &rows).await?;
        let (remove, kept) = lake.replace_days(&features, &dates).await?;
        add.extend(kept);
        Ok(Some(CommitPlan::overwrite(add, remove, properties)))
    })
    .await
}
