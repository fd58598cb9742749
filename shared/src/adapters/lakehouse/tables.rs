//! Every Iceberg table of SPEC §3–5: namespace, name, schema (field ids fixed here, so
//! they never move) and partition spec; and which changes of an existing table's schema and
//! partition spec are evolutions Iceberg allows (checked before anything is written). Column
//! names match the row structs in `domain::records`.

use std::sync::Arc;

use iceberg::spec::{
    NestedField, NestedFieldRef, PartitionSpec, PrimitiveType, Schema, Transform, Type,
    UnboundPartitionSpec,
};
use iceberg::{NamespaceIdent, TableIdent};

use crate::domain::dataset::Dataset;

/// The namespaces, in creation order.
pub const NAMESPACES: [&str; 3] = ["bronze", "silver", "gold"];

/// One table's definition. A column is added by appending it to `columns` (existing tables
/// gain it at the next `bakehouse init`), and a type widened by changing its `Col` to one
/// Iceberg promotes it to ([`schema_change`]); columns are never removed or reordered.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TableDef {
    pub namespace: &'static str,
    pub name: &'static str,
    pub columns: &'static [(&'static str, Col)],
    /// The partition source column (a timestamp or a date) and the granularity new tables
    /// start with; `None` for a small unpartitioned table (the dimensions). A table's current
    /// granularity is its own ([`Grain`], `bakehouse evolve --partition`).
    pub partition: Option<(&'static str, Grain)>,
}

/// A column type (every column is optional).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Col {
    Str,
    Int,
    Long,
    Float,
    Double,
    Bool,
    Ts,
    Date,
    /// decimal(precision, 2).
    Dec(u32),
}

/// How finely a table is partitioned on its partition column: `hour(ts)`, `day(ts)` or
/// `identity(date)`, `month(ts or date)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Grain {
    Hour,
    Day,
    Month,
}

impl Grain {
    /// The accepted names, for messages.
    pub const NAMES: &'static str = "hour, day, month";

    /// Parses `hour`, `day` or `month`.
    pub fn parse(name: &str) -> Option<Grain> {
        match name {
            "hour" => Some(Grain::Hour),
            "day" => Some(Grain::Day),
            "month" => Some(Grain::Month),
            _ => None,
        }
    }

    /// The grain a partition transform stands for.
    pub fn of(transform: Transform) -> Option<Grain> {
        match transform {
            Transform::Hour => Some(Grain::Hour),
            Transform::Day | Transform::Identity => Some(Grain::Day),
            Transform::Month => Some(Grain::Month),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Grain::Hour => "hour",
            Grain::Day => "day",
            Grain::Month => "month",
        }
    }
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
        ("channel", Str),
    ],
    partition: Some(("ingestion_time", Grain::Day)),
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
    partition: Some(("ingestion_time", Grain::Day)),
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
    partition: Some(("ingestion_time", Grain::Day)),
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
    partition: Some(("ingestion_time", Grain::Day)),
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
    partition: Some(("ingestion_time", Grain::Day)),
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
    partition: Some(("ingestion_time", Grain::Day)),
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
    partition: Some(("ingestion_time", Grain::Day)),
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
    partition: Some(("ingestion_time", Grain::Day)),
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
    partition: Some(("ingestion_time", Grain::Day)),
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
        ("channel", Str),
    ],
    partition: Some(("event_time", Grain::Day)),
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
    partition: Some(("event_time", Grain::Day)),
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
    partition: Some(("event_time", Grain::Day)),
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
    partition: Some(("business_date", Grain::Day)),
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
        ("channel", Str),
    ],
    partition: Some(("business_date", Grain::Day)),
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
        ("channel", Str),
    ],
    partition: Some(("business_date", Grain::Day)),
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
    partition: Some(("business_date", Grain::Day)),
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
    partition: Some(("business_date", Grain::Day)),
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
    partition: Some(("business_date", Grain::Day)),
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
    partition: Some(("business_date", Grain::Day)),
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
    partition: Some(("business_date", Grain::Day)),
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
    partition: Some(("business_date", Grain::Day)),
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

