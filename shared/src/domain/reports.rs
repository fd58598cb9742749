//! The daily reports of SPEC §5: `data_quality_daily` and `late_arrivals_daily`, per
//! business date × dataset, from silver rows (and quarantined records, counted by ingestion
//! date because they may have no usable event time).

use std::collections::BTreeMap;

use super::gold::GoldPolicy;
use super::records::{
    DataQualityDaily, LateArrivalsDaily, QuarantineRow, SilverInventory, SilverReading, SilverSale,
};
use super::time::{MICROS_PER_HOUR, date_of};

/// A record is "late" in the report past this lateness.
pub const LATE_AFTER_SECONDS: f64 = 3_600.0;
/// Below this score a record is "poor".
pub const POOR_BELOW: i32 = 50;

/// What the reports need of a silver row.
pub trait Assessed {
    fn business_date(&self) -> i32;
    fn quality_score(&self) -> i32;
    fn too_late(&self) -> bool;
    fn lateness_seconds(&self) -> f64;
}

macro_rules! assessed {
    ($($t:ty),*) => {$(
        impl Assessed for $t {
            fn business_date(&self) -> i32 { self.business_date }
            fn quality_score(&self) -> i32 { self.quality_score }
            fn too_late(&self) -> bool { self.too_late }
            fn lateness_seconds(&self) -> f64 { self.lateness_seconds }
        }
    )*};
}
assessed!(SilverSale, SilverReading, SilverInventory);

/// What the rows of one silver commit look like: the figures the hop reports as metrics.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
pub struct RowFigures {
    /// Bronze rows read.
    pub read: u64,
    /// Of those, ids silver already held (or repeated in the batch).
    pub duplicates: u64,
    /// Rows later than [`LATE_AFTER_SECONDS`], and rows too late for gold.
    pub late: u64,
    pub too_late: u64,
    /// Rows below the minimum score for gold.
    pub below_minimum: u64,
    pub avg_quality_score: Option<f64>,
}

impl RowFigures {
    /// The figures of `rows`, refined from `read` bronze rows, against gold's minimum score.
    pub fn of<S: Assessed>(read: usize, rows: &[S], min_score: i32) -> Self {
        let count = |keep: &dyn Fn(&S) -> bool| rows.iter().filter(|r| keep(r)).count() as u64;
        let score_sum: i64 = rows.iter().map(|r| i64::from(r.quality_score())).sum();
        RowFigures {
            read: read as u64,
            duplicates: read.saturating_sub(rows.len()) as u64,
            late: count(&|r| r.lateness_seconds() > LATE_AFTER_SECONDS),
            too_late: count(&|r| r.too_late()),
            below_minimum: count(&|r| r.quality_score() < min_score),
            avg_quality_score: (!rows.is_empty()).then(|| score_sum as f64 / rows.len() as f64),
        }
    }

    /// Adds the figures of another part of the same commit.
    pub fn add(&mut self, other: RowFigures) {
        let rows = |f: &RowFigures| f.read.saturating_sub(f.duplicates) as f64;
        let (mine, theirs) = (rows(self), rows(&other));
        self.avg_quality_score = match (self.avg_quality_score, other.avg_quality_score) {
            (Some(a), Some(b)) => Some((a * mine + b * theirs) / (mine + theirs)),
            (a, b) => a.or(b),
        };
        self.read += other.read;
        self.duplicates += other.duplicates;
        self.late += other.late;
        self.too_late += other.too_late;
        self.below_minimum += other.below_minimum;
    }
}

/// The silver rows of each event dataset, named as in SPEC §2.
pub struct SilverRows<'a> {
    pub sales: &'a [SilverSale],
    pub readings: &'a [SilverReading],
    pub inventory: &'a [SilverInventory],
}

impl SilverRows<'_> {
    /// Every row as (dataset name, row).
    fn each(&self) -> impl Iterator<Item = (&'static str, &dyn Assessed)> {
        let sales = self
            .sales
            .iter()
            .map(|r| ("sales-events", r as &dyn Assessed));
        let readings = self
            .readings
            .iter()
            .map(|r| ("equipment-metrics", r as &dyn Assessed));
        let inventory = self
            .inventory
            .iter()
            .map(|r| ("inventory-updates", r as &dyn Assessed));
        sales.chain(readings).chain(inventory)
    }
}

/// `gold.data_quality_daily`: per business date and dataset, silver records, how many gold
/// uses, quarantined records (by ingestion date, under the dataset name they arrived as), the
/// average score, perfect (100) and poor (< 50) records. Sorted by date, then dataset.
pub fn data_quality_daily(
    silver: &SilverRows,
    quarantine: &[QuarantineRow],
    policy: &GoldPolicy,
) -> Vec<DataQualityDaily> {
    #[derive(Default)]
    struct Acc {
        records: i64,
        eligible: i64,
        quarantined: i64,
        score_sum: i64,
        perfect: i64,
        poor: i64,
    }
    let mut groups: BTreeMap<(i32, String), Acc> = BTreeMap::new();
    for (dataset, row) in silver.each() {
        let acc = groups
            .entry((row.business_date(), dataset.to_string()))
            .or_default();
        let score = row.quality_score();
        acc.records += 1;
        acc.eligible += i64::from(policy.is_eligible(score, row.too_late()));
        acc.score_sum += i64::from(score);
        acc.perfect += i64::from(score == 100);
        acc.poor += i64::from(score < POOR_BELOW);
    }
    for q in quarantine {
        groups
            .entry((date_of(q.ingestion_time), q.dataset.clone()))
            .or_default()
            .quarantined += 1;
    }
    groups
        .into_iter()
        .map(|((business_date, dataset), a)| DataQualityDaily {
            business_date,
            dataset,
            records: a.records,
            gold_eligible: a.eligible,
            quarantined: a.quarantined,
            avg_quality_score: (a.records > 0).then(|| a.score_sum as f64 / a.records as f64),
            perfect: a.perfect,
            poor: a.poor,
        })
        .collect()
}

