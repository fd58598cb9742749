//! The hostile-input corpus (`tests/hostile/cases.json`, written by `make_cases.py`): every
//! case through the ingest hop the way it arrives — a landing file, an S3 notification, a Kafka
//! batch — each in a fresh embedded lake. Every record must land in exactly one table (bronze,
//! or quarantine with the expected reason code), nothing may panic, valid neighbours land.

#![allow(clippy::unwrap_used)]

mod support;

use std::collections::BTreeMap;

use bakehouse::adapters::events::parse_ingest_event;
use bakehouse::adapters::lakehouse::{TableDef, tables};
use bakehouse::config::Config;
use bakehouse::domain::records::QuarantineRow;
use bakehouse::hops::{Deps, ingest};
use base64::Engine;
use serde_json::{Value, json};

const CORPUS: &str = include_str!("../../tests/hostile/cases.json");

/// Expands `{pad:N}` to N letters and `{i}` to `i`.
fn expand(text: &str, i: usize) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(start) = rest.find("{pad:") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 5..];
        let end = after.find('}').unwrap();
        let n: usize = after[..end].parse().unwrap();
        out.push_str(&"x".repeat(n));
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    out.replace("{i}", &i.to_string())
}

fn bytes_of(content: &Value, i: usize) -> Vec<u8> {
    match (content.get("text"), content.get("b64")) {
        (Some(text), _) => expand(text.as_str().unwrap(), i).into_bytes(),
        (_, Some(b64)) => base64::engine::general_purpose::STANDARD
            .decode(b64.as_str().unwrap())
            .unwrap(),
        _ => panic!("a case content needs text or b64: {content}"),
    }
}

fn kafka_event(case: &Value) -> Value {
    let topic = case["topic"].as_str().unwrap();
    let b64 = |bytes: &[u8]| base64::engine::general_purpose::STANDARD.encode(bytes);
    let mut records = Vec::new();
    for message in case["messages"].as_array().unwrap() {
        let repeat = message.get("repeat").and_then(Value::as_u64).unwrap_or(1) as usize;
        for i in 0..repeat {
            let mut record = json!({
                "topic": topic, "partition": 0, "offset": records.len(),
                "timestamp": 1764064800000i64, "timestampType": "CREATE_TIME", "headers": [],
            });
            if let Some(raw) = message.get("raw") {
                record["value"] = raw.clone();
            } else if message.get("none").is_none() {
                record["value"] = json!(b64(&bytes_of(message, i)));
            }
            records.push(record);
        }
    }
    json!({"eventSource": "SelfManagedKafka", "records": {format!("{topic}-0"): records}})
}

async fn count<T: serde::de::DeserializeOwned>(deps: &Deps, def: &TableDef) -> Vec<T> {
    deps.lake.read_table(def).await.unwrap()
}

async fn record_count(deps: &Deps, def: &TableDef) -> u64 {
    let table = deps.lake.load(def).await.unwrap();
    deps.lake
        .live_files(&table)
        .await
        .unwrap()
        .iter()
        .map(|f| f.data_file.record_count())
        .sum()
}

