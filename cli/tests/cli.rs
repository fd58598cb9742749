//! The `bakehouse` binary as a user runs it: clear errors naming the bad flag, dataset or file,
//! and the embedded happy path (init, ingest twice, process, sql, status).

#![allow(clippy::unwrap_used)]

use std::process::{Command, Output};

fn bakehouse(home: &std::path::Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_bakehouse"))
        .args(args)
        .current_dir(home)
        .env_remove("BAKEHOUSE_WAREHOUSE")
        .env_remove("BAKEHOUSE_CATALOG")
        .env_remove("AWS_REGION")
        .env_remove("AWS_ENDPOINT_URL")
        .env_remove("BAKEHOUSE_OBJECT_ROOT")
        .output()
        .unwrap()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn bad_input_stops_with_a_message_naming_it() {
    let home = tempfile::tempdir().unwrap();
    let landing = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../functions/ingest/fixtures/s3-landing-event.json"
    );
    let cases: [(&[&str], &[&str]); 8] = [
        (
            &["--catalog", "postgres://u:secret@127.0.0.1:9/db", "status"],
            &[
                "no answer from the catalog database postgres://u:***@127.0.0.1:9/db?sslmode=prefer within 5 s",
            ],
        ),
        // No broker listens on port 9: both stop within seconds, naming what they tried.
        (
            &[
                "produce",
                "--count",
                "1",
                "--bootstrap-servers",
                "127.0.0.1:9",
            ],
            &["no Kafka broker answered at 127.0.0.1:9 within 5 s"],
        ),
        (
            &[
                "local",
                "--until-idle",
                "--bootstrap-servers",
                "127.0.0.1:9",
            ],
            &["no Kafka broker answered at 127.0.0.1:9"],
        ),
        (
            &["ingest", "--dataset", "sales", "x.jsonl"],
            &[
                "unknown dataset \"sales\"",
                "sales-events, equipment-metrics",
            ],
        ),
        (
            &["ingest", "--dataset", "sales-events", "missing.jsonl"],
            &["cannot read missing.jsonl"],
        ),
        (
            &["--warehouse", "/tmp/x", "status"],
            &["--warehouse", "file:///absolute/path or s3://bucket/prefix"],
        ),
        (
            &["--catalog", "mysql://x", "status"],
            &["--catalog", "sqlite:///"],
        ),
        (
            &["invoke", "ingest", "--event", landing],
            &[
                "cannot read s3://lake/landing/sales-events/day one:1.jsonl",
                "no S3 region is set",
                "BAKEHOUSE_OBJECT_ROOT",
            ],
        ),
    ];
    for (args, expected) in cases {
        let output = bakehouse(home.path(), args);
        assert_eq!(output.status.code(), Some(1), "{args:?}");
        let message = stderr(&output);
        for part in expected {
            assert!(message.contains(part), "{args:?}: {message}");
        }
    }
    // An unknown function is a usage error (clap's exit code 2), naming the accepted ones.
    let output = bakehouse(
        home.path(),
        &["invoke", "maintenance-nope", "--event", "e.json"],
    );
    assert_eq!(output.status.code(), Some(2));
    let message = stderr(&output);
    assert!(
        message.contains("invalid value 'maintenance-nope'")
            && message.contains("ingest, bronze-to-silver, silver-to-gold"),
        "{message}"
    );
    // Unknown file type without --dataset: the user is told to pass it.
    std::fs::write(home.path().join("notes.txt"), "x").unwrap();
    let output = bakehouse(home.path(), &["ingest", "notes.txt"]);
    assert!(stderr(&output).contains("pass --dataset"));
}