/// `gold.late_arrivals_daily`: per business date and dataset with silver records, the records
/// later than 1 h, those too late for gold, and the average and maximum lateness in hours of
/// the late records (null when none). Sorted by date, then dataset.
pub fn late_arrivals_daily(silver: &SilverRows) -> Vec<LateArrivalsDaily> {
    #[derive(Default)]
    struct Acc {
        late: i64,
        too_late: i64,
        late_seconds_sum: f64,
        max_seconds: Option<f64>,
    }
    let mut groups: BTreeMap<(i32, &'static str), Acc> = BTreeMap::new();
    for (dataset, row) in silver.each() {
        let acc = groups.entry((row.business_date(), dataset)).or_default();
        let lateness = row.lateness_seconds();
        acc.too_late += i64::from(row.too_late());
        if lateness > LATE_AFTER_SECONDS {
            acc.late += 1;
            acc.late_seconds_sum += lateness;
            acc.max_seconds = Some(acc.max_seconds.map_or(lateness, |m: f64| m.max(lateness)));
        }
    }
    let hours = |seconds: f64| seconds * 1e6 / MICROS_PER_HOUR as f64;
    groups
        .into_iter()
        .map(|((business_date, dataset), a)| LateArrivalsDaily {
            business_date,
            dataset: dataset.to_string(),
            late_records: a.late,
            too_late_records: a.too_late,
            avg_lateness_hours: (a.late > 0).then(|| hours(a.late_seconds_sum / a.late as f64)),
            max_lateness_hours: a.max_seconds.map(hours),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::money::Money;

    fn sale(date: i32, score: i32, lateness_hours: f64, too_late: bool) -> SilverSale {
        SilverSale {
            event_id: format!("E{date}-{score}-{lateness_hours}"),
            transaction_id: None,
            event_time: i64::from(date) * 86_400_000_000,
            business_date: date,
            store_id: 1,
            product_id: 1,
            customer_id: None,
            quantity: 1,
            unit_price: Money(100),
            revenue: Money(100),
            promotion_id: None,
            time_of_day: "morning".into(),
            ingestion_time: 0,
            lateness_seconds: lateness_hours * 3_600.0,
            too_late,
            quality_score: score,
            failed_rules: String::new(),
            source_ref: String::new(),
            channel: None,
        }
    }

    fn quarantined(dataset: &str, day: i64) -> QuarantineRow {
        QuarantineRow {
            dataset: dataset.into(),
            source: "file".into(),
            source_ref: "k:1".into(),
            error_code: "not_json".into(),
            error_message: String::new(),
            raw: String::new(),
            raw_encoding: "text".into(),
            ingestion_time: day * 86_400_000_000 + 5,
        }
    }

    #[test]
    fn quality_counts_scores_and_quarantine_by_ingestion_date() {
        let sales = [
            sale(10, 100, 0.0, false),
            sale(10, 80, 0.0, false),
            sale(10, 49, 0.0, false),
            sale(10, 100, 60.0, true),
            sale(11, 50, 0.0, false),
        ];
        let silver = SilverRows {
            sales: &sales,
            readings: &[],
            inventory: &[],
        };
        let q = [quarantined("sales-events", 10), quarantined("stores", 12)];
        let rows = data_quality_daily(&silver, &q, &GoldPolicy::default());
        assert_eq!(
            rows,
            vec![
                DataQualityDaily {
                    business_date: 10,
                    dataset: "sales-events".into(),
                    records: 4,
                    gold_eligible: 2,
                    quarantined: 1,
                    avg_quality_score: Some(82.25),
                    perfect: 2,
                    poor: 1,
                },
                DataQualityDaily {
                    business_date: 11,
                    dataset: "sales-events".into(),
                    records: 1,
                    gold_eligible: 1,
                    quarantined: 0,
                    avg_quality_score: Some(50.0),
                    perfect: 0,
                    poor: 0,
                },
                DataQualityDaily {
                    business_date: 12,
                    dataset: "stores".into(),
                    records: 0,
                    gold_eligible: 0,
                    quarantined: 1,
                    avg_quality_score: None,
                    perfect: 0,
                    poor: 0,
                },
            ]
        );
    }

    #[test]
    fn lateness_counts_only_past_one_hour() {
        let sales = [
            sale(10, 100, 1.0, false), // exactly 1 h: not late
            sale(10, 100, 2.0, false),
            sale(10, 100, 50.0, true),
            sale(11, 100, 0.1, false),
        ];
        let silver = SilverRows {
            sales: &sales,
            readings: &[],
            inventory: &[],
        };
        let rows = late_arrivals_daily(&silver);
        assert_eq!(
            rows,
            vec![
                LateArrivalsDaily {
                    business_date: 10,
                    dataset: "sales-events".into(),
                    late_records: 2,
                    too_late_records: 1,
                    avg_lateness_hours: Some(26.0),
                    max_lateness_hours: Some(50.0),
                },
                LateArrivalsDaily {
                    business_date: 11,
                    dataset: "sales-events".into(),
                    late_records: 0,
                    too_late_records: 0,
                    avg_lateness_hours: None,
                    max_lateness_hours: None,
                },
            ]
        );
    }
}
