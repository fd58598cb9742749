//! The built Lambda bootstraps (`make build-lambda`), each run as its own process against cargo
//! lambda's runtime API emulator (`cargo lambda watch --only-lambda-apis`) and invoked with the
//! functions' fixture events through `cargo lambda invoke`, on a local warehouse and a
//! PostgreSQL catalog (the Lambda build has no SQLite): every function answers, and its tables
//! change as the fixtures say.

#![allow(clippy::unwrap_used)]

// The shared crate's test helpers (a fresh PostgreSQL database per test among them).
#[path = "../shared/tests/support/mod.rs"]
mod support;
#[path = "../shared/tests/support/weather_api.rs"]
mod weather_api;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bakehouse::adapters::lakehouse::{Lakehouse, TableDef, tables};
use bakehouse::config::{Config, Overrides};
use bakehouse::domain::time::{MICROS_PER_HOUR, format_timestamp, now_micros};
use serde_json::Value;
use support::TempDatabase;

/// A process killed when the test ends, passed or not.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A variable `make test` sets for these tests (the built bootstraps, cargo-lambda); without
/// it a test is skipped, except under CI, which must run them.
fn from_make(name: &str) -> Option<PathBuf> {
    let value = std::env::var_os(name);
    if value.is_none() {
        eprintln!("{name} is not set: `make test` builds the bootstraps and sets it");
        assert!(std::env::var("CI").is_err(), "CI must run the bootstraps");
    }
    value.map(PathBuf::from)
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The lakehouse's settings for the functions and for this test's own reads: a local
/// warehouse and a PostgreSQL catalog (the Lambda build has no SQLite catalog).
fn lake_env(home: &Path, catalog: &str) -> Vec<(String, String)> {
    vec![
        (
            "BAKEHOUSE_WAREHOUSE".into(),
            format!("file://{}/warehouse", home.display()),
        ),
        ("BAKEHOUSE_CATALOG".into(), catalog.to_string()),
        // The S3 objects of the fixtures' notifications, read from the local disk.
        (
            "BAKEHOUSE_OBJECT_ROOT".into(),
            format!("file://{}/objects", home.display()),
        ),
    ]
}

/// Starts `function`'s bootstrap behind its own runtime API emulator; returns the port to
/// invoke and the two processes.
fn start(
    cargo_lambda: &Path,
    lambda_dir: &Path,
    function: &str,
    home: &Path,
    catalog: &str,
    settings: &[(&str, String)],
) -> (u16, [Running; 2]) {
    let port = free_port();
    let emulator = Command::new(cargo_lambda)
        .args([
            "lambda",
            "watch",
            "--only-lambda-apis",
            "-A",
            "127.0.0.1",
            "-P",
        ])
        .arg(port.to_string())
        .current_dir(repo())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let emulator = Running(emulator);
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "the emulator did not listen");
        std::thread::sleep(Duration::from_millis(100));
    }
    let bootstrap = bootstrap(
        lambda_dir,
        function,
        home,
        catalog,
        &format!("http://127.0.0.1:{port}/.rt"),
    )
    .env("AWS_LAMBDA_LOG_FORMAT", "JSON")
    .envs(settings.iter().map(|(k, v)| (*k, v)))
    .stdout(std::fs::File::create(log_of(home, function)).unwrap())
    .stderr(Stdio::inherit())
    .spawn()
    .unwrap();
    (port, [emulator, Running(bootstrap)])
}

/// `function`'s bootstrap as Lambda starts it: the lake's settings, the function's identity and
/// the runtime API at `api`.
fn bootstrap(lambda_dir: &Path, function: &str, home: &Path, catalog: &str, api: &str) -> Command {
    let mut command = Command::new(lambda_dir.join(function).join("bootstrap"));
    command
        .envs(lake_env(home, catalog))
        .env("AWS_LAMBDA_FUNCTION_NAME", "_")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "1")
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "1024")
        .env("AWS_LAMBDA_RUNTIME_API", api);
    command
}

/// Where a bootstrap's stdout (its logs and EMF metric lines) goes.
fn log_of(home: &Path, function: &str) -> PathBuf {
    home.join(format!("{function}.log"))
}

/// The EMF documents a bootstrap printed, with `Function` = `function` and the dimension
/// `dimension` = `value`.
fn emf(home: &Path, function: &str, dimension: &str, value: &str) -> Vec<Value> {
    std::fs::read_to_string(log_of(home, function))
        .unwrap()
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|doc| doc.get("_aws").is_some() && doc["Function"] == function)
        .filter(|doc| doc[dimension] == value)
        .collect()
}

/// The sum of metric `name` over documents.
fn total(docs: &[Value], name: &str) -> f64 {
    docs.iter().map(|d| d[name].as_f64().unwrap()).sum()
}

