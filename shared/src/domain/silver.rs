//! Bronze → silver (SPEC §4): deduplication by natural id (first ingested wins, across all
//! time), derived columns, the quality score and lateness. Pure functions.

use std::hash::BuildHasher;

use super::quality::{assess_inventory, assess_reading, assess_sale, closing_stock};
use super::records::*;
use super::reference::ReferenceIndex;
use super::time::{MICROS_PER_HOUR, MICROS_PER_SECOND, date_of, hour_of};

/// Default allowed lateness (SPEC §4: 48 h).
pub const DEFAULT_ALLOWED_LATENESS_MICROS: i64 = 48 * MICROS_PER_HOUR;

/// Settings of the silver derivation.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SilverPolicy {
    /// Records later than this (ingestion − event time) are `too_late`.
    pub allowed_lateness_micros: i64,
}

impl Default for SilverPolicy {
    fn default() -> Self {
        SilverPolicy {
            allowed_lateness_micros: DEFAULT_ALLOWED_LATENESS_MICROS,
        }
    }
}

impl SilverPolicy {
    fn lateness(&self, event_time: i64, ingestion_time: i64) -> (f64, bool) {
        let micros = ingestion_time.saturating_sub(event_time);
        (
            micros as f64 / MICROS_PER_SECOND as f64,
            micros > self.allowed_lateness_micros,
        )
    }
}

/// `time_of_day` of SPEC §4 by UTC hour: morning 06–11, lunch 11–15, afternoon 15–18, else evening.
pub fn time_of_day(event_time: i64) -> &'static str {
    match hour_of(event_time) {
        6..=10 => "morning",
        11..=14 => "lunch",
        15..=17 => "afternoon",
        _ => "evening",
    }
}

/// `waste / (beginning + restocked)`, 0 when the denominator is 0.
pub fn waste_ratio(update: &BronzeInventory) -> f64 {
    let available = i64::from(update.beginning_stock) + i64::from(update.restocked_quantity);
    if available == 0 {
        0.0
    } else {
        f64::from(update.waste_quantity) / available as f64
    }
}

/// A set of natural ids, packed: the ids' bytes end to end in one buffer and a hash table of
/// their positions. A million ids take ~45 MB instead of ~80 MB as `HashSet<String>`, need no
/// allocation each, and the table (4 bytes a slot) stays small enough for the caches; the
/// inserts were a fifth of bronze → silver.
#[derive(Default)]
pub struct IdSet {
    /// Every id's bytes, end to end.
    bytes: Vec<u8>,
    /// Where each id ends in `bytes`; id `i` starts where id `i - 1` ends.
    ends: Vec<usize>,
    /// Indices into `ends`, by the id's hash.
    table: hashbrown::HashTable<u32>,
    hasher: foldhash::fast::RandomState,
}

impl IdSet {
    /// Adds `id`; whether it was new.
    pub fn insert(&mut self, id: &str) -> bool {
        let IdSet {
            bytes,
            ends,
            table,
            hasher,
        } = self;
        let hash = hasher.hash_one(id.as_bytes());
        let entry = table.entry(
            hash,
            |&i| id_at(bytes, ends, i) == id.as_bytes(),
            |&i| hasher.hash_one(id_at(bytes, ends, i)),
        );
        match entry {
            hashbrown::hash_table::Entry::Occupied(_) => false,
            hashbrown::hash_table::Entry::Vacant(slot) => {
                // More than 4 billion ids would not fit one function's memory anyway.
                let Ok(index) = u32::try_from(ends.len()) else {
                    return false;
                };
                bytes.extend_from_slice(id.as_bytes());
                ends.push(bytes.len());
                slot.insert(index);
                true
            }
        }
    }

    /// Makes room for `ids` more ids (of ~`bytes` bytes in all) without rehashing.
    pub fn reserve(&mut self, ids: usize, bytes: usize) {
        let IdSet {
            bytes: held,
            ends,
            table,
            hasher,
        } = self;
        table.reserve(ids, |&i| hasher.hash_one(id_at(held, ends, i)));
        ends.reserve(ids);
        held.reserve(bytes);
    }

    /// Whether `id` is in the set.
    pub fn contains(&self, id: &[u8]) -> bool {
        let hash = self.hasher.hash_one(id);
        self.table
            .find(hash, |&i| id_at(&self.bytes, &self.ends, i) == id)
            .is_some()
    }

    /// The ids, in insertion order.
    pub fn iter(&self) -> impl Iterator<Item = &[u8]> {
        (0..self.ends.len()).map(|i| id_at(&self.bytes, &self.ends, i as u32))
    }

