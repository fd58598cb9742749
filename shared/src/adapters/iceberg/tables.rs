//! Every Iceberg table of SPEC §3–5: namespace, name, schema (field ids fixed here, so
//! they never move) and partition spec. Column names match the row structs in
//! `domain::records`.

use std::sync::Arc;

use iceberg::spec::{NestedField, PrimitiveType, Schema, Transform, Type, UnboundPartitionSpec};
use iceberg::{NamespaceIdent, TableIdent};

use crate::domain::dataset::Dataset;

/// The namespaces, in creation order.
pub const NAMESPACES: [&str; 3] = ["bronze", "silver", "gold"];

/// One table's definition.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TableDef {
    pub namespace: &'static str,
    pub name: &'static str,
    columns: &'static [(&'static str, Col)],
    /// The partition source column and transform (`day` of a timestamp, or `identity` of a
    /// date); `None` for a small unpartitioned table (the dimensions).
    partition: Option<(&'static str, Part)>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Col {
    Str,
    Int,
    Long,
    Double,
    Bool,
    Ts,
    Date,
    Dec(u32),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Part {
    Day,
    Identity,
}

use Col::*;

const LINEAGE: [(&str, Col); 4] = [
    ("payload", Str),
    ("source", Str),
    ("source_ref", Str),
    ("ingestion_time", Ts),
];

// Bronze: typed fields, raw payload and lineage, partitioned by ingestion date.
pub const BRONZE_SALES: TableDef = TableDef {
    namespace: "bronze",
    name: "sales_events",
    columns: &[
        ("event_id", Str),
        ("transaction_id", Str),
        ("event_time", Ts),
        ("store_id", Int),
        ("product_id", Int),
        ("customer_id", Str),
        ("quantity", Int),
        ("unit_price", Dec(10)),
        ("promotion_id", Str),
        LINEAGE[0],
        LINEAGE[1],
        LINEAGE[2],
        LINEAGE[3],
    ],
    partition: Some(("ingestion_time", Part::Day)),
};
pub const BRONZE_EQUIPMENT_METRICS: TableDef = TableDef {
    namespace: "bronze",
    name: "equipment_metrics",
    columns: &[
        ("metric_id", Str),
        ("equipment_id", Int),
        ("event_time", Ts),
        ("operational_status", Str),
        ("power_kw", Double),
        ("temperature_c", Double),
        ("interval_seconds", Int),
        ("readings", Str),
        LINEAGE[0],
        LINEAGE[1],
        LINEAGE[2],
        LINEAGE[3],
    ],
    partition: Some(("ingestion_time", Part::Day)),
};
pub const BRONZE_INVENTORY: TableDef = TableDef {
    namespace: "bronze",
    name: "inventory_updates",
    columns: &[
        ("update_id", Str),
        ("event_time", Ts),
        ("store_id", Int),
        ("product_id", Int),
        ("beginning_stock", Int),
        ("restocked_quantity", Int),
        ("sold_quantity", Int),
        ("waste_quantity", Int),
        ("reported_by", Str),
        LINEAGE[0],
        LINEAGE[1],
        LINEAGE[2],
        LINEAGE[3],
    ],
    partition: Some(("ingestion_time", Part::Day)),
};
pub const BRONZE_STORES: TableDef = TableDef {
    namespace: "bronze",
    name: "stores",
    columns: &[
        ("store_id", Int),
        ("name", Str),
        ("city", Str),
        ("region", Str),
        ("opening_hour", Str),
        ("closing_hour", Str),
        ("manager", Str),
        LINEAGE[0],
        LINEAGE[1],
        LINEAGE[2],
        LINEAGE[3],
        ("latitude", Double),
        ("longitude", Double),
    ],
    partition: Some(("ingestion_time", Part::Day)),
};
pub const BRONZE_WEATHER: TableDef = TableDef {
    namespace: "bronze",
    name: "weather",
    columns: &[
        ("store_id", Int),
        ("date", Date),
        ("pulled_at", Ts),
        ("temperature_max_c", Double),
        ("temperature_min_c", Double),
        ("precipitation_mm", Double),
        ("weather_code", Int),
        LINEAGE[0],
        LINEAGE[1],
        LINEAGE[2],
        LINEAGE[3],
    ],
    partition: Some(("ingestion_time", Part::Day)),
};
pub const BRONZE_PRODUCTS: TableDef = TableDef {
    namespace: "bronze",
    name: "products",
    columns: &[
        ("product_id", Int),
        ("name", Str),
        ("category", Str),
        ("list_price", Dec(10)),
        LINEAGE[0],
        LINEAGE[1],
        LINEAGE[2],
        LINEAGE[3],
    ],
    partition: Some(("ingestion_time", Part::Day)),
};
pub const BRONZE_CUSTOMERS: TableDef = TableDef {
    namespace: "bronze",
    name: "customers",
    columns: &[
        ("customer_id", Str),
        ("loyalty_tier", Str),
        ("city", Str),
        LINEAGE[0],
        LINEAGE[1],
        LINEAGE[2],
        LINEAGE[3],
    ],
    partition: Some(("ingestion_time", Part::Day)),
};
pub const BRONZE_EQUIPMENT: TableDef = TableDef {
    namespace: "bronze",
    name: "equipment",
    columns: &[
        ("equipment_id", Int),
        ("store_id", Int),
        ("equipment_type", Str),
        ("name", Str),
        LINEAGE[0],
        LINEAGE[1],
        LINEAGE[2],
        LINEAGE[3],
    ],
    partition: Some(("ingestion_time", Part::Day)),
};
pub const QUARANTINE: TableDef = TableDef {
    namespace: "bronze",
    name: "quarantine",
    columns: &[
        ("dataset", Str),
        ("source", Str),
        ("source_ref", Str),
        ("error_code", Str),
        ("error_message", Str),
        ("raw", Str),
        ("raw_encoding", Str),
        ("ingestion_time", Ts),
    ],
    partition: Some(("ingestion_time", Part::Day)),
};

// Silver: cleaned and scored, partitioned by event date.
const SILVER_TAIL: [(&str, Col); 6] = [
    ("ingestion_time", Ts),
    ("lateness_seconds", Double),
    ("too_late", Bool),
    ("quality_score", Int),
    ("failed_rules", Str),
    ("source_ref", Str),
];
pub const SILVER_SALES: TableDef = TableDef {
    namespace: "silver",
    name: "sales",
    columns: &[
        ("event_id", Str),
        ("transaction_id", Str),
        ("event_time", Ts),
        ("business_date", Date),
        ("store_id", Int),
        ("product_id", Int),
        ("customer_id", Str),
        ("quantity", Int),
        ("unit_price", Dec(10)),
        ("revenue", Dec(14)),
        ("promotion_id", Str),
        ("time_of_day", Str),
        SILVER_TAIL[0],
        SILVER_TAIL[1],
        SILVER_TAIL[2],
        SILVER_TAIL[3],
        SILVER_TAIL[4],
        SILVER_TAIL[5],
    ],
    partition: Some(("event_time", Part::Day)),
};
pub const SILVER_EQUIPMENT_METRICS: TableDef = TableDef {
    namespace: "silver",
    name: "equipment_metrics",
    columns: &[
        ("metric_id", Str),
        ("equipment_id", Int),
        ("event_time", Ts),
        ("business_date", Date),
        ("operational_status", Str),
        ("power_kw", Double),
        ("temperature_c", Double),
        ("interval_seconds", Int),
        ("readings", Str),
        SILVER_TAIL[0],
        SILVER_TAIL[1],
        SILVER_TAIL[2],
        SILVER_TAIL[3],
        SILVER_TAIL[4],
        SILVER_TAIL[5],
    ],
    partition: Some(("event_time", Part::Day)),
};
pub const SILVER_INVENTORY: TableDef = TableDef {
    namespace: "silver",
    name: "inventory",
    columns: &[
        ("update_id", Str),
        ("event_time", Ts),
        ("business_date", Date),
        ("store_id", Int),
        ("product_id", Int),
        ("beginning_stock", Int),
        ("restocked_quantity", Int),
        ("sold_quantity", Int),
        ("waste_quantity", Int),
        ("closing_stock", Long),
        ("waste_ratio", Double),
        ("reported_by", Str),
        SILVER_TAIL[0],
        SILVER_TAIL[1],
        SILVER_TAIL[2],
        SILVER_TAIL[3],
        SILVER_TAIL[4],
        SILVER_TAIL[5],
    ],
    partition: Some(("event_time", Part::Day)),
};

/// Silver weather: one row per store and day (the latest pull), partitioned by that day.
pub const SILVER_WEATHER: TableDef = TableDef {
    namespace: "silver",
    name: "weather",
    columns: &[
        ("business_date", Date),
        ("store_id", Int),
        ("temperature_max_c", Double),
        ("temperature_min_c", Double),
        ("precipitation_mm", Double),
        ("weather_code", Int),
        ("pulled_at", Ts),
        ("is_forecast", Bool),
        ("ingestion_time", Ts),
        ("quality_score", Int),
        ("failed_rules", Str),
        ("source_ref", Str),
    ],
    partition: Some(("business_date", Part::Identity)),
};

// Gold: facts partitioned by business date.
pub const FACT_SALES: TableDef = TableDef {
    namespace: "gold",
    name: "fact_sales",
    columns: &[
        ("sale_id", Str),
        ("transaction_id", Str),
        ("business_date", Date),
        ("event_time", Ts),
        ("store_id", Int),
        ("store_key", Long),
        ("product_id", Int),
        ("product_key", Long),
        ("customer_id", Str),
        ("quantity", Int),
        ("unit_price", Dec(10)),
        ("revenue", Dec(14)),
        ("time_of_day", Str),
        ("quality_score", Int),
        ("customer_key", Long),
    ],
    partition: Some(("business_date", Part::Identity)),
};
pub const FACT_SALES_DAILY: TableDef = TableDef {
    namespace: "gold",
    name: "fact_sales_daily",
    columns: &[
        ("business_date", Date),
        ("store_id", Int),
        ("product_id", Int),
        ("quantity", Long),
        ("revenue", Dec(14)),
        ("line_items", Long),
        ("transactions", Long),
        ("promoted_quantity", Long),
    ],
    partition: Some(("business_date", Part::Identity)),
};
pub const FACT_INVENTORY: TableDef = TableDef {
    namespace: "gold",
    name: "fact_inventory",
    columns: &[
        ("business_date", Date),
        ("store_id", Int),
        ("product_id", Int),
        ("beginning_stock", Int),
        ("restocked_quantity", Int),
        ("sold_quantity", Int),
        ("waste_quantity", Int),
        ("closing_stock", Long),
        ("waste_ratio", Double),
        ("days_of_supply", Double),
        ("stock_out", Bool),
        ("updates", Long),
    ],
    partition: Some(("business_date", Part::Identity)),
};
pub const FACT_EQUIPMENT_PERFORMANCE: TableDef = TableDef {
    namespace: "gold",
    name: "fact_equipment_performance",
    columns: &[
        ("business_date", Date),
        ("equipment_id", Int),
        ("readings", Long),
        ("operational_hours", Double),
        ("downtime_minutes", Double),
        ("energy_kwh", Double),
        ("avg_power_kw", Double),
        ("avg_temperature_c", Double),
        ("max_temperature_c", Double),
        ("efficiency_score", Double),
    ],
    partition: Some(("business_date", Part::Identity)),
};

// Gold dimensions: small, unpartitioned, rewritten whole by maintenance.
const VALIDITY: [(&str, Col); 3] = [("valid_from", Ts), ("valid_to", Ts), ("is_current", Bool)];
pub const DIM_STORE: TableDef = TableDef {
    namespace: "gold",
    name: "dim_store",
    columns: &[
        ("store_key", Long),
        ("store_id", Int),
        ("name", Str),
        ("city", Str),
        ("region", Str),
        ("opening_hour", Str),
        ("closing_hour", Str),
        ("manager", Str),
        VALIDITY[0],
        VALIDITY[1],
        VALIDITY[2],
    ],
    partition: None,
};
pub const DIM_PRODUCT: TableDef = TableDef {
    namespace: "gold",
    name: "dim_product",
    columns: &[
        ("product_key", Long),
        ("product_id", Int),
        ("name", Str),
        ("category", Str),
        ("list_price", Dec(10)),
        VALIDITY[0],
        VALIDITY[1],
        VALIDITY[2],
    ],
    partition: None,
};
pub const DIM_CUSTOMER: TableDef = TableDef {
    namespace: "gold",
    name: "dim_customer",
    columns: &[
        ("customer_key", Long),
        ("customer_id", Str),
        ("loyalty_tier", Str),
        ("city", Str),
        VALIDITY[0],
        VALIDITY[1],
        VALIDITY[2],
    ],
    partition: None,
};
/// What a demand-forecasting model trains on (SPEC §5), from the gold facts and weather.
pub const FEATURES_DEMAND_DAILY: TableDef = TableDef {
    namespace: "gold",
    name: "features_demand_daily",
    columns: &[
        ("business_date", Date),
        ("store_id", Int),
        ("product_id", Int),
        ("quantity", Long),
        ("revenue", Dec(14)),
        ("quantity_lag_1", Long),
        ("quantity_lag_7", Long),
        ("rolling_mean_7", Double),
        ("rolling_mean_28", Double),
        ("day_of_week", Int),
        ("promotion_share", Double),
        ("waste_ratio", Double),
        ("stock_out", Bool),
        ("temperature_max_c", Double),
        ("precipitation_mm", Double),
    ],
    partition: Some(("business_date", Part::Identity)),
};
/// Weather by business date and store (SPEC §2 External API), from silver's latest pulls.
pub const DIM_WEATHER: TableDef = TableDef {
    namespace: "gold",
    name: "dim_weather",
    columns: &[
        ("business_date", Date),
        ("store_id", Int),
        ("temperature_max_c", Double),
        ("temperature_min_c", Double),
        ("precipitation_mm", Double),
        ("weather_code", Int),
        ("is_forecast", Bool),
    ],
    partition: Some(("business_date", Part::Identity)),
};
pub const DIM_EQUIPMENT: TableDef = TableDef {
    namespace: "gold",
    name: "dim_equipment",
    columns: &[
        ("equipment_id", Int),
        ("store_id", Int),
        ("equipment_type", Str),
        ("name", Str),
    ],
    partition: None,
};

// Gold daily reports.
pub const DATA_QUALITY_DAILY: TableDef = TableDef {
    namespace: "gold",
    name: "data_quality_daily",
    columns: &[
        ("business_date", Date),
        ("dataset", Str),
        ("records", Long),
        ("gold_eligible", Long),
        ("quarantined", Long),
        ("avg_quality_score", Double),
        ("perfect", Long),
        ("poor", Long),
    ],
    partition: Some(("business_date", Part::Identity)),
};
pub const LATE_ARRIVALS_DAILY: TableDef = TableDef {
    namespace: "gold",
    name: "late_arrivals_daily",
    columns: &[
        ("business_date", Date),
        ("dataset", Str),
        ("late_records", Long),
        ("too_late_records", Long),
        ("avg_lateness_hours", Double),
        ("max_lateness_hours", Double),
    ],
    partition: Some(("business_date", Part::Identity)),
};

/// Every table, in creation order.
pub const ALL_TABLES: [TableDef; 25] = [
    BRONZE_SALES,
    BRONZE_EQUIPMENT_METRICS,
    BRONZE_INVENTORY,
    BRONZE_WEATHER,
    BRONZE_STORES,
    BRONZE_PRODUCTS,
    BRONZE_CUSTOMERS,
    BRONZE_EQUIPMENT,
    QUARANTINE,
    SILVER_SALES,
    SILVER_EQUIPMENT_METRICS,
    SILVER_INVENTORY,
    SILVER_WEATHER,
    FACT_SALES,
    FACT_SALES_DAILY,
    FACT_INVENTORY,
    FACT_EQUIPMENT_PERFORMANCE,
    DIM_STORE,
    DIM_PRODUCT,
    DIM_CUSTOMER,
    DIM_EQUIPMENT,
    DIM_WEATHER,
    FEATURES_DEMAND_DAILY,
    DATA_QUALITY_DAILY,
    LATE_ARRIVALS_DAILY,
];

/// Silver columns rows are looked up by ([`TableDef::lookup_columns`]).
const LOOKUP_COLUMNS: [&str; 4] = ["event_id", "metric_id", "update_id", "transaction_id"];

impl TableDef {
    /// `namespace.name`.
    pub fn qualified(&self) -> String {
        format!("{}.{}", self.namespace, self.name)
    }

    /// The catalog identifier.
    pub fn ident(&self) -> TableIdent {
        TableIdent::new(
            NamespaceIdent::new(self.namespace.to_string()),
            self.name.to_string(),
        )
    }

    /// The columns hops find rows by (silver's natural ids, which dedupe looks up, and
    /// `transaction_id`, which the daily sales fact looks up to count transactions once):
    /// their Parquet files carry bloom filters.
    pub fn lookup_columns(&self) -> Vec<&'static str> {
        if self.namespace != "silver" {
            return Vec::new();
        }
        self.columns
            .iter()
            .map(|(name, _)| *name)
            .filter(|name| LOOKUP_COLUMNS.contains(name))
            .collect()
    }

    /// The Iceberg schema: every column optional, field ids 1..n in column order.
    pub fn schema(&self) -> iceberg::Result<Schema> {
        let fields = self.columns.iter().enumerate().map(|(i, (name, col))| {
            let primitive = match col {
                Str => PrimitiveType::String,
                Int => PrimitiveType::Int,
                Long => PrimitiveType::Long,
                Double => PrimitiveType::Double,
                Bool => PrimitiveType::Boolean,
                Ts => PrimitiveType::Timestamptz,
                Date => PrimitiveType::Date,
                Dec(precision) => PrimitiveType::Decimal {
                    precision: *precision,
                    scale: 2,
                },
            };
            Arc::new(NestedField::optional(
                i as i32 + 1,
                *name,
                Type::Primitive(primitive),
            ))
        });
        Schema::builder()
            .with_schema_id(0)
            .with_fields(fields)
            .build()
    }

    /// The partition spec: `day(ts)` or `identity(date)` of the partition column, or none.
    pub fn partition_spec(&self) -> iceberg::Result<UnboundPartitionSpec> {
        let Some((column, part)) = self.partition else {
            return Ok(UnboundPartitionSpec::builder().with_spec_id(0).build());
        };
        let source_id = self
            .columns
            .iter()
            .position(|(name, _)| *name == column)
            .map(|i| i as i32 + 1)
            .ok_or_else(|| {
                iceberg::Error::new(
                    iceberg::ErrorKind::DataInvalid,
                    format!("no column {column}"),
                )
            })?;
        let (transform, field_name) = match part {
            Part::Day => (Transform::Day, format!("{column}_day")),
            Part::Identity => (Transform::Identity, column.to_string()),
        };
        UnboundPartitionSpec::builder()
            .with_spec_id(0)
            .add_partition_field(source_id, field_name, transform)
            .map(|b| b.build())
    }

    /// The name of the column the table is partitioned on (its value is a date in days).
    pub fn partition_column(&self) -> Option<&'static str> {
        self.partition.map(|(column, _)| column)
    }

    /// The bronze table of a dataset.
    pub fn bronze(dataset: Dataset) -> TableDef {
        match dataset {
            Dataset::SalesEvents => BRONZE_SALES,
            Dataset::EquipmentMetrics => BRONZE_EQUIPMENT_METRICS,
            Dataset::InventoryUpdates => BRONZE_INVENTORY,
            Dataset::Weather => BRONZE_WEATHER,
            Dataset::Stores => BRONZE_STORES,
            Dataset::Products => BRONZE_PRODUCTS,
            Dataset::Customers => BRONZE_CUSTOMERS,
            Dataset::Equipment => BRONZE_EQUIPMENT,
        }
    }

    /// Looks a table up by `namespace.name`.
    pub fn find(qualified: &str) -> Option<TableDef> {
        ALL_TABLES.into_iter().find(|t| t.qualified() == qualified)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_table_has_a_valid_schema_and_spec() {
        for table in ALL_TABLES {
            let schema = table.schema().expect("schema");
            if let Some(column) = table.partition_column() {
                assert!(schema.field_by_name(column).is_some());
            }
            table.partition_spec().expect("spec");
        }
    }
}