/// Runs one case; returns (bronze rows, quarantine rows by code).
async fn run(case: Value) -> (u64, BTreeMap<String, u64>) {
    let home = tempfile::tempdir().unwrap();
    let deps = Deps::open(Config::embedded(home.path(), |_| None).unwrap())
        .await
        .unwrap();
    bakehouse::hops::init(&deps, true).await.unwrap();
    match case["channel"].as_str().unwrap() {
        "file" => {
            let key = case["key"].as_str().unwrap();
            ingest::ingest_bytes(&deps, key, None, &bytes_of(&case["content"], 0))
                .await
                .unwrap();
        }
        "s3" => {
            let key = case["key"].as_str().unwrap();
            if case["write"].as_bool().unwrap_or(true) {
                let path = home.path().join("objects/lake").join(key);
                std::fs::create_dir_all(path.parent().unwrap()).unwrap();
                std::fs::write(path, bytes_of(&case["content"], 0)).unwrap();
            }
            let event = parse_ingest_event(&support::s3_event("lake", key).to_string()).unwrap();
            ingest::handle(&deps, event).await.unwrap();
        }
        _ => {
            let event = parse_ingest_event(&kafka_event(&case).to_string()).unwrap();
            ingest::handle(&deps, event).await.unwrap();
        }
    }
    let mut bronze = 0;
    for def in [
        tables::BRONZE_SALES,
        tables::BRONZE_EQUIPMENT_METRICS,
        tables::BRONZE_INVENTORY,
    ] {
        bronze += record_count(&deps, &def).await;
    }
    let mut quarantine = BTreeMap::new();
    for row in count::<QuarantineRow>(&deps, &tables::QUARANTINE).await {
        *quarantine.entry(row.error_code).or_insert(0) += 1;
    }
    (bronze, quarantine)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_hostile_record_lands_in_exactly_one_table_with_its_reason() {
    let cases: Vec<Value> = serde_json::from_str(CORPUS).unwrap();
    assert!(cases.len() >= 40, "the corpus has {} cases", cases.len());
    let mut failures = Vec::new();
    for case in cases {
        let name = case["name"].as_str().unwrap().to_string();
        let expected: (u64, BTreeMap<String, u64>) = (
            case["expect_bronze"].as_u64().unwrap(),
            serde_json::from_value(case["expect_quarantine"].clone()).unwrap(),
        );
        // Each case in its own task: a panic is reported with the case's name.
        match tokio::spawn(run(case)).await {
            Ok(got) if got == expected => {}
            Ok(got) => failures.push(format!("{name}: expected {expected:?}, got {got:?}")),
            Err(e) => failures.push(format!("{name}: panicked: {e}")),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_object_over_the_size_cap_is_quarantined_by_key_unread() {
    let home = tempfile::tempdir().unwrap();
    // A 2 KiB cap: a CSV of 3 KiB and an unknown dataset's file of 3 KiB are over it; a CSV
    // and a JSON-lines file under it, and a JSON-lines file over it (streamed), are read.
    let cap = |name: &str| (name == "BAKEHOUSE_MAX_OBJECT_BYTES").then(|| "2048".to_string());
    let deps = Deps::open(Config::embedded(home.path(), cap).unwrap())
        .await
        .unwrap();
    bakehouse::hops::init(&deps, true).await.unwrap();
    let at = "2026-12-01T10:00:00Z";
    let csv_row = |i: usize| format!("e{i},{at},1,1,2,3.50\n");
    let csv = |rows: usize| {
        let mut text = "event_id,event_time,store_id,product_id,quantity,unit_price\n".to_string();
        (0..rows).for_each(|i| text.push_str(&csv_row(i)));
        text
    };
    let json_line = |i: usize| {
        format!(
            r#"{{"event_id":"j{i}","event_time":"{at}","store_id":1,"product_id":1,"quantity":2,"unit_price":3.50}}"#
        ) + "\n"
    };
    let big_csv = csv(3 * 1024 / csv_row(0).len());
    let big_jsonl: String = (0..3 * 1024 / json_line(0).len() + 1)
        .map(json_line)
        .collect();
    assert!(big_csv.len() > 2048 && big_jsonl.len() > 2048);
    let objects = [
        ("landing/sales-events/big.csv", big_csv.clone()),
        ("landing/not-a-dataset/big.jsonl", big_csv),
        ("landing/sales-events/small.csv", csv(3)),
        ("landing/sales-events/big.jsonl", big_jsonl.clone()),
    ];
    for (key, body) in &objects {
        let path = home.path().join("objects/lake").join(key);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, body).unwrap();
        let event = parse_ingest_event(&support::s3_event("lake", key).to_string()).unwrap();
        ingest::handle(&deps, event).await.unwrap();
    }
    let quarantined = count::<QuarantineRow>(&deps, &tables::QUARANTINE).await;
    let mut too_large: Vec<(&str, &str)> = quarantined
        .iter()
        .map(|q| (q.source_ref.as_str(), q.error_code.as_str()))
        .collect();
    too_large.sort();
    assert_eq!(
        too_large,
        [
            ("landing/not-a-dataset/big.jsonl:0", "too_large"),
            ("landing/sales-events/big.csv:0", "too_large"),
        ]
    );
    for q in &quarantined {
        assert!(
            q.error_message.contains("BAKEHOUSE_MAX_OBJECT_BYTES=2048"),
            "{}",
            q.error_message
        );
        assert!(q.raw.is_empty(), "an oversized object is not copied");
    }
    let lines = big_jsonl.lines().count() as u64;
    assert_eq!(record_count(&deps, &tables::BRONZE_SALES).await, 3 + lines);

    // New content of the same size at the same key is a new object (its version differs), and
    // is quarantined again; the same object delivered twice more is not.
    let key = "landing/sales-events/big.csv";
    let path = home.path().join("objects/lake").join(key);
    let same_size = objects[0].1.replacen("e0,", "x0,", 1);
    assert_eq!(same_size.len(), objects[0].1.len());
    std::fs::write(&path, same_size).unwrap();
    let later = std::time::SystemTime::now() + std::time::Duration::from_secs(5);
    std::fs::File::options()
        .write(true)
        .open(&path)
        .unwrap()
        .set_modified(later)
        .unwrap();
    for _ in 0..2 {
        let event = parse_ingest_event(&support::s3_event("lake", key).to_string()).unwrap();
        ingest::handle(&deps, event).await.unwrap();
    }
    let quarantined = count::<QuarantineRow>(&deps, &tables::QUARANTINE).await;
    let of_key = quarantined
        .iter()
        .filter(|q| q.source_ref == format!("{key}:0"))
        .count();
    assert_eq!(of_key, 2, "{quarantined:?}");
}
