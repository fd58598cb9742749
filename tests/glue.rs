//! The AWS Glue catalog on moto's server (PyPI `moto`, started by `dev/moto.sh`, S3 on the same
//! endpoint), through the `bakehouse` command: tables created, written, re-delivered and read
//! with Glue's real request and response shapes, and the pointer's `VersionId` round trip. Then
//! concurrent writer processes on one table through the VersionId stand-in
//! (`dev/glue_versionid_standin.py`: moto refusing a stale `VersionId` as AWS Glue does, which
//! moto alone does not): every commit lands exactly once, and stale updates were refused and
//! re-planned. Skipped unless `BAKEHOUSE_TEST_GLUE` and `BAKEHOUSE_TEST_GLUE_STANDIN` are set.

#![allow(clippy::unwrap_used)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Output};

use serde_json::{Value, json};

/// One HTTP/1.0 request to `endpoint` (`http://127.0.0.1:port`); the status and body.
fn http(
    endpoint: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, String) {
    let address = endpoint.trim_start_matches("http://");
    let mut stream = TcpStream::connect(address).unwrap();
    let mut request = format!(
        "{method} {path} HTTP/1.0\r\nHost: {address}\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    request.push_str(body);
    stream.write_all(request.as_bytes()).unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    let status = answer
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = answer
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

/// A Glue API call (moto does not check signatures).
fn glue(endpoint: &str, operation: &str, input: Value) -> Value {
    let target = format!("AWSGlue.{operation}");
    let headers = [
        ("X-Amz-Target", target.as_str()),
        ("Content-Type", "application/x-amz-json-1.1"),
        (
            "Authorization",
            "AWS4-HMAC-SHA256 Credential=testing/20260101/us-east-1/glue/aws4_request",
        ),
    ];
    let (status, body) = http(endpoint, "POST", "/", &headers, &input.to_string());
    assert_eq!(status, 200, "{operation}: {body}");
    serde_json::from_str(&body).unwrap()
}

/// A fresh server: moto's state reset, and the bucket `lake`.
fn fresh(endpoint: &str) {
    let (status, body) = http(endpoint, "POST", "/moto-api/reset", &[], "");
    assert_eq!(status, 200, "{body}");
    let (status, body) = http(endpoint, "PUT", "/lake", &[], "");
    assert_eq!(status, 200, "{body}");
}

fn bakehouse(endpoint: &str, dir: &Path, args: &[&str]) -> Output {
    let bin = std::env::var("BAKEHOUSE_BIN").unwrap_or_else(|_| "bakehouse".to_string());
    let output = Command::new(bin)
        .args(args)
        .current_dir(dir)
        .env("BAKEHOUSE_CATALOG", "glue")
        .env("BAKEHOUSE_WAREHOUSE", "s3://lake/warehouse")
        .env("BAKEHOUSE_COMMIT_ATTEMPTS", "1000")
        .env("AWS_ENDPOINT_URL", endpoint)
        .env("AWS_REGION", "us-east-1")
        .env("AWS_DEFAULT_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// The numbers of the one result row of `bakehouse sql`.
fn numbers(endpoint: &str, dir: &Path, query: &str) -> Vec<i64> {
    let output = bakehouse(endpoint, dir, &["sql", query]);
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    let rows: Vec<Vec<i64>> = text
        .lines()
        .filter(|l| l.starts_with('|'))
        .map(|l| {
            l.split('|')
                .filter_map(|c| c.trim().parse().ok())
                .collect::<Vec<i64>>()
        })
        .filter(|cells| !cells.is_empty())
        .collect();
    assert_eq!(rows.len(), 1, "{text}");
    rows[0].clone()
}

/// A landing file of `n` sales `prefix-0`… (and, with `bad`, one line that is not JSON).
fn sales_file(dir: &Path, name: &str, prefix: &str, n: usize, bad: bool) -> String {
    let folder = dir.join("landing/sales-events");
    std::fs::create_dir_all(&folder).unwrap();
    let mut text = String::new();
    for i in 0..n {
        text.push_str(&format!(
            r#"{{"event_id":"{prefix}-{i}","event_time":"2026-12-01T10:00:00Z","store_id":1,"product_id":1,"quantity":1,"unit_price":2.50}}"#
        ));
        text.push('\n');
    }
    if bad {
        text.push_str("{not json\n");
    }
    let path = folder.join(name);
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

fn servers() -> Option<(String, String)> {
    match (
        std::env::var("BAKEHOUSE_TEST_GLUE"),
        std::env::var("BAKEHOUSE_TEST_GLUE_STANDIN"),
    ) {
        (Ok(moto), Ok(standin)) => Some((moto, standin)),
        _ => {
            eprintln!("skipped: BAKEHOUSE_TEST_GLUE(_STANDIN) not set (dev/moto.sh start)");
            None
        }
    }
}

#[test]
fn the_glue_catalog_round_trips_on_moto() {
    let Some((moto, _)) = servers() else { return };
    fresh(&moto);
    let dir = tempfile::tempdir().unwrap();
    bakehouse(&moto, dir.path(), &["init", "--sample"]);
    let table = |name: &str| {
        glue(
            &moto,
            "GetTable",
            json!({"DatabaseName": "bronze", "Name": name}),
        )["Table"]
            .clone()
    };
    let created = table("sales_events");
    assert_eq!(created["Parameters"]["table_type"], "ICEBERG", "{created}");
    assert_eq!(created["VersionId"], "1");

    let file = sales_file(dir.path(), "day.jsonl", "g", 5, true);
    let first = bakehouse(&moto, dir.path(), &["ingest", &file]);
    assert!(String::from_utf8_lossy(&first.stdout).contains("5 → bronze.sales_events"));
    let committed = table("sales_events");
    let location = committed["Parameters"]["metadata_location"]
        .as_str()
        .unwrap();
    assert!(
        location.starts_with("s3://lake/warehouse/bronze/sales_events/metadata/")
            && location.ends_with(".metadata.json"),
        "{committed}"
    );
    assert_eq!(
        committed["Parameters"]["previous_metadata_location"],
        created["Parameters"]["metadata_location"]
    );
    assert_eq!(
        committed["VersionId"], "2",
        "one UpdateTable, with the VersionId it read"
    );
    // Delivered again: nothing committed, the table's version unchanged.
    let again = bakehouse(&moto, dir.path(), &["ingest", &file]);
    assert!(String::from_utf8_lossy(&again.stdout).contains("already ingested"));
    assert_eq!(table("sales_events")["VersionId"], "2");

    bakehouse(&moto, dir.path(), &["process"]);
    assert_eq!(
        numbers(&moto, dir.path(), "SELECT count(*) AS n FROM silver.sales"),
        [5]
    );
    assert_eq!(
        numbers(
            &moto,
            dir.path(),
            "SELECT count(*) AS n FROM bronze.quarantine"
        ),
        [1]
    );
}

#[test]
fn concurrent_writers_through_glue_versionid_checks_lose_nothing() {
    const WRITERS: usize = 4;
    const FILES: usize = 4;
    const ROWS: usize = 3;
    let Some((_, standin)) = servers() else {
        return;
    };
    fresh(&standin);
    let dir = tempfile::tempdir().unwrap();
    bakehouse(&standin, dir.path(), &["init", "--sample"]);
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            let files: Vec<String> = (0..FILES)
                .map(|f| {
                    sales_file(
                        dir.path(),
                        &format!("w{w}-f{f}.jsonl"),
                        &format!("w{w}f{f}"),
                        ROWS,
                        false,
                    )
                })
                .collect();
            let (standin, path) = (standin.clone(), dir.path().to_path_buf());
            std::thread::spawn(move || {
                for file in files {
                    bakehouse(&standin, &path, &["ingest", &file]);
                }
            })
        })
        .collect();
    for writer in writers {
        writer.join().unwrap();
    }
    let expected = (WRITERS * FILES * ROWS) as i64;
    assert_eq!(
        numbers(
            &standin,
            dir.path(),
            "SELECT count(*) AS n, count(DISTINCT event_id) AS d FROM bronze.sales_events"
        ),
        [expected, expected]
    );
    // Every file was one commit: the table's version counts them (and its creation).
    let table = glue(
        &standin,
        "GetTable",
        json!({"DatabaseName": "bronze", "Name": "sales_events"}),
    );
    assert_eq!(
        table["Table"]["VersionId"],
        (WRITERS * FILES + 1).to_string()
    );
    // Writers did race inside Glue's window: updates with a stale VersionId were refused (and
    // the commits re-planned, as every row above landed once).
    let (_, body) = http(&standin, "GET", "/_standin/rejections", &[], "");
    let rejections = serde_json::from_str::<Value>(&body).unwrap()["rejections"]
        .as_i64()
        .unwrap();
    assert!(
        rejections > 0,
        "no stale update was refused: the race was not exercised"
    );
}
