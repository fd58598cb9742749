//! The rows of every table, one struct per table. Field names are the column names of SPEC
//! §3–5; timestamps are UTC microseconds, dates days since the epoch, money [`Money`].
//! The Iceberg schemas that match them live in `adapters::lakehouse::tables`.

use serde::{Deserialize, Serialize};

use super::money::Money;

/// Where a bronze record came from: `kafka` or `file`, plus topic/partition/offset or key:line.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Lineage {
    pub source: String,
    pub source_ref: String,
    pub ingestion_time: i64,
}

/// `bronze.sales_events`: one validated sales line item.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BronzeSale {
    pub event_id: String,
    pub transaction_id: Option<String>,
    pub event_time: i64,
    pub store_id: i32,
    pub product_id: i32,
    pub customer_id: Option<String>,
    pub quantity: i32,
    pub unit_price: Money,
    pub promotion_id: Option<String>,
    /// in_store, online or app; absent from events of producers that predate it.
    #[serde(default)]
    pub channel: Option<String>,
    /// The record as received; readers that skip the column (silver) get it empty.
    #[serde(default)]
    pub payload: String,
    pub source: String,
    pub source_ref: String,
    pub ingestion_time: i64,
}

/// `bronze.equipment_metrics`: one validated sensor reading.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BronzeReading {
    pub metric_id: String,
    pub equipment_id: i32,
    pub event_time: i64,
    pub operational_status: String,
    pub power_kw: f64,
    pub temperature_c: Option<f64>,
    pub interval_seconds: i32,
    pub readings: Option<String>,
    /// The record as received; readers that skip the column (silver) get it empty.
    #[serde(default)]
    pub payload: String,
    pub source: String,
    pub source_ref: String,
    pub ingestion_time: i64,
}

/// `bronze.inventory_updates`: one validated stock count.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BronzeInventory {
    pub update_id: String,
    pub event_time: i64,
    pub store_id: i32,
    pub product_id: i32,
    pub beginning_stock: i32,
    pub restocked_quantity: i32,
    pub sold_quantity: i32,
    pub waste_quantity: i32,
    pub reported_by: Option<String>,
    /// The record as received; readers that skip the column (silver) get it empty.
    #[serde(default)]
    pub payload: String,
    pub source: String,
    pub source_ref: String,
    pub ingestion_time: i64,
}

/// `bronze.stores`: one store of a reference snapshot.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BronzeStore {
    pub store_id: i32,
    pub name: Option<String>,
    pub city: Option<String>,
    pub region: Option<String>,
    pub opening_hour: Option<String>,
    pub closing_hour: Option<String>,
    pub manager: Option<String>,
    /// The record as received; readers that skip the column (silver) get it empty.
    #[serde(default)]
    pub payload: String,
    pub source: String,
    pub source_ref: String,
    pub ingestion_time: i64,
    /// WGS84 coordinates, for the weather pull (absent from files written before the columns).
    #[serde(default)]
    pub latitude: Option<f64>,
    #[serde(default)]
    pub longitude: Option<f64>,
}

/// `bronze.products`: one product of a reference snapshot.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BronzeProduct {
    pub product_id: i32,
    pub name: Option<String>,
    pub category: Option<String>,
    pub list_price: Option<Money>,
    /// The record as received; readers that skip the column (silver) get it empty.
    #[serde(default)]
    pub payload: String,
    pub source: String,
    pub source_ref: String,
    pub ingestion_time: i64,
}

/// `bronze.customers`: one customer of a reference snapshot.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BronzeCustomer {
    pub customer_id: String,
    pub loyalty_tier: Option<String>,
    pub city: Option<String>,
    /// The record as received; readers that skip the column (silver) get it empty.
    #[serde(default)]
    pub payload: String,
    pub source: String,
    pub source_ref: String,
    pub ingestion_time: i64,
}

/// `bronze.equipment`: one piece of equipment of a reference snapshot.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BronzeEquipment {
    pub equipment_id: i32,
    pub store_id: Option<i32>,
    pub equipment_type: Option<String>,
    pub name: Option<String>,
    /// The record as received; readers that skip the column (silver) get it empty.
    #[serde(default)]
    pub payload: String,
    pub source: String,
    pub source_ref: String,
    pub ingestion_time: i64,
}

/// `bronze.quarantine`: a record that failed schema validation, with the reason.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct QuarantineRow {
    pub dataset: String,
    pub source: String,
    pub source_ref: String,
    pub error_code: String,
    pub error_message: String,
    /// The raw bytes: UTF-8 text as is, anything else base64 (see `raw_encoding`).
    pub raw: String,
    /// `text` or `base64`.
    pub raw_encoding: String,
    pub ingestion_time: i64,
}

