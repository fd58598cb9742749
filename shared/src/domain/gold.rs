//! Silver → gold (SPEC §5): the four facts of a business date, computed from every silver row
//! of that date that is not too late and meets the minimum quality score. Pure; the output is
//! sorted by its grain, except `fact_sales` (a row per silver sale, in silver's order). The two
//! sales facts work on Arrow columns batch by batch, never holding silver; the others on rows.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow_array::{
    Array, ArrayRef, BooleanArray, Date32Array, Decimal128Array, Int32Array, Int64Array,
    RecordBatch, StringArray, TimestampMicrosecondArray,
};
use arrow_schema::{ArrowError, SchemaRef};
use arrow_select::filter::filter_record_batch;

use super::money::Money;
use super::records::*;
use super::scd2::{KeyIndex, SurrogateKeys};
use super::silver::IdSet;
use super::validate::CHANNELS;

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

/// The silver sales columns `fact_sales` reads (the others are not even decoded).
pub const FACT_SALES_SILVER_COLUMNS: [&str; 14] = [
    "event_id",
    "transaction_id",
    "business_date",
    "event_time",
    "store_id",
    "product_id",
    "customer_id",
    "quantity",
    "unit_price",
    "revenue",
    "time_of_day",
    "quality_score",
    "too_late",
    "channel",
];

/// The silver sales columns `fact_sales_daily` reads.
pub const DAILY_SALES_SILVER_COLUMNS: [&str; 10] = [
    "transaction_id",
    "promotion_id",
    "business_date",
    "store_id",
    "product_id",
    "quantity",
    "revenue",
    "quality_score",
    "too_late",
    "channel",
];