/// `cargo lambda invoke` with a fixture; returns the function's answer.
fn invoke(cargo_lambda: &Path, port: u16, fixture: &Path) -> Value {
    let output = Command::new(cargo_lambda)
        .args(["lambda", "invoke", "-A", "127.0.0.1", "-P"])
        .arg(port.to_string())
        .arg("--data-file")
        .arg(fixture)
        .args(["--output-format", "json", "_"])
        .current_dir(repo())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "invoke {}: {stdout}\n{}",
        fixture.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"))
}

async fn count(lake: &Lakehouse, def: &TableDef) -> usize {
    let table = lake.load(def).await.unwrap();
    let files = lake.live_files(&table).await.unwrap();
    files
        .iter()
        .map(|f| f.data_file.record_count() as usize)
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_bootstrap_answers_its_fixture_through_the_runtime_api() {
    let (Some(lambda_dir), Some(cargo_lambda)) =
        (from_make("BAKEHOUSE_LAMBDA_DIR"), from_make("CARGO_LAMBDA"))
    else {
        return;
    };
    let Some(database) = TempDatabase::create().await else {
        return;
    };
    let home = tempfile::tempdir().unwrap();
    let env = lake_env(home.path(), &database.url);
    let lookup = |name: &str| env.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
    let config = Config::from_lookup(&Overrides::default(), lookup).unwrap();
    let deps = bakehouse::hops::Deps::open(config).await.unwrap();
    bakehouse::hops::init(&deps, true).await.unwrap();
    let lake = &deps.lake;

    // The object the landing fixture announces (`landing/sales-events/day+one%3A1.jsonl` in
    // bucket `lake`): three valid sales of known stores, two hours old (the Kafka fixture's
    // sales, from 2026-03-01, are past the allowed lateness: silver keeps them, gold does not).
    let at = format_timestamp(now_micros() - 2 * MICROS_PER_HOUR);
    let landed = home
        .path()
        .join("objects/lake/landing/sales-events/day one:1.jsonl");
    std::fs::create_dir_all(landed.parent().unwrap()).unwrap();
    let lines: Vec<String> = (1..=3)
        .map(|i| {
            format!(
                r#"{{"event_id":"f{i}","event_time":"{at}","store_id":{i},"product_id":1,"quantity":1,"unit_price":3.50}}"#
            )
        })
        .collect();
    std::fs::write(&landed, lines.join("\n")).unwrap();

    let fixtures = repo().join("functions");
    let run = |function: &str| {
        start(
            &cargo_lambda,
            &lambda_dir,
            function,
            home.path(),
            &database.url,
            &[],
        )
    };

    // ingest: the Kafka batch (7 records: 4 sales, 1 reading, 2 broken) and the landed file.
    {
        let (port, _processes) = run("ingest");
        let answer = invoke(
            &cargo_lambda,
            port,
            &fixtures.join("ingest/fixtures/kafka-event.json"),
        );
        assert_eq!(answer["records"], 7, "{answer}");
        let answer = invoke(
            &cargo_lambda,
            port,
            &fixtures.join("ingest/fixtures/s3-landing-event.json"),
        );
        assert_eq!(answer["records"], 3, "{answer}");
    }
    assert_eq!(count(lake, &tables::BRONZE_SALES).await, 4 + 3);
    assert_eq!(count(lake, &tables::BRONZE_EQUIPMENT_METRICS).await, 1);
    assert_eq!(count(lake, &tables::QUARANTINE).await, 2);
    // One EMF line per invocation, per table written and per quarantine reason.
    let invocations = emf(home.path(), "ingest", "Function", "ingest")
        .into_iter()
        .filter(|d| d.get("Duration").is_some())
        .collect::<Vec<_>>();
    assert_eq!(total(&invocations, "Invocations"), 2.0);
    assert_eq!(total(&invocations, "Errors"), 0.0);
    let sales = emf(home.path(), "ingest", "Table", "bronze.sales_events");
    assert_eq!(total(&sales, "RecordsOut"), 7.0);
    let quarantine = emf(home.path(), "ingest", "Table", "bronze.quarantine");
    assert_eq!(total(&quarantine, "RecordsOut"), 2.0);

    // bronze-to-silver, woken by a bronze commit: k1 twice → once; k1, k2, k3, f1..f3.
    {
        let (port, _processes) = run("bronze-to-silver");
        invoke(
            &cargo_lambda,
            port,
            &fixtures.join("bronze-to-silver/fixtures/s3-bronze-commit.json"),
        );
    }
    assert_eq!(count(lake, &tables::SILVER_SALES).await, 6);
    // 7 bronze sales, k1 twice; k1..k3 are from 2026-03-01: too late for gold.
    let silver = emf(home.path(), "bronze-to-silver", "Table", "silver.sales");
    assert_eq!(silver.len(), 1, "{silver:?}");
    assert_eq!(
        [
            total(&silver, "RecordsIn"),
            total(&silver, "RecordsOut"),
            total(&silver, "Duplicates"),
            total(&silver, "TooLate"),
        ],
        [7.0, 6.0, 1.0, 3.0]
    );
    assert!(silver[0]["AvgQualityScore"].as_f64().unwrap() > 0.0);

    // silver-to-gold, woken by a silver commit: one fact per recent silver sale (f1..f3).
    {
        let (port, _processes) = run("silver-to-gold");
        invoke(
            &cargo_lambda,
            port,
            &fixtures.join("silver-to-gold/fixtures/s3-silver-commit.json"),
        );
    }
    assert_eq!(count(lake, &tables::FACT_SALES).await, 3);

    // maintenance on the schedule: the default reference snapshot becomes the dimensions.
    {
        let (port, _processes) = run("maintenance");
        let answer = invoke(
            &cargo_lambda,
            port,
            &fixtures.join("maintenance/fixtures/scheduled-event.json"),
        );
        assert!(answer["commits"].as_u64().unwrap() > 0, "{answer}");
    }
    assert_eq!(count(lake, &tables::DIM_STORE).await, 5);
    assert_eq!(count(lake, &tables::DIM_PRODUCT).await, 10);

    // fetch-weather on its schedule, asking a local HTTP server: one object per sample store
    // lands under landing/weather/ for the ingest function's notification.
    let api = weather_api::WeatherApi::start(|_, _| {
        weather_api::Reply::ok(&weather_api::fixture("forecast.json"))
    });
    {
        let settings = [("BAKEHOUSE_WEATHER_URL", api.url.clone())];
        let (port, _processes) = start(
            &cargo_lambda,
            &lambda_dir,
            "fetch-weather",
            home.path(),
            &database.url,
            &settings,
        );
        let answer = invoke(
            &cargo_lambda,
            port,
            &fixtures.join("fetch-weather/fixtures/scheduled-event.json"),
        );
        assert_eq!(answer["landed"].as_array().unwrap().len(), 5, "{answer}");
        assert_eq!(answer["requests"], 5, "{answer}");
    }
    let landed = std::fs::read_dir(home.path().join("landing/weather")).unwrap();
    assert_eq!(landed.count(), 5);
    drop(deps);
    database.drop().await;
}

#[test]
fn a_bootstrap_refuses_an_sqlite_catalog_naming_the_accepted_ones() {
    let Some(lambda_dir) = from_make("BAKEHOUSE_LAMBDA_DIR") else {
        return;
    };
    let home = tempfile::tempdir().unwrap();
    let catalog = format!("sqlite://{}/catalog.db", home.path().display());
    let out = Command::new(lambda_dir.join("ingest/bootstrap"))
        .env("BAKEHOUSE_CATALOG", &catalog)
        .env("AWS_LAMBDA_RUNTIME_API", "127.0.0.1:9")
        .output()
        .unwrap();
    let errors = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{errors}");
    for part in [
        "BAKEHOUSE_CATALOG",
        &catalog,
        "postgres://",
        "glue",
        "no SQLite",
    ] {
        assert!(errors.contains(part), "{part} not in {errors}");
    }
    assert!(!home.path().join("catalog.db").exists());
}

/// A panic in a bootstrap (built to abort, without unwind tables) still says what and where,
/// and ends the process, so Lambda reports the invocation failed. The panic is
/// `lambda_runtime`'s own: a next-invocation answer without a request id (which Lambda's
/// runtime API always sends) is one it does not handle.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_bootstrap_logs_the_panic_and_aborts() {
    use std::io::{BufRead, BufReader, Write};
    use std::os::unix::process::ExitStatusExt;

    let Some(lambda_dir) = from_make("BAKEHOUSE_LAMBDA_DIR") else {
        return;
    };
    let Some(database) = TempDatabase::create().await else {
        return;
    };
    // A runtime API that answers the first poll with an event but no request id.
    let api = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = api.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let (stream, _) = api.accept().unwrap();
        let mut reader = BufReader::new(stream.try_clone().unwrap());
        let mut line = String::new();
        while reader.read_line(&mut line).unwrap() > 0 && line != "\r\n" {
            line.clear();
        }
        let mut stream = stream;
        stream
            .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}")
            .unwrap();
    });
    let home = tempfile::tempdir().unwrap();
    let api = format!("127.0.0.1:{port}");
    let out = bootstrap(&lambda_dir, "ingest", home.path(), &database.url, &api)
        .output()
        .unwrap();
    let errors = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.signal(), Some(6), "not aborted: {errors}");
    for part in [
        "panicked at",
        "lambda_runtime",
        "missing lambda-runtime-aws-request-id header",
    ] {
        assert!(errors.contains(part), "{part} not in {errors}");
    }
    database.drop().await;
}
