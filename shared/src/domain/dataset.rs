//! The datasets of SPEC §2: their names (Kafka topics and `landing/` folders), which are
//! events and which are reference snapshots, and the bronze table each lands in.

use std::fmt;
use std::str::FromStr;

/// One input dataset.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Dataset {
    SalesEvents,
    EquipmentMetrics,
    InventoryUpdates,
    /// Daily weather per store, pulled from the weather API (files only, never a topic).
    Weather,
    Stores,
    Products,
    Customers,
    Equipment,
}

impl Dataset {
    /// Every dataset, events first.
    pub const ALL: [Dataset; 8] = [
        Dataset::SalesEvents,
        Dataset::EquipmentMetrics,
        Dataset::InventoryUpdates,
        Dataset::Weather,
        Dataset::Stores,
        Dataset::Products,
        Dataset::Customers,
        Dataset::Equipment,
    ];
    /// The event datasets (Kafka topics).
    pub const EVENTS: [Dataset; 3] = [
        Dataset::SalesEvents,
        Dataset::EquipmentMetrics,
        Dataset::InventoryUpdates,
    ];
    /// The reference datasets (full snapshots from files).
    pub const REFERENCE: [Dataset; 4] = [
        Dataset::Stores,
        Dataset::Products,
        Dataset::Customers,
        Dataset::Equipment,
    ];

    /// The dataset's name in SPEC §2: topic name or `landing/` folder.
    pub fn name(self) -> &'static str {
        match self {
            Dataset::SalesEvents => "sales-events",
            Dataset::EquipmentMetrics => "equipment-metrics",
            Dataset::InventoryUpdates => "inventory-updates",
            Dataset::Weather => "weather",
            Dataset::Stores => "stores",
            Dataset::Products => "products",
            Dataset::Customers => "customers",
            Dataset::Equipment => "equipment",
        }
    }

    /// The bronze table (in namespace `bronze`) that holds this dataset's valid records.
    pub fn bronze_table(self) -> &'static str {
        match self {
            Dataset::SalesEvents => "sales_events",
            Dataset::EquipmentMetrics => "equipment_metrics",
            Dataset::InventoryUpdates => "inventory_updates",
            Dataset::Weather => "weather",
            Dataset::Stores => "stores",
            Dataset::Products => "products",
            Dataset::Customers => "customers",
            Dataset::Equipment => "equipment",
        }
    }

    /// Whether a file of this dataset is a full reference snapshot.
    pub fn is_reference(self) -> bool {
        Dataset::REFERENCE.contains(&self)
    }

    /// The accepted names, for error messages.
    pub fn accepted_names() -> String {
        Dataset::ALL.map(Dataset::name).join(", ")
    }
}

impl fmt::Display for Dataset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A dataset name that is not one of SPEC §2's.
#[derive(Debug, thiserror::Error, PartialEq)]
#[error("unknown dataset {0:?}; accepted: {accepted}", accepted = Dataset::accepted_names())]
pub struct UnknownDataset(pub String);

impl Dataset {
    /// The event dataset of a Kafka topic: its name, optionally after a prefix ending in `.`
    /// (`prod.sales-events`, for environments sharing a broker).
    pub fn of_topic(topic: &str) -> Option<Dataset> {
        let name = topic.rsplit_once('.').map_or(topic, |(_, name)| name);
        name.parse::<Dataset>()
            .ok()
            .filter(|d| Dataset::EVENTS.contains(d))
    }
}

impl FromStr for Dataset {
    type Err = UnknownDataset;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Dataset::ALL
            .into_iter()
            .find(|d| d.name() == s)
            .ok_or_else(|| UnknownDataset(s.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topics_map_to_event_datasets_with_an_optional_prefix() {
        assert_eq!(
            Dataset::of_topic("sales-events"),
            Some(Dataset::SalesEvents)
        );
        assert_eq!(
            Dataset::of_topic("t1.inventory-updates"),
            Some(Dataset::InventoryUpdates)
        );
        assert_eq!(Dataset::of_topic("stores"), None);
        assert_eq!(Dataset::of_topic("weather"), None);
        assert_eq!(Dataset::of_topic("sales-events.x"), None);
        assert_eq!(Dataset::of_topic("salesevents"), None);
    }

    #[test]
    fn names_round_trip() {
        for d in Dataset::ALL {
            assert_eq!(d.name().parse::<Dataset>(), Ok(d));
        }
        let err = "sales".parse::<Dataset>().unwrap_err();
        assert!(err.to_string().contains("sales-events, equipment-metrics"));
    }
}
