//! Silver → gold (SPEC §5): the four facts of a business date, computed from every silver row
//! of that date that is not too late and meets the minimum quality score. Pure; the output is
//! sorted by its grain so a recomputation is byte-for-byte the same whatever the input order.

use std::collections::{BTreeMap, HashSet};

use super::money::Money;
use super::records::*;
use super::scd2::SurrogateKeys;

/// Default minimum quality score for gold (SPEC §4).
pub const DEFAULT_MIN_QUALITY_SCORE: i32 = 50;

/// Settings of the gold aggregation.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct GoldPolicy {
    /// Rows scoring below this stay in silver but are left out of gold.
    pub min_quality_score: i32,
}

impl Default for GoldPolicy {
    fn default() -> Self {
        GoldPolicy {
            min_quality_score: DEFAULT_MIN_QUALITY_SCORE,
        }
    }
}

impl GoldPolicy {
    /// Whether a silver row is used in gold.
    pub fn is_eligible(&self, quality_score: i32, too_late: bool) -> bool {
        !too_late && quality_score >= self.min_quality_score
    }
}

/// A daily revenue that does not fit `decimal(14,2)`.
#[derive(Debug, thiserror::Error, PartialEq)]
#[error(
    "daily revenue of store {store_id} product {product_id} on day {business_date} exceeds decimal(14,2)"
)]
pub struct RevenueOverflow {
    pub business_date: i32,
    pub store_id: i32,
    pub product_id: i32,
}

/// `gold.fact_sales`: the eligible line items, with the keys of the store and product
/// versions valid at each event's time.
pub fn fact_sales(rows: &[SilverSale], policy: &GoldPolicy, keys: &SurrogateKeys) -> Vec<FactSale> {
    let mut out: Vec<FactSale> = rows
        .iter()
        .filter(|r| policy.is_eligible(r.quality_score, r.too_late))
        .map(|r| FactSale {
            sale_id: r.event_id.clone(),
            transaction_id: r.transaction_id.clone(),
            business_date: r.business_date,
            event_time: r.event_time,
            store_id: r.store_id,
            store_key: keys.stores.key_at(&r.store_id, r.event_time),
            product_id: r.product_id,
            product_key: keys.products.key_at(&r.product_id, r.event_time),
            customer_id: r.customer_id.clone(),
            quantity: r.quantity,
            unit_price: r.unit_price,
            revenue: r.revenue,
            time_of_day: r.time_of_day.clone(),
            quality_score: r.quality_score,
        })
        .collect();
    out.sort_by(|a, b| (a.business_date, &a.sale_id).cmp(&(b.business_date, &b.sale_id)));
    out
}

/// `gold.fact_sales_daily`: sums per business_date × store × product.
///
/// # Errors
/// [`RevenueOverflow`] when a sum does not fit `decimal(14,2)`.
pub fn fact_sales_daily(
    rows: &[SilverSale],
    policy: &GoldPolicy,
) -> Result<Vec<FactSalesDaily>, RevenueOverflow> {
    #[derive(Default)]
    struct Acc<'a> {
        quantity: i64,
        revenue: i128,
        line_items: i64,
        transactions: HashSet<&'a str>,
    }
    let mut groups: BTreeMap<(i32, i32, i32), Acc> = BTreeMap::new();
    for r in rows
        .iter()
        .filter(|r| policy.is_eligible(r.quality_score, r.too_late))
    {
        let acc = groups
            .entry((r.business_date, r.store_id, r.product_id))
            .or_default();
        acc.quantity += i64::from(r.quantity);
        acc.revenue += i128::from(r.revenue.0);
        acc.line_items += 1;
        acc.transactions
            .insert(r.transaction_id.as_deref().unwrap_or(&r.event_id));
    }
    groups
        .into_iter()
        .map(|((business_date, store_id, product_id), acc)| {
            let revenue = i64::try_from(acc.revenue)
                .ok()
                .map(Money)
                .filter(|m| m.fits_precision(14))
                .ok_or(RevenueOverflow {
                    business_date,
                    store_id,
                    product_id,
                })?;
            Ok(FactSalesDaily {
                business_date,
                store_id,
                product_id,
                quantity: acc.quantity,
                revenue,
                line_items: acc.line_items,
                transactions: acc.transactions.len() as i64,
            })
        })
        .collect()
}

