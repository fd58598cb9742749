//! `gold.features_demand_daily` (SPEC §5): per business date × store × product, what a
//! demand-forecasting model trains on — the day's quantity and revenue, lagged and rolling
//! quantities, the day of week, the share sold on promotion, the day's waste ratio and stock-out
//! (from `fact_inventory`) and the store's weather (from `dim_weather`). Pure; the hop reads the
//! gold inputs of the dates it needs and writes the dates a change reaches.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use chrono::Datelike;

use super::money::Money;
use super::records::{DimWeather, FactInventory, FactSalesDaily, FeatureDemandDaily};
use super::time::date_from_days;

/// The longest look-back of a feature (the 28-day rolling mean): a change on one date changes
/// the features of that date and of the `LOOK_BACK_DAYS - 1` dates after it.
pub const LOOK_BACK_DAYS: i32 = 28;

/// A store × product.
type Pair = (i32, i32);

/// The inputs of the features of some dates.
#[derive(Default)]
pub struct DemandInputs<'a> {
    /// `fact_sales_daily` rows from `LOOK_BACK_DAYS - 1` days before the first date on.
    pub sales: &'a [FactSalesDaily],
    pub inventory: &'a [FactInventory],
    pub weather: &'a [DimWeather],
}

/// The features of `dates`: a row for each store × product with sales or a stock count that
/// day, sorted by date, store, product. A day without sales counts as a quantity of 0 in the
/// lags and rolling means; the rolling means divide by their full window (7 or 28 days).
pub fn features_demand_daily(
    dates: &BTreeSet<i32>,
    inputs: &DemandInputs,
) -> Vec<FeatureDemandDaily> {
    let mut quantity: HashMap<(i32, Pair), i64> = HashMap::new();
    let mut revenue: HashMap<(i32, Pair), (Money, i64)> = HashMap::new();
    let mut keys: BTreeMap<i32, BTreeSet<Pair>> = BTreeMap::new();
    // A store × product's day: the sum of its channels' rows.
    for s in inputs.sales {
        let pair = (s.store_id, s.product_id);
        *quantity.entry((s.business_date, pair)).or_default() += s.quantity;
        let (day_revenue, promoted) = revenue.entry((s.business_date, pair)).or_default();
        *day_revenue = Money(day_revenue.0 + s.revenue.0);
        *promoted += s.promoted_quantity;
        if dates.contains(&s.business_date) {
            keys.entry(s.business_date).or_default().insert(pair);
        }
    }
    let inventory: HashMap<(i32, Pair), &FactInventory> = inputs
        .inventory
        .iter()
        .map(|i| ((i.business_date, (i.store_id, i.product_id)), i))
        .collect();
    for (date, pair) in inventory.keys() {
        if dates.contains(date) {
            keys.entry(*date).or_default().insert(*pair);
        }
    }
    let weather: HashMap<(i32, i32), &DimWeather> = inputs
        .weather
        .iter()
        .map(|w| ((w.business_date, w.store_id), w))
        .collect();
    let sold = |date: i32, pair: Pair| quantity.get(&(date, pair)).copied().unwrap_or(0);
    let mean = |date: i32, pair: Pair, days: i32| {
        (0..days).map(|back| sold(date - back, pair)).sum::<i64>() as f64 / f64::from(days)
    };
    let mut rows = Vec::new();
    for (&date, pairs) in &keys {
        for &pair in pairs {
            let (store_id, product_id) = pair;
            let day_quantity = sold(date, pair);
            let (day_revenue, promoted) = revenue.get(&(date, pair)).copied().unwrap_or_default();
            let stock = inventory.get(&(date, pair));
            let day_weather = weather.get(&(date, store_id));
            rows.push(FeatureDemandDaily {
                business_date: date,
                store_id,
                product_id,
                quantity: day_quantity,
                revenue: day_revenue,
                quantity_lag_1: sold(date - 1, pair),
                quantity_lag_7: sold(date - 7, pair),
                rolling_mean_7: mean(date, pair, 7),
                rolling_mean_28: mean(date, pair, LOOK_BACK_DAYS),
                day_of_week: date_from_days(date).weekday().number_from_monday() as i32,
                promotion_share: if day_quantity > 0 {
                    promoted as f64 / day_quantity as f64
                } else {
                    0.0
                },
                waste_ratio: stock.map(|s| s.waste_ratio),
                stock_out: stock.map(|s| s.stock_out),
                temperature_max_c: day_weather.and_then(|w| w.temperature_max_c),
                precipitation_mm: day_weather.and_then(|w| w.precipitation_mm),
            });
        }
    }
    rows
}

