//! The bronze-to-silver handler woken by a fixture S3 notification of a bronze commit.

#![allow(clippy::unwrap_used)]

use bakehouse::adapters::events::parse_ingest_event;
use bakehouse::adapters::lakehouse::{Lakehouse, tables};
use bakehouse::config::Config;
use bakehouse::domain::records::SilverSale;
use bakehouse::hops::{Deps, PROP_SOURCE_SEQUENCE, ingest};
use lambda_runtime::{Context, LambdaEvent};
use serde_json::Value;

fn fixture(path: &str) -> Value {
    serde_json::from_str(
        &std::fs::read_to_string(format!("{}/{path}", env!("CARGO_MANIFEST_DIR"))).unwrap(),
    )
    .unwrap()
}

#[tokio::test]
async fn silver_takes_new_bronze_rows_once_deduplicated_and_scored() {
    let home = tempfile::tempdir().unwrap();
    let deps = Deps::open(Config::embedded(home.path(), |_| None).unwrap())
        .await
        .unwrap();
    bakehouse::hops::init(&deps, true).await.unwrap();
    let batch =
        parse_ingest_event(&fixture("../ingest/fixtures/kafka-event.json").to_string()).unwrap();
    ingest::handle(&deps, batch).await.unwrap();

    let wake = || {
        LambdaEvent::new(
            fixture("fixtures/s3-bronze-commit.json"),
            Context::default(),
        )
    };
    let outcomes = bronze_to_silver::handler(&deps, wake()).await.unwrap();
    assert_eq!(outcomes.len(), 1, "only the announced table is processed");
    assert_eq!(outcomes[0].added_records, 3);

    let table = deps.lake.load(&tables::SILVER_SALES).await.unwrap();
    let bronze = deps.lake.load(&tables::BRONZE_SALES).await.unwrap();
    let head = bronze
        .metadata()
        .current_snapshot()
        .unwrap()
        .sequence_number()
        .to_string();
    assert_eq!(
        Lakehouse::snapshot_property(&table, PROP_SOURCE_SEQUENCE),
        Some(head.as_str())
    );
    let files = deps.lake.live_files(&table).await.unwrap();
    let mut rows: Vec<SilverSale> = deps.lake.read_rows(&table, &files).await.unwrap();
    rows.sort_by(|a, b| a.event_id.cmp(&b.event_id));
    let got: Vec<_> = rows
        .iter()
        .map(|r| {
            (
                r.event_id.as_str(),
                r.source_ref.as_str(),
                r.quality_score,
                r.revenue.0,
            )
        })
        .collect();
    // k1 arrived twice (partition 0 offset 100 first): the first ingested copy wins.
    assert_eq!(
        got,
        [
            ("k1", "sales-events/0/100", 100, 1450),
            ("k2", "sales-events/0/101", 100, 1450),
            ("k3", "sales-events/1/7", 80, 1450)
        ]
    );
    assert_eq!(rows[2].failed_rules, "store_unknown");

    // A duplicate or late notification finds nothing new.
    assert!(
        bronze_to_silver::handler(&deps, wake())
            .await
            .unwrap()
            .is_empty()
    );
}