/// A column of a silver batch, as its Arrow type.
fn column<'b, T: Array + 'static>(batch: &'b RecordBatch, name: &str) -> Result<&'b T, ArrowError> {
    batch
        .column_by_name(name)
        .and_then(|c| c.as_any().downcast_ref::<T>())
        .ok_or_else(|| ArrowError::SchemaError(format!("silver column {name} missing or mistyped")))
}

/// Which rows of a silver batch gold uses: not too late and at least the minimum score.
fn eligible(batch: &RecordBatch, policy: &GoldPolicy) -> Result<BooleanArray, ArrowError> {
    let score = column::<Int32Array>(batch, "quality_score")?;
    let too_late = column::<BooleanArray>(batch, "too_late")?;
    Ok((0..batch.num_rows())
        .map(|i| {
            Some(policy.is_eligible(score.value(i), too_late.is_valid(i) && too_late.value(i)))
        })
        .collect())
}

/// `gold.fact_sales` of one silver batch (read with [`FACT_SALES_SILVER_COLUMNS`]): its
/// eligible line items with the keys of the store and product versions valid at each event's
/// time, in `fact` (the table's Arrow schema). A fact row depends on its silver row alone, so the fact is
/// made batch by batch in silver's order and never held whole: the same rows whatever order
/// the events came in, not always in the same order within a file.
///
/// # Errors
/// A silver column is missing or mistyped.
pub fn sales_facts(
    batch: &RecordBatch,
    fact: &SchemaRef,
    policy: &GoldPolicy,
    keys: &SurrogateKeys,
) -> Result<RecordBatch, ArrowError> {
    let rows = filter_record_batch(batch, &eligible(batch, policy)?)?;
    fact_rows(&rows, fact, keys)
}

/// Eligible silver rows as `fact_sales` rows: renamed, keyed and cast to the fact's schema.
fn fact_rows(
    rows: &RecordBatch,
    fact: &SchemaRef,
    keys: &SurrogateKeys,
) -> Result<RecordBatch, ArrowError> {
    let [store_key, product_key, customer_key] = sales_keys(rows, keys)?;
    let columns = fact
        .fields()
        .iter()
        .map(|field| {
            let array = match field.name().as_str() {
                "sale_id" => rows.column_by_name("event_id"),
                "store_key" => Some(&store_key),
                "product_key" => Some(&product_key),
                "customer_key" => Some(&customer_key),
                name => rows.column_by_name(name),
            }
            .cloned()
            .or_else(|| {
                // A column read from a silver table that lacks it (not yet evolved) is null.
                FACT_SALES_SILVER_COLUMNS
                    .contains(&field.name().as_str())
                    .then(|| arrow_array::new_null_array(field.data_type(), rows.num_rows()))
            })
            .ok_or_else(|| ArrowError::SchemaError(format!("no column for {}", field.name())))?;
            if array.data_type() == field.data_type() {
                Ok(array)
            } else {
                arrow_cast::cast(&array, field.data_type())
            }
        })
        .collect::<Result<Vec<_>, ArrowError>>()?;
    RecordBatch::try_new(fact.clone(), columns)
}

/// The key columns of `fact_sales`, in [`KEY_COLUMNS`]'s order, for rows with `store_id`,
/// `product_id`, `customer_id` and `event_time`: each the key of the dimension version valid
/// at the event's time.
fn sales_keys(rows: &RecordBatch, keys: &SurrogateKeys) -> Result<[ArrayRef; 3], ArrowError> {
    let store = column::<Int32Array>(rows, "store_id")?;
    let product = column::<Int32Array>(rows, "product_id")?;
    let customer = column::<StringArray>(rows, "customer_id")?;
    let at = column::<TimestampMicrosecondArray>(rows, "event_time")?;
    let key_of = |index: &KeyIndex<i32>, ids: &Int32Array| -> ArrayRef {
        Arc::new(
            (0..rows.num_rows())
                .map(|i| index.key_at(&ids.value(i), at.value(i)))
                .collect::<Int64Array>(),
        )
    };
    let customer_key: ArrayRef = Arc::new(
        (0..rows.num_rows())
            .map(|i| {
                let id = customer
                    .is_valid(i)
                    .then(|| customer.value(i).to_string())?;
                keys.customers.key_at(&id, at.value(i))
            })
            .collect::<Int64Array>(),
    );
    Ok([
        key_of(&keys.stores, store),
        key_of(&keys.products, product),
        customer_key,
    ])
}

/// `fact_sales`' surrogate key columns, and the natural id column each is looked up by.
pub const KEY_COLUMNS: [(&str, &str); 3] = [
    ("store_key", "store_id"),
    ("product_key", "product_id"),
    ("customer_key", "customer_id"),
];

/// `fact_sales` rows (in the table's schema) with their keys looked up again in `keys` — the
/// dimensions after a change — or `None` when every key stays as it is.
///
/// # Errors
/// A column is missing or mistyped.
pub fn rekeyed_sales(
    facts: &RecordBatch,
    keys: &SurrogateKeys,
) -> Result<Option<RecordBatch>, ArrowError> {
    let new_keys = sales_keys(facts, keys)?;
    let mut columns = facts.columns().to_vec();
    let mut changed = false;
    for ((key, _), new) in KEY_COLUMNS.iter().zip(new_keys) {
        let Ok(index) = facts.schema().index_of(key) else {
            continue; // a table not yet evolved to hold this key
        };
        if columns[index].as_ref() != new.as_ref() {
            columns[index] = new;
            changed = true;
        }
    }
    if !changed {
        return Ok(None);
    }
    RecordBatch::try_new(facts.schema(), columns).map(Some)
}

/// `gold.fact_sales_daily`, summed over silver batch by batch (read with
/// [`DAILY_SALES_SILVER_COLUMNS`]): per business_date × store × product × channel of the
/// eligible rows. Holds the groups, with their transaction ids packed, not the batches.
#[derive(Default)]
pub struct DailySales {
    /// Each group's index in `sums`.
    groups: hashbrown::HashMap<DailyKey, u32, foldhash::fast::RandomState>,
    sums: Vec<DailySum>,
}

#[derive(Default)]
struct DailySum {
    quantity: i64,
    /// Quantity of the line items with a promotion.
    promoted: i64,
    revenue: i128,
    line_items: i64,
    /// Line items without a transaction id: each is a transaction of its own (its event id,
    /// unique in silver, stands for it).
    alone: i64,
    /// The other line items' transaction ids, end to end: sorted and counted once at the end,
    /// cheaper than hashing a million ids as they come.
    ids: Vec<u8>,
    /// Where each id ends in `ids` (a group's ids fit 4 GiB: a function's memory is smaller).
    ends: Vec<u32>,
    /// Ids among `ids` that the group's gold row counts already (from earlier silver rows).
    counted: hashbrown::HashSet<Box<[u8]>, foldhash::fast::RandomState>,
}

impl DailySum {
    /// The number of distinct transactions not counted already.
    fn transactions(&self) -> i64 {
        let mut ids: Vec<&[u8]> = Vec::with_capacity(self.ends.len());
        let mut start = 0;
        for &end in &self.ends {
            ids.push(&self.ids[start..end as usize]);
            start = end as usize;
        }
        ids.sort_unstable();
        ids.dedup();
        let counted = ids.iter().filter(|id| self.counted.contains(**id)).count();
        (ids.len() - counted) as i64 + self.alone
    }

    fn ids(&self) -> impl Iterator<Item = &[u8]> {
        let starts = std::iter::once(0).chain(self.ends.iter().map(|e| *e as usize));
        starts
            .zip(&self.ends)
            .map(|(start, end)| &self.ids[start..*end as usize])
    }
}

/// A `fact_sales_daily` group: business date, store, product and channel (its index in
/// [`CHANNELS`], or none).
type DailyKey = (i32, i32, i32, Option<u8>);

/// A column of a silver batch, as its Arrow type; `None` when the batch lacks it (a silver
/// table not yet evolved).
fn optional_column<'b, T: Array + 'static>(
    batch: &'b RecordBatch,
    name: &str,
) -> Result<Option<&'b T>, ArrowError> {
    match batch.column_by_name(name) {
        None => Ok(None),
        Some(_) => column(batch, name).map(Some),
    }
}