/// The dates whose features change when the inputs of `changed` dates change.
pub fn dates_reached(changed: &BTreeSet<i32>) -> BTreeSet<i32> {
    changed
        .iter()
        .flat_map(|&d| d..d + LOOK_BACK_DAYS)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sale(date: i32, quantity: i64) -> FactSalesDaily {
        FactSalesDaily {
            business_date: date,
            store_id: 1,
            product_id: 2,
            quantity,
            revenue: Money(quantity * 150),
            line_items: 1,
            transactions: 1,
            promoted_quantity: 0,
            channel: None,
        }
    }

    #[test]
    fn lags_and_rolling_means_count_missing_days_as_zero() {
        // Days 100..=127 sell 1 each, except 120 (nothing) and 127 (10).
        let mut sales: Vec<FactSalesDaily> = (100..=127)
            .filter(|d| *d != 120)
            .map(|d| sale(d, if d == 127 { 10 } else { 1 }))
            .collect();
        if let Some(last) = sales.last_mut() {
            last.promoted_quantity = 4;
        }
        let inventory = [FactInventory {
            business_date: 127,
            store_id: 1,
            product_id: 2,
            beginning_stock: 20,
            restocked_quantity: 0,
            sold_quantity: 10,
            waste_quantity: 2,
            closing_stock: 8,
            waste_ratio: 0.1,
            days_of_supply: Some(0.8),
            stock_out: false,
            updates: 1,
        }];
        let weather = [DimWeather {
            business_date: 127,
            store_id: 1,
            temperature_max_c: Some(21.5),
            temperature_min_c: Some(12.0),
            precipitation_mm: Some(0.4),
            weather_code: Some(2),
            is_forecast: false,
        }];
        let inputs = DemandInputs {
            sales: &sales,
            inventory: &inventory,
            weather: &weather,
        };
        let rows = features_demand_daily(&BTreeSet::from([121, 127]), &inputs);
        assert_eq!(rows.len(), 2);
        let last = &rows[1];
        assert_eq!((last.quantity, last.revenue), (10, Money(1500)));
        assert_eq!((last.quantity_lag_1, last.quantity_lag_7), (1, 0)); // day 120 sold nothing
        assert!((last.rolling_mean_7 - 16.0 / 7.0).abs() < 1e-12);
        assert!((last.rolling_mean_28 - 36.0 / 28.0).abs() < 1e-12);
        assert_eq!(last.day_of_week, 5); // 1970-01-01 (a Thursday) + 127 days is a Friday
        assert!((last.promotion_share - 0.4).abs() < 1e-12);
        assert_eq!((last.waste_ratio, last.stock_out), (Some(0.1), Some(false)));
        assert_eq!(
            (last.temperature_max_c, last.precipitation_mm),
            (Some(21.5), Some(0.4))
        );
        let first = &rows[0];
        assert_eq!((first.business_date, first.quantity_lag_1), (121, 0));
        assert_eq!((first.waste_ratio, first.temperature_max_c), (None, None));
    }

    #[test]
    fn a_change_reaches_the_next_27_days() {
        let reached = dates_reached(&BTreeSet::from([10]));
        assert_eq!(reached.first(), Some(&10));
        assert_eq!(reached.last(), Some(&37));
        assert_eq!(reached.len(), 28);
    }
}
