//! The silver-to-gold handler woken by a fixture S3 notification of a silver commit.

#![allow(clippy::unwrap_used)]

use bakehouse::adapters::lakehouse::tables;
use bakehouse::config::Config;
use bakehouse::domain::money::Money;
use bakehouse::domain::records::{FactSale, FactSalesDaily};
use bakehouse::domain::time;
use bakehouse::hops::{Deps, ingest, to_silver};
use lambda_runtime::{Context, LambdaEvent};
use serde_json::Value;

fn fixture(path: &str) -> Value {
    serde_json::from_str(
        &std::fs::read_to_string(format!("{}/{path}", env!("CARGO_MANIFEST_DIR"))).unwrap(),
    )
    .unwrap()
}

#[tokio::test]
async fn gold_recomputes_the_touched_dates_of_the_announced_silver_table() {
    let home = tempfile::tempdir().unwrap();
    let deps = Deps::open(Config::embedded(home.path(), |_| None).unwrap())
        .await
        .unwrap();
    bakehouse::hops::init(&deps, true).await.unwrap();
    // Recent events (the fixture Kafka batch would be too late for gold by now).
    let event_time = time::now_micros() - 2 * time::MICROS_PER_HOUR;
    let at = time::format_timestamp(event_time);
    let lines: Vec<String> = [("k1", 1, "t1"), ("k2", 1, "t2"), ("k3", 99, "t3"), ("k1", 1, "t1")]
        .iter()
        .map(|(id, store, txn)| format!(r#"{{"event_id":"{id}","transaction_id":"{txn}","event_time":"{at}","store_id":{store},"product_id":2,"quantity":2,"unit_price":7.25}}"#))
        .collect();
    ingest::ingest_bytes(
        &deps,
        "landing/sales-events/recent.jsonl",
        None,
        lines.join("\n").as_bytes(),
    )
    .await
    .unwrap();
    to_silver::handle(&deps, None).await.unwrap();

    let wake = || {
        LambdaEvent::new(
            fixture("fixtures/s3-silver-commit.json"),
            Context::default(),
        )
    };
    let outcomes = silver_to_gold::handler(&deps, wake()).await.unwrap();
    let tables_done: Vec<_> = outcomes.iter().map(|o| o.table.as_str()).collect();
    // The facts of the announced table, then the demand features they feed.
    assert_eq!(
        tables_done,
        [
            "gold.fact_sales",
            "gold.fact_sales_daily",
            "gold.features_demand_daily"
        ]
    );

    let daily: Vec<FactSalesDaily> = deps
        .lake
        .read_table(&tables::FACT_SALES_DAILY)
        .await
        .unwrap();
    let day = time::date_of(event_time);
    assert_eq!(
        daily,
        vec![
            FactSalesDaily {
                business_date: day,
                store_id: 1,
                product_id: 2,
                quantity: 4,
                revenue: Money(2900),
                line_items: 2,
                transactions: 2,
                promoted_quantity: 0,
                channel: None,
            },
            FactSalesDaily {
                business_date: day,
                store_id: 99,
                product_id: 2,
                quantity: 2,
                revenue: Money(1450),
                line_items: 1,
                transactions: 1,
                promoted_quantity: 0,
                channel: None,
            },
        ]
    );
    let facts: Vec<FactSale> = deps.lake.read_table(&tables::FACT_SALES).await.unwrap();
    assert_eq!(facts.len(), 3);

    assert!(
        silver_to_gold::handler(&deps, wake())
            .await
            .unwrap()
            .is_empty()
    );
}
