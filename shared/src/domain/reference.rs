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
    /// equipment_id → equipment_type (lower-case, spaces and dashes as `_`), if named.
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
                        e.equipment_type
                            .as_ref()
                            .map(|t| t.trim().to_lowercase().replace([' ', '-'], "_")),
                    )
                })
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equipment_types_are_normalised() {
        let row = |id, kind: &str| BronzeEquipment {
            equipment_id: id,
            store_id: None,
            equipment_type: Some(kind.to_string()),
            name: None,
            payload: String::new(),
            source: String::new(),
            source_ref: String::new(),
            ingestion_time: 0,
        };
        let index = ReferenceIndex::new(
            &[],
            &[],
            &[
                row(1, " Display Case "),
                row(2, "REFRIGERATOR"),
                row(3, "display-case"),
            ],
        );
        assert_eq!(index.equipment[&1].as_deref(), Some("display_case"));
        assert_eq!(index.equipment[&2].as_deref(), Some("refrigerator"));
        assert_eq!(index.equipment[&3].as_deref(), Some("display_case"));
    }
}
