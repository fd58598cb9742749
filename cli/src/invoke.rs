//! `bakehouse invoke FUNCTION --event FILE.json`: one handler on one AWS event document.

use std::path::Path;

use anyhow::{Context, Result};
use bakehouse::domain::time::{format_timestamp, now_micros, parse_timestamp};
use bakehouse::hops::Deps;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use lambda_runtime::{Context as LambdaContext, LambdaEvent};
use serde_json::Value;
use serde_json::value::RawValue;

/// The Lambda functions, by the names the template gives them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Function {
    Ingest,
    BronzeToSilver,
    SilverToGold,
    Maintenance,
    FetchWeather,
}

/// Runs `function`'s handler on the event document and prints its result as JSON; with
/// `recent`, a KafkaEvent's event times are first moved to end now ([`moved_to_now`]).
pub async fn run(deps: &Deps, function: Function, event: &Path, recent: bool) -> Result<()> {
    let mut text = std::fs::read_to_string(event)
        .with_context(|| format!("cannot read {}", event.display()))?;
    if recent {
        text = moved_to_now(&text, now_micros())
            .with_context(|| format!("--recent: {} is not a KafkaEvent", event.display()))?;
    }
    let payload =
        RawValue::from_string(text).with_context(|| format!("{} is not JSON", event.display()))?;
    // The ingest function takes the document's text as is (a Kafka batch can be 6 MB); the
    // others a JSON value.
    let value = |payload: &RawValue| -> Result<LambdaEvent<Value>> {
        let value = serde_json::from_str(payload.get())?;
        Ok(LambdaEvent::new(value, LambdaContext::default()))
    };
    let result = match function {
        Function::Ingest => {
            let event = LambdaEvent::new(payload, LambdaContext::default());
            serde_json::to_value(ingest::handler(deps, event).await?)?
        }
        Function::BronzeToSilver => {
            serde_json::to_value(bronze_to_silver::handler(deps, value(&payload)?).await?)?
        }
        Function::SilverToGold => {
            serde_json::to_value(silver_to_gold::handler(deps, value(&payload)?).await?)?
        }
        Function::Maintenance => {
            serde_json::to_value(maintenance::handler(deps, value(&payload)?).await?)?
        }
        Function::FetchWeather => {
            serde_json::to_value(fetch_weather::handler(deps, value(&payload)?).await?)?
        }
    };
    say!("{}", crate::to_json(&result)?);
    Ok(())
}

/// A KafkaEvent document with every record's JSON `event_time` moved by the same amount, so
/// that the latest is `now` (UTC microseconds). Records that are not JSON objects with a
/// readable `event_time` are left as they are (they test validation).
fn moved_to_now(text: &str, now: i64) -> Result<String> {
    let mut event: Value = serde_json::from_str(text)?;
    let records = event
        .get_mut("records")
        .and_then(Value::as_object_mut)
        .context("no \"records\" object")?;
    let mut messages = Vec::new();
    for record in records
        .values_mut()
        .filter_map(Value::as_array_mut)
        .flatten()
    {
        let Some(value) = record.get("value").and_then(Value::as_str) else {
            continue;
        };
        let decoded = STANDARD.decode(value).ok();
        let message = decoded.and_then(|b| serde_json::from_slice::<Value>(&b).ok());
        let time = message
            .as_ref()
            .and_then(|m| m.get("event_time")?.as_str())
            .and_then(parse_timestamp);
        if let (Some(message), Some(time)) = (message, time) {
            messages.push((record, message, time));
        }
    }
    let Some(latest) = messages.iter().map(|(_, _, t)| *t).max() else {
        return Ok(text.to_string());
    };
    for (record, mut message, time) in messages {
        message["event_time"] = format_timestamp(time + (now - latest)).into();
        record["value"] = STANDARD.encode(serde_json::to_vec(&message)?).into();
    }
    Ok(serde_json::to_string(&event)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recent_moves_every_event_time_by_the_same_amount() {
        let encode = |v: &str| STANDARD.encode(v);
        let event = serde_json::json!({"eventSource": "aws:kafka", "records": {"t-0": [
            {"offset": 0, "value": encode(r#"{"event_id":"a","event_time":"2026-03-01T09:00:00Z"}"#)},
            {"offset": 1, "value": encode(r#"{"event_id":"b","event_time":"2026-03-01T10:00:00Z"}"#)},
            {"offset": 2, "value": encode("not json")},
        ]}});
        let now = parse_timestamp("2026-12-06T12:00:00Z").unwrap();
        let moved: Value =
            serde_json::from_str(&moved_to_now(&event.to_string(), now).unwrap()).unwrap();
        let values: Vec<String> = moved["records"]["t-0"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                String::from_utf8(STANDARD.decode(r["value"].as_str().unwrap()).unwrap()).unwrap()
            })
            .collect();
        assert!(values[0].contains("2026-12-06T11:00:00"), "{}", values[0]);
        assert!(values[1].contains("2026-12-06T12:00:00"), "{}", values[1]);
        assert_eq!(values[2], "not json");
    }
}
