//! Redelivery: the same Kafka batch and the same S3 notification three times each, with the
//! downstream wake-ups out of order, repeated or lost, change nothing after the first delivery
//! — in every layer; and a Kafka batch Lambda gave up on, re-driven from its on-failure record
//! after later batches landed, lands exactly once.

#![allow(clippy::unwrap_used)]

mod support;

use std::collections::BTreeSet;

use bakehouse::adapters::events::{parse_failed_batch, parse_ingest_event};
use bakehouse::adapters::lakehouse::{TableDef, tables};
use bakehouse::config::Config;
use bakehouse::domain::records::*;
use bakehouse::domain::time::{MICROS_PER_HOUR, format_timestamp, now_micros};
use bakehouse::hops::{Deps, ingest, to_gold, to_silver};
use base64::Engine;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

/// An embedded lake in `home`, with its tables and the default reference snapshot.
async fn initialised_lake(home: &std::path::Path) -> Deps {
    let deps = Deps::open(Config::embedded(home, |_| None).unwrap())
        .await
        .unwrap();
    bakehouse::hops::init(&deps, true).await.unwrap();
    deps
}

async fn rows<T: DeserializeOwned>(deps: &Deps, def: &TableDef) -> Vec<T> {
    deps.lake.read_table(def).await.unwrap()
}