/// `gold.fact_inventory`: per business_date × store × product, the latest eligible update by
/// event_time (ties: the greatest update_id), and how many eligible updates the day had.
pub fn fact_inventory(rows: &[SilverInventory], policy: &GoldPolicy) -> Vec<FactInventory> {
    let mut groups: BTreeMap<(i32, i32, i32), (&SilverInventory, i64)> = BTreeMap::new();
    for r in rows
        .iter()
        .filter(|r| policy.is_eligible(r.quality_score, r.too_late))
    {
        groups
            .entry((r.business_date, r.store_id, r.product_id))
            .and_modify(|(latest, count)| {
                *count += 1;
                if (r.event_time, &r.update_id) > (latest.event_time, &latest.update_id) {
                    *latest = r;
                }
            })
            .or_insert((r, 1));
    }
    groups
        .into_iter()
        .map(
            |((business_date, store_id, product_id), (r, updates))| FactInventory {
                business_date,
                store_id,
                product_id,
                beginning_stock: r.beginning_stock,
                restocked_quantity: r.restocked_quantity,
                sold_quantity: r.sold_quantity,
                waste_quantity: r.waste_quantity,
                closing_stock: r.closing_stock,
                waste_ratio: r.waste_ratio,
                days_of_supply: (r.sold_quantity != 0)
                    .then(|| r.closing_stock as f64 / f64::from(r.sold_quantity)),
                stock_out: r.closing_stock == 0,
                updates,
            },
        )
        .collect()
}