/// `silver.sales`: a deduplicated, scored line item.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SilverSale {
    pub event_id: String,
    pub transaction_id: Option<String>,
    pub event_time: i64,
    pub business_date: i32,
    pub store_id: i32,
    pub product_id: i32,
    pub customer_id: Option<String>,
    pub quantity: i32,
    pub unit_price: Money,
    pub revenue: Money,
    pub promotion_id: Option<String>,
    pub time_of_day: String,
    pub ingestion_time: i64,
    pub lateness_seconds: f64,
    pub too_late: bool,
    pub quality_score: i32,
    pub failed_rules: String,
    pub source_ref: String,
    #[serde(default)]
    pub channel: Option<String>,
}

/// `silver.equipment_metrics`: a deduplicated, scored reading.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SilverReading {
    pub metric_id: String,
    pub equipment_id: i32,
    pub event_time: i64,
    pub business_date: i32,
    pub operational_status: String,
    pub power_kw: f64,
    pub temperature_c: Option<f64>,
    pub interval_seconds: i32,
    pub readings: Option<String>,
    pub ingestion_time: i64,
    pub lateness_seconds: f64,
    pub too_late: bool,
    pub quality_score: i32,
    pub failed_rules: String,
    pub source_ref: String,
}

/// `bronze.weather`: one store's weather on one day, as one pull of the weather API gave it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BronzeWeather {
    pub store_id: i32,
    /// The day the values are for (days since the epoch).
    pub date: i32,
    /// When the API was asked (UTC microseconds): a later pull of the same day wins.
    pub pulled_at: i64,
    pub temperature_max_c: Option<f64>,
    pub temperature_min_c: Option<f64>,
    pub precipitation_mm: Option<f64>,
    pub weather_code: Option<i32>,
    /// The record as received; readers that skip the column (silver) get it empty.
    #[serde(default)]
    pub payload: String,
    pub source: String,
    pub source_ref: String,
    pub ingestion_time: i64,
}

/// `silver.weather`: the latest pull of one store's day, scored.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SilverWeather {
    pub business_date: i32,
    pub store_id: i32,
    pub temperature_max_c: Option<f64>,
    pub temperature_min_c: Option<f64>,
    pub precipitation_mm: Option<f64>,
    pub weather_code: Option<i32>,
    pub pulled_at: i64,
    /// The day had not ended (UTC) when it was pulled: a forecast, not an observation.
    pub is_forecast: bool,
    pub ingestion_time: i64,
    pub quality_score: i32,
    pub failed_rules: String,
    pub source_ref: String,
}

/// `gold.dim_weather`: business_date × store.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DimWeather {
    pub business_date: i32,
    pub store_id: i32,
    pub temperature_max_c: Option<f64>,
    pub temperature_min_c: Option<f64>,
    pub precipitation_mm: Option<f64>,
    pub weather_code: Option<i32>,
    pub is_forecast: bool,
}

/// `silver.inventory`: a deduplicated, scored stock count.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SilverInventory {
    pub update_id: String,
    pub event_time: i64,
    pub business_date: i32,
    pub store_id: i32,
    pub product_id: i32,
    pub beginning_stock: i32,
    pub restocked_quantity: i32,
    pub sold_quantity: i32,
    pub waste_quantity: i32,
    pub closing_stock: i64,
    pub waste_ratio: f64,
    pub reported_by: Option<String>,
    pub ingestion_time: i64,
    pub lateness_seconds: f64,
    pub too_late: bool,
    pub quality_score: i32,
    pub failed_rules: String,
    pub source_ref: String,
}

/// `gold.fact_sales`: one gold-eligible line item.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FactSale {
    pub sale_id: String,
    pub transaction_id: Option<String>,
    pub business_date: i32,
    pub event_time: i64,
    pub store_id: i32,
    pub store_key: Option<i64>,
    pub product_id: i32,
    pub product_key: Option<i64>,
    pub customer_id: Option<String>,
    pub quantity: i32,
    pub unit_price: Money,
    pub revenue: Money,
    pub time_of_day: String,
    pub quality_score: i32,
    /// Absent from files written before the column was added.
    #[serde(default)]
    pub customer_key: Option<i64>,
    #[serde(default)]
    pub channel: Option<String>,
}

/// `gold.fact_sales_daily`: business_date × store × product.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FactSalesDaily {
    pub business_date: i32,
    pub store_id: i32,
    pub product_id: i32,
    pub quantity: i64,
    pub revenue: Money,
    pub line_items: i64,
    pub transactions: i64,
    /// Quantity of the line items sold with a promotion (null in files written before the
    /// column existed: read as 0 until a backfill recomputes those dates).
    #[serde(default, deserialize_with = "null_as_zero")]
    pub promoted_quantity: i64,
    /// The sales channel of the group's line items; null for events without one.
    #[serde(default)]
    pub channel: Option<String>,
}