#[test]
fn the_embedded_path_ingests_once_processes_and_answers_sql() {
    let home = tempfile::tempdir().unwrap();
    let dir = home.path().join("landing/sales-events");
    std::fs::create_dir_all(&dir).unwrap();
    let at = bakehouse::domain::time::format_timestamp(
        bakehouse::domain::time::now_micros() - 3_600_000_000,
    );
    let lines = [
        format!(
            r#"{{"event_id":"a","event_time":"{at}","store_id":1,"product_id":1,"quantity":2,"unit_price":3.5}}"#
        ),
        format!(
            r#"{{"event_id":"b","event_time":"{at}","store_id":2,"product_id":2,"quantity":1,"unit_price":7.25}}"#
        ),
        "not json".to_string(),
    ];
    std::fs::write(dir.join("day.jsonl"), lines.join("\n")).unwrap();
    assert!(
        bakehouse(home.path(), &["init", "--sample"])
            .status
            .success()
    );
    let first = bakehouse(home.path(), &["ingest", "landing/sales-events/day.jsonl"]);
    assert!(
        String::from_utf8_lossy(&first.stdout).contains("2 → bronze.sales_events"),
        "{}",
        stderr(&first)
    );
    let second = bakehouse(home.path(), &["ingest", "landing/sales-events/day.jsonl"]);
    assert!(String::from_utf8_lossy(&second.stdout).contains("already ingested, nothing changed"));
    assert!(bakehouse(home.path(), &["process"]).status.success());
    let sql = bakehouse(
        home.path(),
        &[
            "sql",
            "SELECT sum(revenue) AS r, count(*) AS n FROM gold.fact_sales",
        ],
    );
    let table = String::from_utf8_lossy(&sql.stdout);
    assert!(table.contains("14.25") && table.contains("| 2 "), "{table}");
    let tables = bakehouse(home.path(), &["sql", "SHOW TABLES"]);
    let text = String::from_utf8_lossy(&tables.stdout);
    assert!(
        text.contains("fact_sales_daily") && text.contains("quarantine"),
        "{text}"
    );
    let schema = bakehouse(
        home.path(),
        &[
            "sql",
            "SELECT count(*) AS n FROM information_schema.tables WHERE table_schema = 'silver' AND table_name NOT LIKE '%$%'",
        ],
    );
    assert!(String::from_utf8_lossy(&schema.stdout).contains("| 4 "));
    let unqualified = bakehouse(home.path(), &["sql", "select * from sales"]);
    assert!(!unqualified.status.success());
    assert!(
        stderr(&unqualified)
            .contains("did you mean bronze.sales_events, silver.sales, gold.fact_sales"),
        "{}",
        stderr(&unqualified)
    );
    assert!(bakehouse(home.path(), &["maintenance"]).status.success());
    let json = bakehouse(home.path(), &["status", "--json"]);
    let status: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    let today = chrono::Utc::now().date_naive().to_string();
    assert!(
        status["quality"]
            .as_array()
            .unwrap()
            .iter()
            .any(|q| q["business_date"] == today.as_str()),
        "{status}"
    );
    let status = bakehouse(home.path(), &["status"]);
    let text = String::from_utf8_lossy(&status.stdout);
    assert!(
        text.contains("bronze.quarantine") && text.contains("bronze.sales_events → silver.sales"),
        "{text}"
    );
    assert!(home.path().join(".bakehouse/catalog.db").exists());
}

#[test]
fn a_catalog_password_is_never_printed() {
    let home = tempfile::tempdir().unwrap();
    let url = "postgres://bakehouse:hunter2-secret@127.0.0.1:9/postgres";
    let help = Command::new(env!("CARGO_BIN_EXE_bakehouse"))
        .arg("--help")
        .env("BAKEHOUSE_CATALOG", url)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&help.stdout);
    assert!(text.contains("BAKEHOUSE_CATALOG"), "{text}");
    assert!(!text.contains("hunter2"), "{text}");
    // A mistyped scheme is refused, naming the value without its password.
    let typo = bakehouse(
        home.path(),
        &[
            "--catalog",
            "postgress://bakehouse:hunter2-secret@h/db",
            "status",
        ],
    );
    let message = stderr(&typo);
    assert!(
        message.contains("postgress://bakehouse:***@h/db"),
        "{message}"
    );
    assert!(!message.contains("hunter2"), "{message}");
}

