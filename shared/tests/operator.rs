//! The operator's repairs, embedded: `replay` moves a fixed quarantined record into bronze
//! exactly once (also when an earlier replay stopped between its two commits), and `backfill`
//! takes too-late rows into gold for the dates asked, for good.

#![allow(clippy::unwrap_used)]

mod support;

use std::collections::BTreeMap;

use bakehouse::adapters::lakehouse::{Lakehouse, TableDef, tables};
use bakehouse::config::Config;
use bakehouse::domain::records::{BronzeSale, FactSale, QuarantineRow};
use bakehouse::domain::time::{
    MICROS_PER_DAY, MICROS_PER_HOUR, date_of, format_timestamp, now_micros,
};
use bakehouse::hops::replay::{ReplayFilter, replay};
use bakehouse::hops::to_gold::Backfill;
use bakehouse::hops::{Deps, ingest, init, to_gold, to_silver};
use serde::de::DeserializeOwned;

async fn read<T: DeserializeOwned>(lake: &Lakehouse, def: &TableDef) -> Vec<T> {
    lake.read_table(def).await.unwrap()
}

async fn embedded(home: &std::path::Path) -> Deps {
    let deps = Deps::open(Config::embedded(home, |_| None).unwrap())
        .await
        .unwrap();
    init(&deps, true).await.unwrap();
    deps
}

fn sale(id: &str, at: i64) -> String {
    format!(
        r#"{{"event_id":"{id}","event_time":"{}","store_id":1,"product_id":1,"quantity":2,"unit_price":3.50}}"#,
        format_timestamp(at)
    )
}

async fn quarantine(lake: &Lakehouse, rows: Vec<QuarantineRow>) {
    support::append_rows(lake, &rows).await.unwrap();
}

#[tokio::test]
async fn replay_moves_a_fixed_record_into_bronze_exactly_once() {
    let home = tempfile::tempdir().unwrap();
    let deps = embedded(home.path()).await;
    let lake = &deps.lake;
    let now = now_micros();
    // One good sale and one line that is not JSON, through the real ingest.
    let file = format!("{}\n{{not json\n", sale("ok-1", now - MICROS_PER_HOUR));
    ingest::ingest_bytes(&deps, "landing/sales-events/a.jsonl", None, file.as_bytes())
        .await
        .unwrap();
    // A valid sale an earlier, stricter validator rejected (what a fix makes pass).
    let fixed = QuarantineRow {
        dataset: "sales-events".into(),
        source: "kafka".into(),
        source_ref: "sales-events/0/41".into(),
        error_code: "bad_length".into(),
        error_message: "event_id longer than the old limit".into(),
        raw: sale("fixed-1", now - 2 * MICROS_PER_HOUR),
        raw_encoding: "text".into(),
        ingestion_time: now - MICROS_PER_HOUR,
    };
    quarantine(lake, vec![fixed.clone()]).await;
    assert_eq!(
        read::<QuarantineRow>(lake, &tables::QUARANTINE).await.len(),
        2
    );

    let first = replay(&deps, &ReplayFilter::default()).await.unwrap();
    assert_eq!(first.examined, 2);
    assert_eq!(
        first.moved,
        BTreeMap::from([("bronze.sales_events".to_string(), 1)])
    );
    assert_eq!(first.removed_from_quarantine, 1);
    assert_eq!(
        first.still_failing,
        BTreeMap::from([("not_json".to_string(), 1)])
    );
    let bronze: Vec<BronzeSale> = read(lake, &tables::BRONZE_SALES).await;
    assert_eq!(bronze.len(), 2);
    let moved = bronze.iter().find(|s| s.event_id == "fixed-1").unwrap();
    assert_eq!(
        (
            moved.source.as_str(),
            moved.source_ref.as_str(),
            moved.ingestion_time
        ),
        ("kafka", "sales-events/0/41", fixed.ingestion_time)
    );
    let left: Vec<QuarantineRow> = read(lake, &tables::QUARANTINE).await;
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].error_code, "not_json");

    // Again: nothing more moves.
    let again = replay(&deps, &ReplayFilter::default()).await.unwrap();
    assert_eq!((again.examined, again.removed_from_quarantine), (1, 0));
    assert!(again.moved.is_empty());
    assert_eq!(
        read::<BronzeSale>(lake, &tables::BRONZE_SALES).await.len(),
        2
    );

    // A replay stopped after its bronze commit left the record in quarantine too: the next
    // replay removes it from quarantine without a second copy in bronze.
    quarantine(lake, vec![fixed.clone()]).await;
    let resumed = replay(&deps, &ReplayFilter::default()).await.unwrap();
    assert_eq!(resumed.already_in_bronze, 1);
    assert!(resumed.moved.is_empty());
    assert_eq!(resumed.removed_from_quarantine, 1);
    assert_eq!(
        read::<BronzeSale>(lake, &tables::BRONZE_SALES).await.len(),
        2
    );
    assert_eq!(
        read::<QuarantineRow>(lake, &tables::QUARANTINE).await.len(),
        1
    );

    // The filter: another dataset's or another reason's records are not touched.
    quarantine(
        lake,
        vec![QuarantineRow {
            source_ref: "sales-events/0/42".into(),
            raw: sale("fixed-2", now - 2 * MICROS_PER_HOUR),
            ..fixed.clone()
        }],
    )
    .await;
    let other_reason = ReplayFilter {
        error_code: Some("missing_field".into()),
        ..ReplayFilter::default()
    };
    let none = replay(&deps, &other_reason).await.unwrap();
    assert_eq!((none.examined, none.removed_from_quarantine), (0, 0));

    // Downstream, each moved record is one silver row.
    to_silver::handle(&deps, None).await.unwrap();
    replay(&deps, &ReplayFilter::default()).await.unwrap();
    to_silver::handle(&deps, None).await.unwrap();
    let silver: Vec<bakehouse::domain::records::SilverSale> =
        read(lake, &tables::SILVER_SALES).await;
    let mut ids: Vec<&str> = silver.iter().map(|s| s.event_id.as_str()).collect();
    ids.sort_unstable();
    assert_eq!(ids, ["fixed-1", "fixed-2", "ok-1"]);
}

