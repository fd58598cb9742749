//! The maintenance handler on the fixture scheduled event, embedded: dimensions from the
//! reference snapshots (and a changed snapshot), fact keys valid at event time, daily reports,
//! compaction to one file per partition with identical rows, and a rerun that commits nothing.

#![allow(clippy::unwrap_used)]

use bakehouse::adapters::lakehouse::{TableDef, tables};
use bakehouse::config::Config;
use bakehouse::domain::records::{
    BronzeSale, BronzeStore, DataQualityDaily, DimProduct, DimStore, FactSale,
};
use bakehouse::domain::time;
use bakehouse::hops::{Deps, ingest, to_gold, to_silver};
use lambda_runtime::{Context, LambdaEvent};
use serde::de::DeserializeOwned;
use serde_json::Value;

fn scheduled_event() -> LambdaEvent<Value> {
    let path = format!(
        "{}/fixtures/scheduled-event.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let payload = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    LambdaEvent::new(payload, Context::default())
}

async fn rows<T: DeserializeOwned>(deps: &Deps, def: &TableDef) -> Vec<T> {
    let table = deps.lake.load(def).await.unwrap();
    let files = deps.lake.live_files(&table).await.unwrap();
    deps.lake.read_rows(&table, &files).await.unwrap()
}

async fn sales_file(deps: &Deps, name: &str, ids: std::ops::Range<u32>) {
    let at = time::format_timestamp(time::now_micros());
    let lines: Vec<String> = ids
        .map(|i| {
            format!(
                r#"{{"event_id":"{name}-{i}","transaction_id":"t{i}","event_time":"{at}","store_id":{},"product_id":2,"quantity":1,"unit_price":7.25}}"#,
                1 + i % 5
            )
        })
        .collect();
    let key = format!("landing/sales-events/{name}.jsonl");
    ingest::ingest_bytes(deps, &key, None, lines.join("\n").as_bytes())
        .await
        .unwrap();
}

async fn catch_up(deps: &Deps) {
    while !to_silver::handle(deps, None).await.unwrap().is_empty()
        | !to_gold::handle(deps, None).await.unwrap().is_empty()
    {}
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn maintenance_builds_dimensions_reports_and_compacts() {
    let home = tempfile::tempdir().unwrap();
    let deps = Deps::open(Config::embedded(home.path(), |_| None).unwrap())
        .await
        .unwrap();
    bakehouse::hops::init(&deps, true).await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    for n in 0..3 {
        sales_file(&deps, &format!("small-{n}"), n * 10..n * 10 + 10).await;
        catch_up(&deps).await;
    }
    let bronze_before: Vec<BronzeSale> = rows(&deps, &tables::BRONZE_SALES).await;

    let report = maintenance::handler(&deps, scheduled_event())
        .await
        .unwrap();
    let by_table = |name: &str| {
        report
            .tables
            .iter()
            .find(|t| t.table == name)
            .unwrap()
            .clone()
    };
    assert_eq!(by_table("gold.dim_store").versions_opened, 5);
    assert_eq!(by_table("gold.dim_product").versions_opened, 10);
    assert_eq!(by_table("gold.dim_customer").versions_opened, 8);
    let sales = by_table("bronze.sales_events");
    assert_eq!(
        (sales.files_before, sales.files_after, sales.files_compacted),
        (3, 1, 3)
    );

    // Dimensions: every store current from the default snapshot's ingestion time.
    let reference: Vec<BronzeStore> = rows(&deps, &tables::BRONZE_STORES).await;
    let t1 = reference[0].ingestion_time;
    let mut stores: Vec<DimStore> = rows(&deps, &tables::DIM_STORE).await;
    stores.sort_by_key(|s| s.store_key);
    assert_eq!(
        stores
            .iter()
            .map(|s| (
                s.store_key,
                s.store_id,
                s.valid_from,
                s.valid_to,
                s.is_current
            ))
            .collect::<Vec<_>>(),
        (1..=5)
            .map(|i| (i64::from(i), i, t1, None, true))
            .collect::<Vec<_>>()
    );
    // Facts (events after the snapshot) carry the keys of the versions valid then.
    let facts: Vec<FactSale> = rows(&deps, &tables::FACT_SALES).await;
    assert_eq!(facts.len(), 30);
    assert!(
        facts
            .iter()
            .all(|f| f.store_key == Some(i64::from(f.store_id)))
    );
    let product_two = rows::<DimProduct>(&deps, &tables::DIM_PRODUCT)
        .await
        .into_iter()
        .find(|p| p.product_id == 2)
        .unwrap();
    assert!(
        facts
            .iter()
            .all(|f| f.product_key == Some(product_two.product_key))
    );

    // Reports: today's sales, all perfect and in gold.
    let quality: Vec<DataQualityDaily> = rows(&deps, &tables::DATA_QUALITY_DAILY).await;
    let today = time::date_of(time::now_micros());
    let sales_today = quality
        .iter()
        .find(|q| q.business_date == today && q.dataset == "sales-events")
        .unwrap();
    assert_eq!(
        (
            sales_today.records,
            sales_today.gold_eligible,
            sales_today.perfect,
            sales_today.poor
        ),
        (30, 30, 30, 0)
    );

    // Compaction kept every bronze row; one file per partition everywhere.
    let mut bronze_after: Vec<BronzeSale> = rows(&deps, &tables::BRONZE_SALES).await;
    let mut bronze_before = bronze_before;
    bronze_before.sort_by(|a, b| a.event_id.cmp(&b.event_id));
    bronze_after.sort_by(|a, b| a.event_id.cmp(&b.event_id));
    assert_eq!(bronze_before, bronze_after);
    for def in tables::ALL_TABLES {
        let table = deps.lake.load(&def).await.unwrap();
        let files = deps.lake.live_files(&table).await.unwrap();
        let mut days: Vec<_> = files.iter().map(|f| f.days).collect();
        let n = days.len();
        days.dedup();
        assert_eq!(
            days.len(),
            n,
            "{} has two files in a partition",
            def.qualified()
        );
    }

    // Nothing new: the rerun commits nothing, and the hops see nothing new either.
    let again = maintenance::handler(&deps, scheduled_event())
        .await
        .unwrap();
    assert_eq!(again.commits, 0, "{again:?}");
    assert!(to_silver::handle(&deps, None).await.unwrap().is_empty());
    assert!(to_gold::handle(&deps, None).await.unwrap().is_empty());

    // A changed snapshot: store 1 has a new manager, store 5 is gone, store 6 is new.
    let changed = "store_id,name,city,region,opening_hour,closing_hour,manager\n\
        1,Downtown Bakery,Seattle,West,06:00,20:00,Zoe Park\n\
        2,Harbor Bakery,Portland,West,06:30,19:00,Bob Chen\n\
        3,Uptown Bakery,Chicago,Central,07:00,21:00,Carla Diaz\n\
        4,Riverside Bakery,Austin,South,06:00,18:00,David Okafor\n\
        6,Lakeside Bakery,Madison,Central,06:00,19:00,Femi Ade\n";
    ingest::ingest_bytes(
        &deps,
        "landing/stores/stores-v2.csv",
        None,
        changed.as_bytes(),
    )
    .await
    .unwrap();
    let reference: Vec<BronzeStore> = rows(&deps, &tables::BRONZE_STORES).await;
    let t2 = reference.iter().map(|r| r.ingestion_time).max().unwrap();
    assert!(t2 > t1);
    let report = maintenance::handler(&deps, scheduled_event())
        .await
        .unwrap();
    let dim = report
        .tables
        .iter()
        .find(|t| t.table == "gold.dim_store")
        .unwrap();
    assert_eq!((dim.versions_opened, dim.versions_closed), (2, 2));
    let mut stores: Vec<DimStore> = rows(&deps, &tables::DIM_STORE).await;
    stores.sort_by_key(|s| s.store_key);
    let summary: Vec<_> = stores
        .iter()
        .map(|s| {
            (
                s.store_key,
                s.store_id,
                s.manager.as_deref(),
                s.valid_from,
                s.valid_to,
                s.is_current,
            )
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            (1, 1, Some("Alice Martin"), t1, Some(t2), false),
            (2, 2, Some("Bob Chen"), t1, None, true),
            (3, 3, Some("Carla Diaz"), t1, None, true),
            (4, 4, Some("David Okafor"), t1, None, true),
            (5, 5, Some("Emma Rossi"), t1, Some(t2), false),
            (6, 1, Some("Zoe Park"), t2, None, true),
            (7, 6, Some("Femi Ade"), t2, None, true),
        ]
    );
    // Old facts keep their keys; twice on the same snapshot changes nothing.
    let facts_after: Vec<FactSale> = rows(&deps, &tables::FACT_SALES).await;
    assert!(
        facts_after
            .iter()
            .all(|f| f.store_key == Some(i64::from(f.store_id)))
    );
    let again = maintenance::handler(&deps, scheduled_event())
        .await
        .unwrap();
    assert_eq!(again.commits, 0, "{again:?}");
    assert_eq!(rows::<DimStore>(&deps, &tables::DIM_STORE).await.len(), 7);
}
