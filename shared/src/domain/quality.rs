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
    pub(crate) fn from_rules(rules: &[(&'static str, i32, bool)]) -> Self {
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
        (
            "store_unknown",
            20,
            reference.stores.contains(&sale.store_id),
        ),
        (
            "product_unknown",
            20,
            reference.products.contains(&sale.product_id),
        ),
        (
            "quantity_out_of_range",
            25,
            (1..=100).contains(&sale.quantity),
        ),
        (
            "unit_price_out_of_range",
            25,
            (Money(1)..=Money(100_000)).contains(&sale.unit_price),
        ),
        (
            "event_time_in_future",
            10,
            not_from_future(sale.event_time, sale.ingestion_time),
        ),
        (
            "remote_sale_without_customer",
            10,
            sale.customer_id.is_some() || sale.channel.as_deref().is_none_or(|c| c == "in_store"),
        ),
    ])
}

/// Scores a stock count.
pub fn assess_inventory(update: &BronzeInventory, reference: &ReferenceIndex) -> Assessment {
    let in_range = |count: i32| (0..=10_000).contains(&count);
    Assessment::from_rules(&[
        (
            "store_unknown",
            15,
            reference.stores.contains(&update.store_id),
        ),
        (
            "product_unknown",
            15,
            reference.products.contains(&update.product_id),
        ),
        (
            "beginning_stock_out_of_range",
            15,
            in_range(update.beginning_stock),
        ),
        (
            "restocked_quantity_out_of_range",
            15,
            in_range(update.restocked_quantity),
        ),
        (
            "sold_quantity_out_of_range",
            15,
            in_range(update.sold_quantity),
        ),
        (
            "waste_quantity_out_of_range",
            15,
            in_range(update.waste_quantity),
        ),
        ("negative_closing_stock", 10, closing_stock(update) >= 0),
    ])
}

/// Scores a sensor reading. The temperature rule needs the equipment's type: an unknown
/// piece of equipment, or a type SPEC names no range for, fails only `equipment_unknown`.
pub fn assess_reading(reading: &BronzeReading, reference: &ReferenceIndex) -> Assessment {
    let equipment_type = reference.equipment.get(&reading.equipment_id);
    let temperature_ok = match (
        reading.temperature_c,
        equipment_type.and_then(|t| t.as_deref()),
    ) {
        (Some(t), Some(kind)) => {
            temperature_range(kind).is_none_or(|(lo, hi)| (lo..=hi).contains(&t))
        }
        _ => true,
    };
    Assessment::from_rules(&[
        ("equipment_unknown", 25, equipment_type.is_some()),
        (
            "power_out_of_range",
            25,
            (0.0..=100.0).contains(&reading.power_kw),
        ),
        ("temperature_out_of_range", 25, temperature_ok),
        (
            "event_time_in_future",
            25,
            not_from_future(reading.event_time, reading.ingestion_time),
        ),
    ])
}