#[tokio::test]
async fn backfill_takes_too_late_rows_in_for_the_dates_asked_and_keeps_them() {
    let home = tempfile::tempdir().unwrap();
    let deps = embedded(home.path()).await;
    let lake = &deps.lake;
    let now = now_micros();
    let (old, older) = (now - 4 * MICROS_PER_DAY, now - 5 * MICROS_PER_DAY);
    let lines = [
        sale("recent", now - MICROS_PER_HOUR),
        sale("old-1", old),
        sale("older-1", older),
    ];
    ingest::ingest_bytes(
        &deps,
        "landing/sales-events/b.jsonl",
        None,
        lines.join("\n").as_bytes(),
    )
    .await
    .unwrap();
    to_silver::handle(&deps, None).await.unwrap();
    to_gold::handle(&deps, None).await.unwrap();
    let ids = |facts: Vec<FactSale>| {
        let mut ids: Vec<String> = facts.into_iter().map(|f| f.sale_id).collect();
        ids.sort_unstable();
        ids
    };
    assert_eq!(ids(read(lake, &tables::FACT_SALES).await), ["recent"]);

    // Recomputing the old date without the flag changes nothing.
    let range = Backfill {
        from: date_of(old),
        to: date_of(old),
        too_late: false,
    };
    to_gold::catch_up(&deps, &to_gold::Fact::ALL, Some(range))
        .await
        .unwrap();
    assert_eq!(ids(read(lake, &tables::FACT_SALES).await), ["recent"]);

    // With it, that date's too-late row comes in; the older date's does not.
    let taken = Backfill {
        too_late: true,
        ..range
    };
    to_gold::catch_up(&deps, &to_gold::Fact::ALL, Some(taken))
        .await
        .unwrap();
    assert_eq!(
        ids(read(lake, &tables::FACT_SALES).await),
        ["old-1", "recent"]
    );
    let daily: Vec<bakehouse::domain::records::FactSalesDaily> =
        read(lake, &tables::FACT_SALES_DAILY).await;
    let old_day: Vec<_> = daily
        .iter()
        .filter(|d| d.business_date == date_of(old))
        .collect();
    assert_eq!(old_day.len(), 1);
    assert_eq!(old_day[0].quantity, 2);

    // Another too-late row of that date arrives: the normal recompute keeps the date taken in.
    ingest::ingest_bytes(
        &deps,
        "landing/sales-events/c.jsonl",
        None,
        sale("old-2", old + 1).as_bytes(),
    )
    .await
    .unwrap();
    to_silver::handle(&deps, None).await.unwrap();
    to_gold::handle(&deps, None).await.unwrap();
    assert_eq!(
        ids(read(lake, &tables::FACT_SALES).await),
        ["old-1", "old-2", "recent"]
    );
}
