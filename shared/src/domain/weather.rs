//! Daily weather per store (SPEC §2 External API): reading a response of the weather API
//! (Open-Meteo's daily format) into one landing record per store and day, and the silver and
//! gold rules — scored, one row per store × date where the latest pull wins (an observed day
//! replaces its forecast). Pure: the weather hop does the HTTP and the tables.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::{Value, json};

use super::gold::GoldPolicy;
use super::quality::Assessment;
use super::records::{BronzeWeather, DimWeather, SilverWeather};
use super::reference::ReferenceIndex;
use super::time::{date_of, format_timestamp};

/// The daily variables asked of the API, in its names.
pub const DAILY_VARIABLES: &str =
    "temperature_2m_max,temperature_2m_min,precipitation_sum,weather_code";

/// The part of an Open-Meteo response the pipeline reads.
#[derive(Deserialize)]
struct Response {
    daily: Daily,
}

#[derive(Deserialize)]
struct Daily {
    time: Vec<String>,
    temperature_2m_max: Vec<Option<f64>>,
    temperature_2m_min: Vec<Option<f64>>,
    precipitation_sum: Vec<Option<f64>>,
    weather_code: Vec<Option<f64>>,
}

/// The landing records (JSON objects, one a line) of one response for `store_id`, pulled at
/// `pulled_at` (UTC microseconds): one per day, in the names of the `weather` dataset. A body
/// that is not a daily response — not JSON, an error document, arrays of unequal length —
/// gives one record carrying it as `malformed_response`, which ingest quarantines.
pub fn landing_records(body: &str, store_id: i32, pulled_at: i64) -> Vec<Value> {
    let pulled = format_timestamp(pulled_at);
    let days = serde_json::from_str::<Response>(body)
        .map_err(|e| e.to_string())
        .and_then(|r| {
            let d = r.daily;
            let n = d.time.len();
            let lengths = [
                d.temperature_2m_max.len(),
                d.temperature_2m_min.len(),
                d.precipitation_sum.len(),
                d.weather_code.len(),
            ];
            if lengths.iter().any(|l| *l != n) {
                return Err(format!(
                    "daily arrays of unequal length: {n} days, {lengths:?}"
                ));
            }
            Ok((0..n)
                .map(|i| {
                    json!({
                        "store_id": store_id,
                        "date": d.time[i],
                        "pulled_at": pulled,
                        "temperature_max_c": d.temperature_2m_max[i],
                        "temperature_min_c": d.temperature_2m_min[i],
                        "precipitation_mm": d.precipitation_sum[i],
                        "weather_code": d.weather_code[i],
                    })
                })
                .collect::<Vec<_>>())
        });
    match days {
        Ok(days) => days,
        Err(reason) => vec![json!({
            "store_id": store_id,
            "pulled_at": pulled,
            "malformed_response": format!("{reason}; body: {}", body.chars().take(2000).collect::<String>()),
        })],
    }
}

/// Scores a store's day of weather: the store is known (25); the maximum is not below the
/// minimum (25); both temperatures, where present, lie within −60…60 °C (25); precipitation,
/// where present, within 0…2000 mm (25).
pub fn assess_weather(day: &BronzeWeather, reference: &ReferenceIndex) -> Assessment {
    let plausible = |t: Option<f64>| t.is_none_or(|t| (-60.0..=60.0).contains(&t));
    Assessment::from_rules(&[
        (
            "store_unknown",
            25,
            reference.stores.contains(&day.store_id),
        ),
        (
            "temperature_max_below_min",
            25,
            match (day.temperature_max_c, day.temperature_min_c) {
                (Some(max), Some(min)) => max >= min,
                _ => true,
            },
        ),
        (
            "temperature_out_of_range",
            25,
            plausible(day.temperature_max_c) && plausible(day.temperature_min_c),
        ),
        (
            "precipitation_out_of_range",
            25,
            day.precipitation_mm
                .is_none_or(|p| (0.0..=2000.0).contains(&p)),
        ),
    ])
}

/// A bronze day of weather as silver holds it.
pub fn weather_to_silver(day: &BronzeWeather, reference: &ReferenceIndex) -> SilverWeather {
    let assessment = assess_weather(day, reference);
    SilverWeather {
        business_date: day.date,
        store_id: day.store_id,
        temperature_max_c: day.temperature_max_c,
        temperature_min_c: day.temperature_min_c,
        precipitation_mm: day.precipitation_mm,
        weather_code: day.weather_code,
        pulled_at: day.pulled_at,
        is_forecast: day.date >= date_of(day.pulled_at),
        ingestion_time: day.ingestion_time,
        quality_score: assessment.score,
        failed_rules: assessment.failed_rules(),
        source_ref: day.source_ref.clone(),
    }
}

/// One row per store and date: the latest pull (ties: the later ingestion, then the greater
/// `source_ref`), whatever order the rows come in. Sorted by date, then store.
pub fn latest_per_day(rows: impl IntoIterator<Item = SilverWeather>) -> Vec<SilverWeather> {
    let mut latest: BTreeMap<(i32, i32), SilverWeather> = BTreeMap::new();
    for row in rows {
        let key = (row.business_date, row.store_id);
        let newer = latest.get(&key).is_none_or(|kept| {
            (row.pulled_at, row.ingestion_time, &row.source_ref)
                > (kept.pulled_at, kept.ingestion_time, &kept.source_ref)
        });
        if newer {
            latest.insert(key, row);
        }
    }
    latest.into_values().collect()
}