/// The channel of row `i` as its index in [`CHANNELS`] (validation admits no other value);
/// none without a `channel` column (a silver table not yet evolved).
fn channel_at(channel: Option<&StringArray>, i: usize) -> Option<u8> {
    let channel = channel.filter(|c| c.is_valid(i))?;
    CHANNELS
        .iter()
        .position(|c| *c == channel.value(i))
        .map(|p| p as u8)
}

/// The key of a daily row.
fn daily_key(row: &FactSalesDaily) -> DailyKey {
    let channel = row
        .channel
        .as_deref()
        .and_then(|c| CHANNELS.iter().position(|known| *known == c))
        .map(|p| p as u8);
    (row.business_date, row.store_id, row.product_id, channel)
}

impl DailySales {
    /// Adds the eligible rows of one silver batch.
    ///
    /// # Errors
    /// A silver column is missing or mistyped.
    pub fn add(&mut self, batch: &RecordBatch, policy: &GoldPolicy) -> Result<(), ArrowError> {
        let eligible = eligible(batch, policy)?;
        let date = column::<Date32Array>(batch, "business_date")?;
        let store = column::<Int32Array>(batch, "store_id")?;
        let product = column::<Int32Array>(batch, "product_id")?;
        let quantity = column::<Int32Array>(batch, "quantity")?;
        let revenue = column::<Decimal128Array>(batch, "revenue")?;
        let transaction = column::<StringArray>(batch, "transaction_id")?;
        let promotion = column::<StringArray>(batch, "promotion_id")?;
        let channel = optional_column::<StringArray>(batch, "channel")?;
        for i in (0..batch.num_rows()).filter(|i| eligible.value(*i)) {
            let key = (
                date.value(i),
                store.value(i),
                product.value(i),
                channel_at(channel, i),
            );
            let next = u32::try_from(self.sums.len())
                .map_err(|_| ArrowError::ComputeError("more than 2^32 groups".to_string()))?;
            let group = *self.groups.entry(key).or_insert(next);
            if group == next {
                self.sums.push(DailySum::default());
            }
            let sum = &mut self.sums[group as usize];
            sum.quantity += i64::from(quantity.value(i));
            if promotion.is_valid(i) {
                sum.promoted += i64::from(quantity.value(i));
            }
            sum.revenue += revenue.value(i);
            sum.line_items += 1;
            if transaction.is_null(i) {
                sum.alone += 1;
                continue;
            }
            sum.ids.extend_from_slice(transaction.value(i).as_bytes());
            let end = u32::try_from(sum.ids.len())
                .map_err(|_| ArrowError::ComputeError("a group's ids exceed 4 GiB".to_string()))?;
            sum.ends.push(end);
        }
        Ok(())
    }

    /// The transaction ids of the summed rows, by business date: what an incremental update
    /// looks up among the rows summed before ([`DailySales::mark_counted`]).
    pub fn transactions_by_date(&self) -> BTreeMap<i32, IdSet> {
        let mut by_date: BTreeMap<i32, IdSet> = BTreeMap::new();
        for ((date, ..), group) in &self.groups {
            let ids = by_date.entry(*date).or_default();
            for id in self.sums[*group as usize].ids() {
                // Ids come from a UTF-8 column; anything else is skipped, never matched.
                if let Ok(id) = std::str::from_utf8(id) {
                    ids.insert(id);
                }
            }
        }
        by_date
    }

