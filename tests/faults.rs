//! Server faults: with `bakehouse local` running on its own private S3 server, PostgreSQL
//! cluster and Kafka broker (started here on other ports, so no other test is disturbed), each
//! server is stopped for a few seconds and started again mid-run. `local` must recover by
//! itself, class every failure it met as retryable, and the tables must end exact.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::process::{Command, Stdio};
use std::time::Duration;

use bakehouse::adapters::lakehouse::{Lakehouse, TableDef, tables};
use bakehouse::config::{Config, Overrides};
use bakehouse::domain::records::{BronzeSale, FactSale, SilverSale};
use bakehouse::domain::time::{MICROS_PER_SECOND, format_timestamp, now_micros};
use rdkafka::ClientConfig;
use rdkafka::producer::{FutureProducer, FutureRecord};
use serde::de::DeserializeOwned;

// Below Linux's ephemeral range (32768–60999): a port in it can be taken by any outgoing
// connection of another test a moment before a restart binds it (this failed CI once).
const S3_PORT: &str = "18114";
const PG_PORT: &str = "15532";
const KAFKA_PORT: &str = "19192";

/// Runs a `dev/` script; returns its standard output.
fn dev(script: &str, args: &[&str]) -> String {
    let path = format!("{}/../dev/{script}", env!("CARGO_MANIFEST_DIR"));
    let output = Command::new(path).args(args).output().unwrap();
    assert!(
        output.status.success(),
        "{script} {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_string()
}

async fn rows<T: DeserializeOwned>(lake: &Lakehouse, def: &TableDef) -> Vec<T> {
    lake.read_table(def).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_recovers_from_s3_postgres_and_broker_restarts() {
    if std::env::var("BAKEHOUSE_TEST_KAFKA").is_err() {
        eprintln!("BAKEHOUSE_TEST_KAFKA is not set: `make test` installs and starts the servers");
        assert!(
            std::env::var("CI").is_err(),
            "CI must run the server-fault test"
        );
        return;
    }
    let id = uuid::Uuid::new_v4().simple().to_string();
    let base = std::env::temp_dir().join(format!("bakehouse-faults-{}", &id[..8]));
    let (s3_dir, pg_dir, kafka_dir) = (
        base.join("s3").display().to_string(),
        base.join("pg").display().to_string(),
        base.join("kafka").display().to_string(),
    );
    std::fs::create_dir_all(&base).unwrap();
    let s3_env = dev("s3.sh", &["start", &s3_dir, S3_PORT]);
    let catalog = dev("postgres.sh", &["start", &pg_dir, PG_PORT]);
    let kafka = dev("kafka.sh", &["start", &kafka_dir, KAFKA_PORT])
        .trim_start_matches("KAFKA_BOOTSTRAP_SERVERS=")
        .to_string();
    let mut env: Vec<(String, String)> = s3_env
        .split_whitespace()
        .filter_map(|p| p.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    env.push((
        "BAKEHOUSE_WAREHOUSE".into(),
        "s3://lake/faults/warehouse".into(),
    ));
    env.push(("BAKEHOUSE_CATALOG".into(), catalog.clone()));
    env.push((
        "BAKEHOUSE_LANDING".into(),
        "s3://lake/faults/landing".into(),
    ));
    env.push(("KAFKA_BOOTSTRAP_SERVERS".into(), kafka.clone()));

    let n: usize = 3_000;
    let bin = std::env::var("BAKEHOUSE_BIN").unwrap_or_else(|_| "bakehouse".to_string());
    let local = Command::new(bin)
        .args([
            "local",
            "--batch-size",
            "20",
            "--batch-window-ms",
            "50",
            "--poll-ms",
            "300",
            "--maintenance-every",
            "0",
        ])
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .env("BAKEHOUSE_LOG", "error")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();

    // Events keep arriving over about 15 s, through the S3 and PostgreSQL outages; after the
    // broker's outage a second wave shows the consumer resumed.
    let produce = |kafka: String, from: usize, to: usize| {
        tokio::spawn(async move {
            let producer: FutureProducer = ClientConfig::new()
                .set("bootstrap.servers", &kafka)
                .set("message.timeout.ms", "120000")
                .create()
                .unwrap();
            let at = format_timestamp(now_micros() - 600 * MICROS_PER_SECOND);
            let mut deliveries = Vec::new();
            for i in from..to {
                let store = 1 + i % 5;
                let line = format!(
                    r#"{{"event_id":"x{i}","event_time":"{at}","store_id":{store},"product_id":4,"quantity":1,"unit_price":4.25}}"#
                );
                let key = store.to_string();
                let record = FutureRecord::to("sales-events").payload(&line).key(&key);
                deliveries.push(producer.send_result(record).map_err(|(e, _)| e).unwrap());
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            for delivery in deliveries {
                delivery.await.unwrap().map_err(|(e, _)| e).unwrap();
            }
        })
    };
    let first_wave = produce(kafka.clone(), 0, n - 500);
    for (script, dir, port) in [
        ("s3.sh", &s3_dir, S3_PORT),
        ("postgres.sh", &pg_dir, PG_PORT),
    ] {
        tokio::time::sleep(Duration::from_millis(1_500)).await;
        dev(script, &["stop", dir]);
        tokio::time::sleep(Duration::from_secs(4)).await;
        dev(script, &["start", dir, port]);
    }
    first_wave.await.unwrap();
    dev("kafka.sh", &["stop", &kafka_dir]);
    tokio::time::sleep(Duration::from_secs(4)).await;
    dev("kafka.sh", &["start", &kafka_dir, KAFKA_PORT]);
    produce(kafka.clone(), n - 500, n).await.unwrap();

    let overrides = Overrides::default();
    let lookup = |name: &str| env.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
    let lake = Lakehouse::open(&Config::from_lookup(&overrides, lookup).unwrap())
        .await
        .unwrap();
    // Let `local` catch up by itself (at most two minutes), then stop it.
    for _ in 0..240 {
        let done = rows::<FactSale>(&lake, &tables::FACT_SALES).await.len();
        if done >= n {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let pid = local.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let output = local.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}");
    // Every failure during the outages must have been classed retryable.
    let last = stdout.lines().last().unwrap_or_default();
    eprintln!("{last}");
    let count = |class: &str| -> u64 {
        let before = last.split(&format!(" {class}")).next().unwrap();
        before.rsplit([' ', '(']).next().unwrap().parse().unwrap()
    };
    assert!(
        count("retryable") > 0,
        "the outages caused no failure: {last}"
    );
    assert_eq!(
        count("permanent"),
        0,
        "{last}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let bronze: Vec<BronzeSale> = rows(&lake, &tables::BRONZE_SALES).await;
    let ids: BTreeSet<&str> = bronze.iter().map(|b| b.event_id.as_str()).collect();
    assert_eq!((bronze.len(), ids.len()), (n, n));
    let silver: Vec<SilverSale> = rows(&lake, &tables::SILVER_SALES).await;
    assert_eq!(silver.len(), n);
    let facts: Vec<FactSale> = rows(&lake, &tables::FACT_SALES).await;
    assert_eq!(facts.len(), n);

    dev("kafka.sh", &["stop", &kafka_dir]);
    dev("s3.sh", &["stop", &s3_dir]);
    dev("postgres.sh", &["stop", &pg_dir]);
    let _ = std::fs::remove_dir_all(&base);
}