/// Gold tables that people read and no hop does: they may be partitioned by month.
const REPORTING_TABLES: [TableDef; 3] = [
    DATA_QUALITY_DAILY,
    LATE_ARRIVALS_DAILY,
    FEATURES_DEMAND_DAILY,
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
                Float => PrimitiveType::Float,
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

    /// The partition spec new tables start with (spec id 0).
    pub fn partition_spec(&self) -> iceberg::Result<UnboundPartitionSpec> {
        match self.partition {
            None => Ok(UnboundPartitionSpec::builder().with_spec_id(0).build()),
            Some((_, grain)) => self.partition_spec_at(grain),
        }
    }

    /// The spec partitioning the table's partition column at `grain`: `hour`/`day`/`month`
    /// of a timestamp, `identity`/`month` of a date (field names `{column}_hour`,
    /// `{column}_day`, `{column}` for a date's identity, `{column}_month`).
    ///
    /// # Errors
    /// The table is unpartitioned, or `grain` does not apply to its column's type.
    pub fn partition_spec_at(&self, grain: Grain) -> iceberg::Result<UnboundPartitionSpec> {
        let refuse = |message: String| {
            iceberg::Error::new(
                iceberg::ErrorKind::DataInvalid,
                format!("{}: {message}", self.qualified()),
            )
        };
        let Some((column, _)) = self.partition else {
            return Err(refuse(
                "is not partitioned (a small table rewritten whole)".to_string(),
            ));
        };
        let (index, col) = self
            .columns
            .iter()
            .enumerate()
            .find(|(_, (name, _))| *name == column)
            .map(|(i, (_, col))| (i, *col))
            .ok_or_else(|| refuse(format!("no column {column}")))?;
        let (transform, field_name) = match (col, grain) {
            (Ts, Grain::Hour) => (Transform::Hour, format!("{column}_hour")),
            (Ts, Grain::Day) => (Transform::Day, format!("{column}_day")),
            (Date, Grain::Day) => (Transform::Identity, column.to_string()),
            (Ts | Date, Grain::Month) => (Transform::Month, format!("{column}_month")),
            _ => {
                return Err(refuse(format!(
                    "{column} cannot be partitioned by {}",
                    grain.name()
                )));
            }
        };
        UnboundPartitionSpec::builder()
            .add_partition_field(index as i32 + 1, field_name, transform)
            .map(|b| b.build())
    }

    /// Whether the table may be partitioned at `grain`; the message (to follow the table's
    /// name) says why not and what is accepted.
    pub fn check_grain(&self, grain: Grain) -> Result<(), String> {
        let accepted = self.accepted_grains();
        if accepted.contains(&grain) {
            return Ok(());
        }
        let names: Vec<&str> = accepted.iter().map(|g| g.name()).collect();
        Err(match self.partition_column() {
            None => "is not partitioned (a small table rewritten whole)".to_string(),
            Some(column) => format!(
                "cannot be partitioned by {} (partition column {column}; accepted: {})",
                grain.name(),
                names.join(", ")
            ),
        })
    }

    /// The granularities the table may be evolved to. A table partitioned by a timestamp
    /// (bronze, silver events) is appended to and read a day at a time (dedupe, replay, gold's
    /// per-date recomputation): hour or day. A reporting table (read by people, no hop) may
    /// also hold a month per partition: replacing a date then rewrites its month's rows, small
    /// for a report. The other date-partitioned tables are read and replaced a date at a time:
    /// day. A dimension: none.
    pub fn accepted_grains(&self) -> &'static [Grain] {
        let column = self
            .partition
            .and_then(|(name, _)| self.columns.iter().find(|(n, _)| *n == name));
        match column {
            Some((_, Ts)) => &[Grain::Hour, Grain::Day],
            Some((_, Date)) if REPORTING_TABLES.contains(self) => &[Grain::Day, Grain::Month],
            Some((_, Date)) => &[Grain::Day],
            _ => &[],
        }
    }

    /// The name of the column the table is partitioned on (a timestamp or a date).
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