    /// Marks the transactions of `batch`'s eligible rows (silver rows summed into gold
    /// before) as counted already in their groups: an incremental update then counts a
    /// transaction only when it is new to its group.
    ///
    /// # Errors
    /// A silver column is missing or mistyped.
    pub fn mark_counted(
        &mut self,
        batch: &RecordBatch,
        policy: &GoldPolicy,
    ) -> Result<(), ArrowError> {
        let eligible = eligible(batch, policy)?;
        let date = column::<Date32Array>(batch, "business_date")?;
        let store = column::<Int32Array>(batch, "store_id")?;
        let product = column::<Int32Array>(batch, "product_id")?;
        let transaction = column::<StringArray>(batch, "transaction_id")?;
        let channel = optional_column::<StringArray>(batch, "channel")?;
        for i in (0..batch.num_rows()).filter(|i| eligible.value(*i) && transaction.is_valid(*i)) {
            let key = (
                date.value(i),
                store.value(i),
                product.value(i),
                channel_at(channel, i),
            );
            if let Some(group) = self.groups.get(&key) {
                self.sums[*group as usize]
                    .counted
                    .insert(transaction.value(i).as_bytes().into());
            }
        }
        Ok(())
    }

    /// The fact rows, sorted by their grain.
    ///
    /// # Errors
    /// A group's revenue does not fit `decimal(14,2)`.
    pub fn finish(self) -> Result<Vec<FactSalesDaily>, RevenueOverflow> {
        let mut groups: Vec<_> = self.groups.into_iter().collect();
        groups.sort_unstable_by_key(|(key, _)| *key);
        groups
            .into_iter()
            .map(|((business_date, store_id, product_id, channel), group)| {
                let sum = &self.sums[group as usize];
                let revenue = i64::try_from(sum.revenue)
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
                    quantity: sum.quantity,
                    revenue,
                    line_items: sum.line_items,
                    transactions: sum.transactions(),
                    promoted_quantity: sum.promoted,
                    channel: channel.map(|c| CHANNELS[usize::from(c)].to_string()),
                })
            })
            .collect()
    }
}