/// `gold.dim_weather` of silver's rows that meet the minimum score.
pub fn dim_weather(silver: &[SilverWeather], policy: &GoldPolicy) -> Vec<DimWeather> {
    silver
        .iter()
        .filter(|w| policy.is_eligible(w.quality_score, false))
        .map(|w| DimWeather {
            business_date: w.business_date,
            store_id: w.store_id,
            temperature_max_c: w.temperature_max_c,
            temperature_min_c: w.temperature_min_c,
            precipitation_mm: w.precipitation_mm,
            weather_code: w.weather_code,
            is_forecast: w.is_forecast,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::time::parse_timestamp;

    const RESPONSE: &str = r#"{"latitude":52.52,"longitude":13.419998,"generationtime_ms":0.05,
        "utc_offset_seconds":0,"timezone":"GMT","timezone_abbreviation":"GMT","elevation":38.0,
        "daily_units":{"time":"iso8601","temperature_2m_max":"°C","temperature_2m_min":"°C",
        "precipitation_sum":"mm","weather_code":"wmo code"},
        "daily":{"time":["2026-12-05","2026-12-06"],"temperature_2m_max":[4.1,3.2],
        "temperature_2m_min":[-0.5,null],"precipitation_sum":[0.0,2.4],"weather_code":[3,61]}}"#;

    fn bronze(record: &Value, ingested: i64) -> BronzeWeather {
        BronzeWeather {
            store_id: record["store_id"].as_i64().unwrap() as i32,
            date: super::super::time::days_from_date(
                chrono::NaiveDate::parse_from_str(record["date"].as_str().unwrap(), "%Y-%m-%d")
                    .unwrap(),
            ),
            pulled_at: parse_timestamp(record["pulled_at"].as_str().unwrap()).unwrap(),
            temperature_max_c: record["temperature_max_c"].as_f64(),
            temperature_min_c: record["temperature_min_c"].as_f64(),
            precipitation_mm: record["precipitation_mm"].as_f64(),
            weather_code: record["weather_code"].as_i64().map(|c| c as i32),
            payload: String::new(),
            source: "file".into(),
            source_ref: format!("k:{ingested}"),
            ingestion_time: ingested,
        }
    }

    #[test]
    fn a_response_lands_one_record_a_day_and_a_bad_one_is_kept_whole() {
        let at = parse_timestamp("2026-12-06T06:00:00Z").unwrap();
        let records = landing_records(RESPONSE, 3, at);
        assert_eq!(records.len(), 2);
        assert_eq!(records[1]["date"], "2026-12-06");
        assert_eq!(records[1]["temperature_min_c"], Value::Null);
        assert_eq!(records[1]["weather_code"], 61.0);
        assert_eq!(records[0]["pulled_at"], "2026-12-06T06:00:00Z");
        for body in [
            "<html>502</html>",
            r#"{"error":true,"reason":"Latitude must be in range"}"#,
            r#"{"daily":{"time":["2026-12-05"],"temperature_2m_max":[],"temperature_2m_min":[],
               "precipitation_sum":[],"weather_code":[]}}"#,
        ] {
            let bad = landing_records(body, 3, at);
            assert_eq!(bad.len(), 1, "{body}");
            assert!(
                bad[0]["malformed_response"]
                    .as_str()
                    .unwrap()
                    .contains("body:")
            );
        }
    }

    #[test]
    fn the_latest_pull_of_a_day_wins_and_a_past_day_is_observed() {
        let reference = ReferenceIndex {
            stores: [3].into(),
            ..ReferenceIndex::default()
        };
        let first = landing_records(
            RESPONSE,
            3,
            parse_timestamp("2026-12-05T06:00:00Z").unwrap(),
        );
        let second = landing_records(
            RESPONSE,
            3,
            parse_timestamp("2026-12-06T06:00:00Z").unwrap(),
        );
        let rows: Vec<SilverWeather> = second
            .iter()
            .chain(&first)
            .map(|r| weather_to_silver(&bronze(r, 1), &reference))
            .collect();
        let latest = latest_per_day(rows);
        assert_eq!(latest.len(), 2);
        assert!(
            latest
                .iter()
                .all(|w| w.pulled_at == parse_timestamp("2026-12-06T06:00:00Z").unwrap())
        );
        assert_eq!(
            latest.iter().map(|w| w.is_forecast).collect::<Vec<_>>(),
            [false, true]
        );
        assert!(latest.iter().all(|w| w.quality_score == 100));
    }

    #[test]
    fn implausible_weather_scores_lower() {
        let at = parse_timestamp("2026-12-06T06:00:00Z").unwrap();
        let mut day = bronze(&landing_records(RESPONSE, 9, at)[0], 1);
        day.temperature_min_c = Some(70.0);
        day.precipitation_mm = Some(-1.0);
        let assessment = assess_weather(&day, &ReferenceIndex::default());
        assert_eq!(assessment.score, 0);
        assert_eq!(
            assessment.failed,
            [
                "store_unknown",
                "temperature_max_below_min",
                "temperature_out_of_range",
                "precipitation_out_of_range"
            ]
        );
    }
}