fn null_as_zero<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<i64, D::Error> {
    Ok(Option::<i64>::deserialize(deserializer)?.unwrap_or(0))
}

/// `gold.fact_inventory`: the day's latest stock count per store × product.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FactInventory {
    pub business_date: i32,
    pub store_id: i32,
    pub product_id: i32,
    pub beginning_stock: i32,
    pub restocked_quantity: i32,
    pub sold_quantity: i32,
    pub waste_quantity: i32,
    pub closing_stock: i64,
    pub waste_ratio: f64,
    pub days_of_supply: Option<f64>,
    pub stock_out: bool,
    pub updates: i64,
}

/// `gold.features_demand_daily`: business_date × store × product, for demand forecasting.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FeatureDemandDaily {
    pub business_date: i32,
    pub store_id: i32,
    pub product_id: i32,
    pub quantity: i64,
    pub revenue: Money,
    pub quantity_lag_1: i64,
    pub quantity_lag_7: i64,
    pub rolling_mean_7: f64,
    pub rolling_mean_28: f64,
    /// ISO: 1 = Monday … 7 = Sunday.
    pub day_of_week: i32,
    /// Quantity sold under a promotion / quantity (0 without sales).
    pub promotion_share: f64,
    pub waste_ratio: Option<f64>,
    pub stock_out: Option<bool>,
    pub temperature_max_c: Option<f64>,
    pub precipitation_mm: Option<f64>,
}

/// `gold.fact_equipment_performance`: business_date × equipment.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FactEquipmentPerformance {
    pub business_date: i32,
    pub equipment_id: i32,
    pub readings: i64,
    pub operational_hours: f64,
    pub downtime_minutes: f64,
    pub energy_kwh: f64,
    pub avg_power_kw: f64,
    pub avg_temperature_c: Option<f64>,
    pub max_temperature_c: Option<f64>,
    pub efficiency_score: Option<f64>,
}

/// `gold.dim_store`: one version of a store (SCD Type 2).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DimStore {
    pub store_key: i64,
    pub store_id: i32,
    pub name: Option<String>,
    pub city: Option<String>,
    pub region: Option<String>,
    pub opening_hour: Option<String>,
    pub closing_hour: Option<String>,
    pub manager: Option<String>,
    pub valid_from: i64,
    pub valid_to: Option<i64>,
    pub is_current: bool,
}

/// `gold.dim_product`: one version of a product (SCD Type 2).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DimProduct {
    pub product_key: i64,
    pub product_id: i32,
    pub name: Option<String>,
    pub category: Option<String>,
    pub list_price: Option<Money>,
    pub valid_from: i64,
    pub valid_to: Option<i64>,
    pub is_current: bool,
}

/// `gold.dim_customer`: one version of a customer (SCD Type 2).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DimCustomer {
    pub customer_key: i64,
    pub customer_id: String,
    pub loyalty_tier: Option<String>,
    pub city: Option<String>,
    pub valid_from: i64,
    pub valid_to: Option<i64>,
    pub is_current: bool,
}

/// `gold.dim_equipment`: a piece of equipment as the latest snapshot describes it (type 1).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DimEquipment {
    pub equipment_id: i32,
    pub store_id: Option<i32>,
    pub equipment_type: Option<String>,
    pub name: Option<String>,
}

/// `gold.data_quality_daily`: business_date × dataset.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DataQualityDaily {
    pub business_date: i32,
    pub dataset: String,
    pub records: i64,
    pub gold_eligible: i64,
    pub quarantined: i64,
    pub avg_quality_score: Option<f64>,
    pub perfect: i64,
    pub poor: i64,
}

/// `gold.late_arrivals_daily`: business_date × dataset.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LateArrivalsDaily {
    pub business_date: i32,
    pub dataset: String,
    pub late_records: i64,
    pub too_late_records: i64,
    pub avg_lateness_hours: Option<f64>,
    pub max_lateness_hours: Option<f64>,
}

/// A bronze row: it carries its lineage (the ingestion time is the partition source).
pub trait Ingested {
    /// UTC microseconds.
    fn ingestion_time(&self) -> i64;
    /// `topic/partition/offset` or `key:line`.
    fn source_ref(&self) -> &str;
}

macro_rules! ingested {
    ($($t:ty),*) => {$(
        impl Ingested for $t {
            fn ingestion_time(&self) -> i64 {
                self.ingestion_time
            }
            fn source_ref(&self) -> &str {
                &self.source_ref
            }
        }
    )*};
}
ingested!(
    BronzeWeather,
    BronzeSale,
    BronzeReading,
    BronzeInventory,
    BronzeStore,
    BronzeProduct,
    BronzeCustomer,
    BronzeEquipment,
    QuarantineRow
);