/// The daily rows of some dates with the sums of newer silver rows added: `delta` (from
/// [`DailySales::finish`] after [`DailySales::mark_counted`]) counts only transactions new to
/// their group, so each sum is exact. Sorted by the grain.
///
/// # Errors
/// A group's revenue no longer fits `decimal(14,2)`.
pub fn add_daily(
    existing: Vec<FactSalesDaily>,
    delta: Vec<FactSalesDaily>,
) -> Result<Vec<FactSalesDaily>, RevenueOverflow> {
    let mut rows: BTreeMap<DailyKey, FactSalesDaily> =
        existing.into_iter().map(|r| (daily_key(&r), r)).collect();
    for d in delta {
        let key = daily_key(&d);
        match rows.get_mut(&key) {
            None => {
                rows.insert(key, d);
            }
            Some(row) => {
                let revenue = row.revenue.0.checked_add(d.revenue.0).map(Money);
                row.revenue = revenue
                    .filter(|m| m.fits_precision(14))
                    .ok_or(RevenueOverflow {
                        business_date: d.business_date,
                        store_id: d.store_id,
                        product_id: d.product_id,
                    })?;
                row.quantity += d.quantity;
                row.line_items += d.line_items;
                row.transactions += d.transactions;
                row.promoted_quantity += d.promoted_quantity;
            }
        }
    }
    Ok(rows.into_values().collect())
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
            channel: None,
        }
    }

    /// The Arrow schema of a table (what the hop reads and writes with).
    fn schema_of(def: &crate::adapters::lakehouse::TableDef) -> SchemaRef {
        Arc::new(iceberg::arrow::schema_to_arrow_schema(&def.schema().unwrap()).unwrap())
    }

    /// Silver rows as the batch the hop reads.
    fn silver(rows: &[SilverSale]) -> Vec<RecordBatch> {
        let schema = schema_of(&crate::adapters::lakehouse::tables::SILVER_SALES);
        vec![crate::adapters::lakehouse::rows_to_batch("silver", &schema, rows).unwrap()]
    }

    /// The daily fact of silver read in batches of two rows (so a group spans batches).
    fn daily(
        rows: &[SilverSale],
        policy: &GoldPolicy,
    ) -> Result<Vec<FactSalesDaily>, RevenueOverflow> {
        let mut daily = DailySales::default();
        for batch in rows.chunks(2).flat_map(silver) {
            daily.add(&batch, policy).unwrap();
        }
        daily.finish()
    }

    /// The sale ids of the fact per date (sorted), from silver in batches of three rows.
    fn sale_ids(rows: &[SilverSale], policy: &GoldPolicy) -> BTreeMap<i32, Vec<String>> {
        let fact = schema_of(&crate::adapters::lakehouse::tables::FACT_SALES);
        let keys = SurrogateKeys::default();
        let mut out: BTreeMap<i32, Vec<String>> = BTreeMap::new();
        for batch in rows.chunks(3).flat_map(silver) {
            let batch = sales_facts(&batch, &fact, policy, &keys).unwrap();
            assert_eq!(batch.schema(), fact);
            let ids = column::<StringArray>(&batch, "sale_id").unwrap();
            let revenue = column::<Decimal128Array>(&batch, "revenue").unwrap();
            let dates = column::<Date32Array>(&batch, "business_date").unwrap();
            for (i, id) in ids.iter().enumerate() {
                let row = rows
                    .iter()
                    .find(|r| Some(r.event_id.as_str()) == id)
                    .unwrap();
                assert_eq!(dates.value(i), row.business_date, "{id:?}'s date");
                assert_eq!(
                    revenue.value(i),
                    i128::from(row.revenue.0),
                    "{id:?}'s own row"
                );
                out.entry(row.business_date)
                    .or_default()
                    .push(row.event_id.clone());
            }
            let keys = column::<Int64Array>(&batch, "store_key").unwrap();
            assert_eq!(keys.null_count(), batch.num_rows(), "no dimension: no key");
        }
        out.values_mut().for_each(|ids| ids.sort());
        out
    }

    #[test]
    fn daily_sales_sum_eligible_rows_and_count_distinct_transactions() {
        let policy = GoldPolicy::default();
        let promoted = |mut s: SilverSale| {
            s.promotion_id = Some("p1".into());
            s
        };
        let rows = vec![
            promoted(sale("a", 1, 1, Some("t1"), 2, 150, 100, false)),
            sale("b", 1, 1, Some("t1"), 1, 200, 50, false),
            sale("c", 1, 1, None, 1, 100, 100, false),
            sale("d", 1, 1, None, 5, 100, 49, false), // below the minimum score
            sale("e", 1, 1, Some("t9"), 5, 100, 100, true), // too late
            sale("f", 2, 1, Some("t1"), 1, 1, 100, false),
            sale("g", 2, 1, None, 1, 1, 100, false), // a transaction of its own
        ];
        assert_eq!(
            daily(&rows, &policy).unwrap(),
            vec![
                FactSalesDaily {
                    business_date: 1,
                    store_id: 1,
                    product_id: 1,
                    quantity: 4,
                    revenue: Money(600),
                    line_items: 3,
                    transactions: 2,
                    promoted_quantity: 2,
                    channel: None,
                },
                FactSalesDaily {
                    business_date: 2,
                    store_id: 1,
                    product_id: 1,
                    quantity: 2,
                    revenue: Money(2),
                    line_items: 2,
                    transactions: 2,
                    promoted_quantity: 0,
                    channel: None,
                },
            ]
        );
        // The eligible sales of each date, whatever the input order; a batch of two dates (f,
        // a and b once f comes first) is split.
        let mut shuffled = rows.clone();
        shuffled.rotate_right(1);
        let by_day = |ids: &[&str]| ids.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let want = BTreeMap::from([(1, by_day(&["a", "b", "c"])), (2, by_day(&["f", "g"]))]);
        assert_eq!(sale_ids(&rows, &policy), want);
        assert_eq!(sale_ids(&shuffled, &policy), want);
        assert_eq!(
            daily(&shuffled, &policy).unwrap(),
            daily(&rows, &policy).unwrap()
        );
        let strict = GoldPolicy {
            min_quality_score: 100,
        };
        assert_eq!(
            sale_ids(&rows, &strict),
            BTreeMap::from([(1, by_day(&["a", "c"])), (2, by_day(&["f", "g"]))])
        );
    }

    #[test]
    fn daily_revenue_overflow_is_an_error() {
        let rows: Vec<_> = (0..101)
            .map(|i| sale(&i.to_string(), 1, 1, None, 100, 9_999_999_999, 100, false))
            .collect();
        let error = daily(&rows, &GoldPolicy::default()).unwrap_err();
        assert_eq!(
            error,
            RevenueOverflow {
                business_date: 1,
                store_id: 1,
                product_id: 1
            }
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
