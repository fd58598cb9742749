//! The weather source end to end, embedded, against a real HTTP server on 127.0.0.1 serving
//! responses in Open-Meteo's format: a store that answers, one that fails twice then answers,
//! one that always fails, a slow one, and one whose body is not a daily answer. Pulls land,
//! ingest takes them to bronze and quarantine, silver keeps the latest pull of each store's day
//! (whatever order the pulls arrive in) and `gold.dim_weather` follows.

#![allow(clippy::unwrap_used)]

#[path = "support/weather_api.rs"]
mod weather_api;

use std::time::Duration;

use bakehouse::adapters::lakehouse::tables;
use bakehouse::config::Config;
use bakehouse::domain::records::{BronzeWeather, DimWeather, QuarantineRow, SilverWeather};
use bakehouse::domain::time::{days_from_date, parse_timestamp};
use bakehouse::hops::ingest::{ObjectInput, ingest_object};
use bakehouse::hops::{Deps, init, to_gold, to_silver, weather};
use weather_api::{Reply, WeatherApi, fixture};

/// Latitudes of the sample stores 1–5, as the pull writes them in its query.
const SEATTLE: &str = "47.6062";
const PORTLAND: &str = "45.5152";
const CHICAGO: &str = "41.8781";
const AUSTIN: &str = "30.2672";
const BOSTON: &str = "42.3601";