fn kafka_batch(at: &str) -> Value {
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let mut partitions = serde_json::Map::new();
    for partition in 0..3 {
        let mut records = Vec::new();
        for offset in 0..22 {
            let i = partition * 100 + offset;
            let value = match offset {
                // Two broken records and one id sent again per partition.
                20 => "{\"event_id\": ".to_string(),
                21 => format!(
                    r#"{{"event_id":"s{}","event_time":"{at}","store_id":1,"product_id":1,"quantity":9,"unit_price":3.50}}"#,
                    partition * 100
                ),
                _ => format!(
                    r#"{{"event_id":"s{i}","transaction_id":"t{i}","event_time":"{at}","store_id":{},"product_id":{},"quantity":1,"unit_price":3.50}}"#,
                    1 + i % 5,
                    1
                ),
            };
            records.push(json!({
                "topic": "sales-events", "partition": partition, "offset": 1000 + offset,
                "timestamp": 0, "timestampType": "CREATE_TIME", "headers": [],
                "value": b64(&value),
            }));
        }
        partitions.insert(format!("sales-events-{partition}"), Value::Array(records));
    }
    json!({"eventSource": "aws:kafka", "records": partitions})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_deliveries_and_disordered_wake_ups_change_nothing() {
    let home = tempfile::tempdir().unwrap();
    let deps = initialised_lake(home.path()).await;
    let at = format_timestamp(now_micros() - MICROS_PER_HOUR);
    let inventory: Vec<String> = (0..10)
        .map(|i| format!(r#"{{"update_id":"u{i}","event_time":"{at}","store_id":1,"product_id":{},"beginning_stock":10,"restocked_quantity":0,"sold_quantity":1,"waste_quantity":0}}"#, 1 + i))
        .collect();
    let key = "landing/inventory-updates/counts.jsonl";
    let path = home.path().join("objects/lake").join(key);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, inventory.join("\n")).unwrap();

    let kafka = || parse_ingest_event(&kafka_batch(&at).to_string()).unwrap();
    let s3 = || parse_ingest_event(&support::s3_event("lake", key).to_string()).unwrap();
    let silver = || to_silver::handle(&deps, None);
    let gold = || to_gold::handle(&deps, None);

    ingest::handle(&deps, kafka()).await.unwrap();
    gold().await.unwrap(); // woken before silver has anything
    ingest::handle(&deps, s3()).await.unwrap();
    silver().await.unwrap();
    silver().await.unwrap();
    let first = ingest::handle(&deps, kafka()).await.unwrap();
    assert_eq!(first.already_committed, 2, "{first:?}"); // sales and quarantine
    assert!(first.committed.is_empty());
    ingest::handle(&deps, s3()).await.unwrap();
    // A lost wake-up for gold, then two at once.
    let (a, b) = tokio::join!(gold(), gold());
    a.unwrap();
    b.unwrap();
    ingest::handle(&deps, kafka()).await.unwrap();
    ingest::handle(&deps, s3()).await.unwrap();
    silver().await.unwrap();
    gold().await.unwrap();
    assert!(silver().await.unwrap().is_empty());
    assert!(gold().await.unwrap().is_empty());

    let bronze: Vec<BronzeSale> = rows(&deps, &tables::BRONZE_SALES).await;
    assert_eq!(bronze.len(), 3 * 21);
    let quarantine: Vec<QuarantineRow> = rows(&deps, &tables::QUARANTINE).await;
    assert_eq!(quarantine.len(), 3);
    let silver_sales: Vec<SilverSale> = rows(&deps, &tables::SILVER_SALES).await;
    let ids: BTreeSet<&str> = silver_sales.iter().map(|s| s.event_id.as_str()).collect();
    assert_eq!((silver_sales.len(), ids.len()), (60, 60));
    // The first ingested of a repeated id wins: quantity 1, not 9.
    assert!(silver_sales.iter().all(|s| s.quantity == 1));
    let facts: Vec<FactSale> = rows(&deps, &tables::FACT_SALES).await;
    assert_eq!(facts.len(), 60);
    let daily: Vec<FactSalesDaily> = rows(&deps, &tables::FACT_SALES_DAILY).await;
    assert_eq!(daily.iter().map(|d| d.line_items).sum::<i64>(), 60);
    assert_eq!(daily.iter().map(|d| d.quantity).sum::<i64>(), 60);
    assert_eq!(
        rows::<BronzeInventory>(&deps, &tables::BRONZE_INVENTORY)
            .await
            .len(),
        10
    );
    assert_eq!(
        rows::<SilverInventory>(&deps, &tables::SILVER_INVENTORY)
            .await
            .len(),
        10
    );
    let fact_inventory: Vec<FactInventory> = rows(&deps, &tables::FACT_INVENTORY).await;
    assert_eq!(fact_inventory.iter().map(|f| f.updates).sum::<i64>(), 10);
}

/// Two bronze commits carry the same id with different values; one silver run takes both:
/// the copy of the earlier commit wins. (Silver reads new files in commit order; this guards
/// that invariant — it also held here before silver sorted them, the appends' manifests
/// happening to be listed in commit order.)
#[tokio::test]
async fn across_bronze_commits_of_one_silver_run_the_earlier_copy_wins() {
    let home = tempfile::tempdir().unwrap();
    let deps = initialised_lake(home.path()).await;
    let at = format_timestamp(now_micros() - MICROS_PER_HOUR);
    for (file, quantity) in [("first.jsonl", 1), ("second.jsonl", 7)] {
        let line = format!(
            r#"{{"event_id":"same","event_time":"{at}","store_id":1,"product_id":1,"quantity":{quantity},"unit_price":3.50}}"#
        );
        ingest::ingest_bytes(
            &deps,
            &format!("landing/sales-events/{file}"),
            None,
            line.as_bytes(),
        )
        .await
        .unwrap();
    }
    to_silver::handle(&deps, None).await.unwrap();
    let silver: Vec<SilverSale> = rows(&deps, &tables::SILVER_SALES).await;
    let got: Vec<(&str, i32)> = silver
        .iter()
        .map(|s| (s.event_id.as_str(), s.quantity))
        .collect();
    assert_eq!(got, [("same", 1)]);
}

/// The source refs of a table's rows, each of which must be there once.
async fn source_refs<T: DeserializeOwned + Ingested>(
    deps: &Deps,
    def: &TableDef,
) -> BTreeSet<String> {
    let rows = rows::<T>(deps, def).await;
    let refs: BTreeSet<String> = rows.iter().map(|r| r.source_ref().to_string()).collect();
    assert_eq!(
        refs.len(),
        rows.len(),
        "a record landed twice in {}",
        def.qualified()
    );
    refs
}

/// A Kafka event of sales-events partition 0 at `offsets`: a sale `k<offset>` each, but every
/// offset divisible by 5 holds a line that is not JSON.
fn sales_event(offsets: std::ops::Range<i64>, at: &str) -> Value {
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let records: Vec<Value> = offsets
        .map(|offset| {
            let value = if offset % 5 == 0 {
                "{\"event_id\": ".to_string()
            } else {
                format!(
                    r#"{{"event_id":"k{offset}","event_time":"{at}","store_id":1,"product_id":1,"quantity":1,"unit_price":2.00}}"#
                )
            };
            json!({"topic": "sales-events", "partition": 0, "offset": offset, "timestamp": 0,
                   "timestampType": "CREATE_TIME", "headers": [], "value": b64(&value)})
        })
        .collect();
    json!({"eventSource": "SelfManagedKafka", "records": {"sales-events-0": records}})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_batch_redriven_after_later_batches_lands_exactly_once() {
    let home = tempfile::tempdir().unwrap();
    let deps = initialised_lake(home.path()).await;
    let at = format_timestamp(now_micros() - MICROS_PER_HOUR);
    let ingest = |event: Value| {
        let deps = &deps;
        async move {
            let event = parse_ingest_event(&event.to_string()).unwrap();
            ingest::handle(deps, event).await.unwrap()
        }
    };
    // The batch of offsets 0..20 failed; a bisected half of it (0..10) landed before Lambda
    // gave up, then the next batch (20..30) landed and moved every checkpoint past the batch.
    ingest(sales_event(0..10, &at)).await;
    ingest(sales_event(20..30, &at)).await;
    // Lambda's on-failure record in S3: the whole batch as an escaped JSON string.
    let record = json!({
        "requestContext": {"requestId": "r-1", "condition": "RetryAttemptsExhausted",
                           "approximateInvokeCount": 11,
                           "functionArn": "arn:aws:lambda:us-east-1:123456789012:function:x"},
        "responseContext": {"statusCode": 200, "executedVersion": "$LATEST",
                            "functionError": "Unhandled"},
        "version": "1.0",
        "timestamp": format_timestamp(now_micros()),
        "KafkaBatchInfo": {"batchSize": 20, "payloadSize": 4000,
                           "recordsInfo": {"sales-events-0": {"firstRecordOffset": "0",
                                                              "lastRecordOffset": "19"}}},
        "payload": sales_event(0..20, &at).to_string(),
    })
    .to_string();
    let first = ingest::redrive_kafka(&deps, parse_failed_batch(&record).unwrap())
        .await
        .unwrap();
    // Only offsets 10..20 were missing: 8 sales and 2 quarantined lines.
    assert_eq!(
        first.committed,
        [
            ("bronze.quarantine".to_string(), 2),
            ("bronze.sales_events".to_string(), 8)
        ]
        .into()
    );
    // A second redrive (or a concurrent one, which recomputes inside its commit) adds nothing.
    let again = ingest::redrive_kafka(&deps, parse_failed_batch(&record).unwrap())
        .await
        .unwrap();
    assert!(again.committed.is_empty(), "{again:?}");
    assert_eq!(again.already_committed, 2);

    let sales = source_refs::<BronzeSale>(&deps, &tables::BRONZE_SALES).await;
    let quarantined = source_refs::<QuarantineRow>(&deps, &tables::QUARANTINE).await;
    let expected = |keep: fn(i64) -> bool| -> BTreeSet<String> {
        (0..30)
            .filter(|o| keep(*o))
            .map(|o| format!("sales-events/0/{o}"))
            .collect()
    };
    assert_eq!(sales, expected(|o| o % 5 != 0));
    assert_eq!(quarantined, expected(|o| o % 5 == 0));

    // A record from an SQS destination holds offsets, not the batch: the error says so.
    let without = json!({"requestContext": {"condition": "RetryAttemptsExhausted"},
                         "KafkaBatchInfo": {"recordsInfo": {"sales-events-0": {
                             "firstRecordOffset": "0", "lastRecordOffset": "19"}}}})
    .to_string();
    let err = parse_failed_batch(&without).unwrap_err();
    assert!(
        err.contains("holds no batch") && err.contains("lastRecordOffset"),
        "{err}"
    );
}