/// The fields `current` becomes to match a table definition's schema `wanted` the Iceberg
/// way, without rewriting data: fields keep their ids; a type may widen only as Iceberg
/// promotes it (int→long, float→double, decimal(P,S)→decimal(P′,S) with P′ > P); a column new to
/// the definition is added as an optional field with the next id (`last_column_id` + 1…), which
/// files written before read as null. `None` when nothing changes.
///
/// # Errors
/// A message naming the column, for any change readers of the existing files could not
/// follow: a column dropped or renamed, a type narrowed or changed, an optional column made
/// required.
pub fn schema_change(
    current: &Schema,
    wanted: &Schema,
    last_column_id: i32,
) -> Result<Option<Vec<NestedFieldRef>>, String> {
    let mut changed = false;
    let mut fields = Vec::new();
    for field in current.as_struct().fields() {
        let Some(target) = wanted.field_by_name(&field.name) else {
            return Err(format!(
                "column {} ({}) is not in the definition: dropping or renaming a column is not \
                 an evolution bakehouse makes (its data would be lost to readers); keep it",
                field.name, field.field_type
            ));
        };
        if target.required && !field.required {
            return Err(format!(
                "column {}: an optional column cannot become required (older rows may be null)",
                field.name
            ));
        }
        if target.field_type == field.field_type {
            fields.push(field.clone());
            continue;
        }
        if !is_promotion(&field.field_type, &target.field_type) {
            return Err(format!(
                "column {}: {} → {} is not a type promotion Iceberg allows (int → long, \
                 float → double, decimal(P,S) → decimal(P′,S) with P′ > P)",
                field.name, field.field_type, target.field_type
            ));
        }
        changed = true;
        let mut promoted = field.as_ref().clone();
        promoted.field_type = target.field_type.clone();
        fields.push(Arc::new(promoted));
    }
    let mut next_id = last_column_id;
    for target in wanted.as_struct().fields() {
        if current.field_by_name(&target.name).is_none() {
            changed = true;
            next_id += 1;
            fields.push(Arc::new(NestedField::optional(
                next_id,
                target.name.clone(),
                (*target.field_type).clone(),
            )));
        }
    }
    Ok(changed.then_some(fields))
}

/// Whether Iceberg reads a column written as `from` as `to` (a type promotion).
fn is_promotion(from: &Type, to: &Type) -> bool {
    use PrimitiveType as P;
    match (from, to) {
        (Type::Primitive(from), Type::Primitive(to)) => match (from, to) {
            (P::Int, P::Long) | (P::Float, P::Double) => true,
            (
                P::Decimal { precision, scale },
                P::Decimal {
                    precision: wider,
                    scale: same,
                },
            ) => scale == same && wider > precision,
            _ => false,
        },
        _ => false,
    }
}