fn day(text: &str) -> i32 {
    days_from_date(chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d").unwrap())
}

/// Pulls 2026-12-01..03 at `at`, ingests what landed, processes; returns the pull's summary.
async fn pull_and_process(deps: &Deps, at: &str) -> weather::PullSummary {
    let now = parse_timestamp(at).unwrap();
    let summary = weather::pull(deps, day("2026-12-01"), day("2026-12-03"), now)
        .await
        .unwrap();
    for location in &summary.landed {
        let input = ObjectInput {
            location: location.clone(),
            key: location.clone(),
            dataset: None,
        };
        ingest_object(deps, &input).await.unwrap();
    }
    to_silver::handle(deps, None).await.unwrap();
    to_gold::handle(deps, None).await.unwrap();
    summary
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pulls_land_once_and_the_latest_pull_of_a_day_wins() {
    let observed = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let answers = observed.clone();
    let api = WeatherApi::start(move |query, count| {
        let recorded = if answers.load(std::sync::atomic::Ordering::SeqCst) {
            "observed.json"
        } else {
            "forecast.json"
        };
        match query.split('&').find_map(|p| p.strip_prefix("latitude=")) {
            Some(SEATTLE) => Reply::ok(&fixture(recorded)),
            Some(PORTLAND) if count <= 2 => Reply::status(500, "upstream hiccup"),
            Some(PORTLAND) => Reply::ok(&fixture(recorded)),
            Some(CHICAGO) => Reply::status(503, "down for maintenance"),
            Some(AUSTIN) => Reply {
                delay: Duration::from_secs(3),
                ..Reply::ok(&fixture(recorded))
            },
            Some(BOSTON) => Reply::ok(&fixture("bad-gateway.html")),
            _ => Reply::status(400, &fixture("error-400.json")),
        }
    });
    let home = tempfile::tempdir().unwrap();
    // A key in the query, as a commercial plan has it: it must never appear in a message.
    let url = format!("{}?apikey=SECRET-KEY", api.url);
    let config = Config::embedded(home.path(), move |name| match name {
        "BAKEHOUSE_WEATHER_URL" => Some(url.clone()),
        "BAKEHOUSE_WEATHER_TIMEOUT_SECONDS" => Some("1".into()),
        "BAKEHOUSE_WEATHER_ATTEMPTS" => Some("3".into()),
        _ => None,
    })
    .unwrap();
    let deps = Deps::open(config).await.unwrap();
    init(&deps, true).await.unwrap();

    // A forecast pull: three stores land (one after two retries), two fail after three tries.
    let first = pull_and_process(&deps, "2026-12-02T06:00:00Z").await;
    assert_eq!(first.landed.len(), 3, "{first:?}");
    assert_eq!(first.failed.len(), 2, "{first:?}");
    assert!(first.failed[0].starts_with("store 3:") && first.failed[0].contains("HTTP 503"));
    assert!(first.failed[1].starts_with("store 4:") && first.failed[1].contains("no answer"));
    assert!(
        !first.failed.iter().any(|f| f.contains("latitude=")),
        "no query in messages"
    );
    let tries = [SEATTLE, PORTLAND, CHICAGO, AUSTIN, BOSTON].map(|l| api.requests_for(l));
    assert_eq!(tries, [1, 3, 3, 3, 1]);
    assert_eq!(first.requests, 11);
    let error = first.clone().into_result().unwrap_err().to_string();
    assert!(error.contains("2 of 5 stores failed (3 landed)"), "{error}");

    let lake = &deps.lake;
    let bronze: Vec<BronzeWeather> = lake.read_table(&tables::BRONZE_WEATHER).await.unwrap();
    assert_eq!(bronze.len(), 6);
    let quarantine: Vec<QuarantineRow> = lake.read_table(&tables::QUARANTINE).await.unwrap();
    assert_eq!(quarantine.len(), 1);
    assert_eq!(
        (
            quarantine[0].dataset.as_str(),
            quarantine[0].error_code.as_str()
        ),
        ("weather", "invalid_value")
    );
    assert!(quarantine[0].raw.contains("502 Bad Gateway"));

    let silver = |rows: Vec<SilverWeather>| {
        let mut rows: Vec<_> = rows
            .into_iter()
            .map(|w| {
                (
                    w.store_id,
                    w.business_date,
                    w.temperature_max_c,
                    w.is_forecast,
                    w.quality_score,
                )
            })
            .collect();
        rows.sort_by(|a, b| a.partial_cmp(b).unwrap());
        rows
    };
    let (d1, d2, d3) = (day("2026-12-01"), day("2026-12-02"), day("2026-12-03"));
    let forecast = silver(lake.read_table(&tables::SILVER_WEATHER).await.unwrap());
    assert_eq!(
        forecast,
        [
            (1, d1, Some(8.4), false, 100),
            (1, d2, Some(9.1), true, 100),
            (1, d3, Some(7.6), true, 100),
            (2, d1, Some(8.4), false, 100),
            (2, d2, Some(9.1), true, 100),
            (2, d3, Some(7.6), true, 100),
        ]
    );

    // The observed days, pulled later, replace the forecast; one row per store and day.
    observed.store(true, std::sync::atomic::Ordering::SeqCst);
    pull_and_process(&deps, "2026-12-04T06:00:00Z").await;
    let latest = silver(lake.read_table(&tables::SILVER_WEATHER).await.unwrap());
    let expected = [
        (1, d1, Some(8.2), false, 100),
        (1, d2, Some(10.3), false, 100),
        (1, d3, Some(6.9), false, 100),
        (2, d1, Some(8.2), false, 100),
        (2, d2, Some(10.3), false, 100),
        (2, d3, Some(6.9), false, 100),
    ];
    assert_eq!(latest, expected);

    // An older pull arriving late changes nothing: the latest pull still wins.
    observed.store(false, std::sync::atomic::Ordering::SeqCst);
    pull_and_process(&deps, "2026-12-01T06:00:00Z").await;
    assert_eq!(
        silver(lake.read_table(&tables::SILVER_WEATHER).await.unwrap()),
        expected
    );
    let bronze: Vec<BronzeWeather> = lake.read_table(&tables::BRONZE_WEATHER).await.unwrap();
    assert_eq!(bronze.len(), 18, "every pull is kept in bronze");

    let mut gold: Vec<DimWeather> = lake.read_table(&tables::DIM_WEATHER).await.unwrap();
    gold.sort_by_key(|d| (d.store_id, d.business_date));
    assert_eq!(gold.len(), 6);
    assert_eq!(
        gold.iter()
            .map(|d| (
                d.store_id,
                d.business_date,
                d.temperature_max_c,
                d.precipitation_mm,
                d.weather_code
            ))
            .collect::<Vec<_>>()[..3],
        [
            (1, d1, Some(8.2), Some(6.0), Some(61)),
            (1, d2, Some(10.3), Some(0.0), Some(2)),
            (1, d3, Some(6.9), Some(15.7), Some(65)),
        ]
    );
}
