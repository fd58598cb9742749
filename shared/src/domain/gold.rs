//! Silver → gold (SPEC §5): the four facts of a business date, computed from every silver row
//! of that date that is not too late and meets the minimum quality score. Pure; the output is
//! sorted by its grain so a recomputation is byte-for-byte the same whatever the input order.

use std::collections::{BTreeMap, HashSet};

use super::money::Money;
use super::records::*;

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
        GoldPolicy { min_quality_score: DEFAULT_MIN_QUALITY_SCORE }
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
#[error("daily revenue of store {store_id} product {product_id} on day {business_date} exceeds decimal(14,2)")]
pub struct RevenueOverflow {
    pub business_date: i32,
    pub store_id: i32,
    pub product_id: i32,
}

/// `gold.fact_sales`: the eligible line items.
pub fn fact_sales(rows: &[SilverSale], policy: &GoldPolicy) -> Vec<FactSale> {
    let mut out: Vec<FactSale> = rows
        .iter()
        .filter(|r| policy.is_eligible(r.quality_score, r.too_late))
        .map(|r| FactSale {
            sale_id: r.event_id.clone(),
            transaction_id: r.transaction_id.clone(),
            business_date: r.business_date,
            event_time: r.event_time,
            store_id: r.store_id,
            store_key: None,
            product_id: r.product_id,
            product_key: None,
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
pub fn fact_sales_daily(rows: &[SilverSale], policy: &GoldPolicy) -> Result<Vec<FactSalesDaily>, RevenueOverflow> {
    #[derive(Default)]
    struct Acc<'a> {
        quantity: i64,
        revenue: i128,
        line_items: i64,
        transactions: HashSet<&'a str>,
    }
    let mut groups: BTreeMap<(i32, i32, i32), Acc> = BTreeMap::new();
    for r in rows.iter().filter(|r| policy.is_eligible(r.quality_score, r.too_late)) {
        let acc = groups.entry((r.business_date, r.store_id, r.product_id)).or_default();
        acc.quantity += i64::from(r.quantity);
        acc.revenue += i128::from(r.revenue.0);
        acc.line_items += 1;
        acc.transactions.insert(r.transaction_id.as_deref().unwrap_or(&r.event_id));
    }
    groups
        .into_iter()
        .map(|((business_date, store_id, product_id), acc)| {
            let revenue = i64::try_from(acc.revenue)
                .ok()
                .map(Money)
                .filter(|m| m.fits_precision(14))
                .ok_or(RevenueOverflow { business_date, store_id, product_id })?;
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
    for r in rows.iter().filter(|r| policy.is_eligible(r.quality_score, r.too_late)) {
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
        .map(|((business_date, store_id, product_id), (r, updates))| FactInventory {
            business_date,
            store_id,
            product_id,
            beginning_stock: r.beginning_stock,
            restocked_quantity: r.restocked_quantity,
            sold_quantity: r.sold_quantity,
            waste_quantity: r.waste_quantity,
            closing_stock: r.closing_stock,
            waste_ratio: r.waste_ratio,
            days_of_supply: (r.sold_quantity != 0).then(|| r.closing_stock as f64 / f64::from(r.sold_quantity)),
            stock_out: r.closing_stock == 0,
            updates,
        })
        .collect()
}

/// `gold.fact_equipment_performance`: per business_date × equipment.
/// Sums run in metric_id order so floating-point results do not depend on input order.
pub fn fact_equipment_performance(rows: &[SilverReading], policy: &GoldPolicy) -> Vec<FactEquipmentPerformance> {
    let mut groups: BTreeMap<(i32, i32), Vec<&SilverReading>> = BTreeMap::new();
    for r in rows.iter().filter(|r| policy.is_eligible(r.quality_score, r.too_late)) {
        groups.entry((r.business_date, r.equipment_id)).or_default().push(r);
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
            let energy_kwh = readings.iter().map(|r| r.power_kw * f64::from(r.interval_seconds) / 3600.0).sum();
            let avg_power_kw = readings.iter().map(|r| r.power_kw).sum::<f64>() / readings.len() as f64;
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
