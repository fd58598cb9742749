//! `bakehouse produce` and `bakehouse local` against the real local servers that `make up` (and
//! `make test`) start on 127.0.0.1: a Kafka-compatible broker, an S3-compatible server and
//! PostgreSQL. Each test has its own topics, consumer group, S3 prefix and catalog database.
//! Expected values are computed here from the events the test sends.

#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bakehouse::adapters::lakehouse::{Lakehouse, TableDef, tables};
use bakehouse::config::{Config, Overrides};
use bakehouse::domain::records::{BronzeSale, FactSalesDaily, QuarantineRow};
use bakehouse::domain::time::{MICROS_PER_SECOND, date_of, format_timestamp, now_micros};
use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::producer::{FutureProducer, FutureRecord};
use serde::de::DeserializeOwned;

const TOPICS: [&str; 3] = ["sales-events", "equipment-metrics", "inventory-updates"];

/// One test's isolated corner of the servers.
struct Setup {
    env: HashMap<String, String>,
    prefix: String,
    kafka: String,
    admin_db: Option<(String, String)>,
}

impl Setup {
    /// `None` (the test is skipped) when the servers are not configured, outside CI.
    async fn new() -> Option<Setup> {
        let (Ok(kafka), Ok(s3), Ok(postgres)) = (
            std::env::var("BAKEHOUSE_TEST_KAFKA"),
            std::env::var("BAKEHOUSE_TEST_S3"),
            std::env::var("BAKEHOUSE_TEST_POSTGRES"),
        ) else {
            eprintln!(
                "BAKEHOUSE_TEST_KAFKA/S3/POSTGRES are not set: `make test` starts the servers"
            );
            assert!(
                std::env::var("CI").is_err(),
                "CI must run the local-server tests"
            );
            return None;
        };
        let id = uuid::Uuid::new_v4().simple().to_string();
        let database = format!("bakehouse_{id}");
        sqlx::any::install_default_drivers();
        let admin = sqlx::AnyPool::connect(&postgres).await.unwrap();
        sqlx::query(&format!("CREATE DATABASE {database}"))
            .execute(&admin)
            .await
            .unwrap();
        let mut env: HashMap<String, String> = s3
            .split_whitespace()
            .filter_map(|pair| pair.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let catalog = format!("{}/{database}", postgres.rsplit_once('/').unwrap().0);
        env.insert("BAKEHOUSE_CATALOG".into(), catalog);
        env.insert(
            "BAKEHOUSE_WAREHOUSE".into(),
            format!("s3://lake/{id}/warehouse"),
        );
        env.insert(
            "BAKEHOUSE_LANDING".into(),
            format!("s3://lake/{id}/landing"),
        );
        env.insert("KAFKA_BOOTSTRAP_SERVERS".into(), kafka.clone());
        let prefix = format!("t{}.", &id[..12]);
        let admin_client: AdminClient<DefaultClientContext> = ClientConfig::new()
            .set("bootstrap.servers", &kafka)
            .create()
            .unwrap();
        let names: Vec<String> = TOPICS.iter().map(|t| format!("{prefix}{t}")).collect();
        let new: Vec<NewTopic> = names
            .iter()
            .map(|n| NewTopic::new(n, 3, TopicReplication::Fixed(1)))
            .collect();
        for result in admin_client
            .create_topics(&new, &AdminOptions::new())
            .await
            .unwrap()
        {
            result.unwrap();
        }
        Some(Setup {
            env,
            prefix,
            kafka,
            admin_db: Some((postgres, database)),
        })
    }

    fn command(&self, args: &[&str]) -> Command {
        let bin = std::env::var("BAKEHOUSE_BIN").unwrap_or_else(|_| "bakehouse".to_string());
        let mut command = Command::new(bin);
        command
            .args(args)
            .envs(&self.env)
            .env("BAKEHOUSE_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        command
    }

    /// `bakehouse local` with this test's topics and group, as a child process.
    fn local(&self, extra: &[&str]) -> Child {
        let group = format!("{}group", self.prefix);
        let mut args = vec![
            "local",
            "--topic-prefix",
            &self.prefix,
            "--group",
            &group,
            "--maintenance-every",
            "0",
            "--status-every",
            "5",
        ];
        if !extra.contains(&"--poll-ms") {
            args.extend_from_slice(&["--poll-ms", "300"]);
        }
        args.extend_from_slice(extra);
        self.command(&args).spawn().unwrap()
    }

    /// Runs `bakehouse local --until-idle` to its end (at most two minutes).
    fn local_until_idle(&self, extra: &[&str]) -> String {
        let mut args = vec!["--until-idle", "--duration", "120"];
        args.extend_from_slice(extra);
        let output = self.local(&args).wait_with_output().unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout).to_string();
        assert!(
            output.status.success(),
            "{stdout}\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(stdout.contains("caught up"), "{stdout}");
        stdout
    }

    async fn lake(&self) -> Lakehouse {
        let config =
            Config::from_lookup(&Overrides::default(), |name| self.env.get(name).cloned()).unwrap();
        Lakehouse::open(&config).await.unwrap()
    }

    async fn rows<T: DeserializeOwned>(&self, def: &TableDef) -> Vec<T> {
        let lake = self.lake().await;
        lake.read_table(def).await.unwrap()
    }

    /// Rows of `def` so far; 0 while `local`, just started, has not created its tables yet.
    async fn rows_so_far<T: DeserializeOwned>(&self, def: &TableDef) -> usize {
        let lake = self.lake().await;
        match lake.load(def).await {
            Ok(_) => lake.read_table::<T>(def).await.unwrap().len(),
            Err(_) => 0,
        }
    }

    async fn send(&self, messages: &[(&str, Option<String>, String)]) {
        let producer: FutureProducer = ClientConfig::new()
            .set("bootstrap.servers", &self.kafka)
            .create()
            .unwrap();
        for (topic, key, value) in messages {
            let topic = format!("{}{topic}", self.prefix);
            let mut record = FutureRecord::to(&topic).payload(value.as_bytes());
            if let Some(key) = key {
                record = record.key(key.as_bytes());
            }
            producer
                .send(record, Duration::from_secs(30))
                .await
                .map_err(|(e, _)| e)
                .unwrap();
        }
    }

    async fn drop_database(&mut self) {
        if let Some((server, database)) = self.admin_db.take() {
            let admin = sqlx::AnyPool::connect(&server).await.unwrap();
            let _ = sqlx::query(&format!("DROP DATABASE {database} WITH (FORCE)"))
                .execute(&admin)
                .await;
        }
    }
}

/// business_date × store × product, and quantity, revenue in cents, line items, transactions.
type Grain = (i32, i32, i32);
type Daily = (i64, i64, i64, i64);

const PRICES_CENTS: [i64; 10] = [350, 725, 400, 425, 475, 325, 650, 225, 550, 295];

/// A valid sale of the default reference data, `minutes_ago` before now.
fn sale(id: &str, i: i64, minutes_ago: i64) -> (String, String) {
    let store = 1 + i % 5;
    let product = 1 + i % 10;
    let at = format_timestamp(now_micros() - minutes_ago * 60 * MICROS_PER_SECOND);
    let price = PRICES_CENTS[(product - 1) as usize];
    let line = format!(
        r#"{{"event_id":"{id}","transaction_id":"tx{}","event_time":"{at}","store_id":{store},"product_id":{product},"quantity":{},"unit_price":{}.{:02}}}"#,
        i / 2,
        1 + i % 4,
        price / 100,
        price % 100
    );
    (store.to_string(), line)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_events_reach_gold_exactly() {
    let Some(mut setup) = Setup::new().await else {
        return;
    };
    let mut messages: Vec<(&str, Option<String>, String)> = Vec::new();
    let mut expected: BTreeMap<Grain, (i64, i64, i64, BTreeSet<String>)> = BTreeMap::new();
    for i in 0..300 {
        let (key, line) = sale(&format!("k{i}"), i, i % 50);
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        let at =
            bakehouse::domain::time::parse_timestamp(v["event_time"].as_str().unwrap()).unwrap();
        let entry = expected
            .entry((
                date_of(at),
                v["store_id"].as_i64().unwrap() as i32,
                v["product_id"].as_i64().unwrap() as i32,
            ))
            .or_default();
        let quantity = v["quantity"].as_i64().unwrap();
        entry.0 += quantity;
        entry.1 += quantity * PRICES_CENTS[(v["product_id"].as_i64().unwrap() - 1) as usize];
        entry.2 += 1;
        entry
            .3
            .insert(v["transaction_id"].as_str().unwrap().to_string());
        messages.push(("sales-events", Some(key), line));
    }
    // Redelivered ids with other values (the first ingested wins), and broken records. Each
    // copy has its original's key, so it is in the same partition, after it: Kafka orders a
    // partition, not a topic, so only then is "first ingested" the original.
    for i in 0..15 {
        let (key, _) = sale(&format!("k{i}"), i, i % 50);
        let (_, line) = sale(&format!("k{i}"), i + 1, 1);
        messages.push(("sales-events", Some(key), line));
    }
    for i in 0..10 {
        messages.push((
            "sales-events",
            Some("1".into()),
            format!("{{\"event_id\": \"broken{i}"),
        ));
    }
    setup.send(&messages).await;
    // Before ingest, `status` shows every sent record as consumer lag.
    assert!(
        setup
            .command(&["init", "--sample"])
            .status()
            .unwrap()
            .success()
    );
    let lag = |setup: &Setup| -> (i64, i64) {
        let output = setup
            .command(&["status", "--json", "--topic-prefix", &setup.prefix])
            .output()
            .unwrap();
        assert!(output.status.success(), "{output:?}");
        let status: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
        let partitions = status["kafka_lag"].as_array().unwrap();
        assert_eq!(partitions.len(), 3 * TOPICS.len(), "{partitions:?}");
        let sum = |key: &str| partitions.iter().map(|p| p[key].as_i64().unwrap()).sum();
        (sum("end_offset"), sum("lag"))
    };
    assert_eq!(lag(&setup), (325, 325));

    let out = setup.local_until_idle(&[]);
    eprintln!("{out}");
    assert_eq!(lag(&setup), (325, 0));

    let daily: Vec<FactSalesDaily> = setup.rows(&tables::FACT_SALES_DAILY).await;
    let got: BTreeMap<Grain, Daily> = daily
        .into_iter()
        .map(|d| {
            (
                (d.business_date, d.store_id, d.product_id),
                (d.quantity, d.revenue.0, d.line_items, d.transactions),
            )
        })
        .collect();
    let want: BTreeMap<Grain, Daily> = expected
        .into_iter()
        .map(|(k, (q, r, n, t))| (k, (q, r, n, t.len() as i64)))
        .collect();
    assert_eq!(got, want);
    let bronze: Vec<BronzeSale> = setup.rows(&tables::BRONZE_SALES).await;
    assert_eq!(bronze.len(), 315);
    let quarantine: Vec<QuarantineRow> = setup.rows(&tables::QUARANTINE).await;
    assert_eq!(quarantine.len(), 10);
    assert!(quarantine.iter().all(|q| q.error_code == "not_json"));
    setup.drop_database().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_uploaded_to_landing_reach_bronze() {
    let Some(mut setup) = Setup::new().await else {
        return;
    };
    let lake = setup.lake().await;
    let landing = setup.env["BAKEHOUSE_LANDING"].clone();
    let lines: Vec<String> = (0..20).map(|i| sale(&format!("f{i}"), i, 5).1).collect();
    // Any S3 client: written with the storage client, under a key that needs URL-encoding.
    lake.file_io()
        .new_output(format!("{landing}/sales-events/day one+more.jsonl"))
        .unwrap()
        .write(lines.join("\n").into())
        .await
        .unwrap();
    let csv = "update_id,event_time,store_id,product_id,beginning_stock,restocked_quantity,sold_quantity,waste_quantity\n\
               u1,2026-01-01T08:00:00Z,1,1,10,0,5,1\nu2,2026-01-01T09:00:00Z,2,2,10,0,5,1\n";
    lake.file_io()
        .new_output(format!("{landing}/inventory-updates/counts.csv"))
        .unwrap()
        .write(csv.as_bytes().to_vec().into())
        .await
        .unwrap();
    setup.local_until_idle(&["--no-kafka"]);
    let bronze: Vec<BronzeSale> = setup.rows(&tables::BRONZE_SALES).await;
    assert_eq!(bronze.len(), 20);
    assert!(bronze.iter().all(|b| {
        b.source_ref
            .contains("landing/sales-events/day one+more.jsonl:")
    }));
    let inventory: Vec<bakehouse::domain::records::BronzeInventory> =
        setup.rows(&tables::BRONZE_INVENTORY).await;
    assert_eq!(inventory.len(), 2);
    let silver: Vec<bakehouse::domain::records::SilverSale> =
        setup.rows(&tables::SILVER_SALES).await;
    assert_eq!(silver.len(), 20);
    // A second run finds nothing new.
    setup.local_until_idle(&["--no-kafka"]);
    assert_eq!(
        setup.rows::<BronzeSale>(&tables::BRONZE_SALES).await.len(),
        20
    );
    setup.drop_database().await;
}

/// Stops `local` mid-stream twice — SIGKILL, then SIGTERM — and runs it again to the end:
/// every event is in bronze, silver and gold exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopping_and_restarting_local_loses_and_duplicates_nothing() {
    let Some(mut setup) = Setup::new().await else {
        return;
    };
    let n = 3_000;
    let messages: Vec<(&str, Option<String>, String)> = (0..n)
        .map(|i| {
            let (key, line) = sale(&format!("r{i}"), i, i % 30);
            ("sales-events", Some(key), line)
        })
        .collect();
    setup.send(&messages).await;
    let mut before = 0;
    for signal in ["KILL", "TERM"] {
        let child = setup.local(&["--batch-size", "25", "--batch-window-ms", "50"]);
        let started = Instant::now();
        // Let it take part of the stream, then stop it.
        loop {
            tokio::time::sleep(Duration::from_millis(300)).await;
            let ingested = setup.rows_so_far::<BronzeSale>(&tables::BRONZE_SALES).await as i64;
            if ingested > before || started.elapsed() > Duration::from_secs(60) {
                break;
            }
        }
        let status = Command::new("kill")
            .args([&format!("-{signal}"), &child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let output = child.wait_with_output().unwrap();
        if signal == "TERM" {
            let stdout = String::from_utf8_lossy(&output.stdout);
            assert!(stdout.contains("Stopping (signal)"), "{stdout}");
        }
        let bronze = setup.rows::<BronzeSale>(&tables::BRONZE_SALES).await.len() as i64;
        eprintln!("after SIG{signal}: {bronze} of {n} in bronze");
        assert!(bronze <= n);
        before = bronze;
    }
    setup.local_until_idle(&["--batch-size", "25", "--batch-window-ms", "50"]);
    let bronze: Vec<BronzeSale> = setup.rows(&tables::BRONZE_SALES).await;
    let ids: BTreeSet<&str> = bronze.iter().map(|b| b.event_id.as_str()).collect();
    assert_eq!((bronze.len(), ids.len()), (n as usize, n as usize));
    let silver: Vec<bakehouse::domain::records::SilverSale> =
        setup.rows(&tables::SILVER_SALES).await;
    assert_eq!(silver.len(), n as usize);
    let facts: Vec<bakehouse::domain::records::FactSale> = setup.rows(&tables::FACT_SALES).await;
    assert_eq!(facts.len(), n as usize);
    setup.drop_database().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn produced_events_all_land_in_bronze_or_quarantine() {
    let Some(mut setup) = Setup::new().await else {
        return;
    };
    // Topics that do not exist: a clear error before anything is sent.
    let missing = setup
        .command(&["produce", "--count", "3", "--topic-prefix", "nosuch."])
        .output()
        .unwrap();
    let message = String::from_utf8_lossy(&missing.stderr);
    assert!(!missing.status.success());
    assert!(
        message.contains("has no topic nosuch.sales-events"),
        "{message}"
    );
    let output = setup
        .command(&[
            "produce",
            "--count",
            "500",
            "--topic-prefix",
            &setup.prefix,
            "--seed",
            "11",
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).to_string();
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("Sent 500 events"), "{stdout}");
    setup.local_until_idle(&[]);
    let lake = setup.lake().await;
    let mut total = 0;
    for def in [
        tables::BRONZE_SALES,
        tables::BRONZE_EQUIPMENT_METRICS,
        tables::BRONZE_INVENTORY,
        tables::QUARANTINE,
    ] {
        let table = lake.load(&def).await.unwrap();
        total += lake
            .live_files(&table)
            .await
            .unwrap()
            .iter()
            .map(|f| f.data_file.record_count())
            .sum::<u64>();
    }
    assert_eq!(total, 500);
    setup.drop_database().await;
}

/// A commit made by `local` wakes the next hop at once: with the catalog polled only once a
/// minute, events sent after the start still reach gold within seconds (ingest wakes
/// bronze-to-silver, whose commit wakes silver-to-gold).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_wakes_the_next_hop_without_waiting_for_the_poll() {
    let Some(mut setup) = Setup::new().await else {
        return;
    };
    assert!(
        setup
            .command(&["init", "--sample"])
            .status()
            .unwrap()
            .success()
    );
    let mut child = setup.local(&["--poll-ms", "60000", "--duration", "120"]);
    // The hops' first look at the catalog is at the start: send after it.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let messages: Vec<(&str, Option<String>, String)> = (0..40)
        .map(|i| {
            let (key, line) = sale(&format!("w{i}"), i, 1);
            ("sales-events", Some(key), line)
        })
        .collect();
    let sent = Instant::now();
    setup.send(&messages).await;
    let mut facts = 0;
    while facts < 40 && sent.elapsed() < Duration::from_secs(45) {
        tokio::time::sleep(Duration::from_millis(250)).await;
        facts = setup
            .rows_so_far::<bakehouse::domain::records::FactSale>(&tables::FACT_SALES)
            .await;
    }
    let waited = sent.elapsed();
    child.kill().unwrap();
    let output = child.wait_with_output().unwrap();
    assert_eq!(
        facts,
        40,
        "after {waited:?}:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    setup.drop_database().await;
}
