//! `gold.features_demand_daily`, kept by the silver → gold hop after the facts: the dates whose
//! inputs (`fact_sales_daily`, `fact_inventory`, `dim_weather`) changed since the table's
//! checkpoints, and the 27 dates after each (lags and rolling means reach that far), are
//! recomputed from those inputs and their partitions replaced — so the table always equals a
//! recomputation, and a batch costs its dates' windows, not history.

use std::collections::{BTreeSet, HashMap};

use super::{Deps, source_checkpoint};
use crate::adapters::iceberg::{
    CommitOutcome, CommitPlan, Lakehouse, TableDef, partition_day, tables,
};
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
        let mut changed = BTreeSet::new();
        let mut properties = HashMap::new();
        let mut sources = Vec::with_capacity(SOURCES.len());
        for source in &SOURCES {
            let table = lake.load(source).await?;
            let key = source_checkpoint(source);
            let done: i64 = Lakehouse::snapshot_property(&features, &key)
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            let head = table
                .metadata()
                .current_snapshot()
                .map_or(0, |s| s.sequence_number());
            if head > done {
                let files = lake.files_since(&table, done).await?;
                changed.extend(files.iter().filter_map(|f| partition_day(&f.data_file)));
            }
            properties.insert(key, head.to_string());
            sources.push(table);
        }
        if changed.is_empty() {
            return Ok(None);
        }
        let dates = dates_reached(&changed);
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
        let add = lake
            .write_rows(&features, &rows, |r| r.business_date)
            .await?;
        let remove = lake.files_of_days(&features, &dates).await?;
        Ok(Some(CommitPlan::overwrite(add, remove, properties)))
    })
    .await
}