/// The spec to make default for partitioning `def` at `grain`, given the table's current
/// default spec; `None` when the table is partitioned at `grain` already.
///
/// # Errors
/// [`TableDef::check_grain`]'s message: the table is unpartitioned, or `grain` does not fit it.
pub fn partition_change(
    def: &TableDef,
    current: &PartitionSpec,
    grain: Grain,
) -> Result<Option<UnboundPartitionSpec>, String> {
    def.check_grain(grain)?;
    let now = current
        .fields()
        .first()
        .and_then(|f| Grain::of(f.transform));
    if now == Some(grain) {
        return Ok(None);
    }
    def.partition_spec_at(grain)
        .map(Some)
        .map_err(|e| e.message().to_string())
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

    fn schema(columns: &[(&str, PrimitiveType)]) -> Schema {
        let fields = columns.iter().enumerate().map(|(i, (name, t))| {
            Arc::new(NestedField::optional(
                i as i32 + 1,
                *name,
                Type::Primitive(t.clone()),
            ))
        });
        Schema::builder()
            .with_fields(fields)
            .build()
            .expect("schema")
    }

    fn dec(precision: u32) -> PrimitiveType {
        PrimitiveType::Decimal {
            precision,
            scale: 2,
        }
    }

    #[test]
    fn promotions_keep_field_ids_and_new_columns_take_the_next_ids() {
        use PrimitiveType as P;
        let old = schema(&[("n", P::Int), ("x", P::Float), ("price", dec(10))]);
        let new = schema(&[
            ("n", P::Long),
            ("x", P::Double),
            ("price", dec(14)),
            ("channel", P::String),
        ]);
        let fields = schema_change(&old, &new, 7)
            .expect("allowed")
            .expect("a change");
        let got: Vec<(i32, &str, String)> = fields
            .iter()
            .map(|f| (f.id, f.name.as_str(), f.field_type.to_string()))
            .collect();
        assert_eq!(
            got,
            [
                (1, "n", "long".to_string()),
                (2, "x", "double".to_string()),
                (3, "price", "decimal(14, 2)".to_string()),
                (8, "channel", "string".to_string()),
            ]
        );
        assert_eq!(schema_change(&new, &new, 8), Ok(None));
    }

    #[test]
    fn narrowing_changing_or_dropping_a_column_is_refused_naming_it() {
        use PrimitiveType as P;
        let old = schema(&[("n", P::Long), ("s", P::String), ("price", dec(14))]);
        let refused = |new: Schema| schema_change(&old, &new, 3).expect_err("refused");
        let narrowed = refused(schema(&[
            ("n", P::Int),
            ("s", P::String),
            ("price", dec(14)),
        ]));
        assert!(
            narrowed.starts_with("column n: long → int is not a type promotion"),
            "{narrowed}"
        );
        let changed = refused(schema(&[("n", P::Long), ("s", P::Int), ("price", dec(14))]));
        assert!(changed.starts_with("column s: string → int"), "{changed}");
        let decimal = refused(schema(&[
            ("n", P::Long),
            ("s", P::String),
            ("price", dec(10)),
        ]));
        assert!(
            decimal.starts_with("column price: decimal(14, 2) → decimal(10, 2)"),
            "{decimal}"
        );
        let dropped = refused(schema(&[("n", P::Long), ("price", dec(14))]));
        assert!(
            dropped.starts_with("column s (string) is not in the definition"),
            "{dropped}"
        );
        let required = Schema::builder()
            .with_fields([
                Arc::new(NestedField::required(1, "n", Type::Primitive(P::Long))),
                Arc::new(NestedField::optional(2, "s", Type::Primitive(P::String))),
                Arc::new(NestedField::optional(3, "price", Type::Primitive(dec(14)))),
            ])
            .build()
            .expect("schema");
        let made_required = refused(required);
        assert!(
            made_required.contains("cannot become required"),
            "{made_required}"
        );
    }

    #[test]
    fn partition_changes_follow_the_partition_column() {
        let spec = |def: &TableDef| {
            def.partition_spec()
                .expect("spec")
                .bind(def.schema().expect("schema"))
                .expect("bound")
        };
        let silver = spec(&SILVER_SALES);
        let hourly = partition_change(&SILVER_SALES, &silver, Grain::Hour)
            .expect("accepted")
            .expect("a change");
        let field = &hourly.fields()[0];
        assert_eq!(
            (field.name.as_str(), field.transform),
            ("event_time_hour", Transform::Hour)
        );
        assert_eq!(
            partition_change(&SILVER_SALES, &silver, Grain::Day),
            Ok(None)
        );
        let refused = partition_change(&SILVER_SALES, &silver, Grain::Month).expect_err("refused");
        assert_eq!(
            refused,
            "cannot be partitioned by month (partition column event_time; accepted: hour, day)"
        );
        let report = spec(&DATA_QUALITY_DAILY);
        let monthly = partition_change(&DATA_QUALITY_DAILY, &report, Grain::Month)
            .expect("accepted")
            .expect("a change");
        assert_eq!(monthly.fields()[0].transform, Transform::Month);
        assert!(partition_change(&DATA_QUALITY_DAILY, &report, Grain::Hour).is_err());
        let dim = spec(&DIM_STORE);
        let unpartitioned = partition_change(&DIM_STORE, &dim, Grain::Day).expect_err("refused");
        assert!(
            unpartitioned.contains("is not partitioned"),
            "{unpartitioned}"
        );
    }
}