/// `gold.fact_equipment_performance`: per business_date × equipment.
/// Sums run in metric_id order so floating-point results do not depend on input order.
pub fn fact_equipment_performance(
    rows: &[SilverReading],
    policy: &GoldPolicy,
) -> Vec<FactEquipmentPerformance> {
    let mut groups: BTreeMap<(i32, i32), Vec<&SilverReading>> = BTreeMap::new();
    for r in rows
        .iter()
        .filter(|r| policy.is_eligible(r.quality_score, r.too_late))
    {
        groups
            .entry((r.business_date, r.equipment_id))
            .or_default()
            .push(r);
    }
    groups
        .into_iter()
        .map(|((business_date, equipment_id), mut readings)| {
            readings.sort_by(|a, b| a.metric_id.cmp(&b.metric_id));
            let seconds_with = |statuses: &[&str]| -> f64 {
                readings
                    .iter()
                    .filter(|r| statuses.contains(&r.operational_status.as_str()))
                    .map(|r| f64::from(r.interval_seconds))
                    .sum()
            };
            let operational_hours = seconds_with(&["running"]) / 3600.0;
            let downtime_minutes = seconds_with(&["maintenance", "error"]) / 60.0;
            let energy_kwh = readings
                .iter()
                .map(|r| r.power_kw * f64::from(r.interval_seconds) / 3600.0)
                .sum();
            let avg_power_kw =
                readings.iter().map(|r| r.power_kw).sum::<f64>() / readings.len() as f64;
            let temperatures: Vec<f64> = readings.iter().filter_map(|r| r.temperature_c).collect();
            let downtime_hours = downtime_minutes / 60.0;
            let total_hours = operational_hours + downtime_hours;
            FactEquipmentPerformance {
                business_date,
                equipment_id,
                readings: readings.len() as i64,
                operational_hours,
                downtime_minutes,
                energy_kwh,
                avg_power_kw,
                avg_temperature_c: (!temperatures.is_empty())
                    .then(|| temperatures.iter().sum::<f64>() / temperatures.len() as f64),
                max_temperature_c: temperatures.iter().copied().reduce(f64::max),
                efficiency_score: (total_hours > 0.0)
                    .then(|| (1000.0 * operational_hours / total_hours).round() / 10.0),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sale(
        id: &str,
        day: i32,
        store: i32,
        txn: Option<&str>,
        quantity: i32,
        cents: i64,
        score: i32,
        too_late: bool,
    ) -> SilverSale {
        SilverSale {
            event_id: id.into(),
            transaction_id: txn.map(str::to_string),
            event_time: 0,
            business_date: day,
            store_id: store,
            product_id: 1,
            customer_id: None,
            quantity,
            unit_price: Money(cents),
            revenue: Money(cents * i64::from(quantity)),
            promotion_id: None,
            time_of_day: "morning".into(),
            ingestion_time: 0,
            lateness_seconds: 0.0,
            too_late,
            quality_score: score,
            failed_rules: String::new(),
            source_ref: String::new(),
        }
    }

    #[test]
    fn daily_sales_sum_eligible_rows_and_count_distinct_transactions() {
        let policy = GoldPolicy::default();
        let rows = vec![
            sale("a", 1, 1, Some("t1"), 2, 150, 100, false),
            sale("b", 1, 1, Some("t1"), 1, 200, 50, false),
            sale("c", 1, 1, None, 1, 100, 100, false),
            sale("d", 1, 1, None, 5, 100, 49, false), // below the minimum score
            sale("e", 1, 1, Some("t9"), 5, 100, 100, true), // too late
            sale("f", 2, 1, Some("t1"), 1, 1, 100, false),
        ];
        let daily = fact_sales_daily(&rows, &policy).unwrap();
        assert_eq!(
            daily,
            vec![
                FactSalesDaily {
                    business_date: 1,
                    store_id: 1,
                    product_id: 1,
                    quantity: 4,
                    revenue: Money(600),
                    line_items: 3,
                    transactions: 2
                },
                FactSalesDaily {
                    business_date: 2,
                    store_id: 1,
                    product_id: 1,
                    quantity: 1,
                    revenue: Money(1),
                    line_items: 1,
                    transactions: 1
                },
            ]
        );
        let facts = fact_sales(&rows, &policy, &SurrogateKeys::default());
        assert_eq!(
            facts.iter().map(|f| f.sale_id.as_str()).collect::<Vec<_>>(),
            ["a", "b", "c", "f"]
        );
        assert!(
            facts
                .iter()
                .all(|f| f.store_key.is_none() && f.product_key.is_none())
        );
        let strict = GoldPolicy {
            min_quality_score: 100,
        };
        assert_eq!(
            fact_sales(&rows, &strict, &SurrogateKeys::default()).len(),
            3
        );
    }

    #[test]
    fn daily_revenue_overflow_is_an_error() {
        let rows: Vec<_> = (0..101)
            .map(|i| sale(&i.to_string(), 1, 1, None, 1, 999_999_999_999, 100, false))
            .collect();
        assert_eq!(
            fact_sales_daily(&rows, &GoldPolicy::default())
                .unwrap_err()
                .store_id,
            1
        );
    }

    fn update(id: &str, event_time: i64, closing: i64, sold: i32, score: i32) -> SilverInventory {
        SilverInventory {
            update_id: id.into(),
            event_time,
            business_date: 1,
            store_id: 1,
            product_id: 1,
            beginning_stock: 0,
            restocked_quantity: 0,
            sold_quantity: sold,
            waste_quantity: 0,
            closing_stock: closing,
            waste_ratio: 0.25,
            reported_by: None,
            ingestion_time: 0,
            lateness_seconds: 0.0,
            too_late: false,
            quality_score: score,
            failed_rules: String::new(),
            source_ref: String::new(),
        }
    }

    #[test]
    fn inventory_takes_the_latest_update_with_ties_to_the_greatest_id() {
        let policy = GoldPolicy::default();
        let rows = vec![
            update("a", 10, 5, 2, 100),
            update("c", 20, 8, 4, 100),
            update("b", 20, 9, 3, 100),
            update("z", 30, 1, 1, 10),
        ];
        let facts = fact_inventory(&rows, &policy);
        assert_eq!(facts.len(), 1);
        let f = &facts[0];
        assert_eq!(
            (f.closing_stock, f.updates, f.days_of_supply, f.stock_out),
            (8, 3, Some(2.0), false)
        );
        let zero = fact_inventory(&[update("a", 1, 0, 0, 100)], &policy);
        assert_eq!((zero[0].days_of_supply, zero[0].stock_out), (None, true));
    }

    fn reading(
        id: &str,
        status: &str,
        power: f64,
        temp: Option<f64>,
        interval: i32,
    ) -> SilverReading {
        SilverReading {
            metric_id: id.into(),
            equipment_id: 7,
            event_time: 0,
            business_date: 1,
            operational_status: status.into(),
            power_kw: power,
            temperature_c: temp,
            interval_seconds: interval,
            readings: None,
            ingestion_time: 0,
            lateness_seconds: 0.0,
            too_late: false,
            quality_score: 100,
            failed_rules: String::new(),
            source_ref: String::new(),
        }
    }

    #[test]
    fn equipment_performance_hours_downtime_energy_and_efficiency() {
        let rows = vec![
            reading("a", "running", 6.0, Some(200.0), 3600),
            reading("b", "maintenance", 0.0, None, 1800),
            reading("c", "error", 1.0, Some(100.0), 1800),
            reading("d", "idle", 2.0, None, 600),
        ];
        let f = &fact_equipment_performance(&rows, &GoldPolicy::default())[0];
        assert_eq!(
            (f.readings, f.operational_hours, f.downtime_minutes),
            (4, 1.0, 60.0)
        );
        assert!((f.energy_kwh - (6.0 + 0.5 + 2.0 / 6.0)).abs() < 1e-12);
        assert_eq!(
            (f.avg_power_kw, f.avg_temperature_c, f.max_temperature_c),
            (2.25, Some(150.0), Some(200.0))
        );
        assert_eq!(f.efficiency_score, Some(50.0));
        let two_thirds = fact_equipment_performance(
            &[
                reading("a", "running", 1.0, None, 7200),
                reading("b", "error", 1.0, None, 3600),
            ],
            &GoldPolicy::default(),
        );
        assert_eq!(two_thirds[0].efficiency_score, Some(66.7));
        let idle = fact_equipment_performance(
            &[reading("a", "idle", 1.0, None, 60)],
            &GoldPolicy::default(),
        );
        assert_eq!(
            (
                idle[0].efficiency_score,
                idle[0].avg_temperature_c,
                idle[0].max_temperature_c
            ),
            (None, None, None)
        );
    }
}
