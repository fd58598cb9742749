//! Schema and partition evolution without rewrites, embedded: type promotions and new columns
//! read older files as the new types, a forbidden change is refused with nothing written, and a
//! lake whose sales tables move from daily to hourly partitions (and a report to monthly ones)
//! in the middle of a day dedupes, aggregates and compacts across both specs exactly as a lake
//! that never changed; writers racing a partition change land every row in its partition.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;

use bakehouse::adapters::lakehouse::{Col, CommitPlan, Grain, Lakehouse, TableDef, tables};
use bakehouse::config::Config;
use bakehouse::domain::dataset::Dataset;
use bakehouse::domain::money::Money;
use bakehouse::domain::records::{BronzeSale, DataQualityDaily, FactSalesDaily, SilverSale};
use bakehouse::domain::time::{MICROS_PER_HOUR, format_timestamp, now_micros};
use bakehouse::error::StorageError;
use bakehouse::hops::evolve::{ColumnFill, PartitionChange, evolve};
use bakehouse::hops::{Deps, ingest, maintenance, to_gold, to_silver};
use serde::{Deserialize, Serialize};

async fn deps(home: &std::path::Path) -> Deps {
    let deps = Deps::open(Config::embedded(home, |_| None).unwrap())
        .await
        .unwrap();
    deps.lake.create_tables().await.unwrap();
    deps
}

/// Writes `rows` to `def` and commits them; returns the first file's path.
async fn append<T: Serialize>(lake: &Lakehouse, def: &TableDef, rows: &[T]) -> String {
    let table = lake.load(def).await.unwrap();
    let add = lake.write_rows(&table, rows).await.unwrap();
    let first = add[0].file_path().to_string();
    lake.commit_with(def, |_| {
        let add = add.clone();
        async move { Ok(Some(CommitPlan::append(add, Default::default()))) }
    })
    .await
    .unwrap();
    first
}

async fn metadata_location(lake: &Lakehouse, def: &TableDef) -> String {
    let table = lake.load(def).await.unwrap();
    table.metadata_location().unwrap().to_string()
}

const BEFORE: TableDef = TableDef {
    namespace: "gold",
    name: "evolving",
    columns: &[
        ("day", Col::Date),
        ("n", Col::Int),
        ("x", Col::Float),
        ("price", Col::Dec(10)),
    ],
    partition: Some(("day", Grain::Day)),
};
const AFTER: TableDef = TableDef {
    columns: &[
        ("day", Col::Date),
        ("n", Col::Long),
        ("x", Col::Double),
        ("price", Col::Dec(14)),
        ("note", Col::Str),
    ],
    ..BEFORE
};
const NARROWED: TableDef = TableDef {
    columns: &[
        ("day", Col::Date),
        ("n", Col::Int),
        ("x", Col::Double),
        ("price", Col::Dec(14)),
        ("note", Col::Str),
    ],
    ..BEFORE
};

