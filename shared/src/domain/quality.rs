//! Business rules and the quality score of SPEC §4: 100 minus the penalties of the rules a
//! record fails. Rule names are what `failed_rules` lists.

use super::money::Money;
use super::records::{BronzeInventory, BronzeReading, BronzeSale};
use super::reference::ReferenceIndex;

/// How far after its ingestion an event may claim to have happened (SPEC §4: 5 minutes).
pub const MAX_FUTURE_SKEW_MICROS: i64 = 5 * 60 * 1_000_000;

/// The outcome of the rules for one record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Assessment {
    /// 0–100.
    pub score: i32,
    /// The failed rules, in rule order.
    pub failed: Vec<&'static str>,
}

impl Assessment {
    fn from_rules(rules: &[(&'static str, i32, bool)]) -> Self {
        let failed: Vec<_> = rules.iter().filter(|(_, _, pass)| !pass).collect();
        let penalty: i32 = failed.iter().map(|(_, p, _)| p).sum();
        Assessment {
            score: (100 - penalty).clamp(0, 100),
            failed: failed.iter().map(|(name, _, _)| *name).collect(),
        }
    }

    /// The `failed_rules` column: names joined by commas.
    pub fn failed_rules(&self) -> String {
        self.failed.join(",")
    }
}

/// Temperature range (°C, inclusive) of an equipment type, if the type is one SPEC §4 names.
pub fn temperature_range(equipment_type: &str) -> Option<(f64, f64)> {
    match equipment_type {
        "oven" => Some((0.0, 300.0)),
        "proofer" => Some((0.0, 60.0)),
        "mixer" => Some((0.0, 100.0)),
        "refrigerator" => Some((-30.0, 15.0)),
        "display_case" => Some((-10.0, 25.0)),
        _ => None,
    }
}

fn not_from_future(event_time: i64, ingestion_time: i64) -> bool {
    event_time <= ingestion_time.saturating_add(MAX_FUTURE_SKEW_MICROS)
}

/// Scores a sales line item.
pub fn assess_sale(sale: &BronzeSale, reference: &ReferenceIndex) -> Assessment {
    Assessment::from_rules(&[
        ("store_unknown", 20, reference.stores.contains(&sale.store_id)),
        ("product_unknown", 20, reference.products.contains(&sale.product_id)),
        ("quantity_out_of_range", 25, (1..=100).contains(&sale.quantity)),
        ("unit_price_out_of_range", 25, (Money(1)..=Money(100_000)).contains(&sale.unit_price)),
        ("event_time_in_future", 10, not_from_future(sale.event_time, sale.ingestion_time)),
    ])
}

/// Scores a stock count.
pub fn assess_inventory(update: &BronzeInventory, reference: &ReferenceIndex) -> Assessment {
    let in_range = |count: i32| (0..=10_000).contains(&count);
    Assessment::from_rules(&[
        ("store_unknown", 15, reference.stores.contains(&update.store_id)),
        ("product_unknown", 15, reference.products.contains(&update.product_id)),
        ("beginning_stock_out_of_range", 15, in_range(update.beginning_stock)),
        ("restocked_quantity_out_of_range", 15, in_range(update.restocked_quantity)),
        ("sold_quantity_out_of_range", 15, in_range(update.sold_quantity)),
        ("waste_quantity_out_of_range", 15, in_range(update.waste_quantity)),
        ("negative_closing_stock", 10, closing_stock(update) >= 0),
    ])
}

/// Scores a sensor reading. The temperature rule needs the equipment's type: an unknown
/// piece of equipment, or a type SPEC names no range for, fails only `equipment_unknown`.
pub fn assess_reading(reading: &BronzeReading, reference: &ReferenceIndex) -> Assessment {
    let equipment_type = reference.equipment.get(&reading.equipment_id);
    let temperature_ok = match (reading.temperature_c, equipment_type.and_then(|t| t.as_deref())) {
        (Some(t), Some(kind)) => temperature_range(kind).is_none_or(|(lo, hi)| (lo..=hi).contains(&t)),
        _ => true,
    };
    Assessment::from_rules(&[
        ("equipment_unknown", 25, equipment_type.is_some()),
        ("power_out_of_range", 25, (0.0..=100.0).contains(&reading.power_kw)),
        ("temperature_out_of_range", 25, temperature_ok),
        ("event_time_in_future", 25, not_from_future(reading.event_time, reading.ingestion_time)),
    ])
}

/// `beginning + restocked − sold − waste`, without overflow.
pub fn closing_stock(update: &BronzeInventory) -> i64 {
    i64::from(update.beginning_stock) + i64::from(update.restocked_quantity)
        - i64::from(update.sold_quantity)
        - i64::from(update.waste_quantity)
}