#[path = "../../shared/tests/support/weather_api.rs"]
mod weather_api;

#[test]
fn fetch_weather_lands_ingests_and_processes_through_the_command_and_invoke() {
    let api = weather_api::WeatherApi::start(|query, _| {
        if query.contains("latitude=41.8781") {
            weather_api::Reply::status(503, "down") // Chicago's pull fails every try
        } else {
            weather_api::Reply::ok(&weather_api::fixture("forecast.json"))
        }
    });
    let home = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_bakehouse"))
            .args(args)
            .current_dir(home.path())
            .env_remove("BAKEHOUSE_WAREHOUSE")
            .env_remove("BAKEHOUSE_CATALOG")
            .env("BAKEHOUSE_WEATHER_URL", &api.url)
            .env("BAKEHOUSE_WEATHER_ATTEMPTS", "2")
            .output()
            .unwrap()
    };
    assert!(run(&["init", "--sample"]).status.success());
    let pulled = run(&[
        "fetch-weather",
        "--from",
        "2026-12-01",
        "--to",
        "2026-12-03",
    ]);
    let out = String::from_utf8_lossy(&pulled.stdout);
    // Four stores land and are ingested; the command then fails naming the fifth.
    assert_eq!(out.matches("3 → bronze.weather").count(), 4, "{out}");
    assert!(!pulled.status.success());
    assert!(
        stderr(&pulled).contains("1 of 5 stores failed (4 landed): store 3:"),
        "{}",
        stderr(&pulled)
    );
    assert!(run(&["process"]).status.success());
    let sql = run(&[
        "sql",
        "SELECT count(*) AS n FROM gold.dim_weather WHERE store_id <> 3",
    ]);
    assert!(
        String::from_utf8_lossy(&sql.stdout).contains("| 12 "),
        "{}",
        stderr(&sql)
    );
    // The scheduled function's handler, as `sam local invoke` would run it.
    let fixture = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../functions/fetch-weather/fixtures/scheduled-event.json"
    );
    let invoked = run(&["invoke", "fetch-weather", "--event", fixture]);
    assert!(!invoked.status.success(), "Chicago still fails");
    assert!(
        stderr(&invoked).contains("weather pull: 1 of 5 stores failed"),
        "{}",
        stderr(&invoked)
    );
    let landed = std::fs::read_dir(home.path().join(".bakehouse/landing/weather")).unwrap();
    assert_eq!(landed.count(), 8, "four stores, two pulls");
}

#[test]
fn an_s3_endpoint_that_does_not_answer_is_named_within_seconds() {
    let home = tempfile::tempdir().unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_bakehouse"))
        .args(["--warehouse", "s3://lake/wh", "status"])
        .current_dir(home.path())
        .env_remove("BAKEHOUSE_CATALOG")
        .env("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", "id")
        .env("AWS_SECRET_ACCESS_KEY", "key")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let message = stderr(&output);
    assert!(
        message.contains(
            "no answer from the S3 endpoint http://127.0.0.1:9 (warehouse s3://lake/wh) within 5 s"
        ),
        "{message}"
    );
    assert!(message.lines().count() <= 2, "one clear line: {message}");
}

#[test]
fn commands_without_a_lake_neither_show_nor_take_its_flags() {
    let home = tempfile::tempdir().unwrap();
    for command in ["demo", "produce"] {
        let help = bakehouse(home.path(), &[command, "--help"]);
        let text = String::from_utf8_lossy(&help.stdout);
        assert!(
            !text.contains("--catalog") && !text.contains("--warehouse"),
            "{text}"
        );
        let refused = bakehouse(home.path(), &[command, "--catalog", "sqlite:///tmp/x.db"]);
        assert_eq!(refused.status.code(), Some(2));
        assert!(
            stderr(&refused).contains(&format!("--catalog does not apply to `{command}`")),
            "{}",
            stderr(&refused)
        );
    }
    let help = bakehouse(home.path(), &["status", "--help"]);
    assert!(String::from_utf8_lossy(&help.stdout).contains("--warehouse"));
}
