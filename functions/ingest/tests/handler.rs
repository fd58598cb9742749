//! The ingest handler on AWS-shaped fixture events, against an embedded lakehouse in a temp dir.

#![allow(clippy::unwrap_used)]

use bakehouse::adapters::lakehouse::{Lakehouse, TableDef, tables};
use bakehouse::config::Config;
use bakehouse::domain::records::{BronzeReading, BronzeSale, QuarantineRow};
use bakehouse::error::HandlerError;
use bakehouse::hops::{Deps, PROP_KAFKA_OFFSETS};
use lambda_runtime::{Context, LambdaEvent};
use serde::de::DeserializeOwned;
use serde_json::Value;
use serde_json::value::RawValue;

async fn deps(home: &std::path::Path) -> Deps {
    let deps = Deps::open(Config::embedded(home, |_| None).unwrap())
        .await
        .unwrap();
    deps.lake.create_tables().await.unwrap();
    deps
}

fn fixture(name: &str) -> Value {
    let text =
        std::fs::read_to_string(format!("{}/fixtures/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// An invocation of the ingest function: the document's text, as Lambda hands it over.
fn invocation(document: &Value) -> LambdaEvent<Box<RawValue>> {
    let text = serde_json::value::to_raw_value(document).unwrap();
    LambdaEvent::new(text, Context::default())
}

async fn read<T: DeserializeOwned>(lake: &Lakehouse, def: &TableDef) -> Vec<T> {
    lake.read_table(def).await.unwrap()
}

#[tokio::test]
async fn a_kafka_batch_lands_in_bronze_and_quarantine_once() {
    let home = tempfile::tempdir().unwrap();
    let deps = deps(home.path()).await;
    let summary = ingest::handler(&deps, invocation(&fixture("kafka-event.json")))
        .await
        .unwrap();
    assert_eq!(summary.records, 7);
    assert_eq!(summary.quarantined.get("not_json"), Some(&1));
    assert_eq!(summary.quarantined.get("bad_encoding"), Some(&1));

    let mut sales: Vec<BronzeSale> = read(&deps.lake, &tables::BRONZE_SALES).await;
    sales.sort_by(|a, b| a.source_ref.cmp(&b.source_ref));
    let refs: Vec<_> = sales
        .iter()
        .map(|s| (s.source_ref.as_str(), s.event_id.as_str()))
        .collect();
    assert_eq!(
        refs,
        [
            ("sales-events/0/100", "k1"),
            ("sales-events/0/101", "k2"),
            ("sales-events/1/7", "k3"),
            ("sales-events/1/8", "k1")
        ]
    );
    assert!(
        sales
            .iter()
            .all(|s| s.source == "kafka" && s.unit_price.0 == 725)
    );
    let readings: Vec<BronzeReading> = read(&deps.lake, &tables::BRONZE_EQUIPMENT_METRICS).await;
    assert_eq!(
        (readings.len(), readings[0].temperature_c),
        (1, Some(210.5))
    );
    let mut quarantine: Vec<QuarantineRow> = read(&deps.lake, &tables::QUARANTINE).await;
    quarantine.sort_by(|a, b| a.source_ref.cmp(&b.source_ref));
    let q: Vec<_> = quarantine
        .iter()
        .map(|q| (q.source_ref.as_str(), q.error_code.as_str(), q.raw.as_str()))
        .collect();
    assert_eq!(
        q,
        [
            ("sales-events/0/102", "not_json", "not json"),
            ("sales-events/1/9", "bad_encoding", "%%%not-base64")
        ]
    );

    let table = deps.lake.load(&tables::BRONZE_SALES).await.unwrap();
    let offsets: Value =
        serde_json::from_str(Lakehouse::snapshot_property(&table, PROP_KAFKA_OFFSETS).unwrap())
            .unwrap();
    assert_eq!(
        offsets,
        serde_json::json!({"equipment-metrics/2": 40, "sales-events/0": 102, "sales-events/1": 9})
    );

    // Lambda retries the same batch: nothing is added anywhere.
    let again = ingest::handler(&deps, invocation(&fixture("kafka-event.json")))
        .await
        .unwrap();
    assert_eq!((again.commits, again.already_committed), (0, 3));
    assert_eq!(
        read::<BronzeSale>(&deps.lake, &tables::BRONZE_SALES)
            .await
            .len(),
        4
    );
    assert_eq!(
        read::<QuarantineRow>(&deps.lake, &tables::QUARANTINE)
            .await
            .len(),
        2
    );
}

#[tokio::test]
async fn an_s3_notification_ingests_the_object_under_its_decoded_key_once() {
    let home = tempfile::tempdir().unwrap();
    let deps = deps(home.path()).await;
    let dir = home.path().join("objects/lake/landing/sales-events");
    std::fs::create_dir_all(&dir).unwrap();
    let line = r#"{"event_id":"f1","event_time":"2026-03-01T08:00:00Z","store_id":1,"product_id":1,"quantity":1,"unit_price":3.5}"#;
    std::fs::write(dir.join("day one:1.jsonl"), format!("{line}\n{{broken\n")).unwrap();

    let summary = ingest::handler(&deps, invocation(&fixture("s3-landing-event.json")))
        .await
        .unwrap();
    assert_eq!((summary.records, summary.commits), (2, 2));
    let sales: Vec<BronzeSale> = read(&deps.lake, &tables::BRONZE_SALES).await;
    assert_eq!(
        sales[0].source_ref,
        "landing/sales-events/day one:1.jsonl:1"
    );
    assert_eq!(sales[0].source, "file");
    let quarantine: Vec<QuarantineRow> = read(&deps.lake, &tables::QUARANTINE).await;
    assert_eq!(
        quarantine[0].source_ref,
        "landing/sales-events/day one:1.jsonl:2"
    );

    let again = ingest::handler(&deps, invocation(&fixture("s3-landing-event.json")))
        .await
        .unwrap();
    assert_eq!(again.commits, 0);
    assert_eq!(
        read::<BronzeSale>(&deps.lake, &tables::BRONZE_SALES)
            .await
            .len(),
        1
    );
}

#[tokio::test]
async fn the_s3_test_event_is_ignored_and_other_documents_are_refused() {
    let home = tempfile::tempdir().unwrap();
    let deps = deps(home.path()).await;
    let summary = ingest::handler(&deps, invocation(&fixture("s3-test-event.json")))
        .await
        .unwrap();
    assert_eq!((summary.records, summary.commits), (0, 0));
    let odd = serde_json::json!({"hello": "world"});
    let error = ingest::handler(&deps, invocation(&odd)).await.unwrap_err();
    assert!(matches!(error, HandlerError::Event(_)));
    assert!(!error.is_retryable());
}

#[tokio::test]
async fn a_key_leaving_the_object_root_is_quarantined_unread() {
    let home = tempfile::tempdir().unwrap();
    let deps = deps(home.path()).await;
    std::fs::write(home.path().join("secret.jsonl"), "{}").unwrap();
    let mut event = fixture("s3-landing-event.json");
    event["Records"][0]["s3"]["object"]["key"] =
        Value::from("landing/sales-events/../../../secret.jsonl");
    let summary = ingest::handler(&deps, invocation(&event)).await.unwrap();
    assert_eq!(summary.quarantined.get("unsupported_file"), Some(&1));
    let quarantine: Vec<QuarantineRow> = read(&deps.lake, &tables::QUARANTINE).await;
    assert_eq!((quarantine.len(), quarantine[0].raw.as_str()), (1, ""));
    assert!(
        read::<BronzeSale>(&deps.lake, &tables::BRONZE_SALES)
            .await
            .is_empty()
    );
}