    pub fn len(&self) -> usize {
        self.ends.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }
}

/// The bytes of id `i` of an [`IdSet`].
fn id_at<'a>(bytes: &'a [u8], ends: &[usize], i: u32) -> &'a [u8] {
    let i = i as usize;
    let start = if i == 0 { 0 } else { ends[i - 1] };
    &bytes[start..ends[i]]
}

/// Keeps the first row for each natural id, in input order, dropping ids already in `seen`
/// (the ids silver holds); the kept ids are added to `seen`.
pub fn dedupe_first<T>(
    rows: impl IntoIterator<Item = T>,
    id: impl Fn(&T) -> &str,
    seen: &mut IdSet,
) -> impl Iterator<Item = T> {
    rows.into_iter().filter(move |row| seen.insert(id(row)))
}

/// A sales line item in silver.
pub fn sale_to_silver(
    b: BronzeSale,
    reference: &ReferenceIndex,
    policy: &SilverPolicy,
) -> SilverSale {
    let assessment = assess_sale(&b, reference);
    let (lateness_seconds, too_late) = policy.lateness(b.event_time, b.ingestion_time);
    SilverSale {
        business_date: date_of(b.event_time),
        // Validation bounds quantity × unit_price, so this cannot overflow.
        revenue: b
            .unit_price
            .times(i64::from(b.quantity))
            .unwrap_or_default(),
        time_of_day: time_of_day(b.event_time).to_string(),
        lateness_seconds,
        too_late,
        quality_score: assessment.score,
        failed_rules: assessment.failed_rules(),
        event_id: b.event_id,
        transaction_id: b.transaction_id,
        event_time: b.event_time,
        store_id: b.store_id,
        product_id: b.product_id,
        customer_id: b.customer_id,
        quantity: b.quantity,
        unit_price: b.unit_price,
        promotion_id: b.promotion_id,
        channel: b.channel,
        ingestion_time: b.ingestion_time,
        source_ref: b.source_ref,
    }
}

/// A sensor reading in silver.
pub fn reading_to_silver(
    b: BronzeReading,
    reference: &ReferenceIndex,
    policy: &SilverPolicy,
) -> SilverReading {
    let assessment = assess_reading(&b, reference);
    let (lateness_seconds, too_late) = policy.lateness(b.event_time, b.ingestion_time);
    SilverReading {
        business_date: date_of(b.event_time),
        lateness_seconds,
        too_late,
        quality_score: assessment.score,
        failed_rules: assessment.failed_rules(),
        metric_id: b.metric_id,
        equipment_id: b.equipment_id,
        event_time: b.event_time,
        operational_status: b.operational_status,
        power_kw: b.power_kw,
        temperature_c: b.temperature_c,
        interval_seconds: b.interval_seconds,
        readings: b.readings,
        ingestion_time: b.ingestion_time,
        source_ref: b.source_ref,
    }
}