#[derive(Serialize)]
struct Before {
    day: i32,
    n: i32,
    x: f32,
    price: Money,
}

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct After {
    day: i32,
    n: i64,
    x: f64,
    price: Money,
    note: Option<String>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn promoted_types_and_new_columns_read_older_files_without_a_rewrite() {
    let home = tempfile::tempdir().unwrap();
    let lake = deps(home.path()).await.lake;
    assert!(lake.create_table(&BEFORE).await.unwrap());
    let old = [Before {
        day: 20_000,
        n: i32::MAX,
        x: 1.5,
        price: Money(99_999_999),
    }];
    let old_file = append(&lake, &BEFORE, &old).await;

    lake.evolve(&AFTER).await.unwrap();
    let table = lake.load(&AFTER).await.unwrap();
    let schema = table.metadata().current_schema();
    let ids: Vec<(i32, String)> = schema
        .as_struct()
        .fields()
        .iter()
        .map(|f| (f.id, format!("{} {}", f.name, f.field_type)))
        .collect();
    assert_eq!(
        ids,
        [
            (1, "day date".to_string()),
            (2, "n long".to_string()),
            (3, "x double".to_string()),
            (4, "price decimal(14, 2)".to_string()),
            (5, "note string".to_string()),
        ]
    );
    let new = [After {
        day: 20_001,
        n: i64::from(i32::MAX) + 1,
        x: 2.25,
        price: Money(1_000_000_000_000 - 1),
        note: Some("wide".into()),
    }];
    append(&lake, &AFTER, &new).await;
    let files = lake
        .live_files(&lake.load(&AFTER).await.unwrap())
        .await
        .unwrap();
    assert!(
        files.iter().any(|f| f.path() == old_file),
        "the old file was not rewritten"
    );
    let mut rows: Vec<After> = lake.read_table(&AFTER).await.unwrap();
    rows.sort_by_key(|r| r.day);
    assert_eq!(
        rows,
        [
            After {
                day: 20_000,
                n: i64::from(i32::MAX),
                x: 1.5,
                price: Money(99_999_999),
                note: None,
            },
            new.into_iter().next().unwrap(),
        ]
    );

    // Narrowing long → int is refused, naming the column, and nothing is written.
    let before = metadata_location(&lake, &AFTER).await;
    let refused = lake.evolve(&NARROWED).await.unwrap_err();
    assert!(
        matches!(&refused, StorageError::Evolution { message, .. } if message.starts_with("column n: long → int")),
        "{refused}"
    );
    assert_eq!(metadata_location(&lake, &AFTER).await, before);
}

/// Sales of stores 1–2 and products 1–3 `hours_ago`, some with a channel, some without.
fn sales(prefix: &str, ids: std::ops::Range<usize>, hours_ago: i64) -> String {
    ids.map(|i| {
        let at = format_timestamp(now_micros() - hours_ago * MICROS_PER_HOUR - i as i64 * 61_000_000);
        let channel = ["", r#","channel":"in_store""#, r#","channel":"online""#, r#","channel":"app""#][i % 4];
        format!(
            r#"{{"event_id":"{prefix}-{i}","transaction_id":"t-{}","event_time":"{at}","store_id":{},"product_id":{},"customer_id":"c{}","quantity":{},"unit_price":2.50{channel}}}"#,
            i / 2,
            1 + i % 2,
            1 + i % 3,
            i % 5,
            1 + i % 4,
        )
    })
    .collect::<Vec<_>>()
    .join("\n")
}

async fn ingest(deps: &Deps, key: &str, body: &str) {
    ingest::ingest_bytes(deps, key, Some(Dataset::SalesEvents), body.as_bytes())
        .await
        .unwrap();
}

async fn process(deps: &Deps) {
    to_silver::handle(deps, None).await.unwrap();
    to_gold::handle(deps, None).await.unwrap();
}

async fn sorted<T: serde::de::DeserializeOwned>(
    lake: &Lakehouse,
    def: &TableDef,
    key: impl Fn(&T) -> String,
) -> Vec<T> {
    let mut rows: Vec<T> = lake.read_table(def).await.unwrap();
    rows.sort_by_key(key);
    rows
}

/// The partition specs of a table's live files.
async fn specs(lake: &Lakehouse, def: &TableDef) -> BTreeSet<i32> {
    let table = lake.load(def).await.unwrap();
    lake.live_files(&table)
        .await
        .unwrap()
        .iter()
        .map(|f| f.spec_id)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lake_repartitioned_mid_day_gives_the_answers_of_one_that_never_was() {
    let (evolved_home, plain_home) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (evolved, plain) = (
        deps(evolved_home.path()).await,
        deps(plain_home.path()).await,
    );
    // First batches under the daily specs, in both lakes: today's and yesterday's.
    let first = format!("{}\n{}", sales("s", 0..40, 3), sales("y", 0..10, 30));
    for deps in [&evolved, &plain] {
        ingest(deps, "landing/sales-events/a.jsonl", &first).await;
        process(deps).await;
        maintenance::handle(deps, now_micros()).await.unwrap();
    }

    // Hourly bronze and silver, a monthly quality report, in one lake only.
    let changes = [
        "bronze.sales_events=hour",
        "silver.sales=hour",
        "gold.data_quality_daily=month",
    ]
    .map(|c| PartitionChange::parse(c).unwrap());
    let report = evolve(&evolved, &changes, &[]).await.unwrap();
    assert_eq!(report.partitioned.len(), 3);
    assert!(
        evolve(&evolved, &changes, &[])
            .await
            .unwrap()
            .partitioned
            .is_empty()
    );

    // The same day again: new ids, and every one of the first batch's ids redelivered.
    let second = format!("{}\n{}", sales("s", 40..80, 3), sales("s", 0..40, 3));
    for deps in [&evolved, &plain] {
        ingest(deps, "landing/sales-events/b.jsonl", &second).await;
        process(deps).await;
    }
    assert_eq!(
        specs(&evolved.lake, &tables::SILVER_SALES).await,
        BTreeSet::from([0, 1])
    );
    let silver: Vec<SilverSale> = sorted(&evolved.lake, &tables::SILVER_SALES, |s: &SilverSale| {
        s.event_id.clone()
    })
    .await;
    assert_eq!(silver.len(), 90, "first ingested wins across both specs");
    let plain_silver: Vec<SilverSale> =
        sorted(&plain.lake, &tables::SILVER_SALES, |s: &SilverSale| {
            s.event_id.clone()
        })
        .await;
    let content = |rows: &[SilverSale]| -> Vec<(String, Option<String>, i32, String)> {
        rows.iter()
            .map(|s| {
                (
                    s.event_id.clone(),
                    s.channel.clone(),
                    s.quality_score,
                    s.source_ref.clone(),
                )
            })
            .collect()
    };
    assert_eq!(content(&silver), content(&plain_silver));
    let daily_key = |d: &FactSalesDaily| {
        format!(
            "{} {} {} {:?}",
            d.business_date, d.store_id, d.product_id, d.channel
        )
    };
    let daily = sorted(&evolved.lake, &tables::FACT_SALES_DAILY, daily_key).await;
    assert_eq!(
        daily,
        sorted(&plain.lake, &tables::FACT_SALES_DAILY, daily_key).await
    );
    let channels: BTreeSet<Option<String>> = daily.iter().map(|d| d.channel.clone()).collect();
    assert_eq!(
        channels.len(),
        4,
        "null, in_store, online, app: {channels:?}"
    );

    // Maintenance rewrites today's report rows in their month (yesterday's kept) and compacts
    // the old daily files into hourly ones.
    for deps in [&evolved, &plain] {
        maintenance::handle(deps, now_micros()).await.unwrap();
    }
    assert_eq!(
        specs(&evolved.lake, &tables::SILVER_SALES).await,
        BTreeSet::from([1])
    );
    assert_eq!(
        specs(&evolved.lake, &tables::BRONZE_SALES).await,
        BTreeSet::from([1])
    );
    assert_eq!(
        specs(&evolved.lake, &tables::DATA_QUALITY_DAILY).await,
        BTreeSet::from([1])
    );
    let after: Vec<SilverSale> = sorted(&evolved.lake, &tables::SILVER_SALES, |s: &SilverSale| {
        s.event_id.clone()
    })
    .await;
    assert_eq!(content(&after), content(&plain_silver));
    // Today again: its report rows are replaced inside month files that also hold yesterday's.
    for deps in [&evolved, &plain] {
        ingest(deps, "landing/sales-events/c.jsonl", &sales("s", 80..90, 3)).await;
        process(deps).await;
        maintenance::handle(deps, now_micros()).await.unwrap();
    }
    // Compacted hourly files stay as they are: a run with nothing new rewrites nothing.
    let idle = maintenance::handle(&evolved, now_micros()).await.unwrap();
    let compacted: usize = idle.tables.iter().map(|t| t.files_compacted).sum();
    assert_eq!(compacted, 0, "{:?}", idle.tables);
    let quality_key = |q: &DataQualityDaily| format!("{} {}", q.business_date, q.dataset);
    let quality = sorted(&evolved.lake, &tables::DATA_QUALITY_DAILY, quality_key).await;
    let dates: BTreeSet<i32> = quality.iter().map(|q| q.business_date).collect();
    assert!(dates.len() >= 2, "yesterday's and today's rows: {dates:?}");
    assert_eq!(
        quality,
        sorted(&plain.lake, &tables::DATA_QUALITY_DAILY, quality_key).await
    );

    // A granularity the table does not take is refused before anything is written.
    let refused = PartitionChange::parse("gold.fact_sales=month").unwrap_err();
    assert_eq!(
        refused,
        "gold.fact_sales cannot be partitioned by month (partition column business_date; \
         accepted: day)"
    );
    let before = metadata_location(&evolved.lake, &tables::FACT_SALES).await;
    let refused = evolved
        .lake
        .evolve_partition(&tables::FACT_SALES, Grain::Month)
        .await
        .unwrap_err();
    assert!(
        matches!(refused, StorageError::Evolution { .. }),
        "{refused}"
    );
    assert_eq!(
        metadata_location(&evolved.lake, &tables::FACT_SALES).await,
        before
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_bronze_column_is_filled_from_the_payload_exactly_once() {
    let home = tempfile::tempdir().unwrap();
    let deps = deps(home.path()).await;
    // Rows written before bronze had the column: a table created without it.
    let old_columns: Vec<_> = tables::BRONZE_SALES
        .columns
        .iter()
        .copied()
        .filter(|(name, _)| *name != "channel")
        .collect();
    let old = TableDef {
        columns: Box::leak(old_columns.into_boxed_slice()),
        ..tables::BRONZE_SALES
    };
    let table = deps.lake.load(&tables::BRONZE_SALES).await.unwrap();
    deps.lake
        .catalog()
        .drop_table(table.identifier())
        .await
        .unwrap();
    assert!(deps.lake.create_table(&old).await.unwrap());
    ingest(&deps, "landing/sales-events/a.jsonl", &sales("s", 0..8, 1)).await;
    // A row whose payload's channel validation refuses now, ingested before it knew channels.
    let kiosk = BronzeSale {
        event_id: "s-8".into(),
        transaction_id: None,
        event_time: now_micros(),
        store_id: 1,
        product_id: 1,
        customer_id: None,
        quantity: 1,
        unit_price: Money(100),
        promotion_id: None,
        channel: None,
        payload: r#"{"event_id":"s-8","event_time":"2026-12-01T00:00:00Z","store_id":1,"product_id":1,"quantity":1,"unit_price":1.00,"channel":"kiosk"}"#.into(),
        source: "file".into(),
        source_ref: "landing/sales-events/b.jsonl:1".into(),
        ingestion_time: now_micros(),
    };
    append(&deps.lake, &old, &[kiosk]).await;
    to_silver::handle(&deps, None).await.unwrap();
    let silver_before = metadata_location(&deps.lake, &tables::SILVER_SALES).await;

    let fill = [ColumnFill::parse("bronze.sales_events.channel").unwrap()];
    let report = evolve(&deps, &[], &fill).await.unwrap();
    let outcome = &report.fills[0];
    let counts = &outcome.counts;
    assert_eq!(
        (outcome.files, counts.filled, counts.absent, counts.refused),
        (1, 6, 2, 1),
        "the file with the kiosk row alone is read, not rewritten"
    );
    assert_eq!(
        counts.first_refusal.as_deref(),
        Some(r#"channel "kiosk" is not one of in_store, online, app"#)
    );
    let mut bronze: Vec<BronzeSale> = deps.lake.read_table(&tables::BRONZE_SALES).await.unwrap();
    bronze.sort_by(|a, b| a.event_id.cmp(&b.event_id));
    let channels: Vec<Option<&str>> = bronze.iter().map(|b| b.channel.as_deref()).collect();
    assert_eq!(
        channels,
        [
            None,
            Some("in_store"),
            Some("online"),
            Some("app"),
            None,
            Some("in_store"),
            Some("online"),
            Some("app"),
            None
        ]
    );
    // The rows keep their sequence numbers: silver sees nothing new, and the fill's snapshot
    // says so (`status` counts nothing pending).
    let bronze = deps.lake.load(&tables::BRONZE_SALES).await.unwrap();
    let history = Lakehouse::snapshots(&bronze);
    let fill_snapshot = history.last().unwrap();
    assert!(!fill_snapshot.brings_new_rows && !fill_snapshot.compaction);
    assert!(history[0].brings_new_rows, "the ingest brought rows");
    to_silver::handle(&deps, None).await.unwrap();
    assert_eq!(
        metadata_location(&deps.lake, &tables::SILVER_SALES).await,
        silver_before
    );
    let again = evolve(&deps, &[], &fill).await.unwrap();
    assert_eq!(again.fills[0].files, 0, "a second fill rewrites nothing");

    let refused = ColumnFill::parse("silver.sales.channel").unwrap_err();
    assert!(refused.contains("not a bronze table"), "{refused}");
    let refused = ColumnFill::parse("bronze.sales_events.quantity").unwrap_err();
    assert!(refused.contains("only string columns"), "{refused}");
}

/// Bronze rows of `ids`, ingested seven minutes apart from `hours_ago` back.
fn bronze_rows(ids: std::ops::Range<usize>, hours_ago: i64) -> Vec<BronzeSale> {
    ids.map(|i| {
        let at = now_micros() - hours_ago * MICROS_PER_HOUR - i as i64 * 7 * 60_000_000;
        BronzeSale {
            event_id: format!("b-{i}"),
            transaction_id: None,
            event_time: at,
            store_id: 1,
            product_id: 1,
            customer_id: None,
            quantity: 1,
            unit_price: Money(100),
            promotion_id: None,
            channel: Some("app".into()),
            payload: String::new(),
            source: "file".into(),
            source_ref: format!("x:{i}"),
            ingestion_time: at,
        }
    })
    .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writers_racing_a_partition_change_land_every_row_in_the_right_partition() {
    use std::sync::atomic::{AtomicU32, Ordering};
    let home = tempfile::tempdir().unwrap();
    let lake = deps(home.path()).await.lake;
    let def = tables::BRONZE_SALES;

    // Files written under the daily spec, committed after the table moved to hourly ones (as
    // ingest does: its files are written before it plans the commit).
    let stale = lake.load(&def).await.unwrap();
    let early = lake
        .write_rows(&stale, &bronze_rows(0..20, 1))
        .await
        .unwrap();
    assert!(lake.evolve_partition(&def, Grain::Hour).await.unwrap());
    let written_under = stale.metadata().default_partition_spec_id();
    lake.commit_with(&def, |_| {
        let add = early.clone();
        async move {
            Ok(Some(CommitPlan {
                keep_added_on_conflict: true,
                added_spec: Some(written_under),
                ..CommitPlan::append(add, Default::default())
            }))
        }
    })
    .await
    .unwrap();

    // A writer planning under the hourly spec loses its swap to a change back to daily
    // partitions, and re-plans under that.
    let calls = AtomicU32::new(0);
    let (lake_ref, calls_ref) = (&lake, &calls);
    let outcome = lake
        .commit_with(&def, move |table| async move {
            if calls_ref.fetch_add(1, Ordering::SeqCst) == 0 {
                lake_ref.evolve_partition(&def, Grain::Day).await?;
            }
            let add = lake_ref
                .write_rows(&table, &bronze_rows(20..40, 30))
                .await?;
            Ok(Some(CommitPlan::append(add, Default::default())))
        })
        .await
        .unwrap()
        .unwrap();
    assert_eq!(outcome.attempts, 2);

    let table = lake.load(&def).await.unwrap();
    let files = lake.live_files(&table).await.unwrap();
    let mut seen = 0;
    for file in &files {
        let rows: Vec<BronzeSale> = lake
            .read_rows(&table, std::slice::from_ref(file))
            .await
            .unwrap();
        for row in &rows {
            let day = bakehouse::domain::time::date_of(row.ingestion_time);
            assert_eq!(
                file.days,
                Some((day, day)),
                "{} in {}",
                row.event_id,
                file.path()
            );
        }
        seen += rows.len();
    }
    assert_eq!(seen, 40, "every row of both writers");
    let hourly = files.iter().filter(|f| f.spec_id != 0).count();
    assert!(
        hourly == 0,
        "the early files kept the daily spec they were written under"
    );
}
