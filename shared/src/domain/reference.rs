//! Reference data: the default snapshot the project ships (5 stores, 10 products, 7 pieces of
//! equipment, 8 customers) and the index of "known" ids that the quality rules look up.

use std::collections::{HashMap, HashSet};

use super::dataset::Dataset;
use super::records::{BronzeEquipment, BronzeProduct, BronzeStore};

/// The shipped default snapshot of a reference dataset, as CSV (header row first).
pub fn default_snapshot(dataset: Dataset) -> Option<&'static str> {
    match dataset {
        Dataset::Stores => Some(include_str!("../../reference/stores.csv")),
        Dataset::Products => Some(include_str!("../../reference/products.csv")),
        Dataset::Customers => Some(include_str!("../../reference/customers.csv")),
        Dataset::Equipment => Some(include_str!("../../reference/equipment.csv")),
        _ => None,
    }
}

/// The ids present in the current reference snapshots ("known" in SPEC §4).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ReferenceIndex {
    pub stores: HashSet<i32>,
    pub products: HashSet<i32>,
    /// equipment_id → equipment_type (lower-case), if the snapshot names one.
    pub equipment: HashMap<i32, Option<String>>,
}

impl ReferenceIndex {
    /// Builds the index from the rows of the latest snapshots.
    pub fn new(
        stores: &[BronzeStore],
        products: &[BronzeProduct],
        equipment: &[BronzeEquipment],
    ) -> Self {
        ReferenceIndex {
            stores: stores.iter().map(|s| s.store_id).collect(),
            products: products.iter().map(|p| p.product_id).collect(),
            equipment: equipment
                .iter()
                .map(|e| {
                    (
                        e.equipment_id,
                        e.equipment_type.as_ref().map(|t| t.trim().to_lowercase()),
                    )
                })
                .collect(),
        }
    }
}
