//! Concurrent writer processes on one table: 8 `bakehouse ingest` processes × 50 commits each,
//! with `process` and `maintenance` (gold recomputation and compaction) racing them, on an
//! SQLite catalog and on the PostgreSQL server `make test` starts. Every commit lands; nothing
//! is lost or duplicated in any layer.

#![allow(clippy::unwrap_used)]

// The shared crate's test helpers (a fresh PostgreSQL database per test among them).
#[path = "../shared/tests/support/mod.rs"]
mod support;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Child, Command, Stdio};

use bakehouse::adapters::lakehouse::{Lakehouse, TableDef, tables};
use bakehouse::config::{Config, Overrides};
use bakehouse::domain::records::{BronzeSale, FactSale, SilverSale};
use bakehouse::domain::time::{MICROS_PER_HOUR, format_timestamp, now_micros};
use serde::de::DeserializeOwned;
use support::TempDatabase;

const WRITERS: usize = 8;
const COMMITS: usize = 50;

fn bakehouse(env: &[(&str, String)], args: &[String]) -> Child {
    let bin = std::env::var("BAKEHOUSE_BIN").unwrap_or_else(|_| "bakehouse".to_string());
    Command::new(bin)
        .args(args)
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .env("BAKEHOUSE_COMMIT_ATTEMPTS", "1000")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn wait(child: Child) {
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

async fn rows<T: DeserializeOwned>(lake: &Lakehouse, def: &TableDef) -> Vec<T> {
    lake.read_table(def).await.unwrap()
}

async fn race(dir: &Path, catalog: String) {
    let warehouse = format!("file://{}/warehouse", dir.display());
    let env = [
        ("BAKEHOUSE_WAREHOUSE", warehouse.clone()),
        ("BAKEHOUSE_CATALOG", catalog.clone()),
    ];
    wait(bakehouse(
        &env,
        &["init".to_string(), "--sample".to_string()],
    ));
    let at = format_timestamp(now_micros() - MICROS_PER_HOUR);
    let landing = dir.join("landing/sales-events");
    std::fs::create_dir_all(&landing).unwrap();
    let mut writers = Vec::new();
    for w in 0..WRITERS {
        let mut args = vec!["ingest".to_string()];
        for c in 0..COMMITS {
            let path = landing.join(format!("w{w}-c{c}.jsonl"));
            let lines: Vec<String> = (0..2)
                .map(|i| format!(r#"{{"event_id":"w{w}-c{c}-{i}","event_time":"{at}","store_id":{},"product_id":2,"quantity":1,"unit_price":7.25}}"#, 1 + (w + c) % 5))
                .collect();
            std::fs::write(&path, lines.join("\n")).unwrap();
            args.push(path.display().to_string());
        }
        writers.push(bakehouse(&env, &args));
    }
    // Gold recomputation and compaction race the appends.
    let mut others = Vec::new();
    for _ in 0..3 {
        others.push(bakehouse(&env, &["process".to_string()]));
        others.push(bakehouse(&env, &["maintenance".to_string()]));
    }
    for child in writers.into_iter().chain(others) {
        wait(child);
    }
    wait(bakehouse(&env, &["process".to_string()]));

    let overrides = Overrides {
        warehouse: Some(warehouse),
        catalog: Some(catalog),
    };
    let lake = Lakehouse::open(&Config::from_lookup(&overrides, |_| None).unwrap())
        .await
        .unwrap();
    let expected = WRITERS * COMMITS * 2;
    let bronze: Vec<BronzeSale> = rows(&lake, &tables::BRONZE_SALES).await;
    let ids: BTreeSet<&str> = bronze.iter().map(|b| b.event_id.as_str()).collect();
    assert_eq!((bronze.len(), ids.len()), (expected, expected));
    let table = lake.load(&tables::BRONZE_SALES).await.unwrap();
    let appends = table
        .metadata()
        .snapshots()
        .filter(|s| s.summary().operation == iceberg::spec::Operation::Append)
        .count();
    assert_eq!(appends, WRITERS * COMMITS, "every ingest commit landed");
    let silver: Vec<SilverSale> = rows(&lake, &tables::SILVER_SALES).await;
    assert_eq!(silver.len(), expected);
    let facts: Vec<FactSale> = rows(&lake, &tables::FACT_SALES).await;
    assert_eq!(facts.len(), expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eight_writer_processes_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let catalog = format!("sqlite://{}/catalog.db", dir.path().display());
    race(dir.path(), catalog).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eight_writer_processes_on_postgres() {
    let Some(database) = TempDatabase::create().await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    race(dir.path(), database.url.clone()).await;
    database.drop().await;
}
