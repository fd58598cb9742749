//! The silver-to-gold handler woken by a fixture S3 notification of a silver commit.

use bakehouse::adapters::events::parse_ingest_event;
use bakehouse::adapters::iceberg::tables;
use bakehouse::config::Config;
use bakehouse::domain::money::Money;
use bakehouse::domain::records::{FactSale, FactSalesDaily};
use bakehouse::hops::{Deps, ingest, to_silver};
use lambda_runtime::{Context, LambdaEvent};
use serde_json::Value;

fn fixture(path: &str) -> Value {
    serde_json::from_str(&std::fs::read_to_string(format!("{}/{path}", env!("CARGO_MANIFEST_DIR"))).unwrap()).unwrap()
}

#[tokio::test]
async fn gold_recomputes_the_touched_dates_of_the_announced_silver_table() {
    let home = tempfile::tempdir().unwrap();
    let deps = Deps::open(Config::embedded(home.path(), |_| None).unwrap()).await.unwrap();
    bakehouse::hops::init(&deps).await.unwrap();
    let batch = parse_ingest_event(fixture("../ingest/fixtures/kafka-event.json")).unwrap();
    ingest::handle(&deps, batch).await.unwrap();
    to_silver::handle(&deps, None).await.unwrap();

    let wake = || LambdaEvent::new(fixture("fixtures/s3-silver-commit.json"), Context::default());
    let outcomes = silver_to_gold::handler(&deps, wake()).await.unwrap();
    let tables_done: Vec<_> = outcomes.iter().map(|o| o.table.as_str()).collect();
    assert_eq!(tables_done, ["gold.fact_sales", "gold.fact_sales_daily"]);

    let table = deps.lake.load(&tables::FACT_SALES_DAILY).await.unwrap();
    let files = deps.lake.live_files(&table).await.unwrap();
    let daily: Vec<FactSalesDaily> = deps.lake.read_rows(&table, &files).await.unwrap();
    let day = bakehouse::domain::time::date_of(bakehouse::domain::time::parse_timestamp("2026-03-01T00:00:00Z").unwrap());
    assert_eq!(daily, vec![
        FactSalesDaily { business_date: day, store_id: 1, product_id: 2, quantity: 4, revenue: Money(2900), line_items: 2, transactions: 2 },
        FactSalesDaily { business_date: day, store_id: 99, product_id: 2, quantity: 2, revenue: Money(1450), line_items: 1, transactions: 1 },
    ]);
    let table = deps.lake.load(&tables::FACT_SALES).await.unwrap();
    let files = deps.lake.live_files(&table).await.unwrap();
    let facts: Vec<FactSale> = deps.lake.read_rows(&table, &files).await.unwrap();
    assert_eq!(facts.len(), 3);

    assert!(silver_to_gold::handler(&deps, wake()).await.unwrap().is_empty());
}