/// `beginning + restocked − sold − waste`, without overflow.
pub fn closing_stock(update: &BronzeInventory) -> i64 {
    i64::from(update.beginning_stock) + i64::from(update.restocked_quantity)
        - i64::from(update.sold_quantity)
        - i64::from(update.waste_quantity)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::records::{BronzeInventory, BronzeReading, BronzeSale};

    fn reference() -> ReferenceIndex {
        ReferenceIndex {
            stores: [1].into(),
            products: [2].into(),
            equipment: [
                (5, Some("refrigerator".to_string())),
                (6, None),
                (7, Some("toaster".to_string())),
            ]
            .into(),
        }
    }

    fn sale() -> BronzeSale {
        BronzeSale {
            event_id: "e".into(),
            transaction_id: None,
            event_time: 0,
            store_id: 1,
            product_id: 2,
            customer_id: None,
            quantity: 1,
            unit_price: Money(1),
            promotion_id: None,
            payload: String::new(),
            source: String::new(),
            source_ref: String::new(),
            ingestion_time: 0,
            channel: None,
        }
    }

    #[test]
    fn sales_rules_and_boundaries() {
        let r = reference();
        assert_eq!(
            assess_sale(&sale(), &r),
            Assessment {
                score: 100,
                failed: vec![]
            }
        );
        type Change = Box<dyn Fn(&mut BronzeSale)>;
        let cases: Vec<(Change, i32, &str)> = vec![
            (Box::new(|s| s.store_id = 9), 80, "store_unknown"),
            (Box::new(|s| s.product_id = 9), 80, "product_unknown"),
            (Box::new(|s| s.quantity = 0), 75, "quantity_out_of_range"),
            (Box::new(|s| s.quantity = 101), 75, "quantity_out_of_range"),
            (
                Box::new(|s| s.unit_price = Money(0)),
                75,
                "unit_price_out_of_range",
            ),
            (
                Box::new(|s| s.unit_price = Money(100_001)),
                75,
                "unit_price_out_of_range",
            ),
            (
                Box::new(|s| s.event_time = MAX_FUTURE_SKEW_MICROS + 1),
                90,
                "event_time_in_future",
            ),
        ];
        for (change, score, rule) in cases {
            let mut s = sale();
            change(&mut s);
            assert_eq!(
                assess_sale(&s, &r),
                Assessment {
                    score,
                    failed: vec![rule]
                }
            );
        }
        let mut edge = sale();
        edge.quantity = 100;
        edge.unit_price = Money(100_000);
        edge.event_time = MAX_FUTURE_SKEW_MICROS;
        assert_eq!(assess_sale(&edge, &r).score, 100);
        let mut worst = sale();
        (
            worst.store_id,
            worst.product_id,
            worst.quantity,
            worst.unit_price,
            worst.event_time,
        ) = (9, 9, 0, Money(0), i64::MAX);
        let a = assess_sale(&worst, &r);
        assert_eq!(
            (a.score, a.failed_rules().as_str()),
            (
                0,
                "store_unknown,product_unknown,quantity_out_of_range,unit_price_out_of_range,event_time_in_future"
            )
        );
    }

    fn inventory() -> BronzeInventory {
        BronzeInventory {
            update_id: "u".into(),
            event_time: 0,
            store_id: 1,
            product_id: 2,
            beginning_stock: 10,
            restocked_quantity: 0,
            sold_quantity: 10,
            waste_quantity: 0,
            reported_by: None,
            payload: String::new(),
            source: String::new(),
            source_ref: String::new(),
            ingestion_time: 0,
        }
    }

    #[test]
    fn inventory_rules_and_boundaries() {
        let r = reference();
        assert_eq!(assess_inventory(&inventory(), &r).score, 100);
        let mut i = inventory();
        (i.store_id, i.product_id) = (9, 9);
        assert_eq!(assess_inventory(&i, &r).score, 70);
        let mut i = inventory();
        i.beginning_stock = 10_001;
        assert_eq!(
            assess_inventory(&i, &r).failed,
            vec!["beginning_stock_out_of_range"]
        );
        let mut i = inventory();
        (i.restocked_quantity, i.sold_quantity, i.waste_quantity) = (-1, 10_001, -1);
        let a = assess_inventory(&i, &r);
        assert_eq!(a.score, 100 - 45 - 10);
        assert_eq!(
            a.failed,
            vec![
                "restocked_quantity_out_of_range",
                "sold_quantity_out_of_range",
                "waste_quantity_out_of_range",
                "negative_closing_stock"
            ]
        );
        let mut i = inventory();
        i.sold_quantity = 11;
        assert_eq!(
            assess_inventory(&i, &r).failed,
            vec!["negative_closing_stock"]
        );
        assert_eq!(closing_stock(&i), -1);
    }

    fn reading(equipment_id: i32, temperature_c: Option<f64>) -> BronzeReading {
        BronzeReading {
            metric_id: "m".into(),
            equipment_id,
            event_time: 0,
            operational_status: "running".into(),
            power_kw: 100.0,
            temperature_c,
            interval_seconds: 30,
            readings: None,
            payload: String::new(),
            source: String::new(),
            source_ref: String::new(),
            ingestion_time: 0,
        }
    }

    #[test]
    fn equipment_rules_use_the_type_range() {
        let r = reference();
        assert_eq!(assess_reading(&reading(5, Some(15.0)), &r).score, 100);
        assert_eq!(assess_reading(&reading(5, Some(-30.0)), &r).score, 100);
        assert_eq!(
            assess_reading(&reading(5, Some(15.1)), &r).failed,
            vec!["temperature_out_of_range"]
        );
        assert_eq!(assess_reading(&reading(5, None), &r).score, 100);
        // Unknown equipment: no type, no range to check.
        assert_eq!(
            assess_reading(&reading(9, Some(999.0)), &r).failed,
            vec!["equipment_unknown"]
        );
        // Known equipment without a type, or a type SPEC names no range for.
        assert_eq!(assess_reading(&reading(6, Some(999.0)), &r).score, 100);
        assert_eq!(assess_reading(&reading(7, Some(999.0)), &r).score, 100);
        let mut hot = reading(5, None);
        (hot.power_kw, hot.event_time) = (100.01, MAX_FUTURE_SKEW_MICROS + 1);
        assert_eq!(assess_reading(&hot, &r).score, 50);
        for (kind, lo, hi) in [
            ("oven", 0.0, 300.0),
            ("proofer", 0.0, 60.0),
            ("mixer", 0.0, 100.0),
            ("display_case", -10.0, 25.0),
        ] {
            assert_eq!(temperature_range(kind), Some((lo, hi)));
        }
    }
}
