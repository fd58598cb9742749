//! What hops read of the reference data: the latest full snapshot of a bronze reference
//! table (the "known" ids of SPEC §4), and the SCD2 dimensions' versions and surrogate keys
//! (SPEC §5). Every hop that needs them reads them here, so no hop depends on another.

use serde::de::DeserializeOwned;

use super::{PROP_REFERENCE_OBJECT, PROP_REFERENCE_TIME};
use crate::adapters::lakehouse::{Lakehouse, Table, TableDef, tables};
use crate::domain::records::*;
use crate::domain::reference::ReferenceIndex;
use crate::domain::scd2::{Dimension, KeyIndex, SurrogateKeys, Version};
use crate::domain::time::date_of;
use crate::error::StorageError;

/// The ids of the current reference snapshots ("known" in SPEC §4).
///
/// # Errors
/// Storage errors.
pub async fn load_reference(lake: &Lakehouse) -> Result<ReferenceIndex, StorageError> {
    let stores: Vec<BronzeStore> = latest_snapshot(lake, &tables::BRONZE_STORES).await?;
    let products: Vec<BronzeProduct> = latest_snapshot(lake, &tables::BRONZE_PRODUCTS).await?;
    let equipment: Vec<BronzeEquipment> = latest_snapshot(lake, &tables::BRONZE_EQUIPMENT).await?;
    Ok(ReferenceIndex::new(&stores, &products, &equipment))
}

/// The rows of the latest full snapshot ingested into a bronze reference table.
///
/// # Errors
/// Storage errors.
pub async fn latest_snapshot<T: DeserializeOwned + Ingested>(
    lake: &Lakehouse,
    def: &TableDef,
) -> Result<Vec<T>, StorageError> {
    let table = lake.load(def).await?;
    let (Some(object), Some(time)) = (
        Lakehouse::snapshot_property(&table, PROP_REFERENCE_OBJECT).map(str::to_string),
        Lakehouse::snapshot_property(&table, PROP_REFERENCE_TIME)
            .and_then(|v| v.parse::<i64>().ok()),
    ) else {
        return Ok(Vec::new());
    };
    let files: Vec<_> = lake
        .live_files(&table)
        .await?
        .into_iter()
        .filter(|f| f.holds(date_of(time)))
        .collect();
    let prefix = format!("{object}:");
    let rows: Vec<T> = lake.read_rows(&table, &files).await?;
    Ok(rows
        .into_iter()
        .filter(|r| r.ingestion_time() == time && r.source_ref().starts_with(&prefix))
        .collect())
}

/// The versions of an SCD2 dimension table.
pub async fn read_versions<D: Dimension + DeserializeOwned>(
    lake: &Lakehouse,
    table: &Table,
) -> Result<Vec<Version<D::Id, D::Attributes>>, StorageError> {
    let files = lake.live_files(table).await?;
    let rows: Vec<D> = lake.read_rows(table, &files).await?;
    Ok(rows.into_iter().map(D::into_version).collect())
}

/// The surrogate keys of the dimension tables, for `fact_sales`.
///
/// # Errors
/// Storage errors.
pub async fn surrogate_keys(lake: &Lakehouse) -> Result<SurrogateKeys, StorageError> {
    let stores = lake.load(&tables::DIM_STORE).await?;
    let products = lake.load(&tables::DIM_PRODUCT).await?;
    let customers = lake.load(&tables::DIM_CUSTOMER).await?;
    Ok(SurrogateKeys {
        stores: KeyIndex::new(&read_versions::<DimStore>(lake, &stores).await?),
        products: KeyIndex::new(&read_versions::<DimProduct>(lake, &products).await?),
        customers: KeyIndex::new(&read_versions::<DimCustomer>(lake, &customers).await?),
    })
}

/// `fact_sales`' record of the dimension state its keys reflect: per dimension (store, product,
/// customer), the latest change its keys were looked up with — the oldest any writer used
/// since maintenance last brought the keys up to date. Maintenance looks keys up again for what
/// changed after it.
pub const PROP_KEYS_AS_OF: &str = "bakehouse.keys-as-of";

/// The dimension state `fact_sales`' keys reflect; `None` before maintenance first recorded
/// one (a new lake, or one written before keys were tracked).
pub fn keys_as_of(fact_sales: &Table) -> Option<[i64; 3]> {
    let text = Lakehouse::snapshot_property(fact_sales, PROP_KEYS_AS_OF)?;
    let values: Vec<i64> = text.split(',').filter_map(|v| v.parse().ok()).collect();
    values.try_into().ok()
}

/// The property a commit of rows keyed with dimension state `used` records: the older of what
/// the table records and `used`, so rows keyed with an outdated state are looked up again;
/// nothing while the table records none (maintenance's first pass covers every file).
pub fn keys_as_of_property(fact_sales: &Table, used: [i64; 3]) -> Option<(String, String)> {
    let recorded = keys_as_of(fact_sales)?;
    let mut oldest = used;
    for (o, r) in oldest.iter_mut().zip(recorded) {
        *o = (*o).min(r);
    }
    Some(keys_as_of_value(oldest))
}

/// The property recording that `fact_sales`' keys reflect dimension state `state`.
pub fn keys_as_of_value(state: [i64; 3]) -> (String, String) {
    let values: Vec<String> = state.iter().map(i64::to_string).collect();
    (PROP_KEYS_AS_OF.to_string(), values.join(","))
}