/// A stock count in silver.
pub fn inventory_to_silver(
    b: BronzeInventory,
    reference: &ReferenceIndex,
    policy: &SilverPolicy,
) -> SilverInventory {
    let assessment = assess_inventory(&b, reference);
    let (lateness_seconds, too_late) = policy.lateness(b.event_time, b.ingestion_time);
    SilverInventory {
        business_date: date_of(b.event_time),
        closing_stock: closing_stock(&b),
        waste_ratio: waste_ratio(&b),
        lateness_seconds,
        too_late,
        quality_score: assessment.score,
        failed_rules: assessment.failed_rules(),
        update_id: b.update_id,
        event_time: b.event_time,
        store_id: b.store_id,
        product_id: b.product_id,
        beginning_stock: b.beginning_stock,
        restocked_quantity: b.restocked_quantity,
        sold_quantity: b.sold_quantity,
        waste_quantity: b.waste_quantity,
        reported_by: b.reported_by,
        ingestion_time: b.ingestion_time,
        source_ref: b.source_ref,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::money::Money;
    use crate::domain::time::{MICROS_PER_DAY, parse_timestamp};

    fn sale(id: &str, event_time: i64, ingestion_time: i64) -> BronzeSale {
        BronzeSale {
            event_id: id.into(),
            transaction_id: None,
            event_time,
            store_id: 1,
            product_id: 1,
            customer_id: None,
            quantity: 3,
            unit_price: Money(435),
            promotion_id: None,
            payload: String::new(),
            source: "file".into(),
            source_ref: String::new(),
            ingestion_time,
            channel: None,
        }
    }

    #[test]
    fn lateness_boundary_is_inclusive_at_48_hours() {
        let policy = SilverPolicy::default();
        let reference = ReferenceIndex {
            stores: [1].into(),
            products: [1].into(),
            ..Default::default()
        };
        let at = |late: i64| sale_to_silver(sale("e", 0, late), &reference, &policy);
        assert!(!at(DEFAULT_ALLOWED_LATENESS_MICROS).too_late);
        assert!(at(DEFAULT_ALLOWED_LATENESS_MICROS + 1).too_late);
        assert_eq!(at(90 * MICROS_PER_SECOND).lateness_seconds, 90.0);
        assert_eq!(at(-MICROS_PER_SECOND / 2).lateness_seconds, -0.5);
        let strict = SilverPolicy {
            allowed_lateness_micros: MICROS_PER_HOUR,
        };
        assert!(sale_to_silver(sale("e", 0, MICROS_PER_HOUR + 1), &reference, &strict).too_late);
    }

    #[test]
    fn sales_derive_revenue_date_and_time_of_day() {
        let reference = ReferenceIndex::default();
        let t = parse_timestamp("2026-03-01T23:30:00-02:00").unwrap(); // 01:30 UTC on March 2nd
        let s = sale_to_silver(sale("e", t, t), &reference, &SilverPolicy::default());
        assert_eq!(s.revenue, Money(1305));
        assert_eq!(s.business_date, date_of(t));
        assert_eq!(
            crate::domain::time::date_from_days(s.business_date).to_string(),
            "2026-03-02"
        );
        assert_eq!(s.time_of_day, "evening");
        assert_eq!(
            (s.quality_score, s.failed_rules.as_str()),
            (60, "store_unknown,product_unknown")
        );
    }

    #[test]
    fn time_of_day_boundaries() {
        let at = |h: i64| time_of_day(3 * MICROS_PER_DAY + h * MICROS_PER_HOUR);
        let got: Vec<_> = [5, 6, 10, 11, 14, 15, 17, 18, 23, 0].map(at).to_vec();
        assert_eq!(
            got,
            [
                "evening",
                "morning",
                "morning",
                "lunch",
                "lunch",
                "afternoon",
                "afternoon",
                "evening",
                "evening",
                "evening"
            ]
        );
    }

    #[test]
    fn inventory_derivations_and_zero_denominator() {
        let b = BronzeInventory {
            update_id: "u".into(),
            event_time: 0,
            store_id: 1,
            product_id: 1,
            beginning_stock: 30,
            restocked_quantity: 10,
            sold_quantity: 25,
            waste_quantity: 4,
            reported_by: None,
            payload: String::new(),
            source: String::new(),
            source_ref: String::new(),
            ingestion_time: 0,
        };
        let s = inventory_to_silver(
            b.clone(),
            &ReferenceIndex::default(),
            &SilverPolicy::default(),
        );
        assert_eq!((s.closing_stock, s.waste_ratio), (11, 0.1));
        let empty = BronzeInventory {
            beginning_stock: 0,
            restocked_quantity: 0,
            waste_quantity: 3,
            ..b
        };
        assert_eq!(waste_ratio(&empty), 0.0);
    }

    #[test]
    fn id_set_tells_new_ids_from_seen_ones_as_it_grows() {
        let mut set = IdSet::default();
        // Ids of every length, some prefixes of others; the table rehashes several times.
        let ids: Vec<String> = (0..5000)
            .map(|i| "x".repeat(i % 7) + &i.to_string())
            .collect();
        assert!(set.insert(""));
        for id in &ids {
            assert!(set.insert(id), "{id} is new");
        }
        for id in &ids {
            assert!(!set.insert(id), "{id} was seen");
        }
        assert!(!set.insert(""));
        assert!(set.insert("x"), "a prefix of seen ids is an id of its own");
        assert_eq!(set.len(), ids.len() + 2);
        set.reserve(10_000, 100_000);
        assert!(!set.insert(&ids[12]) && set.insert("xx13x"));
    }

    #[test]
    fn dedupe_keeps_the_first_and_respects_ids_already_in_silver() {
        let mut seen = IdSet::default();
        assert!(seen.insert("old"));
        let rows = vec![("a", 1), ("old", 2), ("b", 3), ("a", 4)];
        let kept: Vec<_> = dedupe_first(rows, |r| r.0, &mut seen).collect();
        assert_eq!(kept, vec![("a", 1), ("b", 3)]);
        let again: Vec<_> = dedupe_first(vec![("b", 5), ("c", 6)], |r| r.0, &mut seen).collect();
        assert_eq!(again, vec![("c", 6)]);
    }
}
